// Tests of reading the build log file a trace names: only a derivation's own log, never a FIFO.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isLogOf, readLogTail } from './log-file.js';

const DRV = '/nix/store/ffffffffffffffffffffffffffffffff-broken-2.drv';

test('a log file is one named after its derivation, as Nix, Guix and drover-build name them', () => {
  assert.ok(isLogOf('/nix/var/log/nix/drvs/ff/ffffffffffffffffffffffffffffff-broken-2.drv', DRV));
  assert.ok(isLogOf('/state/drover/log/drvs/ff/ffffffffffffffffffffffffffffff-broken-2.drv', DRV));
  assert.ok(isLogOf('/nix/var/log/nix/drvs/ffffffffffffffffffffffffffffffff-broken-2.drv', DRV), 'Nix 0.16: flat');
  assert.ok(!isLogOf('/etc/passwd', DRV));
  assert.ok(!isLogOf('/tmp/build.log', DRV));
  assert.ok(!isLogOf('/nix/var/log/nix/drvs/ff/ffffffffffffffffffffffffffffff-broken-2.drv/../../../../../../etc/shadow', DRV));
  assert.ok(!isLogOf('/nix/var/log/nix/drvs/ff/ffffffffffffffffffffffffffffff-other.drv', DRV));
  // A "derivation" that is no .drv cannot name any file as its log.
  assert.ok(!isLogOf('/root/.ssh/id_rsa', '/nix/store/.sshid_rsa'));
  assert.ok(!isLogOf('/root/.ssh/id_rsa', '/x/id_rsa'));
});

test('readLogTail: the last lines of the log; null for a file that is no log of the build, a symlink, a FIFO, a directory', () => {
  const dir = mkdtempSync(join(tmpdir(), 'drover-trace-logfile-'));
  try {
    mkdirSync(join(dir, 'drvs', 'ff'), { recursive: true });
    const log = join(dir, 'drvs', 'ff', 'ffffffffffffffffffffffffffffff-broken-2.drv');
    writeFileSync(log, Array.from({ length: 30 }, (_, i) => `line ${i + 1}`).join('\n') + '\n');
    assert.deepEqual(readLogTail(log, DRV, 3), ['line 28', 'line 29', 'line 30']);

    const secret = join(dir, 'secret');
    writeFileSync(secret, 'do not print me\n');
    assert.equal(readLogTail(secret, DRV, 3), null);
    // A symlink named as the log would pass the name check: it is not followed.
    const linkDrv = '/nix/store/ffffffffffffffffffffffffffffffff-evil-1.drv';
    const link = join(dir, 'drvs', 'ff', 'ffffffffffffffffffffffffffffff-evil-1.drv');
    symlinkSync(secret, link);
    assert.equal(readLogTail(link, linkDrv, 3), null);

    // Opening a FIFO for reading waits for a writer: it would hang the whole run.
    const fifoDrv = '/nix/store/ffffffffffffffffffffffffffffffff-fifo-1.drv';
    const fifo = join(dir, 'drvs', 'ff', 'ffffffffffffffffffffffffffffff-fifo-1.drv');
    execFileSync('mkfifo', [fifo]);
    assert.equal(readLogTail(fifo, fifoDrv, 3), null);

    const dirDrv = '/nix/store/ffffffffffffffffffffffffffffffff-dir-1.drv';
    mkdirSync(join(dir, 'drvs', 'ff', 'ffffffffffffffffffffffffffffff-dir-1.drv'));
    assert.equal(readLogTail(join(dir, 'drvs', 'ff', 'ffffffffffffffffffffffffffffff-dir-1.drv'), dirDrv, 3), null);

    assert.equal(readLogTail(join(dir, 'drvs', 'ff', 'ffffffffffffffffffffffffffffff-missing-1.drv'), '/nix/store/ffffffffffffffffffffffffffffffff-missing-1.drv', 3), null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
