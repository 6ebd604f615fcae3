// Tests of the remote commands, run by a local shell against fake remote tools, and of the probe's parser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { parseMachines } from './machines.js';
import { droverEngine, nixEngine, parseProbeOutput, REMOTE_EXIT, RemoteProtocolError } from './remote-engine.js';
import { PrefixStripper } from './log-prefix.js';

/** A fake remote: a bin dir with drover-build/drover-store scripts, used through ?remote-program=. */
function fakeRemote(build: string, store = 'echo "exported $*"'): { dir: string; machine: ReturnType<typeof parseMachines>[0] } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-fake-remote-'));
  fs.writeFileSync(path.join(dir, 'drover-build'), `#!/bin/sh\n${build}\n`, { mode: 0o755 });
  fs.writeFileSync(path.join(dir, 'drover-store'), `#!/bin/sh\n${store}\n`, { mode: 0o755 });
  return { dir, machine: parseMachines(`ssh://h?remote-program=${dir}`)[0]! };
}

/** Runs a remote command string as sshd would: the login shell gets it with -c. */
function runRemote(cmd: string, opts: { closeStdinAfterMs?: number; path?: string } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('/bin/bash', ['-c', cmd], { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: opts.path ?? '/usr/bin:/bin', HOME: os.tmpdir() } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    if (opts.closeStdinAfterMs !== undefined) setTimeout(() => child.stdin.end(), opts.closeStdinAfterMs);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const OUT = '/s/store/0123456789abcdfghijklmnpqrsvwxyz-out';
const DRV = '/s/store/0123456789abcdfghijklmnpqrsvwxyz-x.drv';

test('build command: success exports the outputs on stdout, the log on stderr', async () => {
  const f = fakeRemote('echo "log line" >&2; echo /ignored-stdout');
  try {
    const r = await runRemote(droverEngine(f.machine).buildCommand(DRV, [OUT, `${OUT}'quote`], 0), { closeStdinAfterMs: 5000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `exported export ${OUT} ${OUT}'quote\n`);
    assert.equal(r.stderr, 'log line\n');
  } finally {
    fs.rmSync(f.dir, { recursive: true, force: true });
  }
});

test('build command: exit codes 100-104 pass through, other failures become 90, export failures 91', async () => {
  for (const [build, store, want] of [
    ['exit 100', 'true', 100],
    ['exit 101', 'true', 101],
    ['exit 1', 'true', REMOTE_EXIT.buildToolFailed],
    ['true', 'exit 1', REMOTE_EXIT.exportFailed],
  ] as const) {
    const f = fakeRemote(build, store);
    try {
      const r = await runRemote(droverEngine(f.machine).buildCommand(DRV, [OUT], 0), { closeStdinAfterMs: 5000 });
      assert.equal(r.code, want, `${build} / ${store}: ${r.stderr}`);
    } finally {
      fs.rmSync(f.dir, { recursive: true, force: true });
    }
  }
});

test('build command: the build is killed when stdin closes (the hook or the connection is gone)', async () => {
  const marker = path.join(os.tmpdir(), `drover-watchdog-${process.pid}-${Date.now()}`);
  const f = fakeRemote(`echo $$ > ${marker}; exec sleep 60`);
  try {
    const t0 = Date.now();
    const r = await runRemote(droverEngine(f.machine).buildCommand(DRV, [OUT], 30), { closeStdinAfterMs: 500 });
    assert.ok(Date.now() - t0 < 5000, 'the command ended soon after stdin closed');
    assert.equal(r.code, REMOTE_EXIT.buildToolFailed);
    const pid = Number(fs.readFileSync(marker, 'utf8'));
    assert.throws(() => process.kill(pid, 0), /ESRCH/, 'the builder is gone');
  } finally {
    fs.rmSync(f.dir, { recursive: true, force: true });
    fs.rmSync(marker, { force: true });
  }
});

test('a missing remote tool is reported by name', async () => {
  // A PATH with a shell and nothing else.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-bare-path-'));
  try {
    fs.symlinkSync('/bin/sh', path.join(dir, 'sh'));
    const m = parseMachines('ssh://h?remote-program=/nonexistent/bin')[0]!;
    const r = await runRemote(nixEngine(m).importCommand(), { path: dir });
    assert.equal(r.code, REMOTE_EXIT.toolMissing);
    assert.match(r.stderr, /nix-store is not on the remote PATH \(\/nonexistent\/bin:/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('probe output: key=value head, then missing paths', () => {
  const { info, missing } = parseProbeOutput('store-dir=/s/store\ntool=/bin/drover-store\nnode=v20\nfree-kb=1024\n--\n/s/store/a\n', '/s/store', 'ssh://h');
  assert.deepEqual(info, { storeDir: '/s/store', tool: '/bin/drover-store', builder: undefined, version: '', node: 'v20', freeKb: 1024 });
  assert.deepEqual(missing, ['/s/store/a']);
});

test('probe output from a hostile or chatty remote is refused, naming what came', () => {
  assert.throws(() => parseProbeOutput('', '/s', 'ssh://h'), (e: unknown) => e instanceof RemoteProtocolError && /answered the probe with nothing/.test(e.message));
  assert.throws(() => parseProbeOutput('Welcome to host!\nstore-dir=/s\n--\n', '/s', 'ssh://h'), /line 'Welcome to host!' instead of key=value .*startup files/);
  assert.throws(() => parseProbeOutput('store-dir=/s\n--\n/etc/passwd\n', '/s', 'ssh://h'), /'\/etc\/passwd', which is not a store path in \/s/);
  assert.throws(() => parseProbeOutput('store-dir=/s\n--\n/s/a b\n', '/s', 'ssh://h'), /not a store path/);
  assert.throws(() => parseProbeOutput('\x00\x01binary', '/s', 'ssh://h'), /'\?\?binary'/);
});

test('PrefixStripper removes the NAME> prefix at line starts only, across chunk boundaries', () => {
  const s = new PrefixStripper('hello> ');
  const parts = ['hel', 'lo> a\nhello> b', ' hello> c\n', 'hello', '> \n', 'hellx> d\n'].map((c) => s.push(Buffer.from(c)).toString());
  assert.equal(parts.join(''), 'a\nb hello> c\n\nhellx> d\n');
});
