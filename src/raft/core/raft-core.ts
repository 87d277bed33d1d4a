/**
 * The pure Raft core's entry point: {@link RaftCore}, one node's consensus
 * state machine. It is synchronous and deterministic — no clock, no I/O, no
 * timers, no `await`. Time reaches it as `tick()`, randomness through an
 * injected Random, and everything it wants done comes out as a {@link Ready}
 * batch. This file holds the public API, the dispatch of messages by term and
 * type (Raft §5.1), and the Ready/advance cycle; the protocol's rules live in
 * files by concern (see "Where the rules live").
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
 *
 * ## Where the rules live
 *
 * - state.ts — the node's state (Raft Figure 2) and its role changes (§5.1).
 * - election.ts — election timer, pre-vote, votes, leader stickiness,
 *   leadership transfer (Raft §5.2, §5.4.1; dissertation §9.6, §4.2.3, §3.10).
 * - replication.ts — heartbeats, check-quorum, AppendEntries both ways,
 *   snapshots to lagging followers, the commit rule (Raft §5.3, §5.4.2, §7;
 *   dissertation §6.2).
 * - progress.ts, tracker.ts — the leader's per-follower progress and flow
 *   control, the votes, and the quorum questions over them.
 * - read-only.ts — ReadIndex and lease reads (dissertation §6.4).
 * - confchange.ts — single-server membership changes (dissertation §4.1);
 *   config.ts — configurations' encoding and majority arithmetic.
 * - log.ts, snapshot-receiver.ts — the log and its marks; snapshot chunks.
 * - options.ts, api.ts — options and the API's types (re-exported here).
 *
 * ## Assertions
 *
 * A broken invariant is a bug and throws an AssertionError that nothing
 * catches. Every input and every `advance()` ends with the boundary checks of
 * invariants.ts (term and vote monotonic, commit and applied monotonic and in
 * order, a leader's log append-only within its term, roles consistent);
 * `ready()` checks the batch it hands out; transitions assert their own pre-
 * and postconditions (progress.ts, log.ts, confchange.ts, state.ts,
 * replication.ts). A malformed or misaddressed message, or an answer claiming
 * what this leader never sent, is refused with a {@link CohortError} before it
 * changes anything. One message from a peer does assert: AppendEntries (or
 * Heartbeat, InstallSnapshot) from another leader of this leader's own term,
 * which means election safety already broke somewhere in the cluster.
 */
import { assert, assertNever } from '../../lib/assert.js';
import { CohortError } from '../../lib/errors.js';
import type { LogIndex, NodeId, Term } from '../../lib/ids.js';
import { limits } from '../../lib/limits.js';
import type {
  ConfigChange,
  ProposeResult,
  RaftStatus,
  ReadContext,
  Ready,
  ReadySnapshot,
  ReadState,
  Rejected,
  RequestResult,
  SoftState,
} from './api.js';
import { encodeConfig } from './config.js';
import { checkBootstrap, nextConfig } from './confchange.js';
import {
  campaign,
  handlePreVote,
  handleRequestVote,
  handleTimeoutNow,
  handleVoteResponse,
  inLease,
  tickElection,
  transferLeadership,
} from './election.js';
import { BoundaryChecks, checkReady } from './invariants.js';
import type { RaftMessage } from './messages.js';
import { validateMessage } from './messages.js';
import { resolveOptions } from './options.js';
import type { RaftOptions } from './options.js';
import {
  acceptLeader,
  broadcastHeartbeat,
  flush,
  handleAppendEntries,
  handleAppendResponse,
  handleHeartbeat,
  handleHeartbeatResponse,
  handleInstallSnapshot,
  handleSnapshotResponse,
  maybeCommit,
  startRead,
  tickLeader,
} from './replication.js';
import { RaftState } from './state.js';
import type {
  ClusterConfig,
  Entry,
  HardState,
  RaftInitialState,
  Snapshot,
  SnapshotMeta,
} from './types.js';

export type { RaftBugs, RaftOptions } from './options.js';
export type {
  ConfigChange,
  PeerStatus,
  ProposeResult,
  RaftRole,
  RaftStatus,
  ReadContext,
  Ready,
  ReadySnapshot,
  ReadState,
  Rejected,
  RejectReason,
  RequestResult,
  SoftState,
} from './api.js';

const emptyConfig: ClusterConfig = { voters: [], learners: [] };

/** One node's Raft state machine (see the file header for the API and the Ready contract). */
export class RaftCore {
  /** This node's id. */
  readonly id: NodeId;
  /** Everything the node knows; the rules in election.ts, replication.ts, … operate on it. */
  private readonly state: RaftState;
  /** The invariants asserted after every input (invariants.ts). */
  private readonly checks: BoundaryChecks;

  private prevSoft: SoftState;
  private prevHard: HardState;
  private outstanding: Ready | null = null;
  /** Last index the outstanding Ready hands to the state machine (-1: none). */
  private outstandingApplyTo = -1;

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
    const opts = resolveOptions(options);
    checkBootstrap(bootstrap);
    const s = new RaftState(opts, initial, bootstrap, options.applied);
    this.state = s;
    this.prevHard = { term: s.term, vote: s.vote, commit: s.log.commit };
    this.prevSoft = { role: s.role, leader: s.leader };
    this.checks = new BoundaryChecks(s);
  }

  // -------------------------------------------------------------------------
  // Inputs

  /** Advances logical time by one tick (Raft §5.2 election timeout, heartbeats, check-quorum). */
  tick(): void {
    const s = this.state;
    s.now++;
    if (s.role === 'leader') tickLeader(s);
    else tickElection(s);
    this.checks.check(s);
  }

  /** Starts an election now (as if the election timer fired); a no-op on a leader or a non-voter. */
  campaign(
    kind: 'pre' | 'real' = this.state.opts.preVote ? 'pre' : 'real',
    transfer = false,
  ): void {
    campaign(this.state, kind, transfer);
    this.checks.check(this.state);
  }

  /**
   * Feeds one message received from a peer. Throws a SCHEMA_VIOLATION /
   * UNKNOWN_MESSAGE / INVALID_ARGUMENT {@link CohortError} for a malformed or
   * misaddressed message, and PROTOCOL_ERROR for an answer about something
   * this leader never sent (replication.ts), changing nothing.
   */
  step(message: RaftMessage): void {
    validateMessage(message);
    const m = message;
    const s = this.state;
    if (m.to !== s.id || m.from === s.id) {
      throw new CohortError(
        'INVALID_ARGUMENT',
        `raft message for ${m.to} from ${m.from} stepped into ${s.id}`,
      );
    }
    this.dispatch(s, m);
    this.checks.check(s);
  }

  /** Raft §5.1: compare terms first (adopt a newer one, answer an older one), then handle by type. */
  private dispatch(s: RaftState, m: RaftMessage): void {
    if (m.term > s.term) {
      if (m.type === 'PreVote' || (m.type === 'PreVoteResponse' && m.granted)) {
        // Dissertation §9.6: pre-votes never change anyone's term.
      } else if (m.type === 'RequestVote' && !m.transfer && s.opts.checkQuorum && inLease(s)) {
        // Dissertation §4.2.3: a node that hears from a live leader ignores disruptive candidates.
        return;
      } else {
        const fromLeader =
          m.type === 'AppendEntries' || m.type === 'Heartbeat' || m.type === 'InstallSnapshot';
        s.becomeFollower(m.term, fromLeader ? m.from : null);
      }
    } else if (m.term < s.term) {
      this.answerStale(s, m);
      return;
    }

    switch (m.type) {
      case 'RequestVote':
        handleRequestVote(s, m);
        return;
      case 'PreVote':
        handlePreVote(s, m);
        return;
      case 'RequestVoteResponse':
      case 'PreVoteResponse':
        handleVoteResponse(s, m);
        return;
      case 'AppendEntries':
        if (!acceptLeader(s, m.from)) return;
        handleAppendEntries(s, m);
        return;
      case 'Heartbeat':
        if (!acceptLeader(s, m.from)) return;
        handleHeartbeat(s, m);
        return;
      case 'InstallSnapshot':
        if (!acceptLeader(s, m.from)) return;
        handleInstallSnapshot(s, m);
        return;
      case 'AppendEntriesResponse':
        if (s.role === 'leader') handleAppendResponse(s, m);
        return;
      case 'HeartbeatResponse':
        if (s.role === 'leader') handleHeartbeatResponse(s, m);
        return;
      case 'InstallSnapshotResponse':
        if (s.role === 'leader') handleSnapshotResponse(s, m);
        return;
      case 'TimeoutNow':
        handleTimeoutNow(s);
        return;
      default:
        assertNever(m);
    }
  }

  /** Raft §5.1: answer a stale sender with our term so it steps down. */
  private answerStale(s: RaftState, m: RaftMessage): void {
    const base = { from: s.id, to: m.from, term: s.term };
    switch (m.type) {
      case 'AppendEntries':
        s.send({
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
        s.send({ ...base, type: 'HeartbeatResponse', seq: 0 });
        return;
      case 'InstallSnapshot':
        s.send({
          ...base,
          type: 'InstallSnapshotResponse',
          snapshotIndex: 0 as LogIndex,
          nextOffset: 0,
          done: false,
        });
        return;
      case 'PreVote':
        s.send({ ...base, type: 'PreVoteResponse', granted: false });
        return;
      case 'RequestVote':
        s.send({ ...base, type: 'RequestVoteResponse', granted: false });
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
    const e = this.state.appendOwn('normal', data);
    this.checks.check(this.state);
    return { kind: 'accepted', index: e.index, term: e.term };
  }

  /**
   * Proposes a single-server membership change (dissertation §4.1). Refused
   * while another change is uncommitted, before the leader committed an entry
   * of its term, when the change makes no sense (INVALID_CHANGE), or when
   * promoting a learner that has not caught up with the commit index.
   */
  proposeConfigChange(change: ConfigChange): ProposeResult {
    const s = this.state;
    const refused = this.refuseWrite();
    if (refused !== null) return refused;
    if (s.log.configIndex() > s.log.commit || !s.committedInTerm) {
      return s.reject('CONFIG_CHANGE_PENDING');
    }
    const next = nextConfig(s.log.config(), change, (learner) => {
      const pr = s.tracker.get(learner);
      return pr !== undefined && pr.match >= s.log.commit;
    });
    if (typeof next === 'string') return s.reject(next);
    const e = s.appendOwn('config', encodeConfig(next));
    this.checks.check(s);
    return { kind: 'accepted', index: e.index, term: e.term };
  }

  /**
   * Starts handing leadership to `to` (dissertation §3.10): once `to` has the
   * whole log it gets TimeoutNow. Proposals are refused meanwhile; the
   * transfer is abandoned after an election timeout.
   */
  transferLeadership(to: NodeId): RequestResult {
    const r = transferLeadership(this.state, to);
    this.checks.check(this.state);
    return r;
  }

  /**
   * Asks for a linearizable read point (ReadIndex, dissertation §6.4). The
   * answer comes as a {@link ReadState} with `ctx` in a later Ready: the
   * commit index at the time of the request, confirmed by a quorum's answer to
   * a heartbeat round sent after it (or by a valid lease with `leaseReads`).
   */
  readIndex(ctx: ReadContext): RequestResult {
    const s = this.state;
    if (s.role !== 'leader') return s.reject('NOT_LEADER');
    if (s.reads.outstanding() >= limits.raftPendingReadsMax) return s.reject('OVERLOADED');
    if (!s.committedInTerm) {
      // §6.4 step 1: the leader's commit index is only known current once it committed in its term.
      s.reads.deferUntilCommitted(ctx);
    } else {
      startRead(s, ctx);
    }
    this.checks.check(s);
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
    const s = this.state;
    const meta = this.compactionMeta(index);
    if (meta === null) return false;
    s.log.compact(meta);
    const snapshot: Snapshot = { meta, data };
    s.localSnapshot = snapshot;
    s.pendingSnapshot = { snapshot, restore: false };
    this.checks.check(s);
    return true;
  }

  /**
   * The metadata {@link compact} would give a snapshot at `index` (its term and
   * configuration), or null if a snapshot already covers `index`. The shell
   * uses it to make the snapshot durable before compacting (raft-node.ts).
   * `index` must not exceed what was applied and advanced.
   */
  compactionMeta(index: LogIndex): SnapshotMeta | null {
    const s = this.state;
    if (index <= s.log.snapshotMeta().index) return null;
    assert(index <= s.log.applied, `compact(${index}) beyond applied ${s.log.applied}`);
    return { index, term: s.log.term(index) as Term, config: s.log.configAt(index) };
  }

  private refuseWrite(): Rejected | null {
    const s = this.state;
    if (s.role !== 'leader') return s.reject('NOT_LEADER');
    if (s.leadTransferee !== null) return s.reject('TRANSFERRING');
    if (s.log.lastIndex() - s.log.commit >= s.opts.maxUncommitted) return s.reject('OVERLOADED');
    return null;
  }

  // -------------------------------------------------------------------------
  // Output

  /** True if {@link ready} has anything to hand out. */
  hasReady(): boolean {
    const s = this.state;
    if (this.outstanding !== null) return false;
    if (s.role === 'leader' && (s.needFlush || s.reads.roundWanted)) return true;
    return (
      s.msgs.length > 0 ||
      s.log.hasUnstable() ||
      s.log.hasCommittedToApply() ||
      s.pendingSnapshot !== null ||
      s.reads.hasStates() ||
      this.softChanged() ||
      this.hardChanged()
    );
  }

  /** Collects the next batch of work (see "The Ready contract"). Call {@link advance} before the next one. */
  ready(): Ready {
    assert(this.outstanding === null, 'ready() called again before advance()');
    const s = this.state;
    if (s.role === 'leader') {
      if (s.reads.roundWanted) broadcastHeartbeat(s);
      if (s.needFlush) flush(s);
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
      entries: s.log.takeUnstable(),
      messages: s.msgs,
      committedEntries: [],
      readStates: s.reads.take(),
    };
    if (s.pendingSnapshot !== null) rd.snapshot = s.pendingSnapshot;
    rd.committedEntries = s.log.takeCommitted(limits.raftApplyEntriesMax);
    if (this.softChanged()) {
      this.prevSoft = { role: s.role, leader: s.leader };
      rd.softState = this.prevSoft;
    }
    if (this.hardChanged()) {
      this.prevHard = { term: s.term, vote: s.vote, commit: s.log.commit };
      // TEST-ONLY bug: the vote never reaches storage, so a restarted node may vote again in a term.
      rd.hardState =
        s.opts.bugs.forgetToPersistVote === true ? { ...this.prevHard, vote: null } : this.prevHard;
    }
    s.msgs = [];
    s.pendingSnapshot = null;
    this.outstanding = rd;
    const applying = rd.committedEntries;
    this.outstandingApplyTo =
      applying.length === 0 ? -1 : (applying[applying.length - 1] as Entry).index;
    checkReady(s, rd);
    return rd;
  }

  /** Reports that `rd` was persisted, sent and applied (step 5 of the Ready contract). */
  advance(rd: Ready): void {
    assert(this.outstanding === rd, 'advance() must get the Ready returned by the last ready()');
    const s = this.state;
    const n = rd.committedEntries.length;
    const last = n === 0 ? undefined : rd.committedEntries[n - 1];
    // Precondition: the shell reports applying exactly what this Ready handed it.
    if ((last?.index ?? -1) !== this.outstandingApplyTo) {
      assert(
        false,
        `advance(): the Ready's committed entries end at ${last?.index} but ` +
          `${this.outstandingApplyTo} was handed out`,
      );
    }
    this.outstanding = null;
    s.log.markPersisted();
    if (last !== undefined) s.log.markApplied(last.index);
    if (s.role === 'leader') maybeCommit(s);
    this.checks.check(s);
  }

  // -------------------------------------------------------------------------
  // Observation

  /** A summary of this node (role, term, indexes, configuration, followers' progress). */
  status(): RaftStatus {
    const s = this.state;
    const progress = s.tracker.status(s.now, s.opts.electionTicks);
    return {
      id: s.id,
      role: s.role,
      term: s.term,
      vote: s.vote,
      leader: s.leader,
      commit: s.log.commit,
      applied: s.log.applied,
      firstIndex: s.log.firstIndex(),
      lastIndex: s.log.lastIndex(),
      lastTerm: s.log.lastTerm(),
      snapshotIndex: s.log.snapshotMeta().index,
      config: s.log.config(),
      leadTransferee: s.leadTransferee,
      progress,
    };
  }

  /** Entries held in memory from `lo` to `hi` inclusive (clamped to what is held); for checkers and dumps. */
  entries(
    lo: number = this.state.log.firstIndex(),
    hi: number = this.state.log.lastIndex(),
  ): Entry[] {
    const log = this.state.log;
    const from = Math.max(lo, log.firstIndex());
    if (from > hi) return [];
    return log.slice(from, hi);
  }

  /** Term of the entry at `index`, or undefined if compacted away or absent. */
  termAt(index: number): Term | undefined {
    return this.state.log.term(index);
  }

  /** The newest snapshot this node holds (local or installed), or null. */
  snapshot(): Snapshot | null {
    return this.state.localSnapshot;
  }

  private softChanged(): boolean {
    const s = this.state;
    return this.prevSoft.role !== s.role || this.prevSoft.leader !== s.leader;
  }

  private hardChanged(): boolean {
    const s = this.state;
    return (
      this.prevHard.term !== s.term ||
      this.prevHard.vote !== s.vote ||
      this.prevHard.commit !== s.log.commit
    );
  }
}
