/**
 * Word count, the MapReduce "hello world": how often each word occurs in the input.
 * A word is a maximal run of ASCII letters `[A-Za-z]`, case-sensitive (the same
 * definition as the peer implementations in the word-count benchmark).
 *
 * ```sh
 * npx cohort mr run examples/mapreduce/wordcount.ts --input 'books/*.txt' --output out/ --reducers 4
 * # out/part-r-00000 ...: one `word TAB count` line per word, sorted by word within each file
 * ```
 *
 * The map scans each line with `charCodeAt` and emits `(word, 1)`; `fold`
 * (the combiner as a merge of two values) sums on the map side as words are
 * emitted, so a map task keeps and ships one count per distinct word.
 */
import { defineJob } from '../../src/mapreduce/job.js';

function sum(word: string, counts: number[], emit: (key: string, value: number) => void): void {
  let n = 0;
  for (let i = 0; i < counts.length; i++) n += counts[i] as number;
  emit(word, n);
}

/** The word-count job: map emits (word, 1), fold and reduce sum. */
export default defineJob<number, number>({
  map(_offset, line, emit) {
    const n = line.length;
    let start = -1;
    for (let i = 0; i < n; i++) {
      const c = line.charCodeAt(i);
      if (((c | 32) - 97) >>> 0 < 26) {
        if (start < 0) start = i;
      } else if (start >= 0) {
        emit(line.slice(start, i), 1);
        start = -1;
      }
    }
    if (start >= 0) emit(line.slice(start), 1);
  },
  fold: (a, b) => a + b,
  reduce: sum,
  defaults: { reducers: 2 },
});
