/**
 * The MapReduce runtime of one node process: serves the `MapReduce` RPC
 * service, drives the coordinator while this node is the Raft leader, and
 * runs the node's worker threads (worker.ts).
 *
 * ```ts
 * const rt = new MapReduceRuntime(ctx, state, { workers: 2, leaseMs: 10_000 });
 * await rt.start();              // serve, follow leadership, start the workers
 * await rt.requestTask({ worker: 'n1:w0', node: 'n1' }); // runs on the leader, or is forwarded there
 * await rt.stop();
 * ```
 *
 * Leader driver (MapReduce paper §3.3, made a replicated state machine): on
 * becoming leader it first registers its own RPC address (a barrier: once that
 * entry applies, every earlier entry has too, so the new leader continues from
 * the replicated state and redoes no finished task) and proposes
 * `rebaseLeases` (old deadlines were on the old leader's clock). Then, every
 * driver tick, it proposes `expireLeases` once the earliest lease deadline has
 * passed on its clock, and `nodeLost` for a node that runs attempts or holds
 * needed map output but has not been heard from (worker polls, renewals and
 * heartbeats) for `nodeLostMs`, or that the failure detector declared failed
 * ({@link MapReduceRuntime.memberFailed}). It stops on losing leadership.
 *
 * Forwarding: coordinator calls reaching a follower are proxied to the leader
 * at the address it registered; a proxied call that reaches a non-leader is
 * refused with NOT_LEADER (definite) rather than forwarded again.
 */
import { isAbsolute } from 'node:path';
import type { Logger } from 'pino';
import { CohortError, isCohortError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import { nodeId } from '../lib/ids.js';
import type { NodeModuleContext } from '../host/modules.js';
import type { CallContext, Client, Handlers } from '../rpc/service.js';
import type { PeerAddress } from '../transport/tcp-transport.js';
import type {
  CompleteTaskResult,
  JobStatus,
  MrApplied,
  MrCommand,
  MrResult,
} from './core/types.js';
import type { MapReduceModuleState, NodeAddress, RegisterNodeCommand } from './module-state.js';
import { MapReduceService } from './service.js';
import type { SubmitRequest, TaskGrant } from './service.js';
import { checkModuleDir } from './module-dirs.js';
import { checkModuleSha256, moduleSha256 as moduleSha256Of } from './module-hash.js';
import { removeJobOutput } from './output-files.js';
import { serveShuffle } from './shuffle.js';
import { defaultWorkerCount, WorkerPool } from './worker-pool.js';
import { WorkerManager } from './worker.js';
import type { WorkerRuntime } from './worker.js';

/** Knobs of the runtime (the module's options). */
export interface RuntimeOptions {
  /** Worker threads on this node (0: none, the node only coordinates and serves). Default: one per core. */
  readonly workers: number;
  /** Lease the leader grants a task attempt (ms); workers renew every third of it. */
  readonly leaseMs: number;
  /** How long an idle worker waits before asking again (ms). */
  readonly pollMs: number;
  /** Silence after which the leader declares a node lost (ms). */
  readonly nodeLostMs: number;
  /** A task thread silent this long (ms) is killed as stalled. */
  readonly stallMs: number;
  /** How often a node tells the leader it is alive (ms). */
  readonly heartbeatMs: number;
  /** Start the worker threads at once instead of at their first task (benchmarks). */
  readonly prewarm: boolean;
  /**
   * Start the worker threads with the node and warm the engine in each
   * (tasks-warm.ts, ~1 CPU s a thread), outside any job, so that the first
   * job on a fresh node does not run on code still being compiled.
   */
  readonly warm: boolean;
  /**
   * The directories job modules may load from (module-dirs.ts); undefined:
   * anywhere (a program embedding the runtime). `cohort node` always sets it.
   */
  readonly moduleDirs?: readonly string[] | undefined;
}

/** Default runtime options, derived from the lease length. */
export function runtimeDefaults(partial: Partial<RuntimeOptions> = {}): RuntimeOptions {
  const leaseMs = partial.leaseMs ?? 10_000;
  return {
    workers: partial.workers ?? defaultWorkerCount(),
    leaseMs,
    pollMs: partial.pollMs ?? Math.min(200, Math.max(20, Math.floor(leaseMs / 10))),
    nodeLostMs: partial.nodeLostMs ?? 3 * leaseMs,
    stallMs: partial.stallMs ?? Math.max(leaseMs, 2_000),
    heartbeatMs: partial.heartbeatMs ?? Math.max(50, Math.floor(leaseMs / 4)),
    prewarm: partial.prewarm ?? false,
    warm: partial.warm ?? false,
    moduleDirs: partial.moduleDirs,
  };
}

const FORWARDED = 'mr-forwarded';

/** Job statuses after which nothing changes. */
const FINISHED: ReadonlySet<string> = new Set(['done', 'failed', 'cancelled']);

/** The runtime (see the file comment). */
export class MapReduceRuntime implements WorkerRuntime {
  readonly options: RuntimeOptions;
  readonly self: string;
  readonly log: Logger;
  private workers: WorkerManager | undefined;
  private pool: WorkerPool | undefined;
  private unsubscribe: (() => void) | undefined;
  private driverTimer: NodeJS.Timeout | undefined;
  private driverTerm = -1;
  private driverReady = false;
  private driverBusy = false;
  private leaderSince = 0;
  private readonly lastSeen = new Map<string, number>();
  private readonly reportedLost = new Set<string>();
  /** Nodes the failure detector declared failed (see {@link memberFailed}). */
  private readonly failedByDetector = new Set<string>();
  private readonly knownPeers = new Map<string, string>();
  private registerTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    readonly ctx: NodeModuleContext,
    readonly state: MapReduceModuleState,
    options: Partial<RuntimeOptions> = {},
  ) {
    this.options = runtimeDefaults(options);
    this.self = ctx.config.id;
    this.log = ctx.logger;
  }

  /** Where this node serves RPC (the bound port, for port 0). */
  get rpcAddress(): NodeAddress {
    const bound = (this.ctx.rpc.transport as { address?: PeerAddress }).address;
    const host = this.ctx.config.rpc.host;
    const reachable = host === '0.0.0.0' || host === '::' ? this.ctx.config.listen.host : host;
    return { host: reachable, port: bound?.port ?? this.ctx.config.rpc.port };
  }

  /** Where this node keeps map outputs and fetched partitions. */
  get mrDir(): string {
    return `${this.ctx.config.dataDir}/mr`;
  }

  /** Serves the service, follows leadership, starts the workers. */
  start(): void {
    const handlers = this.handlers();
    this.ctx.rpc.serve(MapReduceService, handlers);
    this.unsubscribe = this.ctx.raft.onStateChange(() => this.onRaftChange());
    this.onRaftChange();
    this.registerTimer = setInterval(
      () => this.registerSelf(),
      Math.max(200, this.options.heartbeatMs),
    );
    this.registerTimer.unref();
    if (this.options.workers > 0) {
      this.pool = new WorkerPool({
        size: this.options.workers,
        stallMs: this.options.stallMs,
        logger: this.log,
      });
      if (this.options.prewarm) this.pool.warm();
      if (this.options.warm) {
        // Before the worker loops start: a task they get waits for its thread's warm-up.
        this.pool
          .warmEngines()
          .then((threads) => this.log.info({ threads }, 'mapreduce: worker threads warmed'))
          .catch((e: unknown) => this.log.warn({ err: e }, 'mapreduce: warming threads failed'));
      }
      this.workers = new WorkerManager(this, this.pool);
      this.workers.start();
    }
  }

  /**
   * Loads a job module in every worker thread now (starting them if needed),
   * so its first tasks do not pay for compiling it (benchmarks).
   */
  async preload(module: string): Promise<void> {
    const pool = this.pool;
    if (pool === undefined) return;
    pool.warm();
    // Loaded under its content hash, as a job's tasks load it (job.ts keeps
    // verified loads by hash): without it each thread's first task imported
    // and compiled the module again, inside the job.
    const moduleCheck = { sha256: await moduleSha256Of(module) };
    await Promise.all(
      pool.slots.map(async (s) => {
        while (s.busy) await s.whenIdle();
        await s.run({ kind: 'load', module, moduleCheck });
      }),
    );
  }

  /** Stops the workers and the driver. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wakePolls();
    this.applied();
    this.unsubscribe?.();
    this.stopDriver();
    if (this.registerTimer !== undefined) clearInterval(this.registerTimer);
    await this.workers?.stop();
    await this.pool?.close();
  }

  // ------------------------------------------------------------ leader calls

  /** Proposes a coordinator command on this (leader) node; a refusal becomes a CohortError. */
  async command(cmd: MrCommand | RegisterNodeCommand): Promise<MrResult> {
    const applied = (await this.ctx.propose(cmd)) as MrApplied;
    if (cmd.type !== 'assignTask' && cmd.type !== 'renewTask') this.wakePolls();
    if (!applied.ok) {
      throw new CohortError(applied.error.code, applied.error.message, {
        definite: applied.error.definite,
        details: applied.error.details,
      });
    }
    return applied.result;
  }

  /** A client stub for the MapReduce service on `node` (its address from the registry). */
  peer(node: string, meta: Record<string, string> = {}): Client<typeof MapReduceService> {
    // The registry (learnt from the log), else the address the node's config gives.
    const addr = this.state.nodes.get(node) ?? this.ctx.config.peerRpc.get(nodeId(node));
    if (node !== this.self) {
      if (addr === undefined) {
        throw new CohortError('UNAVAILABLE', `the RPC address of node ${node} is not known yet`, {
          details: { node },
        });
      }
      const key = `${addr.host}:${addr.port}`;
      if (this.knownPeers.get(node) !== key) {
        const t = this.ctx.rpc.transport as { setPeer?: (id: unknown, a: PeerAddress) => void };
        t.setPeer?.(nodeId(node), addr);
        this.knownPeers.set(node, key);
      }
    }
    return this.ctx.rpc.client(MapReduceService, nodeId(node), { meta });
  }

  /** Runs `local` on the leader: here if this node leads, else proxied via `remote`. */
  private async onLeader<T>(
    call: CallContext | undefined,
    local: () => Promise<T>,
    remote: (leader: Client<typeof MapReduceService>) => Promise<T>,
  ): Promise<T> {
    if (this.ctx.raft.isLeader()) return local();
    const leader = this.ctx.raft.leaderId();
    if (call?.meta[FORWARDED] !== undefined || leader === null || leader === this.self) {
      throw new CohortError('NOT_LEADER', `node ${this.self} is not the leader`, {
        details: { leader },
      });
    }
    return remote(this.peer(leader, { [FORWARDED]: this.self }));
  }

  /** Calls the leader (this node if it leads) with `fn`. */
  async leader<T>(fn: (leader: Client<typeof MapReduceService>) => Promise<T>): Promise<T> {
    const id = this.ctx.raft.isLeader() ? this.self : this.ctx.raft.leaderId();
    if (id === null) throw new CohortError('UNAVAILABLE', 'no Raft leader known yet; retry');
    return fn(this.peer(id));
  }

  /** Tells the leader this node is alive. */
  async heartbeatToLeader(): Promise<void> {
    await this.leader((l) => l.heartbeat({ node: this.self }, { timeoutMs: this.options.leaseMs }));
  }

  private touch(node: string): void {
    this.lastSeen.set(node, Date.now());
    this.reportedLost.delete(node);
    this.failedByDetector.delete(node);
  }

  /**
   * The failure detector declared `node` failed (detector/, issue 15): on the
   * leader, the driver's next tick proposes `nodeLost` for it if it runs
   * attempts or holds needed map output, without waiting for `nodeLostMs` of
   * silence or for its leases to expire. Anywhere else it is remembered, in
   * case this node leads later. A sign of life from the node (a poll, a
   * renewal, a heartbeat) clears it.
   */
  memberFailed(node: string): void {
    if (node !== this.self) this.failedByDetector.add(node);
  }

  /** Asks the leader for a task (forwarded if need be). */
  requestTask(
    req: { worker: string; node: string; waitMs?: number },
    call?: CallContext,
  ): Promise<TaskGrant> {
    return this.onLeader(
      call,
      async () => {
        this.touch(req.node);
        const leaseMs = this.options.leaseMs;
        // Long poll: with nothing to hand out, wait (up to waitMs) for the state
        // to change, so a new job or the end of a phase starts work at once.
        const deadline = Date.now() + Math.min(req.waitMs ?? 0, limits.mrTaskRequestWaitMsMax);
        for (;;) {
          // An idle poll is answered without a log entry when nothing would be assigned.
          const peek = this.state.core.peekAssignment(req.worker, Date.now());
          if (!('reason' in peek)) break;
          const left = deadline - Date.now();
          if (left <= 0 || this.stopped || !this.ctx.raft.isLeader()) {
            return {
              result: { type: 'assignTask', assignment: null, reason: peek.reason },
              leaseMs,
            };
          }
          await this.stateChanged(left);
        }
        const result = await this.command({
          type: 'assignTask',
          worker: req.worker,
          node: req.node,
          now: Date.now(),
          leaseMs,
        });
        return { result: result as TaskGrant['result'], leaseMs };
      },
      (l) => l.requestTask(req, { timeoutMs: (req.waitMs ?? 0) + 5_000 }),
    );
  }

  private changeWaiters = new Set<() => void>();

  /** Resolves at the next coordinator command this leader applies, or after `ms`. */
  private stateChanged(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.changeWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref();
      this.changeWaiters.add(done);
    });
  }

  /** Wakes the long polls (a command was applied, or leadership changed). */
  private wakePolls(): void {
    for (const w of [...this.changeWaiters]) w();
  }

  private touchAttempt(attemptId: number): void {
    const a = this.state.core.attempt(attemptId);
    if (a !== undefined) this.touch(a.node);
  }

  /** The handlers of the MapReduce service. */
  private handlers(): Handlers<typeof MapReduceService> {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const rt = this;
    const leaderCommand = <R>(
      call: CallContext,
      make: () => MrCommand | RegisterNodeCommand,
      remote: (l: Client<typeof MapReduceService>) => Promise<R>,
      before?: () => void,
    ): Promise<R> =>
      rt.onLeader(
        call,
        async () => {
          before?.();
          return (await rt.command(make())) as R;
        },
        remote,
      );
    return {
      submit: (req, call) => rt.submit(req, call),
      status: ({ jobId, waitMs }, call) => rt.jobStatus(jobId, waitMs ?? 0, call.signal),
      list: () => ({ jobs: rt.state.core.jobs() }),
      tasks: ({ jobId }) => ({ tasks: rt.state.core.tasks(jobId) }),
      cancel: (req, call) =>
        rt.onLeader(
          call,
          async () => {
            const r = await rt.command({
              type: 'cancelJob',
              jobId: req.jobId,
              now: Date.now(),
              ...(req.reason === undefined ? {} : { reason: req.reason }),
            });
            return {
              stoppedAttempts: [...(r as unknown as { stoppedAttempts: number[] }).stoppedAttempts],
            };
          },
          (l) => l.cancel(req),
        ),
      register: (req, call) =>
        rt.onLeader(
          call,
          async () => {
            const known = rt.state.nodes.get(req.node);
            if (known?.host !== req.host || known.port !== req.port) {
              await rt.command({ type: 'registerNode', ...req });
            }
            rt.touch(req.node);
            return {};
          },
          (l) => l.register(req),
        ),
      requestTask: (req, call) => rt.requestTask(req, call),
      renew: (req, call) =>
        leaderCommand(
          call,
          () => ({
            type: 'renewTask',
            attemptId: req.attemptId,
            now: Date.now(),
            leaseMs: rt.options.leaseMs,
          }),
          (l) => l.renew(req),
          () => rt.touchAttempt(req.attemptId),
        ),
      complete: (req, call) =>
        rt.onLeader(
          call,
          async () => {
            rt.touchAttempt(req.attemptId);
            const { next, ...done } = req;
            const leaseMs = rt.options.leaseMs;
            // The worker's next task in the same entry (a poll of its own, as requestTask's).
            if (next !== undefined) rt.touch(next.node);
            const r = (await rt.command({
              type: 'completeTask',
              ...done,
              now: Date.now(),
              ...(next === undefined
                ? {}
                : { next: { worker: next.worker, node: next.node, leaseMs } }),
            })) as CompleteTaskResult;
            return next === undefined ? r : { ...r, leaseMs };
          },
          (l) => l.complete(req),
        ),
      fail: (req, call) =>
        leaderCommand(
          call,
          () => ({ type: 'failTask', ...req, now: Date.now() }),
          (l) => l.fail(req),
          () => rt.touchAttempt(req.attemptId),
        ),
      shuffleDone: (req, call) =>
        leaderCommand(
          call,
          () => ({ type: 'shuffleDone', attemptId: req.attemptId, now: Date.now() }),
          (l) => l.shuffleDone(req),
          () => rt.touchAttempt(req.attemptId),
        ),
      fetchFailed: (req, call) =>
        leaderCommand(
          call,
          () => ({ type: 'fetchFailed', ...req, now: Date.now() }),
          (l) => l.fetchFailed(req),
          () => rt.touchAttempt(req.attemptId),
        ),
      heartbeat: (req, call) =>
        rt.onLeader(
          call,
          () => {
            rt.touch(req.node);
            return Promise.resolve({});
          },
          (l) => l.heartbeat(req),
        ),
      fetchPartition: (req, call) => serveShuffle(rt.mrDir, req, call),
    };
  }

  /** Submits a job on the leader; a retried submit of a known job answers as the first did. */
  submit(
    req: SubmitRequest,
    call?: CallContext,
  ): Promise<{ jobId: string; maps: number; reducers: number }> {
    const relative = [req.module, req.output, ...req.splits.map((x) => x.file)].find(
      (p) => !isAbsolute(p),
    );
    if (relative !== undefined) {
      return Promise.reject(
        new CohortError(
          'INVALID_ARGUMENT',
          `paths in a job must be absolute (every node resolves them): ${JSON.stringify(relative)}`,
          { details: { path: relative } },
        ),
      );
    }
    try {
      checkModuleDir(req.module, this.options.moduleDirs);
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
    return this.onLeader(
      call,
      async () => {
        // The job names its module by content: the hash of the bytes the leader
        // finds now, which every worker checks before loading (module-hash.ts).
        const moduleSha256 = await moduleSha256Of(req.module);
        if (req.moduleSha256 !== undefined) {
          checkModuleSha256(
            req.module,
            req.moduleSha256,
            moduleSha256,
            `on the leader ${this.self}`,
            req.jobId,
          );
        }
        try {
          const r = (await this.command({
            type: 'submitJob',
            ...req,
            moduleSha256,
            now: Date.now(),
          })) as {
            jobId: string;
            maps: number;
            reducers: number;
          };
          return { jobId: r.jobId, maps: r.maps, reducers: r.reducers };
        } catch (e) {
          const job = this.state.core.job(req.jobId);
          if (isCohortError(e) && e.code === 'ALREADY_EXISTS' && job?.output === req.output) {
            return { jobId: job.jobId, maps: job.progress.maps, reducers: job.progress.reduces };
          }
          throw e;
        }
      },
      (l) => l.submit(req),
    );
  }

  /** One job as this replica knows it. */
  job(jobId: string): JobStatus | undefined {
    return this.state.core.job(jobId);
  }

  private appliedWaiters = new Set<() => void>();

  /**
   * The module applied a command on this replica (module.ts calls this after
   * every apply): wakes the status calls waiting for their job to change.
   */
  applied(): void {
    if (this.appliedWaiters.size === 0) return;
    const waiters = [...this.appliedWaiters];
    this.appliedWaiters.clear();
    for (const w of waiters) w();
  }

  /** Resolves at the next command applied on this replica, after `ms`, or on `signal`'s abort. */
  private nextApplied(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.appliedWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref();
      signal.addEventListener('abort', done, { once: true });
      this.appliedWaiters.add(done);
    });
  }

  /**
   * The `status` call: the job as this replica knows it; with `waitMs`, a
   * long poll that answers once the job differs from what it was when the
   * call arrived (a command about it applied here), or it is finished, or
   * `waitMs` (capped) passed. A client waiting for a job (MapReduceClient.wait)
   * then hears of its end at once, without polling every few milliseconds.
   */
  async jobStatus(jobId: string, waitMs: number, signal: AbortSignal): Promise<JobStatus> {
    const need = (): JobStatus => {
      const job = this.state.core.job(jobId);
      if (job === undefined) {
        throw new CohortError('NOT_FOUND', `no job ${jobId} (on node ${this.self})`, {
          details: { jobId },
        });
      }
      return job;
    };
    let job = need();
    if (waitMs <= 0 || FINISHED.has(job.status)) return job;
    const deadline = Date.now() + Math.min(waitMs, limits.mrStatusWaitMsMax);
    const before = JSON.stringify(job);
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0 || this.stopped || signal.aborted) return job;
      await this.nextApplied(left, signal);
      job = need();
      if (FINISHED.has(job.status) || JSON.stringify(job) !== before) return job;
    }
  }

  // ----------------------------------------------------------- registration

  /** Makes sure the replicated registry holds this node's RPC address (via the leader). */
  private registerSelf(): void {
    if (this.stopped) return;
    const me = this.rpcAddress;
    const known = this.state.nodes.get(this.self);
    if (known?.host === me.host && known.port === me.port) return;
    if (this.ctx.raft.isLeader()) return; // the driver registers the leader itself
    const leader = this.ctx.raft.leaderId();
    if (leader === null) return;
    if (!this.state.nodes.has(leader) && !this.ctx.config.peerRpc.has(leader)) return;
    this.peer(leader)
      .register({ node: this.self, host: me.host, port: me.port }, { timeoutMs: 2_000 })
      .catch((e: unknown) => this.log.debug({ err: e }, 'mapreduce: register failed; will retry'));
  }

  // ------------------------------------------------------------ leader driver

  private onRaftChange(): void {
    this.wakePolls();
    if (this.stopped) return;
    const s = this.ctx.raft.status();
    if (s.role === 'leader') {
      if (this.driverTerm !== s.term) this.startDriver(s.term);
    } else if (this.driverTimer !== undefined) {
      this.stopDriver();
    }
  }

  private startDriver(term: number): void {
    this.stopDriver();
    this.driverTerm = term;
    this.driverReady = false;
    this.leaderSince = Date.now();
    this.lastSeen.clear();
    this.reportedLost.clear();
    const every = Math.max(20, Math.min(250, Math.floor(this.options.leaseMs / 5)));
    this.driverTimer = setInterval(() => void this.driverTick(term), every);
    this.driverTimer.unref();
    this.log.info({ term }, 'mapreduce: leader driver started');
    void this.driverTick(term);
  }

  private stopDriver(): void {
    if (this.driverTimer !== undefined) {
      clearInterval(this.driverTimer);
      this.driverTimer = undefined;
      this.log.info({ term: this.driverTerm }, 'mapreduce: leader driver stopped');
    }
    this.driverTerm = -1;
    this.driverReady = false;
  }

  private async driverTick(term: number): Promise<void> {
    if (this.driverBusy || this.driverTerm !== term || !this.ctx.raft.isLeader()) return;
    this.driverBusy = true;
    try {
      if (!this.driverReady) {
        // The barrier: once this applies, the whole log before it has been applied.
        const me = this.rpcAddress;
        await this.command({ type: 'registerNode', node: this.self, ...me });
        await this.command({
          type: 'rebaseLeases',
          now: Date.now(),
          leaseMs: this.options.leaseMs,
        });
        this.driverReady = true;
        this.leaderSince = Date.now();
      }
      const now = Date.now();
      if (this.state.core.nextLeaseDeadline() <= now) {
        await this.command({ type: 'expireLeases', now });
      }
      await this.removeFailedOutputs();
      for (const node of this.nodesToWatch()) {
        if (node === this.self || this.reportedLost.has(node)) continue;
        const seen = this.lastSeen.get(node) ?? this.leaderSince;
        const detected = this.failedByDetector.has(node);
        if (detected || Date.now() - seen > this.options.nodeLostMs) {
          this.reportedLost.add(node);
          const r = await this.command({ type: 'nodeLost', node, now: Date.now() });
          this.log.warn(
            { node, result: r, by: detected ? 'failure detector' : 'silence' },
            'mapreduce: node lost',
          );
        }
      }
    } catch (e) {
      this.log.debug({ err: e }, 'mapreduce: driver tick failed; retrying');
    } finally {
      this.driverBusy = false;
    }
  }

  /**
   * The coordinator owns a failed or cancelled job's cleanup: the leader
   * removes the job's output files and records it (`outputRemoved`), so no
   * output is left whoever died (the submitting client included). A job
   * whose removal fails (a file system error) is tried again next tick.
   */
  private async removeFailedOutputs(): Promise<void> {
    for (const j of this.state.core.outputsToRemove()) {
      if (!this.ctx.raft.isLeader()) return;
      try {
        await removeJobOutput(j.output, j.outputCreated);
      } catch (e) {
        this.log.warn({ err: e, jobId: j.jobId }, 'mapreduce: removing a failed job output failed');
        continue;
      }
      await this.command({ type: 'outputRemoved', jobId: j.jobId });
      this.log.info({ jobId: j.jobId, output: j.output }, 'mapreduce: failed job output removed');
    }
  }

  /** Nodes running attempts or holding map output of unfinished jobs. */
  private nodesToWatch(): Set<string> {
    const nodes = new Set<string>();
    for (const a of this.state.core.runningAttempts()) nodes.add(a.node);
    for (const j of this.state.core.jobs()) {
      if (j.status !== 'mapping' && j.status !== 'reducing') continue;
      for (const t of this.state.core.tasks(j.jobId)) {
        if (t.task.kind === 'map' && t.state === 'done' && t.node !== undefined) nodes.add(t.node);
      }
    }
    return nodes;
  }
}
