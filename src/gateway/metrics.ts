/**
 * The gateway's counters and latency histograms, and their Prometheus text
 * exposition (format 0.0.4). Hand-written rather than prom-client: a
 * handful of counters and fixed-bucket histograms, updated on the hot path
 * with plain increments (no label lookups per request).
 *
 * ```ts
 * const h = new LatencyHistogram();
 * h.observe(1.7);                                   // ms
 * h.quantile(0.99);                                 // upper bound of the bucket holding p99
 * prometheusText([{ name: 'cohort_gateway_requests_total', help: '...', type: 'counter',
 *   samples: [{ labels: { route: 'http' }, value: 12 }] }]);
 * ```
 */

/** Bucket upper bounds in ms (Prometheus `le`), roughly ×2.5 apart. */
export const latencyBucketsMs: readonly number[] = [
  0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000,
];

/** A histogram's raw buckets as plain data. */
export interface HistogramData {
  readonly counts: readonly number[];
  readonly count: number;
  readonly sumMs: number;
}

/** A fixed-bucket latency histogram in ms. */
export class LatencyHistogram {
  /** Per-bucket counts (not cumulative); the last is +Inf. */
  readonly counts: number[] = new Array<number>(latencyBucketsMs.length + 1).fill(0);
  count = 0;
  sumMs = 0;

  /** A histogram holding `data` (a {@link LatencyHistogram.data} of this or another process). */
  static from(data: HistogramData): LatencyHistogram {
    const h = new LatencyHistogram();
    h.add(data);
    return h;
  }

  /** Adds another histogram's observations (the workers' histograms into one). */
  add(data: HistogramData): void {
    for (let i = 0; i < this.counts.length; i++) {
      this.counts[i] = (this.counts[i] ?? 0) + (data.counts[i] ?? 0);
    }
    this.count += data.count;
    this.sumMs += data.sumMs;
  }

  /** The raw buckets, plain data (sent between processes). */
  data(): HistogramData {
    return { counts: [...this.counts], count: this.count, sumMs: this.sumMs };
  }

  observe(ms: number): void {
    let i = 0;
    while (i < latencyBucketsMs.length && ms > (latencyBucketsMs[i] ?? Infinity)) i++;
    this.counts[i] = (this.counts[i] ?? 0) + 1;
    this.count++;
    this.sumMs += ms;
  }

  /** The upper bound of the bucket holding quantile `q` (0..1); 0 when empty. */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    const rank = Math.ceil(q * this.count);
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i] ?? 0;
      if (seen >= rank) return latencyBucketsMs[i] ?? Infinity;
    }
    return Infinity;
  }

  /** A JSON summary for the status page. */
  summary(): { count: number; meanMs: number; p50Ms: number; p99Ms: number } {
    return {
      count: this.count,
      meanMs: this.count === 0 ? 0 : Math.round((this.sumMs / this.count) * 1000) / 1000,
      p50Ms: this.quantile(0.5),
      p99Ms: this.quantile(0.99),
    };
  }
}

/** One metric family. */
export interface MetricFamily {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  readonly samples: readonly {
    readonly labels: Readonly<Record<string, string>>;
    readonly value?: number;
    readonly histogram?: LatencyHistogram;
  }[];
}

function labelText(labels: Readonly<Record<string, string>>, extra?: string): string {
  const parts = Object.entries(labels).map(
    ([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`,
  );
  if (extra !== undefined) parts.push(extra);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

/** The Prometheus text exposition of `families`. */
export function prometheusText(families: readonly MetricFamily[]): string {
  const lines: string[] = [];
  for (const f of families) {
    lines.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const h = s.histogram;
      if (h === undefined) {
        lines.push(`${f.name}${labelText(s.labels)} ${s.value ?? 0}`);
        continue;
      }
      let cumulative = 0;
      latencyBucketsMs.forEach((le, i) => {
        cumulative += h.counts[i] ?? 0;
        lines.push(`${f.name}_bucket${labelText(s.labels, `le="${le / 1000}"`)} ${cumulative}`);
      });
      lines.push(`${f.name}_bucket${labelText(s.labels, 'le="+Inf"')} ${h.count}`);
      lines.push(`${f.name}_sum${labelText(s.labels)} ${h.sumMs / 1000}`);
      lines.push(`${f.name}_count${labelText(s.labels)} ${h.count}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
