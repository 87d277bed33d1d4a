// Property tests for the logical clocks: random executions of N processes with
// local events, sends and receives delivered in arbitrary order. The
// happened-before relation is computed independently from the execution graph
// (program order + send→receive edges, transitively closed) and compared with
// what each clock says.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { LamportClock } from '../../src/clock/lamport.js';
import { compareVectorClocks, VectorClockProcess } from '../../src/clock/vector.js';
import type { VectorClock } from '../../src/clock/vector.js';
import { compareHlc, HybridLogicalClock } from '../../src/clock/hlc.js';
import type { HlcTimestamp } from '../../src/clock/hlc.js';
import { nodeId } from '../../src/lib/ids.js';

interface Step {
  op: 'local' | 'send' | 'recv';
  p: number;
  q: number;
  pick: number;
  dt: number;
}

interface Stamped {
  proc: number;
  lamport: number;
  vc: VectorClock;
  hlc: HlcTimestamp;
  /** This process's physical time at the event. */
  pt: number;
  /** The fastest process's physical time at the event. */
  maxPt: number;
  /** Direct predecessors in the execution graph (event indices). */
  preds: number[];
}

interface InFlight {
  to: number;
  sendEvent: number;
  lamport: number;
  vc: VectorClock;
  hlc: HlcTimestamp;
}

/** Runs `steps` over `n` processes; returns every event with its stamps and graph edges. */
function execute(n: number, offsets: readonly number[], steps: Step[]): Stamped[] {
  let globalMs = 1_000;
  const lamport = Array.from({ length: n }, () => new LamportClock());
  const vector = Array.from({ length: n }, (_, i) => new VectorClockProcess(nodeId(`p${i}`)));
  const hlc = Array.from(
    { length: n },
    (_, i) => new HybridLogicalClock(() => globalMs + (offsets[i] ?? 0)),
  );
  const lastEvent: (number | undefined)[] = Array.from({ length: n }, () => undefined);
  const events: Stamped[] = [];
  const inFlight: InFlight[] = [];

  const maxOffset = Math.max(...offsets.slice(0, n));
  const record = (
    proc: number,
    e: Pick<Stamped, 'lamport' | 'vc' | 'hlc'>,
    extra: number[],
  ): number => {
    const preds = [...extra];
    const prev = lastEvent[proc];
    if (prev !== undefined) preds.push(prev);
    const pt = globalMs + (offsets[proc] ?? 0);
    events.push({ proc, ...e, preds, pt, maxPt: globalMs + maxOffset });
    lastEvent[proc] = events.length - 1;
    return events.length - 1;
  };

  for (const s of steps) {
    globalMs += s.dt;
    const p = s.p % n;
    if (s.op === 'local') {
      record(p, { lamport: lamport[p]!.tick(), vc: vector[p]!.tick(), hlc: hlc[p]!.now() }, []);
    } else if (s.op === 'send') {
      const stamps = { lamport: lamport[p]!.send(), vc: vector[p]!.send(), hlc: hlc[p]!.send() };
      const id = record(p, stamps, []);
      inFlight.push({ to: s.q % n, sendEvent: id, ...stamps });
    } else {
      // Deliver an arbitrary in-flight message addressed to anyone: arbitrary order.
      if (inFlight.length === 0) continue;
      const [m] = inFlight.splice(s.pick % inFlight.length, 1);
      const to = m!.to;
      record(
        to,
        {
          lamport: lamport[to]!.receive(m!.lamport),
          vc: vector[to]!.receive(m!.vc),
          hlc: hlc[to]!.receive(m!.hlc),
        },
        [m!.sendEvent],
      );
    }
  }
  return events;
}

/** Ground truth: ancestors[i] = every event that happened before event i. */
function happenedBefore(events: Stamped[]): Set<number>[] {
  const ancestors: Set<number>[] = [];
  for (let i = 0; i < events.length; i++) {
    const set = new Set<number>();
    for (const p of events[i]!.preds) {
      // Predecessors always have smaller indices: an event is recorded after its causes.
      expect(p).toBeLessThan(i);
      set.add(p);
      for (const a of ancestors[p]!) set.add(a);
    }
    ancestors.push(set);
  }
  return ancestors;
}

const stepArb: fc.Arbitrary<Step> = fc.record({
  op: fc.constantFrom('local', 'send', 'send', 'recv', 'recv'),
  p: fc.nat(),
  q: fc.nat(),
  pick: fc.nat(),
  // Mostly no physical progress, so HLC's logical counters (not wall time) must carry causality.
  dt: fc.oneof(
    { arbitrary: fc.constant(0), weight: 4 },
    { arbitrary: fc.integer({ min: 0, max: 5 }), weight: 1 },
  ),
});

const executionArb = fc.record({
  n: fc.integer({ min: 1, max: 5 }),
  // Physical clock offsets per process: sometimes in sync, sometimes skewed (within the drift bound).
  offsets: fc.oneof(
    fc.constant([0, 0, 0, 0, 0]),
    fc.array(fc.integer({ min: -100, max: 100 }), { minLength: 5, maxLength: 5 }),
  ),
  steps: fc.array(stepArb, { maxLength: 80 }),
});

describe('logical clocks on random executions', () => {
  it('Lamport and HLC: a happened before b implies ts(a) < ts(b)', () => {
    fc.assert(
      fc.property(executionArb, ({ n, offsets, steps }) => {
        const events = execute(n, offsets, steps);
        const hb = happenedBefore(events);
        for (let b = 0; b < events.length; b++) {
          for (const a of hb[b]!) {
            expect(events[a]!.lamport).toBeLessThan(events[b]!.lamport);
            expect(compareHlc(events[a]!.hlc, events[b]!.hlc)).toBeLessThan(0);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('vector clocks: compare says before/after/concurrent exactly as happened-before does', () => {
    fc.assert(
      fc.property(executionArb, ({ n, offsets, steps }) => {
        const events = execute(n, offsets, steps);
        const hb = happenedBefore(events);
        for (let a = 0; a < events.length; a++) {
          for (let b = 0; b < events.length; b++) {
            const expected =
              a === b ? 'equal' : hb[b]!.has(a) ? 'before' : hb[a]!.has(b) ? 'after' : 'concurrent';
            expect(compareVectorClocks(events[a]!.vc, events[b]!.vc)).toBe(expected);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('HLC: wall never falls behind local physical time nor runs ahead of the fastest clock', () => {
    fc.assert(
      fc.property(executionArb, ({ n, offsets, steps }) => {
        for (const ev of execute(n, offsets, steps)) {
          expect(ev.hlc.wall).toBeGreaterThanOrEqual(ev.pt);
          expect(ev.hlc.wall).toBeLessThanOrEqual(ev.maxPt);
        }
      }),
      { numRuns: 100 },
    );
  });

  it('the ground-truth oracle is not vacuous: random executions contain both orders and concurrency', () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(executionArb, ({ n, offsets, steps }) => {
        const events = execute(n, offsets, steps);
        const hb = happenedBefore(events);
        for (let a = 0; a < events.length; a++) {
          for (let b = 0; b < events.length; b++) {
            if (a === b) continue;
            if (hb[b]!.has(a)) seen.add(events[a]!.proc === events[b]!.proc ? 'local' : 'remote');
            else if (!hb[a]!.has(b)) seen.add('concurrent');
          }
        }
      }),
      { numRuns: 100, seed: 1 },
    );
    expect([...seen].sort()).toEqual(['concurrent', 'local', 'remote']);
  });
});
