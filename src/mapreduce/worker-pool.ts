/**
 * A node's pool of MapReduce worker threads (node:worker_threads). Each slot
 * owns one thread that runs one task at a time; a thread that dies (user code
 * called `process.exit`, threw outside the task, ran out of memory) or stalls
 * (once the job module is loaded, neither a progress ping nor a record done
 * for `stallMs`: a busy loop or a blocking wait in user code; booting and
 * loading the job may take `limits.mrThreadStartupMsMin`) is terminated and replaced
 * by a fresh one, and the task it ran fails with a CohortError the caller
 * reports to the coordinator.
 *
 * ```ts
 * const pool = new WorkerPool({ size: 2, stallMs: 10_000, logger });
 * const result = await pool.slot(0).run(mapTask);                // H5's runMapTask in the thread
 * pool.slot(0).abort();                                          // lease lost: kill the thread
 * await pool.close();
 * ```
 *
 * The thread entry is worker-thread.ts (worker-thread.js once compiled);
 * from the sources it runs under tsx like the process itself.
 */
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { WorkerOptions } from 'node:worker_threads';
import type { Logger } from 'pino';
import { assert } from '../lib/assert.js';
import { CohortError, isErrorCode } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import type { ThreadReply, ThreadTask } from './worker-thread.js';

/** Options of a {@link WorkerPool}. */
export interface WorkerPoolOptions {
  /** Threads (default: one per core). */
  readonly size?: number;
  /** A running task whose thread sends no progress ping for this long is killed (ms). */
  readonly stallMs: number;
  readonly logger?: Logger;
  /** The thread's entry file (default: worker-thread next to this file). */
  readonly entry?: URL;
  /** A thread idle this long gives back its kept buffers (default `limits.mrThreadIdleReleaseMs`). */
  readonly idleReleaseMs?: number;
}

/** Default worker count: one per core. */
export function defaultWorkerCount(): number {
  return Math.max(1, cpus().length);
}

function defaultEntry(): URL {
  // Running from the sources (tsx), this file is .ts and so is its sibling.
  const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
  return new URL(`./worker-thread.${ext}`, import.meta.url);
}

/**
 * Young generation of a worker thread (MiB). A map task allocates a string
 * per line and usually an object per emitted value, nearly all garbage at
 * once: a bigger young generation scavenges less often, and each scavenge
 * costs what survives, not what died.
 */
const THREAD_YOUNG_GENERATION_MB = 64;

/**
 * The threads' flags, once a thread has started with them: the process's
 * own, minus debugger ports (they would clash) and minus the flags a
 * worker thread refuses (V8's, such as `--max-old-space-size`, and
 * per-process ones: they apply to the whole process already). A thread
 * given one of those does not start at all (ERR_WORKER_INVALID_EXEC_ARGV),
 * so `node --max-old-space-size=8192 cohort node ...` had no MapReduce.
 */
let threadArgs: string[] | undefined;

/** The flags a worker refused, from Node's error (`... invalid execArgv flags: --a, --b=1`), if that is what `err` is. */
function refusedFlags(err: unknown): Set<string> | undefined {
  if (
    !(err instanceof Error) ||
    (err as { code?: unknown }).code !== 'ERR_WORKER_INVALID_EXEC_ARGV'
  ) {
    return undefined;
  }
  const at = err.message.indexOf(': ');
  if (at < 0) return undefined;
  return new Set(err.message.slice(at + 2).split(', '));
}

/** A Worker on `target` with the threads' flags (see {@link threadArgs}). */
function newWorker(target: URL | string, options: WorkerOptions): Worker {
  if (threadArgs !== undefined) return new Worker(target, { ...options, execArgv: threadArgs });
  const argv = process.execArgv.filter((a) => !a.startsWith('--inspect'));
  let worker: Worker;
  try {
    worker = new Worker(target, { ...options, execArgv: argv });
    threadArgs = argv;
  } catch (err) {
    const refused = refusedFlags(err);
    if (refused === undefined) throw err;
    const kept = argv.filter((a) => !refused.has(a));
    worker = new Worker(target, { ...options, execArgv: kept });
    threadArgs = kept;
  }
  return worker;
}

/**
 * Starts a thread on `entry`. A `.ts` entry (running from the sources) is
 * loaded through tsx's API from a small bootstrap: Node 20 does not apply
 * `--import tsx` to a worker's own entry file.
 */
function startThread(entry: URL): Worker {
  const options = {
    stdout: false,
    stderr: false,
    resourceLimits: { maxYoungGenerationSizeMb: THREAD_YOUNG_GENERATION_MB },
  } as const;
  if (!entry.pathname.endsWith('.ts')) return newWorker(entry, options);
  // tsx's ESM API (its `import` export); the CommonJS one cannot register hooks here.
  const tsxDir = dirname(createRequire(import.meta.url).resolve('tsx/package.json'));
  const api = pathToFileURL(join(tsxDir, 'dist/esm/api/index.mjs')).href;
  const code = `import(${JSON.stringify(api)}).then((m) => m.tsImport(${JSON.stringify(entry.href)}, ${JSON.stringify(entry.href)}))`;
  return newWorker(code, { ...options, eval: true });
}

/**
 * What moves to the thread with a task rather than being copied: the
 * ArrayBuffers of a reduce's runs in memory (the shuffle's, each owned by
 * its run whole; after the post they are detached here).
 */
function transferList(task: ThreadTask): ArrayBuffer[] {
  if (task.kind !== 'reduce') return [];
  const out: ArrayBuffer[] = [];
  for (const r of task.runs) {
    if (typeof r === 'string') continue;
    assert(
      r.byteOffset === 0 && r.byteLength === r.buffer.byteLength && r.buffer instanceof ArrayBuffer,
      'a run in memory owns its whole ArrayBuffer',
    );
    out.push(r.buffer);
  }
  return out;
}

/** One thread of the pool (see the file comment). */
export class WorkerSlot {
  private worker: Worker | undefined;
  private current:
    | {
        resolve: (v: unknown) => void;
        reject: (e: unknown) => void;
        watchdog: NodeJS.Timeout;
        lastAlive: number;
        lastRecords: number;
        progress: Float64Array | undefined;
        /** False until the thread has loaded the job (startup may compile it: a longer limit applies). */
        loaded: boolean;
      }
    | undefined;
  private closed = false;
  /** Threads started by this slot (1 + replacements). */
  started = 0;
  /** Fires once the slot has been idle for idleReleaseMs (see releaseWhenIdle). */
  private idleTimer: NodeJS.Timeout | undefined;
  /** Idle releases done (the thread gave back its kept buffers). */
  idleReleases = 0;
  /** The thread may keep buffers: it has run a task since its last release. */
  private holding = false;

  constructor(
    readonly index: number,
    private readonly options: WorkerPoolOptions & { readonly entry: URL },
  ) {}

  /** Time a thread may take to start and load the job before its task counts as stalled (ms). */
  private get startupMs(): number {
    return Math.max(this.options.stallMs, limits.mrThreadStartupMsMin);
  }

  /** True while a task runs. */
  get busy(): boolean {
    return this.current !== undefined;
  }

  private idleWaiters: (() => void)[] = [];

  /**
   * Resolves once no task runs (at once if none does). Callers that share a
   * slot check `busy` again and call `run` in the same synchronous step:
   * `while (slot.busy) await slot.whenIdle(); slot.run(task);`.
   */
  whenIdle(): Promise<void> {
    if (this.current === undefined) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private becameIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
    this.releaseWhenIdle();
  }

  /**
   * Once the slot has been idle for `idleReleaseMs`, asks its thread to give
   * back the buffers it keeps between tasks (worker-thread.ts `release`):
   * a thread keeps up to `limits.mrValueArenaKeptBytesMax` of arena buffers
   * and a read buffer for its next task, memory an idle node need not hold.
   * A task given to the slot meanwhile waits for it (a few milliseconds).
   */
  private releaseWhenIdle(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (this.closed || !this.holding || this.worker === undefined || this.current !== undefined) {
      return;
    }
    const ms = this.options.idleReleaseMs ?? limits.mrThreadIdleReleaseMs;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (this.closed || this.worker === undefined || this.current !== undefined) return;
      this.holding = false;
      this.run({ kind: 'release' }).then(
        (bytes) => {
          this.idleReleases++;
          this.options.logger?.debug(
            { slot: this.index, bytes },
            'idle worker thread let go of its buffers',
          );
        },
        (err: unknown) =>
          this.options.logger?.debug({ slot: this.index, err }, 'idle release failed'),
      );
    }, ms);
    this.idleTimer.unref();
  }

  /**
   * Runs one task in the thread; resolves with the task function's result.
   * Rejects with USER_CODE_ERROR (the job's code threw), INTERNAL (the thread
   * died), TIMEOUT (the thread stalled) or CANCELLED (aborted).
   */
  run(task: ThreadTask): Promise<unknown> {
    assert(this.current === undefined, `worker slot ${this.index} is busy`);
    if (this.closed) return Promise.reject(new CohortError('CLOSED', 'worker pool is closed'));
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (task.kind !== 'release') this.holding = true;
    const worker = this.ensureWorker();
    return new Promise((resolve, reject) => {
      const progress = task.kind === 'map' ? task.progress : undefined;
      this.current = {
        resolve,
        reject,
        watchdog: this.watchdog(),
        lastAlive: Date.now(),
        lastRecords: progress?.[1] ?? 0,
        progress,
        loaded: false,
      };
      worker.postMessage(task, transferList(task));
    });
  }

  /** Kills the running task's thread (the task fails with CANCELLED); a fresh thread replaces it. */
  abort(reason = 'aborted'): void {
    if (this.current === undefined) return;
    this.fail(new CohortError('CANCELLED', `task ${reason}`), true);
  }

  /** Starts the thread now (it loads its code) rather than at the first task. */
  warm(): void {
    if (!this.closed) this.ensureWorker();
  }

  /** Terminates the thread. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.idleTimer);
    if (this.current !== undefined) {
      this.fail(new CohortError('CLOSED', 'worker pool closed'), false);
    }
    const w = this.worker;
    this.worker = undefined;
    if (w !== undefined) await w.terminate();
  }

  /**
   * Watches the running task: it is alive while the thread pings, or while
   * its shared record counter moves (user code that blocks the thread's event
   * loop but still gets through records is slow, not stalled).
   */
  private watchdog(): NodeJS.Timeout {
    const every = Math.max(10, Math.min(250, Math.floor(this.options.stallMs / 8)));
    const t = setInterval(() => {
      const cur = this.current;
      if (cur === undefined) return;
      const records = cur.progress?.[1] ?? 0;
      if (records !== cur.lastRecords) {
        cur.lastRecords = records;
        cur.lastAlive = Date.now();
      }
      const limit = cur.loaded ? this.options.stallMs : this.startupMs;
      if (Date.now() - cur.lastAlive <= limit) return;
      this.options.logger?.warn({ slot: this.index }, 'worker thread stalled; replacing it');
      this.fail(
        new CohortError(
          'TIMEOUT',
          `worker thread made no progress for ${this.options.stallMs} ms (stalled)`,
        ),
        true,
      );
    }, every);
    t.unref();
    return t;
  }

  private ensureWorker(): Worker {
    if (this.worker !== undefined) return this.worker;
    const entry = this.options.entry;
    const worker = startThread(entry);
    worker.unref();
    this.started++;
    worker.on('message', (msg: ThreadReply) => {
      if (worker !== this.worker) return;
      const cur = this.current;
      if (cur === undefined) return;
      if (msg.type === 'loaded') {
        cur.loaded = true;
        cur.lastAlive = Date.now();
        return;
      }
      if (msg.type === 'progress') {
        cur.lastAlive = Date.now();
        return;
      }
      clearInterval(cur.watchdog);
      this.current = undefined;
      this.becameIdle();
      if (msg.type === 'done') cur.resolve(msg.result);
      else {
        const code = isErrorCode(msg.error.code) ? msg.error.code : 'INTERNAL';
        cur.reject(new CohortError(code, msg.error.message, { details: msg.error.details ?? {} }));
      }
    });
    worker.on('error', (err) => {
      if (worker !== this.worker) return;
      this.options.logger?.warn({ slot: this.index, err }, 'worker thread crashed');
      this.fail(
        new CohortError('USER_CODE_ERROR', `worker thread crashed: ${err.message}`, {
          cause: err,
        }),
        false,
      );
      this.worker = undefined;
    });
    worker.on('exit', (code) => {
      if (worker !== this.worker) return;
      this.worker = undefined;
      if (this.current !== undefined) {
        this.options.logger?.warn({ slot: this.index, code }, 'worker thread exited mid-task');
        this.fail(
          new CohortError('USER_CODE_ERROR', `worker thread exited with code ${code} mid-task`),
          false,
        );
      }
    });
    this.worker = worker;
    return worker;
  }

  /** Fails the running task; `kill` terminates the thread (it is replaced at the next run). */
  private fail(err: CohortError, kill: boolean): void {
    const cur = this.current;
    this.current = undefined;
    if (cur !== undefined) {
      clearInterval(cur.watchdog);
      cur.reject(err);
    }
    this.becameIdle();
    if (kill && this.worker !== undefined) {
      const w = this.worker;
      this.worker = undefined;
      void w.terminate();
    }
  }
}

/** A fixed set of {@link WorkerSlot}s (see the file comment). */
export class WorkerPool {
  readonly slots: readonly WorkerSlot[];

  constructor(options: WorkerPoolOptions) {
    const size = options.size ?? defaultWorkerCount();
    assert(Number.isInteger(size) && size >= 1, `bad worker pool size ${size}`);
    const entry = options.entry ?? defaultEntry();
    this.slots = Array.from({ length: size }, (_, i) => new WorkerSlot(i, { ...options, entry }));
  }

  /** Slot `i`. */
  slot(i: number): WorkerSlot {
    const s = this.slots[i];
    assert(s !== undefined, `no worker slot ${i}`);
    return s;
  }

  /** Threads started so far, replacements included. */
  get threadsStarted(): number {
    return this.slots.reduce((n, s) => n + s.started, 0);
  }

  /** Starts every thread now. */
  warm(): void {
    for (const s of this.slots) s.warm();
  }

  /**
   * Starts every thread and warms the engine in each (tasks-warm.ts) once
   * it is idle, outside any job: a node's first job then runs on compiled
   * code, as a preloaded embedded cluster's does. A task given to a slot
   * meanwhile waits for its warm-up (`while (slot.busy) await
   * slot.whenIdle()`). Resolves with the number of threads this warmed (a
   * thread warmed before, by a preload, counts 0); a warm-up that fails
   * (the pool closed, the thread died) counts 0 too and is not retried.
   */
  async warmEngines(): Promise<number> {
    this.warm();
    const warmed = await Promise.all(
      this.slots.map(async (s) => {
        while (s.busy) await s.whenIdle();
        try {
          return (await s.run({ kind: 'warm' })) === true ? 1 : 0;
        } catch {
          return 0;
        }
      }),
    );
    return warmed.reduce((a: number, b) => a + b, 0);
  }

  /** Terminates every thread. */
  async close(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.close()));
  }
}
