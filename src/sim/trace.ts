/**
 * The event trace of a simulation: one line per event, rendered with
 * `describe()`, folded into a running SHA-256. Two runs with the same seed must
 * produce byte-identical traces, so comparing `hash()` values compares whole
 * runs; the last lines are kept for failure reports.
 *
 * ```ts
 * const trace = new Trace({ sink: verbose ? console.log : undefined });
 * trace.record(sched.now(), 'deliver', { from: 'n1', to: 'n2', msg });
 * trace.hash();        // hex sha256 of every line so far
 * trace.tail(20);      // the last 20 lines
 * ```
 */
import { createHash } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { describe } from '../lib/describe.js';

/** Options for {@link Trace}. */
export interface TraceOptions {
  /** How many recent lines to keep for {@link Trace.tail} (default 200). */
  readonly keepLast?: number;
  /** Receives every line as it is recorded (e.g. `--verbose` printing). */
  readonly sink?: ((line: string) => void) | undefined;
}

/** An append-only, hashed event log. */
export class Trace {
  private readonly digest: Hash = createHash('sha256');
  private readonly recent: string[] = [];
  private readonly keepLast: number;
  private readonly sink: ((line: string) => void) | undefined;
  private readonly kinds = new Map<string, number>();
  private lines = 0;

  constructor(options: TraceOptions = {}) {
    this.keepLast = options.keepLast ?? 200;
    this.sink = options.sink;
  }

  /** Appends the event `kind` at `timeMs`; `detail` is rendered with `describe()` (strings as is). */
  record(timeMs: number, kind: string, detail?: unknown): void {
    const text =
      detail === undefined ? '' : ` ${typeof detail === 'string' ? detail : describe(detail)}`;
    const line = `${timeMs} ${kind}${text}`;
    this.digest.update(line);
    this.digest.update('\n');
    this.lines++;
    this.kinds.set(kind, (this.kinds.get(kind) ?? 0) + 1);
    this.recent.push(line);
    if (this.recent.length > this.keepLast * 2)
      this.recent.splice(0, this.recent.length - this.keepLast);
    this.sink?.(line);
  }

  /** Hex SHA-256 of every line recorded so far (each followed by a newline). */
  hash(): string {
    return this.digest.copy().digest('hex');
  }

  /** Lines recorded so far. */
  get length(): number {
    return this.lines;
  }

  /** How many events of each kind were recorded, kinds in sorted order. */
  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const k of [...this.kinds.keys()].sort()) out[k] = this.kinds.get(k) as number;
    return out;
  }

  /** The last `n` lines (at most `keepLast`). */
  tail(n = this.keepLast): string[] {
    return this.recent.slice(-Math.min(n, this.keepLast));
  }
}
