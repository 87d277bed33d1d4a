/**
 * Runs a job's real tasks (splits, map tasks, run files, merging reduce
 * tasks) in this process, one after the other, without a coordinator: the
 * engine's data path with none of its distribution. For tests of jobs and of
 * the task functions, and as a baseline in the benchmark.
 *
 * ```ts
 * const job = await loadJob('examples/mapreduce/wordcount.ts');
 * const r = await runTasksInProcess(job, ['in/*.txt'], { outputDir: 'out', splitBytes: 1 << 20 });
 * // out/part-r-00000 ... exactly as the engine (and runSequential) would write them
 * ```
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeDirs } from '../lib/dirs.js';
import type { AnyJob } from './job.js';
import { partFileName } from './format.js';
import { expandInputs, planSplits } from './input.js';
import type { MapTaskResult, ReduceTaskResult } from './tasks.js';
import { runMapTask, runReduceTask } from './tasks.js';

/** Options of {@link runTasksInProcess}. */
export interface InProcessOptions {
  /** Where the `part-r-NNNNN` files go (created if missing). */
  readonly outputDir: string;
  /** Number of reducers; default the job's. */
  readonly reducers?: number;
  /** Split size in bytes; default the job's. */
  readonly splitBytes?: number;
  /** The job's parameters. */
  readonly params?: Readonly<Record<string, string>>;
  /** Overrides the job's `defaults.skipBadRecords`. */
  readonly skipBadRecords?: boolean;
  /** Scratch directory for the runs (default: a fresh temp dir, removed at the end). */
  readonly workDir?: string;
  /** Test hook passed to every map task (forces spills). */
  readonly bufferEntriesMax?: number;
  /** Test hook passed to every map task (smaller reads: more chances to spill). */
  readonly readChunkBytes?: number;
  /** Test hook passed to every map task (smaller blocks for a job's `mapBlock`). */
  readonly mapBlockBytes?: number;
  /** Test hook passed to every map task (values per eager combine). */
  readonly combineAt?: number;
  /** Test hook passed to every map task (eager combines before a regrouping combiner stops). */
  readonly combinesBeforeArena?: number;
  /** Test hook passed to every map task (the thread's byte dictionary bound). */
  readonly keyDictionaryBytesMax?: number;
}

/** What {@link runTasksInProcess} returns: every task's result. */
export interface InProcessResult {
  readonly maps: MapTaskResult[];
  readonly reduces: ReduceTaskResult[];
  /** The output files, by partition. */
  readonly files: string[];
}

/** Runs every map task, then every reduce task, in this process; see the file header. */
export async function runTasksInProcess(
  job: AnyJob,
  inputs: readonly string[],
  options: InProcessOptions,
): Promise<InProcessResult> {
  const reducers = options.reducers ?? job.defaults.reducers;
  const splits = await planSplits(
    await expandInputs(inputs),
    options.splitBytes ?? job.defaults.splitBytes,
  );
  const work = options.workDir ?? (await mkdtemp(join(tmpdir(), 'cohort-mr-')));
  try {
    const maps: MapTaskResult[] = [];
    for (const [i, split] of splits.entries()) {
      maps.push(
        await runMapTask({
          job,
          split,
          reducers,
          dir: work,
          taskId: `m-${i}`,
          attempt: 0,
          ...(options.params === undefined ? {} : { params: options.params }),
          ...(options.skipBadRecords === undefined
            ? {}
            : { skipBadRecords: options.skipBadRecords }),
          ...(options.bufferEntriesMax === undefined
            ? {}
            : { bufferEntriesMax: options.bufferEntriesMax }),
          ...(options.readChunkBytes === undefined
            ? {}
            : { readChunkBytes: options.readChunkBytes }),
          ...(options.mapBlockBytes === undefined ? {} : { mapBlockBytes: options.mapBlockBytes }),
          ...(options.combineAt === undefined ? {} : { combineAt: options.combineAt }),
          ...(options.combinesBeforeArena === undefined
            ? {}
            : { combinesBeforeArena: options.combinesBeforeArena }),
          ...(options.keyDictionaryBytesMax === undefined
            ? {}
            : { keyDictionaryBytesMax: options.keyDictionaryBytesMax }),
        }),
      );
    }
    makeDirs(options.outputDir);
    const reduces: ReduceTaskResult[] = [];
    for (let p = 0; p < reducers; p++) {
      reduces.push(
        await runReduceTask({
          job,
          partition: p,
          runs: maps.map((m) => (m.runs[p] as { path: string }).path),
          output: join(options.outputDir, partFileName(p)),
          taskId: `r-${p}`,
          attempt: 0,
          ...(options.params === undefined ? {} : { params: options.params }),
        }),
      );
    }
    return { maps, reduces, files: reduces.map((r) => r.output) };
  } finally {
    if (options.workDir === undefined) await rm(work, { recursive: true, force: true });
  }
}
