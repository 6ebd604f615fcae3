// @drover/trace: the trace line grammar drover-build writes, and the reader and outputs of drover-trace.
export { DROVER_VERBS, parseTraceLine, formatTraceLine, type DroverTraceLine, type DroverVerb } from '@drover/worker/trace-lines';
export * from './events.js';
export { TraceError, TraceUsageError } from './errors.js';
export { TraceReader, parseTrace, type ReaderOptions } from './reader.js';
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

