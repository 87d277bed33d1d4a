/**
 * Vector clocks (Fidge 1988, Mattern 1989): one counter per process. Unlike a
 * Lamport clock they characterise causality exactly: `compare(a, b)` is
 * `'before'` iff the event stamped `a` happened before the one stamped `b`, and
 * `'concurrent'` iff neither happened before the other.
 *
 * ```ts
 * const p = new VectorClockProcess(nodeId('n1'));
 * const q = new VectorClockProcess(nodeId('n2'));
 * const m = p.send();            // {n1: 1}
 * const r = q.receive(m);        // {n1: 1, n2: 1}
 * compareVectorClocks(m, r);     // 'before'
 * ```
 *
 * A vector clock is a plain object from node id to a positive integer counter
 * (missing entries are 0), so it goes on the wire as is and decodes with
 * {@link parseVectorClock}. Values are immutable: every operation returns a new one.
 */
import { CohortError } from '../lib/errors.js';
import { isValidId } from '../lib/ids.js';
import type { NodeId } from '../lib/ids.js';
import { limits } from '../lib/limits.js';

/** A vector clock: node id → count of that node's events seen. Absent means 0. */
export type VectorClock = Readonly<Record<string, number>>;

/** How two vector clocks relate (the causal order of the events they stamp). */
export type VectorOrder = 'before' | 'after' | 'equal' | 'concurrent';

/** The clock of a process that has seen no events. */
export const emptyVectorClock: VectorClock = Object.freeze({});

/** The counter of `node` in `vc` (0 if absent). Uses own properties only, so ids like `constructor` are safe. */
export function vectorEntry(vc: VectorClock, node: string): number {
  return Object.hasOwn(vc, node) ? (vc[node] as number) : 0;
}

/** A copy of `vc` with `node`'s counter one higher: the stamp of `node`'s next event. */
export function incrementVectorClock(vc: VectorClock, node: NodeId): VectorClock {
  return { ...vc, [node]: vectorEntry(vc, node) + 1 };
}

/** The entry-wise maximum of `a` and `b`: the least clock that has seen both. */
export function mergeVectorClocks(a: VectorClock, b: VectorClock): VectorClock {
  const out: Record<string, number> = { ...a };
  for (const k of Object.keys(b)) out[k] = Math.max(vectorEntry(a, k), vectorEntry(b, k));
  return out;
}

/**
 * The causal relation between the events stamped `a` and `b`: `'before'` if
 * a ≤ b entry-wise and a ≠ b, `'after'` the mirror, `'equal'`, or `'concurrent'`
 * when each has an entry greater than the other's.
 */
export function compareVectorClocks(a: VectorClock, b: VectorClock): VectorOrder {
  let aLess = false;
  let bLess = false;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) {
    const x = vectorEntry(a, k);
    const y = vectorEntry(b, k);
    if (x < y) aLess = true;
    else if (x > y) bLess = true;
  }
  if (aLess && bLess) return 'concurrent';
  if (aLess) return 'before';
  if (bLess) return 'after';
  return 'equal';
}

/**
 * Checks a vector clock decoded from the wire: a plain object with at most
 * `vectorClockEntriesMax` entries, each a valid node id mapped to a
 * non-negative safe integer. Throws INVALID_ARGUMENT otherwise. Zero entries
 * are dropped so equal clocks have equal encodings.
 */
export function parseVectorClock(value: unknown): VectorClock {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CohortError('INVALID_ARGUMENT', 'a vector clock must be an object');
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    throw new CohortError('INVALID_ARGUMENT', 'a vector clock must be a plain object');
  }
  const keys = Object.keys(value);
  if (keys.length > limits.vectorClockEntriesMax) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      `a vector clock may have at most ${limits.vectorClockEntriesMax} entries, got ${keys.length}`,
    );
  }
  const out: Record<string, number> = {};
  for (const k of keys) {
    const v: unknown = (value as Record<string, unknown>)[k];
    if (!isValidId(k)) {
      throw new CohortError('INVALID_ARGUMENT', 'a vector clock key is not a valid node id', {
        details: { key: k },
      });
    }
    if (
      typeof v !== 'number' ||
      !Number.isSafeInteger(v) ||
      v < 0 ||
      v >= Number.MAX_SAFE_INTEGER
    ) {
      throw new CohortError('INVALID_ARGUMENT', `vector clock entry ${k} is not a counter`, {
        details: { key: k, value: String(v) },
      });
    }
    if (v > 0) out[k] = v;
  }
  return out;
}

/**
 * One process's vector clock with the usual rules: every event increments the
 * process's own entry; a receive first merges the message's clock.
 */
export class VectorClockProcess {
  private current: VectorClock;

  /** `start` lets a restarted process resume from a persisted clock. */
  constructor(
    readonly self: NodeId,
    start: VectorClock = emptyVectorClock,
  ) {
    this.current = parseVectorClock(start);
  }

  /** The stamp of this process's latest event. */
  now(): VectorClock {
    return this.current;
  }

  /** Records a local event and returns its stamp. */
  tick(): VectorClock {
    this.current = incrementVectorClock(this.current, this.self);
    return this.current;
  }

  /** Records a send event and returns the stamp to put on the message. */
  send(): VectorClock {
    return this.tick();
  }

  /**
   * Records the receipt of a message stamped `remote` and returns the receive
   * event's stamp. A malformed `remote` throws INVALID_ARGUMENT and changes nothing.
   */
  receive(remote: unknown): VectorClock {
    const vc = parseVectorClock(remote);
    this.current = incrementVectorClock(mergeVectorClocks(this.current, vc), this.self);
    return this.current;
  }
}
