// The build log file a trace names (`@ build-started … LOGFILE`), read for the tail of a failure.
//
// The name comes from the input, which may be anyone's output (a builder can print a line that
// looks like a trace line), so it is opened only when it is what a build log is: a regular file
// (a FIFO or a device would block or never end), not through a symlink (which could lead
// anywhere), named after its derivation, as Nix, Guix and drover-build name them
// (`…/drvs/XX/REST` for `/…/XXREST.drv`, or Nix 0.16's `…/drvs/XXREST.drv`).
// Anything else, `/etc/passwd` or `../../secret` included, is never read into the output.
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';

/** What is read from the end of a log file: enough for its last lines, however long the file. */
const TAIL_BYTES = 64 * 1024;

/** Whether `log` is named as the log file of `drv` is. */
export function isLogOf(log: string, drv: string): boolean {
  const base = basename(drv);
  if (!base.endsWith('.drv') || base.length < 7) return false;
  const file = resolve(log);
  const name = basename(file);
  if (name === base) return true;
  const shard = basename(dirname(file));
  return shard.length === 2 && shard + name === base;
}

/** The last `lines` lines of the build log `log` of `drv`, or null when it is not one to read. */
export function readLogTail(log: string, drv: string, lines: number): string[] | null {
  if (!isLogOf(log, drv)) return null;
  let fd: number;
  try {
    // Non-blocking: opening a FIFO for reading would otherwise wait for a writer forever.
    // Not through a symlink: the name is checked, and a link so named could lead anywhere.
    fd = openSync(log, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY | constants.O_NOFOLLOW);
  } catch {
    return null;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return null;
    const want = Math.min(st.size, TAIL_BYTES);
    const buf = Buffer.alloc(want);
    const got = readSync(fd, buf, 0, want, st.size - want);
    const all = buf.toString('utf8', 0, got).split('\n');
    if (all[all.length - 1] === '') all.pop();
    return all.slice(-lines);
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}
