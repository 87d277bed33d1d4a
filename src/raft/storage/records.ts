/**
 * The on-disk record format shared by WAL segments and snapshot files.
 *
 * A record is `u32 length | u32 crc | u8 type | payload` (little endian), where
 * `length` counts the type byte and the payload, and `crc` is the CRC32C of the
 * length field followed by the type and payload, so a flipped length is caught
 * too. A segment file is the 4-byte magic `CWAL`, a HEADER record (format
 * version, cluster id, node id, sequence number), a CHECKPOINT record (the log
 * position, hard state and known snapshots when the segment was started, so
 * older segments can be deleted), then ENTRIES, HARD_STATE, SNAPSHOT and
 * TRUNCATE records. A snapshot file is the magic `CSNP`, a SNAPSHOT_HEADER
 * record (ids, metadata, data length and CRC32C), then the data.
 *
 * ```ts
 * const bytes = encodeRecord(RecordType.HardState, packer.pack([1, null, 0]));
 * const r = decodeRecordAt(bytes, 0);   // { type, payload, end } or an InvalidRecord reason
 * ```
 */
import { Packr } from 'msgpackr';
import { crc32c } from '../../lib/crc32c.js';
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

/** msgpack with plain maps and arrays only (no record extension), for small metadata payloads. */
export const packer = new Packr({ useRecords: false, mapsAsObjects: true });

function checksum(buf: Uint8Array, start: number, length: number): number {
  return crc32c(
    buf.subarray(start + recordPrefixBytes, start + recordPrefixBytes + length),
    crc32c(buf.subarray(start, start + 4)),
  );
}

/** Encodes one record. */
export function encodeRecord(type: RecordTypeValue, payload: Uint8Array): Buffer {
  const length = 1 + payload.byteLength;
  const out = Buffer.allocUnsafe(recordPrefixBytes + length);
  out.writeUInt32LE(length, 0);
  out[8] = type;
  out.set(payload, 9);
  out.writeUInt32LE(checksum(out, 0, length), 4);
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
  const length = buf.readUInt32LE(offset);
  if (length < 1 || length > limits.walRecordBytesMax) return 'length';
  const end = offset + recordPrefixBytes + length;
  if (end > buf.length) return 'short';
  if (buf.readUInt32LE(offset + 4) !== checksum(buf, offset, length)) return 'checksum';
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
  for (let o = from + 1; o + recordPrefixBytes + 1 <= buf.length; o++) {
    const length = buf.readUInt32LE(o);
    if (length < 1 || o + recordPrefixBytes + length > buf.length) continue;
    if (typeof decodeRecordAt(buf, o) !== 'string') return true;
  }
  return false;
}

const KIND_CODES: Record<EntryKind, number> = { normal: 0, noop: 1, config: 2 };
const KINDS: readonly EntryKind[] = ['normal', 'noop', 'config'];
const ENTRY_HEAD_BYTES = 8 + 8 + 1 + 4;

/** Payload bytes an entry takes in an ENTRIES record. */
export function entryEncodedBytes(e: Entry): number {
  return ENTRY_HEAD_BYTES + e.data.byteLength;
}

/** Encodes entries as an ENTRIES payload: u32 count, then per entry f64 index, f64 term, u8 kind, u32 length, data. */
export function encodeEntries(entries: readonly Entry[], from: number, to: number): Buffer {
  let size = 4;
  for (let i = from; i < to; i++) size += entryEncodedBytes(entries[i] as Entry);
  const out = Buffer.allocUnsafe(size);
  out.writeUInt32LE(to - from, 0);
  let o = 4;
  for (let i = from; i < to; i++) {
    const e = entries[i] as Entry;
    out.writeDoubleLE(e.index, o);
    out.writeDoubleLE(e.term, o + 8);
    out[o + 16] = KIND_CODES[e.kind];
    out.writeUInt32LE(e.data.byteLength, o + 17);
    out.set(e.data, o + ENTRY_HEAD_BYTES);
    o += ENTRY_HEAD_BYTES + e.data.byteLength;
  }
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
