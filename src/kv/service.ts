/**
 * The `Kv` RPC service every node serves on its RPC port: the store's
 * commands as typed methods (TypeBox schemas, checked on both ends), leases,
 * exactly-once sessions and watches as a server stream. {@link KvClient} is the
 * friendly way to call it; the raw stub works too:
 *
 * ```ts
 * const kv = rpc.client(KvService, nodeId('n1'));
 * const put = await kv.put({ key: kvKey('a'), value: kvKey('1'), session: { clientId: 'c1', seq: 1 } });
 * const got = await kv.range({ key: kvKey('a') });                  // linearizable (leader)
 * const any = await kv.range({ key: kvKey('a'), serializable: true }); // local state of any node
 * for await (const item of kv.watch({ key: kvKey('a'), startRevision: 1 })) console.log(item.events);
 * ```
 *
 * Errors are CohortErrors with stable codes: INVALID_ARGUMENT (shape, sizes,
 * malformed range, too many txn ops), NOT_FOUND (unknown lease), COMPACTED,
 * FAILED_PRECONDITION (future revision, stale session, a write reply too
 * large), SESSION_EXPIRED (unknown or expired session), OVERLOADED,
 * NO_SPACE (a put or txn past the storage quota, or while the NOSPACE alarm is
 * raised), and NOT_LEADER (definite, on a follower for writes and linearizable reads)
 * whose `details` name the leader: `leaderId` and `leaderRpc` ("host:port" of
 * its RPC port, when known), so a client redirects at once. A refused request
 * changes nothing.
 *
 * Writes carry `session: { clientId, seq }` (optional), `clientId` being a
 * session registered with `sessionOpen`: a retry with the same seq after an
 * indefinite error is answered from the session table, never applied twice;
 * an unknown or expired session gets a definite SESSION_EXPIRED (register
 * again; src/kv/core/sessions.ts).
 */
import { Type } from '@sinclair/typebox';
import type { Static, TSchema } from '@sinclair/typebox';
import { limits } from '../lib/limits.js';
import { defineService, serverStream, unary } from '../rpc/service.js';
import type {
  CompactResult,
  DeleteRangeResult,
  KvEvent,
  LeaseGrantResult,
  LeaseInfo,
  LeaseKeepAliveResult,
  LeaseRevokeResult,
  PutResult,
  RangeResult,
  SessionEndResult,
  SessionOpenResult,
  TxnResult,
} from './core/types.js';

const Key = Type.Uint8Array({ minByteLength: 1, maxByteLength: limits.kvKeyBytesMax });
const Value = Type.Uint8Array({ maxByteLength: limits.kvValueBytesMax });
const Rev = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const LeaseId = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const Flag = Type.Optional(Type.Boolean());

/** An exactly-once tag: client id and its sequence number (1, 2, 3...). */
export const SessionSchema = Type.Object({
  clientId: Type.String({ minLength: 1, maxLength: limits.kvClientIdCharsMax }),
  seq: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
});

const rangeFields = {
  key: Key,
  rangeEnd: Type.Optional(Key),
  limit: Type.Optional(Rev),
  sortTarget: Type.Optional(
    Type.Union([
      Type.Literal('key'),
      Type.Literal('version'),
      Type.Literal('createRevision'),
      Type.Literal('modRevision'),
      Type.Literal('value'),
    ]),
  ),
  sortOrder: Type.Optional(
    Type.Union([Type.Literal('none'), Type.Literal('ascend'), Type.Literal('descend')]),
  ),
  revision: Type.Optional(Rev),
  countOnly: Flag,
  keysOnly: Flag,
};
const putFields = {
  key: Key,
  value: Value,
  lease: Type.Optional(LeaseId),
  prevKv: Flag,
  ignoreValue: Flag,
  ignoreLease: Flag,
};
const deleteFields = { key: Key, rangeEnd: Type.Optional(Key), prevKv: Flag };

const CompareOp = Type.Union([
  Type.Literal('='),
  Type.Literal('!='),
  Type.Literal('<'),
  Type.Literal('>'),
  Type.Literal('<='),
  Type.Literal('>='),
]);
const Compare = Type.Union([
  Type.Object({
    target: Type.Literal('value'),
    key: Key,
    rangeEnd: Type.Optional(Key),
    op: CompareOp,
    value: Value,
  }),
  Type.Object({
    target: Type.Union([
      Type.Literal('version'),
      Type.Literal('createRevision'),
      Type.Literal('modRevision'),
      Type.Literal('lease'),
    ]),
    key: Key,
    rangeEnd: Type.Optional(Key),
    op: CompareOp,
    value: Rev,
  }),
]);

const txnOps = (self: TSchema): TSchema =>
  Type.Array(
    Type.Union([
      Type.Object({ type: Type.Literal('range'), ...rangeFields }),
      Type.Object({ type: Type.Literal('put'), ...putFields }),
      Type.Object({ type: Type.Literal('deleteRange'), ...deleteFields }),
      self,
    ]),
    { maxItems: limits.kvTxnOpsMax },
  );

/** A txn (nested txns allowed; the state machine bounds depth and the total op count). */
export const TxnSchema = Type.Recursive((self) =>
  Type.Object({
    type: Type.Literal('txn'),
    compare: Type.Array(Compare, { maxItems: limits.kvTxnOpsMax }),
    success: txnOps(self),
    failure: txnOps(self),
  }),
);

const KeyValueSchema = Type.Object({
  key: Type.Uint8Array(),
  value: Type.Uint8Array(),
  createRevision: Rev,
  modRevision: Rev,
  version: Rev,
  lease: LeaseId,
});

/**
 * A result as the state machine made it. Only its tag and revision are
 * checked on the client (the server built it from a typed core result); the
 * static type is the core's.
 */
function result<T>(type: string): TSchema & { static: T } {
  return Type.Unsafe<T>(
    Type.Object({ type: Type.Literal(type), revision: Rev }, { additionalProperties: true }),
  );
}

const LeaseInfoSchema = Type.Unsafe<LeaseInfo>(
  Type.Object({
    id: LeaseId,
    ttlMs: Rev,
    remainingMs: Rev,
    epoch: Rev,
    keys: Type.Optional(Type.Array(Type.Uint8Array())),
  }),
);

/** One message of a watch stream. */
export const WatchItemSchema = Type.Object({
  /**
   * Every event at or below this revision (on the watched keys) has been
   * sent: after `events`, the revision of the last event; on `created` and
   * `progress` items, the node's revision. Resume with `revision + 1`.
   */
  revision: Rev,
  /** Events, oldest first, all revisions > the previous item's `revision`. */
  events: Type.Array(
    Type.Unsafe<KvEvent>(Type.Object({ type: Type.String(), kv: KeyValueSchema })),
  ),
  /** The first item: the watch is registered. */
  created: Flag,
  /** A progress notification (no events). */
  progress: Flag,
});

/** One watch stream item. */
export type WatchItem = Static<typeof WatchItemSchema>;

/** Watch request: a key or range, from a start revision (absent: from now). */
export const WatchRequestSchema = Type.Object({
  key: Key,
  rangeEnd: Type.Optional(Key),
  /** First revision to deliver (>= 1); absent: only changes after the watch is created. */
  startRevision: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })),
  /** Include each event's previous key-value. */
  prevKv: Flag,
  /** Progress notification period in ms (default kvWatchProgressMsDefault; 0: none). */
  progressMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 3_600_000 })),
});

const session = Type.Optional(SessionSchema);

/**
 * One item of a `snapshot` stream: first `meta` (what the snapshot holds),
 * then the store's snapshot bytes in `data` chunks, last `sha256` (hex, of
 * all the data), so a reader knows it got all of it, unchanged.
 */
export const SnapshotItemSchema = Type.Object({
  meta: Type.Optional(
    Type.Object({
      /** The store's revision in the snapshot: every write up to it is in. */
      revision: Rev,
      /** The Raft log index it was taken at (the node's applied index). */
      index: Rev,
      /** Total bytes of data that follow. */
      bytes: Rev,
      /** The node that took it. */
      nodeId: Type.String({ maxLength: 256 }),
    }),
  ),
  data: Type.Optional(Type.Uint8Array({ maxByteLength: limits.kvSnapshotChunkBytes })),
  sha256: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$' })),
});

/** One item of a snapshot stream. */
export type SnapshotItem = Static<typeof SnapshotItemSchema>;

/** The KV store's RPC service (see the file comment). */
export const KvService = defineService('Kv', {
  range: unary(Type.Object({ ...rangeFields, serializable: Flag }), result<RangeResult>('range'), {
    idempotent: true,
    description:
      'read a key, range or prefix (linearizable on the leader; serializable: any node). Answers over kvRangeBytesMax are cut with more=true',
  }),
  put: unary(Type.Object({ ...putFields, session }), result<PutResult>('put'), {
    description: 'write one key',
  }),
  deleteRange: unary(
    Type.Object({ ...deleteFields, session }),
    result<DeleteRangeResult>('deleteRange'),
    { description: 'delete a key or a range' },
  ),
  txn: unary(
    Type.Object({
      compare: Type.Array(Compare, { maxItems: limits.kvTxnOpsMax }),
      success: txnOps(TxnSchema),
      failure: txnOps(TxnSchema),
      session,
    }),
    result<TxnResult>('txn'),
    { description: 'compare, then run the success or the failure ops at one revision' },
  ),
  compact: unary(Type.Object({ revision: Rev, session }), result<CompactResult>('compact'), {
    description: 'drop history below a revision',
  }),
  leaseGrant: unary(
    Type.Object({
      id: Type.Optional(LeaseId),
      ttlMs: Type.Integer({ minimum: limits.kvLeaseTtlMsMin, maximum: limits.kvLeaseTtlMsMax }),
      session,
    }),
    result<LeaseGrantResult>('leaseGrant'),
    { description: 'create a lease with a TTL' },
  ),
  leaseRevoke: unary(
    Type.Object({ id: LeaseId, session }),
    result<LeaseRevokeResult>('leaseRevoke'),
    {
      description: 'end a lease and delete its keys',
    },
  ),
  leaseKeepAlive: unary(
    Type.Object({ id: LeaseId, session }),
    result<LeaseKeepAliveResult>('leaseKeepAlive'),
    { description: 'renew a lease to its full TTL' },
  ),
  leaseTimeToLive: unary(
    Type.Object({ id: LeaseId, keys: Flag, serializable: Flag }),
    LeaseInfoSchema,
    { idempotent: true, description: "a lease's TTL left (the leader's clock) and keys" },
  ),
  leases: unary(
    Type.Object({ serializable: Flag }),
    Type.Object({ revision: Rev, leases: Type.Array(LeaseInfoSchema) }),
    { idempotent: true, description: 'every live lease' },
  ),
  sessionOpen: unary(
    Type.Object({
      ttlMs: Type.Optional(
        Type.Integer({ minimum: limits.kvSessionTtlMsMin, maximum: limits.kvSessionTtlMsMax }),
      ),
    }),
    result<SessionOpenResult>('sessionOpen'),
    {
      description:
        'register an exactly-once session: a fresh clientId for write sessions, expiring after ttlMs of log time idle',
    },
  ),
  sessionEnd: unary(
    Type.Object({ clientId: SessionSchema.properties.clientId }),
    result<SessionEndResult>('sessionEnd'),
    { idempotent: true, description: "forget a client's exactly-once session" },
  ),
  snapshot: serverStream(Type.Object({ serializable: Flag }), SnapshotItemSchema, {
    idempotent: true,
    description:
      "a consistent snapshot of the store (as of a linearizable read on the leader, or this node's state with serializable), streamed in chunks and checksummed (cohort snapshot save)",
  }),
  watch: serverStream(WatchRequestSchema, WatchItemSchema, {
    idempotent: true,
    description: 'events on a key or range from a revision, then live; progress notifications',
  }),
});

/** The KV service's definition type. */
export type KvServiceDef = typeof KvService;

/** A lease as the service reports it. */
export type LeaseInfoReply = Static<typeof LeaseInfoSchema>;
