/**
 * The KV client: talks to a cohort cluster's {@link KvService}, finds the
 * leader, follows NOT_LEADER redirects, and retries by the definite /
 * indefinite rules (DESIGN.md, Errors) so an application sees each write
 * applied exactly once.
 *
 * ```ts
 * import { KvClient } from 'cohort/kv';
 * const kv = await KvClient.connect({ endpoints: ['n1=127.0.0.1:7201', 'n2=127.0.0.1:7202'] });
 * await kv.ready();                                  // a leader answers (else a clear error)
 * await kv.put('greeting', 'hello');                 // strings or bytes, everywhere
 * console.log(await kv.getText('greeting'));         // 'hello' (undefined if absent)
 * const v = await kv.get('greeting', { timeoutMs: 500 }); // v.text, v.keyText, v.value (bytes)
 * await kv.putIfAbsent('owner', 'me');               // { succeeded, revision, current }
 * await kv.cas('owner', 'me', 'you');                // compare-and-set on the value
 * await kv.txn({
 *   compare: [{ target: 'value', key: 'a', op: '>=', value: '1' }],
 *   success: [{ type: 'put', key: 'a', value: '2' }],
 *   failure: [{ type: 'get', key: 'a' }],
 * });
 * const { id } = await kv.leaseGrant(10_000);
 * const keeper = kv.keepAlive(id);                   // renews every ttl/3 until stopped
 * for await (const batch of kv.watch('svc/', { prefix: true, startRevision: 1 })) {
 *   for (const ev of batch.events) console.log(ev.type, ev.kv.keyText, ev.kv.text);
 * }
 * keeper.stop();
 * await kv.close();
 * ```
 *
 * **Every call ends** with its result or a {@link CohortError} by its
 * deadline: `timeoutMs` or `deadline` per call (default the client's
 * `callTimeoutMs`, 10 s), and an `AbortSignal` cancels it. While a call is
 * pending the client keeps the process alive (Clock.hold), so a script whose
 * only work is `await kv.put(...)` does not exit before the answer; an idle
 * client holds nothing. The error says what happened:
 * - `UNAVAILABLE` (definite): no node could be reached — every endpoint's
 *   reason is in the message and `details.endpoints` (connection refused,
 *   unreachable, no connection in time);
 * - `HANDSHAKE_FAILED` (definite): the endpoints answer, but as another
 *   cluster (or node id) than the client's `clusterId`;
 * - `TIMEOUT` (indefinite): requests went out and no answer came in time;
 * - `NOT_LEADER`: definite with `details.reason` NOT_LEADER (no leader could
 *   take it; nothing done), indefinite with LEADERSHIP_LOST (a leader took it
 *   and lost its leadership: it may still apply). The messages differ too.
 * `err.definite` is the rule for a retry: definite means it did not happen.
 *
 * Retries inside a call:
 * - a node is dialed before a request is sent to it (a request is never
 *   queued on a link that might open after the call gave up);
 * - errors about where the call went (NOT_LEADER, UNAVAILABLE, CLOSED,
 *   CIRCUIT_OPEN, OVERLOADED, a refused or failed connection) are retried on
 *   the hinted leader or the next endpoint, with a small backoff while no
 *   leader is known;
 * - indefinite errors (TIMEOUT, CONNECTION_LOST, a leader lost mid-way) are
 *   retried for reads and for writes under the SAME session sequence number,
 *   so the state machine answers a write that did apply from its session
 *   table instead of applying it again;
 * - SESSION_EXPIRED: the client registers a new session and retries the
 *   write if no attempt of it can have applied (or it is a keep-alive);
 *   otherwise it fails with an indefinite SESSION_EXPIRED
 *   (`details.earlierAttemptUncertain`);
 * - anything else (INVALID_ARGUMENT, NOT_FOUND, COMPACTED, ...) is the
 *   answer and is thrown at once. A call that gives up after an attempt that
 *   may have applied fails indefinitely, whatever its last error.
 *
 * Sessions: each lane registers one with the cluster (`sessionOpen`) before
 * its first write; a session allows one command in flight, so the client
 * keeps a pool of lanes (up to `lanesMax`). `close()` ends them.
 *
 * Time comes from `options.clock`, randomness (the client's name) from
 * `options.random` and the connections from `options.transport` when given,
 * so a simulator can drive the client under its own faults.
 */
import { createHash, randomBytes } from 'node:crypto';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { RealClock } from '../lib/clock.js';
import type { Clock } from '../lib/clock.js';
import { CohortError, isCohortError } from '../lib/errors.js';
import type { ErrorCode } from '../lib/errors.js';
import { clusterId as toClusterId, isValidId, nodeId } from '../lib/ids.js';
import type { NodeId } from '../lib/ids.js';
import { limits } from '../lib/limits.js';
import type { Random } from '../lib/random.js';
import { rpcCodec } from '../rpc/messages.js';
import type { RpcWireMessage } from '../rpc/messages.js';
import { RpcNode } from '../rpc/node.js';
import type { RpcNodeOptions } from '../rpc/node.js';
import type { Client } from '../rpc/service.js';
import { TcpTransport } from '../transport/tcp-transport.js';
import type { PeerAddress } from '../transport/tcp-transport.js';
import { resolveUserTls } from '../trust/client-tls.js';
import type { ClientTlsOptions } from '../trust/client-tls.js';
import { clusterTarget } from '../trust/cluster-file.js';
import { connectionId } from '../trust/identity.js';
import type { Transport } from '../transport/transport.js';
import { kvKey, kvText, prefixRange, RANGE_END_ALL } from './core/bytes.js';
import type {
  CompactResult,
  Compare,
  CompareOp,
  DeleteRangeResult,
  KeyValue,
  KvEvent,
  LeaseGrantResult,
  LeaseInfo,
  LeaseKeepAliveResult,
  LeaseRevokeResult,
  PutResult,
  RangeRequest,
  RangeResult,
  SessionTag,
  TxnOp,
  TxnOpResult,
  TxnRequest,
  TxnResult,
} from './core/types.js';
import { runOptimisticTxn } from './optimistic-txn.js';
import type {
  OptimisticTxn,
  OptimisticTxnOptions,
  OptimisticTxnOutcome,
} from './optimistic-txn.js';
import { KvService } from './service.js';
import type { SnapshotItem } from './service.js';

/** A key or value: bytes, or a string taken as UTF-8. Every method takes either. */
export type Bytes = Uint8Array | string;

/** One node's RPC endpoint: `"n1=127.0.0.1:7201"` or an object. */
export type KvEndpoint =
  string | { readonly id: string; readonly host: string; readonly port: number };

/**
 * The connections a client runs over (default: a dial-only TCP transport the
 * client makes). A simulator passes its own; `setPeer` (learning a leader's
 * address from a redirect) and `connect` (dial before sending, see the file
 * comment) are used when present.
 */
export interface KvClientTransport extends Transport<RpcWireMessage> {
  setPeer?(id: NodeId, address: PeerAddress): void;
  connect?(peer: NodeId, timeoutMs: number): Promise<void>;
}

/** Options of {@link KvClient.connect}: where the cluster is and how to reach it. */
export interface KvClientOptions {
  /** RPC endpoints of some or all nodes (ids must match the nodes' ids); default: the `cluster`'s. */
  readonly endpoints?: readonly KvEndpoint[];
  /** The cluster id (default: the `cluster`'s, else 'cohort-local', what `cohort up` uses). */
  readonly clusterId?: string;
  /**
   * Mutual TLS: the cluster's CA, this client's (user) certificate and its
   * key, each a file path or the PEM (default: the `cluster`'s). A TLS
   * cluster refuses clients without one; a node's certificate is refused here.
   */
  readonly tls?: ClientTlsOptions;
  /**
   * The directory of a cluster started by `cohort up` (e.g. '.cohort'): its
   * cluster.json gives the endpoints, the cluster id and the client
   * certificate, unless given here.
   */
  readonly cluster?: string;
  /**
   * A name for this client (default: `kv-` + 12 random hex digits). Session
   * ids are assigned by the cluster when each lane registers, so a restarted
   * client may reuse its name.
   */
  readonly clientId?: string;
  /** Idle time (log time) after which the cluster expires a lane's session (default kvSessionTtlMsDefault). */
  readonly sessionTtlMs?: number;
  /** Time source for deadlines, backoff and timers (default: the process clock). */
  readonly clock?: Clock;
  /**
   * Randomness for the default client id and the RPC node (default: the
   * operating system's), so a simulated client is a function of its seed.
   */
  readonly random?: Random;
  /**
   * The connections (default: TCP to the endpoints); see {@link KvClientTransport}.
   * The simulator passes one onto its network: endpoint addresses are then
   * not used, and a redirect to a node not among the endpoints is not
   * followed unless the transport has `setPeer`.
   */
  readonly transport?: KvClientTransport;
  /** Deadline of one attempt on one node, in ms (default 2000). */
  readonly timeoutMs?: number;
  /** Default deadline of a whole call, retries included, in ms (default 10000). */
  readonly callTimeoutMs?: number;
  /** Old name of `callTimeoutMs`. */
  readonly retryMs?: number;
  /**
   * Do not wait in `connect()` for a connection (default false: `connect()`
   * dials every endpoint and resolves once one of them accepts the client,
   * or fails with why none did).
   */
  readonly lazy?: boolean;
  /** Most session lanes, i.e. concurrent writes (default kvClientLanesMax). */
  readonly lanesMax?: number;
  /** RPC node options (interceptors for tests, pending-call bounds). */
  readonly rpc?: RpcNodeOptions;
  readonly logger?: Logger;
}

/** Per-call options: when to give up, and cancellation. */
export interface KvCallOptions {
  /** Give up after this many ms, retries included (default: the client's `callTimeoutMs`). */
  readonly timeoutMs?: number;
  /** Give up at this time (a Date, or ms since the epoch like `Date.now()`); with timeoutMs, the earlier. */
  readonly deadline?: Date | number;
  /** Cancels the call: CANCELLED, definite unless an attempt may already have applied. */
  readonly signal?: AbortSignal;
}

/** Read options. */
export interface ReadOptions extends KvCallOptions {
  /** Read the local state of whichever node answers (maybe stale), not a linearizable read. */
  readonly serializable?: boolean;
  /** Read as of this past revision. */
  readonly revision?: number;
}

/** Range options (on top of {@link ReadOptions}). */
export interface RangeOptions extends ReadOptions {
  /** Every key with `key` as prefix. */
  readonly prefix?: boolean;
  /** End of a `[key, rangeEnd)` range (or RANGE_END_ALL). */
  readonly rangeEnd?: Bytes;
  readonly limit?: number;
  readonly sortTarget?: RangeRequest['sortTarget'];
  readonly sortOrder?: RangeRequest['sortOrder'];
  readonly countOnly?: boolean;
  readonly keysOnly?: boolean;
}

/** Put options. */
export interface PutOptions extends KvCallOptions {
  readonly lease?: number;
  readonly prevKv?: boolean;
  readonly ignoreValue?: boolean;
  readonly ignoreLease?: boolean;
}

/** Delete options. */
export interface DeleteOptions extends KvCallOptions {
  readonly prefix?: boolean;
  readonly rangeEnd?: Bytes;
  readonly prevKv?: boolean;
}

/** Watch options. */
export interface WatchOptions {
  /** Watch every key with this prefix. */
  readonly prefix?: boolean;
  /** Watch `[key, rangeEnd)`. */
  readonly rangeEnd?: Bytes;
  /** First revision to deliver (default: changes after the watch starts). */
  readonly startRevision?: number;
  /** Include each event's previous key-value. */
  readonly prevKv?: boolean;
  /** Also yield progress notifications (batches with no events). */
  readonly progress?: boolean;
  /** Server progress notification period in ms (default kvWatchProgressMsDefault). */
  readonly progressMs?: number;
  /**
   * How long the watch keeps trying to reach the cluster after its stream
   * broke (or before the first one opened), in ms, before it throws the last
   * error (default: the client's `callTimeoutMs`).
   */
  readonly timeoutMs?: number;
  /** Stops the watch (the iterator ends). */
  readonly signal?: AbortSignal;
}

/** A key-value pair as the client returns it: the stored bytes plus their UTF-8 text. */
export interface KvPair extends KeyValue {
  /** The value as UTF-8 text. */
  readonly text: string;
  /** The key as UTF-8 text. */
  readonly keyText: string;
}

/** A change a watcher sees, with text helpers on its pairs. */
export interface KvWatchEvent extends KvEvent {
  readonly kv: KvPair;
  readonly prevKv?: KvPair;
}

/** What a watch yields: events at revisions > the previous batch's `revision`, oldest first. */
export interface WatchBatch {
  /** Every event up to this revision has been delivered. */
  readonly revision: number;
  readonly events: readonly KvWatchEvent[];
  /** A progress notification (no events). */
  readonly progress: boolean;
}

/** A range result with text helpers on its pairs. */
export interface KvRangeResult extends RangeResult {
  readonly kvs: readonly KvPair[];
}
/** A put result with text helpers on its previous pair. */
export interface KvPutResult extends PutResult {
  readonly prevKv?: KvPair;
}
/** A delete result with text helpers on its previous pairs. */
export interface KvDeleteResult extends DeleteRangeResult {
  readonly prevKvs?: readonly KvPair[];
}
/** A result of one op inside a txn. */
export type KvTxnOpResult = KvRangeResult | KvPutResult | KvDeleteResult | KvTxnResult;
/** A txn result with text helpers on every pair in it. */
export interface KvTxnResult extends TxnResult {
  readonly responses: readonly KvTxnOpResult[];
}

/**
 * A txn guard (keys and values as strings or bytes). A missing key compares
 * as version, createRevision, modRevision and lease 0; a value compare on a
 * missing key is false.
 */
export type KvCompare =
  | {
      readonly target: 'value';
      readonly key: Bytes;
      readonly rangeEnd?: Bytes;
      readonly op: CompareOp;
      readonly value: Bytes;
    }
  | {
      readonly target: 'version' | 'createRevision' | 'modRevision' | 'lease';
      readonly key: Bytes;
      readonly rangeEnd?: Bytes;
      readonly op: CompareOp;
      readonly value: number;
    };

/** An op of a txn branch (keys and values as strings or bytes; `get` and `delete` are short names). */
export type KvTxnOp =
  | {
      readonly type: 'range' | 'get';
      readonly key: Bytes;
      readonly prefix?: boolean;
      readonly rangeEnd?: Bytes;
      readonly limit?: number;
      readonly sortTarget?: RangeRequest['sortTarget'];
      readonly sortOrder?: RangeRequest['sortOrder'];
      readonly revision?: number;
      readonly countOnly?: boolean;
      readonly keysOnly?: boolean;
    }
  | {
      readonly type: 'put';
      readonly key: Bytes;
      readonly value: Bytes;
      readonly lease?: number;
      readonly prevKv?: boolean;
      readonly ignoreValue?: boolean;
      readonly ignoreLease?: boolean;
    }
  | {
      readonly type: 'deleteRange' | 'delete';
      readonly key: Bytes;
      readonly prefix?: boolean;
      readonly rangeEnd?: Bytes;
      readonly prevKv?: boolean;
    }
  | ({ readonly type: 'txn' } & KvTxn);

/** A txn: if every `compare` holds run `success`, else `failure`, at one revision. */
export interface KvTxn {
  readonly compare?: readonly KvCompare[];
  readonly success?: readonly KvTxnOp[];
  readonly failure?: readonly KvTxnOp[];
}

/** What {@link KvClient.cas} expects the key to hold: a value, absence (`null`), or a version. */
export type CasExpected =
  Bytes | null | { readonly version: number } | { readonly modRevision: number };

/** The answer of {@link KvClient.cas} and {@link KvClient.putIfAbsent}. */
export interface CasResult {
  /** True if the expectation held and the value was written. */
  readonly succeeded: boolean;
  /** The store's revision after the txn (the write's revision if it succeeded). */
  readonly revision: number;
  /** When it failed: what the key holds (undefined: absent). */
  readonly current?: KvPair;
  /** When it succeeded with `prevKv`: what the key held before. */
  readonly prevKv?: KvPair;
}

/** What a snapshot holds (see {@link KvClient.snapshot}). */
export interface KvSnapshotInfo {
  /** The store's revision: every write up to it is in the snapshot. */
  readonly revision: number;
  /** The Raft log index it was taken at. */
  readonly index: number;
  /** Bytes of snapshot data. */
  readonly bytes: number;
  /** The node that took it. */
  readonly nodeId: string;
  /** SHA-256 of the data (hex), checked on arrival. */
  readonly sha256: string;
}

/** What {@link KvClient.ready} found. */
export interface KvReady {
  /** The store's revision, read linearizably (through the leader). */
  readonly revision: number;
  /** The node that answered as leader, if known. */
  readonly leader: string | undefined;
}

/** A running keep-alive loop (see {@link KvClient.keepAlive}). */
export interface LeaseKeeper {
  /** Stops renewing (the lease then expires after its TTL unless revoked). */
  stop(): void;
  /** Resolves when the loop ends: `'stopped'`, or `'lost'` when the lease is gone or may be. */
  readonly done: Promise<'stopped' | 'lost'>;
}

/**
 * Why a lease is lost: the cluster says it no longer exists (`'expired'`:
 * expired or revoked), or no renewal succeeded for a whole TTL
 * (`'unreachable'`: the cluster may already have expired it, and another
 * client may hold what the lease guarded).
 */
export type LeaseLostReason = 'expired' | 'unreachable';

/** Deadline of one attempt unless the options say otherwise. */
const defaultTimeoutMs = 2_000;
/** Deadline of a whole call unless the options say otherwise. */
const defaultCallTimeoutMs = 10_000;

/** How long a node that failed to answer is skipped by round-robin and redirects. */
const suspectMs = 300;

/** Codes retried on another node (they say nothing about the request itself). */
const routingCodes: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'NOT_LEADER',
  'UNAVAILABLE',
  'CLOSED',
  'CIRCUIT_OPEN',
  'OVERLOADED',
  'TIMEOUT',
  'CONNECTION_LOST',
  'CANCELLED',
  'HANDSHAKE_FAILED',
]);

/** UTF-8 bytes of a string; bytes as they are. */
export function toBytes(b: Bytes): Uint8Array {
  return typeof b === 'string' ? kvKey(b) : b;
}

/** Parses an endpoint (`id=host:port` or an object). */
export function parseKvEndpoint(e: KvEndpoint): { id: NodeId; address: PeerAddress } {
  if (typeof e !== 'string') return { id: nodeId(e.id), address: { host: e.host, port: e.port } };
  const eq = e.indexOf('=');
  const colon = e.lastIndexOf(':');
  const id = e.slice(0, eq);
  const port = Number(e.slice(colon + 1));
  if (
    eq <= 0 ||
    colon <= eq + 1 ||
    !isValidId(id) ||
    !Number.isInteger(port) ||
    port < 1 ||
    port > 65535
  ) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      `endpoint ${JSON.stringify(e)}: expected id=host:port`,
      {
        details: { field: 'endpoints' },
      },
    );
  }
  return { id: nodeId(id), address: { host: e.slice(eq + 1, colon), port } };
}

function parseAddress(text: unknown): PeerAddress | undefined {
  if (typeof text !== 'string') return undefined;
  const i = text.lastIndexOf(':');
  const port = Number(text.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { host: text.slice(0, i), port };
}

/** Resolves after `ms` on `clock`, or at once when `signal` aborts. */
function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) {
      resolve();
      return;
    }
    const t = clock.setTimer(Math.max(0, ms), done);
    signal?.addEventListener('abort', done, { once: true });
    function done(): void {
      clock.clearTimer(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });
}

/** The pair with its text helpers (a copy: results may share objects with a store). */
const pairProto: object = Object.create(Object.prototype, {
  text: {
    get(this: KeyValue): string {
      return kvText(this.value);
    },
  },
  keyText: {
    get(this: KeyValue): string {
      return kvText(this.key);
    },
  },
}) as object;

/** `kv` with `text` and `keyText` (non-enumerable getters: JSON and equality see the stored fields). */
export function kvPair(kv: KeyValue): KvPair {
  return Object.assign(Object.create(pairProto) as object, kv) as KvPair;
}

function pairs(kvs: readonly KeyValue[]): KvPair[] {
  return kvs.map(kvPair);
}

function rangeResult(r: RangeResult): KvRangeResult {
  return { ...r, kvs: pairs(r.kvs) };
}

function opResult(r: TxnOpResult): KvTxnOpResult {
  switch (r.type) {
    case 'range':
      return rangeResult(r);
    case 'put':
      return putResult(r);
    case 'deleteRange':
      return deleteResult(r);
    case 'txn':
      return txnResult(r);
  }
}

function putResult(r: PutResult): KvPutResult {
  const { prevKv, ...rest } = r;
  return prevKv === undefined ? rest : { ...rest, prevKv: kvPair(prevKv) };
}

function deleteResult(r: DeleteRangeResult): KvDeleteResult {
  const { prevKvs, ...rest } = r;
  return prevKvs === undefined ? rest : { ...rest, prevKvs: pairs(prevKvs) };
}

function txnResult(r: TxnResult): KvTxnResult {
  return { ...r, responses: r.responses.map(opResult) };
}

function eventOf(e: KvEvent): KvWatchEvent {
  return e.prevKv === undefined
    ? { type: e.type, kv: kvPair(e.kv) }
    : { type: e.type, kv: kvPair(e.kv), prevKv: kvPair(e.prevKv) };
}

/** One session lane: one write in flight at a time. */
interface Lane {
  /** The registered session's id; undefined: register before the next write. */
  clientId: string | undefined;
  seq: number;
  readonly index: number;
}

/** A write waiting for a free lane. */
interface LaneWaiter {
  resolve(lane: Lane): void;
}

/** One call's deadline (clock ms) and cancellation. */
interface Ctx {
  readonly deadline: number;
  readonly timeoutMs: number;
  readonly signal: AbortSignal | undefined;
}

/** Registrations one write may make after its session expired, before it gives up. */
const registrationsPerWriteMax = 2;

type Stub = Client<typeof KvService>;
type Attempt = { timeoutMs: number; signal?: AbortSignal };

/** A client of a cohort cluster's KV store (see the file comment). */
export class KvClient {
  private readonly stubs = new Map<NodeId, Stub>();
  private readonly order: NodeId[];
  private readonly addresses = new Map<NodeId, PeerAddress>();
  private next = 0;
  private leader: NodeId | undefined;
  /** Nodes that failed to answer, until when they are skipped (clock ms). */
  private readonly suspects = new Map<NodeId, number>();
  private readonly free: Lane[] = [];
  private readonly lanes: Lane[] = [];
  private readonly waiters: LaneWaiter[] = [];
  private readonly timeoutMs: number;
  private readonly callTimeoutMs: number;
  private readonly lanesMax: number;
  private readonly sessionTtlMs: number | undefined;
  private readonly clock: Clock;
  private readonly keepers = new Set<LeaseKeeper>();
  /** When the last successful grant or renewal of a lease was sent (clock ms): the lease lives at least a TTL from then. */
  private readonly renewedAt = new Map<number, number>();
  private closing: Promise<void> | undefined;
  private readonly closeController = new AbortController();

  private constructor(
    private readonly rpc: RpcNode,
    private readonly transport: KvClientTransport,
    endpoints: readonly { id: NodeId; address: PeerAddress }[],
    /** This client's name (sessions get ids from the cluster). */
    readonly clientId: string,
    /** The cluster this client belongs to. */
    readonly clusterId: string,
    options: KvClientOptions,
    clock: Clock,
  ) {
    this.order = endpoints.map((e) => e.id);
    for (const e of endpoints) this.addresses.set(e.id, e.address);
    this.clock = clock;
    this.sessionTtlMs = options.sessionTtlMs;
    this.timeoutMs = options.rpc?.client?.timeoutMs ?? options.timeoutMs ?? defaultTimeoutMs;
    this.callTimeoutMs = options.callTimeoutMs ?? options.retryMs ?? defaultCallTimeoutMs;
    this.lanesMax = Math.max(
      1,
      Math.min(options.lanesMax ?? limits.kvClientLanesMax, limits.kvClientLanesMax),
    );
  }

  /**
   * Creates a client and connects: dials every endpoint and resolves once
   * one of them accepts (a definite UNAVAILABLE or HANDSHAKE_FAILED naming
   * each endpoint's reason if none does within `callTimeoutMs`). With
   * `lazy: true` it dials nothing until the first call. {@link ready} checks
   * that a leader answers too.
   */
  static async connect(options: KvClientOptions): Promise<KvClient> {
    const target = options.cluster === undefined ? undefined : clusterTarget(options.cluster);
    const endpoints = options.endpoints ?? target?.endpoints ?? [];
    if (endpoints.length === 0) {
      throw new CohortError('INVALID_ARGUMENT', 'KvClient needs at least one endpoint', {
        details: { field: 'endpoints' },
      });
    }
    const tlsOptions = options.tls ?? target?.tls;
    const creds = tlsOptions === undefined ? undefined : resolveUserTls(tlsOptions, 'KvClient');
    const parsed = endpoints.map(parseKvEndpoint);
    const random = options.random;
    const hex = (): string =>
      random === undefined
        ? randomBytes(6).toString('hex')
        : [random.int(2 ** 24), random.int(2 ** 24)]
            .map((n) => n.toString(16).padStart(6, '0'))
            .join('');
    const clientId = options.clientId ?? `kv-${hex()}`;
    if (clientId.length === 0 || clientId.length > limits.kvClientIdCharsMax) {
      throw new CohortError(
        'INVALID_ARGUMENT',
        'clientId must be 1..kvClientIdCharsMax characters',
        {
          details: { field: 'clientId' },
        },
      );
    }
    const ttl = options.sessionTtlMs;
    if (
      ttl !== undefined &&
      !(Number.isInteger(ttl) && ttl >= limits.kvSessionTtlMsMin && ttl <= limits.kvSessionTtlMsMax)
    ) {
      throw new CohortError(
        'INVALID_ARGUMENT',
        `sessionTtlMs must be an integer within ${limits.kvSessionTtlMsMin}..${limits.kvSessionTtlMsMax}`,
        { details: { field: 'sessionTtlMs' } },
      );
    }
    for (const [field, v] of [
      ['timeoutMs', options.timeoutMs],
      ['callTimeoutMs', options.callTimeoutMs ?? options.retryMs],
    ] as const) {
      if (v !== undefined && !(Number.isFinite(v) && v > 0)) {
        throw new CohortError('INVALID_ARGUMENT', `${field} must be a positive number of ms`, {
          details: { field },
        });
      }
    }
    const cluster = options.clusterId ?? target?.clusterId ?? 'cohort-local';
    const clock = options.clock ?? options.rpc?.clock ?? new RealClock();
    const suffix = hex();
    const transport: KvClientTransport =
      options.transport ??
      (await TcpTransport.start<RpcWireMessage>({
        self:
          creds === undefined ? nodeId(`client-${suffix}`) : connectionId(creds.identity, suffix),
        clusterId: toClusterId(cluster),
        codec: rpcCodec,
        peers: new Map(parsed.map((p) => [p.id, p.address])),
        logger:
          options.logger ??
          pino({ level: process.env.COHORT_LOG_LEVEL ?? 'error' }, pino.destination(2)),
        ...(creds === undefined ? {} : { tls: creds }),
      }));
    // The attempt deadline is the RPC default, so calls share one deadline timer.
    const rpc = new RpcNode(transport, {
      ...(random === undefined ? {} : { random: random.fork('rpc') }),
      ...options.rpc,
      clock,
      client: { timeoutMs: options.timeoutMs ?? defaultTimeoutMs, ...options.rpc?.client },
    });
    const client = new KvClient(rpc, transport, parsed, clientId, cluster, options, clock);
    if (options.lazy !== true) {
      try {
        await client.dialAny();
      } catch (e) {
        await rpc.close();
        throw e;
      }
    }
    return client;
  }

  /** The node this client currently believes leads (undefined: unknown). */
  get leaderHint(): NodeId | undefined {
    return this.leader;
  }

  /**
   * Checks that the cluster answers: a linearizable read of the revision
   * goes through the leader. Resolves with the revision and the leader;
   * throws the call's error otherwise (UNAVAILABLE: nothing reachable,
   * HANDSHAKE_FAILED: another cluster, TIMEOUT or NOT_LEADER: no leader
   * answered in time).
   */
  async ready(options: KvCallOptions = {}): Promise<KvReady> {
    const r = await this.rangeRequest(
      { type: 'range', key: Uint8Array.of(0), countOnly: true },
      {
        ...options,
      },
    );
    return { revision: r.revision, leader: this.leader };
  }

  // ------------------------------------------------------------ reads

  /** One key (undefined if absent). */
  async get(key: Bytes, options: ReadOptions = {}): Promise<KvPair | undefined> {
    const r = await this.range(key, options);
    return r.kvs[0];
  }

  /** One key's value as UTF-8 text (undefined if absent). */
  async getText(key: Bytes, options: ReadOptions = {}): Promise<string | undefined> {
    return (await this.get(key, options))?.text;
  }

  /** A key, range or prefix. */
  range(key: Bytes, options: RangeOptions = {}): Promise<KvRangeResult> {
    return this.rangeRequest(
      { type: 'range', ...rangeOf(key, options), ...rangeExtras(options) },
      options,
    );
  }

  /**
   * A range request as the state machine takes it (the optimistic txn's
   * backend). The second argument is the call's options, or (old form)
   * `true` for a serializable read.
   */
  async rangeRequest(
    req: RangeRequest,
    options: (KvCallOptions & { serializable?: boolean }) | boolean = {},
  ): Promise<KvRangeResult> {
    const o = typeof options === 'boolean' ? { serializable: options } : options;
    const fields: Record<string, unknown> = { ...req };
    delete fields.type;
    if (o.serializable === true) fields.serializable = true;
    const wire = fields as Parameters<Stub['range']>[0];
    return rangeResult(
      await this.run(o, (ctx) => this.call(ctx, undefined, (s, a) => s.range(wire, a))),
    );
  }

  // ------------------------------------------------------------ writes

  /** Writes one key. */
  async put(key: Bytes, value: Bytes, options: PutOptions = {}): Promise<KvPutResult> {
    const req = { key: toBytes(key), value: toBytes(value), ...putExtras(options) };
    const r = await this.run(options, (ctx) =>
      this.write(ctx, (s, a, session) => s.put({ ...req, session }, a)),
    );
    return putResult(r);
  }

  /** Deletes a key, a range or a prefix. */
  async delete(key: Bytes, options: DeleteOptions = {}): Promise<KvDeleteResult> {
    const req = {
      ...rangeOf(key, options),
      ...(options.prevKv === undefined ? {} : { prevKv: options.prevKv }),
    };
    const r = await this.run(options, (ctx) =>
      this.write(ctx, (s, a, session) => s.deleteRange({ ...req, session }, a)),
    );
    return deleteResult(r);
  }

  /** Compare, then run `success` or `failure`, at one revision. */
  async txn(req: KvTxn, options: KvCallOptions = {}): Promise<KvTxnResult> {
    const t = toTxnRequest(req);
    const body = { compare: [...t.compare], success: [...t.success], failure: [...t.failure] };
    const r = await this.run(options, (ctx) =>
      this.write(ctx, (s, a, session) => s.txn({ ...body, session }, a)),
    );
    return txnResult(r);
  }

  /**
   * Compare-and-set: writes `value` if the key holds what `expected` says —
   * that value, absence (`null`), or a `{ version }` / `{ modRevision }` —
   * in one txn. On failure nothing is written and `current` is what the key
   * holds.
   */
  async cas(
    key: Bytes,
    expected: CasExpected,
    value: Bytes,
    options: PutOptions = {},
  ): Promise<CasResult> {
    const k = toBytes(key);
    const compare: Compare =
      expected === null
        ? { target: 'version', key: k, op: '=', value: 0 }
        : typeof expected === 'string' || expected instanceof Uint8Array
          ? { target: 'value', key: k, op: '=', value: toBytes(expected) }
          : 'version' in expected
            ? { target: 'version', key: k, op: '=', value: expected.version }
            : { target: 'modRevision', key: k, op: '=', value: expected.modRevision };
    const r = await this.txn(
      {
        compare: [compare],
        success: [{ type: 'put', key: k, value: toBytes(value), ...putExtras(options) }],
        failure: [{ type: 'range', key: k }],
      },
      options,
    );
    const first = r.responses[0];
    if (r.succeeded) {
      const prev = first?.type === 'put' ? first.prevKv : undefined;
      return prev === undefined
        ? { succeeded: true, revision: r.revision }
        : { succeeded: true, revision: r.revision, prevKv: prev };
    }
    const current = first?.type === 'range' ? first.kvs[0] : undefined;
    return current === undefined
      ? { succeeded: false, revision: r.revision }
      : { succeeded: false, revision: r.revision, current };
  }

  /** Writes `value` only if the key does not exist (see {@link cas}). */
  putIfAbsent(key: Bytes, value: Bytes, options: PutOptions = {}): Promise<CasResult> {
    return this.cas(key, null, value, options);
  }

  /** Drops history below `revision`. */
  compact(revision: number, options: KvCallOptions = {}): Promise<CompactResult> {
    return this.run(options, (ctx) =>
      this.write(ctx, (s, a, session) => s.compact({ revision, session }, a)),
    );
  }

  // ------------------------------------------------------------ leases

  /** Creates a lease of `ttlMs` (id chosen by the cluster unless given). */
  async leaseGrant(
    ttlMs: number,
    id?: number,
    options: KvCallOptions = {},
  ): Promise<LeaseGrantResult> {
    const sent = this.clock.now();
    const r = await this.run(options, (ctx) =>
      this.write(ctx, (s, a, session) =>
        s.leaseGrant({ ttlMs, ...(id === undefined ? {} : { id }), session }, a),
      ),
    );
    this.renewedAt.set(r.id, sent);
    return r;
  }

  /** Ends a lease and deletes its keys. */
  async leaseRevoke(id: number, options: KvCallOptions = {}): Promise<LeaseRevokeResult> {
    const r = await this.run(options, (ctx) =>
      this.write(ctx, (s, a, session) => s.leaseRevoke({ id, session }, a)),
    );
    this.renewedAt.delete(id);
    return r;
  }

  /** Renews a lease once. */
  async leaseKeepAlive(id: number, options: KvCallOptions = {}): Promise<LeaseKeepAliveResult> {
    const sent = this.clock.now();
    // Idempotent enough: a keep-alive applied twice renews twice.
    const r = await this.run(options, (ctx) =>
      this.write(ctx, (s, a, session) => s.leaseKeepAlive({ id, session }, a), true),
    );
    this.renewedAt.set(id, Math.max(this.renewedAt.get(id) ?? sent, sent));
    return r;
  }

  /** A lease's TTL left (as the leader's clock sees it) and optionally its keys. */
  leaseTimeToLive(
    id: number,
    options: KvCallOptions & { keys?: boolean; serializable?: boolean } = {},
  ): Promise<LeaseInfo> {
    const req = {
      id,
      ...(options.keys === undefined ? {} : { keys: options.keys }),
      ...(options.serializable === undefined ? {} : { serializable: options.serializable }),
    };
    return this.run(options, (ctx) =>
      this.call(ctx, undefined, (s, a) => s.leaseTimeToLive(req, a)),
    );
  }

  /** Every live lease. */
  leases(
    options: KvCallOptions & { serializable?: boolean } = {},
  ): Promise<{ revision: number; leases: readonly LeaseInfo[] }> {
    const req = options.serializable === undefined ? {} : { serializable: options.serializable };
    return this.run(options, (ctx) => this.call(ctx, undefined, (s, a) => s.leases(req, a)));
  }

  /**
   * Renews lease `id` every `intervalMs` (default a third of its TTL) until
   * stopped or the lease is lost: `done` resolves 'lost' and `onLost` is
   * called with why — `'expired'` when the cluster says the lease is gone,
   * `'unreachable'` when no renewal succeeded for a whole TTL since the last
   * one was sent (or the grant, by this client), so the cluster may have
   * expired it: a lock holder cut off from the cluster learns it has lost
   * the lock no later than anyone else can take it. `ttlMs` is the lease's
   * TTL until the first renewal reports it.
   */
  keepAlive(
    id: number,
    options: {
      intervalMs?: number;
      ttlMs?: number;
      onLost?: (reason: LeaseLostReason) => void;
    } = {},
  ): LeaseKeeper {
    const stop = new AbortController();
    let resolveDone: (v: 'stopped' | 'lost') => void = () => undefined;
    const done = new Promise<'stopped' | 'lost'>((r) => (resolveDone = r));
    const keeper: LeaseKeeper = { stop: () => stop.abort(), done };
    this.keepers.add(keeper);
    let reason: LeaseLostReason = 'expired';
    const loop = async (): Promise<'stopped' | 'lost'> => {
      let interval = options.intervalMs;
      let ttl = options.ttlMs;
      const start = this.clock.now();
      while (!stop.signal.aborted && !this.closeController.signal.aborted) {
        // The lease is safe until a TTL after the last renewal was sent.
        const since = this.renewedAt.get(id) ?? start;
        const left = ttl === undefined ? this.callTimeoutMs : since + ttl - this.clock.now();
        if (left <= 0) {
          reason = 'unreachable';
          return 'lost';
        }
        try {
          const r = await this.leaseKeepAlive(id, {
            timeoutMs: Math.max(1, Math.min(left, this.callTimeoutMs)),
            signal: stop.signal,
          });
          ttl = r.ttlMs;
          interval ??= Math.max(100, Math.floor(r.ttlMs / 3));
        } catch (e) {
          if (isCohortError(e) && e.code === 'NOT_FOUND') return 'lost';
          if (!isCohortError(e) || e.code === 'CLOSED') return 'stopped';
          if (stop.signal.aborted) return 'stopped';
        }
        const wait = interval ?? 500;
        const untilLost =
          ttl === undefined ? wait : (this.renewedAt.get(id) ?? start) + ttl - this.clock.now();
        await sleep(this.clock, Math.max(0, Math.min(wait, untilLost)), stop.signal);
      }
      return 'stopped';
    };
    void loop().then((why) => {
      this.keepers.delete(keeper);
      if (why === 'lost') {
        this.renewedAt.delete(id);
        options.onLost?.(reason);
      }
      resolveDone(why);
    });
    return keeper;
  }

  // ------------------------------------------------------------ transactions

  /** Runs `body` as an optimistic interactive transaction (BEGIN..COMMIT, retried on conflict). */
  transaction<T>(
    body: (tx: OptimisticTxn) => Promise<T>,
    options: OptimisticTxnOptions = {},
  ): Promise<OptimisticTxnOutcome<T>> {
    return runOptimisticTxn(
      {
        range: (req) => this.rangeRequest(req),
        txn: (req: TxnRequest) => this.txn(req),
      },
      body,
      options,
    );
  }

  // ------------------------------------------------------------ watches

  /**
   * Watches a key, prefix or range. Yields batches of events in revision
   * order; after a disconnect or a leader change it resumes from the last
   * revision delivered + 1 on another node: no gap, no duplicate. If no node
   * can be reached for `timeoutMs` (default the client's `callTimeoutMs`)
   * it throws the last error (UNAVAILABLE when the cluster is gone). A
   * consumer that stops reading is cut off by the node once its backlog
   * passes the node's bounds (OVERLOADED, reason `watcherTooSlow`); the
   * watch resumes the same way, from history, when it reads again. Throws
   * COMPACTED if the start revision was compacted, or if the resume point
   * was compacted meanwhile (`details.reason: 'watchResumeCompacted'`,
   * `resumeRevision`, `compactedRevision`: read the current state and
   * watch from its revision + 1). Breaking out of the loop or aborting
   * `signal` ends it. A running watch keeps the process alive.
   */
  async *watch(key: Bytes, options: WatchOptions = {}): AsyncGenerator<WatchBatch> {
    const range = rangeOf(key, options);
    let next = options.startRevision;
    let failures = 0;
    let resuming = false;
    const signal = options.signal;
    const patienceMs = options.timeoutMs ?? this.callTimeoutMs;
    /** Since when no stream has delivered anything (clock ms), undefined while one does. */
    let failingSince: number | undefined = this.clock.now();
    const seen = new Map<NodeId, CohortError>();
    const release = this.clock.hold?.();
    try {
      while (signal?.aborted !== true && !this.closeController.signal.aborted) {
        const target = this.target();
        let stream: ReturnType<Stub['watch']> | undefined;
        try {
          await this.linkUp(target, Math.max(1, patienceMs), signal);
          stream = this.stub(target).watch(
            {
              ...range,
              ...(next === undefined ? {} : { startRevision: next }),
              ...(options.prevKv === true ? { prevKv: true } : {}),
              ...(options.progressMs === undefined ? {} : { progressMs: options.progressMs }),
            },
            signal === undefined ? {} : { signal },
          );
          for await (const item of stream) {
            failures = 0;
            failingSince = undefined;
            seen.clear();
            if (item.created === true) {
              next ??= item.revision + 1;
              continue;
            }
            const from = next ?? 0;
            const events = item.events.filter((e) => e.kv.modRevision >= from).map(eventOf);
            next = Math.max(from, item.revision + 1);
            if (events.length > 0 || (item.progress === true && options.progress === true)) {
              yield { revision: item.revision, events, progress: events.length === 0 };
            }
          }
        } catch (e) {
          if (!isCohortError(e)) throw e;
          if (isAborted(signal)) return;
          if (e.code === 'COMPACTED' && resuming && next !== undefined) {
            throw new CohortError(
              'COMPACTED',
              `the watch cannot resume from revision ${next}: ${e.message}; read the current state and watch from its revision + 1`,
              {
                details: { ...e.details, reason: 'watchResumeCompacted', resumeRevision: next },
                cause: e,
              },
            );
          }
          if (!routingCodes.has(e.code) && !(e.code === 'INTERNAL')) throw e;
          seen.set(target, e);
          // Cut off for reading too slowly: the node is fine, resume there from history.
          const slow = e.code === 'OVERLOADED' && e.details.reason === 'watcherTooSlow';
          if (e.code === 'NOT_LEADER') this.forget(target);
          else if (!slow) this.suspect(target);
          failingSince ??= this.clock.now();
          if (this.clock.now() - failingSince >= patienceMs) {
            throw this.giveUp(
              { deadline: failingSince + patienceMs, timeoutMs: patienceMs, signal },
              e,
              seen,
              false,
              'the watch lost the cluster',
            );
          }
        } finally {
          stream?.cancel();
          // Any later stream continues from `next`.
          resuming = true;
        }
        await sleep(this.clock, Math.min(500, 10 * 2 ** failures++), signal);
      }
    } finally {
      release?.();
    }
  }

  // ------------------------------------------------------------ snapshots

  /**
   * Streams a consistent snapshot of the store (as of a linearizable read on
   * the leader; `serializable`: any node's state) to `sink`: `start()` at the
   * beginning of each attempt (discard what an earlier one wrote), then the
   * bytes chunk by chunk. Resolves with what the snapshot holds once every
   * byte arrived and its SHA-256 matched; CORRUPTION if it did not. An
   * attempt that fails before data flows is retried on another node until
   * the deadline (default: the client's `callTimeoutMs`).
   */
  async snapshot(
    sink: { start(): Promise<void> | void; write(chunk: Uint8Array): Promise<void> | void },
    options: KvCallOptions & { serializable?: boolean } = {},
  ): Promise<KvSnapshotInfo> {
    return this.run(options, async (ctx) => {
      const seen = new Map<NodeId, CohortError>();
      let last: CohortError | undefined;
      for (;;) {
        if (ctx.signal?.aborted === true) throw cancelled(false);
        const remaining = Math.floor(ctx.deadline - this.clock.now());
        if (remaining < 1)
          throw this.giveUp(ctx, last, seen, false, 'no snapshot from the cluster');
        const target = this.target();
        let stream: ReturnType<Stub['snapshot']> | undefined;
        try {
          await this.linkUp(target, Math.min(remaining, limits.connectTimeoutMs), ctx.signal);
          await sink.start();
          stream = this.stub(target).snapshot(
            options.serializable === true ? { serializable: true } : {},
            {
              timeoutMs: Math.max(1, Math.floor(ctx.deadline - this.clock.now())),
              ...(ctx.signal === undefined ? {} : { signal: ctx.signal }),
            },
          );
          return await readSnapshot(stream, sink);
        } catch (e) {
          if (!isCohortError(e) || !routingCodes.has(e.code)) throw e;
          if (finalErrors.has(e)) throw e;
          if (isAborted(ctx.signal)) throw cancelled(false, e);
          last = e;
          seen.set(target, e);
          if (e.code === 'NOT_LEADER' && this.redirect(e, target)) continue;
          if (e.code === 'NOT_LEADER') this.forget(target);
          else this.suspect(target);
          if (this.leader === undefined) await sleep(this.clock, 50, ctx.signal);
        } finally {
          stream?.cancel();
        }
      }
    });
  }

  // ------------------------------------------------------------ lifecycle

  /** Ends the lanes' sessions on the cluster (best effort), stops keep-alives, closes the connections. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closeController.abort();
      for (const k of this.keepers) k.stop();
      const sessions = this.lanes.flatMap((l) => (l.clientId === undefined ? [] : [l.clientId]));
      const ctx = this.context({ timeoutMs: 1_000 });
      await Promise.allSettled(
        sessions.map((clientId) =>
          this.call(ctx, undefined, (s, a) => s.sessionEnd({ clientId }, a), true),
        ),
      );
      await this.rpc.close();
    })();
    return this.closing;
  }

  // ------------------------------------------------------------ plumbing

  /** Runs one public call: its deadline, and the process held until it ends. */
  private async run<T>(options: KvCallOptions, fn: (ctx: Ctx) => Promise<T>): Promise<T> {
    const ctx = this.context(options);
    const release = this.clock.hold?.();
    try {
      return await fn(ctx);
    } finally {
      release?.();
    }
  }

  /** A call's deadline and signal from its options (see {@link KvCallOptions}). */
  private context(options: KvCallOptions): Ctx {
    let ms = options.timeoutMs ?? this.callTimeoutMs;
    if (!(typeof ms === 'number' && ms >= 0 && ms !== Infinity)) {
      throw new CohortError('INVALID_ARGUMENT', 'timeoutMs must be a finite number of ms >= 0', {
        details: { field: 'timeoutMs', value: ms },
      });
    }
    if (options.deadline !== undefined) {
      const at =
        typeof options.deadline === 'number' ? options.deadline : options.deadline.getTime();
      if (!Number.isFinite(at)) {
        throw new CohortError('INVALID_ARGUMENT', 'deadline must be a valid time', {
          details: { field: 'deadline' },
        });
      }
      ms = Math.min(ms, Math.max(0, at - Date.now()));
    }
    return { deadline: this.clock.now() + ms, timeoutMs: ms, signal: options.signal };
  }

  private stub(id: NodeId): Stub {
    let s = this.stubs.get(id);
    if (s === undefined) {
      s = this.rpc.client(KvService, id);
      this.stubs.set(id, s);
    }
    return s;
  }

  /** Dials every endpoint; resolves once one accepts, else throws why none did. */
  private async dialAny(): Promise<void> {
    const connect = this.transport.connect?.bind(this.transport);
    if (connect === undefined) return;
    const ctx = this.context({});
    const seen = new Map<NodeId, CohortError>();
    const release = this.clock.hold?.();
    try {
      await Promise.any(
        this.order.map(async (id) => {
          try {
            await connect(id, this.callTimeoutMs);
          } catch (e) {
            if (isCohortError(e)) seen.set(id, e);
            throw e;
          }
        }),
      );
    } catch {
      throw this.giveUp(ctx, undefined, seen, false, 'cannot connect to the cluster');
    } finally {
      release?.();
    }
  }

  /** Dials `target` if its link is not up (see KvClientTransport.connect). */
  private async linkUp(target: NodeId, ms: number, signal: AbortSignal | undefined): Promise<void> {
    const connect = this.transport.connect?.bind(this.transport);
    if (connect === undefined) return;
    if (signal === undefined) {
      await connect(target, Math.max(1, Math.floor(ms)));
      return;
    }
    if (signal.aborted) throw cancelled(false);
    let onAbort: (() => void) | undefined;
    try {
      await Promise.race([
        connect(target, Math.max(1, Math.floor(ms))),
        new Promise<never>((_, reject) => {
          onAbort = () => reject(cancelled(false));
          signal.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
    } finally {
      if (onAbort !== undefined) signal.removeEventListener('abort', onAbort);
    }
  }

  /** The node to try: the known leader, else the next endpoint round-robin. */
  private target(): NodeId {
    if (this.leader !== undefined) return this.leader;
    const now = this.clock.now();
    // Round-robin, skipping nodes that just failed while another may answer.
    for (let i = 0; i < this.order.length; i++) {
      const id = this.order[this.next % this.order.length];
      this.next++;
      if (id !== undefined && (this.suspects.get(id) ?? 0) <= now) return id;
    }
    const id = this.order[this.next % this.order.length];
    this.next++;
    if (id === undefined) throw new CohortError('UNAVAILABLE', 'no endpoints');
    return id;
  }

  private forget(target: NodeId): void {
    if (this.leader === target) this.leader = undefined;
  }

  /** `target` failed to answer: not the leader, and not worth a redirect for a while. */
  private suspect(target: NodeId): void {
    this.forget(target);
    this.suspects.set(target, this.clock.now() + suspectMs);
  }

  /** Learns the leader from a NOT_LEADER answer; true if it names one other than `from`. */
  private redirect(e: CohortError, from: NodeId): boolean {
    const id = e.details.leaderId ?? e.details.leaderHint;
    if (typeof id !== 'string' || !isValidId(id) || id === from) {
      this.forget(from);
      return false;
    }
    const leader = nodeId(id);
    // A follower may still name a leader that just died (until it times out): do not bounce back to it.
    if ((this.suspects.get(leader) ?? 0) > this.clock.now()) {
      this.forget(from);
      return false;
    }
    this.suspects.delete(leader);
    if (!this.order.includes(leader)) {
      const addr = parseAddress(e.details.leaderRpc);
      if (addr === undefined || this.transport.setPeer === undefined) {
        this.forget(from);
        return false;
      }
      this.transport.setPeer(leader, addr);
      this.addresses.set(leader, addr);
      this.order.push(leader);
    }
    this.leader = leader;
    return true;
  }

  /** A free lane, waiting for one (up to the call's deadline) when all are busy. */
  private acquireLane(ctx: Ctx): Promise<Lane> {
    const lane = this.free.pop();
    if (lane !== undefined) return Promise.resolve(lane);
    if (this.lanes.length < this.lanesMax) {
      const index = this.lanes.length;
      const l: Lane = { clientId: undefined, seq: 0, index };
      this.lanes.push(l);
      return Promise.resolve(l);
    }
    return new Promise((resolve, reject) => {
      const onAbort = (): void => finish(cancelled(false));
      const timer = this.clock.setTimer(Math.max(0, ctx.deadline - this.clock.now()), () =>
        finish(
          new CohortError(
            'TIMEOUT',
            `no free session lane within ${ctx.timeoutMs} ms (${this.lanesMax} writes in flight); nothing was sent`,
            { definite: true, details: { timeoutMs: ctx.timeoutMs, lanesMax: this.lanesMax } },
          ),
        ),
      );
      const waiter: LaneWaiter = {
        resolve: (l) => {
          this.clock.clearTimer(timer);
          ctx.signal?.removeEventListener('abort', onAbort);
          resolve(l);
        },
      };
      const finish = (err: CohortError): void => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        this.clock.clearTimer(timer);
        ctx.signal?.removeEventListener('abort', onAbort);
        reject(err);
      };
      ctx.signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  private releaseLane(lane: Lane): void {
    const w = this.waiters.shift();
    if (w !== undefined) w.resolve(lane);
    else this.free.push(lane);
  }

  /**
   * A write under a session lane: one seq for all retries of it. The lane
   * registers a session first if it has none (or its session expired);
   * after SESSION_EXPIRED the write is retried under a new session only if
   * no attempt of it can have applied, or `idempotent` (see the file comment).
   */
  private async write<T>(
    ctx: Ctx,
    fn: (s: Stub, a: Attempt, session: SessionTag) => Promise<T>,
    idempotent = false,
  ): Promise<T> {
    if (this.closeController.signal.aborted)
      throw new CohortError('CLOSED', 'the KV client is closed');
    const lane = await this.acquireLane(ctx);
    try {
      // An attempt of this write may have applied (an indefinite error was retried).
      let uncertain = false;
      for (let registrations = 0; ;) {
        if (lane.clientId === undefined) {
          try {
            lane.clientId = await this.register(ctx);
          } catch (e) {
            // Not sent again; but an earlier attempt (of an idempotent write) may have applied.
            if (!uncertain || !isCohortError(e)) throw e;
            throw new CohortError(e.code, `${e.message}; an earlier attempt may have applied`, {
              definite: false,
              details: { ...e.details, earlierAttemptUncertain: true },
              cause: e,
            });
          }
          lane.seq = 0;
          registrations++;
        }
        lane.seq++;
        const session = { clientId: lane.clientId, seq: lane.seq };
        try {
          return await this.call(
            ctx,
            () => (uncertain = true),
            (s, a) => fn(s, a, session),
            false,
            uncertain,
          );
        } catch (e) {
          if (!isCohortError(e) || e.code !== 'SESSION_EXPIRED') throw e;
          lane.clientId = undefined;
          if ((!uncertain || idempotent) && registrations < registrationsPerWriteMax) continue;
          if (!uncertain) throw e;
          throw new CohortError(
            'SESSION_EXPIRED',
            `${e.message}; an earlier attempt of this write may have applied before the session expired, so its outcome is unknown`,
            { definite: false, details: { ...e.details, earlierAttemptUncertain: true }, cause: e },
          );
        }
      }
    } finally {
      this.releaseLane(lane);
    }
  }

  /**
   * Registers a session for a lane (a log entry; retried like a write: a
   * registration whose reply was lost leaves an unused session that
   * expires). Any failure is definite for the write waiting on it, which
   * was not sent.
   */
  private async register(ctx: Ctx): Promise<string> {
    const req = this.sessionTtlMs === undefined ? {} : { ttlMs: this.sessionTtlMs };
    try {
      const r = await this.call(ctx, undefined, (s, a) => s.sessionOpen(req, a));
      return r.clientId;
    } catch (e) {
      if (!isCohortError(e)) throw e;
      throw new CohortError(
        e.code,
        `could not register an exactly-once session (the write was not sent): ${e.message}`,
        { definite: true, details: e.details, cause: e },
      );
    }
  }

  /**
   * One call with redirects and retries until `ctx`'s deadline. Writes are
   * retried after indefinite errors only because they carry a session with
   * the same seq (see the file comment). `onRetry` is told when an attempt
   * that may have taken effect is retried; `uncertain` says one already was
   * (by an earlier call for the same write).
   */
  private async call<T>(
    ctx: Ctx,
    onRetry: (() => void) | undefined,
    fn: (s: Stub, a: Attempt) => Promise<T>,
    closing = false,
    uncertainBefore = false,
  ): Promise<T> {
    let backoff = 0;
    // An attempt that may have taken effect makes every later give-up indefinite.
    let uncertain = uncertainBefore;
    let last: CohortError | undefined;
    const seen = new Map<NodeId, CohortError>();
    for (;;) {
      if (ctx.signal?.aborted === true) throw cancelled(uncertain);
      const remaining = ctx.deadline - this.clock.now();
      if (remaining < 1) throw this.giveUp(ctx, last, seen, uncertain);
      const target = this.target();
      try {
        await this.linkUp(target, Math.min(remaining, limits.connectTimeoutMs), ctx.signal);
        const attemptMs = Math.floor(Math.min(this.timeoutMs, ctx.deadline - this.clock.now()));
        if (attemptMs < 1) throw this.giveUp(ctx, last, seen, uncertain);
        const attempt: Attempt =
          ctx.signal === undefined
            ? { timeoutMs: attemptMs }
            : { timeoutMs: attemptMs, signal: ctx.signal };
        return await fn(this.stub(target), attempt);
      } catch (e) {
        if (!isCohortError(e) || !routingCodes.has(e.code)) throw e;
        if (finalErrors.has(e)) throw e;
        if (isAborted(ctx.signal)) throw cancelled(uncertain || !e.definite, e);
        if (e.code === 'CANCELLED' && this.closeController.signal.aborted && !closing) throw e;
        last = e;
        seen.set(target, e);
        if (e.code === 'NOT_LEADER' && this.redirect(e, target)) {
          backoff = 0;
        } else {
          if (e.code === 'NOT_LEADER') this.forget(target);
          else this.suspect(target);
          backoff = Math.min(50, Math.max(10, backoff * 2));
        }
        if (!e.definite) {
          uncertain = true;
          onRetry?.();
        }
        if (
          this.clock.now() + backoff >= ctx.deadline ||
          (this.closeController.signal.aborted && !closing)
        ) {
          throw this.giveUp(ctx, last, seen, uncertain);
        }
        if (backoff > 0 && this.leader === undefined) await sleep(this.clock, backoff, ctx.signal);
      }
    }
  }

  /**
   * The error a call ends with when its time is up: what each endpoint
   * answered last, under the code that says the most (see the file
   * comment); indefinite if an attempt may have taken effect.
   */
  private giveUp(
    ctx: Ctx,
    last: CohortError | undefined,
    seen: ReadonlyMap<NodeId, CohortError>,
    uncertain: boolean,
    what = 'no answer from the cluster',
  ): CohortError {
    const e = this.giveUpError(ctx, last, seen, uncertain, what);
    finalErrors.add(e);
    return e;
  }

  private giveUpError(
    ctx: Ctx,
    last: CohortError | undefined,
    seen: ReadonlyMap<NodeId, CohortError>,
    uncertain: boolean,
    what: string,
  ): CohortError {
    const endpoints: Record<string, { code: ErrorCode; message: string }> = {};
    for (const [id, e] of seen) endpoints[id] = { code: e.code, message: e.message };
    const reasons = [...seen.values()].map((e) => e.message).join('; ');
    const untried = this.order.filter((id) => !seen.has(id));
    const rest = untried.length > 0 && seen.size > 0 ? ` (not tried: ${untried.join(', ')})` : '';
    const details = {
      timeoutMs: ctx.timeoutMs,
      endpoints,
      ...(uncertain ? { earlierAttemptUncertain: true } : {}),
    };
    const all = [...seen.values()];
    const linkOnly =
      all.length > 0 && all.every((e) => e.code === 'UNAVAILABLE' || e.code === 'HANDSHAKE_FAILED');
    if (!uncertain && linkOnly) {
      const wrongCluster = all.every((e) => e.code === 'HANDSHAKE_FAILED');
      return new CohortError(
        wrongCluster ? 'HANDSHAKE_FAILED' : 'UNAVAILABLE',
        wrongCluster
          ? `${what}: no endpoint accepted this client as a member of cluster ${JSON.stringify(this.clusterId)}: ${reasons}${rest}`
          : `${what}: no node could be reached within ${ctx.timeoutMs} ms: ${reasons}${rest}`,
        { definite: true, details, ...(last === undefined ? {} : { cause: last }) },
      );
    }
    if (last === undefined) {
      return new CohortError('TIMEOUT', `${what} within ${ctx.timeoutMs} ms (nothing was sent)`, {
        definite: !uncertain,
        details,
      });
    }
    const code: ErrorCode =
      last.code === 'CONNECTION_LOST' || last.code === 'CANCELLED' ? 'TIMEOUT' : last.code;
    const outcome = uncertain ? '; an attempt may have taken effect: the outcome is unknown' : '';
    return new CohortError(
      code,
      `${what} within ${ctx.timeoutMs} ms: ${reasons}${rest}${outcome}`,
      {
        definite: !uncertain && last.definite,
        details: { ...last.details, ...details },
        cause: last,
      },
    );
  }
}

/** Reads a snapshot stream into `sink`, checking its length and SHA-256. */
async function readSnapshot(
  stream: AsyncIterable<SnapshotItem>,
  sink: { write(chunk: Uint8Array): Promise<void> | void },
): Promise<KvSnapshotInfo> {
  let meta: SnapshotItem['meta'];
  let got = 0;
  const hash = createHash('sha256');
  for await (const item of stream) {
    if (item.meta !== undefined) {
      meta = item.meta;
    } else if (item.data !== undefined) {
      if (meta === undefined)
        throw new CohortError('PROTOCOL_ERROR', 'snapshot data before its meta');
      got += item.data.length;
      hash.update(item.data);
      await sink.write(item.data);
    } else if (item.sha256 !== undefined) {
      const sha256 = hash.digest('hex');
      if (meta === undefined || got !== meta.bytes || sha256 !== item.sha256) {
        throw new CohortError(
          'CORRUPTION',
          `the snapshot arrived damaged: ${got} of ${meta?.bytes ?? '?'} bytes, SHA-256 ${sha256}, expected ${item.sha256}`,
        );
      }
      return { ...meta, sha256 };
    }
  }
  throw new CohortError('CONNECTION_LOST', 'the snapshot stream ended before its checksum', {
    definite: true,
  });
}

/** Errors a call ends with (its time is up, or it was cancelled): not retried by an outer call. */
const finalErrors = new WeakSet<CohortError>();

/** CANCELLED by the caller's signal; indefinite if an attempt may have taken effect. */
function cancelled(uncertain: boolean, cause?: unknown): CohortError {
  const e = new CohortError(
    'CANCELLED',
    uncertain
      ? 'cancelled by the caller after a request was sent: its outcome is unknown'
      : 'cancelled by the caller; nothing was done',
    { definite: !uncertain, ...(cause === undefined ? {} : { cause }) },
  );
  finalErrors.add(e);
  return e;
}

function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

function rangeOf(
  key: Bytes,
  o: { prefix?: boolean; rangeEnd?: Bytes },
): { key: Uint8Array; rangeEnd?: Uint8Array } {
  const k = toBytes(key);
  if (o.prefix === true) {
    return k.length === 0 ? { key: Uint8Array.of(0), rangeEnd: RANGE_END_ALL } : prefixRange(k);
  }
  if (o.rangeEnd !== undefined) return { key: k, rangeEnd: toBytes(o.rangeEnd) };
  return { key: k };
}

function rangeExtras(
  o: Omit<RangeOptions, keyof KvCallOptions>,
): Omit<RangeRequest, 'type' | 'key' | 'rangeEnd'> {
  const out: { -readonly [K in keyof RangeRequest]?: RangeRequest[K] } = {};
  if (o.revision !== undefined) out.revision = o.revision;
  if (o.limit !== undefined) out.limit = o.limit;
  if (o.sortTarget !== undefined) out.sortTarget = o.sortTarget;
  if (o.sortOrder !== undefined) out.sortOrder = o.sortOrder;
  if (o.countOnly !== undefined) out.countOnly = o.countOnly;
  if (o.keysOnly !== undefined) out.keysOnly = o.keysOnly;
  return out;
}

function putExtras(o: Omit<PutOptions, keyof KvCallOptions>): {
  lease?: number;
  prevKv?: boolean;
  ignoreValue?: boolean;
  ignoreLease?: boolean;
} {
  const out: { lease?: number; prevKv?: boolean; ignoreValue?: boolean; ignoreLease?: boolean } =
    {};
  if (o.lease !== undefined) out.lease = o.lease;
  if (o.prevKv !== undefined) out.prevKv = o.prevKv;
  if (o.ignoreValue !== undefined) out.ignoreValue = o.ignoreValue;
  if (o.ignoreLease !== undefined) out.ignoreLease = o.ignoreLease;
  return out;
}

/** A compare with its keys and values as bytes. */
export function toCompare(c: KvCompare): Compare {
  const base = {
    key: toBytes(c.key),
    ...(c.rangeEnd === undefined ? {} : { rangeEnd: toBytes(c.rangeEnd) }),
    op: c.op,
  };
  return c.target === 'value'
    ? { target: 'value', ...base, value: toBytes(c.value) }
    : { target: c.target, ...base, value: c.value };
}

/** A txn op with its keys and values as bytes (and its short type names resolved). */
export function toTxnOp(op: KvTxnOp): TxnOp {
  switch (op.type) {
    case 'range':
    case 'get':
      return { type: 'range', ...rangeOf(op.key, op), ...rangeExtras(op) };
    case 'put':
      return { type: 'put', key: toBytes(op.key), value: toBytes(op.value), ...putExtras(op) };
    case 'deleteRange':
    case 'delete':
      return {
        type: 'deleteRange',
        ...rangeOf(op.key, op),
        ...(op.prevKv === undefined ? {} : { prevKv: op.prevKv }),
      };
    case 'txn':
      return toTxnRequest(op);
  }
}

/** A txn with its keys and values as bytes. */
export function toTxnRequest(t: KvTxn): TxnRequest {
  return {
    type: 'txn',
    compare: (t.compare ?? []).map(toCompare),
    success: (t.success ?? []).map(toTxnOp),
    failure: (t.failure ?? []).map(toTxnOp),
  };
}
