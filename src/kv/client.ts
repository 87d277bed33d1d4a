/**
 * The KV client: talks to a cohort cluster's {@link KvService}, finds the
 * leader, follows NOT_LEADER redirects, and retries by the definite /
 * indefinite rules (DESIGN.md, Errors) so an application sees each write
 * applied exactly once.
 *
 * ```ts
 * import { KvClient } from 'cohort';
 * const kv = await KvClient.connect({ endpoints: ['n1=127.0.0.1:7201', 'n2=127.0.0.1:7202'] });
 * await kv.put('greeting', 'hello');
 * const v = await kv.get('greeting');               // KeyValue | undefined (v.value is bytes)
 * console.log(kvText(v!.value));                     // 'hello'
 * const { id } = await kv.leaseGrant(10_000);
 * const keeper = kv.keepAlive(id);                   // renews every ttl/3 until stopped
 * await kv.put('svc/a', '1', { lease: id });
 * for await (const batch of kv.watch('svc/', { prefix: true, startRevision: 1 })) {
 *   for (const ev of batch.events) console.log(ev.type, kvText(ev.kv.key));
 * }
 * const out = await kv.transaction(async (tx) => { ... });   // optimistic BEGIN..COMMIT
 * keeper.stop();
 * await kv.close();
 * ```
 *
 * Retries:
 * - **definite** errors that are about where the call went (NOT_LEADER,
 *   UNAVAILABLE, CLOSED, CIRCUIT_OPEN, OVERLOADED) are retried on the hinted
 *   leader or the next endpoint, with a small backoff while no leader is known;
 * - **indefinite** errors (TIMEOUT, CONNECTION_LOST, a leader lost mid-way)
 *   are retried for reads (idempotent) and for writes under the SAME session
 *   sequence number, so the state machine answers a write that did apply
 *   from its session table instead of applying it again;
 * - **SESSION_EXPIRED** (the session idled past its TTL of log time, or the
 *   cluster forgot it past its bounds): the client registers a new session
 *   and retries the write if no attempt of it can have applied (or it is a
 *   keep-alive, which may apply twice); otherwise it fails with an
 *   indefinite SESSION_EXPIRED (`details.earlierAttemptUncertain`);
 * - anything else (INVALID_ARGUMENT, NOT_FOUND, COMPACTED, ...) is the
 *   answer and is thrown at once. After `retryMs` the last error is thrown.
 *
 * Sessions: each lane registers one with the cluster (`sessionOpen`, a log
 * entry that names a fresh id) before its first write; a session allows one
 * command in flight, so the client keeps a pool of lanes; each write takes a
 * free lane (a new one up to `lanesMax`), so many concurrent calls run in
 * parallel. `close()` ends the lanes' sessions on the cluster.
 *
 * Time comes from `options.clock` (default the process clock), so a
 * simulator can drive the client's deadlines, backoff and suspicion.
 */
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { RealClock } from '../lib/clock.js';
import type { Clock } from '../lib/clock.js';
import { CohortError, isCohortError } from '../lib/errors.js';
import type { ErrorCode } from '../lib/errors.js';
import { clusterId as toClusterId, isValidId, nodeId } from '../lib/ids.js';
import type { NodeId } from '../lib/ids.js';
import type { Random } from '../lib/random.js';
import { limits } from '../lib/limits.js';
import { rpcCodec } from '../rpc/messages.js';
import type { RpcWireMessage } from '../rpc/messages.js';
import { RpcNode } from '../rpc/node.js';
import type { RpcNodeOptions } from '../rpc/node.js';
import type { Client } from '../rpc/service.js';
import { TcpTransport } from '../transport/tcp-transport.js';
import type { PeerAddress } from '../transport/tcp-transport.js';
import type { Transport } from '../transport/transport.js';
import { kvKey, prefixRange, RANGE_END_ALL } from './core/bytes.js';
import type {
  Compare,
  CompactResult,
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

/** A key or value: bytes, or a string taken as UTF-8. */
export type Bytes = Uint8Array | string;

/** One node's RPC endpoint: `"n1=127.0.0.1:7201"` or an object. */
export type KvEndpoint =
  string | { readonly id: string; readonly host: string; readonly port: number };

/** Options of {@link KvClient.connect}. */
export interface KvClientOptions {
  /** RPC endpoints of some or all nodes (ids must match the nodes' ids). */
  readonly endpoints: readonly KvEndpoint[];
  /** The cluster id (default 'cohort-local', what `cohort up` uses). */
  readonly clusterId?: string;
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
  /** Deadline of one attempt, in ms (default 2000). */
  readonly timeoutMs?: number;
  /** How long a call keeps retrying before it fails with the last error, in ms (default 10000). */
  readonly retryMs?: number;
  /** Most session lanes, i.e. concurrent writes (default kvClientLanesMax). */
  readonly lanesMax?: number;
  /** RPC node options (interceptors for tests, pending-call bounds). */
  readonly rpc?: RpcNodeOptions;
  readonly logger?: Logger;
  /**
   * The transport to call the nodes over, instead of a TCP transport the
   * client starts (the simulator passes one onto its network). Endpoint
   * addresses are then not used; a redirect to a node not among the
   * endpoints is not followed.
   */
  readonly transport?: Transport<RpcWireMessage>;
  /**
   * Randomness for the default client id and the RPC node (default: the
   * operating system's), so a simulated client is a function of its seed.
   */
  readonly random?: Random;
}

/** Read options. */
export interface ReadOptions {
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
export interface PutOptions {
  readonly lease?: number;
  readonly prevKv?: boolean;
  readonly ignoreValue?: boolean;
  readonly ignoreLease?: boolean;
}

/** Delete options. */
export interface DeleteOptions {
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
  /** Stops the watch (the iterator ends). */
  readonly signal?: AbortSignal;
}

/** What a watch yields: events at revisions > the previous batch's `revision`, oldest first. */
export interface WatchBatch {
  /** Every event up to this revision has been delivered. */
  readonly revision: number;
  readonly events: readonly KvEvent[];
  /** A progress notification (no events). */
  readonly progress: boolean;
}

/** A running keep-alive loop (see {@link KvClient.keepAlive}). */
export interface LeaseKeeper {
  /** Stops renewing (the lease then expires after its TTL unless revoked). */
  stop(): void;
  /** Resolves when the loop ends: `'stopped'`, or `'lost'` when the lease is gone (expired or revoked). */
  readonly done: Promise<'stopped' | 'lost'>;
}

/** Deadline of one attempt unless the options say otherwise. */
const defaultTimeoutMs = 2_000;

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
    const t = clock.setTimer(ms, done);
    signal?.addEventListener('abort', done, { once: true });
    function done(): void {
      clock.clearTimer(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });
}

/** One session lane: one write in flight at a time. */
interface Lane {
  /** The registered session's id; undefined: register before the next write. */
  clientId: string | undefined;
  seq: number;
  readonly index: number;
}

/** Registrations one write may make after its session expired, before it gives up. */
const registrationsPerWriteMax = 2;

type Stub = Client<typeof KvService>;

/** A client of a cohort cluster's KV store (see the file comment). */
export class KvClient {
  private readonly stubs = new Map<NodeId, Stub>();
  private readonly order: NodeId[];
  private next = 0;
  private leader: NodeId | undefined;
  /** Nodes that failed to answer, until when they are skipped (clock ms). */
  private readonly suspects = new Map<NodeId, number>();
  private readonly free: Lane[] = [];
  private readonly lanes: Lane[] = [];
  private readonly waiters: ((lane: Lane) => void)[] = [];
  private readonly timeoutMs: number;
  private readonly retryMs: number;
  private readonly lanesMax: number;
  private readonly sessionTtlMs: number | undefined;
  private readonly clock: Clock;
  private readonly keepers = new Set<LeaseKeeper>();
  private closing: Promise<void> | undefined;
  private readonly closeController = new AbortController();

  private constructor(
    private readonly rpc: RpcNode,
    /** Learns a node's address (the TCP transport); undefined when addresses are not used. */
    private readonly setPeer: ((id: NodeId, address: PeerAddress) => void) | undefined,
    endpoints: readonly NodeId[],
    /** This client's name (sessions get ids from the cluster). */
    readonly clientId: string,
    options: KvClientOptions,
    clock: Clock,
  ) {
    this.order = [...endpoints];
    this.clock = clock;
    this.sessionTtlMs = options.sessionTtlMs;
    this.timeoutMs = options.rpc?.client?.timeoutMs ?? options.timeoutMs ?? defaultTimeoutMs;
    this.retryMs = options.retryMs ?? 10_000;
    this.lanesMax = Math.max(
      1,
      Math.min(options.lanesMax ?? limits.kvClientLanesMax, limits.kvClientLanesMax),
    );
  }

  /** Connects to a cluster (lazily: no call is made until the first request). */
  static async connect(options: KvClientOptions): Promise<KvClient> {
    if (options.endpoints.length === 0) {
      throw new CohortError('INVALID_ARGUMENT', 'KvClient needs at least one endpoint', {
        details: { field: 'endpoints' },
      });
    }
    const parsed = options.endpoints.map(parseKvEndpoint);
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
    const clock = options.clock ?? options.rpc?.clock ?? new RealClock();
    const tcp =
      options.transport === undefined
        ? await TcpTransport.start<RpcWireMessage>({
            self: nodeId(`client-${hex()}`),
            clusterId: toClusterId(options.clusterId ?? 'cohort-local'),
            codec: rpcCodec,
            peers: new Map(parsed.map((p) => [p.id, p.address])),
            logger:
              options.logger ??
              pino({ level: process.env.COHORT_LOG_LEVEL ?? 'error' }, pino.destination(2)),
          })
        : undefined;
    // The attempt deadline is the RPC default, so calls share one deadline timer.
    const rpc = new RpcNode(tcp ?? (options.transport as Transport<RpcWireMessage>), {
      ...(random === undefined ? {} : { random: random.fork('rpc') }),
      ...options.rpc,
      clock,
      client: { timeoutMs: options.timeoutMs ?? defaultTimeoutMs, ...options.rpc?.client },
    });
    return new KvClient(
      rpc,
      tcp === undefined ? undefined : (id, address) => tcp.setPeer(id, address),
      parsed.map((p) => p.id),
      clientId,
      options,
      clock,
    );
  }

  /** The node this client currently believes leads (undefined: unknown). */
  get leaderHint(): NodeId | undefined {
    return this.leader;
  }

  // ------------------------------------------------------------ reads

  /** One key (undefined if absent). */
  async get(key: Bytes, options: ReadOptions = {}): Promise<KeyValue | undefined> {
    const r = await this.range(key, options);
    return r.kvs[0];
  }

  /** A key, range or prefix. */
  range(key: Bytes, options: RangeOptions = {}): Promise<RangeResult> {
    return this.rangeRequest(
      { type: 'range', ...rangeOf(key, options), ...rangeExtras(options) },
      options.serializable,
    );
  }

  /** A range request as the state machine takes it (the optimistic txn's backend). */
  rangeRequest(req: RangeRequest, serializable = false): Promise<RangeResult> {
    const fields: Record<string, unknown> = { ...req };
    delete fields.type;
    if (serializable) fields.serializable = true;
    const wire = fields as Parameters<Stub['range']>[0];
    return this.call(undefined, (s, o) => s.range(wire, o));
  }

  // ------------------------------------------------------------ writes

  /** Writes one key. */
  put(key: Bytes, value: Bytes, options: PutOptions = {}): Promise<PutResult> {
    const req = { key: toBytes(key), value: toBytes(value), ...options };
    return this.write((s, o, session) => s.put({ ...req, session }, o));
  }

  /** Deletes a key, a range or a prefix. */
  delete(key: Bytes, options: DeleteOptions = {}): Promise<DeleteRangeResult> {
    const req = {
      ...rangeOf(key, options),
      ...(options.prevKv === undefined ? {} : { prevKv: options.prevKv }),
    };
    return this.write((s, o, session) => s.deleteRange({ ...req, session }, o));
  }

  /** Compare, then run `success` or `failure`, at one revision. */
  txn(req: {
    compare: readonly Compare[];
    success: readonly TxnOp[];
    failure?: readonly TxnOp[];
  }): Promise<TxnResult> {
    const body = {
      compare: [...req.compare],
      success: [...req.success],
      failure: [...(req.failure ?? [])],
    };
    return this.write((s, o, session) => s.txn({ ...body, session }, o));
  }

  /** Drops history below `revision`. */
  compact(revision: number): Promise<CompactResult> {
    return this.write((s, o, session) => s.compact({ revision, session }, o));
  }

  // ------------------------------------------------------------ leases

  /** Creates a lease of `ttlMs` (id chosen by the cluster unless given). */
  leaseGrant(ttlMs: number, id?: number): Promise<LeaseGrantResult> {
    return this.write((s, o, session) =>
      s.leaseGrant({ ttlMs, ...(id === undefined ? {} : { id }), session }, o),
    );
  }

  /** Ends a lease and deletes its keys. */
  leaseRevoke(id: number): Promise<LeaseRevokeResult> {
    return this.write((s, o, session) => s.leaseRevoke({ id, session }, o));
  }

  /** Renews a lease once. */
  leaseKeepAlive(id: number): Promise<LeaseKeepAliveResult> {
    // Idempotent enough: a keep-alive applied twice renews twice.
    return this.write((s, o, session) => s.leaseKeepAlive({ id, session }, o), true);
  }

  /** A lease's TTL left (as the leader's clock sees it) and optionally its keys. */
  leaseTimeToLive(
    id: number,
    options: { keys?: boolean; serializable?: boolean } = {},
  ): Promise<LeaseInfo> {
    return this.call(undefined, (s, o) => s.leaseTimeToLive({ id, ...options }, o));
  }

  /** Every live lease. */
  leases(
    options: { serializable?: boolean } = {},
  ): Promise<{ revision: number; leases: readonly LeaseInfo[] }> {
    return this.call(undefined, (s, o) => s.leases(options, o));
  }

  /**
   * Renews lease `id` every `intervalMs` (default a third of its TTL) until
   * stopped or the lease is gone (`done` resolves 'lost'; `onLost` is called).
   */
  keepAlive(id: number, options: { intervalMs?: number; onLost?: () => void } = {}): LeaseKeeper {
    const stop = new AbortController();
    let resolveDone: (v: 'stopped' | 'lost') => void = () => undefined;
    const done = new Promise<'stopped' | 'lost'>((r) => (resolveDone = r));
    const keeper: LeaseKeeper = { stop: () => stop.abort(), done };
    this.keepers.add(keeper);
    const loop = async (): Promise<'stopped' | 'lost'> => {
      let interval = options.intervalMs;
      while (!stop.signal.aborted && !this.closeController.signal.aborted) {
        try {
          const r = await this.leaseKeepAlive(id);
          interval ??= Math.max(100, Math.floor(r.ttlMs / 3));
        } catch (e) {
          if (isCohortError(e) && e.code === 'NOT_FOUND') return 'lost';
          if (!isCohortError(e) || e.code === 'CLOSED') return 'stopped';
          interval ??= 500;
        }
        await sleep(this.clock, interval, stop.signal);
      }
      return 'stopped';
    };
    void loop().then((why) => {
      this.keepers.delete(keeper);
      if (why === 'lost') options.onLost?.();
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
   * revision delivered + 1 on another node: no gap, no duplicate. A consumer
   * that stops reading is cut off by the node once its backlog passes the
   * node's bounds (OVERLOADED, reason `watcherTooSlow`); the watch resumes
   * the same way, from history, when it reads again. Throws COMPACTED if
   * the start revision was compacted, or if the resume point was compacted
   * meanwhile (`details.reason: 'watchResumeCompacted'`, `resumeRevision`,
   * `compactedRevision`: read the current state and watch from its revision
   * + 1). Breaking out of the loop or aborting `signal` ends it.
   */
  async *watch(key: Bytes, options: WatchOptions = {}): AsyncGenerator<WatchBatch> {
    const range = rangeOf(key, options);
    let next = options.startRevision;
    let failures = 0;
    let resuming = false;
    const signal = options.signal;
    while (signal?.aborted !== true && !this.closeController.signal.aborted) {
      const target = this.target();
      const stream = this.stub(target).watch(
        {
          ...range,
          ...(next === undefined ? {} : { startRevision: next }),
          ...(options.prevKv === true ? { prevKv: true } : {}),
          ...(options.progressMs === undefined ? {} : { progressMs: options.progressMs }),
        },
        signal === undefined ? {} : { signal },
      );
      try {
        for await (const item of stream) {
          failures = 0;
          if (item.created === true) {
            next ??= item.revision + 1;
            continue;
          }
          const from = next ?? 0;
          const events = item.events.filter((e) => e.kv.modRevision >= from);
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
        // Cut off for reading too slowly: the node is fine, resume there from history.
        const slow = e.code === 'OVERLOADED' && e.details.reason === 'watcherTooSlow';
        if (e.code === 'NOT_LEADER') this.forget(target);
        else if (!slow) this.suspect(target);
      } finally {
        stream.cancel();
        // Any later stream continues from `next`.
        resuming = true;
      }
      await sleep(this.clock, Math.min(500, 10 * 2 ** failures++), signal);
    }
  }

  // ------------------------------------------------------------ lifecycle

  /** Ends the lanes' sessions on the cluster (best effort), stops keep-alives, closes the connections. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closeController.abort();
      for (const k of this.keepers) k.stop();
      const sessions = this.lanes.flatMap((l) => (l.clientId === undefined ? [] : [l.clientId]));
      await Promise.allSettled(
        sessions.map((clientId) =>
          this.call(undefined, (s, o) => s.sessionEnd({ clientId }, o), 1_000),
        ),
      );
      await this.rpc.close();
    })();
    return this.closing;
  }

  // ------------------------------------------------------------ plumbing

  private stub(id: NodeId): Stub {
    let s = this.stubs.get(id);
    if (s === undefined) {
      s = this.rpc.client(KvService, id);
      this.stubs.set(id, s);
    }
    return s;
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
      if (addr === undefined || this.setPeer === undefined) {
        this.forget(from);
        return false;
      }
      this.setPeer(leader, addr);
      this.order.push(leader);
    }
    this.leader = leader;
    return true;
  }

  private acquireLane(): Promise<Lane> {
    const lane = this.free.pop();
    if (lane !== undefined) return Promise.resolve(lane);
    if (this.lanes.length < this.lanesMax) {
      const index = this.lanes.length;
      const l: Lane = { clientId: undefined, seq: 0, index };
      this.lanes.push(l);
      return Promise.resolve(l);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private releaseLane(lane: Lane): void {
    const w = this.waiters.shift();
    if (w !== undefined) w(lane);
    else this.free.push(lane);
  }

  /**
   * A write under a session lane: one seq for all retries of it. The lane
   * registers a session first if it has none (or its session expired);
   * after SESSION_EXPIRED the write is retried under a new session only if
   * no attempt of it can have applied, or `idempotent` (see the file comment).
   */
  private async write<T>(
    fn: (s: Stub, o: { timeoutMs: number }, session: SessionTag) => Promise<T>,
    idempotent = false,
  ): Promise<T> {
    if (this.closeController.signal.aborted)
      throw new CohortError('CLOSED', 'the KV client is closed');
    const lane = await this.acquireLane();
    try {
      // An attempt of this write may have applied (an indefinite error was retried).
      let uncertain = false;
      for (let registrations = 0; ;) {
        if (lane.clientId === undefined) {
          try {
            lane.clientId = await this.register();
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
            () => (uncertain = true),
            (s, o) => fn(s, o, session),
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
  private async register(): Promise<string> {
    const req = this.sessionTtlMs === undefined ? {} : { ttlMs: this.sessionTtlMs };
    try {
      const r = await this.call(undefined, (s, o) => s.sessionOpen(req, o));
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
   * One call with redirects and retries. Writes are retried after indefinite
   * errors only because they carry a session with the same seq (see the file
   * comment). `onRetry` is told when an attempt that may have taken effect is retried.
   */
  private async call<T>(
    onRetry: (() => void) | undefined,
    fn: (s: Stub, o: { timeoutMs: number }) => Promise<T>,
    retryMs = this.retryMs,
  ): Promise<T> {
    const deadline = this.clock.now() + retryMs;
    let backoff = 0;
    // An attempt that may have taken effect makes every later give-up indefinite.
    let uncertain = false;
    for (;;) {
      const target = this.target();
      try {
        return await fn(this.stub(target), { timeoutMs: this.timeoutMs });
      } catch (e) {
        if (!isCohortError(e) || !routingCodes.has(e.code)) throw e;
        if (e.code === 'CANCELLED' && this.closeController.signal.aborted) throw e;
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
        if (this.clock.now() + backoff >= deadline || this.closeController.signal.aborted) {
          if (!uncertain || !e.definite) throw e;
          // This attempt surely failed, but an earlier one may have been applied.
          throw new CohortError(e.code, `${e.message} (an earlier attempt may have taken effect)`, {
            definite: false,
            details: { ...e.details, earlierAttemptUncertain: true },
            cause: e,
          });
        }
        if (backoff > 0 && this.leader === undefined) await sleep(this.clock, backoff);
      }
    }
  }
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

function rangeExtras(o: RangeOptions): Omit<RangeRequest, 'type' | 'key' | 'rangeEnd'> {
  const out: { -readonly [K in keyof RangeRequest]?: RangeRequest[K] } = {};
  if (o.revision !== undefined) out.revision = o.revision;
  if (o.limit !== undefined) out.limit = o.limit;
  if (o.sortTarget !== undefined) out.sortTarget = o.sortTarget;
  if (o.sortOrder !== undefined) out.sortOrder = o.sortOrder;
  if (o.countOnly !== undefined) out.countOnly = o.countOnly;
  if (o.keysOnly !== undefined) out.keysOnly = o.keysOnly;
  return out;
}
