/**
 * CRC32C (Castagnoli), the checksum of wire frames, WAL records, snapshot
 * files and MapReduce run blocks: every user goes through this module.
 * Inputs of {@link CRC32C_NATIVE_BYTES_MIN} bytes or more go to the
 * @node-rs/crc32 addon (SSE 4.2 / ARMv8 CRC instructions) when it loads;
 * smaller ones, and every input on a platform without a prebuilt addon, are
 * computed here with slicing-by-16/8 tables, which give the same answers
 * (test/lib/crc32c.test.ts checks both on random inputs). A call into the
 * addon costs about 65 ns whatever the size, while the tables take ~50 ns
 * for 64 bytes (most messages of a cluster are that small). Node 20 has no
 * built-in CRC32C.
 *
 * ```ts
 * crc32c(Buffer.from('123456789')) === 0xe3069283
 * crc32c(tail, crc32c(head)) === crc32c(Buffer.concat([head, tail]))   // chained
 * ```
 */
import { createRequire } from 'node:module';

/**
 * Inputs at least this long are handed to the native addon. Measured on the
 * development machine (Node 20.20, x86-64, 2026-12-06, CPU time per call):
 * tables 17 / 48 / 90 / 126 / 172 ns at 16 / 64 / 128 / 192 / 256 bytes,
 * native 66 / 84 / 95 / 103 / 108 ns (a call costs ~65 ns whatever the size);
 * they cross between 128 and 192 bytes. At 4 KiB: tables 2.8 µs, native 0.7.
 */
export const CRC32C_NATIVE_BYTES_MIN = 160;

/** The addon's CRC32C: `crc32c(input, initialState)`, an unsigned or signed 32-bit result. */
export type NativeCrc32c = (input: Uint8Array, initialState?: number) => number;

/**
 * Loads the native CRC32C of @node-rs/crc32, or returns undefined if it
 * cannot be used here: the package or its binary for this platform is not
 * installed (its loader throws), or what loaded does not compute CRC32C
 * (checked on the standard check value). The caller then uses the tables.
 * `load` is the module loader (tests pass one that fails).
 */
export function loadNativeCrc32c(
  load: (id: string) => unknown = createRequire(import.meta.url),
): NativeCrc32c | undefined {
  let candidate: unknown;
  try {
    candidate = (load('@node-rs/crc32') as { crc32c?: unknown } | undefined)?.crc32c;
    if (typeof candidate !== 'function') return undefined;
    const check = (candidate as NativeCrc32c)(Buffer.from('123456789'), 0) >>> 0;
    return check === 0xe3069283 ? (candidate as NativeCrc32c) : undefined;
  } catch {
    // An optional speed-up: a missing or broken addon is not an error, the tables run instead.
    return undefined;
  }
}

/** The CRC32C functions, with or without the native addon (see {@link crc32cWith}). */
export interface Crc32cFunctions {
  /** CRC32C of `bytes`, continuing from `initial` (default 0) so checksums can be chained. */
  readonly crc32c: (bytes: Uint8Array, initial?: number) => number;
  /**
   * CRC32C of `bytes[start..end)`, continuing from `initial` (no view is
   * made for a short range, which matters when checking many small frames
   * of one socket read).
   */
  readonly crc32cRange: (bytes: Uint8Array, start: number, end: number, initial?: number) => number;
  /** True if inputs of {@link CRC32C_NATIVE_BYTES_MIN} bytes or more go to the addon. */
  readonly native: boolean;
}

/**
 * The CRC32C functions over `native` (undefined: tables only). Both give
 * the same answers; the module's exports use the addon when it loads.
 */
export function crc32cWith(native: NativeCrc32c | undefined): Crc32cFunctions {
  if (native === undefined) {
    return {
      crc32c: (bytes, initial = 0) => crc32cTables(bytes, initial),
      crc32cRange: (bytes, start, end, initial = 0) => crc32cTables(bytes, initial, start, end),
      native: false,
    };
  }
  const whole = (bytes: Uint8Array, initial = 0): number => {
    if (bytes.length < CRC32C_NATIVE_BYTES_MIN) return crc32cTables(bytes, initial);
    const buf = Buffer.isBuffer(bytes)
      ? bytes
      : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return native(buf, initial) >>> 0;
  };
  return {
    crc32c: whole,
    crc32cRange: (bytes, start, end, initial = 0) =>
      end - start < CRC32C_NATIVE_BYTES_MIN
        ? crc32cTables(bytes, initial, start, end)
        : whole(bytes.subarray(start, end), initial),
    native: true,
  };
}

const functions = crc32cWith(loadNativeCrc32c());

/** CRC32C of `bytes`, continuing from `initial` (default 0) so checksums can be chained. */
export const crc32c: (bytes: Uint8Array, initial?: number) => number = functions.crc32c;

/**
 * CRC32C of `bytes[start..end)`, continuing from `initial` (default 0); no
 * view is made for a short range, which matters when checking many small
 * frames of one socket read.
 */
export const crc32cRange: (
  bytes: Uint8Array,
  start: number,
  end: number,
  initial?: number,
) => number = functions.crc32cRange;

/** True if this process computes long CRC32Cs with the native addon (false: the tables only). */
export const crc32cNative: boolean = functions.native;

/** The reflected Castagnoli polynomial. */
const POLY = 0x82f63b78;

/**
 * Slicing-by-16 tables (Intel's "slicing-by-8" extended; Kounavis and Berry,
 * "A Systematic Approach to Building High Performance Software-based CRC
 * Generators", 2005): table k maps a byte to its CRC after k more zero bytes.
 */
const TABLES = buildTables();

function buildTables(): Int32Array {
  const t = new Int32Array(16 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n] as number;
    for (let k = 1; k < 16; k++) {
      c = (t[c & 0xff] as number) ^ (c >>> 8);
      t[k * 256 + n] = c;
    }
  }
  return t;
}

/**
 * CRC32C of `b[start..end)` (default: all of it) computed with the tables,
 * continuing from `initial`: the fallback of every CRC32C here, and
 * what {@link crc32c} uses below the native threshold.
 */
export function crc32cTables(b: Uint8Array, initial = 0, start = 0, end = b.length): number {
  const t = TABLES;
  let c = ~initial;
  let i = start;
  const n = end;
  for (; i + 16 <= n; i += 16) {
    const a =
      ((b[i] as number) |
        ((b[i + 1] as number) << 8) |
        ((b[i + 2] as number) << 16) |
        ((b[i + 3] as number) << 24)) ^
      c;
    c =
      (t[3840 + (a & 0xff)] as number) ^
      (t[3584 + ((a >>> 8) & 0xff)] as number) ^
      (t[3328 + ((a >>> 16) & 0xff)] as number) ^
      (t[3072 + (a >>> 24)] as number) ^
      (t[2816 + (b[i + 4] as number)] as number) ^
      (t[2560 + (b[i + 5] as number)] as number) ^
      (t[2304 + (b[i + 6] as number)] as number) ^
      (t[2048 + (b[i + 7] as number)] as number) ^
      (t[1792 + (b[i + 8] as number)] as number) ^
      (t[1536 + (b[i + 9] as number)] as number) ^
      (t[1280 + (b[i + 10] as number)] as number) ^
      (t[1024 + (b[i + 11] as number)] as number) ^
      (t[768 + (b[i + 12] as number)] as number) ^
      (t[512 + (b[i + 13] as number)] as number) ^
      (t[256 + (b[i + 14] as number)] as number) ^
      (t[b[i + 15] as number] as number);
  }
  for (; i + 8 <= n; i += 8) {
    const a =
      ((b[i] as number) |
        ((b[i + 1] as number) << 8) |
        ((b[i + 2] as number) << 16) |
        ((b[i + 3] as number) << 24)) ^
      c;
    c =
      (t[1792 + (a & 0xff)] as number) ^
      (t[1536 + ((a >>> 8) & 0xff)] as number) ^
      (t[1280 + ((a >>> 16) & 0xff)] as number) ^
      (t[1024 + (a >>> 24)] as number) ^
      (t[768 + (b[i + 4] as number)] as number) ^
      (t[512 + (b[i + 5] as number)] as number) ^
      (t[256 + (b[i + 6] as number)] as number) ^
      (t[b[i + 7] as number] as number);
  }
  for (; i < n; i++) c = (t[(c ^ (b[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return ~c >>> 0;
}
