/**
 * What the admin port shows of the HTTP proxy, computed from plain-data
 * snapshots ({@link HttpSnapshot}) so that one proxy and several worker
 * processes ({@link HttpWorkers}) report the same way: with one snapshot
 * the figures are that proxy's own; with several, counters, outstanding
 * requests and histograms are added up and each backend's health is the
 * worst any worker sees (`down` if one worker's checks took it down, the
 * breaker `open` if one worker ejected it), while `eligible` says whether
 * any worker would send it a request. Per-worker health is listed too.
 *
 * ```ts
 * httpBackends([proxy.snapshot()]);          // what HttpProxy.status() returns
 * prometheusText(httpMetrics([a, b]));       // two workers' metrics as one
 * ```
 */
import type { BackendStatus } from './core/farm.js';
import type { BreakerState } from './core/health.js';
import { LatencyHistogram } from './metrics.js';
import type { HistogramData, MetricFamily } from './metrics.js';

/** Gateway-wide counters of the HTTP proxy. */
export interface HttpProxyCounters {
  requests: number;
  /** Responses relayed from a backend. */
  relayed: number;
  /** Tries beyond the first, by the failure that caused them. */
  retriesNotSent: number;
  retriesMaybeSent: number;
  /** Answered by the gateway itself. */
  badRequest400: number;
  tooLarge413: number;
  headersTooLarge431: number;
  badGateway502: number;
  unavailable503: number;
  timeout504: number;
  /** Responses cut off after their head was sent (the backend failed mid-body). */
  truncated: number;
  /** Requests whose client left before the answer. */
  clientGone: number;
  /** Replicated requests, by outcome. */
  replicatedOk: number;
  replicatedFailed: number;
}

/** What one backend did (status page, metrics). */
export interface UpstreamCounters {
  requests: number;
  responses2xx: number;
  responses3xx: number;
  responses4xx: number;
  responses5xx: number;
  /** Tries that failed (refused, reset, timeout, garbage). */
  failures: number;
  checksOk: number;
  checksFailed: number;
}

/** One backend in a snapshot: its farm state, address, counters and latency buckets. */
export interface BackendSnapshot extends BackendStatus {
  readonly host: string;
  readonly port: number;
  readonly counters: UpstreamCounters;
  readonly latency: HistogramData;
}

/** Everything the admin port needs from one HTTP proxy, as plain data. */
export interface HttpSnapshot {
  readonly counters: HttpProxyCounters;
  readonly latency: HistogramData;
  readonly panics: number;
  /** Sorted by id (the farm's order). */
  readonly backends: readonly BackendSnapshot[];
}

/** One backend on the status page. */
export type BackendReport = BackendStatus & {
  host: string;
  port: number;
  counters: UpstreamCounters;
  latency: ReturnType<LatencyHistogram['summary']>;
  /** With several workers: each one's view of the backend's health. */
  workers?: {
    active: BackendStatus['active'];
    breaker: BreakerState;
    eligible: boolean;
    outstanding: number;
  }[];
};

/** Zeroed per-backend counters. */
export function emptyUpstreamCounters(): UpstreamCounters {
  return {
    requests: 0,
    responses2xx: 0,
    responses3xx: 0,
    responses4xx: 0,
    responses5xx: 0,
    failures: 0,
    checksOk: 0,
    checksFailed: 0,
  };
}

/** Zeroed gateway-wide counters. */
export function emptyHttpCounters(): HttpProxyCounters {
  return {
    requests: 0,
    relayed: 0,
    retriesNotSent: 0,
    retriesMaybeSent: 0,
    badRequest400: 0,
    tooLarge413: 0,
    headersTooLarge431: 0,
    badGateway502: 0,
    unavailable503: 0,
    timeout504: 0,
    truncated: 0,
    clientGone: 0,
    replicatedOk: 0,
    replicatedFailed: 0,
  };
}

function addCounters<T extends object>(into: T, from: T): void {
  const a = into as Record<string, number>;
  for (const [k, v] of Object.entries(from as Record<string, number>)) a[k] = (a[k] ?? 0) + v;
}

const breakerRank: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2 };

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

interface Merged {
  readonly status: Mutable<BackendStatus>;
  readonly host: string;
  readonly port: number;
  readonly counters: UpstreamCounters;
  readonly latency: LatencyHistogram;
  readonly views: BackendStatus[];
}

/** The backends of every snapshot, merged by id (see the file comment), sorted by id. */
function mergeBackends(snaps: readonly HttpSnapshot[]): Merged[] {
  const byId = new Map<string, Merged>();
  for (const snap of snaps) {
    for (const b of snap.backends) {
      const m = byId.get(b.id);
      const { host, port, counters, latency, ...status } = b;
      if (m === undefined) {
        byId.set(b.id, {
          status: { ...status },
          host,
          port,
          counters: { ...counters },
          latency: LatencyHistogram.from(latency),
          views: [status],
        });
        continue;
      }
      const s = m.status;
      s.outstanding += status.outstanding;
      s.ejections += status.ejections;
      s.downs += status.downs;
      if (status.active === 'down') s.active = 'down';
      if (breakerRank[status.breaker] > breakerRank[s.breaker]) s.breaker = status.breaker;
      s.draining ||= status.draining;
      s.eligible ||= status.eligible;
      addCounters(m.counters, counters);
      m.latency.add(latency);
      m.views.push(status);
    }
  }
  return [...byId.values()].sort((x, y) => (x.status.id < y.status.id ? -1 : 1));
}

/** The status page's backends (one snapshot: that proxy's own view). */
export function httpBackends(snaps: readonly HttpSnapshot[]): BackendReport[] {
  return mergeBackends(snaps).map((m) => {
    const r: BackendReport = {
      ...m.status,
      host: m.host,
      port: m.port,
      counters: m.counters,
      latency: m.latency.summary(),
    };
    if (snaps.length > 1) {
      r.workers = m.views.map((v) => ({
        active: v.active,
        breaker: v.breaker,
        eligible: v.eligible,
        outstanding: v.outstanding,
      }));
    }
    return r;
  });
}

/** Gateway-wide counters, latency and panics added up over the snapshots. */
export function httpTotals(snaps: readonly HttpSnapshot[]): {
  counters: HttpProxyCounters;
  latency: LatencyHistogram;
  panics: number;
} {
  const counters = emptyHttpCounters();
  const latency = new LatencyHistogram();
  let panics = 0;
  for (const s of snaps) {
    addCounters(counters, s.counters);
    latency.add(s.latency);
    panics += s.panics;
  }
  return { counters, latency, panics };
}

/** Metric families of the HTTP proxy for the Prometheus page. */
export function httpMetrics(snaps: readonly HttpSnapshot[]): MetricFamily[] {
  const { counters: c, latency } = httpTotals(snaps);
  const all = mergeBackends(snaps);
  const per = (f: (m: Merged) => number) =>
    all.map((m) => ({ labels: { backend: m.status.id }, value: f(m) }));
  return [
    {
      name: 'cohort_gateway_http_requests_total',
      help: 'HTTP requests received by the gateway',
      type: 'counter',
      samples: [{ labels: {}, value: c.requests }],
    },
    {
      name: 'cohort_gateway_http_events_total',
      help: 'Gateway outcomes: relayed, retries, its own 4xx/5xx answers, truncations',
      type: 'counter',
      samples: (Object.keys(c) as (keyof HttpProxyCounters)[])
        .filter((k) => k !== 'requests')
        .map((k) => ({ labels: { what: k }, value: c[k] })),
    },
    {
      name: 'cohort_gateway_http_request_duration_seconds',
      help: 'Latency of relayed responses',
      type: 'histogram',
      samples: [{ labels: {}, histogram: latency }],
    },
    {
      name: 'cohort_gateway_backend_requests_total',
      help: 'Tries sent to each backend',
      type: 'counter',
      samples: per((m) => m.counters.requests),
    },
    {
      name: 'cohort_gateway_backend_failures_total',
      help: 'Tries that failed at each backend (refused, reset, timeout, garbage)',
      type: 'counter',
      samples: per((m) => m.counters.failures),
    },
    {
      name: 'cohort_gateway_backend_responses_total',
      help: 'Responses from each backend by status class',
      type: 'counter',
      samples: all.flatMap((m) =>
        (['2xx', '3xx', '4xx', '5xx'] as const).map((k) => ({
          labels: { backend: m.status.id, class: k },
          value: m.counters[`responses${k}`],
        })),
      ),
    },
    {
      name: 'cohort_gateway_backend_up',
      help: '1 if the backend takes new requests (active checks up, breaker closed, not draining; with workers: in any of them)',
      type: 'gauge',
      samples: per((m) => (m.status.eligible ? 1 : 0)),
    },
    {
      name: 'cohort_gateway_backend_outstanding',
      help: 'Requests in flight at each backend',
      type: 'gauge',
      samples: per((m) => m.status.outstanding),
    },
    {
      name: 'cohort_gateway_backend_ejections_total',
      help: 'Times the breaker of each backend opened',
      type: 'counter',
      samples: per((m) => m.status.ejections),
    },
    {
      name: 'cohort_gateway_backend_request_duration_seconds',
      help: 'Latency of responses from each backend',
      type: 'histogram',
      samples: all.map((m) => ({ labels: { backend: m.status.id }, histogram: m.latency })),
    },
  ];
}
