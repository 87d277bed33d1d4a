/**
 * A worker thread of bench/wordcount.ts's "tasks only" line: runs the real
 * map and reduce task functions (src/mapreduce/tasks.ts) on the splits and
 * partitions it pulls from shared counters, with no coordinator, RPC or
 * shuffle. Started by the bench through tsx's API (see startTsWorker there).
 *
 * Protocol (parentPort): parent sends `{ phase: 'map' }`, the thread maps
 * splits until the counter runs out and answers `{ done: 'map', results }`;
 * then `{ phase: 'reduce', runs }` (runs[p] = run paths of partition p, in
 * split order), answered by `{ done: 'reduce' }`. `{ ready: true }` is sent once
 * the job module is loaded, so loading is not timed.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { join } from 'node:path';
import { loadJob } from '../src/mapreduce/job.js';
import type { Split } from '../src/mapreduce/input.js';
import { partFileName } from '../src/mapreduce/format.js';
import type { MapTaskResult } from '../src/mapreduce/tasks.js';
import { runMapTask, runReduceTask } from '../src/mapreduce/tasks.js';

interface Data {
  jobPath: string;
  splits: Split[];
  reducers: number;
  workDir: string;
  outDir: string;
  /** [0] = next split, [1] = next partition. */
  counters: SharedArrayBuffer;
}

const data = workerData as Data;
const next = new Int32Array(data.counters);
const port = parentPort;
if (port === null) throw new Error('wordcount-worker runs in a worker thread');

const job = await loadJob(data.jobPath);
port.postMessage({ ready: true });

port.on('message', (msg: { phase: 'map' } | { phase: 'reduce'; runs: string[][] }) => {
  void (async () => {
    if (msg.phase === 'map') {
      const results: MapTaskResult[] = [];
      for (;;) {
        const i = Atomics.add(next, 0, 1);
        const split = data.splits[i];
        if (split === undefined) break;
        results.push(
          await runMapTask({
            job,
            split,
            reducers: data.reducers,
            dir: data.workDir,
            taskId: `m-${i}`,
            attempt: 0,
          }),
        );
      }
      port.postMessage({ done: 'map', results });
    } else {
      for (;;) {
        const p = Atomics.add(next, 1, 1);
        if (p >= data.reducers) break;
        await runReduceTask({
          job,
          partition: p,
          runs: msg.runs[p] ?? [],
          output: join(data.outDir, partFileName(p)),
          taskId: `r-${p}`,
          attempt: 0,
        });
      }
      port.postMessage({ done: 'reduce' });
    }
  })().catch((err: unknown) => {
    port.postMessage({ error: err instanceof Error ? err.message : String(err) });
  });
});
