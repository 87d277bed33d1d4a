/** The KV store's pure core: commands and results, the MVCC keyspace, leases, sessions and the state machine. */
export * from './types.js';
export * from './bytes.js';
export * from './state-machine.js';
export * from './codec.js';
export { LeaseClock } from './lease-clock.js';
export { LeaseTable } from './leases.js';
export type { Lease } from './leases.js';
export { SessionTable } from './sessions.js';
export type { SessionOutcome, SessionRecord, SessionCheck } from './sessions.js';
