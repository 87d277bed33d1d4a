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
 * per-process random offset basis) is computed in JavaScript, and the table — each slot's entry
 * number and stored hash side by side in one `Int32Array`, linear probing, at most half full — is probed
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

/**
 * The seed of {@link byteHash} in this thread: the offset basis the map
 * task's byte index hashes with (random per process, so that an input cannot
 * be crafted to collide). A `mapBytes` gets it as `ctx.byteHashSeed`.
 */
export const BYTE_HASH_SEED = SEED;

/**
 * The hash a `mapBytes` may pass with a range it emits (job.ts,
 * `EmitBytes`): 32-bit FNV-1a of the range's bytes from the offset basis
 * `seed` (`ctx.byteHashSeed`), one step per byte:
 * `h = Math.imul(h ^ byte, 0x01000193)`. A scan computes it as it reads the
 * bytes, inline; this function is the definition (and for tests).
 */
export function byteHash(seed: number, bytes: Uint8Array, start: number, end: number): number {
  let h = seed | 0;
  for (let i = start; i < end; i++) h = Math.imul(h ^ (bytes[i] as number), FNV_PRIME);
  return h;
}

/** A hash index of distinct string keys, numbered in insertion order; see the file header. */
export class KeyTable {
  /** The keys, by number (insertion order). */
  readonly keys: string[] = [];
  /**
   * Per slot, side by side so that a probe reads one cache line (two
   * arrays cost two misses per lookup once a table outgrows the cache):
   * the key's number + 1 (0 when empty), then the full hash of the key.
   */
  private slots = new Int32Array(INITIAL_SLOTS * 2);
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
    const mask = this.mask;
    let j = Math.imul(h, FIBONACCI) >>> this.shift;
    for (;;) {
      const e = slots[2 * j] as number;
      if (e === 0) {
        this.freeSlot = j;
        this.freeHash = h;
        return -1;
      }
      if (slots[2 * j + 1] === h && this.keys[e - 1] === key) return e - 1;
      j = (j + 1) & mask;
    }
  }

  /**
   * Adds `key`, which the immediately preceding {@link find} did not find
   * (the table is not otherwise changed in between); returns its number.
   */
  add(key: string): number {
    const j = this.freeSlot;
    assert(j >= 0 && this.slots[2 * j] === 0, 'KeyTable.add without a missed find');
    const e = this.keys.length;
    this.keys.push(key);
    this.slots[2 * j] = e + 1;
    this.slots[2 * j + 1] = this.freeHash;
    this.freeSlot = -1;
    if (2 * (e + 1) > this.mask + 1) this.grow();
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
    for (let j = 0; j <= this.mask; j++) {
      if (this.slots[2 * j] === 0) continue;
      const home = Math.imul(this.slots[2 * j + 1] as number, FIBONACCI) >>> this.shift;
      const d = (j - home) & this.mask;
      if (d > longest) longest = d;
    }
    return longest;
  }

  private grow(): void {
    const old = this.slots;
    const size = (this.mask + 1) * 2;
    const slots = new Int32Array(size * 2);
    const mask = size - 1;
    const shift = this.shift - 1;
    for (let i = 0; i < old.length; i += 2) {
      const e = old[i] as number;
      if (e === 0) continue;
      const h = old[i + 1] as number;
      let j = Math.imul(h, FIBONACCI) >>> shift;
      while (slots[2 * j] !== 0) j = (j + 1) & mask;
      slots[2 * j] = e;
      slots[2 * j + 1] = h;
    }
    this.slots = slots;
    this.mask = mask;
    this.shift = shift;
  }
}

/**
 * An index in front of a {@link KeyTable} for keys given as byte ranges (a
 * job's `mapBytes`, see job.ts): finds the number, in the table, of the key
 * whose UTF-8 bytes are `bytes[start, end)`, hashing the bytes (32-bit FNV-1a
 * from the same random basis) and comparing them in place against a byte
 * arena of the ranges seen, so a key seen before costs no string, no
 * decoding and no allocation. A range seen for the first time is copied into
 * the arena, decoded once (as UTF-8) and interned in the table; byte
 * sequences that decode to the same string (invalid UTF-8 bytes all decode to
 * U+FFFD) get that string's one number. Slots as in {@link KeyTable}: linear
 * probing, Fibonacci home slots, at most half full.
 *
 * ```ts
 * const table = new KeyTable();
 * const index = new ByteKeyIndex(table);
 * const b = Buffer.from('to be or not to be');
 * index.intern(b, 0, 2);   // 0: 'to' added to table
 * index.intern(b, 13, 15); // 0 again, found by its bytes
 * table.keys;              // ['to']
 * ```
 *
 * Word count spent about a third of its map task in the string path's
 * per-word `slice` and string hash; see src/mapreduce/RUNTIME.md.
 */
export class ByteKeyIndex {
  /**
   * The slots, {@link SLOT_INTS} ints each, side by side so that a probe
   * reads one cache line: the key's number in the table + 1 (0: empty), the
   * full hash of its bytes, where they start in the arena, how many.
   */
  private slots = new Int32Array(INITIAL_SLOTS * SLOT_INTS);
  private mask = INITIAL_SLOTS - 1;
  private shift = INITIAL_SHIFT;
  private used = 0;
  /** The bytes of every distinct range, one after the other. */
  private arena = Buffer.allocUnsafe(64 * 1024);
  private arenaBytes = 0;
  /** The table's first `order.length` key numbers, sorted by key (see {@link sortedSubset}). */
  private order = new Int32Array(0);
  /** {@link sortedSubset}'s marks by key number: all 0 between calls. */
  private marks = new Uint8Array(0);

  /** @param table where the keys are numbered (and decoded keys kept). */
  constructor(readonly table: KeyTable) {}

  /** Distinct byte sequences indexed (at least the table's keys). */
  get size(): number {
    return this.used;
  }

  /**
   * Estimated memory held, in bytes: the slots, the arena, and the table's
   * keys (a string and its slots per key, its characters at 2 bytes each).
   */
  get bytes(): number {
    return (
      this.slots.byteLength +
      this.arena.length +
      64 * this.table.size +
      2 * this.arenaBytes +
      this.order.byteLength +
      this.marks.length
    );
  }

  /**
   * `ids` (distinct numbers of keys in this index's table) sorted by key, in
   * JavaScript string order, as {@link sortKeyIds} sorts them. The index
   * keeps every key's rank from call to call: a call sorts only the keys
   * added since the last one (binary-searched into the kept order), then
   * picks `ids` out of the order in one pass. A word count's map task
   * writes ~50k keys it mostly shares with the thread's earlier tasks, so
   * sorting them anew each task (~20 ms in a 32 MiB task's ~240) becomes a
   * pass over the dictionary. When `ids` are few next to the table (less
   * than a sixteenth), they are sorted on their own instead.
   */
  sortedSubset(ids: readonly number[]): Int32Array {
    const keys = this.table.keys;
    const n = keys.length;
    const m = ids.length;
    if (m * 16 < n) {
      const out = Int32Array.from(ids);
      sortKeyIds(keys, out);
      return out;
    }
    const old = this.order;
    const had = old.length;
    if (had < n) {
      const fresh = new Int32Array(n - had);
      for (let i = 0; i < fresh.length; i++) fresh[i] = had + i;
      sortKeyIds(keys, fresh);
      const order = new Int32Array(n);
      let from = 0; // old[0, from) copied
      let to = 0; // order[0, to) filled
      for (let i = 0; i < fresh.length; i++) {
        const g = fresh[i] as number;
        const k = keys[g] as string;
        let lo = from;
        let hi = had;
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          if ((keys[old[mid] as number] as string) < k) lo = mid + 1;
          else hi = mid;
        }
        order.set(old.subarray(from, lo), to);
        to += lo - from;
        from = lo;
        order[to++] = g;
      }
      order.set(old.subarray(from, had), to);
      this.order = order;
    }
    if (this.marks.length < n) this.marks = new Uint8Array(Math.max(n, 2 * this.marks.length));
    const marks = this.marks;
    for (let i = 0; i < m; i++) marks[ids[i] as number] = 1;
    const order = this.order;
    const out = new Int32Array(m);
    let k = 0;
    for (let i = 0; i < n; i++) {
      const g = order[i] as number;
      if (marks[g] === 1) {
        marks[g] = 0;
        out[k++] = g;
      }
    }
    assert(k === m, 'ByteKeyIndex.sortedSubset: ids not distinct numbers of the table');
    return out;
  }

  /**
   * The table's number of the key whose UTF-8 bytes are `bytes[start, end)`
   * (0 <= start <= end <= bytes.length, integers: the caller checks), added
   * to the table if it is new.
   */
  intern(bytes: Uint8Array, start: number, end: number): number {
    let h = SEED;
    for (let i = start; i < end; i++) h = Math.imul(h ^ (bytes[i] as number), FNV_PRIME);
    return this.internHashed(bytes, start, end, h);
  }

  /**
   * {@link intern} with the range's hash computed by the caller (as it
   * scanned the bytes, see {@link byteHash}), so the bytes are not read
   * again to hash them. Returns -1, changing nothing, if `hash` is not the
   * range's hash: a hash is checked whenever it is not found with equal
   * bytes (the hash of every indexed range was checked when it was added),
   * so a wrong one never adds a key and never finds one (nor does a
   * `hash` that is not a number: it equals no stored hash).
   */
  internHashed(bytes: Uint8Array, start: number, end: number, hash: number): number {
    // The probe of {@link probe}, written out: this is the per-word path of a
    // word count, and V8 inlines one call into the job's scan more surely
    // than two (its budget is spent on the callees it sees most).
    const len = end - start;
    const slots = this.slots;
    const mask = this.mask;
    let j = Math.imul(hash, FIBONACCI) >>> this.shift;
    for (;;) {
      const at = j * SLOT_INTS;
      const e = slots[at] as number;
      if (e === 0) return this.insertNew(bytes, start, end, hash, j);
      if (slots[at + 1] === hash && slots[at + 3] === len) {
        const arena = this.arena;
        let s = slots[at + 2] as number;
        let k = start;
        while (k < end && arena[s] === bytes[k]) {
          s++;
          k++;
        }
        if (k === end) return e - 1;
      }
      j = (j + 1) & mask;
    }
  }

  /**
   * {@link internHashed}'s miss, all of it here: returns -1, changing
   * nothing, if `hash` is not the hash of `bytes[start, end)`; else copies
   * the range into the arena, decodes it and interns it in the table, fills
   * free slot `j` and doubles the slots once more than half are used.
   *
   * One function on purpose: at more than V8's limit for inlining (460
   * bytecode bytes) it is never inlined into internHashed, whose optimised
   * code then stays small enough to be inlined into a job's scan. V8 counts
   * a callee's own inlined code against the caller's budget, and inserts
   * are frequent in a thread's first tasks: with the miss inlined,
   * internHashed was too big to inline and a word count's scan made a call
   * per word in some threads and not in others (~10 % of a map task).
   */
  private insertNew(
    bytes: Uint8Array,
    start: number,
    end: number,
    hash: number,
    j: number,
  ): number {
    let h = SEED;
    for (let i = start; i < end; i++) h = Math.imul(h ^ (bytes[i] as number), FNV_PRIME);
    if (h !== hash) return -1;
    const len = end - start;
    if (this.arenaBytes + len > this.arena.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.arena.length * 2, this.arenaBytes + len));
      this.arena.copy(bigger, 0, 0, this.arenaBytes);
      this.arena = bigger;
    }
    const from = this.arenaBytes;
    const arena = this.arena;
    let ascii = true;
    for (let i = 0; i < len; i++) {
      const c = bytes[start + i] as number;
      arena[from + i] = c;
      if (c >= 0x80) ascii = false;
    }
    this.arenaBytes += len;
    // ASCII decodes byte for byte (latin1, the fast way); anything else as UTF-8.
    const e = this.table.intern(arena.toString(ascii ? 'latin1' : 'utf8', from, from + len));
    const at = j * SLOT_INTS;
    this.slots[at] = e + 1;
    this.slots[at + 1] = h;
    this.slots[at + 2] = from;
    this.slots[at + 3] = len;
    this.used++;
    if (2 * this.used > this.mask + 1) {
      // Double the slots, each entry to its home slot in the new size.
      const old = this.slots;
      const size = (this.mask + 1) * 2;
      const slots = new Int32Array(size * SLOT_INTS);
      const mask = size - 1;
      const shift = this.shift - 1;
      for (let i = 0; i < old.length; i += SLOT_INTS) {
        if (old[i] === 0) continue;
        let k = Math.imul(old[i + 1] as number, FIBONACCI) >>> shift;
        while (slots[k * SLOT_INTS] !== 0) k = (k + 1) & mask;
        const to = k * SLOT_INTS;
        slots[to] = old[i] as number;
        slots[to + 1] = old[i + 1] as number;
        slots[to + 2] = old[i + 2] as number;
        slots[to + 3] = old[i + 3] as number;
      }
      this.slots = slots;
      this.mask = mask;
      this.shift = shift;
    }
    return e;
  }
}

/** Ints per slot of a {@link ByteKeyIndex}: number + 1, hash, arena start, length. */
const SLOT_INTS = 4;

/** Code units of a key packed into {@link sortKeys}'s numeric prefix (7 bits each). */
const PREFIX_CHARS = 5;
/** Keys {@link sortKeys} sorts by packed prefixes: the index takes the low 18 bits (35 + 18 = 53). */
const PREFIX_SORT_KEYS_MAX = 1 << 18;
/** Keys sharing a prefix sorted by insertion; a longer run of them is sorted natively. */
const INSERTION_RUN_MAX = 16;

/**
 * Sorts `keys` in place in JavaScript string order (UTF-16 code units), as
 * `keys.sort()` does, faster for the keys a map task writes (words, ids);
 * see {@link sortKeyIds}.
 */
export function sortKeys(keys: string[]): void {
  const ids = new Int32Array(keys.length);
  for (let i = 0; i < ids.length; i++) ids[i] = i;
  sortKeyIds(keys, ids);
  const sorted = Array.from(ids, (e) => keys[e] as string);
  for (let i = 0; i < sorted.length; i++) keys[i] = sorted[i] as string;
}

/** JavaScript string order of two keys, by number. */
function byKey(keys: readonly string[]): (a: number, b: number) => number {
  return (a, b) => {
    const x = keys[a] as string;
    const y = keys[b] as string;
    return x < y ? -1 : x > y ? 1 : 0;
  };
}

/**
 * Sorts `ids`, numbers of keys in `keys`, in place by their keys in
 * JavaScript string order (UTF-16 code units, as `Array.prototype.sort`),
 * faster for the keys a map task writes (words, ids): when every key is
 * ASCII, each key's first {@link PREFIX_CHARS} code units and its position
 * are packed into one double, the doubles sorted natively (a numeric sort,
 * no comparator call), and keys with equal prefixes put in order by a full
 * comparison. A task's ~25k distinct words per partition sorted in ~2.6 ms
 * against ~10 ms for `keys.sort()`. Any other keys, or more than 2^18 of
 * them, are sorted with a comparator. Sorting numbers, not the keys, lets
 * the caller go from a key to its values without looking the key up again.
 */
export function sortKeyIds(keys: readonly string[], ids: Int32Array): void {
  const n = ids.length;
  if (n < 2) return;
  if (n > PREFIX_SORT_KEYS_MAX) {
    ids.sort(byKey(keys));
    return;
  }
  const packed = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const k = keys[ids[i] as number] as string;
    let p = 0;
    for (let j = 0; j < PREFIX_CHARS; j++) {
      const c = j < k.length ? k.charCodeAt(j) : 0;
      if (c >= 0x80) {
        ids.sort(byKey(keys));
        return;
      }
      p = p * 0x80 + c;
    }
    packed[i] = p * PREFIX_SORT_KEYS_MAX + i;
  }
  packed.sort();
  const sorted = new Int32Array(n);
  for (let i = 0; i < n; i++)
    sorted[i] = ids[(packed[i] as number) % PREFIX_SORT_KEYS_MAX] as number;
  // Runs of keys with equal prefixes, in position order so far: order them by the whole key.
  let i = 0;
  while (i < n) {
    const p = Math.floor((packed[i] as number) / PREFIX_SORT_KEYS_MAX);
    let j = i + 1;
    while (j < n && Math.floor((packed[j] as number) / PREFIX_SORT_KEYS_MAX) === p) j++;
    if (j - i > INSERTION_RUN_MAX) {
      sorted.subarray(i, j).sort(byKey(keys));
    } else {
      for (let a = i + 1; a < j; a++) {
        const x = sorted[a] as number;
        const kx = keys[x] as string;
        let b = a - 1;
        while (b >= i && (keys[sorted[b] as number] as string) > kx) {
          sorted[b + 1] = sorted[b] as number;
          b--;
        }
        sorted[b + 1] = x;
      }
    }
    i = j;
  }
  ids.set(sorted);
}
