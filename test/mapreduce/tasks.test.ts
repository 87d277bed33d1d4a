import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defineJob } from '../../src/mapreduce/job.js';
import type { AnyJob } from '../../src/mapreduce/job.js';
import { partFileName } from '../../src/mapreduce/format.js';
import { expandInputs, planSplits } from '../../src/mapreduce/input.js';
import { runMapTask, runReduceTask } from '../../src/mapreduce/tasks.js';
import { runSequential } from '../../src/mapreduce/sequential.js';

const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0);
const wordCount = defineJob<number, number>({
  map(_offset, line, emit) {
    for (const w of line.split(/[^A-Za-z]+/)) if (w !== '') emit(w, 1);
  },
  combine(word, counts, emit) {
    emit(word, sum(counts));
  },
  reduce(word, counts, emit) {
    emit(word, sum(counts));
  },
});

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cohort-mr-tasks-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs every map and reduce task in this process, like the engine would. */
async function runTasks(
  job: AnyJob,
  inputs: string[],
  reducers: number,
  splitBytes: number,
  out: string,
) {
  const splits = await planSplits(await expandInputs(inputs), splitBytes);
  const maps = [];
  for (const [i, split] of splits.entries()) {
    maps.push(
      await runMapTask({
        job,
        split,
        reducers,
        dir: join(dir, 'maps'),
        taskId: `m-${i}`,
        attempt: 1,
      }),
    );
  }
  const outputs: string[] = [];
  for (let p = 0; p < reducers; p++) {
    const r = await runReduceTask({
      job,
      partition: p,
      runs: maps.map((m) => m.runs[p]!.path),
      output: join(out, partFileName(p)),
      taskId: `r-${p}`,
      attempt: 1,
    });
    outputs.push(await readFile(r.output, 'utf8'));
  }
  return { maps, outputs };
}

describe('map and reduce tasks', () => {
  it('word count over small splits equals the sequential run byte for byte', async () => {
    await writeFile(join(dir, 'a.txt'), 'the cat\nthe dog\r\nsat on the mat');
    await writeFile(join(dir, 'b.txt'), 'dog eat dog\n');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(join(dir, 'out'));
    const { outputs } = await runTasks(wordCount, [join(dir, '*.txt')], 2, 5, join(dir, 'out'));
    const ref = await runSequential(wordCount, [join(dir, '*.txt')], {
      outputDir: join(dir, 'ref'),
      reducers: 2,
    });
    const expected = await Promise.all(ref.files.map((f) => readFile(f, 'utf8')));
    expect(outputs).toEqual(expected);
    expect(outputs.join('').split('\n').filter(Boolean).sort()).toEqual(
      ['cat\t1', 'dog\t3', 'eat\t1', 'mat\t1', 'on\t1', 'sat\t1', 'the\t3'].sort(),
    );
  });
});
