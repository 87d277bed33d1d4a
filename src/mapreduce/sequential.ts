/**
 * The sequential reference runner: the whole job in one process, the simple
 * way, writing the same output files as the distributed engine. Tests compare
 * the engine's output with this one byte for byte (the MapReduce lab's
 * `mrsequential`).
 *
 * ```ts
 * const job = await loadJob('examples/mapreduce/wordcount.ts');
 * const { files } = await runSequential(job, ['in/*.txt'], { outputDir: '/tmp/ref', reducers: 3 });
 * // files = ['/tmp/ref/part-r-00000', '/tmp/ref/part-r-00001', '/tmp/ref/part-r-00002']
 * ```
 *
 * It shares with the engine only what defines the output: input expansion
 * (input.ts), the partitioner and the output format (format.ts). It does not
 * split, does not combine, does not spill, and keeps everything in memory:
 * whole files are read, every line mapped in input order, every value kept in
 * a list per key, and every list reduced. Values take the same MessagePack
 * round trip as between map and reduce in the engine, so e.g. a `Map`
 * reaches reduce as a plain object in both. Only for inputs that fit in memory.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeDirs } from '../lib/dirs.js';
import { CohortError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import type { AnyJob, MapContext, ReduceContext } from './job.js';
import { BYTE_HASH_SEED } from './key-table.js';
import { defaultPartition, outputLine, partFileName, roundTrip } from './format.js';
import { expandInputs } from './input.js';

/** Options of {@link runSequential}. */
export interface SequentialOptions {
  /** Where the `part-r-NNNNN` files go (created if missing). */
  readonly outputDir: string;
  /** Number of reducers (output files); default the job's. */
  readonly reducers?: number;
  /** The job's parameters (`ctx.params`). */
  readonly params?: Readonly<Record<string, string>>;
  /** Overrides the job's `defaults.skipBadRecords`. */
  readonly skipBadRecords?: boolean;
}

/** What {@link runSequential} returns. */
export interface SequentialResult {
  /** The output files, by partition. */
  readonly files: string[];
  /** Input records mapped (skipped ones excluded). */
  readonly records: number;
  /** Records skipped because map threw (with skipBadRecords). */
  readonly skipped: number;
  /** Distinct intermediate keys. */
  readonly keys: number;
}

/** Runs `job` over `inputs` (patterns, as for the engine) in this process; see the file header. */
export async function runSequential(
  job: AnyJob,
  inputs: readonly string[],
  options: SequentialOptions,
): Promise<SequentialResult> {
  const reducers = options.reducers ?? job.defaults.reducers;
  if (!Number.isInteger(reducers) || reducers < 1 || reducers > limits.mrReducersMax) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      `reducers must be an integer in 1..${limits.mrReducersMax}`,
    );
  }
  const params = options.params ?? {};
  const skipBad = options.skipBadRecords ?? job.defaults.skipBadRecords;
  const counts = new Map<string, number>();
  const count = (name: string, by = 1): void => {
    counts.set(name, (counts.get(name) ?? 0) + by);
  };

  const groups = new Map<string, unknown[]>();
  let records = 0;
  let skipped = 0;
  for (const file of await expandInputs(inputs)) {
    const bytes = await readFile(file);
    const ctx: MapContext = { file, params, count, byteHashSeed: BYTE_HASH_SEED };
    let pending: [string, unknown][] = [];
    const emit = (key: string, value: unknown): void => {
      if (typeof key !== 'string') {
        throw new CohortError(
          'USER_CODE_ERROR',
          `map emitted a key that is not a string: ${typeof key}`,
        );
      }
      pending.push([key, roundTrip(value)]);
    };
    let p = 0;
    while (p < bytes.length) {
      let nl = bytes.indexOf(10, p);
      if (nl < 0) nl = bytes.length;
      const end = nl > p && bytes[nl - 1] === 13 ? nl - 1 : nl;
      const line = bytes.toString('utf8', p, end);
      pending = [];
      try {
        job.map(p, line, emit, ctx);
        records++;
        for (const [k, v] of pending) {
          const g = groups.get(k);
          if (g === undefined) groups.set(k, [v]);
          else g.push(v);
        }
      } catch (err) {
        if (!skipBad) {
          throw new CohortError(
            'USER_CODE_ERROR',
            `map threw on the record at ${file}:${p}: ${err instanceof Error ? err.message : String(err)}`,
            { cause: err, details: { file, offset: p, phase: 'map' } },
          );
        }
        skipped++;
      }
      p = nl + 1;
    }
  }

  const byPartition: string[][] = Array.from({ length: reducers }, () => []);
  for (const key of groups.keys()) {
    const r = job.partition
      ? job.partition(key, reducers, { params })
      : defaultPartition(key, reducers);
    if (!Number.isInteger(r) || r < 0 || r >= reducers) {
      throw new CohortError(
        'USER_CODE_ERROR',
        `partition returned ${String(r)} for key ${JSON.stringify(key)}`,
      );
    }
    (byPartition[r] as string[]).push(key);
  }
  makeDirs(options.outputDir);
  const files: string[] = [];
  for (let r = 0; r < reducers; r++) {
    const ctx: ReduceContext = { partition: r, params, count };
    const lines: string[] = [];
    const emit = (key: string, value: unknown): void => {
      if (typeof key !== 'string') {
        throw new CohortError(
          'USER_CODE_ERROR',
          `reduce emitted a key that is not a string: ${typeof key}`,
        );
      }
      lines.push(outputLine(key, value));
    };
    for (const key of (byPartition[r] as string[]).sort()) {
      try {
        job.reduce(key, groups.get(key) as unknown[], emit, ctx);
      } catch (err) {
        throw new CohortError(
          'USER_CODE_ERROR',
          `reduce threw on key ${JSON.stringify(key)}: ${err instanceof Error ? err.message : String(err)}`,
          { cause: err, details: { key, partition: r, phase: 'reduce' } },
        );
      }
    }
    const file = join(options.outputDir, partFileName(r));
    await writeFile(file, lines.join(''));
    files.push(file);
  }
  return { files, records, skipped, keys: groups.size };
}
