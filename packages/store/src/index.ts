// @drover/store: the public API every drover package builds on.
export * from './errors.js';
export * from './hash.js';
export * from './store-path.js';
export * from './nar.js';
export * from './byte-reader.js';
export * from './config.js';
export * from './db.js';
export * from './locks.js';
export * from './store.js';
