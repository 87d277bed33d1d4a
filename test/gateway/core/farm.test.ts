/**
 * The Farm (the gateway's picker): one test per balancing, eligibility and
 * drain rule of src/gateway/core/farm.ts, plus the hash ring.
 */
import { describe, expect, it } from 'vitest';
import { Farm } from '../../../src/gateway/core/farm.js';
import type { Balance } from '../../../src/gateway/core/farm.js';
import { HashRing } from '../../../src/gateway/core/hash-ring.js';
import { seededRandom } from '../../../src/lib/random.js';

const health = { rise: 2, fall: 2, ejectFailures: 2, ejectMs: 1_000, ejectMsMax: 8_000 };

function farm(balance: Balance, backends: Record<string, number>, seed = 1): Farm {
  const f = new Farm({ balance, health, random: seededRandom(seed) });
  for (const [id, w] of Object.entries(backends)) f.upsert(id, w);
  return f;
}

function counts(f: Farm, n: number, key?: (i: number) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const p = f.pick(0, key?.(i));
    if (p === undefined) throw new Error('no pick');
    out[p.id] = (out[p.id] ?? 0) + 1;
  }
  return out;
}

describe('Farm: balancing', () => {
  it('p2c sends to the less loaded of the two backends it draws', () => {
    const f = farm('p2c', { a: 1, b: 1 });
    for (let i = 0; i < 5; i++) f.started('a', 0);
    // With two backends the two draws are always a and b: b has fewer outstanding.
    for (let i = 0; i < 20; i++) expect(f.pick(0)?.id).toBe('b');
  });

  it('p2c compares outstanding per unit of weight', () => {
    const f = farm('p2c', { a: 4, b: 1 });
    for (let i = 0; i < 3; i++) f.started('a', 0); // 3/4 per weight
    f.started('b', 0); // 1/1
    for (let i = 0; i < 20; i++) expect(f.pick(0)?.id).toBe('a');
  });

  it('p2c spreads idle picks by weight', () => {
    const c = counts(farm('p2c', { a: 3, b: 1, c: 1 }), 5_000);
    // Equal loads tie: the first draw (weighted) wins, so picks follow the weights.
    expect(c.a!).toBeGreaterThan(2_500);
    expect(c.b!).toBeGreaterThan(600);
    expect(c.c!).toBeGreaterThan(600);
  });

  it('p2c is deterministic for a seed', () => {
    const seq = (seed: number): string[] => {
      const f = farm('p2c', { a: 1, b: 1, c: 1, d: 1 }, seed);
      return Array.from({ length: 50 }, () => f.pick(0)?.id ?? '');
    };
    expect(seq(7)).toEqual(seq(7));
    expect(seq(7)).not.toEqual(seq(8));
  });

  it('round robin cycles in id order and interleaves weights smoothly', () => {
    const f = farm('round-robin', { a: 1, b: 1, c: 1 });
    expect(Array.from({ length: 6 }, () => f.pick(0)?.id).join('')).toBe('abcabc');
    const g = farm('round-robin', { a: 5, b: 1, c: 1 });
    // Smooth weighted round robin: a a b a c a a, not a a a a a b c.
    expect(Array.from({ length: 7 }, () => g.pick(0)?.id).join('')).toBe('aabacaa');
  });

  it('hash sends a key to the same backend every time', () => {
    const f = farm('hash', { a: 1, b: 1, c: 1 });
    for (const key of ['u1', 'u2', 'u3', 'game-9']) {
      const first = f.pick(0, key)?.id;
      for (let i = 0; i < 10; i++) expect(f.pick(0, key)?.id).toBe(first);
    }
  });

  it('hash moves only the keys of a backend that fails, and they come back', () => {
    const f = farm('hash', { a: 1, b: 1, c: 1 });
    const keys = Array.from({ length: 300 }, (_, i) => `k${i}`);
    const before = new Map(keys.map((k) => [k, f.pick(0, k)?.id]));
    // Eject b (two failures open its breaker).
    f.started('b', 0);
    f.ended('b', 'failure', false, 0);
    f.started('b', 0);
    f.ended('b', 'failure', false, 0);
    let moved = 0;
    for (const k of keys) {
      const now = f.pick(10, k)?.id;
      if (before.get(k) === 'b') expect(now).not.toBe('b');
      else {
        expect(now).toBe(before.get(k));
        continue;
      }
      moved++;
    }
    expect(moved).toBeGreaterThan(50); // b owned about a third of them
    // After the ejection, the probe closes the breaker: keys go home.
    const probe = f.started('b', 2_000);
    f.ended('b', 'ok', probe, 2_000);
    for (const k of keys) expect(f.pick(2_000, k)?.id).toBe(before.get(k));
  });

  it('hash without a key falls back to p2c', () => {
    const f = farm('hash', { a: 1, b: 1 });
    f.started('a', 0);
    expect(f.pick(0)?.id).toBe('b');
  });

  it('the hash ring gives keys in proportion to weight', () => {
    const ring = new HashRing(
      [
        { id: 'a', weight: 1 },
        { id: 'b', weight: 3 },
      ],
      100,
    );
    const c: Record<string, number> = {};
    for (let i = 0; i < 8_000; i++) {
      const id = ring.lookup(`key-${i}`, () => true) ?? '';
      c[id] = (c[id] ?? 0) + 1;
    }
    expect(c.b! / c.a!).toBeGreaterThan(2);
    expect(c.b! / c.a!).toBeLessThan(4.5);
  });
});

describe('Farm: eligibility', () => {
  it('skips a backend whose breaker is open, and sends it one probe once half-open', () => {
    const f = farm('round-robin', { a: 1, b: 1 });
    for (let i = 0; i < 2; i++) {
      f.started('a', 0);
      f.ended('a', 'failure', false, 0);
    }
    expect(counts(f, 4)).toEqual({ b: 4 });
    expect(f.status(0).find((s) => s.id === 'a')).toMatchObject({
      breaker: 'open',
      eligible: false,
    });
    // Half-open at 1 000: a takes one probe and nothing more until it answers.
    const picks: string[] = [];
    for (let i = 0; i < 4; i++) {
      const p = f.pick(1_000);
      if (p === undefined) throw new Error('no pick');
      picks.push(p.id);
      f.started(p.id, 1_000);
    }
    expect(picks.filter((id) => id === 'a')).toHaveLength(1);
  });

  it('skips a backend that active checks took down, until they bring it up', () => {
    const f = farm('p2c', { a: 1, b: 1 });
    f.checked('a', false);
    f.checked('a', false);
    expect(counts(f, 20)).toEqual({ b: 20 });
    f.checked('a', true);
    f.checked('a', true);
    expect(Object.keys(counts(f, 50)).sort()).toEqual(['a', 'b']);
  });

  it('never picks an excluded backend, and answers undefined when all are excluded', () => {
    const f = farm('p2c', { a: 1, b: 1, c: 1 });
    for (let i = 0; i < 30; i++) expect(f.pick(0, undefined, new Set(['a', 'b']))?.id).toBe('c');
    expect(f.pick(0, undefined, new Set(['a', 'b', 'c']))).toBeUndefined();
  });

  it('panics when no backend is eligible: breakers first, then checks are ignored', () => {
    const f = farm('p2c', { a: 1, b: 1 });
    for (const id of ['a', 'b']) {
      f.started(id, 0);
      f.ended(id, 'failure', false, 0);
      f.started(id, 0);
      f.ended(id, 'failure', false, 0);
    }
    expect(f.pick(10)).toMatchObject({ panic: true });
    expect(f.panics).toBe(1);
    f.checked('a', false);
    f.checked('a', false);
    for (let i = 0; i < 10; i++) expect(f.pick(10)).toEqual({ id: 'b', panic: true });
    f.checked('b', false);
    f.checked('b', false);
    expect(f.pick(10)).toMatchObject({ panic: true });
    f.remove('a');
    for (let i = 0; i < 10; i++) expect(f.pick(10)).toEqual({ id: 'b', panic: true });
    expect(f.pick(10, undefined, new Set(['b']))).toBeUndefined();
  });
});

describe('Farm: drain', () => {
  it('a removed backend takes no new request and leaves once its last request ends', () => {
    const f = farm('round-robin', { a: 1, b: 1 });
    f.started('a', 0);
    f.started('a', 0);
    f.remove('a');
    expect(counts(f, 4)).toEqual({ b: 4 });
    expect(f.takeDrained()).toEqual([]);
    expect(f.status(0).find((s) => s.id === 'a')).toMatchObject({ draining: true, outstanding: 2 });
    f.ended('a', 'ok', false, 0);
    expect(f.takeDrained()).toEqual([]);
    f.ended('a', 'ok', false, 0);
    expect(f.takeDrained()).toEqual(['a']);
    expect(f.has('a')).toBe(false);
  });

  it('an idle backend leaves at once; one added back while draining is live again', () => {
    const f = farm('round-robin', { a: 1, b: 1 });
    f.remove('b');
    expect(f.takeDrained()).toEqual(['b']);
    f.started('a', 0);
    f.remove('a');
    f.upsert('a', 2);
    expect(f.status(0)).toEqual([expect.objectContaining({ id: 'a', draining: false, weight: 2 })]);
    f.ended('a', 'ok', false, 0);
    expect(f.takeDrained()).toEqual([]);
  });
});
