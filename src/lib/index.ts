/** The lowest layer: invariants, randomness, time, ids, limits, errors, rendering. */
export * from './assert.js';
export * from './random.js';
export * from './clock.js';
export * from './ids.js';
export * from './limits.js';
export * from './errors.js';
export * from './describe.js';
export * from './crc32c.js';
export * from './log-limiter.js';
