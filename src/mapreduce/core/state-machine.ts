/**
 * The MapReduce coordinator as a replicated state machine: pure, deterministic,
 * synchronous (see types.ts for the model and every command). Every replica
 * applies the same committed commands in the same order and ends in the same
 * state; the leader's driver proposes the commands that need a clock
 * (expireLeases, rebaseLeases) or a failure detector (nodeLost).
 *
 * The rules follow the MapReduce paper (Dean & Ghemawat, OSDI 2004): tasks
 * are idle, in progress or done (§3.2); a worker's failure resets its
 * in-progress tasks and its completed map tasks, whose output lived on its
 * disk (§3.3); the first completion of a task is committed and later ones
 * are ignored (§3.3 "semantics in the presence of failures"); backup copies
 * of the last in-progress tasks race the originals (§3.6); records that
 * crash the map function repeatedly are skipped (§3.7).
 *
 * ```ts
 * const sm = new MapReduceStateMachine();
 * const out = sm.apply(command);               // never throws on bad input
 * if (!out.ok) reply(out.error);               // refused: nothing changed
 * sm.job('wc-1')?.progress;                    // queries read the applied state
 * if (sm.nextLeaseDeadline() <= now) propose({ type: 'expireLeases', now });
 * const copy = MapReduceStateMachine.fromSnapshot(sm.snapshot());
 * ```
 */
import { Packr } from 'msgpackr';
import { assert } from '../../lib/assert.js';
import { CohortError, isCohortError } from '../../lib/errors.js';
import { limits } from '../../lib/limits.js';
import type {
  AssignTaskCommand,
  AssignTaskResult,
  AttemptId,
  AttemptInfo,
  AttemptState,
  CancelJobCommand,
  CancelJobResult,
  CompleteTaskCommand,
  CompleteTaskResult,
  ExpireLeasesCommand,
  FailTaskCommand,
  FailTaskResult,
  FetchFailedCommand,
  FetchFailedResult,
  ForgetJobCommand,
  ForgetJobResult,
  OutputRemovedCommand,
  OutputRemovedResult,
  IgnoredReason,
  InputSplit,
  JobCounters,
  JobId,
  JobStatus,
  JobStatusName,
  LeasesResult,
  MapOutputLocation,
  MrApplied,
  MrFailure,
  MrResult,
  NextTaskRequest,
  NoTaskReason,
  NodeLostCommand,
  NodeLostResult,
  RebaseLeasesCommand,
  RenewTaskCommand,
  RenewTaskResult,
  ResolvedJobOptions,
  ShuffleDoneCommand,
  ShuffleSource,
  ShuffleDoneResult,
  SkippedRecord,
  SubmitJobCommand,
  SubmitJobResult,
  TaskAssignment,
  TaskCounters,
  TaskInfo,
  TaskKind,
  TaskRef,
  TaskState,
} from './types.js';
import {
  checkArray,
  checkFlag,
  checkId,
  checkInt,
  checkKey,
  checkLeaseMs,
  checkObject,
  checkPath,
  checkSha256,
  checkString,
  checkTime,
  checkWorkerId,
  clip,
  clipTo,
  invalid,
  preview,
} from './validate.js';

/** Version of the snapshot encoding; other versions are refused with CORRUPTION. */
export const MR_SNAPSHOT_VERSION = 1;

/**
 * Near the end of a phase (§3.6): backups start only once at most this
 * fraction of the phase's tasks (and at least one) is not done.
 */
export const BACKUP_REMAINING_FRACTION = 0.1;

/** A straggler runs longer than this many times the mean duration of the phase's finished tasks (§3.6). */
export const BACKUP_SLOWDOWN_FACTOR = 2;

// Plain MessagePack maps (no record extension), so snapshots decode anywhere.
const packr = new Packr({ useRecords: false });

// ------------------------------------------------------------ stored state
// Plain data only (arrays, objects, numbers, strings), so a snapshot is the
// state itself and equal states encode to equal bytes.

interface Attempt {
  readonly id: AttemptId;
  readonly jobId: JobId;
  readonly kind: TaskKind;
  readonly index: number;
  readonly attempt: number;
  readonly worker: string;
  readonly node: string;
  readonly backup: boolean;
  state: AttemptState;
  startedAt: number;
  leaseDeadline: number;
  shuffled: boolean;
}

interface Task {
  readonly kind: TaskKind;
  readonly index: number;
  state: TaskState;
  /** Attempts handed out. */
  attempts: number;
  /** Failures counted against maxTaskFailures. */
  failures: number;
  /** Ids of running attempts. */
  running: AttemptId[];
  /** Set while done; the committing attempt, its node and map partition sizes. */
  committed: { attemptId: AttemptId; node: string; partitionBytes: number[]; bytes: number } | null;
  /** The last committed counters (kept when a done map is reset, replaced when it commits again). */
  counters: TaskCounters | null;
  /** Duration of the committing attempt (for straggler detection). */
  durationMs: number;
  /** Map tasks: crashes per record offset, as [offset, crashes] pairs in first-crash order. */
  crashes: [number, number][];
  /** Map tasks: offsets the coordinator tells attempts to skip (§3.7), in the order they were decided. */
  skipOffsets: number[];
  /** Map tasks: the error of the crash that decided each of skipOffsets (absent in older snapshots). */
  skipErrors?: string[];
  /** Map tasks: offsets the committed attempt skipped on its own (listed, bounded). */
  selfSkipped: number[];
  /** Map tasks: what map threw on each of selfSkipped (absent in older snapshots). */
  selfSkippedErrors?: string[];
}

interface Job {
  readonly id: JobId;
  readonly name: string;
  readonly module: string;
  /** The sha256 of the module's bytes at submit (absent: submitted without one, or in an older snapshot). */
  readonly moduleSha256?: string;
  readonly output: string;
  readonly params: Record<string, string>;
  readonly options: ResolvedJobOptions;
  /** Emptied when the job finishes (see {@link Job.final}). */
  splits: InputSplit[];
  readonly reducers: number;
  readonly submittedAt: number;
  /** The submitter created the output directory (absent in older snapshots: false). */
  readonly outputCreated?: boolean;
  /** Failed or cancelled: the leader removed the output (absent in older snapshots: false). */
  outputRemoved?: boolean;
  status: JobStatusName;
  error: string | null;
  finishedAt: number | null;
  /** Emptied when the job finishes (see {@link Job.final}). */
  maps: Task[];
  reduces: Task[];
  /**
   * Set when the job finishes: its status as of then. A finished job keeps
   * only this (no tasks, splits or attempts), so the mrJobsMax kept jobs stay
   * small whatever their size was.
   */
  final: FinalSummary | null;
  mapsDone: number;
  reducesDone: number;
  counters: {
    mapAttempts: number;
    reduceAttempts: number;
    reExecutions: number;
    backupAttempts: number;
    failedAttempts: number;
    expiredAttempts: number;
    lostAttempts: number;
  };
}

/** What a finished job keeps (the parts of its status that came from its tasks). */
interface FinalSummary {
  progress: JobStatus['progress'];
  counters: JobCounters;
  inputBytes: number;
  skipped: SkippedRecord[];
  userCounters: Record<string, number>;
}

interface SnapshotShape {
  version: number;
  nextAttemptId: number;
  jobs: Job[];
  attempts: Attempt[];
}

/**
 * The bounds the coordinator enforces on its state. They come from
 * lib/limits.ts; tests pass tighter ones to reach the bounded paths. Every
 * replica must use the same bounds (they decide results).
 */
export interface CoordinatorBounds {
  /** Jobs kept (limits.mrJobsMax). */
  readonly jobsMax: number;
  /** Attempts of one task before its job fails (limits.mrTaskAttemptsMax). */
  readonly taskAttemptsMax: number;
  /** Records of one job skipped as bad before it fails (limits.mrSkippedRecordsMax). */
  readonly skippedRecordsMax: number;
}

/** The coordinator's state machine (see the file comment). */
export class MapReduceStateMachine {
  private jobsById = new Map<JobId, Job>();
  private attemptsById = new Map<AttemptId, Attempt>();
  /** Ids of running attempts (any job). */
  private running = new Set<AttemptId>();
  private nextAttemptId = 1;
  private readonly bounds: CoordinatorBounds;
  /** Per job and phase: no idle task below this index (a scan hint, not state). */
  private idleHints = new Map<JobId, { map: number; reduce: number }>();

  /** A coordinator with the bounds of lib/limits.ts, or tighter ones (tests). */
  constructor(bounds: Partial<CoordinatorBounds> = {}) {
    this.bounds = {
      jobsMax: bounds.jobsMax ?? limits.mrJobsMax,
      taskAttemptsMax: bounds.taskAttemptsMax ?? limits.mrTaskAttemptsMax,
      skippedRecordsMax: bounds.skippedRecordsMax ?? limits.mrSkippedRecordsMax,
    };
    assert(
      this.bounds.jobsMax >= 1 &&
        this.bounds.taskAttemptsMax >= 1 &&
        this.bounds.skippedRecordsMax >= 0,
      'coordinator bounds must be positive',
    );
  }

  /** Builds a state machine from {@link snapshot} bytes; CORRUPTION if they are not one. */
  static fromSnapshot(
    bytes: Uint8Array,
    bounds: Partial<CoordinatorBounds> = {},
  ): MapReduceStateMachine {
    const sm = new MapReduceStateMachine(bounds);
    sm.restore(bytes);
    return sm;
  }

  /**
   * Applies one committed command (any decoded value). Never throws for bad
   * input: a refused command comes back as `{ ok: false, error }` with nothing
   * changed. Throws only an AssertionError (a bug).
   */
  apply(command: unknown): MrApplied {
    try {
      return { ok: true, result: this.execute(command) };
    } catch (e) {
      if (!isCohortError(e)) throw e;
      return { ok: false, error: failureOf(e) };
    }
  }

  /** The whole state as bytes (MessagePack), equal on replicas that applied the same commands. */
  snapshot(): Uint8Array {
    const shape: SnapshotShape = {
      version: MR_SNAPSHOT_VERSION,
      nextAttemptId: this.nextAttemptId,
      jobs: [...this.jobsById.values()],
      attempts: [...this.attemptsById.values()],
    };
    return new Uint8Array(packr.pack(shape));
  }

  /** Replaces the state with a snapshot's; CORRUPTION (a CohortError) if the bytes are not one. */
  restore(bytes: Uint8Array): void {
    let decoded: unknown;
    try {
      decoded = packr.unpack(bytes.subarray());
    } catch (e) {
      throw new CohortError('CORRUPTION', 'MapReduce snapshot is not MessagePack', { cause: e });
    }
    const shape = decoded as Partial<SnapshotShape> | null;
    if (
      typeof shape !== 'object' ||
      shape === null ||
      shape.version !== MR_SNAPSHOT_VERSION ||
      typeof shape.nextAttemptId !== 'number' ||
      !Array.isArray(shape.jobs) ||
      !Array.isArray(shape.attempts)
    ) {
      throw new CohortError(
        'CORRUPTION',
        `MapReduce snapshot is not version ${MR_SNAPSHOT_VERSION} coordinator state`,
      );
    }
    const jobs = new Map<JobId, Job>();
    for (const job of shape.jobs) {
      if (typeof job !== 'object' || job === null || typeof job.id !== 'string') {
        throw new CohortError('CORRUPTION', 'MapReduce snapshot holds a malformed job');
      }
      jobs.set(job.id, job);
    }
    const attempts = new Map<AttemptId, Attempt>();
    const running = new Set<AttemptId>();
    for (const a of shape.attempts) {
      if (typeof a !== 'object' || a === null || typeof a.id !== 'number' || !jobs.has(a.jobId)) {
        throw new CohortError('CORRUPTION', 'MapReduce snapshot holds a malformed attempt');
      }
      attempts.set(a.id, a);
      if (a.state === 'running') running.add(a.id);
    }
    this.jobsById = jobs;
    this.attemptsById = attempts;
    this.running = running;
    this.nextAttemptId = shape.nextAttemptId;
    this.idleHints = new Map();
  }

  // ---------------------------------------------------------------- queries

  /** One job's status, progress and counters; undefined if unknown (or forgotten). */
  job(jobId: JobId): JobStatus | undefined {
    const job = this.jobsById.get(jobId);
    return job === undefined ? undefined : this.statusOf(job);
  }

  /** Every kept job, in submission order. */
  jobs(): JobStatus[] {
    return [...this.jobsById.values()].map((j) => this.statusOf(j));
  }

  /** Where map task `map` of the job has its committed output; undefined if the map is not done or the job finished. */
  mapOutput(jobId: JobId, map: number): MapOutputLocation | undefined {
    const task = this.jobsById.get(jobId)?.maps[map];
    if (task === undefined || task.committed === null) return undefined;
    return locationOf(task);
  }

  /** Every task of a running job (maps then reduces); empty if the job is unknown or finished (it keeps its status only). */
  tasks(jobId: JobId): TaskInfo[] {
    const job = this.jobsById.get(jobId);
    if (job === undefined) return [];
    return [...job.maps, ...job.reduces].map((t) => {
      const info: TaskInfo = {
        task: { jobId, kind: t.kind, index: t.index },
        state: t.state,
        attempts: t.attempts,
        failures: t.failures,
      };
      const extra: { committedAttempt?: AttemptId; node?: string; counters?: TaskCounters } = {};
      if (t.committed !== null) {
        extra.committedAttempt = t.committed.attemptId;
        if (t.kind === 'map') extra.node = t.committed.node;
      }
      if (t.counters !== null) extra.counters = t.counters;
      return { ...info, ...extra };
    });
  }

  /** Attempts in state `running`, in id order (what the leader's driver watches). */
  runningAttempts(): AttemptInfo[] {
    return [...this.running].sort((a, b) => a - b).map((id) => attemptInfo(this.mustAttempt(id)));
  }

  /** One attempt (any state) of a running job; undefined if unknown or its job finished. */
  attempt(attemptId: number): AttemptInfo | undefined {
    const a = this.attemptsById.get(attemptId);
    return a === undefined ? undefined : attemptInfo(a);
  }

  /**
   * What `assignTask { worker, now }` would hand out if applied now, without
   * changing anything: the leader answers an idle worker's poll from this
   * instead of proposing a command that would assign nothing. Only a hint:
   * the state may change before a proposed assignTask is applied.
   */
  peekAssignment(
    worker: string,
    now: number,
  ): { task: TaskRef; backup: boolean } | { reason: NoTaskReason } {
    const pick = this.pick(worker, now);
    if ('reason' in pick) return pick;
    return {
      task: { jobId: pick.job.id, kind: pick.task.kind, index: pick.task.index },
      backup: pick.backup,
    };
  }

  /**
   * The earliest lease deadline of a running attempt (Infinity if none): the
   * leader proposes `expireLeases { now }` once its clock reaches it.
   */
  nextLeaseDeadline(): number {
    let next = Infinity;
    for (const id of this.running) next = Math.min(next, this.mustAttempt(id).leaseDeadline);
    return next;
  }

  // --------------------------------------------------------------- dispatch

  private execute(command: unknown): MrResult {
    const c = checkObject(command, 'command');
    const type = c['type'];
    switch (type) {
      case 'submitJob':
        return this.submitJob(c as unknown as SubmitJobCommand);
      case 'assignTask':
        return this.assignTask(c as unknown as AssignTaskCommand);
      case 'renewTask':
        return this.renewTask(c as unknown as RenewTaskCommand);
      case 'completeTask':
        return this.completeTask(c as unknown as CompleteTaskCommand);
      case 'failTask':
        return this.failTask(c as unknown as FailTaskCommand);
      case 'expireLeases':
        return this.expireLeases(c as unknown as ExpireLeasesCommand);
      case 'rebaseLeases':
        return this.rebaseLeases(c as unknown as RebaseLeasesCommand);
      case 'nodeLost':
        return this.nodeLost(c as unknown as NodeLostCommand);
      case 'shuffleDone':
        return this.shuffleDone(c as unknown as ShuffleDoneCommand);
      case 'fetchFailed':
        return this.fetchFailed(c as unknown as FetchFailedCommand);
      case 'cancelJob':
        return this.cancelJob(c as unknown as CancelJobCommand);
      case 'forgetJob':
        return this.forgetJob(c as unknown as ForgetJobCommand);
      case 'outputRemoved':
        return this.outputRemoved(c as unknown as OutputRemovedCommand);
      default:
        return invalid(`unknown MapReduce command type ${preview(type)}`, 'type');
    }
  }

  // ---------------------------------------------------------------- submit

  private submitJob(c: SubmitJobCommand): SubmitJobResult {
    const jobId = checkId(c.jobId, 'jobId');
    const name = c.name === undefined ? jobId : checkString(c.name, 'name', limits.mrPathCharsMax);
    const module = checkPath(c.module, 'module');
    const moduleSha256 = checkSha256(c.moduleSha256, 'moduleSha256');
    const output = checkPath(c.output, 'output');
    const reducers = checkInt(c.reducers, 'reducers', 1, limits.mrReducersMax);
    const now = checkTime(c.now, 'now');
    const splits = checkSplits(c.splits);
    if (splits.length * reducers > limits.mrShuffleFilesMax) {
      invalid(
        `${splits.length} maps × ${reducers} reducers is more than ${limits.mrShuffleFilesMax} partition files`,
        'reducers',
      );
    }
    const params = checkParams(c.params);
    const options = resolveOptions(c.options);
    const outputCreated = checkFlag(c.outputCreated, 'outputCreated') ?? false;
    if (this.jobsById.has(jobId)) {
      throw new CohortError('ALREADY_EXISTS', `job ${jobId} was already submitted`, {
        details: { jobId },
      });
    }
    // Make room by forgetting the oldest finished jobs; refuse (changing nothing) if none is.
    const forget: JobId[] = [];
    let excess = this.jobsById.size + 1 - this.bounds.jobsMax;
    for (const job of this.jobsById.values()) {
      if (excess <= 0) break;
      if (isFinished(job.status)) {
        forget.push(job.id);
        excess--;
      }
    }
    if (excess > 0) {
      throw new CohortError(
        'OVERLOADED',
        `the coordinator keeps ${this.bounds.jobsMax} jobs and none of them is finished; retry later`,
        { details: { limit: 'mrJobsMax' } },
      );
    }
    for (const id of forget) this.dropJob(id);
    const job: Job = {
      id: jobId,
      name,
      module,
      ...(moduleSha256 === undefined ? {} : { moduleSha256 }),
      output,
      params,
      options,
      splits,
      reducers,
      submittedAt: now,
      outputCreated,
      outputRemoved: false,
      status: 'submitted',
      error: null,
      finishedAt: null,
      maps: splits.map((_, i) => newTask('map', i)),
      reduces: Array.from({ length: reducers }, (_, j) => newTask('reduce', j)),
      mapsDone: 0,
      reducesDone: 0,
      final: null,
      counters: {
        mapAttempts: 0,
        reduceAttempts: 0,
        reExecutions: 0,
        backupAttempts: 0,
        failedAttempts: 0,
        expiredAttempts: 0,
        lostAttempts: 0,
      },
    };
    this.jobsById.set(jobId, job);
    return { type: 'submitJob', jobId, maps: splits.length, reducers, forgotten: forget };
  }

  // ---------------------------------------------------------------- assign

  private assignTask(c: AssignTaskCommand): AssignTaskResult {
    const worker = checkWorkerId(c.worker);
    const node = checkId(c.node, 'node');
    const now = checkTime(c.now, 'now');
    const leaseMs = checkLeaseMs(c.leaseMs);
    const pick = this.pick(worker, now);
    if ('reason' in pick) return { type: 'assignTask', assignment: null, reason: pick.reason };
    return {
      type: 'assignTask',
      assignment: this.start(pick.job, pick.task, worker, node, now, leaseMs, pick.backup),
    };
  }

  /** The task assignTask would hand `worker` at `now`, or why none. */
  private pick(
    worker: string,
    now: number,
  ): { job: Job; task: Task; backup: boolean } | { reason: NoTaskReason } {
    let anyActive = false;
    let barrier = false;
    // Idle work first, over jobs in submission order: maps, then (after the barrier) reduces.
    for (const job of this.jobsById.values()) {
      if (isFinished(job.status)) continue;
      anyActive = true;
      const phase = phaseOf(job);
      const task = this.lowestIdle(job, phase);
      if (task !== undefined) return { job, task, backup: false };
      if (phase === 'map' && job.reduces.some((t) => t.state === 'idle')) barrier = true;
    }
    if (!anyActive) return { reason: 'noJobs' };
    // Nothing idle anywhere: a backup copy of a straggler near the end of its phase (§3.6).
    for (const job of this.jobsById.values()) {
      if (isFinished(job.status) || !job.options.backupTasks) continue;
      const task = this.straggler(job, worker, now);
      if (task !== undefined) return { job, task, backup: true };
    }
    return { reason: barrier ? 'barrier' : 'allAssigned' };
  }

  /** The lowest idle task of the job's phase, using (and advancing) the scan hint. */
  private lowestIdle(job: Job, phase: TaskKind): Task | undefined {
    const tasks = phase === 'map' ? job.maps : job.reduces;
    const hint = this.hintOf(job.id);
    let i = hint[phase];
    while (i < tasks.length && tasks[i]?.state !== 'idle') i++;
    hint[phase] = i;
    return tasks[i];
  }

  private hintOf(jobId: JobId): { map: number; reduce: number } {
    let hint = this.idleHints.get(jobId);
    if (hint === undefined) {
      hint = { map: 0, reduce: 0 };
      this.idleHints.set(jobId, hint);
    }
    return hint;
  }

  /**
   * MapReduce §3.6: "when a MapReduce operation is close to completion, the
   * master schedules backup executions of the remaining in-progress tasks".
   * Close: at most BACKUP_REMAINING_FRACTION of the phase is not done. A
   * candidate runs exactly one attempt, not on `worker`, for at least
   * backupAfterMs and BACKUP_SLOWDOWN_FACTOR × the phase's mean task time;
   * the oldest attempt wins.
   */
  private straggler(job: Job, worker: string, now: number): Task | undefined {
    const phase = phaseOf(job);
    const tasks = phase === 'map' ? job.maps : job.reduces;
    const done = phase === 'map' ? job.mapsDone : job.reducesDone;
    const remaining = tasks.length - done;
    if (
      remaining === 0 ||
      remaining > Math.max(1, Math.ceil(tasks.length * BACKUP_REMAINING_FRACTION))
    ) {
      return undefined;
    }
    let total = 0;
    let finished = 0;
    for (const t of tasks) {
      if (t.state === 'done') {
        total += t.durationMs;
        finished++;
      }
    }
    const slowAfter = Math.max(
      job.options.backupAfterMs,
      finished === 0 ? 0 : (BACKUP_SLOWDOWN_FACTOR * total) / finished,
    );
    let best: { task: Task; attempt: Attempt } | undefined;
    for (const t of tasks) {
      if (t.state !== 'inProgress' || t.running.length !== 1) continue;
      if (t.attempts >= this.bounds.taskAttemptsMax) continue;
      const a = this.mustAttempt(t.running[0] as AttemptId);
      if (a.worker === worker || now - a.startedAt < slowAfter) continue;
      if (best === undefined || a.startedAt < best.attempt.startedAt)
        best = { task: t, attempt: a };
    }
    return best?.task;
  }

  /** Starts a new attempt of `task` on `worker`. */
  private start(
    job: Job,
    task: Task,
    worker: string,
    node: string,
    now: number,
    leaseMs: number,
    backup: boolean,
  ): TaskAssignment {
    assert(task.state !== 'done', 'starting an attempt of a done task');
    assert(task.attempts < this.bounds.taskAttemptsMax, 'task attempts over the bound');
    if (!backup && task.attempts > 0) job.counters.reExecutions++;
    if (backup) job.counters.backupAttempts++;
    if (task.kind === 'map') job.counters.mapAttempts++;
    else job.counters.reduceAttempts++;
    task.attempts++;
    const a: Attempt = {
      id: this.nextAttemptId++,
      jobId: job.id,
      kind: task.kind,
      index: task.index,
      attempt: task.attempts,
      worker,
      node,
      backup,
      state: 'running',
      startedAt: now,
      leaseDeadline: now + leaseMs,
      shuffled: false,
    };
    this.attemptsById.set(a.id, a);
    this.running.add(a.id);
    task.running.push(a.id);
    task.state = 'inProgress';
    if (job.status === 'submitted') job.status = phaseOf(job) === 'map' ? 'mapping' : 'reducing';
    const base = {
      attemptId: a.id,
      attempt: a.attempt,
      backup,
      jobId: job.id,
      module: job.module,
      ...(job.moduleSha256 === undefined ? {} : { moduleSha256: job.moduleSha256 }),
      output: job.output,
      maps: job.maps.length,
      reducers: job.reducers,
      params: job.params,
      options: job.options,
      leaseDeadline: a.leaseDeadline,
    };
    if (task.kind === 'map') {
      const split = job.splits[task.index];
      assert(split !== undefined, 'map task without a split');
      return { ...base, kind: 'map', index: task.index, split, skipOffsets: [...task.skipOffsets] };
    }
    // The barrier: a reduce starts only when every map is done, so every location is known.
    assert(job.mapsDone === job.maps.length, 'reduce assigned before the barrier');
    const j = task.index;
    const mapOutputs = job.maps.map((m): ShuffleSource => {
      const loc = locationOf(m);
      return {
        map: loc.map,
        node: loc.node,
        attemptId: loc.attemptId,
        bytes: loc.partitionBytes[j] ?? 0,
      };
    });
    return { ...base, kind: 'reduce', index: task.index, mapOutputs };
  }

  // ----------------------------------------------------------------- renew

  private renewTask(c: RenewTaskCommand): RenewTaskResult {
    const attemptId = checkAttemptId(c.attemptId);
    const now = checkTime(c.now, 'now');
    const leaseMs = checkLeaseMs(c.leaseMs);
    const found = this.lookup(attemptId);
    if (found.kind === 'ignored')
      return { type: 'renewTask', action: 'stop', reason: found.reason };
    const { attempt: a, task } = found;
    if (task.state === 'done') return { type: 'renewTask', action: 'stop', reason: 'alreadyDone' };
    if (a.state === 'expired') {
      // Its task is not done: revive it rather than waste its work.
      a.state = 'running';
      this.running.add(a.id);
      task.running.push(a.id);
      task.state = 'inProgress';
    } else if (a.state !== 'running') {
      return { type: 'renewTask', action: 'stop', reason: 'attemptNotRunning' };
    }
    a.leaseDeadline = now + leaseMs;
    return { type: 'renewTask', action: 'continue', leaseDeadline: a.leaseDeadline };
  }

  // -------------------------------------------------------------- complete

  private completeTask(c: CompleteTaskCommand): CompleteTaskResult {
    // The next-task request is checked before anything changes (a refused command changes nothing).
    const next = c.next === undefined ? undefined : checkNext(c.next);
    const result = this.commitCompletion(c);
    if (next === undefined) return result;
    return {
      ...result,
      next: this.assignTask({ type: 'assignTask', ...next, now: c.now }),
    };
  }

  /** completeTask without its `next` request. */
  private commitCompletion(c: CompleteTaskCommand): CompleteTaskResult {
    const attemptId = checkAttemptId(c.attemptId);
    const now = checkTime(c.now, 'now');
    const counters = checkCounters(c.counters);
    const output = checkObject(c.output, 'output');
    const found = this.lookup(attemptId);
    if (found.kind === 'ignored') {
      return { type: 'completeTask', committed: false, task: found.task, reason: found.reason };
    }
    const { job, task, attempt: a } = found;
    const ref = refOf(a);
    // Validate the output against the task before deciding anything.
    let partitionBytes: number[] = [];
    let bytes: number;
    let selfSkipped: number[] = [];
    let selfSkippedErrors: string[] = [];
    if (output['kind'] !== a.kind) {
      invalid(
        `attempt ${a.id} runs a ${a.kind} task; the output is of kind ${preview(output['kind'])}`,
        'output.kind',
      );
    }
    if (a.kind === 'map') {
      const parts = checkArray(
        output['partitionBytes'],
        'output.partitionBytes',
        limits.mrReducersMax,
      );
      if (parts.length !== job.reducers) {
        invalid(
          `output.partitionBytes has ${parts.length} sizes; the job has ${job.reducers} reducers`,
          'output.partitionBytes',
        );
      }
      partitionBytes = parts.map((n, i) => checkInt(n, `output.partitionBytes[${i}]`));
      bytes = partitionBytes.reduce((s, n) => s + n, 0);
      if (output['skippedOffsets'] !== undefined) {
        const list = checkArray(
          output['skippedOffsets'],
          'output.skippedOffsets',
          limits.mrSkippedRecordsListedMax,
        );
        selfSkipped = list.map((n, i) => checkInt(n, `output.skippedOffsets[${i}]`));
      }
      if (output['skippedErrors'] !== undefined) {
        const list = checkArray(
          output['skippedErrors'],
          'output.skippedErrors',
          selfSkipped.length,
        );
        selfSkippedErrors = list.map((e, i) =>
          clipTo(
            checkString(e, `output.skippedErrors[${i}]`, Infinity),
            limits.mrSkippedErrorCharsMax,
          ),
        );
      }
    } else {
      bytes = checkInt(output['bytes'], 'output.bytes');
    }
    if (task.state === 'done')
      return { type: 'completeTask', committed: false, task: ref, reason: 'alreadyDone' };
    if (a.state !== 'running' && a.state !== 'expired') {
      return { type: 'completeTask', committed: false, task: ref, reason: 'attemptNotRunning' };
    }
    // Commit: the first completion wins (§3.3); every other attempt of the task is superseded.
    this.endAttempt(a, 'committed');
    for (const other of [...task.running]) this.endAttempt(this.mustAttempt(other), 'superseded');
    task.state = 'done';
    task.committed = { attemptId: a.id, node: a.node, partitionBytes, bytes };
    task.counters = counters;
    task.durationMs = Math.max(0, now - a.startedAt);
    if (a.kind === 'map') {
      task.selfSkipped = selfSkipped;
      task.selfSkippedErrors = selfSkippedErrors;
      job.mapsDone++;
      if (job.mapsDone === job.maps.length) job.status = 'reducing';
    } else {
      job.reducesDone++;
      // Every partition's output is written: done, even if a map was meanwhile reset.
      if (job.reducesDone === job.reduces.length) this.finishJob(job, 'done', null, now);
    }
    return { type: 'completeTask', committed: true, task: ref, jobStatus: job.status };
  }

  // ------------------------------------------------------------------ fail

  private failTask(c: FailTaskCommand): FailTaskResult {
    const attemptId = checkAttemptId(c.attemptId);
    const now = checkTime(c.now, 'now');
    if (typeof c.error !== 'string')
      invalid(`error must be a string, not ${preview(c.error)}`, 'error');
    const error = clip(c.error);
    const offset =
      c.badRecordOffset === undefined ? undefined : checkInt(c.badRecordOffset, 'badRecordOffset');
    const found = this.lookup(attemptId);
    if (found.kind === 'ignored')
      return { type: 'failTask', action: 'ignored', task: found.task, reason: found.reason };
    const { job, task, attempt: a } = found;
    const ref = refOf(a);
    if (task.state === 'done')
      return { type: 'failTask', action: 'ignored', task: ref, reason: 'alreadyDone' };
    if (a.state !== 'running' && a.state !== 'expired') {
      return { type: 'failTask', action: 'ignored', task: ref, reason: 'attemptNotRunning' };
    }
    this.endAttempt(a, 'failed');
    job.counters.failedAttempts++;
    const split = job.splits[task.index];
    if (
      a.kind === 'map' &&
      job.options.skipBadRecords &&
      offset !== undefined &&
      split !== undefined &&
      offset >= split.start &&
      offset < split.end &&
      !task.skipOffsets.includes(offset)
    ) {
      // §3.7: count the record's crash instead of a task failure; skip it after enough crashes.
      let entry = task.crashes.find(([o]) => o === offset);
      if (entry === undefined) {
        entry = [offset, 0];
        task.crashes.push(entry);
      }
      entry[1]++;
      if (entry[1] >= job.options.skipAfterCrashes) {
        task.skipOffsets.push(offset);
        (task.skipErrors ??= []).push(clipTo(error, limits.mrSkippedErrorCharsMax));
        if (this.skippedCount(job) > this.bounds.skippedRecordsMax) {
          this.finishJob(
            job,
            'failed',
            `more than ${this.bounds.skippedRecordsMax} bad records skipped; last: map task ${task.index}: ${error}`,
            now,
          );
          return { type: 'failTask', action: 'jobFailed', task: ref };
        }
        this.afterAttemptEnded(job, task, now);
        return {
          type: 'failTask',
          action: isFinished(job.status) ? 'jobFailed' : 'skipRecord',
          task: ref,
        };
      }
      this.afterAttemptEnded(job, task, now);
      return {
        type: 'failTask',
        action: isFinished(job.status) ? 'jobFailed' : 'retry',
        task: ref,
      };
    }
    task.failures++;
    if (task.failures >= job.options.maxTaskFailures) {
      this.finishJob(
        job,
        'failed',
        clip(`${a.kind} task ${task.index} failed ${task.failures} times; last error: ${error}`),
        now,
      );
      return { type: 'failTask', action: 'jobFailed', task: ref };
    }
    this.afterAttemptEnded(job, task, now);
    return { type: 'failTask', action: isFinished(job.status) ? 'jobFailed' : 'retry', task: ref };
  }

  // ---------------------------------------------------------------- leases

  private expireLeases(c: ExpireLeasesCommand): LeasesResult {
    const now = checkTime(c.now, 'now');
    const expired: AttemptId[] = [];
    for (const id of [...this.running].sort((x, y) => x - y)) {
      // An earlier expiry may have failed a job (its attempt bound) and dropped its attempts.
      const a = this.attemptsById.get(id);
      if (a?.state !== 'running' || a.leaseDeadline > now) continue;
      const job = this.mustJob(a.jobId);
      const task = taskOf(job, a);
      this.endAttempt(a, 'expired');
      job.counters.expiredAttempts++;
      expired.push(id);
      this.afterAttemptEnded(job, task, now);
    }
    return { type: 'expireLeases', attempts: expired };
  }

  private rebaseLeases(c: RebaseLeasesCommand): LeasesResult {
    const now = checkTime(c.now, 'now');
    const leaseMs = checkLeaseMs(c.leaseMs);
    const moved = [...this.running].sort((x, y) => x - y);
    for (const id of moved) {
      const a = this.mustAttempt(id);
      a.leaseDeadline = now + leaseMs;
      // The old leader's clock is not this one's: restart the straggler clock too.
      a.startedAt = now;
    }
    return { type: 'rebaseLeases', attempts: moved };
  }

  // ------------------------------------------------------------- node lost

  private nodeLost(c: NodeLostCommand): NodeLostResult {
    const node = checkId(c.node, 'node');
    const now = checkTime(c.now, 'now');
    const keepOutputs = checkFlag(c.keepOutputs, 'keepOutputs') ?? false;
    const reset: AttemptId[] = [];
    const touched: { job: Job; task: Task }[] = [];
    for (const a of this.attemptsById.values()) {
      if (a.node !== node || (a.state !== 'running' && a.state !== 'expired')) continue;
      const job = this.mustJob(a.jobId);
      if (a.state === 'running') {
        reset.push(a.id);
        job.counters.lostAttempts++;
        touched.push({ job, task: taskOf(job, a) });
      }
      this.endAttempt(a, 'lost');
    }
    const redone = keepOutputs ? [] : this.loseOutputs(node, now);
    for (const { job, task } of touched) this.afterAttemptEnded(job, task, now);
    reset.sort((x, y) => x - y);
    return { type: 'nodeLost', resetAttempts: reset, redoneMaps: redone };
  }

  /**
   * §3.3: completed map tasks whose output lived on `node` are re-executed —
   * here only in jobs where some reduce still needs them (not done, and no
   * running attempt of it has fetched everything). Returns the maps redone.
   */
  private loseOutputs(node: string, now: number): TaskRef[] {
    const redone: TaskRef[] = [];
    for (const job of this.jobsById.values()) {
      if (isFinished(job.status)) continue;
      const needed = job.reduces.some(
        (r) => r.state !== 'done' && !r.running.some((id) => this.mustAttempt(id).shuffled),
      );
      if (!needed) continue;
      for (const m of job.maps) {
        if (isFinished(job.status)) break;
        if (m.state === 'done' && m.committed?.node === node) {
          this.undoMap(job, m, now);
          redone.push({ jobId: job.id, kind: 'map', index: m.index });
        }
      }
    }
    return redone;
  }

  private shuffleDone(c: ShuffleDoneCommand): ShuffleDoneResult {
    const attemptId = checkAttemptId(c.attemptId);
    checkTime(c.now, 'now');
    const found = this.lookup(attemptId);
    if (found.kind === 'ignored')
      return { type: 'shuffleDone', recorded: false, reason: found.reason };
    const { task, attempt: a } = found;
    if (a.kind !== 'reduce')
      invalid(`attempt ${a.id} runs a map task; only reduce attempts shuffle`, 'attemptId');
    if (task.state === 'done')
      return { type: 'shuffleDone', recorded: false, reason: 'alreadyDone' };
    if (a.state !== 'running')
      return { type: 'shuffleDone', recorded: false, reason: 'attemptNotRunning' };
    a.shuffled = true;
    return { type: 'shuffleDone', recorded: true };
  }

  private fetchFailed(c: FetchFailedCommand): FetchFailedResult {
    const attemptId = checkAttemptId(c.attemptId);
    const node = checkId(c.node, 'node');
    const now = checkTime(c.now, 'now');
    const release = checkFlag(c.release, 'release') ?? false;
    const mapIndex = checkInt(c.map, 'map', 0, limits.mrMapTasksMax - 1);
    const found = this.lookup(attemptId);
    if (found.kind === 'ignored')
      return {
        type: 'fetchFailed',
        redo: false,
        redoneMaps: [],
        released: false,
        reason: found.reason,
      };
    const { job, task, attempt: a } = found;
    if (a.kind !== 'reduce')
      invalid(`attempt ${a.id} runs a map task; only reduce attempts fetch`, 'attemptId');
    const map = job.maps[mapIndex];
    if (map === undefined)
      invalid(`job ${job.id} has ${job.maps.length} map tasks, not ${mapIndex + 1}`, 'map');
    if (a.state !== 'running') {
      return {
        type: 'fetchFailed',
        redo: false,
        redoneMaps: [],
        released: false,
        reason: task.state === 'done' ? 'alreadyDone' : 'attemptNotRunning',
      };
    }
    let redoneMaps: TaskRef[] = [];
    if (map.state === 'done' && map.committed?.node === node) {
      // The node holding this output is unreachable: every output it holds is
      // lost, not only this one (§3.3). Redo them all at once, so the reduces
      // find out once, not once per map (each discovery released a reduce).
      redoneMaps = this.loseOutputs(node, now);
    }
    let released = false;
    if (release && task.state !== 'done' && !isFinished(job.status)) {
      this.endAttempt(a, 'released');
      this.afterAttemptEnded(job, task, now);
      released = true;
    }
    // Not redone: the map's output is no longer where the report says (already being redone).
    const redo = redoneMaps.length > 0;
    return redo
      ? { type: 'fetchFailed', redo, redoneMaps, released }
      : { type: 'fetchFailed', redo, redoneMaps, released, reason: 'staleLocation' };
  }

  // ------------------------------------------------------ cancel, forget

  private cancelJob(c: CancelJobCommand): CancelJobResult {
    const jobId = checkId(c.jobId, 'jobId');
    const now = checkTime(c.now, 'now');
    const reason =
      c.reason === undefined ? 'cancelled' : clip(checkString(c.reason, 'reason', Infinity));
    const job = this.jobsById.get(jobId);
    if (job === undefined) throw notFound(jobId);
    if (isFinished(job.status)) {
      throw new CohortError('FAILED_PRECONDITION', `job ${jobId} is already ${job.status}`, {
        details: { jobId, status: job.status },
      });
    }
    const stopped = this.finishJob(job, 'cancelled', reason, now);
    return { type: 'cancelJob', jobId, stoppedAttempts: stopped };
  }

  private outputRemoved(c: OutputRemovedCommand): OutputRemovedResult {
    const jobId = checkId(c.jobId, 'jobId');
    const job = this.jobsById.get(jobId);
    if (job === undefined) throw notFound(jobId);
    if (job.status !== 'failed' && job.status !== 'cancelled') {
      throw new CohortError(
        'FAILED_PRECONDITION',
        `job ${jobId} is ${job.status}; only a failed or cancelled job's output is removed`,
        { details: { jobId, status: job.status } },
      );
    }
    job.outputRemoved = true;
    return { type: 'outputRemoved', jobId };
  }

  /**
   * Failed and cancelled jobs whose output the leader has not removed yet
   * (see OutputRemovedCommand): what it removes, and whether it created the
   * directory.
   */
  outputsToRemove(): { jobId: JobId; output: string; outputCreated: boolean }[] {
    const out: { jobId: JobId; output: string; outputCreated: boolean }[] = [];
    for (const job of this.jobsById.values()) {
      if ((job.status === 'failed' || job.status === 'cancelled') && job.outputRemoved !== true) {
        out.push({ jobId: job.id, output: job.output, outputCreated: job.outputCreated === true });
      }
    }
    return out;
  }

  private forgetJob(c: ForgetJobCommand): ForgetJobResult {
    const jobId = checkId(c.jobId, 'jobId');
    const job = this.jobsById.get(jobId);
    if (job === undefined) throw notFound(jobId);
    if (!isFinished(job.status)) {
      throw new CohortError(
        'FAILED_PRECONDITION',
        `job ${jobId} is ${job.status}; cancel it first`,
        {
          details: { jobId, status: job.status },
        },
      );
    }
    this.dropJob(jobId);
    return { type: 'forgetJob', jobId };
  }

  // --------------------------------------------------------------- helpers

  /** Resolves an attempt id to its attempt, job and task, or says why the command is moot. */
  private lookup(
    attemptId: AttemptId,
  ):
    | { kind: 'found'; attempt: Attempt; job: Job; task: Task }
    | { kind: 'ignored'; reason: IgnoredReason; task: TaskRef | null } {
    const a = this.attemptsById.get(attemptId);
    if (a === undefined) {
      // Handed out but no longer kept: its job finished (and may be forgotten).
      const reason = attemptId < this.nextAttemptId ? 'jobFinished' : 'unknownAttempt';
      return { kind: 'ignored', reason, task: null };
    }
    const job = this.mustJob(a.jobId);
    if (isFinished(job.status)) return { kind: 'ignored', reason: 'jobFinished', task: refOf(a) };
    return { kind: 'found', attempt: a, job, task: taskOf(job, a) };
  }

  /** Moves a running or expired attempt to a final state, off its task's running list. */
  private endAttempt(a: Attempt, state: AttemptState): void {
    if (a.state === 'running') {
      this.running.delete(a.id);
      const task = taskOf(this.mustJob(a.jobId), a);
      const i = task.running.indexOf(a.id);
      assert(i >= 0, `running attempt ${a.id} missing from its task`);
      task.running.splice(i, 1);
    }
    a.state = state;
  }

  /**
   * After an attempt of a not-done task ended: the task is idle when no
   * attempt runs it; a task that used up limits.mrTaskAttemptsMax fails its job.
   */
  private afterAttemptEnded(job: Job, task: Task, now: number): void {
    if (isFinished(job.status) || task.state === 'done' || task.running.length > 0) return;
    task.state = 'idle';
    const hint = this.hintOf(job.id);
    hint[task.kind] = Math.min(hint[task.kind], task.index);
    if (task.attempts >= this.bounds.taskAttemptsMax) {
      this.finishJob(
        job,
        'failed',
        `${task.kind} task ${task.index} was attempted ${task.attempts} times without finishing (limits.mrTaskAttemptsMax)`,
        now,
      );
    }
  }

  /** A done map task whose output is lost goes back to idle; the job is mapping again (§3.3). */
  private undoMap(job: Job, m: Task, now: number): void {
    assert(m.state === 'done' && m.kind === 'map', 'undoing a map that is not done');
    m.state = 'idle';
    m.committed = null;
    job.mapsDone--;
    if (job.status === 'reducing') job.status = 'mapping';
    const hint = this.hintOf(job.id);
    hint.map = Math.min(hint.map, m.index);
    if (m.attempts >= this.bounds.taskAttemptsMax) {
      // Cannot run again; the job cannot finish.
      this.finishJob(
        job,
        'failed',
        `map task ${m.index} lost its output after ${m.attempts} attempts (limits.mrTaskAttemptsMax)`,
        now,
      );
    }
  }

  /** Ends a job; its running attempts are told to stop. Returns their ids. */
  private finishJob(
    job: Job,
    status: 'done' | 'failed' | 'cancelled',
    error: string | null,
    now: number,
  ): AttemptId[] {
    const stopped: AttemptId[] = [];
    for (const t of [...job.maps, ...job.reduces]) {
      for (const id of [...t.running]) {
        stopped.push(id);
        this.endAttempt(this.mustAttempt(id), 'stopped');
      }
      if (t.state === 'inProgress') t.state = 'idle';
    }
    job.status = status;
    job.error = error;
    job.finishedAt = now;
    // Keep the status only: no task, split or attempt of a finished job is needed again.
    const st = this.statusOf(job);
    job.final = {
      progress: st.progress,
      counters: st.counters,
      inputBytes: st.inputBytes,
      skipped: [...st.skipped],
      userCounters: { ...st.userCounters },
    };
    job.maps = [];
    job.reduces = [];
    job.splits = [];
    for (const [id, a] of this.attemptsById) if (a.jobId === job.id) this.attemptsById.delete(id);
    this.idleHints.delete(job.id);
    return stopped.sort((x, y) => x - y);
  }

  private dropJob(jobId: JobId): void {
    const job = this.mustJob(jobId);
    assert(isFinished(job.status), 'forgetting a running job');
    for (const [id, a] of this.attemptsById) if (a.jobId === jobId) this.attemptsById.delete(id);
    this.jobsById.delete(jobId);
    this.idleHints.delete(jobId);
  }

  private skippedCount(job: Job): number {
    let n = 0;
    for (const m of job.maps) n += m.skipOffsets.length + (m.counters?.skippedRecords ?? 0);
    return n;
  }

  private mustJob(jobId: JobId): Job {
    const job = this.jobsById.get(jobId);
    assert(job !== undefined, `job ${jobId} of a kept attempt is missing`);
    return job;
  }

  private mustAttempt(id: AttemptId): Attempt {
    const a = this.attemptsById.get(id);
    assert(a !== undefined, `attempt ${id} is missing`);
    return a;
  }

  private statusOf(job: Job): JobStatus {
    const extra: { error?: string; finishedAt?: number; outputRemoved?: boolean } = {};
    if (job.error !== null) extra.error = job.error;
    if (job.finishedAt !== null) extra.finishedAt = job.finishedAt;
    if (job.status === 'failed' || job.status === 'cancelled') {
      extra.outputRemoved = job.outputRemoved === true;
    }
    const head = {
      jobId: job.id,
      name: job.name,
      module: job.module,
      ...(job.moduleSha256 === undefined ? {} : { moduleSha256: job.moduleSha256 }),
      output: job.output,
      params: job.params,
      options: job.options,
      status: job.status,
      submittedAt: job.submittedAt,
      outputCreated: job.outputCreated === true,
    };
    if (job.final !== null) return { ...head, ...job.final, ...extra };
    const sum = {
      mapInputRecords: 0,
      mapInputBytes: 0,
      mapOutputRecords: 0,
      mapOutputBytes: 0,
      reduceInputRecords: 0,
      reduceInputBytes: 0,
      reduceOutputRecords: 0,
      reduceOutputBytes: 0,
      skippedRecords: 0,
    };
    const user = new Map<string, number>();
    const skipped: SkippedRecord[] = [];
    let mapsRunning = 0;
    let reducesRunning = 0;
    for (const t of [...job.maps, ...job.reduces]) {
      if (t.state === 'inProgress') {
        if (t.kind === 'map') mapsRunning++;
        else reducesRunning++;
      }
      if (t.kind === 'map') {
        const file = job.splits[t.index]?.file ?? '';
        const listed = (offsets: number[], errors: string[] | undefined, max: number): void => {
          for (let i = 0; i < offsets.length && i < max; i++) {
            if (skipped.length >= this.bounds.skippedRecordsMax) return;
            skipped.push({
              map: t.index,
              file,
              offset: offsets[i] as number,
              error: errors?.[i] ?? '',
            });
          }
        };
        listed(t.skipOffsets, t.skipErrors, Infinity);
        listed(t.selfSkipped, t.selfSkippedErrors, limits.mrSkippedRecordsListedMax);
        sum.skippedRecords += t.skipOffsets.length;
      }
      const c = t.counters;
      if (c === null) continue;
      if (t.kind === 'map') {
        sum.mapInputRecords += c.inputRecords;
        sum.mapInputBytes += c.inputBytes;
        sum.mapOutputRecords += c.outputRecords;
        sum.mapOutputBytes += c.outputBytes;
        sum.skippedRecords += c.skippedRecords ?? 0;
      } else {
        sum.reduceInputRecords += c.inputRecords;
        sum.reduceInputBytes += c.inputBytes;
        sum.reduceOutputRecords += c.outputRecords;
        sum.reduceOutputBytes += c.outputBytes;
      }
      for (const [k, v] of Object.entries(c.user ?? {})) user.set(k, (user.get(k) ?? 0) + v);
    }
    const counters: JobCounters = { ...sum, ...job.counters };
    const status: JobStatus = {
      ...head,
      progress: {
        maps: job.maps.length,
        mapsDone: job.mapsDone,
        mapsRunning,
        reduces: job.reduces.length,
        reducesDone: job.reducesDone,
        reducesRunning,
      },
      counters,
      inputBytes: job.splits.reduce((s, x) => s + (x.end - x.start), 0),
      skipped,
      userCounters: Object.fromEntries([...user].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
    };
    return { ...status, ...extra };
  }
}

// ------------------------------------------------------------ free helpers

function newTask(kind: TaskKind, index: number): Task {
  return {
    kind,
    index,
    state: 'idle',
    attempts: 0,
    failures: 0,
    running: [],
    committed: null,
    counters: null,
    durationMs: 0,
    crashes: [],
    skipOffsets: [],
    skipErrors: [],
    selfSkipped: [],
    selfSkippedErrors: [],
  };
}

function isFinished(status: JobStatusName): boolean {
  return status === 'done' || status === 'failed' || status === 'cancelled';
}

/** The phase a job is in: map until every map is done (the barrier), then reduce. */
function phaseOf(job: Job): TaskKind {
  return job.mapsDone < job.maps.length ? 'map' : 'reduce';
}

function taskOf(job: Job, a: Attempt): Task {
  const task = (a.kind === 'map' ? job.maps : job.reduces)[a.index];
  assert(task !== undefined, `attempt ${a.id} names a missing task`);
  return task;
}

function refOf(a: Attempt): TaskRef {
  return { jobId: a.jobId, kind: a.kind, index: a.index };
}

function locationOf(m: Task): MapOutputLocation {
  assert(m.committed !== null, `map ${m.index} has no committed output`);
  return {
    map: m.index,
    node: m.committed.node,
    attemptId: m.committed.attemptId,
    partitionBytes: m.committed.partitionBytes,
  };
}

function attemptInfo(a: Attempt): AttemptInfo {
  return {
    attemptId: a.id,
    task: refOf(a),
    attempt: a.attempt,
    worker: a.worker,
    node: a.node,
    state: a.state,
    backup: a.backup,
    startedAt: a.startedAt,
    leaseDeadline: a.leaseDeadline,
    shuffled: a.shuffled,
  };
}

function notFound(jobId: JobId): CohortError {
  return new CohortError('NOT_FOUND', `job ${jobId} is not known (never submitted, or forgotten)`, {
    details: { jobId },
  });
}

/** A completeTask's `next` request, checked as assignTask checks its fields. */
function checkNext(value: unknown): NextTaskRequest {
  const o = checkObject(value, 'next');
  return {
    worker: checkWorkerId(o['worker'], 'next.worker'),
    node: checkId(o['node'], 'next.node'),
    leaseMs: checkLeaseMs(o['leaseMs'], 'next.leaseMs'),
  };
}

function checkAttemptId(value: unknown): AttemptId {
  return checkInt(value, 'attemptId', 1);
}

function checkSplits(value: unknown): InputSplit[] {
  const list = checkArray(value, 'splits', limits.mrMapTasksMax);
  let chars = 0;
  return list.map((raw, i) => {
    const s = checkObject(raw, `splits[${i}]`);
    const file = checkPath(s['file'], `splits[${i}].file`);
    chars += file.length;
    if (chars > limits.mrSplitPathCharsMax) {
      invalid(
        `split file names total more than ${limits.mrSplitPathCharsMax} characters`,
        'splits',
      );
    }
    const start = checkInt(s['start'], `splits[${i}].start`);
    const end = checkInt(s['end'], `splits[${i}].end`, start);
    return { file, start, end };
  });
}

function checkParams(value: unknown): Record<string, string> {
  if (value === undefined) return {};
  const obj = checkObject(value, 'params');
  let chars = 0;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj)) {
    checkKey(k, 'params name', limits.mrPathCharsMax);
    if (typeof v !== 'string') invalid(`params.${k} must be a string, not ${preview(v)}`, 'params');
    chars += k.length + v.length;
    if (chars > limits.mrParamsCharsMax)
      invalid(`params total more than ${limits.mrParamsCharsMax} characters`, 'params');
    out[k] = v;
  }
  return out;
}

function resolveOptions(value: unknown): ResolvedJobOptions {
  const o = value === undefined ? {} : checkObject(value, 'options');
  return {
    skipBadRecords: checkFlag(o['skipBadRecords'], 'options.skipBadRecords') ?? false,
    skipAfterCrashes:
      o['skipAfterCrashes'] === undefined
        ? 2
        : checkInt(o['skipAfterCrashes'], 'options.skipAfterCrashes', 1, limits.mrTaskAttemptsMax),
    maxTaskFailures:
      o['maxTaskFailures'] === undefined
        ? limits.mrTaskFailuresDefault
        : checkInt(o['maxTaskFailures'], 'options.maxTaskFailures', 1, limits.mrTaskAttemptsMax),
    backupTasks: checkFlag(o['backupTasks'], 'options.backupTasks') ?? true,
    backupAfterMs:
      o['backupAfterMs'] === undefined
        ? limits.mrBackupAfterMsDefault
        : checkInt(o['backupAfterMs'], 'options.backupAfterMs', 0, limits.mrLeaseMsMax),
  };
}

function checkCounters(value: unknown): TaskCounters {
  const c = checkObject(value, 'counters');
  const base = {
    inputRecords: checkInt(c['inputRecords'], 'counters.inputRecords'),
    inputBytes: checkInt(c['inputBytes'], 'counters.inputBytes'),
    outputRecords: checkInt(c['outputRecords'], 'counters.outputRecords'),
    outputBytes: checkInt(c['outputBytes'], 'counters.outputBytes'),
  };
  const extra: { skippedRecords?: number; user?: Record<string, number> } = {};
  if (c['skippedRecords'] !== undefined)
    extra.skippedRecords = checkInt(c['skippedRecords'], 'counters.skippedRecords');
  if (c['user'] !== undefined) {
    const u = checkObject(c['user'], 'counters.user');
    const entries = Object.entries(u);
    if (entries.length > limits.mrUserCountersMax) {
      invalid(
        `counters.user has ${entries.length} counters, more than ${limits.mrUserCountersMax}`,
        'counters.user',
      );
    }
    const user: Record<string, number> = {};
    for (const [k, v] of entries) {
      checkKey(k, 'counters.user name', limits.rpcNameCharsMax);
      user[k] = checkInt(v, `counters.user.${k}`, -Number.MAX_SAFE_INTEGER);
    }
    extra.user = user;
  }
  return { ...base, ...extra };
}

/** The plain-data failure of a thrown CohortError. */
function failureOf(e: CohortError): MrFailure {
  return { code: e.code, message: e.message, definite: e.definite, details: { ...e.details } };
}
