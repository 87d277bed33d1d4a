/**
 * A one-node cohort cluster in this process, for `cohort mr run` when no
 * cluster answers (and for benchmarks): a Raft of one with the MapReduce
 * module and its worker threads, on two free loopback ports and a temp data
 * dir. `runJob` prepares, submits and waits for one job, on a given running
 * cluster or on an embedded one started and stopped around it. It starts a
 * whole node, so it lives with the CLI, above node/ (the MapReduce client,
 * src/mapreduce/client.ts, only calls nodes).
 *
 * ```ts
 * // A one-node cluster in this process, 2 worker threads (what bench/wordcount.ts uses):
 * const r = await runJob({ module: 'examples/mapreduce/wordcount.ts', inputs: ['corpus/*.txt'],
 *                          output: '/tmp/wc-out', reducers: 2, embedded: { workers: 2 } });
 * // Several jobs on one warm node (threads started, job compiled before the clock starts):
 * const c = await startEmbeddedCluster({ workers: 2, prewarm: true, preload: ['examples/mapreduce/wordcount.ts'] });
 * await runJob({ ..., cluster: c });  await c.close();
 * r.status.status;     // 'done' (runJob throws a CohortError if the job failed)
 * r.elapsedMs;         // submit to done (the embedded node's threads were started and
 *                      // loaded the job module before: cluster start, not timed)
 * ```
 *
 * Failure: when a job fails (a reducer threw on a key, say), the cluster
 * removes the output files its reducers already renamed into place (and the
 * directory, if the submitter created it), and runJob waits for that, so a
 * failed job leaves no partial output.
 */
import { createServer } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { CohortError } from '../lib/errors.js';
import { MapReduceClient, prepareJob } from '../mapreduce/client.js';
import type { JobRequest } from '../mapreduce/client.js';
import type { JobStatus } from '../mapreduce/core/types.js';
import { mapReduceModule } from '../mapreduce/module.js';
import type { MapReduceModuleOptions } from '../mapreduce/module.js';
import type { ClusterNode } from '../node/cluster.js';
import { resolveNodeConfig } from '../node/config.js';
import { startNode } from '../node/node.js';
import type { CohortNode } from '../node/node.js';
import { CertDir } from '../trust/cert-dir.js';
import type { ClientTlsOptions } from '../trust/client-tls.js';
import type { CredentialFiles } from '../trust/credentials.js';

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A one-node cluster in this process (see {@link startEmbeddedCluster}). */
export interface EmbeddedCluster {
  readonly node: CohortNode;
  readonly nodes: ClusterNode[];
  readonly clusterId: string;
  /** The client credentials (the CA and the root user's certificate); absent when `insecure`. */
  readonly tls?: CredentialFiles;
  /** Stops the node and removes its data dir (unless one was given). */
  close(): Promise<void>;
}

/** Options of {@link startEmbeddedCluster}. */
export interface EmbeddedOptions extends MapReduceModuleOptions {
  /** Data dir (default: a fresh temp dir, removed at close). */
  readonly dataDir?: string;
  /** Job modules every worker thread loads before the cluster is handed out (benchmarks). */
  readonly preload?: readonly string[];
  readonly logger?: Logger;
  /**
   * Run without TLS. By default the node runs over mutual TLS like any
   * other, with a CA and certificates made under `<dataDir>/certs`.
   */
  readonly insecure?: boolean;
}

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      server.close(() => ok(port));
    });
  });
}

/** Starts a one-node cluster (Raft of one, MapReduce workers) in this process; waits until it leads. */
export async function startEmbeddedCluster(
  options: EmbeddedOptions = {},
): Promise<EmbeddedCluster> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'cohort-mr-')));
  const clusterId = 'cohort-mr-embedded';
  const raftPort = await freePort();
  // A closed probe's port is free again: the second probe may offer the first one.
  let rpcPort = await freePort();
  while (rpcPort === raftPort) rpcPort = await freePort();
  let tls: CredentialFiles | undefined;
  let nodeTls: Record<string, string> = { insecure: 'true' };
  if (options.insecure !== true) {
    const certs = new CertDir(join(dataDir, 'certs'));
    await certs.ensure({ clusterId, nodes: ['n1'], users: ['root'] });
    const node = certs.files({ kind: 'node', id: 'n1' });
    tls = certs.files({ kind: 'user', name: 'root' });
    nodeTls = { tlsCa: node.ca, tlsCert: node.cert, tlsKey: node.key };
  }
  const config = resolveNodeConfig({
    flags: {
      id: 'n1',
      clusterId,
      dataDir,
      listen: `127.0.0.1:${raftPort}`,
      rpc: `127.0.0.1:${rpcPort}`,
      tickMs: '10',
      logLevel: 'warn',
      ...nodeTls,
    },
    env: {},
  });
  const logger = options.logger ?? pino({ level: 'error' }, pino.destination(2));
  const { dataDir: _d, logger: _l, preload, insecure: _i, ...moduleOptions } = options;
  void _d;
  void _l;
  void _i;
  const mr = mapReduceModule(moduleOptions);
  const node = await startNode(config, { logger, modules: [mr] });
  const deadline = Date.now() + 10_000;
  while (!node.raft.isLeader()) {
    if (Date.now() > deadline) {
      await node.close();
      throw new CohortError('UNAVAILABLE', 'the embedded node did not become leader');
    }
    await sleep(10);
  }
  try {
    for (const module of preload ?? []) await mr.running?.preload(resolve(module));
  } catch (err) {
    await node.close();
    if (options.dataDir === undefined) await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    node,
    clusterId,
    nodes: [{ id: 'n1', listen: config.listen, rpc: config.rpc, dataDir }],
    ...(tls === undefined ? {} : { tls }),
    close: async () => {
      await node.close();
      if (options.dataDir === undefined) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Options of {@link runJob}. */
export interface RunJobOptions extends JobRequest {
  /**
   * A running cluster to submit to (with `tls`, the client credentials of a
   * TLS cluster: paths or PEM; a `cohort up` cluster's are in its
   * cluster.json, see readClusterFile); without it, an embedded one-node
   * cluster is started.
   */
  readonly cluster?: {
    readonly nodes: readonly ClusterNode[];
    readonly clusterId: string;
    readonly tls?: ClientTlsOptions;
  };
  /** Options of the embedded cluster (workers, leaseMs, ...). */
  readonly embedded?: EmbeddedOptions;
  /** Sees every status read while the job runs. */
  readonly onProgress?: (s: JobStatus, elapsedMs: number) => void;
}

/** What {@link runJob} returns. */
export interface JobRun {
  readonly status: JobStatus;
  /** Milliseconds from submit to the final status. */
  readonly elapsedMs: number;
}

/**
 * Prepares, submits and waits for one job (see the file comment). Throws the
 * preparation's CohortError, or USER_CODE_ERROR/FAILED_PRECONDITION carrying
 * the job's error if it failed or was cancelled (its output removed).
 */
export async function runJob(options: RunJobOptions): Promise<JobRun> {
  const prepared = await prepareJob(options);
  // An embedded cluster exists for this one job: like a running cluster's
  // nodes (or Dask's LocalCluster workers) its worker threads are up before the
  // job is submitted, and they load the job module while the cluster starts,
  // so the job's first tasks do not wait for thread start-up and compiling.
  const embedded =
    options.cluster === undefined
      ? await startEmbeddedCluster({
          prewarm: true,
          ...options.embedded,
          preload: [...(options.embedded?.preload ?? []), prepared.request.module],
        })
      : undefined;
  const target = options.cluster ?? embedded;
  if (target === undefined) throw new CohortError('INTERNAL', 'no cluster to run the job on');
  const client = await MapReduceClient.connect(target.nodes, target.clusterId, target.tls);
  try {
    const t0 = Date.now();
    await client.submit(prepared.request);
    const status = await client.wait(prepared.request.jobId, (s) =>
      options.onProgress?.(s, Date.now() - t0),
    );
    const elapsedMs = Date.now() - t0;
    if (status.status !== 'done') {
      // The cluster removes a failed job's output; wait for it (the embedded node stops next).
      await client.waitOutputRemoved(status.jobId);
      throw new CohortError(
        status.status === 'failed' ? 'USER_CODE_ERROR' : 'FAILED_PRECONDITION',
        `job ${status.jobId} ${status.status}: ${status.error ?? 'no reason given'}`,
        { details: { jobId: status.jobId, status: status.status } },
      );
    }
    return { status, elapsedMs };
  } finally {
    await client.close();
    await embedded?.close();
  }
}
