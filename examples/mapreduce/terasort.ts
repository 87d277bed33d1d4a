/**
 * A distributed sort in the style of TeraSort: records are lines whose first
 * 10 characters are the key; the output files hold every record once, sorted
 * by key, and part-r-00000, part-r-00001, ... follow each other in key order,
 * so their concatenation is the sorted input.
 *
 * ```sh
 * npx cohort mr run examples/mapreduce/terasort.ts --input 'records/*' --output out/sorted \
 *     --reducers 4 --param cuts=G3k9Qx0aaa,Pq01zz9aaa,Xx00000000
 * # out/sorted/part-r-0000N: `key TAB rest-of-record`, keys ascending
 * ```
 *
 * The range partitioner sends keys below the first cut point to reducer 0,
 * those below the second to reducer 1, and so on: `cuts` holds reducers - 1
 * keys, ascending, which the submitter picks by sampling the input (as
 * TeraSort's client does; `bench/mapreduce.ts` shows how). Without `cuts`
 * every key goes to reducer 0.
 */
import { defineJob } from 'cohort/mapreduce';

/** Key length of a record. */
const KEY_CHARS = 10;

let cutsText: string | undefined;
let cuts: string[] = [];

/** The reducer of `key`: the number of cut points at or below it (binary search). */
function rangeOf(key: string, params: Readonly<Record<string, string>>): number {
  const text = params['cuts'] ?? '';
  if (text !== cutsText) {
    cutsText = text;
    cuts = text === '' ? [] : text.split(',');
  }
  let lo = 0;
  let hi = cuts.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((cuts[mid] as string) <= key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The sort job: identity map and reduce, range partitioned. */
export default defineJob<string, string>({
  map(_offset, line, emit) {
    emit(line.slice(0, KEY_CHARS), line.slice(KEY_CHARS + 1));
  },
  partition(key, reducers, ctx) {
    return Math.min(reducers - 1, rangeOf(key, ctx.params));
  },
  reduce(key, rest, emit) {
    for (const r of rest) emit(key, r);
  },
  defaults: { reducers: 2 },
});
