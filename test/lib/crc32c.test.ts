import { crc32c as nativeCrc32c } from '@node-rs/crc32';
import { describe, expect, it } from 'vitest';
import { CRC32C_NATIVE_BYTES_MIN, crc32c, crc32cTables } from '../../src/lib/crc32c.js';
import { seededRandom } from '../../src/lib/random.js';

describe('crc32c tables', () => {
  it('agree with the native addon at every length around the tables paths and the threshold', () => {
    const random = seededRandom(19);
    const data = Buffer.alloc(CRC32C_NATIVE_BYTES_MIN + 64);
    for (let i = 0; i < data.length; i++) data[i] = Math.floor(random.next() * 256);
    for (let start = 0; start < 3; start++) {
      for (let n = 0; start + n <= data.length; n++) {
        const bytes = data.subarray(start, start + n);
        const initial = Math.floor(random.next() * 2 ** 32);
        const expected = nativeCrc32c(bytes, initial) >>> 0;
        expect(crc32cTables(bytes, initial)).toBe(expected);
        expect(crc32c(bytes, initial)).toBe(expected);
        expect(crc32c(new Uint8Array(bytes), initial)).toBe(expected);
      }
    }
  });

  it('matches the standard check value and chains across the threshold', () => {
    expect(crc32cTables(Buffer.from('123456789'))).toBe(0xe3069283);
    const big = Buffer.alloc(3 * CRC32C_NATIVE_BYTES_MIN, 0x5a);
    const head = big.subarray(0, 100);
    const tail = big.subarray(100);
    expect(crc32c(tail, crc32c(head))).toBe(crc32c(big));
  });
});
