/**
 * cohort's public API. Import from 'cohort':
 *
 * ```ts
 * import { CohortError, seededRandom, nodeId, KvClient } from 'cohort';
 * ```
 */
export * from './lib/index.js';
export * from './clock/index.js';
export * from './wire/index.js';
export * from './transport/index.js';
export * from './rpc/index.js';
export { version } from './version.js';
export { KvClient, parseKvEndpoint } from './kv/client.js';
export type {
  Bytes as KvBytes,
  DeleteOptions as KvDeleteOptions,
  KvClientOptions,
  KvEndpoint,
  LeaseKeeper,
  PutOptions as KvPutOptions,
  RangeOptions as KvRangeOptions,
  ReadOptions as KvReadOptions,
  WatchBatch as KvWatchBatch,
  WatchOptions as KvWatchOptions,
} from './kv/client.js';
export { KvService } from './kv/service.js';
export {
  kvKey,
  kvText,
  prefixRange,
  fromKeyRange,
  prefixEnd,
  RANGE_END_ALL,
} from './kv/core/bytes.js';
export type * from './kv/core/types.js';
export { runOptimisticTxn } from './kv/optimistic-txn.js';
export type {
  OptimisticTxn,
  OptimisticTxnOutcome,
  OptimisticTxnOptions,
} from './kv/optimistic-txn.js';
