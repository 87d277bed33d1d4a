/**
 * How the WAL's records decode into a log during recovery: the payload codecs
 * of FileStorage's record types and {@link Replay}, which applies records in
 * order and says when one does not fit the log so far (corruption).
 *
 * ```ts
 * const replay = new Replay();
 * const problem = replay.apply(record.type, record.payload, segment); // null if it fits
 * ```
 */
import type { LogIndex, NodeId, Term } from '../../lib/ids.js';
import type { ClusterConfig, Entry, HardState, SnapshotMeta } from '../core/types.js';
import { emptyHardState } from './memory.js';
import { decodeEntries, packer, RecordType } from './records.js';
import type { RecordTypeValue } from './records.js';

/** A WAL segment file as recovery and compaction know it. */
export interface Segment {
  readonly seq: number;
  readonly path: string;
  /** Highest entry index written to it (0 if none): it may go once a retained snapshot covers it. */
  maxIndex: number;
}

/** `n` as 16 hex digits (file names sort in numeric order). */
export function hex16(n: number): string {
  return n.toString(16).padStart(16, '0');
}

/**
 * A snapshot as the log names it: its metadata and the CRC32C of its data. The
 * CRC is part of the file name, so saving a different snapshot at the same
 * index and term never overwrites the file an earlier record names.
 */
export interface SnapRef {
  readonly meta: SnapshotMeta;
  readonly crc: number;
}

/** The file name of a snapshot: index, term and data CRC. */
export function snapshotName(ref: SnapRef): string {
  const { index, term } = ref.meta;
  return `${hex16(index)}-${hex16(term)}-${ref.crc.toString(16).padStart(8, '0')}.snap`;
}

/** A hard state as the compact array stored in records. */
export function hardStateArray(hs: HardState): [number, string | null, number] {
  return [hs.term, hs.vote, hs.commit];
}

/** True if a decoded value is a stored hard-state array. */
export function isHardStateArray(v: unknown): v is [number, string | null, number] {
  return (
    Array.isArray(v) &&
    v.length === 3 &&
    Number.isSafeInteger(v[0]) &&
    (v[1] === null || typeof v[1] === 'string') &&
    Number.isSafeInteger(v[2])
  );
}

/** The hard state a stored array stands for. */
export function toHardState(v: [number, string | null, number]): HardState {
  return { term: v[0] as Term, vote: v[1] as NodeId | null, commit: v[2] as LogIndex };
}

/** True if a decoded value is a cluster configuration. */
export function isConfig(v: unknown): v is ClusterConfig {
  if (typeof v !== 'object' || v === null) return false;
  const c = v as Record<string, unknown>;
  const ids = (x: unknown): boolean => Array.isArray(x) && x.every((i) => typeof i === 'string');
  return (
    ids(c.voters) && ids(c.learners) && (c.votersOutgoing === undefined || ids(c.votersOutgoing))
  );
}

/** Snapshot metadata as the array stored in snapshot file headers. */
export function metaArray(m: SnapshotMeta): [number, number, ClusterConfig] {
  return [m.index, m.term, m.config];
}

/** A snapshot reference as the array stored in SNAPSHOT and CHECKPOINT records. */
export function refArray(r: SnapRef): [number, number, ClusterConfig, number] {
  return [r.meta.index, r.meta.term, r.meta.config, r.crc];
}

/** The snapshot reference a decoded array stands for, or null if malformed. */
export function toRef(v: unknown): SnapRef | null {
  const meta = toMeta(v);
  if (meta === null || !Array.isArray(v)) return null;
  const crc: unknown = v[3];
  if (typeof crc !== 'number' || !Number.isInteger(crc) || crc < 0 || crc >= 2 ** 32) return null;
  return { meta, crc };
}

/** The snapshot metadata a decoded array stands for, or null if malformed. */
export function toMeta(v: unknown): SnapshotMeta | null {
  if (!Array.isArray(v) || v.length < 3) return null;
  const [index, term, config] = v as unknown[];
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(term) || !isConfig(config)) return null;
  return { index: index as LogIndex, term: term as Term, config };
}

/** msgpack-decodes a payload; undefined if it is not valid msgpack. */
export function unpack(payload: Buffer): unknown {
  try {
    return packer.unpack(payload) as unknown;
  } catch {
    return undefined;
  }
}

/** The log as rebuilt from records during recovery. */
export class Replay {
  lastIndex = 0;
  /** Entries known from here to lastIndex (earlier ones were in deleted segments). */
  knownStart = 1;
  entries: Entry[] = [];
  hardState: HardState = emptyHardState;
  /** Snapshots named by the log, in the order named (later wins for equal index). */
  snapshots: SnapRef[] = [];
  started = false;

  /** Applies one record; returns a reason if it does not fit the log so far. */
  apply(type: RecordTypeValue, payload: Buffer, segment: Segment): string | null {
    switch (type) {
      case RecordType.Checkpoint: {
        const v = unpack(payload);
        if (typeof v !== 'object' || v === null) return 'malformed checkpoint';
        const c = v as Record<string, unknown>;
        if (!Number.isSafeInteger(c.base) || !isHardStateArray(c.hs) || !Array.isArray(c.snaps)) {
          return 'malformed checkpoint';
        }
        const snaps = c.snaps.map(toRef);
        if (snaps.some((s) => s === null)) return 'malformed checkpoint snapshot';
        const base = c.base as number;
        if (!this.started) {
          this.lastIndex = base;
          this.knownStart = base + 1;
          this.started = true;
        } else if (base !== this.lastIndex) {
          return `checkpoint says the log ends at ${base}, previous segments end at ${this.lastIndex}`;
        }
        this.hardState = toHardState(c.hs);
        for (const s of snaps as SnapRef[]) this.noteSnapshot(s);
        return null;
      }
      case RecordType.Entries: {
        const entries = decodeEntries(payload);
        if (entries === null || entries.length === 0) return 'malformed entries record';
        for (const e of entries) {
          if (e.index !== this.lastIndex + 1) {
            return `entry ${e.index} does not follow ${this.lastIndex}`;
          }
          this.entries.push(e);
          this.lastIndex = e.index;
        }
        segment.maxIndex = Math.max(segment.maxIndex, this.lastIndex);
        return null;
      }
      case RecordType.HardState: {
        const v = unpack(payload);
        if (!isHardStateArray(v)) return 'malformed hard state';
        this.hardState = toHardState(v);
        return null;
      }
      case RecordType.Snapshot: {
        const v = unpack(payload);
        const ref = toRef(v);
        if (ref === null || !Array.isArray(v) || typeof v[4] !== 'boolean') {
          return 'malformed snapshot record';
        }
        const meta = ref.meta;
        if (v[4]) {
          // Raft §7: the log past the snapshot is kept. Entries at or below it stay
          // in the replay so an older snapshot can be fallen back on.
          if (meta.index > this.lastIndex)
            return `snapshot ${meta.index} keeps a log ending at ${this.lastIndex}`;
        } else {
          this.entries = [];
          this.lastIndex = meta.index;
          this.knownStart = meta.index + 1;
        }
        this.noteSnapshot(ref);
        return null;
      }
      case RecordType.Truncate: {
        const from = unpack(payload);
        if (!Number.isSafeInteger(from) || (from as number) < 1) return 'malformed truncation';
        const f = from as number;
        if (f > this.lastIndex + 1) return `truncation at ${f} past the end ${this.lastIndex}`;
        this.lastIndex = f - 1;
        if (f <= this.knownStart) {
          this.entries = [];
          this.knownStart = f;
        } else {
          this.entries.length = f - this.knownStart;
        }
        return null;
      }
      case RecordType.Header:
      case RecordType.SnapshotHeader:
      case RecordType.Manifest:
        return 'unexpected header record';
    }
  }

  private noteSnapshot(ref: SnapRef): void {
    this.snapshots = this.snapshots.filter((s) => s.meta.index !== ref.meta.index);
    this.snapshots.push(ref);
  }
}
