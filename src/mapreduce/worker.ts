/**
 * A node's MapReduce workers: one loop per worker thread that asks the leader
 * for a task, runs it in its thread, renews the attempt's lease while it runs
 * and reports the outcome; the report of a completion asks for the thread's
 * next task too (one call and one log entry between two tasks, not two). A
 * reduce attempt first fetches its partition of every map's output (the
 * shuffle: local files from this node, streams from the others), then merges
 * and reduces in the thread while telling the leader `shuffleDone`. A map
 * output that cannot be fetched is reported (`fetchFailed` with `release`):
 * the coordinator redoes that map and hands the reduce out again later.
 *
 * ```ts
 * const workers = new WorkerManager(runtime, new WorkerPool({ size: 2, stallMs: 20_000 }));
 * workers.start();          // loops run until stop()
 * workers.tasksRun;         // attempts this node ran, by kind
 * await workers.stop();
 * ```
 */
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { CohortError, isCohortError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import type { JobStatus, MapAssignment, TaskAssignment } from './core/types.js';
import { partFileName } from './format.js';
import type { Client } from '../rpc/service.js';
import type { MapReduceModuleState } from './module-state.js';
import { checkModuleDir } from './module-dirs.js';
import { moduleCheckOf } from './module-hash.js';
import type { CompleteAnswer, MapReduceService, TaskGrant } from './service.js';
import {
  fetchDir,
  fetchPartitionRuns,
  FetchFailure,
  mapDir,
  mapTaskId,
  reduceTaskId,
} from './shuffle.js';
import type { ShuffleHost } from './shuffle.js';
import type { MapTaskResult, ReduceTaskResult } from './tasks.js';
import type { WorkerPool, WorkerSlot } from './worker-pool.js';

/**
 * What the worker loops need of the node's MapReduce runtime (runtime.ts's
 * MapReduceRuntime, which creates the workers, is one): named here so that
 * worker.ts does not import runtime.ts back.
 */
export interface WorkerRuntime {
  /** This node's id. */
  readonly self: string;
  readonly options: {
    readonly leaseMs: number;
    readonly pollMs: number;
    readonly heartbeatMs: number;
    /** Where job modules may load from (module-dirs.ts); undefined: anywhere. */
    readonly moduleDirs?: readonly string[] | undefined;
  };
  readonly log: Logger;
  /** Where this node keeps map outputs and fetched partitions. */
  readonly mrDir: string;
  /** The replicated state (where each map's output is). */
  readonly state: Pick<MapReduceModuleState, 'core'>;
  /** Asks the leader for a task (forwarded if need be). */
  requestTask(req: { worker: string; node: string; waitMs?: number }): Promise<TaskGrant>;
  /** Calls the leader (this node if it leads) with `fn`. */
  leader<T>(fn: (leader: Client<typeof MapReduceService>) => Promise<T>): Promise<T>;
  /** A client stub for the MapReduce service on `node`. */
  peer(node: string): Client<typeof MapReduceService>;
  /** A job's status as this node knows it. */
  job(jobId: string): JobStatus | undefined;
  /** Tells the leader this node is alive. */
  heartbeatToLeader(): Promise<void>;
}

/** A task handed to a slot with its last task's completion, and its lease length. */
interface Handed {
  readonly assignment: TaskAssignment;
  readonly leaseMs: number;
}

/** The next task a completion's answer carries, if any. */
function handedBy(done: CompleteAnswer): Handed | undefined {
  const a = done.next?.assignment;
  if (a === undefined || a === null || done.leaseMs === undefined) return undefined;
  return { assignment: a, leaseMs: done.leaseMs };
}

/** How long a request for a task may wait on the leader for one to appear (a long poll). */
const LONG_POLL_MS = 1_000;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

/** Runs a task in `slot` once nothing else runs there (a preload may hold it for a moment). */
async function runIn(slot: WorkerSlot, task: Parameters<WorkerSlot['run']>[0]): Promise<unknown> {
  while (slot.busy) await slot.whenIdle();
  return slot.run(task);
}

/** The record a map crashed its thread on (the thread died or stalled), if known. */
function crashOffset(e: unknown, progress: Float64Array): number | undefined {
  if (!isCohortError(e)) return undefined;
  const o = e.details['offset'];
  if (typeof o === 'number') return o;
  // Thread death or stall: the shared progress slot names the record being mapped.
  if (e.code === 'USER_CODE_ERROR' || e.code === 'TIMEOUT') {
    const p = progress[0];
    if (p !== undefined && p >= 0) return p;
  }
  return undefined;
}

/** The worker loops of one node (see the file comment). */
export class WorkerManager {
  private stopped = false;
  private loops: Promise<void>[] = [];
  private heartbeat: NodeJS.Timeout | undefined;
  private janitor: NodeJS.Timeout | undefined;
  /** Attempts run on this node, by kind (for tests and logs). */
  readonly tasksRun = { map: 0, reduce: 0 };

  constructor(
    private readonly rt: WorkerRuntime,
    private readonly pool: WorkerPool,
  ) {}

  /** Starts one loop per thread, the heartbeat and the janitor. */
  start(): void {
    this.loops = this.pool.slots.map((slot) => this.loop(slot));
    this.heartbeat = setInterval(() => {
      this.rt
        .heartbeatToLeader()
        .catch((e: unknown) => this.rt.log.debug({ err: e }, 'mapreduce: heartbeat failed'));
    }, this.rt.options.heartbeatMs);
    this.heartbeat.unref();
    this.janitor = setInterval(() => void this.cleanUp(), 5_000);
    this.janitor.unref();
  }

  /** What the shuffle needs of this node (shuffle.ts). */
  private get shuffleHost(): ShuffleHost {
    const rt = this.rt;
    return {
      self: rt.self,
      mrDir: rt.mrDir,
      firstChunkMs: Math.max(3_000, rt.options.leaseMs),
      peer: (node) => rt.peer(node),
      mapOutputAttempt: (jobId, map) => rt.state.core.mapOutput(jobId, map)?.attemptId,
    };
  }

  /** Stops asking for tasks and kills running ones. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.heartbeat !== undefined) clearInterval(this.heartbeat);
    if (this.janitor !== undefined) clearInterval(this.janitor);
    for (const s of this.pool.slots) s.abort('node stopping');
    // A loop may be waiting on the leader (an RPC deadline): do not hold the node's shutdown for it.
    await Promise.race([Promise.allSettled(this.loops), sleep(1_000)]);
  }

  private async loop(slot: WorkerSlot): Promise<void> {
    const worker = this.workerId(slot);
    const poll = this.rt.options.pollMs;
    /** The next task, handed out with the last one's completion (one call and one log entry for both). */
    let handed: Handed | undefined;
    while (!this.stopped) {
      let assignment: TaskAssignment | null = null;
      let leaseMs = this.rt.options.leaseMs;
      let answered = false;
      if (handed !== undefined) {
        ({ assignment, leaseMs } = handed);
        handed = undefined;
        answered = true;
      } else {
        try {
          const grant = await this.rt.requestTask({
            worker,
            node: this.rt.self,
            waitMs: LONG_POLL_MS,
          });
          assignment = grant.result.assignment;
          leaseMs = grant.leaseMs;
          answered = true;
        } catch (e) {
          this.rt.log.debug({ err: e, worker }, 'mapreduce: requestTask failed');
        }
      }
      if (this.stopped) return;
      if (assignment === null) {
        // The request itself waited on the leader (long poll): ask again soon,
        // unless it failed at once (no leader yet): then wait a poll interval.
        await sleep((answered ? Math.min(poll, 50) : poll) * (0.5 + Math.random()));
        continue;
      }
      try {
        handed = await this.runAttempt(slot, assignment, leaseMs);
      } catch (e) {
        // runAttempt reports every failure itself; this is a bug guard for the loop.
        this.rt.log.error({ err: e, worker }, 'mapreduce: attempt handling failed');
        await sleep(poll);
      }
    }
  }

  /** The worker id of a slot's loop (`<node>:w<slot>`). */
  private workerId(slot: WorkerSlot): string {
    return `${this.rt.self}:w${slot.index}`;
  }

  /**
   * Runs one attempt and reports it; returns the slot's next task when the
   * completion's answer carried one (the report asks for it).
   */
  private async runAttempt(
    slot: WorkerSlot,
    a: TaskAssignment,
    leaseMs: number,
  ): Promise<Handed | undefined> {
    const log = this.rt.log.child({
      jobId: a.jobId,
      task: `${a.kind}-${a.index}`,
      attemptId: a.attemptId,
      slot: slot.index,
    });
    log.debug('mapreduce: attempt started');
    this.tasksRun[a.kind]++;
    let stopReason: string | undefined;
    const abortFetch = new AbortController();
    const renew = setInterval(
      () => {
        this.rt
          .leader((l) => l.renew({ attemptId: a.attemptId }, { timeoutMs: leaseMs }))
          .then((r) => {
            if (r.action === 'stop' && stopReason === undefined) {
              stopReason = r.reason;
              slot.abort(`stopped by the coordinator (${r.reason})`);
              abortFetch.abort();
            }
          })
          .catch((e: unknown) => log.debug({ err: e }, 'mapreduce: renew failed'));
      },
      Math.max(20, Math.floor(leaseMs / 3)),
    );
    renew.unref();
    let fetched: string | undefined;
    const progress = new Float64Array(new SharedArrayBuffer(16));
    progress[0] = -1;
    try {
      // Every node by its own configuration, whatever the leader allowed.
      checkModuleDir(a.module, this.rt.options.moduleDirs);
      if (a.kind === 'map') {
        const r = (await runIn(slot, this.mapTask(a, progress))) as MapTaskResult;
        // Records map threw on (the coordinator already lists those it told the task to skip).
        const own = r.skipped.filter((s) => s.reason !== 'listed');
        const done = await this.report(slot, a, () => ({
          attemptId: a.attemptId,
          output: {
            kind: 'map',
            partitionBytes: r.runs.map((x) => x.bytes),
            skippedOffsets: own.map((s) => s.offset),
            skippedErrors: own.map((s) => s.reason.slice(0, limits.mrSkippedErrorCharsMax)),
          },
          counters: {
            inputRecords: r.counters.recordsIn,
            inputBytes: r.counters.bytesIn,
            outputRecords: r.counters.valuesOut,
            outputBytes: r.counters.bytesOut,
            // Skipped by the job API itself, not the records the coordinator listed.
            skippedRecords: Math.max(0, r.counters.recordsSkipped - a.skipOffsets.length),
            user: r.userCounters,
          },
        }));
        log.debug('mapreduce: attempt done');
        return handedBy(done);
      } else {
        fetched = fetchDir(this.rt.mrDir, a.jobId, a.attemptId);
        const runs = await fetchPartitionRuns(this.shuffleHost, a, fetched, abortFetch.signal);
        const shuffledBytes = a.mapOutputs.reduce((n, m) => n + m.bytes, 0);
        if (stopReason !== undefined) return undefined;
        // Told while the reduce runs: it needs nothing from the leader to start.
        const shuffleDone = this.rt
          .leader((l) => l.shuffleDone({ attemptId: a.attemptId }))
          .catch((e: unknown) => log.debug({ err: e }, 'mapreduce: shuffleDone failed'));
        const r = (await runIn(slot, {
          kind: 'reduce',
          module: a.module,
          moduleCheck: moduleCheckOf(a, this.rt.self),
          partition: a.index,
          runs,
          output: join(a.output, partFileName(a.index)),
          taskId: reduceTaskId(a.index),
          attempt: a.attemptId,
          params: a.params,
        })) as ReduceTaskResult;
        await shuffleDone;
        const done = await this.report(slot, a, () => ({
          attemptId: a.attemptId,
          output: { kind: 'reduce', bytes: r.counters.bytesOut },
          counters: {
            inputRecords: r.counters.valuesIn,
            inputBytes: shuffledBytes,
            outputRecords: r.counters.recordsOut,
            outputBytes: r.counters.bytesOut,
            user: r.userCounters,
          },
        }));
        if (!done.committed && done.reason === 'jobFinished') await this.dropIfJobFailed(a);
        log.debug('mapreduce: attempt done');
        return handedBy(done);
      }
    } catch (e) {
      if (stopReason !== undefined || this.stopped) {
        log.debug({ reason: stopReason }, 'mapreduce: attempt stopped');
        if (a.kind === 'reduce' && stopReason === 'jobFinished') await this.dropIfJobFailed(a);
        return undefined;
      }
      if (e instanceof FetchFailure) {
        log.warn({ map: e.map, node: e.node, err: e.message }, 'mapreduce: fetch failed');
        await this.rt
          .leader((l) =>
            l.fetchFailed({ attemptId: a.attemptId, map: e.map, node: e.node, release: true }),
          )
          .catch((err: unknown) => log.debug({ err }, 'mapreduce: fetchFailed report failed'));
        return undefined;
      }
      const message = e instanceof Error ? e.message : String(e);
      log.warn({ err: message }, 'mapreduce: attempt failed');
      const offset = a.kind === 'map' ? crashOffset(e, progress) : undefined;
      await this.rt
        .leader((l) =>
          l.fail({
            attemptId: a.attemptId,
            error: message.slice(0, 16 * 1024),
            ...(offset === undefined ? {} : { badRecordOffset: offset }),
          }),
        )
        .catch((err: unknown) => log.debug({ err }, 'mapreduce: fail report failed'));
      return undefined;
    } finally {
      clearInterval(renew);
      if (fetched !== undefined) await rm(fetched, { recursive: true, force: true });
    }
  }

  private mapTask(a: MapAssignment, progress: Float64Array): Parameters<WorkerSlot['run']>[0] {
    return {
      kind: 'map',
      module: a.module,
      moduleCheck: moduleCheckOf(a, this.rt.self),
      split: a.split,
      reducers: a.reducers,
      dir: mapDir(this.rt.mrDir, a.jobId),
      taskId: mapTaskId(a.index),
      attempt: a.attemptId,
      params: a.params,
      skipBadRecords: a.options.skipBadRecords,
      skipOffsets: a.skipOffsets,
      progress,
    };
  }

  /**
   * Reports a completion, retrying across leader changes for about one
   * lease. It asks for the slot's next task in the same call, unless the
   * workers are stopping: a retry after a lost answer asks again, and the
   * task the lost answer carried runs out its lease and is handed out anew
   * (as a lost requestTask answer's would).
   */
  private async report(
    slot: WorkerSlot,
    a: TaskAssignment,
    make: () => Parameters<Client<typeof MapReduceService>['complete']>[0],
  ): Promise<CompleteAnswer> {
    const deadline = Date.now() + Math.max(5_000, this.rt.options.leaseMs * 3);
    for (;;) {
      try {
        const next = this.stopped
          ? {}
          : { next: { worker: this.workerId(slot), node: this.rt.self } };
        return await this.rt.leader((l) => l.complete({ ...make(), ...next }));
      } catch (e) {
        if (Date.now() > deadline || this.stopped) {
          throw new CohortError('UNAVAILABLE', `could not report attempt ${a.attemptId} done`, {
            cause: e,
          });
        }
        await sleep(100);
      }
    }
  }

  /**
   * A reduce attempt that ran on after its job failed or was cancelled may
   * have renamed its output into place after the submitter removed the
   * job's output: it removes its part file itself (a failed job leaves no
   * output). The file of a job that is done stays (it equals the committed one).
   */
  private async dropIfJobFailed(a: TaskAssignment): Promise<void> {
    // The leader said the job is over; this replica may apply that a moment later.
    let status = this.rt.job(a.jobId)?.status;
    for (let i = 0; i < 20 && (status === 'mapping' || status === 'reducing'); i++) {
      await sleep(100);
      status = this.rt.job(a.jobId)?.status;
    }
    if (status !== 'failed' && status !== 'cancelled') return;
    await rm(join(a.output, partFileName(a.index)), { force: true }).catch(() => undefined);
  }

  /** Removes the map outputs and fetched runs of jobs that are over. */
  private async cleanUp(): Promise<void> {
    let jobs: string[];
    try {
      jobs = await readdir(this.rt.mrDir);
    } catch {
      return;
    }
    for (const jobId of jobs) {
      const job = this.rt.job(jobId);
      const over = job !== undefined && ['done', 'failed', 'cancelled'].includes(job.status);
      if (!over) continue;
      await rm(join(this.rt.mrDir, jobId), { recursive: true, force: true }).catch(() => undefined);
    }
  }
}
