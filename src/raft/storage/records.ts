/**
 * The on-disk record format shared by WAL segments and snapshot files.
 *
 * A record is `u32 crc | u32 length | u8 type | payload` (little endian), where
 * `length` counts the type byte and the payload, and `crc` is the CRC32C of
 * everything after it (length, type, payload), so a flipped length is caught
 * too. A segment file is the 4-byte magic `CWAL`, a HEADER record (format
 * version, cluster id, node id, sequence number), a CHECKPOINT record (the log
 * position, hard state and known snapshots when the segment was started, so
 * older segments can be deleted), then ENTRIES, HARD_STATE, SNAPSHOT and
 * TRUNCATE records. A snapshot file is the magic `CSNP`, a SNAPSHOT_HEADER
 * record (ids, metadata, data length and CRC32C), then the data. The WAL
 * manifest is the magic `CMAN` and one MANIFEST record (ids, the newest
 * segment whose start is durable).
 *
 * ```ts
 * const bytes = encodeRecord(RecordType.HardState, packer.pack([1, null, 0]));
 * const r = decodeRecordAt(bytes, 0);   // { type, payload, end } or an InvalidRecord reason
 * ```
 */
import { Packr } from 'msgpackr';
import { crc32c, crc32cRange } from '../../lib/crc32c.js';
import { limits } from '../../lib/limits.js';
import type { LogIndex, Term } from '../../lib/ids.js';
import type { Entry, EntryKind } from '../core/types.js';

/** Record types. Values are stored on disk: never renumber. */
export const RecordType = {
  Header: 1,
  Checkpoint: 2,
  Entries: 3,
  HardState: 4,
  Snapshot: 5,
  Truncate: 6,
  SnapshotHeader: 7,
  Manifest: 8,
} as const;

/** A record type value. */
export type RecordTypeValue = (typeof RecordType)[keyof typeof RecordType];

const TYPES: ReadonlySet<number> = new Set(Object.values(RecordType));

/** Bytes before a record's type: length + crc. */
export const recordPrefixBytes = 8;

/** Magic at the start of a WAL segment. */
export const segmentMagic = Buffer.from('CWAL', 'latin1');
/** Magic at the start of a snapshot file. */
export const snapshotMagic = Buffer.from('CSNP', 'latin1');
/** Magic at the start of the WAL manifest. */
export const manifestMagic = Buffer.from('CMAN', 'latin1');

/** msgpack with plain maps and arrays only (no record extension), for small metadata payloads. */
export const packer = new Packr({ useRecords: false, mapsAsObjects: true });

/** CRC32C of the record at `start` whose length field says `length`. */
function checksum(buf: Buffer, start: number, length: number): number {
  return crc32cRange(buf, start + 4, start + recordPrefixBytes + length);
}

/** Bytes a record with a payload of `payloadBytes` takes. */
export function recordBytes(payloadBytes: number): number {
  return recordPrefixBytes + 1 + payloadBytes;
}

/** Writes the length and type of a record at `offset`; the payload goes at offset + 9, then {@link sealRecord}. */
export function openRecord(
  buf: Buffer,
  offset: number,
  type: RecordTypeValue,
  payloadBytes: number,
): void {
  buf.writeUInt32LE(1 + payloadBytes, offset + 4);
  buf[offset + recordPrefixBytes] = type;
}

/** Computes and stores the checksum of the record at `offset` once its payload is in place. */
export function sealRecord(buf: Buffer, offset: number, payloadBytes: number): void {
  buf.writeUInt32LE(checksum(buf, offset, 1 + payloadBytes), offset);
}

/** Writes a whole record at `offset`; returns the offset after it. */
export function putRecord(
  buf: Buffer,
  offset: number,
  type: RecordTypeValue,
  payload: Uint8Array,
): number {
  openRecord(buf, offset, type, payload.byteLength);
  buf.set(payload, offset + recordPrefixBytes + 1);
  sealRecord(buf, offset, payload.byteLength);
  return offset + recordBytes(payload.byteLength);
}

/** Encodes one record into a new buffer. */
export function encodeRecord(type: RecordTypeValue, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(recordBytes(payload.byteLength));
  putRecord(out, 0, type, payload);
  return out;
}

/** A record read back. */
export interface DecodedRecord {
  readonly type: RecordTypeValue;
  readonly payload: Buffer;
  /** Offset just past the record. */
  readonly end: number;
}

/** Why bytes at an offset are not a valid record. */
export type InvalidRecord = 'short' | 'length' | 'checksum' | 'type';

/** Reads the record at `offset` of `buf`, or says why there is none. */
export function decodeRecordAt(buf: Buffer, offset: number): DecodedRecord | InvalidRecord {
  if (offset + recordPrefixBytes + 1 > buf.length) return 'short';
  const length = buf.readUInt32LE(offset + 4);
  if (length < 1 || length > limits.walRecordBytesMax) return 'length';
  const end = offset + recordPrefixBytes + length;
  if (end > buf.length) return 'short';
  if (buf.readUInt32LE(offset) !== checksum(buf, offset, length)) return 'checksum';
  const type = buf[offset + recordPrefixBytes] as number;
  if (!TYPES.has(type)) return 'type';
  return {
    type: type as RecordTypeValue,
    payload: buf.subarray(offset + recordPrefixBytes + 1, end),
    end,
  };
}

/** True if some valid record starts at any offset in (from, buf.length): tells corruption from a torn tail. */
export function anyValidRecordAfter(buf: Buffer, from: number): boolean {
  // A record's length field is never zero, so none starts past the last non-zero
  // byte's reach: skip a preallocated segment's zeros without decoding them.
  let last = buf.length - 1;
  while (last > from && buf[last] === 0) last--;
  for (let o = from + 1; o <= last && o + recordPrefixBytes + 1 <= buf.length; o++) {
    const length = buf.readUInt32LE(o + 4);
    if (length < 1 || o + recordPrefixBytes + length > buf.length) continue;
    if (typeof decodeRecordAt(buf, o) !== 'string') return true;
  }
  return false;
}

/** Sector size assumed for torn writes: a part of a write this big and aligned may be missing whole. */
export const sectorBytes = 512;

/** CRC32C (Castagnoli, reflected) of one byte from a zero register: the step the bit search runs backwards from. */
const CRC_TABLE = ((): Uint32Array => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/**
 * If the record at `offset` fails its checksum but one flipped bit (in its
 * checksum, length, type or payload) would make it valid, where that bit is
 * (`at`: its byte) and where the record so mended ends; else null.
 *
 * CRC32C is linear, so for a record of fixed length, flipping bit b of byte p
 * changes the checksum by a value that depends only on b and the distance from
 * p to the record's end: the zero-register CRC of that bit followed by that
 * many zero bytes. Walking from the last byte back, those values are updated
 * one table step per byte, and compared with the difference between the
 * stored and the computed checksum.
 */
export function oneBitRepair(buf: Buffer, offset: number): { at: number; end: number } | null {
  if (offset + recordPrefixBytes + 1 > buf.length) return null;
  const stored = buf.readUInt32LE(offset);
  const length = buf.readUInt32LE(offset + 4);
  // A flipped length bit: the record as it was would verify with its length restored.
  const lengthBytes = Buffer.allocUnsafe(4);
  for (let b = 0; b < 32; b++) {
    const l = (length ^ (1 << b)) >>> 0;
    if (l < 1 || l > limits.walRecordBytesMax || offset + recordPrefixBytes + l > buf.length)
      continue;
    lengthBytes.writeUInt32LE(l, 0);
    const rest = buf.subarray(offset + recordPrefixBytes, offset + recordPrefixBytes + l);
    if (crc32c(rest, crc32c(lengthBytes)) === stored) {
      return { at: offset + 4 + (b >> 3), end: offset + recordPrefixBytes + l };
    }
  }
  if (length < 1 || length > limits.walRecordBytesMax) return null;
  const end = offset + recordPrefixBytes + length;
  if (end > buf.length) return null;
  const syndrome = (checksum(buf, offset, length) ^ stored) >>> 0;
  if (syndrome === 0) return null;
  // A flipped checksum bit.
  if ((syndrome & (syndrome - 1)) === 0)
    return { at: offset + ((31 - Math.clz32(syndrome)) >> 3), end };
  // A flipped bit in the type or payload (bytes offset+8 .. end-1).
  const effects = new Uint32Array(8);
  for (let b = 0; b < 8; b++) effects[b] = CRC_TABLE[1 << b] as number;
  for (let p = end - 1; p >= offset + recordPrefixBytes; p--) {
    for (let b = 0; b < 8; b++) {
      const e = effects[b] as number;
      if (e === syndrome) return { at: p, end };
      // One more byte to the end: advance the register through a zero byte.
      effects[b] = ((CRC_TABLE[e & 0xff] as number) ^ (e >>> 8)) >>> 0;
    }
  }
  return null;
}

/**
 * Tells why the bytes at `offset` of the last segment, where
 * {@link decodeRecordAt} said `invalid` and no valid record follows, are not a
 * record: 'torn' if they can be an interrupted write, which was never
 * acknowledged, or 'corrupt' if they were whole once and have been damaged.
 *
 * The WAL only appends into zeros (a preallocated segment) or past the end of
 * the file (a growing one), so the part of a write that never reached the disk
 * reads as zeros or is missing. Torn: the record runs past the end of the
 * file; or its length is zero (its header never landed); or its checksum fails
 * and its last byte, or a whole sector-aligned part of it, reads as zeros.
 * Corrupt: an unknown type under a valid checksum; a length no writer
 * produces; a checksum that one flipped bit would fix (bit rot), unless that
 * bit lies in zeros that run to the record's end (then a tear that lost them
 * explains it as well: a missing last byte 0x04 is one bit from 0x00); or a
 * checksum failure in a record whose bytes are all there. This is the rule
 * etcd's WAL applies to its last record (a torn write is cut, a CRC mismatch
 * is fatal), with the one-bit test added so that a flip next to legitimate
 * zeros is still refused.
 */
export function tornOrCorrupt(
  buf: Buffer,
  offset: number,
  invalid: InvalidRecord,
): 'torn' | 'corrupt' {
  if (invalid === 'type') return 'corrupt';
  const mend = oneBitRepair(buf, offset);
  if (mend !== null && !zeroRange(buf, mend.at, mend.end)) return 'corrupt';
  if (invalid === 'short') return 'torn';
  const length = buf.readUInt32LE(offset + 4);
  if (invalid === 'length') return length === 0 ? 'torn' : 'corrupt';
  const end = offset + recordPrefixBytes + length;
  if (buf[end - 1] === 0) return 'torn';
  for (let from = offset; from < end;) {
    const to = Math.min(end, (Math.floor(from / sectorBytes) + 1) * sectorBytes);
    if (zeroRange(buf, from, to)) return 'torn';
    from = to;
  }
  return 'corrupt';
}

function zeroRange(buf: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (buf[i] !== 0) return false;
  return true;
}

const KINDS: readonly EntryKind[] = ['normal', 'noop', 'config'];
const ENTRY_HEAD_BYTES = 8 + 8 + 1 + 4;

/** The stored code of an entry kind (the index in KINDS; the write was validated, so anything else is 'config'). */
function kindCode(kind: EntryKind): number {
  return kind === 'normal' ? 0 : kind === 'noop' ? 1 : 2;
}

/** Payload bytes an entry takes in an ENTRIES record. */
export function entryEncodedBytes(e: Entry): number {
  return ENTRY_HEAD_BYTES + e.data.byteLength;
}

/** Payload bytes of an ENTRIES record holding entries[from, to). */
export function entriesPayloadBytes(entries: readonly Entry[], from: number, to: number): number {
  let size = 4;
  for (let i = from; i < to; i++) size += entryEncodedBytes(entries[i] as Entry);
  return size;
}

/** A DataView of all of `buf` (for {@link putEntryBodies}; a caller writing often into one buffer keeps one). */
export function viewOf(buf: Buffer): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/**
 * Writes entries[from, to) as an ENTRIES payload at `offset` of `out`: u32 count,
 * then per entry f64 index, f64 term, u8 kind, u32 length, data.
 */
export function putEntries(
  out: Buffer,
  offset: number,
  entries: readonly Entry[],
  from: number,
  to: number,
  view: DataView = viewOf(out),
): void {
  view.setUint32(offset, to - from, true);
  putEntryBodies(out, offset + 4, entries, from, to, view);
}

/**
 * Writes entries[from, to) without the count at `offset` of `out` (to extend an
 * ENTRIES payload whose count is then rewritten); returns the offset after them.
 * `view` must be a DataView of all of `out` ({@link viewOf}): the numbers go
 * through it, which costs far less than Buffer's checked write methods.
 */
export function putEntryBodies(
  out: Buffer,
  offset: number,
  entries: readonly Entry[],
  from: number,
  to: number,
  view: DataView = viewOf(out),
): number {
  let o = offset;
  for (let i = from; i < to; i++) {
    const e = entries[i] as Entry;
    const data = e.data;
    const length = data.byteLength;
    view.setFloat64(o, e.index, true);
    view.setFloat64(o + 8, e.term, true);
    view.setUint8(o + 16, kindCode(e.kind));
    view.setUint32(o + 17, length, true);
    out.set(data, o + ENTRY_HEAD_BYTES);
    o += ENTRY_HEAD_BYTES + length;
  }
  return o;
}

/** Encodes entries[from, to) as an ENTRIES payload in a new buffer. */
export function encodeEntries(entries: readonly Entry[], from: number, to: number): Buffer {
  const out = Buffer.allocUnsafe(entriesPayloadBytes(entries, from, to));
  putEntries(out, 0, entries, from, to);
  return out;
}

/** Decodes an ENTRIES payload; null if malformed. Entry data is copied out of `payload`. */
export function decodeEntries(payload: Buffer): Entry[] | null {
  if (payload.length < 4) return null;
  const count = payload.readUInt32LE(0);
  const out: Entry[] = [];
  let o = 4;
  for (let i = 0; i < count; i++) {
    if (o + ENTRY_HEAD_BYTES > payload.length) return null;
    const index = payload.readDoubleLE(o);
    const term = payload.readDoubleLE(o + 8);
    const kind = KINDS[payload[o + 16] as number];
    const length = payload.readUInt32LE(o + 17);
    o += ENTRY_HEAD_BYTES;
    if (kind === undefined || o + length > payload.length) return null;
    if (!Number.isSafeInteger(index) || !Number.isSafeInteger(term)) return null;
    out.push({
      index: index as LogIndex,
      term: term as Term,
      kind,
      data: new Uint8Array(payload.subarray(o, o + length)),
    });
    o += length;
  }
  return o === payload.length ? out : null;
}
