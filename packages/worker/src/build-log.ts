// Build logs: one file per derivation under STATE/log/drvs/XX/REST (Nix's layout), the
// tail shown on failure, and `-L` lines prefixed with the derivation's name.
import fs from 'node:fs';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';

/** Where each derivation's log goes; creates the XX/ directories once per process. */
export class LogDir {
  readonly root: string;
  private readonly made = new Set<string>();

  constructor(stateDir: string) {
    this.root = path.join(stateDir, 'log', 'drvs');
  }

  pathFor(drvPath: string): string {
    const base = path.basename(drvPath);
    return path.join(this.root, base.slice(0, 2), base.slice(2));
  }

  /**
   * The log of a new build of `drvPath`. An older log is removed now; the file is created
   * only when the build prints something (creating files is slow on some disks, and most
   * trivial builds print nothing).
   */
  open(drvPath: string): LazyLog {
    const file = this.pathFor(drvPath);
    fs.rmSync(file, { force: true });
    return new LazyLog(file, () => {
      const dir = path.dirname(file);
      if (!this.made.has(dir)) {
        fs.mkdirSync(dir, { recursive: true });
        this.made.add(dir);
      }
      return fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_APPEND, 0o644);
    });
  }
}

/** A log file opened on its first write. */
export class LazyLog {
  private fd: number | undefined;
  private closed = false;
  constructor(
    readonly file: string,
    private readonly openFd: () => number,
  ) {}

  write(chunk: Buffer): void {
    if (this.closed) return;
    this.fd ??= this.openFd();
    fs.writeSync(this.fd, chunk);
  }

  close(): void {
    this.closed = true;
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

/** The last `n` lines of a log file, read from its end (never the whole file). */
export function tailLines(file: string, n = 25): string[] {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return [];
  }
  try {
    const size = fs.fstatSync(fd).size;
    const want = Math.min(size, 64 * 1024);
    const buf = Buffer.alloc(want);
    fs.readSync(fd, buf, 0, want, size - want);
    const lines = buf.toString('utf8').split('\n');
    if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    // A partial first line (we started mid-file) is dropped unless it is all we have.
    if (want < size && lines.length > 1) lines.shift();
    return lines.slice(-n);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The longest line (in UTF-16 units: 64 K characters, most of them) either class below holds. A builder or hook that prints
 * megabytes without a newline would otherwise grow one string without bound, and rescanning
 * it for every chunk makes that quadratic: a 300 MB line took minutes and gigabytes.
 */
export const MAX_LINE = 64 * 1024;

/** Where to cut `s` to at most `max` UTF-16 units: never between the halves of a surrogate pair. */
function cutAt(s: string, max: number): number {
  return (s.charCodeAt(max - 1) & 0xfc00) === 0xd800 ? max - 1 : max;
}

/**
 * Splits a byte stream into lines and writes each with a prefix (`-L`). A line longer than
 * `maxLine` goes out in pieces of that length, each prefixed: nothing is lost, and the log
 * file has it whole anyway.
 */
export class LinePrefixer {
  private partial = '';
  // A UTF-8 character split between two chunks must not turn into two U+FFFD.
  private readonly decoder = new StringDecoder('utf8');
  constructor(
    private readonly prefix: string,
    private readonly write: (s: string) => void,
    private readonly maxLine = MAX_LINE,
  ) {}

  push(chunk: Buffer | string): void {
    const text = this.partial + (typeof chunk === 'string' ? chunk : this.decoder.write(chunk));
    const lines = text.split('\n');
    let rest = lines.pop()!;
    let s = '';
    for (const l of lines) s += this.prefixed(l);
    for (let n; rest.length > this.maxLine; rest = rest.slice(n)) s += `${this.prefix}${rest.slice(0, (n = cutAt(rest, this.maxLine)))}\n`;
    this.partial = rest;
    if (s !== '') this.write(s);
  }

  private prefixed(line: string): string {
    let s = '';
    for (let n; line.length > this.maxLine; line = line.slice(n)) s += `${this.prefix}${line.slice(0, (n = cutAt(line, this.maxLine)))}\n`;
    return `${s}${this.prefix}${line}\n`;
  }

  end(): void {
    this.partial += this.decoder.end();
    if (this.partial !== '') this.write(this.prefixed(this.partial));
    this.partial = '';
  }
}

/**
 * Turns a byte stream into lines (without newlines) for a callback. A line longer than
 * `maxLine` is cut there: the callback gets its start with `cut` set, and the rest up to the
 * newline is dropped (a protocol line is never that long; a message that is has said enough).
 */
export class LineSplitter {
  private partial = '';
  /** The current line was cut and handed over already: skip to its newline. */
  private skipping = false;
  private readonly decoder = new StringDecoder('utf8');
  constructor(
    private readonly onLine: (line: string, cut: boolean) => void,
    private readonly maxLine = MAX_LINE,
  ) {}

  push(chunk: Buffer | string): void {
    const text = typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      if (nl < 0) break;
      const line = this.partial + text.slice(start, nl);
      this.partial = '';
      start = nl + 1;
      if (this.skipping) this.skipping = false;
      else this.emit(line);
    }
    if (this.skipping) return;
    this.partial += text.slice(start);
    if (this.partial.length > this.maxLine) {
      this.onLine(this.partial.slice(0, cutAt(this.partial, this.maxLine)), true);
      this.partial = '';
      this.skipping = true;
    }
  }

  private emit(line: string): void {
    if (line.length > this.maxLine) this.onLine(line.slice(0, cutAt(line, this.maxLine)), true);
    else this.onLine(line, false);
  }

  /** Hands over a last line that had no newline. */
  end(): void {
    const last = this.partial + this.decoder.end();
    this.partial = '';
    if (!this.skipping && last !== '') this.emit(last);
    this.skipping = false;
  }
}
