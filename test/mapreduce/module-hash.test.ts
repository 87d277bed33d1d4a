/**
 * A job names its module by content (mapreduce/module-hash.ts): the leader
 * records the sha256 of the module's bytes at submit, and every worker checks
 * the file it is about to load against it before running any task. A module
 * that changed is never run: the tasks fail with MODULE_MISMATCH and so does
 * the job. On one in-process node with one worker thread.
 *
 * On the code before, the job record named no hash (each test's first
 * hash expectation fails), and a worker loaded an edited module afresh
 * (its cache key was the file's mtime and size) and ran it.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isCohortError } from '../../src/lib/errors.js';
import { MapReduceClient, prepareJob } from '../../src/mapreduce/client.js';
import { loadJob } from '../../src/mapreduce/job.js';
import { mapReduceModule } from '../../src/mapreduce/module.js';
import { KvTestCluster } from '../kv/kv-cluster.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('cohort-mr-hash-');
const jobs = join(dir, 'jobs');
mkdirSync(jobs);
const input = join(dir, 'in');
mkdirSync(input);
writeFileSync(join(input, 'a.txt'), 'x\ny\nx\n');
writeFileSync(join(input, 'b.txt'), 'y\nz\n');

/**
 * A job module whose first map call appends `tail` to its own file (the path
 * in params.self), as an edit between the submit and a later task would.
 */
function selfEditingJob(tail: string): string {
  return `import { appendFileSync, writeFileSync } from 'node:fs';
let edited = false;
export default {
  map(_offset, line, emit, ctx) {
    if (!edited && ctx.params.self !== undefined) {
      edited = true;
      appendFileSync(ctx.params.self, ${JSON.stringify(tail)});
    }
    emit(line, 1);
  },
  reduce(key, values, emit) {
    emit(key, values.length);
  },
};
`;
}

const sha256 = (path: string): string =>
  createHash('sha256').update(readFileSync(path)).digest('hex');

let cluster: KvTestCluster | undefined;
let client: MapReduceClient | undefined;
afterAll(async () => {
  await client?.close();
  await cluster?.close();
});

async function start(): Promise<MapReduceClient> {
  if (client !== undefined) return client;
  cluster = await KvTestCluster.start(1, {
    modules: [mapReduceModule({ workers: 1, leaseMs: 3_000, moduleDirs: [jobs] })],
  });
  const leader = await cluster.leader();
  client = await MapReduceClient.connect(
    [{ id: leader.config.id, rpc: leader.config.rpc }],
    'cohort-local',
  );
  return client;
}

async function failure(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    if (isCohortError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error('it succeeded');
}

describe('job modules named by content hash', () => {
  it('loadJob with the recorded hash: the right bytes load, other bytes are refused before they run', async () => {
    const file = join(jobs, 'load.mjs');
    const marker = join(dir, 'load-v2-ran');
    writeFileSync(file, selfEditingJob(''));
    const h1 = sha256(file);
    const job = await loadJob(file, { sha256: h1, where: 'in the test' });
    expect(typeof job.reduce).toBe('function');
    writeFileSync(
      file,
      `${selfEditingJob('')}\nwriteFileSync(${JSON.stringify(marker)}, 'v2 ran');\n`,
    );
    const f = await failure(loadJob(file, { sha256: h1, where: 'in the test', jobId: 'j1' }));
    expect(f.code).toBe('MODULE_MISMATCH');
    expect(f.message).toContain(`job module ${file} in the test has sha256 ${sha256(file)}`);
    expect(f.message).toContain(`job j1 was submitted with ${h1}`);
    expect(existsSync(marker)).toBe(false);
  });

  it('records the hash at submit; a module edited after the submit never runs on a node, and the job fails MODULE_MISMATCH', async () => {
    const mr = await start();
    const file = join(jobs, 'self-edit.mjs');
    const marker = join(dir, 'self-edit-v2-ran');
    // The edit appends a top-level statement: if the edited file were ever
    // imported, the marker would appear.
    writeFileSync(file, selfEditingJob(`\nwriteFileSync(${JSON.stringify(marker)}, 'v2 ran');\n`));
    const submitted = sha256(file);
    const prepared = await prepareJob({
      module: file,
      inputs: [join(input, '*.txt')],
      output: join(dir, 'out-self-edit'),
      reducers: 1,
      params: { self: file },
      options: { maxTaskFailures: 2, backupTasks: false },
    });
    expect(prepared.request.moduleSha256).toBe(submitted);
    const { jobId } = await mr.submit(prepared.request);
    const s = await mr.wait(jobId);
    expect(s.moduleSha256).toBe(submitted);
    expect(sha256(file)).not.toBe(submitted); // the first map did edit it
    expect(s.status).toBe('failed');
    expect(s.error).toContain('MODULE_MISMATCH');
    expect(s.error).toContain(`was submitted with ${submitted}`);
    expect(existsSync(marker)).toBe(false);
  });

  it('the leader refuses a submit whose module is not the file the client checked', async () => {
    const mr = await start();
    const file = join(jobs, 'edited-before-submit.mjs');
    writeFileSync(file, selfEditingJob(''));
    const prepared = await prepareJob({
      module: file,
      inputs: [join(input, '*.txt')],
      output: join(dir, 'out-edited'),
      reducers: 1,
    });
    writeFileSync(file, `${selfEditingJob('')}\n// edited\n`);
    const f = await failure(mr.submit(prepared.request));
    expect(f.code).toBe('MODULE_MISMATCH');
    expect(f.message).toContain('on the leader n1');
    // Nothing was recorded.
    const g = await failure(mr.status(prepared.request.jobId));
    expect(g.code).toBe('NOT_FOUND');
  });
});
