/**
 * A map task's buffered values, encoded as they are emitted: each value's
 * MessagePack bytes are appended to one growing buffer, and each key keeps a
 * chain of its values (their starts, linked in emit order). Used when a job
 * has no combiner, so every value must travel to the reducer as it is.
 *
 * ```ts
 * const arena = new ValueArena();
 * arena.add(e, ['o', 'o17', '12']);      // e: the key's number (KeyTable)
 * arena.count(e); arena.bytesOf(e);       // values and encoded bytes of key e
 * for (let v = arena.first(e); v >= 0; v = arena.next(v)) arena.copyValue(v, block);
 * arena.copyValues(arena.first(e), arena.count(e), block); // the same, at once when it can
 * arena.release();                        // written: its buffers go to the thread's next arena
 * ```
 *
 * Why: a map task holds what it emits until it writes its runs. Kept as
 * objects (a list per key, an array or string per value), every one of them
 * outlives the young generation and is copied by each scavenge and then
 * marked in old space: in a join, GC was the largest cost of the map task.
 * Encoded at once, a value is garbage as soon as `emit` returns, and the
 * buffer's size is its exact memory (the spill bound counts it). Values are
 * encoded once, by hand as run-block.ts writes them (msgpackr for the rest).
 *
 * A key's values are found by their key numbers, not a linked list: while
 * each key's values are consecutive (values added key by key) and after
 * {@link ValueArena.compact}, a value's successor is the next value if it
 * has the same key; otherwise the successors are linked in one pass when
 * first asked for.
 */
import { Packr } from 'msgpackr';
import { assert } from '../lib/assert.js';
import { limits } from '../lib/limits.js';
import { BlockDecoder, BlockEncoder } from './run-block.js';

const packr = new Packr({ useRecords: false, variableMapSize: true });

const INITIAL_BYTES = 1 << 20;
const INITIAL_VALUES = 1 << 14;

function grownInt32(a: Int32Array<ArrayBuffer>, need: number): Int32Array<ArrayBuffer> {
  if (need <= a.length) return a;
  const b = new Int32Array(Math.max(need, a.length * 2));
  b.set(a);
  return b;
}

/**
 * A released arena's buffers, kept for the thread's next arena (see
 * {@link ValueArena.release}): a 32 MiB postings map task grew ~100 MB of
 * them anew (the values, their index, compact's copies of both), each
 * growth a copy and each fresh page a fault. At most
 * `limits.mrValueArenaKeptBytesMax` bytes of them are kept.
 */
interface KeptBuffers {
  store: BlockEncoder | undefined;
  index: Int32Array<ArrayBuffer> | undefined;
  out: Buffer | undefined;
  outIndex: Int32Array<ArrayBuffer> | undefined;
}

const kept: KeptBuffers = {
  store: undefined,
  index: undefined,
  out: undefined,
  outIndex: undefined,
};

/** Takes the kept buffer `which` if there is one and it holds `bytes` at least. */
function takeKept<K extends keyof KeptBuffers>(which: K, bytes: number): KeptBuffers[K] {
  const b = kept[which];
  if (b === undefined) return undefined;
  const size = b instanceof BlockEncoder ? b.capacity : b.byteLength;
  if (size < bytes) return undefined;
  kept[which] = undefined;
  return b;
}

/** Bytes of arena buffers the thread keeps for its next arena (also for tests, diagnostics). */
export function keptArenaBytes(): number {
  return (
    (kept.store?.capacity ?? 0) +
    (kept.index?.byteLength ?? 0) +
    (kept.out?.byteLength ?? 0) +
    (kept.outIndex?.byteLength ?? 0)
  );
}

/** Lets go of the arena buffers the thread keeps (an idle thread's memory); returns their bytes. */
export function dropKeptArenaBuffers(): number {
  const bytes = keptArenaBytes();
  kept.store = undefined;
  kept.index = undefined;
  kept.out = undefined;
  kept.outIndex = undefined;
  return bytes;
}

/** Encoded values by key (see the file comment). */
export class ValueArena {
  /** The encoded values, back to back (a BlockEncoder as a growable buffer: no records). */
  private store: BlockEncoder;
  /**
   * Per value `v`, side by side (one cache line for both where compact()
   * writes them in random order): at `2v` its start in the buffer (its end
   * is the next value's start, or the buffer's end), at `2v + 1` its key.
   * Only the entries of values added are ever read (a kept one's old
   * contents are not cleared).
   */
  private index: Int32Array<ArrayBuffer>;
  /** Compact's copy of the values ({@link laidOut} is a view of it). */
  private out: Buffer | undefined;
  /** The index in emit order, once compact has made {@link index} the laid-out one. */
  private emitIndex: Int32Array<ArrayBuffer> | undefined;
  /** Released: its buffers may be another arena's now. */
  private released = false;

  /**
   * Whether some key's values are not consecutive (a value was added to a
   * key other than the last value's, which already had values). Until then,
   * and once {@link compact} has laid them out, each key's values are
   * consecutive: value `v`'s successor is `v + 1` if it has the same key.
   */
  private scattered = false;
  /** The key of the last value added. */
  private lastKey = -1;
  /** Per value: the next value of the same key, or -1 (built when asked while scattered). */
  private nexts: Int32Array | undefined;
  /** The values' bytes once {@link compact} laid them out key by key (no more adds then). */
  private laidOut: Buffer | undefined;
  private values = 0;
  /** Per key: its first value. */
  private heads = new Int32Array(1024);
  /**
   * Per key `e`, side by side (one cache line for both, which every add
   * touches): at `2e` its number of values, at `2e + 1` their encoded bytes
   * (offsets in the buffer are 32-bit too).
   */
  private tallies = new Int32Array(2 * 1024);
  /** Decodes values for {@link decodeValues} (made when first needed: the buffer no longer grows then). */
  private reader: BlockDecoder | undefined;

  /** An empty arena, on the buffers the last released one left if any (see {@link release}). */
  constructor() {
    const store = takeKept('store', 0);
    if (store !== undefined) store.reset();
    this.store = store ?? new BlockEncoder(INITIAL_BYTES);
    this.index = takeKept('index', 0) ?? new Int32Array(2 * INITIAL_VALUES);
  }

  /** Bytes held: the encoded values plus the per-value and per-key indexes. */
  get bytes(): number {
    return this.store.bytes + 4 * this.index.length + 12 * this.heads.length;
  }

  /** Values held. */
  get size(): number {
    return this.values;
  }

  /**
   * Appends `value` to key `e`'s values (e: 0, 1, 2, ... as keys are first
   * seen). Per value only sequential writes (its start and key) and the
   * key's counters: no chain is linked here (a postings map task spent a
   * tenth of its time linking one; see {@link next}).
   */
  add(e: number, value: unknown): void {
    assert(this.laidOut === undefined && !this.released, 'ValueArena.add after compact or release');
    this.reader = undefined;
    this.nexts = undefined;
    const store = this.store;
    const p = store.bytes;
    if (!store.appendValue(value)) store.appendRaw(packr.pack(value));
    const n = store.bytes - p;
    const v = this.values++;
    if (2 * v + 2 > this.index.length) this.index = grownInt32(this.index, 2 * v + 2);
    this.index[2 * v] = p;
    this.index[2 * v + 1] = e;
    if (e >= this.heads.length) this.growKeys(e + 1);
    const tallies = this.tallies;
    const c = tallies[2 * e] as number;
    if (c === 0) this.heads[e] = v;
    else if (e !== this.lastKey) this.scattered = true;
    this.lastKey = e;
    tallies[2 * e] = c + 1;
    tallies[2 * e + 1] = (tallies[2 * e + 1] as number) + n;
  }

  private growKeys(need: number): void {
    const size = Math.max(need, this.heads.length * 2);
    this.heads = grownInt32(this.heads, size);
    this.tallies = grownInt32(this.tallies, 2 * size);
  }

  /** Values of key `e`. */
  count(e: number): number {
    return e < this.heads.length ? (this.tallies[2 * e] as number) : 0;
  }

  /** Encoded bytes of key `e`'s values. */
  bytesOf(e: number): number {
    return e < this.heads.length ? (this.tallies[2 * e + 1] as number) : 0;
  }

  /** Key `e`'s first value, or -1. */
  first(e: number): number {
    return this.count(e) === 0 ? -1 : (this.heads[e] as number);
  }

  /** The value after `v` of the same key, or -1. */
  next(v: number): number {
    if (!this.scattered) {
      const u = v + 1;
      return u < this.values && this.index[2 * u + 1] === this.index[2 * v + 1] ? u : -1;
    }
    return this.chains()[v] as number;
  }

  /** Each value's successor of the same key, linked in one pass (values added since unlink it). */
  private chains(): Int32Array {
    if (this.nexts !== undefined) return this.nexts;
    const n = this.values;
    const nexts = new Int32Array(Math.max(1, n));
    const tails = new Int32Array(this.heads.length).fill(-1);
    const index = this.index;
    for (let v = 0; v < n; v++) {
      const e = index[2 * v + 1] as number;
      const t = tails[e] as number;
      if (t >= 0) nexts[t] = v;
      tails[e] = v;
      nexts[v] = -1;
    }
    this.nexts = nexts;
    return nexts;
  }

  /** Start and end (exclusive) of value `v`'s bytes. */
  private end(v: number): number {
    if (v + 1 < this.values) return this.index[2 * v + 2] as number;
    return this.laidOut === undefined ? this.store.bytes : this.laidOut.length;
  }

  /** Encoded bytes of value `v`. */
  valueBytes(v: number): number {
    return this.end(v) - (this.index[2 * v] as number);
  }

  /** Appends value `v`'s bytes to the record `enc` is writing. */
  copyValue(v: number, enc: BlockEncoder): void {
    const s = this.index[2 * v] as number;
    enc.appendBytes(this.data(), s, this.end(v));
  }

  /**
   * Appends the bytes of `n` values of one key, from value `v` on in its
   * order, to the record `enc` is writing; returns the value after them (or
   * -1). While each key's values are consecutive (see {@link scattered}),
   * and always after {@link compact}, one copy.
   */
  copyValues(v: number, n: number, enc: BlockEncoder): number {
    if (n === 0) return v;
    if (!this.scattered) {
      const last = v + n - 1;
      enc.appendBytes(this.data(), this.index[2 * v] as number, this.end(last));
      return this.next(last);
    }
    for (let i = 0; i < n; i++) {
      this.copyValue(v, enc);
      v = this.next(v);
    }
    return v;
  }

  /**
   * Key `e`'s values, decoded, appended to `out` (a combiner's input; by
   * hand as run blocks are decoded, msgpackr for the rest).
   */
  decodeValues(e: number, out: unknown[]): unknown[] {
    const dec = (this.reader ??= new BlockDecoder(this.data(), true));
    for (let v = this.first(e); v >= 0; v = this.next(v)) {
      out.push(dec.valueAt(this.index[2 * v] as number, this.end(v)));
    }
    return out;
  }

  private data(): Buffer {
    assert(!this.released, 'ValueArena used after release');
    return this.laidOut ?? this.store.buffer;
  }

  /**
   * Lays the values out again key by key, the keys in `order` (each key
   * with values exactly once), each key's values in emit order: then a
   * key's values are consecutive bytes, copied to a run at once. Without
   * it, writing the runs followed each key's values across the whole
   * buffer, a cache miss or more per value (a postings map task spent a
   * quarter of its time there). One pass over the values in emit order,
   * which reads sequentially and writes to as many places as there are
   * keys. No value is added afterwards.
   */
  compact(order: ArrayLike<number>): void {
    assert(this.laidOut === undefined, 'ValueArena.compact twice');
    const n = this.values;
    // Per key, side by side: where its next byte goes, its next value's new number.
    const cursor = new Int32Array(2 * this.heads.length);
    let bytes = 0;
    let slots = 0;
    for (let i = 0; i < order.length; i++) {
      const e = order[i] as number;
      cursor[2 * e] = bytes;
      cursor[2 * e + 1] = slots;
      this.heads[e] = slots;
      bytes += this.tallies[2 * e + 1] as number;
      slots += this.tallies[2 * e] as number;
    }
    assert(slots === n, 'ValueArena.compact: the order misses keys with values');
    const src = this.store.buffer;
    this.out = takeKept('out', bytes) ?? Buffer.allocUnsafe(bytes);
    const out = this.out.subarray(0, bytes);
    const from = this.index;
    // Every entry of the n values is written below (a kept one is not cleared).
    const index = takeKept('outIndex', 8 * n) ?? new Int32Array(Math.max(2, 2 * n));
    const last = this.store.bytes;
    for (let v = 0; v < n; v++) {
      const s = from[2 * v] as number;
      const e = from[2 * v + 1] as number;
      const end = v + 1 < n ? (from[2 * v + 2] as number) : last;
      const d = cursor[2 * e] as number;
      const w = cursor[2 * e + 1] as number;
      if (end - s < 32) for (let i = s; i < end; i++) out[d + i - s] = src[i] as number;
      else src.copy(out, d, s, end);
      cursor[2 * e] = d + end - s;
      cursor[2 * e + 1] = w + 1;
      index[2 * w] = d;
      index[2 * w + 1] = e;
    }
    this.emitIndex = from;
    this.index = index;
    this.scattered = false;
    this.nexts = undefined;
    this.laidOut = out;
    this.reader = undefined;
  }

  /**
   * Gives the arena's buffers to the thread's next arena (one a map task
   * makes for its next buffer, or its next task), as far as
   * `limits.mrValueArenaKeptBytesMax` allows; the arena must not be used
   * afterwards. Call once its values are written (runs copy them).
   */
  release(): void {
    if (this.released) return;
    this.released = true;
    const max = limits.mrValueArenaKeptBytesMax;
    const keep = <K extends keyof KeptBuffers>(which: K, b: KeptBuffers[K], size: number): void => {
      if (b === undefined || kept[which] !== undefined || keptArenaBytes() + size > max) return;
      kept[which] = b;
    };
    const emitIndex = this.emitIndex ?? this.index;
    keep('store', this.store, this.store.capacity);
    keep('index', emitIndex, emitIndex.byteLength);
    if (this.emitIndex !== undefined) keep('outIndex', this.index, this.index.byteLength);
    keep('out', this.out, this.out?.byteLength ?? 0);
    this.laidOut = undefined;
    this.out = undefined;
    this.emitIndex = undefined;
  }

  /** Value `v`, decoded (for tests). */
  decode(v: number): unknown {
    return packr.unpack(this.data().subarray(this.index[2 * v], this.end(v)));
  }

  /** Checks a key's chain (tests): its values in order. */
  chain(e: number): number[] {
    const out: number[] = [];
    for (let v = this.first(e); v >= 0; v = this.next(v)) out.push(v);
    assert(out.length === this.count(e), 'value chain length differs from its count');
    return out;
  }
}
