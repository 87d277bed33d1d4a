/**
 * Inverted index: for every word, the documents (input files) it occurs in.
 * A word is a maximal run of ASCII letters `[A-Za-z]`, case-sensitive; a
 * document is named by its file's base name.
 *
 * ```sh
 * npx cohort mr run examples/mapreduce/inverted-index.ts --input 'books/*.txt' --output index/
 * # index/part-r-00000: `word TAB count SPACE doc1,doc2,...` (documents sorted, each once)
 * ```
 *
 * The map emits `(word, document)` once per word and line; the combiner
 * drops repeated documents on the map side, so a map task ships each
 * (word, document) pair once.
 */
import { basename } from 'node:path';
import { defineJob } from 'cohort/mapreduce';

const WORD = /[A-Za-z]+/g;

/** The inverted-index job: map emits (word, document), combine de-duplicates, reduce lists. */
export default defineJob<string, string>({
  map(_offset, line, emit, ctx) {
    const doc = basename(ctx.file);
    const seen = new Set<string>();
    for (const m of line.matchAll(WORD)) {
      const word = m[0];
      if (!seen.has(word)) {
        seen.add(word);
        emit(word, doc);
      }
    }
  },
  combine(word, docs, emit) {
    for (const doc of new Set(docs)) emit(word, doc);
  },
  reduce(word, docs, emit) {
    const unique = [...new Set(docs)].sort();
    emit(word, `${unique.length} ${unique.join(',')}`);
  },
  defaults: { reducers: 2 },
});
