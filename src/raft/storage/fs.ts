/**
 * The file-system operations the WAL and snapshot store need, injected so the
 * same storage code runs over the real disk ({@link nodeFs}) and over the
 * simulator's disk (src/sim/disk.ts), which loses what was not synced.
 *
 * Every operation is synchronous but one. Writes land in the page cache in
 * microseconds, and a synchronous call costs only the system call, where a
 * promise-based one adds a thread-pool round trip on each side. The group
 * commit's fdatasync, the one slow call on the hot path, has an asynchronous
 * twin ({@link StorageFs.fdatasyncAsync}) so the event loop keeps serving
 * (heartbeats, new saves) while the disk syncs, and saves arriving meanwhile
 * form the next batch. Snapshot files, which may be big, are written and
 * synced off the event loop too ({@link StorageFs.writeFileAsync}). Recovery
 * and rare small operations (segment rolls, renames, most directory syncs)
 * stay synchronous, which keeps them free of interleavings.
 *
 * ```ts
 * const fs = nodeFs;
 * const fd = fs.open('/data/wal/0001.wal', 'create');
 * fs.write(fd, bytes, 0);
 * fs.fdatasync(fd);
 * fs.syncDir('/data/wal');   // makes the new file's name durable
 * ```
 */
import * as nfs from 'node:fs';
import * as nfsp from 'node:fs/promises';
import { posix } from 'node:path';
import { makeDirs } from '../../lib/dirs.js';

/** How a file is opened: read-only; read-write existing; or created (must not exist). */
export type OpenMode = 'read' | 'readwrite' | 'create';

/** An open file. */
export type FileHandle = number;

/** Synchronous file-system operations; paths are absolute. Errors are thrown as Node-style errors (with `code`). */
export interface StorageFs {
  /**
   * Creates `dir` and its missing parents; returns the directories it created,
   * outermost first. A created directory's name is durable only after its
   * parent is synced ({@link StorageFs.syncDir}), like a created file's.
   */
  mkdirp(dir: string): string[];
  /** Names in `dir` (files only matter), unsorted. */
  readdir(dir: string): string[];
  /** Opens a file. 'create' fails with EEXIST if it exists. */
  open(path: string, mode: OpenMode): FileHandle;
  /** Writes all of `bytes` at `position`. */
  write(fd: FileHandle, bytes: Uint8Array, position: number): void;
  /** Reads up to `length` bytes at `position`; fewer at end of file. */
  read(fd: FileHandle, position: number, length: number): Uint8Array;
  /** Current size of the open file. */
  size(fd: FileHandle): number;
  /** Cuts or extends the file to `length` bytes. */
  truncate(fd: FileHandle, length: number): void;
  /** Makes the file's data (and the size needed to read it) durable. */
  fdatasync(fd: FileHandle): void;
  /**
   * Like {@link StorageFs.fdatasync}, but off the event loop (node: libuv's
   * thread pool), so the process keeps serving while the disk syncs. Settles
   * once the data written before the call is durable.
   */
  fdatasyncAsync(fd: FileHandle): Promise<void>;
  /** Makes the file's data and metadata durable. */
  fsync(fd: FileHandle): void;
  /** Closes the handle. */
  close(fd: FileHandle): void;
  /** Renames atomically (replacing `to`); durable only after {@link StorageFs.syncDir}. */
  rename(from: string, to: string): void;
  /** Removes a file; durable only after {@link StorageFs.syncDir}. */
  unlink(path: string): void;
  /** Makes the directory's entries (created, renamed, removed names) durable. */
  syncDir(dir: string): void;
  /**
   * Creates `path` (it must not exist) holding `chunks` one after another,
   * fsynced and closed, off the event loop (node: libuv's thread pool), so
   * the process keeps serving while a big file (a snapshot) is written. The
   * name is durable only after {@link StorageFs.syncDir}. On failure the
   * promise rejects and the file may be left, partly written.
   */
  writeFileAsync(path: string, chunks: readonly Uint8Array[]): Promise<void>;
  /** Like {@link StorageFs.syncDir}, off the event loop. */
  syncDirAsync(dir: string): Promise<void>;
  /**
   * Creates `path` (it must not exist) holding `bytes` zero bytes, written and
   * fdatasync'd off the event loop (node: libuv's thread pool), then closed.
   * The WAL preallocates its segments with it: overwriting blocks that are
   * already allocated and written leaves the file's size and block map alone,
   * so the fdatasync after each batch flushes data only, without a journal
   * commit (here ~1.8x faster than syncing a growing file; fallocate's
   * unwritten extents do not help, since writing them changes the block map).
   * The name is durable only after {@link StorageFs.syncDir}. On failure or
   * abort the promise rejects and the file may be left, partly filled.
   */
  allocate(path: string, bytes: number, signal: AbortSignal): Promise<void>;
}

/**
 * Makes the names of directories that {@link StorageFs.mkdirp} created
 * durable: syncs the parent of each (each parent once, outermost first).
 */
export function syncCreatedDirs(fs: Pick<StorageFs, 'syncDir'>, created: readonly string[]): void {
  const parents: string[] = [];
  for (const d of created) {
    const parent = posix.dirname(d);
    if (!parents.includes(parent)) parents.push(parent);
  }
  for (const p of parents) fs.syncDir(p);
}

/** Zeros written per call by {@link nodeFs}'s allocate (an abort is noticed between calls). */
const allocateChunkBytes = 1024 * 1024;
/** Bytes per write call of {@link nodeFs}'s writeFileAsync (other thread-pool work runs between calls). */
const writeChunkBytes = 8 * 1024 * 1024;

/** {@link StorageFs} over node:fs synchronous calls (see the file comment for why synchronous). */
export const nodeFs: StorageFs = {
  mkdirp(dir) {
    return makeDirs(dir);
  },
  readdir(dir) {
    return nfs.readdirSync(dir);
  },
  open(path, mode) {
    const flags = mode === 'read' ? 'r' : mode === 'readwrite' ? 'r+' : 'wx+';
    return nfs.openSync(path, flags, 0o644);
  },
  write(fd, bytes, position) {
    let done = 0;
    while (done < bytes.byteLength) {
      done += nfs.writeSync(fd, bytes, done, bytes.byteLength - done, position + done);
    }
  },
  read(fd, position, length) {
    const buf = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const n = nfs.readSync(fd, buf, got, length - got, position + got);
      if (n === 0) break;
      got += n;
    }
    return got === length ? buf : buf.subarray(0, got);
  },
  size(fd) {
    return nfs.fstatSync(fd).size;
  },
  truncate(fd, length) {
    nfs.ftruncateSync(fd, length);
  },
  fdatasync(fd) {
    nfs.fdatasyncSync(fd);
  },
  fdatasyncAsync(fd) {
    return new Promise<void>((resolve, reject) => {
      nfs.fdatasync(fd, (err) => (err === null ? resolve() : reject(err)));
    });
  },
  fsync(fd) {
    nfs.fsyncSync(fd);
  },
  close(fd) {
    nfs.closeSync(fd);
  },
  rename(from, to) {
    nfs.renameSync(from, to);
  },
  unlink(path) {
    nfs.unlinkSync(path);
  },
  syncDir(dir) {
    const fd = nfs.openSync(dir, 'r');
    try {
      nfs.fsyncSync(fd);
    } finally {
      nfs.closeSync(fd);
    }
  },
  async writeFileAsync(path, chunks) {
    const file = await nfsp.open(path, 'wx', 0o644);
    try {
      let at = 0;
      for (const chunk of chunks) {
        for (let done = 0; done < chunk.byteLength;) {
          const n = Math.min(chunk.byteLength - done, writeChunkBytes);
          const { bytesWritten } = await file.write(chunk, done, n, at);
          done += bytesWritten;
          at += bytesWritten;
        }
      }
      await file.sync();
    } finally {
      await file.close();
    }
  },
  async syncDirAsync(dir) {
    const handle = await nfsp.open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
  async allocate(path, bytes, signal) {
    signal.throwIfAborted();
    const file = await nfsp.open(path, 'wx', 0o644);
    try {
      const zeros = Buffer.alloc(Math.min(bytes, allocateChunkBytes));
      for (let at = 0; at < bytes;) {
        signal.throwIfAborted();
        const { bytesWritten } = await file.write(zeros, 0, Math.min(zeros.length, bytes - at), at);
        at += bytesWritten;
      }
      signal.throwIfAborted();
      await file.datasync();
    } finally {
      await file.close();
    }
  },
};
