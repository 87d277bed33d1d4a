/**
 * What a node knows about its peers: as leader, one {@link Progress} per other
 * member (Raft Figure 2's `nextIndex[]` and `matchIndex[]` with flow control);
 * as candidate, the votes of the current election. It answers the quorum
 * questions over them: which index a majority stores (Raft §5.3), whether a
 * majority was heard from lately (check-quorum, dissertation §6.2), which
 * heartbeat round a majority acknowledged (ReadIndex, dissertation §6.4), and
 * whether an election is won (Raft §5.2). The majority arithmetic itself is in
 * config.ts.
 *
 * ```ts
 * const t = new ProgressTracker();
 * t.sync(new Set([b, c]), lastIndex + 1, now);   // becoming leader
 * t.get(b)?.maybeUpdate(7);
 * t.committed(config, self, selfPersisted);      // quorum match index
 * ```
 */
import type { LogIndex, NodeId } from '../../lib/ids.js';
import type { PeerStatus } from './api.js';
import { committedIndex, hasQuorum, voteResult } from './config.js';
import type { VoteResult } from './config.js';
import { Progress } from './progress.js';
import type { ClusterConfig } from './types.js';

/** The leader's per-follower progress and a candidate's votes (see the file header). */
export class ProgressTracker {
  /** Leader only: one entry per other member being replicated to, in insertion order (the order of sends). */
  readonly progress = new Map<NodeId, Progress>();
  /** Candidate and pre-candidate: the answers of the current election (true: granted). */
  private votes = new Map<NodeId, boolean>();

  /** The progress of `id`, if it is being replicated to. */
  get(id: NodeId): Progress | undefined {
    return this.progress.get(id);
  }

  /** True if `id` is being replicated to. */
  has(id: NodeId): boolean {
    return this.progress.has(id);
  }

  /**
   * Keeps exactly one Progress per node in `want`: drops the others and starts
   * new ones probing at `next`, counted as heard from at `now` (a fresh grace
   * period for check-quorum).
   */
  sync(want: ReadonlySet<NodeId>, next: number, now: number): void {
    for (const id of [...this.progress.keys()]) if (!want.has(id)) this.progress.delete(id);
    for (const id of want) {
      if (!this.progress.has(id)) {
        const pr = new Progress(next);
        pr.lastActiveTick = now;
        this.progress.set(id, pr);
      }
    }
  }

  /** Forgets every follower (on leaving leadership). */
  clear(): void {
    this.progress.clear();
  }

  /** Raft §5.3: the highest index a majority of `config` stores, `self` counting with `selfMatch`. */
  committed(config: ClusterConfig, self: NodeId, selfMatch: number): LogIndex {
    return committedIndex(config, (id) =>
      id === self ? selfMatch : (this.progress.get(id)?.match ?? 0),
    );
  }

  /** Dissertation §6.2: has a majority (with `self`) been heard from less than `window` ticks before `now`? */
  quorumActive(config: ClusterConfig, self: NodeId, now: number, window: number): boolean {
    return hasQuorum(
      config,
      (id) => id === self || now - (this.progress.get(id)?.lastActiveTick ?? -Infinity) < window,
    );
  }

  /** Dissertation §6.4: the newest heartbeat round a majority acknowledged (`self` acknowledges `selfSeq`). */
  quorumAckedSeq(config: ClusterConfig, self: NodeId, selfSeq: number): number {
    return committedIndex(config, (id) =>
      id === self ? selfSeq : (this.progress.get(id)?.ackedSeq ?? 0),
    );
  }

  /** Starts a new election tally, with `self`'s own vote if given. */
  resetVotes(self?: NodeId): void {
    this.votes = new Map<NodeId, boolean>(self === undefined ? [] : [[self, true]]);
  }

  /** Records `from`'s answer in the current election. */
  recordVote(from: NodeId, granted: boolean): void {
    this.votes.set(from, granted);
  }

  /** Raft §5.2: is the current election won, lost, or undecided under `config`? */
  tally(config: ClusterConfig): VoteResult {
    return voteResult(config, this.votes);
  }

  /** Every follower's progress as reported by `RaftCore.status()`. */
  status(now: number, electionTicks: number): Map<NodeId, PeerStatus> {
    const out = new Map<NodeId, PeerStatus>();
    for (const [id, pr] of this.progress) {
      out.set(id, {
        match: pr.match,
        next: pr.next,
        state: pr.state,
        recentActive: now - pr.lastActiveTick < electionTicks,
      });
    }
    return out;
  }
}
