/**
 * A simulated disk for deterministic tests: a {@link StorageFs} whose writes are
 * volatile until synced. {@link SimDisk.crash} keeps what was synced and, per
 * file, a random in-order prefix of the unsynced operations, possibly tearing
 * the first one it does not keep at any byte (optionally leaving zeros after
 * the tear, as when the size reached the disk before the data). Directory
 * entries (create, rename, unlink, and the entries of directories that mkdirp
 * made) are volatile too until the directory holding them is synced: a crash
 * before its parent is synced loses a new directory with everything in it.
 * Bit rot flips stored bits. All choices come from a seeded Random.
 *
 * Simplifications: fsync and fdatasync are the same; directories are never
 * renamed or removed; time does not pass.
 *
 * ```ts
 * const disk = new SimDisk(seededRandom(7));
 * const storage = new FileStorage({ fs: disk.fs, dir: '/n1', clusterId, nodeId });
 * ... await storage.save(...) ...
 * disk.crash();                               // unsynced data lost, last write maybe torn
 * const again = new FileStorage({ fs: disk.fs, dir: '/n1', clusterId, nodeId });
 * ```
 */
import { posix } from 'node:path';
import { assert } from '../lib/assert.js';
import type { Random } from '../lib/random.js';
import type { FileHandle, OpenMode, StorageFs } from '../raft/storage/fs.js';

type FileOp =
  | { readonly kind: 'write'; readonly position: number; readonly bytes: Uint8Array }
  | { readonly kind: 'truncate'; readonly length: number };

type DirOp =
  | { readonly kind: 'link'; readonly name: string; readonly ino: number }
  | { readonly kind: 'unlink'; readonly name: string }
  | { readonly kind: 'rename'; readonly from: string; readonly to: string; readonly ino: number };

/**
 * One file's bytes. Appends grow a buffer in place; the synced contents share
 * that buffer (as a prefix) until an operation touches the synced region, so an
 * append-only file costs no copies per sync.
 */
class Inode {
  private buf = new Uint8Array(256);
  private len = 0;
  /** Synced contents if copied out; null means "the first durableLen bytes of buf". */
  private durableCopy: Uint8Array | null = null;
  private durableLen = 0;
  /** Operations since the last sync, in order. */
  pending: FileOp[] = [];

  get length(): number {
    return this.len;
  }

  /** Current contents (a view; do not keep across mutations). */
  view(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }

  /** Synced contents (a copy). */
  durable(): Uint8Array {
    return this.durableCopy === null
      ? this.buf.slice(0, this.durableLen)
      : this.durableCopy.slice();
  }

  apply(op: FileOp): void {
    const touches = op.kind === 'write' ? op.position : op.length;
    if (this.durableCopy === null && touches < this.durableLen) {
      this.durableCopy = this.buf.slice(0, this.durableLen);
    }
    const end = op.kind === 'write' ? op.position + op.bytes.length : op.length;
    if (end > this.buf.length) {
      const grown = new Uint8Array(Math.max(end, this.buf.length * 2));
      grown.set(this.buf.subarray(0, this.len));
      this.buf = grown;
    }
    if (end > this.len) this.buf.fill(0, this.len, end);
    if (op.kind === 'write') {
      this.buf.set(op.bytes, op.position);
      this.len = Math.max(this.len, end);
    } else {
      this.len = op.length;
    }
  }

  sync(): void {
    this.durableCopy = null;
    this.durableLen = this.len;
    this.pending = [];
  }

  /** Replaces all contents, durably. */
  reset(bytes: Uint8Array): void {
    this.buf = new Uint8Array(Math.max(256, bytes.length));
    this.buf.set(bytes);
    this.len = bytes.length;
    this.sync();
  }

  flip(offset: number, bit: number): void {
    if (offset < this.len) this.buf[offset] = (this.buf[offset] as number) ^ (1 << bit);
    if (this.durableCopy !== null && offset < this.durableCopy.length) {
      this.durableCopy[offset] = (this.durableCopy[offset] as number) ^ (1 << bit);
    }
  }
}

interface Dir {
  /** This directory's inode number (its entry in the parent names it). */
  readonly ino: number;
  live: Map<string, number>;
  durable: Map<string, number>;
  pending: DirOp[];
}

interface OpenFile {
  readonly ino: number;
  readonly mode: OpenMode;
  readonly generation: number;
}

/** Options for {@link SimDisk}. */
export interface SimDiskOptions {
  /** Probability that a crash tears the first unsynced write it does not keep whole (default 0.5). */
  readonly tearProbability?: number;
  /** Probability that a torn write leaves zeros up to its intended end (default 0.3). */
  readonly zeroFillProbability?: number;
  /**
   * Runs the next step of an asynchronous operation (writeFileAsync,
   * syncDirAsync: open, each write, fsync, close are steps). Default: a
   * microtask. A test may queue the steps and run them when its seed says, so
   * that a crash can land between any two.
   */
  readonly defer?: (step: () => void) => void;
}

/** What a crash did, for test messages. */
export interface CrashReport {
  /** Unsynced file operations dropped (a torn write counts as dropped). */
  readonly droppedOps: number;
  /** Writes torn. */
  readonly tornWrites: number;
  /** Unsynced directory operations dropped. */
  readonly droppedDirOps: number;
}

function fsError(code: string, message: string): Error {
  return Object.assign(new Error(`${code}: ${message}`), { code });
}

/** A simulated disk; see the file comment. */
export class SimDisk {
  /**
   * The {@link StorageFs} view of this disk for the current "process". A crash
   * ends that process: a view taken before it fails every operation with EIO,
   * so code still holding it (a storage object the test abandoned) cannot
   * touch what the next incarnation recovers.
   */
  get fs(): StorageFs {
    return this.currentFs;
  }

  private currentFs: StorageFs;
  /** Number of file syncs so far (fsync + fdatasync). */
  syncs = 0;
  /** Number of directory syncs so far. */
  dirSyncs = 0;
  /** When set, an operation for which it returns true throws EIO instead (fault injection). */
  failWhen: ((op: string, path: string) => boolean) | null = null;

  private readonly inodes = new Map<number, Inode>();
  private readonly dirs = new Map<string, Dir>();
  private readonly fds = new Map<number, OpenFile>();
  private nextIno = 1;
  private nextFd = 3;
  private generation = 0;
  private readonly tearProbability: number;
  private readonly zeroFillProbability: number;
  private readonly defer: (step: () => void) => void;

  constructor(
    private readonly rng: Random,
    options: SimDiskOptions = {},
  ) {
    this.tearProbability = options.tearProbability ?? 0.5;
    this.zeroFillProbability = options.zeroFillProbability ?? 0.3;
    this.defer = options.defer ?? queueMicrotask;
    this.dirs.set('/', { ino: 0, live: new Map(), durable: new Map(), pending: [] });
    this.currentFs = this.makeFs();
  }

  /**
   * Power loss: every file keeps its synced contents plus a random in-order
   * prefix of its unsynced operations, maybe tearing the next write; every
   * directory keeps a random prefix of its unsynced entry changes. Open handles
   * become invalid.
   */
  crash(): CrashReport {
    let droppedOps = 0;
    let tornWrites = 0;
    let droppedDirOps = 0;
    for (const inode of this.inodes.values()) {
      const pending = inode.pending;
      const n = pending.length;
      const keep = n === 0 ? 0 : this.rng.int(n + 1);
      const result = new Inode();
      result.reset(inode.durable());
      for (let i = 0; i < keep; i++) result.apply(pending[i] as FileOp);
      const next = pending[keep];
      if (next !== undefined && next.kind === 'write' && this.rng.chance(this.tearProbability)) {
        const cut = this.rng.int(next.bytes.length + 1);
        result.apply({
          kind: 'write',
          position: next.position,
          bytes: next.bytes.subarray(0, cut),
        });
        if (this.rng.chance(this.zeroFillProbability)) {
          const end = next.position + next.bytes.length;
          if (end > result.length) result.apply({ kind: 'truncate', length: end });
        }
        tornWrites++;
      }
      droppedOps += n - keep;
      inode.reset(result.view());
    }
    for (const dir of this.dirs.values()) {
      const n = dir.pending.length;
      const keep = n === 0 ? 0 : this.rng.int(n + 1);
      for (let i = 0; i < keep; i++) this.applyDirOp(dir.durable, dir.pending[i] as DirOp);
      droppedDirOps += n - keep;
      dir.live = new Map(dir.durable);
      dir.pending = [];
    }
    // A directory survives only if its entry in its (surviving) parent does.
    for (const path of [...this.dirs.keys()].sort((a, b) => a.length - b.length)) {
      if (path === '/') continue;
      const dir = this.dirs.get(path) as Dir;
      const parent = this.dirs.get(posix.dirname(path));
      if (parent === undefined || parent.live.get(posix.basename(path)) !== dir.ino) {
        this.dirs.delete(path);
        if (parent !== undefined) parent.live.delete(posix.basename(path));
      }
    }
    this.fds.clear();
    this.generation++;
    this.currentFs = this.makeFs();
    this.collect();
    return { droppedOps, tornWrites, droppedDirOps };
  }

  /** Flips bit `bit` (0..7) of byte `offset` of the file at `path`, in stored and current contents. */
  flipBit(path: string, offset: number, bit = 0): void {
    const inode = this.inodeAt(path);
    assert(offset < inode.length, `flipBit past the end of ${path}`);
    inode.flip(offset, bit);
  }

  /** Flips `count` random bits in random durable files under `dirPrefix` (bit rot). Returns where. */
  rot(count: number, dirPrefix = '/'): { path: string; offset: number; bit: number }[] {
    const out: { path: string; offset: number; bit: number }[] = [];
    const paths = this.allFiles().filter(
      (p) => p.startsWith(dirPrefix) && this.inodeAt(p).length > 0,
    );
    for (let i = 0; i < count && paths.length > 0; i++) {
      const path = this.rng.pick(paths);
      const offset = this.rng.int(this.inodeAt(path).length);
      const bit = this.rng.int(8);
      this.flipBit(path, offset, bit);
      out.push({ path, offset, bit });
    }
    return out;
  }

  /** Current contents of a file (a copy). */
  readFile(path: string): Uint8Array {
    return this.inodeAt(path).view().slice();
  }

  /** Replaces a file's contents, durably (for test setup such as truncated copies). */
  writeFileDurably(path: string, bytes: Uint8Array): void {
    const dir = this.dirOf(path);
    // Its directories too, as if made and synced long ago.
    for (let d = posix.dirname(path); d !== '/'; d = posix.dirname(d)) {
      const parent = this.dirs.get(posix.dirname(d)) as Dir;
      parent.durable.set(posix.basename(d), (this.dirs.get(d) as Dir).ino);
    }
    let ino = dir.live.get(posix.basename(path));
    if (ino === undefined) {
      ino = this.nextIno++;
      this.inodes.set(ino, new Inode());
      dir.live.set(posix.basename(path), ino);
    }
    dir.durable.set(posix.basename(path), ino);
    (this.inodes.get(ino) as Inode).reset(bytes);
  }

  /** Every file path on the disk (current view), sorted. */
  allFiles(): string[] {
    const out: string[] = [];
    for (const [dirPath, dir] of this.dirs) {
      for (const [name, ino] of dir.live) {
        if (this.inodes.has(ino)) out.push(posix.join(dirPath, name));
      }
    }
    return out.sort();
  }

  private inodeAt(path: string): Inode {
    const ino = this.dirOf(path).live.get(posix.basename(path));
    if (ino === undefined) throw fsError('ENOENT', path);
    const inode = this.inodes.get(ino);
    if (inode === undefined) throw fsError('EISDIR', path);
    return inode;
  }

  private dirOf(path: string): Dir {
    const dir = this.dirs.get(posix.dirname(path));
    if (dir === undefined) throw fsError('ENOENT', `no directory for ${path}`);
    return dir;
  }

  private applyDirOp(entries: Map<string, number>, op: DirOp): void {
    if (op.kind === 'link') entries.set(op.name, op.ino);
    else if (op.kind === 'unlink') entries.delete(op.name);
    else {
      entries.delete(op.from);
      entries.set(op.to, op.ino);
    }
  }

  private collect(): void {
    const live = new Set<number>();
    for (const dir of this.dirs.values()) for (const ino of dir.live.values()) live.add(ino);
    for (const ino of this.inodes.keys()) if (!live.has(ino)) this.inodes.delete(ino);
  }

  private file(fd: FileHandle, op: string): { open: OpenFile; inode: Inode } {
    const open = this.fds.get(fd);
    if (open === undefined || open.generation !== this.generation)
      throw fsError('EBADF', `${op} on fd ${fd}`);
    const inode = this.inodes.get(open.ino);
    assert(inode !== undefined, 'open file without inode');
    return { open, inode };
  }

  private fail(op: string, path: string): void {
    if (this.failWhen !== null && this.failWhen(op, path))
      throw fsError('EIO', `${op} ${path} (injected)`);
  }

  private makeFs(): StorageFs {
    const generation = this.generation;
    const fs = this.makeRawFs();
    const guarded = {} as Record<string, unknown>;
    for (const [name, fn] of Object.entries(fs) as [string, (...args: unknown[]) => unknown][]) {
      guarded[name] = (...args: unknown[]): unknown => {
        if (generation !== this.generation) {
          throw fsError('EIO', `${name} from before a crash (that process is gone)`);
        }
        return fn(...args);
      };
    }
    return guarded as unknown as StorageFs;
  }

  private makeRawFs(): StorageFs {
    const mutate = (fd: FileHandle, op: string, fileOp: FileOp): void => {
      const { open, inode } = this.file(fd, op);
      if (open.mode === 'read') throw fsError('EBADF', `${op} on a read-only fd`);
      this.fail(op, String(fd));
      inode.apply(fileOp);
      // A copy: the caller may reuse its buffer before the next sync (a Buffer's
      // slice() would be a view of it, not a copy).
      inode.pending.push(
        fileOp.kind === 'write' ? { ...fileOp, bytes: new Uint8Array(fileOp.bytes) } : fileOp,
      );
    };
    const sync = (fd: FileHandle, op: string): void => {
      const { inode } = this.file(fd, op);
      this.fail(op, String(fd));
      inode.sync();
      this.syncs++;
    };
    /** Runs `steps` one per deferred turn; a crash meanwhile fails the rest (that process is gone). */
    const inSteps = (steps: (() => void)[]): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        const generation = this.generation;
        const run = (i: number): void => {
          if (i === steps.length) {
            resolve();
            return;
          }
          this.defer(() => {
            try {
              if (generation !== this.generation) throw fsError('EIO', 'from before a crash');
              (steps[i] as () => void)();
            } catch (err) {
              reject(err instanceof Error ? err : new Error(String(err)));
              return;
            }
            run(i + 1);
          });
        };
        run(0);
      });
    const raw: StorageFs = {
      mkdirp: (dir) => {
        const created: string[] = [];
        let cur = '/';
        for (const part of dir.split('/').filter((p) => p !== '')) {
          const parent = this.dirs.get(cur) as Dir;
          cur = posix.join(cur, part);
          if (this.dirs.has(cur)) continue;
          if (parent.live.has(part)) throw fsError('ENOTDIR', cur);
          this.fail('mkdir', cur);
          const ino = this.nextIno++;
          this.dirs.set(cur, { ino, live: new Map(), durable: new Map(), pending: [] });
          parent.live.set(part, ino);
          parent.pending.push({ kind: 'link', name: part, ino });
          created.push(cur);
        }
        return created;
      },
      readdir: (dir) => {
        const d = this.dirs.get(posix.normalize(dir));
        if (d === undefined) throw fsError('ENOENT', dir);
        return [...d.live.keys()];
      },
      open: (path, mode) => {
        this.fail('open', path);
        const dir = this.dirOf(path);
        const name = posix.basename(path);
        let ino = dir.live.get(name);
        if (mode === 'create') {
          if (ino !== undefined) throw fsError('EEXIST', path);
          ino = this.nextIno++;
          this.inodes.set(ino, new Inode());
          dir.live.set(name, ino);
          dir.pending.push({ kind: 'link', name, ino });
        } else if (ino === undefined) {
          throw fsError('ENOENT', path);
        } else if (!this.inodes.has(ino)) {
          throw fsError('EISDIR', path);
        }
        const fd = this.nextFd++;
        this.fds.set(fd, { ino, mode, generation: this.generation });
        return fd;
      },
      write: (fd, bytes, position) => mutate(fd, 'write', { kind: 'write', position, bytes }),
      read: (fd, position, length) => {
        const { inode } = this.file(fd, 'read');
        return inode.view().slice(position, Math.min(inode.length, position + length));
      },
      size: (fd) => this.file(fd, 'size').inode.length,
      truncate: (fd, length) => mutate(fd, 'truncate', { kind: 'truncate', length }),
      fdatasync: (fd) => sync(fd, 'fdatasync'),
      fdatasyncAsync: (fd) => {
        try {
          sync(fd, 'fdatasync');
          return Promise.resolve();
        } catch (err) {
          return Promise.reject(err instanceof Error ? err : new Error(String(err)));
        }
      },
      fsync: (fd) => sync(fd, 'fsync'),
      close: (fd) => {
        this.file(fd, 'close');
        this.fds.delete(fd);
      },
      rename: (from, to) => {
        this.fail('rename', from);
        const dir = this.dirOf(from);
        assert(this.dirOf(to) === dir, 'SimDisk renames only within one directory');
        const ino = dir.live.get(posix.basename(from));
        if (ino === undefined) throw fsError('ENOENT', from);
        if (!this.inodes.has(ino)) throw fsError('EISDIR', from);
        dir.live.delete(posix.basename(from));
        dir.live.set(posix.basename(to), ino);
        dir.pending.push({
          kind: 'rename',
          from: posix.basename(from),
          to: posix.basename(to),
          ino,
        });
      },
      unlink: (path) => {
        this.fail('unlink', path);
        const dir = this.dirOf(path);
        const name = posix.basename(path);
        const ino = dir.live.get(name);
        if (ino === undefined) throw fsError('ENOENT', path);
        if (!this.inodes.has(ino)) throw fsError('EISDIR', path);
        dir.live.delete(name);
        dir.pending.push({ kind: 'unlink', name });
      },
      syncDir: (dir) => {
        const d = this.dirs.get(posix.normalize(dir));
        if (d === undefined) throw fsError('ENOENT', dir);
        this.fail('syncDir', dir);
        d.durable = new Map(d.live);
        d.pending = [];
        this.dirSyncs++;
      },
      writeFileAsync: (path, chunks) => {
        let fd = -1;
        let at = 0;
        const steps = [(): void => void (fd = raw.open(path, 'create'))];
        for (const chunk of chunks) {
          const position = at;
          steps.push(() => raw.write(fd, chunk, position));
          at += chunk.byteLength;
        }
        steps.push(
          () => raw.fsync(fd),
          () => raw.close(fd),
        );
        return inSteps(steps);
      },
      syncDirAsync: (dir) => inSteps([() => raw.syncDir(dir)]),
      // Done at once (time does not pass): create, zeros, sync, close. The name
      // stays volatile until the directory is synced, like any created file.
      allocate: (path, bytes, signal) => {
        try {
          signal.throwIfAborted();
          const fd = raw.open(path, 'create');
          try {
            raw.write(fd, new Uint8Array(bytes), 0);
            raw.fdatasync(fd);
          } finally {
            raw.close(fd);
          }
          return Promise.resolve();
        } catch (err) {
          return Promise.reject(err instanceof Error ? err : new Error(String(err)));
        }
      },
    };
    return raw;
  }
}
