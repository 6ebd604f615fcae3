// @drover/trace: the trace line grammar drover-build writes, and the reader and outputs of drover-trace.
export * from './trace-format.js';
export * from './events.js';
export { TraceError, TraceUsageError } from './errors.js';
export { TraceReader, type ReaderOptions } from './reader.js';
export type { TraceSink } from './sink.js';
export { TeeSink } from './sink.js';
export { ACTIVITY_TYPES, RESULT_TYPES } from './nix-json.js';
export { parseBuildLogHeader } from './guix.js';
export { Tracker, type BuildInfo, type BuildState, type Estimator } from './tracker.js';
export { History } from './history.js';
export { Output } from './output.js';
export { JsonRenderer, eventJson } from './render-json.js';
export { PlainRenderer } from './render-plain.js';
export { SummaryRenderer } from './render-summary.js';
export { TtyRenderer } from './render-tty.js';
export { runTrace, FORMATS, type Format, type RunOptions } from './run.js';
export { drvName, formatDuration } from './names.js';

import type { TraceEvent } from './events.js';
import { TraceReader } from './reader.js';

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
