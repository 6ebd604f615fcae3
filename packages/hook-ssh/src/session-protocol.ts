// The wire format of a remote build session between the hook and drover on the remote (serve or agent).
//
// One byte stream each way, in typed frames: TYPE (1 byte) · u32 LE length · payload.
//   H  hello, remote → hook, first:   {v, storeDir, version, checksNarHashes}
//   M  a JSON message
//   D  a piece of an export stream;  E  its end
//   L  build log bytes, remote → hook, at any time
// A session:
//   remote → H;  hook → M header {storeDir, drv, outputs, inputs, maxSilentTime}
//   remote → M {missing} (or {error});  hook → D… E with the missing paths (when any),
//   after an M {narHashes: {path: hash}} for them when the header said narHashes: true
//   (only to a remote whose hello said checksNarHashes: it refuses a NAR whose hash
//   differs, so the hook need not hash what it sends)
//   remote → M {imported} (or {error});  remote → L… while building;  remote → M {status}
//   remote → D… E with the outputs (when status is 0), then the remote ends the session.
// The hook never ends its side first: end of input there means "stop", and the remote
// interrupts the build and kills its builders.
import type { Writable } from 'node:stream';
import { DroverError, parseHash, type Hash } from '@drover/store';

export const SESSION_VERSION = 2;

export type FrameType = 'H' | 'M' | 'D' | 'E' | 'L';
const TYPES = new Set(['H', 'M', 'D', 'E', 'L']);

export interface SessionHeader {
  storeDir: string;
  drv: string;
  outputs: string[];
  inputs: string[];
  maxSilentTime: number;
  /** The NAR hashes of the missing paths come before their export stream. */
  narHashes?: boolean;
}

/**
 * A frame or message that breaks the session protocol. Whoever meets one, the other end
 * sent it: for the hook that is a fault of the remote (exit 1, as any remote failure, not a
 * usage error of ours); the remote answers the hook with it as an {error}.
 */
export class SessionProtocolError extends DroverError {
  constructor(message: string) {
    super(message, 1);
  }
}

/** Largest frame either side accepts (a header listing a large closure fits easily). */
const MAX_FRAME = 256 * 1024 * 1024;

export function encodeFrame(type: FrameType, payload: Buffer | string = Buffer.alloc(0)): Buffer[] {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeUInt32LE(body.length, 1);
  return body.length ? [head, body] : [head];
}

/**
 * Writes frames with back-pressure: `send` resolves when the sink can take more. Once the
 * sink fails or closes, every send rejects with that error.
 */
export class FrameWriter {
  private broken: Error | undefined;
  private waiting: { resolve: () => void; reject: (e: Error) => void }[] = [];
  /** Payload bytes of D frames sent. */
  dataBytes = 0;

  constructor(private readonly sink: Writable) {
    sink.on('error', (e) => this.fail(e));
    sink.on('close', () => this.fail(new Error('the session closed')));
    sink.on('drain', () => {
      for (const w of this.waiting.splice(0)) w.resolve();
    });
  }

  private fail(e: Error): void {
    this.broken ??= e;
    for (const w of this.waiting.splice(0)) w.reject(this.broken);
  }

  send(type: FrameType, payload?: Buffer | string): Promise<void> | void {
    if (this.broken) throw this.broken;
    let ok = true;
    for (const b of encodeFrame(type, payload)) ok = this.sink.write(b);
    if (type === 'D' && payload) this.dataBytes += payload.length;
    if (ok) return;
    return new Promise<void>((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  message(msg: Record<string, unknown>): Promise<void> | void {
    return this.send('M', JSON.stringify(msg));
  }

  private parts: Buffer[] = [];
  private partBytes = 0;

  /**
   * A piece of an export stream: pieces of at least DATA_FRAME bytes go out as they are,
   * smaller ones (NAR headers, small files) are gathered into frames of about that size.
   * The importing end pays per piece it gets (a parse step, a write): a stream of small
   * files sent one frame each cost it nearly twice the CPU of the same bytes in big pieces.
   */
  sendData(chunk: Buffer): Promise<void> | void {
    if (chunk.length >= DATA_FRAME) {
      const pending = this.flushData();
      if (pending) return pending.then(() => this.send('D', chunk));
      return this.send('D', chunk);
    }
    this.parts.push(chunk);
    this.partBytes += chunk.length;
    if (this.partBytes >= DATA_FRAME) return this.flushData();
  }

  /** Sends what sendData holds back, then the end of the export stream. */
  endData(): Promise<void> | void {
    const pending = this.flushData();
    if (pending) return pending.then(() => this.send('E'));
    return this.send('E');
  }

  private flushData(): Promise<void> | void {
    if (this.partBytes === 0) return;
    const b = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.partBytes);
    this.parts = [];
    this.partBytes = 0;
    return this.send('D', b);
  }
}

/** Size from which a piece of an export stream is a frame of its own (FrameWriter.sendData). */
export const DATA_FRAME = 256 * 1024;

/**
 * Reads frames from a byte stream without copying large payloads more than once. L frames
 * go to `onLog` wherever they come; `next` returns the others.
 */
export class FrameReader {
  private queue: Buffer[] = [];
  private queued = 0;
  private ended = false;
  private readonly it: AsyncIterator<Buffer | string>;
  /** Bytes read so far. */
  received = 0;
  /** Called for every chunk that arrives (progress, stall detection). */
  onData?: (n: number) => void;
  onLog?: (b: Buffer) => void;

  constructor(
    source: AsyncIterable<Buffer | string>,
    private readonly what: string,
  ) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async more(): Promise<boolean> {
    if (this.ended) return false;
    for (;;) {
      const r = await this.it.next();
      if (r.done) {
        this.ended = true;
        return false;
      }
      const c = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
      if (c.length === 0) continue;
      this.received += c.length;
      this.onData?.(c.length);
      this.queue.push(c);
      this.queued += c.length;
      return true;
    }
  }

  private take(n: number): Buffer {
    const first = this.queue[0]!;
    if (first.length >= n) {
      if (first.length === n) this.queue.shift();
      else this.queue[0] = first.subarray(n);
      this.queued -= n;
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const c = this.queue[0]!;
      const k = Math.min(c.length, n - at);
      c.copy(out, at, 0, k);
      at += k;
      if (k === c.length) this.queue.shift();
      else this.queue[0] = c.subarray(k);
    }
    this.queued -= n;
    return out;
  }

  private async need(n: number, inside: string): Promise<boolean> {
    while (this.queued < n) {
      if (!(await this.more())) {
        if (this.queued === 0 && inside === '') return false;
        throw new SessionProtocolError(`${this.what}: the stream ends inside ${inside || 'a frame'}`);
      }
    }
    return true;
  }

  /** The next frame's type and length (its payload still queued); undefined at a clean end of the stream. */
  private async header(): Promise<{ type: FrameType; n: number } | undefined> {
    if (!(await this.need(5, ''))) return undefined;
    const head = this.take(5);
    const type = head.toString('latin1', 0, 1);
    const n = head.readUInt32LE(1);
    if (!TYPES.has(type)) {
      // Show a line's worth of what came instead: usually a shell start-up file's chatter.
      // Wait only briefly for the rest of it: a remote that prints a banner and then waits
      // for input would otherwise hold the hook until the stall timeout.
      const deadline = Date.now() + 250;
      while (this.queued < 75 && Date.now() < deadline) {
        const timer = new Promise<false>((r) => setTimeout(() => r(false), Math.max(0, deadline - Date.now())).unref());
        if (!(await Promise.race([this.more(), timer]))) break;
      }
      const shown = show(Buffer.concat([head, ...this.queue]).subarray(0, 80).toString('latin1'));
      throw new SessionProtocolError(`${this.what}: '${shown}' is not a session frame (is something else printing on the remote's stdout?)`);
    }
    if (n > MAX_FRAME) throw new SessionProtocolError(`${this.what}: a frame of ${n} bytes is larger than ${MAX_FRAME}`);
    return { type: type as FrameType, n };
  }

  private async payload(h: { type: FrameType; n: number }): Promise<Buffer> {
    await this.need(h.n, `a ${h.type} frame of ${h.n} bytes`);
    return h.n ? this.take(h.n) : Buffer.alloc(0);
  }

  /** The next frame other than L; undefined at a clean end of the stream. */
  async next(): Promise<{ type: FrameType; payload: Buffer } | undefined> {
    for (;;) {
      const h = await this.header();
      if (!h) return undefined;
      const payload = await this.payload(h);
      if (h.type === 'L') {
        this.onLog?.(payload);
        continue;
      }
      return { type: h.type, payload };
    }
  }

  /** The next frame, which must be of `type` (an M frame with {error} becomes that error). */
  async expect(type: 'H' | 'M', stage: string): Promise<Record<string, unknown>> {
    const f = await this.next();
    if (!f) throw new SessionProtocolError(`${this.what}: the session ended ${stage}`);
    if (f.type !== type) throw new SessionProtocolError(`${this.what}: expected a ${type} frame ${stage}, got ${f.type}`);
    let v: unknown;
    try {
      v = JSON.parse(f.payload.toString('utf8'));
    } catch {
      throw new SessionProtocolError(`${this.what}: '${show(f.payload.toString('utf8'))}' ${stage} is not JSON`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new SessionProtocolError(`${this.what}: the message ${stage} is not a JSON object`);
    return v as Record<string, unknown>;
  }

  /** The payloads of D frames up to the E frame: an export stream, in the frames' pieces. */
  async *data(): AsyncGenerator<Buffer> {
    for (;;) {
      const h = await this.header();
      if (!h) throw new SessionProtocolError(`${this.what}: the session ended inside an export stream`);
      const payload = await this.payload(h);
      if (h.type === 'L') {
        this.onLog?.(payload);
        continue;
      }
      if (h.type === 'E') return;
      // The remote stopped its export and said why in its own words (an output it could not
      // read, say): that is its error to show, not a fault in the protocol.
      const said = h.type === 'M' ? errorOf(payload) : undefined;
      if (said !== undefined) throw new DroverError(`${this.what}: ${said}`, 1);
      if (h.type !== 'D') throw new SessionProtocolError(`${this.what}: expected a D or E frame inside an export stream, got ${h.type}`);
      if (payload.length) yield payload;
    }
  }

  /** Resolves when the stream ends, whatever comes before it. */
  async untilEnd(): Promise<void> {
    do {
      this.queue = [];
      this.queued = 0;
    } while (await this.more());
  }
}

/** The `error` of an M frame's JSON message, if it is one. */
function errorOf(payload: Buffer): string | undefined {
  try {
    const v = JSON.parse(payload.toString('utf8')) as unknown;
    return typeof v === 'object' && v !== null && typeof (v as { error?: unknown }).error === 'string' ? (v as { error: string }).error : undefined;
  } catch {
    return undefined;
  }
}

export function show(s: string): string {
  const clean = s.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 160 ? clean.slice(0, 157) + '...' : clean;
}

function isPathIn(p: unknown, storeDir: string): p is string {
  return typeof p === 'string' && p.startsWith(storeDir + '/') && !p.slice(storeDir.length + 1).includes('/') && !/\s/.test(p);
}

/** Checks a header from the hook; paths must lie in the store dir it names. */
export function parseHeader(v: Record<string, unknown>): SessionHeader {
  const bad = (msg: string) => new SessionProtocolError(`session header: ${msg}`);
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
  if (v.narHashes !== undefined && typeof v.narHashes !== 'boolean') throw bad('narHashes is not true or false');
  return { storeDir, drv: v.drv, outputs: paths('outputs'), inputs: paths('inputs'), maxSilentTime: mst, narHashes: v.narHashes === true };
}

/**
 * Checks the remote's hello: the payload of its H frame, a JSON object. Anything else (not
 * JSON, `null`, another protocol version) is refused naming what came.
 */
export function parseHello(payload: Buffer | Record<string, unknown>, what: string): Hello {
  let v: unknown = payload;
  if (Buffer.isBuffer(payload)) {
    const text = payload.toString('utf8');
    try {
      v = JSON.parse(text);
    } catch {
      throw new SessionProtocolError(`${what}: its hello '${show(text)}' is not JSON`);
    }
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new SessionProtocolError(`${what}: its hello ${show(JSON.stringify(v) ?? String(v))} is not a JSON object`);
  const h = v as Record<string, unknown>;
  const version = typeof h.version === 'string' ? h.version : '';
  if (h.v !== SESSION_VERSION) {
    throw new SessionProtocolError(
      `${what}: speaks session protocol ${show(JSON.stringify(h.v) ?? 'none')}, this hook speaks ${SESSION_VERSION}` +
        `${version ? ` (the remote is ${show(version)})` : ''}; install the same drover version on both machines`,
    );
  }
  if (typeof h.storeDir !== 'string') throw new SessionProtocolError(`${what}: the hello names no store dir`);
  return { storeDir: h.storeDir, version, checksNarHashes: h.checksNarHashes === true };
}

export interface Hello {
  storeDir: string;
  version: string;
  /** The remote checks each imported NAR against a hash the hook sends (an older remote does not). */
  checksNarHashes: boolean;
}

/**
 * Checks the hook's NAR hashes for the paths the remote asked for: one per missing path,
 * nothing else, each a sha256 hash.
 */
export function parseNarHashes(v: Record<string, unknown>, missing: readonly string[], what: string): Map<string, Hash> {
  const bad = (msg: string) => new SessionProtocolError(`${what}: narHashes: ${msg}`);
  const h = v.narHashes;
  if (typeof h !== 'object' || h === null || Array.isArray(h)) throw bad('not an object of path → hash');
  const want = new Set(missing);
  const out = new Map<string, Hash>();
  for (const [p, s] of Object.entries(h as Record<string, unknown>)) {
    if (!want.has(p)) throw bad(`'${show(p)}' is not one of the missing paths`);
    if (typeof s !== 'string') throw bad(`the hash of '${p}' is not a string`);
    let hash: Hash;
    try {
      hash = parseHash(s, 'sha256');
    } catch (e) {
      throw bad(`the hash of '${p}': ${(e as Error).message}`);
    }
    out.set(p, hash);
  }
  const lacking = missing.find((p) => !out.has(p));
  if (lacking) throw bad(`no hash for '${lacking}'`);
  return out;
}

/** Checks the remote's list of missing inputs: only paths the hook asked about. */
export function parseMissing(v: Record<string, unknown>, inputs: ReadonlySet<string>, what: string): string[] {
  if (typeof v.error === 'string') throw new SessionProtocolError(`${what}: ${v.error}`);
  const missing = v.missing;
  if (!Array.isArray(missing) || !missing.every((p) => typeof p === 'string')) throw new SessionProtocolError(`${what}: 'missing' is not a list of paths`);
  for (const p of missing as string[]) {
    if (!inputs.has(p)) throw new SessionProtocolError(`${what}: says it lacks '${show(p)}', which the hook never asked about`);
  }
  return missing as string[];
}
