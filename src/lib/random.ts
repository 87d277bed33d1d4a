/**
 * Seeded, deterministic randomness. Every core and the simulator take a
 * {@link Random}; nothing in cohort's protocol code calls `Math.random`, so a
 * simulation replays exactly from its seed.
 *
 * ```ts
 * const rng = seededRandom(42);
 * const raftRng = rng.fork('raft');     // an independent stream per subsystem
 * const timeout = raftRng.intBetween(10, 20);
 * ```
 */
import { assert } from './assert.js';

/** A source of pseudo-random numbers. Deterministic for a given seed. */
export interface Random {
  /** The seed this stream started from (for replay messages). */
  readonly seed: number;
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [0, maxExclusive). */
  int(maxExclusive: number): number;
  /** An integer in [min, max], both inclusive. */
  intBetween(min: number, max: number): number;
  /** True with probability `p`. */
  chance(p: number): boolean;
  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T;
  /** A shuffled copy of `items` (Fisher–Yates). */
  shuffle<T>(items: readonly T[]): T[];
  /** A 32-bit unsigned integer. */
  uint32(): number;
  /**
   * An independent stream derived from this one and `label`. Forking does not
   * depend on how many numbers this stream has produced, so adding draws in one
   * subsystem never perturbs another's.
   */
  fork(label: string): Random;
}

/** 32-bit FNV-1a hash of a string; used to derive fork seeds from labels. */
export function hashString32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** SplitMix32 finaliser: scrambles a 32-bit value (used to expand seeds). */
function mix32(x: number): number {
  let z = (x + 0x9e3779b9) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * sfc32 (Chris Doty-Humphrey's Small Fast Counting generator): 128 bits of
 * state, passes PractRand to large sizes, and is cheap in JavaScript's 32-bit
 * integer arithmetic.
 */
class Sfc32 implements Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(readonly seed: number) {
    assert(Number.isInteger(seed), `seed must be an integer, got ${seed}`);
    const s = seed >>> 0;
    const hi = Math.floor(seed / 2 ** 32) >>> 0;
    this.a = mix32(s);
    this.b = mix32(s ^ 0x6a09e667);
    this.c = mix32(hi ^ 0xbb67ae85);
    this.d = 1;
    for (let i = 0; i < 12; i++) this.uint32();
  }

  uint32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  next(): number {
    return this.uint32() / 4294967296;
  }

  int(maxExclusive: number): number {
    assert(
      Number.isInteger(maxExclusive) && maxExclusive > 0,
      `int() needs a positive bound, got ${maxExclusive}`,
    );
    return Math.floor(this.next() * maxExclusive);
  }

  intBetween(min: number, max: number): number {
    assert(min <= max, `intBetween(${min}, ${max})`);
    return min + this.int(max - min + 1);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    assert(items.length > 0, 'pick() from an empty array');
    return items[this.int(items.length)] as T;
  }

  shuffle<T>(items: readonly T[]): T[] {
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = out[i] as T;
      out[i] = out[j] as T;
      out[j] = tmp;
    }
    return out;
  }

  fork(label: string): Random {
    const h = hashString32(label);
    const lo = mix32((this.seed >>> 0) ^ h);
    const hi = (mix32((Math.floor(this.seed / 2 ** 32) >>> 0) ^ mix32(h)) & 0xfffff) >>> 0;
    return new Sfc32(hi * 2 ** 32 + lo);
  }
}

/** A deterministic {@link Random} starting from `seed` (any safe integer). */
export function seededRandom(seed: number): Random {
  return new Sfc32(seed);
}
