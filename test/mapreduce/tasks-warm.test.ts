import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { warmEngine } from '../../src/mapreduce/tasks-warm.js';

const warmDirs = async (): Promise<string[]> =>
  (await readdir(tmpdir())).filter((f) => f.startsWith('cohort-mr-warm-'));

describe('engine warm-up', () => {
  it('runs its built-in jobs through map and reduce tasks and leaves nothing on disk', async () => {
    const before = await warmDirs();
    await warmEngine();
    expect(await warmDirs()).toEqual(before);
  });
});
