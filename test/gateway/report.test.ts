/**
 * The admin page's figures from snapshots (src/gateway/report.ts): one
 * snapshot is reported as it is; several (gateway workers) are added up,
 * each backend's health is the worst a worker sees, and `eligible` says
 * whether any worker would send it a request.
 */
import { describe, expect, it } from 'vitest';
import { LatencyHistogram, prometheusText } from '../../src/gateway/metrics.js';
import {
  emptyHttpCounters,
  emptyUpstreamCounters,
  httpBackends,
  httpMetrics,
  httpTotals,
} from '../../src/gateway/report.js';
import type { BackendSnapshot, HttpSnapshot } from '../../src/gateway/report.js';

function backend(id: string, over: Partial<BackendSnapshot> = {}): BackendSnapshot {
  const h = new LatencyHistogram();
  h.observe(0.4);
  return {
    id,
    weight: 1,
    outstanding: 1,
    active: 'up',
    breaker: 'closed',
    draining: false,
    eligible: true,
    ejections: 0,
    downs: 0,
    host: '127.0.0.1',
    port: 1000,
    counters: { ...emptyUpstreamCounters(), requests: 10, responses2xx: 9, failures: 1 },
    latency: h.data(),
    ...over,
  };
}

function snapshot(backends: BackendSnapshot[], requests: number): HttpSnapshot {
  const h = new LatencyHistogram();
  h.observe(3);
  return {
    counters: { ...emptyHttpCounters(), requests, relayed: requests },
    latency: h.data(),
    panics: 1,
    backends,
  };
}

describe('gateway report', () => {
  it('reports one snapshot as it is, without a per-worker list', () => {
    const [b] = httpBackends([snapshot([backend('a')], 5)]);
    expect(b).toMatchObject({ id: 'a', outstanding: 1, eligible: true, breaker: 'closed' });
    expect(b?.counters.requests).toBe(10);
    expect(b?.latency.count).toBe(1);
    expect(b?.workers).toBeUndefined();
  });

  it('adds up workers: counters and histograms summed, the worst health, eligible in any', () => {
    const w1 = snapshot(
      [backend('b', { breaker: 'open', eligible: false, ejections: 1 }), backend('a')],
      5,
    );
    const w2 = snapshot(
      [backend('a', { active: 'down', eligible: false, downs: 1 }), backend('b')],
      7,
    );
    const [a, b] = httpBackends([w1, w2]);
    expect(a).toMatchObject({ id: 'a', active: 'down', eligible: true, downs: 1, outstanding: 2 });
    expect(b).toMatchObject({ id: 'b', breaker: 'open', eligible: true, ejections: 1 });
    expect(a?.counters).toMatchObject({ requests: 20, responses2xx: 18, failures: 2 });
    expect(a?.latency.count).toBe(2);
    expect(b?.workers?.map((w) => w.breaker)).toEqual(['open', 'closed']);
    const t = httpTotals([w1, w2]);
    expect(t.counters.requests).toBe(12);
    expect(t.latency.count).toBe(2);
    expect(t.panics).toBe(2);
    const text = prometheusText(httpMetrics([w1, w2]));
    expect(text).toContain('cohort_gateway_http_requests_total 12');
    expect(text).toContain('cohort_gateway_backend_requests_total{backend="a"} 20');
    expect(text).toContain('cohort_gateway_backend_up{backend="b"} 1');
    expect(text).toContain('cohort_gateway_http_request_duration_seconds_count 2');
  });
});
