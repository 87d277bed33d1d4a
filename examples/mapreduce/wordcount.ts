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
 * One scan with `charCodeAt` emits `(word, 1)` for every word of a text. `map`
 * runs it on a line; `mapBlock` on a block of whole lines at once, which
 * emits the same pairs in the same order because a line ending is not a
 * letter: it ends a word like any other separator, and no word spans two
 * lines. The engine then calls the job once per block instead of once per
 * line. `fold` (the combiner as a merge of two values) sums on the map side
 * as words are emitted, so a map task keeps and ships one count per distinct
 * word.
 */
import { defineJob } from 'cohort/mapreduce';
import type { Emit } from 'cohort/mapreduce';

/** Emits `(word, 1)` for each maximal `[A-Za-z]+` run of `text`. */
function scan(text: string, emit: Emit<number>): void {
  const n = text.length;
  let start = -1;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (((c | 32) - 97) >>> 0 < 26) {
      if (start < 0) start = i;
    } else if (start >= 0) {
      emit(text.slice(start, i), 1);
      start = -1;
    }
  }
  if (start >= 0) emit(text.slice(start), 1);
}

function sum(word: string, counts: number[], emit: Emit<number>): void {
  let n = 0;
  for (let i = 0; i < counts.length; i++) n += counts[i] as number;
  emit(word, n);
}

/** The word-count job: map (per line or per block of lines) emits (word, 1), fold and reduce sum. */
export default defineJob<number, number>({
  map: (_offset, line, emit) => scan(line, emit),
  mapBlock: (_offset, block, emit) => scan(block, emit),
  fold: (a, b) => a + b,
  reduce: sum,
  defaults: { reducers: 2 },
});
