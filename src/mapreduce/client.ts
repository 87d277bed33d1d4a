/**
 * Running MapReduce jobs from a program or the CLI: check and plan a job
 * locally (the module exports map and reduce, the input exists, the output
 * directory is writable and holds no earlier output), submit it to a running
 * cluster (any node: followers forward to the leader) and follow its
 * progress. Starting a one-node cluster in this process when none runs
 * (`runJob`, `startEmbeddedCluster`) is the CLI's: src/cli/embedded-cluster.ts.
 *
 * ```ts
 * // Against a running cluster (cohort up):
 * const client = await MapReduceClient.connect(readClusterFile('.cohort').nodes, 'cohort-local');
 * const submitted = await client.submit(await prepareJob({ module, inputs, output }));
 * const final = await client.wait(submitted.jobId, (s) => console.log(progressLine(s, t0)));
 * await client.close();
 * ```
 *
 * Failure: when a job fails (a reducer threw on a key, say), the cluster's
 * leader removes the output files its reducers already renamed into place
 * (and the directory, if the submitter created it), so a failed job leaves
 * no partial output, even when the submitter is gone;
 * {@link MapReduceClient.waitOutputRemoved} waits for that.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { makeDirs } from '../lib/dirs.js';
import { CohortError, isCohortError } from '../lib/errors.js';
import type { RpcNode } from '../rpc/node.js';
import type { Client } from '../rpc/service.js';
import { startTcpClient } from '../rpc/tcp-endpoints.js';
import { resolveUserTls } from '../trust/client-tls.js';
import type { ClientTlsOptions } from '../trust/client-tls.js';
import { readClusterFile } from '../trust/cluster-file.js';
import type { PeerAddress } from '../transport/tcp-transport.js';
import type { JobOptions, JobStatus, TaskInfo } from './core/types.js';
import { expandInputs, planSplits } from './input.js';
import { isJobOutputFile } from './output-files.js';
import { loadJob } from './job.js';
import { moduleSha256 as moduleSha256Of } from './module-hash.js';
import { MapReduceService } from './service.js';
import type { SubmitRequest } from './service.js';

/** A node to call: its id and RPC address (a `cohort up` cluster file's nodes are these). */
export interface MapReduceEndpoint {
  readonly id: string;
  /** Where the node serves RPC. */
  readonly rpc: PeerAddress;
}

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
  // The job names its module by content: the hash of the bytes checked here,
  // which the leader compares with the file it reads and records in the job.
  const moduleSha256 = await moduleSha256Of(module);
  const job = await loadJob(module, { sha256: moduleSha256, where: 'on the submitting client' });
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
      moduleSha256,
      splits: splits.map((s) => ({ file: s.file, start: s.start, end: s.end })),
      reducers,
      output,
      ...(req.params === undefined ? {} : { params: { ...req.params } }),
      ...(Object.keys(options).length === 0 ? {} : { options }),
      ...(createdOutput ? { outputCreated: true } : {}),
    },
  };
}

/** Creates the output directory if needed and checks it is writable and free of part files. */
function checkOutputDir(output: string): boolean {
  let created = false;
  if (!existsSync(output)) {
    try {
      makeDirs(output);
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

/**
 * Removes what a job that was never submitted left in its output directory
 * (the directory, if prepareJob created it). A submitted job's output is the
 * cluster's to remove if the job fails (see
 * {@link MapReduceClient.waitOutputRemoved}).
 */
export function removeOutput(prepared: PreparedJob): void {
  const out = prepared.request.output;
  if (!existsSync(out)) return;
  for (const f of readdirSync(out)) {
    if (isJobOutputFile(f)) rmSync(join(out, f), { force: true });
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

  /**
   * Opens a dial-only client per node (connections are made on first use);
   * `tls`: the cluster's CA and a user certificate and key (paths or PEM),
   * for a TLS cluster (see {@link MapReduceClient.connectCluster} for one
   * `cohort up` started).
   */
  static async connect(
    nodes: readonly MapReduceEndpoint[],
    clusterId: string,
    tls?: ClientTlsOptions,
  ): Promise<MapReduceClient> {
    const creds = tls === undefined ? undefined : resolveUserTls(tls, 'MapReduceClient');
    const out: { id: string; rpc: RpcNode; stub: Client<typeof MapReduceService> }[] = [];
    for (const n of nodes) {
      const rpc = await startTcpClient({
        server: { id: n.id, host: n.rpc.host, port: n.rpc.port },
        clusterId,
        ...(creds === undefined ? {} : { tls: creds }),
      });
      out.push({ id: n.id, rpc, stub: rpc.client(MapReduceService, rpc.serverId) });
    }
    if (out.length === 0) throw new CohortError('INVALID_ARGUMENT', 'no nodes to connect to');
    return new MapReduceClient(out);
  }

  /** A client of the cluster `cohort up` runs in `dir` (its nodes and client certificate from cluster.json). */
  static connectCluster(dir: string): Promise<MapReduceClient> {
    const file = readClusterFile(dir);
    return MapReduceClient.connect(file.nodes, file.clusterId, file.tls);
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

  /**
   * A job's status once it differs from what the answering node had when the
   * call arrived, or the job is finished, or about `waitMs` passed (a long
   * poll; NOT_FOUND if no node knows the job).
   */
  statusChange(jobId: string, waitMs: number): Promise<JobStatus> {
    return this.call((s) => s.status({ jobId, waitMs }, { timeoutMs: waitMs + 5_000 }));
  }

  /**
   * Waits until the job is done, failed or cancelled; `onProgress` sees every
   * status read. Each read is a long poll ({@link statusChange}) of up to
   * `everyMs`: the node answers as soon as the job changes, so the end is
   * seen the moment the node applies it, and `onProgress` still sees the
   * status at least every `everyMs` (a progress display's clock). A read
   * that came back unchanged well before `everyMs` (a node that does not
   * hold the call, one stopping) is followed by a pause of `everyMs`, as
   * are the retries while no node knows the job yet.
   */
  async wait(
    jobId: string,
    onProgress?: (s: JobStatus) => void,
    everyMs = 200,
  ): Promise<JobStatus> {
    let missing = 0;
    let last: string | undefined;
    for (;;) {
      let s: JobStatus;
      const t0 = Date.now();
      try {
        s = await this.statusChange(jobId, everyMs);
      } catch (e) {
        // A lagging follower may not have applied the submit yet.
        if (isCohortError(e) && e.code === 'NOT_FOUND' && missing++ < 50) {
          this.current++;
          await sleep(everyMs);
          continue;
        }
        throw e;
      }
      onProgress?.(s);
      if (isFinished(s)) return s;
      const seen = JSON.stringify(s);
      if (seen === last && Date.now() - t0 < everyMs / 2) await sleep(everyMs);
      last = seen;
    }
  }

  /**
   * Waits until the cluster has removed a failed or cancelled job's output
   * (the coordinator's cleanup, see OutputRemovedCommand); false if it has
   * not within `ms`.
   */
  async waitOutputRemoved(jobId: string, ms = 15_000, pollMs = 100): Promise<boolean> {
    const deadline = Date.now() + ms;
    for (;;) {
      const s = await this.status(jobId).catch(() => undefined);
      if (s?.outputRemoved === true) return true;
      if (Date.now() > deadline) return false;
      await sleep(pollMs);
    }
  }

  /** Closes the connections. */
  async close(): Promise<void> {
    await Promise.allSettled(this.nodes.map((n) => n.rpc.close()));
  }
}
