/**
 * Byte keys and their order. Inside the store a key is also held as a "byte
 * string": one UTF-16 code unit (0..255) per byte. JavaScript compares strings
 * by code unit, so byte strings sort exactly like the bytes (unsigned,
 * lexicographic) and serve as fast Map and B-tree keys.
 *
 * ```ts
 * const k = kvKey('app/x');                 // UTF-8 bytes
 * prefixRange(kvKey('app/'));               // { key: 'app/', rangeEnd: 'app0' }
 * compareBytes(kvKey('a'), kvKey('ab'));    // -1
 * ```
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** UTF-8 bytes of `text`: the usual way to make a key or value from a string. */
export function kvKey(text: string): Uint8Array {
  return encoder.encode(text);
}

/** The UTF-8 text of `bytes` (for display; keys need not be UTF-8). */
export function kvText(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/** The single byte 0: as a rangeEnd it means "no upper bound" (etcd's convention). */
export const RANGE_END_ALL: Uint8Array = Uint8Array.of(0);

/** The empty value (DELETE events, keysOnly results). */
export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);

const CHUNK = 4096;
const ASCII = /^[^\u0080-\uffff]*$/;

/** True if every byte is below 0x80 (then UTF-8 and byte strings coincide). */
function isAscii(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if ((bytes[i] as number) >= 0x80) return false;
  return true;
}

/** The byte string of `bytes` (one code unit per byte). */
export function toByteString(bytes: Uint8Array): string {
  // ASCII, the common case, through the native decoder; TextDecoder('latin1')
  // is really windows-1252 and would remap 0x80..0x9f, so not that.
  if (isAscii(bytes)) return decoder.decode(bytes);
  let s = '';
  for (let i = 0; i < bytes.length; i += CHUNK) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + CHUNK) as unknown as number[]);
  }
  return s;
}

/** The bytes of a byte string made by {@link toByteString}. */
export function fromByteString(s: string): Uint8Array {
  if (ASCII.test(s)) return encoder.encode(s);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** Writes the bytes of byte string `s` into `out` at `offset`; returns the offset after them. */
export function writeByteString(s: string, out: Uint8Array, offset: number): number {
  if (ASCII.test(s)) {
    encoder.encodeInto(s, out.subarray(offset, offset + s.length));
  } else {
    for (let i = 0; i < s.length; i++) out[offset + i] = s.charCodeAt(i);
  }
  return offset + s.length;
}

/**
 * A plain Uint8Array copy of `bytes`. Not `bytes.slice()`: on a Node Buffer
 * (what msgpackr decodes bin into) slice() is a view that shares memory.
 */
export function copyBytes(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

/** Bytewise order: negative if a < b, 0 if equal, positive if a > b. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/** True if `a` and `b` hold the same bytes. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && compareBytes(a, b) === 0;
}

/**
 * The smallest key greater than every key starting with `prefix`: the prefix
 * with its last byte below 0xff incremented and the rest dropped; all-0xff or
 * empty prefixes have none, so the range runs to the end ({@link RANGE_END_ALL}).
 */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  for (let i = prefix.length - 1; i >= 0; i--) {
    const b = prefix[i] as number;
    if (b < 0xff) {
      const end = copyBytes(prefix.subarray(0, i + 1));
      end[i] = b + 1;
      return end;
    }
  }
  return RANGE_END_ALL;
}

/** `{ key, rangeEnd }` selecting every key that starts with `prefix` (all keys for an empty one). */
export function prefixRange(prefix: Uint8Array): { key: Uint8Array; rangeEnd: Uint8Array } {
  return {
    key: prefix.length === 0 ? RANGE_END_ALL : prefix,
    rangeEnd: prefixEnd(prefix),
  };
}

/** `{ key, rangeEnd }` selecting every key >= `key`. */
export function fromKeyRange(key: Uint8Array): { key: Uint8Array; rangeEnd: Uint8Array } {
  return { key, rangeEnd: RANGE_END_ALL };
}
