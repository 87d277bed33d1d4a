/**
 * The bytes of a KV state-machine snapshot, and back. Version 2 is columnar:
 * the per-key and per-version numbers are typed-array columns and every key
 * and value byte sits in one blob, so encoding is a few bulk copies and
 * decoding validates the columns with tight loops instead of walking a tree
 * of MessagePack arrays (a store of 200k keys took ~300 ms to encode and
 * ~600 ms to decode as version 1, long enough to stall a leader past its
 * election timeout). Version 3 adds what registered sessions need: the log
 * time, the next session id, and per session its last activity and TTL.
 * Versions 1 (one MessagePack map) and 2 still decode (a node's data dir may
 * hold one): their sessions, named by their clients, come back with last
 * activity at log time 0 and the default TTL.
 *
 * ```ts
 * const bytes = encodeKvSnapshot(state);   // equal states give equal bytes
 * const back = decodeKvSnapshot(bytes);    // CohortError CORRUPTION if bytes are not a snapshot
 * ```
 *
 * Version 2 and 3 layout (integers little-endian):
 *
 * | offset | bytes | field                                                          |
 * | ------ | ----- | -------------------------------------------------------------- |
 * | 0      | 4     | magic `KVSN`                                                   |
 * | 4      | 4     | version (3; 2 before registered sessions)                      |
 * | 8      | 4     | CRC32C of every byte from offset 12 to the end                  |
 * | 12     | 4     | length M of the meta map                                       |
 * | 16     | M     | meta: a MessagePack map (revisions, counts, widths, leases, sessions, log time) |
 * |        |       | the eight columns, each starting at a multiple of 8            |
 * |        |       | the blob: per key its bytes, then its live versions' values    |
 *
 * The meta map also holds `noSpace: true` while the store's NOSPACE alarm is
 * raised (state-machine.ts); without the alarm the key is absent, so such a
 * store encodes as before the alarm existed.
 *
 * Columns, in order: per key its byte length and its number of versions; per
 * version (keys in byte order, each key's versions oldest first) its
 * revision, sub, value length + 1 (0: a delete tombstone), createRevision,
 * version and lease. A column's width (1, 2, 4 or 8 bytes; 8 is a float64,
 * the others unsigned integers) is the smallest that holds its largest
 * number, so typical stores (revisions below 2^32) pay 4 bytes or less per
 * number and the choice depends only on the state.
 */
import { Packr, Unpackr } from 'msgpackr';
import { CohortError, isErrorCode } from '../../lib/errors.js';
import { assert } from '../../lib/assert.js';
import { crc32c } from '../../lib/crc32c.js';
import { Latin1View } from '../../lib/latin1.js';
import { copyBytes, toByteString } from './bytes.js';
import type { Version } from './mvcc.js';
import { limits } from '../../lib/limits.js';
import type { SessionOutcome, SessionRecord } from './sessions.js';
import { preview } from './validate.js';

/** Version of the snapshot encoding written; 1, 2 and this one are read, others are CORRUPTION. */
export const KV_SNAPSHOT_VERSION = 3;

/** The columnar version before registered sessions (sessions without log time). */
const V2 = 2;

/** A lease as a snapshot holds it (its keys are implied by the keys' leases). */
export interface KvSnapshotLease {
  readonly id: number;
  readonly ttlMs: number;
  readonly remainingMs: number;
  readonly epoch: number;
}

/** Everything a KV snapshot holds. */
export interface KvSnapshotState {
  /** The store's revision. */
  readonly revision: number;
  /** The compacted revision. */
  readonly compacted: number;
  /** The NOSPACE alarm is raised (absent: false; version 1 snapshots never have it). */
  readonly noSpaceAlarm?: boolean;
  /** The lease table's next id. */
  readonly nextLeaseId: number;
  /** Keys as byte strings, strictly ascending. */
  readonly keys: readonly string[];
  /** Per key (same index), its versions, oldest first, never empty. */
  readonly histories: readonly (readonly Version[])[];
  /**
   * Per key, how many of its versions (from the first) belong to the
   * snapshot; default: all. Lets a snapshot captured from a live store be
   * encoded later while new versions are appended to the same arrays.
   */
  readonly counts?: Uint32Array;
  /** Live leases by id ascending. */
  readonly leases: readonly KvSnapshotLease[];
  /** Sessions in LRU order (oldest first). */
  readonly sessions: readonly (readonly [string, SessionRecord])[];
  /** The log time (largest entry time applied). */
  readonly logTimeMs: number;
  /** The counter the next session id comes from (>= 1). */
  readonly nextSessionId: number;
}

/** What {@link decodeKvSnapshot} returns: the state, with arrays the caller owns. */
export interface DecodedKvSnapshot extends KvSnapshotState {
  readonly keys: string[];
  readonly histories: Version[][];
  readonly leases: KvSnapshotLease[];
  readonly sessions: [string, SessionRecord][];
}

// Plain MessagePack maps (no record extension), so snapshots are readable by any decoder.
const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false });

/** "KVSN": a version 1 snapshot starts with a MessagePack map byte (0x80..0x8f, 0xde, 0xdf) instead. */
const MAGIC = 0x4e53564b;
const HEADER_BYTES = 16;
const CRC_FROM = 12;
/** Column indexes (and their order in the bytes). */
const KEY_LEN = 0;
const HIST_LEN = 1;
const REV = 2;
const SUB = 3;
const VALUE_LEN = 4;
const CREATE_REV = 5;
const VERSION = 6;
const LEASE = 7;
const COLUMNS = 8;

const hostLittleEndian = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

type Column = Uint8Array | Uint16Array | Uint32Array | Float64Array;

function bad(what: string): never {
  throw new CohortError('CORRUPTION', `KV snapshot: ${what}`);
}

/** A non-negative safe integer, or CORRUPTION naming `what`. */
function int(n: unknown, what: string): number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 ? n : bad(what);
}

/** The smallest column width holding `max` (a non-negative safe integer). */
function widthFor(max: number): number {
  return max <= 0xff ? 1 : max <= 0xffff ? 2 : max <= 0xffffffff ? 4 : 8;
}

function align8(n: number): number {
  return n + ((8 - (n & 7)) & 7);
}

/** Byte offsets of the columns and the blob, and the total length, for a meta of `metaBytes`. */
function layout(
  metaBytes: number,
  counts: readonly [number, number],
  widths: readonly number[],
  blobBytes: number,
): { columns: number[]; blob: number; total: number } {
  let at = align8(HEADER_BYTES + metaBytes);
  const columns: number[] = [];
  for (let c = 0; c < COLUMNS; c++) {
    columns.push(at);
    at = align8(at + (c < REV ? counts[0] : counts[1]) * (widths[c] as number));
  }
  return { columns, blob: at, total: at + blobBytes };
}

/** A typed-array view of `count` numbers of `width` bytes at `offset` of `buf` (aligned). */
function view(buf: ArrayBufferLike, offset: number, count: number, width: number): Column {
  switch (width) {
    case 1:
      return new Uint8Array(buf, offset, count);
    case 2:
      return new Uint16Array(buf, offset, count);
    case 4:
      return new Uint32Array(buf, offset, count);
    default:
      return new Float64Array(buf, offset, count);
  }
}

/** Reverses the byte order of each `width`-byte number in `bytes` (big-endian hosts). */
export function swapByteOrder(bytes: Uint8Array, width: number): void {
  if (width === 1) return;
  for (let i = 0; i + width <= bytes.length; i += width) {
    for (let a = i, b = i + width - 1; a < b; a++, b--) {
      const t = bytes[a] as number;
      bytes[a] = bytes[b] as number;
      bytes[b] = t;
    }
  }
}

// ---------------------------------------------------------------- encode

/**
 * The snapshot bytes (version 2) of `s`. Equal states give equal bytes. The
 * caller hands a consistent state (it comes from a live store): this
 * function does not validate it.
 */
export function encodeKvSnapshot(s: KvSnapshotState): Uint8Array {
  const encoder = new KvSnapshotEncoder(s);
  while (!encoder.step(Infinity));
  return encoder.bytes();
}

/**
 * Encodes a snapshot a slice of keys at a time, so a caller can spread the
 * work over several event-loop turns (a 200k-key store takes ~100 ms in one
 * go). The state must not change meanwhile, except as {@link KvSnapshotState.counts}
 * allows: histories may grow past the counted versions.
 *
 * ```ts
 * const enc = new KvSnapshotEncoder(state);
 * while (!enc.step(10_000)) await turn();   // ~5 ms per step
 * const bytes = enc.bytes();                // as encodeKvSnapshot(state)
 * ```
 */
export class KvSnapshotEncoder {
  private phase: 'measure' | 'write' | 'done' = 'measure';
  private cursor = 0;
  private n = 0;
  private versionCount = 0;
  private blobBytes = 0;
  /** Per column, its largest number (pass 1), then its width. */
  private readonly max = [0, 0, 0, 0, 0, 0, 0, 0];
  private out = new Uint8Array(0);
  private at: { columns: number[]; blob: number; total: number } = {
    columns: [],
    blob: 0,
    total: 0,
  };
  private widths: number[] = [];
  private columns: Column[] = [];
  private offset = 0;

  /** Starts encoding `s` (nothing is done until {@link step}). */
  constructor(private readonly s: KvSnapshotState) {}

  /** Does the work for up to `keys` more keys (per pass); true once the bytes are ready. */
  step(keys: number): boolean {
    if (this.phase === 'measure') {
      this.measure(Math.min(this.s.keys.length, this.cursor + keys));
      if (this.cursor === this.s.keys.length) this.allocate();
    } else if (this.phase === 'write') {
      this.write(Math.min(this.s.keys.length, this.cursor + keys));
      if (this.cursor === this.s.keys.length) this.finish();
    }
    return this.phase === 'done';
  }

  /** The snapshot bytes; only once {@link step} returned true. */
  bytes(): Uint8Array {
    assert(this.phase === 'done', 'snapshot bytes taken before the encoding finished');
    return this.out;
  }

  /** Pass 1 over keys up to `end`: counts, the blob's size and each column's largest number. */
  private measure(end: number): void {
    const { keys, histories, counts } = this.s;
    const max = this.max;
    let versionCount = this.versionCount;
    let blobBytes = this.blobBytes;
    // Locals in the loop (the hot part of a snapshot), the array between steps.
    let [maxKey, maxHist, maxRev, maxSub, maxValue, maxCreate, maxVersion, maxLease] = max as [
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    for (let i = this.cursor; i < end; i++) {
      const k = keys[i] as string;
      const hist = histories[i] as readonly Version[];
      const count = counts === undefined ? hist.length : (counts[i] as number);
      blobBytes += k.length;
      if (k.length > maxKey) maxKey = k.length;
      if (count > maxHist) maxHist = count;
      versionCount += count;
      for (let j = 0; j < count; j++) {
        const v = hist[j] as Version;
        if (v.rev > maxRev) maxRev = v.rev;
        if (v.sub > maxSub) maxSub = v.sub;
        if (v.value === undefined) continue;
        const len = v.value.length;
        blobBytes += len;
        if (len + 1 > maxValue) maxValue = len + 1;
        if (v.createRevision > maxCreate) maxCreate = v.createRevision;
        if (v.version > maxVersion) maxVersion = v.version;
        if (v.lease > maxLease) maxLease = v.lease;
      }
    }
    max[KEY_LEN] = maxKey;
    max[HIST_LEN] = maxHist;
    max[REV] = maxRev;
    max[SUB] = maxSub;
    max[VALUE_LEN] = maxValue;
    max[CREATE_REV] = maxCreate;
    max[VERSION] = maxVersion;
    max[LEASE] = maxLease;
    this.versionCount = versionCount;
    this.blobBytes = blobBytes;
    this.cursor = end;
  }

  /** Sizes the output, writes the header and meta, and views the columns. */
  private allocate(): void {
    const s = this.s;
    const keyCount = s.keys.length;
    const versionCount = this.versionCount;
    this.widths = this.max.map(widthFor);
    // pack() may return a view of msgpackr's reused buffer: it is copied into `out` below.
    const meta = packr.pack({
      revision: s.revision,
      compacted: s.compacted,
      // Only when raised: a store without the alarm encodes as it always did.
      ...(s.noSpaceAlarm === true ? { noSpace: true } : {}),
      nextLeaseId: s.nextLeaseId,
      keys: keyCount,
      versions: versionCount,
      widths: this.widths,
      blob: this.blobBytes,
      leases: s.leases.map((l) => [l.id, l.ttlMs, l.remainingMs, l.epoch]),
      sessions: s.sessions.map(([id, r]) => [
        id,
        r.seq,
        r.outcome ?? null,
        r.lastActiveMs,
        r.ttlMs,
      ]),
      logTimeMs: s.logTimeMs,
      nextSessionId: s.nextSessionId,
    });
    this.at = layout(meta.length, [keyCount, versionCount], this.widths, this.blobBytes);
    const out = new Uint8Array(this.at.total);
    const header = new DataView(out.buffer);
    header.setUint32(0, MAGIC, true);
    header.setUint32(4, KV_SNAPSHOT_VERSION, true);
    header.setUint32(12, meta.length, true);
    out.set(meta, HEADER_BYTES);
    for (let c = 0; c < COLUMNS; c++) {
      const count = c < REV ? keyCount : versionCount;
      this.columns.push(
        view(out.buffer, this.at.columns[c] as number, count, this.widths[c] as number),
      );
    }
    this.out = out;
    this.offset = this.at.blob;
    this.cursor = 0;
    this.phase = 'write';
  }

  /** Pass 2 over keys up to `end`: the columns, written in place (host order), and the blob. */
  private write(end: number): void {
    const { keys, histories, counts } = this.s;
    const [keyLen, histLen, rev, sub, valueLen, createRev, version, lease] = this.columns as [
      Column,
      Column,
      Column,
      Column,
      Column,
      Column,
      Column,
      Column,
    ];
    const blob = new Latin1View(this.out);
    let offset = this.offset;
    let n = this.n;
    for (let i = this.cursor; i < end; i++) {
      const k = keys[i] as string;
      const hist = histories[i] as readonly Version[];
      const count = counts === undefined ? hist.length : (counts[i] as number);
      keyLen[i] = k.length;
      histLen[i] = count;
      offset = blob.write(k, offset);
      for (let j = 0; j < count; j++, n++) {
        const v = hist[j] as Version;
        rev[n] = v.rev;
        sub[n] = v.sub;
        // A tombstone's other numbers are zero in the store; zeros here keep the bytes canonical.
        if (v.value === undefined) continue;
        valueLen[n] = v.value.length + 1;
        createRev[n] = v.createRevision;
        version[n] = v.version;
        lease[n] = v.lease;
        offset = blob.write(v.value, offset);
      }
    }
    this.offset = offset;
    this.n = n;
    this.cursor = end;
  }

  /** Byte order (big-endian hosts) and the checksum. */
  private finish(): void {
    assert(this.offset === this.at.total && this.n === this.versionCount, 'snapshot sizes');
    if (!hostLittleEndian) {
      for (let c = 0; c < COLUMNS; c++) {
        const start = this.at.columns[c] as number;
        const w = this.widths[c] as number;
        const count = c < REV ? this.s.keys.length : this.versionCount;
        swapByteOrder(this.out.subarray(start, start + count * w), w);
      }
    }
    new DataView(this.out.buffer).setUint32(8, crc32c(this.out.subarray(CRC_FROM)), true);
    this.phase = 'done';
  }
}

// ---------------------------------------------------------------- decode

/**
 * The state in snapshot `bytes` (version 2, or version 1 as nodes wrote it
 * before), checked for consistency: keys ascending, each key's revisions
 * ascending and at most the store's, lengths adding up to the blob. A
 * version 2 snapshot must also match its checksum. Throws CohortError
 * CORRUPTION (or lets msgpackr's decode error through, for the caller to
 * wrap) otherwise. Lease references are the caller's to check.
 */
export function decodeKvSnapshot(bytes: Uint8Array): DecodedKvSnapshot {
  if (bytes.length >= 4 && readUint32(bytes, 0) === MAGIC) return decodeV2(bytes);
  // A fresh view: msgpackr caches a DataView on the object it decodes, so not on the caller's.
  return decodeV1(unpackr.unpack(bytes.subarray()));
}

function readUint32(bytes: Uint8Array, at: number): number {
  return (
    ((bytes[at] as number) |
      ((bytes[at + 1] as number) << 8) |
      ((bytes[at + 2] as number) << 16) |
      ((bytes[at + 3] as number) << 24)) >>>
    0
  );
}

function decodeV2(bytes: Uint8Array): DecodedKvSnapshot {
  if (bytes.length < HEADER_BYTES) bad('header truncated');
  const version = readUint32(bytes, 4);
  if (version !== KV_SNAPSHOT_VERSION && version !== V2) {
    bad(`version ${version} is not 1, ${V2} or ${KV_SNAPSHOT_VERSION}`);
  }
  if (crc32c(bytes.subarray(CRC_FROM)) !== readUint32(bytes, 8)) bad('checksum mismatch');
  const metaBytes = readUint32(bytes, 12);
  if (HEADER_BYTES + metaBytes > bytes.length) bad('meta truncated');
  const raw: unknown = unpackr.unpack(bytes.subarray(HEADER_BYTES, HEADER_BYTES + metaBytes));
  if (typeof raw !== 'object' || raw === null) return bad('meta is not a map');
  const m = raw as Record<string, unknown>;
  const revision = int(m['revision'], 'revision');
  const compacted = int(m['compacted'], 'compacted');
  if (compacted > revision) bad('compacted revision above the revision');
  const keyCount = int(m['keys'], 'key count');
  const versionCount = int(m['versions'], 'version count');
  const blobBytes = int(m['blob'], 'blob length');
  const w = m['widths'];
  if (
    !Array.isArray(w) ||
    w.length !== COLUMNS ||
    !w.every((x) => x === 1 || x === 2 || x === 4 || x === 8)
  ) {
    bad('column widths');
  }
  const widths = w as number[];
  const at = layout(metaBytes, [keyCount, versionCount], widths, blobBytes);
  if (at.total !== bytes.length) bad(`length ${bytes.length}, layout says ${at.total}`);
  const col = (c: number): Column =>
    readColumn(
      bytes,
      at.columns[c] as number,
      c < REV ? keyCount : versionCount,
      widths[c] as number,
    );
  const keyLen = col(KEY_LEN);
  const histLen = col(HIST_LEN);
  const rev = col(REV);
  const sub = col(SUB);
  const valueLen = col(VALUE_LEN);
  const createRev = col(CREATE_REV);
  const ver = col(VERSION);
  const lease = col(LEASE);
  for (const [c, what] of [
    [keyLen, 'key length'],
    [histLen, 'version count'],
    [rev, 'record revision'],
    [sub, 'record sub'],
    [valueLen, 'record value length'],
    [createRev, 'record createRevision'],
    [ver, 'record version'],
    [lease, 'record lease'],
  ] as const) {
    if (c instanceof Float64Array) checkSafeInts(c, what);
  }
  // The columns add up: versions per key to the version count, lengths to the blob.
  let versions = 0;
  let blobUsed = 0;
  for (let i = 0; i < keyCount; i++) {
    const n = histLen[i] as number;
    const len = keyLen[i] as number;
    if (n === 0 || len === 0) bad('a key without versions or bytes');
    versions += n;
    blobUsed += len;
  }
  if (versions !== versionCount) bad('version counts do not add up');
  for (let j = 0; j < versionCount; j++) {
    const len = valueLen[j] as number;
    if (len > 0) blobUsed += len - 1;
    else if (createRev[j] !== 0 || ver[j] !== 0 || lease[j] !== 0) bad('tombstone with numbers');
  }
  if (blobUsed !== blobBytes) bad('lengths do not add up to the blob');
  const blob = new Latin1View(bytes);
  const keys: string[] = new Array<string>(keyCount);
  const histories: Version[][] = new Array<Version[]>(keyCount);
  let offset = at.blob;
  let n = 0;
  let prevKey = '';
  for (let i = 0; i < keyCount; i++) {
    const len = keyLen[i] as number;
    const keyStr = blob.read(offset, offset + len);
    offset += len;
    if (i > 0 && keyStr <= prevKey) bad('keys out of order');
    prevKey = keyStr;
    const count = histLen[i] as number;
    const hist: Version[] = new Array<Version>(count);
    let last = 0;
    for (let j = 0; j < count; j++, n++) {
      const r = rev[n] as number;
      if (r <= last || r > revision) bad('record revisions out of order');
      last = r;
      const vlen = valueLen[n] as number;
      if (vlen === 0) {
        hist[j] = {
          rev: r,
          sub: sub[n] as number,
          value: undefined,
          createRevision: 0,
          version: 0,
          lease: 0,
        };
        continue;
      }
      hist[j] = {
        rev: r,
        sub: sub[n] as number,
        value: blob.read(offset, offset + vlen - 1),
        createRevision: createRev[n] as number,
        version: ver[n] as number,
        lease: lease[n] as number,
      };
      offset += vlen - 1;
    }
    keys[i] = keyStr;
    histories[i] = hist;
  }
  const noSpace = m['noSpace'];
  if (noSpace !== undefined && noSpace !== true) bad('noSpace flag');
  return {
    revision,
    compacted,
    ...(noSpace === true ? { noSpaceAlarm: true } : {}),
    nextLeaseId: int(m['nextLeaseId'], 'nextLeaseId'),
    keys,
    histories,
    leases: leaseRows(m['leases']),
    ...(version === V2 ? legacySessions(m['sessions']) : sessionState(m)),
  };
}

/**
 * Column `c` of `bytes` as a typed array: a view when aligned on a
 * little-endian host, else a copy (a caller's view at an odd offset, or a
 * big-endian host).
 */
function readColumn(bytes: Uint8Array, offset: number, count: number, width: number): Column {
  const start = bytes.byteOffset + offset;
  if (hostLittleEndian && start % width === 0) return view(bytes.buffer, start, count, width);
  const copy = bytes.slice(offset, offset + count * width);
  if (!hostLittleEndian) swapByteOrder(copy, width);
  return view(copy.buffer, copy.byteOffset, count, width);
}

function checkSafeInts(c: Float64Array, what: string): void {
  for (let i = 0; i < c.length; i++) {
    const x = c[i] as number;
    if (!(x >= 0 && x <= Number.MAX_SAFE_INTEGER && Math.floor(x) === x)) bad(what);
  }
}

function leaseRows(raw: unknown): KvSnapshotLease[] {
  if (!Array.isArray(raw)) return bad('leases missing');
  let prevId = 0;
  return raw.map((row: unknown) => {
    if (!Array.isArray(row) || row.length !== 4) return bad('lease row');
    const r = row as unknown[];
    const id = int(r[0], 'lease id');
    if (id <= prevId) bad('lease ids not ascending from 1');
    prevId = id;
    return {
      id,
      ttlMs: int(r[1], 'lease ttl'),
      remainingMs: int(r[2], 'lease remaining'),
      epoch: int(r[3], 'lease epoch'),
    };
  });
}

/** The sessions of a version 3 meta map, with the log time and the next session id. */
function sessionState(
  m: Record<string, unknown>,
): Pick<DecodedKvSnapshot, 'sessions' | 'logTimeMs' | 'nextSessionId'> {
  const logTimeMs = int(m['logTimeMs'], 'logTimeMs');
  const nextSessionId = int(m['nextSessionId'], 'nextSessionId');
  if (nextSessionId < 1) bad('nextSessionId');
  const sessions = sessionRows(m['sessions'], 5, (r) => {
    const seq = int(r[1], 'session seq');
    const outcome = seq === 0 && r[2] === null ? undefined : sessionOutcome(r[2]);
    const lastActiveMs = int(r[3], 'session last activity');
    if (lastActiveMs > logTimeMs) bad('session active after the log time');
    const ttlMs = int(r[4], 'session ttl');
    if (ttlMs < limits.kvSessionTtlMsMin || ttlMs > limits.kvSessionTtlMsMax) bad('session ttl');
    return { seq, outcome, lastActiveMs, ttlMs };
  });
  return { sessions, logTimeMs, nextSessionId };
}

/**
 * Sessions of a version 1 or 2 snapshot (rows `[clientId, seq, outcome]`,
 * no log time): last active at log time 0, the default TTL.
 */
function legacySessions(
  raw: unknown,
): Pick<DecodedKvSnapshot, 'sessions' | 'logTimeMs' | 'nextSessionId'> {
  const sessions = sessionRows(raw, 3, (r) => ({
    seq: int(r[1], 'session seq'),
    outcome: sessionOutcome(r[2]),
    lastActiveMs: 0,
    ttlMs: limits.kvSessionTtlMsDefault,
  }));
  return { sessions, logTimeMs: 0, nextSessionId: 1 };
}

function sessionRows(
  raw: unknown,
  width: number,
  record: (row: unknown[]) => SessionRecord,
): [string, SessionRecord][] {
  if (!Array.isArray(raw)) return bad('sessions missing');
  const seen = new Set<string>();
  return raw.map((row: unknown): [string, SessionRecord] => {
    if (!Array.isArray(row) || row.length !== width || typeof row[0] !== 'string') {
      bad('session row');
    }
    const r = row as unknown[];
    const id = r[0] as string;
    if (id.length === 0 || id.length > limits.kvClientIdCharsMax) bad('session id');
    if (seen.has(id)) bad('a session twice');
    seen.add(id);
    return [id, record(r)];
  });
}

/**
 * A remembered outcome, checked whole: it is answered to a retry as it is
 * and sized by the session table (reply-size.ts), so a damaged one (a key
 * renamed, a field of the wrong kind) must be CORRUPTION here, not a crash
 * or a malformed reply later.
 */
function sessionOutcome(raw: unknown): SessionOutcome {
  const outcome = plainBytes(raw);
  if (!isRecord(outcome) || typeof outcome['ok'] !== 'boolean') bad('session outcome');
  if (outcome['ok']) checkResult(outcome['result'], 0);
  else checkFailure(outcome['error']);
  return outcome as unknown as SessionOutcome;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function checkFailure(raw: unknown): void {
  if (
    !isRecord(raw) ||
    !isErrorCode(raw['code']) ||
    typeof raw['message'] !== 'string' ||
    typeof raw['definite'] !== 'boolean' ||
    !isRecord(raw['details'])
  ) {
    bad('session outcome error');
  }
}

function checkKv(raw: unknown): void {
  if (
    !isRecord(raw) ||
    !(raw['key'] instanceof Uint8Array) ||
    !(raw['value'] instanceof Uint8Array)
  ) {
    bad('session outcome key-value');
  }
  for (const f of ['createRevision', 'modRevision', 'version', 'lease']) {
    int(raw[f], 'session outcome key-value');
  }
}

function checkKvs(raw: unknown): void {
  if (!Array.isArray(raw)) bad('session outcome key-values');
  for (const kv of raw) checkKv(kv);
}

function checkBool(raw: unknown): void {
  if (typeof raw !== 'boolean') bad('session outcome flag');
}

/** A remembered KvResult (or, at `depth` > 0, a txn's operation result), every field its type has. */
function checkResult(raw: unknown, depth: number): void {
  if (!isRecord(raw)) return bad('session outcome result');
  int(raw['revision'], 'session outcome revision');
  const what = 'session outcome result';
  const type = raw['type'];
  if (depth > 0 && type !== 'range' && type !== 'put' && type !== 'deleteRange' && type !== 'txn') {
    bad(`${what} in a txn`);
  }
  switch (type) {
    case 'range':
      checkKvs(raw['kvs']);
      int(raw['count'], what);
      checkBool(raw['more']);
      return;
    case 'put':
      if (raw['prevKv'] !== undefined) checkKv(raw['prevKv']);
      return;
    case 'deleteRange':
      int(raw['deleted'], what);
      if (raw['prevKvs'] !== undefined) checkKvs(raw['prevKvs']);
      return;
    case 'txn': {
      if (depth > limits.kvTxnDepthMax) bad(`${what}: txn nesting`);
      checkBool(raw['succeeded']);
      const responses = raw['responses'];
      if (!Array.isArray(responses) || responses.length > limits.kvTxnOpsMax) bad(what);
      for (const r of responses) checkResult(r, depth + 1);
      return;
    }
    case 'compact':
      int(raw['compactedRevision'], what);
      return;
    case 'leaseGrant':
      int(raw['id'], what);
      int(raw['ttlMs'], what);
      return;
    case 'leaseRevoke':
      int(raw['deleted'], what);
      return;
    case 'leaseKeepAlive':
      int(raw['id'], what);
      int(raw['ttlMs'], what);
      int(raw['epoch'], what);
      return;
    case 'leaseCheckpoint':
      return;
    case 'leaseExpire': {
      const expired = raw['expired'];
      if (!Array.isArray(expired)) bad(what);
      for (const id of expired) int(id, what);
      int(raw['deleted'], what);
      return;
    }
    case 'sessionOpen':
      if (typeof raw['clientId'] !== 'string') bad(what);
      int(raw['ttlMs'], what);
      return;
    case 'sessionEnd':
      checkBool(raw['existed']);
      return;
    default:
      bad(`${what} type`);
  }
}

/** Copies any Buffer (msgpackr's decoding of bin) in decoded data into a plain Uint8Array. */
function plainBytes(v: unknown): unknown {
  if (v instanceof Uint8Array) return copyBytes(v);
  if (Array.isArray(v)) return v.map(plainBytes);
  if (typeof v === 'object' && v !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = plainBytes(x);
    return out;
  }
  return v;
}

/**
 * Version 1: one MessagePack map `{ v: 1, revision, compacted, nextLeaseId,
 * bytes, keys, leases, sessions }`, `keys` holding per key `[key length,
 * records]` with six numbers per record (rev, sub, value length or -1 for a
 * tombstone, createRevision, version, lease) and `bytes` every key's bytes
 * followed by its values'.
 */
function decodeV1(raw: unknown): DecodedKvSnapshot {
  if (typeof raw !== 'object' || raw === null) return bad('not a map');
  const s = raw as Record<string, unknown>;
  if (s['v'] !== 1) bad(`version ${preview(s['v'])} is not 1, ${V2} or ${KV_SNAPSHOT_VERSION}`);
  const revision = int(s['revision'], 'revision');
  const compacted = int(s['compacted'], 'compacted');
  if (compacted > revision) bad('compacted revision above the revision');
  if (!Array.isArray(s['keys'])) bad('keys missing');
  const leases = leaseRows(s['leases']);
  const sessions = legacySessions(s['sessions']);
  const nextLeaseId = int(s['nextLeaseId'], 'nextLeaseId');
  const blob = s['bytes'];
  if (!(blob instanceof Uint8Array)) return bad('bytes missing');
  let offset = 0;
  const take = (len: number): string => {
    if (offset + len > blob.length) bad('bytes too short');
    const str = toByteString(blob.subarray(offset, offset + len));
    offset += len;
    return str;
  };
  const keys: string[] = [];
  const histories: Version[][] = [];
  let prevKey: string | undefined;
  for (const row of s['keys'] as unknown[]) {
    if (!Array.isArray(row) || row.length !== 2) return bad('key row');
    const [k, recs] = row as [unknown, unknown];
    if (!Array.isArray(recs) || recs.length % 6 !== 0) return bad('key row');
    const keyStr = take(int(k, 'key length'));
    if (keyStr.length === 0 || (prevKey !== undefined && keyStr <= prevKey)) {
      bad('keys empty or out of order');
    }
    prevKey = keyStr;
    const hist: Version[] = [];
    for (let i = 0; i < recs.length; i += 6) {
      const rev = int(recs[i], 'record revision');
      const sub = int(recs[i + 1], 'record sub');
      if (rev > revision || (hist.length > 0 && rev <= (hist[hist.length - 1] as Version).rev)) {
        bad('record revisions out of order');
      }
      if (recs[i + 2] === -1) {
        hist.push({ rev, sub, value: undefined, createRevision: 0, version: 0, lease: 0 });
        continue;
      }
      hist.push({
        rev,
        sub,
        value: take(int(recs[i + 2], 'record value length')),
        createRevision: int(recs[i + 3], 'record createRevision'),
        version: int(recs[i + 4], 'record version'),
        lease: int(recs[i + 5], 'record lease'),
      });
    }
    if (hist.length === 0) bad('key without records');
    keys.push(keyStr);
    histories.push(hist);
  }
  if (offset !== blob.length) bad('bytes too long');
  return { revision, compacted, nextLeaseId, keys, histories, leases, ...sessions };
}
