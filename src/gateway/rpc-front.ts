/**
 * The gateway's RPC front end: cohort RPC clients (and curl, through the
 * HTTP/JSON gateway of src/rpc/http-gateway.ts) call services on the
 * gateway's node as if it served them; each call goes to one backend
 * instance picked by the {@link Farm}, with the same failover rules as HTTP
 * (core/failover.ts): a call whose try failed definitely (nothing reached
 * the backend: UNAVAILABLE, OVERLOADED, CIRCUIT_OPEN, or the backend not
 * connected) is retried on another backend; a call of a method marked
 * idempotent is retried once after an indefinite failure (TIMEOUT,
 * CONNECTION_LOST); any other call that may have reached a backend fails
 * with UNAVAILABLE, indefinite, and is never sent again.
 *
 * ```ts
 * const front = await RpcFront.start({
 *   listen: { host: '127.0.0.1', port: 7500 }, http: { host: '127.0.0.1', port: 8500 },
 *   services: [TicTacToe],                          // or passThroughService('TicTacToe', [...])
 *   source: new StaticBackendSource(parseBackends('ttt-1=127.0.0.1:7401,ttt-2=127.0.0.1:7402')),
 * });
 * // clients: startTcpClient({ server: { id: 'gateway', host: '127.0.0.1', port: 7500 } })
 * ```
 *
 * The gateway needs each routed method's shape (unary or stream) and its
 * idempotent flag: from the service definition when the program has it, or
 * from {@link passThroughService}, which declares methods by name with
 * payloads left unchecked (the backend validates them). A route may fan a
 * unary method out to several backends (`replicated`), combined by
 * core/combine.ts (`first`, `majority`, `all`): a success carries the rule
 * and the outcome as reply metadata (`cohort-combine`, `cohort-outcome`:
 * `success;agreed=2;replied=3;failed=0;of=3`, `cohort-replicas`: each
 * replica's state), which the caller reads with `onReplyMeta` (HTTP/JSON:
 * the `x-cohort-reply-meta` header); a failed combination is an UNAVAILABLE
 * whose details carry the same. A routed call relays its backend's reply
 * metadata.
 *
 * Active checks need no cooperation from the backend: the probe calls a
 * method no backend serves (`cohort.Probe.ping`); any answer, NOT_FOUND
 * included, proves the backend's RPC server is alive, a timeout or a lost
 * link does not.
 */
import { performance } from 'node:perf_hooks';
import { Type } from '@sinclair/typebox';
import type { Logger } from 'pino';
import { pino } from 'pino';
import { RealClock } from '../lib/clock.js';
import { CohortError, isCohortError } from '../lib/errors.js';
import { clusterId as toClusterId, nodeId } from '../lib/ids.js';
import type { NodeId } from '../lib/ids.js';
import { LogLimiter } from '../lib/log-limiter.js';
import { limits } from '../lib/limits.js';
import { seededRandom } from '../lib/random.js';
import type { Random } from '../lib/random.js';
import { HttpGateway } from '../rpc/http-gateway.js';
import { rpcCodec } from '../rpc/messages.js';
import type { RpcWireMessage } from '../rpc/messages.js';
import { RpcNode } from '../rpc/node.js';
import { endpointFailureCodes } from '../rpc/resilience.js';
import { defineService, serverStream, unary } from '../rpc/service.js';
import type {
  CallContext,
  CallOptions,
  CompiledMethod,
  Handlers,
  ServiceDef,
} from '../rpc/service.js';
import { defaultClusterId } from '../rpc/tcp-endpoints.js';
import { TcpTransport } from '../transport/tcp-transport.js';
import type { BackendSource, BackendSpec } from './backend-source.js';
import { Combiner } from './core/combine.js';
import type { CombineMode } from './core/combine.js';
import { retryDecision } from './core/failover.js';
import type { FailurePhase } from './core/failover.js';
import { Farm } from './core/farm.js';
import type { Balance, BackendStatus, Outcome } from './core/farm.js';
import type { HealthOptions } from './core/health.js';
import { defaultHealth } from './http-proxy.js';
import { LatencyHistogram } from './metrics.js';
import type { MetricFamily } from './metrics.js';

/** A method declared by name for {@link passThroughService}. */
export interface PassThroughMethod {
  readonly name: string;
  readonly kind?: 'unary' | 'stream';
  readonly idempotent?: boolean;
}

/**
 * A service known only by its method names: requests and replies pass
 * through unchecked (the backend checks them), idempotency as declared.
 */
export function passThroughService(
  name: string,
  methods: readonly PassThroughMethod[],
): ServiceDef {
  const defs = Object.fromEntries(
    methods.map((m) => [
      m.name,
      m.kind === 'stream'
        ? serverStream(Type.Unknown(), Type.Unknown(), { idempotent: m.idempotent ?? false })
        : unary(Type.Unknown(), Type.Unknown(), { idempotent: m.idempotent ?? false }),
    ]),
  );
  return defineService(name, defs);
}

/**
 * Parses `Service.method[:idempotent][:stream],...` into pass-through
 * services (the `--rpc-methods` flag). Throws INVALID_ARGUMENT on a bad entry.
 */
export function parseRpcMethods(text: string): ServiceDef[] {
  const byService = new Map<string, PassThroughMethod[]>();
  for (const raw of text.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    const [path = '', ...flags] = item.split(':');
    const dot = path.lastIndexOf('.');
    const service = path.slice(0, dot);
    const method = path.slice(dot + 1);
    const bad = (why: string): CohortError =>
      new CohortError('INVALID_ARGUMENT', `rpcMethods: ${JSON.stringify(item)}: ${why}`, {
        details: { field: 'rpcMethods', value: item },
      });
    if (dot <= 0 || method === '' || !/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(service)) {
      throw bad('expected Service.method[:idempotent][:stream]');
    }
    if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(method)) throw bad('bad method name');
    for (const f of flags) if (f !== 'idempotent' && f !== 'stream') throw bad(`unknown flag ${f}`);
    const list = byService.get(service) ?? [];
    if (list.some((m) => m.name === method)) throw bad('listed twice');
    list.push({
      name: method,
      idempotent: flags.includes('idempotent'),
      kind: flags.includes('stream') ? 'stream' : 'unary',
    });
    byService.set(service, list);
  }
  return [...byService].map(([s, ms]) => passThroughService(s, ms));
}

/** Settings of an {@link RpcFront}. */
export interface RpcFrontOptions {
  /** Where cohort RPC clients connect. */
  readonly listen: { readonly host: string; readonly port: number };
  /** Also serve the HTTP/JSON gateway (`POST /rpc/<service>/<method>`) here. */
  readonly http?: { readonly host: string; readonly port: number };
  /** The gateway's node id (clients dial it by this id; default `gateway`). */
  readonly id?: string;
  /** Must match the backends' and clients' (default: the examples' cluster id). */
  readonly clusterId?: string;
  /** The services routed to the backends. */
  readonly services: readonly ServiceDef[];
  /** The backend instances; each id is the backend's RPC node id. */
  readonly source: BackendSource;
  readonly balance?: Balance;
  /** For `hash`: the call metadata key whose value is the key (default `key`). */
  readonly hashMeta?: string;
  readonly health?: Partial<HealthOptions>;
  /** Active checks: interval (0: off) and timeout. */
  readonly check?: { readonly intervalMs?: number; readonly timeoutMs?: number };
  /** Time one try may take, at most (default 10 s; the client's deadline bounds it too). */
  readonly tryTimeoutMs?: number;
  /** Methods (`Service.method`) fanned out to several backends. */
  readonly replicated?: Readonly<
    Record<string, { readonly mode: CombineMode; readonly replicas: number }>
  >;
  readonly random?: Random;
  readonly logger?: Logger;
}

/** Counters of the RPC front end. */
export interface RpcFrontCounters {
  calls: number;
  succeeded: number;
  /** Failures answered by the backend (its own errors, relayed as they are). */
  backendErrors: number;
  /** Calls that failed at the gateway (no backend, tries failed). */
  failed: number;
  retriesNotSent: number;
  retriesMaybeSent: number;
  replicatedOk: number;
  replicatedFailed: number;
}

interface RpcBackend {
  readonly spec: BackendSpec;
  readonly id: NodeId;
  checkTimer: NodeJS.Timeout | undefined;
  calls: number;
  failures: number;
  readonly latency: LatencyHistogram;
}

const probeMethod: CompiledMethod = (() => {
  const m = passThroughService('cohort.Probe', [{ name: 'ping', idempotent: true }]).compiled.get(
    'ping',
  );
  if (m === undefined) throw new Error('probe method missing');
  return m;
})();

/** The RPC front end (see the file comment). */
export class RpcFront {
  readonly farm: Farm;
  readonly counters: RpcFrontCounters = {
    calls: 0,
    succeeded: 0,
    backendErrors: 0,
    failed: 0,
    retriesNotSent: 0,
    retriesMaybeSent: 0,
    replicatedOk: 0,
    replicatedFailed: 0,
  };
  readonly latency = new LatencyHistogram();
  /** The last replicated outcome per method, for the status page. */
  readonly lastReplicated = new Map<string, string>();
  private readonly backends = new Map<string, RpcBackend>();
  /** Backends listed again under a draining id with a new address: they join once it drained. */
  private readonly returning = new Map<string, BackendSpec>();
  private readonly checkIntervalMs: number;
  private readonly checkTimeoutMs: number;
  private readonly tryTimeoutMs: number;
  private readonly hashMeta: string;
  private readonly log: LogLimiter;
  private unsubscribe: (() => void) | undefined;
  private httpGateway: HttpGateway | undefined;
  private closed = false;

  private constructor(
    readonly node: RpcNode,
    private readonly transport: TcpTransport<RpcWireMessage>,
    private readonly options: RpcFrontOptions,
    logger: Logger,
  ) {
    this.farm = new Farm({
      balance: options.balance ?? 'p2c',
      health: { ...defaultHealth, ...options.health },
      random: options.random ?? seededRandom(Math.floor(Math.random() * 2 ** 31)),
    });
    this.checkIntervalMs = options.check?.intervalMs ?? 2_000;
    this.checkTimeoutMs = options.check?.timeoutMs ?? 2_000;
    this.tryTimeoutMs = options.tryTimeoutMs ?? 10_000;
    this.hashMeta = options.hashMeta ?? 'key';
    this.log = new LogLimiter(logger.child({ component: 'gateway-rpc' }), {
      clock: new RealClock(),
    });
  }

  /** Starts listening (RPC, and HTTP/JSON if asked) and follows `options.source`. */
  static async start(options: RpcFrontOptions): Promise<RpcFront> {
    const logger = options.logger ?? pino({ level: 'warn' }, pino.destination(2));
    const transport = await TcpTransport.start<RpcWireMessage>({
      self: nodeId(options.id ?? 'gateway'),
      clusterId: toClusterId(options.clusterId ?? defaultClusterId),
      codec: rpcCodec,
      listen: options.listen,
      peers: {},
      acceptUnknownPeers: true,
      logger,
    });
    const node = new RpcNode(transport, { server: { logger } });
    const front = new RpcFront(node, transport, options, logger);
    for (const service of options.services) node.serve(service, front.handlersOf(service));
    try {
      if (options.http !== undefined) {
        front.httpGateway = await HttpGateway.start(node, { ...options.http, logger });
      }
    } catch (err) {
      await node.close();
      throw err;
    }
    front.unsubscribe = options.source.subscribe((list) => front.setBackends(list));
    return front;
  }

  /** The RPC address clients dial. */
  get address(): { host: string; port: number } {
    const a = this.transport.address;
    return { host: a?.host ?? '', port: a?.port ?? 0 };
  }

  /** The HTTP/JSON address, if served. */
  get httpAddress(): { host: string; port: number } | undefined {
    return this.httpGateway?.address;
  }

  /** What the status page shows. */
  status(): unknown {
    const now = performance.now();
    return {
      address: this.address,
      http: this.httpAddress,
      balance: this.farm.balance,
      counters: this.counters,
      latency: this.latency.summary(),
      replicated: Object.fromEntries(this.lastReplicated),
      backends: this.farm.status(now).map((s: BackendStatus) => {
        const b = this.backends.get(s.id);
        return {
          ...s,
          connected: b === undefined ? false : this.transport.isConnected(b.id),
          calls: b?.calls ?? 0,
          failures: b?.failures ?? 0,
          latency: b?.latency.summary(),
        };
      }),
    };
  }

  /** Metric families for the Prometheus page. */
  metrics(): MetricFamily[] {
    const c = this.counters;
    const all = [...this.backends.values()];
    return [
      {
        name: 'cohort_gateway_rpc_events_total',
        help: 'RPC front end: calls, successes, failures, retries, replicated outcomes',
        type: 'counter',
        samples: (Object.keys(c) as (keyof RpcFrontCounters)[]).map((k) => ({
          labels: { what: k },
          value: c[k],
        })),
      },
      {
        name: 'cohort_gateway_rpc_call_duration_seconds',
        help: 'Latency of RPC calls through the gateway',
        type: 'histogram',
        samples: [{ labels: {}, histogram: this.latency }],
      },
      {
        name: 'cohort_gateway_rpc_backend_calls_total',
        help: 'Tries sent to each RPC backend',
        type: 'counter',
        samples: all.map((b) => ({ labels: { backend: b.spec.id }, value: b.calls })),
      },
      {
        name: 'cohort_gateway_rpc_backend_failures_total',
        help: 'Tries that failed at each RPC backend',
        type: 'counter',
        samples: all.map((b) => ({ labels: { backend: b.spec.id }, value: b.failures })),
      },
    ];
  }

  /** Stops serving and closes every link. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe?.();
    for (const b of this.backends.values())
      if (b.checkTimer !== undefined) clearTimeout(b.checkTimer);
    this.log.close();
    await this.httpGateway?.close();
    await this.node.close();
  }

  // ---- backends -------------------------------------------------------------

  private setBackends(list: readonly BackendSpec[]): void {
    if (this.closed) return;
    const wanted = new Map(list.map((b) => [b.id, b]));
    for (const [id, b] of this.backends) {
      const w = wanted.get(id);
      if (w === undefined || w.host !== b.spec.host || w.port !== b.spec.port) {
        if (b.checkTimer !== undefined) clearTimeout(b.checkTimer);
        this.backends.delete(id);
        this.farm.remove(id);
        this.log.info({ backend: id }, 'RPC backend removed: draining');
      }
    }
    this.returning.clear();
    this.reapDrained();
    for (const spec of list) {
      const existing = this.backends.get(spec.id);
      if (existing !== undefined) {
        this.farm.upsert(spec.id, spec.weight);
        continue;
      }
      if (this.farm.has(spec.id)) {
        // Still draining under its old address: it joins at the new one once drained.
        this.returning.set(spec.id, spec);
        continue;
      }
      this.addBackend(spec);
    }
  }

  private addBackend(spec: BackendSpec): void {
    const b: RpcBackend = {
      spec,
      id: nodeId(spec.id),
      checkTimer: undefined,
      calls: 0,
      failures: 0,
      latency: new LatencyHistogram(),
    };
    this.backends.set(spec.id, b);
    this.transport.setPeer(b.id, { host: spec.host, port: spec.port });
    this.farm.upsert(spec.id, spec.weight);
    this.startChecks(b);
  }

  private reapDrained(): void {
    for (const id of this.farm.takeDrained()) {
      if (this.backends.has(id)) continue;
      this.transport.removePeer(nodeId(id));
      const back = this.returning.get(id);
      if (back !== undefined && !this.closed) {
        this.returning.delete(id);
        this.addBackend(back);
        this.log.info({ backend: id }, 'RPC backend back at its new address');
      }
    }
  }

  private startChecks(b: RpcBackend): void {
    const run = (): void => {
      b.checkTimer = undefined;
      if (this.closed || this.backends.get(b.spec.id) !== b) return;
      this.node
        .invoker(b.id)
        .unary(probeMethod, {}, { timeoutMs: this.checkTimeoutMs })
        .then(
          () => true,
          (err: unknown) =>
            isCohortError(err) &&
            !['TIMEOUT', 'CONNECTION_LOST', 'UNAVAILABLE', 'CLOSED'].includes(err.code),
        )
        .then(
          (ok) => {
            if (this.closed || this.backends.get(b.spec.id) !== b) return;
            const before = this.farm.statusOf(b.spec.id, performance.now())?.active;
            this.farm.checked(b.spec.id, ok);
            const after = this.farm.statusOf(b.spec.id, performance.now())?.active;
            if (before !== after)
              this.log.warn(
                { backend: b.spec.id, active: after },
                `RPC backend ${b.spec.id} is ${after}`,
              );
            b.checkTimer = setTimeout(run, this.checkIntervalMs);
          },
          () => undefined,
        );
    };
    if (this.checkIntervalMs <= 0) {
      // Without checks, one probe still opens the link.
      this.node
        .invoker(b.id)
        .unary(probeMethod, {}, { timeoutMs: this.checkTimeoutMs })
        .catch(() => undefined);
      return;
    }
    // The first probe goes at once: it also opens the link.
    b.checkTimer = setTimeout(run, 0);
  }

  // ---- calls ----------------------------------------------------------------

  private handlersOf(service: ServiceDef): Handlers<ServiceDef> {
    const handlers: Record<string, unknown> = {};
    for (const [name, method] of service.compiled) {
      const replicated = this.options.replicated?.[`${service.name}.${name}`];
      if (method.def.kind === 'stream') {
        handlers[name] = (request: unknown, ctx: CallContext) =>
          this.forwardStream(method, request, ctx);
      } else if (replicated !== undefined) {
        handlers[name] = (request: unknown, ctx: CallContext) =>
          this.fanOut(method, request, ctx, replicated.mode, replicated.replicas);
      } else {
        handlers[name] = (request: unknown, ctx: CallContext) =>
          this.forwardUnary(method, request, ctx);
      }
    }
    return handlers as Handlers<ServiceDef>;
  }

  /** Options of one try: the caller's deadline, cancellation and metadata; reply metadata relayed back. */
  private tryOptions(ctx: CallContext): CallOptions & { timeoutMs: number } {
    const left = Math.floor(ctx.remainingMs());
    const o: {
      timeoutMs: number;
      signal: AbortSignal;
      meta?: Record<string, string>;
      onReplyMeta: (m: Readonly<Record<string, string>>) => void;
    } = {
      timeoutMs: Math.max(1, Math.min(this.tryTimeoutMs, left, limits.rpcDeadlineMsMax)),
      signal: ctx.signal,
      onReplyMeta: (m) => {
        for (const [k, v] of Object.entries(m)) ctx.setReplyMeta(k, v);
      },
    };
    if (Object.keys(ctx.meta).length > 0) o.meta = { ...ctx.meta };
    return o;
  }

  /** Picks a connected backend not tried yet; disconnected picks count as not-sent tries. */
  private pick(ctx: CallContext, tried: Set<string>): RpcBackend | undefined {
    const key = this.farm.balance === 'hash' ? ctx.meta[this.hashMeta] : undefined;
    for (;;) {
      const p = this.farm.pick(performance.now(), key, tried);
      if (p === undefined) return undefined;
      tried.add(p.id);
      const b = this.backends.get(p.id);
      if (b !== undefined && this.transport.isConnected(b.id)) return b;
    }
  }

  private ended(b: RpcBackend, outcome: Outcome, probe: boolean, t: number): void {
    if (outcome === 'failure') b.failures++;
    else b.latency.observe(performance.now() - t);
    this.farm.ended(b.spec.id, outcome, probe, performance.now());
    this.reapDrained();
  }

  private async forwardUnary(
    method: CompiledMethod,
    request: unknown,
    ctx: CallContext,
  ): Promise<unknown> {
    this.counters.calls++;
    const t0 = performance.now();
    const tried = new Set<string>();
    let maybeSentRetries = 0;
    let last: CohortError | undefined;
    let tries = 0;
    for (;;) {
      const b = this.pick(ctx, tried);
      if (b === undefined) throw this.noBackend(method, last);
      tries++;
      b.calls++;
      const probe = this.farm.started(b.spec.id, performance.now());
      const t = performance.now();
      try {
        const result = await this.node.invoker(b.id).unary(method, request, this.tryOptions(ctx));
        this.ended(b, 'ok', probe, t);
        this.counters.succeeded++;
        this.latency.observe(performance.now() - t0);
        return result;
      } catch (err) {
        const e = asCohortError(err);
        if (ctx.signal.aborted) {
          this.ended(b, 'neutral', probe, t);
          throw e;
        }
        if (!endpointFailureCodes.has(e.code) && e.code !== 'CIRCUIT_OPEN') {
          // The backend's own answer (NOT_FOUND, INVALID_ARGUMENT, FAILED_PRECONDITION, ...).
          this.ended(b, 'ok', probe, t);
          this.counters.backendErrors++;
          throw e;
        }
        this.ended(b, 'failure', probe, t);
        last = e;
        const phase: FailurePhase = e.definite ? 'not-sent' : 'maybe-sent';
        const d = retryDecision({
          phase,
          idempotent: method.def.idempotent,
          tries,
          maybeSentRetries,
          triesMax: limits.gatewayTriesMax,
          msLeft: ctx.remainingMs(),
        });
        if (d.retry) {
          if (phase === 'maybe-sent') {
            maybeSentRetries++;
            this.counters.retriesMaybeSent++;
          } else this.counters.retriesNotSent++;
          continue;
        }
        this.counters.failed++;
        if (phase === 'maybe-sent') {
          throw new CohortError(
            'UNAVAILABLE',
            `${method.service}.${method.name} failed at backend ${b.spec.id} after it may have run (${e.code}); not retried`,
            {
              definite: false,
              cause: e,
              details: { backend: b.spec.id, code: e.code, why: d.why },
            },
          );
        }
        throw e;
      }
    }
  }

  private noBackend(method: CompiledMethod, last: CohortError | undefined): CohortError {
    this.counters.failed++;
    if (last !== undefined && !last.definite) return last;
    return new CohortError(
      'UNAVAILABLE',
      `no backend available for ${method.service}.${method.name}${last === undefined ? '' : ` (last: ${last.code})`}`,
      { details: { service: method.service, method: method.name } },
    );
  }

  private async *forwardStream(
    method: CompiledMethod,
    request: unknown,
    ctx: CallContext,
  ): AsyncGenerator<unknown> {
    this.counters.calls++;
    const tried = new Set<string>();
    let maybeSentRetries = 0;
    let tries = 0;
    let last: CohortError | undefined;
    for (;;) {
      const b = this.pick(ctx, tried);
      if (b === undefined) throw this.noBackend(method, last);
      tries++;
      b.calls++;
      const probe = this.farm.started(b.spec.id, performance.now());
      const t = performance.now();
      const stream = this.node.invoker(b.id).stream(method, request, {
        ...this.tryOptions(ctx),
        timeoutMs: Math.max(1, Math.floor(ctx.remainingMs())),
      });
      let items = 0;
      try {
        for await (const item of stream) {
          items++;
          yield item;
        }
        this.ended(b, 'ok', probe, t);
        this.counters.succeeded++;
        return;
      } catch (err) {
        const e = asCohortError(err);
        const failure = endpointFailureCodes.has(e.code) && !ctx.signal.aborted;
        this.ended(b, failure ? 'failure' : 'neutral', probe, t);
        if (!failure || items > 0) throw e;
        last = e;
        const phase: FailurePhase = e.definite ? 'not-sent' : 'maybe-sent';
        const d = retryDecision({
          phase,
          idempotent: method.def.idempotent,
          tries,
          maybeSentRetries,
          triesMax: limits.gatewayTriesMax,
          msLeft: ctx.remainingMs(),
        });
        if (!d.retry) {
          this.counters.failed++;
          throw e;
        }
        if (phase === 'maybe-sent') {
          maybeSentRetries++;
          this.counters.retriesMaybeSent++;
        } else this.counters.retriesNotSent++;
      } finally {
        stream.cancel();
      }
    }
  }

  private fanOut(
    method: CompiledMethod,
    request: unknown,
    ctx: CallContext,
    mode: CombineMode,
    replicas: number,
  ): Promise<unknown> {
    this.counters.calls++;
    const tried = new Set<string>();
    const chosen: RpcBackend[] = [];
    const want = Math.min(replicas, limits.gatewayReplicasMax);
    while (chosen.length < want) {
      const b = this.pick(ctx, tried);
      if (b === undefined) break;
      chosen.push(b);
    }
    const name = `${method.service}.${method.name}`;
    if (chosen.length === 0) return Promise.reject(this.noBackend(method, undefined));
    const combiner = new Combiner(mode, chosen.length);
    const stop = new AbortController();
    const signal = AbortSignal.any([stop.signal, ctx.signal]);
    const results: unknown[] = [];
    const states: string[] = chosen.map((b) => `${b.spec.id}=pending`);
    return new Promise((resolve, reject) => {
      chosen.forEach((b, i) => {
        b.calls++;
        const probe = this.farm.started(b.spec.id, performance.now());
        const t = performance.now();
        this.node
          .invoker(b.id)
          .unary(method, request, { ...this.tryOptions(ctx), signal, onReplyMeta: () => {} })
          .then(
            (value) => {
              this.ended(b, 'ok', probe, t);
              states[i] = `${b.spec.id}=ok`;
              results[i] = value;
              return combiner.reply(i, { ok: true, digest: canonical(value) });
            },
            (err: unknown) => {
              const e = asCohortError(err);
              this.ended(
                b,
                endpointFailureCodes.has(e.code) && !stop.signal.aborted ? 'failure' : 'neutral',
                probe,
                t,
              );
              states[i] = `${b.spec.id}=${e.code}`;
              return combiner.reply(i, { ok: false, definite: e.definite });
            },
          )
          .then((c) => {
            if (c === undefined) return;
            stop.abort();
            const outcome = `${mode} ${c.kind}: agreed ${c.agreed}, replied ${c.replied}, failed ${c.failed} of ${c.of}`;
            this.lastReplicated.set(name, outcome);
            if (c.kind === 'success') {
              this.counters.replicatedOk++;
              // The rule and the outcome travel back as reply metadata (HTTP: x-cohort-* headers).
              ctx.setReplyMeta('cohort-combine', mode);
              ctx.setReplyMeta(
                'cohort-outcome',
                `${c.kind};agreed=${c.agreed};replied=${c.replied};failed=${c.failed};of=${c.of}`,
              );
              ctx.setReplyMeta('cohort-replicas', states.join(','));
              resolve(results[c.replica]);
            } else {
              this.counters.replicatedFailed++;
              reject(
                new CohortError('UNAVAILABLE', `replicated ${name}: ${outcome}`, {
                  definite: c.definite,
                  details: {
                    combine: mode,
                    outcome: c.kind,
                    agreed: c.agreed,
                    replied: c.replied,
                    failed: c.failed,
                    of: c.of,
                    replicas: states.join(','),
                  },
                }),
              );
            }
          }, reject);
      });
    });
  }
}

function asCohortError(err: unknown): CohortError {
  return isCohortError(err)
    ? err
    : new CohortError('INTERNAL', err instanceof Error ? err.message : String(err), { cause: err });
}

/** JSON with sorted keys, so equal replies compare equal whatever their key order. */
function canonical(value: unknown): string {
  return (
    JSON.stringify(value, (_k, v: unknown) =>
      v !== null && typeof v === 'object' && !Array.isArray(v)
        ? Object.fromEntries(
            Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)),
          )
        : v,
    ) ?? 'undefined'
  );
}
