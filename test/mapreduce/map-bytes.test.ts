import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCohortError } from '../../src/lib/errors.js';
import { builtInFold, defineJob, loadJob, sumFold } from '../../src/mapreduce/job.js';
import type { AnyJob, Emit, EmitBytes } from '../../src/mapreduce/job.js';
import { planSplits } from '../../src/mapreduce/input.js';
import { defaultPartition } from '../../src/mapreduce/format.js';
import {
  dropKeyDictionary,
  keyDictionaryStats,
  runMapTask,
  runReduceTask,
} from '../../src/mapreduce/tasks.js';
import { byteHash } from '../../src/mapreduce/key-table.js';
import { runSequential } from '../../src/mapreduce/sequential.js';
import { runTasksInProcess } from '../../src/mapreduce/tasks-local.js';

// A token is a maximal run of ASCII letters and digits and of anything
// non-ASCII (multi-byte characters, invalid UTF-8): every other ASCII byte
// separates. Since UTF-8 decoding maps ASCII bytes to themselves and never
// makes an ASCII character out of other bytes, the tokens `map` finds in a
// decoded line are the decodings of the byte ranges `mapBytes` finds.
const isTokenCode = (c: number): boolean =>
  c >= 0x80 || (c >= 48 && c <= 57) || ((c | 32) >= 97 && (c | 32) <= 122);

function tokens(line: string): string[] {
  const out: string[] = [];
  let start = -1;
  for (let i = 0; i <= line.length; i++) {
    if (i < line.length && isTokenCode(line.charCodeAt(i))) {
      if (start < 0) start = i;
    } else if (start >= 0) {
      out.push(line.slice(start, i));
      start = -1;
    }
  }
  return out;
}

/** Calls `visit(start, end, lineStart, index)` for every token of `bytes`: its range, its line's start, its index in the line. */
function byteTokens(
  bytes: Uint8Array,
  visit: (start: number, end: number, lineStart: number, index: number) => void,
): void {
  let lineStart = 0;
  let index = 0;
  let start = -1;
  for (let i = 0; i <= bytes.length; i++) {
    const c = i < bytes.length ? (bytes[i] as number) : 10;
    if (isTokenCode(c)) {
      if (start < 0) start = i;
      continue;
    }
    if (start >= 0) {
      visit(start, i, lineStart, index++);
      start = -1;
    }
    if (c === 10) {
      lineStart = i + 1;
      index = 0;
    }
  }
}

const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0);
const countBytes = (bytes: Uint8Array, emit: EmitBytes<number>): void =>
  byteTokens(bytes, (s, e) => emit(s, e, 1));
/** As countBytes, passing each range's byte hash (as a scan computing it inline would). */
const countHashed = (bytes: Uint8Array, emit: EmitBytes<number>, seed: number): void =>
  byteTokens(bytes, (s, e) => emit(s, e, 1, byteHash(seed, bytes, s, e)));
const countLine = (_o: number, line: string, emit: Emit<number>): void =>
  tokens(line).forEach((t) => emit(t, 1));

/** Token counts with fold, with a classic combiner, and without (order- and offset-sensitive). */
const jobs: Record<string, AnyJob> = {
  fold: defineJob<number, number>({
    map: countLine,
    mapBytes: (_o, bytes, emit) => countBytes(bytes, emit),
    fold: (a, b) => a + b,
    reduce: (t, counts, emit) => emit(t, sum(counts)),
  }),
  combine: defineJob<number, number>({
    map: countLine,
    mapBytes: (_o, bytes, emit) => countBytes(bytes, emit),
    combine: (t, counts, emit) => emit(t, sum(counts)),
    reduce: (t, counts, emit) => emit(t, sum(counts)),
  }),
  // Every (line offset, token index) in input order: values must reach reduce
  // in order and each line's offset must come out right.
  plain: defineJob<string, string>({
    map: (o, line, emit) => tokens(line).forEach((t, i) => emit(t, `${o}.${i}`)),
    mapBytes: (o, bytes, emit) =>
      byteTokens(bytes, (s, e, lineStart, i) => emit(s, e, `${o + lineStart}.${i}`)),
    reduce: (t, where, emit) => emit(t, where.join(' ')),
  }),
  // The scan passes each range's hash (EmitBytes), with fold and without a combiner.
  hashed: defineJob<number, number>({
    map: countLine,
    mapBytes: (_o, bytes, emit, ctx) => countHashed(bytes, emit, ctx.byteHashSeed),
    fold: (a, b) => a + b,
    reduce: (t, counts, emit) => emit(t, sum(counts)),
  }),
  // The built-in sum fold, applied in place by the map task, over bytes and over lines.
  sumFold: defineJob<number, number>({
    map: countLine,
    mapBytes: (_o, bytes, emit, ctx) => countHashed(bytes, emit, ctx.byteHashSeed),
    fold: sumFold,
    reduce: (t, counts, emit) => emit(t, sum(counts)),
  }),
  sumFoldLines: defineJob<number, number>({
    map: countLine,
    fold: sumFold,
    reduce: (t, counts, emit) => emit(t, sum(counts)),
  }),
  hashedPlain: defineJob<string, string>({
    map: (o, line, emit) => tokens(line).forEach((t, i) => emit(t, `${o}.${i}`)),
    mapBytes: (o, bytes, emit, ctx) =>
      byteTokens(bytes, (s, e, lineStart, i) =>
        emit(s, e, `${o + lineStart}.${i}`, byteHash(ctx.byteHashSeed, bytes, s, e)),
      ),
    reduce: (t, where, emit) => emit(t, where.join(' ')),
  }),
};

// Pieces of input: ASCII tokens, multi-byte characters, invalid UTF-8
// (lone continuation bytes, truncated sequences, an encoded surrogate, 0xff:
// different bytes that all decode to U+FFFD), separators and line endings.
const piece = fc.constantFrom(
  ...[
    'a',
    'bb',
    'Apple',
    'x9',
    'The',
    'é',
    '日本',
    '😀',
    ' ',
    ', ',
    '.',
    '\t',
    '\n',
    '\n',
    '\r\n',
  ].map((s) => Buffer.from(s)),
  Buffer.from([0xff]),
  Buffer.from([0x80]),
  Buffer.from([0xc3]),
  Buffer.from([0xe6, 0x97]),
  Buffer.from([0xed, 0xa0, 0x80]),
  Buffer.from([0xf0, 0x9f]),
);
// Files of up to a few hundred pieces (not fast-check's small default):
// splits of many read chunks, so buffers spill with more of the split to come.
const file = fc.array(piece, { maxLength: 300, size: 'max' }).map((ps) => Buffer.concat(ps));

let dir: string;
let n = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cohort-mr-bytes-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function read(files: readonly string[]): Promise<string[]> {
  return Promise.all(files.map((f) => readFile(f, 'utf8')));
}

async function inputDir(texts: readonly Uint8Array[]): Promise<string> {
  const base = join(dir, `p${n++}`);
  await mkdir(join(base, 'in'), { recursive: true });
  for (const [i, t] of texts.entries()) await writeFile(join(base, 'in', `f${i}.txt`), t);
  return base;
}

type TaskInput = Parameters<typeof runMapTask>[0];

/** Runs one map task that must fail with USER_CODE_ERROR and leave no file in `dir`; its message. */
async function failingTask(
  job: TaskInput['job'],
  split: TaskInput['split'],
  dir: string,
  reducers = 2,
): Promise<string> {
  const err: unknown = await runMapTask({
    job,
    split,
    reducers,
    dir,
    taskId: 'm-0',
    attempt: 0,
  }).catch((x: unknown) => x);
  expect(isCohortError(err) && err.code).toBe('USER_CODE_ERROR');
  expect(await readdir(dir)).toEqual([]);
  return (err as Error).message;
}

describe('mapBytes', () => {
  it("output equals the string path (the sequential run of map) byte for byte: random bytes with non-ASCII and invalid UTF-8, any split size, read chunk, reducer count, spills, hashes passed or not, the thread's byte dictionary kept or renewed", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(
          'fold',
          'combine',
          'plain',
          'hashed',
          'hashedPlain',
          'sumFold',
          'sumFoldLines',
        ),
        fc.array(file, { minLength: 1, maxLength: 3 }),
        fc.integer({ min: 1, max: 400 }),
        fc.integer({ min: 1, max: 3 }),
        fc.option(fc.integer({ min: 1, max: 80 }), { nil: undefined }),
        fc.constantFrom(undefined, 3, 20),
        // 0: a fresh dictionary for every buffer; 300_000: one kept from task to task, renewed now and then.
        fc.constantFrom(undefined, 0, 300_000),
        async (
          which,
          texts,
          splitBytes,
          reducers,
          readChunkBytes,
          bufferEntriesMax,
          keyDictionaryBytesMax,
        ) => {
          const job = jobs[which] as AnyJob;
          const base = await inputDir(texts);
          const inputs = [join(base, 'in', '*.txt')];
          const engine = await runTasksInProcess(job, inputs, {
            outputDir: join(base, 'out'),
            reducers,
            splitBytes,
            ...(readChunkBytes === undefined ? {} : { readChunkBytes }),
            ...(bufferEntriesMax === undefined ? {} : { bufferEntriesMax }),
            ...(keyDictionaryBytesMax === undefined ? {} : { keyDictionaryBytesMax }),
          });
          const ref = await runSequential(job, inputs, { outputDir: join(base, 'ref'), reducers });
          expect(await read(engine.files)).toEqual(await read(ref.files));
          // Every line was read once, as records.
          const lines = engine.maps.reduce((a, m) => a + m.counters.recordsIn, 0);
          expect(lines).toBe(ref.records);
        },
      ),
      // As in tasks.test.ts: stop shrinking a failure in time to report it.
      { numRuns: 60, interruptAfterTimeLimit: 300_000 },
    );
  });

  it('the word-count example gives the sequential run of its map, on a corpus with long lines, CRLF, UTF-8 and no final newline', async () => {
    const job = await loadJob(
      new URL('../../examples/mapreduce/wordcount.ts', import.meta.url).pathname,
    );
    expect(typeof job.mapBytes).toBe('function');
    const words = ['the', 'A', 'Zebra', 'quick', 'é', 'naïve', 'x', 'über', 'Mm'];
    let text = '';
    let x = 7;
    for (let i = 0; i < 20_000; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      text += (words[x % words.length] as string) + ((x >>> 8) % 11 === 0 ? '\r\n' : ' ,.'[x % 3]);
    }
    text += ' '.repeat(70_000) + 'last'; // a line longer than a read chunk, no final newline
    const base = await inputDir([Buffer.from(text), Buffer.from('single')]);
    const inputs = [join(base, 'in', '*.txt')];
    const engine = await runTasksInProcess(job, inputs, {
      outputDir: join(base, 'out'),
      splitBytes: 40_000,
      readChunkBytes: 4096,
    });
    const ref = await runSequential(job, inputs, { outputDir: join(base, 'ref') });
    expect(await read(engine.files)).toEqual(await read(ref.files));
    expect((await read(engine.files)).join('')).toContain('last\t1\n');
  });

  it("sumFold is known as the built-in sum by its mark (also a copy from another instance of the module), a function of one's own is not", () => {
    expect(builtInFold(sumFold)).toBe('sum');
    expect(sumFold(2, 3)).toBe(5);
    const copy = Object.assign((a: number, b: number) => a + b, {
      [Symbol.for('cohort.mapreduce.builtInFold')]: 'sum',
    });
    expect(builtInFold(copy)).toBe('sum');
    expect(builtInFold((a: number, b: number) => a + b)).toBeUndefined();
    expect(builtInFold(undefined)).toBeUndefined();
  });

  it('a wrong hash passed with a range fails the task with USER_CODE_ERROR, for a new key and for a known one, and leaves no file', async () => {
    const base = await inputDir([Buffer.from('abc def\nghi\n')]);
    const [split] = await planSplits([join(base, 'in', 'f0.txt')], 1 << 20);
    for (const [i, known] of [false, true].entries()) {
      const job = defineJob<number, number>({
        map: countLine,
        mapBytes: (_o, bytes, emit, ctx) => {
          const h = byteHash(ctx.byteHashSeed, bytes, 0, 3);
          if (known) emit(0, 3, 1, h); // 'abc' with its hash: fine
          emit(0, 3, 1, h ^ 0x100);
        },
        fold: (a, b) => a + b,
        reduce: (t, counts, emit) => emit(t, sum(counts)),
      });
      expect(await failingTask(job, split!, join(base, `wrong${i}`))).toMatch(
        /mapBytes threw on the block of 2 lines at .*f0\.txt:0: mapBytes emitted the range \[0, 3\) with the hash -?\d+, which is not its byte hash/,
      );
    }
  });

  it("keeps the keys a thread has seen from one map task to the next (the thread's byte dictionary): a task of known keys adds none", async () => {
    const words = (n: number, from: number): string =>
      Array.from({ length: n }, (_, i) => `dictword${from + i}`).join(' ') + '\n';
    const base = await inputDir([Buffer.from(words(500, 0)), Buffer.from(words(500, 250))]);
    const splits = await planSplits(
      [join(base, 'in', 'f0.txt'), join(base, 'in', 'f1.txt')],
      1 << 20,
    );
    const task = { job: jobs['fold'] as AnyJob, reducers: 2, dir: join(base, 'm'), attempt: 0 };
    const before = keyDictionaryStats().keys;
    await runMapTask({ ...task, split: splits[0]!, taskId: 'm-0' });
    expect(keyDictionaryStats().keys - before).toBe(500);
    await runMapTask({ ...task, split: splits[1]!, taskId: 'm-1' });
    expect(keyDictionaryStats().keys - before).toBe(750); // 250 of its 500 were known
    await runMapTask({ ...task, split: splits[0]!, taskId: 'm-2' });
    expect(keyDictionaryStats().keys - before).toBe(750);
  });

  it("sums a summing job's runs on the thread's byte dictionary: keys its map tasks wrote add nothing, others join it; the output is the same", async () => {
    const words = Array.from({ length: 400 }, (_, i) => `sumword${i}`).join(' ') + '\n';
    const base = await inputDir([Buffer.from(words + words)]);
    const [split] = await planSplits([join(base, 'in', 'f0.txt')], 1 << 20);
    const job = jobs['sumFold'] as AnyJob;
    const m = await runMapTask({
      job,
      split: split!,
      reducers: 2,
      dir: join(base, 'm'),
      taskId: 'm-0',
      attempt: 0,
    });
    const reduceAll = async (tag: string): Promise<string[]> => {
      const out: string[] = [];
      for (const run of m.runs) {
        const output = join(base, `${tag}-${run.partition}`);
        await runReduceTask({
          job,
          partition: run.partition,
          runs: [run.path, run.path],
          output,
          taskId: `r-${tag}`,
          attempt: 0,
        });
        out.push(await readFile(output, 'utf8'));
      }
      return out;
    };
    const known = keyDictionaryStats().keys;
    const first = await reduceAll('known');
    expect(keyDictionaryStats().keys).toBe(known); // every key was the map task's
    expect(first.join('').split('\n').filter(Boolean)).toHaveLength(400);
    expect(first.join('')).toContain('sumword7\t4\n'); // once a line, two lines, the run given twice
    dropKeyDictionary();
    const again = await reduceAll('fresh');
    expect(keyDictionaryStats().keys).toBe(400); // decoded once, now the thread's
    expect(again).toEqual(first);
  });

  it("puts each key of a summing job in its default partition for the task's reducer count, from task to task on the thread's dictionary (partitions kept by key number, per count)", async () => {
    const words = Array.from({ length: 300 }, (_, i) => `pw${i}`);
    const base = await inputDir([Buffer.from(words.join(' ') + '\n' + words.join(' ') + '\n')]);
    const [split] = await planSplits([join(base, 'in', 'f0.txt')], 1 << 20);
    const job = defineJob<number, number>({
      map: countLine,
      mapBytes: (_o, bytes, emit) => byteTokens(bytes, (s, e) => emit(s, e, 1)),
      fold: sumFold,
      reduce: (t, counts, emit) => emit(t, sum(counts)),
    });
    for (const [i, reducers] of [2, 3, 2, 5, 3].entries()) {
      const m = await runMapTask({
        job,
        split: split!,
        reducers,
        dir: join(base, `m${i}`),
        taskId: `m-${i}`,
        attempt: 0,
      });
      const seen: string[] = [];
      for (const run of m.runs) {
        const output = join(base, `out-${i}-${run.partition}`);
        await runReduceTask({
          job,
          partition: run.partition,
          runs: [run.path],
          output,
          taskId: `r-${i}-${run.partition}`,
          attempt: 0,
        });
        for (const line of (await readFile(output, 'utf8')).split('\n').filter((l) => l !== '')) {
          const [key, count] = line.split('\t');
          expect(defaultPartition(key!, reducers), `${key} with ${reducers} reducers`).toBe(
            run.partition,
          );
          expect(count).toBe('2');
          seen.push(key!);
        }
      }
      expect(seen.sort()).toEqual([...words].sort());
    }
  });

  it("gives a fold job's mapBytes the same emit in every map task of a thread (one target for the scan's call site), and a task overlapping another its own, each with its own counts", async () => {
    const base = await inputDir([
      Buffer.from('a b a\nc a\n'),
      Buffer.from('b b x\n'),
      Buffer.from('a x x\n'),
    ]);
    const splits = await planSplits(
      ['f0.txt', 'f1.txt', 'f2.txt'].map((f) => join(base, 'in', f)),
      1 << 20,
    );
    const emits: EmitBytes<number>[] = [];
    const job = defineJob<number, number>({
      map: countLine,
      mapBytes: (_o, bytes, emit) => {
        emits.push(emit);
        byteTokens(bytes, (s, e) => emit(s, e, 1));
      },
      fold: sumFold,
      reduce: (t, counts, emit) => emit(t, sum(counts)),
    });
    const task = { job, reducers: 1, dir: join(base, 'm'), attempt: 0 };
    const counts = async (r: Awaited<ReturnType<typeof runMapTask>>): Promise<string> => {
      const output = join(base, `out-${r.taskId}`);
      await runReduceTask({
        job,
        partition: 0,
        runs: [r.runs[0]!.path],
        output,
        taskId: `r-${r.taskId}`,
        attempt: 0,
      });
      return readFile(output, 'utf8');
    };
    const m0 = await runMapTask({ ...task, split: splits[0]!, taskId: 'm-0' });
    const m1 = await runMapTask({ ...task, split: splits[1]!, taskId: 'm-1' });
    expect(emits).toHaveLength(2);
    expect(emits[1]).toBe(emits[0]);
    // Two tasks at once in one thread (small reads: many awaits each): the
    // second to start gets a buffer of its own.
    const [m2, m3] = await Promise.all([
      runMapTask({ ...task, split: splits[2]!, taskId: 'm-2', readChunkBytes: 2 }),
      runMapTask({ ...task, split: splits[0]!, taskId: 'm-3', readChunkBytes: 2 }),
    ]);
    expect(await counts(m0)).toBe('a\t3\nb\t1\nc\t1\n');
    expect(await counts(m1)).toBe('b\t2\nx\t1\n');
    expect(await counts(m2)).toBe('a\t1\nx\t2\n');
    expect(await counts(m3)).toBe('a\t3\nb\t1\nc\t1\n');
  });

  it('is used instead of mapBlock and map when records need no handling of their own; map when they do', async () => {
    const calls = { map: 0, mapBlock: 0, mapBytes: 0 };
    const job = defineJob<number, number>({
      map: (o, line, emit) => {
        calls.map++;
        countLine(o, line, emit);
      },
      mapBlock: (o, block, emit) => {
        calls.mapBlock++;
        countLine(o, block, emit);
      },
      mapBytes: (_o, bytes, emit) => {
        calls.mapBytes++;
        countBytes(bytes, emit);
      },
      fold: (a, b) => a + b,
      reduce: (t, counts, emit) => emit(t, sum(counts)),
    });
    const base = await inputDir([Buffer.from('one two\nthree one\nfour\n')]);
    const [split] = await planSplits([join(base, 'in', 'f0.txt')], 1 << 20);
    const task = { job, split: split!, reducers: 1, dir: join(base, 'm'), taskId: 'm-0' };
    const progress = new Float64Array(2);
    const r = await runMapTask({ ...task, attempt: 0, progress });
    expect(calls).toEqual({ map: 0, mapBlock: 0, mapBytes: 1 });
    expect(r.counters).toMatchObject({ recordsIn: 3, emitted: 5, keysOut: 4 });
    expect([...progress]).toEqual([0, 3]);
    calls.mapBytes = 0;
    await runMapTask({ ...task, attempt: 1, skipBadRecords: true });
    expect(calls).toEqual({ map: 3, mapBlock: 0, mapBytes: 0 });
  });

  it('a range that is not integers within the block, or a throwing mapBytes, fails the task with USER_CODE_ERROR and leaves no file', async () => {
    const base = await inputDir([Buffer.from('abc def\nghi\n')]);
    const [split] = await planSplits([join(base, 'in', 'f0.txt')], 1 << 20);
    const bad: [unknown, unknown][] = [
      [-1, 2],
      [2, 1],
      [0, 13],
      [0.5, 2],
      ['0', 2],
      [0, Number.NaN],
      [undefined, 3],
    ];
    for (const [i, [s, e]] of bad.entries()) {
      const job = defineJob<number, number>({
        map: countLine,
        mapBytes: (_o, bytes, emit) => {
          emit(0, 3, 1); // fine
          emit(s as number, e as number, 1);
        },
        fold: (a, b) => a + b,
        reduce: (t, counts, emit) => emit(t, sum(counts)),
      });
      expect(await failingTask(job, split!, join(base, `m${i}`))).toMatch(
        /mapBytes threw on the block of 2 lines at .*f0\.txt:0: mapBytes emitted the range/,
      );
    }
    const throwing = defineJob<number, number>({
      map: countLine,
      mapBytes: () => {
        throw new Error('boom');
      },
      reduce: (t, counts, emit) => emit(t, sum(counts)),
    });
    expect(await failingTask(throwing, split!, join(base, 'mt'), 1)).toMatch(
      /mapBytes threw on the block of 2 lines at .*f0\.txt:0: boom/,
    );
  });
});
