/**
 * `cohort mr cancel`: stops a running job (exit 0, the job's status says
 * cancelled); a job already over or unknown exits 1 with one error line.
 * The cluster is a one-node TLS cluster in this process without workers, so
 * a submitted job stays running until cancelled.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedCluster } from '../../src/cli/embedded-cluster.js';
import type { EmbeddedCluster } from '../../src/cli/embedded-cluster.js';
import { MapReduceClient, prepareJob } from '../../src/mapreduce/client.js';
import { repoDir, runCli } from '../harness/cli.js';
import { tempDir } from '../harness/tmp.js';

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
    const dir = tempDir('cohort-mrcancel-');
    mkdirSync(join(dir, 'in'));
    writeFileSync(join(dir, 'in', 'a.txt'), 'a b c\n');
    const prepared = await prepareJob({
      module: join(repoDir, 'examples/mapreduce/wordcount.ts'),
      inputs: [join(dir, 'in')],
      output: join(dir, 'out'),
    });
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
