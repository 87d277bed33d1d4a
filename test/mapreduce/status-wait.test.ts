/**
 * The job status long poll (`status` with `waitMs`, MapReduceClient.statusChange
 * and wait): the answer comes once the job changes on the answering node's
 * replica (here: it is cancelled), not at once; an unchanged job is answered
 * when the wait runs out; an unknown job is NOT_FOUND at once. The cluster is
 * a one-node cluster in this process without workers, so a submitted job
 * stays as it is until cancelled.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedCluster } from '../../src/cli/embedded-cluster.js';
import type { EmbeddedCluster } from '../../src/cli/embedded-cluster.js';
import { isCohortError } from '../../src/lib/errors.js';
import { MapReduceClient } from '../../src/mapreduce/client.js';
import type { JobStatus } from '../../src/mapreduce/core/types.js';
import { tinyWordCount } from '../harness/mr-jobs.js';

let cluster: EmbeddedCluster;
let client: MapReduceClient;

beforeAll(async () => {
  cluster = await startEmbeddedCluster({ workers: 0, insecure: true });
  client = await MapReduceClient.connect(cluster.nodes, cluster.clusterId);
});
afterAll(async () => {
  await client.close();
  await cluster.close();
});

async function submitIdleJob(name: string): Promise<string> {
  const prepared = await tinyWordCount(`cohort-mrwait-${name}-`);
  return (await client.submit(prepared.request)).jobId;
}

function cancel(jobId: string): Promise<unknown> {
  return client.call((s) => s.cancel({ jobId, reason: 'test' }));
}

describe('job status long poll', () => {
  it('answers once the job changes, with the changed status', async () => {
    const jobId = await submitIdleJob('change');
    const before = await client.status(jobId);
    expect(['submitted', 'mapping']).toContain(before.status);
    // Held on the node until the job changes (a minute at most, capped by the node).
    const held = client.statusChange(jobId, 60_000);
    let answered: JobStatus | undefined;
    void held.then((s) => (answered = s));
    // The job has not changed yet: the call is still held after the cancel's round trip
    // to the same node (a status answered at once would have arrived before it).
    await client.status(jobId);
    expect(answered).toBeUndefined();
    await cancel(jobId);
    expect((await held).status).toBe('cancelled');
  });

  it('wait() returns the final status of a job cancelled while it waits', async () => {
    const jobId = await submitIdleJob('wait');
    const seen: string[] = [];
    const waiting = client.wait(jobId, (s) => seen.push(s.status));
    await client.status(jobId);
    await cancel(jobId);
    const s = await waiting;
    expect(s.status).toBe('cancelled');
    expect(seen.at(-1)).toBe('cancelled');
  });

  it('answers an unchanged job when the wait runs out, a finished job and an unknown one at once', async () => {
    const jobId = await submitIdleJob('same');
    const before = await client.status(jobId);
    expect(await client.statusChange(jobId, 50)).toEqual(before);
    await cancel(jobId);
    expect((await client.statusChange(jobId, 60_000)).status).toBe('cancelled');
    expect(
      await client.statusChange('no-such-job', 60_000).then(
        () => 'answered',
        (e: unknown) => (isCohortError(e) ? e.code : String(e)),
      ),
    ).toBe('NOT_FOUND');
  });
});
