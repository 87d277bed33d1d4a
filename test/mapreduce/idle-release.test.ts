/**
 * A worker thread keeps buffers between tasks (value arenas up to
 * limits.mrValueArenaKeptBytesMax, its read buffer) for its next task; once
 * its slot has been idle for `idleReleaseMs`, the pool asks it to give them
 * back (worker-thread.ts `release`), so an idle node does not hold them.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { ThreadMapTask } from '../../src/mapreduce/worker-thread.js';
import { WorkerPool } from '../../src/mapreduce/worker-pool.js';
import { waitUntil } from '../harness/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'cohort-mr-idle-'));
// A job with no fold and no combiner: its map task's values go through a value arena.
const behave = fileURLToPath(new URL('./fixtures/behave-job.ts', import.meta.url));
const input = join(dir, 'in.txt');
const text = Array.from({ length: 2000 }, (_, i) => `w${i % 300}`).join('\n') + '\n';
writeFileSync(input, text);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function mapTask(id: string): ThreadMapTask {
  return {
    kind: 'map',
    module: behave,
    split: { file: input, start: 0, end: Buffer.byteLength(text) },
    reducers: 2,
    dir: join(dir, 'maps'),
    taskId: id,
    attempt: 1,
    params: { behave: 'ok' },
    skipBadRecords: false,
    skipOffsets: [],
  };
}

describe('an idle worker thread', () => {
  it('keeps its buffers between tasks, and gives them back once its slot has been idle for idleReleaseMs', async () => {
    const keeping = new WorkerPool({ size: 1, stallMs: 10_000, idleReleaseMs: 3_600_000 });
    const idle = new WorkerPool({ size: 1, stallMs: 10_000, idleReleaseMs: 20 });
    try {
      // Not idle long enough: the buffers are still there for the next task.
      await keeping.slot(0).run(mapTask('m-0'));
      expect(keeping.slot(0).idleReleases).toBe(0);
      expect(await keeping.slot(0).run({ kind: 'release' })).toBeGreaterThan(0);

      await idle.slot(0).run(mapTask('m-1'));
      await waitUntil('the idle release', () => idle.slot(0).idleReleases === 1);
      // Nothing left to give back, and no release again without a task in between.
      expect(await idle.slot(0).run({ kind: 'release' })).toBe(0);
      await new Promise((r) => setTimeout(r, 100));
      expect(idle.slot(0).idleReleases).toBe(1);
      // A new task keeps buffers again, and they go once the slot is idle again.
      await idle.slot(0).run(mapTask('m-2'));
      await waitUntil('the second idle release', () => idle.slot(0).idleReleases === 2);
    } finally {
      await keeping.close();
      await idle.close();
    }
  });
});
