/**
 * Ready-made interceptors: structured logging, per-method metrics (Prometheus
 * text), and a shared-token auth hook for both sides.
 *
 * ```ts
 * const metrics = new RpcMetrics();
 * const server = new RpcNode(transport, { server: { interceptors: [
 *   serverLogging(logger), metrics.server(), requireToken(process.env.COHORT_TOKEN ?? '') ] } });
 * const client = new RpcNode(t2, { client: { interceptors: [clientLogging(logger), sendToken(token)] } });
 * res.end(metrics.prometheus());     // on GET /metrics
 * ```
 */
import type { Logger } from 'pino';
import { CohortError, isCohortError } from '../lib/errors.js';
import type { ClientInterceptor } from './client.js';
import type { ServerInterceptor } from './server.js';

/** Logs every unary call a client makes: one line per call at debug, failures at warn. */
export function clientLogging(
  logger: Logger,
  now: () => number = () => performance.now(),
): ClientInterceptor {
  return async (call, next) => {
    const start = now();
    try {
      const result = await next(call);
      logger.debug(
        { peer: call.peer, rpc: `${call.service}.${call.method}`, ms: now() - start },
        'rpc call',
      );
      return result;
    } catch (err) {
      logger.warn(
        {
          peer: call.peer,
          rpc: `${call.service}.${call.method}`,
          ms: now() - start,
          code: isCohortError(err) ? err.code : 'INTERNAL',
          definite: isCohortError(err) ? err.definite : false,
        },
        'rpc call failed',
      );
      throw err;
    }
  };
}

/** Logs every call a server runs: one line per call at debug, failures at warn. */
export function serverLogging(
  logger: Logger,
  now: () => number = () => performance.now(),
): ServerInterceptor {
  return async (call, next) => {
    const start = now();
    try {
      const result = await next();
      logger.debug(
        { peer: call.peer, rpc: `${call.service}.${call.method}`, ms: now() - start },
        'rpc served',
      );
      return result;
    } catch (err) {
      logger.warn(
        {
          peer: call.peer,
          rpc: `${call.service}.${call.method}`,
          ms: now() - start,
          code: isCohortError(err) ? err.code : 'INTERNAL',
        },
        'rpc handler failed',
      );
      throw err;
    }
  };
}

/** Latency bucket bounds in seconds (Prometheus histogram `le` labels). */
const BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];

interface MethodStats {
  calls: number;
  errors: Map<string, number>;
  buckets: number[];
  sumSeconds: number;
}

/** Per-method call counts, error counts by code and latency histograms, for both sides (a client stream is timed to its start). */
export class RpcMetrics {
  private readonly stats = new Map<string, MethodStats>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** An interceptor recording the calls a client makes. */
  client(): ClientInterceptor {
    return (call, next) =>
      this.measure('client', `${call.service}.${call.method}`, () => next(call));
  }

  /** An interceptor recording the calls a server runs. */
  server(): ServerInterceptor {
    return (call, next) => this.measure('server', `${call.service}.${call.method}`, next);
  }

  /** Calls recorded for `side` and `rpc` ("Service.method"). */
  calls(side: 'client' | 'server', rpc: string): number {
    return this.stats.get(`${side}\u0000${rpc}`)?.calls ?? 0;
  }

  /** The metrics in Prometheus text exposition format. */
  prometheus(): string {
    const lines = [
      '# HELP cohort_rpc_calls_total RPC calls by side and method.',
      '# TYPE cohort_rpc_calls_total counter',
    ];
    const errors = [
      '# HELP cohort_rpc_errors_total Failed RPC calls by code.',
      '# TYPE cohort_rpc_errors_total counter',
    ];
    const hist = ['# HELP cohort_rpc_seconds RPC latency.', '# TYPE cohort_rpc_seconds histogram'];
    for (const [key, s] of this.stats) {
      const [side, rpc] = key.split('\u0000') as [string, string];
      const labels = `side="${side}",rpc="${rpc}"`;
      lines.push(`cohort_rpc_calls_total{${labels}} ${s.calls}`);
      for (const [code, n] of s.errors)
        errors.push(`cohort_rpc_errors_total{${labels},code="${code}"} ${n}`);
      let cumulative = 0;
      BUCKETS.forEach((le, i) => {
        cumulative += s.buckets[i] ?? 0;
        hist.push(`cohort_rpc_seconds_bucket{${labels},le="${le}"} ${cumulative}`);
      });
      hist.push(`cohort_rpc_seconds_bucket{${labels},le="+Inf"} ${s.calls}`);
      hist.push(`cohort_rpc_seconds_sum{${labels}} ${s.sumSeconds}`);
      hist.push(`cohort_rpc_seconds_count{${labels}} ${s.calls}`);
    }
    return `${[...lines, ...errors, ...hist].join('\n')}\n`;
  }

  private async measure(side: string, rpc: string, run: () => Promise<unknown>): Promise<unknown> {
    const key = `${side}\u0000${rpc}`;
    let s = this.stats.get(key);
    if (s === undefined) {
      s = { calls: 0, errors: new Map(), buckets: BUCKETS.map(() => 0), sumSeconds: 0 };
      this.stats.set(key, s);
    }
    const start = this.now();
    try {
      return await run();
    } catch (err) {
      const code = isCohortError(err) ? err.code : 'INTERNAL';
      s.errors.set(code, (s.errors.get(code) ?? 0) + 1);
      throw err;
    } finally {
      const seconds = (this.now() - start) / 1000;
      s.calls++;
      s.sumSeconds += seconds;
      const i = BUCKETS.findIndex((le) => seconds <= le);
      if (i >= 0) s.buckets[i] = (s.buckets[i] ?? 0) + 1;
    }
  }
}

/** A client interceptor that sends `token` as the `token` metadata of every call. */
export function sendToken(token: string): ClientInterceptor {
  return (call, next) => {
    call.meta.token = token;
    return next(call);
  };
}

/** A server interceptor that refuses calls without the shared `token` (definite PERMISSION_DENIED). */
export function requireToken(token: string): ServerInterceptor {
  return (call, next) => {
    if (call.meta.token !== token) {
      return Promise.reject(
        new CohortError(
          'PERMISSION_DENIED',
          `${call.service}.${call.method}: missing or wrong token`,
        ),
      );
    }
    return next();
  };
}
