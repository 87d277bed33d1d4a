/**
 * The data blocks of map-output runs (format.ts), encoded and decoded by hand
 * for the common case. A block is a MessagePack array `[key0, values0, key1,
 * values1, ...]` (keys strings, values arrays): any MessagePack decoder reads
 * it, and a block this code cannot decode by hand is decoded by msgpackr.
 *
 * ```ts
 * const enc = new BlockEncoder();
 * enc.add('apple', [1, 2]) || enc.addPacked(packr.pack('tree'), packr.pack([{ a: 1 }]));
 * const body = enc.take();                 // MessagePack bytes of the block; the encoder is empty again
 * const dec = new BlockDecoder(body);      // checks the block's structure (CORRUPTION message if bad)
 * while (dec.nextRecord()) { const key = dec.key; const vs = dec.takeValues([]); }
 * ```
 *
 * Why by hand: a word count's map task writes ~50k records per split and
 * each reducer merges ~400k. Packing a block through msgpackr first gathered
 * the records in arrays (an array per key), and decoding a whole block at once
 * made every record an array and a string that lived as long as the block: a
 * reducer's young generation was mostly decoded blocks, and GC took about a
 * third of its time. {@link BlockEncoder} writes the bytes directly;
 * {@link BlockDecoder} checks a block's structure in one pass when it is
 * loaded, then decodes one record at a time as the merge consumes it (keys are
 * slices of one latin1 string of the block when their bytes are ASCII), so a
 * reducer holds undecoded bytes, not objects.
 *
 * By hand: strings (keys and values) whose UTF-16 code units are all below
 * 0x80, numbers (integers as the smallest MessagePack int, others float64, as
 * msgpackr writes them), booleans, null, and arrays and plain objects of
 * these (maps with string keys), nested up to {@link NEST_DEPTH_MAX} levels:
 * a job's small composite values (`[tag, a, b]`, `{ count, sum, min, max }`)
 * cost no msgpackr call and no intermediate array on either side. Anything
 * else is left to msgpackr, per string when writing a non-ASCII one, per
 * record when writing other types, and per block when reading a block with
 * other types (bigints, binary, dates, undefined, a `__proto__` key).
 */
import { Packr, Unpackr } from 'msgpackr';
import { assert } from '../lib/assert.js';
import { readU32 } from '../wire/frame.js';

// As in format.ts: standard MessagePack, no records extension.
const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false });

const INITIAL_BYTES = 64 * 1024;

/**
 * Nesting of arrays and maps in a value that is encoded and decoded by hand;
 * deeper values are left to msgpackr (a fast-path cutoff, not a bound: the
 * run block's size is bounded by limits.mrRunBlockBytesMax).
 */
const NEST_DEPTH_MAX = 8;

/**
 * Writes the low 16 bits of `v` big-endian at `p` (no range checks, unlike
 * Buffer.writeUInt16BE: the callers know `v` fits, and this runs per value).
 */
function put16(b: Buffer, p: number, v: number): void {
  b[p] = (v >>> 8) & 0xff;
  b[p + 1] = v & 0xff;
}

/** Writes the low 32 bits of `v` big-endian at `p` (signed or unsigned alike; see {@link put16}). */
function put32(b: Buffer, p: number, v: number): void {
  b[p] = (v >>> 24) & 0xff;
  b[p + 1] = (v >>> 16) & 0xff;
  b[p + 2] = (v >>> 8) & 0xff;
  b[p + 3] = v & 0xff;
}

/**
 * Builds one data block. Records are appended with {@link add} (scalars, by
 * hand) or {@link addPacked} (key and values already packed); {@link take}
 * returns the block's bytes.
 */
export class BlockEncoder {
  private buf: Buffer;
  /** Bytes in use; the first 5 hold the array32 header, written by take(). */
  private len = 5;
  /** Records in the block. */
  records = 0;

  /** An empty block; `initialBytes` sizes its first buffer (it grows as needed). */
  constructor(initialBytes = INITIAL_BYTES) {
    this.buf = Buffer.allocUnsafe(Math.max(16, initialBytes));
  }

  /** Empties the encoder, keeping its buffer (a growable buffer used again: value-arena.ts). */
  reset(): void {
    this.len = 5;
    this.records = 0;
  }

  /** Bytes of the buffer it holds (what it keeps when reset). */
  get capacity(): number {
    return this.buf.length;
  }

  /** Encoded bytes so far (an upper bound of the block's size). */
  get bytes(): number {
    return this.len;
  }

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(bigger, 0, 0, this.len);
    this.buf = bigger;
  }

  /**
   * Appends `key, values` if every value is a number, string, boolean or
   * null; otherwise appends nothing and returns false.
   */
  add(key: string, values: readonly unknown[]): boolean {
    const start = this.len;
    this.str(key);
    const n = values.length;
    this.ensure(5);
    const b = this.buf;
    let p = this.len;
    if (n < 16) {
      b[p++] = 0x90 | n;
    } else if (n < 0x10000) {
      b[p] = 0xdc;
      put16(b, p + 1, n);
      p += 3;
    } else {
      b[p] = 0xdd;
      put32(b, p + 1, n);
      p += 5;
    }
    this.len = p;
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (typeof v === 'number') this.num(v);
      else if (typeof v === 'string') this.str(v);
      else if (!this.other(v, 0)) {
        this.len = start;
        return false;
      }
    }
    this.records++;
    return true;
  }

  /**
   * Booleans, null, and arrays and plain objects of the hand-written types
   * (nested up to {@link NEST_DEPTH_MAX} levels); false for anything else.
   */
  private other(v: unknown, depth: number): boolean {
    if (v === true || v === false || v === null) {
      this.ensure(1);
      this.buf[this.len++] = v === null ? 0xc0 : v ? 0xc3 : 0xc2;
      return true;
    }
    if (typeof v !== 'object' || depth >= NEST_DEPTH_MAX) return false;
    if (Array.isArray(v)) {
      const n = v.length;
      this.head(n, 0x90, 0xdc, 0xdd);
      for (let i = 0; i < n; i++) {
        const x: unknown = v[i];
        if (typeof x === 'number') this.num(x);
        else if (typeof x === 'string') this.str(x);
        else if (!this.other(x, depth + 1)) return false;
      }
      return true;
    }
    const proto: unknown = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) return false;
    const keys = Object.keys(v);
    const n = keys.length;
    this.head(n, 0x80, 0xde, 0xdf);
    const o = v as Record<string, unknown>;
    for (let i = 0; i < n; i++) {
      const k = keys[i] as string;
      const x = o[k];
      this.str(k);
      if (typeof x === 'number') this.num(x);
      else if (typeof x === 'string') this.str(x);
      else if (!this.other(x, depth + 1)) return false;
    }
    return true;
  }

  /** An array or map header: fix form (`fix | n`) under 16 entries, else 16- or 32-bit count. */
  private head(n: number, fix: number, t16: number, t32: number): void {
    this.ensure(5);
    const b = this.buf;
    const p = this.len;
    if (n < 16) {
      b[p] = fix | n;
      this.len = p + 1;
    } else if (n < 0x10000) {
      b[p] = t16;
      put16(b, p + 1, n);
      this.len = p + 3;
    } else {
      b[p] = t32;
      put32(b, p + 1, n);
      this.len = p + 5;
    }
  }

  /**
   * Appends one value's bytes (not a record: for a buffer of encoded values,
   * value-arena.ts) if it is of the hand-written types; else appends nothing
   * and returns false.
   */
  appendValue(v: unknown): boolean {
    if (Array.isArray(v) && v.length === 1) {
      // `[id]` (a postings value, one per emit): a fixarray of one and the
      // number, as other() writes it, without other()'s calls.
      const x: unknown = v[0];
      if (typeof x === 'number') {
        this.ensure(1);
        this.buf[this.len++] = 0x91;
        this.num(x);
        return true;
      }
    }
    if (typeof v === 'number') this.num(v);
    else if (typeof v === 'string') this.str(v);
    else {
      const start = this.len;
      if (!this.other(v, 0)) {
        this.len = start;
        return false;
      }
    }
    return true;
  }

  /** Appends bytes as they are (an encoded value, a header). */
  appendRaw(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.len);
    this.len += bytes.length;
  }

  /** Appends `src[start, end)` (an encoded value kept elsewhere). */
  appendBytes(src: Buffer, start: number, end: number): void {
    const n = end - start;
    this.ensure(n);
    const b = this.buf;
    const p = this.len;
    // Short values byte by byte; longer ones by a native copy (no subarray view).
    if (n < 32) for (let i = 0; i < n; i++) b[p + i] = src[start + i] as number;
    else src.copy(b, p, start, end);
    this.len = p + n;
  }

  /** The bytes written so far (valid until the next append or take). */
  get buffer(): Buffer {
    return this.buf;
  }

  /**
   * Starts a record of `count` values whose encoded bytes the caller appends
   * next ({@link appendBytes}); the record counts once they are appended.
   */
  beginRecord(key: string, count: number): void {
    this.str(key);
    this.head(count, 0x90, 0xdc, 0xdd);
    this.records++;
  }

  /** Removes the last record added, which began at byte `bytesBefore` (see {@link bytes}). */
  dropLast(bytesBefore: number): void {
    this.len = bytesBefore;
    this.records--;
  }

  /** Appends a record whose key and values were packed elsewhere (MessagePack str and array). */
  addPacked(key: Uint8Array, values: Uint8Array): void {
    this.ensure(key.length + values.length);
    this.buf.set(key, this.len);
    this.buf.set(values, this.len + key.length);
    this.len += key.length + values.length;
    this.records++;
  }

  /** The block's bytes (a MessagePack array32 of 2 × records elements); the encoder starts a new block. */
  take(): Buffer {
    const b = this.buf;
    b[0] = 0xdd;
    b.writeUInt32BE(2 * this.records, 1);
    const body = b.subarray(0, this.len);
    this.buf = Buffer.allocUnsafe(Math.max(INITIAL_BYTES, Math.min(b.length, 2 * this.len)));
    this.len = 5;
    this.records = 0;
    return body;
  }

  /** A string: by hand if ASCII, else as msgpackr packs it. */
  private str(s: string): void {
    const n = s.length;
    const head = n < 32 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
    this.ensure(head + n);
    const b = this.buf;
    const p = this.len;
    let q = p + head;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) {
        const packed = packr.pack(s);
        this.ensure(packed.length);
        this.buf.set(packed, p);
        this.len = p + packed.length;
        return;
      }
      b[q++] = c;
    }
    if (head === 1) {
      b[p] = 0xa0 | n;
    } else if (head === 2) {
      b[p] = 0xd9;
      b[p + 1] = n;
    } else if (head === 3) {
      b[p] = 0xda;
      put16(b, p + 1, n);
    } else {
      b[p] = 0xdb;
      put32(b, p + 1, n);
    }
    this.len = q;
  }

  /** A number as msgpackr writes it: the smallest int that holds an integer up to 32 bits, else float64. */
  private num(v: number): void {
    this.ensure(9);
    const b = this.buf;
    const p = this.len;
    if (Number.isInteger(v) && v >= -0x80000000 && v <= 0xffffffff) {
      if (v >= 0) {
        if (v < 0x80) {
          b[p] = v;
          this.len = p + 1;
        } else if (v < 0x100) {
          b[p] = 0xcc;
          b[p + 1] = v;
          this.len = p + 2;
        } else if (v < 0x10000) {
          b[p] = 0xcd;
          put16(b, p + 1, v);
          this.len = p + 3;
        } else {
          b[p] = 0xce;
          put32(b, p + 1, v);
          this.len = p + 5;
        }
      } else if (v >= -32) {
        b[p] = v & 0xff;
        this.len = p + 1;
      } else if (v >= -0x80) {
        b[p] = 0xd0;
        b[p + 1] = v & 0xff;
        this.len = p + 2;
      } else if (v >= -0x8000) {
        b[p] = 0xd1;
        put16(b, p + 1, v);
        this.len = p + 3;
      } else {
        b[p] = 0xd2;
        put32(b, p + 1, v);
        this.len = p + 5;
      }
    } else {
      b[p] = 0xcb;
      b.writeDoubleBE(v, p + 1);
      this.len = p + 9;
    }
  }
}

/** Thrown by {@link BlockDecoder} for a malformed block (the caller names the run: CORRUPTION). */
export class BadBlock extends Error {}

/**
 * Size in bytes of the MessagePack element at `p` whose type decodes by hand
 * (see the file header), -1 for another type, or -2 if it overruns `end`.
 */
function simpleSize(b: Uint8Array, p: number, end: number, depth = 0): number {
  if (p >= end) return -2;
  const t = b[p] as number;
  let size: number;
  if ((t >= 0x80 && t <= 0x9f) || t === 0xdc || t === 0xdd || t === 0xde || t === 0xdf) {
    return depth >= NEST_DEPTH_MAX ? -1 : nestedSize(b, p, end, depth);
  }
  if (t < 0x80 || t >= 0xe0 || t === 0xc0 || t === 0xc2 || t === 0xc3) size = 1;
  else if (t >= 0xa0 && t <= 0xbf) size = 1 + (t & 0x1f);
  else if (t === 0xcc || t === 0xd0) size = 2;
  else if (t === 0xcd || t === 0xd1) size = 3;
  else if (t === 0xce || t === 0xd2) size = 5;
  else if (t === 0xcb) size = 9;
  else if (t === 0xd9) size = p + 1 < end ? 2 + (b[p + 1] as number) : -2;
  else if (t === 0xda)
    size = p + 2 < end ? 3 + (((b[p + 1] as number) << 8) | (b[p + 2] as number)) : -2;
  else if (t === 0xdb) size = p + 4 < end ? 5 + readU32(b, p + 1) : -2;
  else return -1;
  return size === -2 || p + size > end ? -2 : size;
}

/** The bytes `__proto__` (9), which a hand-decoded map key must not be (it would set the prototype). */
const PROTO_KEY = [0x5f, 0x5f, 0x70, 0x72, 0x6f, 0x74, 0x6f, 0x5f, 0x5f];

/** Size of the array or map at `p` (see {@link simpleSize}); maps need string keys other than `__proto__`. */
function nestedSize(b: Uint8Array, p: number, end: number, depth: number): number {
  const t = b[p] as number;
  const isMap = (t >= 0x80 && t <= 0x8f) || t === 0xde || t === 0xdf;
  let n: number;
  let q: number;
  if (t <= 0x9f) {
    n = t & 0x0f;
    q = p + 1;
  } else if (t === 0xdc || t === 0xde) {
    if (p + 3 > end) return -2;
    n = ((b[p + 1] as number) << 8) | (b[p + 2] as number);
    q = p + 3;
  } else {
    if (p + 5 > end) return -2;
    n = readU32(b, p + 1);
    q = p + 5;
  }
  for (let i = 0; i < n; i++) {
    if (isMap) {
      if (q >= end) return -2;
      const kt = b[q] as number;
      if (!isStrType(kt)) return -1;
      if (kt === 0xa9 && q + 10 <= end) {
        let proto = true;
        for (let j = 0; j < 9; j++) if (b[q + 1 + j] !== PROTO_KEY[j]) proto = false;
        if (proto) return -1;
      }
      const ks = simpleSize(b, q, end, depth + 1);
      if (ks < 0) return ks;
      q += ks;
    }
    // An integer value is sized inline (lists of ids, `[1, 70000, ...]`), as simpleSize() sizes it.
    if (q >= end) return -2;
    const vt = b[q] as number;
    let vs: number;
    if (vt < 0x80 || vt >= 0xe0) vs = 1;
    else if (vt === 0xce || vt === 0xd2) vs = 5;
    else if (vt === 0xcd || vt === 0xd1) vs = 3;
    else if (vt === 0xcc || vt === 0xd0) vs = 2;
    else {
      vs = simpleSize(b, q, end, depth + 1);
      if (vs < 0) return vs;
    }
    if (q + vs > end) return -2;
    q += vs;
  }
  return q - p;
}

/** Where the bytes of the string whose header (checked to be one: fixstr, str8/16/32) is at `p` start. */
function strStart(b: Uint8Array, p: number): number {
  const t = b[p] as number;
  return t <= 0xbf ? p + 1 : t === 0xd9 ? p + 2 : t === 0xda ? p + 3 : p + 5;
}

/** The byte length of the string whose header (checked to be one) is at `p`. */
function strLength(b: Uint8Array, p: number): number {
  const t = b[p] as number;
  if (t <= 0xbf) return t & 0x1f;
  if (t === 0xd9) return b[p + 1] as number;
  if (t === 0xda) return ((b[p + 1] as number) << 8) | (b[p + 2] as number);
  return readU32(b, p + 1);
}

function isStrType(t: number): boolean {
  return (t >= 0xa0 && t <= 0xbf) || t === 0xd9 || t === 0xda || t === 0xdb;
}

/** Reads an array header at `p`: [count, header bytes], or undefined if there is none. */
function arrayHeader(b: Uint8Array, p: number, end: number): [number, number] | undefined {
  if (p >= end) return undefined;
  const t = b[p] as number;
  if (t >= 0x90 && t <= 0x9f) return [t & 0x0f, 1];
  if (t === 0xdc && p + 3 <= end) return [((b[p + 1] as number) << 8) | (b[p + 2] as number), 3];
  if (t === 0xdd && p + 5 <= end) return [readU32(b, p + 1), 5];
  return undefined;
}

/**
 * Decodes one data block record by record. The constructor checks the whole
 * block's structure (throws {@link BadBlock}); then {@link nextRecord} moves
 * to each record in turn and {@link takeValues} decodes its values.
 */
export class BlockDecoder {
  /** Records in the block. */
  readonly records: number;
  /** Values over all records. */
  readonly values: number;
  /** The current record's key (after nextRecord() returned true). */
  key = '';
  /**
   * The current record's key as bytes (after {@link nextKey} returned true):
   * `bytes[keyStart, keyEnd)`, its UTF-8.
   */
  keyStart = 0;
  keyEnd = 0;
  private readonly b: Uint8Array;
  /** The block decoded by msgpackr, when it holds types not decoded by hand. */
  private readonly decoded: unknown[] | undefined;
  private pos = 0;
  private index = -1;
  /** Values of the current record not yet taken (hand path). */
  private pending = 0;
  private text: string | undefined;
  private view: DataView | undefined;

  /**
   * Checks `block` and gets ready to decode it; with `valuesOnly`, `block`
   * is instead a buffer of values this process encoded (value-arena.ts), not
   * checked, read only through {@link valueAt}.
   */
  constructor(block: Uint8Array, valuesOnly = false) {
    this.b = block;
    if (valuesOnly) {
      this.records = 0;
      this.values = 0;
      this.decoded = undefined;
      return;
    }
    const end = block.length;
    const head = arrayHeader(block, 0, end);
    if (head === undefined || head[0] % 2 !== 0) throw new BadBlock('bad data block');
    const records = head[0] / 2;
    let p = head[1];
    let values = 0;
    let simple = true;
    for (let r = 0; r < records && simple; r++) {
      if (p >= end || !isStrType(block[p] as number)) {
        throw new BadBlock('bad record in a data block');
      }
      const k = simpleSize(block, p, end);
      if (k < 0) throw new BadBlock('bad data block');
      p += k;
      const vh = arrayHeader(block, p, end);
      if (vh === undefined) throw new BadBlock('bad record in a data block');
      p += vh[1];
      values += vh[0];
      for (let i = 0; i < vh[0]; i++) {
        // `[integer]` (a postings value, one per emit) sized inline when it is whole;
        // anything else, or one cut short, by simpleSize().
        let s = 0;
        if (block[p] === 0x91 && p + 1 < end) {
          const u = block[p + 1] as number;
          if (u < 0x80 || u >= 0xe0) s = 2;
          else if (u === 0xce || u === 0xd2) s = 6;
          else if (u === 0xcd || u === 0xd1) s = 4;
          else if (u === 0xcc || u === 0xd0) s = 3;
          if (p + s > end) s = 0;
        }
        if (s === 0) s = simpleSize(block, p, end);
        if (s === -1) {
          simple = false;
          break;
        }
        if (s < 0) throw new BadBlock('bad data block');
        p += s;
      }
    }
    if (simple) {
      if (p !== end) throw new BadBlock('bad data block');
      this.records = records;
      this.values = values;
      this.decoded = undefined;
      this.pos = head[1];
      return;
    }
    // Other types: msgpackr decodes the whole block, then its records are checked.
    let body: unknown;
    try {
      body = unpackr.unpack(block);
    } catch {
      throw new BadBlock('a frame is not MessagePack');
    }
    if (!Array.isArray(body) || body.length % 2 !== 0) throw new BadBlock('bad data block');
    values = 0;
    for (let i = 0; i < body.length; i += 2) {
      const vs: unknown = body[i + 1];
      if (typeof body[i] !== 'string' || !Array.isArray(vs)) {
        throw new BadBlock('bad record in a data block');
      }
      values += vs.length;
    }
    this.decoded = body;
    this.records = body.length / 2;
    this.values = values;
  }

  /** The block's bytes (what {@link keyStart} and {@link keyEnd} index). */
  get bytes(): Uint8Array {
    return this.b;
  }

  /**
   * True if the block's records are decoded by hand, so that {@link nextKey}
   * can be used; false for a block msgpackr decoded (other types).
   */
  get byHand(): boolean {
    return this.decoded === undefined;
  }

  /** Moves to the next record and decodes its key; false after the last one. */
  nextRecord(): boolean {
    if (this.pending > 0) this.takeValues([]);
    if (this.index + 1 >= this.records) return false;
    this.index++;
    const d = this.decoded;
    if (d !== undefined) {
      this.key = d[2 * this.index] as string;
      this.pending = 1;
      return true;
    }
    this.key = this.str();
    this.valuesHeader();
    return true;
  }

  /**
   * As {@link nextRecord}, but makes no string of the key: it is left as its
   * bytes ({@link keyStart}, {@link keyEnd}); {@link key} is not set. Only
   * for a block decoded by hand ({@link byHand}).
   */
  nextKey(): boolean {
    assert(this.decoded === undefined, 'nextKey on a block msgpackr decoded');
    if (this.pending > 0) this.takeValues([]);
    if (this.index + 1 >= this.records) return false;
    this.index++;
    const b = this.b;
    const p = this.pos;
    const start = strStart(b, p);
    const n = strLength(b, p);
    this.keyStart = start;
    this.keyEnd = start + n;
    this.pos = start + n;
    this.valuesHeader();
    return true;
  }

  /** Values of the current record not taken yet. */
  get valuesLeft(): number {
    return this.pending;
  }

  /**
   * Takes the current record's next value and returns it when it is a
   * number; undefined, taking nothing, when it is not one (or none is
   * left). A block decoded by hand only ({@link byHand}).
   */
  takeNumber(): number | undefined {
    if (this.pending === 0) return undefined;
    const b = this.b;
    const p = this.pos;
    const t = b[p] as number;
    if (t < 0x80) {
      this.pos = p + 1;
      this.pending--;
      return t;
    }
    if (t >= 0xe0) {
      this.pos = p + 1;
      this.pending--;
      return t - 0x100;
    }
    if ((t >= 0xcc && t <= 0xce) || (t >= 0xd0 && t <= 0xd2) || t === 0xcb) {
      this.pending--;
      return this.other(t, p) as number;
    }
    return undefined;
  }

  /** Reads the current record's values header at `pos` (the constructor checked it). */
  private valuesHeader(): void {
    const b = this.b;
    const t = b[this.pos] as number;
    if (t <= 0x9f) {
      this.pending = t & 0x0f;
      this.pos++;
    } else if (t === 0xdc) {
      this.pending = ((b[this.pos + 1] as number) << 8) | (b[this.pos + 2] as number);
      this.pos += 3;
    } else {
      this.pending = readU32(b, this.pos + 1);
      this.pos += 5;
    }
  }

  /** Appends the current record's values to `out` (once per record) and returns it. */
  takeValues(out: unknown[]): unknown[] {
    const d = this.decoded;
    if (d !== undefined) {
      if (this.pending === 0) return out;
      this.pending = 0;
      const vs = d[2 * this.index + 1] as unknown[];
      for (let i = 0; i < vs.length; i++) out.push(vs[i]);
      return out;
    }
    const b = this.b;
    for (; this.pending > 0; this.pending--) {
      const p = this.pos;
      const t = b[p] as number;
      if (t < 0x80) {
        out.push(t);
        this.pos = p + 1;
      } else if (t >= 0xe0) {
        out.push(t - 0x100);
        this.pos = p + 1;
      } else if (t >= 0xa0 && t <= 0xbf) {
        out.push(this.str());
      } else if (t >= 0x90 && t <= 0x9f) {
        // A short array (a postings value, `[id]`): not through other()'s switch,
        // and `[unsigned integer]` without array()'s loop.
        const u = b[p + 1] as number;
        if (t === 0x91 && u < 0x80) {
          out.push([u]);
          this.pos = p + 2;
        } else if (t === 0x91 && u === 0xce) {
          out.push([readU32(b, p + 2)]);
          this.pos = p + 6;
        } else if (t === 0x91 && u === 0xcd) {
          out.push([((b[p + 2] as number) << 8) | (b[p + 3] as number)]);
          this.pos = p + 4;
        } else {
          this.pos = p + 1;
          out.push(this.array(t & 0x0f));
        }
      } else {
        out.push(this.other(t, p));
      }
    }
    return out;
  }

  /**
   * The value encoded in `[start, end)` of a values-only decoder's buffer:
   * by hand when it is of the hand-written types, else by msgpackr.
   */
  valueAt(start: number, end: number): unknown {
    const b = this.b;
    const t = b[start] as number;
    if (t < 0x80) return t;
    if (simpleSize(b, start, end) !== end - start) return unpackr.unpack(b.subarray(start, end));
    this.pos = start;
    return this.value();
  }

  /** A value of the hand-decoded types other than fixints and fixstrs. */
  private other(t: number, p: number): unknown {
    const b = this.b;
    switch (t) {
      case 0xc0:
        this.pos = p + 1;
        return null;
      case 0xc2:
        this.pos = p + 1;
        return false;
      case 0xc3:
        this.pos = p + 1;
        return true;
      case 0xcc:
        this.pos = p + 2;
        return b[p + 1];
      case 0xcd:
        this.pos = p + 3;
        return ((b[p + 1] as number) << 8) | (b[p + 2] as number);
      case 0xce:
        this.pos = p + 5;
        return readU32(b, p + 1);
      case 0xd0:
        this.pos = p + 2;
        return ((b[p + 1] as number) << 24) >> 24;
      case 0xd1:
        this.pos = p + 3;
        return ((((b[p + 1] as number) << 8) | (b[p + 2] as number)) << 16) >> 16;
      case 0xd2:
        this.pos = p + 5;
        return readU32(b, p + 1) | 0;
      case 0xcb:
        this.pos = p + 9;
        this.view ??= new DataView(b.buffer, b.byteOffset, b.byteLength);
        return this.view.getFloat64(p + 1);
      case 0xdc:
        this.pos = p + 3;
        return this.array(((b[p + 1] as number) << 8) | (b[p + 2] as number));
      case 0xdd:
        this.pos = p + 5;
        return this.array(readU32(b, p + 1));
      case 0xde:
        this.pos = p + 3;
        return this.map(((b[p + 1] as number) << 8) | (b[p + 2] as number));
      case 0xdf:
        this.pos = p + 5;
        return this.map(readU32(b, p + 1));
      default:
        if (t >= 0x90 && t <= 0x9f) {
          this.pos = p + 1;
          return this.array(t & 0x0f);
        }
        if (t >= 0x80 && t <= 0x8f) {
          this.pos = p + 1;
          return this.map(t & 0x0f);
        }
        return this.str();
    }
  }

  /** The value at `pos` (the constructor checked its structure); moves past it. */
  private value(): unknown {
    const p = this.pos;
    const t = this.b[p] as number;
    if (t < 0x80) {
      this.pos = p + 1;
      return t;
    }
    if (t >= 0xe0) {
      this.pos = p + 1;
      return t - 0x100;
    }
    if (t >= 0xa0 && t <= 0xbf) return this.str();
    return this.other(t, p);
  }

  /** An array of `n` values starting at `pos`. */
  private array(n: number): unknown[] {
    const out = new Array<unknown>(n);
    const b = this.b;
    for (let i = 0; i < n; i++) {
      // Unsigned integers inline (an array of ids), the rest through value().
      const p = this.pos;
      const t = b[p] as number;
      if (t < 0x80) {
        out[i] = t;
        this.pos = p + 1;
      } else if (t === 0xce) {
        out[i] = readU32(b, p + 1);
        this.pos = p + 5;
      } else if (t === 0xcd) {
        out[i] = ((b[p + 1] as number) << 8) | (b[p + 2] as number);
        this.pos = p + 3;
      } else {
        out[i] = this.value();
      }
    }
    return out;
  }

  /** A map of `n` entries starting at `pos`, as a plain object (as msgpackr decodes it). */
  private map(n: number): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) {
      const k = this.str();
      out[k] = this.value();
    }
    return out;
  }

  /** The string at `pos` (the constructor checked it is one); moves past it. */
  private str(): string {
    const b = this.b;
    const p = this.pos;
    const start = strStart(b, p);
    const n = strLength(b, p);
    const end = start + n;
    this.pos = end;
    let or = 0;
    for (let i = start; i < end; i++) or |= b[i] as number;
    if (or < 0x80) {
      // ASCII: latin1 decodes it byte for byte, and one string of the whole
      // block serves every key (its slices are the keys).
      this.text ??= Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
      return this.text.slice(start, end);
    }
    return unpackr.unpack(b.subarray(p, end)) as string;
  }
}
