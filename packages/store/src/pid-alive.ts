// Whether a process id names a live process: how leftovers of killed drover processes
// (scratch copies and temp files named after their pid) are told from a live one's.

/** True when `pid` is this process or another live one (one we may not signal counts as live). */
export function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
