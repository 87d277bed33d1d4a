/**
 * An exclusive lock on a node's data dir, held for the life of the process,
 * so that two `cohort node` processes never write one WAL (both would
 * acknowledge writes, then the interleaved log would not open).
 *
 * ```ts
 * const lock = await lockDataDir('/var/lib/cohort/n1');
 * // FAILED_PRECONDITION if another process holds it, naming <dir>/LOCK and the holder's pid
 * await lock.release();
 * ```
 *
 * Mechanism. Node 20 has no flock() or fcntl() locks without a native addon,
 * and a lock file created with O_EXCL outlives a process killed with -9:
 * telling a stale one from a live one then rests on its pid, which the
 * system reuses, and breaking a stale lock races with another process doing
 * the same. (proper-lockfile, the common npm choice, keeps a directory fresh
 * by touching it and calls it stale after a timeout: a kill -9 blocks the
 * next start for that long, and a holder stalled past it loses the lock to a
 * second process while it still runs.) On Linux the lock is instead an
 * abstract unix socket, `\0cohort-data-dir:<dev>:<inode>` of the data dir:
 * binding a name is exclusive (EADDRINUSE), and the kernel releases it the
 * moment the process dies, however it dies, so a kill -9 never blocks the
 * next start and pid reuse cannot matter. The name is the directory's device
 * and inode, so another path to the same directory (a symlink, a bind mount)
 * finds the same lock. Abstract names belong to a network namespace: two
 * containers sharing the directory but not the network namespace do not see
 * each other's lock (nor do two machines sharing it over NFS).
 *
 * `<dir>/LOCK` says who holds it, for people and for the error: pid, host,
 * start time and a random token, written after the socket is bound. A second
 * process first asks the holder over the socket (it answers the same
 * fields), so the error names the live holder even if the file is stale.
 *
 * Elsewhere (no abstract sockets) the lock is `<dir>/LOCK` itself, created
 * with O_EXCL; one whose pid is no longer alive is stale and replaced. That is
 * a best effort: a reused pid keeps a stale lock until removed by hand.
 */
import { randomBytes } from 'node:crypto';
import {
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
  closeSync,
} from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { CohortError } from '../lib/errors.js';
import { pidAlive } from './cluster.js';

/** The lock file's name in the data dir. */
export const lockFileName = 'LOCK';

/** What the lock file (and the holder, asked over the socket) says. */
export interface LockHolder {
  readonly pid: number;
  readonly host: string;
  /** When the holder took the lock (ISO 8601). */
  readonly since: string;
  /** Random per holder: a LOCK file whose token the live holder does not answer is stale. */
  readonly token: string;
}

/** A held data-dir lock. */
export interface DataDirLock {
  /** Path of the lock file. */
  readonly file: string;
  /** How it is held: the abstract socket (Linux) or the O_EXCL file. */
  readonly mechanism: 'socket' | 'file';
  /** Releases the lock (idempotent); the process exiting releases it too. */
  release(): Promise<void>;
}

/** Options of {@link lockDataDir}. */
export interface LockOptions {
  /** Default: 'socket' on Linux, else 'file'. */
  readonly mechanism?: 'socket' | 'file';
}

/** How long a second process waits for the holder to say who it is (a stopped holder never answers). */
const askHolderMs = 1000;

/**
 * Takes the lock on `dir` (which must exist), or throws FAILED_PRECONDITION
 * naming the lock file and the holder's pid (see the file comment).
 */
export async function lockDataDir(dir: string, options: LockOptions = {}): Promise<DataDirLock> {
  const file = join(dir, lockFileName);
  const me: LockHolder = {
    pid: process.pid,
    host: hostname(),
    since: new Date().toISOString(),
    token: randomBytes(8).toString('hex'),
  };
  const mechanism = options.mechanism ?? (process.platform === 'linux' ? 'socket' : 'file');
  if (mechanism === 'file') return lockWithFile(dir, file, me);
  const { dev, ino } = statSync(dir);
  const name = `\0cohort-data-dir:${dev}:${ino}`;
  const server = createServer((socket) => {
    socket.on('error', () => {});
    socket.end(`${JSON.stringify(me)}\n`);
  });
  const bound = await new Promise<Error | null>((resolve) => {
    server.once('error', resolve);
    server.listen(name, () => resolve(null));
  });
  if (bound !== null) {
    if ((bound as NodeJS.ErrnoException).code !== 'EADDRINUSE') {
      throw new CohortError(
        'FAILED_PRECONDITION',
        `cannot lock data dir ${dir}: ${bound.message}`,
        {
          details: { field: 'dataDir', dir },
          cause: bound,
        },
      );
    }
    throw held(dir, file, (await askHolder(name)) ?? readHolder(file));
  }
  // Only the holder of the lock, so no other process, writes the file.
  server.unref();
  writeHolder(file, me);
  let released: Promise<void> | null = null;
  return {
    file,
    mechanism,
    release: () => {
      released ??= (async () => {
        removeIfOurs(file, me);
        await new Promise<void>((resolve) => server.close(() => resolve()));
      })();
      return released;
    },
  };
}

function lockWithFile(dir: string, file: string, me: LockHolder): DataDirLock {
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o644);
      try {
        writeSync(fd, `${JSON.stringify(me)}\n`);
      } finally {
        closeSync(fd);
      }
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new CohortError(
          'FAILED_PRECONDITION',
          `cannot lock data dir ${dir}: ${(e as Error).message}`,
          {
            details: { field: 'dataDir', dir },
            cause: e,
          },
        );
      }
      const holder = readHolder(file);
      if (attempt > 0 || (holder !== null && pidAlive(holder.pid))) throw held(dir, file, holder);
      // The holder died without releasing it: stale.
      try {
        unlinkSync(file);
      } catch {
        // Gone meanwhile.
      }
    }
  }
  let released = false;
  return {
    file,
    mechanism: 'file',
    release: () => {
      if (!released) removeIfOurs(file, me);
      released = true;
      return Promise.resolve();
    },
  };
}

function held(dir: string, file: string, holder: LockHolder | null): CohortError {
  const who =
    holder === null
      ? 'a process that did not say who it is'
      : `pid ${holder.pid} on ${holder.host}, since ${holder.since}`;
  return new CohortError(
    'FAILED_PRECONDITION',
    `data dir ${dir} is in use by another cohort node (${who}; lock ${file}). ` +
      'Two nodes on one data dir would both write its log; stop the other one first',
    { details: { field: 'dataDir', dir, lockFile: file, pid: holder?.pid ?? null } },
  );
}

/** Asks the holder over the lock socket who it is; null if it does not answer in time. */
function askHolder(name: string): Promise<LockHolder | null> {
  return new Promise((resolve) => {
    let text = '';
    const socket = createConnection(name);
    const done = (h: LockHolder | null): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(h);
    };
    const timer = setTimeout(() => done(null), askHolderMs);
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      text += d;
      if (text.length > 4096) done(null);
    });
    socket.on('end', () => done(parseHolder(text)));
    socket.on('error', () => done(null));
  });
}

function parseHolder(text: string): LockHolder | null {
  try {
    const v = JSON.parse(text) as Partial<LockHolder>;
    if (
      typeof v.pid === 'number' &&
      typeof v.host === 'string' &&
      typeof v.since === 'string' &&
      typeof v.token === 'string'
    ) {
      return { pid: v.pid, host: v.host, since: v.since, token: v.token };
    }
  } catch {
    // Not a lock file of ours.
  }
  return null;
}

function readHolder(file: string): LockHolder | null {
  try {
    return parseHolder(readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}

/** Writes the lock file whole (temp name, rename): a reader never sees half of it. */
function writeHolder(file: string, me: LockHolder): void {
  const tmp = `${file}.${me.token}.tmp`;
  const fd = openSync(tmp, 'w', 0o644);
  try {
    writeSync(fd, `${JSON.stringify(me)}\n`);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

function removeIfOurs(file: string, me: LockHolder): void {
  if (readHolder(file)?.token !== me.token) return;
  try {
    unlinkSync(file);
  } catch {
    // Already gone.
  }
}
