// Why a derivation did not get built, and which failures count as permanent (exit 100).
import { DroverError } from '@drover/store';

export type FailureKind =
  /** The builder (or the remote build, hook exit 100) exited non-zero. */
  | 'builder'
  /** max-silent-time or timeout killed it. */
  | 'timeout'
  /** It exited 0 but left an output missing or unusable. */
  | 'output'
  /** A fixed output's hash is not the one the derivation names. */
  | 'hash-mismatch'
  /** The hook failed (not the build): bad reply, died, exit status other than 0 and 100. */
  | 'hook'
  /** Nobody can build it: wrong system or missing features, no hook taking it. */
  | 'unsupported'
  /** --cache-failures remembers it failed before. */
  | 'cached'
  /** Something of drover's own went wrong (I/O, the DB). */
  | 'system';

export interface BuildFailure {
  kind: FailureKind;
  /** The builder's exit status (128+signal when killed), 0 when no builder ran. */
  status: number;
  message: string;
}

/**
 * Nix's rule (0.16's `permanentFailure`): a build that failed is permanent and gives exit
 * 100; a hook or system failure, or a fixed output with another hash, may go away on retry.
 */
export function isPermanent(f: BuildFailure): boolean {
  return f.kind === 'builder' || f.kind === 'timeout' || f.kind === 'output' || f.kind === 'unsupported' || f.kind === 'cached';
}

/** A failure thrown from deep inside a build step, carrying its kind. */
export class BuildStepError extends DroverError {
  constructor(
    readonly kind: FailureKind,
    message: string,
    readonly status = 0,
  ) {
    super(message, 1);
  }
}

export function toFailure(e: unknown): BuildFailure {
  if (e instanceof BuildStepError) return { kind: e.kind, status: e.status, message: e.message };
  return { kind: 'system', status: 0, message: (e as Error)?.message ?? String(e) };
}

/**
 * drover-build's exit status: 0 with no failure; 100 when every failure was permanent, plus
 * 1 when one of them timed out (Nix's 101); 1 otherwise.
 */
export function exitStatusOf(failures: readonly BuildFailure[]): number {
  if (failures.length === 0) return 0;
  if (!failures.every(isPermanent)) return 1;
  return 100 + (failures.some((f) => f.kind === 'timeout') ? 1 : 0);
}
