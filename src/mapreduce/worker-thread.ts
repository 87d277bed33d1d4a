/**
 * The entry of a MapReduce worker thread (see worker-pool.ts): receives one
 * task at a time from the node's main thread, loads the job module (cached
 * per thread), runs H5's {@link runMapTask} or {@link runReduceTask} on local
 * files, and posts the result or the error back. While a task runs it posts a
 * progress ping every {@link PROGRESS_PING_MS}, and says when the job module
 * is loaded: a thread whose user code blocks (a busy loop, a blocking wait)
 * stops pinging and is replaced.
 *
 * ```ts
 * worker.postMessage({ kind: 'map', module: '/abs/wc.ts', split, reducers: 2, dir, taskId: 'm-0', attempt: 7 });
 * worker.on('message', (m: ThreadReply) => ...); // { type: 'progress' } ... { type: 'done', result }
 * ```
 */
import { isMainThread, parentPort } from 'node:worker_threads';
import { isCohortError } from '../lib/errors.js';
import type { Split } from './input.js';
import { dropReadBuffer } from './input.js';
import { loadJob } from './job.js';
import type { ModuleExpectation } from './job.js';
import { runMapTask, runReduceTask } from './tasks.js';
import { warmEngine } from './tasks-warm.js';
import type { MapTaskResult, ReduceTaskResult } from './tasks.js';
import { dropKeptArenaBuffers } from './value-arena.js';

/** How often a busy thread tells its parent it is alive (ms). */
export const PROGRESS_PING_MS = 100;

/** A map task for a thread. */
export interface ThreadMapTask {
  readonly kind: 'map';
  readonly module: string;
  /** What the job recorded of its module, checked before loading (module-hash.ts); absent: an unverified load. */
  readonly moduleCheck?: ModuleExpectation | undefined;
  readonly split: Split;
  readonly reducers: number;
  readonly dir: string;
  readonly taskId: string;
  readonly attempt: number;
  readonly params: Readonly<Record<string, string>>;
  readonly skipBadRecords: boolean;
  readonly skipOffsets: readonly number[];
  /** Shared progress slots ([0]: offset of the record being mapped, [1]: records done). */
  readonly progress?: Float64Array;
}

/**
 * A reduce task for a thread: its runs are local files, or runs the shuffle
 * fetched into memory (each owning its ArrayBuffer, which the pool moves to
 * the thread with the task).
 */
export interface ThreadReduceTask {
  readonly kind: 'reduce';
  readonly module: string;
  /** What the job recorded of its module, checked before loading (module-hash.ts); absent: an unverified load. */
  readonly moduleCheck?: ModuleExpectation | undefined;
  readonly partition: number;
  readonly runs: readonly (string | Uint8Array)[];
  readonly output: string;
  readonly taskId: string;
  readonly attempt: number;
  readonly params: Readonly<Record<string, string>>;
}

/**
 * Loads (and caches) a job module ahead of its tasks; the result is null.
 * The thread's first one also warms the engine (tasks-warm.ts).
 */
export interface ThreadLoadTask {
  readonly kind: 'load';
  readonly module: string;
  /** What the job recorded of its module, checked before loading (module-hash.ts); absent: an unverified load. */
  readonly moduleCheck?: ModuleExpectation | undefined;
}

/**
 * Warms the engine in the thread (tasks-warm.ts) unless it already is, with
 * no job module: what a node does with its threads when it starts with
 * `warm` (runtime.ts), outside any job. The result is true when this task
 * warmed the thread, false when it was warm already.
 */
export interface ThreadWarmTask {
  readonly kind: 'warm';
}

/**
 * Gives back the buffers the thread keeps between tasks (value arenas, the
 * read buffer; the key dictionary stays: it is bounded and saves the next
 * job its keys): the pool sends it to a thread idle for
 * `limits.mrThreadIdleReleaseMs`. The result is the bytes let go.
 */
export interface ThreadReleaseTask {
  readonly kind: 'release';
}

/** A task for a thread. */
export type ThreadTask =
  ThreadMapTask | ThreadReduceTask | ThreadLoadTask | ThreadWarmTask | ThreadReleaseTask;

/** What a thread posts back. */
export type ThreadReply =
  | { readonly type: 'progress' }
  /** The job module is loaded: from now on the task runs user code (the stall limit applies). */
  | { readonly type: 'loaded' }
  | {
      readonly type: 'done';
      readonly result: MapTaskResult | ReduceTaskResult | boolean | number | null;
    }
  | {
      readonly type: 'error';
      readonly error: {
        readonly code: string;
        readonly message: string;
        readonly details?: Record<string, unknown>;
      };
    };

/** Whether this thread has run {@link warmEngine}. */
let warmed = false;

async function run(
  task: ThreadTask,
  loaded: () => void,
): Promise<MapTaskResult | ReduceTaskResult | boolean | number | null> {
  if (task.kind === 'release') {
    loaded();
    return dropKeptArenaBuffers() + dropReadBuffer();
  }
  if (task.kind === 'warm') {
    // Under the thread's start-up limit, as loading a job is.
    const now = !warmed;
    warmed = true;
    if (now) await warmEngine();
    loaded();
    return now;
  }
  const job = await loadJob(task.module, task.moduleCheck);
  if (task.kind === 'load' && !warmed) {
    // The first preload also compiles the engine's per-record path (tasks-warm.ts).
    warmed = true;
    await warmEngine();
  }
  loaded();
  if (task.kind === 'load') return null;
  if (task.kind === 'map') {
    return runMapTask({
      job,
      split: task.split,
      reducers: task.reducers,
      dir: task.dir,
      taskId: task.taskId,
      attempt: task.attempt,
      params: task.params,
      skipBadRecords: task.skipBadRecords,
      skipOffsets: task.skipOffsets,
      ...(task.progress === undefined ? {} : { progress: task.progress }),
    });
  }
  return runReduceTask({
    job,
    partition: task.partition,
    // A run in memory is read as a one-chunk stream (an array: it can be read again).
    runs: task.runs.map((r) => (typeof r === 'string' ? r : [r])),
    output: task.output,
    taskId: task.taskId,
    attempt: task.attempt,
    params: task.params,
  });
}

function plainDetails(details: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(details)) {
    if (v === null || ['string', 'number', 'boolean'].includes(typeof v)) out[k] = v;
  }
  return out;
}

if (!isMainThread && parentPort !== null) {
  const port = parentPort;
  port.on('message', (task: ThreadTask) => {
    const ping = setInterval(
      () => port.postMessage({ type: 'progress' } satisfies ThreadReply),
      PROGRESS_PING_MS,
    );
    run(task, () => port.postMessage({ type: 'loaded' } satisfies ThreadReply)).then(
      (result) => {
        clearInterval(ping);
        port.postMessage({ type: 'done', result } satisfies ThreadReply);
      },
      (err: unknown) => {
        clearInterval(ping);
        const reply: ThreadReply = isCohortError(err)
          ? {
              type: 'error',
              error: { code: err.code, message: err.message, details: plainDetails(err.details) },
            }
          : {
              type: 'error',
              error: {
                code: 'USER_CODE_ERROR',
                message: err instanceof Error ? err.message : String(err),
              },
            };
        port.postMessage(reply);
      },
    );
  });
}
