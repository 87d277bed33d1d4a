/**
 * Snapshot files (`cohort snapshot save`) and new clusters made from them
 * (`cohort snapshot restore`). A file holds the KV store's snapshot bytes
 * as a node streamed them (`Kv.snapshot`) and what they hold, checksummed:
 *
 * ```text
 * "COHORTS1" | data (n bytes) | meta JSON (m bytes) | m (u32 BE) | SHA-256 of everything before (32 bytes)
 * ```
 *
 * The meta says the format, the store's revision, the source's log index,
 * cluster and node, when, and the data's own SHA-256. Data first, so a save
 * streams the chunks as they come and writes the meta once it knows it all.
 *
 * Restoring writes, into each new node's empty data dir, durable Raft state
 * that starts from the snapshot: a Raft snapshot at the saved log index (term
 * 1) whose configuration is the new members, and the hard state to match. The
 * nodes then start like any restarted cluster (`cohort up --dir D`): they load
 * the store from it, elect a leader, and go on from the next index. Only the
 * store is restored: a module's state (MapReduce jobs) starts fresh.
 *
 * ```ts
 * const w = await SnapshotFileWriter.create('backup.snap');
 * await kv.snapshot({ start: () => w.reset(), write: (c) => w.write(c) });
 * await w.finish({ ...info, clusterId: 'cohort-local' });     // fsync, rename into place
 * const snap = readSnapshotFile('backup.snap');               // checked: CORRUPTION if damaged
 * await restoreDataDir({ snapshot: snap, dataDir: 'new/n1', nodeId: 'n1', members: ['n1', 'n2', 'n3'], clusterId: 'restored' });
 * ```
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { pino } from 'pino';
import { CohortError } from '../lib/errors.js';
import { clusterId as toClusterId, isValidId, nodeId as toNodeId } from '../lib/ids.js';
import type { LogIndex, Term } from '../lib/ids.js';
import { FileStorage } from '../raft/storage/file-storage.js';
import { KvStateMachine } from '../kv/core/state-machine.js';
import { version } from '../version.js';

const MAGIC = Buffer.from('COHORTS1', 'latin1');
const FORMAT = 'cohort-kv-snapshot/1';
const HASH_BYTES = 32;

/** What a snapshot file says about its data. */
export interface SnapshotFileMeta {
  readonly format: string;
  /** The store's revision: every write up to it is in the snapshot. */
  readonly revision: number;
  /** The source node's applied log index when it was taken. */
  readonly index: number;
  /** Bytes of data. */
  readonly bytes: number;
  /** SHA-256 of the data (hex). */
  readonly sha256: string;
  readonly clusterId: string;
  readonly nodeId: string;
  /** ISO time it was saved. */
  readonly savedAt: string;
  readonly cohortVersion: string;
}

/** A snapshot file read back and checked. */
export interface SnapshotFile {
  readonly meta: SnapshotFileMeta;
  readonly data: Uint8Array;
}

/** Writes a snapshot file: the data as it streams in, then the meta; atomically in place at the end. */
export class SnapshotFileWriter {
  private written = 0;
  private closed = false;

  private constructor(
    private readonly path: string,
    private readonly tmp: string,
    private readonly fd: number,
  ) {}

  /** Opens `<path>.part` for writing (the file appears at `path` only when finished). */
  static create(path: string): SnapshotFileWriter {
    const tmp = `${path}.part`;
    let fd: number;
    try {
      fd = openSync(tmp, 'w');
    } catch (e) {
      throw new CohortError('INVALID_ARGUMENT', `cannot write ${tmp}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    const w = new SnapshotFileWriter(path, tmp, fd);
    w.reset();
    return w;
  }

  /** Starts over (a retried stream): the file holds only the magic again. */
  reset(): void {
    ftruncateSync(this.fd, 0);
    writeSync(this.fd, MAGIC, 0, MAGIC.length, 0);
    this.written = MAGIC.length;
  }

  /** Appends data. */
  write(chunk: Uint8Array): void {
    writeSync(this.fd, chunk, 0, chunk.length, this.written);
    this.written += chunk.length;
  }

  /**
   * Appends the meta and the checksum, syncs, and renames the file into
   * place (then syncs the directory): a crash leaves the old file or the
   * whole new one, never a torn one under the name.
   */
  finish(meta: Omit<SnapshotFileMeta, 'format' | 'savedAt' | 'cohortVersion'>): SnapshotFileMeta {
    const full: SnapshotFileMeta = {
      format: FORMAT,
      ...meta,
      savedAt: new Date().toISOString(),
      cohortVersion: version,
    };
    const json = Buffer.from(JSON.stringify(full), 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(json.length);
    this.write(json);
    this.write(len);
    // The checksum covers the file as written: read it back rather than trust a running hash across resets.
    closeSync(this.fd);
    this.closed = true;
    const body = readFileSync(this.tmp);
    const digest = createHash('sha256').update(body).digest();
    const fd = openSync(this.tmp, 'a');
    writeSync(fd, digest);
    fsyncSync(fd);
    closeSync(fd);
    renameSync(this.tmp, this.path);
    syncDir(dirname(this.path));
    return full;
  }

  /** Removes the unfinished file. */
  abort(): void {
    if (!this.closed) closeSync(this.fd);
    this.closed = true;
    rmSync(this.tmp, { force: true });
  }
}

function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Some file systems refuse to open a directory: the rename still happened.
  }
}

function corrupt(path: string, why: string): CohortError {
  return new CohortError('CORRUPTION', `${path} is not a valid cohort snapshot: ${why}`, {
    details: { path },
  });
}

/** Reads and checks a snapshot file: the magic, the checksum, the meta, the data's own hash. */
export function readSnapshotFile(path: string): SnapshotFile {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new CohortError('NOT_FOUND', `cannot read ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  if (buf.length < MAGIC.length + 4 + HASH_BYTES || !buf.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw corrupt(path, 'it does not start with the snapshot magic');
  }
  const body = buf.subarray(0, buf.length - HASH_BYTES);
  const digest = createHash('sha256').update(body).digest();
  if (!digest.equals(buf.subarray(buf.length - HASH_BYTES))) {
    throw corrupt(path, 'its checksum does not match (damaged or truncated)');
  }
  const metaLen = body.readUInt32BE(body.length - 4);
  const metaEnd = body.length - 4;
  const metaStart = metaEnd - metaLen;
  if (metaStart < MAGIC.length) throw corrupt(path, 'its meta length is out of range');
  let meta: SnapshotFileMeta;
  try {
    meta = JSON.parse(body.subarray(metaStart, metaEnd).toString('utf8')) as SnapshotFileMeta;
  } catch {
    throw corrupt(path, 'its meta is not JSON');
  }
  if (meta.format !== FORMAT) {
    throw corrupt(path, `format ${JSON.stringify(meta.format)}, expected ${FORMAT}`);
  }
  const data = body.subarray(MAGIC.length, metaStart);
  if (data.length !== meta.bytes)
    throw corrupt(path, `${data.length} bytes of data, meta says ${meta.bytes}`);
  if (createHash('sha256').update(data).digest('hex') !== meta.sha256) {
    throw corrupt(path, 'its data does not match the SHA-256 the node sent');
  }
  return { meta, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

/** Options of {@link restoreDataDir}. */
export interface RestoreOptions {
  readonly snapshot: SnapshotFile;
  /** The new node's data dir: absent or empty. */
  readonly dataDir: string;
  readonly nodeId: string;
  /** Every voter of the new cluster (this node included). */
  readonly members: readonly string[];
  readonly clusterId: string;
}

/**
 * Writes a new node's durable state from a snapshot (see the file comment).
 * Refuses a data dir that is not empty, and a snapshot whose store does not
 * decode (CORRUPTION), before writing anything.
 */
export async function restoreDataDir(o: RestoreOptions): Promise<void> {
  if (!isValidId(o.nodeId) || !o.members.includes(o.nodeId) || !o.members.every(isValidId)) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      `node ${JSON.stringify(o.nodeId)} must be one of the members (${o.members.join(', ')})`,
    );
  }
  if (existsSync(o.dataDir) && readdirSync(o.dataDir).length > 0) {
    throw new CohortError(
      'FAILED_PRECONDITION',
      `data dir ${o.dataDir} is not empty: a restore makes a new node; move it away or pick another`,
      { details: { field: 'dataDir' } },
    );
  }
  // Decodes before anything is written: a snapshot the nodes could not load is refused here.
  new KvStateMachine().restore(o.snapshot.data);
  const index = Math.max(1, o.snapshot.meta.index) as LogIndex;
  const term = 1 as Term;
  const storage = new FileStorage({
    dir: o.dataDir,
    clusterId: toClusterId(o.clusterId),
    nodeId: toNodeId(o.nodeId),
    logger: pino({ level: 'warn' }, pino.destination(2)),
    preallocate: false,
  });
  try {
    await storage.load();
    await storage.save({
      snapshot: {
        meta: {
          index,
          term,
          config: { voters: o.members.map(toNodeId), learners: [] },
        },
        data: o.snapshot.data,
      },
      hardState: { term, vote: null, commit: index },
    });
  } finally {
    await storage.close();
  }
}
