/**
 * `cohort mr`: run MapReduce jobs and list them.
 *
 * ```sh
 * cohort mr run examples/mapreduce/wordcount.ts --input 'corpus/*.txt' --output out/wc --reducers 4
 * cohort mr run job.ts --input in.txt --output out --endpoints n1=127.0.0.1:7201 --cluster-id cohort-local
 * cohort mr status [job-id] [--json]
 * cohort mr cancel <job-id> [--reason text]
 * ```
 *
 * `run` checks the job locally (map and reduce exported, input present,
 * output directory writable and free of earlier output), submits it to the
 * running cluster (found like every client command's: `--endpoints`,
 * `COHORT_ENDPOINTS`, `--dir`, or the nearest `.cohort/cluster.json`; see
 * target.ts), or, if none answers, to a one-node cluster it starts in
 * this process (`--workers` threads), then shows a progress line until the
 * job ends; Ctrl-C cancels the job. Exit codes: 0 the job is done; 1 the job failed or was cancelled
 * (its partial output removed) or no cluster could run it; 2 the job was
 * refused before it started (bad module, missing input, unwritable output).
 * `cancel` stops a running job (the `cohort mr run` waiting for it removes
 * its partial output); it exits 1 if the job is unknown or already over.
 * Errors print one line, `error: CODE: message`.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { isCohortError } from '../lib/errors.js';
import {
  isFinished,
  MapReduceClient,
  prepareJob,
  progressLine,
  removeOutput,
} from '../mapreduce/client.js';
import type { PreparedJob } from '../mapreduce/client.js';
import type { JobStatus } from '../mapreduce/core/types.js';
import { StatusPoller } from '../node/cluster.js';
import type { ClusterNode } from '../node/cluster.js';
import { startEmbeddedCluster } from './embedded-cluster.js';
import type { EmbeddedCluster } from './embedded-cluster.js';
import { out, runAction } from './run.js';
import { resolveTarget } from './target.js';
import type { TargetFlags } from './target.js';

interface RunFlags extends TargetFlags {
  input: string[];
  output: string;
  reducers?: number;
  splitBytes?: number;
  param: Record<string, string>;
  workers?: number;
  leaseMs?: number;
  embedded?: boolean;
  json?: boolean;
}

interface StatusFlags extends TargetFlags {
  json?: boolean;
}

function positiveInt(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError('expected a positive integer');
  }
  return n;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function param(value: string, previous: Record<string, string>): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError('expected key=value');
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

/** The running cluster to talk to, or undefined if none answers. */
async function findCluster(
  flags: TargetFlags,
): Promise<{ nodes: ClusterNode[]; clusterId: string } | undefined> {
  let nodes: ClusterNode[];
  let clusterId: string;
  try {
    const target = resolveTarget(flags);
    nodes = [...target.nodes];
    clusterId = target.clusterId;
  } catch (e) {
    if (isCohortError(e) && e.code === 'NOT_FOUND') return undefined;
    throw e;
  }
  const keepAlive = setInterval(() => undefined, 1000);
  const poller = await StatusPoller.connect(nodes, clusterId);
  try {
    const results = await poller.poll(1000);
    return results.some((r) => r.ok) ? { nodes, clusterId } : undefined;
  } finally {
    clearInterval(keepAlive);
    await poller.close();
  }
}

function exitFor(e: unknown, what: string): void {
  const code = isCohortError(e) ? e.code : '';
  const refused = [
    'INVALID_ARGUMENT',
    'NOT_FOUND',
    'PERMISSION_DENIED',
    'ALREADY_EXISTS',
    'USER_CODE_ERROR',
    'FAILED_PRECONDITION',
  ].includes(code);
  process.stderr.write(
    `error: ${isCohortError(e) ? e.code : 'INTERNAL'}: cohort mr ${what}: ${e instanceof Error ? e.message : String(e)}\n`,
  );
  process.exitCode = refused ? 2 : 1;
}

async function run(module: string, flags: RunFlags): Promise<void> {
  let prepared: PreparedJob;
  try {
    prepared = await prepareJob({
      module,
      inputs: flags.input,
      output: flags.output,
      ...(flags.reducers === undefined ? {} : { reducers: flags.reducers }),
      ...(flags.splitBytes === undefined ? {} : { splitBytes: flags.splitBytes }),
      ...(Object.keys(flags.param).length === 0 ? {} : { params: flags.param }),
    });
  } catch (e) {
    exitFor(e, 'run');
    return;
  }
  const keepAlive = setInterval(() => undefined, 1000);
  let embedded: EmbeddedCluster | undefined;
  let client: MapReduceClient | undefined;
  const tty = process.stderr.isTTY;
  let lastLine = '';
  const show = (s: JobStatus, elapsedMs: number, final = false): void => {
    if (flags.json === true) return;
    const line = progressLine(s, elapsedMs);
    if (tty) {
      process.stderr.write(`\r\x1b[K${line}${final ? '\n' : ''}`);
    } else {
      const key = `${s.status} ${s.progress.mapsDone} ${s.progress.reducesDone}`;
      if (key !== lastLine || final) process.stderr.write(`${line}\n`);
      lastLine = key;
    }
  };
  try {
    const cluster = flags.embedded === true ? undefined : await findCluster(flags);
    if (cluster === undefined) {
      if (flags.json !== true) {
        process.stderr.write(
          `no running cluster found; starting a one-node cluster in this process (${flags.workers ?? 'one per core'} workers)\n`,
        );
      }
      embedded = await startEmbeddedCluster({
        ...(flags.workers === undefined ? {} : { workers: flags.workers }),
        ...(flags.leaseMs === undefined ? {} : { leaseMs: flags.leaseMs }),
      });
    }
    const target = cluster ?? embedded;
    if (target === undefined) throw new Error('no cluster to run the job on');
    client = await MapReduceClient.connect(target.nodes, target.clusterId);
    const t0 = Date.now();
    const submitted = await client.submit(prepared.request);
    if (flags.json !== true) {
      process.stderr.write(
        `job ${submitted.jobId}: ${submitted.maps} map tasks, ${submitted.reducers} reduce tasks\n`,
      );
    }
    // Ctrl-C cancels the job on the cluster (its partial output is removed below).
    const c = client;
    const onSigint = (): void => {
      process.stderr.write(`\ncancelling job ${submitted.jobId}\n`);
      c.call((stub) =>
        stub.cancel({ jobId: submitted.jobId, reason: 'interrupted (SIGINT)' }),
      ).catch((e: unknown) => process.stderr.write(`cohort mr run: cancel failed: ${String(e)}\n`));
    };
    process.once('SIGINT', onSigint);
    let final: JobStatus;
    try {
      final = await client.wait(submitted.jobId, (s) => {
        if (!isFinished(s)) show(s, Date.now() - t0);
      });
    } finally {
      process.removeListener('SIGINT', onSigint);
    }
    const elapsedMs = Date.now() - t0;
    show(final, elapsedMs, true);
    if (flags.json === true) {
      process.stdout.write(`${JSON.stringify({ ...final, elapsedMs })}\n`);
    }
    if (final.status !== 'done') {
      removeOutput(prepared);
      process.stderr.write(
        `cohort mr run: job ${final.jobId} ${final.status}: ${final.error ?? 'no reason given'}\n` +
          `no output was left in ${prepared.request.output}\n`,
      );
      process.exitCode = 1;
    } else if (flags.json !== true) {
      process.stderr.write(`output: ${prepared.request.output}\n`);
    }
  } catch (e) {
    removeOutput(prepared);
    exitFor(e, 'run');
    if (process.exitCode === 2) process.exitCode = 1;
  } finally {
    clearInterval(keepAlive);
    await client?.close();
    await embedded?.close();
  }
}

function table(jobs: readonly JobStatus[]): string {
  const rows = [['JOB', 'NAME', 'STATUS', 'MAPS', 'REDUCES', 'RE-EXEC', 'OUTPUT']];
  for (const j of jobs) {
    rows.push([
      j.jobId,
      j.name,
      j.status,
      `${j.progress.mapsDone}/${j.progress.maps}`,
      `${j.progress.reducesDone}/${j.progress.reduces}`,
      String(j.counters.reExecutions),
      j.output,
    ]);
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

async function status(jobId: string | undefined, flags: StatusFlags): Promise<void> {
  const keepAlive = setInterval(() => undefined, 1000);
  let client: MapReduceClient | undefined;
  try {
    const cluster = await findCluster(flags);
    if (cluster === undefined) {
      process.stderr.write(
        `cohort mr status: no running cluster found (start one with cohort up, or pass --endpoints)\n`,
      );
      process.exitCode = 1;
      return;
    }
    client = await MapReduceClient.connect(cluster.nodes, cluster.clusterId);
    const jobs = jobId === undefined ? await client.list() : [await client.status(jobId)];
    if (flags.json === true) process.stdout.write(`${JSON.stringify({ jobs })}\n`);
    else if (jobs.length === 0) process.stdout.write('no jobs\n');
    else process.stdout.write(`${table(jobs)}\n`);
  } catch (e) {
    exitFor(e, 'status');
    if (process.exitCode === 2 && !(isCohortError(e) && e.code === 'NOT_FOUND')) {
      process.exitCode = 1;
    }
  } finally {
    clearInterval(keepAlive);
    await client?.close();
  }
}

/** Adds `cohort mr` to `program`. */
export function registerMrCommands(program: Command): void {
  const mr = program.command('mr').description('run MapReduce jobs on the cluster');
  const target = (c: Command): Command =>
    c
      .option(
        '--dir <dir>',
        'where cohort up put cluster.json (default: the nearest .cohort/ at or above here)',
      )
      .option('--endpoints <list>', 'RPC endpoints instead: n1=host:port,n2=host:port')
      .option('--cluster-id <id>', 'cluster id for --endpoints (default cohort-local)');
  target(
    mr
      .command('run <job>')
      .description('run a job module (exports map and reduce) over input files')
      .requiredOption('--input <glob>', 'input files, directories or globs (repeatable)', collect)
      .requiredOption('--output <dir>', 'output directory (part-r-NNNNN files)')
      .option('--reducers <n>', 'number of reducers (default: the job’s)', positiveInt)
      .option('--split-bytes <n>', 'input split size in bytes (default: the job’s)', positiveInt)
      .option('--param <key=value>', 'a job parameter (repeatable)', param, {})
      .option(
        '--workers <n>',
        'worker threads of an embedded cluster (default one per core)',
        positiveInt,
      )
      .option('--lease-ms <n>', 'task lease of an embedded cluster (ms)', positiveInt)
      .option('--embedded', 'always run in a one-node cluster in this process')
      .option('--json', 'print the final job status as JSON'),
  ).action(async (job: string, flags: RunFlags) => {
    await run(job, flags);
  });
  target(
    mr
      .command('status [job]')
      .description('list the jobs (or one job) of the running cluster')
      .option('--json', 'print as JSON'),
  ).action(async (jobId: string | undefined, flags: StatusFlags) => {
    await status(jobId, flags);
  });
  target(
    mr
      .command('cancel <job>')
      .description(
        'cancel a running job (the cohort mr run waiting for it removes its partial output); exit 1 if it is unknown or already over',
      )
      .option('--reason <text>', 'why (kept in the job status)'),
  ).action(async (jobId: string, flags: TargetFlags & { reason?: string }) => {
    await runAction({}, async (ctx) => {
      const t = resolveTarget(flags);
      ctx.report.source = t.source;
      const client = await MapReduceClient.connect(t.nodes, t.clusterId);
      try {
        const r = await client.call(
          (stub) =>
            stub.cancel(
              { jobId, ...(flags.reason === undefined ? {} : { reason: flags.reason }) },
              { signal: ctx.signal },
            ),
          10_000,
        );
        out(`job ${jobId} cancelled (${r.stoppedAttempts.length} running attempts stopped)`);
      } finally {
        await client.close();
      }
    });
  });
}
