/**
 * The MapReduce coordinator's commands, results and query answers: plain data
 * (strings, numbers, booleans, arrays, objects) that MessagePack carries as is,
 * so a command travels in a Raft entry (`{ module: 'mapreduce', command }`)
 * and a result comes back to its proposer unchanged.
 *
 * The coordinator is the master of the MapReduce paper (Dean & Ghemawat,
 * OSDI 2004, §3.1–§3.6), made a replicated state machine so that its state
 * survives the leader: every command is applied by every replica in log order.
 * Time is data: each command that needs it carries `now` (the proposer's clock,
 * in ms) and lease lengths; the state machine never reads a clock. Leases only
 * decide *when* work is re-executed, never *whether* output is correct (first
 * completion wins and is committed once), so a leader's clock that runs early
 * or late costs re-execution, not correctness.
 *
 * ```ts
 * const sm = new MapReduceStateMachine();
 * sm.apply({ type: 'submitJob', jobId: 'wc-1', module: '/jobs/wc.js', output: '/out',
 *            splits: [{ file: '/in/a.txt', start: 0, end: 1 << 20 }], reducers: 2, now });
 * const a = sm.apply({ type: 'assignTask', worker: 'n1:w0', node: 'n1', now, leaseMs: 10_000 });
 * // a.ok && a.result.type === 'assignTask' && a.result.assignment?.kind === 'map'
 * sm.apply({ type: 'completeTask', attemptId: 1, now,
 *            output: { kind: 'map', partitionBytes: [10, 12] },
 *            counters: { inputRecords: 3, inputBytes: 40, outputRecords: 5, outputBytes: 22 } });
 * sm.job('wc-1');    // status, progress, counters
 * ```
 */
import type { ErrorCode } from '../../lib/errors.js';

// ------------------------------------------------------------------ basics

/** A job's id, chosen by the submitter (so a retried submit is recognised): 1..64 of [A-Za-z0-9._:-]. */
export type JobId = string;

/**
 * A task attempt's id: a positive integer the state machine hands out in
 * assignment order (1, 2, 3, ...), the same on every replica. Names the
 * attempt in every later command, and the attempt's files on the worker.
 */
export type AttemptId = number;

/** Whether a task is a map task (one per input split) or a reduce task (one per partition). */
export type TaskKind = 'map' | 'reduce';

/** One map task's input: the byte range `[start, end)` of `file`, cut on line boundaries by the job API. */
export interface InputSplit {
  readonly file: string;
  readonly start: number;
  readonly end: number;
}

/** Names one task of one job. */
export interface TaskRef {
  readonly jobId: JobId;
  readonly kind: TaskKind;
  /** Map: the split's index in `splits`; reduce: the partition, 0..reducers-1. */
  readonly index: number;
}

/**
 * A job's life. `submitted` until its first task is assigned; `mapping` while
 * any map task is not done (a job may go back from `reducing` to `mapping`
 * when a node holding map output dies, MapReduce §3.3); `reducing` once every
 * map is done (the barrier); then one of the three final states.
 */
export type JobStatusName = 'submitted' | 'mapping' | 'reducing' | 'done' | 'failed' | 'cancelled';

/** Per-job choices, fixed at submission. Every field is optional; defaults in the comments. */
export interface JobOptions {
  /**
   * Skip a record that crashed its map function `skipAfterCrashes` times
   * (MapReduce §3.7 "skipping bad records"); skipped records are listed in the
   * job's status. Default false: such a crash counts as a task failure.
   */
  readonly skipBadRecords?: boolean;
  /** Crashes of one record (in different attempts) before it is skipped. Default 2, at least 1. */
  readonly skipAfterCrashes?: number;
  /**
   * Failures of one task (failTask without a skippable record) before the
   * whole job fails. Default limits.mrTaskFailuresDefault (4, as Hadoop). Lease
   * expiries and lost nodes are not failures (the worker died, not the task).
   */
  readonly maxTaskFailures?: number;
  /** Run backup copies of stragglers near the end of a phase (MapReduce §3.6). Default true. */
  readonly backupTasks?: boolean;
  /**
   * A running attempt is a straggler once it has run this long (ms) and
   * longer than twice the mean duration of the phase's finished tasks.
   * Default limits.mrBackupAfterMsDefault.
   */
  readonly backupAfterMs?: number;
}

/** The job's options with every default filled in (as stored and as handed to workers). */
export interface ResolvedJobOptions {
  readonly skipBadRecords: boolean;
  readonly skipAfterCrashes: number;
  readonly maxTaskFailures: number;
  readonly backupTasks: boolean;
  readonly backupAfterMs: number;
}

/** What a worker reports about the records and bytes one task read and wrote; summed per job. */
export interface TaskCounters {
  readonly inputRecords: number;
  readonly inputBytes: number;
  readonly outputRecords: number;
  readonly outputBytes: number;
  /**
   * Records the map skipped on its own (in-process skipping, the job API's
   * skipBadRecords), not counting those the coordinator named in skipOffsets.
   */
  readonly skippedRecords?: number;
  /** The job's own counters (MapContext.count), by name; summed per job. */
  readonly user?: Readonly<Record<string, number>>;
}

/** A map attempt's output: its R partition files, on the node that ran it. */
export interface MapOutput {
  readonly kind: 'map';
  /** Bytes of partition r's file, r = 0..reducers-1 (length must equal the job's reducers). */
  readonly partitionBytes: readonly number[];
  /** Offsets of records the map skipped on its own (listed in the job status, up to limits.mrSkippedRecordsListedMax per task). */
  readonly skippedOffsets?: readonly number[];
  /** Why each of `skippedOffsets` was skipped (what map threw), in the same order; kept up to limits.mrSkippedErrorCharsMax characters each. */
  readonly skippedErrors?: readonly string[];
}

/** A reduce attempt's output: its partition's file, renamed into the output directory. */
export interface ReduceOutput {
  readonly kind: 'reduce';
  /** Bytes of the output file. */
  readonly bytes: number;
}

/** Where map task m's committed output lives (the reducers' shuffle source). */
export interface MapOutputLocation {
  readonly map: number;
  /** The node that ran the committing attempt and holds its partition files. */
  readonly node: string;
  /** The committing attempt (names its files on that node). */
  readonly attemptId: AttemptId;
  /** Bytes of each partition file. */
  readonly partitionBytes: readonly number[];
}

/** Where a reduce fetches one map's output for its partition (one entry of {@link ReduceAssignment.mapOutputs}). */
export interface ShuffleSource {
  readonly map: number;
  /** The node holding the map's partition files. */
  readonly node: string;
  /** The committing map attempt (names its files on that node). */
  readonly attemptId: AttemptId;
  /** Bytes of this reduce's partition file of that map. */
  readonly bytes: number;
}

/** Fields every assignment shares. */
interface AssignmentBase {
  readonly attemptId: AttemptId;
  /** 1 for the task's first attempt; counts every attempt of the task, backups included. */
  readonly attempt: number;
  /** True if another attempt of the task is running (a backup copy, §3.6). */
  readonly backup: boolean;
  readonly jobId: JobId;
  /** The job module's path (or name) as the worker loads it. */
  readonly module: string;
  /** The sha256 of the module's bytes at submit; the worker checks it before loading (absent: a job from before modules were hashed). */
  readonly moduleSha256?: string;
  /** Output directory of the job. */
  readonly output: string;
  /** Number of map tasks (M). */
  readonly maps: number;
  /** Number of reduce tasks (R). */
  readonly reducers: number;
  readonly params: Readonly<Record<string, string>>;
  readonly options: ResolvedJobOptions;
  /** The attempt's lease ends at this time (proposer's clock); renew before it. */
  readonly leaseDeadline: number;
}

/** A map task handed to a worker: read `split`, write R sorted partition files locally. */
export interface MapAssignment extends AssignmentBase {
  readonly kind: 'map';
  /** The map task's index. */
  readonly index: number;
  readonly split: InputSplit;
  /** Byte offsets (of records in `split.file`) the map must skip: records that crashed it before. */
  readonly skipOffsets: readonly number[];
}

/** A reduce task handed to a worker: fetch partition `index` from every map's node, merge, reduce, write. */
export interface ReduceAssignment extends AssignmentBase {
  readonly kind: 'reduce';
  /** The partition, 0..reducers-1. */
  readonly index: number;
  /** Where each map's output is, in map order (all maps are done when a reduce is assigned: the barrier). */
  readonly mapOutputs: readonly ShuffleSource[];
}

/** A task handed to a worker. */
export type TaskAssignment = MapAssignment | ReduceAssignment;

// ---------------------------------------------------------------- commands

/**
 * Submits a job: one map task per split, `reducers` reduce tasks. Refused with
 * ALREADY_EXISTS if `jobId` is known (a retried submit: the job is there), with
 * OVERLOADED if limits.mrJobsMax jobs are kept and none is finished (finished
 * ones are forgotten oldest first to make room).
 */
export interface SubmitJobCommand {
  readonly type: 'submitJob';
  readonly jobId: JobId;
  /** A name for people (CLI, dashboard); defaults to the job id. */
  readonly name?: string;
  readonly module: string;
  /**
   * The sha256 (64 lowercase hex digits) of the module's bytes, taken by the
   * leader at submit: every worker checks the file it loads against it (a
   * program embedding the coordinator may leave it out, and then nothing is
   * checked).
   */
  readonly moduleSha256?: string;
  readonly splits: readonly InputSplit[];
  /** R, 1..limits.mrReducersMax. */
  readonly reducers: number;
  readonly output: string;
  /** Strings passed to the job's functions (e.g. the pattern of a distributed grep). */
  readonly params?: Readonly<Record<string, string>>;
  readonly options?: JobOptions;
  /**
   * The submitter created the output directory: removing a failed or
   * cancelled job's output removes the directory too (when empty).
   */
  readonly outputCreated?: boolean;
  readonly now: number;
}

/**
 * A worker asks for work. Picks, over jobs in submission order, the lowest
 * idle map task; reduce tasks only once every map task of the job is done
 * (the barrier); if nothing is idle, a backup copy of a straggler (§3.6).
 * The attempt's lease ends at `now + leaseMs`. The answer may be no task.
 */
export interface AssignTaskCommand {
  readonly type: 'assignTask';
  /** Worker id, unique in the cluster, e.g. `n1:w0` (node id, thread); up to twice limits.idBytesMax characters. */
  readonly worker: string;
  /** Node the worker runs on (a map's output will live there). */
  readonly node: string;
  readonly now: number;
  readonly leaseMs: number;
}

/**
 * Keeps an attempt alive: its lease ends at `now + leaseMs`. An attempt whose
 * lease already expired is revived if its task is still not done (its work is
 * not wasted). The result says whether to go on (`continue`) or to stop.
 */
export interface RenewTaskCommand {
  readonly type: 'renewTask';
  readonly attemptId: AttemptId;
  readonly now: number;
  readonly leaseMs: number;
}

/**
 * An attempt finished. The first completion of a task commits it (its output
 * and counters, exactly once); any later one — a duplicate delivery, the
 * losing backup, an attempt of a cancelled job — is ignored and says why.
 * A completion from an attempt that was expired but whose task is still not
 * done is accepted (its output exists); one from an attempt reset because its
 * node was lost or that reported failure is ignored.
 */
export interface CompleteTaskCommand {
  readonly type: 'completeTask';
  readonly attemptId: AttemptId;
  readonly now: number;
  readonly output: MapOutput | ReduceOutput;
  readonly counters: TaskCounters;
  /**
   * The worker that ran the attempt asks for its next task in the same
   * command: once the completion is applied (committed or ignored), the
   * command assigns exactly what `assignTask { ...next, now }` applied right
   * after it would, and the result carries that answer (`next`). One log
   * entry, and one round trip to the leader, between a worker's task and
   * its next one instead of two.
   */
  readonly next?: NextTaskRequest;
}

/** The assignTask fields of a request for the next task carried by {@link CompleteTaskCommand}. */
export interface NextTaskRequest {
  /** As {@link AssignTaskCommand.worker}. */
  readonly worker: string;
  /** As {@link AssignTaskCommand.node}. */
  readonly node: string;
  /** As {@link AssignTaskCommand.leaseMs}. */
  readonly leaseMs: number;
}

/**
 * An attempt failed (its function threw, or its output could not be written).
 * The task goes back to idle and is retried until it has failed
 * `maxTaskFailures` times, then the job fails with `error`. With
 * `skipBadRecords`, a map failure naming `badRecordOffset` counts a crash of
 * that record instead; after `skipAfterCrashes` crashes the record is skipped
 * by later attempts (§3.7).
 */
export interface FailTaskCommand {
  readonly type: 'failTask';
  readonly attemptId: AttemptId;
  readonly now: number;
  /** What went wrong, for people (kept up to limits.mrErrorCharsMax characters). */
  readonly error: string;
  /** Byte offset of the record the map function crashed on, if known. */
  readonly badRecordOffset?: number;
}

/**
 * The leader's clock passed `now`: every running attempt whose lease deadline
 * is <= now expires and its task, if no other attempt runs it, becomes idle
 * again (§3.3 worker failure). Propose it when {@link
 * MapReduceStateMachine.nextLeaseDeadline} has passed.
 */
export interface ExpireLeasesCommand {
  readonly type: 'expireLeases';
  readonly now: number;
}

/**
 * A new leader's first command: every running attempt's lease ends at
 * `now + leaseMs` on the new leader's clock. Lease deadlines written by an old
 * leader are on the old leader's clock, so the new one restarts them instead
 * of trusting them.
 */
export interface RebaseLeasesCommand {
  readonly type: 'rebaseLeases';
  readonly now: number;
  readonly leaseMs: number;
}

/**
 * A node is gone (the failure detector says so). Its running attempts are
 * reset (their tasks become idle), and each done map task whose output lived
 * on it goes back to idle if some reduce task of its job still needs it: a
 * reduce that is not done and has no running attempt that already fetched
 * every map output (§3.3: completed map tasks are re-executed on failure).
 */
export interface NodeLostCommand {
  readonly type: 'nodeLost';
  readonly node: string;
  readonly now: number;
  /**
   * Reset only the node's attempts and leave its done maps alone: for a node
   * expected back with its disk (a process restart), whose map outputs can
   * still be fetched then. A reduce that cannot fetch one reports
   * fetchFailed, which redoes that map. Default false (§3.3: redo them now).
   */
  readonly keepOutputs?: boolean;
}

/**
 * A reduce attempt has fetched its partition from every map's node: from now
 * on a lost map-output node does not hurt it (see {@link NodeLostCommand}).
 */
export interface ShuffleDoneCommand {
  readonly type: 'shuffleDone';
  readonly attemptId: AttemptId;
  readonly now: number;
}

/**
 * A reduce attempt could not fetch map `map`'s output from `node` (after its
 * own retries). If that is still where the map's committed output lives, the
 * node is taken to have lost every output it holds: each done map whose
 * output is on it goes back to idle to be re-executed, in every job where a
 * reduce still needs it (as for {@link NodeLostCommand}), so one fetch
 * failure finds all of them. With `release`, the reduce
 * attempt also gives up its task without counting a failure (it is reassigned
 * after the map is redone); without it, the attempt keeps its task and may
 * wait for the map's new location ({@link MapReduceStateMachine.mapOutput}).
 */
export interface FetchFailedCommand {
  readonly type: 'fetchFailed';
  /** The reduce attempt that failed to fetch. */
  readonly attemptId: AttemptId;
  readonly map: number;
  readonly node: string;
  readonly now: number;
  readonly release?: boolean;
}

/** Stops a job that is not finished: status `cancelled`; its running attempts are told to stop. */
export interface CancelJobCommand {
  readonly type: 'cancelJob';
  readonly jobId: JobId;
  readonly now: number;
  readonly reason?: string;
}

/**
 * The leader removed a failed or cancelled job's output (its part files and
 * the reducers' temp files, and the directory if the submitter created it):
 * the coordinator owns that cleanup, so a failed job leaves no output
 * whoever dies (the submitter included). Until this is applied, every new
 * leader removes the output again (removal is idempotent).
 * FAILED_PRECONDITION for a job that is running or done.
 */
export interface OutputRemovedCommand {
  readonly type: 'outputRemoved';
  readonly jobId: JobId;
}

/** Forgets a finished job (done, failed or cancelled); FAILED_PRECONDITION for a running one. */
export interface ForgetJobCommand {
  readonly type: 'forgetJob';
  readonly jobId: JobId;
}

/** Every coordinator command (the `command` of a `mapreduce` module entry). */
export type MrCommand =
  | SubmitJobCommand
  | AssignTaskCommand
  | RenewTaskCommand
  | CompleteTaskCommand
  | FailTaskCommand
  | ExpireLeasesCommand
  | RebaseLeasesCommand
  | NodeLostCommand
  | ShuffleDoneCommand
  | FetchFailedCommand
  | CancelJobCommand
  | OutputRemovedCommand
  | ForgetJobCommand;

/** The name of a command. */
export type MrCommandType = MrCommand['type'];

// ----------------------------------------------------------------- results

/** Why a command was ignored without error (it was valid but came too late to matter). */
export type IgnoredReason =
  /** The task was already committed (a duplicate, or the losing copy). */
  | 'alreadyDone'
  /** The attempt no longer runs: it failed, was reset with its node, or was released. */
  | 'attemptNotRunning'
  /** The job is done, failed or cancelled (or forgotten): it keeps no attempts. */
  | 'jobFinished'
  /** The attempt id was never handed out. */
  | 'unknownAttempt'
  /** The map's output is no longer where the report says (already being redone). */
  | 'staleLocation';

/** Answer to submitJob. */
export interface SubmitJobResult {
  readonly type: 'submitJob';
  readonly jobId: JobId;
  readonly maps: number;
  readonly reducers: number;
  /** Finished jobs forgotten to make room (limits.mrJobsMax). */
  readonly forgotten: readonly JobId[];
}

/** Why assignTask gave no task: nothing at all to do, or work exists but must wait. */
export type NoTaskReason =
  /** No job is mapping or reducing. */
  | 'noJobs'
  /** Every task is running or done, and no straggler needs a backup (yet). */
  | 'allAssigned'
  /** Reduce tasks wait for running map tasks (the barrier). */
  | 'barrier';

/** Answer to assignTask. */
export type AssignTaskResult =
  | { readonly type: 'assignTask'; readonly assignment: TaskAssignment }
  | { readonly type: 'assignTask'; readonly assignment: null; readonly reason: NoTaskReason };

/** Answer to renewTask: go on until the new deadline, or stop (the task is done or the job over). */
export type RenewTaskResult =
  | { readonly type: 'renewTask'; readonly action: 'continue'; readonly leaseDeadline: number }
  | { readonly type: 'renewTask'; readonly action: 'stop'; readonly reason: IgnoredReason };

/** Answer to completeTask. */
export type CompleteTaskResult = (
  | {
      readonly type: 'completeTask';
      readonly committed: true;
      readonly task: TaskRef;
      /** The job's status after this completion (`done` after its last reduce). */
      readonly jobStatus: JobStatusName;
    }
  | {
      readonly type: 'completeTask';
      readonly committed: false;
      readonly task: TaskRef | null;
      readonly reason: IgnoredReason;
    }
) & {
  /** The answer to the command's `next` request (absent without one). */
  readonly next?: AssignTaskResult;
};

/** What a failure led to. */
export type FailAction =
  /** The task will be retried. */
  | 'retry'
  /** The named record will be skipped by the next attempts (and the task retried). */
  | 'skipRecord'
  /** The task failed too often: the job failed. */
  | 'jobFailed'
  /** Nothing: see `reason`. */
  | 'ignored';

/** Answer to failTask. */
export interface FailTaskResult {
  readonly type: 'failTask';
  readonly action: FailAction;
  readonly task: TaskRef | null;
  readonly reason?: IgnoredReason;
}

/** Answer to expireLeases and rebaseLeases. */
export interface LeasesResult {
  readonly type: 'expireLeases' | 'rebaseLeases';
  /** Attempts that expired (expireLeases) or whose deadline moved (rebaseLeases). */
  readonly attempts: readonly AttemptId[];
}

/** Answer to nodeLost. */
export interface NodeLostResult {
  readonly type: 'nodeLost';
  /** Running attempts on the node, now reset. */
  readonly resetAttempts: readonly AttemptId[];
  /** Done map tasks whose output was on the node and is still needed: to be redone. */
  readonly redoneMaps: readonly TaskRef[];
}

/** Answer to shuffleDone. */
export interface ShuffleDoneResult {
  readonly type: 'shuffleDone';
  readonly recorded: boolean;
  readonly reason?: IgnoredReason;
}

/** Answer to fetchFailed. */
export interface FetchFailedResult {
  readonly type: 'fetchFailed';
  /** True if the map task went back to idle for re-execution. */
  readonly redo: boolean;
  /** Every done map that went back to idle: those whose output was on the node (any job that needs them). */
  readonly redoneMaps: readonly TaskRef[];
  /** True if the reduce attempt was released (`release` asked and it was running). */
  readonly released: boolean;
  readonly reason?: IgnoredReason;
}

/** Answer to cancelJob. */
export interface CancelJobResult {
  readonly type: 'cancelJob';
  readonly jobId: JobId;
  /** Attempts that were running and are now told to stop. */
  readonly stoppedAttempts: readonly AttemptId[];
}

/** Answer to outputRemoved. */
export interface OutputRemovedResult {
  readonly type: 'outputRemoved';
  readonly jobId: JobId;
}

/** Answer to forgetJob. */
export interface ForgetJobResult {
  readonly type: 'forgetJob';
  readonly jobId: JobId;
}

/** The result of any accepted command. */
export type MrResult =
  | SubmitJobResult
  | AssignTaskResult
  | RenewTaskResult
  | CompleteTaskResult
  | FailTaskResult
  | LeasesResult
  | NodeLostResult
  | ShuffleDoneResult
  | FetchFailedResult
  | CancelJobResult
  | OutputRemovedResult
  | ForgetJobResult;

/** A refused command, as plain data (a CohortError's fields). */
export interface MrFailure {
  readonly code: ErrorCode;
  readonly message: string;
  readonly definite: boolean;
  readonly details: Readonly<Record<string, unknown>>;
}

/**
 * What applying one command did. A refused command (`ok: false`: malformed,
 * unknown job, limits) changed nothing. An accepted one may still have been
 * ignored (see the result's `reason`), which also changed nothing.
 */
export type MrApplied =
  | { readonly ok: true; readonly result: MrResult }
  | { readonly ok: false; readonly error: MrFailure };

// ----------------------------------------------------------------- queries

/** Job counters, each task's committed counters counted once (a redone task's replace its earlier ones). */
export interface JobCounters {
  readonly mapInputRecords: number;
  readonly mapInputBytes: number;
  readonly mapOutputRecords: number;
  readonly mapOutputBytes: number;
  readonly reduceInputRecords: number;
  readonly reduceInputBytes: number;
  readonly reduceOutputRecords: number;
  readonly reduceOutputBytes: number;
  /** Attempts handed out, maps and reduces, backups included. */
  readonly mapAttempts: number;
  readonly reduceAttempts: number;
  /**
   * Attempts of a task beyond its first, not counting backups: the work done
   * again because of failures, expiries, lost nodes and fetch failures.
   */
  readonly reExecutions: number;
  /** Backup attempts started (§3.6). */
  readonly backupAttempts: number;
  /** failTask reports accepted. */
  readonly failedAttempts: number;
  /** Attempts whose lease expired. */
  readonly expiredAttempts: number;
  /** Attempts reset because their node was lost. */
  readonly lostAttempts: number;
  /** Records skipped (§3.7): named by the coordinator after repeated crashes, plus those maps skipped on their own; listed in {@link JobStatus.skipped}. */
  readonly skippedRecords: number;
}

/**
 * A skipped record (§3.7): one whose map threw (skipped by the map task on
 * its own), or one that crashed or hung its worker `skipAfterCrashes` times
 * (skipped by the coordinator's order).
 */
export interface SkippedRecord {
  readonly map: number;
  readonly file: string;
  readonly offset: number;
  /** What map threw, or the last crash's error (up to limits.mrSkippedErrorCharsMax characters). */
  readonly error: string;
}

/**
 * A job's progress, for the CLI's progress bar and `cohort mr status`. A done
 * job may show fewer maps done than maps: a map whose output was reported
 * lost after every reduce had fetched it is not re-run (it is not needed).
 */
export interface JobProgress {
  readonly maps: number;
  readonly mapsDone: number;
  readonly mapsRunning: number;
  readonly reduces: number;
  readonly reducesDone: number;
  readonly reducesRunning: number;
}

/** Everything known about one job. */
export interface JobStatus {
  readonly jobId: JobId;
  readonly name: string;
  readonly module: string;
  /** The sha256 of the module's bytes at submit (absent for a job submitted without one). */
  readonly moduleSha256?: string;
  readonly output: string;
  readonly params: Readonly<Record<string, string>>;
  readonly options: ResolvedJobOptions;
  readonly status: JobStatusName;
  /** Why the job failed or was cancelled. */
  readonly error?: string;
  readonly submittedAt: number;
  /** When it reached done, failed or cancelled (proposer's clock). */
  readonly finishedAt?: number;
  /**
   * Failed and cancelled jobs: whether the leader has removed the job's
   * output yet (see {@link OutputRemovedCommand}). Absent for other jobs.
   */
  readonly outputRemoved?: boolean;
  /** The submitter created the output directory (it goes with a failed job's output). */
  readonly outputCreated: boolean;
  readonly progress: JobProgress;
  readonly counters: JobCounters;
  /** Input bytes of all splits. */
  readonly inputBytes: number;
  /**
   * Skipped records, map by map: at most limits.mrSkippedRecordsListedMax
   * per map task and limits.mrSkippedRecordsMax per job; counters.skippedRecords
   * counts them all.
   */
  readonly skipped: readonly SkippedRecord[];
  /** The job's own counters, summed over committed tasks, by name in sorted order. */
  readonly userCounters: Readonly<Record<string, number>>;
}

/** A task's state: idle (waiting for a worker), in progress (some attempt runs it), done (committed). */
export type TaskState = 'idle' | 'inProgress' | 'done';

/**
 * An attempt's state: `running` (holds a lease), `expired` (its lease passed;
 * revived by a renewal, or committed by its completion, while its task is not
 * done), `failed` (reported failTask), `lost` (its node was lost), `released`
 * (gave its task back after a fetch failure), `committed` (its completion won),
 * `superseded` (another attempt's won), `stopped` (its job ended; such
 * attempts are dropped with the job's other state, so queries do not show it).
 */
export type AttemptState =
  'running' | 'expired' | 'failed' | 'lost' | 'released' | 'committed' | 'superseded' | 'stopped';

/** One attempt as the queries report it. */
export interface AttemptInfo {
  readonly attemptId: AttemptId;
  readonly task: TaskRef;
  readonly attempt: number;
  readonly worker: string;
  readonly node: string;
  readonly state: AttemptState;
  readonly backup: boolean;
  readonly startedAt: number;
  readonly leaseDeadline: number;
  /** Reduce attempts: every map output fetched. */
  readonly shuffled: boolean;
}

/** One task as the queries report it. */
export interface TaskInfo {
  readonly task: TaskRef;
  readonly state: TaskState;
  /** Attempts handed out for this task. */
  readonly attempts: number;
  readonly failures: number;
  /** Done tasks: the committing attempt. */
  readonly committedAttempt?: AttemptId;
  /** Done map tasks: where the output is. */
  readonly node?: string;
  readonly counters?: TaskCounters;
}
