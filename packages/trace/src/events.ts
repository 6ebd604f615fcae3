// The event model: every trace dialect is turned into these objects, and every output is made from them.

export type Source = 'drover' | 'nix' | 'guix' | 'nix-json';

/** Why a build failed; `interrupted` and `cancelled` cover builds that Nix stopped or never started. */
export type FailureCause =
  | 'builder'
  | 'timeout'
  | 'hook'
  | 'dependency'
  | 'cached'
  | 'unsupported'
  | 'hash-mismatch'
  | 'interrupted'
  | 'cancelled';

export type MessageLevel = 'error' | 'warn' | 'notice' | 'info' | 'talkative' | 'chatty' | 'debug' | 'vomit';

interface Base {
  time: number;
  source: Source;
  /** Only for source `nix-json`: the activity id as a decimal string, exact beyond 2^53. */
  activity?: string;
}

export interface BuildQueued extends Base { type: 'build-queued'; drv: string }
export interface BuildStarted extends Base {
  type: 'build-started';
  drv: string;
  out: string | null;
  system: string | null;
  log: string | null;
  pid: number | null;
  host: string | null;
}
export interface BuildRemote extends Base { type: 'build-remote'; drv: string; host: string | null }
export interface BuildRemoteDone extends Base { type: 'build-remote-done'; drv: string; host: string | null }
export interface BuildPhase extends Base { type: 'build-phase'; drv: string | null; phase: string }
export interface BuildSucceeded extends Base { type: 'build-succeeded'; drv: string; out: string | null; duration: number | null }
export interface BuildFailed extends Base {
  type: 'build-failed';
  drv: string;
  status: number | null;
  message: string | null;
  duration: number | null;
  cause: FailureCause;
}
export interface BuildLog extends Base { type: 'build-log'; drv: string | null; pid: number | null; text: string }

export type DownloadType = 'download-started' | 'download-progress' | 'download-succeeded' | 'download-failed';
export interface Download extends Base {
  type: DownloadType;
  path: string | null;
  url: string | null;
  done: number | null;
  expected: number | null;
}

export type SubstituteType = 'substitute-started' | 'substitute-succeeded' | 'substitute-failed';
export interface Substitute extends Base {
  type: SubstituteType;
  path: string;
  substituter: string | null;
  message: string | null;
}

export interface HashMismatch extends Base {
  type: 'hash-mismatch';
  path: string;
  algo: string | null;
  expected: string | null;
  actual: string | null;
}

export interface Message extends Base { type: 'message'; level: MessageLevel; text: string }

export interface Progress extends Base {
  type: 'progress';
  /** What is counted: `builds`, `copy-paths`, `downloads`… (Nix's activity type, by name). */
  what: string;
  done: number | null;
  expected: number | null;
  running: number | null;
  failed: number | null;
}

export interface Unknown extends Base { type: 'unknown'; raw: string }

export type TraceEvent =
  | BuildQueued
  | BuildStarted
  | BuildRemote
  | BuildRemoteDone
  | BuildPhase
  | BuildSucceeded
  | BuildFailed
  | BuildLog
  | Download
  | Substitute
  | HashMismatch
  | Message
  | Progress
  | Unknown;

export type EventType = TraceEvent['type'];

export const EVENT_TYPES: readonly EventType[] = [
  'build-queued', 'build-started', 'build-remote', 'build-remote-done', 'build-phase',
  'build-succeeded', 'build-failed', 'build-log',
  'download-started', 'download-progress', 'download-succeeded', 'download-failed',
  'substitute-started', 'substitute-succeeded', 'substitute-failed',
  'hash-mismatch', 'message', 'progress', 'unknown',
];

export const LEVELS: readonly MessageLevel[] = ['error', 'warn', 'notice', 'info', 'talkative', 'chatty', 'debug', 'vomit'];

/** Nix's verbosity numbers (lvlError = 0 … lvlVomit = 7); anything else is clamped so it stays printable. */
export function levelName(n: number): MessageLevel {
  if (!Number.isInteger(n) || n < 0) return 'error';
  return LEVELS[Math.min(n, LEVELS.length - 1)]!;
}
