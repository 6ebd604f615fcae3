// What the reader hands its results to: events, passthrough bytes, and a fast path for log lines.
import type { Source, TraceEvent } from './events.js';

export interface TraceSink {
  event(ev: TraceEvent): void;
  /** Bytes of lines that are not trace lines, newline included, exactly as they came. */
  passthrough(buf: Buffer, start: number, end: number): void;
  /**
   * A build-log event whose text is bytes [start, end) of buf, valid UTF-8, handed over undecoded
   * so that sinks writing JSON need not decode it. With `line` true (Nix) the bytes need no JSON
   * escapes and the text is them plus "\n"; otherwise (Guix) the text is exactly the bytes.
   * `activity` is the event's (Nix's activity id; null for Guix). Absent: the reader builds an
   * ordinary build-log event.
   */
  rawLog?(source: Source, activity: string | null, drv: string | null, pid: number | null, buf: Buffer, start: number, end: number, time: number, line: boolean): void;
}

/** Fans one stream of events out to several sinks (e.g. the renderer and the history recorder). */
export class TeeSink implements TraceSink {
  constructor(private readonly sinks: TraceSink[]) {}
  event(ev: TraceEvent): void {
    for (const s of this.sinks) s.event(ev);
  }
  passthrough(buf: Buffer, start: number, end: number): void {
    for (const s of this.sinks) s.passthrough(buf, start, end);
  }
}
