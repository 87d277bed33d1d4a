/**
 * Running MapReduce jobs from a program or the CLI: check and plan a job
 * locally (the module exports map and reduce, the input exists, the output
 * directory is writable and holds no earlier output), submit it to a running
 * cluster (any node: followers forward to the leader), follow its progress,
 * and, when no cluster runs, start a one-node embedded one in this process.
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
 *
 * // Against a running cluster (cohort up):
 * const client = await MapReduceClient.connect(readClusterFile('.cohort').nodes, 'cohort-local');
 * const submitted = await client.submit(await prepareJob({ module, inputs, output }));
 * const final = await client.wait(submitted.jobId, (s) => console.log(progressLine(s, t0)));
 * await client.close();
 * ```
 *
 * Failure: when a job fails (a reducer threw on a key, say), the output files
 * its reducers already renamed into place are removed (and the directory,
 * if the job created it), so a failed job leaves no partial output.
 */
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { CohortError, isCohortError } from '../lib/errors.js';
import type { ClusterNode } from '../node/cluster.js';
import { resolveNodeConfig } from '../node/config.js';
import { startNode } from '../node/node.js';
import type { CohortNode } from '../node/node.js';
import type { RpcNode } from '../rpc/node.js';
import type { Client } from '../rpc/service.js';
import { startTcpClient } from '../rpc/tcp-endpoints.js';
import type { JobOptions, JobStatus, TaskInfo } from './core/types.js';
import { expandInputs, planSplits } from './input.js';
import { loadJob } from './job.js';
import { mapReduceModule } from './module.js';
import type { MapReduceModuleOptions } from './module.js';
import { MapReduceService } from './service.js';
import type { SubmitRequest } from './service.js';

/** What to run. Paths are relative to `cwd` (default: the working directory). */
export interface JobRequest {
  /** The job module (TypeScript or JavaScript). */
  readonly module: string;
  /** Input files, directories or globs. */
  readonly inputs: readonly string[];
  /** Output directory (created if missing; must not hold earlier output). */
  readonly output: string;
  /** Reducers (default: the job's defaults.reducers). */
  readonly reducers?: number;
  /** Split size in bytes (default: the job's defaults.splitBytes). */
  readonly splitBytes?: number;
  readonly params?: Readonly<Record<string, string>>;
  readonly options?: JobOptions;
  /** A name for people (default: the module's file name). */
  readonly name?: string;
  readonly cwd?: string;
}

/** A prepared job: the submit request plus what the client needs to clean up after a failure. */
export interface PreparedJob {
  readonly request: SubmitRequest;
  /** True if prepareJob created the output directory. */
  readonly createdOutput: boolean;
}

/** {@link MapReduceClient.wait}'s poll interval once only reduces are left (ms). */
const WAIT_NEAR_END_POLL_MS = 20;

const FINAL: ReadonlySet<string> = new Set(['done', 'failed', 'cancelled']);

/** True once a job is done, failed or cancelled. */
export function isFinished(status: JobStatus): boolean {
  return FINAL.has(status.status);
}

/**
 * Checks a job before submitting it and plans its splits: NOT_FOUND (no job
 * module, no input), INVALID_ARGUMENT (no map/reduce export, bad reducers),
 * USER_CODE_ERROR (the module threw on load), PERMISSION_DENIED (output not
 * writable), ALREADY_EXISTS (output holds part files).
 */
export async function prepareJob(req: JobRequest): Promise<PreparedJob> {
  const cwd = req.cwd ?? process.cwd();
  const module = resolve(cwd, req.module);
  const job = await loadJob(module);
  const reducers = req.reducers ?? job.defaults.reducers;
  if (!Number.isInteger(reducers) || reducers < 1) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      `reducers must be a positive integer, got ${reducers}`,
    );
  }
  const files = await expandInputs(req.inputs, cwd);
  const splits = await planSplits(files, req.splitBytes ?? job.defaults.splitBytes);
  const output = resolve(cwd, req.output);
  const createdOutput = checkOutputDir(output);
  const options: JobOptions = {
    ...(job.defaults.skipBadRecords ? { skipBadRecords: true } : {}),
    ...req.options,
  };
  const name = req.name ?? basename(module).replace(/\.[cm]?[jt]sx?$/, '');
  const stem = name.replace(/[^A-Za-z0-9._-]/g, '').slice(0, 32) || 'job';
  return {
    createdOutput,
    request: {
      jobId: `${stem}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`,
      name,
      module,
      splits: splits.map((s) => ({ file: s.file, start: s.start, end: s.end })),
      reducers,
      output,
      ...(req.params === undefined ? {} : { params: { ...req.params } }),
      ...(Object.keys(options).length === 0 ? {} : { options }),
    },
  };
}

/** Creates the output directory if needed and checks it is writable and free of part files. */
function checkOutputDir(output: string): boolean {
  let created = false;
  if (!existsSync(output)) {
    try {
      mkdirSync(output, { recursive: true });
      created = true;
    } catch (e) {
      throw new CohortError(
        'PERMISSION_DENIED',
        `output directory ${output} cannot be created: ${(e as Error).message}`,
        { details: { output } },
      );
    }
  } else if (!statSync(output).isDirectory()) {
    throw new CohortError('INVALID_ARGUMENT', `output ${output} is not a directory`, {
      details: { output },
    });
  }
  const existing = readdirSync(output).filter((f) => f.startsWith('part-r-'));
  if (existing.length > 0) {
    throw new CohortError(
      'ALREADY_EXISTS',
      `output directory ${output} already holds job output (${existing[0]}, ...); remove it or choose another`,
      { details: { output } },
    );
  }
  const probe = join(output, `.cohort-probe-${process.pid}`);
  try {
    writeFileSync(probe, '');
    rmSync(probe);
  } catch (e) {
    if (created) rmdirSync(output);
    throw new CohortError(
      'PERMISSION_DENIED',
      `output directory ${output} is not writable: ${(e as Error).message}`,
      { details: { output } },
    );
  }
  return created;
}

/** Removes what a failed job left in its output directory (part files, temp files). */
export function removeOutput(prepared: PreparedJob): void {
  const out = prepared.request.output;
  if (!existsSync(out)) return;
  for (const f of readdirSync(out)) {
    if (f.startsWith('part-r-') || f.startsWith('.part-r-')) rmSync(join(out, f), { force: true });
  }
  if (prepared.createdOutput && readdirSync(out).length === 0) rmdirSync(out);
}

/** One line of progress: maps, reduces, input MB/s, re-executions. */
export function progressLine(s: JobStatus, elapsedMs: number): string {
  const p = s.progress;
  const mbps = s.counters.mapInputBytes / 1e6 / Math.max(elapsedMs / 1000, 1e-3);
  return (
    `${s.jobId} ${s.status} · maps ${p.mapsDone}/${p.maps} · reduces ${p.reducesDone}/${p.reduces}` +
    ` · ${mbps.toFixed(1)} MB/s · re-executions ${s.counters.reExecutions}` +
    ` · ${(elapsedMs / 1000).toFixed(1)} s`
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Calls the MapReduce service on the nodes of a cluster, moving on from nodes that do not answer. */
export class MapReduceClient {
  private current = 0;

  private constructor(
    private readonly nodes: readonly {
      id: string;
      rpc: RpcNode;
      stub: Client<typeof MapReduceService>;
    }[],
  ) {}

  /** Opens a dial-only client per node (connections are made on first use). */
  static async connect(nodes: readonly ClusterNode[], clusterId: string): Promise<MapReduceClient> {
    const out: { id: string; rpc: RpcNode; stub: Client<typeof MapReduceService> }[] = [];
    for (const n of nodes) {
      const rpc = await startTcpClient({
        server: { id: n.id, host: n.rpc.host, port: n.rpc.port },
        clusterId,
      });
      out.push({ id: n.id, rpc, stub: rpc.client(MapReduceService, rpc.serverId) });
    }
    if (out.length === 0) throw new CohortError('INVALID_ARGUMENT', 'no nodes to connect to');
    return new MapReduceClient(out);
  }

  /**
   * Calls `fn` on one node after another until one answers; retries
   * transient refusals (no leader yet, a node down) for `patienceMs`.
   */
  async call<T>(
    fn: (stub: Client<typeof MapReduceService>) => Promise<T>,
    patienceMs = 20_000,
  ): Promise<T> {
    const deadline = Date.now() + patienceMs;
    let last: unknown;
    for (;;) {
      const n = this.nodes[this.current % this.nodes.length];
      if (n === undefined) throw new CohortError('INVALID_ARGUMENT', 'no nodes');
      try {
        return await fn(n.stub);
      } catch (e) {
        last = e;
        const code = isCohortError(e) ? e.code : '';
        const transient = [
          'UNAVAILABLE',
          'NOT_LEADER',
          'TIMEOUT',
          'CONNECTION_LOST',
          'CLOSED',
          'OVERLOADED',
          'CANCELLED',
        ].includes(code);
        if (!transient) throw e;
        this.current++;
        if (Date.now() > deadline) break;
        await sleep(100);
      }
    }
    throw last instanceof Error ? last : new CohortError('UNAVAILABLE', String(last));
  }

  /** Submits a prepared job. */
  submit(request: SubmitRequest): Promise<{ jobId: string; maps: number; reducers: number }> {
    return this.call((s) => s.submit(request, { timeoutMs: 10_000 }));
  }

  /** A job's status (NOT_FOUND if no node knows it). */
  status(jobId: string): Promise<JobStatus> {
    return this.call((s) => s.status({ jobId }, { timeoutMs: 2_000 }));
  }

  /** Every task of a job (state, attempts, map output node), as the answering node knows it. */
  async tasks(jobId: string): Promise<TaskInfo[]> {
    return (await this.call((s) => s.tasks({ jobId }, { timeoutMs: 2_000 }))).tasks;
  }

  /** Every kept job. */
  async list(): Promise<JobStatus[]> {
    return (await this.call((s) => s.list({}, { timeoutMs: 2_000 }))).jobs;
  }

  /** Waits until the job is done, failed or cancelled; `onProgress` sees every status read. */
  async wait(jobId: string, onProgress?: (s: JobStatus) => void, pollMs = 200): Promise<JobStatus> {
    let missing = 0;
    for (;;) {
      let s: JobStatus;
      try {
        s = await this.status(jobId);
      } catch (e) {
        // A lagging follower may not have applied the submit yet.
        if (isCohortError(e) && e.code === 'NOT_FOUND' && missing++ < 50) {
          this.current++;
          await sleep(pollMs);
          continue;
        }
        throw e;
      }
      onProgress?.(s);
      if (isFinished(s)) return s;
      // Once every map is done the job is often a few reduces from its end:
      // poll faster there, so the wait does not add most of a poll to the job.
      const p = s.progress;
      const nearEnd = p.mapsDone === p.maps && p.reducesDone + p.reducesRunning === p.reduces;
      await sleep(nearEnd ? Math.min(pollMs, WAIT_NEAR_END_POLL_MS) : pollMs);
    }
  }

  /** Closes the connections. */
  async close(): Promise<void> {
    await Promise.allSettled(this.nodes.map((n) => n.rpc.close()));
  }
}

/** A one-node cluster in this process (see {@link startEmbeddedCluster}). */
export interface EmbeddedCluster {
  readonly node: CohortNode;
  readonly nodes: ClusterNode[];
  readonly clusterId: string;
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
  const config = resolveNodeConfig({
    flags: {
      id: 'n1',
      clusterId,
      dataDir,
      listen: `127.0.0.1:${raftPort}`,
      rpc: `127.0.0.1:${rpcPort}`,
      tickMs: '10',
      logLevel: 'warn',
    },
    env: {},
  });
  const logger = options.logger ?? pino({ level: 'error' }, pino.destination(2));
  const { dataDir: _d, logger: _l, preload, ...moduleOptions } = options;
  void _d;
  void _l;
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
    close: async () => {
      await node.close();
      if (options.dataDir === undefined) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Options of {@link runJob}. */
export interface RunJobOptions extends JobRequest {
  /** A running cluster to submit to; without it, an embedded one-node cluster is started. */
  readonly cluster?: { readonly nodes: readonly ClusterNode[]; readonly clusterId: string };
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
  const client = await MapReduceClient.connect(target.nodes, target.clusterId);
  try {
    const t0 = Date.now();
    await client.submit(prepared.request);
    const status = await client.wait(prepared.request.jobId, (s) =>
      options.onProgress?.(s, Date.now() - t0),
    );
    const elapsedMs = Date.now() - t0;
    if (status.status !== 'done') {
      removeOutput(prepared);
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
