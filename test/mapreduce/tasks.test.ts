import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineJob, sumFold } from '../../src/mapreduce/job.js';
import type { AnyJob, Emit, MapContext } from '../../src/mapreduce/job.js';
import { partFileName, readRun } from '../../src/mapreduce/format.js';
import { planSplits } from '../../src/mapreduce/input.js';
import { runMapTask, runReduceTask } from '../../src/mapreduce/tasks.js';
import { runSequential } from '../../src/mapreduce/sequential.js';
import { runTasksInProcess } from '../../src/mapreduce/tasks-local.js';

const words = (line: string): string[] => line.split(/[^A-Za-z]+/).filter((w) => w !== '');
const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0);

/** The lines of a block (with their byte offsets, from the block's), as the engine would cut them. */
function linesOf(offset: number, block: string): [number, string][] {
  const out: [number, string][] = [];
  let at = offset;
  for (const l of block.split(/(?<=\n)/)) {
    out.push([at, l.replace(/\r?\n?$/, '')]);
    at += Buffer.byteLength(l);
  }
  return out;
}

const plainMap = (o: number, line: string, emit: Emit<string>, ctx: MapContext): void =>
  words(line).forEach((w, i) => emit(w.toLowerCase(), `${ctx.file.slice(-5)}@${o}.${i}`));

/** Word count in its three forms: fold, classic combine, no combiner; and with mapBlock. */
const jobs: Record<string, AnyJob> = {
  fold: defineJob<number, number>({
    map: (_o, line, emit) => words(line).forEach((w) => emit(w, 1)),
    fold: (a, b) => a + b,
    reduce: (w, counts, emit) => emit(w, sum(counts)),
  }),
  combine: defineJob<number, number>({
    map: (_o, line, emit) => words(line).forEach((w) => emit(w, 1)),
    combine: (w, counts, emit) => emit(w, sum(counts)),
    reduce: (w, counts, emit) => emit(w, sum(counts)),
  }),
  // Order-sensitive: reduce lists every (offset, word position), so values
  // must reach it in input order, through splits, spills and merges.
  plain: defineJob<string, string>({
    map: (o, line, emit, ctx) =>
      words(line).forEach((w, i) => emit(w.toLowerCase(), `${ctx.file.slice(-5)}@${o}.${i}`)),
    reduce: (w, where, emit) => emit(w, where.join(' ')),
  }),
  // mapBlock scanning the whole block, as examples/mapreduce/wordcount.ts does.
  foldBlock: defineJob<number, number>({
    map: (_o, line, emit) => words(line).forEach((w) => emit(w, 1)),
    mapBlock: (_o, block, emit) => words(block).forEach((w) => emit(w, 1)),
    fold: (a, b) => a + b,
    reduce: (w, counts, emit) => emit(w, sum(counts)),
  }),
  // A combiner that only concatenates (lists of places, order-sensitive): with
  // a small combineAt the map task switches to encoded values mid-record.
  concat: defineJob<string[], string>({
    map: (o, line, emit, ctx) =>
      words(line).forEach((w, i) => emit(w.toLowerCase(), [`${ctx.file.slice(-5)}@${o}.${i}`])),
    combine: (w, lists, emit) => emit(w, lists.flat()),
    reduce: (w, lists, emit) => emit(w, lists.flat().join(' ')),
  }),
  // The same, skipping bad records (their pairs are staged, then emitted).
  concatSkip: defineJob<string[], string>({
    map: (o, line, emit, ctx) => {
      words(line).forEach((w, i) => emit(w.toLowerCase(), [`${ctx.file.slice(-5)}@${o}.${i}`]));
      if (line.includes('zed.')) throw new Error('bad record');
    },
    combine: (w, lists, emit) => emit(w, lists.flat()),
    reduce: (w, lists, emit) => emit(w, lists.flat().join(' ')),
    defaults: { skipBadRecords: true },
  }),
  // The built-in sum (a reduce that adds up its runs without merging them).
  foldSum: defineJob<number, number>({
    map: (_o, line, emit) => words(line).forEach((w) => emit(w, 1)),
    fold: sumFold,
    reduce: (w, counts, emit) => emit(w, sum(counts)),
  }),
  // Order- and offset-sensitive, through mapBlock: every line's offset must come out right.
  plainBlock: defineJob<string, string>({
    map: plainMap,
    mapBlock: (o, block, emit, ctx) => {
      for (const [at, l] of linesOf(o, block)) plainMap(at, l, emit, ctx);
    },
    reduce: (w, where, emit) => emit(w, where.join(' ')),
  }),
};

let dir: string;
let n = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cohort-mr-tasks-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function read(files: readonly string[]): Promise<string[]> {
  return Promise.all(files.map((f) => readFile(f, 'utf8')));
}

const vocabulary = fc.constantFrom('a', 'b', 'apple', 'Pear', 'the', 'zed', 'x', 'yy');
const line = fc
  .array(fc.tuple(vocabulary, fc.constantFrom(' ', ', ', '.', '  ')), { maxLength: 12 })
  .map((ws) => ws.map(([w, s]) => w + s).join(''));
const file = fc
  .tuple(fc.array(line, { maxLength: 15 }), fc.constantFrom('\n', '\r\n'), fc.boolean())
  .map(([ls, nl, finalNl]) => ls.join(nl) + (finalNl && ls.length > 0 ? nl : ''));

describe('map and reduce tasks', () => {
  it('output equals the sequential run byte for byte (fold, combine, none, mapBlock, a regrouping combiner with bad records; any split size, reducer count, spills, block size)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(
          'fold',
          'foldSum',
          'combine',
          'plain',
          'foldBlock',
          'plainBlock',
          'concat',
          'concatSkip',
        ),
        fc.array(file, { minLength: 1, maxLength: 3 }),
        fc.integer({ min: 100, max: 2000 }),
        fc.integer({ min: 1, max: 3 }),
        fc.constantFrom(undefined, 4, 20),
        fc.option(fc.integer({ min: 1, max: 120 }), { nil: undefined }),
        async (which, texts, splitBytes, reducers, bufferEntriesMax, mapBlockBytes) => {
          const job = jobs[which] as AnyJob;
          const base = join(dir, `p${n++}`);
          await mkdir(join(base, 'in'), { recursive: true });
          for (const [i, t] of texts.entries()) await writeFile(join(base, 'in', `f${i}.txt`), t);
          const inputs = [join(base, 'in', '*.txt')];
          const engine = await runTasksInProcess(job, inputs, {
            outputDir: join(base, 'out'),
            reducers,
            splitBytes,
            ...(bufferEntriesMax === undefined ? {} : { bufferEntriesMax, readChunkBytes: 64 }),
            ...(mapBlockBytes === undefined ? {} : { mapBlockBytes }),
            ...(which.startsWith('concat') ? { combineAt: 2, combinesBeforeArena: 8 } : {}),
          });
          const ref = await runSequential(job, inputs, { outputDir: join(base, 'ref'), reducers });
          expect(await read(engine.files)).toEqual(await read(ref.files));
          if (bufferEntriesMax !== undefined && !which.startsWith('fold')) {
            // Small buffers must actually spill: the bound is checked after every
            // read chunk, the last one too, and without a fold every emitted value
            // stays buffered until a spill, so a map that emitted more values
            // than the bound spilled at least once. (A total over all maps says
            // nothing: many small splits may each stay under the bound.)
            for (const m of engine.maps) {
              if (m.counters.emitted > bufferEntriesMax) {
                expect(m.counters.spills).toBeGreaterThan(0);
              }
            }
          }
        },
      ),
      // A failure shrinks through many slow runs: stop shrinking in time to
      // report the counterexample found so far, not a bare test timeout (a
      // failure found is reported however it was interrupted; runs without one
      // take seconds, and a busy machine never turns them into a failure).
      { numRuns: 30, interruptAfterTimeLimit: 300_000 },
    );
  });

  it('the keys a map task keeps do not keep the blocks of input text they were sliced from alive', async () => {
    // ASCII lines are slices of 64 KiB blocks of text (input.ts), and so is a
    // long key sliced from one. Each of 400 blocks here holds one new key of
    // 24 characters: kept as slices, the keys would keep 25 MiB of blocks.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const blocks = 400;
    const filler = `${'f'.repeat(63)}\n`.repeat(1023);
    let text = '';
    for (let i = 0; i < blocks; i++) text += `k${String(i).padStart(23, '0')},x\n${filler}`;
    text += 'END\n';
    const input = join(dir, `blocks-${n++}.txt`);
    await writeFile(input, text);
    let held = Number.NaN;
    const job = defineJob<number, number>({
      map(_o, l, emit) {
        if (l === 'END') {
          gc();
          held = process.memoryUsage().heapUsed;
        } else if (l.startsWith('k')) emit(l.slice(0, l.indexOf(',')), 1);
      },
      fold: (a, b) => a + b,
      reduce: (k, vs, emit) => emit(k, sum(vs)),
    });
    gc();
    const before = process.memoryUsage().heapUsed;
    const m = await runMapTask({
      job,
      split: { file: input, start: 0, end: Buffer.byteLength(text) },
      reducers: 1,
      dir: join(dir, `blocks-out-${n++}`),
      taskId: 'm-0',
      attempt: 0,
    });
    expect(m.counters.keysOut).toBe(blocks);
    expect(held - before).toBeLessThan(8 * 2 ** 20);
  });

  it('a summing reduce (fold: sumFold) hands reduce one value per key, the sum over every map task; other values take the merge', async () => {
    const base = join(dir, 'summing');
    await mkdir(join(base, 'in'), { recursive: true });
    await writeFile(join(base, 'in', 'a.txt'), 'the cat\nthe dog\nsat on the mat\n'.repeat(20));
    // reduce shows how many values it was handed, and their sum.
    const seen = defineJob<number, string>({
      map: (_o, line, emit) => words(line).forEach((w) => emit(w, 1)),
      fold: sumFold,
      reduce: (w, counts, emit) => emit(w, `${counts.length}:${sum(counts)}`),
    });
    // The same with strings summed (concatenated): not numbers, so the runs are merged.
    const strings = defineJob<string, string>({
      map: (_o, line, emit) => words(line).forEach((w) => emit(w, w[0] as string)),
      fold: sumFold as unknown as (a: string, b: string) => string,
      reduce: (w, parts, emit) => emit(w, parts.join('')),
    });
    const inputs = [join(base, 'in', '*.txt')];
    for (const [name, job] of [
      ['seen', seen],
      ['strings', strings],
    ] as const) {
      const engine = await runTasksInProcess(job as AnyJob, inputs, {
        outputDir: join(base, `${name}-out`),
        reducers: 1,
        splitBytes: 100,
      });
      expect(engine.maps.length).toBeGreaterThan(3);
      const [out] = await read(engine.files);
      if (name === 'seen') {
        // One value per key (the sum of every map task's count), not one per map task.
        expect(out).toBe('cat\t1:20\ndog\t1:20\nmat\t1:20\non\t1:20\nsat\t1:20\nthe\t1:60\n');
      } else {
        const ref = await runSequential(job as AnyJob, inputs, {
          outputDir: join(base, 'strings-ref'),
          reducers: 1,
        });
        expect([out]).toEqual(await read(ref.files));
      }
    }
  });

  it('reducers accept runs as byte streams in chunks (the shuffle) as well as paths', async () => {
    const base = join(dir, 'streams');
    await mkdir(base, { recursive: true });
    await writeFile(join(base, 'a.txt'), 'the cat\nthe dog\nsat on the mat\n'.repeat(20));
    const splits = await planSplits([join(base, 'a.txt')], 50);
    const job = jobs['plain'] as AnyJob;
    const maps = [];
    for (const [i, split] of splits.entries()) {
      maps.push(
        await runMapTask({
          job,
          split,
          reducers: 1,
          dir: join(base, 'm'),
          taskId: `m-${i}`,
          attempt: 0,
        }),
      );
    }
    const paths = maps.map((m) => m.runs[0]!.path);
    const streams = await Promise.all(
      paths.map(async (p) => {
        const bytes = await readFile(p);
        return (async function* () {
          for (let i = 0; i < bytes.length; i += 7) {
            await new Promise((r) => setImmediate(r)); // chunks arrive over time, as from a socket
            yield bytes.subarray(i, i + 7);
          }
        })();
      }),
    );
    await mkdir(join(base, 'o1'));
    await mkdir(join(base, 'o2'));
    const r1 = await runReduceTask({
      job,
      partition: 0,
      runs: paths,
      output: join(base, 'o1', partFileName(0)),
      taskId: 'r',
      attempt: 0,
    });
    const r2 = await runReduceTask({
      job,
      partition: 0,
      runs: streams,
      output: join(base, 'o2', partFileName(0)),
      taskId: 'r',
      attempt: 1,
    });
    expect(await readFile(r2.output, 'utf8')).toBe(await readFile(r1.output, 'utf8'));
    expect(r1.counters.keysIn).toBe(6);
  });

  it('a summing reduce sums runs in memory (arrays of chunks, as a thread gets the shuffle’s) without a merge, as it sums files', async () => {
    const base = join(dir, 'summing-memory');
    await mkdir(base, { recursive: true });
    await writeFile(join(base, 'a.txt'), 'the cat\nthe dog\nsat on the mat\n'.repeat(20));
    const seen = defineJob<number, string>({
      map: (_o, line, emit) => words(line).forEach((w) => emit(w, 1)),
      fold: sumFold,
      reduce: (w, counts, emit) => emit(w, `${counts.length}:${sum(counts)}`),
    });
    const splits = await planSplits([join(base, 'a.txt')], 100);
    expect(splits.length).toBeGreaterThan(3);
    const paths: string[] = [];
    for (const [i, split] of splits.entries()) {
      const m = await runMapTask({
        job: seen as AnyJob,
        split,
        reducers: 1,
        dir: join(base, 'm'),
        taskId: `m-${i}`,
        attempt: 0,
      });
      paths.push(m.runs[0]!.path);
    }
    const inMemory = await Promise.all(paths.map(async (p) => [await readFile(p)]));
    const r = await runReduceTask({
      job: seen as AnyJob,
      partition: 0,
      // The first run a file, the others in memory.
      runs: [paths[0]!, ...inMemory.slice(1)],
      output: join(base, partFileName(0)),
      taskId: 'r',
      attempt: 0,
    });
    // One value per key: summed, not merged (a merge hands one per map task).
    expect(await readFile(r.output, 'utf8')).toBe(
      'cat\t1:20\ndog\t1:20\nmat\t1:20\non\t1:20\nsat\t1:20\nthe\t1:60\n',
    );
  });

  it('a combiner is handed each value once as it piles up (never its growing output again), and once more only if it shrinks data', async () => {
    const base = join(dir, 'combine-once');
    await mkdir(base, { recursive: true });
    // One key with 6400 values: a quadratic combiner would see ~320k values.
    await writeFile(
      join(base, 'a.txt'),
      Array.from({ length: 6400 }, (_, i) => `k ${i}`).join('\n'),
    );
    const split = {
      file: join(base, 'a.txt'),
      start: 0,
      end: (await readFile(join(base, 'a.txt'))).length,
    };
    let handed = 0;
    const run = async (combine: (vs: number[][]) => number[][], name: string) => {
      handed = 0;
      const job = defineJob<number[], string>({
        map: (_o, l, emit) => emit('k', [Number(l.split(' ')[1])]),
        combine: (k, lists, emit) => {
          handed += lists.reduce((n, l) => n + l.length, 0);
          for (const l of combine(lists)) emit(k, l);
        },
        reduce: (k, lists, emit) => emit(k, String(lists.flat().length)),
      });
      return runMapTask({
        job,
        split,
        reducers: 1,
        dir: join(base, name),
        taskId: 'm-0',
        attempt: 1,
      });
    };
    // A concatenating combiner: combined as values pile up until it has been
    // seen only to regroup them (64 combines: 4096 values), then never again:
    // values are kept encoded and shipped as they are (its 64 lists, then
    // the 2304 values emitted after the switch), in input order.
    const concat = await run((lists) => [lists.flat()], 'concat');
    expect(handed).toBe(4096);
    expect(concat.runs[0]?.values).toBe(64 + 2304);
    const lists: number[][] = [];
    for await (const block of readRun(concat.runs[0]?.path as string)) {
      for (let i = 0; i < block.length; i += 2) {
        expect(block[i]).toBe('k');
        lists.push(...(block[i + 1] as number[][]));
      }
    }
    expect(lists.slice(0, 64).every((l) => l.length === 64)).toBe(true);
    expect(lists.flat()).toEqual(Array.from({ length: 6400 }, (_, i) => i));
    // A shrinking combiner (many lists in, one number out): combined as values
    // pile up (6400 handed), and once more at the end (its 100 outputs).
    const shrink = await run((lists) => [[lists.length]], 'shrink');
    expect(handed).toBe(6400 + 100);
    expect(shrink.runs[0]?.values).toBe(1);
  });

  it('a reducer that throws on one key fails with USER_CODE_ERROR naming it and leaves no output', async () => {
    const base = join(dir, 'throws');
    await mkdir(join(base, 'out'), { recursive: true });
    await writeFile(join(base, 'a.txt'), 'alpha beta gamma\nbeta\n');
    const job = defineJob<number, number>({
      map: (_o, l, emit) => words(l).forEach((w) => emit(w, 1)),
      reduce: (w, c, emit) => {
        if (w === 'beta') throw new Error('no beta here');
        emit(w, sum(c));
      },
    });
    const err: unknown = await runTasksInProcess(job, [join(base, 'a.txt')], {
      outputDir: join(base, 'out'),
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'USER_CODE_ERROR',
      details: { key: 'beta', phase: 'reduce' },
    });
    expect((err as Error).message).toMatch(/reduce threw on key "beta".*no beta here/);
    expect(await readdir(join(base, 'out'))).toEqual([]);
  });

  it('a map that throws fails the task naming the record offset, leaving no runs; with skipBadRecords it is skipped and counted', async () => {
    const base = join(dir, 'bad-record');
    await mkdir(base, { recursive: true });
    await writeFile(join(base, 'a.txt'), 'ok one\nBAD two\nok three\n');
    const job = defineJob<number, number>({
      map: (_o, l, emit) => {
        emit('partial', 1); // emitted before the throw: dropped with the record when skipped
        if (l.startsWith('BAD')) throw new Error('cannot parse');
        words(l).forEach((w) => emit(w, 1));
      },
      reduce: (w, c, emit) => emit(w, sum(c)),
    });
    const split = { file: join(base, 'a.txt'), start: 0, end: 24 };
    const mdir = join(base, 'maps');
    const err: unknown = await runMapTask({
      job,
      split,
      reducers: 2,
      dir: mdir,
      taskId: 'm-0',
      attempt: 0,
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'USER_CODE_ERROR', details: { offset: 7, phase: 'map' } });
    expect((err as Error).message).toMatch(/a\.txt:7: cannot parse/);
    expect(await readdir(mdir)).toEqual([]);

    const progress = new Float64Array(2);
    const ok = await runMapTask({
      job,
      split,
      reducers: 1,
      dir: mdir,
      taskId: 'm-0',
      attempt: 1,
      skipBadRecords: true,
      progress,
    });
    expect(ok.counters.recordsSkipped).toBe(1);
    expect(ok.skipped).toEqual([{ file: split.file, offset: 7, reason: 'cannot parse' }]);
    expect(progress[0]).toBe(15); // the last record's offset
    expect(progress[1]).toBe(2); // records mapped
    const out = join(base, 'out');
    await mkdir(out);
    await runReduceTask({
      job,
      partition: 0,
      runs: [ok.runs[0]!.path],
      output: join(out, 'p'),
      taskId: 'r',
      attempt: 0,
    });
    expect(await readFile(join(out, 'p'), 'utf8')).toBe('ok\t2\none\t1\npartial\t2\nthree\t1\n');
    const ref = await runSequential(job, [split.file], {
      outputDir: join(base, 'ref'),
      skipBadRecords: true,
    });
    expect(await readFile(ref.files[0]!, 'utf8')).toBe('ok\t2\none\t1\npartial\t2\nthree\t1\n');

    // Offsets found bad by earlier attempts are skipped without calling map.
    const listed = await runMapTask({
      job,
      split,
      reducers: 1,
      dir: mdir,
      taskId: 'm-0',
      attempt: 2,
      skipOffsets: [7],
    });
    expect(listed.skipped).toEqual([{ file: split.file, offset: 7, reason: 'listed' }]);
  });

  it('mapBlock is used when records need no handling of their own; a throwing one fails the task naming its block', async () => {
    const base = join(dir, 'map-block');
    await mkdir(base, { recursive: true });
    const text = 'ok one\nBAD two\nok three\n'.repeat(5);
    await writeFile(join(base, 'a.txt'), text);
    const calls = { map: 0, mapBlock: 0 };
    const job = defineJob<number, number>({
      map: (_o, l, emit) => {
        calls.map++;
        words(l).forEach((w) => emit(w, 1));
      },
      mapBlock: (_o, block, emit) => {
        calls.mapBlock++;
        if (block.startsWith('BAD') && block.includes('three')) throw new Error('bad block');
        words(block).forEach((w) => emit(w, 1));
      },
      fold: (a, b) => a + b,
      reduce: (w, c, emit) => emit(w, sum(c)),
    });
    const split = { file: join(base, 'a.txt'), start: 0, end: text.length };
    const mdir = join(base, 'maps');
    const task = { job, split, reducers: 2, dir: mdir, taskId: 'm-0' };

    // Small blocks that do not contain the bad text: mapBlock only, progress per block.
    const progress = new Float64Array(2);
    const r = await runMapTask({ ...task, attempt: 0, mapBlockBytes: 12, progress });
    expect(calls).toEqual({ map: 0, mapBlock: 15 });
    expect(r.counters.recordsIn).toBe(15);
    expect(r.counters.emitted).toBe(30);
    expect(progress[1]).toBe(15);
    expect(progress[0]).toBe(text.length - 'ok three\n'.length); // the last block's offset

    // A block holding the bad text: the task fails naming the block, and leaves no runs.
    const err: unknown = await runMapTask({ ...task, attempt: 1, mapBlockBytes: 20 }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'USER_CODE_ERROR', details: { blockOffset: 31 } });
    expect((err as Error).message).toMatch(
      /mapBlock threw on the block of 2 lines at .*a\.txt:31: bad block/,
    );
    expect((await readdir(mdir)).filter((f) => f.includes('.a1.'))).toEqual([]);

    // With skipBadRecords, or records to skip, map runs line by line instead.
    calls.map = calls.mapBlock = 0;
    await runMapTask({ ...task, attempt: 2, skipBadRecords: true });
    expect(calls).toEqual({ map: 15, mapBlock: 0 });
    calls.map = 0;
    const skipping = await runMapTask({ ...task, attempt: 3, skipOffsets: [7] });
    expect(calls).toEqual({ map: 14, mapBlock: 0 });
    expect(skipping.counters.recordsSkipped).toBe(1);
  });

  it('misbehaving partition and combine functions are USER_CODE_ERRORs naming the key', async () => {
    const base = join(dir, 'misbehave');
    await mkdir(base, { recursive: true });
    await writeFile(join(base, 'a.txt'), 'x y\n');
    const split = { file: join(base, 'a.txt'), start: 0, end: 4 };
    const badPartition = defineJob<number, number>({
      map: (_o, l, emit) => words(l).forEach((w) => emit(w, 1)),
      reduce: () => undefined,
      partition: (k) => (k === 'y' ? 9 : 0),
    });
    await expect(
      runMapTask({
        job: badPartition,
        split,
        reducers: 2,
        dir: join(base, 'm'),
        taskId: 'm',
        attempt: 0,
      }),
    ).rejects.toMatchObject({ code: 'USER_CODE_ERROR', details: { key: 'y', phase: 'partition' } });
    const badCombine = defineJob<number, number>({
      map: (_o, l, emit) => {
        emit('k', 1);
        emit('k', 2);
      },
      combine: (_k, vs, emit) => emit('other', sum(vs)),
      reduce: () => undefined,
    });
    await expect(
      runMapTask({
        job: badCombine,
        split,
        reducers: 1,
        dir: join(base, 'm'),
        taskId: 'm',
        attempt: 1,
      }),
    ).rejects.toMatchObject({
      code: 'USER_CODE_ERROR',
      message: expect.stringMatching(/combine for key "k" emitted another key/) as unknown,
    });
    const badKey = defineJob({
      map: (_o, _l, emit) => emit(7 as unknown as string, 1),
      reduce: () => undefined,
    });
    await expect(
      runMapTask({
        job: badKey,
        split,
        reducers: 1,
        dir: join(base, 'm'),
        taskId: 'm',
        attempt: 2,
      }),
    ).rejects.toMatchObject({
      code: 'USER_CODE_ERROR',
      message: expect.stringMatching(/not a string/) as unknown,
    });
    expect(await readdir(join(base, 'm'))).toEqual([]);
  });

  it('two reducers of one partition at once (a backup task) leave one complete output and no temp file', async () => {
    const base = join(dir, 'backup');
    await mkdir(join(base, 'out'), { recursive: true });
    await writeFile(join(base, 'a.txt'), 'one two three\n'.repeat(500));
    const job = jobs['plain'] as AnyJob;
    const m = await runMapTask({
      job,
      split: { file: join(base, 'a.txt'), start: 0, end: 7000 },
      reducers: 1,
      dir: join(base, 'm'),
      taskId: 'm-0',
      attempt: 0,
    });
    const output = join(base, 'out', partFileName(0));
    const [a, b] = await Promise.all(
      [1, 2].map((attempt) =>
        runReduceTask({
          job,
          partition: 0,
          runs: [m.runs[0]!.path],
          output,
          taskId: 'r-0',
          attempt,
        }),
      ),
    );
    expect(a!.counters).toEqual(b!.counters);
    expect(await readdir(join(base, 'out'))).toEqual([partFileName(0)]);
    expect((await readFile(output, 'utf8')).length).toBe(a!.counters.bytesOut);
  });

  it('an output directory that does not exist, or a bad task id, is refused before any work', async () => {
    const job = jobs['fold'] as AnyJob;
    await expect(
      runReduceTask({
        job,
        partition: 0,
        runs: [],
        output: join(dir, 'no', 'such', 'dir', 'p'),
        taskId: 'r',
        attempt: 0,
      }),
    ).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(
      runMapTask({
        job,
        split: { file: 'x', start: 0, end: 1 },
        reducers: 1,
        dir,
        taskId: '../evil',
        attempt: 0,
      }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(
      runMapTask({
        job,
        split: { file: 'x', start: 0, end: 1 },
        reducers: 0,
        dir,
        taskId: 'm',
        attempt: 0,
      }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});
