/**
 * The simulated Raft node: the shell around one {@link RaftCore}, plugged into
 * the {@link SimNetwork} as a {@link SimNode}. It turns network ticks into
 * `tick()` (fewer of them while the node is "slow"), received messages into
 * `step()`, and performs each `Ready` in the documented order: write to its
 * {@link RaftDisk}, wait a sampled disk delay for the sync, then send, restore
 * or apply, serve reads, `advance()`. A crash drops the core, the state
 * machine and the unsynced writes; a restart rebuilds from the durable state.
 *
 * ```ts
 * const node = new RaftSimNode({ id, bootstrap, raft: { electionTicks: 10 }, random, invariants,
 *   diskDelayMs: { minMs: 0, maxMs: 5 }, snapshotEvery: 20 });
 * net.addNode(id, node, { tickMs: 10 });
 * node.propose(command, (outcome, output) => ...);   // a client write
 * node.read('k', (outcome, output) => ...);          // a ReadIndex read
 * ```
 */
import type { NodeId } from '../../lib/ids.js';
import type { Random } from '../../lib/random.js';
import { RaftCore } from '../../raft/core/raft-core.js';
import type { RaftOptions, Ready, ProposeResult, ConfigChange } from '../../raft/core/raft-core.js';
import type { RaftMessage } from '../../raft/core/messages.js';
import type { ClusterConfig, Entry, HardState, Snapshot } from '../../raft/core/types.js';
import type { StorageWrite } from '../../raft/storage/storage.js';
import type { KvOutput } from '../checkers/models.js';
import type { NodeContext, SimNode } from '../network.js';
import { CheckFailure } from '../scenario.js';
import { RaftDisk } from './disk.js';
import type { RaftInvariants } from './invariants.js';
import { KvStateMachine, encodeCommand } from './state-machine.js';
import type { KvCommand } from './state-machine.js';

/** How a client request ended at the node (see the history recorder's outcomes). */
export type RequestOutcome = 'ok' | 'fail' | 'unknown';

/** Receives the end of a client request whose answer is an `Out`. `output` is set for `ok`. */
export type RequestCallbackOf<Out> = (outcome: RequestOutcome, output?: Out) => void;

/** Receives the end of a client request of the Raft scenario's workload. `output` is set for `ok`. */
export type RequestCallback = RequestCallbackOf<KvOutput>;

/**
 * A replicated state machine the simulator's shell drives: it applies every
 * entry of the log in order (noop and configuration entries too, so its digest
 * covers the whole log), keeps a digest of entries 1..index for the state
 * machine safety check, and serialises itself for snapshots (the digest and
 * index included, so a restored replica is checked like one that applied).
 */
export interface SimStateMachine<Out> {
  /** Index of the last entry applied (or of the snapshot restored). */
  readonly index: number;
  /** Digest of every entry applied so far (see state-machine.ts, digestStep). */
  readonly digest: number;
  /** Applies the next entry; returns the answer for its proposer (normal entries). */
  apply(e: Entry): Out | undefined;
  /** The state as bytes for a Raft snapshot (§7). */
  snapshot(): Uint8Array;
}

/** How a shell makes its state machine: empty at first boot, or from a snapshot's bytes. */
export interface SimStateMachineFactory<SM> {
  empty(): SM;
  restore(data: Uint8Array): SM;
}

/**
 * What the nemesis and the liveness check need from a simulated node,
 * whichever shell runs it and whatever its state machine.
 */
export interface SimRaftNodeBase extends SimNode<RaftMessage> {
  readonly id: NodeId;
  readonly disk: RaftDisk;
  /** The running core, or undefined while the node is down. */
  readonly core: RaftCore | undefined;
  /** The state machine: `index` is the last entry applied. */
  readonly sm: { readonly index: number };
  readonly up: boolean;
  /** Slow node: ticks come this many times less often. */
  slowEvery: number;
  /** Slow disk: syncs take this many times longer. */
  diskSlowdown: number;
  /** Armed by the nemesis: crash when the node next writes entries, before the sync. */
  crashOnWrite: (() => void) | undefined;
  /** A membership change through this node's core; the result, or undefined if not known yet. */
  changeConfig(change: ConfigChange): ProposeResult | undefined;
  transfer(to: NodeId): boolean;
  /** Runs the invariants on this node. */
  check(): void;
}

/**
 * What the Raft scenario's workload needs besides: its puts, compare-and-sets
 * and reads, on the simulator's {@link RaftSimNode} or the production RaftNode
 * (production-node.ts).
 */
export interface SimRaftNode extends SimRaftNodeBase {
  propose(command: KvCommand, done: RequestCallback): void;
  read(key: string, done: RequestCallback): void;
}

/** Options for {@link RaftSimNode}. */
export interface RaftSimNodeOptions {
  readonly id: NodeId;
  /** Initial configuration (the same for all initial voters; empty for spare nodes). */
  readonly bootstrap: ClusterConfig;
  /** Core options other than id and random. */
  readonly raft: Omit<RaftOptions, 'id' | 'random'>;
  /** The node's own stream: disk delays and crash damage. */
  readonly random: Random;
  readonly invariants: RaftInvariants;
  /** Time from write to sync, uniform in [minMs, maxMs]. */
  readonly diskDelayMs: { readonly minMs: number; readonly maxMs: number };
  /** Compact the log once this many entries were applied since the last snapshot; 0: never. */
  readonly snapshotEvery: number;
  /** Scenario counters. */
  readonly counts: Record<string, number>;
  /**
   * TEST-ONLY shell bug: answer reads from the local state machine at once, on any node,
   * without ReadIndex — stale reads the linearizability check must catch.
   */
  readonly unsafeLocalReads?: boolean;
  /** TEST-ONLY shell bug: send a Ready's messages as soon as its write is issued, before the sync. */
  readonly sendBeforePersist?: boolean;
  /**
   * A leader whose term and vote did not change sends its messages while its own write is in
   * flight (dissertation §10.2.1; the production shell does this too). Safe because the core
   * counts the leader's own copy toward commitment only after advance().
   */
  readonly leaderSendsBeforePersist?: boolean;
}

interface PendingProposal<Out> {
  readonly term: number;
  readonly done: RequestCallbackOf<Out>;
}

interface PendingRead<SM, Out> {
  readonly query: (sm: SM) => Out;
  readonly done: RequestCallbackOf<Out>;
}

interface WaitingRead<SM, Out> extends PendingRead<SM, Out> {
  readonly index: number;
}

function bump(counts: Record<string, number>, key: string, by = 1): void {
  counts[key] = (counts[key] ?? 0) + by;
}

/**
 * One simulated Raft node over any {@link SimStateMachine} (see the file
 * header): the Raft scenario's {@link RaftSimNode} and the KV scenario's
 * nodes (src/sim/kv) are both this shell.
 */
export class RaftSimNodeOf<SM extends SimStateMachine<Out>, Out> implements SimRaftNodeBase {
  readonly id: NodeId;
  /** Durable storage; survives crashes (minus unsynced writes). */
  readonly disk: RaftDisk;
  /** The running core, or undefined while the node is down. */
  core: RaftCore | undefined;
  /** The state machine of the running incarnation. */
  sm: SM;
  /** Tick the core only on every `slowEvery`-th network tick (1: normal speed). */
  slowEvery = 1;
  /** Multiplies disk delays (1: normal). */
  diskSlowdown = 1;
  /** Set by the nemesis: called (once) when the node next issues a write of log entries, before it syncs. */
  crashOnWrite: (() => void) | undefined;
  private ctx: NodeContext<RaftMessage> | undefined;
  private outstanding: Ready | undefined;
  private ticks = 0;
  private readonly proposals = new Map<number, PendingProposal<Out>>();
  private readonly reads = new Map<number, PendingRead<SM, Out>>();
  private waitingReads: WaitingRead<SM, Out>[] = [];
  private nextReadCtx = 1;

  constructor(
    private readonly options: RaftSimNodeOptions,
    private readonly machines: SimStateMachineFactory<SM>,
  ) {
    this.id = options.id;
    this.sm = machines.empty();
    this.disk = new RaftDisk((before, after) =>
      options.invariants.onDurable(this.id, before, after),
    );
  }

  // ---- SimNode -------------------------------------------------------------

  onStart(ctx: NodeContext<RaftMessage>): void {
    this.boot(ctx);
  }

  onRestart(ctx: NodeContext<RaftMessage>): void {
    this.boot(ctx);
  }

  onMessage(_from: NodeId, message: RaftMessage): void {
    const core = this.core;
    if (core === undefined) return;
    core.step(message);
    this.pump();
    this.check();
  }

  onTick(): void {
    const core = this.core;
    if (core === undefined) return;
    this.ticks++;
    if (this.ticks % this.slowEvery !== 0) return;
    core.tick();
    this.pump();
    this.check();
  }

  onCrash(): void {
    const report = this.disk.crash(this.options.random);
    const c = this.options.counts;
    bump(c, 'disk writes kept at crash', report.kept);
    bump(c, 'disk writes torn at crash', report.torn);
    bump(c, 'disk writes lost at crash', report.lost);
    this.core = undefined;
    this.ctx = undefined;
    this.outstanding = undefined;
    this.slowEvery = 1;
    this.diskSlowdown = 1;
    this.crashOnWrite = undefined;
    // Whatever was in flight may or may not take effect: unknown to its client.
    const proposals = [...this.proposals.values()];
    const reads = [...this.reads.values(), ...this.waitingReads];
    this.proposals.clear();
    this.reads.clear();
    this.waitingReads = [];
    for (const p of proposals) p.done('unknown');
    for (const r of reads) r.done('unknown');
  }

  // ---- clients and operators -------------------------------------------------

  /** True while the node runs. */
  get up(): boolean {
    return this.core !== undefined;
  }

  /**
   * Proposes an entry's data; `done` is called with the state machine's answer when the entry
   * is applied here (ok), when it is known lost (fail), or when that cannot be known (unknown).
   */
  proposeData(data: Uint8Array, done: RequestCallbackOf<Out>): void {
    const core = this.core;
    if (core === undefined) {
      done('fail');
      return;
    }
    const r = core.propose(data);
    this.onProposed(r, done);
    this.pump();
    this.check();
  }

  /**
   * A linearizable read through ReadIndex (dissertation §6.4): once the state machine has
   * applied the read index the leader confirmed, `done` gets `query(sm)`.
   */
  query(query: (sm: SM) => Out, done: RequestCallbackOf<Out>): void {
    const core = this.core;
    if (core === undefined) {
      done('fail');
      return;
    }
    if (this.options.unsafeLocalReads === true) {
      done('ok', query(this.sm));
      return;
    }
    const ctx = this.nextReadCtx++;
    const r = core.readIndex(ctx);
    if (r.kind === 'rejected') {
      done('fail');
      return;
    }
    this.reads.set(ctx, { query, done });
    this.pump();
    this.check();
  }

  /** Proposes a membership change (leader only); returns the core's answer. */
  changeConfig(change: ConfigChange): ProposeResult | undefined {
    const core = this.core;
    if (core === undefined) return undefined;
    const r = core.proposeConfigChange(change);
    this.pump();
    this.check();
    return r;
  }

  /** Asks the leader to hand leadership to `to`; returns whether it was accepted. */
  transfer(to: NodeId): boolean {
    const core = this.core;
    if (core === undefined) return false;
    const r = core.transferLeadership(to);
    this.pump();
    this.check();
    return r.kind === 'accepted';
  }

  /** Runs the invariants on this node (after an event that touched it). */
  check(): void {
    if (this.core !== undefined) this.options.invariants.observeNode(this.id, this.core);
  }

  // ---- the Ready loop ----------------------------------------------------------

  private boot(ctx: NodeContext<RaftMessage>): void {
    this.ctx = ctx;
    this.ticks = 0;
    const durable = this.disk.durable;
    this.core = new RaftCore(
      { ...this.options.raft, id: this.id, random: ctx.random.fork('raft') },
      durable,
      this.options.bootstrap,
    );
    if (durable.snapshot !== null) {
      this.sm = this.machines.restore(durable.snapshot.data);
      this.options.invariants.onRestore(this.id, durable.snapshot.meta, this.sm.digest);
    } else {
      this.sm = this.machines.empty();
    }
    this.options.invariants.onStart(this.id, this.core, this.disk);
    this.pump();
    this.check();
  }

  private onProposed(r: ProposeResult, done: RequestCallbackOf<Out>): void {
    if (r.kind === 'rejected') {
      done('fail');
      return;
    }
    const before = this.proposals.get(r.index);
    // An older proposal at this index was cut from our log; it might still commit elsewhere.
    if (before !== undefined) before.done('unknown');
    this.proposals.set(r.index, { term: r.term, done });
  }

  /** Takes Ready batches while the core has them and no write is waiting for its sync. */
  private pump(): void {
    for (;;) {
      const core = this.core;
      const ctx = this.ctx;
      if (core === undefined || ctx === undefined || this.outstanding !== undefined) return;
      if (!core.hasReady()) return;
      const rd = core.ready();
      if (rd.softState !== undefined) {
        ctx.note('role', { role: rd.softState.role, leader: rd.softState.leader });
      }
      this.options.invariants.onReady(this.id, core, rd);
      const write = writeOf(rd);
      if (write === undefined) {
        this.finish(rd);
        continue;
      }
      try {
        this.disk.write(write);
      } catch (err) {
        throw new CheckFailure(
          `${this.id}: the core handed out an invalid storage write: ${(err as Error).message}`,
        );
      }
      this.outstanding = rd;
      const crash = this.crashOnWrite;
      if (crash !== undefined && write.entries !== undefined) {
        // Scheduled before the sync below, so it runs first even with a zero disk delay.
        this.crashOnWrite = undefined;
        ctx.setTimer(0, crash);
      }
      const { minMs, maxMs } = this.options.diskDelayMs;
      const delay = this.options.random.intBetween(minMs, maxMs) * this.diskSlowdown;
      const early =
        this.options.sendBeforePersist === true ||
        (this.options.leaderSendsBeforePersist === true &&
          core.status().role === 'leader' &&
          (rd.hardState === undefined ||
            (rd.hardState.term === this.disk.hardState.term &&
              rd.hardState.vote === this.disk.hardState.vote)));
      if (early) for (const m of rd.messages) ctx.send(m.to, m);
      ctx.setTimer(delay, () => {
        // Raft Figure 2: what the Ready promises is durable before any of its messages leave.
        this.disk.sync();
        this.outstanding = undefined;
        this.finish(rd, early);
        this.pump();
        this.check();
      });
      return;
    }
  }

  /** Steps 2-5 of the Ready contract, once step 1 (persist) is durable. */
  private finish(rd: Ready, sent = false): void {
    const core = this.core;
    const ctx = this.ctx;
    if (core === undefined || ctx === undefined) return;
    if (!sent) for (const m of rd.messages) ctx.send(m.to, m);
    if (rd.snapshot?.restore === true) {
      const meta = rd.snapshot.snapshot.meta;
      this.sm = this.machines.restore(rd.snapshot.snapshot.data);
      if (this.sm.index !== meta.index) {
        throw new CheckFailure(
          `${this.id}: snapshot ${meta.index} holds a state machine at index ${this.sm.index}`,
        );
      }
      this.options.invariants.onRestore(this.id, meta, this.sm.digest);
      bump(this.options.counts, 'snapshots restored');
      for (const [index, p] of [...this.proposals]) {
        if (index <= meta.index) {
          this.proposals.delete(index);
          p.done('unknown');
        }
      }
    }
    for (const e of rd.committedEntries) this.apply(e);
    for (const rs of rd.readStates) {
      const r = this.reads.get(Number(rs.ctx));
      if (r === undefined) continue;
      this.reads.delete(Number(rs.ctx));
      if (rs.ok) this.waitingReads.push({ index: rs.index, query: r.query, done: r.done });
      else r.done('fail');
    }
    this.serveReads();
    core.advance(rd);
    this.maybeCompact(core);
  }

  private apply(e: Entry): void {
    if (e.index !== this.sm.index + 1) {
      throw new CheckFailure(
        `${this.id}: applies entry ${e.index} after ${this.sm.index} (not in order)`,
      );
    }
    const out = this.sm.apply(e);
    this.options.invariants.onApply(this.id, e, this.sm.digest, this.disk);
    bump(this.options.counts, 'entries applied');
    const p = this.proposals.get(e.index);
    if (p === undefined) return;
    this.proposals.delete(e.index);
    // Our entry is committed iff the entry applied at its index has its term.
    if (p.term === e.term) p.done('ok', out);
    else p.done('fail');
  }

  private serveReads(): void {
    if (this.waitingReads.length === 0) return;
    const still: WaitingRead<SM, Out>[] = [];
    for (const r of this.waitingReads) {
      if (this.sm.index >= r.index) r.done('ok', r.query(this.sm));
      else still.push(r);
    }
    this.waitingReads = still;
  }

  private maybeCompact(core: RaftCore): void {
    const every = this.options.snapshotEvery;
    if (every <= 0) return;
    const snapIndex = core.status().snapshotIndex;
    if (this.sm.index - snapIndex < every) return;
    if (core.compact(this.sm.index as never, this.sm.snapshot()))
      bump(this.options.counts, 'snapshots taken');
  }
}

/** The Raft scenario's state machine: the small key-value map of state-machine.ts. */
const simKv: SimStateMachineFactory<KvStateMachine> = {
  empty: () => new KvStateMachine(),
  restore: (data) => KvStateMachine.restore(data),
};

/** One simulated Raft node of the Raft scenario, over its small key-value map (see the file header). */
export class RaftSimNode extends RaftSimNodeOf<KvStateMachine, KvOutput> implements SimRaftNode {
  constructor(options: RaftSimNodeOptions) {
    super(options, simKv);
  }

  /** Proposes a write; `done` is called when it is applied here (ok), known lost (fail), or unknowable. */
  propose(command: KvCommand, done: RequestCallback): void {
    this.proposeData(encodeCommand(command), done);
  }

  /** A linearizable read of `key` through ReadIndex (dissertation §6.4). */
  read(key: string, done: RequestCallback): void {
    this.query((sm) => ({ f: 'get', value: sm.get(key) }), done);
  }
}

/** The durable write of a Ready, or undefined if it persists nothing. */
function writeOf(rd: Ready): StorageWrite | undefined {
  const w: { snapshot?: Snapshot; entries?: readonly Entry[]; hardState?: HardState } = {};
  if (rd.snapshot !== undefined) w.snapshot = rd.snapshot.snapshot;
  if (rd.entries.length > 0) w.entries = rd.entries;
  if (rd.hardState !== undefined) w.hardState = rd.hardState;
  return w.snapshot === undefined && w.entries === undefined && w.hardState === undefined
    ? undefined
    : w;
}
