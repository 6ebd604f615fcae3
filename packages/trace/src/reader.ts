// The streaming byte parser: splits input into lines and Guix log chunks, detects each line's
// dialect, and hands events and passthrough bytes to a sink. It never throws on bad input.
import { isUtf8 } from 'node:buffer';
import { AtLines } from './at-lines.js';
import { BuildLedger } from './build-ledger.js';
import type { TraceEvent } from './events.js';
import { GuixLogDecoders, LOG_TEXT_CAP } from './guix.js';
import { NixJson } from './nix-json.js';
import type { TraceSink } from './sink.js';

export interface ReaderOptions {
  sink: TraceSink;
  /** Where reports of malformed input go (one line each, without the `drover-trace: ` prefix). */
  warn?: (message: string) => void;
  /** Seconds, any origin; event times count from the first input. Injectable for tests. */
  clock?: () => number;
  /** A line longer than this is passed through without being parsed. */
  maxLine?: number;
  /** How many malformed lines are reported one by one before only a count is kept. */
  maxWarnings?: number;
}

const NL = 0x0a;
const AT = 0x40;
const SP = 0x20;
const PLAN_HEADER = /^(these \d+ derivations|this derivation) will be built:\r?$/;
const PLAN_ENTRY = /^ {2}(\/\S+\.drv)\r?$/;

const monotonicSeconds = (): number => performance.now() / 1000;

export class TraceReader {
  private readonly sink: TraceSink;
  private readonly warnFn: (message: string) => void;
  private readonly clock: () => number;
  private readonly maxLine: number;
  private readonly maxWarnings: number;
  readonly ledger: BuildLedger;
  private readonly at: AtLines;
  private readonly nix: NixJson;
  private readonly guixText = new GuixLogDecoders();

  private t0: number | null = null;
  private now = 0;
  private input = '-';
  private lineNo = 1;
  private partial: Buffer[] = [];
  private partialLength = 0;
  /** Passing an over-long line through until its newline. */
  private skipping = false;
  /** The Guix log chunk being read: bytes still expected, and its text so far. */
  private chunkPid = 0;
  private chunkLeft = 0;
  private chunkTotal = 0;
  private chunkText = '';
  private chunkLine = 0;
  private planning = false;
  private warnings = 0;
  private finished = false;
  private readonly emit: (ev: TraceEvent) => void;

  constructor(options: ReaderOptions) {
    this.sink = options.sink;
    this.warnFn = options.warn ?? (() => {});
    this.clock = options.clock ?? monotonicSeconds;
    this.maxLine = options.maxLine ?? 16 * 1024 * 1024;
    this.maxWarnings = options.maxWarnings ?? 10;
    this.emit = (ev) => this.sink.event(ev);
    this.ledger = new BuildLedger(this.emit);
    this.at = new AtLines(this.ledger, this.emit);
    this.nix = new NixJson(this.ledger, this.emit);
  }

  /** Number of derivations whose final state is failed: the CLI exits 1 when it is not zero. */
  get failedBuilds(): number {
    return this.ledger.failedCount;
  }

  get malformedLines(): number {
    return this.warnings;
  }

  /** The time stamp of the latest input (seconds since the first). */
  get time(): number {
    return this.now;
  }

  /** Seconds since the first input, on the clock event times use (0 before any input). */
  elapsed(): number {
    return this.t0 === null ? 0 : this.clock() - this.t0;
  }

  /** Starts a new input (a file name or `-`); the previous one must have been ended. */
  beginInput(name: string): void {
    this.input = name;
    this.lineNo = 1;
  }

  private tick(): void {
    const t = this.clock();
    if (this.t0 === null) this.t0 = t;
    this.now = Math.round((t - this.t0) * 1000) / 1000;
  }

  private warn(why: string, line = this.lineNo): void {
    this.warnings++;
    if (this.warnings <= this.maxWarnings) this.warnFn(`${this.input}:${line}: ${why}`);
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.tick();
    let pos = 0;
    const len = chunk.length;
    if (this.chunkLeft > 0) pos = this.logBytes(chunk, 0);
    if (this.skipping) {
      const nl = chunk.indexOf(NL, pos);
      const stop = nl < 0 ? len : nl + 1;
      this.sink.passthrough(chunk, pos, stop);
      if (nl < 0) return;
      this.skipping = false;
      this.lineNo++;
      pos = stop;
    }
    if (this.partialLength > 0) {
      const nl = chunk.indexOf(NL, pos);
      if (nl < 0) {
        this.keepPartial(chunk, pos, len);
        return;
      }
      this.partial.push(chunk.subarray(pos, nl + 1));
      const line = Buffer.concat(this.partial, this.partialLength + nl + 1 - pos);
      this.partial = [];
      this.partialLength = 0;
      if (this.line(line, 0, line.length - 1)) this.sink.passthrough(line, 0, line.length);
      this.lineNo++;
      pos = nl + 1;
    }
    // Runs of passthrough lines are handed on in one piece.
    let passStart = pos;
    while (pos < len) {
      if (this.chunkLeft > 0) {
        if (passStart < pos) this.sink.passthrough(chunk, passStart, pos);
        pos = this.logBytes(chunk, pos);
        passStart = pos;
        continue;
      }
      const nl = chunk.indexOf(NL, pos);
      if (nl < 0) break;
      const c = chunk[pos];
      if (c === AT || (this.planning || c === 0x74) /* 't' */) {
        // What passed through before this line goes out before any event this line makes.
        if (passStart < pos) this.sink.passthrough(chunk, passStart, pos);
        passStart = this.line(chunk, pos, nl) ? pos : nl + 1;
      }
      this.lineNo++;
      pos = nl + 1;
    }
    if (passStart < pos) this.sink.passthrough(chunk, passStart, pos);
    if (pos < len) this.keepPartial(chunk, pos, len);
  }

  private keepPartial(chunk: Buffer, start: number, end: number): void {
    if (this.partialLength + end - start > this.maxLine) {
      this.warn(`line longer than ${this.maxLine} bytes passed through unparsed`);
      for (const p of this.partial) this.sink.passthrough(p, 0, p.length);
      this.sink.passthrough(chunk, start, end);
      this.partial = [];
      this.partialLength = 0;
      this.skipping = true;
      return;
    }
    // Copy: a view would keep the whole input buffer alive.
    this.partial.push(Buffer.from(chunk.subarray(start, end)));
    this.partialLength += end - start;
  }

  /**
   * One line, bytes [start, end) without the newline. Returns true when it is to be passed through
   * (not a trace line, or a malformed one, which is reported).
   */
  private line(buf: Buffer, start: number, end: number): boolean {
    try {
      return this.parseLine(buf, start, end);
    } catch (e) {
      // Whatever a line holds, it is no reason to stop reading: it is reported and passed through.
      this.warn(`line not read: ${(e as Error).message}`);
      return true;
    }
  }

  private parseLine(buf: Buffer, start: number, end: number): boolean {
    const c = buf[start];
    if (c === AT) {
      const c1 = buf[start + 1];
      if (c1 === SP) {
        this.planning = false;
        let e = end;
        if (buf[e - 1] === 0x0d) e--;
        const r = this.at.line(buf.toString('utf8', start, e), this.now);
        switch (r.kind) {
          case 'event': return false;
          case 'passthrough': return true;
          case 'malformed': this.warn(r.why); return true;
          case 'log':
            this.chunkPid = r.pid;
            this.chunkLeft = r.length;
            this.chunkTotal = r.length;
            this.chunkText = '';
            this.chunkLine = this.lineNo;
            if (r.length === 0) this.endChunk();
            return false;
        }
      }
      if (c1 === 0x6e && buf[start + 2] === 0x69 && buf[start + 3] === 0x78 && buf[start + 4] === SP) {
        this.planning = false;
        if (this.nix.fastLogLine(buf, start, end, this.now, this.sink)) return false;
        const r = this.nix.line(buf.toString('utf8', start + 5, end), this.now);
        if (r.ok) return false;
        this.warn(r.why);
        return true;
      }
      return true;
    }
    // Plain-text plans (`nix-build` without internal-json, drover-build) still tell what is queued.
    const text = buf.toString('utf8', start, Math.min(end, start + 512));
    if (this.planning) {
      const m = PLAN_ENTRY.exec(text);
      if (m) {
        this.ledger.queue('drover', m[1]!, this.now);
        return true;
      }
      this.planning = false;
    }
    if (PLAN_HEADER.test(text)) this.planning = true;
    return true;
  }

  /** Consumes bytes of the current Guix log chunk from pos; returns the position after them. */
  private logBytes(buf: Buffer, pos: number): number {
    const n = Math.min(this.chunkLeft, buf.length - pos);
    // A whole chunk of valid UTF-8 goes to a sink that takes bytes as it is.
    if (n === this.chunkTotal && this.sink.rawLog && this.guixText.clean(this.chunkPid) && isUtf8(buf.subarray(pos, pos + n))) {
      this.countLines(buf, pos, pos + n);
      this.sink.rawLog('guix', null, this.ledger.drvOfPid(this.chunkPid), this.chunkPid, buf, pos, pos + n, this.now, false);
      this.chunkLeft = 0;
      return pos + n;
    }
    // Decoded text is handed on in bounded pieces, however long the chunk claims to be.
    const take = Math.min(n, LOG_TEXT_CAP);
    this.countLines(buf, pos, pos + take);
    this.chunkText += this.guixText.write(this.chunkPid, buf.subarray(pos, pos + take));
    this.chunkLeft -= take;
    if (this.chunkLeft === 0) this.endChunk();
    else if (this.chunkText.length >= LOG_TEXT_CAP) this.flushChunkText();
    return pos + take;
  }

  /** Newlines inside log chunks still count, so that reported line numbers match the input's. */
  private countLines(buf: Buffer, start: number, end: number): void {
    let nl = buf.indexOf(NL, start);
    while (nl >= 0 && nl < end) {
      this.lineNo++;
      nl = buf.indexOf(NL, nl + 1);
    }
  }

  private flushChunkText(): void {
    if (this.chunkText === '') return;
    this.emit({ type: 'build-log', time: this.now, source: 'guix', drv: this.ledger.drvOfPid(this.chunkPid), pid: this.chunkPid, text: this.chunkText });
    this.chunkText = '';
  }

  private endChunk(): void {
    this.flushChunkText();
    this.chunkLeft = 0;
  }

  /** End of one input: an unterminated last line is still a line; a cut-off log chunk is reported. */
  endInput(): void {
    this.tick();
    if (this.chunkLeft > 0) {
      const got = this.chunkTotal - this.chunkLeft;
      this.chunkText += this.guixText.end(this.chunkPid);
      this.flushChunkText();
      this.warn(`truncated @ build-log chunk: ${got} of ${this.chunkTotal} bytes before the end of the input`, this.chunkLine);
      this.chunkLeft = 0;
    }
    if (this.partialLength > 0) {
      const line = Buffer.concat(this.partial, this.partialLength);
      this.partial = [];
      this.partialLength = 0;
      if (this.line(line, 0, line.length)) this.sink.passthrough(line, 0, line.length);
    }
    this.skipping = false;
    this.planning = false;
  }

  /** End of all input: final verdicts for builds that never finished. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.tick();
    for (const pid of this.guixText.pids()) {
      const rest = this.guixText.end(pid);
      if (rest !== '') this.emit({ type: 'build-log', time: this.now, source: 'guix', drv: this.ledger.drvOfPid(pid), pid, text: rest });
    }
    this.ledger.finish(this.now);
    this.countWarnings();
  }

  /**
   * The rest of the input will not be read (whoever reads the output went away): what was cut off
   * is no line, no chunk and no end of a build, so nothing is concluded from it.
   */
  abandon(): void {
    if (this.finished) return;
    this.finished = true;
    this.countWarnings();
  }

  private countWarnings(): void {
    if (this.warnings > this.maxWarnings) this.warnFn(`${this.warnings - this.maxWarnings} more malformed lines not shown (${this.warnings} in all)`);
  }
}

/** Parses a whole trace held in memory into events (for tests and small tools). */
export function parseTrace(input: Buffer | string, clock: () => number = () => 0): { events: TraceEvent[]; passthrough: Buffer; warnings: string[] } {
  const events: TraceEvent[] = [];
  const pass: Buffer[] = [];
  const warnings: string[] = [];
  const reader = new TraceReader({
    sink: { event: (ev) => events.push(ev), passthrough: (b, s, e) => pass.push(Buffer.from(b.subarray(s, e))) },
    warn: (w) => warnings.push(w),
    clock,
    maxWarnings: Infinity,
  });
  reader.beginInput('<input>');
  reader.push(typeof input === 'string' ? Buffer.from(input) : input);
  reader.endInput();
  reader.finish();
  return { events, passthrough: Buffer.concat(pass), warnings };
}
