/**
 * Codecs compiled per message type: a message schema (TypeBox, see codec.ts)
 * turned into a MessagePack encoder and a decoder-with-validation that read
 * and write bytes directly, instead of msgpackr's generic encoder, its
 * generic decoder, the nesting/extension scan and the schema check one after
 * another. {@link MessageCodec} uses them first and keeps the generic path
 * for everything they do not take.
 *
 * ```ts
 * const compiled = compileMessage(schema, { unpackr, packr, depthMax: 100 });
 * const end = compiled.encode(writer, msg);        // true, or false: let msgpackr encode it
 * const value = compiled.decode(reader);           // the message, or FALLBACK: decode generically
 * ```
 *
 * **Same bytes, same answers.** The wire format does not change: the
 * encoder writes standard MessagePack, as msgpackr does (maps with string
 * keys, the smallest integer form, float64 for other numbers, bin for byte
 * arrays, the message's `type` first, then the schema's fields in schema
 * order), so an older node reads it, and the decoder reads any MessagePack
 * whose first map key is `type`. The decoder is only a fast path: it
 * accepts a message only if the generic path (checkMessagePack, msgpackr,
 * the schema's TypeBox check) would accept it with the same value, and
 * answers {@link FALLBACK} whenever it is not sure (a key out of the
 * schema, a duplicate, a missing field, a value of another kind or out of
 * range, a non-ASCII string, a 64-bit integer, an extension, trailing
 * bytes); the caller then runs the generic path, which gives the one stable
 * error a malformed message gets. test/wire/schema-codec.test.ts checks
 * this on random and mutated bytes (fast-check) against the generic path.
 *
 * **Straight-line code per object schema.** Each closed object's encoder,
 * and its decoder for a map holding every field in schema order (what this
 * encoder writes), is generated once with `new Function` (key bytes as
 * numeric constants, one call site per field so V8 can inline the field's
 * codec); a map in any other order goes through the general loop. Only
 * numbers and JSON-quoted keys go into the generated source. A process that
 * may not generate code (`--disallow-code-generation-from-strings`) compiles
 * nothing: `compileMessage` returns undefined and every message takes the
 * generic path (schema-check.ts).
 *
 * **What compiles natively**: Integer and Number (minimum, maximum and the
 * exclusive bounds), Boolean, String (minLength, maxLength), Uint8Array
 * (minByteLength, maxByteLength), Literal, Union of Literals, Array of any
 * of these (minItems, maxItems), closed Objects (`additionalProperties:
 * false`, at most 30 properties) of any of these, Optional properties. Any
 * other schema, or one with a keyword not listed (pattern, format,
 * multipleOf, ...), is an *opaque* field: its bytes are found with the
 * nesting/extension scan (scanMessagePack), decoded by msgpackr and checked
 * by that field's compiled TypeBox check, and encoded by msgpackr (an RPC
 * payload, call metadata). So is an object with a key every object has
 * (`constructor`, `toString`, `__proto__`, ...), and a literal, key or
 * message type that is not well-formed UTF-16: the generic path reads them
 * otherwise (test/wire/compiled-hostile.test.ts).
 *
 * **Byte fields** follow the codec's rule (DecodeOptions.stable): a field
 * at least half the size of the memory it arrived in stays a view of it
 * (the memory of a socket read is never reused, so the view stays valid;
 * it pins at most twice its size), any other is copied, so a small field a
 * Raft log keeps for long never pins a whole socket read; a field declared
 * short-lived (codec.ts, `shortLivedBytes`) is a view whatever its size, a
 * plain Uint8Array (not a Buffer: cheaper to make).
 */
import type { Packr, Unpackr } from 'msgpackr';
import type { TSchema } from '@sinclair/typebox';
import { Kind, OptionalKind } from '@sinclair/typebox';
import { scanMessagePack } from './msgpack-scan.js';
import { readU32 } from './frame.js';
import { codeGenerationAllowed, compileCheck } from './schema-check.js';

/** The answer of a compiled decoder that leaves the message to the generic path. */
export const FALLBACK: unique symbol = Symbol('schema-codec fallback');
/** What a compiled decoder returns: a value, or {@link FALLBACK}. */
type Decoded = unknown;

/** Where a compiled decoder reads: `bytes[pos..end)`. Reused across calls (no allocation per message). */
export class SchemaReader {
  bytes: Uint8Array = new Uint8Array(0);
  pos = 0;
  end = 0;
  /** Byte fields at least this long stay views (Infinity: copy them all). */
  viewBytesMin = Infinity;
  /**
   * With views allowed (`viewBytesMin` finite): `bytes.buffer` and
   * `bytes.byteOffset`, read once per input by the caller (a typed array's
   * `buffer` costs more than the view made from it), for the views.
   */
  viewBuffer: ArrayBufferLike = new ArrayBuffer(0);
  /** See {@link viewBuffer}. */
  viewOffset = 0;
  /** Nesting bound of the codec (limits.messageNestingDepthMax). */
  depthMax = 0;
}

/** Where a compiled encoder writes: `buf[pos..limit)`; sets `full` when it ran out of room. */
export class SchemaWriter {
  buf: Buffer = Buffer.alloc(0);
  pos = 0;
  limit = 0;
  /** Set when a write did not fit before `limit`: the caller retries with more room. */
  full = false;
}

/** msgpackr instances the opaque fields go through. */
export interface OpaqueSupport {
  readonly unpackr: Unpackr;
  readonly packr: Packr;
  /** Copies the byte arrays of a decoded opaque value (the codec's copier), or undefined. */
  readonly copierOf: (
    schema: TSchema,
  ) => ((value: unknown, stable: boolean) => unknown) | undefined;
}

/** One message type, compiled. */
export interface CompiledMessage {
  /** The `type` of the message. */
  readonly type: string;
  /** Its MessagePack str, header included, as the encoder writes it (what CompiledTypes compares). */
  readonly typeStr: Uint8Array;
  /**
   * Decodes and validates the message at `r.pos` (the map and its `type`
   * included), which must end exactly at `r.end`: the message, or
   * {@link FALLBACK}. Never throws on input.
   */
  decode(r: SchemaReader): Decoded;
  /**
   * {@link decode} of a map of `count` entries starting at `start`, whose
   * first key `type` and its value (this type's `typeStr`) the caller has
   * read: `r.pos` is just after them. The same answer as `decode` from
   * `start`. Never throws on input.
   */
  decodeAfterType(r: SchemaReader, count: number, start: number): Decoded;
  /**
   * Encodes `message` at `w.pos`: true when written (`w.pos` is then its
   * end); false when `w.full` (no room: retry with more) or when the value
   * is not of its schema's shape (encode it generically: the receiver
   * refuses it as before).
   */
  encode(w: SchemaWriter, message: unknown): boolean;
}

type Dec = (r: SchemaReader, depth: number) => Decoded;
type Enc = (w: SchemaWriter, value: unknown) => boolean;

interface Node {
  readonly dec: Dec;
  readonly enc: Enc;
}

/** Keywords every schema may carry without changing what it accepts. */
const ANNOTATIONS = ['$id', 'title', 'description', 'default', 'examples', '$comment'];

/** True if `schema` has no string key outside `allowed` (and the annotations). */
function onlyKeywords(schema: TSchema, allowed: readonly string[]): boolean {
  for (const key of Object.keys(schema)) {
    if (!allowed.includes(key) && !ANNOTATIONS.includes(key)) return false;
  }
  return true;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const f64 = new Float64Array(1);
const f64Bytes = new Uint8Array(f64.buffer);

/**
 * Reads a MessagePack number (int forms, float64); FALLBACK for anything
 * else. The usual forms (fixints, uint 8/16/32) here, small enough for V8
 * to inline into the field decoders; the others in {@link readOtherNumber}.
 */
function readNumber(r: SchemaReader): number | typeof FALLBACK {
  const b = r.bytes;
  const p = r.pos;
  if (p >= r.end) return FALLBACK;
  const h = b[p] as number;
  if (h < 0x80) {
    r.pos = p + 1;
    return h;
  }
  if (h >= 0xe0) {
    r.pos = p + 1;
    return h - 0x100;
  }
  if (h === 0xce) {
    if (p + 5 > r.end) return FALLBACK;
    r.pos = p + 5;
    return readU32(b, p + 1);
  }
  if (h === 0xcc) {
    if (p + 2 > r.end) return FALLBACK;
    r.pos = p + 2;
    return b[p + 1] as number;
  }
  if (h === 0xcd) {
    if (p + 3 > r.end) return FALLBACK;
    r.pos = p + 3;
    return ((b[p + 1] as number) << 8) | (b[p + 2] as number);
  }
  return readOtherNumber(r, b, p, h);
}

/** {@link readNumber} of the forms it leaves: int 8/16/32 and float64 (FALLBACK for the rest). */
function readOtherNumber(
  r: SchemaReader,
  b: Uint8Array,
  p: number,
  h: number,
): number | typeof FALLBACK {
  switch (h) {
    case 0xd0:
      if (p + 2 > r.end) return FALLBACK;
      r.pos = p + 2;
      return ((b[p + 1] as number) << 24) >> 24;
    case 0xd1:
      if (p + 3 > r.end) return FALLBACK;
      r.pos = p + 3;
      return ((((b[p + 1] as number) << 8) | (b[p + 2] as number)) << 16) >> 16;
    case 0xd2:
      if (p + 5 > r.end) return FALLBACK;
      r.pos = p + 5;
      return (
        ((b[p + 1] as number) << 24) |
        ((b[p + 2] as number) << 16) |
        ((b[p + 3] as number) << 8) |
        (b[p + 4] as number)
      );
    case 0xcb: {
      if (p + 9 > r.end) return FALLBACK;
      if (LITTLE_ENDIAN) for (let i = 0; i < 8; i++) f64Bytes[i] = b[p + 8 - i] as number;
      else for (let i = 0; i < 8; i++) f64Bytes[i] = b[p + 1 + i] as number;
      r.pos = p + 9;
      return f64[0] as number;
    }
    default:
      // float32 and the 64-bit integers: the generic path decides.
      return FALLBACK;
  }
}

/** Writes a number as msgpackr does: the smallest integer form for 32-bit integers, else float64. */
function writeNumber(w: SchemaWriter, v: number): boolean {
  const b = w.buf;
  const p = w.pos;
  if (v >>> 0 === v) {
    if (v < 0x80) {
      if (p + 1 > w.limit) return full(w);
      b[p] = v;
      w.pos = p + 1;
    } else if (v < 0x100) {
      if (p + 2 > w.limit) return full(w);
      b[p] = 0xcc;
      b[p + 1] = v;
      w.pos = p + 2;
    } else if (v < 0x10000) {
      if (p + 3 > w.limit) return full(w);
      b[p] = 0xcd;
      b[p + 1] = v >>> 8;
      b[p + 2] = v & 0xff;
      w.pos = p + 3;
    } else {
      if (p + 5 > w.limit) return full(w);
      b[p] = 0xce;
      putU32(b, p + 1, v);
      w.pos = p + 5;
    }
  } else if (v >> 0 === v) {
    if (v >= -0x20) {
      if (p + 1 > w.limit) return full(w);
      b[p] = v & 0xff;
      w.pos = p + 1;
    } else if (v >= -0x80) {
      if (p + 2 > w.limit) return full(w);
      b[p] = 0xd0;
      b[p + 1] = v & 0xff;
      w.pos = p + 2;
    } else if (v >= -0x8000) {
      if (p + 3 > w.limit) return full(w);
      b[p] = 0xd1;
      b[p + 1] = (v >> 8) & 0xff;
      b[p + 2] = v & 0xff;
      w.pos = p + 3;
    } else {
      if (p + 5 > w.limit) return full(w);
      b[p] = 0xd2;
      putU32(b, p + 1, v >>> 0);
      w.pos = p + 5;
    }
  } else {
    if (p + 9 > w.limit) return full(w);
    b[p] = 0xcb;
    f64[0] = v;
    if (LITTLE_ENDIAN) for (let i = 0; i < 8; i++) b[p + 1 + i] = f64Bytes[7 - i] as number;
    else for (let i = 0; i < 8; i++) b[p + 1 + i] = f64Bytes[i] as number;
    w.pos = p + 9;
  }
  return true;
}

function full(w: SchemaWriter): false {
  w.full = true;
  return false;
}

/** Reads a str header at r.pos: the string's byte length (r.pos then at its first byte), or -1. */
function readStrHeader(r: SchemaReader): number {
  const b = r.bytes;
  const p = r.pos;
  if (p >= r.end) return -1;
  const h = b[p] as number;
  let len: number;
  let at: number;
  if (h >= 0xa0 && h <= 0xbf) {
    len = h & 0x1f;
    at = p + 1;
  } else if (h === 0xd9) {
    if (p + 2 > r.end) return -1;
    len = b[p + 1] as number;
    at = p + 2;
  } else if (h === 0xda) {
    if (p + 3 > r.end) return -1;
    len = ((b[p + 1] as number) << 8) | (b[p + 2] as number);
    at = p + 3;
  } else if (h === 0xdb) {
    if (p + 5 > r.end) return -1;
    len = readU32(b, p + 1);
    at = p + 5;
  } else return -1;
  if (at + len > r.end) return -1;
  r.pos = at;
  return len;
}

/** The ASCII string of `bytes[from..from+len)`, or undefined if a byte is not ASCII. */
function readAscii(bytes: Uint8Array, from: number, len: number): string | undefined {
  if (len <= 12) {
    // Short: built in JS (V8 keeps strings this short flat).
    let s = '';
    for (let i = from; i < from + len; i++) {
      const c = bytes[i] as number;
      if (c >= 0x80) return undefined;
      s += String.fromCharCode(c);
    }
    return s;
  }
  for (let i = from; i < from + len; i++) if ((bytes[i] as number) >= 0x80) return undefined;
  const buf = Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return buf.toString('latin1', from, from + len);
}

/** Writes a string: ASCII byte by byte, anything else as UTF-8 through Buffer. */
function writeString(w: SchemaWriter, s: string): boolean {
  const n = s.length;
  let ascii = true;
  for (let i = 0; i < n; i++) {
    if (s.charCodeAt(i) >= 0x80) {
      ascii = false;
      break;
    }
  }
  const bytes = ascii ? n : Buffer.byteLength(s, 'utf8');
  if (!writeLengthHeader(w, bytes, 0xa0, 0xd9)) return false;
  if (w.pos + bytes > w.limit) return full(w);
  const b = w.buf;
  const p = w.pos;
  if (ascii && n <= 32) for (let i = 0; i < n; i++) b[p + i] = s.charCodeAt(i);
  else b.write(s, p, bytes, ascii ? 'latin1' : 'utf8');
  w.pos = p + bytes;
  return true;
}

/**
 * Writes a str (fix = 0xa0, first sized = 0xd9) or bin (fix = -1, 0xc4)
 * header for `len` bytes, in the smallest form msgpackr uses.
 */
function writeLengthHeader(w: SchemaWriter, len: number, fix: number, sized8: number): boolean {
  const b = w.buf;
  const p = w.pos;
  if (fix >= 0 && len < 0x20) {
    if (p + 1 > w.limit) return full(w);
    b[p] = fix | len;
    w.pos = p + 1;
  } else if (len < 0x100) {
    if (p + 2 > w.limit) return full(w);
    b[p] = sized8;
    b[p + 1] = len;
    w.pos = p + 2;
  } else if (len < 0x10000) {
    if (p + 3 > w.limit) return full(w);
    b[p] = sized8 + 1;
    b[p + 1] = len >>> 8;
    b[p + 2] = len & 0xff;
    w.pos = p + 3;
  } else {
    if (p + 5 > w.limit) return full(w);
    b[p] = sized8 + 2;
    putU32(b, p + 1, len);
    w.pos = p + 5;
  }
  return true;
}

/** A byte-for-byte match of `expected` at r.pos (a whole str, header included); advances on a match. */
function matchBytes(r: SchemaReader, expected: Uint8Array): boolean {
  const b = r.bytes;
  const p = r.pos;
  const n = expected.length;
  if (p + n > r.end) return false;
  for (let i = 0; i < n; i++) if (b[p + i] !== expected[i]) return false;
  r.pos = p + n;
  return true;
}

/**
 * True if `s` is well-formed UTF-16, so its UTF-8 bytes decode back to `s`.
 * A lone surrogate is written as U+FFFD's bytes, which msgpackr reads as
 * U+FFFD: a name with one is never matched by the generic path, so the
 * compiled codecs must not match it by those bytes either.
 */
function wellFormed(s: string): boolean {
  return Buffer.from(s, 'utf8').toString('utf8') === s;
}

/** The MessagePack str of `s` (header included), as this encoder writes it. */
function strBytes(s: string): Uint8Array {
  const w = new SchemaWriter();
  w.buf = Buffer.alloc(Buffer.byteLength(s, 'utf8') + 5);
  w.limit = w.buf.length;
  writeString(w, s);
  return w.buf.subarray(0, w.pos);
}

// ---- schema nodes ---------------------------------------------------------

function kindOf(schema: TSchema): unknown {
  return (schema as unknown as Record<symbol, unknown>)[Kind];
}

function isOptional(schema: TSchema): boolean {
  return (schema as unknown as Record<symbol, unknown>)[OptionalKind] === 'Optional';
}

function num(schema: TSchema, key: string): number | undefined {
  const v = (schema as unknown as Record<string, unknown>)[key];
  return typeof v === 'number' ? v : undefined;
}

/** Compiles one schema into a node: natively when it can, else as an opaque field. */
function compileNode(schema: TSchema, opaque: OpaqueSupport): Node {
  return compileNative(schema, opaque) ?? compileOpaque(schema, opaque);
}

function compileNative(schema: TSchema, opaque: OpaqueSupport): Node | undefined {
  switch (kindOf(schema)) {
    case 'Integer':
    case 'Number':
      return compileNumber(schema);
    case 'Boolean':
      if (!onlyKeywords(schema, ['type'])) return undefined;
      return { dec: decBoolean, enc: encBoolean };
    case 'String':
      return compileString(schema);
    case 'Uint8Array':
      return compileBytes(schema);
    case 'Literal':
      return compileLiterals(schema, [schema]);
    case 'Union': {
      const anyOf = (schema as unknown as { anyOf?: TSchema[] }).anyOf;
      if (anyOf === undefined || !onlyKeywords(schema, ['anyOf'])) return undefined;
      if (anyOf.length === 0 || !anyOf.every((s) => kindOf(s) === 'Literal')) return undefined;
      return compileLiterals(schema, anyOf);
    }
    case 'Array':
      return compileArray(schema, opaque);
    case 'Object':
      return compileObject(schema, opaque);
    default:
      return undefined;
  }
}

function compileNumber(schema: TSchema): Node | undefined {
  const keys = ['type', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'];
  if (!onlyKeywords(schema, keys)) return undefined;
  const integer = kindOf(schema) === 'Integer';
  const min = num(schema, 'minimum') ?? -Infinity;
  const max = num(schema, 'maximum') ?? Infinity;
  const xmin = num(schema, 'exclusiveMinimum') ?? -Infinity;
  const xmax = num(schema, 'exclusiveMaximum') ?? Infinity;
  // TypeBox: an Integer is Number.isInteger; a Number is finite (NaN and ±Infinity refused).
  const dec: Dec = (r) => {
    const v = readNumber(r);
    if (v === FALLBACK) return FALLBACK;
    if (integer ? !Number.isInteger(v) : !Number.isFinite(v)) return FALLBACK;
    if (v < min || v > max || v <= xmin || v >= xmax) return FALLBACK;
    return v;
  };
  return { dec, enc: encNumber };
}

const encNumber: Enc = (w, v) => typeof v === 'number' && writeNumber(w, v);

const decBoolean: Dec = (r) => {
  if (r.pos >= r.end) return FALLBACK;
  const h = r.bytes[r.pos];
  if (h === 0xc2 || h === 0xc3) {
    r.pos++;
    return h === 0xc3;
  }
  return FALLBACK;
};

const encBoolean: Enc = (w, v) => {
  if (typeof v !== 'boolean') return false;
  if (w.pos + 1 > w.limit) return full(w);
  w.buf[w.pos++] = v ? 0xc3 : 0xc2;
  return true;
};

function compileString(schema: TSchema): Node | undefined {
  if (!onlyKeywords(schema, ['type', 'minLength', 'maxLength'])) return undefined;
  const min = num(schema, 'minLength') ?? 0;
  const max = num(schema, 'maxLength') ?? Infinity;
  const dec: Dec = (r) => {
    const len = readStrHeader(r);
    // An ASCII string has as many UTF-16 code units (TypeBox's lengths) as bytes.
    if (len < 0 || len < min || len > max) return FALLBACK;
    const s = readAscii(r.bytes, r.pos, len);
    if (s === undefined) return FALLBACK;
    r.pos += len;
    return s;
  };
  return { dec, enc: encString };
}

const encString: Enc = (w, v) => typeof v === 'string' && writeString(w, v);

function compileBytes(schema: TSchema): Node | undefined {
  if (!onlyKeywords(schema, ['type', 'minByteLength', 'maxByteLength', 'shortLived'])) {
    return undefined;
  }
  const min = num(schema, 'minByteLength') ?? 0;
  const max = num(schema, 'maxByteLength') ?? Infinity;
  // A field its receiver does not keep (codec.ts, shortLivedBytes) is a view of any size.
  const shortLived = (schema as unknown as { shortLived?: unknown }).shortLived === true;
  const dec: Dec = (r) => {
    const b = r.bytes;
    const p = r.pos;
    if (p >= r.end) return FALLBACK;
    const h = b[p] as number;
    let len: number;
    let at: number;
    if (h === 0xc4) {
      if (p + 2 > r.end) return FALLBACK;
      len = b[p + 1] as number;
      at = p + 2;
    } else if (h === 0xc5) {
      if (p + 3 > r.end) return FALLBACK;
      len = ((b[p + 1] as number) << 8) | (b[p + 2] as number);
      at = p + 3;
    } else if (h === 0xc6) {
      if (p + 5 > r.end) return FALLBACK;
      len = readU32(b, p + 1);
      at = p + 5;
    } else return FALLBACK;
    if (at + len > r.end || len < min || len > max) return FALLBACK;
    r.pos = at + len;
    // A short-lived field of stable input: a plain Uint8Array view (codec.ts, shortLivedBytes).
    if (shortLived && r.viewBytesMin !== Infinity) {
      return new Uint8Array(r.viewBuffer, r.viewOffset + at, len);
    }
    // A large field of stable input stays a view (see the file comment), as msgpackr's would.
    if (len >= r.viewBytesMin) return b.subarray(at, at + len);
    const copy = Buffer.allocUnsafe(len);
    if (len <= 64) for (let i = 0; i < len; i++) copy[i] = b[at + i] as number;
    else copy.set(b.subarray(at, at + len));
    return copy;
  };
  const enc: Enc = (w, v) => {
    if (!(v instanceof Uint8Array)) return false;
    const len = v.length;
    if (!writeLengthHeader(w, len, -1, 0xc4)) return false;
    const p = w.pos;
    if (p + len > w.limit) return full(w);
    const b = w.buf;
    if (len <= COPY_LOOP_BYTES_MAX) for (let i = 0; i < len; i++) b[p + i] = v[i] as number;
    else b.set(v, p);
    w.pos = p + len;
    return true;
  };
  return { dec, enc };
}

/**
 * Byte fields up to this long are written byte by byte, longer ones with
 * `set` (one call, a memmove). Measured (Node 20, x86-64, 2026-12-06, CPU
 * time per copy into a Buffer): loop 7 / 17 / 40-60 ns at 4 / 16 / 44
 * bytes, `set` ~10.5 ns from 4 to 64 bytes; they cross near 10 bytes.
 */
const COPY_LOOP_BYTES_MAX = 10;

/** A Literal, or a Union of Literals: strings compared byte for byte, numbers and booleans by value. */
function compileLiterals(schema: TSchema, literals: readonly TSchema[]): Node | undefined {
  if (kindOf(schema) === 'Literal' && !onlyKeywords(schema, ['type', 'const'])) return undefined;
  const consts: (string | number | boolean)[] = [];
  for (const l of literals) {
    if (!onlyKeywords(l, ['type', 'const'])) return undefined;
    const c = (l as unknown as { const?: unknown }).const;
    if (typeof c !== 'string' && typeof c !== 'number' && typeof c !== 'boolean') return undefined;
    if (typeof c === 'number' && !Number.isFinite(c)) return undefined;
    if (typeof c === 'string' && !wellFormed(c)) return undefined;
    consts.push(c);
  }
  const strings = consts
    .filter((c): c is string => typeof c === 'string')
    .map((c) => ({ value: c, bytes: strBytes(c) }));
  const others = consts.filter((c) => typeof c !== 'string');
  const dec: Dec = (r) => {
    for (const s of strings) if (matchBytes(r, s.bytes)) return s.value;
    if (others.length === 0) return FALLBACK;
    const h = r.pos < r.end ? (r.bytes[r.pos] as number) : -1;
    if (h === 0xc2 || h === 0xc3) {
      const v = h === 0xc3;
      if (!others.includes(v)) return FALLBACK;
      r.pos++;
      return v;
    }
    const at = r.pos;
    const v = readNumber(r);
    if (v === FALLBACK || !others.includes(v)) {
      r.pos = at;
      return FALLBACK;
    }
    return v;
  };
  const enc: Enc = (w, v) => {
    if (typeof v === 'string') {
      // One of the literals (a message's type, say): its bytes are ready.
      for (const s of strings) {
        if (s.value !== v) continue;
        const b = s.bytes;
        const p = w.pos;
        if (p + b.length > w.limit) return full(w);
        for (let i = 0; i < b.length; i++) w.buf[p + i] = b[i] as number;
        w.pos = p + b.length;
        return true;
      }
      return writeString(w, v);
    }
    if (typeof v === 'number') return writeNumber(w, v);
    return encBoolean(w, v);
  };
  return { dec, enc };
}

/**
 * Reads an array (`fix` 0x90, `sized16` 0xdc) or map (0x80, 0xde) header:
 * the count (r.pos then at the first item), or -1. The 32-bit form is the
 * byte after `sized16`. {@link writeContainerHeader} writes them.
 */
function readContainerHeader(r: SchemaReader, fix: number, sized16: number): number {
  const b = r.bytes;
  const p = r.pos;
  if (p >= r.end) return -1;
  const h = b[p] as number;
  if (h >= fix && h <= fix + 0x0f) {
    r.pos = p + 1;
    return h & 0x0f;
  }
  if (h === sized16) {
    if (p + 3 > r.end) return -1;
    r.pos = p + 3;
    return ((b[p + 1] as number) << 8) | (b[p + 2] as number);
  }
  if (h === sized16 + 1) {
    if (p + 5 > r.end) return -1;
    r.pos = p + 5;
    return readU32(b, p + 1);
  }
  return -1;
}

function writeContainerHeader(w: SchemaWriter, n: number, fix: number, sized16: number): boolean {
  const b = w.buf;
  const p = w.pos;
  if (n < 16) {
    if (p + 1 > w.limit) return full(w);
    b[p] = fix | n;
    w.pos = p + 1;
  } else if (n < 0x10000) {
    if (p + 3 > w.limit) return full(w);
    b[p] = sized16;
    b[p + 1] = n >>> 8;
    b[p + 2] = n & 0xff;
    w.pos = p + 3;
  } else {
    if (p + 5 > w.limit) return full(w);
    b[p] = sized16 + 1;
    putU32(b, p + 1, n);
    w.pos = p + 5;
  }
  return true;
}

function compileArray(schema: TSchema, opaque: OpaqueSupport): Node | undefined {
  if (!onlyKeywords(schema, ['type', 'items', 'minItems', 'maxItems'])) return undefined;
  const itemSchema = (schema as unknown as { items?: TSchema }).items;
  if (itemSchema === undefined || isOptional(itemSchema)) return undefined;
  const item = compileNode(itemSchema, opaque);
  const min = num(schema, 'minItems') ?? 0;
  const max = num(schema, 'maxItems') ?? Infinity;
  const dec: Dec = (r, depth) => {
    // checkMessagePack's rule: a container at this depth must be within depthMax.
    if (depth + 1 > r.depthMax) return FALLBACK;
    const n = readContainerHeader(r, 0x90, 0xdc);
    // Every item takes a byte at least: a count beyond what is left is a lie.
    if (n < 0 || n < min || n > max || n > r.end - r.pos) return FALLBACK;
    const out: unknown[] = [];
    for (let i = 0; i < n; i++) {
      const v = item.dec(r, depth + 1);
      if (v === FALLBACK) return FALLBACK;
      out.push(v);
    }
    return out;
  };
  const enc: Enc = (w, v) => {
    if (!Array.isArray(v)) return false;
    const items = v as unknown[];
    if (!writeContainerHeader(w, items.length, 0x90, 0xdc)) return false;
    for (let i = 0; i < items.length; i++) if (!item.enc(w, items[i])) return false;
    return true;
  };
  return { dec, enc };
}

/** Properties of a closed object compiled natively; more go opaque. */
const OBJECT_FIELDS_MAX = 30;
/** The value of an absent optional property while an object is being decoded. */
const ABSENT: unique symbol = Symbol('absent');

interface Field {
  readonly key: string;
  /** The key as a MessagePack str (header included). */
  readonly keyBytes: Uint8Array;
  readonly optional: boolean;
  readonly node: Node;
}

/** A closed object's node, with its fields (compileMessage builds the message decoders from them). */
interface ObjectNode extends Node {
  readonly fields: readonly Field[];
}

function compileObject(schema: TSchema, opaque: OpaqueSupport): ObjectNode | undefined {
  const s = schema as unknown as {
    properties?: Record<string, TSchema>;
    required?: string[];
    additionalProperties?: unknown;
  };
  if (s.additionalProperties !== false || s.properties === undefined) return undefined;
  if (!onlyKeywords(schema, ['type', 'properties', 'required', 'additionalProperties'])) {
    return undefined;
  }
  const entries = Object.entries(s.properties);
  // A key every object has already (`__proto__` would mean something else in
  // the generated object literal; TypeBox's check reads an absent optional
  // `toString` as Object.prototype's, and refuses the message), or one msgpackr
  // would not read back as itself: the generic path decides.
  if (
    entries.length > OBJECT_FIELDS_MAX ||
    entries.some(([k]) => k in Object.prototype || !wellFormed(k))
  ) {
    return undefined;
  }
  const props = s.properties;
  const required = new Set(s.required ?? []);
  const fields: Field[] = entries.map(([key, property]) => ({
    key,
    keyBytes: strBytes(key),
    optional: !required.has(key),
    node: compileNode(property, opaque),
  }));
  // TypeBox's `required` must name exactly the non-optional properties.
  for (const f of fields) if (f.optional !== isOptional(props[f.key] as TSchema)) return undefined;
  if ([...required].some((k) => !Object.hasOwn(props, k))) return undefined;
  const requiredMask = fields.reduce((m, f, i) => (f.optional ? m : m | (1 << i)), 0);
  const build = builder(fields);
  const values: unknown[] = fields.map(() => ABSENT);
  const count = fields.length;
  const inOrder = straightDecoder(fields);
  const dec: Dec = (r, depth) => {
    if (depth + 1 > r.depthMax) return FALLBACK;
    const n = readContainerHeader(r, 0x80, 0xde);
    if (n < 0 || n > count) return FALLBACK;
    if (n === count) {
      // Every field, in schema order (what this encoder writes): straight-line code.
      const at = r.pos;
      const v = inOrder(r, depth + 1);
      if (v !== OUT_OF_ORDER) return v;
      r.pos = at;
    }
    // Cleared first: a decode that fell back midway may have left values behind.
    for (let i = 0; i < count; i++) values[i] = ABSENT;
    let seen = 0;
    let expect = 0;
    for (let k = 0; k < n; k++) {
      // The keys usually come in schema order: try the next one first.
      let i = expect < count && matchBytes(r, (fields[expect] as Field).keyBytes) ? expect : -1;
      if (i < 0) {
        for (let j = 0; j < count; j++) {
          if (j !== expect && matchBytes(r, (fields[j] as Field).keyBytes)) {
            i = j;
            break;
          }
        }
        if (i < 0) return FALLBACK; // not a key of the schema (or not written as this encoder would)
      }
      const bit = 1 << i;
      if ((seen & bit) !== 0) return FALLBACK; // a duplicate: msgpackr keeps the last
      seen |= bit;
      const v = (fields[i] as Field).node.dec(r, depth + 1);
      if (v === FALLBACK) return FALLBACK;
      values[i] = v;
      expect = i + 1;
    }
    if ((seen & requiredMask) !== requiredMask) return FALLBACK;
    const out = build(values);
    // Let go of the values (a byte field may be a view of a socket read).
    for (let i = 0; i < count; i++) values[i] = ABSENT;
    return out;
  };
  const body = straightEncoder(fields);
  const enc: Enc = (w, v) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) {
      return false;
    }
    return body(w, v);
  };
  return { dec, enc, fields };
}

/** The answer of a straight-line decoder whose keys are not all in schema order: the general loop decides. */
const OUT_OF_ORDER: unique symbol = Symbol('out of order');

/**
 * A decoder of an object whose map holds every field in schema order (what
 * this encoder writes), generated once per object schema: each key compared
 * with its bytes written into the source as constants, each field's decoder
 * called from its own call site (one per field and type, so V8 can inline
 * it), the object built by one literal plus the optional fields, in the
 * order {@link builder} uses (the same hidden class). `r.pos` is at the
 * first key; answers OUT_OF_ORDER when a key is not the next field's (the
 * caller then runs the general loop from the first key again), FALLBACK
 * when a field's decoder does (as the general loop would: it decodes the
 * same field with the same decoder). Only numbers (key bytes) and
 * JSON-quoted keys go into the source. With `known` values, the first
 * `known.length` fields were read by the caller (a message's `type`, see
 * CompiledTypes): `r.pos` is then at the next field's key, and the object
 * gets the known values (passed in, not written into the source).
 */
function straightDecoder(fields: readonly Field[], known: readonly unknown[] = []): Dec {
  const lines: string[] = ['const b = r.bytes;', 'const e = r.end;', 'let p = r.pos;'];
  known.forEach((_, i) => lines.push(`const v${i} = K${i};`));
  fields.forEach((f, i) => {
    if (i < known.length) return;
    const kb = [...f.keyBytes];
    const compare = kb.map((byte, j) => `b[p + ${j}] !== ${byte}`).join(' || ');
    lines.push(`if (p + ${kb.length} > e || ${compare}) return O;`);
    lines.push(`r.pos = p + ${kb.length};`);
    lines.push(`const v${i} = d${i}(r, depth);`);
    lines.push(`if (v${i} === F) return F;`);
    lines.push('p = r.pos;');
  });
  const literal = fields
    .map((f, i) => (f.optional ? '' : `${JSON.stringify(f.key)}: v${i}`))
    .filter((x) => x !== '')
    .join(', ');
  lines.push(`const o = { ${literal} };`);
  fields.forEach((f, i) => {
    if (f.optional) lines.push(`o[${JSON.stringify(f.key)}] = v${i};`);
  });
  lines.push('return o;');
  const names = fields.map((_, i) => `d${i}`);
  const knownNames = known.map((_, i) => `K${i}`);
  const body = `return function decodeInOrder(r, depth) {\n${lines.join('\n')}\n};`;
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- generated from key bytes (numbers) and JSON-quoted keys only
  const make = new Function('F', 'O', ...names, ...knownNames, body) as (...args: unknown[]) => Dec;
  return make(FALLBACK, OUT_OF_ORDER, ...fields.map((f) => f.node.dec), ...known);
}

/**
 * The encoder of an object schema's fields (the map header, then each
 * present field's key and value in schema order), generated once per object
 * schema: each property a named load (cached by V8 for the type's objects),
 * each key's bytes written as constants, each field's encoder called from
 * its own call site (so V8 can inline it). False when a required field is
 * missing or undefined (encode generically, as before), when a field's
 * encoder says false, or when out of room (`w.full`). Only numbers (key
 * bytes) and JSON-quoted keys go into the source. With `known` values, the
 * first `known.length` fields (a message's `type`) must hold exactly those
 * values (else false: the generic encoder), and their value bytes are
 * written as constants after their keys.
 */
function straightEncoder(
  fields: readonly Field[],
  known: readonly { readonly value: unknown; readonly bytes: Uint8Array }[] = [],
): (w: SchemaWriter, o: object) => boolean {
  const lines: string[] = [];
  fields.forEach((f, i) => lines.push(`const v${i} = o[${JSON.stringify(f.key)}];`));
  // A known field (a message's type) must hold its value; anything else goes the generic way.
  known.forEach((_, i) => lines.push(`if (v${i} !== K${i}) return false;`));
  lines.push('let n = 0;');
  fields.forEach((f, i) => {
    if (f.optional) lines.push(`if (v${i} !== undefined) n++;`);
    else lines.push(`if (v${i} === undefined) return false;`, 'n++;');
  });
  lines.push('if (!H(w, n, 0x80, 0xde)) return false;');
  lines.push('const b = w.buf;');
  lines.push('let p = 0;');
  fields.forEach((f, i) => {
    // A known field's value bytes are constants too (as its encoder would write them).
    const kb = [...f.keyBytes, ...(known[i]?.bytes ?? [])];
    const write = [
      'p = w.pos;',
      `if (p + ${kb.length} > w.limit) return U(w);`,
      ...kb.map((byte, j) => `b[p + ${j}] = ${byte};`),
      `w.pos = p + ${kb.length};`,
      ...(i < known.length ? [] : [`if (!e${i}(w, v${i})) return false;`]),
    ].join('\n');
    lines.push(f.optional ? `if (v${i} !== undefined) {\n${write}\n}` : write);
  });
  lines.push('return true;');
  const names = fields.map((_, i) => `e${i}`);
  const knownNames = known.map((_, i) => `K${i}`);
  const body = `return function encodeFields(w, o) {\n${lines.join('\n')}\n};`;
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- generated from key bytes (numbers) and JSON-quoted keys only
  const make = new Function('H', 'U', ...names, ...knownNames, body) as (
    ...args: unknown[]
  ) => (w: SchemaWriter, o: object) => boolean;
  return make(
    writeContainerHeader,
    full,
    ...fields.map((f) => f.node.enc),
    ...known.map((k) => k.value),
  );
}

/**
 * A function that builds an object with `keys` from decoded values, leaving
 * out absent optional ones: generated once per object schema, so every
 * object of a type is created by one object literal plus one assignment per
 * optional field present, always in schema order (few hidden classes, no
 * keyed stores, no deletes). The keys are JSON-quoted into the source;
 * nothing else is.
 */
function builder(
  fields: readonly { key: string; optional: boolean }[],
): (values: unknown[]) => object {
  const literal = fields
    .map((f, i) => (f.optional ? '' : `${JSON.stringify(f.key)}: v[${i}]`))
    .filter((p) => p !== '')
    .join(', ');
  const optional = fields
    .map((f, i) => (f.optional ? `if (v[${i}] !== A) o[${JSON.stringify(f.key)}] = v[${i}];` : ''))
    .join('\n');
  const body = `return function build(v) {\nconst o = { ${literal} };\n${optional}\nreturn o;\n};`;
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- generated from schema keys only, JSON-quoted
  const make = new Function('A', body) as (absent: symbol) => (values: unknown[]) => object;
  return make(ABSENT);
}

function compileOpaque(schema: TSchema, opaque: OpaqueSupport): Node {
  const check = compileCheck(schema);
  const copy = opaque.copierOf(schema);
  const range = { start: 0, end: 0 };
  const dec: Dec = (r, depth) => {
    // The same nesting and extension rules as the whole message's scan.
    const end = scanMessagePack(r.bytes, r.depthMax, r.pos, r.end, depth);
    if (end < 0 || end > r.end) return FALLBACK;
    range.start = r.pos;
    range.end = end;
    const value: unknown = opaque.unpackr.unpack(r.bytes, range);
    if (!check.Check(value)) return FALLBACK;
    r.pos = end;
    return copy === undefined ? value : copy(value, r.viewBytesMin !== Infinity);
  };
  const enc: Enc = (w, v) => {
    const bytes = opaque.packr.pack(v);
    const p = w.pos;
    if (p + bytes.length > w.limit) return full(w);
    w.buf.set(bytes, p);
    w.pos = p + bytes.length;
    return true;
  };
  return { dec, enc };
}

/**
 * Compiles a message schema (a closed object with a string literal `type`,
 * as codec.ts's `message()` builds). The `type` field is written first.
 */
export function compileMessage(
  schema: TSchema,
  type: string,
  opaque: OpaqueSupport,
): CompiledMessage | undefined {
  // Generated code needs `new Function`: without it every message takes the generic path.
  if (!codeGenerationAllowed) return undefined;
  const props = (schema as unknown as { properties?: Record<string, TSchema> }).properties;
  if (props === undefined || kindOf(schema) !== 'Object') return undefined;
  // The type first, then the others in schema order (what the encoder writes and the decoder expects first).
  const { type: typeSchema, ...rest } = props;
  if (typeSchema === undefined || !wellFormed(type)) return undefined;
  const ordered = { ...schema, properties: { type: typeSchema, ...rest } } as unknown as TSchema;
  const node = compileObject(ordered, opaque);
  if (node === undefined) return undefined;
  const typeStr = strBytes(type);
  // Once CompiledTypes has matched the type's bytes (a required literal of
  // exactly these bytes, nothing else), the other fields in straight-line code.
  const t = typeSchema as unknown as { const?: unknown };
  const typeIsLiteral =
    kindOf(typeSchema) === 'Literal' &&
    t.const === type &&
    onlyKeywords(typeSchema, ['type', 'const']) &&
    node.fields[0]?.optional === false;
  const afterType = typeIsLiteral ? straightDecoder(node.fields, [type]) : undefined;
  // And the encoder writes the type's key and value as constants (the literal's encoder writes the same bytes).
  const encodeFields = typeIsLiteral
    ? straightEncoder(node.fields, [{ value: type, bytes: typeStr }])
    : undefined;
  const enc: Enc =
    encodeFields === undefined
      ? node.enc
      : (w, v) => {
          // The object node's encoder's checks, then the message's own field encoder.
          if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) {
            return false;
          }
          return encodeFields(w, v);
        };
  const fieldCount = node.fields.length;
  return {
    type,
    typeStr,
    decode(r: SchemaReader): Decoded {
      try {
        const v = node.dec(r, 0);
        return v !== FALLBACK && r.pos === r.end ? v : FALLBACK;
      } catch {
        // Whatever went wrong (msgpackr on an opaque field, say), the generic path decides and explains.
        return FALLBACK;
      }
    },
    decodeAfterType(r: SchemaReader, count: number, start: number): Decoded {
      try {
        // The map at depth 0 holds containers at depth 1 (node.dec's check).
        if (afterType !== undefined && count === fieldCount && r.depthMax >= 1) {
          const v = afterType(r, 1);
          if (v !== OUT_OF_ORDER) return v !== FALLBACK && r.pos === r.end ? v : FALLBACK;
        }
        // Keys in another order, or some absent: the whole map again, as decode() reads it.
        r.pos = start;
        const v = node.dec(r, 0);
        return v !== FALLBACK && r.pos === r.end ? v : FALLBACK;
      } catch {
        return FALLBACK;
      }
    },
    encode(w: SchemaWriter, message: unknown): boolean {
      try {
        return enc(w, message);
      } catch {
        // msgpackr failed on an opaque field (too deep, say): the generic path says why.
        w.full = false;
        return false;
      }
    },
  };
}

/**
 * The compiled messages of a codec, found by their `type`: {@link decode}
 * reads a message's map header and its `type` once, then hands the rest to
 * that type's decoder (CompiledMessage.decodeAfterType), instead of finding
 * the type and then decoding the map from its start again.
 */
export class CompiledTypes {
  /** Compiled messages by the byte length of their `type`. */
  private readonly byNameBytes: (CompiledMessage[] | undefined)[] = [];

  /** Adds a compiled message type. */
  add(c: CompiledMessage): void {
    (this.byNameBytes[Buffer.byteLength(c.type, 'utf8')] ??= []).push(c);
  }

  /**
   * Decodes and validates the message at `r.pos`, which must end exactly at
   * `r.end`: the message, or {@link FALLBACK} (not a map whose first key is
   * `type`, a type not compiled here, or the decoder not sure). Never throws
   * on input.
   */
  decode(r: SchemaReader): Decoded {
    const b = r.bytes;
    const end = r.end;
    const start = r.pos;
    let p = start;
    if (p >= end) return FALLBACK;
    const h = b[p] as number;
    let count: number;
    if (h >= 0x80 && h <= 0x8f) {
      count = h & 0x0f;
      p += 1;
    } else if (h === 0xde) {
      if (p + 3 > end) return FALLBACK;
      count = ((b[p + 1] as number) << 8) | (b[p + 2] as number);
      p += 3;
    } else return FALLBACK;
    // The key "type" as a fixstr (a4 't' 'y' 'p' 'e'), then at least the type's str header.
    if (
      p + 6 > end ||
      b[p] !== 0xa4 ||
      b[p + 1] !== 0x74 ||
      b[p + 2] !== 0x79 ||
      b[p + 3] !== 0x70 ||
      b[p + 4] !== 0x65
    ) {
      return FALLBACK;
    }
    p += 5;
    const t = b[p] as number;
    let len: number;
    if (t >= 0xa0 && t <= 0xbf) len = t & 0x1f;
    else if (t === 0xd9 && p + 2 <= end) len = b[p + 1] as number;
    else return FALLBACK;
    const candidates = this.byNameBytes[len];
    if (candidates === undefined) return FALLBACK;
    for (let k = 0; k < candidates.length; k++) {
      const c = candidates[k] as CompiledMessage;
      // The type's str as the encoder writes it, header included (another form: the generic path).
      const s = c.typeStr;
      const n = s.length;
      if (p + n > end) continue;
      let i = 0;
      while (i < n && b[p + i] === s[i]) i++;
      if (i < n) continue;
      r.pos = p + n;
      return c.decodeAfterType(r, count, start);
    }
    return FALLBACK;
  }
}

function putU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = (v >>> 16) & 0xff;
  b[at + 2] = (v >>> 8) & 0xff;
  b[at + 3] = v & 0xff;
}
