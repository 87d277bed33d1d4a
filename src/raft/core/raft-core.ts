/**
 * The pure Raft core: one node's consensus state machine. It is synchronous
 * and deterministic — no clock, no I/O, no timers, no `await`. Time reaches it
 * as `tick()`, randomness through an injected {@link Random}, and everything it
 * wants done comes out as a {@link Ready} batch.
 *
 * ```ts
 * const core = new RaftCore(
 *   { id: nodeId('n1'), random: rng.fork('raft:n1'), electionTicks: 10, heartbeatTicks: 1 },
 *   await storage.load(),                        // or emptyInitialState
 *   { voters: [n1, n2, n3], learners: [] },      // bootstrap config (used only on an empty log)
 * );
 * // the shell turns its timer into ticks: every 100 ms, core.tick()
 * transport.onMessage((m) => core.step(m));
 * const r = core.propose(bytes);                 // { kind: 'accepted', index, term } or rejected
 * while (core.hasReady()) {
 *   const rd = core.ready();
 *   await storage.save({ snapshot: rd.snapshot?.snapshot, entries: rd.entries, hardState: rd.hardState });
 *   for (const m of rd.messages) transport.send(m.to, m);
 *   if (rd.snapshot?.restore) stateMachine.restore(rd.snapshot.snapshot);
 *   for (const e of rd.committedEntries) stateMachine.apply(e);
 *   for (const r of rd.readStates) serveReadWhenApplied(r);
 *   core.advance(rd);
 * }
 * ```
 *
 * ## The Ready contract
 *
 * `ready()` returns everything the shell must do, and the shell does it in
 * this order before calling `advance(ready)`:
 *
 * 1. **Persist** `snapshot` (if any), then `entries`, then `hardState`, in one
 *    durable write (`Storage.save`). `entries` may start at or below the
 *    last stored index: the stored suffix from there is replaced (log repair).
 *    `hardState` is present only when term, vote or commit changed.
 * 2. **Send** `messages` — only after step 1 is durable (Raft Figure 2: a vote
 *    or an acknowledgement must never be sent before what it promises is on
 *    disk). Messages may be lost, duplicated or reordered; the core copes.
 * 3. **Apply**: if `snapshot.restore` is true the snapshot came from the leader
 *    and the state machine must load it first; then apply `committedEntries`
 *    in order (they are committed *and* already durable locally). Entries of
 *    kind `noop` and `config` carry no command and are skipped by the state
 *    machine (but count as applied).
 * 4. **Serve reads**: each `readStates` item with `ok` may be answered once the
 *    state machine has applied up to its `index` (ReadIndex, dissertation
 *    §6.4); a failed one says the read was not confirmed (leadership lost).
 * 5. Call `advance(ready)`. Only then may `ready()` be called again. `step`,
 *    `tick`, `propose` and friends may be called at any time, also between
 *    `ready()` and `advance()`.
 *
 * `softState` (role, leader) is present when it changed, for observability.
 *
 * A proposal is accepted at an (index, term); it is committed if an entry with
 * that index *and term* is later applied. If another term's entry is applied
 * at that index, the proposal was lost and may be retried.
 *
 * ## Design choices
 *
 * - Membership changes are **single-server changes** (dissertation §4.1): one
 *   node added as a learner, promoted, or removed at a time; the next change
 *   is refused until the previous one commits and until the leader has
 *   committed an entry of its own term (the fix of dissertation §4.1's bug).
 *   A node uses the newest configuration in its log, committed or not. A
 *   leader that removes itself keeps leading (not counting itself) until the
 *   change commits, then hands over with TimeoutNow and steps down. A node
 *   being removed is still replicated to until its removal commits, so it
 *   normally learns of it and stops campaigning; one that never learns is
 *   refused by pre-vote (its log is behind) and ignored under check-quorum
 *   (leader stickiness), but with both off it can still force elections.
 * - Commit index: never decreases while a node runs; after a restart it
 *   resumes from the persisted `HardState.commit` (possibly lower, if the
 *   last hard state was not yet saved) and rises again.
 * - Pre-vote (dissertation §9.6) and check-quorum (dissertation §6.2) are on by
 *   default. A node that heard from a leader within the election timeout
 *   refuses pre-votes, and with check-quorum also ignores RequestVote (leader
 *   stickiness, dissertation §4.2.3), except elections started by TimeoutNow.
 * - Lease reads (`leaseReads`) serve reads without a heartbeat round while a
 *   quorum acknowledged a heartbeat sent less than `electionTicks -
 *   leaseMarginTicks` ticks ago. They are **clock-dependent**: safe only if no
 *   node's tick runs faster than the leader's by more than the margin. Off by
 *   default; require check-quorum.
 */
import { assert, assertNever } from '../../lib/assert.js';
import { CohortError } from '../../lib/errors.js';
import type { LogIndex, NodeId, Term } from '../../lib/ids.js';
import { limits } from '../../lib/limits.js';
import type { Random } from '../../lib/random.js';
import { committedIndex, encodeConfig, hasQuorum, isVoter, members, voteResult } from './config.js';
import { RaftLog } from './log.js';
import type {
  AppendEntries,
  AppendEntriesResponse,
  Heartbeat,
  HeartbeatResponse,
  InstallSnapshot,
  InstallSnapshotResponse,
  PreVote,
  RaftMessage,
  RequestVote,
} from './messages.js';
import { validateMessage } from './messages.js';
import { Progress } from './progress.js';
import type { ProgressState } from './progress.js';
import type {
  ClusterConfig,
  Entry,
  EntryKind,
  HardState,
  RaftInitialState,
  Snapshot,
  SnapshotMeta,
} from './types.js';

/**
 * TEST-ONLY deliberate bugs. Every switch defaults to off and must never be
 * set outside tests: the simulator turns one on to prove that its checkers
 * catch the violation it causes. With any switch on, the core also tolerates
 * states its assertions would otherwise reject (e.g. overwriting a committed
 * entry), so that the simulator's checkers, not an assertion, see the damage.
 */
export interface RaftBugs {
  /** Breaks Raft §5.4.2 (Figure 8): commit an entry of an older term by counting replicas. */
  readonly countOldTermEntriesForCommit?: boolean;
  /** Breaks Raft Figure 2 persistence: the vote is left out of the persisted HardState, so a restarted node can vote twice in a term. */
  readonly forgetToPersistVote?: boolean;
  /** Breaks Raft §5.4.1: grant votes without checking that the candidate's log is up to date. */
  readonly skipElectionRestriction?: boolean;
  /** Breaks Raft §5.3: accept AppendEntries without checking the term at prevLogIndex. */
  readonly skipLogConsistencyCheck?: boolean;
  /** Breaks dissertation §6.4: answer ReadIndex at once, without confirming leadership (a deposed leader serves stale reads). */
  readonly skipReadConfirmation?: boolean;
}

/** Configuration of one {@link RaftCore}. */
export interface RaftOptions {
  /** This node's id. */
  readonly id: NodeId;
  /** Injected randomness (election timeouts). Fork one per node. */
  readonly random: Random;
  /** Base election timeout in ticks; the actual one is drawn from [electionTicks+1, 2·electionTicks] (Raft §5.2; one tick past the lease). Default 10. */
  readonly electionTicks?: number;
  /** Ticks between leader heartbeats; must be below electionTicks. Default 1. */
  readonly heartbeatTicks?: number;
  /** Pre-vote phase before each election (dissertation §9.6). Default true. */
  readonly preVote?: boolean;
  /** Leader steps down if it has not heard from a quorum within an election timeout (dissertation §6.2). Default true. */
  readonly checkQuorum?: boolean;
  /** Clock-dependent lease reads (see the file header). Requires checkQuorum. Default false. */
  readonly leaseReads?: boolean;
  /** Safety margin of lease reads, in ticks (clock drift allowance). Default 2. */
  readonly leaseMarginTicks?: number;
  /** Unacknowledged AppendEntries per follower in replicate mode. */
  readonly maxInflightAppends?: number;
  /** Entries per AppendEntries. */
  readonly maxAppendEntries?: number;
  /** Soft cap on entry bytes per AppendEntries (at least one entry is always sent). */
  readonly maxAppendBytes?: number;
  /** Uncommitted entries a leader accepts before answering OVERLOADED. */
  readonly maxUncommittedEntries?: number;
  /** Bytes per InstallSnapshot chunk. */
  readonly snapshotChunkBytes?: number;
  /** Index the state machine has already applied at start (default: the snapshot's index). */
  readonly applied?: LogIndex;
  /** TEST-ONLY deliberate bugs; see {@link RaftBugs}. */
  readonly bugs?: RaftBugs;
}

/** A node's role (Raft §5.1, plus the pre-candidate of dissertation §9.6). */
export type RaftRole = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/** Volatile state worth reporting when it changes. */
export interface SoftState {
  readonly role: RaftRole;
  readonly leader: NodeId | null;
}

/** Context a caller attaches to a read to recognise its {@link ReadState}. */
export type ReadContext = string | number;

/** The outcome of a ReadIndex request (dissertation §6.4). */
export type ReadState =
  | { readonly ctx: ReadContext; readonly ok: true; readonly index: LogIndex }
  | { readonly ctx: ReadContext; readonly ok: false; readonly leaderHint: NodeId | null };

/** A snapshot to persist; `restore` says whether the state machine must load it (it came from the leader). */
export interface ReadySnapshot {
  readonly snapshot: Snapshot;
  readonly restore: boolean;
}

/** One batch of work for the shell; see "The Ready contract" in the file header. */
export interface Ready {
  readonly softState?: SoftState;
  readonly hardState?: HardState;
  readonly snapshot?: ReadySnapshot;
  readonly entries: readonly Entry[];
  readonly messages: readonly RaftMessage[];
  readonly committedEntries: readonly Entry[];
  readonly readStates: readonly ReadState[];
}

/** Why a request was refused. */
export type RejectReason =
  | 'NOT_LEADER'
  | 'TRANSFERRING'
  | 'OVERLOADED'
  | 'CONFIG_CHANGE_PENDING'
  | 'INVALID_CHANGE'
  | 'LEARNER_NOT_CAUGHT_UP';

/** A refusal, with the leader this node knows of (null if none). */
export interface Rejected {
  readonly kind: 'rejected';
  readonly reason: RejectReason;
  readonly leaderHint: NodeId | null;
}

/** Result of {@link RaftCore.propose} and {@link RaftCore.proposeConfigChange}. */
export type ProposeResult =
  { readonly kind: 'accepted'; readonly index: LogIndex; readonly term: Term } | Rejected;

/** Result of requests answered later through Ready ({@link RaftCore.readIndex}, {@link RaftCore.transferLeadership}). */
export type RequestResult = { readonly kind: 'accepted' } | Rejected;

/** A single-server membership change (dissertation §4.1). */
export type ConfigChange =
  | { readonly type: 'addLearner'; readonly node: NodeId }
  | { readonly type: 'promoteLearner'; readonly node: NodeId }
  | { readonly type: 'removeNode'; readonly node: NodeId };

/** One follower's replication state as the leader sees it. */
export interface PeerStatus {
  readonly match: LogIndex;
  readonly next: LogIndex;
  readonly state: ProgressState;
  readonly recentActive: boolean;
}

/** A read-only summary of a node, for tests, the simulator's checkers and dashboards. */
export interface RaftStatus {
  readonly id: NodeId;
  readonly role: RaftRole;
  readonly term: Term;
  readonly vote: NodeId | null;
  readonly leader: NodeId | null;
  readonly commit: LogIndex;
  readonly applied: LogIndex;
  readonly firstIndex: LogIndex;
  readonly lastIndex: LogIndex;
  readonly lastTerm: Term;
  readonly snapshotIndex: LogIndex;
  readonly config: ClusterConfig;
  readonly leadTransferee: NodeId | null;
  /** Leader only: every other member's progress (recentActive: heard from within an election timeout). */
  readonly progress: ReadonlyMap<NodeId, PeerStatus>;
}

interface PendingRead {
  readonly ctx: ReadContext;
  readonly index: LogIndex;
  readonly seq: number;
}

interface IncomingSnapshot {
  readonly leaderTerm: number;
  readonly meta: SnapshotMeta;
  readonly chunks: Uint8Array[];
  received: number;
  readonly total: number;
}

const emptyConfig: ClusterConfig = { voters: [], learners: [] };

function positiveInt(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new CohortError('INVALID_ARGUMENT', `raft option ${name} must be a positive integer`, {
      details: { field: name, value },
    });
  }
  return value;
}

/** One node's Raft state machine (see the file header for the API and the Ready contract). */
export class RaftCore {
  /** This node's id. */
  readonly id: NodeId;
  private readonly random: Random;
  private readonly electionTicks: number;
  private readonly heartbeatTicks: number;
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  private readonly leaseReads: boolean;
  private readonly leaseMarginTicks: number;
  private readonly maxInflight: number;
  private readonly maxAppendEntries: number;
  private readonly maxAppendBytes: number;
  private readonly maxUncommitted: number;
  private readonly chunkBytes: number;
  private readonly bugs: RaftBugs;
  private readonly anyBug: boolean;

  private readonly log: RaftLog;
  private term: Term;
  private vote: NodeId | null;
  private role: RaftRole = 'follower';
  private leader: NodeId | null = null;

  /** Ticks since the last election reset (followers: since hearing from the leader). */
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  /** Total ticks seen (lease reads, snapshot resends). */
  private now = 0;

  private votes = new Map<NodeId, boolean>();
  private readonly progress = new Map<NodeId, Progress>();
  private msgs: RaftMessage[] = [];
  private needFlush = false;

  /**
   * The newest snapshot (local compaction or installed from the leader), kept to
   * send to lagging followers. A transfer already under way keeps the snapshot it
   * started with (pinned in its Progress), so an older one may stay alive until
   * that transfer ends: at most one extra per follower, shared by reference.
   */
  private localSnapshot: Snapshot | null;
  private pendingSnapshot: ReadySnapshot | null = null;
  private incoming: IncomingSnapshot | null = null;

  private leadTransferee: NodeId | null = null;
  private transferElapsed = 0;
  /** Leader: has an entry of the current term been committed (ReadIndex and config-change precondition). */
  private committedInTerm = false;
  /** Leader: progress reflects the committed configuration (no removal pending). */
  private progressSyncedAt = true;

  private heartbeatSeq = 0;
  private readonly seqSentTick = new Map<number, number>();
  private leaseStartTick = -Infinity;
  private pendingReads: PendingRead[] = [];
  private readsAwaitingCommit: ReadContext[] = [];
  private readRoundWanted = false;
  private readStates: ReadState[] = [];

  private prevSoft: SoftState;
  private prevHard: HardState;
  private outstanding: Ready | null = null;

  /**
   * Creates a node from what storage recovered. `bootstrap` is the initial
   * configuration of a brand-new cluster; it is used only when `initial`
   * holds neither a snapshot nor a config entry (a node joining an existing
   * cluster passes none and waits to be added).
   */
  constructor(
    options: RaftOptions,
    initial: RaftInitialState,
    bootstrap: ClusterConfig = emptyConfig,
  ) {
    this.id = options.id;
    this.random = options.random;
    this.electionTicks = positiveInt('electionTicks', options.electionTicks ?? 10);
    this.heartbeatTicks = positiveInt('heartbeatTicks', options.heartbeatTicks ?? 1);
    if (this.heartbeatTicks >= this.electionTicks) {
      throw new CohortError('INVALID_ARGUMENT', 'raft heartbeatTicks must be below electionTicks', {
        details: { heartbeatTicks: this.heartbeatTicks, electionTicks: this.electionTicks },
      });
    }
    this.preVote = options.preVote ?? true;
    this.checkQuorum = options.checkQuorum ?? true;
    this.leaseReads = options.leaseReads ?? false;
    this.leaseMarginTicks = options.leaseMarginTicks ?? 2;
    if (this.leaseReads && !this.checkQuorum) {
      throw new CohortError('INVALID_ARGUMENT', 'raft leaseReads requires checkQuorum');
    }
    if (this.leaseReads && this.leaseMarginTicks >= this.electionTicks) {
      throw new CohortError(
        'INVALID_ARGUMENT',
        'raft leaseMarginTicks must be below electionTicks',
      );
    }
    this.maxInflight = positiveInt(
      'maxInflightAppends',
      options.maxInflightAppends ?? limits.raftInflightAppendsMax,
    );
    this.maxAppendEntries = positiveInt(
      'maxAppendEntries',
      options.maxAppendEntries ?? limits.raftAppendEntriesMax,
    );
    this.maxAppendBytes = positiveInt(
      'maxAppendBytes',
      options.maxAppendBytes ?? limits.raftAppendBytesMax,
    );
    this.maxUncommitted = positiveInt(
      'maxUncommittedEntries',
      options.maxUncommittedEntries ?? limits.raftUncommittedEntriesMax,
    );
    this.chunkBytes = positiveInt(
      'snapshotChunkBytes',
      options.snapshotChunkBytes ?? limits.snapshotChunkBytesMax,
    );
    if (this.chunkBytes > limits.snapshotChunkBytesMax) {
      throw new CohortError(
        'INVALID_ARGUMENT',
        'raft snapshotChunkBytes above snapshotChunkBytesMax',
      );
    }
    this.bugs = options.bugs ?? {};
    this.anyBug = Object.values(this.bugs).some((v) => v === true);

    const all = [...bootstrap.voters, ...bootstrap.learners, ...(bootstrap.votersOutgoing ?? [])];
    if (
      new Set([...bootstrap.voters, ...bootstrap.learners]).size !==
        bootstrap.voters.length + bootstrap.learners.length ||
      all.some((x) => typeof x !== 'string' || x.length === 0)
    ) {
      throw new CohortError(
        'INVALID_ARGUMENT',
        'raft bootstrap config: node ids must be distinct and non-empty',
        {
          details: { voters: bootstrap.voters, learners: bootstrap.learners },
        },
      );
    }
    this.log = new RaftLog(initial, bootstrap);
    this.term = initial.hardState.term;
    this.vote = initial.hardState.vote;
    this.localSnapshot = initial.snapshot;
    if (options.applied !== undefined) {
      assert(
        options.applied >= this.log.applied && options.applied <= this.log.commit,
        'options.applied must lie between the snapshot index and the commit index',
      );
      this.log.applied = options.applied;
      this.log.applying = options.applied;
    }
    this.prevHard = { term: this.term, vote: this.vote, commit: this.log.commit };
    this.prevSoft = { role: this.role, leader: this.leader };
    this.resetElectionTimer();
  }

  // -------------------------------------------------------------------------
  // Inputs

  /** Advances logical time by one tick (Raft §5.2 election timeout, heartbeats, check-quorum). */
  tick(): void {
    this.now++;
    if (this.role === 'leader') {
      this.tickLeader();
      return;
    }
    this.electionElapsed++;
    if (this.electionElapsed >= this.randomizedElectionTimeout && this.promotable()) {
      this.electionElapsed = 0;
      this.campaign(this.preVote ? 'pre' : 'real', false);
    }
  }

  /** Starts an election now (as if the election timer fired); a no-op on a leader or a non-voter. */
  campaign(kind: 'pre' | 'real' = this.preVote ? 'pre' : 'real', transfer = false): void {
    if (this.role === 'leader' || !this.promotable()) return;
    this.leader = null;
    this.votes = new Map([[this.id, true]]);
    this.resetElectionTimer();
    const config = this.log.config();
    if (kind === 'pre') {
      this.role = 'preCandidate';
      for (const to of this.otherVoters(config)) {
        const m: PreVote = {
          type: 'PreVote',
          from: this.id,
          to,
          term: (this.term + 1) as Term,
          lastLogIndex: this.log.lastIndex(),
          lastLogTerm: this.log.lastTerm(),
        };
        this.msgs.push(m);
      }
    } else {
      // Raft §5.2: increment the term, vote for self, ask everyone else.
      this.role = 'candidate';
      this.term = (this.term + 1) as Term;
      this.vote = this.id;
      for (const to of this.otherVoters(config)) {
        const m: RequestVote = {
          type: 'RequestVote',
          from: this.id,
          to,
          term: this.term,
          lastLogIndex: this.log.lastIndex(),
          lastLogTerm: this.log.lastTerm(),
          transfer,
        };
        this.msgs.push(m);
      }
    }
    this.tallyVotes();
  }

  /**
   * Feeds one message received from a peer. Throws a SCHEMA_VIOLATION /
   * UNKNOWN_MESSAGE / INVALID_ARGUMENT {@link CohortError} for a malformed or
   * misaddressed message, changing nothing.
   */
  step(message: RaftMessage): void {
    validateMessage(message);
    const m = message;
    if (m.to !== this.id || m.from === this.id) {
      throw new CohortError(
        'INVALID_ARGUMENT',
        `raft message for ${m.to} from ${m.from} stepped into ${this.id}`,
      );
    }
    if (m.term > this.term) {
      if (m.type === 'PreVote' || (m.type === 'PreVoteResponse' && m.granted)) {
        // Dissertation §9.6: pre-votes never change anyone's term.
      } else if (m.type === 'RequestVote' && !m.transfer && this.checkQuorum && this.inLease()) {
        // Dissertation §4.2.3: a node that hears from a live leader ignores disruptive candidates.
        return;
      } else {
        const fromLeader =
          m.type === 'AppendEntries' || m.type === 'Heartbeat' || m.type === 'InstallSnapshot';
        this.becomeFollower(m.term, fromLeader ? m.from : null);
      }
    } else if (m.term < this.term) {
      this.answerStale(m);
      return;
    }

    switch (m.type) {
      case 'RequestVote':
        this.handleRequestVote(m);
        return;
      case 'PreVote':
        this.handlePreVote(m);
        return;
      case 'RequestVoteResponse':
        if (this.role === 'candidate') {
          this.votes.set(m.from, m.granted);
          this.tallyVotes();
        }
        return;
      case 'PreVoteResponse':
        // A grant echoes term+1; a refusal at our own term counts as a no.
        if (
          this.role === 'preCandidate' &&
          (m.granted ? m.term === this.term + 1 : m.term === this.term)
        ) {
          this.votes.set(m.from, m.granted);
          this.tallyVotes();
        }
        return;
      case 'AppendEntries':
        if (!this.acceptLeader(m.from)) return;
        this.handleAppendEntries(m);
        return;
      case 'Heartbeat':
        if (!this.acceptLeader(m.from)) return;
        this.handleHeartbeat(m);
        return;
      case 'InstallSnapshot':
        if (!this.acceptLeader(m.from)) return;
        this.handleInstallSnapshot(m);
        return;
      case 'AppendEntriesResponse':
        if (this.role === 'leader') this.handleAppendResponse(m);
        return;
      case 'HeartbeatResponse':
        if (this.role === 'leader') this.handleHeartbeatResponse(m);
        return;
      case 'InstallSnapshotResponse':
        if (this.role === 'leader') this.handleSnapshotResponse(m);
        return;
      case 'TimeoutNow':
        // Dissertation §3.10: the leader asks us to start an election at once.
        if (this.role !== 'leader' && this.promotable()) this.campaign('real', true);
        return;
      default:
        assertNever(m);
    }
  }

  /**
   * Appends a client command (leader only). Accepted means appended at
   * (index, term), not committed: watch the applied entries for it. Throws
   * INVALID_ARGUMENT if `data` is larger than `limits.raftEntryBytesMax`.
   */
  propose(data: Uint8Array): ProposeResult {
    if (!(data instanceof Uint8Array) || data.length > limits.raftEntryBytesMax) {
      throw new CohortError(
        'INVALID_ARGUMENT',
        `a raft entry holds at most ${limits.raftEntryBytesMax} bytes`,
        {
          details: { bytes: data instanceof Uint8Array ? data.length : null },
        },
      );
    }
    const refused = this.refuseWrite();
    if (refused !== null) return refused;
    const e = this.appendOwn('normal', data);
    return { kind: 'accepted', index: e.index, term: e.term };
  }

  /**
   * Proposes a single-server membership change (dissertation §4.1). Refused
   * while another change is uncommitted, before the leader committed an entry
   * of its term, when the change makes no sense (INVALID_CHANGE), or when
   * promoting a learner that has not caught up with the commit index.
   */
  proposeConfigChange(change: ConfigChange): ProposeResult {
    const refused = this.refuseWrite();
    if (refused !== null) return refused;
    if (this.log.configIndex() > this.log.commit || !this.committedInTerm) {
      return this.reject('CONFIG_CHANGE_PENDING');
    }
    const c = this.log.config();
    assert(c.votersOutgoing === undefined, 'this core never enters joint consensus');
    const isMember = members(c).includes(change.node);
    let next: ClusterConfig;
    switch (change.type) {
      case 'addLearner':
        if (isMember) return this.reject('INVALID_CHANGE');
        next = { voters: c.voters, learners: [...c.learners, change.node] };
        break;
      case 'promoteLearner': {
        if (!c.learners.includes(change.node)) return this.reject('INVALID_CHANGE');
        const pr = this.progress.get(change.node);
        if (pr === undefined || pr.match < this.log.commit)
          return this.reject('LEARNER_NOT_CAUGHT_UP');
        next = {
          voters: [...c.voters, change.node],
          learners: c.learners.filter((l) => l !== change.node),
        };
        break;
      }
      case 'removeNode':
        if (!isMember) return this.reject('INVALID_CHANGE');
        next = {
          voters: c.voters.filter((v) => v !== change.node),
          learners: c.learners.filter((l) => l !== change.node),
        };
        if (next.voters.length === 0) return this.reject('INVALID_CHANGE');
        break;
      default:
        assertNever(change);
    }
    const e = this.appendOwn('config', encodeConfig(next));
    return { kind: 'accepted', index: e.index, term: e.term };
  }

  /**
   * Starts handing leadership to `to` (dissertation §3.10): once `to` has the
   * whole log it gets TimeoutNow. Proposals are refused meanwhile; the
   * transfer is abandoned after an election timeout.
   */
  transferLeadership(to: NodeId): RequestResult {
    if (this.role !== 'leader') return this.reject('NOT_LEADER');
    if (to === this.id) return { kind: 'accepted' };
    if (!isVoter(this.log.config(), to) || !this.progress.has(to))
      return this.reject('INVALID_CHANGE');
    if (this.leadTransferee === to) return { kind: 'accepted' };
    this.leadTransferee = to;
    this.transferElapsed = 0;
    const pr = this.progress.get(to) as Progress;
    if (pr.match === this.log.lastIndex()) {
      this.sendTimeoutNow(to);
    } else {
      pr.forceSend = true; // catch it up now rather than at the next heartbeat
      pr.probeSent = false;
      this.needFlush = true;
    }
    return { kind: 'accepted' };
  }

  /**
   * Asks for a linearizable read point (ReadIndex, dissertation §6.4). The
   * answer comes as a {@link ReadState} with `ctx` in a later Ready: the
   * commit index at the time of the request, confirmed by a quorum's answer to
   * a heartbeat round sent after it (or by a valid lease with `leaseReads`).
   */
  readIndex(ctx: ReadContext): RequestResult {
    if (this.role !== 'leader') return this.reject('NOT_LEADER');
    if (this.pendingReads.length + this.readsAwaitingCommit.length >= limits.raftPendingReadsMax) {
      return this.reject('OVERLOADED');
    }
    if (!this.committedInTerm) {
      // §6.4 step 1: the leader's commit index is only known current once it committed in its term.
      this.readsAwaitingCommit.push(ctx);
    } else {
      this.startRead(ctx);
    }
    return { kind: 'accepted' };
  }

  /**
   * The state machine hands a snapshot of everything applied up to `index`
   * (Raft §7). The log before it is dropped and the snapshot is kept to send
   * to lagging followers; the next Ready carries it to persist (restore:
   * false). Returns false (and does nothing) if a snapshot already covers
   * `index`. `index` must not exceed what was applied and advanced.
   */
  compact(index: LogIndex, data: Uint8Array): boolean {
    if (index <= this.log.snapshotMeta().index) return false;
    assert(index <= this.log.applied, `compact(${index}) beyond applied ${this.log.applied}`);
    const meta: SnapshotMeta = {
      index,
      term: this.log.term(index) as Term,
      config: this.log.configAt(index),
    };
    this.log.compact(meta);
    const snapshot: Snapshot = { meta, data };
    this.localSnapshot = snapshot;
    this.pendingSnapshot = { snapshot, restore: false };
    return true;
  }

  // -------------------------------------------------------------------------
  // Output

  /** True if {@link ready} has anything to hand out. */
  hasReady(): boolean {
    if (this.outstanding !== null) return false;
    if (this.role === 'leader' && (this.needFlush || this.readRoundWanted)) return true;
    return (
      this.msgs.length > 0 ||
      this.log.hasUnstable() ||
      this.log.hasCommittedToApply() ||
      this.pendingSnapshot !== null ||
      this.readStates.length > 0 ||
      this.softChanged() ||
      this.hardChanged()
    );
  }

  /** Collects the next batch of work (see "The Ready contract"). Call {@link advance} before the next one. */
  ready(): Ready {
    assert(this.outstanding === null, 'ready() called again before advance()');
    if (this.role === 'leader') {
      if (this.readRoundWanted) this.broadcastHeartbeat();
      if (this.needFlush) this.flush();
    }
    const rd: {
      softState?: SoftState;
      hardState?: HardState;
      snapshot?: ReadySnapshot;
      entries: readonly Entry[];
      messages: readonly RaftMessage[];
      committedEntries: readonly Entry[];
      readStates: readonly ReadState[];
    } = {
      entries: this.log.takeUnstable(),
      messages: this.msgs,
      committedEntries: [],
      readStates: this.readStates,
    };
    if (this.pendingSnapshot !== null) rd.snapshot = this.pendingSnapshot;
    rd.committedEntries = this.log.takeCommitted(limits.raftApplyEntriesMax);
    if (this.softChanged()) {
      this.prevSoft = { role: this.role, leader: this.leader };
      rd.softState = this.prevSoft;
    }
    if (this.hardChanged()) {
      this.prevHard = { term: this.term, vote: this.vote, commit: this.log.commit };
      // TEST-ONLY bug: the vote never reaches storage, so a restarted node may vote again in a term.
      rd.hardState =
        this.bugs.forgetToPersistVote === true ? { ...this.prevHard, vote: null } : this.prevHard;
    }
    this.msgs = [];
    this.readStates = [];
    this.pendingSnapshot = null;
    this.outstanding = rd;
    return rd;
  }

  /** Reports that `rd` was persisted, sent and applied (step 5 of the Ready contract). */
  advance(rd: Ready): void {
    assert(this.outstanding === rd, 'advance() must get the Ready returned by the last ready()');
    this.outstanding = null;
    this.log.markPersisted();
    const last = rd.committedEntries[rd.committedEntries.length - 1];
    if (last !== undefined) this.log.markApplied(last.index);
    if (this.role === 'leader') this.maybeCommit();
  }

  // -------------------------------------------------------------------------
  // Observation

  /** A summary of this node (role, term, indexes, configuration, followers' progress). */
  status(): RaftStatus {
    const progress = new Map<NodeId, PeerStatus>();
    for (const [id, pr] of this.progress) {
      progress.set(id, {
        match: pr.match,
        next: pr.next,
        state: pr.state,
        recentActive: this.now - pr.lastActiveTick < this.electionTicks,
      });
    }
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leader: this.leader,
      commit: this.log.commit,
      applied: this.log.applied,
      firstIndex: this.log.firstIndex(),
      lastIndex: this.log.lastIndex(),
      lastTerm: this.log.lastTerm(),
      snapshotIndex: this.log.snapshotMeta().index,
      config: this.log.config(),
      leadTransferee: this.leadTransferee,
      progress,
    };
  }

  /** Entries held in memory from `lo` to `hi` inclusive (clamped to what is held); for checkers and dumps. */
  entries(lo: number = this.log.firstIndex(), hi: number = this.log.lastIndex()): Entry[] {
    const from = Math.max(lo, this.log.firstIndex());
    if (from > hi) return [];
    return this.log.slice(from, hi);
  }

  /** Term of the entry at `index`, or undefined if compacted away or absent. */
  termAt(index: number): Term | undefined {
    return this.log.term(index);
  }

  /** The newest snapshot this node holds (local or installed), or null. */
  snapshot(): Snapshot | null {
    return this.localSnapshot;
  }

  // -------------------------------------------------------------------------
  // Roles

  private promotable(): boolean {
    return isVoter(this.log.config(), this.id);
  }

  private otherVoters(config: ClusterConfig): NodeId[] {
    const out = new Set<NodeId>(config.voters);
    for (const v of config.votersOutgoing ?? []) out.add(v);
    out.delete(this.id);
    return [...out];
  }

  private resetElectionTimer(): void {
    this.electionElapsed = 0;
    // Raft §5.2 randomizes the timeout; it starts one tick past the lease
    // (inLease, dissertation §4.2.3) because nodes' ticks are not in phase: a
    // follower timing out after exactly electionTicks could ask a voter that
    // has counted only electionTicks − 1 since the same heartbeat, still inside
    // its lease, and lose a whole round (measured: ~3 in 40 leader kills on
    // real processes took ~620 ms to the first write instead of ~270).
    this.randomizedElectionTimeout = this.random.intBetween(
      this.electionTicks + 1,
      2 * this.electionTicks,
    );
  }

  /** Heard from a leader within the minimum election timeout (leader stickiness). */
  private inLease(): boolean {
    return this.leader !== null && this.electionElapsed < this.electionTicks;
  }

  private becomeFollower(term: Term, leader: NodeId | null): void {
    const wasLeader = this.role === 'leader';
    if (term > this.term) {
      this.term = term;
      this.vote = null;
      this.incoming = null; // a partial snapshot from an older leader is not resumed
    }
    this.role = 'follower';
    this.leader = leader;
    this.votes = new Map();
    this.resetElectionTimer();
    if (wasLeader) this.resetLeaderState();
  }

  private resetLeaderState(): void {
    this.progress.clear();
    this.leadTransferee = null;
    this.needFlush = false;
    this.committedInTerm = false;
    this.readRoundWanted = false;
    this.leaseStartTick = -Infinity;
    this.seqSentTick.clear();
    const hint = this.leader;
    for (const r of this.pendingReads)
      this.readStates.push({ ctx: r.ctx, ok: false, leaderHint: hint });
    for (const ctx of this.readsAwaitingCommit)
      this.readStates.push({ ctx, ok: false, leaderHint: hint });
    this.pendingReads = [];
    this.readsAwaitingCommit = [];
  }

  /** A leader's message at our term: candidates step down; two leaders in a term is a bug. */
  private acceptLeader(from: NodeId): boolean {
    if (this.role === 'leader') {
      assert(this.anyBug, `two leaders in term ${this.term}: ${this.id} and ${from}`);
      return false;
    }
    if (this.role !== 'follower') this.becomeFollower(this.term, from);
    this.leader = from;
    this.electionElapsed = 0;
    return true;
  }

  private tallyVotes(): void {
    const result = voteResult(this.log.config(), this.votes);
    if (result === 'won') {
      if (this.role === 'preCandidate') this.campaign('real', false);
      else if (this.role === 'candidate') this.becomeLeader();
    } else if (result === 'lost') {
      this.becomeFollower(this.term, null);
    }
  }

  private becomeLeader(): void {
    this.role = 'leader';
    this.leader = this.id;
    this.votes = new Map();
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetLeaderState();
    this.syncProgress();
    for (const pr of this.progress.values()) pr.lastActiveTick = this.now; // a fresh grace period
    // Raft §8: a new leader commits a no-op entry of its term to learn what is committed.
    this.appendOwn('noop', new Uint8Array(0));
  }

  /**
   * Keeps one Progress per other member of the current configuration, and of
   * the committed one: a node being removed is still replicated to until its
   * removal commits, so it learns of it and does not campaign.
   */
  private syncProgress(): void {
    const want = new Set(members(this.log.config()));
    for (const id of members(this.log.configAt(this.log.commit))) want.add(id);
    want.delete(this.id);
    this.progressSyncedAt = this.log.commit >= this.log.configIndex();
    for (const id of [...this.progress.keys()]) if (!want.has(id)) this.progress.delete(id);
    for (const id of want) {
      if (!this.progress.has(id)) {
        const pr = new Progress(this.log.lastIndex() + 1);
        pr.lastActiveTick = this.now;
        this.progress.set(id, pr);
      }
    }
  }

  private reject(reason: RejectReason): Rejected {
    return { kind: 'rejected', reason, leaderHint: this.role === 'leader' ? this.id : this.leader };
  }

  private refuseWrite(): Rejected | null {
    if (this.role !== 'leader') return this.reject('NOT_LEADER');
    if (this.leadTransferee !== null) return this.reject('TRANSFERRING');
    if (this.log.lastIndex() - this.log.commit >= this.maxUncommitted)
      return this.reject('OVERLOADED');
    return null;
  }

  private appendOwn(kind: EntryKind, data: Uint8Array): Entry {
    const e: Entry = { index: (this.log.lastIndex() + 1) as LogIndex, term: this.term, kind, data };
    this.log.append([e]);
    if (kind === 'config') this.syncProgress();
    this.needFlush = true;
    // No maybeCommit here: the leader counts its own entry only once it is persisted (advance),
    // and a config change is still counted in advance() with the new configuration.
    return e;
  }

  // -------------------------------------------------------------------------
  // Leader

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.leadTransferee !== null && ++this.transferElapsed >= this.electionTicks) {
      this.leadTransferee = null; // dissertation §3.10: abort a transfer that takes an election timeout
    }
    if (this.electionElapsed >= this.electionTicks) this.electionElapsed = 0;
    if (this.checkQuorum) {
      // Dissertation §6.2: a leader that has not heard from a quorum within an election
      // timeout steps down (checked every tick, so it happens electionTicks after the last contact).
      const active = hasQuorum(
        this.log.config(),
        (id) =>
          id === this.id ||
          this.now - (this.progress.get(id)?.lastActiveTick ?? -Infinity) < this.electionTicks,
      );
      if (!active) {
        this.becomeFollower(this.term, null);
        return;
      }
    }
    if (this.heartbeatElapsed >= this.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat();
    }
  }

  private broadcastHeartbeat(): void {
    this.readRoundWanted = false;
    const seq = ++this.heartbeatSeq;
    if (this.leaseReads) this.seqSentTick.set(seq, this.now);
    for (const [to, pr] of this.progress) {
      const m: Heartbeat = {
        type: 'Heartbeat',
        from: this.id,
        to,
        term: this.term,
        commit: Math.min(pr.match, this.log.commit) as LogIndex,
        seq,
      };
      this.msgs.push(m);
    }
    this.confirmReads(); // a one-voter cluster confirms at once
  }

  /** Sends every follower what it lacks, within its flow-control limits (batched per Ready). */
  private flush(): void {
    this.needFlush = false;
    for (const [to, pr] of this.progress) {
      if (pr.state === 'snapshot') {
        if (!pr.snapshotSent) this.sendSnapshotChunk(to, pr);
        continue;
      }
      let sent = false;
      while (!pr.isPaused(this.maxInflight) && pr.next <= this.log.lastIndex()) {
        if (!this.sendAppend(to, pr)) break;
        sent = true;
        if (pr.state !== 'replicate') break;
      }
      // Nothing new to send: still send an empty append if asked to (follower behind after a
      // heartbeat) or to carry a commit index it has not seen.
      if (
        !sent &&
        !pr.isPaused(this.maxInflight) &&
        (pr.forceSend || pr.sentCommit < this.log.commit)
      ) {
        this.sendAppend(to, pr);
      }
      pr.forceSend = false;
    }
  }

  /** Sends one AppendEntries (possibly empty) from pr.next, or a snapshot chunk if that entry was compacted. */
  private sendAppend(to: NodeId, pr: Progress): boolean {
    const prevLogIndex = pr.next - 1;
    const prevLogTerm = this.log.term(prevLogIndex);
    if (prevLogTerm === undefined) {
      // Raft §7: the entries the follower needs are gone; send the snapshot instead.
      assert(this.localSnapshot !== null, 'log compacted without a snapshot');
      pr.becomeSnapshot(this.localSnapshot);
      this.sendSnapshotChunk(to, pr);
      return false;
    }
    const entries =
      pr.next <= this.log.lastIndex()
        ? this.log.slice(pr.next, this.log.lastIndex(), this.maxAppendEntries, this.maxAppendBytes)
        : [];
    const m: AppendEntries = {
      type: 'AppendEntries',
      from: this.id,
      to,
      term: this.term,
      prevLogIndex: prevLogIndex as LogIndex,
      prevLogTerm,
      entries,
      leaderCommit: this.log.commit,
    };
    this.msgs.push(m);
    pr.sentCommit = this.log.commit;
    const last = entries[entries.length - 1];
    if (pr.state === 'replicate') {
      if (last !== undefined) {
        // Pipelining: advance nextIndex optimistically and track the append in flight.
        pr.next = (last.index + 1) as LogIndex;
        pr.inflight.push(last.index);
      }
    } else {
      pr.probeSent = true;
    }
    return true;
  }

  /**
   * Sends the next chunk of the snapshot pinned in `pr` (Raft §7). The
   * transfer keeps the snapshot it started with even if the leader has since
   * compacted to a newer one: re-targeting would restart it from offset 0 and,
   * with frequent compaction, a lagging follower would never finish one. Once
   * it is installed the follower catches up from the log, or is sent the newer
   * snapshot next if the log no longer reaches back that far.
   */
  private sendSnapshotChunk(to: NodeId, pr: Progress): void {
    const snap = pr.snapshot;
    assert(snap !== null, 'snapshot state without a pinned snapshot');
    const offset = Math.min(pr.snapshotOffset, snap.data.length);
    const data = snap.data.subarray(offset, offset + this.chunkBytes);
    const m: InstallSnapshot = {
      type: 'InstallSnapshot',
      from: this.id,
      to,
      term: this.term,
      meta: snap.meta,
      offset,
      data,
      done: offset + data.length === snap.data.length,
      totalBytes: snap.data.length,
    };
    this.msgs.push(m);
    pr.snapshotSent = true;
    pr.snapshotSentTick = this.now;
  }

  private sendTimeoutNow(to: NodeId): void {
    this.leaseStartTick = -Infinity; // the transferee's election ignores leader stickiness
    this.msgs.push({ type: 'TimeoutNow', from: this.id, to, term: this.term });
  }

  private handleAppendResponse(m: AppendEntriesResponse): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.lastActiveTick = this.now;
    if (!m.success) {
      // Ignore stale rejections: of an append already known matched, or of an old probe.
      if (m.rejectedIndex <= pr.match) return;
      if (pr.state === 'probe' && m.rejectedIndex !== pr.next - 1) return;
      if (pr.state === 'snapshot') return;
      // Fast backtracking (Raft §5.3, after Figure 7): skip a whole conflicting term per round trip.
      let next: number;
      if (m.conflictTerm > 0) {
        const k = this.log.lastIndexOfTerm(m.conflictTerm, m.rejectedIndex);
        next = k > 0 ? k + 1 : m.conflictIndex;
      } else {
        next = m.conflictIndex;
      }
      next = Math.min(next, m.rejectedIndex);
      pr.becomeProbe(Math.max(next, 1));
      this.needFlush = true;
      return;
    }
    const moved = pr.maybeUpdate(m.matchIndex);
    if (pr.state === 'probe') {
      pr.becomeReplicate();
    } else if (pr.state === 'snapshot' && pr.match >= pr.snapshotIndex) {
      pr.becomeProbe(pr.match + 1);
    }
    if (moved) this.maybeCommit();
    if (this.leadTransferee === m.from && pr.match === this.log.lastIndex())
      this.sendTimeoutNow(m.from);
    this.needFlush = true;
  }

  private handleHeartbeatResponse(m: HeartbeatResponse): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.lastActiveTick = this.now;
    if (m.seq > pr.ackedSeq) pr.ackedSeq = m.seq;
    if (pr.state === 'snapshot') {
      // Resend a chunk that may have been lost.
      if (this.now - pr.snapshotSentTick >= 2 * this.heartbeatTicks) pr.snapshotSent = false;
    } else if (pr.match < this.log.lastIndex()) {
      pr.probeSent = false;
      if (pr.state === 'replicate' && pr.inflight.length >= this.maxInflight) pr.inflight.shift();
      pr.forceSend = true;
    }
    if (pr.forceSend || (pr.state === 'snapshot' && !pr.snapshotSent)) this.needFlush = true;
    this.confirmReads();
  }

  private handleSnapshotResponse(m: InstallSnapshotResponse): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.lastActiveTick = this.now;
    if (m.done) {
      pr.maybeUpdate(m.snapshotIndex);
      if (pr.state === 'snapshot') pr.becomeProbe(pr.match + 1);
      this.maybeCommit();
      this.needFlush = true;
      return;
    }
    if (pr.state !== 'snapshot' || m.snapshotIndex !== pr.snapshotIndex) return;
    pr.snapshotOffset = m.nextOffset;
    pr.snapshotSent = false;
    this.needFlush = true;
  }

  /** Raft §5.3 + §5.4.2: commit the highest index stored on a quorum, if it is of the current term. */
  private maybeCommit(): void {
    if (this.role !== 'leader') return;
    const config = this.log.config();
    const idx = committedIndex(config, (id) =>
      id === this.id ? this.log.persisted : (this.progress.get(id)?.match ?? 0),
    );
    const q = Math.min(idx, this.log.lastIndex());
    if (q <= this.log.commit) return;
    // Raft §5.4.2: never commit an older term's entry by counting replicas (Figure 8).
    if (this.log.term(q) !== this.term && this.bugs.countOldTermEntriesForCommit !== true) return;
    this.log.commitTo(q);
    this.onCommitAdvanced();
  }

  private onCommitAdvanced(): void {
    this.needFlush = true;
    if (!this.progressSyncedAt && this.log.commit >= this.log.configIndex()) this.syncProgress();
    if (!this.committedInTerm && this.log.term(this.log.commit) === this.term) {
      this.committedInTerm = true;
      const waiting = this.readsAwaitingCommit;
      this.readsAwaitingCommit = [];
      for (const ctx of waiting) this.startRead(ctx);
    }
    const config = this.log.config();
    if (!isVoter(config, this.id) && this.log.commit >= this.log.configIndex()) {
      // Dissertation §4.2.2: a leader removed from the configuration steps down once the change commits,
      // handing over to the most up-to-date voter so the cluster need not wait for a timeout.
      let best: NodeId | null = null;
      for (const [id, pr] of this.progress) {
        if (isVoter(config, id) && pr.match === this.log.lastIndex()) best = best ?? id;
      }
      this.flush();
      if (best !== null) this.sendTimeoutNow(best);
      this.becomeFollower(this.term, null);
    }
  }

  private startRead(ctx: ReadContext): void {
    const config = this.log.config();
    if (hasQuorum(config, (id) => id === this.id) || this.bugs.skipReadConfirmation === true) {
      this.readStates.push({ ctx, ok: true, index: this.log.commit });
      return;
    }
    if (
      this.leaseReads &&
      this.leadTransferee === null &&
      this.now < this.leaseStartTick + this.electionTicks - this.leaseMarginTicks
    ) {
      this.readStates.push({ ctx, ok: true, index: this.log.commit });
      return;
    }
    // Dissertation §6.4 step 3: confirm leadership with a heartbeat round sent after the request.
    this.pendingReads.push({ ctx, index: this.log.commit, seq: this.heartbeatSeq + 1 });
    this.readRoundWanted = true;
  }

  private confirmReads(): void {
    const config = this.log.config();
    const quorumSeq = committedIndex(config, (id) =>
      id === this.id ? this.heartbeatSeq : (this.progress.get(id)?.ackedSeq ?? 0),
    );
    const sent = this.seqSentTick.get(quorumSeq);
    if (sent !== undefined) {
      this.leaseStartTick = Math.max(this.leaseStartTick, sent);
      for (const s of [...this.seqSentTick.keys()]) if (s < quorumSeq) this.seqSentTick.delete(s);
    }
    let k = 0;
    while (k < this.pendingReads.length && (this.pendingReads[k] as PendingRead).seq <= quorumSeq) {
      const r = this.pendingReads[k] as PendingRead;
      this.readStates.push({ ctx: r.ctx, ok: true, index: r.index });
      k++;
    }
    if (k > 0) this.pendingReads.splice(0, k);
  }

  // -------------------------------------------------------------------------
  // Follower and voter

  private handleRequestVote(m: RequestVote): void {
    // Raft §5.2: one vote per term, first come first served; §5.4.1: only for an up-to-date log.
    const canVote = this.vote === m.from || (this.vote === null && this.leader === null);
    const upToDate =
      this.bugs.skipElectionRestriction === true ||
      this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm);
    const granted = canVote && upToDate && this.role !== 'leader';
    if (granted) {
      this.vote = m.from;
      this.resetElectionTimer();
    }
    this.msgs.push({
      type: 'RequestVoteResponse',
      from: this.id,
      to: m.from,
      term: this.term,
      granted,
    });
  }

  private handlePreVote(m: PreVote): void {
    // Dissertation §9.6: grant if we could vote for it at m.term and have not heard from a leader lately.
    const canVote =
      m.term > this.term || this.vote === m.from || (this.vote === null && this.leader === null);
    const upToDate =
      this.bugs.skipElectionRestriction === true ||
      this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm);
    const granted = canVote && upToDate && !this.inLease();
    this.msgs.push({
      type: 'PreVoteResponse',
      from: this.id,
      to: m.from,
      term: granted ? m.term : this.term,
      granted,
    });
  }

  /** Raft §5.1: answer a stale sender with our term so it steps down. */
  private answerStale(m: RaftMessage): void {
    const base = { from: this.id, to: m.from, term: this.term };
    switch (m.type) {
      case 'AppendEntries':
        this.msgs.push({
          ...base,
          type: 'AppendEntriesResponse',
          success: false,
          matchIndex: 0 as LogIndex,
          rejectedIndex: m.prevLogIndex,
          conflictIndex: 0 as LogIndex,
          conflictTerm: 0 as Term,
        });
        return;
      case 'Heartbeat':
        this.msgs.push({ ...base, type: 'HeartbeatResponse', seq: 0 });
        return;
      case 'InstallSnapshot':
        this.msgs.push({
          ...base,
          type: 'InstallSnapshotResponse',
          snapshotIndex: 0 as LogIndex,
          nextOffset: 0,
          done: false,
        });
        return;
      case 'PreVote':
        this.msgs.push({ ...base, type: 'PreVoteResponse', granted: false });
        return;
      case 'RequestVote':
        this.msgs.push({ ...base, type: 'RequestVoteResponse', granted: false });
        return;
      case 'AppendEntriesResponse':
      case 'HeartbeatResponse':
      case 'InstallSnapshotResponse':
      case 'PreVoteResponse':
      case 'RequestVoteResponse':
      case 'TimeoutNow':
        return; // stale answers and orders are simply dropped
      default:
        assertNever(m);
    }
  }

  private handleAppendEntries(m: AppendEntries): void {
    const commit = this.log.commit;
    let prevIndex: number = m.prevLogIndex;
    let prevTerm: number = m.prevLogTerm;
    let entries = m.entries;
    if (prevIndex < commit) {
      // Entries up to our commit index are known to match the leader's (Leader Completeness, Raft §5.4).
      const skip = Math.min(commit - prevIndex, entries.length);
      entries = entries.slice(skip);
      if (entries.length === 0) {
        this.replyAppend(m, true, Math.max(commit, 0));
        return;
      }
      prevIndex += skip;
      prevTerm = (m.entries[skip - 1] as Entry).term;
    }
    const matches =
      this.log.matchTerm(prevIndex, prevTerm) ||
      (this.bugs.skipLogConsistencyCheck === true &&
        prevIndex <= this.log.lastIndex() &&
        prevIndex >= this.log.snapshotMeta().index);
    if (!matches) {
      // Raft §5.3: reject; include the conflicting term and its first index so the leader skips it.
      const last = this.log.lastIndex();
      let conflictTerm = 0;
      let conflictIndex: number = last + 1;
      if (prevIndex <= last) {
        conflictTerm = this.log.term(prevIndex) as number;
        conflictIndex = this.log.firstIndexOfTermAt(prevIndex);
      }
      this.msgs.push({
        type: 'AppendEntriesResponse',
        from: this.id,
        to: m.from,
        term: this.term,
        success: false,
        matchIndex: 0 as LogIndex,
        rejectedIndex: prevIndex as LogIndex,
        conflictIndex: conflictIndex as LogIndex,
        conflictTerm: conflictTerm as Term,
      });
      return;
    }
    // Raft §5.3 receiver rules 3–4: delete a conflicting suffix, append what is new; keep matching entries.
    let k = 0;
    while (k < entries.length) {
      const e = entries[k] as Entry;
      if (this.log.term(e.index) !== e.term) break;
      k++;
    }
    if (k < entries.length) {
      const rest = k === 0 ? entries : entries.slice(k);
      const from = (rest[0] as Entry).index;
      if (from <= this.log.lastIndex()) this.dropAcksFrom(from);
      if (from <= commit && this.anyBug) {
        this.log.append(rest, true);
      } else {
        this.log.append(rest);
      }
    }
    const lastNew = prevIndex + entries.length;
    // Raft §5.3 receiver rule 5.
    this.log.commitTo(Math.min(m.leaderCommit, lastNew));
    this.replyAppend(m, true, lastNew);
  }

  /**
   * The log is about to lose its entries from `index` on. A successful AppendEntriesResponse
   * still queued here (not yet handed out in a Ready) that acknowledges an index at or above
   * `index` promises entries this node will now never persist: the shell would send it after
   * persisting the next Ready, which holds the replacing entries instead (Raft Figure 2: a
   * follower acknowledges only what it stores). Such acks are dropped, as a lossy network
   * may; the leader learns the truth from the next exchange. Acks already handed out are
   * sent only once their own Ready is durable, so they were true when they left.
   */
  private dropAcksFrom(index: number): void {
    this.msgs = this.msgs.filter(
      (m) => !(m.type === 'AppendEntriesResponse' && m.success && m.matchIndex >= index),
    );
  }

  private replyAppend(m: AppendEntries, success: boolean, matchIndex: number): void {
    this.msgs.push({
      type: 'AppendEntriesResponse',
      from: this.id,
      to: m.from,
      term: this.term,
      success,
      matchIndex: matchIndex as LogIndex,
      rejectedIndex: m.prevLogIndex,
      conflictIndex: 0 as LogIndex,
      conflictTerm: 0 as Term,
    });
  }

  private handleHeartbeat(m: Heartbeat): void {
    // The leader caps `commit` by what it knows we hold, so it never exceeds our matching prefix.
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.msgs.push({
      type: 'HeartbeatResponse',
      from: this.id,
      to: m.from,
      term: this.term,
      seq: m.seq,
    });
  }

  private handleInstallSnapshot(m: InstallSnapshot): void {
    const meta = m.meta;
    const reply = (nextOffset: number, done: boolean): void => {
      this.msgs.push({
        type: 'InstallSnapshotResponse',
        from: this.id,
        to: m.from,
        term: this.term,
        snapshotIndex: meta.index,
        nextOffset,
        done,
      });
    };
    if (meta.index <= this.log.commit) {
      // We already hold (committed) everything the snapshot covers.
      this.incoming = null;
      reply(0, true);
      return;
    }
    let inc = this.incoming;
    const same =
      inc !== null &&
      inc.meta.index === meta.index &&
      inc.meta.term === meta.term &&
      inc.leaderTerm === m.term &&
      inc.total === m.totalBytes;
    if (!same) {
      if (m.offset !== 0) {
        reply(0, false); // restart from the first chunk
        return;
      }
      inc = { leaderTerm: m.term, meta, chunks: [], received: 0, total: m.totalBytes };
      this.incoming = inc;
    }
    assert(inc !== null);
    if (m.offset !== inc.received) {
      reply(inc.received, false);
      return;
    }
    inc.chunks.push(m.data.slice());
    inc.received += m.data.length;
    if (!m.done) {
      reply(inc.received, false);
      return;
    }
    const data = new Uint8Array(inc.total);
    let at = 0;
    for (const c of inc.chunks) {
      data.set(c, at);
      at += c.length;
    }
    this.incoming = null;
    // Raft §7 receiver rules 6–8. Without the entry at meta.index the whole log goes.
    if (this.log.term(meta.index) !== meta.term) this.dropAcksFrom(meta.index + 1);
    this.log.restore(meta);
    const snapshot: Snapshot = { meta, data };
    this.localSnapshot = snapshot;
    this.pendingSnapshot = { snapshot, restore: true };
    reply(inc.total, true);
  }

  private softChanged(): boolean {
    return this.prevSoft.role !== this.role || this.prevSoft.leader !== this.leader;
  }

  private hardChanged(): boolean {
    return (
      this.prevHard.term !== this.term ||
      this.prevHard.vote !== this.vote ||
      this.prevHard.commit !== this.log.commit
    );
  }
}
