// Tests of Nix internal-json on real Nix 2.8 fixtures and on the grammar: states, ids, parents, unknowns.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BuildLog, TraceEvent } from './events.js';
import { parseTrace } from './index.js';
import { finalStates, fixture, name, runBin } from './testing.js';

const logOf = (events: TraceEvent[], drvName: string): string =>
  events.filter((e): e is BuildLog => e.type === 'build-log' && e.drv !== null && name(e.drv) === drvName).map((e) => e.text).join('');

test('real Nix 2.8 with --keep-going: every derivation gets its right final state', () => {
  const { events, warnings, passthrough } = parseTrace(fixture('nix-2.8-json-keep-going.trace'));
  assert.deepEqual(warnings, []);
  assert.equal(passthrough.length, 0);
  assert.deepEqual(finalStates(events), {
    'bad-hash-1': 'hash-mismatch',
    'alpha-1.0': 'ok',
    'beta-2.1': 'ok',
    'broken-0.3': 'builder',
    'needs-broken-1.0': 'dependency',
    'slow-5': 'ok',
    'top-1': 'dependency',
  });
  const broken = events.find((e) => e.type === 'build-failed' && name(e.drv) === 'broken-0.3');
  assert.ok(broken && broken.type === 'build-failed');
  assert.equal(broken.status, 3);
  assert.match(broken.message!, /^builder for '.*broken-0\.3\.drv' failed with exit code 3$/);
  assert.equal(events.filter((e) => e.type === 'build-queued').length, 7);
});

test('real Nix 2.8 without --keep-going: the stopped build is interrupted, the rest never started', () => {
  const { events, warnings } = parseTrace(fixture('nix-2.8-json.trace'));
  assert.deepEqual(warnings, []);
  assert.deepEqual(finalStates(events), {
    'bad-hash-1': 'hash-mismatch',
    'slow-5': 'interrupted',
    'top-1': 'dependency',
    'alpha-1.0': 'cancelled',
    'beta-2.1': 'cancelled',
    'broken-0.3': 'cancelled',
    'needs-broken-1.0': 'cancelled',
  });
});

test('build log lines of real Nix are attributed to their derivation, escapes and UTF-8 intact', () => {
  const { events } = parseTrace(fixture('nix-2.8-json-keep-going.trace'));
  assert.equal(logOf(events, 'alpha-1.0'),
    'building alpha\nunicode: héllo ✓ — done\na line with "quotes" and a \backslash\ncolour: \x1b[1;32mgreen\x1b[0m\n');
  assert.equal(logOf(events, 'broken-0.3'), "compiling broken...\nbroken.c:1: error: expected ';'\nmake: *** [all] Error 1\n");
  assert.equal(logOf(events, 'slow-5'), 'slow starts\nslow ends\n');
});

const big = (n: bigint): string => String(n);
const A = 9007199254740993n; // 2^53 + 1: a double cannot tell it from 2^53
const B = 9007199254740992n;

test('activity ids beyond 2^53 stay exact and distinct', () => {
  const trace = [
    `@nix {"action":"start","fields":["/s/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-one.drv","",1,1],"id":${big(A)},"level":3,"parent":0,"text":"building","type":105}`,
    `@nix {"action":"start","fields":["/s/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-two.drv","",1,1],"id":${big(B)},"level":3,"parent":0,"text":"building","type":105}`,
    `@nix {"action":"result","fields":["from one"],"id":${big(A)},"type":101}`,
    `@nix {"action":"result","fields":["from two \\u001b[0m"],"id":${big(B)},"type":101}`,
    `@nix {"action":"result","fields":["from one, escaped \\"q\\""],"id":${big(A)},"type":101}`,
    `@nix {"action":"stop","id":${big(A)}}`,
    `@nix {"action":"stop","id":${big(B)}}`,
  ].join('\n') + '\n';
  const { events } = parseTrace(trace);
  assert.equal(logOf(events, 'one'), 'from one\nfrom one, escaped "q"\n');
  assert.equal(logOf(events, 'two'), 'from two \x1b[0m\n');
  const started = events.filter((e) => e.type === 'build-started').map((e) => e.activity);
  assert.deepEqual(started, [String(A), String(B)]);
  assert.deepEqual(finalStates(events), { one: 'ok', two: 'ok' });
});

test('parents: a download belongs to its substitution, a child activity logs into its build', () => {
  const trace = [
    '@nix {"action":"start","fields":["/s/cccccccccccccccccccccccccccccccc-lib-2","https://cache.example"],"id":10,"level":4,"parent":0,"text":"copying","type":108}',
    '@nix {"action":"start","fields":["https://cache.example/nar/x.nar.xz"],"id":11,"level":4,"parent":10,"text":"downloading","type":101}',
    '@nix {"action":"result","fields":[500,1000,0,0],"id":11,"type":105}',
    '@nix {"action":"stop","id":11}',
    '@nix {"action":"stop","id":10}',
    '@nix {"action":"start","fields":["/s/dddddddddddddddddddddddddddddddd-app.drv","builder.example",1,1],"id":20,"level":3,"parent":0,"text":"building","type":105}',
    '@nix {"action":"start","id":21,"level":3,"parent":20,"text":"running post-build-hook","type":110}',
    '@nix {"action":"result","fields":["hook says hi"],"id":21,"type":107}',
    '@nix {"action":"result","fields":["buildPhase"],"id":20,"type":104}',
  ].join('\n') + '\n';
  const { events } = parseTrace(trace);
  const types = events.map((e) => e.type);
  assert.deepEqual(types.slice(0, 4), ['substitute-started', 'download-started', 'download-progress', 'download-succeeded']);
  const progress = events[2]!;
  assert.ok(progress.type === 'download-progress');
  assert.equal(progress.path, '/s/cccccccccccccccccccccccccccccccc-lib-2');
  assert.equal(progress.url, 'https://cache.example/nar/x.nar.xz');
  assert.deepEqual([progress.done, progress.expected], [500, 1000]);
  assert.equal(events[4]!.type, 'substitute-succeeded');
  const started = events.find((e) => e.type === 'build-started');
  assert.ok(started?.type === 'build-started' && started.host === 'builder.example');
  assert.equal(logOf(events, 'app'), 'hook says hi\n');
  assert.ok(events.some((e) => e.type === 'build-phase' && e.phase === 'buildPhase'));
  // The trace ends with the build still running: it did not finish.
  assert.deepEqual(finalStates(events), { app: 'interrupted' });
});

test('unknown activity types, result codes and actions are kept as unknown events', () => {
  const lines = [
    '@nix {"action":"start","id":5,"level":3,"parent":0,"text":"something new","type":999,"fields":[1]}',
    '@nix {"action":"result","fields":["x"],"id":5,"type":4242}',
    '@nix {"action":"teleport","id":5}',
  ];
  const { events, warnings } = parseTrace(lines.join('\n') + '\n');
  assert.deepEqual(warnings, []);
  assert.deepEqual(events.map((e) => [e.type, e.type === 'unknown' ? e.raw : '']), lines.map((l) => ['unknown', l]));
});

test('Nix error messages that name a derivation become failures with the right cause', () => {
  const msg = (text: string, level = 0): string => `@nix ${JSON.stringify({ action: 'msg', level, msg: text })}`;
  const d = (n: string): string => `/s/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-${n}.drv`;
  const { events } = parseTrace([
    msg(`error: builder for '${d('a')}' failed due to signal 9 (Killed)`),
    msg(`error: building of '${d('b')}' timed out after 10 seconds`),
    msg(`error: a 'riscv64-linux' with features {} is required to build '${d('c')}', but I am a 'x86_64-linux' with features {}`),
    msg(`error: cannot build derivation '${d('d')}': 2 dependencies couldn't be built`),
    msg('warning: something else', 1),
  ].join('\n') + '\n');
  assert.deepEqual(finalStates(events), { a: 'builder', b: 'timeout', c: 'unsupported', d: 'dependency' });
  assert.ok(events.some((e) => e.type === 'message' && e.level === 'warn' && e.text === 'warning: something else'));
});

test('plain Nix 2.8 output is no trace: it passes through whole, its plan only queues', () => {
  const input = fixture('nix-2.8-plain-keep-going.trace');
  const { events, passthrough, warnings } = parseTrace(input);
  assert.deepEqual(warnings, []);
  assert.ok(passthrough.equals(input));
  assert.deepEqual(events.map((e) => e.type), Array(7).fill('build-queued'));
});

test('Nix 2.8 has no --print-build-trace any more; the fixture records what it says', () => {
  assert.match(fixture('nix-2.8-print-build-trace.trace').toString(), /unrecognised flag '--print-build-trace'/);
});

// Real Nix 2.8 output (nix-build --log-format internal-json with --max-silent-time or --timeout, in a
// throw-away store), trimmed to the lines that matter, store paths as Nix printed them. Nix 2.8 names
// a timed-out derivation as 'DRV!out' "from .drv file".
const NIX_28_TIMEOUTS_KEEP_GOING = String.raw`
@nix {"action":"msg","level":3,"msg":"these 6 derivations will be built:"}
@nix {"action":"msg","level":3,"msg":"  /tmp/review-trace/nix/root/store/bkzf18bary08cmc04y6aa91rpgwix2hg-hangs-1.drv"}
@nix {"action":"msg","level":3,"msg":"  /tmp/review-trace/nix/root/store/r8lpskxbqjyp3hrzsqd5iy5ipl6ym5sn-a-1.drv"}
@nix {"action":"msg","level":3,"msg":"  /tmp/review-trace/nix/root/store/ywfhyr29dnw00dm1wliwyhk9jfizsfn0-fails-1.drv"}
@nix {"action":"msg","level":3,"msg":"  /tmp/review-trace/nix/root/store/g9yk8wrfxvh3m4apl547yhsc2pqkcckb-dep-1.drv"}
@nix {"action":"msg","level":3,"msg":"  /tmp/review-trace/nix/root/store/napdgjv65n0jlbb6vg6a72jw0inzn4aw-slow-1.drv"}
@nix {"action":"msg","level":3,"msg":"  /tmp/review-trace/nix/root/store/gic64iv5maxp35d6wv325w3qsm2wgv1h-top-1.drv"}
@nix {"action":"start","id":34553011896322,"level":0,"text":"","type":104}
@nix {"action":"result","fields":[0,1,0,0],"id":34553011896322,"type":105}
@nix {"action":"result","fields":[0,5,0,0],"id":34553011896322,"type":105}
@nix {"action":"start","fields":["/tmp/review-trace/nix/root/store/bkzf18bary08cmc04y6aa91rpgwix2hg-hangs-1.drv","",1,1],"id":34553011896325,"level":3,"text":"building '/tmp/review-trace/nix/root/store/bkzf18bary08cmc04y6aa91rpgwix2hg-hangs-1.drv'","type":105}
@nix {"action":"result","fields":[0,5,1,0],"id":34553011896322,"type":105}
@nix {"action":"start","fields":["/tmp/review-trace/nix/root/store/napdgjv65n0jlbb6vg6a72jw0inzn4aw-slow-1.drv","",1,1],"id":34553011896326,"level":3,"text":"building '/tmp/review-trace/nix/root/store/napdgjv65n0jlbb6vg6a72jw0inzn4aw-slow-1.drv'","type":105}
@nix {"action":"result","fields":[0,5,2,0],"id":34553011896322,"type":105}
@nix {"action":"result","fields":[0,6,2,0],"id":34553011896322,"type":105}
@nix {"action":"start","fields":["/tmp/review-trace/nix/root/store/r8lpskxbqjyp3hrzsqd5iy5ipl6ym5sn-a-1.drv","",1,1],"id":34553011896327,"level":3,"text":"building '/tmp/review-trace/nix/root/store/r8lpskxbqjyp3hrzsqd5iy5ipl6ym5sn-a-1.drv'","type":105}
@nix {"action":"result","fields":[0,6,3,0],"id":34553011896322,"type":105}
@nix {"action":"result","fields":["hanging"],"id":34553011896325,"type":101}
@nix {"action":"result","fields":["buildPhase"],"id":34553011896327,"type":104}
@nix {"action":"result","fields":["plain a"],"id":34553011896327,"type":101}
@nix {"action":"result","fields":[1,6,2,0],"id":34553011896322,"type":105}
@nix {"action":"stop","id":34553011896327}
@nix {"action":"start","fields":["/tmp/review-trace/nix/root/store/ywfhyr29dnw00dm1wliwyhk9jfizsfn0-fails-1.drv","",1,1],"id":34553011896328,"level":3,"text":"building '/tmp/review-trace/nix/root/store/ywfhyr29dnw00dm1wliwyhk9jfizsfn0-fails-1.drv'","type":105}
@nix {"action":"result","fields":[1,6,3,0],"id":34553011896322,"type":105}
@nix {"action":"result","fields":["about to fail"],"id":34553011896328,"type":101}
@nix {"action":"result","fields":[1,5,2,1],"id":34553011896322,"type":105}
@nix {"action":"msg","column":null,"file":null,"level":0,"line":null,"msg":"\u001b[31;1merror:\u001b[0m builder for '\u001b[35;1m/tmp/review-trace/nix/root/store/ywfhyr29dnw00dm1wliwyhk9jfizsfn0-fails-1.drv\u001b[0m' failed with exit code 7","raw_msg":"builder for '\u001b[35;1m/tmp/review-trace/nix/root/store/ywfhyr29dnw00dm1wliwyhk9jfizsfn0-fails-1.drv\u001b[0m' failed with exit code 7"}
@nix {"action":"stop","id":34553011896328}
@nix {"action":"result","fields":[1,4,2,1],"id":34553011896322,"type":105}
@nix {"action":"msg","column":null,"file":null,"level":0,"line":null,"msg":"\u001b[31;1merror:\u001b[0m \u001b[35;1m1\u001b[0m dependencies of derivation '\u001b[35;1m/tmp/review-trace/nix/root/store/g9yk8wrfxvh3m4apl547yhsc2pqkcckb-dep-1.drv\u001b[0m' failed to build","raw_msg":"\u001b[35;1m1\u001b[0m dependencies of derivation '\u001b[35;1m/tmp/review-trace/nix/root/store/g9yk8wrfxvh3m4apl547yhsc2pqkcckb-dep-1.drv\u001b[0m' failed to build"}
@nix {"action":"result","fields":[1,3,1,2],"id":34553011896322,"type":105}
@nix {"action":"msg","column":null,"file":null,"level":0,"line":null,"msg":"\u001b[31;1merror:\u001b[0m \u001b[35;1mbuilding of '/tmp/review-trace/nix/root/store/bkzf18bary08cmc04y6aa91rpgwix2hg-hangs-1.drv!out' from .drv file\u001b[0m timed out after \u001b[35;1m2\u001b[0m seconds of silence","raw_msg":"\u001b[35;1mbuilding of '/tmp/review-trace/nix/root/store/bkzf18bary08cmc04y6aa91rpgwix2hg-hangs-1.drv!out' from .drv file\u001b[0m timed out after \u001b[35;1m2\u001b[0m seconds of silence"}
@nix {"action":"stop","id":34553011896325}
@nix {"action":"result","fields":[1,2,0,3],"id":34553011896322,"type":105}
@nix {"action":"msg","column":null,"file":null,"level":0,"line":null,"msg":"\u001b[31;1merror:\u001b[0m \u001b[35;1mbuilding of '/tmp/review-trace/nix/root/store/napdgjv65n0jlbb6vg6a72jw0inzn4aw-slow-1.drv!out' from .drv file\u001b[0m timed out after \u001b[35;1m2\u001b[0m seconds of silence","raw_msg":"\u001b[35;1mbuilding of '/tmp/review-trace/nix/root/store/napdgjv65n0jlbb6vg6a72jw0inzn4aw-slow-1.drv!out' from .drv file\u001b[0m timed out after \u001b[35;1m2\u001b[0m seconds of silence"}
@nix {"action":"stop","id":34553011896326}
@nix {"action":"result","fields":[1,1,0,3],"id":34553011896322,"type":105}
@nix {"action":"stop","id":34553011896322}
@nix {"action":"msg","column":null,"file":null,"level":0,"line":null,"msg":"\u001b[31;1merror:\u001b[0m \u001b[35;1m3\u001b[0m dependencies of derivation '\u001b[35;1m/tmp/review-trace/nix/root/store/gic64iv5maxp35d6wv325w3qsm2wgv1h-top-1.drv\u001b[0m' failed to build","raw_msg":"\u001b[35;1m3\u001b[0m dependencies of derivation '\u001b[35;1m/tmp/review-trace/nix/root/store/gic64iv5maxp35d6wv325w3qsm2wgv1h-top-1.drv\u001b[0m' failed to build"}
`.slice(1);

// Without --keep-going Nix 2.8 stops the timed-out build first and says why only afterwards.
const NIX_28_TIMEOUT = String.raw`
@nix {"action":"msg","level":3,"msg":"this derivation will be built:"}
@nix {"action":"msg","level":3,"msg":"  /tmp/review-trace/nix/root/store/bkzf18bary08cmc04y6aa91rpgwix2hg-hangs-1.drv"}
@nix {"action":"start","id":24073291694082,"level":0,"text":"","type":104}
@nix {"action":"result","fields":[0,1,0,0],"id":24073291694082,"type":105}
@nix {"action":"start","fields":["/tmp/review-trace/nix/root/store/bkzf18bary08cmc04y6aa91rpgwix2hg-hangs-1.drv","",1,1],"id":24073291694085,"level":3,"text":"building '/tmp/review-trace/nix/root/store/bkzf18bary08cmc04y6aa91rpgwix2hg-hangs-1.drv'","type":105}
@nix {"action":"result","fields":[0,1,1,0],"id":24073291694082,"type":105}
@nix {"action":"result","fields":["hanging"],"id":24073291694085,"type":101}
@nix {"action":"result","fields":[0,0,0,1],"id":24073291694082,"type":105}
@nix {"action":"stop","id":24073291694085}
@nix {"action":"stop","id":24073291694082}
@nix {"action":"msg","column":null,"file":null,"level":0,"line":null,"msg":"\u001b[31;1merror:\u001b[0m \u001b[35;1mbuilding of '/tmp/review-trace/nix/root/store/bkzf18bary08cmc04y6aa91rpgwix2hg-hangs-1.drv!out' from .drv file\u001b[0m timed out after \u001b[35;1m1\u001b[0m seconds","raw_msg":"\u001b[35;1mbuilding of '/tmp/review-trace/nix/root/store/bkzf18bary08cmc04y6aa91rpgwix2hg-hangs-1.drv!out' from .drv file\u001b[0m timed out after \u001b[35;1m1\u001b[0m seconds"}
`.slice(1);

test("real Nix 2.8 timeouts with --keep-going: cause timeout, with Nix's message", () => {
  const { events, warnings } = parseTrace(NIX_28_TIMEOUTS_KEEP_GOING);
  assert.deepEqual(warnings, []);
  assert.deepEqual(finalStates(events), { 'a-1': 'ok', 'fails-1': 'builder', 'dep-1': 'dependency', 'hangs-1': 'timeout', 'slow-1': 'timeout', 'top-1': 'dependency' });
  const hangs = events.filter((e) => e.type === 'build-failed' && name(e.drv) === 'hangs-1');
  assert.equal(hangs.length, 1);
  assert.ok(hangs[0]!.type === 'build-failed');
  assert.match(hangs[0]!.message!, /^building of '\/tmp\/review-trace\/nix\/root\/store\/bkzf\w+-hangs-1\.drv!out' from \.drv file timed out after 2 seconds of silence$/);
  // The error became the failure: it is not shown again as a message of its own.
  assert.ok(!events.some((e) => e.type === 'message' && /timed out/.test(e.text)));
});

test('real Nix 2.8 without --keep-going: a timeout reported after the stop is a timeout, not interrupted', () => {
  const { events, warnings } = parseTrace(NIX_28_TIMEOUT);
  assert.deepEqual(warnings, []);
  assert.deepEqual(finalStates(events), { 'hangs-1': 'timeout' });
  const last = events.filter((e) => e.type === 'build-failed').at(-1);
  assert.ok(last?.type === 'build-failed');
  assert.equal(last.message, "building of '/tmp/review-trace/nix/root/store/bkzf18bary08cmc04y6aa91rpgwix2hg-hangs-1.drv!out' from .drv file timed out after 1 seconds");
});

test('real Nix 2.8 without --keep-going: plain output and exit status say timed out', async () => {
  const r = await runBin(['--format', 'plain'], NIX_28_TIMEOUT);
  assert.equal(r.status, 1);
  // Stopped, it looked interrupted; Nix's error then says why, and that is its last word.
  assert.match(r.stdout, /FAILED {2}hangs-1 after [\d.]+s: building of '.*hangs-1\.drv!out' from \.drv file timed out after 1 seconds \[1\/1, 1 failed\]\n\[ *[\d.]+s\] FAILED: 0 built, 1 failed in/);
  assert.equal(r.stdout.split('| hanging').length - 1, 1, 'the log tail is shown once');
  assert.doesNotMatch(r.stdout, /\] error:/);
});

test('build-log events of Nix carry their activity id, in events and in JSON output', async () => {
  const { events } = parseTrace(NIX_28_TIMEOUTS_KEEP_GOING);
  const logs = events.filter((e): e is BuildLog => e.type === 'build-log');
  assert.deepEqual(logs.map((e) => [name(e.drv!), e.activity, e.text]), [
    ['hangs-1', '34553011896325', 'hanging\n'],
    ['a-1', '34553011896327', 'plain a\n'],
    ['fails-1', '34553011896328', 'about to fail\n'],
  ]);
  // --format json writes log lines through its byte fast path: the same objects, the same keys.
  const r = await runBin(['--format', 'json'], NIX_28_TIMEOUTS_KEEP_GOING);
  const lines = r.stdout.trimEnd().split('\n').filter((l) => l.startsWith('{"type":"build-log"'));
  const timeless = ({ time: _, ...rest }: BuildLog): Omit<BuildLog, 'time'> => rest;
  assert.deepEqual(lines.map((l) => timeless(JSON.parse(l) as BuildLog)), logs.map(timeless));
  assert.deepEqual(Object.keys(JSON.parse(lines[0]!) as object), ['type', 'time', 'source', 'activity', 'drv', 'pid', 'text']);
});

test('an id that is no integer is not read as the digits it starts with', () => {
  const trace = [
    '@nix {"action":"start","fields":["/s/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-one.drv","",1,1],"id":1,"level":3,"parent":0,"text":"building","type":105}',
    '@nix {"action":"start","fields":["/s/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-two.drv","",1,1],"id":1e400,"level":3,"parent":0,"text":"building","type":105}',
    '@nix {"action":"start","fields":["/s/cccccccccccccccccccccccccccccccc-three.drv","",1,1],"id":1.5,"level":3,"parent":0,"text":"building","type":105}',
  ].join('\n') + '\n';
  const { events, warnings } = parseTrace(trace);
  // Nix's ids are integers: the others are reported, not made into ids (`Infinity`, `1.5`) or into `1`.
  const started = events.filter((e) => e.type === 'build-started').map((e) => e.activity);
  assert.deepEqual(started, ['1']);
  assert.deepEqual(warnings, [
    '<input>:2: @nix start with an "id" that is not an integer',
    '<input>:3: @nix start with an "id" that is not an integer',
  ]);
});
