import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CRC32C_NATIVE_BYTES_MIN,
  crc32c,
  crc32cNative,
  crc32cRange,
  crc32cTables,
  crc32cWith,
  loadNativeCrc32c,
} from '../../src/lib/crc32c.js';
import type { NativeCrc32c } from '../../src/lib/crc32c.js';
import { seededRandom } from '../../src/lib/random.js';

/** The addon as this machine loads it (undefined on a platform without a prebuilt binary). */
const native = loadNativeCrc32c();
const tablesOnly = crc32cWith(undefined);
const withNative = native === undefined ? undefined : crc32cWith(native);

/** Bit-at-a-time CRC32C: the definition, to check the fast paths against. */
function crc32cBitwise(bytes: Uint8Array, initial = 0): number {
  let c = ~initial >>> 0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

function randomBytes(n: number, seed: number): Buffer {
  const random = seededRandom(seed);
  const data = Buffer.alloc(n);
  for (let i = 0; i < n; i++) data[i] = Math.floor(random.next() * 256);
  return data;
}

describe('crc32c tables', () => {
  it('match the bit-at-a-time definition at every length around the tables paths and the threshold', () => {
    const data = randomBytes(CRC32C_NATIVE_BYTES_MIN + 64, 19);
    const random = seededRandom(20);
    for (let start = 0; start < 3; start++) {
      for (let n = 0; start + n <= data.length; n++) {
        const bytes = data.subarray(start, start + n);
        const initial = Math.floor(random.next() * 2 ** 32);
        const expected = crc32cBitwise(bytes, initial);
        expect(crc32cTables(bytes, initial)).toBe(expected);
        expect(crc32c(bytes, initial)).toBe(expected);
        expect(crc32c(new Uint8Array(bytes), initial)).toBe(expected);
        expect(crc32cRange(data, start, start + n, initial)).toBe(expected);
      }
    }
  });

  it('match the standard check value and chain across the threshold', () => {
    expect(crc32cTables(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    const big = Buffer.alloc(3 * CRC32C_NATIVE_BYTES_MIN, 0x5a);
    const head = big.subarray(0, 100);
    const tail = big.subarray(100);
    expect(crc32c(tail, crc32c(head))).toBe(crc32c(big));
    expect(crc32cRange(big, 100, big.length, crc32cRange(big, 0, 100))).toBe(crc32c(big));
  });
});

describe.skipIf(native === undefined)('crc32c with the native addon', () => {
  it('is what this process uses', () => {
    expect(crc32cNative).toBe(true);
  });

  it('agrees with the tables on random inputs of 0..10k bytes, at every offset, whole, by range and chained', () => {
    const n = withNative as ReturnType<typeof crc32cWith>;
    const addon = native as NativeCrc32c;
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 10_240 }),
        fc.nat({ max: 16 }),
        fc.nat(),
        fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        (body, shift, cut, initial) => {
          // At an odd offset inside a larger buffer, so unaligned views are covered.
          const outer = new Uint8Array(shift + body.length + 3);
          outer.set(body, shift);
          const bytes = outer.subarray(shift, shift + body.length);
          const expected = crc32cTables(bytes, initial);
          expect(addon(Buffer.from(bytes), initial) >>> 0).toBe(expected);
          expect(n.crc32c(bytes, initial)).toBe(expected);
          expect(tablesOnly.crc32c(bytes, initial)).toBe(expected);
          expect(n.crc32cRange(outer, shift, shift + body.length, initial)).toBe(expected);
          expect(tablesOnly.crc32cRange(outer, shift, shift + body.length, initial)).toBe(expected);
          // Continuation: any split, each part by either path, chains to the whole.
          const at = body.length === 0 ? 0 : cut % (body.length + 1);
          const first = n.crc32c(bytes.subarray(0, at), initial);
          expect(tablesOnly.crc32c(bytes.subarray(at), first)).toBe(expected);
          expect(n.crc32cRange(outer, shift + at, shift + body.length, first)).toBe(expected);
        },
      ),
      { numRuns: Number(process.env.FC_NUM_RUNS ?? 300) },
    );
  });

  it('agrees with the tables at every length from 0 to 10k and every offset 0..15', () => {
    const n = withNative as ReturnType<typeof crc32cWith>;
    const data = randomBytes(10_240 + 16, 21);
    for (let length = 0; length <= 10_240; length += length < 600 ? 1 : 97) {
      for (let offset = 0; offset < 16; offset++) {
        const expected = crc32cTables(data, 7, offset, offset + length);
        expect(n.crc32cRange(data, offset, offset + length, 7)).toBe(expected);
        expect(n.crc32c(data.subarray(offset, offset + length), 7)).toBe(expected);
      }
    }
  });
});

describe('crc32c without the native addon', () => {
  it('loads nothing when the package or its binary is missing, and nothing that computes another checksum', () => {
    expect(
      loadNativeCrc32c(() => {
        throw new Error('Failed to load native binding');
      }),
    ).toBeUndefined();
    expect(loadNativeCrc32c(() => ({}))).toBeUndefined();
    expect(loadNativeCrc32c(() => undefined)).toBeUndefined();
    // A function that is not CRC32C (say, the CRC-32 of zlib) is refused.
    expect(loadNativeCrc32c(() => ({ crc32c: () => 0xcbf43926 }))).toBeUndefined();
    const good: NativeCrc32c = (input, initial = 0) => crc32cTables(input, initial);
    expect(loadNativeCrc32c(() => ({ crc32c: good }))).toBe(good);
  });

  it('gives the same answers from the tables alone, above the native threshold too', () => {
    expect(tablesOnly.native).toBe(false);
    const data = randomBytes(5 * CRC32C_NATIVE_BYTES_MIN, 22);
    const t = CRC32C_NATIVE_BYTES_MIN;
    for (const n of [0, 1, 63, t - 1, t, t + 1, 3 * t + 5, data.length]) {
      const bytes = data.subarray(0, n);
      expect(tablesOnly.crc32c(bytes, 3)).toBe(crc32cBitwise(bytes, 3));
      expect(tablesOnly.crc32c(bytes)).toBe(crc32c(bytes));
      const end = Math.max(1, n);
      expect(tablesOnly.crc32cRange(data, 1, end, 5)).toBe(crc32cRange(data, 1, end, 5));
    }
  });
});
