// The wire format between the hook and `drover-hook-ssh serve` on the remote: JSON lines, framed export streams.
//
//   hook → remote (stdin):   header line {v, storeDir, drv, outputs, inputs, maxSilentTime}
//   remote → hook (stdout):  {v, storeDir, version, missing}            (or {error})
//   hook → remote:           the missing paths' export stream in frames: u32 LE length + bytes,
//                            a zero length ends it (only when `missing` is not empty)
//   remote → hook:           {imported: N}                              (or {error})
//   remote → hook:           {status: S} once the build ends; S = 0 is followed by the export
//                            stream of the outputs, to the end of stdout
//   remote → hook (stderr):  the build log
// The hook never closes stdin before the end: end of file there means "stop", and the remote
// kills the build.
import { UsageError } from '@drover/store';

export const SERVE_VERSION = 1;

export interface ServeHeader {
  v: number;
  storeDir: string;
  drv: string;
  outputs: string[];
  inputs: string[];
  maxSilentTime: number;
}

/** A message that breaks the serve protocol (from either side). */
export class ServeProtocolError extends UsageError {}

/** Longest JSON line either side accepts: a header listing a large closure fits easily. */
const MAX_LINE = 256 * 1024 * 1024;
/** Largest frame the remote accepts. */
const MAX_FRAME = 64 * 1024 * 1024;

export function frame(chunk: Buffer): Buffer[] {
  const len = Buffer.alloc(4);
  len.writeUInt32LE(chunk.length);
  return [len, chunk];
}

export const END_FRAME = Buffer.alloc(4);

/**
 * Reads JSON lines and byte runs from one stream without losing what was read ahead: a line,
 * then frames, then the raw rest go to different consumers.
 */
export class StreamReader {
  private buf: Buffer = Buffer.alloc(0);
  private ended = false;
  private readonly it: AsyncIterator<Buffer | string>;
  /** Bytes consumed so far, for progress and stall detection. */
  received = 0;
  onData?: (n: number) => void;

  constructor(source: AsyncIterable<Buffer | string>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async more(): Promise<boolean> {
    if (this.ended) return false;
    const r = await this.it.next();
    if (r.done) {
      this.ended = true;
      return false;
    }
    const c = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
    this.received += c.length;
    this.onData?.(c.length);
    this.buf = this.buf.length ? Buffer.concat([this.buf, c]) : c;
    return true;
  }

  /** The next line without its newline; undefined at a clean end of input. */
  async line(what: string): Promise<string | undefined> {
    let from = 0;
    for (;;) {
      const nl = this.buf.indexOf(10, from);
      if (nl >= 0) {
        const l = this.buf.subarray(0, nl).toString('utf8');
        this.buf = this.buf.subarray(nl + 1);
        return l;
      }
      from = this.buf.length;
      if (this.buf.length > MAX_LINE) throw new ServeProtocolError(`${what}: a line longer than ${MAX_LINE} bytes`);
      if (!(await this.more())) {
        if (this.buf.length === 0) return undefined;
        throw new ServeProtocolError(`${what}: the stream ends inside a line ('${show(this.buf.toString('utf8'))}')`);
      }
    }
  }

  /** A JSON object line; errors name `what` and show what came instead. */
  async json(what: string): Promise<Record<string, unknown>> {
    const l = await this.line(what);
    if (l === undefined) throw new ServeProtocolError(`${what}: the stream ended where a message was expected`);
    let v: unknown;
    try {
      v = JSON.parse(l);
    } catch {
      throw new ServeProtocolError(`${what}: '${show(l)}' is not a JSON message`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ServeProtocolError(`${what}: '${show(l)}' is not a JSON object`);
    return v as Record<string, unknown>;
  }

  private async exact(n: number, what: string): Promise<Buffer> {
    while (this.buf.length < n) {
      if (!(await this.more())) throw new ServeProtocolError(`${what}: the stream ends inside a frame`);
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** The payloads of frames up to the zero-length one. */
  async *frames(what: string): AsyncGenerator<Buffer> {
    for (;;) {
      const n = (await this.exact(4, what)).readUInt32LE(0);
      if (n === 0) return;
      if (n > MAX_FRAME) throw new ServeProtocolError(`${what}: a frame of ${n} bytes is larger than ${MAX_FRAME}`);
      yield await this.exact(n, what);
    }
  }

  /** Everything left, to the end of the stream. */
  async *rest(): AsyncGenerator<Buffer> {
    if (this.buf.length) {
      const b = this.buf;
      this.buf = Buffer.alloc(0);
      yield b;
    }
    while (await this.more()) {
      const b = this.buf;
      this.buf = Buffer.alloc(0);
      yield b;
    }
  }

  /** Resolves when the stream ends (whatever arrives before is dropped). */
  async untilEnd(): Promise<void> {
    this.buf = Buffer.alloc(0);
    while (await this.more()) this.buf = Buffer.alloc(0);
  }
}

export function show(s: string): string {
  const clean = s.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 160 ? clean.slice(0, 157) + '...' : clean;
}

function isPathIn(p: unknown, storeDir: string): p is string {
  return typeof p === 'string' && p.startsWith(storeDir + '/') && !p.slice(storeDir.length + 1).includes('/') && !/\s/.test(p);
}

/** Checks a header from the hook; paths must lie in the store dir the header names. */
export function parseHeader(v: Record<string, unknown>): ServeHeader {
  const bad = (msg: string) => new ServeProtocolError(`serve header: ${msg}`);
  if (v.v !== SERVE_VERSION) throw bad(`protocol version ${JSON.stringify(v.v)}, this side speaks ${SERVE_VERSION}`);
  const storeDir = v.storeDir;
  if (typeof storeDir !== 'string' || !storeDir.startsWith('/')) throw bad('storeDir is not an absolute path');
  const paths = (k: string): string[] => {
    const a = v[k];
    if (!Array.isArray(a) || !a.every((p) => isPathIn(p, storeDir))) throw bad(`${k} is not a list of store paths in ${storeDir}`);
    return a as string[];
  };
  if (!isPathIn(v.drv, storeDir) || !v.drv.endsWith('.drv')) throw bad('drv is not a .drv store path');
  const mst = v.maxSilentTime;
  if (typeof mst !== 'number' || !Number.isInteger(mst) || mst < 0) throw bad('maxSilentTime is not a whole number of seconds');
  return { v: SERVE_VERSION, storeDir, drv: v.drv, outputs: paths('outputs'), inputs: paths('inputs'), maxSilentTime: mst };
}

/** Checks the remote's first answer; `missing` must be among the inputs asked about. */
export function parseMissingReply(v: Record<string, unknown>, inputs: ReadonlySet<string>, what: string): { storeDir: string; version: string; missing: string[] } {
  if (typeof v.error === 'string') throw new ServeProtocolError(`${what}: ${v.error}`);
  if (typeof v.storeDir !== 'string') throw new ServeProtocolError(`${what}: the reply names no store dir`);
  const missing = v.missing;
  if (!Array.isArray(missing) || !missing.every((p) => typeof p === 'string')) throw new ServeProtocolError(`${what}: 'missing' is not a list of paths`);
  for (const p of missing as string[]) {
    if (!inputs.has(p)) throw new ServeProtocolError(`${what}: says it lacks '${show(p)}', which the hook never asked about`);
  }
  return { storeDir: v.storeDir, version: typeof v.version === 'string' ? v.version : '', missing: missing as string[] };
}
