import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { seededRandom } from '../../src/lib/random.js';

function draw(seed: number, n: number): number[] {
  const r = seededRandom(seed);
  return Array.from({ length: n }, () => r.uint32());
}

describe('seededRandom', () => {
  it('replays the same stream for the same seed', () => {
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        expect(draw(seed, 20)).toEqual(draw(seed, 20));
      }),
    );
  });

  it('gives different streams for different seeds', () => {
    expect(draw(1, 8)).not.toEqual(draw(2, 8));
    expect(draw(0, 8)).not.toEqual(draw(2 ** 40, 8));
  });

  it('forks independent streams that do not depend on draws from the parent', () => {
    const a = seededRandom(7);
    const b = seededRandom(7);
    b.uint32();
    b.uint32();
    expect(a.fork('raft').uint32()).toBe(b.fork('raft').uint32());
    expect(a.fork('raft').uint32()).not.toBe(a.fork('net').uint32());
  });

  it('keeps int() within bounds and covers them', () => {
    const r = seededRandom(3);
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const v = r.intBetween(5, 9);
      expect(v).toBeGreaterThanOrEqual(5);
      expect(v).toBeLessThanOrEqual(9);
      seen.add(v);
    }
    expect([...seen].sort()).toEqual([5, 6, 7, 8, 9]);
  });

  it('is roughly uniform (chi-square over 10 buckets)', () => {
    const r = seededRandom(11);
    const buckets = new Array<number>(10).fill(0);
    const n = 100_000;
    for (let i = 0; i < n; i++) {
      const b = r.int(10);
      buckets[b] = (buckets[b] ?? 0) + 1;
    }
    const expected = n / 10;
    const chi = buckets.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
    expect(chi).toBeLessThan(27.9); // p = 0.001 for 9 degrees of freedom
  });

  it('shuffles into a permutation', () => {
    const r = seededRandom(5);
    const items = [1, 2, 3, 4, 5, 6, 7];
    const s = r.shuffle(items);
    expect([...s].sort()).toEqual(items);
    expect(items).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });
});
