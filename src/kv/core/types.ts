/**
 * The KV store's commands, results and events: plain data (Uint8Array, numbers,
 * strings, arrays, objects) that MessagePack encodes as is, so a command
 * travels in a Raft entry and a result in an RPC reply unchanged. The model
 * and its rules (revisions, ranges, compares on missing keys, nested txn
 * branches, leases) follow the etcd v3 API (etcd.io/docs/v3.5/learning/api/).
 *
 * Keys and values are bytes (`Uint8Array`), ordered bytewise (unsigned,
 * lexicographic, a shorter prefix first), as in etcd: a byte key space lets a
 * client store any encoding and makes prefix ranges exact. {@link kvKey} and
 * {@link kvText} convert to and from UTF-8 strings for convenience.
 *
 * Ranges follow etcd's convention: `key` alone is one key; `rangeEnd` makes the
 * half-open range `[key, rangeEnd)`; a `rangeEnd` of the single byte 0 means
 * "every key >= key". {@link prefixRange} and {@link fromKeyRange} build them.
 *
 * ```ts
 * const entry: KvEntry = {
 *   command: { type: 'put', key: kvKey('a'), value: kvKey('1'), prevKv: true },
 *   session: { clientId: 'c1', seq: 7 },
 * };
 * const out = sm.apply(entry);          // { ok: true, result: { type: 'put', revision, prevKv }, events }
 * const r = sm.read({ type: 'range', ...prefixRange(kvKey('app/')), limit: 10 });
 * ```
 */
import type { ErrorCode } from '../../lib/errors.js';

/** One key's state at some revision (etcd's mvccpb.KeyValue). Shared with the store: do not mutate. */
export interface KeyValue {
  readonly key: Uint8Array;
  /** Empty in keysOnly results. */
  readonly value: Uint8Array;
  /** Revision of the put that created the key (after its last delete). */
  readonly createRevision: number;
  /** Revision of the last put (or, in a DELETE event, of the delete). */
  readonly modRevision: number;
  /** Puts since creation, 1 for a new key; a delete resets it to 0. */
  readonly version: number;
  /** Attached lease id, 0 for none. */
  readonly lease: number;
}

/** Field a range result is sorted by. */
export type SortTarget = 'key' | 'version' | 'createRevision' | 'modRevision' | 'value';
/** Sort direction; 'none' keeps key order. */
export type SortOrder = 'none' | 'ascend' | 'descend';

/** Reads keys: one key, `[key, rangeEnd)`, or everything from `key` (rangeEnd = [0]). */
export interface RangeRequest {
  readonly type: 'range';
  readonly key: Uint8Array;
  readonly rangeEnd?: Uint8Array;
  /** Most keys returned; 0 or absent means no limit (`count` still counts all). */
  readonly limit?: number;
  readonly sortTarget?: SortTarget;
  readonly sortOrder?: SortOrder;
  /** Read as of this revision; 0 or absent means the current one. */
  readonly revision?: number;
  /** Return only `count`. */
  readonly countOnly?: boolean;
  /** Return keys with empty values. */
  readonly keysOnly?: boolean;
}

/** Writes one key (creating it or adding a version). */
export interface PutRequest {
  readonly type: 'put';
  readonly key: Uint8Array;
  /** Ignored (may be empty) when ignoreValue is set. */
  readonly value: Uint8Array;
  /** Lease to attach (0 or absent: none). Must exist, or NOT_FOUND and nothing is written. */
  readonly lease?: number;
  /** Return the key's previous state. */
  readonly prevKv?: boolean;
  /** Keep the current value (the key must exist, else NOT_FOUND). */
  readonly ignoreValue?: boolean;
  /** Keep the current lease (the key must exist, else NOT_FOUND). */
  readonly ignoreLease?: boolean;
}

/** Deletes one key or a range. */
export interface DeleteRangeRequest {
  readonly type: 'deleteRange';
  readonly key: Uint8Array;
  readonly rangeEnd?: Uint8Array;
  /** Return the deleted keys' last states. */
  readonly prevKv?: boolean;
}

/** Comparison operator of a txn compare (etcd has the first four; `<=` and `>=` save a negation). */
export type CompareOp = '=' | '!=' | '<' | '>' | '<=' | '>=';

/**
 * One txn guard on a key (or every key of a range). A missing key compares as
 * version, createRevision, modRevision and lease 0; a `value` compare on a
 * missing key is false (etcd's rule).
 */
export type Compare =
  | {
      readonly target: 'value';
      readonly key: Uint8Array;
      readonly rangeEnd?: Uint8Array;
      readonly op: CompareOp;
      readonly value: Uint8Array;
    }
  | {
      readonly target: 'version' | 'createRevision' | 'modRevision' | 'lease';
      readonly key: Uint8Array;
      readonly rangeEnd?: Uint8Array;
      readonly op: CompareOp;
      readonly value: number;
    };

/** An operation allowed inside a txn branch. */
export type TxnOp = RangeRequest | PutRequest | DeleteRangeRequest | TxnRequest;

/**
 * If every compare holds, run `success`, else `failure`; all of it at one
 * revision (writes bump the revision once). Branches of nested txns are chosen
 * against the state before the txn, as in etcd. A key may be written once per
 * txn (a put twice, or a put inside a delete range, is INVALID_ARGUMENT).
 */
export interface TxnRequest {
  readonly type: 'txn';
  readonly compare: readonly Compare[];
  readonly success: readonly TxnOp[];
  readonly failure: readonly TxnOp[];
}

/** Drops history below `revision`: past reads and event replays before it get COMPACTED. */
export interface CompactRequest {
  readonly type: 'compact';
  readonly revision: number;
}

/** Creates a lease; `id` absent or 0: the state machine picks the next free one. */
export interface LeaseGrantRequest {
  readonly type: 'leaseGrant';
  readonly id?: number;
  readonly ttlMs: number;
}

/** Ends a lease and deletes its keys at one revision. */
export interface LeaseRevokeRequest {
  readonly type: 'leaseRevoke';
  readonly id: number;
}

/** Renews a lease: its remaining TTL becomes its TTL again and its epoch advances. */
export interface LeaseKeepAliveRequest {
  readonly type: 'leaseKeepAlive';
  readonly id: number;
}

/**
 * The leader records each lease's remaining TTL as its clock sees it, so a
 * later leader does not give leases their whole TTL back (see leases.ts).
 * Unknown ids, and leases renewed since (epoch moved on: the checkpoint would
 * understate their TTL), are skipped; a remaining TTL above the lease's TTL
 * is cut to it.
 */
export interface LeaseCheckpointRequest {
  readonly type: 'leaseCheckpoint';
  readonly leases: readonly {
    readonly id: number;
    readonly remainingMs: number;
    readonly epoch: number;
  }[];
}

/**
 * The leader decided these leases expired. A lease whose epoch moved on (a
 * keep-alive was applied after the leader decided) or that is gone is skipped;
 * the rest are revoked, all their keys deleted at one revision.
 */
export interface LeaseExpireRequest {
  readonly type: 'leaseExpire';
  readonly leases: readonly { readonly id: number; readonly epoch: number }[];
}

/**
 * Registers an exactly-once session (Raft dissertation §6.3): the result
 * names a fresh `clientId` that no earlier session had; the client tags its
 * writes with it and seq 1, 2, 3... The session expires after `ttlMs`
 * (default kvSessionTtlMsDefault) of log time without a command. Not itself
 * de-duplicated: a retried registration makes a second session, which
 * expires unused.
 */
export interface SessionOpenRequest {
  readonly type: 'sessionOpen';
  /** Idle time (log time) before the session expires, kvSessionTtlMsMin..kvSessionTtlMsMax. */
  readonly ttlMs?: number;
  /**
   * The authenticated user opening it, set by the leader (never by the
   * client): the session is named `<owner>/<n>`, so the leader can tell that
   * only its owner uses it.
   */
  readonly owner?: string;
}

/** Forgets a client's exactly-once session (the client closed it). */
export interface SessionEndRequest {
  readonly type: 'sessionEnd';
  readonly clientId: string;
}

/** Every command the state machine applies. */
export type KvCommand =
  | RangeRequest
  | PutRequest
  | DeleteRangeRequest
  | TxnRequest
  | CompactRequest
  | LeaseGrantRequest
  | LeaseRevokeRequest
  | LeaseKeepAliveRequest
  | LeaseCheckpointRequest
  | LeaseExpireRequest
  | SessionOpenRequest
  | SessionEndRequest;

/**
 * Exactly-once tag: `clientId` is a session registered with
 * {@link SessionOpenRequest}; the client numbers its commands 1, 2, 3...;
 * the state machine applies each (clientId, seq) once and answers a retry
 * with the remembered outcome. An unknown or expired session is refused
 * with SESSION_EXPIRED. One command in flight per clientId (see sessions.ts).
 */
export interface SessionTag {
  readonly clientId: string;
  readonly seq: number;
}

/** What a Raft entry of the KV store carries. */
export interface KvEntry {
  readonly command: KvCommand;
  readonly session?: SessionTag;
  /**
   * The storage quota, in bytes, of the leader that proposed the entry (its
   * `--kv-quota-bytes`): a put or txn that would take the store past it is
   * refused with NO_SPACE and raises the NOSPACE alarm, and the alarm
   * disarms when an entry finds the store well below it (state-machine.ts).
   * Carried in the entry so every replica judges by the same number. Absent:
   * no quota check (a raised alarm still refuses writes).
   */
  readonly quotaBytes?: number;
  /**
   * Log time in ms, stamped by the leader that proposed the entry (its
   * monotonic clock carried on from the log's time when it took over). The
   * store's log time is the largest seen; sessions expire by it, so every
   * replica expires the same sessions at the same entry (Raft dissertation
   * §6.3). Absent: the log time does not move.
   */
  readonly timeMs?: number;
}

/** Answer to a {@link RangeRequest}. `revision` is the store's revision when read. */
export interface RangeResult {
  readonly type: 'range';
  readonly revision: number;
  /** Empty when countOnly. */
  readonly kvs: readonly KeyValue[];
  /** Keys in the range (before the limit). */
  readonly count: number;
  /** True if the limit cut the result. */
  readonly more: boolean;
}

/** Answer to a {@link PutRequest}. */
export interface PutResult {
  readonly type: 'put';
  readonly revision: number;
  readonly prevKv?: KeyValue;
}

/** Answer to a {@link DeleteRangeRequest}. */
export interface DeleteRangeResult {
  readonly type: 'deleteRange';
  readonly revision: number;
  readonly deleted: number;
  readonly prevKvs?: readonly KeyValue[];
}

/** Answer to a {@link TxnRequest}: which branch ran, and one result per op in it. */
export interface TxnResult {
  readonly type: 'txn';
  readonly revision: number;
  readonly succeeded: boolean;
  readonly responses: readonly TxnOpResult[];
}

/** Result of one op inside a txn. */
export type TxnOpResult = RangeResult | PutResult | DeleteRangeResult | TxnResult;

/** Answer to a {@link CompactRequest}. */
export interface CompactResult {
  readonly type: 'compact';
  readonly revision: number;
  readonly compactedRevision: number;
}

/** Answer to a {@link LeaseGrantRequest}. */
export interface LeaseGrantResult {
  readonly type: 'leaseGrant';
  readonly revision: number;
  readonly id: number;
  readonly ttlMs: number;
}

/** Answer to a {@link LeaseRevokeRequest}. */
export interface LeaseRevokeResult {
  readonly type: 'leaseRevoke';
  readonly revision: number;
  readonly deleted: number;
}

/** Answer to a {@link LeaseKeepAliveRequest}. */
export interface LeaseKeepAliveResult {
  readonly type: 'leaseKeepAlive';
  readonly revision: number;
  readonly id: number;
  readonly ttlMs: number;
  readonly epoch: number;
}

/** Answer to a {@link LeaseCheckpointRequest}. */
export interface LeaseCheckpointResult {
  readonly type: 'leaseCheckpoint';
  readonly revision: number;
}

/** Answer to a {@link LeaseExpireRequest}: the leases actually revoked. */
export interface LeaseExpireResult {
  readonly type: 'leaseExpire';
  readonly revision: number;
  readonly expired: readonly number[];
  readonly deleted: number;
}

/** Answer to a {@link SessionOpenRequest}: the new session's id and TTL. */
export interface SessionOpenResult {
  readonly type: 'sessionOpen';
  readonly revision: number;
  readonly clientId: string;
  readonly ttlMs: number;
}

/** Answer to a {@link SessionEndRequest}. */
export interface SessionEndResult {
  readonly type: 'sessionEnd';
  readonly revision: number;
  readonly existed: boolean;
}

/** Every result, tagged like its command. */
export type KvResult =
  | RangeResult
  | PutResult
  | DeleteRangeResult
  | TxnResult
  | CompactResult
  | LeaseGrantResult
  | LeaseRevokeResult
  | LeaseKeepAliveResult
  | LeaseCheckpointResult
  | LeaseExpireResult
  | SessionOpenResult
  | SessionEndResult;

/**
 * A change a watcher sees. `kv.modRevision` is the event's revision; a DELETE's
 * kv has the key, an empty value and zero version/createRevision/lease.
 * `prevKv` is the key's state before the change, if it existed and its history
 * was not compacted (the server strips it for watchers that did not ask).
 */
export interface KvEvent {
  readonly type: 'PUT' | 'DELETE';
  readonly kv: KeyValue;
  readonly prevKv?: KeyValue;
}

/** A refused command, as plain data (what a session remembers and a reply carries). */
export interface KvFailure {
  readonly code: ErrorCode;
  readonly message: string;
  /** False when the command may have taken effect (a result too large to keep, see sessions.ts). */
  readonly definite: boolean;
  readonly details: Readonly<Record<string, unknown>>;
}

/**
 * What applying one entry did. A refused command changed nothing (its error
 * is definite) except that its session remembers the refusal. `duplicate`
 * marks an answer replayed from the session table: nothing was applied again
 * and `events` is empty. `revision` is the store's revision afterwards.
 */
export type KvApplied =
  | {
      readonly ok: true;
      readonly result: KvResult;
      readonly events: readonly KvEvent[];
      readonly revision: number;
      readonly duplicate: boolean;
    }
  | {
      readonly ok: false;
      readonly error: KvFailure;
      readonly revision: number;
      readonly duplicate: boolean;
    };

/** A lease as {@link KvStateMachine.leaseTimeToLive} reports it. */
export interface LeaseInfo {
  readonly id: number;
  readonly ttlMs: number;
  /** Remaining TTL as last replicated (a keep-alive sets it to ttlMs; checkpoints lower it). */
  readonly remainingMs: number;
  /** Advanced by every keep-alive; a leaseExpire naming an older epoch is skipped. */
  readonly epoch: number;
  /** Attached keys in byte order, when asked for. */
  readonly keys?: readonly Uint8Array[];
}
