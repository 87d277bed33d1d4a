/**
 * The {@link Storage} a simulated node's RaftNode writes to, on virtual time,
 * with the disk's crash semantics. Two kinds:
 *
 * - `model`: the {@link RaftDisk} model itself. A save is issued at once (and
 *   validated like every Storage), becomes durable after a delay drawn from
 *   the node's disk delays, and resolves then; saves complete in the order
 *   issued, like FileStorage's group commit. A crash keeps, tears or loses the
 *   unsynced saves (RaftDisk.crash).
 * - `file`: the real {@link FileStorage} (WAL segments, snapshot files,
 *   recovery) over a {@link SimDisk} whose fdatasync, snapshot file writes and
 *   directory syncs complete after the drawn delay, so a crash loses or tears
 *   what was written but not synced, or lands in the middle of them. The
 *   RaftDisk then shadows what the storage acknowledged, and recovery is
 *   checked like any durable change (RaftDisk.reset).
 *
 * Both report each write before it is issued ({@link StorageHooks.beforeWrite}:
 * log matching on the entries, the nemesis's crash-mid-write) and keep the
 * RaftDisk current, which the invariants read for persist-before-send.
 *
 * ```ts
 * const storage = simStorage({ kind: 'model', ctx, disk, random, delay: () => 3, hooks });
 * const node = await RaftNode.start({ ..., storage });
 * ```
 *
 * TEST-ONLY: `ackBeforeSync` makes a storage that acknowledges a save as soon
 * as it is issued, before it is durable (a disk that lies about fsync): the
 * shell then sends what the save promises before it is on disk, which the
 * persist-before-send check must catch.
 */
import pino from 'pino';
import { clusterId } from '../../lib/ids.js';
import type { NodeId } from '../../lib/ids.js';
import { FileStorage } from '../../raft/storage/file-storage.js';
import type { StorageFs } from '../../raft/storage/fs.js';
import type { Snapshot } from '../../raft/core/types.js';
import type { PersistentState, Storage, StorageWrite } from '../../raft/storage/storage.js';
import type { SimDisk } from '../disk.js';
import type { RaftDisk } from './disk.js';

/** What the node hosting the storage wants to hear about. */
export interface StorageHooks {
  /** A write is about to be issued (throw nothing: report failures through `fail`). */
  beforeWrite(write: StorageWrite): void;
  /** The storage was used in a way the Storage contract forbids: the scenario reports it. */
  fail(message: string): void;
}

/** Options of {@link simStorage}. */
export interface SimStorageOptions {
  readonly kind: 'model' | 'file';
  readonly id: NodeId;
  /** The incarnation the storage belongs to (its time, whether it is still up). */
  readonly ctx: { now(): number; alive(): boolean };
  /** Sets a timer of the incarnation (it dies with it). */
  readonly setTimer: (delayMs: number, fn: () => void) => void;
  /** The node's durable state (the model, or the shadow of the files). */
  readonly disk: RaftDisk;
  /** With `file`: the simulated disk the files live on. */
  readonly simDisk?: SimDisk;
  /** Draws the time one save (model) or one asynchronous file operation (file) takes, in ms. */
  readonly delayMs: () => number;
  readonly hooks: StorageHooks;
  /** TEST-ONLY: acknowledge saves before they are durable. */
  readonly ackBeforeSync?: boolean;
}

/** FileStorage and RaftNode log nothing in the simulator (the trace is the record). */
export const silentLogger = pino({ level: 'silent' });

/** Builds the storage of one incarnation (see the file header). */
export function simStorage(o: SimStorageOptions): Storage {
  return o.kind === 'model' ? modelStorage(o) : fileStorage(o);
}

function modelStorage(o: SimStorageOptions): Storage {
  const { ctx, disk } = o;
  let lastSyncAt = 0;
  return {
    load: (): Promise<PersistentState> => Promise.resolve(disk.durable),
    save: (write: StorageWrite): Promise<void> => {
      if (!ctx.alive()) return new Promise(() => {}); // a dead process's write never completes
      try {
        disk.write(write);
      } catch (err) {
        o.hooks.fail(`${o.id}: the shell issued an invalid storage write: ${String(err)}`);
        return new Promise(() => {});
      }
      o.hooks.beforeWrite(write);
      // Writes complete in the order issued (like FileStorage's group commit).
      const at = Math.max(ctx.now() + o.delayMs(), lastSyncAt);
      lastSyncAt = at;
      const synced = new Promise<void>((resolve) => {
        o.setTimer(at - ctx.now(), () => {
          disk.sync();
          resolve();
        });
      });
      return o.ackBeforeSync === true ? Promise.resolve() : synced;
    },
    // The model keeps no snapshot files: preparing takes a drawn delay and
    // changes nothing durable (a crash meanwhile loses nothing acknowledged).
    prepareSnapshot: (): Promise<void> => {
      if (!ctx.alive()) return new Promise(() => {});
      return new Promise<void>((resolve) => o.setTimer(o.delayMs(), resolve));
    },
    close: () => Promise.resolve(),
  };
}

/**
 * A StorageFs whose asynchronous operations (fdatasync, snapshot file writes,
 * directory syncs) complete after `delayMs()` of virtual time (never, if the
 * node dies first), so a crash can land in the middle of them.
 */
function delayedSyncFs(
  fs: StorageFs,
  setTimer: (delayMs: number, fn: () => void) => void,
  delayMs: () => number,
): StorageFs {
  const later = (op: () => Promise<void>): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      setTimer(delayMs(), () => {
        op().then(resolve, reject);
      });
    });
  return {
    ...fs,
    fdatasyncAsync: (fd) => later(() => fs.fdatasyncAsync(fd)),
    writeFileAsync: (path, chunks) => later(() => fs.writeFileAsync(path, chunks)),
    syncDirAsync: (dir) => later(() => fs.syncDirAsync(dir)),
  };
}

function fileStorage(o: SimStorageOptions): Storage {
  const { disk, simDisk } = o;
  if (simDisk === undefined) throw new Error('file storage needs a simulated disk');
  const files = new FileStorage({
    dir: `/${o.id}`,
    clusterId: clusterId('sim'),
    nodeId: o.id,
    fs: delayedSyncFs(simDisk.fs, o.setTimer, o.delayMs),
    logger: silentLogger,
    // Small preallocated segments: rolls, spares and their zeros happen often
    // enough for crashes to land among them.
    segmentBytes: 64 * 1024,
    // Syncs go through delayedSyncFs's fdatasyncAsync, on virtual time
    // ('auto' would time them on the real clock and sync inline).
    syncMode: 'thread',
    // Group-commit flushes are events of this incarnation, not setImmediate.
    schedule: (fn) => o.setTimer(0, fn),
  });
  return {
    load: async (): Promise<PersistentState> => {
      const state = await files.load();
      // Recovery must keep everything acknowledged: checked as a durable change.
      disk.reset(state);
      return state;
    },
    save: (write: StorageWrite): Promise<void> => {
      try {
        disk.write(write);
      } catch (err) {
        o.hooks.fail(`${o.id}: the shell issued an invalid storage write: ${String(err)}`);
        return new Promise(() => {});
      }
      o.hooks.beforeWrite(write);
      const saved = files.save(write).then(() => disk.syncOldest());
      if (o.ackBeforeSync !== true) return saved;
      saved.catch(() => {}); // the lie: nobody waits for the real outcome
      return Promise.resolve();
    },
    // Writes the snapshot file on the simulated disk; nothing the RaftDisk
    // shadows changes until the save() that logs it.
    prepareSnapshot: (snapshot: Snapshot): Promise<void> => files.prepareSnapshot(snapshot),
    close: () => files.close(),
  };
}
