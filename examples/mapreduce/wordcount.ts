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
 * `map` scans a line with `charCodeAt` and emits `(word, 1)` for every word.
 * `mapBytes` is the same scan over the input's bytes as they are in the file
 * (a block of whole lines at a time, line endings included), emitting each
 * word as the byte range it occupies: a line ending is not a letter, so it
 * ends a word like any other separator and the pairs come out the same and
 * in the same order; a byte of a multi-byte UTF-8 character is >= 0x80, not
 * an ASCII letter, as the character is not one in `map`. The engine then
 * makes no string per word: it looks each word up by its bytes, and a word
 * it has seen costs a probe and a compare (the scan hashes each word as it
 * reads it and passes the hash with the range, so the engine does not read
 * the word again to hash it). `map` stays the reference (the
 * sequential runner and a task skipping bad records use it). `fold` (the
 * combiner as a merge of two values) sums on the map side as words are
 * emitted, so a map task keeps and ships one count per distinct word; it is
 * the built-in `sumFold`, which the map task applies in place (no call per
 * word).
 */
import { defineJob, sumFold } from 'cohort/mapreduce';
import type { Emit, EmitBytes } from 'cohort/mapreduce';

/** True for the code of an ASCII letter (`A-Z`, `a-z`): `| 32` lower-cases, then one unsigned compare. */
function isLetter(c: number): boolean {
  return ((c | 32) - 97) >>> 0 < 26;
}

/** Emits `(word, 1)` for each maximal `[A-Za-z]+` run of `text`. */
function scan(text: string, emit: Emit<number>): void {
  const n = text.length;
  let start = -1;
  for (let i = 0; i < n; i++) {
    if (isLetter(text.charCodeAt(i))) {
      if (start < 0) start = i;
    } else if (start >= 0) {
      emit(text.slice(start, i), 1);
      start = -1;
    }
  }
  if (start >= 0) emit(text.slice(start), 1);
}

/** FNV-1a's multiplier: one step of the byte hash `emit` takes (see EmitBytes). */
const FNV_PRIME = 0x01000193;

/**
 * The same scan over bytes: emits the byte range of each maximal `[A-Za-z]+`
 * run, with 1 and the run's byte hash (FNV-1a from `seed`), computed while
 * the run is read so the engine need not read it again.
 */
function scanBytes(bytes: Uint8Array, emit: EmitBytes<number>, seed: number): void {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    // Skip to the next letter, then hash the word up to its end.
    let c = bytes[i] as number;
    while (!isLetter(c)) {
      if (++i >= n) return;
      c = bytes[i] as number;
    }
    const start = i;
    let h = seed;
    do {
      h = Math.imul(h ^ c, FNV_PRIME);
      if (++i >= n) break;
      c = bytes[i] as number;
    } while (isLetter(c));
    emit(start, i, 1, h);
  }
}

function sum(word: string, counts: number[], emit: Emit<number>): void {
  let n = 0;
  for (let i = 0; i < counts.length; i++) n += counts[i] as number;
  emit(word, n);
}

/** The word-count job: map (per line, or over a block's bytes) emits (word, 1), fold and reduce sum. */
export default defineJob<number, number>({
  map: (_offset, line, emit) => scan(line, emit),
  mapBytes: (_offset, bytes, emit, ctx) => scanBytes(bytes, emit, ctx.byteHashSeed),
  fold: sumFold,
  reduce: sum,
  defaults: { reducers: 2 },
});
