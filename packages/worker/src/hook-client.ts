// drover-build's side of the build hook protocol: one hook process, its requests and replies.
//
// Node cannot hand one pipe to two fds of a child, and the protocol wants the hook's stdout
// and stderr in one pipe (messages and the reply keep their order). So the hook is started
// as `sh -c 'exec "$@" 2>&1' sh HOOK…`: sh points fd 2 at the stdout pipe and replaces itself
// with the hook, so the pid, the process group and the exit status are the hook's own; a
// hook that cannot be run makes sh print why into that same pipe and exit 126/127.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { DroverError } from '@drover/store';
import { LineSplitter, MAX_LINE } from './build-log.js';
import { formatHookRequest, formatPathsLine, hookArgs, isHookReply, parseHookLine, HOOK_LOG_FD, type HookReply, type HookRequest } from './hook-protocol.js';
import { killGroup, statusOf, type ExitInfo } from './processes.js';

export interface HookConfig {
  /** The hook command: program and leading arguments. */
  command: readonly string[];
  thisSystem: string;
  maxSilentTime: number;
  printBuildTrace: boolean;
  /** Seconds to wait for a reply before the hook counts as failed. */
  replyTimeout: number;
  /** Environment of the hook (it must see the same store). */
  env: NodeJS.ProcessEnv;
  /** Where the hook's messages go (the user's stderr). */
  stderr: (s: string) => void;
}

/** The hook failed (not the build): it died, hung, or broke the protocol. */
export class HookError extends DroverError {
  constructor(
    message: string,
    readonly status: number,
    /** The hook had exited, or exited without answering this request. */
    readonly gone = false,
  ) {
    super(message, 1);
  }
}

/**
 * A bad reply word as the error shows it: a hook that answers garbage must not fill the
 * user's terminal or send it control sequences, so it is cut short and escaped.
 */
function shownReply(word: string, cut: boolean): string {
  const max = 80;
  const escaped = word.slice(0, max).replace(/[\x00-\x1f\x7f-\x9f\\']/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return word.length > max || cut ? `${escaped}…` : escaped;
}

/** Seconds between SIGTERM and SIGKILL when a hook is stopped. */
const KILL_GRACE_MS = 2000;

export class HookInstance {
  readonly child: ChildProcess;
  readonly exited: Promise<ExitInfo>;
  /** The remote builder's log, from fd 4. */
  readonly log: Readable;
  private readonly stdin: Writable;
  private waiter: { resolve: (r: HookReply) => void; reject: (e: HookError) => void } | undefined;
  private hasExited = false;
  private stdoutEnded = false;
  /** A request was given up on (timeout, abort): its late reply is not a message to show. */
  private gaveUp = false;
  private readonly outputEnded: Promise<void>;

  constructor(private readonly config: HookConfig) {
    const [program, ...lead] = config.command;
    this.child = spawn('/bin/sh', ['-c', 'exec "$@" 2>&1', 'sh', program!, ...lead, ...hookArgs(config.thisSystem, config.maxSilentTime, config.printBuildTrace)], {
      cwd: '/',
      env: config.env,
      detached: true,
      stdio: ['pipe', 'pipe', 'ignore', 'ignore', 'pipe'],
    });
    this.stdin = this.child.stdin!;
    // A hook that died makes our writes fail with EPIPE; its exit status says what happened.
    this.stdin.on('error', () => {});
    this.log = this.child.stdio[HOOK_LOG_FD] as Readable;
    this.log.on('error', () => {});
    const lines = new LineSplitter((l, cut) => this.onLine(l, cut));
    const out = this.child.stdout!;
    out.on('data', (c: Buffer) => lines.push(c));
    this.outputEnded = new Promise((resolve) => {
      out.once('close', () => {
        lines.end();
        this.stdoutEnded = true;
        resolve();
      });
    });
    this.exited = new Promise((resolve) => {
      this.child.once('error', (e) => {
        this.hasExited = true;
        resolve({ status: 127, description: `could not start the build hook: ${e.message}` });
      });
      this.child.once('exit', (code, signal) => {
        this.hasExited = true;
        // Whatever the hook left running in its group goes with it, as a builder's does.
        killGroup(this.child.pid, 'SIGKILL');
        resolve(statusOf(code, signal));
      });
    });
    // EOF before a reply: the hook died mid-request.
    void this.outputEnded.then(async () => {
      if (!this.waiter) return;
      const info = await this.waitExit(KILL_GRACE_MS);
      // A hook that closed its stderr but lingers has no exit status to show yet.
      const why = this.hasExited ? `exited before answering (${info.description})` : 'closed its stderr before answering';
      this.failWaiter(new HookError(`the build hook ${why}`, info.status, true));
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  private onLine(line: string, cut: boolean): void {
    const w = this.waiter;
    const parsed = parseHookLine(line);
    if (w && 'reply' in parsed) {
      this.waiter = undefined;
      if (!cut && isHookReply(parsed.reply)) w.resolve(parsed.reply);
      else w.reject(new HookError(`bad hook reply '${shownReply(parsed.reply, cut)}'`, 0));
      return;
    }
    if (this.gaveUp && 'reply' in parsed) return;
    this.config.stderr(cut ? `${line} [line cut: the build hook printed more than ${MAX_LINE} characters on one line]\n` : `${line}\n`);
  }

  private failWaiter(e: HookError): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(e);
  }

  /**
   * Sends one request and waits for the reply line. Rejects with HookError on a bad word, on
   * EOF before a reply, and when no reply comes within the reply timeout.
   */
  request(req: HookRequest): Promise<HookReply> {
    if (this.stdoutEnded || this.hasExited) {
      return this.waitExit(0).then((info) => {
        throw new HookError(`the build hook is gone (${info.description})`, info.status, true);
      });
    }
    // Formatted first: a request that cannot be written must not leave a timer and a waiter behind.
    const line = formatHookRequest(req);
    return new Promise<HookReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.gaveUp = true;
        this.failWaiter(new HookError(`the build hook did not answer within ${this.config.replyTimeout} seconds`, 0));
      }, this.config.replyTimeout * 1000);
      this.waiter = {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.stdin.write(line);
    });
  }

  /** After accept: the inputs line and the outputs line, then EOF on the hook's stdin. */
  sendPaths(inputs: Iterable<string>, outputs: Iterable<string>): void {
    this.stdin.write(formatPathsLine(inputs));
    this.stdin.write(formatPathsLine(outputs));
    this.stdin.end();
  }

  /** Exit info once the hook is gone and its output is read (bounded: a daemon it left may hold the pipe). */
  async finished(): Promise<ExitInfo> {
    const info = await this.exited;
    await Promise.race([this.outputEnded, new Promise((r) => setTimeout(r, 500))]);
    return info;
  }

  private async waitExit(ms: number): Promise<ExitInfo> {
    if (this.hasExited || ms <= 0) {
      if (this.hasExited) return this.exited;
      return { status: 0, description: 'still running' };
    }
    return Promise.race([this.exited, new Promise<ExitInfo>((r) => setTimeout(() => r({ status: 0, description: 'no exit status yet' }), ms))]);
  }

  /** Gives up on the request in flight (the run is stopping): it rejects, and the hook is stopped. */
  abort(): void {
    if (this.waiter) this.gaveUp = true;
    this.failWaiter(new HookError('the run stopped before the build hook answered', 0));
    this.kill();
  }

  /** Stops the hook's process group: SIGTERM, then SIGKILL if it lingers. */
  kill(): void {
    if (this.hasExited) return;
    killGroup(this.child.pid, 'SIGTERM');
    const t = setTimeout(() => killGroup(this.child.pid, 'SIGKILL'), KILL_GRACE_MS);
    t.unref();
    void this.exited.then(() => clearTimeout(t));
  }

  /**
   * The run is over: a hook still running (one that was stopped and ignores SIGTERM) is killed
   * now, with its group, as the SIGKILL that would follow in a while dies with drover-build.
   */
  reap(): void {
    if (!this.hasExited) killGroup(this.child.pid, 'SIGKILL');
  }

  /** Shuts an idle hook down: EOF on its stdin, a bounded wait, then kill. */
  async close(): Promise<void> {
    this.stdin.end();
    if (this.hasExited) return;
    const t = setTimeout(() => this.kill(), 5000);
    await this.exited;
    clearTimeout(t);
  }
}
