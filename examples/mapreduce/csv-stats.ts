/**
 * Per-key statistics over CSV: for every weather station, how many readings,
 * their sum, minimum and maximum, and how many distinct sensors sent them.
 * Input lines are `station,time,temperature,sensor` (a header line starting
 * with `station,` is skipped); temperatures are integers (tenths of a degree).
 *
 * ```sh
 * npx cohort mr run examples/mapreduce/csv-stats.ts --input 'readings/*.csv' --output out/stats
 * # out/stats/part-r-00000: `station TAB count sum min max sensors`
 * ```
 *
 * The map emits one small object per reading; `fold` (the combiner as a merge
 * of two values) merges them on the map side as they are emitted, so a map
 * task ships one object per station. It updates its first argument and
 * returns it, which is allowed because every emitted object is fresh.
 */
import { defineJob } from 'cohort/mapreduce';

/** The running statistics of one station. */
export interface Stats {
  count: number;
  sum: number;
  min: number;
  max: number;
  /** Distinct sensor ids, in first-seen order. */
  sensors: string[];
}

/** Merges `b` into `a` and returns `a`. */
function merge(a: Stats, b: Stats): Stats {
  a.count += b.count;
  a.sum += b.sum;
  if (b.min < a.min) a.min = b.min;
  if (b.max > a.max) a.max = b.max;
  for (const s of b.sensors) if (!a.sensors.includes(s)) a.sensors.push(s);
  return a;
}

/** The statistics job: map parses a reading, fold and reduce merge. */
export default defineJob<Stats, string>({
  map(_offset, line, emit) {
    const c1 = line.indexOf(',');
    const c2 = line.indexOf(',', c1 + 1);
    const c3 = line.indexOf(',', c2 + 1);
    if (c1 < 0 || c2 < 0 || c3 < 0) throw new Error(`not a reading: ${line.slice(0, 40)}`);
    const station = line.slice(0, c1);
    if (station === 'station') return; // the header
    const t = Number(line.slice(c2 + 1, c3));
    emit(station, { count: 1, sum: t, min: t, max: t, sensors: [line.slice(c3 + 1)] });
  },
  fold: merge,
  reduce(station, parts, emit) {
    const s = parts.reduce(merge);
    emit(station, `${s.count} ${s.sum} ${s.min} ${s.max} ${s.sensors.length}`);
  },
  defaults: { reducers: 2 },
});
