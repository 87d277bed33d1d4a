/**
 * CRC32C (Castagnoli), the checksum of wire frames and WAL records. Computed by
 * @node-rs/crc32 (SIMD); Node 20 has no built-in CRC32C.
 *
 * ```ts
 * crc32c(Buffer.from('123456789')) === 0xe3069283
 * ```
 */
import { crc32c as nativeCrc32c } from '@node-rs/crc32';

/** CRC32C of `bytes`, continuing from `initial` (default 0) so checksums can be chained. */
export function crc32c(bytes: Uint8Array, initial = 0): number {
  const buf = Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return nativeCrc32c(buf, initial) >>> 0;
}
