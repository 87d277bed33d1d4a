/**
 * An inverted index by document id: for every word, the ids of the documents
 * it occurs in. Each input line is a document, `id TAB text`; a word is a
 * maximal run of ASCII letters, lower-cased.
 *
 * ```sh
 * npx cohort mr run examples/mapreduce/postings.ts --input 'docs/*.tsv' --output out/postings
 * # out/postings/part-r-00000: `word TAB n id1,id2,...` (ids ascending)
 * ```
 *
 * The map emits `(word, [id])` once per word of a document; the classic
 * combiner (`combine`) joins a word's lists on the map side, so a map task
 * ships one list of ids per word; reduce joins the lists and sorts them.
 */
import { defineJob } from 'cohort/mapreduce';

/** The postings job: map emits (word, [doc id]), combine and reduce concatenate. */
export default defineJob<number[], string>({
  map(_offset, line, emit) {
    const tab = line.indexOf('\t');
    const id = Number(line.slice(0, tab));
    const seen = new Set<string>();
    const n = line.length;
    let start = -1;
    for (let i = tab + 1; i <= n; i++) {
      const c = i < n ? line.charCodeAt(i) : 0;
      if (((c | 32) - 97) >>> 0 < 26) {
        if (start < 0) start = i;
      } else if (start >= 0) {
        const w = line.slice(start, i).toLowerCase();
        start = -1;
        if (!seen.has(w)) {
          seen.add(w);
          emit(w, [id]);
        }
      }
    }
  },
  combine(word, lists, emit) {
    emit(word, lists.flat());
  },
  reduce(word, lists, emit) {
    const ids = lists.flat().sort((a, b) => a - b);
    emit(word, `${ids.length} ${ids.join(',')}`);
  },
  defaults: { reducers: 2 },
});
