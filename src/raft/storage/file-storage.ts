/**
 * FileStorage: durable {@link Storage} over a write-ahead log of checksummed
 * records in bounded segment files, with group commit, plus snapshot files.
 * The file system is injected ({@link StorageFs}): the real disk in production,
 * the simulator's disk (which loses unsynced data) in tests.
 *
 * ```ts
 * const storage = new FileStorage({ dir: '/var/lib/cohort/n1', clusterId, nodeId });
 * const state = await storage.load();        // recovers; CORRUPTION if the log is damaged
 * await storage.save({ entries, hardState }); // resolves once written and fdatasync'd
 * ```
 *
 * Layout: `<dir>/wal/<seq>.wal` segments,
 * `<dir>/snap/<index>-<term>-<crc>.snap` snapshots (numbers as 16 hex digits,
 * the data's CRC32C as 8) and `<dir>/manifest` (the newest segment). Record
 * format: see records.ts.
 *
 * Group commit: save() validates the write against the log as it will be after
 * every earlier save(), encodes its records into one buffer and queues it; the
 * buffer is flushed on the next event-loop turn (or at once when it holds
 * walBatchBytesMax) as one write and one fdatasync run off the event loop, and
 * only when that completes are the callers' promises resolved, in call order.
 * Saves arriving while a sync is in flight form the next batch, flushed as soon
 * as it completes (at most walQueueBytesMax wait; beyond that, OVERLOADED). A
 * failed write or sync poisons the storage: that batch and every later save()
 * reject with IO_ERROR, since what reached the disk is unknown; restarting runs
 * recovery. A crash before a
 * batch's fdatasync returns may keep a prefix of its records, so an
 * unacknowledged write may survive in part, in its order (snapshot, truncation
 * of the conflicting suffix, entries, hard state); each such prefix is a state
 * Raft may restart from, since nothing was sent on the strength of it.
 *
 * Snapshots: save() validates the write and queues its records at once, and
 * starts writing the file off the event loop (StorageFs.writeFileAsync: temp
 * name, written and fsynced on the thread pool, then renamed and the directory
 * fsynced), so the process keeps serving meanwhile; the batch holding the
 * SNAPSHOT record (and every save queued after it) is flushed only once the
 * file is durable, so the log never names a file that a crash could lose. A
 * failed file write poisons the storage like a failed WAL write. A caller that
 * must not hold up the log (a local compaction) calls prepareSnapshot() first:
 * the file is written then, outside the group commit, and the save() of that
 * snapshot queues only its record. A snapshot
 * file without a record naming it is an interrupted save and is removed on
 * load. The newest readable snapshot named in the log is used; an unreadable one
 * is logged and the previous one used, provided the log still reaches back to it
 * (segments are deleted only when covered by the oldest retained snapshot).
 *
 * Recovery: segments are read in order and every record verified. A bad record
 * in the last segment with no valid record after it is a torn tail if it can be
 * an interrupted write (its end is missing: zeros or the end of the file; see
 * tornOrCorrupt in records.ts) and is cut off, with a warning. A record whose
 * bytes are all there but fail the checksum (a flipped bit) is not torn, and
 * neither is any bad record with valid ones after it: that is corruption, and
 * load() rejects with CORRUPTION naming the file and offset, unless the storage
 * was opened with `repair: true`, in which case the log is cut there, later
 * segments removed, and what was dropped is logged and reported. A log that
 * ends before the segment `<dir>/manifest` names (a deleted newest segment,
 * a deleted wal/) is refused the same way: see the manifest section below.
 * What recovery read is synced before load() resolves (the last run may have
 * been killed before its sync, leaving it in the page cache only).
 */
import { posix } from 'node:path';
import pino from 'pino';
import { assert } from '../../lib/assert.js';
import { crc32c } from '../../lib/crc32c.js';
import { CohortError, isCohortError } from '../../lib/errors.js';
import type { ClusterId, NodeId } from '../../lib/ids.js';
import { limits } from '../../lib/limits.js';
import type { Entry, HardState, Snapshot, SnapshotMeta } from '../core/types.js';
import type { FileHandle, StorageFs } from './fs.js';
import { nodeFs, syncCreatedDirs } from './fs.js';
import { emptyHardState } from './memory.js';
import {
  anyValidRecordAfter,
  decodeEntries,
  decodeRecordAt,
  encodeRecord,
  entryEncodedBytes,
  openRecord,
  putEntries,
  putEntryBodies,
  putRecord,
  recordBytes,
  sealRecord,
  packer,
  RecordType,
  segmentMagic,
  snapshotMagic,
  manifestMagic,
  tornOrCorrupt,
  viewOf,
} from './records.js';
import {
  hardStateArray,
  hex16,
  metaArray,
  refArray,
  Replay,
  snapshotName,
  toMeta,
  unpack,
} from './replay.js';
import type { Segment, SnapRef } from './replay.js';
import type { PersistentState, Storage, StorageWrite } from './storage.js';
import { TermRuns } from './term-runs.js';
import { checkAppend, planWrite } from './write-plan.js';
import type { LogShape } from './write-plan.js';

/** The logging FileStorage needs (a pino logger fits). */
export interface StorageLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Options for {@link FileStorage}. */
export interface FileStorageOptions {
  /** Directory holding `wal/` and `snap/`; created if missing. */
  readonly dir: string;
  /** Every segment and snapshot carries this; files of another cluster are refused. */
  readonly clusterId: ClusterId;
  /** Every segment and snapshot carries this; files of another node are refused. */
  readonly nodeId: NodeId;
  /** File system (default: the real one). */
  readonly fs?: StorageFs;
  /** Logger for recovery reports (default: a pino logger on stdout). */
  readonly logger?: StorageLogger;
  /** Cut the log at a corrupt record instead of refusing to start (drops everything after it). */
  readonly repair?: boolean;
  /** Segment size at which a new segment is started (default and maximum: walSegmentBytesMax). */
  readonly segmentBytes?: number;
  /** Runs a batch flush later (default: setImmediate); the simulator may pass its own. */
  readonly schedule?: (flush: () => void) => void;
  /**
   * Where a batch's fdatasync runs. 'thread': off the event loop, on libuv's
   * thread pool, so the process keeps serving while the disk syncs; the hop
   * there and back costs tens of microseconds per batch. 'inline': on the
   * event loop (fdatasyncSync) one turn after the batch is written, so that
   * messages queued in the same turn go out first; it saves the hop but
   * blocks the process for the whole sync. 'auto' (default): inline while
   * syncs are fast (a moving average under {@link autoInlineSyncMs}), on the
   * thread pool when the disk is slow, so a slow disk never stalls the
   * process for long.
   */
  readonly syncMode?: 'auto' | 'thread' | 'inline';
  /**
   * Preallocate segments (default true): the next segment's file is filled
   * with zeros and synced in the background ({@link StorageFs.allocate}), so
   * that the group commit's fdatasyncs overwrite allocated blocks and skip
   * the journal commit a growing file needs (~1.8x faster here). Costs a
   * segment's worth of disk for the spare and its zero-filling, once per
   * segment. False: segments grow as they are written.
   */
  readonly preallocate?: boolean;
}

/** What recovery found and did. */
export interface RecoveryReport {
  /** A torn tail cut off the last segment, if any. */
  tornTail: { file: string; offset: number; bytesDropped: number } | null;
  /** What `repair: true` dropped, if it acted. */
  repaired: {
    /** Where the log was cut (or the first missing segment). */
    file: string;
    offset: number;
    reason: string;
    /** Bytes cut off `file` from `offset` on. */
    bytesDropped: number;
    /** Later segments removed, and their bytes. */
    segmentsRemoved: string[];
    bytesRemoved: number;
    /** Records dropped that could still be read (the damaged one counts as one). */
    recordsDropped: number;
    /** Log entries among them, if any: how many and their index range. */
    entriesDropped: { count: number; first: number; last: number } | null;
  } | null;
  /** Snapshots that could not be used, newest first. */
  unreadableSnapshots: { file: string; reason: string }[];
  /** Files removed as leftovers of interrupted operations. */
  removedFiles: string[];
  /** Segments read. */
  segments: number;
}

/** What a durable batch made obsolete: files not in `keep` among `dropped`, and segments `keep[0]` covers. */
interface Compaction {
  readonly keep: readonly SnapRef[];
  readonly dropped: readonly SnapRef[];
}

/**
 * In 'auto' sync mode, syncs run inline while their moving average stays
 * under this many milliseconds. Below it, blocking the event loop costs less
 * than the thread-pool hop (here a sync takes 0.1-0.3 ms, the hop 0.04-0.08
 * ms); above it, the process would stall too long (a Raft tick is 20 ms).
 */
export const autoInlineSyncMs = 1;

/** Initial size of the reusable group-commit buffer. */
const batchBufferBytes = 256 * 1024;

/** The one promise every save() of a batch returns, with its settlers. */
interface Waiter {
  readonly promise: Promise<void>;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

function newWaiter(): Waiter {
  let resolve: () => void = () => {};
  let reject: (err: Error) => void = () => {};
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const SEGMENT_RE = /^([0-9a-f]{16})\.wal$/;
/** The spare segment while it is being zero-filled, and once it is complete (synced before the rename). */
const SPARE_TMP = 'spare.tmp';
const SPARE_READY = 'spare.seg';

/** True if every byte of `buf` from `from` on is zero. */
function zeroFrom(buf: Buffer, from: number): boolean {
  const zeros = Buffer.alloc(Math.min(64 * 1024, Math.max(0, buf.length - from)));
  for (let o = from; o < buf.length; o += zeros.length) {
    const end = Math.min(buf.length, o + zeros.length);
    if (buf.compare(zeros, 0, end - o, o, end) !== 0) return false;
  }
  return true;
}
const SNAPSHOT_RE = /^[0-9a-f]{16}-[0-9a-f]{16}-[0-9a-f]{8}\.snap$/;
/** The WAL manifest's name in the data dir (see the manifest section of FileStorage). */
const MANIFEST = 'manifest';

/** True if a segment's first bytes can be its magic cut short by a crash: a prefix of it, then zeros or the end. */
function tornMagic(bytes: Buffer): boolean {
  for (let k = 0; k <= 4; k++) {
    const head = bytes.subarray(0, Math.min(k, bytes.length));
    const rest = bytes.subarray(head.length, Math.min(4, bytes.length));
    if (head.equals(segmentMagic.subarray(0, head.length)) && rest.every((b) => b === 0))
      return true;
  }
  return false;
}

/** Records and entries found reading on from a cut (see {@link surveyDropped}). */
class DroppedSurvey {
  records = 0;
  private count = 0;
  private first = Infinity;
  private last = -Infinity;

  noteEntries(entries: readonly Entry[]): void {
    for (const e of entries) {
      this.count++;
      this.first = Math.min(this.first, e.index);
      this.last = Math.max(this.last, e.index);
    }
  }

  add(other: DroppedSurvey): void {
    this.records += other.records;
    this.count += other.count;
    this.first = Math.min(this.first, other.first);
    this.last = Math.max(this.last, other.last);
  }

  entries(): { count: number; first: number; last: number } | null {
    return this.count === 0 ? null : { count: this.count, first: this.first, last: this.last };
  }
}

/**
 * Reads on from `from` as far as records can be read, to say what a repair
 * drops: the record there (damaged, counted if its length is plausible), then
 * each valid record after it, stopping at the first that is not.
 */
function surveyDropped(bytes: Buffer, from: number): DroppedSurvey {
  const survey = new DroppedSurvey();
  let offset = from;
  for (let first = true; offset < bytes.length; first = false) {
    const r = decodeRecordAt(bytes, offset);
    if (typeof r !== 'string') {
      survey.records++;
      if (r.type === RecordType.Entries) survey.noteEntries(decodeEntries(r.payload) ?? []);
      offset = r.end;
      continue;
    }
    const length = offset + 8 <= bytes.length ? bytes.readUInt32LE(offset + 4) : 0;
    if (!first || r === 'short' || length < 1 || length > limits.walRecordBytesMax) break;
    survey.records++;
    offset += recordBytes(length - 1);
  }
  return survey;
}

/** One line per thing recovery cut, removed or could not use, for an operator (`cohort node --repair` prints them). */
export function describeRecovery(report: RecoveryReport): string[] {
  const out: string[] = [];
  const t = report.tornTail;
  if (t !== null) {
    out.push(
      `cut a torn tail off ${t.file} at offset ${t.offset}: ${t.bytesDropped} bytes of a write a crash interrupted (never acknowledged)`,
    );
  }
  const r = report.repaired;
  if (r !== null) {
    const e = r.entriesDropped;
    const what = [
      `${r.bytesDropped} bytes of ${r.file} from offset ${r.offset}`,
      ...(r.segmentsRemoved.length === 0
        ? []
        : [`segments ${r.segmentsRemoved.join(', ')} (${r.bytesRemoved} bytes)`]),
    ].join(' and ');
    out.push(
      `repair: dropped ${what}: ${r.recordsDropped} records, the first damaged, ` +
        (e === null
          ? 'no readable log entries'
          : `${e.count} readable log entries (index ${e.first}..${e.last})`) +
        `; reason: ${r.reason}`,
    );
  }
  for (const u of report.unreadableSnapshots) out.push(`unusable snapshot ${u.file}: ${u.reason}`);
  for (const f of report.removedFiles) out.push(`removed leftover ${f}`);
  return out;
}

function ioError(what: string, cause: unknown): CohortError {
  const message = cause instanceof Error ? cause.message : String(cause);
  return new CohortError('IO_ERROR', `${what}: ${message}`, { cause });
}

function corruption(file: string, offset: number, reason: string): CohortError {
  return new CohortError(
    'CORRUPTION',
    `${file} at offset ${offset}: ${reason} (start the node with --repair to cut the log there, dropping everything after it)`,
    { details: { file, offset, reason } },
  );
}

/** Durable Raft storage over a WAL; see the file comment. */
export class FileStorage implements Storage {
  private readonly fs: StorageFs;
  private readonly walDir: string;
  private readonly snapDir: string;
  private readonly logger: StorageLogger;
  private readonly segmentBytes: number;
  private readonly schedule: (flush: () => void) => void;

  /** What the last load() found and did. */
  recovery: RecoveryReport = {
    tornTail: null,
    repaired: null,
    unreadableSnapshots: [],
    removedFiles: [],
    segments: 0,
  };

  private state: 'new' | 'loading' | 'open' | 'closing' | 'closed' = 'new';
  private failure: CohortError | null = null;

  // The log as it will be once every queued write is durable.
  private terms = new TermRuns(0);
  private snapshotMeta: SnapshotMeta | null = null;
  /** Snapshots kept on disk, oldest first (at most snapshotsRetainedMax). */
  private retained: SnapRef[] = [];
  private hardState: HardState = emptyHardState;
  private segments: Segment[] = [];
  /** Bytes the last segment will hold once the queue is written. */
  private tailBytes = 0;
  /** Records in the last segment after its checkpoint (a segment is rolled only if non-empty). */
  private tailRecords = 0;

  // Durable side.
  private fd: FileHandle | null = null;
  private fdSeq = 0;
  private writeOffset = 0;

  // Group commit.
  /** Encoded records waiting for the next flush; `rolls` marks where new segments start in it. */
  private batch: Buffer = Buffer.allocUnsafe(batchBufferBytes);
  /** A DataView of all of `batch` (replaced with it), for encoding entries. */
  private batchView: DataView = viewOf(this.batch);
  private batchLen = 0;
  private rolls: { at: number; seq: number }[] = [];
  /** The model as planWrite sees it (one object, read live). */
  private readonly shapeView: LogShape;
  /**
   * Settles the saves queued for the next flush: one promise shared by the
   * whole batch (they become durable together), so a save costs no promise of
   * its own.
   */
  private waiter: Waiter | null = null;
  /**
   * The ENTRIES record at the end of the batch, left unsealed so that the next
   * entries-only save extends it instead of starting a record of its own: a
   * batch of many one-entry saves costs one header and one CRC32C, not one per
   * save. Sealed (count, length, checksum) before anything else is added and
   * before the batch is written.
   */
  private openEntries: { at: number; payload: number; count: number } | null = null;
  /** Snapshot files superseded by queued writes: removed once those writes are durable. */
  private droppedSnapshots: SnapRef[] = [];
  private compactPending = false;
  private flushScheduled = false;
  /** An fdatasync is in flight; saves queue behind it. */
  private syncing = false;
  private readonly syncMode: 'auto' | 'thread' | 'inline';
  /** Moving average of fdatasync times in ms (thread mode: including the hop), for 'auto'. */
  private syncAverageMs = 0;

  // Preallocation (see FileStorageOptions.preallocate).
  private readonly preallocate: boolean;
  /** The spare segment file: none, being zero-filled (`spare.tmp`), or ready (`spare.seg`). */
  private spare: 'none' | 'filling' | 'ready' = 'none';
  /** A queued roll will take the ready spare (at most one roll does). */
  private spareClaimed = false;
  /** Settles when the spare's filling has ended (either way). */
  private spareFilling: Promise<void> = Promise.resolve();
  private readonly spareAbort = new AbortController();
  /**
   * The last segment (as the queue will leave it) is a preallocated file. If
   * it is not (a fresh log, or a tail cut after a crash) and a spare is ready,
   * the next write rolls to the spare early rather than grow this one.
   */
  private tailPreallocated = false;
  /** Settles when close() has drained the queue. */
  private closed: Promise<void> | null = null;
  /** Manifest writes after rolls, one after another. */
  private manifestWrites: Promise<void> = Promise.resolve();
  /** Snapshot files being written: the batch, which holds their records, waits for them. */
  private snapshotFilesPending = 0;
  /** Snapshot file writes, one after another (two saves of one snapshot share a temp name). */
  private snapshotWrites: Promise<void> = Promise.resolve();
  /** The snapshot whose file prepareSnapshot() made durable, until a save() logs it. */
  private prepared: { data: Uint8Array; ref: SnapRef } | null = null;

  constructor(private readonly options: FileStorageOptions) {
    this.fs = options.fs ?? nodeFs;
    this.walDir = posix.join(options.dir, 'wal');
    this.snapDir = posix.join(options.dir, 'snap');
    this.logger = options.logger ?? pino({ name: 'cohort-storage' });
    this.segmentBytes = options.segmentBytes ?? limits.walSegmentBytesMax;
    assert(
      this.segmentBytes > 1024 && this.segmentBytes <= limits.walSegmentBytesMax,
      `segmentBytes ${this.segmentBytes} outside (1024, walSegmentBytesMax]`,
    );
    this.schedule = options.schedule ?? ((fn) => void setImmediate(fn));
    this.preallocate = options.preallocate ?? true;
    this.syncMode = options.syncMode ?? 'auto';
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- getters below read the live model
    const self = this;
    this.shapeView = {
      get snapshotIndex() {
        return self.snapshotMeta?.index ?? 0;
      },
      get snapshotTerm() {
        return self.snapshotMeta?.term ?? 0;
      },
      get lastIndex() {
        return self.terms.lastIndex;
      },
      termAt: (i) => self.terms.termAt(i),
    };
  }

  load(): Promise<PersistentState> {
    if (this.state === 'closed' || this.state === 'closing') return Promise.reject(closedError());
    if (this.state !== 'new') {
      return Promise.reject(new CohortError('FAILED_PRECONDITION', 'load() called twice'));
    }
    this.state = 'loading';
    try {
      const loaded = this.recover();
      this.state = 'open';
      this.prepareSpare();
      return Promise.resolve(loaded);
    } catch (err) {
      this.state = 'closed';
      this.closeFd();
      if (isCohortError(err)) return Promise.reject(err);
      return Promise.reject(ioError(`recovering ${this.options.dir}`, err));
    }
  }

  save(write: StorageWrite): Promise<void> {
    if (this.state === 'closed' || this.state === 'closing') return Promise.reject(closedError());
    if (this.state !== 'open') {
      return Promise.reject(new CohortError('FAILED_PRECONDITION', 'save() before load()'));
    }
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.batchLen >= limits.walQueueBytesMax) {
      return Promise.reject(
        new CohortError(
          'OVERLOADED',
          `${this.batchLen} bytes already wait for the disk (walQueueBytesMax ${limits.walQueueBytesMax})`,
        ),
      );
    }
    try {
      this.enqueue(write);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    const done = (this.waiter ??= newWaiter()).promise;
    if (this.batchLen >= limits.walBatchBytesMax) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      this.schedule(() => this.flush());
    }
    return done;
  }

  /**
   * Writes the snapshot's file now, off the event loop and outside the group
   * commit, so that the later save() of it queues only its SNAPSHOT record
   * (and later batches do not wait for the file). Nothing in the log names the
   * file until that save; if it never comes, load() removes the file. Only the
   * latest prepared snapshot is remembered. A failure rejects (IO_ERROR)
   * without poisoning the storage: nothing logged depends on the file.
   */
  prepareSnapshot(snapshot: Snapshot): Promise<void> {
    if (this.state === 'closed' || this.state === 'closing') return Promise.reject(closedError());
    if (this.state !== 'open') {
      return Promise.reject(
        new CohortError('FAILED_PRECONDITION', 'prepareSnapshot() before load()'),
      );
    }
    if (this.failure !== null) return Promise.reject(this.failure);
    const ref: SnapRef = { meta: snapshot.meta, crc: crc32c(snapshot.data) };
    const written = this.snapshotWrites.then(() => this.writeSnapshotFile(snapshot, ref));
    this.snapshotWrites = written.catch(() => {});
    return written.then(() => {
      this.prepared = { data: snapshot.data, ref };
    });
  }

  close(): Promise<void> {
    if (this.state !== 'open') {
      if (this.state !== 'closing') this.state = 'closed';
      return this.state === 'closing' ? (this.closed ?? Promise.resolve()) : Promise.resolve();
    }
    this.state = 'closing';
    // A barrier: it settles once every earlier write is durable (or has failed).
    const drained = (this.waiter ??= newWaiter()).promise.then(
      () => {},
      () => {},
    );
    if (!this.syncing) this.flush();
    this.spareAbort.abort();
    this.closed = Promise.all([drained, this.spareFilling])
      .then(() => this.manifestWrites)
      .then(() => {
        this.closeFd();
        this.state = 'closed';
      });
    return this.closed;
  }

  // ---- saving -------------------------------------------------------------

  /** Validates, writes a snapshot file if any, encodes the records into the batch, and advances the model. */
  private enqueue(write: StorageWrite): void {
    if (this.appendEntriesOnly(write)) return;
    const plan = planWrite(this.shapeView, write);
    // Everything that can fail comes before the batch is touched.
    let ref: SnapRef | null = null;
    let snapPayload: Buffer | null = null;
    let prepared = false;
    if (write.snapshot !== undefined) {
      prepared = this.isPrepared(write.snapshot);
      ref = prepared
        ? (this.prepared as { ref: SnapRef }).ref
        : { meta: write.snapshot.meta, crc: crc32c(write.snapshot.data) };
      snapPayload = packer.pack([...refArray(ref), plan.snapshotKeepsLog]);
    }
    const truncPayload = plan.truncateFrom === null ? null : packer.pack(plan.truncateFrom);
    if (write.snapshot !== undefined && ref !== null) {
      if (prepared)
        this.prepared = null; // its file is durable already
      // Written off the event loop; the batch holding its record waits for it (flush()).
      else this.startSnapshotFile(write.snapshot, ref);
    }
    const hsPayload =
      write.hardState === undefined ? null : packer.pack(hardStateArray(write.hardState));
    const entries = write.entries ?? [];
    this.sealOpenEntries();
    // One ENTRIES record per walRecordBytesMax of entries: chunk ends and payload sizes.
    const ends: number[] = [];
    const sizes: number[] = [];
    let total = 0;
    let records = 0;
    for (let from = 0; from < entries.length;) {
      let to = from;
      let size = 4;
      while (to < entries.length) {
        const add = entryEncodedBytes(entries[to] as Entry);
        if (to > from && size + add + 64 > limits.walRecordBytesMax) break;
        size += add;
        to++;
      }
      ends.push(to);
      sizes.push(size);
      total += recordBytes(size);
      records++;
      from = to;
    }
    if (snapPayload !== null) total += recordBytes(snapPayload.length);
    if (truncPayload !== null) total += recordBytes(truncPayload.length);
    if (hsPayload !== null) total += recordBytes(hsPayload.length);
    records +=
      Number(snapPayload !== null) + Number(truncPayload !== null) + Number(hsPayload !== null);

    if (this.tailRecords > 0 && (this.tailBytes + total > this.segmentBytes || this.rollEarly())) {
      this.queueRoll();
    }
    const buf = this.reserve(total);
    let o = this.batchLen - total;
    if (snapPayload !== null) o = putRecord(buf, o, RecordType.Snapshot, snapPayload);
    if (truncPayload !== null) o = putRecord(buf, o, RecordType.Truncate, truncPayload);
    let from = 0;
    for (let k = 0; k < ends.length; k++) {
      const to = ends[k] as number;
      const size = sizes[k] as number;
      openRecord(buf, o, RecordType.Entries, size);
      putEntries(buf, o + recordBytes(0), entries, from, to, this.batchView);
      if (k === ends.length - 1 && hsPayload === null) {
        this.openEntries = { at: o, payload: size, count: to - from };
      } else {
        sealRecord(buf, o, size);
      }
      o += recordBytes(size);
      from = to;
    }
    if (hsPayload !== null) o = putRecord(buf, o, RecordType.HardState, hsPayload);
    assert(o === this.batchLen, 'record sizes miscounted');
    this.tailBytes += total;
    this.tailRecords += records;

    // Advance the model (the same semantics as applyWrite in memory.ts).
    const tail = this.segments[this.segments.length - 1] as Segment;
    if (ref !== null) {
      const meta = ref.meta;
      if (plan.snapshotKeepsLog) this.terms.dropThrough(meta.index);
      else this.terms.reset(meta.index);
      this.snapshotMeta = meta;
      const dropped = this.retained.filter((s) => s.meta.index === meta.index);
      this.retained = this.retained.filter((s) => s.meta.index !== meta.index);
      this.retained.push(ref);
      dropped.push(
        ...this.retained.splice(0, Math.max(0, this.retained.length - limits.snapshotsRetainedMax)),
      );
      this.droppedSnapshots.push(...dropped);
      this.compactPending = true;
    }
    if (plan.truncateFrom !== null) this.terms.truncateFrom(plan.truncateFrom);
    for (const e of entries) this.terms.append(e.index, e.term);
    if (entries.length > 0) tail.maxIndex = Math.max(tail.maxIndex, this.terms.lastIndex);
    if (write.hardState !== undefined) this.hardState = write.hardState;
  }

  /**
   * The hot path of group commit: a write of entries only that continues the
   * log is validated ({@link checkAppend}, the rules of planWrite for this case)
   * and added to the open ENTRIES record at the end of the batch, or starts
   * one. False, with nothing changed, when the write is of any other shape or
   * needs more than one record or a new segment; enqueue() then takes the
   * general path.
   */
  private appendEntriesOnly(write: StorageWrite): boolean {
    if (typeof write !== 'object' || write === null) return false;
    if (write.snapshot !== undefined || write.hardState !== undefined) return false;
    const given: unknown = write.entries;
    if (!Array.isArray(given) || given.length === 0) return false;
    if (this.rollEarly()) return false;
    const entries = given as readonly Entry[];
    const first: unknown = entries[0];
    const last = this.terms.lastIndex;
    if (typeof first !== 'object' || first === null || (first as Entry).index !== last + 1) {
      return false;
    }
    const snapIndex = this.snapshotMeta?.index ?? 0;
    checkAppend(
      entries,
      last === snapIndex ? (this.snapshotMeta?.term ?? 0) : this.terms.termAt(last),
    );
    let add = 0;
    for (const e of entries) add += entryEncodedBytes(e);
    const open = this.openEntries;
    if (open !== null && open.at + recordBytes(open.payload) === this.batchLen) {
      // Extend the open record.
      if (open.payload + add + 64 > limits.walRecordBytesMax) return false;
      if (this.tailBytes + add > this.segmentBytes) return false;
      const buf = this.reserve(add);
      const end = putEntryBodies(
        buf,
        this.batchLen - add,
        entries,
        0,
        entries.length,
        this.batchView,
      );
      assert(end === this.batchLen, 'entry sizes miscounted');
      open.payload += add;
      open.count += entries.length;
      this.tailBytes += add;
    } else {
      // Start one, left open for the saves that follow.
      const payload = 4 + add;
      const total = recordBytes(payload);
      if (payload + 64 > limits.walRecordBytesMax) return false;
      if (this.tailRecords > 0 && this.tailBytes + total > this.segmentBytes) return false;
      this.sealOpenEntries();
      const buf = this.reserve(total);
      const at = this.batchLen - total;
      openRecord(buf, at, RecordType.Entries, payload);
      putEntries(buf, at + recordBytes(0), entries, 0, entries.length, this.batchView);
      this.openEntries = { at, payload, count: entries.length };
      this.tailBytes += total;
      this.tailRecords++;
    }
    for (const e of entries) this.terms.append(e.index, e.term);
    const tail = this.segments[this.segments.length - 1] as Segment;
    if (tail.maxIndex < this.terms.lastIndex) tail.maxIndex = this.terms.lastIndex;
    return true;
  }

  /** Seals the open ENTRIES record, if any: its final count, length and checksum. */
  private sealOpenEntries(): void {
    const open = this.openEntries;
    if (open === null) return;
    this.openEntries = null;
    openRecord(this.batch, open.at, RecordType.Entries, open.payload);
    this.batch.writeUInt32LE(open.count, open.at + recordBytes(0));
    sealRecord(this.batch, open.at, open.payload);
  }

  /** Makes room for `bytes` more at the end of the batch; returns the (maybe new) batch buffer. */
  private reserve(bytes: number): Buffer {
    const need = this.batchLen + bytes;
    if (need > this.batch.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, this.batch.length * 2));
      this.batch.copy(grown, 0, 0, this.batchLen);
      this.batch = grown;
      this.batchView = viewOf(grown);
    }
    this.batchLen = need;
    return this.batch;
  }

  /** True if the tail segment grows as written while a preallocated spare waits: roll now. */
  private rollEarly(): boolean {
    return !this.tailPreallocated && this.spare === 'ready' && !this.spareClaimed;
  }

  /** Queues the start of a new segment, checkpointing the model as of now. */
  private queueRoll(): void {
    const seq = (this.segments[this.segments.length - 1] as Segment).seq + 1;
    this.tailPreallocated = this.spare === 'ready' && !this.spareClaimed;
    if (this.tailPreallocated) this.spareClaimed = true;
    const start = this.segmentStart(seq);
    this.rolls.push({ at: this.batchLen, seq });
    this.reserve(start.length);
    start.copy(this.batch, this.batchLen - start.length);
    this.segments.push({ seq, path: this.segmentPath(seq), maxIndex: 0 });
    this.tailBytes = start.length;
    this.tailRecords = 0;
  }

  /** Magic, header and checkpoint of segment `seq`, from the model as of now. */
  private segmentStart(seq: number): Buffer {
    const header = encodeRecord(
      RecordType.Header,
      packer.pack({
        v: limits.walFormatVersion,
        cluster: this.options.clusterId,
        node: this.options.nodeId,
        seq,
      }),
    );
    const checkpoint = encodeRecord(
      RecordType.Checkpoint,
      packer.pack({
        base: this.terms.lastIndex,
        hs: hardStateArray(this.hardState),
        snaps: this.retained.map(refArray),
      }),
    );
    return Buffer.concat([segmentMagic, header, checkpoint]);
  }

  private segmentPath(seq: number): string {
    return posix.join(this.walDir, `${hex16(seq)}.wal`);
  }

  /**
   * Writes the batch (one write per segment it touches) and starts one
   * fdatasync off the event loop; when that completes, settles the batch's
   * waiter and flushes whatever queued meanwhile (pipelined group commit).
   */
  private flush(): void {
    this.flushScheduled = false;
    // The sync in flight flushes what is queued when it completes.
    if (this.syncing) return;
    // A SNAPSHOT record enters the log only once its file is durable; the
    // file's completion flushes (a failure flushes too, to reject the batch).
    if (this.snapshotFilesPending > 0 && this.failure === null) return;
    this.sealOpenEntries();
    const waiter = this.waiter;
    const length = this.batchLen;
    const rolls = this.rolls;
    this.waiter = null;
    this.batchLen = 0;
    this.rolls = [];
    if (length === 0 && waiter === null) return;
    /** The last segment this batch starts: the manifest names it once the batch is durable. */
    const rolledTo = rolls.at(-1)?.seq ?? 0;
    // Compaction runs once this batch is durable, from the model as of its end.
    const compaction = this.compactPending
      ? { keep: this.retained.slice(), dropped: this.droppedSnapshots }
      : null;
    this.compactPending = false;
    this.droppedSnapshots = [];
    let start = 0;
    try {
      if (this.failure !== null) throw this.failure;
      for (const roll of rolls) {
        // A segment is left only once durable, so a later one never survives an earlier one's loss.
        this.writeOut(start, roll.at);
        if (roll.at > start) this.fs.fdatasync(this.fd as FileHandle);
        const fd = this.fd as FileHandle;
        // A preallocated segment's unused zeros go (not synced: either size reads back the same).
        if (this.fs.size(fd) > this.writeOffset) this.fs.truncate(fd, this.writeOffset);
        this.closeFd();
        this.fd = this.openSegment(roll.seq);
        this.fdSeq = roll.seq;
        this.writeOffset = 0;
        start = roll.at;
      }
      this.writeOut(start, length);
      if (rolls.length > 0) {
        this.fs.syncDir(this.walDir);
        this.prepareSpare();
      }
      // A batch far above the usual size leaves a big buffer behind: let it go.
      if (this.batch.length > 4 * batchBufferBytes) {
        this.batch = Buffer.allocUnsafe(batchBufferBytes);
        this.batchView = viewOf(this.batch);
      }
    } catch (err) {
      this.fail(err, waiter);
      return;
    }
    if (length === start) {
      // Only empty writes: everything before them is already durable.
      this.settle(waiter, compaction, rolledTo);
      return;
    }
    this.syncing = true;
    const fd = this.fd as FileHandle;
    const mode = this.syncMode;
    const inline = mode === 'inline' || (mode === 'auto' && this.syncAverageMs < autoInlineSyncMs);
    // Timed only in 'auto' (the only mode that reads it; the simulator's runs stay clock-free).
    const t0 = mode === 'auto' ? performance.now() : 0;
    let synced: Promise<void>;
    if (inline) {
      // On the event loop, but one turn later: what else this turn queued
      // (a leader's AppendEntries, sent while its own write is in flight, go
      // out on the transport's setImmediate) leaves before the process blocks.
      synced = new Promise<void>((resolve, reject) => {
        this.schedule(() => {
          try {
            const t1 = mode === 'auto' ? performance.now() : 0;
            this.fs.fdatasync(fd);
            if (mode === 'auto') this.noteSync(performance.now() - t1);
            resolve();
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        });
      });
    } else {
      try {
        synced = this.fs.fdatasyncAsync(fd);
      } catch (err) {
        synced = Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
    }
    synced.then(
      () => {
        if (mode === 'auto' && !inline) this.noteSync(performance.now() - t0);
        this.syncing = false;
        this.settle(waiter, compaction, rolledTo);
        if (this.batchLen > 0 || this.waiter !== null) this.flush();
      },
      (err: unknown) => {
        this.syncing = false;
        this.fail(err, waiter);
        if (this.waiter !== null) this.flush();
      },
    );
  }

  /** Adds a sync's duration to the moving average 'auto' decides by (weight 1/8: a few slow syncs switch it). */
  private noteSync(ms: number): void {
    this.syncAverageMs += (ms - this.syncAverageMs) / 8;
  }

  /** Creates segment `seq` for writing: the ready spare renamed, or else a new empty file. */
  private openSegment(seq: number): FileHandle {
    const path = this.segmentPath(seq);
    if (this.spare === 'ready') {
      this.spare = 'none';
      this.spareClaimed = false;
      this.fs.rename(posix.join(this.walDir, SPARE_READY), path);
      return this.fs.open(path, 'readwrite');
    }
    return this.fs.open(path, 'create');
  }

  /**
   * Starts zero-filling the spare segment in the background, if preallocation
   * is on and there is none. On success the file is renamed `spare.seg` (its
   * zeros are durable before the name exists); on failure it is removed, a
   * warning logged, and the WAL goes on with growing segments until the next
   * roll tries again.
   */
  private prepareSpare(): void {
    if (!this.preallocate || this.spare !== 'none' || this.state !== 'open') return;
    this.spare = 'filling';
    const tmp = posix.join(this.walDir, SPARE_TMP);
    this.spareFilling = this.fs.allocate(tmp, this.segmentBytes, this.spareAbort.signal).then(
      () => {
        try {
          this.fs.rename(tmp, posix.join(this.walDir, SPARE_READY));
          this.spare = 'ready';
        } catch (err) {
          this.spareFailed(tmp, err);
        }
      },
      (err: unknown) => this.spareFailed(tmp, err),
    );
  }

  private spareFailed(tmp: string, err: unknown): void {
    this.spare = 'none';
    try {
      this.fs.unlink(tmp);
    } catch {
      // Not there, or the disk is gone: load() removes a leftover.
    }
    if (this.spareAbort.signal.aborted) return;
    this.logger.warn(
      { err: err instanceof Error ? err.message : String(err), dir: this.walDir },
      'could not preallocate the next WAL segment; segments grow as written',
    );
  }

  /** Resolves the saves of a durable batch, then compacts what it made obsolete (and names a new segment in the manifest). */
  private settle(waiter: Waiter | null, compaction: Compaction | null, rolledTo: number): void {
    if (rolledTo > 0) this.writeManifestLater(rolledTo);
    waiter?.resolve();
    if (compaction !== null) this.compact(compaction.keep, compaction.dropped);
  }

  /** Poisons the storage after a failed write or sync and rejects the batch's saves. */
  private fail(err: unknown, waiter: Waiter | null): void {
    if (this.failure === null) {
      this.failure = isCohortError(err) ? err : ioError(`writing ${this.walDir}`, err);
      this.logger.error(
        { err: this.failure.message, dir: this.walDir },
        'WAL write failed; storage is unusable until restarted',
      );
    }
    waiter?.reject(this.failure);
  }

  /** Writes batch[from, to) at the end of the open segment (not yet synced). */
  private writeOut(from: number, to: number): void {
    if (to <= from) return;
    assert(this.fd !== null, 'flush without an open segment');
    this.fs.write(this.fd, this.batch.subarray(from, to), this.writeOffset);
    this.writeOffset += to - from;
  }

  private closeFd(): void {
    if (this.fd === null) return;
    try {
      this.fs.close(this.fd);
    } catch {
      // Closing cannot lose data already synced; a crashed disk has no handles.
    }
    this.fd = null;
  }

  /** Removes segments wholly covered by the oldest retained snapshot and snapshots no longer retained. */
  private compact(keep: readonly SnapRef[], dropped: readonly SnapRef[]): void {
    try {
      const oldest = keep[0];
      let removedSegments = 0;
      if (oldest !== undefined) {
        // Only a prefix of segments may go, so recovery starts at a segment boundary.
        while (
          this.segments.length > 1 &&
          (this.segments[0] as Segment).maxIndex <= oldest.meta.index
        ) {
          const seg = this.segments.shift() as Segment;
          if (seg.seq === this.fdSeq) {
            this.segments.unshift(seg);
            break;
          }
          this.fs.unlink(seg.path);
          removedSegments++;
        }
      }
      if (removedSegments > 0) this.fs.syncDir(this.walDir);
      for (const s of dropped) {
        // Still named by the durable log, or saved again by a queued write: keep.
        const name = snapshotName(s);
        if (keep.some((k) => snapshotName(k) === name)) continue;
        if (this.retained.some((k) => snapshotName(k) === name)) continue;
        try {
          this.fs.unlink(posix.join(this.snapDir, snapshotName(s)));
        } catch {
          // Already gone (e.g. never readable): nothing to do.
        }
      }
      if (dropped.length > 0) this.fs.syncDir(this.snapDir);
    } catch (err) {
      // Leftover files cost space, not correctness: recovery tolerates them.
      this.logger.warn(
        { err: String(err), dir: this.options.dir },
        'could not remove compacted files',
      );
    }
  }

  /** True if `snapshot` is the one {@link prepareSnapshot} last made durable (same data, same meta). */
  private isPrepared(snapshot: Snapshot): boolean {
    const p = this.prepared;
    return (
      p !== null &&
      p.data === snapshot.data &&
      JSON.stringify(metaArray(p.ref.meta)) === JSON.stringify(metaArray(snapshot.meta))
    );
  }

  /**
   * Starts writing a snapshot file (after any earlier one): the queued batch,
   * which holds its SNAPSHOT record, is flushed only once the file is durable.
   * A failure poisons the storage like a failed WAL write: the model already
   * counts the snapshot, and later saves were validated against it.
   */
  private startSnapshotFile(snapshot: Snapshot, ref: SnapRef): void {
    this.snapshotFilesPending++;
    const written = this.snapshotWrites.then(() => this.writeSnapshotFile(snapshot, ref));
    this.snapshotWrites = written.catch(() => {});
    written.then(
      () => {
        this.snapshotFilesPending--;
        this.flushUnlessSyncing();
      },
      (err: unknown) => {
        this.snapshotFilesPending--;
        this.fail(err, null);
        this.flushUnlessSyncing();
      },
    );
  }

  /** Flushes what waits, unless a sync is in flight (its completion flushes). */
  private flushUnlessSyncing(): void {
    if (!this.syncing && (this.batchLen > 0 || this.waiter !== null)) this.flush();
  }

  /**
   * Writes a snapshot file durably, off the event loop: temp file (written
   * and fsynced on the thread pool), rename, directory fsync.
   */
  private async writeSnapshotFile(snapshot: Snapshot, ref: SnapRef): Promise<void> {
    const { meta, data } = snapshot;
    const header = encodeRecord(
      RecordType.SnapshotHeader,
      packer.pack({
        v: limits.walFormatVersion,
        cluster: this.options.clusterId,
        node: this.options.nodeId,
        meta: metaArray(meta),
        length: data.byteLength,
        crc: ref.crc,
      }),
    );
    const name = snapshotName(ref);
    const tmp = posix.join(this.snapDir, `${name}.tmp`);
    if (this.failure !== null) throw this.failure;
    try {
      try {
        this.fs.unlink(tmp);
      } catch {
        // No leftover temp file.
      }
      await this.fs.writeFileAsync(tmp, [Buffer.concat([snapshotMagic, header]), data]);
      this.fs.rename(tmp, posix.join(this.snapDir, name));
      await this.fs.syncDirAsync(this.snapDir);
    } catch (err) {
      throw ioError(`writing snapshot ${name}`, err);
    }
  }

  /** Reads and verifies a snapshot file; returns a reason string if unusable. */
  private readSnapshotFile(ref: SnapRef): Snapshot | string {
    const { meta } = ref;
    const name = snapshotName(ref);
    let bytes: Buffer;
    try {
      bytes = this.readWhole(posix.join(this.snapDir, name));
    } catch (err) {
      return `cannot read: ${String(err)}`;
    }
    if (bytes.length < 4 || !bytes.subarray(0, 4).equals(snapshotMagic)) return 'bad magic';
    const r = decodeRecordAt(bytes, 4);
    if (typeof r === 'string' || r.type !== RecordType.SnapshotHeader)
      return `bad header (${typeof r === 'string' ? r : 'type'})`;
    const h = unpack(r.payload) as Record<string, unknown> | undefined;
    if (typeof h !== 'object' || h === null) return 'malformed header';
    if (h.v !== limits.walFormatVersion) return `format version ${String(h.v)}`;
    if (h.cluster !== this.options.clusterId || h.node !== this.options.nodeId) {
      return `belongs to cluster ${String(h.cluster)} node ${String(h.node)}`;
    }
    const m = toMeta(h.meta);
    if (m === null || m.index !== meta.index || m.term !== meta.term)
      return 'metadata does not match';
    const data = bytes.subarray(r.end);
    if (data.length !== h.length) return `length ${data.length}, header says ${String(h.length)}`;
    if (crc32c(data) !== h.crc || h.crc !== ref.crc) return 'data checksum mismatch';
    return { meta: m, data: new Uint8Array(data) };
  }

  private readWhole(path: string): Buffer {
    const fd = this.fs.open(path, 'read');
    try {
      const size = this.fs.size(fd);
      const bytes = this.fs.read(fd, 0, size);
      return Buffer.isBuffer(bytes)
        ? bytes
        : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } finally {
      this.fs.close(fd);
    }
  }

  // ---- recovery -----------------------------------------------------------

  private recover(): PersistentState {
    const fs = this.fs;
    const report: RecoveryReport = {
      tornTail: null,
      repaired: null,
      unreadableSnapshots: [],
      removedFiles: [],
      segments: 0,
    };
    this.recovery = report;
    // A new directory's name is durable only once its parent is synced.
    syncCreatedDirs(fs, [...fs.mkdirp(this.walDir), ...fs.mkdirp(this.snapDir)]);

    const seqs = fs
      .readdir(this.walDir)
      .map((n) => SEGMENT_RE.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => parseInt(m[1] as string, 16))
      .sort((a, b) => a - b);
    const manifest = this.readManifest();
    this.checkLogPresent(manifest, seqs.at(-1) ?? 0);

    const replay = new Replay();
    const segments: Segment[] = [];
    let tailLength = 0;
    /** File size of the tail segment (beyond tailLength: a preallocated segment's zeros). */
    let tailSize = 0;
    let tailRecords = 0;
    for (let i = 0; i < seqs.length; i++) {
      const seq = seqs[i] as number;
      const path = this.segmentPath(seq);
      const name = posix.join('wal', posix.basename(path));
      if (i > 0 && seq !== (seqs[i - 1] as number) + 1) {
        throw corruption(name, 0, `segment ${hex16((seqs[i - 1] as number) + 1)}.wal is missing`);
      }
      const isLast = i === seqs.length - 1;
      const bytes = this.readWhole(path);
      const segment: Segment = { seq, path, maxIndex: 0 };
      /** A problem at `offset`; `torn` if, in the last segment, it may be an interrupted write. */
      const bad = (
        offset: number,
        reason: string,
        torn: boolean,
      ): { offset: number; reason: string; torn: boolean } => ({
        offset,
        reason,
        torn: torn && isLast && !anyValidRecordAfter(bytes, offset),
      });
      let problem: { offset: number; reason: string; torn: boolean } | null = null;
      let offset = 0;
      let records = 0;
      if (bytes.length < 4 || !bytes.subarray(0, 4).equals(segmentMagic)) {
        problem = bad(0, 'bad magic', tornMagic(bytes));
      } else {
        offset = 4;
        const h = decodeRecordAt(bytes, 4);
        if (typeof h === 'string' || h.type !== RecordType.Header) {
          problem = bad(
            4,
            `bad segment header (${typeof h === 'string' ? h : 'type'})`,
            typeof h === 'string' && tornOrCorrupt(bytes, 4, h) === 'torn',
          );
        } else {
          const v = unpack(h.payload) as Record<string, unknown> | undefined;
          if (typeof v !== 'object' || v === null) {
            problem = bad(4, 'malformed segment header', false);
          } else {
            if (v.v !== limits.walFormatVersion) {
              throw new CohortError(
                'FAILED_PRECONDITION',
                `${name}: format version ${String(v.v)}, this build reads ${limits.walFormatVersion}`,
                { details: { file: name } },
              );
            }
            if (v.cluster !== this.options.clusterId || v.node !== this.options.nodeId) {
              throw new CohortError(
                'FAILED_PRECONDITION',
                `${name} belongs to cluster ${String(v.cluster)} node ${String(v.node)}, not cluster ${this.options.clusterId} node ${this.options.nodeId}`,
                { details: { file: name, cluster: v.cluster, node: v.node } },
              );
            }
            if (v.seq !== seq) problem = bad(4, `header says segment ${String(v.seq)}`, false);
            else offset = h.end;
          }
        }
        while (problem === null && offset < bytes.length) {
          const r = decodeRecordAt(bytes, offset);
          if (typeof r === 'string') {
            // The zeros of a preallocated segment end its records (a record's length is never 0).
            if (zeroFrom(bytes, offset)) break;
            const torn = tornOrCorrupt(bytes, offset, r) === 'torn';
            problem = bad(offset, `invalid record (${r}${torn ? '' : ', not a torn write'})`, torn);
            break;
          }
          if ((records === 0) !== (r.type === RecordType.Checkpoint)) {
            problem = {
              offset,
              reason: records === 0 ? 'no checkpoint' : 'misplaced checkpoint',
              torn: false,
            };
            break;
          }
          const reason = replay.apply(r.type, r.payload, segment);
          if (reason !== null) {
            problem = { offset, reason, torn: false };
            break;
          }
          records++;
          offset = r.end;
        }
        if (problem === null && records === 0)
          problem = { offset, reason: 'no checkpoint', torn: isLast };
      }

      if (
        problem !== null &&
        problem.torn &&
        records === 0 &&
        manifest !== null &&
        seq <= manifest
      ) {
        // Its start was durable once (the manifest says so): not a torn new segment.
        problem = {
          ...problem,
          torn: false,
          reason: `${problem.reason}; the manifest records this segment as written`,
        };
      }
      if (problem !== null) {
        if (!problem.torn && this.options.repair !== true)
          throw corruption(name, problem.offset, problem.reason);
        const removed = seqs.slice(i + 1).map((s) => this.segmentPath(s));
        const dropped = bytes.length - problem.offset;
        // What goes, as far as it can be read (for the report), before anything is removed.
        const survey = problem.torn ? null : surveyDropped(bytes, problem.offset);
        let bytesRemoved = 0;
        if (survey !== null) {
          for (const p of removed) {
            const b = this.readWhole(p);
            bytesRemoved += b.length;
            survey.add(surveyDropped(b, Math.min(4, b.length)));
          }
        }
        if (records === 0) {
          // Nothing usable in this segment: remove it (and anything after).
          removed.unshift(path);
        } else {
          const fd = fs.open(path, 'readwrite');
          try {
            fs.truncate(fd, problem.offset);
            fs.fdatasync(fd);
          } finally {
            fs.close(fd);
          }
        }
        for (const p of removed) fs.unlink(p);
        if (problem.torn) {
          report.tornTail = { file: name, offset: problem.offset, bytesDropped: dropped };
          this.logger.warn(
            { ...report.tornTail, reason: problem.reason },
            'cut a torn tail off the WAL (a write a crash interrupted; it was never acknowledged)',
          );
        } else {
          report.repaired = {
            file: name,
            offset: problem.offset,
            reason: problem.reason,
            bytesDropped: dropped,
            segmentsRemoved: removed.map((p) => posix.basename(p)),
            bytesRemoved,
            recordsDropped: survey?.records ?? 0,
            entriesDropped: survey?.entries() ?? null,
          };
          this.logger.warn(
            { ...report.repaired, lastIndex: replay.lastIndex },
            'repair: cut the WAL at a corrupt record',
          );
        }
        if (records > 0) {
          segments.push(segment);
          tailLength = problem.offset;
          tailSize = problem.offset;
          tailRecords = records - 1;
        }
        break;
      }
      segments.push(segment);
      tailLength = offset;
      tailSize = bytes.length;
      tailRecords = records - 1;
    }
    report.segments = segments.length;
    const firstSeq = seqs[0];
    if (
      segments.length === 0 &&
      firstSeq !== undefined &&
      firstSeq > 1 &&
      this.options.repair !== true
    ) {
      // Only a first segment can be torn away whole: a later one is written after its predecessor is durable.
      throw corruption(posix.join('wal', `${hex16(firstSeq)}.wal`), 0, 'no readable segment');
    }
    const newest = segments.at(-1)?.seq ?? 0;
    if (manifest !== null && newest < manifest) {
      // Segments the manifest records are gone (or were cut away by repair).
      const missing = this.missingLog(manifest, newest);
      if (this.options.repair !== true) throw missing;
      if (report.repaired === null) {
        report.repaired = {
          file: posix.join('wal', `${hex16(manifest)}.wal`),
          offset: 0,
          reason: missing.message,
          bytesDropped: 0,
          segmentsRemoved: [],
          bytesRemoved: 0,
          recordsDropped: 0,
          entriesDropped: null,
        };
      }
      this.logger.warn(
        { manifest, newest, lastIndex: replay.lastIndex },
        'repair: going on without WAL segments the manifest records',
      );
    }

    // Choose the newest readable snapshot the log names and reaches back to.
    const candidates = replay.snapshots.slice().sort((a, b) => b.meta.index - a.meta.index);
    let chosen: Snapshot | null = null;
    let chosenRef: SnapRef | null = null;
    let rest: SnapRef[] = [];
    for (let k = 0; k < candidates.length; k++) {
      const ref = candidates[k] as SnapRef;
      const meta = ref.meta;
      const file = posix.join('snap', snapshotName(ref));
      const s = this.readSnapshotFile(ref);
      let reason = typeof s === 'string' ? s : null;
      if (reason === null && replay.knownStart > meta.index + 1)
        reason = 'the log no longer reaches back to it';
      if (reason === null && meta.index > replay.lastIndex)
        reason = `it is past the log's end ${replay.lastIndex}`;
      if (reason !== null) {
        report.unreadableSnapshots.push({ file, reason });
        this.logger.error({ file, reason }, 'snapshot unusable; trying the previous one');
        continue;
      }
      chosen = s as Snapshot;
      chosenRef = ref;
      rest = candidates.slice(k + 1);
      break;
    }
    const base = chosen?.meta.index ?? 0;
    if (replay.knownStart > base + 1 && replay.lastIndex > base) {
      const what = candidates.length === 0 ? 'no snapshot' : 'no usable snapshot';
      throw new CohortError(
        'CORRUPTION',
        `${this.options.dir}: ${what}, and the log starts at ${replay.knownStart}; entries ${base + 1}..${replay.knownStart - 1} are lost` +
          (report.unreadableSnapshots.length > 0
            ? ` (unusable: ${report.unreadableSnapshots.map((u) => `${u.file}: ${u.reason}`).join('; ')})`
            : ''),
        { details: { dir: this.options.dir, unusable: report.unreadableSnapshots } },
      );
    }
    // Remove snapshot files the log does not name (interrupted saves) and temp files.
    const named = new Set(replay.snapshots.map(snapshotName));
    let snapDirty = false;
    for (const n of fs.readdir(this.snapDir)) {
      if (named.has(n)) continue;
      if (!SNAPSHOT_RE.test(n) && !n.endsWith('.snap.tmp')) continue;
      fs.unlink(posix.join(this.snapDir, n));
      report.removedFiles.push(posix.join('snap', n));
      snapDirty = true;
    }
    if (snapDirty) fs.syncDir(this.snapDir);

    // Build the model and open the tail segment for appending.
    const entries = replay.entries.filter((e) => e.index > base);
    this.terms = new TermRuns(base);
    for (const e of entries) this.terms.append(e.index, e.term);
    assert(this.terms.lastIndex === Math.max(base, replay.lastIndex), 'recovered log end mismatch');
    this.snapshotMeta = chosen?.meta ?? null;
    this.retained =
      chosenRef === null
        ? []
        : [...rest.slice(0, limits.snapshotsRetainedMax - 1).reverse(), chosenRef];
    this.hardState = replay.hardState;
    this.segments = segments;
    if (segments.length === 0) {
      this.segments = [{ seq: 1, path: this.segmentPath(1), maxIndex: 0 }];
      const start = this.segmentStart(1);
      this.fd = fs.open(this.segmentPath(1), 'create');
      this.fdSeq = 1;
      fs.write(this.fd, start, 0);
      fs.fdatasync(this.fd);
      this.writeOffset = start.length;
      this.tailBytes = start.length;
      this.tailRecords = 0;
      this.tailPreallocated = false;
    } else {
      const tail = segments[segments.length - 1] as Segment;
      this.fd = fs.open(tail.path, 'readwrite');
      this.fdSeq = tail.seq;
      this.writeOffset = tailLength;
      this.tailBytes = tailLength;
      this.tailRecords = tailRecords;
      this.tailPreallocated = tailSize >= this.segmentBytes;
      // What was read may sit in the page cache only (the last run was killed
      // before its sync): make it durable before Raft acts on it.
      fs.fdatasync(this.fd);
    }
    this.recoverSpare(report);
    // Names created, removed or left unsynced (by a killed run) become durable.
    fs.syncDir(this.walDir);
    // The tail's start is durable now: the manifest may name it.
    if (manifest !== this.fdSeq) this.writeManifest(this.fdSeq);

    return { hardState: replay.hardState, snapshot: chosen, entries };
  }

  // ---- manifest ------------------------------------------------------------
  //
  // `<dir>/manifest` names the newest WAL segment whose start (header and
  // checkpoint) is durable. It is rewritten (temp file, fsync, rename,
  // directory fsync) after each roll once the new segment's start is synced,
  // and at load. It is a lower bound: a crash may leave it one roll behind,
  // never ahead. At load, a log that ends before the segment it names has lost
  // its newest part (a deleted or lost segment, or the whole wal/ directory),
  // which recovery from the remaining files would hide: the newest
  // acknowledged entries, and the term and vote in the hard state, would be
  // silently gone. Load refuses that (repair goes on from what is left).

  private get manifestPath(): string {
    return posix.join(this.options.dir, MANIFEST);
  }

  /** The segment the manifest names, or null if there is no manifest (a new data dir, or one from before manifests). */
  private readManifest(): number | null {
    let bytes: Buffer;
    try {
      bytes = this.readWhole(this.manifestPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    const r = bytes.subarray(0, 4).equals(manifestMagic) ? decodeRecordAt(bytes, 4) : 'bad magic';
    let reason: string | null = null;
    let v: Record<string, unknown> | null = null;
    if (typeof r === 'string') reason = r;
    else if (r.type !== RecordType.Manifest || r.end !== bytes.length) reason = 'bad record';
    else {
      const m = unpack(r.payload);
      if (typeof m !== 'object' || m === null) reason = 'malformed';
      else v = m as Record<string, unknown>;
    }
    if (v !== null && v.v !== limits.walFormatVersion) {
      throw new CohortError(
        'FAILED_PRECONDITION',
        `${MANIFEST}: format version ${String(v.v)}, this build reads ${limits.walFormatVersion}`,
        { details: { file: MANIFEST } },
      );
    }
    if (v !== null && (v.cluster !== this.options.clusterId || v.node !== this.options.nodeId)) {
      throw new CohortError(
        'FAILED_PRECONDITION',
        `${MANIFEST} belongs to cluster ${String(v.cluster)} node ${String(v.node)}, not cluster ${this.options.clusterId} node ${this.options.nodeId}`,
        { details: { file: MANIFEST, cluster: v.cluster, node: v.node } },
      );
    }
    if (v !== null && (!Number.isSafeInteger(v.seq) || (v.seq as number) < 1))
      reason = 'bad segment';
    if (reason === null) return v?.seq as number;
    if (this.options.repair === true) {
      this.logger.warn({ file: MANIFEST, reason }, 'repair: ignoring an unreadable WAL manifest');
      return null;
    }
    throw corruption(MANIFEST, 0, `unreadable WAL manifest (${reason})`);
  }

  /** Refuses to start when the segments present end before the one the manifest names, or only snapshots are left. */
  private checkLogPresent(manifest: number | null, newest: number): void {
    if (this.options.repair === true) return;
    if (manifest !== null && newest < manifest) throw this.missingLog(manifest, newest);
    if (manifest === null && newest === 0) {
      const snaps = this.fs.readdir(this.snapDir).filter((n) => SNAPSHOT_RE.test(n));
      if (snaps.length > 0) {
        throw new CohortError(
          'CORRUPTION',
          `${this.options.dir}: the WAL is gone but snapshot files remain (${snaps.sort().join(', ')}): ` +
            `the log that named them, with the newest acknowledged entries, term and vote, was lost. ` +
            `Restore wal/ and ${MANIFEST}; or remove this member and add it back with an empty data dir`,
          { details: { dir: this.options.dir, snapshots: snaps } },
        );
      }
    }
  }

  private missingLog(manifest: number, newest: number): CohortError {
    const file = posix.join('wal', `${hex16(manifest)}.wal`);
    return new CohortError(
      'CORRUPTION',
      `${this.options.dir}: ${file} is missing: ${MANIFEST} says the log reached segment ${manifest}, ` +
        `but it ends ${newest === 0 ? 'with no segment at all' : `at segment ${newest}`}. ` +
        `The newest acknowledged entries, and the term and vote, are gone. Restore the missing files; ` +
        `or start with --repair to go on from what is left (only if the other members hold the data, ` +
        `since a node that forgot its vote may vote twice), or remove this member and add it back empty`,
      { details: { file, dir: this.options.dir, manifest, newest } },
    );
  }

  /** The manifest's bytes naming segment `seq`. */
  private manifestBytes(seq: number): Buffer {
    const record = encodeRecord(
      RecordType.Manifest,
      packer.pack({
        v: limits.walFormatVersion,
        cluster: this.options.clusterId,
        node: this.options.nodeId,
        seq,
      }),
    );
    return Buffer.concat([manifestMagic, record]);
  }

  /** Writes the manifest naming `seq`, durably, on the event loop (at load). */
  private writeManifest(seq: number): void {
    const fs = this.fs;
    const tmp = `${this.manifestPath}.tmp`;
    try {
      fs.unlink(tmp);
    } catch {
      // No leftover.
    }
    const fd = fs.open(tmp, 'create');
    try {
      fs.write(fd, this.manifestBytes(seq), 0);
      fs.fsync(fd);
    } finally {
      fs.close(fd);
    }
    fs.rename(tmp, this.manifestPath);
    fs.syncDir(this.options.dir);
  }

  /** Writes the manifest naming `seq` off the event loop, after earlier ones (after a roll). */
  private writeManifestLater(seq: number): void {
    const fs = this.fs;
    const tmp = `${this.manifestPath}.tmp`;
    this.manifestWrites = this.manifestWrites
      .then(async () => {
        if (this.failure !== null) return;
        try {
          fs.unlink(tmp);
        } catch {
          // No leftover.
        }
        await fs.writeFileAsync(tmp, [this.manifestBytes(seq)]);
        fs.rename(tmp, this.manifestPath);
        await fs.syncDirAsync(this.options.dir);
      })
      .catch((err: unknown) => this.fail(ioError(`writing ${MANIFEST}`, err), null));
  }

  /**
   * Keeps a spare segment left by an earlier run if it is whole and all zeros
   * (its zeros were synced before it got its name; checking them also refuses
   * one that an OS crash left half-written under that name), and removes any
   * other leftover. Returns true if it removed a file.
   */
  private recoverSpare(report: RecoveryReport): boolean {
    const fs = this.fs;
    const names = new Set(fs.readdir(this.walDir));
    let removed = false;
    const remove = (name: string): void => {
      fs.unlink(posix.join(this.walDir, name));
      report.removedFiles.push(posix.join('wal', name));
      removed = true;
    };
    if (names.has(SPARE_TMP)) remove(SPARE_TMP);
    if (names.has(SPARE_READY)) {
      // Read (64 MiB) only if it may be used.
      const bytes = this.preallocate ? this.readWhole(posix.join(this.walDir, SPARE_READY)) : null;
      if (bytes !== null && bytes.length === this.segmentBytes && zeroFrom(bytes, 0)) {
        this.spare = 'ready';
      } else {
        remove(SPARE_READY);
      }
    }
    return removed;
  }
}

function closedError(): CohortError {
  return new CohortError('CLOSED', 'storage is closed');
}
