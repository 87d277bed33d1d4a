/**
 * A map task's buffer index for string keys emitted by `map` (tasks.ts):
 * distinct keys numbered 0, 1, 2, ... in the order they were first added,
 * found again by an open-addressing hash table, as key-table.ts's
 * {@link import('./key-table.js').KeyTable} (same interface, same
 * numbering), with short keys kept in their slots.
 *
 * ```ts
 * const t = new PackedKeyTable();
 * const e = t.find('apple');          // the key's number, or -1
 * if (e < 0) t.add('apple');          // add() right after a find() that missed
 * t.keys;                             // ['apple']
 * ```
 *
 * Why: a postings map task looks a key up for every word of every
 * document (~1M lookups per 8 MiB split, ~56k distinct words), and in its
 * profile half the lookup was the line that confirms a hash match
 * (`keys[e] === key`): a load from the keys array and one from the stored
 * string, each a cache miss once the table outgrows the cache, then a
 * string comparison. Here a key of at most {@link INLINE_CHARS} ASCII
 * characters is packed, 7 bits a character, with its length, into two ints
 * of its slot, next to its number and hash (one cache line): a hash match
 * is confirmed by comparing the two ints with the looked-up key's, packed
 * as it is hashed. Longer keys, and keys with other characters, are
 * compared as strings, as in KeyTable.
 *
 * Hash and slots as in KeyTable: 32-bit FNV-1a over the UTF-16 code units
 * from a per-process random basis, the home slot the top bits of the hash
 * times 2^32/φ (Fibonacci hashing, Knuth TAOCP vol. 3 §6.4), linear
 * probing, at most half full.
 */
import { assert } from '../lib/assert.js';

const FNV_PRIME = 0x01000193;
/** 2^32 / φ, odd: the multiplier of Fibonacci hashing. */
const FIBONACCI = 0x9e3779b9 | 0;
const INITIAL_SLOTS = 1024;
const INITIAL_SHIFT = 32 - 10; // log2(INITIAL_SLOTS) = 10
/** Ints per slot: number + 1 (0: empty), hash, packed key (2 ints: 0, 0 when not packed). */
const SLOT_INTS = 4;

/** Keys of at most this many ASCII characters are packed into their slot (7 bits each, 4 per int). */
export const INLINE_CHARS = 8;

/** A per-process random FNV offset basis: a crafted input cannot make keys collide on purpose. */
const SEED = (Math.random() * 0x100000000) | 0;

/** See the file comment. */
export class PackedKeyTable {
  /** The keys, by number (insertion order). */
  readonly keys: string[] = [];
  /**
   * {@link SLOT_INTS} ints per slot, side by side so that a probe and the
   * check of a packed key read one cache line: the key's number + 1 (0 when
   * empty), its full hash, and its packed form (see {@link pack}) or 0, 0.
   */
  private slots = new Int32Array(INITIAL_SLOTS * SLOT_INTS);
  private mask = INITIAL_SLOTS - 1;
  /** 32 - log2(slots): a home slot is the top bits of hash × FIBONACCI. */
  private shift = INITIAL_SHIFT;
  /** The slot where the last missed find() stopped, and the key's hash and packed form there. */
  private freeSlot = -1;
  private freeHash = 0;
  private freeLow = 0;
  private freeHigh = 0;

  /** `seed`: the FNV offset basis (a test hook: a chosen one makes chosen keys collide). */
  constructor(private readonly seed = SEED) {}

  /** Number of keys. */
  get size(): number {
    return this.keys.length;
  }

  /** The number of `key`, or -1 if it is not in the table (then {@link add} may follow). */
  find(key: string): number {
    const n = key.length;
    let h = this.seed;
    // The packed form (low: length + 1 in bits 28-31, characters 0-3; high:
    // characters 4-7), or 0, 0 when the key is too long or not ASCII.
    let low = 0;
    let high = 0;
    if (n <= INLINE_CHARS) {
      let or = 0;
      for (let i = 0; i < n; i++) {
        const c = key.charCodeAt(i);
        h = Math.imul(h ^ c, FNV_PRIME);
        or |= c;
        if (i < 4) low |= c << (7 * i);
        else high |= c << (7 * (i - 4));
      }
      if (or < 0x80) low |= (n + 1) << 28;
      else low = high = 0;
    } else {
      for (let i = 0; i < n; i++) h = Math.imul(h ^ key.charCodeAt(i), FNV_PRIME);
    }
    const slots = this.slots;
    const mask = this.mask;
    let j = Math.imul(h, FIBONACCI) >>> this.shift;
    for (;;) {
      const s = SLOT_INTS * j;
      const e = slots[s] as number;
      if (e === 0) {
        this.freeSlot = j;
        this.freeHash = h;
        this.freeLow = low;
        this.freeHigh = high;
        return -1;
      }
      // Equal keys have equal packed forms (both packed, or both 0, 0).
      if (slots[s + 1] === h && slots[s + 2] === low && slots[s + 3] === high) {
        if (low !== 0 || this.keys[e - 1] === key) return e - 1;
      }
      j = (j + 1) & mask;
    }
  }

  /**
   * Adds `key`, which the immediately preceding {@link find} (of this key)
   * did not find (the table is not otherwise changed in between); returns
   * its number.
   */
  add(key: string): number {
    const j = this.freeSlot;
    assert(j >= 0 && this.slots[SLOT_INTS * j] === 0, 'PackedKeyTable.add without a missed find');
    const e = this.keys.length;
    this.keys.push(key);
    const s = SLOT_INTS * j;
    this.slots[s] = e + 1;
    this.slots[s + 1] = this.freeHash;
    this.slots[s + 2] = this.freeLow;
    this.slots[s + 3] = this.freeHigh;
    this.freeSlot = -1;
    if (2 * (e + 1) > this.mask + 1) this.grow();
    return e;
  }

  /** Finds `key`, adding it if missing; returns its number. */
  intern(key: string): number {
    const e = this.find(key);
    return e >= 0 ? e : this.add(key);
  }

  /** The longest distance, in slots, from a key's home slot to where it sits (tests). */
  longestProbe(): number {
    let longest = 0;
    for (let j = 0; j <= this.mask; j++) {
      if (this.slots[SLOT_INTS * j] === 0) continue;
      const home = Math.imul(this.slots[SLOT_INTS * j + 1] as number, FIBONACCI) >>> this.shift;
      const d = (j - home) & this.mask;
      if (d > longest) longest = d;
    }
    return longest;
  }

  private grow(): void {
    const old = this.slots;
    const size = (this.mask + 1) * 2;
    const slots = new Int32Array(size * SLOT_INTS);
    const mask = size - 1;
    const shift = this.shift - 1;
    for (let i = 0; i < old.length; i += SLOT_INTS) {
      if (old[i] === 0) continue;
      let j = Math.imul(old[i + 1] as number, FIBONACCI) >>> shift;
      while (slots[SLOT_INTS * j] !== 0) j = (j + 1) & mask;
      const s = SLOT_INTS * j;
      slots[s] = old[i] as number;
      slots[s + 1] = old[i + 1] as number;
      slots[s + 2] = old[i + 2] as number;
      slots[s + 3] = old[i + 3] as number;
    }
    this.slots = slots;
    this.mask = mask;
    this.shift = shift;
  }
}
