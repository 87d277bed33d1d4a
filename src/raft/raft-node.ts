/**
 * RaftNode: the shell that runs one pure {@link RaftCore} in the real world
 * (DESIGN.md, "Pure cores, thin shells"). It turns a {@link Clock} timer into
 * `tick()`, feeds messages from a {@link Transport} to `step()`, performs each
 * `Ready` in the documented order (persist to {@link Storage}, send, restore /
 * apply to the state machine, serve reads, `advance()`), and answers clients
 * with promises.
 *
 * ```ts
 * const node = await RaftNode.start({
 *   id: nodeId('n1'),
 *   peers: [nodeId('n2'), nodeId('n3')],          // the other initial voters
 *   transport,                                     // Transport<RaftMessage>, e.g. TcpTransport with raftMessagesCodec()
 *   storage: new FileStorage({ dir, clusterId, nodeId: id }),
 *   stateMachine: kv,                              // { apply(entry), snapshot(), restore(bytes) }
 *   random: seededRandom(seed),
 *   tickMs: 20, raft: { electionTicks: 10 },
 *   snapshotEntries: 10_000,                       // compact every 10k applied entries
 * });
 * const result = await node.propose(encode(cmd));  // what kv.apply returned for this entry
 * const value = await node.read((sm) => sm.get('k'));               // linearizable (ReadIndex)
 * const stale = await node.read((sm) => sm.get('k'), { consistency: 'serializable' });
 * await node.addLearner(nodeId('n4'));           // transport must know n4's address
 * await node.promoteLearner(nodeId('n4'), { waitForCatchUp: true });
 * await follower.waitForApplied(index);  // read-your-writes on a follower (apply() sees entry.index)
 * await node.close();
 * ```
 *
 * ## Outcomes of a proposal
 *
 * A proposal is accepted by the core at an (index, term) and resolves with
 * the state machine's result once the entry at that index is applied *with
 * that term* (the core's contract). Errors, with their `definite` flag
 * (DESIGN.md, Errors):
 *
 * - `NOT_LEADER` (definite), `details.leaderHint` = the leader this node
 *   knows of or null: refused up front; also refused while a leadership
 *   transfer is under way (`details.reason: 'TRANSFERRING'`).
 * - `NOT_LEADER` (definite), `details.reason: 'REPLACED'`: another term's
 *   entry was applied at the accepted index, so this one can never commit
 *   (Log Matching, Raft §5.3). Safe to retry.
 * - `NOT_LEADER` (**indefinite**), `details.reason: 'LEADERSHIP_LOST'`: this
 *   node stopped leading and the index was not applied within
 *   `lostLeadershipWaitTicks` (default two election timeouts); the entry may
 *   still commit under a later leader.
 * - `OVERLOADED` (definite): too many proposals wait here
 *   (`limits.raftProposalsPendingMax`) or too many are uncommitted in the core.
 * - `CANCELLED`: the caller's signal fired; definite if it fired before the
 *   core accepted the proposal, indefinite after.
 * - `CLOSED` (indefinite once accepted) when the node closes, `IO_ERROR`
 *   (indefinite) when storage failed; `INVALID_ARGUMENT` for an oversize entry.
 *
 * ## Reads
 *
 * `read(fn)` is linearizable (ReadIndex, dissertation §6.4): the leader
 * confirms its leadership with a heartbeat round, then `fn` runs against the
 * state machine once it has applied up to the confirmed commit index. Only
 * the leader serves them (others answer NOT_LEADER with a hint). With
 * `consistency: 'serializable'` `fn` runs at once on any node's local state
 * (possibly stale).
 *
 * ## Durability and ordering
 *
 * The core hands out one Ready at a time. A Ready that carries a snapshot,
 * entries, or a new term or vote is saved and awaited before its messages go
 * out (Raft Figure 2: persist before you send), with one exception: a leader
 * whose term and vote did not change sends at once, while its own write is in
 * flight (dissertation §10.2.1; the core counts the leader's own copy toward
 * commitment only after `advance()`; `leaderSendsBeforePersist: false` turns
 * this off). While a save is in flight the core keeps stepping messages,
 * ticking and accepting proposals, so the next Ready batches everything that
 * arrived meanwhile (FileStorage adds group commit on top). A Ready whose
 * only durable change is a higher commit index is not saved by itself: no
 * message depends on the commit index being on disk (persisting it only
 * spares re-learning it after a restart), so it rides along with the next
 * write, or is saved on an idle tick and at close. State-machine snapshots
 * are taken every `snapshotEntries` applied entries, and whenever the entries
 * applied since the last one hold more bytes than `snapshotLogBytes` or that
 * snapshot's size (whichever is larger; a restart replays at most about that
 * much log); a state machine with `beginSnapshot()` has them encoded one
 * step per event-loop turn, so a big state does not stall the node. Such a
 * local snapshot covers only applied (committed, durable) entries, so nothing
 * waits for it: storage writes it in the background
 * (`Storage.prepareSnapshot`) while the Ready loop goes on (heartbeats,
 * appends, commits), and only once it is durable is it handed to
 * `core.compact()`, whose Ready then just logs it. A snapshot received from
 * the leader (InstallSnapshot) is saved like any Ready, before the reply.
 *
 * A storage failure is fatal for the node: it stops (fail-stop), rejects what
 * waits with IO_ERROR and reports through `onFatal`; a restart runs recovery.
 * An exception thrown by the state machine's `apply` is a bug and is not
 * caught (replicas would diverge). Nor is any AssertionError: one from
 * storage, a snapshot encoder, a read function or a state-change listener
 * crashes the process (lib/assert.ts, crashOnAssertion) instead of becoming
 * IO_ERROR or a rejected promise.
 */
import { pino } from 'pino';
import type { Logger } from 'pino';
import { assert, crashOnAssertion } from '../lib/assert.js';
import { RealClock } from '../lib/clock.js';
import type { Clock, TimerHandle } from '../lib/clock.js';
import { CohortError, isCohortError } from '../lib/errors.js';
import type { ErrorCode } from '../lib/errors.js';
import type { LogIndex, NodeId, Term } from '../lib/ids.js';
import { limits } from '../lib/limits.js';
import { LogLimiter } from '../lib/log-limiter.js';
import type { Random } from '../lib/random.js';
import type { RaftMessage } from './core/messages.js';
import { RaftCore } from './core/raft-core.js';
import type {
  ConfigChange,
  RaftBugs,
  RaftOptions,
  RaftRole,
  RaftStatus,
  ReadState,
  Ready,
  Rejected,
  SoftState,
} from './core/raft-core.js';
import type { ClusterConfig, Entry, HardState, Snapshot } from './core/types.js';
import type { Storage, StorageWrite } from './storage/storage.js';
import type { Transport } from '../transport/transport.js';

/**
 * The replicated state machine a {@link RaftNode} drives. It must be
 * deterministic: every replica applies the same entries in the same order and
 * must reach the same state and results.
 */
export interface RaftStateMachine<R = unknown> {
  /**
   * Applies one committed client command (`entry.kind === 'normal'`; noop and
   * config entries never reach it) and returns the result handed to the
   * proposer. Must not throw for bad commands (return an error result
   * instead): an exception is treated as a bug.
   */
  apply(entry: Entry): R;
  /** Serialises the whole state as of the last applied entry (for log compaction, Raft §7). */
  snapshot(): Uint8Array;
  /** Replaces the whole state with a snapshot's (from storage at start, or sent by the leader). */
  restore(bytes: Uint8Array): void;
  /**
   * Optional: starts a snapshot of the state as of the last applied entry,
   * encoded in steps while later entries keep being applied. RaftNode's
   * periodic snapshots then run one step per event-loop turn, so encoding a
   * big state does not stall the node (its heartbeats and votes) for the
   * whole of it: with a 200-400 ms election timeout, a leader that stopped
   * for a synchronous snapshot lost its leadership at most snapshots under
   * sustained writes. `compactNow()` still uses {@link snapshot}.
   */
  beginSnapshot?(): SnapshotEncoder;
}

/** A snapshot being encoded in steps ({@link RaftStateMachine.beginSnapshot}). */
export interface SnapshotEncoder {
  /** Does about `budget` units of the work (the state machine's unit, e.g. keys); true once done. */
  step(budget: number): boolean;
  /** The snapshot's bytes, once step() has returned true. */
  bytes(): Uint8Array;
}

/** Work per step of a snapshot encoded in steps (KV: keys; ~3 ms per 10k keys here). */
const SNAPSHOT_STEP = 10_000;

/** The result type of a state machine's `apply`. */
export type ApplyResult<S> = S extends RaftStateMachine<infer R> ? R : never;

/** Core options a RaftNode passes through (everything but identity, randomness and test switches). */
export type RaftNodeCoreOptions = Omit<RaftOptions, 'id' | 'random' | 'applied' | 'bugs'>;

/** Options of {@link RaftNode.start}. */
export interface RaftNodeOptions<S extends RaftStateMachine> {
  /** This node. */
  readonly id: NodeId;
  /**
   * The other voters of a brand-new cluster (the bootstrap configuration is
   * `id` plus these). Used only when storage is empty and `join` is false.
   */
  readonly peers: readonly NodeId[];
  /** Start with no configuration, to be added to an existing cluster (as a learner). Default false. */
  readonly join?: boolean;
  /** Carries the core's messages (e.g. a TcpTransport with {@link raftMessagesCodec}). */
  readonly transport: Transport<RaftMessage>;
  /** Durable storage; must not have been loaded yet. */
  readonly storage: Storage;
  /** A fresh (empty) state machine; restored from the stored snapshot at start. */
  readonly stateMachine: S;
  /** Randomness for election timeouts (forked per use). */
  readonly random: Random;
  /** Time source (default: the real clock). */
  readonly clock?: Clock;
  /**
   * Runs the Ready loop and snapshot steps later, after what is already
   * queued (default: setImmediate, so everything that arrives in one
   * event-loop turn is handled in one Ready). The simulator passes an event
   * of its virtual-time scheduler, so the loop runs deterministically.
   */
  readonly schedule?: (fn: () => void) => void;
  /** Milliseconds per core tick. Default 20. */
  readonly tickMs?: number;
  /** Core options (electionTicks, heartbeatTicks, preVote, ...). */
  readonly raft?: RaftNodeCoreOptions;
  /**
   * TEST-ONLY deliberate core bugs (see {@link RaftBugs}), so the simulator
   * can show its checkers catch them on the shell that ships. Never set
   * outside tests.
   */
  readonly bugs?: RaftBugs;
  /** Take a state-machine snapshot and compact the log every this many applied entries; 0: never. Default 0. */
  readonly snapshotEntries?: number;
  /**
   * Also take one when the entries applied since the last snapshot hold more
   * than this many bytes of data, or more than that snapshot's size if it is
   * larger (so a snapshot never costs much more writing than the log it
   * replaces); bounds the log a restart replays. 0: never. Default
   * `limits.snapshotLogBytesMax`.
   */
  readonly snapshotLogBytes?: number;
  /**
   * Ticks a proposal keeps waiting after this node lost leadership before it
   * is rejected as indefinite (it may still commit under the next leader);
   * waiting longer turns more outcomes definite. Default 2 × electionTicks.
   */
  readonly lostLeadershipWaitTicks?: number;
  /**
   * A leader sends its AppendEntries while its own write of the same entries
   * is in flight (dissertation §10.2.1), instead of after it: the two disk
   * writes overlap, roughly halving commit latency. Default true.
   */
  readonly leaderSendsBeforePersist?: boolean;
  /** Structured logger (default: pino at 'warn' on stderr). Lines carry `node` and `term`. */
  readonly logger?: Logger;
  /** close() also closes the transport. Default true. */
  readonly ownsTransport?: boolean;
  /** close() also closes the storage. Default true. */
  readonly ownsStorage?: boolean;
  /** Called once if the node stops because storage failed. */
  readonly onFatal?: (err: unknown) => void;
}

/** Options of {@link RaftNode.propose} and the membership calls. */
export interface ProposeOptions {
  /** Cancels the wait (CANCELLED; indefinite once the core accepted the entry). */
  readonly signal?: AbortSignal;
}

/** Options of {@link RaftNode.promoteLearner}. */
export interface PromoteOptions extends ProposeOptions {
  /** Wait for the learner to catch up instead of refusing a lagging one. Default false. */
  readonly waitForCatchUp?: boolean;
  /** How long to wait for the catch-up, in ticks. Default 10 × electionTicks. */
  readonly catchUpTicks?: number;
}

/** Options of {@link RaftNode.read}. */
export interface ReadOptions {
  /** 'linearizable' (default, ReadIndex on the leader) or 'serializable' (local state, any node, maybe stale). */
  readonly consistency?: 'linearizable' | 'serializable';
  /** Cancels the wait (CANCELLED). */
  readonly signal?: AbortSignal;
}

/** A role or leader change, as reported to {@link RaftNode.onStateChange} listeners. */
export interface RaftNodeStateChange {
  readonly role: RaftRole;
  readonly leader: NodeId | null;
  readonly term: Term;
}

/**
 * A read-only view of a node's Raft state ({@link RaftNode.inspect}): the
 * core's status, and the terms and entries of the log it holds in memory.
 * For checkers (the simulator's invariants read every node after every
 * event), diagnostics and dumps; reading never changes the node.
 */
export interface RaftNodeInspector {
  /** The core's status (role, term, commit, applied, indexes, configuration, progress). */
  status(): RaftStatus;
  /** Term of the entry at `index`, or undefined if compacted away or absent. */
  termAt(index: number): Term | undefined;
  /** Entries held in memory from `lo` to `hi` inclusive (clamped to what is held). */
  entries(lo: number, hi: number): readonly Entry[];
}

/** Lifecycle of a {@link RaftNode}. */
export type RaftNodeState = 'running' | 'closing' | 'closed' | 'failed';

/** The core's status plus the shell's own counters. */
export interface RaftNodeStatus extends RaftStatus {
  readonly state: RaftNodeState;
  /** Proposals (and membership changes) waiting to be applied. */
  readonly pendingProposals: number;
  /** Linearizable reads waiting for confirmation or apply. */
  readonly pendingReads: number;
  /** Messages dropped because they were malformed or misaddressed (term jumps included). */
  readonly droppedMessages: number;
  /** Messages dropped because their term was more than `limits.raftTermJumpMax` above ours. */
  readonly termJumpsRefused: number;
  /** Sends the transport refused (OVERLOADED, UNAVAILABLE, ...); Raft resends. */
  readonly sendFailures: number;
}

interface PendingProposal {
  readonly term: Term;
  readonly index: LogIndex;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: unknown) => void;
  readonly cleanup: () => void;
}

interface PendingRead {
  readonly run: () => void;
  readonly reject: (err: unknown) => void;
  readonly cleanup: () => void;
}

interface WaitingRead {
  readonly index: LogIndex;
  readonly read: PendingRead;
}

interface TransferWaiter {
  readonly to: NodeId;
  readonly deadlineTick: number;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

const rejectCode: Record<Rejected['reason'], ErrorCode> = {
  NOT_LEADER: 'NOT_LEADER',
  TRANSFERRING: 'NOT_LEADER',
  OVERLOADED: 'OVERLOADED',
  CONFIG_CHANGE_PENDING: 'FAILED_PRECONDITION',
  INVALID_CHANGE: 'INVALID_ARGUMENT',
  LEARNER_NOT_CAUGHT_UP: 'FAILED_PRECONDITION',
};

/** The CohortError for a refusal by the core (all definite: nothing was appended). */
function refusal(r: Rejected, what: string): CohortError {
  return new CohortError(
    rejectCode[r.reason],
    `${what} refused: ${r.reason}${r.leaderHint === null ? '' : ` (leader: ${r.leaderHint})`}`,
    { details: { reason: r.reason, leaderHint: r.leaderHint } },
  );
}

function positiveInt(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      `raft node option ${name} must be a positive integer`,
      {
        details: { field: name, value },
      },
    );
  }
  return value;
}

/** One Raft node: a {@link RaftCore} run over a transport, a storage and a clock (see the file header). */
export class RaftNode<S extends RaftStateMachine = RaftStateMachine> {
  /** This node's id. */
  readonly id: NodeId;
  /** The state machine this node applies to (read it through {@link read} for consistency). */
  readonly stateMachine: S;

  private readonly core: RaftCore;
  private readonly inspector: RaftNodeInspector;
  private readonly transport: Transport<RaftMessage>;
  private readonly storage: Storage;
  private readonly clock: Clock;
  private readonly defer: (fn: () => void) => void;
  private readonly tickMs: number;
  private readonly electionTicks: number;
  private readonly snapshotEntries: number;
  private readonly snapshotLogBytes: number;
  /** Data bytes of the entries applied since the last snapshot's index. */
  private appliedBytes = 0;
  /** Size of the last snapshot taken or restored (0: none). */
  private snapshotBytes = 0;
  /** A periodic snapshot is being encoded in steps. */
  private snapshotting = false;
  private readonly leaderSendsEarly: boolean;
  private readonly lostLeadershipWaitTicks: number;
  private readonly log: Logger;
  private readonly ownsTransport: boolean;
  private readonly ownsStorage: boolean;
  private readonly onFatal: ((err: unknown) => void) | undefined;

  private state: RaftNodeState = 'running';
  private tickTimer: TimerHandle | undefined;
  private ticks = 0;
  private drainScheduled = false;
  /** The save of the outstanding Ready, if it is being awaited. */
  private blockingSave: Promise<void> | null = null;
  /** Every save not yet settled (awaited or not), for close(). */
  private readonly saves = new Set<Promise<void>>();
  /** A hard state whose only change is a higher commit index, not yet handed to storage. */
  private unsavedHard: HardState | null = null;

  private term: Term;
  private vote: NodeId | null;
  private role: RaftRole = 'follower';
  private leader: NodeId | null = null;
  private applied: LogIndex;
  private snapshotIndex: LogIndex;
  private lostLeadershipTick = 0;

  private readonly proposals = new Map<number, PendingProposal[]>();
  private proposalCount = 0;
  private readSeq = 0;
  private readonly reads = new Map<number, PendingRead>();
  private waitingReads: WaitingRead[] = [];
  private transfers: TransferWaiter[] = [];
  /** Checks run on every tick until they return true (learner catch-up). */
  private readonly tickWaiters = new Set<() => boolean>();
  private readonly listeners = new Set<(change: RaftNodeStateChange) => void>();
  private droppedMessages = 0;
  private termJumpsRefused = 0;
  private sendFailures = 0;
  /** Rate-limited warnings for what peers can repeat at will (bad messages). */
  private readonly limited: LogLimiter;
  private closing: Promise<void> | null = null;

  private constructor(
    options: RaftNodeOptions<S>,
    core: RaftCore,
    hard: HardState,
    snapshotIndex: LogIndex,
  ) {
    this.id = options.id;
    this.stateMachine = options.stateMachine;
    this.core = core;
    this.inspector = {
      status: () => core.status(),
      termAt: (index) => core.termAt(index),
      entries: (lo, hi) => core.entries(lo, hi),
    };
    this.transport = options.transport;
    this.storage = options.storage;
    this.clock = options.clock ?? new RealClock();
    this.defer = options.schedule ?? ((fn) => void setImmediate(fn));
    this.tickMs = positiveInt('tickMs', options.tickMs ?? 20);
    this.electionTicks = options.raft?.electionTicks ?? 10;
    this.snapshotEntries = options.snapshotEntries ?? 0;
    this.snapshotLogBytes = options.snapshotLogBytes ?? limits.snapshotLogBytesMax;
    this.leaderSendsEarly = options.leaderSendsBeforePersist ?? true;
    this.lostLeadershipWaitTicks = positiveInt(
      'lostLeadershipWaitTicks',
      options.lostLeadershipWaitTicks ?? 2 * this.electionTicks,
    );
    this.ownsTransport = options.ownsTransport ?? true;
    this.ownsStorage = options.ownsStorage ?? true;
    this.onFatal = options.onFatal;
    this.log = (options.logger ?? pino({ level: 'warn' }, pino.destination(2))).child({
      node: options.id,
    });
    this.limited = new LogLimiter(this.log, { clock: this.clock });
    this.term = hard.term;
    this.vote = hard.vote;
    this.applied = snapshotIndex;
    this.snapshotIndex = snapshotIndex;
  }

  /**
   * Loads storage, restores the state machine from the stored snapshot,
   * builds the core and starts ticking and receiving. Rejects (and closes
   * nothing) if storage cannot be loaded or an option is invalid.
   */
  static async start<S extends RaftStateMachine>(
    options: RaftNodeOptions<S>,
  ): Promise<RaftNode<S>> {
    if (options.snapshotEntries !== undefined && options.snapshotEntries !== 0) {
      positiveInt('snapshotEntries', options.snapshotEntries);
    }
    if (options.snapshotLogBytes !== undefined && options.snapshotLogBytes !== 0) {
      positiveInt('snapshotLogBytes', options.snapshotLogBytes);
    }
    if (options.tickMs !== undefined) positiveInt('tickMs', options.tickMs);
    if (options.lostLeadershipWaitTicks !== undefined) {
      positiveInt('lostLeadershipWaitTicks', options.lostLeadershipWaitTicks);
    }
    if (options.peers.includes(options.id)) {
      throw new CohortError(
        'INVALID_ARGUMENT',
        'raft node peers must not include the node itself',
        {
          details: { id: options.id },
        },
      );
    }
    const loaded = await options.storage.load();
    const bootstrap: ClusterConfig =
      options.join === true
        ? { voters: [], learners: [] }
        : { voters: [options.id, ...options.peers], learners: [] };
    const core = new RaftCore(
      {
        ...options.raft,
        ...(options.bugs === undefined ? {} : { bugs: options.bugs }),
        id: options.id,
        random: options.random.fork(`raft-core:${options.id}`),
      },
      loaded,
      bootstrap,
    );
    if (loaded.snapshot !== null) options.stateMachine.restore(loaded.snapshot.data);
    const node = new RaftNode(
      options,
      core,
      loaded.hardState,
      loaded.snapshot?.meta.index ?? (0 as LogIndex),
    );
    node.snapshotBytes = loaded.snapshot?.data.length ?? 0;
    node.begin(loaded.entries.length);
    return node;
  }

  private begin(recoveredEntries: number): void {
    this.info(
      { recoveredEntries, snapshotIndex: this.snapshotIndex, vote: this.vote },
      'raft node started',
    );
    this.transport.onMessage((from, m) => this.receive(from, m));
    this.armTick();
    this.schedule();
  }

  // -------------------------------------------------------------------------
  // Client API

  /**
   * Proposes a command. Resolves with the state machine's result once the
   * entry is committed and applied here; see "Outcomes of a proposal" in the
   * file header for the errors.
   */
  propose(data: Uint8Array, options: ProposeOptions = {}): Promise<ApplyResult<S>> {
    return this.submit('proposal', options, () => this.core.propose(data)) as Promise<
      ApplyResult<S>
    >;
  }

  /** Adds `node` as a non-voting learner (dissertation §4.2.1); resolves once the change is applied here. */
  addLearner(node: NodeId, options: ProposeOptions = {}): Promise<void> {
    return this.change({ type: 'addLearner', node }, options);
  }

  /**
   * Promotes a learner to voter once it holds everything committed
   * (dissertation §4.2.1). Without `waitForCatchUp` a lagging learner is
   * refused at once (FAILED_PRECONDITION, reason LEARNER_NOT_CAUGHT_UP); with
   * it, the leader waits for the learner's match index to reach the commit
   * index (TIMEOUT, definite, after `catchUpTicks`).
   */
  async promoteLearner(node: NodeId, options: PromoteOptions = {}): Promise<void> {
    if (options.waitForCatchUp === true) await this.learnerCaughtUp(node, options);
    return this.change({ type: 'promoteLearner', node }, options);
  }

  /**
   * Resolves once this node has applied `index` (for example, so a
   * serializable read on a follower sees a write the client made). Rejects
   * with CANCELLED on the signal, CLOSED when the node closes.
   */
  waitForApplied(index: number, options: ProposeOptions = {}): Promise<void> {
    const closed = this.closedError();
    if (closed !== null) return Promise.reject(closed);
    if (index <= this.applied) return Promise.resolve();
    if (options.signal?.aborted === true) return Promise.reject(cancelled(true));
    return new Promise<void>((resolve, reject) => {
      const signal = options.signal;
      const onAbort = (): void => {
        this.waitingReads = this.waitingReads.filter((w) => w.read !== read);
        reject(cancelled(true));
      };
      const read: PendingRead = {
        run: () => {
          read.cleanup();
          resolve();
        },
        reject: (err) => {
          read.cleanup();
          reject(asError(err));
        },
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waitingReads.push({ index: index as LogIndex, read });
    });
  }

  /** Removes a voter or learner (possibly this leader, which then hands over leadership). */
  removeNode(node: NodeId, options: ProposeOptions = {}): Promise<void> {
    return this.change({ type: 'removeNode', node }, options);
  }

  /**
   * Hands leadership to `to` (dissertation §3.10). Resolves once this node
   * sees `to` as leader; TIMEOUT (indefinite) if that takes more than two
   * election timeouts. NOT_LEADER if this node does not lead.
   */
  transferLeadership(to: NodeId): Promise<void> {
    const closed = this.closedError();
    if (closed !== null) return Promise.reject(closed);
    const r = this.core.transferLeadership(to);
    if (r.kind === 'rejected') return Promise.reject(refusal(r, 'leadership transfer'));
    this.schedule();
    if (to === this.id) return Promise.resolve();
    this.info({ to }, 'leadership transfer started');
    return new Promise<void>((resolve, reject) => {
      this.transfers.push({
        to,
        deadlineTick: this.ticks + 2 * this.electionTicks,
        resolve,
        reject,
      });
    });
  }

  /**
   * Runs `fn` against the state machine: linearizably (default; ReadIndex,
   * dissertation §6.4; leader only) or on the local state at once
   * (`serializable`). An exception from `fn` rejects the promise.
   */
  read<T>(fn: (sm: S) => T, options: ReadOptions = {}): Promise<T> {
    const closed = this.closedError();
    if (closed !== null) return Promise.reject(closed);
    if (options.signal?.aborted === true) return Promise.reject(cancelled(true));
    if (options.consistency === 'serializable') {
      try {
        return Promise.resolve(fn(this.stateMachine));
      } catch (err) {
        crashOnAssertion(err);
        return Promise.reject(asError(err));
      }
    }
    if (this.reads.size + this.waitingReads.length >= limits.raftPendingReadsMax) {
      return Promise.reject(
        new CohortError('OVERLOADED', 'too many linearizable reads waiting', {
          details: { limit: limits.raftPendingReadsMax },
        }),
      );
    }
    const ctx = ++this.readSeq;
    const r = this.core.readIndex(ctx);
    if (r.kind === 'rejected') return Promise.reject(refusal(r, 'read'));
    this.schedule();
    return new Promise<T>((resolve, reject) => {
      const signal = options.signal;
      const onAbort = (): void => {
        this.reads.delete(ctx);
        this.waitingReads = this.waitingReads.filter((w) => w.read !== read);
        reject(cancelled(true));
      };
      const read: PendingRead = {
        run: () => {
          read.cleanup();
          try {
            resolve(fn(this.stateMachine));
          } catch (err) {
            crashOnAssertion(err);
            reject(asError(err));
          }
        },
        reject: (err) => {
          read.cleanup();
          reject(asError(err));
        },
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.reads.set(ctx, read);
    });
  }

  /** A snapshot of this node's state: the core's status plus the shell's counters. */
  status(): RaftNodeStatus {
    return {
      ...this.core.status(),
      state: this.state,
      pendingProposals: this.proposalCount,
      pendingReads: this.reads.size + this.waitingReads.length,
      droppedMessages: this.droppedMessages,
      termJumpsRefused: this.termJumpsRefused,
      sendFailures: this.sendFailures,
    };
  }

  /**
   * A read-only view of the core (see {@link RaftNodeInspector}); the same
   * object every call.
   */
  inspect(): RaftNodeInspector {
    return this.inspector;
  }

  /** True if this node currently believes it is the leader. */
  isLeader(): boolean {
    return this.role === 'leader';
  }

  /** The leader this node knows of (itself if leading), or null. */
  leaderId(): NodeId | null {
    return this.leader;
  }

  /**
   * Calls `listener` on every role or leader change (for example, to start
   * leader-only duties such as lease expiry). Returns a function that removes it.
   */
  onStateChange(listener: (change: RaftNodeStateChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Takes a state-machine snapshot now and compacts the log up to the applied
   * index once the snapshot is durable (also done automatically every
   * `snapshotEntries`). Resolves to false if a snapshot already covers it, or
   * one is being taken.
   */
  compactNow(): Promise<boolean> {
    if (this.state !== 'running' || this.applied <= this.snapshotIndex || this.snapshotting) {
      return Promise.resolve(false);
    }
    return this.takeSnapshot();
  }

  /**
   * Stops the node gracefully: no more ticks or messages, the save in flight
   * completes (its messages go out), waiting calls are rejected with CLOSED
   * (indefinite for accepted proposals), then the transport and the storage
   * are closed if owned. Idempotent.
   */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.closing = this.shutdown();
    return this.closing;
  }

  // -------------------------------------------------------------------------
  // Requests

  /** Waits, tick by tick, until the leader sees `node` holding everything committed. */
  private learnerCaughtUp(node: NodeId, options: PromoteOptions): Promise<void> {
    const closed = this.closedError();
    if (closed !== null) return Promise.reject(closed);
    const deadline = this.ticks + (options.catchUpTicks ?? 10 * this.electionTicks);
    return new Promise<void>((resolve, reject) => {
      const check = (): boolean => {
        const stopped = this.closedError();
        if (stopped !== null) {
          reject(stopped);
          return true;
        }
        if (options.signal?.aborted === true) {
          reject(cancelled(true));
          return true;
        }
        const s = this.core.status();
        if (s.role !== 'leader') {
          reject(
            new CohortError('NOT_LEADER', `${this.id} is not the leader`, {
              details: { reason: 'NOT_LEADER', leaderHint: s.leader },
            }),
          );
          return true;
        }
        if ((s.progress.get(node)?.match ?? 0) >= s.commit) {
          resolve();
          return true;
        }
        if (this.ticks >= deadline) {
          reject(
            new CohortError('TIMEOUT', `learner ${node} did not catch up in time`, {
              definite: true,
              details: { node, match: s.progress.get(node)?.match ?? 0, commit: s.commit },
            }),
          );
          return true;
        }
        return false;
      };
      if (!check()) this.tickWaiters.add(check);
    });
  }

  private change(change: ConfigChange, options: ProposeOptions): Promise<void> {
    this.info({ change }, 'membership change proposed');
    return this.submit('membership change', options, () =>
      this.core.proposeConfigChange(change),
    ) as Promise<void>;
  }

  private submit(
    what: string,
    options: ProposeOptions,
    propose: () => ReturnType<RaftCore['propose']>,
  ): Promise<unknown> {
    const closed = this.closedError();
    if (closed !== null) return Promise.reject(closed);
    const signal = options.signal;
    if (signal?.aborted === true) return Promise.reject(cancelled(true));
    if (this.proposalCount >= limits.raftProposalsPendingMax) {
      return Promise.reject(
        new CohortError('OVERLOADED', `too many proposals waiting on ${this.id}`, {
          details: { limit: limits.raftProposalsPendingMax },
        }),
      );
    }
    let r;
    try {
      r = propose();
    } catch (err) {
      crashOnAssertion(err);
      return Promise.reject(asError(err));
    }
    if (r.kind === 'rejected') return Promise.reject(refusal(r, what));
    const { index, term } = r;
    this.schedule();
    return new Promise<unknown>((resolve, reject) => {
      const onAbort = (): void => {
        if (this.removeProposal(p)) reject(cancelled(false));
      };
      const p: PendingProposal = {
        index,
        term,
        resolve,
        reject,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const list = this.proposals.get(index);
      if (list === undefined) this.proposals.set(index, [p]);
      else list.push(p);
      this.proposalCount++;
    });
  }

  private removeProposal(p: PendingProposal): boolean {
    const list = this.proposals.get(p.index);
    if (list === undefined) return false;
    const at = list.indexOf(p);
    if (at < 0) return false;
    list.splice(at, 1);
    if (list.length === 0) this.proposals.delete(p.index);
    this.proposalCount--;
    p.cleanup();
    return true;
  }

  /** Rejects every waiting proposal with `err` (which must say whether the outcome is known). */
  private rejectProposals(err: CohortError, upTo = Infinity): void {
    for (const [index, list] of [...this.proposals]) {
      if (index > upTo) continue;
      this.proposals.delete(index);
      for (const p of list) {
        this.proposalCount--;
        p.cleanup();
        p.reject(err);
      }
    }
  }

  private closedError(): CohortError | null {
    if (this.state === 'running') return null;
    if (this.state === 'failed') {
      return new CohortError('IO_ERROR', `raft node ${this.id} stopped after a storage failure`, {
        definite: true,
      });
    }
    return new CohortError('CLOSED', `raft node ${this.id} is closed`);
  }

  // -------------------------------------------------------------------------
  // Inputs: messages and ticks

  private receive(from: NodeId, m: RaftMessage): void {
    if (this.state !== 'running') return;
    if (m.from !== from) {
      this.droppedMessages++;
      this.limited.warn(
        { term: this.term, from, claimed: m.from, type: m.type },
        'dropped a message with a forged sender',
      );
      return;
    }
    if (m.term > this.term + limits.raftTermJumpMax) {
      // Bad input, not a newer term: honest terms grow a few per election
      // timeout (see limits.raftTermJumpMax). Adopting it would let one
      // corrupt message push every node's term towards raftTermMax for good.
      this.droppedMessages++;
      this.termJumpsRefused++;
      this.limited.warn(
        {
          term: this.term,
          from,
          type: m.type,
          messageTerm: m.term,
          jumpMax: limits.raftTermJumpMax,
          code: 'INVALID_ARGUMENT',
        },
        'dropped a message whose term is implausibly far above ours',
      );
      return;
    }
    try {
      this.core.step(m);
    } catch (err) {
      // A broken invariant is a bug: crash, even if the transport catches what its handler throws.
      crashOnAssertion(err);
      if (!isCohortError(err)) throw err;
      this.droppedMessages++;
      this.limited.warn(
        { term: this.term, from, type: m.type, code: err.code, err: err.message },
        'dropped a bad message',
      );
      return;
    }
    this.schedule();
  }

  private armTick(): void {
    this.tickTimer = this.clock.setTimer(this.tickMs, () => this.onTick());
  }

  private onTick(): void {
    this.tickTimer = undefined;
    if (this.state !== 'running') return;
    this.ticks++;
    this.core.tick();
    for (const check of [...this.tickWaiters]) if (check()) this.tickWaiters.delete(check);
    this.checkTimeouts();
    this.flushHardState();
    this.schedule();
    this.armTick();
  }

  /** Gives up on waits that can no longer be decided quickly. */
  private checkTimeouts(): void {
    if (
      this.proposalCount > 0 &&
      this.role !== 'leader' &&
      this.ticks - this.lostLeadershipTick >= this.lostLeadershipWaitTicks
    ) {
      // The entries may still be committed by a later leader: the outcome is unknown.
      this.rejectProposals(
        new CohortError('NOT_LEADER', `${this.id} lost leadership before the proposal committed`, {
          definite: false,
          details: { reason: 'LEADERSHIP_LOST', leaderHint: this.leader },
        }),
      );
    }
    if (this.transfers.length > 0) {
      const expired = this.transfers.filter((t) => t.deadlineTick <= this.ticks);
      this.transfers = this.transfers.filter((t) => t.deadlineTick > this.ticks);
      for (const t of expired) {
        t.reject(
          new CohortError('TIMEOUT', `leadership did not move to ${t.to} in time`, {
            details: { to: t.to, leader: this.leader },
          }),
        );
      }
    }
  }

  // -------------------------------------------------------------------------
  // The Ready loop

  /** Arranges for pending Readys to be handled on the next turn (batching what arrives in this one). */
  private schedule(): void {
    if (this.drainScheduled || this.blockingSave !== null || this.state !== 'running') return;
    // Nothing to hand out (an idle tick, say): every later change to the core calls this again.
    if (!this.core.hasReady()) return;
    this.drainScheduled = true;
    this.defer(() => {
      this.drainScheduled = false;
      this.drain();
    });
  }

  private drain(): void {
    let applied = 0;
    while (this.state === 'running' && this.blockingSave === null && this.core.hasReady()) {
      if (applied >= limits.raftApplyEntriesMax) {
        // Catching up on a long log: let I/O (heartbeats, votes) in between batches.
        this.schedule();
        return;
      }
      const rd = this.core.ready();
      applied += rd.committedEntries.length;
      if (rd.softState !== undefined) this.noteSoftState(rd.softState, rd.hardState);
      const hard = rd.hardState;
      const termOrVote = hard !== undefined && (hard.term !== this.term || hard.vote !== this.vote);
      if (hard !== undefined) {
        this.term = hard.term;
        this.vote = hard.vote;
      }
      if (rd.snapshot === undefined && rd.entries.length === 0 && !termOrVote) {
        // Nothing a message depends on: at most a higher commit index, which
        // rides along with the next write (or the next idle tick).
        if (hard !== undefined) this.unsavedHard = hard;
        this.complete(rd, false);
        continue;
      }
      const write: { -readonly [K in keyof StorageWrite]: StorageWrite[K] } = {};
      if (rd.snapshot !== undefined) write.snapshot = rd.snapshot.snapshot;
      if (rd.entries.length > 0) write.entries = rd.entries;
      const hardState = hard ?? this.unsavedHard;
      if (hardState !== null) write.hardState = hardState;
      this.unsavedHard = null;
      const save = this.track(this.save(write));
      // Dissertation §10.2.1: a leader may send AppendEntries while it writes
      // its own log; the core counts its own copy toward commitment only after
      // advance() (so after this save). Not when the term or vote changed.
      const sentEarly = this.leaderSendsEarly && this.role === 'leader' && !termOrVote;
      if (sentEarly) this.send(rd.messages);
      this.blockingSave = save;
      save.then(
        () => {
          this.blockingSave = null;
          if (this.state === 'failed' || this.state === 'closed') return;
          this.complete(rd, sentEarly);
          if (this.state === 'running') this.drain();
        },
        (err: unknown) => {
          this.blockingSave = null;
          this.fail(err);
        },
      );
      return;
    }
  }

  /** Saves a commit-only hard state that is waiting for a write to ride on (called when idle). */
  private flushHardState(): void {
    if (this.unsavedHard === null || this.saves.size > 0) return;
    const hardState = this.unsavedHard;
    this.unsavedHard = null;
    this.track(this.save({ hardState })).catch((err: unknown) => this.fail(err));
  }

  /** storage.save, with a synchronous throw (but not a bug's) turned into a rejection. */
  private save(write: StorageWrite): Promise<void> {
    try {
      return this.storage.save(write);
    } catch (err) {
      crashOnAssertion(err);
      return Promise.reject(asError(err));
    }
  }

  private track(save: Promise<void>): Promise<void> {
    this.saves.add(save);
    const done = (): void => {
      this.saves.delete(save);
    };
    save.then(done, done);
    return save;
  }

  private send(messages: readonly RaftMessage[]): void {
    for (const m of messages) {
      assert(m.to !== this.id, 'the core never addresses a message to itself');
      try {
        this.transport.send(m.to, m);
      } catch (err) {
        if (!isCohortError(err)) throw err;
        // Raft copes with lost messages (it resends); count and go on.
        this.sendFailures++;
        if (err.code !== 'OVERLOADED' && err.code !== 'CLOSED') {
          this.debug({ to: m.to, type: m.type, code: err.code }, 'send failed');
        }
      }
    }
  }

  /** Steps 2–5 of the Ready contract, once step 1 (persist) is durable. */
  private complete(rd: Ready, sent: boolean): void {
    // 2. Send.
    if (!sent) this.send(rd.messages);
    // 3. Restore a snapshot from the leader, then apply committed entries.
    if (rd.snapshot?.restore === true) {
      const meta = rd.snapshot.snapshot.meta;
      this.stateMachine.restore(rd.snapshot.snapshot.data);
      this.applied = meta.index;
      this.snapshotIndex = meta.index;
      this.appliedBytes = 0;
      this.snapshotBytes = rd.snapshot.snapshot.data.length;
      this.info(
        { index: meta.index, snapshotTerm: meta.term },
        'installed a snapshot from the leader',
      );
      // Which entries the snapshot holds is unknown, so proposals it covers have unknown outcomes.
      this.rejectProposals(
        new CohortError('NOT_LEADER', 'a snapshot from the leader covered the proposal', {
          definite: false,
          details: { reason: 'LEADERSHIP_LOST', leaderHint: this.leader },
        }),
        meta.index,
      );
    } else if (rd.snapshot !== undefined) {
      this.snapshotIndex = rd.snapshot.snapshot.meta.index;
    }
    for (const e of rd.committedEntries) this.applyEntry(e);
    // 4. Serve reads (each once the state machine reached its index).
    for (const rs of rd.readStates) this.readState(rs);
    // 5. Advance.
    this.core.advance(rd);
    this.serveWaitingReads();
    if (this.snapshotDue()) {
      if (this.stateMachine.beginSnapshot !== undefined) this.beginSnapshot();
      else if (!this.snapshotting) void this.takeSnapshot();
    }
  }

  /** Enough applied since the last snapshot, by entries or by bytes (see snapshotLogBytes). */
  private snapshotDue(): boolean {
    if (this.snapshotEntries > 0 && this.applied - this.snapshotIndex >= this.snapshotEntries) {
      return true;
    }
    return (
      this.snapshotLogBytes > 0 &&
      this.appliedBytes > Math.max(this.snapshotLogBytes, this.snapshotBytes)
    );
  }

  private applyEntry(e: Entry): void {
    // The message is built only on failure: this runs for every applied entry.
    if (e.index !== this.applied + 1) assert(false, `applying ${e.index} after ${this.applied}`);
    let result: unknown;
    if (e.kind === 'normal') result = this.stateMachine.apply(e);
    else if (e.kind === 'config') this.info({ index: e.index }, 'configuration change applied');
    this.applied = e.index;
    this.appliedBytes += e.data.length;
    const list = this.proposals.get(e.index);
    if (list === undefined) return;
    this.proposals.delete(e.index);
    for (const p of list) {
      this.proposalCount--;
      p.cleanup();
      if (p.term === e.term) {
        p.resolve(result);
      } else {
        // Raft §5.3 (Log Matching): index e.index holds another term's entry for good.
        p.reject(
          new CohortError('NOT_LEADER', `the entry at ${e.index} was replaced by term ${e.term}`, {
            details: { reason: 'REPLACED', leaderHint: this.leader, index: e.index },
          }),
        );
      }
    }
  }

  private readState(rs: ReadState): void {
    const read = this.reads.get(Number(rs.ctx));
    if (read === undefined) return; // cancelled meanwhile
    this.reads.delete(Number(rs.ctx));
    if (!rs.ok) {
      read.reject(
        new CohortError('NOT_LEADER', 'leadership lost before the read was confirmed', {
          details: { reason: 'NOT_LEADER', leaderHint: rs.leaderHint },
        }),
      );
      return;
    }
    if (rs.index <= this.applied) read.run();
    else this.waitingReads.push({ index: rs.index, read });
  }

  private serveWaitingReads(): void {
    if (this.waitingReads.length === 0) return;
    const ready = this.waitingReads.filter((w) => w.index <= this.applied);
    if (ready.length === 0) return;
    this.waitingReads = this.waitingReads.filter((w) => w.index > this.applied);
    for (const w of ready) w.read.run();
  }

  /**
   * Starts a periodic snapshot encoded in steps, one per event-loop turn
   * (unless one is under way). Once encoded, the log is compacted to the
   * index applied when it started ({@link compactTo}); if a newer snapshot
   * came meanwhile (one installed from the leader), core.compact refuses it.
   */
  private beginSnapshot(): void {
    if (this.snapshotting) return;
    const sm = this.stateMachine;
    assert(sm.beginSnapshot !== undefined, 'beginSnapshot without support');
    const index = this.applied;
    const bytesBefore = this.appliedBytes;
    const encoder = sm.beginSnapshot();
    this.snapshotting = true;
    const step = (): void => {
      if (this.state !== 'running') {
        this.snapshotting = false;
        return;
      }
      let done: boolean;
      try {
        done = encoder.step(SNAPSHOT_STEP);
      } catch (err) {
        this.snapshotting = false;
        this.fail(err);
        return;
      }
      if (!done) {
        this.defer(step);
        return;
      }
      void this.compactTo(index, encoder.bytes(), bytesBefore);
    };
    this.defer(step);
  }

  private takeSnapshot(): Promise<boolean> {
    this.snapshotting = true;
    return this.compactTo(this.applied, this.stateMachine.snapshot(), this.appliedBytes);
  }

  /**
   * Compacts the log to a snapshot of the state at `index` (Raft §7), once
   * the snapshot is durable. It covers only applied (so committed and
   * durable) entries: no message depends on it being on disk, so the Ready
   * loop must not wait for it (a leader would stop sending heartbeats while a
   * big snapshot is written). Storage writes it in the background
   * (Storage.prepareSnapshot); only then is the core told to compact, and the
   * save of its Ready merely logs the snapshot. `snapshotting` is set by the
   * caller and cleared here. Resolves to whether the log was compacted; a
   * storage failure is fatal, as for any save.
   */
  private compactTo(index: LogIndex, data: Uint8Array, bytesBefore: number): Promise<boolean> {
    const meta = this.core.compactionMeta(index);
    if (meta === null) {
      this.snapshotting = false;
      return Promise.resolve(false);
    }
    return this.track(this.prepareSnapshot({ meta, data })).then(
      () => {
        this.snapshotting = false;
        if (this.state !== 'running' || !this.core.compact(index, data)) return false;
        this.snapshotIndex = index;
        // What was applied since the snapshot's index stays in the log.
        this.appliedBytes = Math.max(0, this.appliedBytes - bytesBefore);
        this.snapshotBytes = data.length;
        this.debug({ index, bytes: data.length }, 'log compacted');
        this.schedule();
        return true;
      },
      (err: unknown) => {
        this.snapshotting = false;
        this.fail(err);
        return false;
      },
    );
  }

  /** storage.prepareSnapshot, with a synchronous throw (but not a bug's) turned into a rejection. */
  private prepareSnapshot(snapshot: Snapshot): Promise<void> {
    try {
      return this.storage.prepareSnapshot(snapshot);
    } catch (err) {
      crashOnAssertion(err);
      return Promise.reject(asError(err));
    }
  }

  private noteSoftState(s: SoftState, hard: HardState | undefined): void {
    const term = hard?.term ?? this.term;
    if (this.role === 'leader' && s.role !== 'leader') this.lostLeadershipTick = this.ticks;
    if (s.role === 'leader' && this.role !== 'leader') this.info({ term }, 'became leader');
    else if (s.role !== this.role || s.leader !== this.leader) {
      this.info({ term, role: s.role, leader: s.leader }, 'role changed');
    }
    this.role = s.role;
    this.leader = s.leader;
    if (s.leader !== null && this.transfers.length > 0) {
      const done = this.transfers.filter((t) => t.to === s.leader);
      this.transfers = this.transfers.filter((t) => t.to !== s.leader);
      for (const t of done) t.resolve();
    }
    const change: RaftNodeStateChange = { role: s.role, leader: s.leader, term };
    for (const l of this.listeners) {
      try {
        l(change);
      } catch (err) {
        // A listener's failure must not stop the Ready loop: report it. A broken invariant crashes.
        crashOnAssertion(err);
        this.error({ err: describeError(err) }, 'state-change listener threw');
      }
    }
  }

  // -------------------------------------------------------------------------
  // Shutdown

  /** Fail-stop after a storage failure (or a snapshot encoder's); an AssertionError crashes instead. */
  private fail(err: unknown): void {
    crashOnAssertion(err);
    if (this.state === 'failed' || this.state === 'closed') return;
    const wasClosing = this.state === 'closing';
    this.state = 'failed';
    this.stopTicking();
    if (!wasClosing) this.error({ err: describeError(err) }, 'storage failed; raft node stopped');
    const e = new CohortError('IO_ERROR', `raft node ${this.id} stopped: storage failed`, {
      cause: err,
    });
    this.rejectAll(e, e);
    if (!wasClosing) this.onFatal?.(err);
  }

  private rejectAll(proposalErr: CohortError, readErr: CohortError): void {
    this.rejectProposals(proposalErr);
    const reads = [...this.reads.values(), ...this.waitingReads.map((w) => w.read)];
    this.reads.clear();
    this.waitingReads = [];
    for (const r of reads) r.reject(readErr);
    const transfers = this.transfers;
    this.transfers = [];
    for (const t of transfers) t.reject(readErr);
    const checks = [...this.tickWaiters];
    this.tickWaiters.clear();
    for (const check of checks) check(); // each sees the node is not running and rejects
  }

  private stopTicking(): void {
    if (this.tickTimer !== undefined) this.clock.clearTimer(this.tickTimer);
    this.tickTimer = undefined;
  }

  private async shutdown(): Promise<void> {
    const failed = this.state === 'failed';
    if (!failed) this.state = 'closing';
    this.stopTicking();
    this.transport.onMessage(() => {});
    this.limited.close();
    // Let the save in flight finish (its Ready completes: messages out, entries applied).
    while (this.saves.size > 0) {
      await Promise.allSettled([...this.saves]);
    }
    if (this.state === 'closing') {
      this.flushHardState(); // keep the latest commit index (spares re-learning it)
      await Promise.allSettled([...this.saves]);
    }
    if (this.state === 'closing') this.state = 'closed';
    this.rejectAll(
      new CohortError('CLOSED', `raft node ${this.id} closed`, { definite: false }),
      new CohortError('CLOSED', `raft node ${this.id} closed`),
    );
    const closing: Promise<void>[] = [];
    if (this.ownsTransport) closing.push(this.transport.close());
    if (this.ownsStorage) closing.push(this.storage.close());
    const results = await Promise.allSettled(closing);
    for (const r of results) {
      if (r.status === 'rejected') this.warn({ err: describeError(r.reason) }, 'close failed');
    }
    this.info({ applied: this.applied }, 'raft node closed');
  }

  // -------------------------------------------------------------------------
  // Logging: every line carries the node (child binding) and the current term.

  private info(obj: object, msg: string): void {
    if (this.log.isLevelEnabled('info')) this.log.info({ term: this.term, ...obj }, msg);
  }
  private warn(obj: object, msg: string): void {
    this.log.warn({ term: this.term, ...obj }, msg);
  }
  private error(obj: object, msg: string): void {
    this.log.error({ term: this.term, ...obj }, msg);
  }
  private debug(obj: object, msg: string): void {
    if (this.log.isLevelEnabled('debug')) this.log.debug({ term: this.term, ...obj }, msg);
  }
}

function cancelled(definite: boolean): CohortError {
  return new CohortError(
    'CANCELLED',
    definite ? 'cancelled before anything was done' : 'cancelled; the proposal may still commit',
    { definite },
  );
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function describeError(err: unknown): unknown {
  return isCohortError(err) ? err.toJSON() : err instanceof Error ? err.message : err;
}
