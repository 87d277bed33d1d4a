/**
 * The gateway's HTTP/1.1 reverse proxy, on node:net sockets both ways: a
 * strict llhttp parser per client connection (http1.ts) reads requests,
 * keep-alive pools of raw connections per backend (upstream.ts) carry
 * them, the {@link Farm} picks a backend per request, and the failover
 * rules of core/failover.ts decide retries.
 *
 * ```ts
 * const proxy = await HttpProxy.start({ listen: { host: '127.0.0.1', port: 8080 },
 *   source: new StaticBackendSource(parseBackends('a=127.0.0.1:8081,b=127.0.0.1:8082')) });
 * // curl localhost:8080/anything → a or b; X-Forwarded-For/-Proto/-Host added
 * proxy.status();   // backends with health and counters
 * await proxy.close();
 * ```
 *
 * Why not node:http and undici (as before): a proxied request went
 * through two HTTP stacks' objects (IncomingMessage, ServerResponse,
 * streams, undici's request and its timers) and took 37 µs of CPU where
 * HAProxy takes 14-16 (18-20 now, measured under load). Here a request is
 * a head parsed by llhttp (the parser both of them use), one
 * {@link Exchange} object, one write to the backend and, for a response
 * whose head and body arrive in one read, one write to the client (what a
 * backend's read produces is joined and written once the read is parsed).
 * Timeouts are deadlines checked by one timer per proxy. Kernel time is
 * now most of what is left: per request exactly two reads and two writes
 * (strace), as HAProxy's, and 12-13 µs of system CPU against HAProxy's
 * 10-12; its user CPU is 4-5 µs, this proxy's 6-7.
 *
 * What the proxy guarantees (tested in test/gateway/*.test.ts):
 * - A request head larger than `headerBytesMax` gets 431, a body larger
 *   than `bodyBytesMax` gets 413 (at once when Content-Length says so, else
 *   when the stream passes it), a malformed request 400; none of them
 *   reaches a backend or can crash the process. The parser is strict
 *   (http1.ts): both Content-Length and Transfer-Encoding, differing or
 *   repeated Content-Length, obs-fold, bare LF get 400, and a body ends
 *   where its framing says: the bytes after it are the next request.
 *   Pipelined requests are answered in order, one at a time.
 * - Hop-by-hop headers (RFC 9110 §7.6.1) are dropped both ways;
 *   `X-Forwarded-For` (appended), `-Proto` and `-Host` are set. Bodies are
 *   framed anew each way: Content-Length kept, chunked re-chunked (to an
 *   HTTP/1.0 client: delimited by the close), trailers dropped.
 * - Failover (core/failover.ts): a try that never reached its backend
 *   (connect refused or timed out, or waited in the pool's queue past its
 *   time) is retried on another; an idempotent request (GET, HEAD, PUT,
 *   DELETE, OPTIONS, TRACE) whose try may have reached its backend (any
 *   failure once the request was handed to a connection) is retried once;
 *   any other failure is answered 502 (504 after a timeout) with
 *   `x-cohort-definite: false`, never retried. Retries need the body again:
 *   bodies up to `limits.gatewayRetryBodyBytesMax` are read whole first;
 *   bigger ones stream and are retried only when no byte of them left.
 * - A backend that answers garbage, resets or hangs costs that request (or
 *   its try) a 502/504; the backend's breaker counts it. A connection is
 *   reused only after a complete response with nothing after it.
 * - Backends removed from the source drain: no new requests, in-flight ones
 *   finish, then the pool closes.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { pino } from 'pino';
import { RealClock } from '../lib/clock.js';
import { LogLimiter } from '../lib/log-limiter.js';
import { limits } from '../lib/limits.js';
import { seededRandom } from '../lib/random.js';
import type { Random } from '../lib/random.js';
import type { BackendSource, BackendSpec } from './backend-source.js';
import { Combiner } from './core/combine.js';
import type { CombineMode, Combined } from './core/combine.js';
import { idempotentHttpMethods, retryDecision } from './core/failover.js';
import type { FailurePhase } from './core/failover.js';
import { Farm } from './core/farm.js';
import type { Balance, Outcome } from './core/farm.js';
import type { HealthOptions } from './core/health.js';
import {
  chunkHead,
  consumableHandle,
  headerValue,
  isParseError,
  kOnBody,
  kOnExecute,
  kOnHeaders,
  kOnHeadersComplete,
  kOnMessageComplete,
  lastChunk,
  methods,
  newParser,
  requestHead,
  responseHeaderLines,
  joinHead,
} from './http1.js';
import type { Parser, ParseError, RequestFraming, StreamHandle } from './http1.js';
import { LatencyHistogram } from './metrics.js';
import type { MetricFamily } from './metrics.js';
import { emptyHttpCounters, emptyUpstreamCounters, httpBackends, httpMetrics } from './report.js';
import type { BackendReport, HttpProxyCounters, HttpSnapshot, UpstreamCounters } from './report.js';
import { TryError, UpstreamPool, isBorrowed } from './upstream.js';
import type { TryHandler, UpstreamConn } from './upstream.js';

export type { BackendReport, HttpProxyCounters, HttpSnapshot, UpstreamCounters } from './report.js';

/** Active health checks of HTTP backends. */
export interface HttpCheckOptions {
  /** Time between checks of one backend; 0 turns active checks off. */
  readonly intervalMs: number;
  /** A check that has not answered within this counts as failed. */
  readonly timeoutMs: number;
  /** Path of the check (`GET`); any 2xx or 3xx is healthy. */
  readonly path: string;
}

/** A route whose requests fan out to several backends (replicated calls). */
export interface ReplicatedRoute {
  /** Requests whose path starts with this go to `replicas` backends. */
  readonly pathPrefix: string;
  readonly mode: CombineMode;
  /** Backends to call (at most the farm's size). */
  readonly replicas: number;
}

/** Settings of an {@link HttpProxy}. */
export interface HttpProxyOptions {
  readonly listen: { readonly host: string; readonly port: number };
  /**
   * Connections are handed in with {@link HttpProxy.adopt} and `listen` is
   * not bound (a worker process, whose primary listens: workers.ts).
   */
  readonly handed?: boolean;
  readonly source: BackendSource;
  readonly balance?: Balance;
  /** For `hash`: the request header whose value is the key (default `x-cohort-key`). */
  readonly hashHeader?: string;
  readonly health?: Partial<HealthOptions>;
  readonly check?: Partial<HttpCheckOptions>;
  /** Deadline of a request, all tries included (default 30 s). */
  readonly timeoutMs?: number;
  /** Time one try may wait for the response head, and between body chunks (default 10 s). */
  readonly tryTimeoutMs?: number;
  /** Time allowed to connect to a backend (default 3 s). */
  readonly connectTimeoutMs?: number;
  /** Largest request head (default `limits.gatewayHeaderBytesMax`). */
  readonly headerBytesMax?: number;
  /** Largest request body (default `limits.gatewayBodyBytesDefault`). */
  readonly bodyBytesMax?: number;
  /** Connections per backend (default `limits.gatewayUpstreamConnectionsMax`). */
  readonly connectionsPerBackend?: number;
  readonly replicated?: readonly ReplicatedRoute[];
  readonly random?: Random;
  readonly logger?: Logger;
}

/** Default health settings of the gateway's backends. */
export const defaultHealth: HealthOptions = {
  rise: 2,
  fall: 3,
  ejectFailures: 5,
  ejectMs: 2_000,
  ejectMsMax: 60_000,
};

/** Default active-check settings. */
export const defaultHttpCheck: HttpCheckOptions = {
  intervalMs: 2_000,
  timeoutMs: 2_000,
  path: '/',
};

interface Upstream {
  readonly spec: BackendSpec;
  readonly pool: UpstreamPool;
  checkTimer: NodeJS.Timeout | undefined;
  /** The active check in flight. */
  check: CheckTry | undefined;
  readonly counters: UpstreamCounters;
  readonly latency: LatencyHistogram;
}

const errorCodes = {
  400: 'INVALID_ARGUMENT',
  405: 'INVALID_ARGUMENT',
  413: 'INVALID_ARGUMENT',
  417: 'INVALID_ARGUMENT',
  431: 'INVALID_ARGUMENT',
  502: 'UNAVAILABLE',
  503: 'UNAVAILABLE',
  504: 'TIMEOUT',
} as const;

type GatewayStatus = keyof typeof errorCodes;

const reasons: Record<GatewayStatus, string> = {
  400: 'Bad Request',
  405: 'Method Not Allowed',
  413: 'Payload Too Large',
  417: 'Expectation Failed',
  431: 'Request Header Fields Too Large',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** Idle time of a client connection between requests (node:http's keepAliveTimeout as this gateway set it). */
const clientKeepAliveMs = 30_000;
/** Slowloris: the whole head of a request must arrive within this (node's default is 60 s). */
const clientHeadMs = 20_000;
/** Response chunks up to this size are joined into the read's one write as latin1 text; bigger ones are written as they are. */
const smallChunkBytes = 16 * 1024;
/** Idle time of a kept-alive backend connection when the backend announces none. */
const upstreamIdleMs = 30_000;

/** The HTTP reverse proxy (see the file comment). */
export class HttpProxy {
  readonly farm: Farm;
  readonly counters: HttpProxyCounters = emptyHttpCounters();
  /** Latency of every relayed response (first byte of the request to the end of the response). */
  readonly latency = new LatencyHistogram();
  private readonly upstreams = new Map<string, Upstream>();
  private readonly draining = new Map<string, Upstream>();
  /** Backends listed again under a draining id with a new address: they join once it drained. */
  private readonly returning = new Map<string, BackendSpec>();
  private readonly clients = new Set<ClientConn>();
  private readonly health: HealthOptions;
  private readonly check: HttpCheckOptions;
  private readonly timeoutMs: number;
  /** @internal */
  readonly tryTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  /** @internal */
  readonly bodyBytesMax: number;
  /** @internal */
  readonly headerBytesMax: number;
  private readonly connections: number;
  private readonly hashHeader: string;
  private readonly replicated: readonly ReplicatedRoute[];
  private readonly log: LogLimiter;
  private readonly timer: NodeJS.Timeout;
  private lastClientSweep = 0;
  /** @internal performance.now() at the last tick: the clock of idle timeouts. */
  now = performance.now();
  private unsubscribe: (() => void) | undefined;
  private closed = false;
  private readonly listen: { readonly host: string; readonly port: number };

  private constructor(
    private readonly server: net.Server,
    options: HttpProxyOptions,
  ) {
    this.listen = options.listen;
    this.health = { ...defaultHealth, ...options.health };
    this.check = { ...defaultHttpCheck, ...options.check };
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.tryTimeoutMs = options.tryTimeoutMs ?? 10_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? limits.connectTimeoutMs;
    this.bodyBytesMax = options.bodyBytesMax ?? limits.gatewayBodyBytesDefault;
    this.headerBytesMax = options.headerBytesMax ?? limits.gatewayHeaderBytesMax;
    this.connections = options.connectionsPerBackend ?? limits.gatewayUpstreamConnectionsMax;
    this.hashHeader = (options.hashHeader ?? 'x-cohort-key').toLowerCase();
    this.replicated = options.replicated ?? [];
    this.farm = new Farm({
      balance: options.balance ?? 'p2c',
      health: this.health,
      random: options.random ?? seededRandom(Math.floor(Math.random() * 2 ** 31)),
    });
    const logger = options.logger ?? pino({ level: 'warn' }, pino.destination(2));
    this.log = new LogLimiter(logger.child({ component: 'gateway-http' }), {
      clock: new RealClock(),
    });
    // Deadlines are checked this often: a tenth of the shortest one, within 5-250 ms.
    const shortest = Math.min(
      this.tryTimeoutMs,
      this.connectTimeoutMs,
      this.check.intervalMs > 0 ? this.check.timeoutMs : Infinity,
    );
    const tickMs = Math.min(250, Math.max(5, Math.floor(shortest / 10)));
    this.timer = setInterval(() => this.tick(), tickMs);
    this.timer.unref();
  }

  /** Starts listening and follows `options.source`. */
  static async start(options: HttpProxyOptions): Promise<HttpProxy> {
    // allowHalfOpen: a client that shut its side after a request still gets the answer.
    const server = net.createServer({ allowHalfOpen: true, noDelay: true });
    const proxy = new HttpProxy(server, options);
    server.on('connection', (socket: net.Socket) => proxy.accept(socket));
    try {
      if (options.handed !== true) {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(options.listen.port, options.listen.host, () => {
            server.off('error', reject);
            resolve();
          });
        });
      }
    } catch (err) {
      clearInterval(proxy.timer);
      throw err;
    }
    server.on('error', (err) => proxy.log.error({ err }, 'the gateway listener failed'));
    proxy.unsubscribe = options.source.subscribe((list) => proxy.setBackends(list));
    return proxy;
  }

  /** The bound address (the configured one when connections are handed in). */
  get address(): { host: string; port: number } {
    const a = this.server.address() as AddressInfo | null;
    return a === null ? { ...this.listen } : { host: a.address, port: a.port };
  }

  /**
   * Serves client connection `socket`, accepted elsewhere (another process's
   * listener: {@link HttpProxyOptions.handed}), as one accepted here.
   */
  adopt(socket: net.Socket): void {
    socket.allowHalfOpen = true; // as the listener's own connections (see start)
    socket.setNoDelay(true);
    this.accept(socket);
  }

  /** Backends with health, outstanding requests, counters and latency. */
  status(): BackendReport[] {
    return httpBackends([this.snapshot()]);
  }

  /** Metric families for the Prometheus page. */
  metrics(): MetricFamily[] {
    return httpMetrics([this.snapshot()]);
  }

  /** Everything the admin port shows, as plain data (workers send it to the primary). */
  snapshot(): HttpSnapshot {
    const now = performance.now();
    return {
      counters: { ...this.counters },
      latency: this.latency.data(),
      panics: this.farm.panics,
      backends: this.farm.status(now).map((s) => {
        const u = this.upstreams.get(s.id) ?? this.draining.get(s.id);
        return {
          ...s,
          host: u?.spec.host ?? '',
          port: u?.spec.port ?? 0,
          counters: { ...(u?.counters ?? emptyUpstreamCounters()) },
          latency: (u?.latency ?? new LatencyHistogram()).data(),
        };
      }),
    };
  }

  /** Stops listening, closes client connections and every pool. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe?.();
    this.log.close();
    clearInterval(this.timer);
    const listening = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const c of [...this.clients]) c.destroy();
    const all = [...this.upstreams.values(), ...this.draining.values()];
    this.upstreams.clear();
    this.draining.clear();
    for (const u of all) this.closeUpstream(u, true);
    await listening;
  }

  private accept(socket: net.Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    const c = new ClientConn(this, socket);
    this.clients.add(c);
  }

  /** @internal A client connection closed. */
  forget(c: ClientConn): void {
    this.clients.delete(c);
  }

  private tick(): void {
    const now = (this.now = performance.now());
    for (const u of this.upstreams.values()) u.pool.sweep(now);
    for (const u of this.draining.values()) u.pool.sweep(now);
    if (now - this.lastClientSweep < 1_000) return;
    this.lastClientSweep = now;
    for (const c of this.clients) c.sweep(now, clientKeepAliveMs, clientHeadMs);
  }

  // ---- backends -------------------------------------------------------------

  private setBackends(list: readonly BackendSpec[]): void {
    if (this.closed) return;
    const wanted = new Map(list.map((b) => [b.id, b]));
    for (const [id, u] of this.upstreams) {
      const w = wanted.get(id);
      if (w === undefined || w.host !== u.spec.host || w.port !== u.spec.port) {
        this.upstreams.delete(id);
        this.draining.set(id, u);
        this.stopChecks(u);
        this.farm.remove(id);
        this.log.info({ backend: id }, 'backend removed: draining');
      }
    }
    this.returning.clear();
    this.reapDrained();
    for (const spec of list) {
      const existing = this.upstreams.get(spec.id);
      if (existing !== undefined) {
        this.farm.upsert(spec.id, spec.weight);
        continue;
      }
      if (this.draining.has(spec.id)) {
        // Same id back with a new address while the old one drains: it joins
        // once the old one drained (reapDrained), not before: the farm knows
        // a backend by its id.
        this.returning.set(spec.id, spec);
        continue;
      }
      this.addUpstream(spec);
    }
  }

  private addUpstream(spec: BackendSpec): void {
    const u: Upstream = {
      spec,
      pool: new UpstreamPool({
        host: spec.host,
        port: spec.port,
        max: this.connections,
        connectTimeoutMs: this.connectTimeoutMs,
        idleMs: upstreamIdleMs,
        headBytesMax: limits.gatewayHeaderBytesMax,
      }),
      checkTimer: undefined,
      check: undefined,
      counters: emptyUpstreamCounters(),
      latency: new LatencyHistogram(),
    };
    this.upstreams.set(spec.id, u);
    this.farm.upsert(spec.id, spec.weight);
    this.startChecks(u);
  }

  private reapDrained(): void {
    for (const id of this.farm.takeDrained()) {
      const u = this.draining.get(id);
      if (u === undefined) continue;
      this.draining.delete(id);
      this.closeUpstream(u, false);
      this.log.info({ backend: id }, 'backend drained and closed');
      const back = this.returning.get(id);
      if (back !== undefined && !this.closed) {
        this.returning.delete(id);
        this.addUpstream(back);
        this.log.info({ backend: id }, 'backend back at its new address');
      }
    }
  }

  private closeUpstream(u: Upstream, now: boolean): void {
    this.stopChecks(u);
    if (now) u.pool.destroy();
    else u.pool.close();
  }

  // ---- active checks --------------------------------------------------------

  private startChecks(u: Upstream): void {
    if (this.check.intervalMs <= 0) return;
    const run = (): void => {
      u.checkTimer = undefined;
      if (this.closed || u.check !== undefined) return;
      const started = performance.now();
      const check = new CheckTry(u, this.check.path, this.check.timeoutMs, (ok) => {
        if (u.check !== check) return; // stopped meanwhile
        u.check = undefined;
        const before = this.farm.statusOf(u.spec.id, started)?.active;
        if (ok) u.counters.checksOk++;
        else u.counters.checksFailed++;
        this.farm.checked(u.spec.id, ok);
        const after = this.farm.statusOf(u.spec.id, started)?.active;
        if (before !== after) {
          this.log.warn({ backend: u.spec.id, active: after }, `backend ${u.spec.id} is ${after}`);
        }
        u.checkTimer = setTimeout(run, this.check.intervalMs);
      });
      u.check = check;
      u.pool.dispatch(check);
    };
    u.checkTimer = setTimeout(run, this.check.intervalMs);
  }

  private stopChecks(u: Upstream): void {
    if (u.checkTimer !== undefined) clearTimeout(u.checkTimer);
    u.checkTimer = undefined;
    const c = u.check;
    u.check = undefined;
    c?.cancel();
  }

  // ---- requests -------------------------------------------------------------

  /** @internal Starts exchange `x`: fans out, or makes its first try. */
  begin(x: Exchange): void {
    try {
      const route = this.replicated.length === 0 ? undefined : this.replicatedRoute(x.url);
      if (route !== undefined) this.fanOut(x, route);
      else x.next();
    } catch (err) {
      // A bug in the gateway must not take the process down for one request.
      this.log.error({ err }, 'the gateway failed to handle a request');
      x.client.answer(x, 502, 'the gateway failed', false, true);
    }
  }

  /** @internal Whether requests to `url` read their body whole first (replicated routes). */
  readsWhole(url: string): boolean {
    return this.replicated.length > 0 && this.replicatedRoute(url) !== undefined;
  }

  private replicatedRoute(url: string): ReplicatedRoute | undefined {
    for (const r of this.replicated) if (url.startsWith(r.pathPrefix)) return r;
    return undefined;
  }

  /** @internal Counts a gateway answer of `status`. */
  countAnswer(status: GatewayStatus): void {
    if (status === 502) this.counters.badGateway502++;
    else if (status === 503) this.counters.unavailable503++;
    else if (status === 504) this.counters.timeout504++;
  }

  // ---- tries ----------------------------------------------------------------

  /** @internal Picks a backend for the next try of `x`, or undefined. */
  pickFor(x: Exchange, now: number): Upstream | undefined {
    const key = this.farm.balance === 'hash' ? headerValue(x.headers, this.hashHeader) : undefined;
    // Before a retry, the one backend tried so far is excluded.
    const exclude = x.tries === 1 ? x.excludeFirst() : x.tried;
    const p = this.farm.pick(now, key, exclude);
    return p === undefined ? undefined : this.upstreams.get(p.id);
  }

  /** @internal The time left at `now` (default: now) of a request started at `t0`. */
  msLeft(t0: number, now = performance.now()): number {
    return this.timeoutMs - (now - t0);
  }

  /** @internal A try started at `u`; returns whether it is the breaker's probe. */
  tryStarted(u: Upstream, now: number): boolean {
    u.counters.requests++;
    return this.farm.started(u.spec.id, now);
  }

  /** @internal A try at `u` ended. */
  tryEnded(
    u: Upstream,
    outcome: Outcome,
    probe: boolean,
    now: number,
    status?: number,
    ms?: number,
  ): void {
    if (outcome === 'failure' && status === undefined) u.counters.failures++;
    if (status !== undefined) {
      if (status < 300) u.counters.responses2xx++;
      else if (status < 400) u.counters.responses3xx++;
      else if (status < 500) u.counters.responses4xx++;
      else u.counters.responses5xx++;
    }
    if (ms !== undefined) u.latency.observe(ms);
    if (outcome === 'failure') {
      const before = this.farm.statusOf(u.spec.id, now)?.ejections;
      this.farm.ended(u.spec.id, outcome, probe, now);
      if (this.farm.statusOf(u.spec.id, now)?.ejections !== before) {
        this.log.warn({ backend: u.spec.id }, `backend ${u.spec.id} ejected (breaker open)`);
      }
    } else this.farm.ended(u.spec.id, outcome, probe, now);
    if (this.draining.size > 0) this.reapDrained();
  }

  /** @internal The retry rules for a failed try of `x`. */
  mayRetry(x: Exchange, phase: FailurePhase): boolean {
    const d = retryDecision({
      phase,
      idempotent: idempotentHttpMethods.has(x.method),
      tries: x.tries,
      maybeSentRetries: x.maybeSentRetries,
      triesMax: limits.gatewayTriesMax,
      msLeft: this.msLeft(x.t0),
    });
    if (!d.retry) return false;
    if (phase === 'maybe-sent') {
      x.maybeSentRetries++;
      this.counters.retriesMaybeSent++;
    } else this.counters.retriesNotSent++;
    return true;
  }

  // ---- replicated requests --------------------------------------------------

  private fanOut(x: Exchange, route: ReplicatedRoute): void {
    const chosen: Upstream[] = [];
    const exclude = new Set<string>();
    const want = Math.min(route.replicas, limits.gatewayReplicasMax);
    for (let i = 0; i < want; i++) {
      const p = this.farm.pick(performance.now(), undefined, exclude);
      if (p === undefined) break;
      exclude.add(p.id);
      const u = this.upstreams.get(p.id);
      if (u !== undefined) chosen.push(u);
    }
    if (chosen.length === 0) {
      this.counters.replicatedFailed++;
      x.client.answer(x, 503, 'no backend is available', true);
      return;
    }
    const combiner = new Combiner(route.mode, chosen.length);
    const replies: (BufferedReply | undefined)[] = new Array<BufferedReply | undefined>(
      chosen.length,
    );
    const statuses: string[] = chosen.map((u) => `${u.spec.id}=pending`);
    const tries: BufferedTry[] = [];
    const probes: boolean[] = [];
    let done = false;
    const cancelAll = (): void => {
      done = true;
      x.fanOut = undefined;
      for (const [i, t] of tries.entries()) {
        if (t.cancel()) this.tryEnded(chosen[i]!, 'neutral', probes[i]!, performance.now());
      }
    };
    const finish = (c: Combined): void => {
      if (done) return;
      cancelAll();
      const headers: Record<string, string> = {
        'x-cohort-combine': route.mode,
        'x-cohort-outcome': `${c.kind};agreed=${c.agreed};replied=${c.replied};failed=${c.failed};of=${c.of}`,
        'x-cohort-replicas': statuses.join(','),
      };
      if (c.kind === 'failure') {
        this.counters.replicatedFailed++;
        x.client.answer(
          x,
          502,
          `replicated ${route.mode} call failed (${c.replied} replied, ${c.failed} failed of ${c.of})`,
          c.definite,
          false,
          headers,
        );
        return;
      }
      this.counters.replicatedOk++;
      const r = replies[c.replica];
      if (r === undefined) return;
      let extra = '';
      for (const [k, v] of Object.entries(headers)) extra += `${k}: ${v}\r\n`;
      this.latency.observe(performance.now() - x.t0);
      x.client.reply(x, r.status, r.reason, responseHeaderLines(r.headers) + extra, r.body);
    };
    const body = x.body;
    const framing: RequestFraming =
      body !== null
        ? { length: body.length }
        : x.contentLength !== undefined
          ? { length: 0 }
          : 'none';
    const head = requestHead(x.method, x.url, x.headers, x.client.ip, framing);
    const tryMs = Math.max(1, Math.min(this.tryTimeoutMs, this.msLeft(x.t0)));
    chosen.forEach((u, i) => {
      const t = performance.now();
      const probe = this.tryStarted(u, t);
      probes.push(probe);
      const bt = new BufferedTry(
        u.pool,
        head,
        body,
        x.method === 'HEAD',
        tryMs,
        this.tryTimeoutMs,
        (r) => {
          const now = performance.now();
          if (r instanceof TryError) {
            this.tryEnded(u, done ? 'neutral' : 'failure', probe, now);
            statuses[i] = `${u.spec.id}=failed`;
            const d = combiner.reply(i, { ok: false, definite: !r.sent });
            if (d !== undefined) finish(d);
            return;
          }
          this.tryEnded(u, r.status >= 500 ? 'failure' : 'ok', probe, now, r.status, now - t);
          statuses[i] = `${u.spec.id}=${r.status}`;
          replies[i] = r;
          const d = combiner.reply(
            i,
            r.status >= 500 ? { ok: false, definite: false } : { ok: true, digest: digestOf(r) },
          );
          if (d !== undefined) finish(d);
        },
      );
      tries.push(bt);
    });
    x.fanOut = cancelAll;
    for (const [i, t] of tries.entries()) chosen[i]!.pool.dispatch(t);
  }
}

/**
 * One client connection: its parser, the request being answered, and the
 * pipelined ones after it (answered in order, one at a time; reading
 * pauses while any wait).
 */
class ClientConn {
  private readonly parser: Parser;
  /** The request being answered. */
  current: Exchange | undefined;
  /** The request whose body is being read. */
  private receiving: Exchange | undefined;
  private readonly queue: Exchange[] = [];
  /** No request after those already read is answered; the connection ends after them. */
  private closing = false;
  /** The gateway's own error answered after the queued requests (a malformed one came after them). */
  private pendingError: 400 | 431 | undefined;
  /** Why reading is paused (bits: 1 pipelined requests wait, 2 a request body waits for its backend). */
  private pauses = 0;
  private lastActive: number;
  /**
   * When reading a request head began (coarse clock), or -1: the first read
   * while no request was being read or answered (a pipelined head read
   * meanwhile is timed from the first read after its turn).
   */
  private headStart = -1;
  private headers: string[] = [];
  private url = '';
  private gone = false;
  /** The socket's native handle when the parser reads it directly (no Buffer, no 'data' event per read). */
  private readonly handle: StreamHandle | undefined;
  readonly ip: string;

  constructor(
    readonly proxy: HttpProxy,
    readonly socket: net.Socket,
  ) {
    this.ip = socket.remoteAddress ?? '';
    this.lastActive = proxy.now;
    const p = (this.parser = newParser('request', proxy.headerBytesMax));
    p[kOnHeaders] = (h: string[], url: string) => {
      // Trailers of a chunked body (its request is being received): dropped. Past a message
      // whose head came in pieces, the parser hands every head over here, not to onHead.
      if (this.receiving !== undefined || this.closing) return;
      for (const x of h) this.headers.push(x);
      this.url += url;
    };
    p[kOnHeadersComplete] = (
      major: number,
      minor: number,
      headers: string[] | undefined,
      method: number,
      url: string | undefined,
      _status: unknown,
      _reason: unknown,
      upgrade: boolean,
      keepAlive: boolean,
    ): number => this.onHead(major, minor, headers, method, url, upgrade, keepAlive);
    p[kOnBody] = (b: Buffer) => this.receiving?.onRequestBody(b);
    // kOnMessageComplete is set while a request body is read (receive()): the
    // parser calls no JavaScript at the end of a request without one.
    // As node:http does: the parser reads the socket's handle itself, into one shared
    // buffer, and reports each read to kOnExecute; reading pauses at the handle.
    this.handle = consumableHandle(socket);
    if (this.handle !== undefined) {
      p[kOnExecute] = (r: number | ParseError) => this.afterRead(r);
      p.consume(this.handle);
    } else socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('end', () => this.onEnd());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.onClose());
    socket.on('drain', () => {
      this.lastActive = this.proxy.now;
      this.current?.onClientDrain();
    });
  }

  private onData(d: Buffer): void {
    if (this.closing && this.receiving === undefined) {
      this.lastActive = this.proxy.now;
      return; // nothing more is read
    }
    this.afterRead(this.parser.execute(d));
  }

  /** A read was parsed (its requests' callbacks ran); `r` is what the parser returned. */
  private afterRead(r: number | ParseError): void {
    const now = (this.lastActive = this.proxy.now);
    if (isParseError(r)) this.onParseError(r);
    // Bytes came with no request being read or answered, and a head is unfinished: the
    // slowloris clock starts.
    else if (
      this.headStart < 0 &&
      this.current === undefined &&
      this.receiving === undefined &&
      !this.parser.headersCompleted()
    ) {
      this.headStart = now;
    }
  }

  /** Request `x`'s body is read next: the parser reports its end. */
  private receive(x: Exchange): void {
    this.receiving = x;
    this.parser[kOnMessageComplete] = this.onBodyEnd;
  }

  private readonly onBodyEnd = (): void => {
    this.parser[kOnMessageComplete] = undefined;
    const x = this.receiving;
    this.receiving = undefined;
    x?.onRequestEnd();
  };

  private onHead(
    major: number,
    minor: number,
    headers: string[] | undefined,
    method: number,
    url: string | undefined,
    upgrade: boolean,
    keepAlive: boolean,
  ): number {
    this.headStart = -1;
    const raw = joinHead(this.headers, headers);
    if (raw !== headers) this.headers = [];
    const u = url ?? this.url;
    this.url = '';
    if (this.closing) return 0;
    this.proxy.counters.requests++;
    const x = new Exchange(
      this.proxy,
      this,
      methods[method] ?? 'GET',
      u,
      raw,
      major === 1 && minor === 0,
      performance.now(),
    );
    // After an upgrade request the bytes are not HTTP: answer it, then close.
    if (!keepAlive || upgrade) {
      this.closing = true;
      x.closeAfter = true;
    }
    if (x.refusal === undefined && x.mode !== 'none') this.receive(x);
    if (x.refusal !== undefined) this.closing = true;
    if (this.current === undefined) {
      this.current = x;
      x.start();
    } else {
      this.queue.push(x);
      this.pause(1);
    }
    return 0;
  }

  private onParseError(err: ParseError): void {
    if (this.closing && this.receiving === undefined) return;
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
    if (status === 431) this.proxy.counters.headersTooLarge431++;
    else this.proxy.counters.badRequest400++;
    this.closing = true;
    const rx = this.receiving;
    this.receiving = undefined;
    if (rx !== undefined) {
      rx.badBody();
      return;
    }
    if (this.current === undefined) this.refuse(status);
    else this.pendingError = status;
  }

  /** Answers the gateway's own 400/431 and ends the connection. */
  private refuse(status: 400 | 431): void {
    this.writeError(status, reasons[status], true, 'close');
    this.socket.end();
  }

  private onEnd(): void {
    // The client sent all it will: answer what was read, then close.
    if (this.receiving !== undefined) {
      this.destroy();
      return;
    }
    this.closing = true;
    if (this.current === undefined) this.socket.end();
  }

  private onClose(): void {
    if (this.gone) return;
    this.gone = true;
    this.proxy.forget(this);
    const x = this.current;
    this.current = undefined;
    this.queue.length = 0;
    this.receiving = undefined;
    x?.clientGone();
    if (this.handle !== undefined) this.parser.unconsume();
    this.parser.close();
  }

  /** Closes the connection now. */
  destroy(): void {
    this.socket.destroy();
  }

  /** Stops reading for `reason` (a bit). */
  pause(reason: number): void {
    if (this.pauses === 0) {
      const h = this.handle;
      if (h === undefined) this.socket.pause();
      else if (!this.gone && h.reading !== false) {
        h.reading = false;
        h.readStop();
      }
    }
    this.pauses |= reason;
  }

  /** Reading may go on as far as `reason` is concerned. */
  resume(reason: number): void {
    if ((this.pauses & reason) === 0) return;
    this.pauses &= ~reason;
    if (this.pauses !== 0 || this.gone) return;
    const h = this.handle;
    if (h === undefined) this.socket.resume();
    else if (h.reading === false && !this.socket.destroyed) {
      h.reading = true;
      h.readStart();
    }
  }

  /** Closes a connection idle or stalled too long. */
  sweep(now: number, keepAliveMs: number, headMs: number): void {
    if (this.current === undefined && this.receiving === undefined) {
      if (
        this.headStart >= 0 ? now - this.headStart > headMs : now - this.lastActive > keepAliveMs
      ) {
        this.destroy();
      }
    } else if (now - this.lastActive > limits.gatewayClientIdleMs) this.destroy();
  }

  /** @internal Activity on the connection (a response chunk written). */
  touch(): void {
    this.lastActive = this.proxy.now;
  }

  /** `x`'s response is complete: the next request's turn, or the end. */
  done(x: Exchange): void {
    if (this.current !== x || this.gone) return;
    this.current = undefined;
    if (x.closeAfter) {
      this.closing = true;
      this.receiving = undefined;
      this.queue.length = 0;
      this.socket.end();
      return;
    }
    const next = this.queue.shift();
    if (next !== undefined) {
      this.current = next;
      if (this.queue.length === 0) this.resume(1);
      next.start();
      return;
    }
    if (this.pendingError !== undefined) {
      this.refuse(this.pendingError);
      return;
    }
    if (this.closing) this.socket.end();
  }

  /** Answers `x` with the gateway's own JSON error. */
  answer(
    x: Exchange,
    status: GatewayStatus,
    message: string,
    definite: boolean,
    close = false,
    extra: Record<string, string> = {},
  ): void {
    if (this.current !== x) return;
    if (x.headSent) {
      this.destroy();
      return;
    }
    this.proxy.countAnswer(status);
    if (close || !x.requestEnded) x.closeAfter = true;
    x.headSent = true;
    const connection = x.closeAfter ? 'close' : x.http10 ? 'keep-alive' : undefined;
    this.writeError(status, message, definite, connection, extra);
    this.done(x);
  }

  private writeError(
    status: GatewayStatus,
    message: string,
    definite: boolean,
    connection: 'close' | 'keep-alive' | undefined,
    extra: Record<string, string> = {},
  ): void {
    const body = JSON.stringify({ error: { code: errorCodes[status], message, definite } });
    let head = `HTTP/1.1 ${status} ${reasons[status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-cohort-definite: ${definite}\r\n`;
    for (const [k, v] of Object.entries(extra)) head += `${k}: ${v}\r\n`;
    if (connection !== undefined) head += `connection: ${connection}\r\n`;
    this.socket.write(`${head}\r\n${body}`);
  }

  /** Answers `x` with a whole response (replicated routes). */
  reply(x: Exchange, status: number, reason: string, headerLines: string, body: Buffer): void {
    if (this.current !== x || x.headSent) return;
    x.headSent = true;
    if (!x.requestEnded) x.closeAfter = true;
    let head = `HTTP/1.1 ${status} ${reason}\r\n${headerLines}content-length: ${body.length}\r\n`;
    if (x.closeAfter) head += 'connection: close\r\n';
    else if (x.http10) head += 'connection: keep-alive\r\n';
    this.socket.cork();
    this.socket.write(`${head}\r\n`, 'latin1');
    this.socket.write(body);
    this.socket.uncork();
    this.done(x);
  }
}

/**
 * One client request and its tries: the pool's handler of the current try
 * (see upstream.ts), relaying the response to the client as it comes.
 */
class Exchange implements TryHandler {
  /** How the request body is read: none, whole before the first try (retryable), or streamed. */
  readonly mode: 'none' | 'whole' | 'stream';
  /** A request refused before any try (413 too large, 417 unknown expectation, 405 CONNECT). */
  readonly refusal: { status: GatewayStatus; message: string } | undefined;
  readonly contentLength: number | undefined;
  /** The client's body is chunked (so is the backend's copy of a streamed one). */
  private readonly chunked: boolean;
  private readonly expectContinue: boolean;
  readonly skipBody: boolean;
  /** The whole body (mode `whole`, once read). */
  body: Buffer | null = null;
  /** Body bytes read but not yet written to a backend. */
  private pending: Buffer[] = [];
  private received = 0;
  requestEnded = false;
  private started = false;
  /** The response head went to the client. */
  headSent = false;
  /** The client connection ends after this response. */
  closeAfter = false;
  /** Cancels the replicated tries (set while a fan-out runs). */
  fanOut: (() => void) | undefined;

  // The tries.
  /** Backends tried for this request; made on the first retry (most requests make one try). */
  tried: Set<string> | undefined;
  tries = 0;
  private firstTried: string | undefined;
  maybeSentRetries = 0;
  private upstream: Upstream | undefined;
  /** The connection of the try in flight (from onSend to its end). */
  private conn: UpstreamConn | undefined;
  /** A try is in flight (queued, connecting or sent). */
  private inTry = false;
  private sent = false;
  private probe = false;
  private tryStart = 0;
  private status = 0;
  /** The response's body is re-chunked for the client. */
  private rechunk = false;
  /** Response bytes (latin1) written at the end of the backend's read: one write per read. */
  private out = '';
  /** Some of a streamed body went to a backend: it cannot be sent again. */
  private bodyWritten = false;
  private gone = false;
  private finished = false;
  private lastTimeout = false;
  private lastError: Error | undefined;
  headTimeoutMs = 0;
  bodyIdleMs = 0;

  constructor(
    private readonly proxy: HttpProxy,
    readonly client: ClientConn,
    readonly method: string,
    readonly url: string,
    readonly headers: string[],
    readonly http10: boolean,
    readonly t0: number,
  ) {
    this.skipBody = method === 'HEAD';
    // llhttp has checked the framing: one Content-Length of digits, or a chunked Transfer-Encoding.
    const cl = headerValue(headers, 'content-length');
    this.contentLength = cl === undefined ? undefined : Number(cl);
    const te = headerValue(headers, 'transfer-encoding');
    this.chunked = cl === undefined && te !== undefined;
    const expect = headerValue(headers, 'expect');
    this.expectContinue = expect !== undefined && expect.toLowerCase() === '100-continue';
    const length = this.contentLength;
    if (te !== undefined && te.trim().toLowerCase() !== 'chunked') {
      // llhttp refuses a request whose last coding is not chunked only after its head;
      // other codings (gzip, chunked) are not relayed either (RFC 9112 §6.1).
      this.refusal = { status: 400, message: `unsupported Transfer-Encoding: ${te}` };
    } else if (method === 'CONNECT') {
      this.refusal = { status: 405, message: 'the gateway does not tunnel (CONNECT)' };
    } else if (length !== undefined && length > proxy.bodyBytesMax) {
      this.refusal = { status: 413, message: `body exceeds ${proxy.bodyBytesMax} bytes` };
    } else if (expect !== undefined && !this.expectContinue) {
      this.refusal = { status: 417, message: `unknown expectation: ${expect}` };
    } else this.refusal = undefined;
    if (!this.chunked && (length === undefined || length === 0)) this.mode = 'none';
    else if (
      (length !== undefined && length <= limits.gatewayRetryBodyBytesMax) ||
      proxy.readsWhole(url)
    ) {
      this.mode = 'whole';
    } else this.mode = 'stream';
    if (this.mode === 'none') this.requestEnded = true;
  }

  /** It is this request's turn on its connection. */
  start(): void {
    this.started = true;
    const r = this.refusal;
    if (r !== undefined) {
      if (r.status === 413) this.proxy.counters.tooLarge413++;
      else if (r.status === 400) this.proxy.counters.badRequest400++;
      this.client.answer(this, r.status, r.message, true, true);
      return;
    }
    if (this.expectContinue && !this.http10 && !this.requestEnded) {
      this.client.socket.write('HTTP/1.1 100 Continue\r\n\r\n');
    }
    if (this.mode === 'whole' && !this.requestEnded) return; // onRequestEnd begins it
    this.proxy.begin(this);
  }

  onRequestBody(chunk: Buffer): void {
    this.received += chunk.length;
    if (this.mode === 'whole') {
      const max = this.contentLength ?? this.proxy.bodyBytesMax;
      if (this.received > max) {
        this.tooLarge();
        return;
      }
      this.pending.push(chunk);
      return;
    }
    if (this.received > this.proxy.bodyBytesMax) {
      this.tooLarge();
      return;
    }
    if (this.finished) return; // answered already; the connection closes
    const c = this.conn;
    if (c === undefined) {
      // Held until a backend takes it: read no more meanwhile.
      this.pending.push(chunk);
      this.client.pause(2);
      return;
    }
    this.writeBody(c.socket, chunk);
  }

  onRequestEnd(): void {
    this.requestEnded = true;
    if (this.mode === 'whole') {
      this.body = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
      this.pending = [];
      if (this.started && !this.finished) this.proxy.begin(this);
      return;
    }
    const c = this.conn;
    if (c !== undefined && this.chunked && !this.finished) c.socket.write(lastChunk);
  }

  private writeBody(s: net.Socket, chunk: Buffer): void {
    this.bodyWritten = true;
    if (!writeBodyChunk(s, chunk, this.chunked)) this.client.pause(2);
  }

  private tooLarge(): void {
    this.proxy.counters.tooLarge413++;
    this.abortTry();
    this.finished = true;
    this.closeAfter = true;
    if (this.client.current !== this) {
      // A pipelined request not yet answered: nothing can be said in order.
      this.client.destroy();
      return;
    }
    this.client.answer(
      this,
      413,
      `request body exceeds ${this.proxy.bodyBytesMax} bytes`,
      true,
      true,
    );
  }

  /** The request's body broke mid-way (bad chunk framing): 400 if nothing was answered yet, and the connection ends. */
  badBody(): void {
    this.abortTry();
    this.finished = true;
    this.closeAfter = true;
    if (this.client.current !== this || this.headSent) {
      this.client.destroy();
      return;
    }
    this.client.answer(this, 400, 'malformed request body', true, true);
  }

  /** Ends the try in flight without a verdict on its backend. */
  private abortTry(): void {
    if (this.fanOut !== undefined) {
      this.fanOut();
      this.fanOut = undefined;
    }
    if (!this.inTry) return;
    this.inTry = false;
    const u = this.upstream!;
    if (this.conn !== undefined) this.conn.abort();
    else u.pool.cancel(this);
    this.conn = undefined;
    this.proxy.tryEnded(u, 'neutral', this.probe, performance.now());
  }

  /** The client went away. */
  clientGone(): void {
    if (this.finished) return;
    this.gone = true;
    this.finished = true;
    this.proxy.counters.clientGone++;
    this.abortTry();
  }

  onClientDrain(): void {
    this.conn?.resume();
  }

  /** Starts the next try, or answers when there is no backend left. */
  next(): void {
    if (this.gone || this.finished) return;
    const now = performance.now();
    const u = this.proxy.pickFor(this, now);
    if (u === undefined) {
      this.finished = true;
      if (this.tries === 0) this.client.answer(this, 503, 'no backend is available', true);
      else this.failFinal(this.sent ? 'maybe-sent' : 'not-sent', this.lastError);
      return;
    }
    if (this.tries === 0) this.firstTried = u.spec.id;
    else (this.tried ??= new Set([this.firstTried!])).add(u.spec.id);
    this.tries++;
    this.upstream = u;
    this.sent = false;
    this.status = 0;
    this.lastTimeout = false;
    this.headTimeoutMs = Math.max(
      1,
      Math.min(this.proxy.tryTimeoutMs, this.proxy.msLeft(this.t0, now)),
    );
    this.bodyIdleMs = this.proxy.tryTimeoutMs;
    this.probe = this.proxy.tryStarted(u, now);
    this.tryStart = now;
    this.inTry = true;
    u.pool.dispatch(this, now);
  }

  /** The set of tried backends when only the first was tried. */
  excludeFirst(): ReadonlySet<string> {
    return (this.tried ??= new Set([this.firstTried!]));
  }

  onSend(conn: UpstreamConn): void {
    this.conn = conn;
    this.sent = true;
    const s = conn.socket;
    const framing: RequestFraming =
      this.mode === 'whole'
        ? { length: this.body!.length }
        : this.mode === 'none'
          ? this.contentLength === undefined
            ? 'none'
            : { length: 0 }
          : this.chunked
            ? 'chunked'
            : { length: this.contentLength! };
    const head = requestHead(this.method, this.url, this.headers, this.client.ip, framing);
    if (this.mode === 'none') {
      s.write(head, 'latin1');
      return;
    }
    if (this.mode === 'whole' && this.body!.length <= smallChunkBytes) {
      s.write(head + this.body!.toString('latin1'), 'latin1');
      return;
    }
    s.cork();
    s.write(head, 'latin1');
    if (this.mode === 'whole') {
      if (this.body!.length > 0) s.write(this.body!);
    } else {
      const held = this.pending;
      this.pending = [];
      for (const c of held) this.writeBody(s, c);
      if (this.requestEnded && this.chunked) s.write(lastChunk);
      if (held.length > 0 && s.writableNeedDrain === false) this.client.resume(2);
    }
    s.uncork();
  }

  onDrain(): void {
    this.client.resume(2);
  }

  onHead(status: number, reason: string, raw: string[], cl: string | undefined): void {
    this.status = status;
    if (this.finished) return;
    let head = `HTTP/1.1 ${status} ${reason}\r\n${responseHeaderLines(raw)}`;
    if (this.skipBody || status === 204 || status === 304) {
      if (cl !== undefined && status !== 204) head += `content-length: ${cl}\r\n`;
    } else if (cl !== undefined) head += `content-length: ${cl}\r\n`;
    else if (!this.http10) {
      head += 'transfer-encoding: chunked\r\n';
      this.rechunk = true;
    } else this.closeAfter = true; // delimited by the close
    if (this.closeAfter || !this.requestEnded) {
      this.closeAfter = true;
      head += 'connection: close\r\n';
    } else if (this.http10) head += 'connection: keep-alive\r\n';
    this.headSent = true;
    this.out += `${head}\r\n`;
  }

  onBody(chunk: Buffer): void {
    if (this.finished) return;
    if (chunk.length <= smallChunkBytes || isBorrowed(chunk)) {
      // Small (or the pool's read buffer, valid only now): joined to the head (and the
      // other small pieces) as latin1, byte for byte.
      const text = chunk.toString('latin1');
      this.out += this.rechunk ? `${chunkHead(chunk.length)}${text}\r\n` : text;
      return;
    }
    this.flush();
    // Backpressure: the backend's connection stops reading until the client drains.
    if (!writeBodyChunk(this.client.socket, chunk, this.rechunk)) this.conn?.pause();
  }

  flush(): void {
    if (this.out === '') return;
    const text = this.out;
    this.out = '';
    this.client.touch();
    if (this.finished) return;
    if (!this.client.socket.write(text, 'latin1')) this.conn?.pause();
  }

  onComplete(): void {
    this.inTry = false;
    this.conn = undefined;
    const u = this.upstream!;
    const now = performance.now();
    const status = this.status;
    this.proxy.tryEnded(
      u,
      status === 502 || status === 503 || status === 504 ? 'failure' : 'ok',
      this.probe,
      now,
      status,
      now - this.tryStart,
    );
    if (this.finished) return;
    if (this.rechunk) this.out += lastChunk;
    this.flush();
    this.finished = true;
    this.proxy.counters.relayed++;
    this.proxy.latency.observe(now - this.t0);
    this.client.done(this);
  }

  onFailure(err: TryError): void {
    this.inTry = false;
    this.conn = undefined;
    const u = this.upstream!;
    if (this.finished) {
      this.proxy.tryEnded(u, 'neutral', this.probe, performance.now());
      return;
    }
    this.proxy.tryEnded(u, 'failure', this.probe, performance.now());
    if (this.headSent) {
      // The response had begun: nothing can be retried; cut it off so the client sees it.
      this.finished = true;
      this.proxy.counters.truncated++;
      this.client.destroy();
      return;
    }
    const phase: FailurePhase = err.sent ? 'maybe-sent' : 'not-sent';
    this.lastTimeout = err.timeout;
    this.lastError = err;
    // A streamed body can be sent again only if none of it left.
    const bodyIntact = this.mode !== 'stream' || !this.bodyWritten;
    if (bodyIntact && this.proxy.mayRetry(this, phase)) {
      this.next();
      return;
    }
    this.finished = true;
    this.failFinal(phase, err);
  }

  private failFinal(phase: FailurePhase, err?: Error): void {
    const definite = phase === 'not-sent';
    const why = err === undefined ? 'no other backend' : err.message;
    if (this.lastTimeout) {
      this.client.answer(this, 504, `the backend did not answer in time (${why})`, definite);
    } else {
      this.client.answer(
        this,
        502,
        `the backend failed ${definite ? 'before the request reached it' : 'after the request may have reached it'}: ${why}`,
        definite,
      );
    }
  }
}

/** An active health check: `GET path`, healthy on 2xx or 3xx. */
class CheckTry implements TryHandler {
  readonly skipBody = false;
  readonly headTimeoutMs: number;
  readonly bodyIdleMs: number;
  private status = 0;
  private conn: UpstreamConn | undefined;
  private over = false;

  constructor(
    private readonly u: Upstream,
    private readonly path: string,
    timeoutMs: number,
    private readonly done: (ok: boolean) => void,
  ) {
    this.headTimeoutMs = timeoutMs;
    this.bodyIdleMs = timeoutMs;
  }

  onSend(conn: UpstreamConn): void {
    this.conn = conn;
    const { host, port } = this.u.spec;
    conn.socket.write(
      `GET ${this.path} HTTP/1.1\r\nhost: ${host}:${port}\r\nuser-agent: cohort-gateway-check\r\n\r\n`,
      'latin1',
    );
  }

  onHead(status: number): void {
    this.status = status;
  }

  onBody(): void {}

  flush(): void {}

  onComplete(): void {
    this.end(this.status >= 200 && this.status < 400);
  }

  onFailure(): void {
    this.end(false);
  }

  onDrain(): void {}

  /** Stops the check (its backend left). */
  cancel(): void {
    if (this.over) return;
    if (this.conn !== undefined) this.conn.abort();
    else this.u.pool.cancel(this);
    this.over = true;
  }

  private end(ok: boolean): void {
    this.conn = undefined;
    if (this.over) return;
    this.over = true;
    this.done(ok);
  }
}

interface BufferedReply {
  readonly status: number;
  readonly reason: string;
  readonly headers: string[];
  readonly body: Buffer;
}

/** One try whose reply is read whole (replicated routes). */
class BufferedTry implements TryHandler {
  private conn: UpstreamConn | undefined;
  private status = 0;
  private reason = '';
  private headers: string[] = [];
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private over = false;

  constructor(
    private readonly pool: UpstreamPool,
    private readonly head: string,
    private readonly body: Buffer | null,
    readonly skipBody: boolean,
    readonly headTimeoutMs: number,
    readonly bodyIdleMs: number,
    private readonly cb: (r: BufferedReply | TryError) => void,
  ) {}

  onSend(conn: UpstreamConn): void {
    this.conn = conn;
    const s = conn.socket;
    s.cork();
    s.write(this.head, 'latin1');
    if (this.body !== null && this.body.length > 0) s.write(this.body);
    s.uncork();
  }

  onHead(status: number, reason: string, headers: string[]): void {
    this.status = status;
    this.reason = reason;
    this.headers = headers;
  }

  flush(): void {}

  onBody(chunk: Buffer): void {
    this.size += chunk.length;
    if (this.size > limits.gatewayReplicatedBodyBytesMax) {
      this.conn?.abort();
      this.end(
        new TryError(`reply exceeds ${limits.gatewayReplicatedBodyBytesMax} bytes`, true, false),
      );
      return;
    }
    // A view of the pool's read buffer is valid only during the call.
    this.chunks.push(isBorrowed(chunk) ? Buffer.from(chunk) : chunk);
  }

  onComplete(): void {
    this.end({
      status: this.status,
      reason: this.reason,
      headers: this.headers,
      body: Buffer.concat(this.chunks),
    });
  }

  onFailure(err: TryError): void {
    this.end(err);
  }

  onDrain(): void {}

  /** Stops the try if it still runs; whether it did. */
  cancel(): boolean {
    if (this.over) return false;
    this.over = true;
    if (this.conn !== undefined) this.conn.abort();
    else this.pool.cancel(this);
    this.conn = undefined;
    return true;
  }

  private end(r: BufferedReply | TryError): void {
    this.conn = undefined;
    if (this.over) return;
    this.over = true;
    this.cb(r);
  }
}

function digestOf(r: BufferedReply): string {
  return `${r.status}:${createHash('sha256').update(r.body).digest('base64')}`;
}

/** Writes one piece of a body, as a chunk of a chunked body when `chunked`; false: the socket's buffer is full. */
function writeBodyChunk(s: net.Socket, chunk: Buffer, chunked: boolean): boolean {
  if (!chunked) return s.write(chunk);
  s.cork();
  s.write(chunkHead(chunk.length));
  s.write(chunk);
  const ok = s.write('\r\n');
  s.uncork();
  return ok;
}
