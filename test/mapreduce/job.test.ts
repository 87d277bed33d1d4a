import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineJob, isJob, loadJob, validateJob } from '../../src/mapreduce/job.js';
import { limits } from '../../src/lib/limits.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cohort-mr-job-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const jobApi = JSON.stringify(new URL('../../src/mapreduce/job.ts', import.meta.url).pathname);

async function module(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

describe('defineJob', () => {
  it('fills in the defaults and brands the job', () => {
    const job = defineJob({ map: () => undefined, reduce: () => undefined });
    expect(isJob(job)).toBe(true);
    expect(job.defaults).toEqual({
      reducers: 1,
      splitBytes: limits.mrSplitBytesDefault,
      skipBadRecords: false,
    });
    expect(job.source).toBe('inline');
  });

  it('refuses a job without map or reduce, with both combine and fold, or with bad defaults', () => {
    const noop = (): void => undefined;
    expect(() => validateJob({ reduce: noop }, 'm.ts')).toThrow(
      /job m\.ts: does not export a map function/,
    );
    expect(() => validateJob({}, 'm.ts')).toThrow(/a map function or a reduce function/);
    expect(() => validateJob(null, 'm.ts')).toThrow(/expected an object/);
    expect(() =>
      validateJob({ map: noop, reduce: noop, combine: noop, fold: noop }, 'm.ts'),
    ).toThrow(/either combine or fold/);
    expect(() => validateJob({ map: noop, reduce: noop, combine: 3 }, 'm.ts')).toThrow(
      /combine must be a function/,
    );
    expect(() => validateJob({ map: noop, reduce: noop, mapBlock: 'x' }, 'm.ts')).toThrow(
      /mapBlock must be a function/,
    );
    expect(() => validateJob({ map: noop, reduce: noop, mapBytes: {} }, 'm.ts')).toThrow(
      /mapBytes must be a function/,
    );
    // mapBlock and mapBytes complete map, they do not replace it (the reference runner and skipping use map).
    expect(() => validateJob({ mapBlock: noop, reduce: noop }, 'm.ts')).toThrow(
      /does not export a map function/,
    );
    expect(() => validateJob({ mapBytes: noop, reduce: noop }, 'm.ts')).toThrow(
      /does not export a map function/,
    );
    for (const defaults of [
      { reducers: 0 },
      { reducers: 1.5 },
      { reducers: limits.mrReducersMax + 1 },
      { splitBytes: -1 },
      { skipBadRecords: 'yes' },
      7,
    ]) {
      let err: unknown;
      try {
        validateJob({ map: noop, reduce: noop, defaults }, 'm.ts');
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ code: 'INVALID_ARGUMENT' });
    }
  });
});

describe('loadJob', () => {
  it('loads a TypeScript module made with defineJob, and a JavaScript one with named exports', async () => {
    const ts = await module(
      'wc.ts',
      `import { defineJob } from ${jobApi};
       export default defineJob<number, number>({
         map: (_o: number, line: string, emit) => emit(line, 1),
         mapBlock: (_o, block, emit) => block.split('\\n').forEach((l) => emit(l, 1)),
         mapBytes: (_o, bytes, emit) => emit(0, bytes.length, 1),
         fold: (a, b) => a + b,
         reduce: (k, vs, emit) => emit(k, vs.length),
         defaults: { reducers: 3 },
       });`,
    );
    const job = await loadJob(ts);
    expect(job.source).toBe(ts);
    expect(job.defaults.reducers).toBe(3);
    expect(typeof job.fold).toBe('function');
    expect(typeof job.mapBlock).toBe('function');
    expect(typeof job.mapBytes).toBe('function');
    expect(await loadJob(ts)).toBe(job); // cached per path and version
    // An edited module is loaded again (a long-lived worker thread must not run stale code).
    await writeFile(ts, (await readFile(ts, 'utf8')).replace('reducers: 3', 'reducers: 4'));
    const edited = await loadJob(ts);
    expect(edited.defaults.reducers).toBe(4);
    expect(edited).not.toBe(job);

    const js = await module(
      'named.mjs',
      `export function map(o, line, emit) { emit(line, o); }
       export function mapBlock(o, block, emit) { emit(block, o); }
       export function mapBytes(o, bytes, emit) { emit(0, bytes.length, o); }
       export function reduce(k, vs, emit) { emit(k, vs[0]); }
       export const defaults = { skipBadRecords: true };`,
    );
    const named = await loadJob(js);
    expect(named.defaults.skipBadRecords).toBe(true);
    expect(typeof named.mapBlock).toBe('function');
    expect(typeof named.mapBytes).toBe('function');
    expect(named.source).toBe(js);
  });

  it('a module without map/reduce is INVALID_ARGUMENT naming the module and what is missing', async () => {
    const path = await module('nomap.mjs', 'export function reduce() {}\nexport const x = 1;\n');
    const err: unknown = await loadJob(path).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect((err as Error).message).toBe(
      `job ${path}: does not export a map function (export default defineJob({ map, reduce }), or export function map/reduce)`,
    );
  });

  it('a missing module is NOT_FOUND; one that throws while loading is USER_CODE_ERROR', async () => {
    await expect(loadJob(join(dir, 'missing.ts'))).rejects.toMatchObject({ code: 'NOT_FOUND' });
    const bad = await module('throws.mjs', "throw new Error('boom at load');\n");
    const err: unknown = await loadJob(bad).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'USER_CODE_ERROR' });
    expect((err as Error).message).toMatch(/throws\.mjs failed to load: boom at load/);
    await expect(loadJob(dir)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});
