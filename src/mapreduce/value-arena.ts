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
 * ```
 *
 * Why: a map task holds what it emits until it writes its runs. Kept as
 * objects (a list per key, an array or string per value), every one of them
 * outlives the young generation and is copied by each scavenge and then
 * marked in old space: in a join, GC was the largest cost of the map task.
 * Encoded at once, a value is garbage as soon as `emit` returns, and the
 * buffer's size is its exact memory (the spill bound counts it). Values are
 * encoded once, by hand as run-block.ts writes them (msgpackr for the rest).
 */
import { Packr } from 'msgpackr';
import { assert } from '../lib/assert.js';
import { BlockEncoder } from './run-block.js';

const packr = new Packr({ useRecords: false, variableMapSize: true });

const INITIAL_BYTES = 1 << 20;
const INITIAL_VALUES = 1 << 14;

function grownInt32(a: Int32Array<ArrayBuffer>, need: number): Int32Array<ArrayBuffer> {
  if (need <= a.length) return a;
  const b = new Int32Array(Math.max(need, a.length * 2));
  b.set(a);
  return b;
}

/** Encoded values by key (see the file comment). */
export class ValueArena {
  /** The encoded values, back to back (a BlockEncoder as a growable buffer: no records). */
  private readonly store = new BlockEncoder(INITIAL_BYTES);
  /** Per value: its start in `buf` (its end is the next value's start, or `len`). */
  private starts = new Int32Array(INITIAL_VALUES);
  /** Per value: the next value of the same key, or -1. */
  private nexts = new Int32Array(INITIAL_VALUES);
  private values = 0;
  /** Per key: first and last value, number of values, encoded bytes. */
  private heads = new Int32Array(1024);
  private tails = new Int32Array(1024);
  private counts = new Int32Array(1024);
  private sizes = new Float64Array(1024);

  /** Bytes held: the encoded values plus the per-value and per-key indexes. */
  get bytes(): number {
    return this.store.bytes + 8 * this.starts.length + 20 * this.heads.length;
  }

  /** Values held. */
  get size(): number {
    return this.values;
  }

  /** Appends `value` to key `e`'s values (e: 0, 1, 2, ... as keys are first seen). */
  add(e: number, value: unknown): void {
    const store = this.store;
    const p = store.bytes;
    if (!store.appendValue(value)) store.appendRaw(packr.pack(value));
    const n = store.bytes - p;
    const v = this.values++;
    if (v >= this.starts.length) {
      this.starts = grownInt32(this.starts, v + 1);
      this.nexts = grownInt32(this.nexts, v + 1);
    }
    this.starts[v] = p;
    this.nexts[v] = -1;
    if (e >= this.heads.length) this.growKeys(e + 1);
    if (this.counts[e] === 0) {
      this.heads[e] = v;
    } else {
      this.nexts[this.tails[e] as number] = v;
    }
    this.tails[e] = v;
    this.counts[e] = (this.counts[e] as number) + 1;
    this.sizes[e] = (this.sizes[e] as number) + n;
  }

  private growKeys(need: number): void {
    const size = Math.max(need, this.heads.length * 2);
    this.heads = grownInt32(this.heads, size);
    this.tails = grownInt32(this.tails, size);
    this.counts = grownInt32(this.counts, size);
    const sizes = new Float64Array(size);
    sizes.set(this.sizes);
    this.sizes = sizes;
  }

  /** Values of key `e`. */
  count(e: number): number {
    return e < this.counts.length ? (this.counts[e] as number) : 0;
  }

  /** Encoded bytes of key `e`'s values. */
  bytesOf(e: number): number {
    return e < this.sizes.length ? (this.sizes[e] as number) : 0;
  }

  /** Key `e`'s first value, or -1. */
  first(e: number): number {
    return this.count(e) === 0 ? -1 : (this.heads[e] as number);
  }

  /** The value after `v` of the same key, or -1. */
  next(v: number): number {
    return this.nexts[v] as number;
  }

  /** Start and end (exclusive) of value `v`'s bytes. */
  private end(v: number): number {
    return v + 1 < this.values ? (this.starts[v + 1] as number) : this.store.bytes;
  }

  /** Encoded bytes of value `v`. */
  valueBytes(v: number): number {
    return this.end(v) - (this.starts[v] as number);
  }

  /** Appends value `v`'s bytes to the record `enc` is writing. */
  copyValue(v: number, enc: BlockEncoder): void {
    const s = this.starts[v] as number;
    enc.appendBytes(this.store.buffer, s, this.end(v));
  }

  /** Value `v`, decoded (for tests). */
  decode(v: number): unknown {
    return packr.unpack(this.store.buffer.subarray(this.starts[v], this.end(v)));
  }

  /** Checks a key's chain (tests): its values in order. */
  chain(e: number): number[] {
    const out: number[] = [];
    for (let v = this.first(e); v >= 0; v = this.next(v)) out.push(v);
    assert(out.length === this.count(e), 'value chain length differs from its count');
    return out;
  }
}
