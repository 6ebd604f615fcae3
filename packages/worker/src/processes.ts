// Small facts about child processes: exit statuses as Nix reports them, group kills.
import os from 'node:os';

export interface ExitInfo {
  /** Exit code, or 128 + signal number when killed by a signal. */
  status: number;
  /** `exit code 3`, `signal SIGKILL`, or why it never ran. */
  description: string;
  /**
   * The builder was lost with drover's own launcher (killed from outside): a system error,
   * not a failure of the build, so neither exit 100 nor a cached failure.
   */
  launcherDied?: boolean;
}

export function statusOf(code: number | null, signal: NodeJS.Signals | null): ExitInfo {
  if (signal) return { status: 128 + (os.constants.signals[signal] ?? 0), description: `signal ${signal}` };
  return { status: code ?? 0, description: `exit code ${code ?? 0}` };
}

/** Signals a whole process group; a group that is already gone is not an error. */
export function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    /* ESRCH: nothing left */
  }
}
