import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadJob } from '../../src/mapreduce/job.js';
import { runSequential } from '../../src/mapreduce/sequential.js';
import { runTasksInProcess } from '../../src/mapreduce/tasks-local.js';

let dir: string;
const here = new URL('.', import.meta.url).pathname;

const texts = {
  'a.txt': 'The quick brown fox\njumps over the lazy dog.\nThe dog sleeps; the fox runs!\n',
  'b.txt': 'A dog, a cat\r\nand a fox.\r\nNo newline at the end',
  'c.txt': '',
  'd.txt': 'naïve café: the fox again\n\n\nfox fox fox\n',
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cohort-mr-examples-'));
  for (const [name, text] of Object.entries(texts)) await writeFile(join(dir, name), text);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function read(files: string[]): Promise<string[]> {
  return Promise.all(files.map((f) => readFile(f, 'utf8')));
}

/** Runs the example through the real tasks with tiny splits and through the reference. */
async function both(example: string, params?: Record<string, string>, splitBytes = 16) {
  const job = await loadJob(join(here, example));
  const input = [join(dir, '*.txt')];
  const opts = params === undefined ? {} : { params };
  const engine = await runTasksInProcess(job, input, {
    outputDir: join(dir, `${example}-tasks-${splitBytes}`),
    splitBytes,
    ...opts,
  });
  const ref = await runSequential(job, input, { outputDir: join(dir, `${example}-seq`), ...opts });
  return { engine: await read(engine.files), ref: await read(ref.files) };
}

function lines(parts: string[]): string[] {
  return parts.join('').split('\n').filter(Boolean);
}

describe('examples/mapreduce', () => {
  it('word count: the tasks give the sequential output byte for byte, with correct counts', async () => {
    const { engine, ref } = await both('wordcount.ts');
    expect(engine).toEqual(ref);
    const counts = new Map(lines(ref).map((l) => l.split('\t') as [string, string]));
    expect(counts.get('fox')).toBe('7');
    expect(counts.get('the')).toBe('4');
    expect(counts.get('The')).toBe('2');
    expect(counts.get('na')).toBe('1'); // 'naïve' splits at the non-ASCII letter
    expect(counts.get('end')).toBe('1');
    // Whole files per split: mapBytes sees many lines at once (CRLF, UTF-8, no final newline).
    expect((await both('wordcount.ts', undefined, 1 << 20)).engine).toEqual(ref);
  });

  it('inverted index: the tasks give the sequential output byte for byte', async () => {
    const { engine, ref } = await both('inverted-index.ts');
    expect(engine).toEqual(ref);
    const index = new Map(
      lines(ref).map((l) => [l.split('\t')[0], l.split('\t').slice(1).join('\t')]),
    );
    expect(index.get('fox')).toBe('3 a.txt,b.txt,d.txt');
    expect(index.get('dog')).toBe('2 a.txt,b.txt');
    expect(index.get('cat')).toBe('1 b.txt');
  });

  it('grep: matching lines by file in input order, equal to the sequential output', async () => {
    const { engine, ref } = await both('grep.ts', { pattern: 'fox', flags: 'i' });
    expect(engine).toEqual(ref);
    expect(lines(ref)).toEqual([
      `${join(dir, 'a.txt')}\t0:The quick brown fox`,
      `${join(dir, 'a.txt')}\t45:The dog sleeps; the fox runs!`,
      `${join(dir, 'b.txt')}\t14:and a fox.`,
      `${join(dir, 'd.txt')}\t0:naïve café: the fox again`,
      `${join(dir, 'd.txt')}\t30:fox fox fox`,
    ]);
  });

  it('grep without a pattern fails with a clear error', async () => {
    const job = await loadJob(join(here, 'grep.ts'));
    const err: unknown = await runTasksInProcess(job, [join(dir, 'a.txt')], {
      outputDir: join(dir, 'grep-none'),
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'USER_CODE_ERROR' });
    expect((err as Error).message).toMatch(/needs a pattern/);
  });
});
