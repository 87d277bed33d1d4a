/**
 * `cohort/mapreduce`: what a job module imports — {@link defineJob} and the
 * types of its functions — plus {@link runSequential}, the in-process
 * reference runner, to test a job against. Every worker thread loads this
 * entry with the job, so it stays small: the client that submits jobs to a
 * cluster (`MapReduceClient`, `prepareJob`) and `runJob`, which also starts
 * a one-node cluster, come from `cohort`.
 *
 * ```ts
 * // wordcount.js — a job module (compile a TypeScript job first, or install tsx)
 * import { defineJob } from 'cohort/mapreduce';
 * export default defineJob({
 *   map: (_offset, line, emit) => { for (const w of line.split(/\W+/)) if (w) emit(w, 1); },
 *   fold: (a, b) => a + b,
 *   reduce: (word, counts, emit) => emit(word, counts.reduce((a, b) => a + b, 0)),
 * });
 * ```
 */
export { defineJob, isJob, loadJob, sumFold } from './job.js';
export type {
  AnyJob,
  Emit,
  EmitBytes,
  Job,
  JobDefaults,
  JobSpec,
  MapContext,
  ReduceContext,
} from './job.js';
export { runSequential } from './sequential.js';
export type { SequentialOptions, SequentialResult } from './sequential.js';
export { parseOutputLine } from './format.js';
