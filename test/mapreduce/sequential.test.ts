import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineJob } from '../../src/mapreduce/job.js';
import { defaultPartition } from '../../src/mapreduce/format.js';
import { runSequential } from '../../src/mapreduce/sequential.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cohort-mr-seq-'));
  await writeFile(join(dir, 'b.txt'), 'k x\nk y\n');
  await writeFile(join(dir, 'a.txt'), 'k first\r\nj\n\nk second');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Emits (first word, "file@offset:rest"): reduce sees where every value came from. */
const trace = defineJob<string, string>({
  map: (offset, line, emit, ctx) => {
    const [key, ...rest] = line.split(' ');
    if (key !== undefined && key !== '')
      emit(key, `${ctx.file.slice(-5)}@${offset}:${rest.join(' ')}`);
  },
  reduce: (key, values, emit) => emit(key, values.join('|')),
});

describe('runSequential', () => {
  it('reduces every key once, in key order per partition, with values in input order (files in glob order)', async () => {
    const r = await runSequential(trace, [join(dir, '*.txt')], { outputDir: join(dir, 'out1') });
    expect(r.files).toEqual([join(dir, 'out1', 'part-r-00000')]);
    expect(r.records).toBe(6);
    expect(await readFile(r.files[0]!, 'utf8')).toBe(
      'j\ta.txt@9:\nk\ta.txt@0:first|a.txt@12:second|b.txt@0:x|b.txt@4:y\n',
    );
  });

  it('writes one file per reducer, keys placed by the partitioner, empty partitions included', async () => {
    const r = await runSequential(trace, [join(dir, 'a.txt'), join(dir, 'b.txt')], {
      outputDir: join(dir, 'out2'),
      reducers: 5,
    });
    expect(r.files.length).toBe(5);
    const texts = await Promise.all(r.files.map((f) => readFile(f, 'utf8')));
    expect(texts[defaultPartition('k', 5)]).toMatch(/^k\t/);
    expect(texts[defaultPartition('j', 5)]).toMatch(/^j\t/);
    expect(texts.filter((t) => t === '').length).toBe(
      defaultPartition('k', 5) === defaultPartition('j', 5) ? 4 : 3,
    );
  });

  it('skips records whose map throws only when asked, dropping what they emitted', async () => {
    const picky = defineJob<number, number>({
      map: (_o, line, emit) => {
        emit('lines', 1);
        if (line.includes('y')) throw new Error('no y');
      },
      reduce: (k, vs, emit) => emit(k, vs.length),
    });
    await expect(
      runSequential(picky, [join(dir, 'b.txt')], { outputDir: join(dir, 'out3') }),
    ).rejects.toMatchObject({ code: 'USER_CODE_ERROR', details: { offset: 4 } });
    const r = await runSequential(picky, [join(dir, 'b.txt')], {
      outputDir: join(dir, 'out4'),
      skipBadRecords: true,
    });
    expect(r.skipped).toBe(1);
    expect(await readFile(r.files[0]!, 'utf8')).toBe('lines\t1\n');
  });
});
