/**
 * A reduce reads at most `fanInMax` runs at once (limits.mrReduceFanInMax):
 * with more, the merge path merges them in passes into temp runs first, and
 * the summing path reads them a group at a time. Either way the output is
 * the one a reduce reading every run at once gives (values in map-task
 * order), and no temp run is left behind.
 */
import { readFileSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defineJob, sumFold } from '../../src/mapreduce/job.js';
import type { AnyJob } from '../../src/mapreduce/job.js';
import { runMapTask, runReduceTask } from '../../src/mapreduce/tasks.js';
import { tempDir } from '../harness/tmp.js';

const MAPS = 11;

const jobs: Record<string, AnyJob> = {
  // No fold, no combiner: the merge path; the output shows the values' order.
  ordered: defineJob<string, string>({
    map: (o, line, emit) => {
      for (const w of line.split(' ')) emit(w, `${line.length}@${o}`);
    },
    reduce: (k, vs, emit) => emit(k, vs.join(',')),
  }),
  // The built-in sum: the summing path.
  summed: defineJob<number, number>({
    map: (_o, line, emit) => {
      for (const w of line.split(' ')) emit(w, line.length);
    },
    fold: sumFold,
    reduce: (k, vs, emit) =>
      emit(
        k,
        vs.reduce((a, b) => a + b, 0),
      ),
  }),
};

/** One run per map task, in map order, of `job` over MAPS small inputs sharing keys. */
async function runsOf(job: AnyJob, dir: string): Promise<string[]> {
  const runs: string[] = [];
  for (let m = 0; m < MAPS; m++) {
    const lines = Array.from({ length: 5 + m }, (_, i) =>
      Array.from({ length: 1 + ((i + m) % 4) }, (_, j) => `k${(i * 7 + j * 3 + m) % 13}`).join(' '),
    );
    const file = join(dir, `in-${m}.txt`);
    const text = lines.join('\n') + '\n';
    await writeFile(file, text);
    const r = await runMapTask({
      job,
      split: { file, start: 0, end: Buffer.byteLength(text) },
      reducers: 1,
      dir: join(dir, 'maps'),
      taskId: `m-${m}`,
      attempt: 0,
    });
    runs.push((r.runs[0] as { path: string }).path);
  }
  return runs;
}

/**
 * `runs` as arrays of chunks (a source both paths accept), each counting
 * how many are being read at once: a source is open from its iterator's
 * first `next()` until it is done or returned.
 */
function tracked(runs: readonly string[]): { sources: Uint8Array[][]; most: () => number } {
  let open = 0;
  let most = 0;
  const sources = runs.map((path) => {
    const chunks = [readFileSync(path)];
    return new Proxy(chunks, {
      get(target, prop, receiver) {
        if (prop !== Symbol.iterator) return Reflect.get(target, prop, receiver) as unknown;
        return () => {
          const it = target[Symbol.iterator]();
          let state: 'new' | 'open' | 'closed' = 'new';
          const close = (): void => {
            if (state === 'open') open--;
            state = 'closed';
          };
          return {
            next(): IteratorResult<Uint8Array> {
              if (state === 'new') {
                state = 'open';
                most = Math.max(most, ++open);
              }
              const r = it.next();
              if (r.done === true) close();
              return r;
            },
            return(): IteratorResult<Uint8Array> {
              close();
              return { done: true, value: undefined };
            },
            [Symbol.iterator]() {
              return this;
            },
          };
        };
      },
    });
  });
  return { sources, most: () => most };
}

describe('a reduce over more runs than its fan-in', () => {
  for (const name of ['ordered', 'summed']) {
    it(`${name}: reads at most fanInMax runs at once and writes what a reduce of all at once writes, leaving no temp run`, async () => {
      const job = jobs[name] as AnyJob;
      const dir = tempDir('cohort-mr-fanin-');
      const runs = await runsOf(job, dir);
      const reduce = async (
        tag: string,
        sources: readonly (string | Uint8Array[])[],
        fanInMax?: number,
      ) => {
        const out = join(dir, `out-${tag}`);
        await mkdir(out);
        const r = await runReduceTask({
          job,
          partition: 0,
          runs: sources,
          output: join(out, 'part-r-00000'),
          taskId: 'r-0',
          attempt: 0,
          ...(fanInMax === undefined ? {} : { fanInMax }),
        });
        expect(await readdir(out)).toEqual(['part-r-00000']);
        return { text: await readFile(join(out, 'part-r-00000'), 'utf8'), counters: r.counters };
      };
      const all = await reduce('all', runs);
      const t = tracked(runs);
      const bounded = await reduce('bounded', t.sources, 3);
      expect(bounded).toEqual(all);
      expect(t.most()).toBeLessThanOrEqual(3);
      expect(t.most()).toBeGreaterThan(0);
      // The sources read in groups of 3 by files too (and through two passes for 11 > 3 * 3).
      expect(await reduce('files', runs, 3)).toEqual(all);
      expect(all.text.split('\n').length).toBeGreaterThan(10);
    });
  }

  it('fails as the run it cannot read (CORRUPTION) and leaves neither its output nor a temp run', async () => {
    const job = jobs['ordered'] as AnyJob;
    const dir = tempDir('cohort-mr-fanin-bad-');
    const runs = await runsOf(job, dir);
    const bytes = readFileSync(runs[7] as string);
    await writeFile(runs[7] as string, bytes.subarray(0, bytes.length - 5)); // truncated
    const out = join(dir, 'out');
    await mkdir(out);
    await expect(
      runReduceTask({
        job,
        partition: 0,
        runs,
        output: join(out, 'part-r-00000'),
        taskId: 'r-0',
        attempt: 0,
        fanInMax: 3,
      }),
    ).rejects.toMatchObject({ code: 'CORRUPTION' });
    expect(await readdir(out)).toEqual([]);
  });
});
