// What the reader hands its results to: events, passthrough bytes, and a fast path for log lines.
import type { Source, TraceEvent } from './events.js';

export interface TraceSink {
  event(ev: TraceEvent): void;
  /** Bytes of lines that are not trace lines, newline included, exactly as they came. */
  passthrough(buf: Buffer, start: number, end: number): void;
  /**
   * A build-log line whose text, bytes [start, end) of buf, is already the body of a JSON string
   * (valid UTF-8, no escapes needed). Sinks that write JSON copy it without decoding; the text of
   * the event is that line plus "\n". Absent: the reader builds an ordinary build-log event.
   */
  rawLog?(source: Source, drv: string | null, buf: Buffer, start: number, end: number, time: number): void;
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
