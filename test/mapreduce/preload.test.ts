/**
 * A job module preloaded into an embedded cluster's worker threads
 * (`startEmbeddedCluster({ preload })`) is not imported again by the job's
 * tasks: the preload loads it under its content hash, as the tasks do, so a
 * benchmark's timed job does not compile it (it did, once per thread).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runJob, startEmbeddedCluster } from '../../src/cli/embedded-cluster.js';
import { tempDir } from '../harness/tmp.js';

const fixture = fileURLToPath(new URL('./fixtures/load-count-job.ts', import.meta.url));

describe('preloading a job module', () => {
  it('the job run after the preload imports the module no more', async () => {
    const dir = tempDir('cohort-mr-preload-');
    const loads = join(dir, 'loads.txt');
    writeFileSync(loads, '');
    mkdirSync(join(dir, 'in'));
    writeFileSync(join(dir, 'in', 'a.txt'), 'a b a\nc a\n');
    // Imports in worker threads (the submitter checks the module in the main thread too).
    const count = (): number =>
      readFileSync(loads, 'utf8')
        .split('\n')
        .filter((t) => t !== '' && t !== '0').length;
    // Worker threads take a copy of the environment when they start.
    process.env['COHORT_TEST_LOADS_FILE'] = loads;
    const cluster = await startEmbeddedCluster({ workers: 1, preload: [fixture] });
    try {
      expect(count()).toBe(1); // the preload, in the one worker thread
      const r = await runJob({
        module: fixture,
        inputs: [join(dir, 'in')],
        output: join(dir, 'out'),
        reducers: 1,
        cluster,
      });
      expect(r.status.status).toBe('done');
      expect(readFileSync(join(dir, 'out', 'part-r-00000'), 'utf8')).toBe('a\t3\nb\t1\nc\t1\n');
      expect(count()).toBe(1);
    } finally {
      delete process.env['COHORT_TEST_LOADS_FILE'];
      await cluster.close();
    }
  });
});
