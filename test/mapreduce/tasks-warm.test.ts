import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { keyDictionaryStats } from '../../src/mapreduce/tasks.js';
import { warmEngine } from '../../src/mapreduce/tasks-warm.js';
import { tempDir } from '../harness/tmp.js';

describe('engine warm-up', () => {
  it("runs its built-in jobs through map and reduce tasks and leaves nothing on disk, nor keys in the thread's dictionary", async () => {
    // A temp dir of this test's own (os.tmpdir() reads TMPDIR; each test file is a process of
    // its own): the shared /tmp may hold other processes' warm-up dirs coming and going.
    const own = tempDir('cohort-warm-test-');
    const saved = process.env['TMPDIR'];
    process.env['TMPDIR'] = own;
    try {
      expect(tmpdir()).toBe(own);
      await warmEngine();
      expect(await readdir(own)).toEqual([]);
      // Its made-up keys are not left in the thread's byte dictionary for the jobs that follow.
      expect(keyDictionaryStats().keys).toBe(0);
    } finally {
      if (saved === undefined) delete process.env['TMPDIR'];
      else process.env['TMPDIR'] = saved;
    }
  });
});
