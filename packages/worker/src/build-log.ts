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

/** Splits a byte stream into lines and writes each with a prefix (`-L`). */
export class LinePrefixer {
  private partial = '';
  // A UTF-8 character split between two chunks must not turn into two U+FFFD.
  private readonly decoder = new StringDecoder('utf8');
  constructor(
    private readonly prefix: string,
    private readonly write: (s: string) => void,
  ) {}

  push(chunk: Buffer | string): void {
    const text = this.partial + (typeof chunk === 'string' ? chunk : this.decoder.write(chunk));
    const lines = text.split('\n');
    this.partial = lines.pop()!;
    if (lines.length === 0) return;
    let s = '';
    for (const l of lines) s += `${this.prefix}${l}\n`;
    this.write(s);
  }

  end(): void {
    this.partial += this.decoder.end();
    if (this.partial !== '') this.write(`${this.prefix}${this.partial}\n`);
    this.partial = '';
  }
}

/** Turns a byte stream into lines (without newlines) for a callback. */
export class LineSplitter {
  private partial = '';
  private readonly decoder = new StringDecoder('utf8');
  constructor(private readonly onLine: (line: string) => void) {}

  push(chunk: Buffer | string): void {
    const text = this.partial + (typeof chunk === 'string' ? chunk : this.decoder.write(chunk));
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      if (nl < 0) break;
      this.onLine(text.slice(start, nl));
      start = nl + 1;
    }
    this.partial = text.slice(start);
  }

  /** Hands over a last line that had no newline. */
  end(): void {
    this.partial += this.decoder.end();
    if (this.partial !== '') this.onLine(this.partial);
    this.partial = '';
  }
}
