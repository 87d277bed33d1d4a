import { describe, expect, it } from 'vitest';
import { pack, unpack } from 'msgpackr';
import { LamportClock, parseLamportTimestamp } from '../../src/clock/lamport.js';
import {
  compareVectorClocks,
  incrementVectorClock,
  mergeVectorClocks,
  parseVectorClock,
  VectorClockProcess,
} from '../../src/clock/vector.js';
import type { VectorClock } from '../../src/clock/vector.js';
import { compareHlc, HybridLogicalClock, parseHlcTimestamp } from '../../src/clock/hlc.js';
import { VirtualClock } from '../../src/lib/clock.js';
import { CohortError } from '../../src/lib/errors.js';
import { nodeId } from '../../src/lib/ids.js';
import { limits } from '../../src/lib/limits.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof CohortError) return err.code;
    throw err;
  }
  return undefined;
}

const n1 = nodeId('n1');
const n2 = nodeId('n2');

describe('LamportClock', () => {
  it('advances past a received timestamp', () => {
    const a = new LamportClock();
    const b = new LamportClock(10);
    expect(a.tick()).toBe(1);
    expect(b.receive(a.send())).toBe(11);
    expect(a.receive(b.send())).toBe(13);
  });

  it('refuses malformed timestamps with INVALID_ARGUMENT and stays unchanged', () => {
    const a = new LamportClock(5);
    for (const bad of [-1, 1.5, Number.NaN, '7', null, Number.MAX_SAFE_INTEGER, 2 ** 60]) {
      expect(codeOf(() => a.receive(bad))).toBe('INVALID_ARGUMENT');
    }
    expect(a.now()).toBe(5);
    expect(parseLamportTimestamp(0)).toBe(0);
  });
});

describe('vector clocks', () => {
  it('compares the four ways', () => {
    const a: VectorClock = { n1: 1 };
    const b: VectorClock = { n1: 1, n2: 1 };
    const c: VectorClock = { n2: 2 };
    expect(compareVectorClocks(a, b)).toBe('before');
    expect(compareVectorClocks(b, a)).toBe('after');
    expect(compareVectorClocks(a, { n1: 1, n3: 0 })).toBe('equal');
    expect(compareVectorClocks(a, c)).toBe('concurrent');
    expect(compareVectorClocks({}, {})).toBe('equal');
  });

  it('merges entry-wise and increments one entry without mutating', () => {
    const a: VectorClock = { n1: 3, n2: 1 };
    const b: VectorClock = { n2: 4, n3: 2 };
    expect(mergeVectorClocks(a, b)).toEqual({ n1: 3, n2: 4, n3: 2 });
    expect(incrementVectorClock(a, n2)).toEqual({ n1: 3, n2: 2 });
    expect(a).toEqual({ n1: 3, n2: 1 });
  });

  it('treats node ids that name Object.prototype members as ordinary keys', () => {
    const p = new VectorClockProcess(nodeId('constructor'));
    expect(p.tick()).toEqual({ constructor: 1 });
    expect(compareVectorClocks({}, { toString: 1 })).toBe('before');
  });

  it('round-trips through msgpack and processes exchange stamps', () => {
    const p = new VectorClockProcess(n1);
    const q = new VectorClockProcess(n2);
    const m = p.send();
    const wire: unknown = unpack(pack(m));
    const r = q.receive(wire);
    expect(r).toEqual({ n1: 1, n2: 1 });
    expect(compareVectorClocks(m, r)).toBe('before');
  });

  it('refuses malformed clocks with INVALID_ARGUMENT and stays unchanged', () => {
    const p = new VectorClockProcess(n1, { n1: 2 });
    const tooMany: Record<string, number> = {};
    for (let i = 0; i <= limits.vectorClockEntriesMax; i++) tooMany[`n${i}`] = 1;
    const bad: unknown[] = [
      null,
      [1, 2],
      'x',
      { n1: -1 },
      { n1: 1.5 },
      { n1: '1' },
      { 'bad id': 1 },
      { _x: 1 },
      JSON.parse('{"__proto__": 1}'),
      new Map([['n1', 1]]),
      tooMany,
    ];
    for (const b of bad) expect(codeOf(() => p.receive(b))).toBe('INVALID_ARGUMENT');
    expect(p.now()).toEqual({ n1: 2 });
    expect(parseVectorClock({ n1: 0, n2: 3 })).toEqual({ n2: 3 });
  });
});

describe('HybridLogicalClock', () => {
  it('follows physical time and counts events within one millisecond', () => {
    const clock = new VirtualClock(1_000);
    const h = new HybridLogicalClock(clock);
    expect(h.now()).toEqual({ wall: 1_000, logical: 0 });
    expect(h.now()).toEqual({ wall: 1_000, logical: 1 });
    clock.advance(5);
    expect(h.send()).toEqual({ wall: 1_005, logical: 0 });
  });

  it('takes the wall time of a message from a faster clock (within the bound) and orders after it', () => {
    let pt = 1_000;
    const h = new HybridLogicalClock(() => pt);
    const remote = { wall: 1_200, logical: 7 };
    const r = h.receive(remote);
    expect(r).toEqual({ wall: 1_200, logical: 8 });
    expect(compareHlc(remote, r)).toBeLessThan(0);
    pt = 1_300; // physical time catches up: the counter resets
    expect(h.now()).toEqual({ wall: 1_300, logical: 0 });
  });

  it('never goes backwards when physical time does', () => {
    let pt = 5_000;
    const h = new HybridLogicalClock(() => pt);
    const a = h.now();
    pt = 4_000;
    const b = h.now();
    expect(compareHlc(a, b)).toBeLessThan(0);
  });

  it('refuses a remote timestamp beyond the drift bound with CLOCK_SKEW and stays unchanged', () => {
    const h = new HybridLogicalClock(() => 1_000, { driftMsMax: 100 });
    h.now();
    const before = h.last();
    let err: unknown;
    try {
      h.receive({ wall: 1_101, logical: 0 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CohortError);
    expect((err as CohortError).code).toBe('CLOCK_SKEW');
    expect((err as CohortError).message).toMatch(/101 ms ahead/);
    expect(h.last()).toEqual(before);
    expect(h.receive({ wall: 1_100, logical: 0 })).toEqual({ wall: 1_100, logical: 1 });
  });

  it('uses limits.hlcDriftMsMax by default', () => {
    const h = new HybridLogicalClock(() => 0);
    expect(codeOf(() => h.receive({ wall: limits.hlcDriftMsMax + 1, logical: 0 }))).toBe(
      'CLOCK_SKEW',
    );
    expect(codeOf(() => h.receive({ wall: limits.hlcDriftMsMax, logical: 0 }))).toBeUndefined();
  });

  it('refuses malformed timestamps with INVALID_ARGUMENT', () => {
    const h = new HybridLogicalClock(() => 1_000);
    for (const bad of [
      null,
      5,
      {},
      { wall: -1, logical: 0 },
      { wall: 1.5, logical: 0 },
      { wall: 1, logical: -1 },
      { wall: 1, logical: limits.hlcLogicalMax + 1 },
      { wall: '1', logical: 0 },
    ]) {
      expect(codeOf(() => h.receive(bad))).toBe('INVALID_ARGUMENT');
    }
    expect(h.last()).toEqual({ wall: 0, logical: 0 });
    expect(parseHlcTimestamp({ wall: 3, logical: 4, extra: 1 })).toEqual({ wall: 3, logical: 4 });
  });

  it('resumes from a persisted timestamp', () => {
    const h = new HybridLogicalClock(() => 10, { start: { wall: 50, logical: 2 } });
    expect(h.now()).toEqual({ wall: 50, logical: 3 });
  });
});
