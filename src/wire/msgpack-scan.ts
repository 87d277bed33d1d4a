/**
 * A non-recursive pre-check of MessagePack bytes from the network, run before
 * msgpackr (which decodes recursively) sees them. It walks the item headers
 * of the first value with an explicit stack and refuses, with a definite
 * `DECODE_ERROR`:
 *
 * - arrays and maps nested deeper than `depthMax` (an attacker's 9.7 KB frame
 *   of 9,600 nested arrays would otherwise exhaust the call stack of the
 *   decoder, or of any code that walks the decoded value);
 * - extension types other than the two cohort's encoder writes (0 for
 *   `undefined`, -1 for timestamps): msgpackr's other built-in extensions
 *   build Sets, Errors, RegExps and structured-clone references, and some
 *   decode a nested value recursively, which this walk could not bound.
 *
 * It does not validate anything else (truncation, invalid bytes, trailing
 * data): msgpackr reports those. Cost: one pass over the item headers; the
 * contents of strings and byte arrays are skipped by their lengths.
 * Format: https://github.com/msgpack/msgpack/blob/master/spec.md
 *
 * ```ts
 * checkMessagePack(bytes, limits.messageNestingDepthMax); // throws DECODE_ERROR, or returns
 * const value = unpackr.unpack(bytes);
 * ```
 */
import { CohortError } from '../lib/errors.js';
import { readU32 } from './frame.js';

/** Extension types cohort's encoder produces: 0 = undefined (msgpackr), -1 (0xff) = timestamp. */
const ALLOWED_EXT_TYPES = new Set([0x00, 0xff]);

/**
 * Checks the nesting depth and extension types of the MessagePack value at
 * the start of `bytes[start..end)` (default: all of `bytes`; see the file
 * comment); throws a definite `DECODE_ERROR` CohortError, or returns.
 */
export function checkMessagePack(
  bytes: Uint8Array,
  depthMax: number,
  start = 0,
  end = bytes.length,
): void {
  scanMessagePack(bytes, depthMax, start, end, 0);
}

/**
 * {@link checkMessagePack} of one value that lies inside `outer` enclosing
 * arrays or maps (they count toward `depthMax`), returning where the value
 * ends: the offset after it, or -1 if it is cut short by `end` (an offset
 * past `end` is possible when a string's announced length is). Throws what
 * checkMessagePack throws. The compiled codecs find an opaque field's bytes
 * with it (schema-codec.ts).
 */
export function scanMessagePack(
  bytes: Uint8Array,
  depthMax: number,
  start: number,
  end: number,
  outer: number,
): number {
  const n = end;
  /** Items left to read at each open level; `left` is the current level's. */
  const stack: number[] = [];
  let left = 1;
  let pos = start;
  for (;;) {
    if (left === 0) {
      const up = stack.pop();
      if (up === undefined) return pos;
      left = up;
      continue;
    }
    if (pos >= n) return -1; // truncated: msgpackr reports it
    left--;
    const b = bytes[pos++] as number;
    let items = -1; // >= 0: a container with that many items (map: keys + values)
    if (b <= 0x7f || b >= 0xe0) {
      // positive / negative fixint
    } else if (b <= 0x8f) {
      items = (b & 0x0f) * 2;
    } else if (b <= 0x9f) {
      items = b & 0x0f;
    } else if (b <= 0xbf) {
      pos += b & 0x1f;
    } else {
      switch (b) {
        case 0xc0: // nil
        case 0xc1: // never used: msgpackr refuses it
        case 0xc2: // false
        case 0xc3: // true
          break;
        case 0xc4: // bin 8
        case 0xd9: // str 8
          if (pos + 1 > n) return -1;
          pos += 1 + (bytes[pos] as number);
          break;
        case 0xc5: // bin 16
        case 0xda: // str 16
          if (pos + 2 > n) return -1;
          pos += 2 + u16(bytes, pos);
          break;
        case 0xc6: // bin 32
        case 0xdb: // str 32
          if (pos + 4 > n) return -1;
          pos += 4 + readU32(bytes, pos);
          break;
        case 0xc7: // ext 8
          if (pos + 2 > n) return -1;
          checkExt(bytes[pos + 1] as number);
          pos += 2 + (bytes[pos] as number);
          break;
        case 0xc8: // ext 16
          if (pos + 3 > n) return -1;
          checkExt(bytes[pos + 2] as number);
          pos += 3 + u16(bytes, pos);
          break;
        case 0xc9: // ext 32
          if (pos + 5 > n) return -1;
          checkExt(bytes[pos + 4] as number);
          pos += 5 + readU32(bytes, pos);
          break;
        case 0xcc: // uint 8
        case 0xd0: // int 8
          pos += 1;
          break;
        case 0xcd: // uint 16
        case 0xd1: // int 16
          pos += 2;
          break;
        case 0xca: // float 32
        case 0xce: // uint 32
        case 0xd2: // int 32
          pos += 4;
          break;
        case 0xcb: // float 64
        case 0xcf: // uint 64
        case 0xd3: // int 64
          pos += 8;
          break;
        case 0xd4: // fixext 1
        case 0xd5: // fixext 2
        case 0xd6: // fixext 4
        case 0xd7: // fixext 8
        case 0xd8: // fixext 16
          if (pos + 1 > n) return -1;
          checkExt(bytes[pos] as number);
          pos += 1 + (1 << (b - 0xd4));
          break;
        case 0xdc: // array 16
          if (pos + 2 > n) return -1;
          items = u16(bytes, pos);
          pos += 2;
          break;
        case 0xdd: // array 32
          if (pos + 4 > n) return -1;
          items = readU32(bytes, pos);
          pos += 4;
          break;
        case 0xde: // map 16
          if (pos + 2 > n) return -1;
          items = u16(bytes, pos) * 2;
          pos += 2;
          break;
        case 0xdf: // map 32
          if (pos + 4 > n) return -1;
          items = readU32(bytes, pos) * 2;
          pos += 4;
          break;
      }
    }
    if (items < 0) continue;
    // A container opens a level (even an empty one).
    if (outer + stack.length + 1 > depthMax) {
      throw new CohortError(
        'DECODE_ERROR',
        `message nests arrays and maps deeper than ${depthMax} levels`,
        { details: { depthMax, offset: pos } },
      );
    }
    if (items > 0) {
      stack.push(left);
      left = items;
    }
  }
}

function checkExt(type: number): void {
  if (!ALLOWED_EXT_TYPES.has(type)) {
    throw new CohortError(
      'DECODE_ERROR',
      `MessagePack extension type ${type > 127 ? type - 256 : type} is not part of the wire format`,
      { details: { extType: type } },
    );
  }
}

function u16(bytes: Uint8Array, at: number): number {
  return ((bytes[at] as number) << 8) | (bytes[at + 1] as number);
}
