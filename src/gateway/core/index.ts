/** The gateway's pure core: the picker and health of a farm, the failover rules, replicated-call combining. */
export * from './combine.js';
export * from './failover.js';
export * from './farm.js';
export * from './hash-ring.js';
export * from './health.js';
