// A small, deterministic mutation campaign against the real drover-trace binary: real traces (Nix 2.8's
// internal-json fixtures, a live drover-build trace, a Guix daemon stream) cut, shuffled and corrupted,
// read in every output format. Whatever the input, drover-trace ends by itself with 0 or 1, without a
// stack trace; --format json writes JSON Lines that keep the documented shape; the human outputs carry
// no control characters but those of lines that pass through; the summary's totals are the events'.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BuildEnv } from './build-harness.js';

const TRACE_BIN = fileURLToPath(new URL('../../packages/trace/bin/drover-trace.js', import.meta.url));
const FIXTURES = fileURLToPath(new URL('../../packages/trace/fixtures/', import.meta.url));

interface Run { code: number | null; signal: NodeJS.Signals | null; stdout: Buffer; stderr: string; ms: number }

/** Runs drover-trace on input; a run that takes longer than `timeout` ms is killed (and fails its check). */
function trace(args: string[], input: Buffer, timeout = 20_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [TRACE_BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'], timeout, killSignal: 'SIGKILL' });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.stdin.on('error', () => {});
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8'), ms: performance.now() - t0 }));
    child.stdin.end(input);
  });
}

// --- seeds ---------------------------------------------------------------------------------------

const seeds: Buffer[] = [];
const e = new BuildEnv();
after(() => e.cleanup());

before(async () => {
  for (const f of ['nix-2.8-json.trace', 'nix-2.8-json-keep-going.trace']) seeds.push(fs.readFileSync(FIXTURES + f));
  // drover-build's own trace: successes, a builder failure with coloured output, a dependency, a platform.
  const base = await e.drv({ name: 'fz-base', cmd: 'echo base; echo > $out' });
  const bad = await e.drv({ name: 'fz-bad', inputs: [base], cmd: 'echo oops; printf "\\033[31mred\\033[0m\\n"; exit 3' });
  const above = await e.drv({ name: 'fz-above', inputs: [bad], cmd: 'echo > $out' });
  const elsewhere = await e.drv({ name: 'fz-elsewhere', cmd: 'echo > $out', system: 'mips64-plan9' });
  const r = e.build(['-k', '--print-build-trace', above.drv, elsewhere.drv]);
  assert.equal(r.code, 100, r.stderr);
  seeds.push(Buffer.from(r.stderr));
  // Guix: build-log chunks whose bytes split characters, downloads, a failure.
  const chunk = (pid: number, data: Buffer): Buffer => Buffer.concat([Buffer.from(`@ build-log ${pid} ${data.length}\n`), data]);
  const g1 = `/gnu/store/${'a'.repeat(32)}-hello-2.12.drv`;
  const g2 = `/gnu/store/${'b'.repeat(32)}-broken-1.0.drv`;
  seeds.push(Buffer.concat([
    Buffer.from(`@ build-started ${g1} - x86_64-linux /var/log/guix/drvs/aa/${'a'.repeat(30)}-hello-2.12.drv.gz 4242\n`),
    Buffer.from(`@ build-started ${g2} - x86_64-linux /var/log/guix/drvs/bb/${'b'.repeat(30)}-broken-1.0.drv.gz 4243\n`),
    chunk(4242, Buffer.from('checking for gcc... gcc\nh\xc3', 'latin1')), chunk(4242, Buffer.from('\xa9llo\n', 'latin1')),
    chunk(4243, Buffer.from('broken.c:1: error\n\x1b[31mred\x1b[0m\n')),
    Buffer.from('@ download-started /gnu/store/x-foo https://ci.example/nar/foo 1000\n@ download-succeeded /gnu/store/x-foo https://ci.example/nar/foo 1000\n'),
    Buffer.from(`@ build-failed ${g2} - 1 builder failed with exit code 1\n@ build-succeeded ${g1} -\n`),
  ]));
});

// --- mutations -----------------------------------------------------------------------------------

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

const HOSTILE_NUMBERS = ['0', '-1', '18446744073709551616', '1e400', '99999999999999999999', '1.5', '"7"', 'null', '[]', '{}'];
const HOSTILE_BYTES = ['\x00', '\x1b[2J', '\x1b]0;pwned\x07', '\r', '\xff', '\xc3', '\x1b', '\\u001b[2J', '\\u0000', '\\ud800', '\t\t\t'];

function lines(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let p = 0; p < buf.length;) {
    const nl = buf.indexOf(10, p);
    const end = nl < 0 ? buf.length : nl + 1;
    out.push(buf.subarray(p, end));
    p = end;
  }
  return out;
}

function mutate(seed: Buffer, rand: () => number): Buffer {
  const ri = (n: number): number => Math.floor(rand() * n);
  const pick = <T>(a: T[]): T => a[ri(a.length)]!;
  const ls = lines(seed);
  for (let k = 1 + ri(5); k > 0 && ls.length > 0; k--) {
    const i = ri(ls.length);
    const l = ls[i]!;
    const text = l.toString('latin1');
    switch (ri(10)) {
      case 0: ls.splice(i, 1); break; // a line lost
      case 1: ls.splice(i, 0, l); break; // repeated: ids reused, builds started twice
      case 2: ls.splice(ri(i + 1), 0, ...ls.splice(i, 1)); break; // earlier: a stop before its start
      case 3: ls[i] = l.subarray(0, ri(l.length + 1)); break; // cut off
      case 4: { // a number made hostile
        const nums = [...text.matchAll(/-?\d+/g)];
        if (nums.length > 0) {
          const m = pick(nums);
          ls[i] = Buffer.from(text.slice(0, m.index) + pick(HOSTILE_NUMBERS) + text.slice(m.index! + m[0].length), 'latin1');
        }
        break;
      }
      case 5: { const p = ri(l.length + 1); ls[i] = Buffer.concat([l.subarray(0, p), Buffer.from(pick(HOSTILE_BYTES), 'latin1'), l.subarray(p)]); break; }
      case 6: if (l.length > 0) { const b = Buffer.from(l); b[ri(b.length)]! ^= 1 << ri(8); ls[i] = b; } break; // a bit flipped
      case 7: { const p = ri(l.length + 1); ls[i] = Buffer.concat([l.subarray(0, p), Buffer.alloc(pick([3000, 70_000, 1 << 20]), pick(['x', "'", '[', 'dependency '])), l.subarray(p)]); break; }
      case 8: { const depth = pick([10, 100_000]); ls[i] = Buffer.from(text.replace(/"fields":\[/, `"fields":[${'['.repeat(depth)}${']'.repeat(depth)},`).replace(/"id":\d+/, (m) => (rand() < 0.5 ? `"id":${'['.repeat(depth)}${']'.repeat(depth)}` : m)), 'latin1'); break; }
      case 9: ls[i] = Buffer.from(text.replace(/"(fields|id|type|level|msg)":/, (_m, k: string) => `"${k}":${pick(['"x"', '{}', '1.5', 'null', '[[1]]'])},"_${k}":`), 'latin1'); break; // a wrong type
    }
  }
  return Buffer.concat(ls);
}

// --- invariants ----------------------------------------------------------------------------------

const FIELDS: Record<string, string[]> = {
  'build-queued': ['drv'], 'build-started': ['drv', 'out', 'system', 'log', 'pid', 'host'], 'build-remote': ['drv', 'host'],
  'build-remote-done': ['drv', 'host'], 'build-phase': ['drv', 'phase'], 'build-succeeded': ['drv', 'out', 'duration'],
  'build-failed': ['drv', 'status', 'message', 'duration', 'cause'], 'build-log': ['drv', 'pid', 'text'],
  'download-started': ['path', 'url', 'done', 'expected'], 'download-progress': ['path', 'url', 'done', 'expected'],
  'download-succeeded': ['path', 'url', 'done', 'expected'], 'download-failed': ['path', 'url', 'done', 'expected'],
  'substitute-started': ['path', 'substituter', 'message'], 'substitute-succeeded': ['path', 'substituter', 'message'],
  'substitute-failed': ['path', 'substituter', 'message'], 'hash-mismatch': ['path', 'algo', 'expected', 'actual'],
  message: ['level', 'text'], progress: ['what', 'done', 'expected', 'running', 'failed'], unknown: ['raw'],
};
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/;

function ended(r: Run, what: string): void {
  assert.equal(r.signal, null, `${what}: killed (a hang) after ${Math.round(r.ms)} ms`);
  assert.ok(r.code === 0 || r.code === 1, `${what}: exit ${r.code}: ${r.stderr.slice(0, 300)}`);
  assert.doesNotMatch(r.stderr, /^\s+at .*:\d+:\d+\)?$/m, `${what}: a stack trace`);
  assert.doesNotMatch(r.stderr, /^drover-trace: error:/m, `${what}: bad input stopped the reading`);
}

/** Checks every format on one input; returns the counts of the final states of its builds. */
async function checkAll(input: Buffer, what: string): Promise<void> {
  const json = await trace(['--format', 'json'], input);
  ended(json, `${what} json`);
  const text = json.stdout.toString('utf8');
  assert.ok(Buffer.from(text).equals(json.stdout), `${what} json: stdout is not UTF-8`);
  assert.ok(text === '' || text.endsWith('\n'), `${what} json: last line unterminated`);
  const state = new Map<string, string>();
  for (const [n, line] of text.split('\n').slice(0, -1).entries()) {
    let ev: Record<string, unknown>;
    try {
      ev = JSON.parse(line) as Record<string, unknown>;
    } catch (err) {
      assert.fail(`${what} json: line ${n + 1} is no JSON (${(err as Error).message}): ${line.slice(0, 200)}`);
    }
    const type = ev['type'] as string;
    assert.ok(FIELDS[type], `${what} json: type ${type}`);
    const head = 'activity' in ev ? ['type', 'time', 'source', 'activity'] : ['type', 'time', 'source'];
    assert.deepEqual(Object.keys(ev), [...head, ...FIELDS[type]!], `${what} json: keys of ${line.slice(0, 200)}`);
    if ('activity' in ev) assert.match(ev['activity'] as string, /^-?\d+$/, `${what} json: activity of ${line.slice(0, 200)}`);
    const drv = ev['drv'] as string;
    if (type === 'build-queued' && !state.has(drv)) state.set(drv, 'queued');
    if ((type === 'build-remote' || (type === 'build-phase' && drv !== null)) && !state.has(drv)) state.set(drv, 'queued');
    if (type === 'build-started') state.set(drv, 'running');
    if (type === 'build-succeeded') state.set(drv, 'succeeded');
    if (type === 'build-failed') state.set(drv, 'failed');
  }
  const count = (s: string): number => [...state.values()].filter((x) => x === s).length;
  assert.equal(count('running'), 0, `${what}: a build still running when the input ended`);
  assert.equal(json.code, count('failed') > 0 ? 1 : 0, `${what}: exit status and failures disagree`);
  // Lines that are no trace lines go to stderr in json: the human outputs may carry them as they came.
  const passed = new Set(json.stderr.split('\n').filter((l) => !l.startsWith('drover-trace: warning: ')));

  for (const args of [['--format', 'summary'], ['--format', 'plain'], ['--format', 'plain', '--logs'], ['--format', 'tty']]) {
    const tag = `${what} ${args.slice(1).join(' ')}`;
    const r = await trace(args, input);
    ended(r, tag);
    assert.equal(r.code, json.code, `${tag}: exit status differs from json's`);
    const out = r.stdout.toString('utf8').replace(/\r(\x1b\[\d+A)?\x1b\[J/g, '\n');
    for (const line of out.split('\n')) {
      if (!CONTROL.test(line)) continue;
      // A passed-through line as it came, or the input's unterminated last line with what follows it.
      if (args[1] !== 'summary' && (passed.has(line) || [...passed].some((p) => p !== '' && line.startsWith(p)))) continue;
      assert.fail(`${tag}: a control character reaches the terminal: ${JSON.stringify(line.slice(0, 200))}`);
    }
    if (args[1] === 'summary') {
      const m = /^Totals: (\d+) builds?: (\d+) succeeded, (\d+) failed(?:, (\d+) unfinished)?(?:, (\d+) not started)?/m.exec(out);
      assert.ok(m, `${tag}: no totals line`);
      assert.deepEqual(m.slice(1).map((x) => Number(x ?? 0)), [state.size, count('succeeded'), count('failed'), 0, count('queued')], `${tag}: totals`);
    }
  }
}

test('the unmutated seeds read cleanly in every format', async () => {
  for (const [i, seed] of seeds.entries()) await checkAll(seed, `seed ${i}`);
});

test('mutated real traces: no crash, hang, invalid JSON Lines, escape to the terminal or wrong totals', async () => {
  const rand = rng(20240611);
  for (let n = 0; n < 24; n++) {
    const seedIndex = n % seeds.length;
    const input = mutate(seeds[seedIndex]!, rand);
    await checkAll(input, `mutant ${n} of seed ${seedIndex}`);
  }
});

test('the reproducers the campaign found, through the real binary', async () => {
  const drv = `/nix/store/${'f'.repeat(32)}-repro-1.drv`;
  const out = `/nix/store/${'g'.repeat(32)}-repro-1`;
  const start = `@nix {"action":"start","fields":["${drv}"],"id":7,"level":3,"parent":0,"text":"building","type":105}\n`;
  const cases: [string, Buffer][] = [
    // Progress fields 200000 arrays deep: "cannot read -: Maximum call stack size exceeded", exit 2.
    ['deep fields', Buffer.from(`${start}@nix {"action":"result","fields":[${'['.repeat(200_000)}${']'.repeat(200_000)}],"id":7,"type":105}\n@nix {"action":"stop","id":7}\n`)],
    // An id so nested: the same.
    ['deep id', Buffer.from(`${start}@nix {"action":"stop","id":${'['.repeat(200_000)}${']'.repeat(200_000)}}\n@nix {"action":"stop","id":7}\n`)],
    // A 2 MB failure message of "dependency ": a quadratic regular expression, hours.
    ['dependency', Buffer.from(`@ build-failed ${drv} ${out} 1 ${'dependency '.repeat(200_000)}\n`)],
    // Escape sequences in a build's log, shown as the tail of its failure and with --logs.
    ['escapes', Buffer.from(`${start}@nix {"action":"result","fields":["\\u001b[2J\\u001b]0;pwned\\u0007x\\bcleared"],"id":7,"type":101}\n@nix {"action":"msg","level":0,"msg":"builder for '${drv}' failed with exit code 1"}\n`)],
    // An id that is no integer.
    ['id types', Buffer.from(`${start.replace('"id":7', '"id":"7"')}${start.replace('"id":7', '"id":1.5')}`)],
  ];
  for (const [what, input] of cases) await checkAll(input, what);
});
