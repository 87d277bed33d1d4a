/**
 * A worker thread refuses V8 and per-process flags in its execArgv
 * (ERR_WORKER_INVALID_EXEC_ARGV): a node started as `node
 * --max-old-space-size=8192 ...` must still run MapReduce tasks. Its own
 * file: the pool learns the threads' flags once per module instance.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { MapTaskResult } from '../../src/mapreduce/tasks.js';
import { WorkerPool } from '../../src/mapreduce/worker-pool.js';

const dir = mkdtempSync(join(tmpdir(), 'cohort-mr-flags-'));
const behave = fileURLToPath(new URL('./fixtures/behave-job.ts', import.meta.url));
const input = join(dir, 'in.txt');
writeFileSync(input, 'a\nb\na\n');
const flags = ['--max-old-space-size=512', '--stack-trace-limit=20'];
process.execArgv.push(...flags);
afterAll(() => {
  for (const f of flags) process.execArgv.splice(process.execArgv.indexOf(f), 1);
  rmSync(dir, { recursive: true, force: true });
});

describe('WorkerPool and the process flags', () => {
  it('starts its threads without the flags a worker refuses (V8 options), and runs tasks', async () => {
    const pool = new WorkerPool({ size: 1, stallMs: 5_000 });
    try {
      const r = (await pool.slot(0).run({
        kind: 'map',
        module: behave,
        split: { file: input, start: 0, end: 6 },
        reducers: 1,
        dir: join(dir, 'maps'),
        taskId: 'm-0',
        attempt: 1,
        params: { behave: 'ok' },
        skipBadRecords: false,
        skipOffsets: [],
        progress: new Float64Array(new SharedArrayBuffer(16)),
      })) as MapTaskResult;
      expect(r.counters.recordsIn).toBe(3);
    } finally {
      await pool.close();
    }
  });
});
