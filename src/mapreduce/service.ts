/**
 * The `MapReduce` RPC service every node serves on its RPC port. Clients
 * (the CLI) submit jobs and read their status on any node; workers ask for
 * tasks, renew their leases and report outcomes; a node that is not the Raft
 * leader forwards those calls to the leader (the coordinator's commands must
 * be proposed there). `fetchPartition` is the shuffle: it streams one map
 * output partition from the node that holds it, in byte chunks.
 *
 * ```ts
 * const mr = rpc.client(MapReduceService, nodeId('n1'));
 * const { jobId } = await mr.submit({ jobId: 'wc-1', module: '/abs/wc.ts', splits, reducers: 2, output: '/abs/out' });
 * const status = await mr.status({ jobId });             // JobStatus (progress, counters)
 * await mr.status({ jobId, waitMs: 5_000 });             // once it changes (a long poll), or after 5 s
 * for await (const { data } of mr.fetchPartition({ jobId, map: 0, attemptId: 3, partition: 0 })) sink.write(data);
 * ```
 */
import { MODULE_SHA256_PATTERN } from './module-hash.js';
import { Type } from '@sinclair/typebox';
import type { Static, TUnsafe } from '@sinclair/typebox';
import { defineService, serverStream, unary } from '../rpc/service.js';
import type {
  AssignTaskResult,
  CompleteTaskResult,
  FailTaskResult,
  FetchFailedResult,
  JobOptions,
  JobStatus,
  MapOutput,
  ReduceOutput,
  RenewTaskResult,
  ShuffleDoneResult,
  TaskCounters,
  TaskInfo,
} from './core/types.js';

/** A value whose shape the coordinator core checks (it refuses bad commands as data). */
function checkedByCore<T>(): TUnsafe<T> {
  // Any at run time (the compiler knows no Unsafe kind), T for the type checker.
  return Type.Any();
}

const JobIdSchema = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._:-]+$' });
const AttemptIdSchema = Type.Integer({ minimum: 1 });
const NodeIdSchema = Type.String({ minLength: 1, maxLength: 64 });

/** Request of `submit`: the coordinator's submitJob without its clock reading. */
export const SubmitRequestSchema = Type.Object({
  jobId: JobIdSchema,
  name: Type.Optional(Type.String({ maxLength: 256 })),
  /** Absolute path of the job module (every node loads it from there). */
  module: Type.String({ minLength: 1, maxLength: 4096 }),
  /**
   * The sha256 of the module's bytes as the submitter read them (optional):
   * the leader refuses the job (MODULE_MISMATCH) if the file it reads differs,
   * and records its own hash of the file in the job either way.
   */
  moduleSha256: Type.Optional(Type.String({ pattern: MODULE_SHA256_PATTERN })),
  splits: Type.Array(
    Type.Object({
      file: Type.String({ minLength: 1, maxLength: 4096 }),
      start: Type.Integer({ minimum: 0 }),
      end: Type.Integer({ minimum: 0 }),
    }),
    { maxItems: 1_000_000 },
  ),
  reducers: Type.Integer({ minimum: 1 }),
  output: Type.String({ minLength: 1, maxLength: 4096 }),
  params: Type.Optional(Type.Record(Type.String(), Type.String())),
  options: Type.Optional(checkedByCore<JobOptions>()),
  /** The submitter created the output directory (a failed job's cleanup removes it too). */
  outputCreated: Type.Optional(Type.Boolean()),
});

/** What `submit` takes. */
export type SubmitRequest = Static<typeof SubmitRequestSchema>;

/**
 * Answer of `complete`: the coordinator's, and with a `next` request the
 * lease length the leader granted its assignment (as {@link TaskGrant}).
 */
export type CompleteAnswer = CompleteTaskResult & { readonly leaseMs?: number };

/** Answer of `requestTask`: a task, or none with a hint of when to ask again. */
export interface TaskGrant {
  readonly result: AssignTaskResult;
  /** The lease length the leader granted (renew well before it runs out). */
  readonly leaseMs: number;
}

/** The MapReduce service (see the file comment). */
export const MapReduceService = defineService('MapReduce', {
  submit: unary(
    SubmitRequestSchema,
    Type.Object({ jobId: Type.String(), maps: Type.Integer(), reducers: Type.Integer() }),
    { idempotent: true, description: 'submit a job (a retried submit of the same id is refused)' },
  ),
  status: unary(
    Type.Object({
      jobId: JobIdSchema,
      /**
       * A long poll: hold the answer until the job's status on this node's
       * replica differs from what it was when the call arrived, or the job
       * is finished, or this many ms passed (capped at
       * `limits.mrStatusWaitMsMax`). Absent or 0: answer at once.
       */
      waitMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 60_000 })),
    }),
    checkedByCore<JobStatus>(),
    {
      idempotent: true,
      description:
        "one job's status, progress and counters (this node's replica); with waitMs, once it changes",
    },
  ),
  tasks: unary(
    Type.Object({ jobId: JobIdSchema }),
    Type.Object({ tasks: checkedByCore<TaskInfo[]>() }),
    {
      idempotent: true,
      description:
        "every task of a job: state, attempts, where a map's output is (this node's replica)",
    },
  ),
  list: unary(Type.Object({}), Type.Object({ jobs: checkedByCore<JobStatus[]>() }), {
    idempotent: true,
    description: 'every kept job (this node’s replica)',
  }),
  cancel: unary(
    Type.Object({ jobId: JobIdSchema, reason: Type.Optional(Type.String({ maxLength: 1024 })) }),
    Type.Object({ stoppedAttempts: Type.Array(Type.Integer()) }),
    { idempotent: true, description: 'cancel a running job' },
  ),
  register: unary(
    Type.Object({
      node: NodeIdSchema,
      host: Type.String({ minLength: 1, maxLength: 255 }),
      port: Type.Integer({ minimum: 1, maximum: 65535 }),
    }),
    Type.Object({}),
    { idempotent: true, description: "record a node's RPC address in the replicated state" },
  ),
  requestTask: unary(
    Type.Object({
      worker: Type.String({ minLength: 1, maxLength: 128 }),
      node: NodeIdSchema,
      /** Wait on the leader up to this long (ms, capped) for a task to appear. */
      waitMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 60_000 })),
    }),
    checkedByCore<TaskGrant>(),
    { description: 'a worker asks for a task (leader)' },
  ),
  renew: unary(Type.Object({ attemptId: AttemptIdSchema }), checkedByCore<RenewTaskResult>(), {
    idempotent: true,
    description: "extend a running attempt's lease (leader)",
  }),
  complete: unary(
    Type.Object({
      attemptId: AttemptIdSchema,
      output: checkedByCore<MapOutput | ReduceOutput>(),
      counters: checkedByCore<TaskCounters>(),
      /**
       * The worker asks for its next task in the same call (and the same log
       * entry): the answer's `next` is what `requestTask` would have given.
       */
      next: Type.Optional(
        Type.Object({ worker: Type.String({ minLength: 1, maxLength: 128 }), node: NodeIdSchema }),
      ),
    }),
    checkedByCore<CompleteAnswer>(),
    {
      idempotent: true,
      description:
        'an attempt finished (leader; the first completion commits), and optionally the next task',
    },
  ),
  fail: unary(
    Type.Object({
      attemptId: AttemptIdSchema,
      error: Type.String({ maxLength: 64 * 1024 }),
      badRecordOffset: Type.Optional(Type.Integer({ minimum: 0 })),
    }),
    checkedByCore<FailTaskResult>(),
    { description: 'an attempt failed (leader)' },
  ),
  shuffleDone: unary(
    Type.Object({ attemptId: AttemptIdSchema }),
    checkedByCore<ShuffleDoneResult>(),
    {
      idempotent: true,
      description: 'a reduce attempt fetched every map output (leader)',
    },
  ),
  fetchFailed: unary(
    Type.Object({
      attemptId: AttemptIdSchema,
      map: Type.Integer({ minimum: 0 }),
      node: NodeIdSchema,
      release: Type.Optional(Type.Boolean()),
    }),
    checkedByCore<FetchFailedResult>(),
    { description: "a reduce attempt could not fetch a map's output (leader)" },
  ),
  heartbeat: unary(Type.Object({ node: NodeIdSchema }), Type.Object({}), {
    idempotent: true,
    description: 'a node is alive (leader; feeds the lost-node detector)',
  }),
  fetchPartition: serverStream(
    Type.Object({
      jobId: JobIdSchema,
      map: Type.Integer({ minimum: 0 }),
      attemptId: AttemptIdSchema,
      partition: Type.Integer({ minimum: 0 }),
    }),
    Type.Object({ data: Type.Uint8Array() }),
    { idempotent: true, description: "the shuffle: one map output partition's bytes, in chunks" },
  ),
});
