/**
 * `cohort/kv`: the client side of cohort's replicated key-value store — the
 * {@link KvClient}, its options and result types, byte helpers, optimistic
 * transactions, and the lock and election recipes. `cohort` exports the same
 * names.
 *
 * ```ts
 * import { Election, KvClient, Lock, kvText } from 'cohort/kv';
 * const kv = await KvClient.connect({ endpoints: ['n1=127.0.0.1:7201', 'n2=127.0.0.1:7202'] });
 * const held = await new Lock(kv, 'jobs').acquire();  // fencingToken, lost, release()
 * await held.release();
 * const term = await new Election(kv, 'scheduler').campaign('node-a');
 * await term.resign();
 * await kv.close();
 * ```
 */
export { KvClient, parseKvEndpoint } from './client.js';
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
} from './client.js';
export { KvService } from './service.js';
export {
  kvKey,
  kvText,
  prefixRange,
  fromKeyRange,
  prefixEnd,
  RANGE_END_ALL,
} from './core/bytes.js';
export type * from './core/types.js';
export { runOptimisticTxn } from './optimistic-txn.js';
export type {
  OptimisticTxn,
  OptimisticTxnOutcome,
  OptimisticTxnOptions,
} from './optimistic-txn.js';
export { Lock } from './recipes/lock.js';
export type { HeldLock, LockOptions } from './recipes/lock.js';
export { Election } from './recipes/election.js';
export type { LeaderInfo, Leadership } from './recipes/election.js';
