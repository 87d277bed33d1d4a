/**
 * A leader's view of one follower's replication (Raft Figure 2: `nextIndex`
 * and `matchIndex`), plus the flow control that makes replication fast and
 * bounded: a follower is either being *probed* (one AppendEntries at a time
 * until the leader finds where the logs agree), *replicated* to (pipelined:
 * `next` advances optimistically, at most `maxInflight` appends unacknowledged)
 * or sent a *snapshot* (its next entry was compacted away, Raft §7).
 * The leader keeps one per follower in its {@link ProgressTracker}
 * (tracker.ts); replication.ts decides when to send and how answers move it.
 *
 * ```ts
 * const pr = new Progress(lastIndex + 1);
 * if (!pr.isPaused(maxInflight)) send(...);
 * pr.appendSent(lastIndexSent);
 * pr.becomeReplicate();
 * ```
 *
 * Every transition asserts its postcondition `match < next` (the leader never
 * plans to resend what it knows the follower holds) and that a snapshot is
 * pinned exactly in snapshot mode; an append is recorded in flight only at or
 * beyond `next`, so the in-flight list stays increasing and above `match`.
 */
import { assert } from '../../lib/assert.js';
import type { LogIndex } from '../../lib/ids.js';
import type { Snapshot } from './types.js';

/** Replication mode of one follower (see the file header). */
export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/** Replication progress of one follower, kept by the leader. */
export class Progress {
  /** Raft Figure 2 matchIndex: highest index known replicated on the follower. */
  match: LogIndex = 0 as LogIndex;
  /** Raft Figure 2 nextIndex: the next index to send. */
  next: LogIndex;
  /** Flow-control mode. */
  state: ProgressState = 'probe';
  /** Probe mode: an AppendEntries is outstanding; wait for its answer or a heartbeat answer. */
  probeSent = false;
  /** Replicate mode: last index of each unacknowledged AppendEntries, oldest first. */
  inflight: number[] = [];
  /** Leader tick when this follower was last heard from (check-quorum, dissertation §6.2). */
  lastActiveTick = 0;
  /** Highest heartbeat round this follower acknowledged (ReadIndex confirmation, dissertation §6.4). */
  ackedSeq = 0;
  /** Commit index last sent to this follower (to send a commit-only append when it advances). */
  sentCommit = 0;
  /** Send at least one append on the next flush (after a heartbeat answer shows the follower behind). */
  forceSend = false;
  /** Snapshot mode: index of the snapshot being sent. */
  snapshotIndex = 0;
  /**
   * Snapshot mode: the snapshot this transfer started with, pinned until the
   * transfer ends (Raft §7). The leader may compact to a newer snapshot while
   * chunks of this one are still going out; restarting on every compaction
   * would starve a lagging follower, so the transfer keeps its own reference.
   * Memory: at most one pinned snapshot per follower, and it is the very object
   * the leader made (never a copy), so followers pinned at the same index share
   * its bytes; the pin is dropped as soon as the follower leaves snapshot mode.
   */
  snapshot: Snapshot | null = null;
  /** Snapshot mode: byte offset the follower expects next. */
  snapshotOffset = 0;
  /** Snapshot mode: a chunk is outstanding. */
  snapshotSent = false;
  /** Snapshot mode: tick when the last chunk was sent (to resend a lost one). */
  snapshotSentTick = 0;

  constructor(next: number) {
    this.next = next as LogIndex;
  }

  /** Switches to probing from `next` (after a rejection, a restart or a snapshot). */
  becomeProbe(next: number): void {
    this.state = 'probe';
    this.snapshot = null;
    this.next = Math.max(next, this.match + 1) as LogIndex;
    this.probeSent = false;
    this.inflight = [];
    this.assertOrdered();
  }

  /** Switches to pipelined replication right after the match index. */
  becomeReplicate(): void {
    this.state = 'replicate';
    this.snapshot = null;
    this.next = (this.match + 1) as LogIndex;
    this.inflight = [];
    this.probeSent = false;
    this.assertOrdered();
  }

  /** Switches to sending `snapshot` from its first byte, pinning it until the transfer ends. */
  becomeSnapshot(snapshot: Snapshot): void {
    this.state = 'snapshot';
    this.snapshot = snapshot;
    this.snapshotIndex = snapshot.meta.index;
    this.snapshotOffset = 0;
    this.snapshotSent = false;
    this.inflight = [];
    this.assertOrdered();
  }

  /** Raises the match index; true if it moved. Also frees the acknowledged in-flight appends. */
  maybeUpdate(match: number): boolean {
    if (match <= this.match) return false;
    this.match = match as LogIndex;
    if (this.next <= match) this.next = (match + 1) as LogIndex;
    let k = 0;
    while (k < this.inflight.length && (this.inflight[k] as number) <= match) k++;
    if (k > 0) this.inflight.splice(0, k);
    this.assertOrdered();
    return true;
  }

  /**
   * Records an AppendEntries sent from `next` whose last entry is `lastIndex`
   * (undefined: it carried no entries). Replicate mode pipelines: `next` moves
   * past it at once and the append counts as in flight; probe mode waits for
   * the answer.
   */
  appendSent(lastIndex: number | undefined): void {
    if (this.state === 'replicate') {
      if (lastIndex !== undefined) {
        const n = this.inflight.length;
        if (lastIndex < this.next || (n > 0 && lastIndex <= (this.inflight[n - 1] as number))) {
          assert(false, `progress: append up to ${lastIndex} sent behind next ${this.next}`);
        }
        this.next = (lastIndex + 1) as LogIndex;
        this.inflight.push(lastIndex);
      }
    } else {
      this.probeSent = true;
    }
    this.assertOrdered();
  }

  /**
   * A heartbeat answer shows the follower still behind: unblock it so the next
   * flush sends at least one append (a lost probe is retried; in replicate
   * mode with a full window the oldest in-flight append is presumed lost).
   */
  resumeAfterHeartbeat(maxInflight: number): void {
    this.probeSent = false;
    if (this.state === 'replicate' && this.inflight.length >= maxInflight) this.inflight.shift();
    this.forceSend = true;
  }

  /**
   * True if a rejection of the append at `rejectedIndex` is stale and must be
   * ignored: that index is already known matched, it answers an older probe
   * than the one outstanding, or a snapshot is being sent instead.
   */
  isStaleRejection(rejectedIndex: number): boolean {
    if (rejectedIndex <= this.match) return true;
    if (this.state === 'probe' && rejectedIndex !== this.next - 1) return true;
    return this.state === 'snapshot';
  }

  /** True if the leader must not send this follower another AppendEntries now. */
  isPaused(maxInflight: number): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflight.length >= maxInflight;
      case 'snapshot':
        return true;
    }
  }

  /** Postcondition of every transition: match < next, and the snapshot is pinned exactly in snapshot mode. */
  private assertOrdered(): void {
    if (this.next <= this.match) {
      assert(false, `progress: next ${this.next} not above match ${this.match}`);
    }
    if ((this.state === 'snapshot') !== (this.snapshot !== null)) {
      assert(
        false,
        `progress: ${this.state} mode with${this.snapshot === null ? 'out' : ''} a pinned snapshot`,
      );
    }
  }
}
