/**
 * One node's Raft state (Raft Figure 2: currentTerm, votedFor, the log; the
 * volatile role, leader and timers) and the transitions between its roles
 * (Raft §5.1, Figure 4: follower, candidate, leader, plus the pre-candidate of
 * dissertation §9.6). Everything a {@link RaftCore} knows about the protocol
 * lives in one `RaftState` (RaftCore itself keeps only the bookkeeping of the
 * Ready it handed out); the rules operate on it from their own files:
 * election.ts (Raft §5.2, §5.4.1; dissertation §9.6, §3.10), replication.ts
 * (Raft §5.3, §5.4.2, §7; dissertation §6.2), read-only.ts (dissertation
 * §6.4), confchange.ts (dissertation §4.1).
 *
 * ```ts
 * const s = new RaftState(resolveOptions(options), initial, bootstrap, options.applied);
 * s.becomeFollower(5 as Term, leaderId);
 * s.send({ type: 'TimeoutNow', from: s.id, to, term: s.term });
 * ```
 *
 * Internal to src/raft/core/: the shell and the simulator see a node only
 * through RaftCore's methods.
 */
import { assert } from '../../lib/assert.js';
import type { LogIndex, NodeId, Term } from '../../lib/ids.js';
import type { RaftRole, ReadySnapshot, RejectReason, Rejected } from './api.js';
import { replicationTargets } from './confchange.js';
import { RaftLog } from './log.js';
import type { RaftMessage } from './messages.js';
import type { ResolvedOptions } from './options.js';
import { ReadOnly } from './read-only.js';
import { SnapshotReceiver } from './snapshot-receiver.js';
import { ProgressTracker } from './tracker.js';
import type { ClusterConfig, Entry, EntryKind, RaftInitialState, Snapshot } from './types.js';

/** The state of one Raft node and its role transitions (see the file header). */
export class RaftState {
  /** This node's id. */
  readonly id: NodeId;
  readonly opts: ResolvedOptions;
  /** The log, its commit index and what is persisted and applied (Raft Figure 2). */
  readonly log: RaftLog;
  /** Raft Figure 2 currentTerm. */
  term: Term;
  /** Raft Figure 2 votedFor (in `term`). */
  vote: NodeId | null;
  role: RaftRole = 'follower';
  /** The leader of `term` this node knows of (itself when leader), or null. */
  leader: NodeId | null = null;

  /** Ticks since the last election reset (followers: since hearing from the leader). */
  electionElapsed = 0;
  heartbeatElapsed = 0;
  /** Raft §5.2: this round's election timeout, drawn from [electionTicks+1, 2·electionTicks]. */
  randomizedElectionTimeout = 0;
  /** Total ticks seen (lease reads, check-quorum, snapshot resends). */
  now = 0;

  /** Leader: followers' progress; candidate: votes. */
  readonly tracker = new ProgressTracker();
  /** Leader: ReadIndex requests and the lease. */
  readonly reads: ReadOnly;
  /** Follower: a snapshot being received in chunks. */
  readonly receiver = new SnapshotReceiver();

  /** Messages to hand out in the next Ready, in send order. */
  msgs: RaftMessage[] = [];
  /** Leader: followers may lack entries or a commit index; send on the next Ready. */
  needFlush = false;

  /**
   * The newest snapshot (local compaction or installed from the leader), kept to
   * send to lagging followers. A transfer already under way keeps the snapshot it
   * started with (pinned in its Progress), so an older one may stay alive until
   * that transfer ends: at most one extra per follower, shared by reference.
   */
  localSnapshot: Snapshot | null;
  /** A snapshot for the next Ready to persist (and restore, if it came from the leader). */
  pendingSnapshot: ReadySnapshot | null = null;

  /** Leader: the node leadership is being handed to (dissertation §3.10), or null. */
  leadTransferee: NodeId | null = null;
  transferElapsed = 0;
  /** Leader: has an entry of the current term been committed (ReadIndex and config-change precondition). */
  committedInTerm = false;
  /** Leader: progress reflects the committed configuration (no removal pending). */
  progressSyncedAt = true;

  constructor(
    opts: ResolvedOptions,
    initial: RaftInitialState,
    bootstrap: ClusterConfig,
    applied: LogIndex | undefined,
  ) {
    this.id = opts.id;
    this.opts = opts;
    this.reads = new ReadOnly({
      leaseReads: opts.leaseReads,
      electionTicks: opts.electionTicks,
      leaseMarginTicks: opts.leaseMarginTicks,
      skipConfirmation: opts.bugs.skipReadConfirmation === true,
    });
    this.log = new RaftLog(initial, bootstrap);
    this.term = initial.hardState.term;
    this.vote = initial.hardState.vote;
    this.localSnapshot = initial.snapshot;
    if (applied !== undefined) {
      assert(
        applied >= this.log.applied && applied <= this.log.commit,
        'options.applied must lie between the snapshot index and the commit index',
      );
      this.log.applied = applied;
      this.log.applying = applied;
    }
    this.resetElectionTimer();
  }

  /** Queues `m` for the next Ready. */
  send(m: RaftMessage): void {
    this.msgs.push(m);
  }

  /** A refusal naming the leader this node knows of. */
  reject(reason: RejectReason): Rejected {
    return { kind: 'rejected', reason, leaderHint: this.role === 'leader' ? this.id : this.leader };
  }

  /**
   * Restarts the election timer with a fresh random timeout. Raft §5.2
   * randomizes it; it starts one tick past the lease (election.ts inLease,
   * dissertation §4.2.3) because nodes' ticks are not in phase: a follower
   * timing out after exactly electionTicks could ask a voter that has counted
   * only electionTicks − 1 since the same heartbeat, still inside its lease,
   * and lose a whole round (measured: ~3 in 40 leader kills on real processes
   * took ~620 ms to the first write instead of ~270).
   */
  resetElectionTimer(): void {
    this.electionElapsed = 0;
    const e = this.opts.electionTicks;
    const t = this.opts.random.intBetween(e + 1, 2 * e);
    // Precondition on the injected Random: a draw outside the range breaks liveness and leases.
    if (!(t >= e + 1 && t <= 2 * e)) {
      assert(false, `random election timeout ${t} outside [${e + 1}, ${2 * e}]`);
    }
    this.randomizedElectionTimeout = t;
  }

  /** Raft §5.1: becomes a follower of `term` (adopting it if newer, which clears the vote). */
  becomeFollower(term: Term, leader: NodeId | null): void {
    assert(term >= this.term, `becomeFollower(${term}) below the current term ${this.term}`);
    const wasLeader = this.role === 'leader';
    if (term > this.term) {
      this.term = term;
      this.vote = null;
      this.receiver.reset(); // a partial snapshot from an older leader is not resumed
    }
    this.role = 'follower';
    this.leader = leader;
    this.tracker.resetVotes();
    this.resetElectionTimer();
    if (wasLeader) this.resetLeaderState();
  }

  /** Raft §5.2: a candidate that won a majority leads; Raft §8: it appends a no-op of its term. */
  becomeLeader(): void {
    assert(this.role === 'candidate', `becomeLeader from ${this.role}`);
    assert(this.vote === this.id, 'a leader voted for itself in its term');
    this.role = 'leader';
    this.leader = this.id;
    this.tracker.resetVotes();
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetLeaderState();
    this.syncProgress();
    for (const pr of this.tracker.progress.values()) pr.lastActiveTick = this.now; // a fresh grace period
    // Raft §8: a new leader commits a no-op entry of its term to learn what is committed.
    this.appendOwn('noop', new Uint8Array(0));
  }

  /** Forgets what only a leader keeps (followers' progress, transfer, reads, lease). */
  private resetLeaderState(): void {
    this.tracker.clear();
    this.leadTransferee = null;
    this.needFlush = false;
    this.committedInTerm = false;
    this.reads.abortAll(this.leader);
  }

  /**
   * Keeps one Progress per other member of the current configuration, and of
   * the committed one: a node being removed is still replicated to until its
   * removal commits, so it learns of it and does not campaign.
   */
  syncProgress(): void {
    const want = replicationTargets(this.log.config(), this.log.configAt(this.log.commit), this.id);
    this.progressSyncedAt = this.log.commit >= this.log.configIndex();
    this.tracker.sync(want, this.log.lastIndex() + 1, this.now);
  }

  /** Leader: appends an entry of its term to its own log (Raft §5.3: a leader only appends). */
  appendOwn(kind: EntryKind, data: Uint8Array): Entry {
    assert(this.role === 'leader', 'only a leader appends its own entries');
    const e: Entry = { index: (this.log.lastIndex() + 1) as LogIndex, term: this.term, kind, data };
    this.log.append([e]);
    if (kind === 'config') this.syncProgress();
    this.needFlush = true;
    // No maybeCommit here: the leader counts its own entry only once it is persisted (advance),
    // and a config change is still counted in advance() with the new configuration.
    return e;
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
  dropAcksFrom(index: number): void {
    this.msgs = this.msgs.filter(
      (m) => !(m.type === 'AppendEntriesResponse' && m.success && m.matchIndex >= index),
    );
  }
}
