/**
 * Read-only requests on a leader: ReadIndex (dissertation §6.4) and, when
 * enabled, lease reads (dissertation §6.4.1). A read is answered with the
 * commit index at the time of the request once the leader knows it was still
 * leader *after* the request: a quorum acknowledged a heartbeat round sent
 * after it, or a lease from an earlier such round has not yet run out. Reads
 * asked before the leader committed an entry of its term wait for that first
 * (§6.4 step 1: until then its commit index may be stale).
 *
 * ```ts
 * const ro = new ReadOnly({ leaseReads: false, electionTicks: 10, leaseMarginTicks: 2, skipConfirmation: false });
 * ro.start('r1', commit, now, soleVoter, transferring);   // pending until a round confirms it
 * const seq = ro.nextRound(now);                          // stamp the heartbeats sent now
 * ro.confirm(tracker.quorumAckedSeq(config, self, ro.heartbeatSeq));
 * ro.take();                                              // [{ ctx: 'r1', ok: true, index: commit }]
 * ```
 *
 * This holds the reads' state only; the leader's heartbeats and the quorum
 * arithmetic (replication.ts, tracker.ts) feed it.
 */
import type { LogIndex, NodeId } from '../../lib/ids.js';
import type { ReadContext, ReadState } from './api.js';

interface PendingRead {
  readonly ctx: ReadContext;
  readonly index: LogIndex;
  /** The heartbeat round whose acknowledgement by a quorum confirms this read. */
  readonly seq: number;
}

/** What {@link ReadOnly} needs from the core's options. */
export interface ReadOnlyOptions {
  /** Serve reads from the lease (clock-dependent; see raft-core.ts's file header). */
  readonly leaseReads: boolean;
  readonly electionTicks: number;
  readonly leaseMarginTicks: number;
  /** TEST-ONLY bug switch: answer every read at once (RaftBugs.skipReadConfirmation). */
  readonly skipConfirmation: boolean;
}

/** A leader's outstanding reads, heartbeat rounds and lease (see the file header). */
export class ReadOnly {
  /** Number of the last heartbeat round sent (never reset: rounds only move forward). */
  heartbeatSeq = 0;
  /** Lease reads: when each unconfirmed round was sent, by round. */
  private readonly seqSentTick = new Map<number, number>();
  /** Lease reads: send tick of the newest round a quorum acknowledged. */
  private leaseStartTick = -Infinity;
  /** Reads waiting for a heartbeat round, in request order (their `seq` never decreases). */
  private pending: PendingRead[] = [];
  /** Reads waiting for the leader's first commit in its term. */
  private awaitingCommit: ReadContext[] = [];
  /** A pending read needs a heartbeat round that has not been sent yet. */
  roundWanted = false;
  /** Answers not yet handed out in a Ready. */
  private states: ReadState[] = [];
  private readonly options: ReadOnlyOptions;

  constructor(options: ReadOnlyOptions) {
    this.options = options;
  }

  /** Reads accepted and not yet answered (bounded by limits.raftPendingReadsMax). */
  outstanding(): number {
    return this.pending.length + this.awaitingCommit.length;
  }

  /** §6.4 step 1: hold `ctx` until the leader has committed an entry of its term. */
  deferUntilCommitted(ctx: ReadContext): void {
    this.awaitingCommit.push(ctx);
  }

  /**
   * Starts a read at `commit` (§6.4 steps 2–3). A sole voter answers at once;
   * a valid lease answers at once unless leadership is being transferred;
   * otherwise the read waits for the next heartbeat round.
   */
  start(
    ctx: ReadContext,
    commit: LogIndex,
    now: number,
    soleVoter: boolean,
    transferring: boolean,
  ): void {
    if (soleVoter || this.options.skipConfirmation) {
      this.states.push({ ctx, ok: true, index: commit });
      return;
    }
    if (this.leaseValid(now) && !transferring) {
      this.states.push({ ctx, ok: true, index: commit });
      return;
    }
    // Dissertation §6.4 step 3: confirm leadership with a heartbeat round sent after the request.
    this.pending.push({ ctx, index: commit, seq: this.heartbeatSeq + 1 });
    this.roundWanted = true;
  }

  /** The leader just committed an entry of its term: start the reads that waited for it. */
  startDeferred(commit: LogIndex, now: number, soleVoter: boolean, transferring: boolean): void {
    const waiting = this.awaitingCommit;
    this.awaitingCommit = [];
    for (const ctx of waiting) this.start(ctx, commit, now, soleVoter, transferring);
  }

  /** Numbers a heartbeat round sent at `now`; every pending read up to it is confirmed by its acknowledgement. */
  nextRound(now: number): number {
    this.roundWanted = false;
    const seq = ++this.heartbeatSeq;
    if (this.options.leaseReads) this.seqSentTick.set(seq, now);
    return seq;
  }

  /** A quorum acknowledged every round up to `quorumSeq`: extend the lease and answer the reads it confirms. */
  confirm(quorumSeq: number): void {
    const sent = this.seqSentTick.get(quorumSeq);
    if (sent !== undefined) {
      this.leaseStartTick = Math.max(this.leaseStartTick, sent);
      for (const s of [...this.seqSentTick.keys()]) if (s < quorumSeq) this.seqSentTick.delete(s);
    }
    let k = 0;
    while (k < this.pending.length && (this.pending[k] as PendingRead).seq <= quorumSeq) {
      const r = this.pending[k] as PendingRead;
      this.states.push({ ctx: r.ctx, ok: true, index: r.index });
      k++;
    }
    if (k > 0) this.pending.splice(0, k);
  }

  /** Ends the lease at once (before TimeoutNow: the transferee's election ignores leader stickiness). */
  revokeLease(): void {
    this.leaseStartTick = -Infinity;
  }

  /** Leadership lost: every outstanding read fails, naming `leaderHint`; rounds and the lease are forgotten. */
  abortAll(leaderHint: NodeId | null): void {
    this.roundWanted = false;
    this.leaseStartTick = -Infinity;
    this.seqSentTick.clear();
    for (const r of this.pending) this.states.push({ ctx: r.ctx, ok: false, leaderHint });
    for (const ctx of this.awaitingCommit) this.states.push({ ctx, ok: false, leaderHint });
    this.pending = [];
    this.awaitingCommit = [];
  }

  /** True if answers wait to be handed out. */
  hasStates(): boolean {
    return this.states.length > 0;
  }

  /** Hands out the answers for the next Ready. */
  take(): ReadState[] {
    const out = this.states;
    this.states = [];
    return out;
  }

  /** Lease reads: a quorum acknowledged a round sent less than `electionTicks - leaseMarginTicks` ago. */
  private leaseValid(now: number): boolean {
    return (
      this.options.leaseReads &&
      now < this.leaseStartTick + this.options.electionTicks - this.options.leaseMarginTicks
    );
  }
}
