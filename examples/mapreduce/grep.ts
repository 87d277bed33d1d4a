/**
 * Distributed grep: the lines that match a regular expression, by file.
 * The pattern is a job parameter, the same on every worker.
 *
 * ```sh
 * npx cohort mr run examples/mapreduce/grep.ts --input 'logs/*.log' --output hits/ \
 *     --param pattern='ERROR|WARN' [--param flags=i]
 * # hits/part-r-00000: `file TAB offset:line`, per file in input order
 * ```
 *
 * Map emits `(file, "offset:line")` for every matching line (offset = the
 * line's byte offset in its file); reduce passes them through. Without a
 * combiner, a key's values reach reduce in input order, so each file's
 * matches come out in file order. No combiner applies: nothing to merge.
 */
import { defineJob } from 'cohort/mapreduce';

let cached: { source: string; flags: string; re: RegExp } | undefined;

/** The job's compiled pattern (compiled once per worker, not once per line). */
function pattern(params: Readonly<Record<string, string>>): RegExp {
  const source = params['pattern'];
  const flags = (params['flags'] ?? '').replace(/[gy]/g, ''); // test() must not keep state
  if (source === undefined || source === '') {
    throw new Error('grep needs a pattern: --param pattern=<regular expression>');
  }
  if (cached === undefined || cached.source !== source || cached.flags !== flags) {
    cached = { source, flags, re: new RegExp(source, flags) };
  }
  return cached.re;
}

/** The grep job: map emits matching lines under their file, reduce passes them through. */
export default defineJob<string, string>({
  map(offset, line, emit, ctx) {
    if (pattern(ctx.params).test(line)) emit(ctx.file, `${offset}:${line}`);
  },
  reduce(file, hits, emit) {
    for (const hit of hits) emit(file, hit);
  },
  defaults: { reducers: 1 },
});
