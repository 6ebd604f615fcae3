// Tests that run the real drover-trace binary: formats, exit codes, history, bad input, signals.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { EVENT_TYPES, type TraceEvent } from './events.js';
import { BIN, fixture, FIXTURES, runBin } from './testing.js';

const d = (n: string): string => `/nix/store/ffffffffffffffffffffffffffffffff-${n}.drv`;
const o = (n: string): string => `/nix/store/gggggggggggggggggggggggggggggggg-${n}`;
const ok = [
  'these 2 derivations will be built:', `  ${d('a-1')}`, `  ${d('b-2')}`,
  `@ build-started ${d('a-1')} ${o('a-1')} x86_64-linux /l/a`,
  'a line that is no trace line',
  `@ build-succeeded ${d('a-1')} ${o('a-1')}`,
  `@ build-started ${d('b-2')} ${o('b-2')} x86_64-linux /l/b`,
  `@ build-remote ${d('b-2')} builder1`,
  `@ build-succeeded ${d('b-2')} ${o('b-2')}`,
].join('\n') + '\n';

test('json: one event a line with stable fields; passthrough lines go to stderr; exit 0', async () => {
  const r = await runBin(['--format', 'json'], ok);
  assert.equal(r.status, 0, r.stderr);
  const events = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as TraceEvent);
  assert.deepEqual(events.map((e) => e.type), ['build-queued', 'build-queued', 'build-started', 'build-succeeded', 'build-started', 'build-remote', 'build-succeeded']);
  for (const e of events) {
    assert.ok(EVENT_TYPES.includes(e.type));
    assert.deepEqual(Object.keys(e).slice(0, 3), ['type', 'time', 'source']);
  }
  assert.deepEqual(Object.keys(events[2]!), ['type', 'time', 'source', 'drv', 'out', 'system', 'log', 'pid', 'host']);
  assert.deepEqual(Object.keys(events[3]!), ['type', 'time', 'source', 'drv', 'out', 'duration']);
  assert.equal(r.stderr, `these 2 derivations will be built:\n  ${d('a-1')}\n  ${d('b-2')}\na line that is no trace line\n`);
});

test('json on real Nix output: exit 1 because a build failed', async () => {
  const r = await runBin(['--format', 'json', FIXTURES + 'nix-2.8-json-keep-going.trace']);
  assert.equal(r.status, 1);
  const failed = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as TraceEvent).filter((e) => e.type === 'build-failed');
  assert.equal(failed.length, 4);
  assert.deepEqual(Object.keys(failed[0]!), ['type', 'time', 'source', 'drv', 'status', 'message', 'duration', 'cause']);
});

test('plain: one readable line per state change, passthrough kept in place, totals at the end', async () => {
  const r = await runBin([], ok);
  assert.equal(r.status, 0);
  const lines = r.stdout.split('\n').map((l) => l.replace(/^\[ *[\d.]+s\] /, ''));
  assert.deepEqual(lines, [
    'these 2 derivations will be built:', `  ${d('a-1')}`, `  ${d('b-2')}`,
    'queued 2 derivations',
    'start   a-1',
    'a line that is no trace line',
    'ok      a-1 in 0.0s [1/2]',
    'start   b-2',
    'remote  b-2 on builder1',
    'ok      b-2 in 0.0s [2/2]',
    'done: 2 built, 0 failed in 0.0s',
    '',
  ]);
});

test('plain on real Nix output names each failure with its log tail', async () => {
  const r = await runBin(['--format', 'plain'], fixture('nix-2.8-json-keep-going.trace'));
  assert.equal(r.status, 1);
  assert.match(r.stdout, /FAILED {2}broken-0\.3 after [\d.]+s: builder failed with exit code 3 \[\d\/7, 2 failed\]\n {10}\| compiling broken\.\.\.\n {10}\| broken\.c:1: error: expected ';'\n {10}\| make: \*\*\* \[all\] Error 1\n/);
  assert.match(r.stdout, /FAILED {2}bad-hash-1 after [\d.]+s: hash mismatch in fixed-output derivation '.*bad-hash-1\.drv': specified: sha256-A+= got: sha256-9uN5\S+ \[1\/7, 1 failed\]\n/);
  assert.match(r.stdout, /FAILED {2}top-1: a dependency failed/);
  assert.match(r.stdout, /FAILED: 3 built, 4 failed in/);
});

test('summary: every build, failures with the tail of the log file the trace names, slowest, totals', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'drover-trace-cli-'));
  try {
    // Where drover-build and Nix put a derivation's log: drvs/XX/REST of its file name.
    mkdirSync(join(dir, 'drvs', 'ff'), { recursive: true });
    const log = join(dir, 'drvs', 'ff', d('broken-2').split('/').pop()!.slice(2));
    writeFileSync(log, Array.from({ length: 30 }, (_, i) => `log line ${i + 1}`).join('\n') + '\n');
    const trace = [
      `@ build-started ${d('good-1')} ${o('good-1')} x86_64-linux ${join(dir, 'good.log')}`,
      `@ build-started ${d('broken-2')} ${o('broken-2')} x86_64-linux ${log}`,
      `@ build-remote ${d('broken-2')} builder7`,
      `@ build-succeeded ${d('good-1')} ${o('good-1')}`,
      `@ build-failed ${d('broken-2')} ${o('broken-2')} 100 builder for '${d('broken-2')}' failed with exit code 2`,
    ].join('\n') + '\n';
    const r = await runBin(['--format', 'summary'], trace);
    assert.equal(r.status, 1);
    const out = r.stdout;
    assert.match(out, /^Builds \(2\):\n/);
    assert.match(out, /\n {2}FAILED +[\d.]+s {2}builder7 {2}broken-2 {2,}builder failed with exit code 2\n/);
    assert.match(out, /\n {2}ok +[\d.]+s {2}local +good-1\n/);
    assert.match(out, new RegExp(`Failures \\(1\\):\\n  broken-2: builder failed with exit code 2\\n    ${d('broken-2')}\\n    last 10 lines of ${log}:\\n    \\| log line 21\\n`));
    assert.match(out, /    \| log line 30\n\nSlowest:\n/);
    assert.match(out, /\nTotals: 2 builds: 1 succeeded, 1 failed; build time [\d.]+s, wall time [\d.]+s\n$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a log file the trace names is read only when it is that build's log: never another file, never a FIFO", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'drover-trace-cli-'));
  try {
    const secret = join(dir, 'id_rsa');
    writeFileSync(secret, 'PRIVATE KEY\n');
    const fifo = join(dir, 'drvs', 'ff', d('fifo-1').split('/').pop()!.slice(2));
    mkdirSync(join(dir, 'drvs', 'ff'), { recursive: true });
    execFileSync('mkfifo', [fifo]);
    // A builder's output can hold lines that look like trace lines, naming any file as a log.
    const trace = [
      `@ build-started ${d('evil-1')} ${o('evil-1')} x86_64-linux ${secret}`,
      `@ build-failed ${d('evil-1')} ${o('evil-1')} 1 builder failed`,
      `@ build-started ${d('fifo-1')} ${o('fifo-1')} x86_64-linux ${fifo}`,
      `@ build-failed ${d('fifo-1')} ${o('fifo-1')} 1 builder failed`,
    ].join('\n') + '\n';
    for (const format of ['plain', 'summary']) {
      // Killed after 10 s: a run that waits for a writer of the FIFO fails with status null.
      const r = await runBin(['--format', format], trace, {}, 10_000);
      assert.equal(r.status, 1, `${format}: ${r.stderr}`);
      assert.doesNotMatch(r.stdout, /PRIVATE KEY/);
      assert.match(r.stdout, /evil-1/);
      assert.match(r.stdout, /fifo-1/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("--history: a file that cannot take this run's durations is named, exit 1", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'drover-trace-hist-'));
  try {
    const history = join(dir, 'history.sqlite');
    const first = await runBin(['--history', history], `@ build-started ${d('a-1')} ${o('a-1')} s /l\n@ build-succeeded ${d('a-1')} ${o('a-1')}\n`);
    assert.equal(first.status, 0, first.stderr);
    // The file opens and reads, but refuses the new rows (as a full disk or a lock held too long would).
    const { default: Database } = await import('better-sqlite3');
    const db = new Database(history);
    db.exec("CREATE TRIGGER refuse BEFORE INSERT ON builds BEGIN SELECT RAISE(FAIL, 'refused'); END");
    db.close();
    const r = await runBin(['--history', history], `@ build-started ${d('a-1')} ${o('a-1')} s /l\n@ build-succeeded ${d('a-1')} ${o('a-1')}\n`);
    assert.equal(r.status, 1);
    assert.match(r.stdout, /done: 1 built, 0 failed/);
    assert.equal(r.stderr, `drover-trace: error: cannot record build durations in history file ${history}: refused\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--history: durations of earlier runs say what a build usually takes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'drover-trace-hist-'));
  try {
    const history = join(dir, 'history.sqlite');
    // A live, slow trace so that the build has a real duration.
    const slow = (): Promise<{ status: number | null; stdout: string }> => new Promise((resolve) => {
      const child = spawn(process.execPath, [BIN, '--format', 'plain', '--history', history]);
      let stdout = '';
      let sent = false;
      child.stdout.on('data', (x: Buffer) => {
        stdout += x.toString();
        // The build ends 300 ms after drover-trace has shown that it started.
        if (!sent && stdout.includes('start')) {
          sent = true;
          setTimeout(() => child.stdin.end(`@ build-succeeded ${d('hello-2.12')} ${o('hello-2.12')}\n`), 300);
        }
      });
      child.on('close', (status) => resolve({ status, stdout }));
      child.stdin.write(`@ build-started ${d('hello-2.12')} ${o('hello-2.12')} x86_64-linux /l\n`);
    });
    const first = await slow();
    assert.equal(first.status, 0);
    assert.doesNotMatch(first.stdout, /usually/);
    const second = await slow();
    assert.match(second.stdout, /start {3}hello-2\.12 \(usually takes 0\.[3-9]s\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('usage errors exit 2 with drover-trace: error:', async () => {
  const bad = await runBin(['--format', 'xml']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^drover-trace: error: .*xml/);
  const missing = await runBin(['/nonexistent/trace.log']);
  assert.equal(missing.status, 2);
  assert.equal(missing.stderr, 'drover-trace: error: cannot read /nonexistent/trace.log: no such file\n');
  const root = openSync('/', 'r');
  const dirIn = spawnSync(process.execPath, [BIN], { stdio: [root, 'pipe', 'pipe'] });
  closeSync(root);
  assert.equal(dirIn.status, 2, 'drover-trace < /');
  assert.equal(dirIn.stderr.toString(), 'drover-trace: error: cannot read - (standard input): is a directory\n');
  assert.equal(dirIn.stdout.toString(), '');
  const flag = await runBin(['--frobnicate']);
  assert.equal(flag.status, 2);
  assert.match(flag.stderr, /^drover-trace: error: Unknown argument: frobnicate/);
  // An option without its value, or given twice, is a mistake, never silently dropped.
  for (const [args, why] of [
    [['--history'], /history/],
    [['--history='], /--history needs a FILE/],
    [['--format'], /format/],
    [['--history', 'a.sqlite', '--history', 'b.sqlite'], /--history given more than once/],
    [['--format=json', '--format=plain'], /--format given more than once/],
    [['-f', 'json', '-f', 'plain'], /--format given more than once/],
  ] as const) {
    const r = await runBin([...args]);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^drover-trace: error: .*${why.source}`), args.join(' '));
    assert.equal(r.stdout, '');
  }
});

test('bad input never kills it: warnings on stderr, lines passed through, exit by the builds', async () => {
  const input = Buffer.concat([
    Buffer.from('@nix {not json\n\x00\x01\xff\xfe\n', 'latin1'),
    Buffer.from(`@ build-started ${d('x')} ${o('x')} s /l\n@ build-failed ${d('x')} ${o('x')} 1 no\n@ build-log 1 50\nshort`),
  ]);
  const r = await runBin(['--format', 'plain'], input);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^drover-trace: warning: -:1: invalid JSON after @nix/m);
  assert.match(r.stderr, /^drover-trace: warning: -:5: truncated @ build-log chunk: 5 of 50 bytes/m);
  assert.ok(r.stdoutBytes.includes(Buffer.from('@nix {not json\n\x00\x01\xff\xfe\n', 'latin1')));
});

test('a reader that goes away (| head) ends it quietly', async () => {
  const many = Array.from({ length: 20000 }, (_, i) => `@ build-started ${d('p' + i)} ${o('p' + i)} s /l\n@ build-succeeded ${d('p' + i)} ${o('p' + i)}\n`).join('');
  const r = await new Promise<{ status: number | null; stderr: string; out: string }>((resolve) => {
    const child = spawn('sh', ['-c', `node "${BIN}" --format json | head -n 2`]);
    let out = '';
    let stderr = '';
    child.stdout.on('data', (x: Buffer) => (out += x.toString()));
    child.stderr.on('data', (x: Buffer) => (stderr += x.toString()));
    child.stdin.on('error', () => {});
    child.on('close', (status) => resolve({ status, stderr, out }));
    child.stdin.end(many);
  });
  assert.equal(r.out.split('\n').length, 3);
  assert.equal(r.stderr, '');
});

test('plain on a Guix trace: the tail of a failed build comes from its log chunks', async () => {
  const drv = '/gnu/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-broken-1.drv';
  const lines = Array.from({ length: 40 }, (_, i) => `step ${i + 1} ✓`).join('\n') + '\n';
  const data = Buffer.from(lines);
  const cut = data.indexOf('step 35') + 2;
  const chunk = (b: Buffer): Buffer => Buffer.concat([Buffer.from(`@ build-log 77 ${b.length}\n`), b]);
  const input = Buffer.concat([
    Buffer.from(`@ build-started ${drv} - x86_64-linux /var/log/guix/drvs/aa/broken.drv.gz 77\n`),
    chunk(data.subarray(0, cut)), chunk(data.subarray(cut)),
    Buffer.from(`@ build-failed ${drv} - 1 builder for \`${drv}' failed with exit code 1\n`),
  ]);
  for (const format of ['plain', 'summary']) {
    const r = await runBin(['--format', format], input);
    assert.equal(r.status, 1);
    const shown = r.stdout.split('\n').filter((l) => /\| step/.test(l)).map((l) => l.replace(/^.*\| /, ''));
    assert.deepEqual(shown, Array.from({ length: 10 }, (_, i) => `step ${i + 31} ✓`), `${format}:\n${r.stdout}`);
  }
});

test('Ctrl-C stops the reading but still shows what was seen, then exits 130', async () => {
  const r = await new Promise<{ status: number | null; stdout: string }>((resolve) => {
    const child = spawn(process.execPath, [BIN, '--format', 'plain']);
    let stdout = '';
    let killed = false;
    child.stdout.on('data', (x: Buffer) => {
      stdout += x.toString();
      if (!killed && stdout.includes('start')) {
        killed = true;
        child.kill('SIGINT');
      }
    });
    child.on('close', (status) => resolve({ status, stdout }));
    // stdin stays open: only the signal can end this run.
    child.stdin.write(`@ build-started ${d('a-1')} ${o('a-1')} x86_64-linux /l\n`);
  });
  assert.equal(r.status, 130);
  assert.match(r.stdout, /FAILED {2}a-1 after [\d.]+s: interrupted/);
  assert.match(r.stdout, /FAILED: 0 built, 1 failed in/);
});

test('-h is --help, and the usage names every option', async () => {
  const short = await runBin(['-h']);
  const long = await runBin(['--help']);
  assert.equal(short.status, 0, short.stderr);
  assert.equal(short.stdout, long.stdout);
  assert.match(short.stdout.split('\n')[0]!, /^drover-trace \[--format tty\|plain\|json\|summary\] \[--history FILE\] \[--logs\] \[FILE\.\.\.\|-\]$/);
  for (const option of ['--format', '--history', '--logs', '--help']) assert.ok(short.stdout.includes(option), option);
});

/** Runs drover-trace on a file and closes its stdout after the first piece of output (`| head -1`). */
function readOnlyTheStart(args: string[]): Promise<{ status: number | null; stderr: string; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args]);
    let out = '';
    let stderr = '';
    child.stdout.once('data', (x: Buffer) => {
      out = x.toString();
      child.stdout.destroy();
    });
    child.stderr.on('data', (x: Buffer) => (stderr += x.toString()));
    child.on('close', (status) => resolve({ status, stderr, out }));
  });
}

test('a reader that goes away mid-input: no warnings about the unread rest, no made-up failures', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'drover-trace-head-'));
  try {
    // A build that is still running, then far more finished builds than one read and a pipe hold;
    // the reads cut @nix lines in the middle.
    const build = (id: number, n: string): string =>
      `@nix {"action":"start","fields":["${d(n)}","",1,1],"id":${id},"level":3,"parent":0,"text":"building '${d(n)}'","type":105}\n`;
    const many = Array.from({ length: 40000 }, (_, i) => build(i + 10, `p${i}`) + `@nix {"action":"stop","id":${i + 10}}\n`).join('');
    const quiet = join(dir, 'running.trace');
    writeFileSync(quiet, build(1, 'long-running') + many);
    const r = await readOnlyTheStart(['--format', 'plain', quiet]);
    assert.match(r.out, /^\[ *[\d.]+s\] start {3}long-running\n/);
    assert.equal(r.stderr, '');
    assert.equal(r.status, 0);
    // A failure the trace did report before the reader went away still counts.
    const failing = join(dir, 'failing.trace');
    writeFileSync(failing, `@ build-started ${d('x')} ${o('x')} s /l\n@ build-failed ${d('x')} ${o('x')} 1 boom\n` + many);
    const f = await readOnlyTheStart(['--format', 'plain', failing]);
    assert.equal(f.stderr, '');
    assert.equal(f.status, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
