// @drover/worker: the scheduler behind drover-build, and the wire formats it speaks.
export * from './hook-protocol.js';
export * from './trace-lines.js';
export * from './scheduler.js';
export * from './options.js';
export * from './failure.js';
export * from './references.js';
export * from './system.js';
export * from './dag-gen.js';
