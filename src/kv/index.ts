/**
 * `cohort/kv`: the client side of cohort's replicated key-value store — the
 * {@link KvClient}, its options and result types, byte helpers, optimistic
 * transactions, and the lock and election recipes. `cohort` exports the same
 * names.
 *
 * ```ts
 * import { Election, KvClient, Lock } from 'cohort/kv';
 * const kv = await KvClient.connect({ endpoints: ['n1=127.0.0.1:7201', 'n2=127.0.0.1:7202'] });
 * await kv.put('a', '1', { timeoutMs: 2_000 });
 * console.log(await kv.getText('a'));                 // '1'
 * const held = await new Lock(kv, 'jobs').acquire();  // fencingToken, lost, release()
 * await held.release();
 * const term = await new Election(kv, 'scheduler').campaign('node-a');
 * await term.resign();
 * await kv.close();
 * ```
 */
export {
  KvClient,
  kvPair,
  parseKvEndpoint,
  toBytes as kvBytes,
  toCompare as kvCompare,
  toTxnOp as kvTxnOp,
  toTxnRequest as kvTxnRequest,
} from './client.js';
export type {
  Bytes as KvBytes,
  CasExpected as KvCasExpected,
  CasResult as KvCasResult,
  DeleteOptions as KvDeleteOptions,
  KvCallOptions,
  KvClientOptions,
  KvClientTransport,
  KvCompare,
  KvDeleteResult,
  KvEndpoint,
  KvPair,
  KvPutResult,
  KvRangeResult,
  KvReady,
  KvTxn,
  KvTxnOp,
  KvTxnOpResult,
  KvTxnResult,
  KvWatchEvent,
  LeaseKeeper,
  LeaseLostReason,
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
