/**
 * The map task's buffer index: distinct string keys numbered 0, 1, 2, ... in
 * the order they were first added, found again by an open-addressing hash
 * table. The map task keeps each key's buffered value (a folded value, or a
 * list) in an array at the key's number.
 *
 * ```ts
 * const t = new KeyTable();
 * const values: number[] = [];
 * for (const w of ['a', 'b', 'a']) {
 *   const e = t.find(w);              // the key's number, or -1
 *   if (e < 0) values[t.add(w)] = 1;  // add() right after a find() that missed
 *   else values[e] += 1;
 * }
 * t.size;  // 2; t.keys = ['a', 'b']; values = [2, 1]
 * ```
 *
 * Why not a `Map`: a word count's map task looks a key up for every word it
 * emits (millions per split) and `Map.prototype.get` on a freshly sliced
 * string cost about 95 ns per word in profiles, most of the map task. Here
 * the hash (32-bit FNV-1a over the key's UTF-16 code units from a
 * per-process random offset basis) is computed in JavaScript, and the table — the slots' stored hashes and entry
 * numbers in two `Int32Array`s, linear probing, at most half full — is probed
 * with no allocation; a key is compared (`===`) only when its full stored
 * hash matches. About 55 ns per word.
 *
 * The random offset basis keeps a crafted input from making many keys
 * collide on purpose (probing would then grow linear in the keys). A key's
 * home slot is the top bits of its hash times 2^32/φ (Fibonacci hashing,
 * Knuth TAOCP vol. 3 §6.4), which depend on every bit of the hash: FNV's low
 * bits depend only on the code units' low bits, so keys that differ only in
 * their code units' high bits would share a slot taken from the low bits,
 * whatever the basis. The numbering, which is all the map task depends on, does not
 * depend on the hash.
 */
import { assert } from '../lib/assert.js';

const FNV_PRIME = 0x01000193;
/** 2^32 / φ, odd: the multiplier of Fibonacci hashing. */
const FIBONACCI = 0x9e3779b9 | 0;
const INITIAL_SLOTS = 1024;
const INITIAL_SHIFT = 32 - 10; // log2(INITIAL_SLOTS) = 10

/** A per-process random FNV offset basis (see the file header). */
const SEED = (Math.random() * 0x100000000) | 0;

/** A hash index of distinct string keys, numbered in insertion order; see the file header. */
export class KeyTable {
  /** The keys, by number (insertion order). */
  readonly keys: string[] = [];
  /** Per slot: the key's number + 1, or 0 when empty. */
  private slots = new Int32Array(INITIAL_SLOTS);
  /** Per slot: the full hash of the key there. */
  private hashes = new Int32Array(INITIAL_SLOTS);
  private mask = INITIAL_SLOTS - 1;
  /** 32 - log2(slots): a home slot is the top bits of hash × FIBONACCI. */
  private shift = INITIAL_SHIFT;
  /** The slot where the last missed find() stopped, and the key's hash there. */
  private freeSlot = -1;
  private freeHash = 0;

  /** Number of keys. */
  get size(): number {
    return this.keys.length;
  }

  /** The number of `key`, or -1 if it is not in the table (then {@link add} may follow). */
  find(key: string): number {
    let h = SEED;
    const n = key.length;
    for (let i = 0; i < n; i++) h = Math.imul(h ^ key.charCodeAt(i), FNV_PRIME);
    const slots = this.slots;
    const hashes = this.hashes;
    const mask = this.mask;
    let j = Math.imul(h, FIBONACCI) >>> this.shift;
    for (;;) {
      const e = slots[j] as number;
      if (e === 0) {
        this.freeSlot = j;
        this.freeHash = h;
        return -1;
      }
      if (hashes[j] === h && this.keys[e - 1] === key) return e - 1;
      j = (j + 1) & mask;
    }
  }

  /**
   * Adds `key`, which the immediately preceding {@link find} did not find
   * (the table is not otherwise changed in between); returns its number.
   */
  add(key: string): number {
    const j = this.freeSlot;
    assert(j >= 0 && this.slots[j] === 0, 'KeyTable.add without a missed find');
    const e = this.keys.length;
    this.keys.push(key);
    this.slots[j] = e + 1;
    this.hashes[j] = this.freeHash;
    this.freeSlot = -1;
    if (2 * (e + 1) > this.slots.length) this.grow();
    return e;
  }

  /** Finds `key`, adding it if missing; returns its number. */
  intern(key: string): number {
    const e = this.find(key);
    return e >= 0 ? e : this.add(key);
  }

  /**
   * The longest distance, in slots, from a key's home slot to where it sits:
   * a lookup's worst probe length (for tests of the hash's spread).
   */
  longestProbe(): number {
    let longest = 0;
    for (let j = 0; j < this.slots.length; j++) {
      if (this.slots[j] === 0) continue;
      const home = Math.imul(this.hashes[j] as number, FIBONACCI) >>> this.shift;
      const d = (j - home) & this.mask;
      if (d > longest) longest = d;
    }
    return longest;
  }

  private grow(): void {
    const oldSlots = this.slots;
    const oldHashes = this.hashes;
    const size = oldSlots.length * 2;
    const slots = new Int32Array(size);
    const hashes = new Int32Array(size);
    const mask = size - 1;
    const shift = this.shift - 1;
    for (let i = 0; i < oldSlots.length; i++) {
      const e = oldSlots[i] as number;
      if (e === 0) continue;
      const h = oldHashes[i] as number;
      let j = Math.imul(h, FIBONACCI) >>> shift;
      while (slots[j] !== 0) j = (j + 1) & mask;
      slots[j] = e;
      hashes[j] = h;
    }
    this.slots = slots;
    this.hashes = hashes;
    this.mask = mask;
    this.shift = shift;
  }
}
