/**
 * A simulated Raft node: the production {@link RaftNode} shell, one per
 * incarnation, plugged into the {@link SimNetwork} as a {@link SimNode}. What
 * RaftNode takes from the outside is the simulator's: its transport is the
 * simulated network ({@link SimTransport}), its storage the crash-semantics
 * disk with sampled sync delays ({@link simStorage}: the {@link RaftDisk}
 * model, or the real FileStorage on a {@link SimDisk}), its clock virtual time
 * (stretched while the node is slow), and its Ready loop runs as events of the
 * virtual-time scheduler (RaftNode's `schedule` option). A crash abandons the
 * incarnation (its timers and events die with it, its unsynced writes are
 * kept, torn or lost); a restart starts a new RaftNode from what is durable.
 *
 * ```ts
 * const node = new RaftScenarioNode({ id, bootstrap, raft: { electionTicks: 10 }, random, invariants,
 *   diskDelayMs: { minMs: 0, maxMs: 5 }, snapshotEvery: 20, tickMs: 10, storage: 'model', ... });
 * net.addNode(id, node);                         // RaftNode ticks on its own (virtual) clock
 * node.propose(command, (outcome, output) => ...);   // a client write through RaftNode.propose
 * node.read('k', (outcome, output) => ...);          // a ReadIndex read through RaftNode.read
 * // after every scheduler event (and the promise callbacks it started): node.check()
 * ```
 *
 * RaftNode answers through promises, so the scenario lets the promise
 * callbacks an event started run before the next event (src/sim/drive.ts);
 * with every timer and deferred step on the scheduler, that interleaving is
 * deterministic and a seed replays. The checkers read the node through
 * {@link RaftNode.inspect} (a read-only view of the core). Checks that run
 * inside RaftNode's callbacks (a state machine's apply, a send, a finished
 * save) report through the scenario's {@link FailureTrap}.
 *
 * TEST-ONLY bug switches live where the bug would be: the core's (RaftNode's
 * `bugs`), reads served locally without ReadIndex (`unsafeLocalReads`: the
 * serializable path), and a storage that acknowledges saves before they are
 * durable (`sendBeforePersist`: the shell then sends and applies too early).
 */
import { isCohortError } from '../../lib/errors.js';
import type { Clock, TimerHandle } from '../../lib/clock.js';
import type { NodeId } from '../../lib/ids.js';
import type { Random } from '../../lib/random.js';
import type { RaftMessage } from '../../raft/core/messages.js';
import type { RpcWireMessage } from '../../rpc/messages.js';
import type { ConfigChange, RaftBugs, RaftStatus } from '../../raft/core/raft-core.js';
import type { ClusterConfig } from '../../raft/core/types.js';
import { RaftNode } from '../../raft/raft-node.js';
import type { RaftNodeCoreOptions, RaftNodeInspector } from '../../raft/raft-node.js';
import type { KvOutput } from '../checkers/models.js';
import { SimDisk } from '../disk.js';
import type { NodeContext, SimNode } from '../network.js';
import { CheckFailure } from '../scenario.js';
import type { FailureTrap } from '../scenario.js';
import { SimTransport } from '../transport.js';
import { isRpcMessage } from '../wire.js';
import type { SimWire } from '../wire.js';
import { RaftDisk } from './disk.js';
import type { RaftInvariants } from './invariants.js';
import { MapMachine, encodeCommand } from './state-machine.js';
import type { KvCommand, SimStateMachine, SimStateMachineFactory } from './state-machine.js';
import { silentLogger, simStorage } from './storage.js';

/** How a client request ended at the node (see the history recorder's outcomes). */
export type RequestOutcome = 'ok' | 'fail' | 'unknown';

/** Receives the end of a client request whose answer is an `Out`. `output` is set for `ok`. */
export type RequestCallbackOf<Out> = (outcome: RequestOutcome, output?: Out) => void;

/** Receives the end of a client request of the Raft scenario's workload. `output` is set for `ok`. */
export type RequestCallback = RequestCallbackOf<KvOutput>;

/** What the nemesis, the workloads and the liveness check need from a simulated node. */
export interface SimRaftNodeBase extends SimNode<SimWire> {
  readonly id: NodeId;
  readonly disk: RaftDisk;
  /** True once this incarnation's RaftNode has started (and until a crash). */
  readonly up: boolean;
  /** The running node's core (read-only), or undefined while down or starting. */
  readonly inspector: RaftNodeInspector | undefined;
  /** The running node's core status, or undefined while down or starting. */
  status(): RaftStatus | undefined;
  /** Slow node: its ticks come this many times less often. */
  slowEvery: number;
  /** Slow disk: syncs take this many times longer. */
  diskSlowdown: number;
  /** Armed by the nemesis: crash when the node next writes entries, before the sync. */
  crashOnWrite: (() => void) | undefined;
  /**
   * A membership change through this node's RaftNode; `done` hears how it
   * ended: `applied`, the refusal's reason (`CONFIG_CHANGE_PENDING`,
   * `LEARNER_NOT_CAUGHT_UP`, `NOT_LEADER`, ...), or `down`. Not called if the
   * node crashes first.
   */
  changeConfig(change: ConfigChange, done: (outcome: string) => void): void;
  /** Starts a leadership transfer (the outcome is counted); false if the node is down. */
  transfer(to: NodeId): boolean;
  /** Runs the invariants on this node if an event touched it since the last check. */
  check(): void;
}

/** What the Raft scenario's workload needs besides: its puts, compare-and-sets and reads. */
export interface SimRaftNode extends SimRaftNodeBase {
  propose(command: KvCommand, done: RequestCallback): void;
  read(key: string, done: RequestCallback): void;
}

/** Options of a {@link RaftNodeHost}. */
export interface SimRaftNodeOptions {
  readonly id: NodeId;
  /** Initial configuration (the same for all initial voters; empty for spare nodes, which join). */
  readonly bootstrap: ClusterConfig;
  /** Core options (drawn by the scenario). */
  readonly raft: RaftNodeCoreOptions;
  /** TEST-ONLY: deliberate core bugs (RaftNode's `bugs`). */
  readonly bugs?: RaftBugs;
  /** The node's own stream: start phase, disk delays and crash damage. */
  readonly random: Random;
  readonly invariants: RaftInvariants;
  /** Where checks run from the shell's callbacks report (the scenario's). */
  readonly trap: FailureTrap;
  /** Time from write to sync, uniform in [minMs, maxMs]. */
  readonly diskDelayMs: { readonly minMs: number; readonly maxMs: number };
  /** Compact the log once this many entries were applied since the last snapshot; 0: never. */
  readonly snapshotEvery: number;
  /** Virtual milliseconds per Raft tick. */
  readonly tickMs: number;
  /** `model`: the RaftDisk model; `file`: the real FileStorage on a SimDisk (see storage.ts). */
  readonly storage: 'model' | 'file';
  /** A leader sends while its own write is in flight (dissertation §10.2.1; RaftNode's option). */
  readonly leaderSendsBeforePersist: boolean;
  /** Scenario counters. */
  readonly counts: Record<string, number>;
  /**
   * TEST-ONLY shell bug: answer reads from the local state machine at once, on any node,
   * without ReadIndex — stale reads the linearizability check must catch.
   */
  readonly unsafeLocalReads?: boolean;
  /** TEST-ONLY storage bug: acknowledge saves before they are durable (storage.ts, `ackBeforeSync`). */
  readonly sendBeforePersist?: boolean;
}

function bump(counts: Record<string, number>, key: string, by = 1): void {
  counts[key] = (counts[key] ?? 0) + by;
}

/**
 * Hosts the production RaftNode of one simulated node over any
 * {@link SimStateMachine} (see the file header): the Raft scenario's
 * {@link RaftScenarioNode} and the KV scenario's nodes are this host.
 */
export class RaftNodeHost<SM extends SimStateMachine<Out>, Out> implements SimRaftNodeBase {
  readonly id: NodeId;
  /** Durable storage (the model, or the shadow of the files); survives crashes minus unsynced writes. */
  readonly disk: RaftDisk;
  slowEvery = 1;
  diskSlowdown = 1;
  crashOnWrite: (() => void) | undefined;
  /** The state machine of the current (or last) incarnation. */
  sm: SM;
  private node: RaftNode<SM> | undefined;
  private ctx: NodeContext<SimWire> | undefined;
  private transport: SimTransport<RaftMessage> | undefined;
  /** True between an incarnation's start and the moment its RaftNode is running. */
  private starting = false;
  private readonly waiting = new Set<RequestCallbackOf<Out>>();
  /** An event of this node ran since the last check (a node's state changes only in its own events). */
  private touched = false;
  /** The simulated disk under FileStorage (storage: 'file'). */
  private readonly simDisk: SimDisk | undefined;

  constructor(
    protected readonly options: SimRaftNodeOptions,
    private readonly machines: SimStateMachineFactory<SM>,
  ) {
    this.id = options.id;
    this.disk = new RaftDisk((before, after) =>
      options.trap.guard(() => options.invariants.onDurable(this.id, before, after)),
    );
    this.sm = this.newMachine();
    this.simDisk =
      options.storage === 'file' ? new SimDisk(options.random.fork('simdisk')) : undefined;
  }

  get up(): boolean {
    return this.node !== undefined;
  }

  get inspector(): RaftNodeInspector | undefined {
    return this.node?.inspect();
  }

  status(): RaftStatus | undefined {
    return this.node?.inspect().status();
  }

  // ---- SimNode -------------------------------------------------------------

  onStart(ctx: NodeContext<SimWire>): void {
    // A random phase, so the first ticks of the nodes started together do not coincide.
    ctx.setTimer(this.options.random.int(this.options.tickMs), () => this.boot(ctx));
  }

  onRestart(ctx: NodeContext<SimWire>): void {
    this.boot(ctx);
  }

  onMessage(from: NodeId, message: SimWire): void {
    this.touched = true;
    if (isRpcMessage(message)) this.receiveRpc(from, message);
    else this.transport?.deliver(from, message);
  }

  onCrash(): void {
    const c = this.options.counts;
    if (this.simDisk !== undefined) {
      // The real files lose what was not synced; recovery at restart tells what survived.
      const r = this.simDisk.crash();
      bump(c, 'disk ops lost at crash', r.droppedOps);
      bump(c, 'disk writes torn at crash', r.tornWrites);
    } else {
      const report = this.disk.crash(this.options.random);
      bump(c, 'disk writes kept at crash', report.kept);
      bump(c, 'disk writes torn at crash', report.torn);
      bump(c, 'disk writes lost at crash', report.lost);
    }
    // The old RaftNode is abandoned: its timers and events died with the incarnation.
    this.node = undefined;
    this.ctx = undefined;
    this.transport = undefined;
    this.starting = false;
    this.slowEvery = 1;
    this.diskSlowdown = 1;
    this.crashOnWrite = undefined;
    this.stopped();
    // Whatever was in flight may or may not take effect: unknown to its client.
    const waiting = [...this.waiting];
    this.waiting.clear();
    for (const done of waiting) done('unknown');
  }

  /** Runs the invariants on this node's core, if an event touched it since the last check. */
  check(): void {
    if (!this.touched) return;
    this.touched = false;
    const view = this.node?.inspect();
    if (view !== undefined) this.options.invariants.observeNode(this.id, view);
  }

  // ---- clients and operators -------------------------------------------------

  /** A client write through RaftNode.propose; definite errors are `fail`, the rest `unknown`. */
  proposeData(data: Uint8Array, done: RequestCallbackOf<Out>): void {
    const node = this.node;
    if (node === undefined) {
      done('fail');
      return;
    }
    this.track(node.propose(data), done);
  }

  /** A linearizable read through RaftNode.read (ReadIndex): `done` gets `query(sm)`. */
  query(query: (sm: SM) => Out, done: RequestCallbackOf<Out>): void {
    const node = this.node;
    if (node === undefined) {
      done('fail');
      return;
    }
    const unsafe = this.options.unsafeLocalReads === true;
    this.track(node.read(query, unsafe ? { consistency: 'serializable' } : {}), done);
  }

  changeConfig(change: ConfigChange, done: (outcome: string) => void): void {
    const node = this.node;
    if (node === undefined) {
      done('down');
      return;
    }
    const p =
      change.type === 'addLearner'
        ? node.addLearner(change.node)
        : change.type === 'promoteLearner'
          ? node.promoteLearner(change.node)
          : node.removeNode(change.node);
    const trap = this.options.trap;
    p.then(
      () => trap.guard(() => done('applied')),
      (err: unknown) => {
        const reason = isCohortError(err) ? err.details['reason'] : undefined;
        const outcome =
          typeof reason === 'string' ? reason : isCohortError(err) ? err.code : String(err);
        trap.guard(() => done(outcome));
      },
    );
  }

  transfer(to: NodeId): boolean {
    const node = this.node;
    if (node === undefined) return false;
    node.transferLeadership(to).then(
      () => bump(this.options.counts, 'transfer done'),
      () => bump(this.options.counts, 'transfer refused or timed out'),
    );
    return true;
  }

  // ---- for subclasses ------------------------------------------------------------

  /**
   * Called when an incarnation's RaftNode is running (a subclass starts what it serves on it);
   * `clock` is the incarnation's virtual time, whose timers mark the node touched.
   */
  protected started(_node: RaftNode<SM>, _ctx: NodeContext<SimWire>, _clock: Clock): void {}

  /** An RPC message arrived (a subclass serving RPC takes it; dropped here). */
  protected receiveRpc(_from: NodeId, _message: RpcWireMessage): void {}

  /** Called when the node crashed (a subclass drops what it served). */
  protected stopped(): void {}

  // ---- the incarnation ---------------------------------------------------------

  private newMachine(): SM {
    const o = this.options;
    return this.machines({
      applied: (e, digest) => {
        o.trap.guard(() => o.invariants.onApply(this.id, e, digest, this.disk));
        bump(o.counts, 'entries applied');
      },
      restored: (index, digest) => {
        o.trap.guard(() => o.invariants.onRestore(this.id, index, digest));
        bump(o.counts, this.starting ? 'snapshots loaded at start' : 'snapshots restored');
      },
      snapshotTaken: () => bump(o.counts, 'snapshots taken'),
      check: (fn) => void o.trap.guard(fn),
    });
  }

  private track(p: Promise<unknown>, done: RequestCallbackOf<Out>): void {
    const trap = this.options.trap;
    this.waiting.add(done);
    p.then(
      (out) => {
        if (this.waiting.delete(done)) trap.guard(() => done('ok', out as Out));
      },
      (err: unknown) => {
        const outcome = isCohortError(err) && err.definite ? 'fail' : 'unknown';
        if (this.waiting.delete(done)) trap.guard(() => done(outcome));
      },
    );
  }

  private boot(ctx: NodeContext<SimWire>): void {
    if (!ctx.alive()) return;
    const o = this.options;
    this.ctx = ctx;
    this.starting = true;
    this.sm = this.newMachine();
    const transport = new SimTransport<RaftMessage>(o.id, (to, m) => ctx.send(to, m));
    this.transport = transport;
    // Every timer and deferred step of this incarnation marks the node touched when it runs.
    const timer = (delayMs: number, fn: () => void): TimerHandle =>
      ctx.setTimer(delayMs, () => {
        this.touched = true;
        fn();
      });
    // RaftNode's ticks come less often while the node is slow.
    const clock: Clock = {
      now: () => ctx.now(),
      setTimer: (delayMs: number, fn: () => void): TimerHandle =>
        timer(delayMs * this.slowEvery, fn),
      clearTimer: (h: TimerHandle) => ctx.clearTimer(h),
    };
    const plainClock: Clock = {
      now: () => ctx.now(),
      setTimer: timer,
      clearTimer: (h: TimerHandle) => ctx.clearTimer(h),
    };
    const { minMs, maxMs } = o.diskDelayMs;
    const storage = simStorage({
      kind: o.storage,
      id: o.id,
      ctx,
      setTimer: timer,
      disk: this.disk,
      ...(this.simDisk === undefined ? {} : { simDisk: this.simDisk }),
      delayMs: () => o.random.intBetween(minMs, maxMs) * this.diskSlowdown,
      hooks: {
        beforeWrite: (write) => {
          const view = this.node?.inspect();
          if (view !== undefined && write.entries !== undefined) {
            const entries = write.entries;
            o.trap.guard(() => o.invariants.onEntries(this.id, view, entries));
          }
          const crash = this.crashOnWrite;
          if (crash !== undefined && write.entries !== undefined) {
            // Scheduled before the write's sync, so it runs first even with a zero disk delay.
            this.crashOnWrite = undefined;
            ctx.setTimer(0, crash);
          }
        },
        fail: (message) => o.trap.record(new CheckFailure(message)),
      },
      ...(o.sendBeforePersist === true ? { ackBeforeSync: true } : {}),
    });
    const peers = o.bootstrap.voters.includes(o.id)
      ? o.bootstrap.voters.filter((v) => v !== o.id)
      : [];
    RaftNode.start({
      id: o.id,
      peers,
      join: peers.length === 0,
      transport,
      storage,
      stateMachine: this.sm,
      random: ctx.random.fork('raft-node'),
      clock,
      schedule: (fn) => void timer(0, fn),
      tickMs: o.tickMs,
      raft: o.raft,
      ...(o.bugs === undefined ? {} : { bugs: o.bugs }),
      snapshotEntries: o.snapshotEvery,
      leaderSendsBeforePersist: o.leaderSendsBeforePersist,
      logger: silentLogger,
    }).then(
      (node) => {
        if (this.ctx !== ctx || !ctx.alive()) return; // crashed while starting
        this.starting = false;
        this.node = node;
        this.touched = true;
        node.onStateChange((c) => ctx.note('role', c));
        o.trap.guard(() => {
          o.invariants.onStart(this.id, node.inspect(), this.disk);
          this.started(node, ctx, plainClock);
        });
      },
      (err: unknown) => {
        o.trap.record(new CheckFailure(`${o.id}: RaftNode failed to start: ${String(err)}`));
      },
    );
  }
}

/** One node of the Raft scenario: the production shell over its small key-value map. */
export class RaftScenarioNode extends RaftNodeHost<MapMachine, KvOutput> implements SimRaftNode {
  constructor(options: SimRaftNodeOptions) {
    super(options, (hooks) => new MapMachine(hooks));
  }

  /** A client write through RaftNode.propose; definite errors are `fail`, the rest `unknown`. */
  propose(command: KvCommand, done: RequestCallback): void {
    this.proposeData(encodeCommand(command), done);
  }

  /** A linearizable read through RaftNode.read (ReadIndex). */
  read(key: string, done: RequestCallback): void {
    this.query((sm): KvOutput => ({ f: 'get', value: sm.get(key) }), done);
  }
}
