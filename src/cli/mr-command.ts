/**
 * `cohort mr`: run MapReduce jobs and list them.
 *
 * ```sh
 * cohort mr run examples/mapreduce/wordcount.ts --input 'corpus/*.txt' --output out/wc --reducers 4
 * cohort mr run job.ts --input in.txt --output out --endpoints n1=127.0.0.1:7201 --cluster-id cohort-local
 * cohort mr run job.ts --input in.txt --output out --local --set skipBadRecords=true --set maxTaskFailures=8
 * cohort mr status [job-id] [--json]
 * cohort mr cancel <job-id> [--reason text]
 * ```
 *
 * `run` checks the job locally (map and reduce exported, input present,
 * output directory writable and free of earlier output), submits it to the
 * running cluster (found like every client command's: `--endpoints`,
 * `COHORT_ENDPOINTS`, `--dir`, or the nearest `.cohort/cluster.json`, with
 * its certificate; see target.ts), or with `--local` to a one-node cluster it starts in
 * this process (`--workers` threads), then shows a progress line until the
 * job ends; Ctrl-C cancels the job. Without `--local`, no cluster to submit
 * to is an error: a job never runs somewhere the user did not ask for.
 * `--set key=value` sets a job option ({@link JOB_OPTIONS}). The last line
 * says where the output is and how many records were skipped. A failed or
 * cancelled job's output is removed by the cluster (the coordinator), so it
 * is removed even if this command is killed. Exit codes: 0 the job is done;
 * 1 the job failed or was cancelled, or no cluster could run it; 2 the job
 * was refused before it started (bad module, missing input, unwritable
 * output, bad option, no cluster and no `--local`).
 * `cancel` stops a running job and waits for the cluster to remove its
 * output; it exits 1 if the job is unknown or already over. Errors print
 * one line, `error: CODE: message`.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { CohortError, isCohortError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import {
  isFinished,
  MapReduceClient,
  prepareJob,
  progressLine,
  removeOutput,
} from '../mapreduce/client.js';
import type { PreparedJob } from '../mapreduce/client.js';
import type { JobOptions, JobStatus } from '../mapreduce/core/types.js';
import { StatusPoller } from '../node/cluster.js';
import { startEmbeddedCluster } from './embedded-cluster.js';
import type { EmbeddedCluster } from './embedded-cluster.js';
import { out, runAction } from './run.js';
import { addTargetOptions, resolveTarget } from './target.js';
import type { Target, TargetFlags } from './target.js';

/** What `--set` may set: the job options, the reducers and the split size. */
interface JobSettings {
  options: JobOptions;
  reducers?: number;
  splitBytes?: number;
}

interface RunFlags extends TargetFlags {
  input: string[];
  output: string;
  reducers?: number;
  splitBytes?: number;
  param: Record<string, string>;
  set: JobSettings;
  workers?: number;
  leaseMs?: number;
  local?: boolean;
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

/** An integer in [min, max] for `--set name=text`. */
function intIn(name: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new InvalidArgumentError(
      `${name} must be an integer in ${min}..${max}, got ${JSON.stringify(text)}`,
    );
  }
  return n;
}

function bool(name: string, text: string): boolean {
  if (['true', 'yes', '1', 'on'].includes(text)) return true;
  if (['false', 'no', '0', 'off'].includes(text)) return false;
  throw new InvalidArgumentError(`${name} must be true or false, got ${JSON.stringify(text)}`);
}

/** The settings `--set key=value` accepts, with their parsers (the values the coordinator accepts). */
export const JOB_OPTIONS: Readonly<Record<string, (text: string, s: JobSettings) => JobSettings>> =
  {
    maxTaskFailures: (t, s) => ({
      ...s,
      options: {
        ...s.options,
        maxTaskFailures: intIn('maxTaskFailures', t, 1, limits.mrTaskAttemptsMax),
      },
    }),
    skipBadRecords: (t, s) => ({
      ...s,
      options: { ...s.options, skipBadRecords: bool('skipBadRecords', t) },
    }),
    skipAfterCrashes: (t, s) => ({
      ...s,
      options: {
        ...s.options,
        skipAfterCrashes: intIn('skipAfterCrashes', t, 1, limits.mrTaskAttemptsMax),
      },
    }),
    backupTasks: (t, s) => ({
      ...s,
      options: { ...s.options, backupTasks: bool('backupTasks', t) },
    }),
    backupAfterMs: (t, s) => ({
      ...s,
      options: { ...s.options, backupAfterMs: intIn('backupAfterMs', t, 0, limits.mrLeaseMsMax) },
    }),
    reducers: (t, s) => ({ ...s, reducers: intIn('reducers', t, 1, limits.mrReducersMax) }),
    splitBytes: (t, s) => ({
      ...s,
      splitBytes: intIn('splitBytes', t, 1, Number.MAX_SAFE_INTEGER),
    }),
  };

function setting(value: string, previous: JobSettings): JobSettings {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError('expected key=value');
  const key = value.slice(0, eq);
  const parse = Object.hasOwn(JOB_OPTIONS, key) ? JOB_OPTIONS[key] : undefined;
  if (parse === undefined) {
    throw new InvalidArgumentError(
      `unknown job option ${JSON.stringify(key)}; known: ${Object.keys(JOB_OPTIONS).join(', ')}`,
    );
  }
  return parse(value.slice(eq + 1), previous);
}

/**
 * The cluster to talk to: `--endpoints`, or the cluster file target.ts finds.
 * NOT_FOUND when neither names one; UNAVAILABLE when none of its nodes
 * answers; HANDSHAKE_FAILED when a node refused our certificate.
 */
async function findCluster(flags: TargetFlags): Promise<Target> {
  const target = resolveTarget(flags);
  const keepAlive = setInterval(() => undefined, 1000);
  const poller = await StatusPoller.connect(target.nodes, target.clusterId, 'none', target.tls);
  try {
    const results = await poller.poll(1000);
    // A node that answers at all (even "no status capability") means a cluster runs;
    // one that refused our certificate is an error to report.
    const refused = results.find((r) => !r.ok && r.error === 'HANDSHAKE_FAILED');
    if (refused !== undefined && !refused.ok) {
      throw new CohortError(
        'HANDSHAKE_FAILED',
        refused.message ?? `node ${refused.id} refused the connection`,
      );
    }
    if (!results.some((r) => r.ok || r.error === 'PERMISSION_DENIED')) {
      throw new CohortError(
        'UNAVAILABLE',
        `no node of cluster ${target.clusterId} answers (is it running?)`,
      );
    }
    return target;
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

function skippedText(s: JobStatus): string {
  const n = s.counters.skippedRecords;
  return `${n} record${n === 1 ? '' : 's'} skipped`;
}

async function run(module: string, flags: RunFlags): Promise<void> {
  const local = flags.local === true || flags.embedded === true;
  let prepared: PreparedJob;
  let cluster: Target | undefined;
  try {
    // Where the job will run, before anything is created: without --local only on a running cluster.
    if (!local) {
      try {
        cluster = await findCluster(flags);
      } catch (e) {
        if (isCohortError(e) && e.code === 'NOT_FOUND') {
          throw new CohortError(
            'NOT_FOUND',
            `no cluster to run the job on: ${e.message}.\n` +
              'Start one with `cohort up` (and run this from the directory holding its .cohort), ' +
              'pass --dir or --endpoints, or add --local to run the job in a one-node cluster inside this command',
          );
        }
        throw e;
      }
    }
    const settings = flags.set;
    const reducers = settings.reducers ?? flags.reducers;
    const splitBytes = settings.splitBytes ?? flags.splitBytes;
    prepared = await prepareJob({
      module,
      inputs: flags.input,
      output: flags.output,
      ...(reducers === undefined ? {} : { reducers }),
      ...(splitBytes === undefined ? {} : { splitBytes }),
      ...(Object.keys(flags.param).length === 0 ? {} : { params: flags.param }),
      ...(Object.keys(settings.options).length === 0 ? {} : { options: settings.options }),
    });
  } catch (e) {
    exitFor(e, 'run');
    return;
  }
  const keepAlive = setInterval(() => undefined, 1000);
  let embedded: EmbeddedCluster | undefined;
  let client: MapReduceClient | undefined;
  let submitted = false;
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
    if (local) {
      if (flags.json !== true) {
        process.stderr.write(
          `--local: running the job in a one-node cluster in this process (${flags.workers ?? 'one per core'} workers)\n`,
        );
      }
      embedded = await startEmbeddedCluster({
        ...(flags.workers === undefined ? {} : { workers: flags.workers }),
        ...(flags.leaseMs === undefined ? {} : { leaseMs: flags.leaseMs }),
      });
    }
    const target = cluster ?? embedded;
    if (target === undefined) throw new CohortError('INTERNAL', 'no cluster to run the job on');
    client = await MapReduceClient.connect(target.nodes, target.clusterId, target.tls);
    const t0 = Date.now();
    const r = await client.submit(prepared.request);
    submitted = true;
    if (flags.json !== true) {
      process.stderr.write(`job ${r.jobId}: ${r.maps} map tasks, ${r.reducers} reduce tasks\n`);
    }
    // Ctrl-C cancels the job on the cluster (which then removes its partial output).
    const c = client;
    const onSigint = (): void => {
      process.stderr.write(`\ncancelling job ${r.jobId}\n`);
      c.call((stub) => stub.cancel({ jobId: r.jobId, reason: 'interrupted (SIGINT)' })).catch(
        (e: unknown) => process.stderr.write(`cohort mr run: cancel failed: ${String(e)}\n`),
      );
    };
    process.once('SIGINT', onSigint);
    let final: JobStatus;
    try {
      final = await client.wait(r.jobId, (s) => {
        if (!isFinished(s)) show(s, Date.now() - t0);
      });
    } finally {
      process.removeListener('SIGINT', onSigint);
    }
    const elapsedMs = Date.now() - t0;
    show(final, elapsedMs, true);
    if (final.status !== 'done') {
      const removed = await client.waitOutputRemoved(final.jobId);
      if (flags.json === true) {
        process.stdout.write(
          `${JSON.stringify({ ...final, outputRemoved: removed, elapsedMs })}\n`,
        );
      }
      process.stderr.write(
        `cohort mr run: job ${final.jobId} ${final.status}: ${final.error ?? 'no reason given'}\n` +
          (removed
            ? `no output was left in ${prepared.request.output}; ${skippedText(final)}\n`
            : `the cluster has not removed the output in ${prepared.request.output} yet (it will); ${skippedText(final)}\n`),
      );
      process.exitCode = 1;
    } else if (flags.json === true) {
      process.stdout.write(`${JSON.stringify({ ...final, elapsedMs })}\n`);
    } else {
      process.stderr.write(`output: ${prepared.request.output}; ${skippedText(final)}\n`);
    }
  } catch (e) {
    // A job never submitted leaves nothing (a submitted one is the cluster's to clean up).
    if (!submitted) removeOutput(prepared);
    exitFor(e, 'run');
    if (process.exitCode === 2) process.exitCode = 1;
  } finally {
    clearInterval(keepAlive);
    await client?.close();
    await embedded?.close();
  }
}

function duration(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const m = Math.floor(ms / 60_000);
  return m < 60
    ? `${m} min ${Math.round((ms % 60_000) / 1000)} s`
    : `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** How long a job ran (until now if it still runs), by the coordinator's clock readings. */
function elapsed(j: JobStatus, now: number): string {
  return duration(Math.max(0, (j.finishedAt ?? now) - j.submittedAt));
}

/** The jobs as a table, then each failed or cancelled job's reason; with `details`, its skipped records. */
export function statusTable(jobs: readonly JobStatus[], now: number, details = false): string {
  const rows = [
    ['JOB', 'NAME', 'STATUS', 'MAPS', 'REDUCES', 'RE-EXEC', 'SKIPPED', 'ELAPSED', 'OUTPUT'],
  ];
  for (const j of jobs) {
    rows.push([
      j.jobId,
      j.name,
      j.status,
      `${j.progress.mapsDone}/${j.progress.maps}`,
      `${j.progress.reducesDone}/${j.progress.reduces}`,
      String(j.counters.reExecutions),
      String(j.counters.skippedRecords),
      elapsed(j, now),
      j.output,
    ]);
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  const lines = rows.map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd(),
  );
  for (const j of jobs) {
    if (j.error !== undefined) lines.push(`${j.jobId} ${j.status}: ${j.error}`);
    if (!details) continue;
    lines.push(
      `  module ${j.module}${j.moduleSha256 === undefined ? '' : ` (sha256 ${j.moduleSha256})`}`,
    );
    for (const r of j.skipped)
      lines.push(`  skipped ${r.file}:${r.offset} (map ${r.map}): ${r.error}`);
    if (j.skipped.length < j.counters.skippedRecords) {
      lines.push(
        `  ... ${j.counters.skippedRecords - j.skipped.length} more skipped records not listed`,
      );
    }
  }
  return lines.join('\n');
}

async function status(jobId: string | undefined, flags: StatusFlags): Promise<void> {
  const keepAlive = setInterval(() => undefined, 1000);
  let client: MapReduceClient | undefined;
  try {
    const cluster = await findCluster(flags).catch((e: unknown) => {
      if (isCohortError(e) && e.code === 'NOT_FOUND') {
        throw new CohortError(
          'UNAVAILABLE',
          'no running cluster found (start one with cohort up, or pass --endpoints)',
        );
      }
      throw e;
    });
    client = await MapReduceClient.connect(cluster.nodes, cluster.clusterId, cluster.tls);
    const jobs = jobId === undefined ? await client.list() : [await client.status(jobId)];
    if (flags.json === true) process.stdout.write(`${JSON.stringify({ jobs })}\n`);
    else if (jobs.length === 0) process.stdout.write('no jobs\n');
    else process.stdout.write(`${statusTable(jobs, Date.now(), jobId !== undefined)}\n`);
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
  const target = addTargetOptions;
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
        '--set <key=value>',
        `a job option (repeatable): ${Object.keys(JOB_OPTIONS).join(', ')}`,
        setting,
        { options: {} },
      )
      .option(
        '--local',
        'run the job in a one-node cluster inside this command (no cohort up needed)',
      )
      .option('--embedded', 'the same as --local')
      .option(
        '--workers <n>',
        'worker threads of the --local cluster (default one per core)',
        positiveInt,
      )
      .option('--lease-ms <n>', 'task lease of the --local cluster (ms)', positiveInt)
      .option('--json', 'print the final job status as JSON'),
  ).action(async (job: string, flags: RunFlags) => {
    await run(job, flags);
  });
  target(
    mr
      .command('status [job]')
      .description('list the jobs (or one job, with its skipped records) of the running cluster')
      .option('--json', 'print as JSON'),
  ).action(async (jobId: string | undefined, flags: StatusFlags) => {
    await status(jobId, flags);
  });
  target(
    mr
      .command('cancel <job>')
      .description(
        'cancel a running job and wait for the cluster to remove its output; exit 1 if it is unknown or already over',
      )
      .option('--reason <text>', 'why (kept in the job status)'),
  ).action(async (jobId: string, flags: TargetFlags & { reason?: string }) => {
    await runAction({}, async (ctx) => {
      const cluster = await findCluster(flags);
      ctx.report.source = cluster.source;
      const client = await MapReduceClient.connect(cluster.nodes, cluster.clusterId, cluster.tls);
      try {
        const r = await client.call(
          (stub) =>
            stub.cancel(
              { jobId, reason: flags.reason ?? 'cancelled with cohort mr cancel' },
              { signal: ctx.signal },
            ),
          10_000,
        );
        const removed = await client.waitOutputRemoved(jobId);
        out(
          `job ${jobId} cancelled (${r.stoppedAttempts.length} running attempts stopped); ` +
            (removed ? 'its output was removed' : 'its output is being removed'),
        );
      } finally {
        await client.close();
      }
    });
  });
}
