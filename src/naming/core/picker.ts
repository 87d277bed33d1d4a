/**
 * Which instance a name-based client sends the next call to. Pure: the
 * outstanding-call counts and the randomness are passed in.
 *
 * ```ts
 * const picker = new InstancePicker('p2c', random);
 * const id = picker.pick(['a', 'b', 'c'], (id) => outstanding.get(id) ?? 0, (id) => weight(id));
 * ```
 *
 * - `p2c` (default), power of two choices (Mitzenmacher 2001): two distinct
 *   candidates drawn at random, the one with fewer outstanding calls per
 *   unit of weight wins (ties: the first drawn). Spreads load almost as well
 *   as "least loaded" without a global view, and never herds every client
 *   onto the one instance that just looked idle.
 * - `round-robin`: the candidates in turn (by position in the sorted list).
 */
import type { Random } from '../../lib/random.js';

/** The balancing rules. */
export const pickRules = ['p2c', 'round-robin'] as const;

/** A balancing rule. */
export type PickRule = (typeof pickRules)[number];

/** Picks among candidates (see the file comment). */
export class InstancePicker {
  private turn = 0;

  constructor(
    readonly rule: PickRule,
    private readonly random: Random,
  ) {}

  /** One of `candidates` (ids, non-empty, in a stable order), or undefined if there are none. */
  pick(
    candidates: readonly string[],
    outstanding: (id: string) => number,
    weight: (id: string) => number = () => 1,
  ): string | undefined {
    const n = candidates.length;
    if (n === 0) return undefined;
    if (n === 1) return candidates[0];
    if (this.rule === 'round-robin') {
      const id = candidates[this.turn % n];
      this.turn = (this.turn + 1) % Number.MAX_SAFE_INTEGER;
      return id;
    }
    const i = this.random.int(n);
    let j = this.random.int(n - 1);
    if (j >= i) j++;
    const a = candidates[i] as string;
    const b = candidates[j] as string;
    const load = (id: string): number => outstanding(id) / Math.max(1, weight(id));
    return load(b) < load(a) ? b : a;
  }
}
