/**
 * The gateway's HTTP/1.1 reverse proxy: a node:http front (keep-alive),
 * an undici connection pool per backend (keep-alive, streaming both ways
 * with backpressure), the {@link Farm} picking a backend per request, and
 * the failover rules of core/failover.ts.
 *
 * ```ts
 * const proxy = await HttpProxy.start({ listen: { host: '127.0.0.1', port: 8080 },
 *   source: new StaticBackendSource(parseBackends('a=127.0.0.1:8081,b=127.0.0.1:8082')) });
 * // curl localhost:8080/anything → a or b; X-Forwarded-For/-Proto/-Host added
 * proxy.status();   // backends with health and counters
 * await proxy.close();
 * ```
 *
 * Why undici for the upstream side: it is the Node.js project's own
 * HTTP/1.1 client, made for this (keep-alive pools per origin, pipelining
 * off by default, an llhttp parser), and its callback `dispatch` API streams
 * a response without a promise or a stream object per request. Its
 * `onConnect` callback comes just before the request is written to a
 * socket, which is exactly what failover needs: an error before it means no
 * byte reached the backend.
 *
 * What the proxy guarantees (tested in test/gateway/*.test.ts):
 * - A request head larger than `headerBytesMax` gets 431, a body larger
 *   than `bodyBytesMax` gets 413 (at once when Content-Length says so, else
 *   when the stream passes it), a malformed request 400; none of them
 *   reaches a backend or can crash the process.
 * - Hop-by-hop headers (RFC 9110 §7.6.1) are dropped both ways;
 *   `X-Forwarded-For` (appended), `-Proto` and `-Host` are set.
 * - Failover (core/failover.ts): a try that never reached its backend is
 *   retried on another; an idempotent request (GET, HEAD, PUT, DELETE,
 *   OPTIONS, TRACE) whose try may have reached its backend is retried once;
 *   any other failure is answered 502 (504 after a timeout) with
 *   `x-cohort-definite: false`, never retried. Retries need the body again:
 *   bodies up to `limits.gatewayRetryBodyBytesMax` are read whole first;
 *   bigger ones stream and are retried only when no byte of them left.
 * - A backend that answers garbage, resets or hangs costs that request (or
 *   its try) a 502/504; the backend's breaker counts it.
 * - Backends removed from the source drain: no new requests, in-flight ones
 *   finish, then the pool closes.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import type { Duplex } from 'node:stream';
import { Client, Pool } from 'undici';
import type { Dispatcher } from 'undici';
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
import { LatencyHistogram } from './metrics.js';
import type { MetricFamily } from './metrics.js';
import { emptyHttpCounters, emptyUpstreamCounters, httpBackends, httpMetrics } from './report.js';
import type { BackendReport, HttpProxyCounters, HttpSnapshot, UpstreamCounters } from './report.js';

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
  readonly pool: Pool;
  checker: Client | undefined;
  checkTimer: NodeJS.Timeout | undefined;
  readonly counters: UpstreamCounters;
  readonly latency: LatencyHistogram;
}

/** Request headers never forwarded (RFC 9110 §7.6.1, plus `expect`: the front answers 100-continue itself). */
const hopRequest = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'expect',
  'host',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
]);

/** Response headers never relayed. */
const hopResponse = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
]);

/** An error raised by the gateway itself into an upstream request. */
class GatewayAbort extends Error {
  constructor(readonly why: 'client-gone' | 'body-too-large' | 'client-body-error') {
    super(why);
  }
}

const errorCodes = {
  400: 'INVALID_ARGUMENT',
  413: 'INVALID_ARGUMENT',
  431: 'INVALID_ARGUMENT',
  502: 'UNAVAILABLE',
  503: 'UNAVAILABLE',
  504: 'TIMEOUT',
} as const;

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
  private readonly health: HealthOptions;
  private readonly check: HttpCheckOptions;
  private readonly timeoutMs: number;
  private readonly tryTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  /** @internal */
  readonly bodyBytesMax: number;
  private readonly connections: number;
  private readonly hashHeader: string;
  private readonly replicated: readonly ReplicatedRoute[];
  private readonly log: LogLimiter;
  private unsubscribe: (() => void) | undefined;
  private closed = false;

  private constructor(
    private readonly server: http.Server,
    options: HttpProxyOptions,
  ) {
    this.health = { ...defaultHealth, ...options.health };
    this.check = { ...defaultHttpCheck, ...options.check };
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.tryTimeoutMs = options.tryTimeoutMs ?? 10_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? limits.connectTimeoutMs;
    this.bodyBytesMax = options.bodyBytesMax ?? limits.gatewayBodyBytesDefault;
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
  }

  /** Starts listening and follows `options.source`. */
  static async start(options: HttpProxyOptions): Promise<HttpProxy> {
    const server = http.createServer({
      maxHeaderSize: options.headerBytesMax ?? limits.gatewayHeaderBytesMax,
      keepAliveTimeout: 30_000,
      // Slowloris: the whole head must arrive within this (node's default is 60 s).
      headersTimeout: 20_000,
      requestTimeout: 0,
    });
    // A connection silent this long (a client stalled mid-body, say) is closed.
    server.setTimeout(limits.gatewayClientIdleMs);
    const proxy = new HttpProxy(server, options);
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) =>
      proxy.handle(req, res),
    );
    server.on('clientError', (err: NodeJS.ErrnoException, socket) =>
      proxy.clientError(err, socket),
    );
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.listen.port, options.listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    proxy.unsubscribe = options.source.subscribe((list) => proxy.setBackends(list));
    return proxy;
  }

  /** The bound address. */
  get address(): { host: string; port: number } {
    const a = this.server.address() as AddressInfo;
    return { host: a.address, port: a.port };
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
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    const all = [...this.upstreams.values(), ...this.draining.values()];
    this.upstreams.clear();
    this.draining.clear();
    await Promise.all(all.map((u) => this.closeUpstream(u, true)));
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
      pool: new Pool(`http://${spec.host}:${spec.port}`, {
        connections: this.connections,
        pipelining: 1,
        keepAliveTimeout: 30_000,
        connect: { timeout: this.connectTimeoutMs },
      }),
      checker: undefined,
      checkTimer: undefined,
      counters: emptyUpstreamCounters(),
      latency: new LatencyHistogram(),
    };
    // A pool's connection errors reach the requests; this only keeps them off 'error'.
    u.pool.on('connectionError', () => {});
    this.upstreams.set(spec.id, u);
    this.farm.upsert(spec.id, spec.weight);
    this.startChecks(u);
  }

  private reapDrained(): void {
    for (const id of this.farm.takeDrained()) {
      const u = this.draining.get(id);
      if (u === undefined) continue;
      this.draining.delete(id);
      void this.closeUpstream(u, false);
      this.log.info({ backend: id }, 'backend drained and closed');
      const back = this.returning.get(id);
      if (back !== undefined && !this.closed) {
        this.returning.delete(id);
        this.addUpstream(back);
        this.log.info({ backend: id }, 'backend back at its new address');
      }
    }
  }

  private async closeUpstream(u: Upstream, now: boolean): Promise<void> {
    this.stopChecks(u);
    const closing = [now ? u.pool.destroy() : u.pool.close()];
    if (u.checker !== undefined) closing.push(u.checker.destroy());
    await Promise.allSettled(closing);
  }

  // ---- active checks --------------------------------------------------------

  private startChecks(u: Upstream): void {
    if (this.check.intervalMs <= 0) return;
    u.checker = new Client(`http://${u.spec.host}:${u.spec.port}`, {
      pipelining: 1,
      connect: { timeout: this.check.timeoutMs },
      headersTimeout: this.check.timeoutMs,
      bodyTimeout: this.check.timeoutMs,
    });
    u.checker.on('connectionError', () => {});
    const run = (): void => {
      u.checkTimer = undefined;
      if (this.closed || u.checker === undefined) return;
      const started = performance.now();
      this.checkOnce(u).then(
        (ok) => {
          if (u.checker === undefined) return;
          const before = this.farm.statusOf(u.spec.id, started)?.active;
          if (ok) u.counters.checksOk++;
          else u.counters.checksFailed++;
          this.farm.checked(u.spec.id, ok);
          const after = this.farm.statusOf(u.spec.id, started)?.active;
          if (before !== after) {
            this.log.warn(
              { backend: u.spec.id, active: after },
              `backend ${u.spec.id} is ${after}`,
            );
          }
          u.checkTimer = setTimeout(run, this.check.intervalMs);
        },
        () => {
          u.checkTimer = setTimeout(run, this.check.intervalMs);
        },
      );
    };
    u.checkTimer = setTimeout(run, this.check.intervalMs);
  }

  private async checkOnce(u: Upstream): Promise<boolean> {
    const checker = u.checker;
    if (checker === undefined) return false;
    try {
      const r = await checker.request({
        origin: `http://${u.spec.host}:${u.spec.port}`,
        path: this.check.path,
        method: 'GET',
        headers: { 'user-agent': 'cohort-gateway-check' },
      });
      await r.body.dump();
      return r.statusCode >= 200 && r.statusCode < 400;
    } catch {
      return false;
    }
  }

  private stopChecks(u: Upstream): void {
    if (u.checkTimer !== undefined) clearTimeout(u.checkTimer);
    u.checkTimer = undefined;
    const c = u.checker;
    u.checker = undefined;
    if (c !== undefined) void c.destroy().catch(() => {});
  }

  // ---- the front ------------------------------------------------------------

  private clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    if (err.code === 'HPE_HEADER_OVERFLOW') {
      this.counters.headersTooLarge431++;
      endSocket(socket, 431, 'Request Header Fields Too Large');
      return;
    }
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    this.counters.badRequest400++;
    endSocket(socket, 400, 'Bad Request');
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.counters.requests++;
    try {
      this.route(req, res);
    } catch (err) {
      // A bug in the gateway must not take the process down for one request.
      this.log.error({ err }, 'the gateway failed to handle a request');
      if (!res.headersSent) this.answer(res, 502, 'the gateway failed', false);
      else res.destroy();
    }
  }

  private route(req: http.IncomingMessage, res: http.ServerResponse): void {
    const destroy = (): void => {
      res.destroy();
    };
    req.on('error', destroy);
    res.on('error', destroy);
    const lengthHeader = req.headers['content-length'];
    const length = lengthHeader === undefined ? undefined : Number(lengthHeader);
    if (length !== undefined && (!Number.isSafeInteger(length) || length < 0)) {
      this.counters.badRequest400++;
      this.answer(res, 400, 'bad Content-Length', true, true);
      return;
    }
    if (length !== undefined && length > this.bodyBytesMax) {
      this.counters.tooLarge413++;
      this.answer(res, 413, `body exceeds ${this.bodyBytesMax} bytes`, true, true);
      return;
    }
    const hasBody =
      (length !== undefined && length > 0) || req.headers['transfer-encoding'] !== undefined;
    const route = this.replicated.length === 0 ? undefined : this.replicatedRoute(req.url ?? '/');
    const exchange = new Exchange(this, req, res, performance.now());
    if (!hasBody) {
      if (route !== undefined) this.fanOut(exchange, route, null);
      else exchange.next();
      return;
    }
    if (
      route !== undefined ||
      (length !== undefined && length <= limits.gatewayRetryBodyBytesMax)
    ) {
      // Small (or replicated): read whole, so a retry or a replica can send it again.
      readWhole(
        req,
        route !== undefined ? this.bodyBytesMax : limits.gatewayRetryBodyBytesMax,
      ).then(
        (body) => {
          if (body === undefined) {
            this.counters.tooLarge413++;
            this.answer(res, 413, `body exceeds ${this.bodyBytesMax} bytes`, true, true);
            return;
          }
          if (route !== undefined) this.fanOut(exchange, route, body);
          else {
            exchange.body = body;
            exchange.next();
          }
        },
        () => res.destroy(),
      );
      return;
    }
    exchange.body = 'stream';
    exchange.next();
  }

  private replicatedRoute(url: string): ReplicatedRoute | undefined {
    for (const r of this.replicated) if (url.startsWith(r.pathPrefix)) return r;
    return undefined;
  }

  /** Answers with the gateway's own JSON error. */
  answer(
    res: http.ServerResponse,
    status: keyof typeof errorCodes,
    message: string,
    definite: boolean,
    close = false,
    extra: Record<string, string> = {},
  ): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (status === 502) this.counters.badGateway502++;
    else if (status === 503) this.counters.unavailable503++;
    else if (status === 504) this.counters.timeout504++;
    const body = JSON.stringify({ error: { code: errorCodes[status], message, definite } });
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'x-cohort-definite': String(definite),
      ...(close ? { connection: 'close' } : {}),
      ...extra,
    });
    res.end(body);
  }

  // ---- tries ----------------------------------------------------------------

  /** @internal Picks a backend for the next try of `x`, or undefined. */
  pickFor(x: Exchange): Upstream | undefined {
    const key =
      this.farm.balance === 'hash' ? headerText(x.req.headers[this.hashHeader]) : undefined;
    // Before a retry, the one backend tried so far is excluded.
    const exclude = x.tries === 1 ? x.excludeFirst() : x.tried;
    const p = this.farm.pick(performance.now(), key, exclude);
    return p === undefined ? undefined : this.upstreams.get(p.id);
  }

  /** @internal Options of one try. */
  dispatchOptions(
    x: Exchange,
    msLeft: number,
    body: Buffer | Readable | null,
  ): Dispatcher.DispatchOptions {
    const tryMs = Math.max(1, Math.min(this.tryTimeoutMs, msLeft));
    return {
      path: x.req.url ?? '/',
      method: x.req.method ?? 'GET',
      headers: upstreamHeaders(x.req),
      body,
      headersTimeout: tryMs,
      bodyTimeout: this.tryTimeoutMs,
      blocking: false,
    };
  }

  /** @internal The deadline of a request started at `t0`. */
  msLeft(t0: number): number {
    return this.timeoutMs - (performance.now() - t0);
  }

  /** @internal A try started at `u`; returns whether it is the breaker's probe. */
  tryStarted(u: Upstream): boolean {
    u.counters.requests++;
    return this.farm.started(u.spec.id, performance.now());
  }

  /** @internal A try at `u` ended. */
  tryEnded(u: Upstream, outcome: Outcome, probe: boolean, status?: number, ms?: number): void {
    if (outcome === 'failure' && status === undefined) u.counters.failures++;
    if (status !== undefined) {
      if (status < 300) u.counters.responses2xx++;
      else if (status < 400) u.counters.responses3xx++;
      else if (status < 500) u.counters.responses4xx++;
      else u.counters.responses5xx++;
    }
    if (ms !== undefined) u.latency.observe(ms);
    const now = performance.now();
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
      idempotent: idempotentHttpMethods.has(x.req.method ?? ''),
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

  private fanOut(x: Exchange, route: ReplicatedRoute, body: Buffer | null): void {
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
      this.answer(x.res, 503, 'no backend is available', true);
      return;
    }
    const combiner = new Combiner(route.mode, chosen.length);
    const replies: (BufferedReply | undefined)[] = new Array<BufferedReply | undefined>(
      chosen.length,
    );
    const statuses: string[] = chosen.map((u) => `${u.spec.id}=pending`);
    const controllers = chosen.map(() => new AbortController());
    let done = false;
    const finish = (c: Combined): void => {
      if (done) return;
      done = true;
      for (const ac of controllers) ac.abort();
      const headers = {
        'x-cohort-combine': route.mode,
        'x-cohort-outcome': `${c.kind};agreed=${c.agreed};replied=${c.replied};failed=${c.failed};of=${c.of}`,
        'x-cohort-replicas': statuses.join(','),
      };
      if (c.kind === 'failure') {
        this.counters.replicatedFailed++;
        this.answer(
          x.res,
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
      if (r === undefined || x.res.headersSent) return;
      const flat: string[] = [];
      for (let i = 0; i + 1 < r.headers.length; i += 2) {
        const k = r.headers[i] ?? '';
        if (hopResponse.has(k.toLowerCase()) || k.toLowerCase() === 'content-length') continue;
        flat.push(k, r.headers[i + 1] ?? '');
      }
      for (const [k, v] of Object.entries(headers)) flat.push(k, v);
      flat.push('content-length', String(r.body.length));
      this.latency.observe(performance.now() - x.t0);
      x.res.writeHead(r.status, flat);
      x.res.end(r.body);
    };
    x.res.on('close', () => {
      if (!done) {
        done = true;
        for (const ac of controllers) ac.abort();
      }
    });
    chosen.forEach((u, i) => {
      const probe = this.tryStarted(u);
      const t = performance.now();
      bufferedRequest(
        u.pool,
        this.dispatchOptions(x, this.msLeft(x.t0), body),
        controllers[i]!.signal,
      ).then(
        (reply) => {
          this.tryEnded(
            u,
            reply.status >= 500 ? 'failure' : 'ok',
            probe,
            reply.status,
            performance.now() - t,
          );
          statuses[i] = `${u.spec.id}=${reply.status}`;
          replies[i] = reply;
          const d = combiner.reply(
            i,
            reply.status >= 500
              ? { ok: false, definite: false }
              : { ok: true, digest: digestOf(reply) },
          );
          if (d !== undefined) finish(d);
        },
        (err: unknown) => {
          const gone = done;
          this.tryEnded(u, gone ? 'neutral' : 'failure', probe);
          statuses[i] = `${u.spec.id}=failed`;
          const notSent = err instanceof NotSentError;
          const d = combiner.reply(i, { ok: false, definite: notSent });
          if (d !== undefined) finish(d);
        },
      );
    });
  }
}

/** One client request and its tries (the undici dispatch handler of the current try). */
class Exchange implements Dispatcher.DispatchHandler {
  /** The body: none, a whole buffer (retryable), or the client's stream. */
  body: Buffer | null | 'stream' = null;
  /** Backends tried for this request; made on the first retry (most requests make one try). */
  tried: Set<string> | undefined;
  /** Tries made so far. */
  tries = 0;
  private firstTried: string | undefined;
  maybeSentRetries = 0;
  private upstream: Upstream | undefined;
  private probe = false;
  private connected = false;
  private abortTry: ((err?: Error) => void) | undefined;
  private tryStart = 0;
  private status = 0;
  private streamed: BodyStream | undefined;
  private gone = false;
  private finished = false;
  private lastTimeout = false;
  private resume: (() => void) | undefined;
  private lastError: Error | undefined;

  constructor(
    private readonly proxy: HttpProxy,
    readonly req: http.IncomingMessage,
    readonly res: http.ServerResponse,
    readonly t0: number,
  ) {
    res.on('close', () => {
      if (this.finished || res.writableFinished) return;
      this.gone = true;
      this.proxy.counters.clientGone++;
      this.abortTry?.(new GatewayAbort('client-gone'));
    });
  }

  /** Starts the next try, or answers when there is no backend left. */
  next(): void {
    if (this.gone) return;
    const u = this.proxy.pickFor(this);
    if (u === undefined) {
      this.finished = true;
      if (this.tries === 0) this.proxy.answer(this.res, 503, 'no backend is available', true);
      else this.failFinal(this.connected ? 'maybe-sent' : 'not-sent', this.lastError);
      return;
    }
    if (this.tries === 0) this.firstTried = u.spec.id;
    else (this.tried ??= new Set([this.firstTried!])).add(u.spec.id);
    this.tries++;
    this.upstream = u;
    this.connected = false;
    this.abortTry = undefined;
    this.status = 0;
    this.lastTimeout = false;
    let body: Buffer | Readable | null;
    if (this.body === 'stream') {
      this.streamed = new BodyStream(this.req, this.proxy.bodyBytesMax);
      body = this.streamed;
    } else body = this.body;
    this.probe = this.proxy.tryStarted(u);
    this.tryStart = performance.now();
    u.pool.dispatch(this.proxy.dispatchOptions(this, this.proxy.msLeft(this.t0), body), this);
  }

  /** The set of tried backends when only the first was tried. */
  excludeFirst(): ReadonlySet<string> {
    return (this.tried ??= new Set([this.firstTried!]));
  }

  onConnect(abort: (err?: Error) => void): void {
    this.connected = true;
    this.abortTry = abort;
    if (this.gone) abort(new GatewayAbort('client-gone'));
  }

  onHeaders(statusCode: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 1xx: the front does its own 100-continue
    this.status = statusCode;
    if (this.gone) return true;
    this.res.writeHead(statusCode, statusText, responseHeaders(raw));
    this.resume = resume;
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.gone) return true;
    if (this.res.write(chunk)) return true;
    // Backpressure: undici pauses this response until the client drains.
    if (this.resume !== undefined) this.res.once('drain', this.resume);
    return false;
  }

  onComplete(): void {
    const u = this.upstream!;
    const ms = performance.now() - this.tryStart;
    this.proxy.tryEnded(
      u,
      this.status === 502 || this.status === 503 || this.status === 504 ? 'failure' : 'ok',
      this.probe,
      this.status,
      ms,
    );
    this.finished = true;
    if (this.gone) return;
    this.proxy.counters.relayed++;
    this.proxy.latency.observe(performance.now() - this.t0);
    this.res.end();
  }

  onError(err: Error): void {
    const u = this.upstream!;
    if (err instanceof GatewayAbort) {
      this.proxy.tryEnded(u, 'neutral', this.probe);
      this.finished = true;
      if (err.why === 'body-too-large') {
        this.proxy.counters.tooLarge413++;
        this.proxy.answer(this.res, 413, 'request body too large', true, true);
      } else if (err.why === 'client-body-error') this.res.destroy();
      return;
    }
    if (this.gone) {
      this.proxy.tryEnded(u, 'neutral', this.probe);
      this.finished = true;
      return;
    }
    this.proxy.tryEnded(u, 'failure', this.probe);
    if (this.res.headersSent) {
      // The response had begun: nothing can be retried; cut it off so the client sees it.
      this.finished = true;
      this.proxy.counters.truncated++;
      this.res.destroy();
      return;
    }
    const phase: FailurePhase = this.connected ? 'maybe-sent' : 'not-sent';
    this.lastTimeout = isTimeout(err);
    this.lastError = err;
    // A streamed body can be sent again only if none of it was read.
    const bodyIntact = this.body !== 'stream' || this.streamed?.started !== true;
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
      this.proxy.answer(this.res, 504, `the backend did not answer in time (${why})`, definite);
    } else {
      this.proxy.answer(
        this.res,
        502,
        `the backend failed ${definite ? 'before the request reached it' : 'after the request may have reached it'}: ${why}`,
        definite,
      );
    }
  }
}

/**
 * The client's request body as undici reads it: nothing is taken from the
 * client until undici asks (so a try that failed before connecting leaves
 * the body untouched), bytes are counted against the limit, and destroying
 * this stream never destroys the client's.
 */
class BodyStream extends Readable {
  started = false;
  private bytes = 0;

  constructor(
    private readonly source: http.IncomingMessage,
    private readonly max: number,
  ) {
    super();
  }

  override _read(): void {
    if (this.started) {
      this.source.resume();
      return;
    }
    this.started = true;
    this.source.on('data', (chunk: Buffer) => {
      if (this.destroyed) return;
      this.bytes += chunk.length;
      if (this.bytes > this.max) {
        this.source.pause();
        this.destroy(new GatewayAbort('body-too-large'));
        return;
      }
      if (!this.push(chunk)) this.source.pause();
    });
    this.source.once('end', () => {
      if (!this.destroyed) this.push(null);
    });
    this.source.once('error', () => {
      if (!this.destroyed) this.destroy(new GatewayAbort('client-body-error'));
    });
  }
}

interface BufferedReply {
  readonly status: number;
  readonly headers: string[];
  readonly body: Buffer;
}

/** A try that failed before any byte reached the backend. */
class NotSentError extends Error {}

/** One request whose reply is read whole (replicated routes). */
function bufferedRequest(
  pool: Pool,
  options: Dispatcher.DispatchOptions,
  signal: AbortSignal,
): Promise<BufferedReply> {
  return new Promise((resolve, reject) => {
    let connected = false;
    let status = 0;
    let headers: string[] = [];
    const chunks: Buffer[] = [];
    let size = 0;
    let abort: ((err?: Error) => void) | undefined;
    const onAbort = (): void => abort?.(new GatewayAbort('client-gone'));
    signal.addEventListener('abort', onAbort, { once: true });
    pool.dispatch(options, {
      onConnect(a) {
        connected = true;
        abort = a;
        if (signal.aborted) a(new GatewayAbort('client-gone'));
      },
      onHeaders(statusCode, raw) {
        if (statusCode < 200) return true;
        status = statusCode;
        headers = raw.map((b) => b.toString('latin1'));
        return true;
      },
      onData(chunk) {
        size += chunk.length;
        if (size > limits.gatewayReplicatedBodyBytesMax) {
          abort?.(new Error(`reply exceeds ${limits.gatewayReplicatedBodyBytesMax} bytes`));
          return true;
        }
        chunks.push(chunk);
        return true;
      },
      onComplete() {
        signal.removeEventListener('abort', onAbort);
        resolve({ status, headers, body: Buffer.concat(chunks) });
      },
      onError(err) {
        signal.removeEventListener('abort', onAbort);
        reject(connected ? err : new NotSentError(err.message));
      },
    });
  });
}

function digestOf(r: BufferedReply): string {
  return `${r.status}:${createHash('sha256').update(r.body).digest('base64')}`;
}

/** Reads a whole body of at most `max` bytes; undefined when it is longer. */
function readWhole(req: http.IncomingMessage, max: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > max) {
        over = true;
        resolve(undefined);
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!over) resolve(Buffer.concat(chunks));
    });
    req.on('error', reject);
  });
}

/** The request headers a backend gets: hop-by-hop ones dropped, X-Forwarded-* set. */
function upstreamHeaders(req: http.IncomingMessage): string[] {
  const raw = req.rawHeaders;
  const out: string[] = [];
  const connectionTokens = req.headers.connection;
  const extraHop =
    connectionTokens === undefined
      ? undefined
      : new Set(connectionTokens.split(',').map((t) => t.trim().toLowerCase()));
  let host = '';
  let forwardedFor = '';
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = raw[i]!;
    const lower = k.toLowerCase();
    if (hopRequest.has(lower) || extraHop?.has(lower) === true) {
      if (lower === 'host') {
        host = raw[i + 1]!;
        out.push(k, host);
      } else if (lower === 'x-forwarded-for') {
        forwardedFor = forwardedFor === '' ? raw[i + 1]! : `${forwardedFor}, ${raw[i + 1]!}`;
      }
      continue;
    }
    out.push(k, raw[i + 1]!);
  }
  const ip = req.socket.remoteAddress ?? '';
  out.push(
    'x-forwarded-for',
    forwardedFor === '' ? ip : `${forwardedFor}, ${ip}`,
    'x-forwarded-proto',
    'http',
  );
  if (host !== '') out.push('x-forwarded-host', host);
  return out;
}

/**
 * The response headers a client gets: hop-by-hop ones dropped (the fixed
 * set, and those the backend's Connection header names).
 */
function responseHeaders(raw: readonly Buffer[]): string[] {
  const flat: string[] = [];
  let listed: Set<string> | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = raw[i]!.toString('latin1');
    const lower = k.toLowerCase();
    if (lower === 'connection') {
      const v = raw[i + 1]!.toString('latin1').toLowerCase();
      // The usual values name only headers dropped anyway.
      if (v !== 'keep-alive' && v !== 'close') {
        listed = new Set(v.split(',').map((t) => t.trim()));
      }
      continue;
    }
    if (hopResponse.has(lower)) continue;
    flat.push(k, raw[i + 1]!.toString('latin1'));
  }
  if (listed === undefined) return flat;
  const out: string[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) {
    if (!listed.has(flat[i]!.toLowerCase())) out.push(flat[i]!, flat[i + 1]!);
  }
  return out;
}

function headerText(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function isTimeout(err: Error): boolean {
  const code = (err as { code?: unknown }).code;
  return (
    code === 'UND_ERR_HEADERS_TIMEOUT' ||
    code === 'UND_ERR_BODY_TIMEOUT' ||
    code === 'UND_ERR_CONNECT_TIMEOUT'
  );
}

/** Answers a raw socket the parser refused, then closes it. */
function endSocket(socket: Duplex, status: number, text: string): void {
  const body = JSON.stringify({
    error: { code: 'INVALID_ARGUMENT', message: text, definite: true },
  });
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-cohort-definite: true\r\nconnection: close\r\n\r\n${body}`,
  );
}
