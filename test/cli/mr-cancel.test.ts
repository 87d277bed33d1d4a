/**
 * `cohort mr cancel`: stops a running job (exit 0, the job's status says
 * cancelled); a job already over or unknown exits 1 with one error line.
 * The cluster is a one-node TLS cluster in this process without workers, so
 * a submitted job stays running until cancelled.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedCluster } from '../../src/cli/embedded-cluster.js';
import type { EmbeddedCluster } from '../../src/cli/embedded-cluster.js';
import { MapReduceClient } from '../../src/mapreduce/client.js';
import { runCli } from '../harness/cli.js';
import { tinyWordCount } from '../harness/mr-jobs.js';

let cluster: EmbeddedCluster;
let client: MapReduceClient;
let env: Record<string, string>;

beforeAll(async () => {
  cluster = await startEmbeddedCluster({ workers: 0 });
  // Secure by default: the CLI reaches it over mTLS with the root user's certificate.
  const tls = cluster.tls;
  if (tls === undefined) throw new Error('the embedded cluster runs without TLS');
  client = await MapReduceClient.connect(cluster.nodes, cluster.clusterId, tls);
  env = {
    COHORT_ENDPOINTS: cluster.nodes.map((n) => `${n.id}=${n.rpc.host}:${n.rpc.port}`).join(','),
    COHORT_CLUSTER_ID: cluster.clusterId,
    COHORT_TLS_CA: tls.ca,
    COHORT_TLS_CERT: tls.cert,
    COHORT_TLS_KEY: tls.key,
  };
});
afterAll(async () => {
  await client.close();
  await cluster.close();
});

describe('cohort mr cancel', () => {
  it('cancels a running job; a second cancel and an unknown job exit 1', async () => {
    const prepared = await tinyWordCount('cohort-mrcancel-');
    const { jobId } = await client.submit(prepared.request);
    expect((await client.status(jobId)).status).not.toBe('cancelled');

    const r = await runCli(['mr', 'cancel', jobId, '--reason', 'test'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^job ${jobId} cancelled`));
    expect((await client.status(jobId)).status).toBe('cancelled');

    const again = await runCli(['mr', 'cancel', jobId], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^error: FAILED_PRECONDITION: job .* is already cancelled/);
    const unknown = await runCli(['mr', 'cancel', 'no-such-job'], env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^error: NOT_FOUND: /);
  });
});
