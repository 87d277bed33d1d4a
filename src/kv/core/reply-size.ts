/**
 * How many bytes a result will take on the wire, estimated from its keys and
 * values: what the reply caps (a range answer cut at kvRangeBytesMax, a write
 * whose reply would be larger refused before it changes anything) and the
 * session table's cap on a remembered result count. Deterministic: every
 * replica computes the same number for the same result.
 *
 * ```ts
 * resultBytes({ type: 'deleteRange', revision: 9, deleted: 2, prevKvs });  // keys + values + 2 × overhead
 * kvBytes(key.length, value.length);                                       // one KeyValue
 * ```
 */
import { assertNever } from '../../lib/assert.js';
import type { KeyValue, KvResult, TxnOpResult } from './types.js';

/**
 * Bytes one KeyValue takes on the wire beyond its key and value: a
 * MessagePack map of six named fields (~45 bytes of names), four numbers of
 * up to 9 bytes and two byte headers (~95 bytes at most). Counting it keeps
 * a reply of many tiny keys from passing a cap meant for its payload.
 */
export const KV_OVERHEAD_BYTES = 96;

/** Bytes of a fixed-size result (type, revision, counts) outside its key-values. */
const RESULT_BASE_BYTES = 64;

/** The wire bytes of one KeyValue with a key and value of these lengths. */
export function kvBytes(keyBytes: number, valueBytes: number): number {
  return keyBytes + valueBytes + KV_OVERHEAD_BYTES;
}

function kvOf(kv: KeyValue | undefined): number {
  return kv === undefined ? 0 : kvBytes(kv.key.length, kv.value.length);
}

/** The estimated wire bytes of `r` (its key-values, prevKv(s) and nested responses). */
export function resultBytes(r: KvResult | TxnOpResult): number {
  switch (r.type) {
    case 'range': {
      let n = RESULT_BASE_BYTES;
      for (const kv of r.kvs) n += kvOf(kv);
      return n;
    }
    case 'put':
      return RESULT_BASE_BYTES + kvOf(r.prevKv);
    case 'deleteRange': {
      let n = RESULT_BASE_BYTES;
      for (const kv of r.prevKvs ?? []) n += kvOf(kv);
      return n;
    }
    case 'txn': {
      let n = RESULT_BASE_BYTES;
      for (const x of r.responses) n += resultBytes(x);
      return n;
    }
    case 'leaseExpire':
      return RESULT_BASE_BYTES + 9 * r.expired.length;
    case 'compact':
    case 'leaseGrant':
    case 'leaseRevoke':
    case 'leaseKeepAlive':
    case 'leaseCheckpoint':
    case 'sessionOpen':
    case 'sessionEnd':
      return RESULT_BASE_BYTES;
    default:
      return assertNever(r);
  }
}
