/**
 * Warms a worker thread's copy of the engine: runs small built-in jobs of
 * each kind (fold over small objects, a shrinking and a concatenating
 * combiner, no combiner with short arrays and strings, `mapBlock`, `mapBytes`,
 * `mapBytes` with the built-in `sumFold`) through
 * {@link runMapTask} and {@link runReduceTask} on a generated input in a temp
 * directory, then a word count the way a real one runs (several map tasks on
 * one byte dictionary, a reduce of many runs: {@link warmWordCount}), then
 * removes it all. Called once per thread when a job module is
 * preloaded (worker-thread.ts, `kind: 'load'`), outside any job.
 *
 * ```ts
 * await warmEngine(); // ~2 MiB mapped seven ways, ~2 MiB of words counted in three map tasks; nothing left on disk
 * ```
 *
 * Why: each worker thread compiles the engine's per-record path (the line
 * reader, the emits, the key table, the value arena, the run encoder and
 * decoder, the merge) anew, and the first tasks of a fresh thread ran on
 * unoptimised code while V8's compiler threads worked: a 16 MiB csv job
 * took ~1 450 CPU ms on a fresh one-node cluster and ~800 on one that had
 * run it before (bench/mapreduce.ts starts a cluster per run). A cluster
 * that has run jobs has this done; warming at preload gives a fresh one the
 * same start. The user's own code still compiles in its first task.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineJob, sumFold } from './job.js';
import type { AnyJob } from './job.js';
import { byteHash } from './key-table.js';
import { dropKeyDictionary, runMapTask, runReduceTask } from './tasks.js';

/** Lines of the generated input (about 40 bytes each). */
const WARM_LINES = 40_000;

/** Keys of the generated input (words drawn with a skew, as in text). */
const WARM_KEYS = 2_000;

interface Stat {
  n: number;
  sum: number;
  min: number;
  max: number;
  tags: string[];
}

function mergeStat(a: Stat, b: Stat): Stat {
  a.n += b.n;
  a.sum += b.sum;
  if (b.min < a.min) a.min = b.min;
  if (b.max > a.max) a.max = b.max;
  for (const t of b.tags) if (!a.tags.includes(t)) a.tags.push(t);
  return a;
}

function fields(line: string): [string, string, number] {
  const c1 = line.indexOf(',');
  const c2 = line.indexOf(',', c1 + 1);
  return [line.slice(0, c1), line.slice(c1 + 1, c2), Number(line.slice(c2 + 1))];
}

/**
 * A job counting each line's first field, by `mapBytes` too, folded by
 * `fold`; with `hashed`, its `mapBytes` passes each range's byte hash (as a
 * scan computing it while reading does, examples/mapreduce/wordcount.ts).
 */
function countFirstFields(fold: (a: number, b: number) => number, hashed: boolean): AnyJob {
  return defineJob<number, number>({
    map(_o, line, emit) {
      emit(fields(line)[0], 1);
    },
    mapBytes(_o, bytes, emit, ctx) {
      let p = 0;
      while (p < bytes.length) {
        let nl = bytes.indexOf(10, p);
        if (nl < 0) nl = bytes.length;
        const comma = bytes.indexOf(44, p);
        if (hashed) emit(p, comma, 1, byteHash(ctx.byteHashSeed, bytes, p, comma));
        else emit(p, comma, 1);
        p = nl + 1;
      }
    },
    fold,
    reduce: (k, vs, emit) =>
      emit(
        k,
        vs.reduce((a, b) => a + b, 0),
      ),
  });
}

const jobs: AnyJob[] = [
  defineJob<Stat, string>({
    map(_o, line, emit) {
      const [k, t, v] = fields(line);
      emit(k, { n: 1, sum: v, min: v, max: v, tags: [t] });
    },
    fold: mergeStat,
    reduce: (k, parts, emit) => {
      const s = parts.reduce(mergeStat);
      emit(k, `${s.n} ${s.sum} ${s.min} ${s.max} ${s.tags.length}`);
    },
  }),
  defineJob<number, number>({
    map(_o, line, emit) {
      const [k, , v] = fields(line);
      emit(k, v);
    },
    combine: (k, vs, emit) =>
      emit(
        k,
        vs.reduce((a, b) => a + b, 0),
      ),
    reduce: (k, vs, emit) =>
      emit(
        k,
        vs.reduce((a, b) => a + b, 0),
      ),
  }),
  defineJob<number[], string>({
    map(o, line, emit) {
      emit(fields(line)[0], [o]);
    },
    combine: (k, lists, emit) => emit(k, lists.flat()),
    reduce: (k, lists, emit) => emit(k, lists.flat().join(',')),
  }),
  defineJob<[string, string, number] | string, string>({
    map(_o, line, emit) {
      const [k, t, v] = fields(line);
      if (v % 3 === 0) emit(k, t);
      else emit(k, ['o', t, v]);
    },
    reduce: (k, vs, emit) => emit(k, String(vs.length)),
  }),
  defineJob<number, number>({
    map(_o, line, emit) {
      emit(fields(line)[1], 1);
    },
    mapBlock(_o, block, emit) {
      let p = 0;
      while (p < block.length) {
        let nl = block.indexOf('\n', p);
        if (nl < 0) nl = block.length;
        const c1 = block.indexOf(',', p);
        emit(block.slice(c1 + 1, block.indexOf(',', c1 + 1)), 1);
        p = nl + 1;
      }
    },
    fold: (a, b) => a + b,
    reduce: (k, vs, emit) =>
      emit(
        k,
        vs.reduce((a, b) => a + b, 0),
      ),
  }),
  countFirstFields((a, b) => a + b, false),
  // Numbers summed with the built-in sum: the map task adds in place, the
  // reduce task adds up its runs by the keys' bytes (tasks.ts sumRuns). With
  // the hashes, as a word count's scan passes them: the sum's emit then
  // calls what a word count's calls (V8 inlines by what it has seen called).
  countFirstFields(sumFold, true),
];

/** The generated input: `key,tag,number` lines, keys skewed (a deterministic sequence). */
function input(): string {
  let x = 12345;
  const lines: string[] = [];
  for (let i = 0; i < WARM_LINES; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const r = (x >>> 8) / 0x1000000;
    const k = Math.floor(WARM_KEYS * r * r * r);
    lines.push(`key${k},t${x % 97},${(x >>> 4) % 2000}`);
  }
  return lines.join('\n') + '\n';
}

/** Distinct words of the word-count stage's vocabulary (see {@link warmWordCount}). */
const WARM_WORDS = 16_000;

/** Lines of each of the word-count stage's two inputs (about 8 words each). */
const WARM_WORD_LINES = 12_000;

/** True for the code of an ASCII letter. */
function isLetter(c: number): boolean {
  return ((c | 32) - 97) >>> 0 < 26;
}

/**
 * A word count over bytes, as examples/mapreduce/wordcount.ts scans: each
 * maximal `[A-Za-z]+` run emitted with its byte hash, summed by the
 * built-in sum; a line's first word counts 4096 (so that sums reach the
 * run encoder's large-number formats, as a real text's common words do).
 */
const wordCount: AnyJob = defineJob<number, number>({
  map(_o, line, emit) {
    for (const w of line.split(/[^A-Za-z]+/)) if (w !== '') emit(w, 1);
  },
  mapBytes(_o, bytes, emit, ctx) {
    const n = bytes.length;
    let i = 0;
    let first = true;
    while (i < n) {
      let c = bytes[i] as number;
      while (!isLetter(c)) {
        if (c === 10) first = true;
        if (++i >= n) return;
        c = bytes[i] as number;
      }
      const start = i;
      let h = ctx.byteHashSeed;
      do {
        h = Math.imul(h ^ c, 0x01000193);
        if (++i >= n) break;
        c = bytes[i] as number;
      } while (isLetter(c));
      emit(start, i, first ? 4096 : 1, h);
      first = false;
    }
  },
  fold: sumFold,
  reduce: (k, vs, emit) =>
    emit(
      k,
      vs.reduce((a, b) => a + b, 0),
    ),
});

/** The word-count stage's vocabulary: letters only, 1 to 12 long, mixed case (deterministic). */
function vocabulary(): string[] {
  let x = 777;
  const words: string[] = [];
  for (let i = 0; i < WARM_WORDS; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const len = 1 + (x % 12);
    let w = '';
    for (let j = 0; j < len; j++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      const c = (x >>> 9) % 52;
      w += String.fromCharCode(c < 26 ? 97 + c : 65 + c - 26);
    }
    words.push(w);
  }
  return words;
}

/** Lines of words drawn (skewed, as in text) from the first `vocab` words of `words`. */
function wordText(words: readonly string[], vocab: number, seed: number): string {
  let x = seed;
  const lines: string[] = [];
  for (let i = 0; i < WARM_WORD_LINES; i++) {
    const line: string[] = [];
    for (let j = 0; j < 8; j++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      const r = (x >>> 8) / 0x1000000;
      line.push(words[Math.floor(vocab * r * r)] as string);
    }
    lines.push(line.join(i % 7 === 0 ? ', ' : ' '));
  }
  return lines.join('\n') + '\n';
}

/**
 * The word-count stage: a thread's map tasks share its byte dictionary
 * (tasks.ts), and a word count's first task fills it with tens of
 * thousands of words, growing its slots and arena, while later tasks add a
 * few keys each to an order kept from task to task, and the reduce adds up
 * many runs by their keys' bytes. Code first run in a job there was
 * compiled in the job, and code run in a way the warm-up had not run it
 * (the dictionary grown, new keys merged into the kept order, large sums
 * written) was thrown away and compiled again, on the compiler threads
 * that the job's own threads share the cores with (~300 CPU ms per
 * 512 MiB word count on two threads). Three map tasks (a vocabulary, then
 * more words, then the first input again) and a reduce of six runs per
 * partition; the dictionary they filled is dropped, so a job starts with an
 * empty one, as it would on a fresh thread.
 */
async function warmWordCount(dir: string): Promise<void> {
  const words = vocabulary();
  const a = join(dir, 'words-a.txt');
  const b = join(dir, 'words-b.txt');
  const textA = wordText(words, (WARM_WORDS * 3) >> 2, 99);
  const textB = wordText(words, WARM_WORDS, 123);
  await writeFile(a, textA);
  await writeFile(b, textB);
  const splits = [
    { file: a, start: 0, end: Buffer.byteLength(textA) },
    { file: b, start: 0, end: Buffer.byteLength(textB) },
    { file: a, start: 0, end: Buffer.byteLength(textA) },
  ];
  const runs: string[][] = [[], []];
  for (const [i, split] of splits.entries()) {
    const m = await runMapTask({
      job: wordCount,
      split,
      reducers: 2,
      dir: join(dir, 'wc'),
      taskId: `warm-wc${i}`,
      attempt: 0,
    });
    for (const run of m.runs) runs[run.partition]?.push(run.path);
  }
  for (const [p, paths] of runs.entries()) {
    await runReduceTask({
      job: wordCount,
      partition: p,
      runs: [...paths, ...paths],
      output: join(dir, `out-wc-${p}`),
      taskId: 'warm-wcr',
      attempt: 0,
    });
  }
  dropKeyDictionary();
}

/** Runs the built-in jobs once through map and reduce tasks; see the file header. */
export async function warmEngine(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'cohort-mr-warm-'));
  try {
    const file = join(dir, 'in.txt');
    const text = input();
    await writeFile(file, text);
    const split = { file, start: 0, end: Buffer.byteLength(text) };
    for (const [i, job] of jobs.entries()) {
      const m = await runMapTask({
        job,
        split,
        reducers: 2,
        dir: join(dir, `m${i}`),
        taskId: `warm-${i}`,
        attempt: 0,
      });
      for (const run of m.runs) {
        await runReduceTask({
          job,
          partition: run.partition,
          runs: [run.path, run.path],
          output: join(dir, `out-${i}-${run.partition}`),
          taskId: `warm-r${i}`,
          attempt: 0,
        });
      }
    }
    await warmWordCount(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
