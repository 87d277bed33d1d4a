/**
 * Log replication, both ends. The leader's side: heartbeats and check-quorum
 * (Raft §5.2, dissertation §6.2), AppendEntries with pipelining and flow
 * control (Raft §5.3; per-follower state in progress.ts), fast backtracking
 * after a rejection (after Raft Figure 7), snapshots for followers whose next
 * entry was compacted away (Raft §7), and the commit rule (Raft §5.3, §5.4.2).
 * The follower's side: the consistency check and log repair (Raft §5.3
 * receiver rules), heartbeats, and installing a snapshot (Raft §7 receiver
 * rules). Heartbeat rounds also confirm ReadIndex requests (read-only.ts).
 *
 * ```ts
 * tickLeader(s);                  // heartbeats, check-quorum, transfer timeout
 * flush(s);                       // send every follower what it lacks
 * handleAppendResponse(s, m);     // move the follower's progress; maybe commit
 * handleAppendEntries(s, m);      // follower: check, repair, append, answer
 * ```
 */
import { assert } from '../../lib/assert.js';
import { CohortError } from '../../lib/errors.js';
import type { LogIndex, NodeId, Term } from '../../lib/ids.js';
import type { ReadContext } from './api.js';
import { hasQuorum, isVoter } from './config.js';
import { sendTimeoutNow } from './election.js';
import type {
  AppendEntries,
  AppendEntriesResponse,
  Heartbeat,
  HeartbeatResponse,
  InstallSnapshot,
  InstallSnapshotResponse,
} from './messages.js';
import type { Progress } from './progress.js';
import type { RaftState } from './state.js';
import type { Entry, Snapshot } from './types.js';

// ---------------------------------------------------------------------------
// Leader: ticks, heartbeats, reads

/** A leader's tick: transfer timeout (§3.10), check-quorum (§6.2), heartbeats (§5.2). */
export function tickLeader(s: RaftState): void {
  s.heartbeatElapsed++;
  s.electionElapsed++;
  if (s.leadTransferee !== null && ++s.transferElapsed >= s.opts.electionTicks) {
    s.leadTransferee = null; // dissertation §3.10: abort a transfer that takes an election timeout
  }
  if (s.electionElapsed >= s.opts.electionTicks) s.electionElapsed = 0;
  if (s.opts.checkQuorum) {
    // Dissertation §6.2: a leader that has not heard from a quorum within an election
    // timeout steps down (checked every tick, so it happens electionTicks after the last contact).
    if (!s.tracker.quorumActive(s.log.config(), s.id, s.now, s.opts.electionTicks)) {
      s.becomeFollower(s.term, null);
      return;
    }
  }
  if (s.heartbeatElapsed >= s.opts.heartbeatTicks) {
    s.heartbeatElapsed = 0;
    broadcastHeartbeat(s);
  }
}

/** Sends a numbered heartbeat round to every follower (it also confirms pending reads, §6.4). */
export function broadcastHeartbeat(s: RaftState): void {
  const seq = s.reads.nextRound(s.now);
  for (const [to, pr] of s.tracker.progress) {
    const m: Heartbeat = {
      type: 'Heartbeat',
      from: s.id,
      to,
      term: s.term,
      commit: Math.min(pr.match, s.log.commit) as LogIndex,
      seq,
    };
    s.send(m);
  }
  confirmReads(s); // a one-voter cluster confirms at once
}

/** Starts a ReadIndex request at the current commit index (dissertation §6.4; the leader committed in its term). */
export function startRead(s: RaftState, ctx: ReadContext): void {
  s.reads.start(ctx, s.log.commit, s.now, soleVoter(s), s.leadTransferee !== null);
}

function soleVoter(s: RaftState): boolean {
  return hasQuorum(s.log.config(), (id) => id === s.id);
}

function confirmReads(s: RaftState): void {
  s.reads.confirm(s.tracker.quorumAckedSeq(s.log.config(), s.id, s.reads.heartbeatSeq));
}

// ---------------------------------------------------------------------------
// Leader: sending

/** Sends every follower what it lacks, within its flow-control limits (batched per Ready). */
export function flush(s: RaftState): void {
  s.needFlush = false;
  const maxInflight = s.opts.maxInflight;
  for (const [to, pr] of s.tracker.progress) {
    if (pr.state === 'snapshot') {
      if (!pr.snapshotSent) sendSnapshotChunk(s, to, pr);
      continue;
    }
    let sent = false;
    while (!pr.isPaused(maxInflight) && pr.next <= s.log.lastIndex()) {
      if (!sendAppend(s, to, pr)) break;
      sent = true;
      if (pr.state !== 'replicate') break;
    }
    // Nothing new to send: still send an empty append if asked to (follower behind after a
    // heartbeat) or to carry a commit index it has not seen.
    if (!sent && !pr.isPaused(maxInflight) && (pr.forceSend || pr.sentCommit < s.log.commit)) {
      sendAppend(s, to, pr);
    }
    pr.forceSend = false;
  }
}

/** Sends one AppendEntries (possibly empty) from pr.next, or a snapshot chunk if that entry was compacted. */
function sendAppend(s: RaftState, to: NodeId, pr: Progress): boolean {
  const prevLogIndex = pr.next - 1;
  const prevLogTerm = s.log.term(prevLogIndex);
  if (prevLogTerm === undefined) {
    // Raft §7: the entries the follower needs are gone; send the snapshot instead.
    assert(s.localSnapshot !== null, 'log compacted without a snapshot');
    pr.becomeSnapshot(s.localSnapshot);
    sendSnapshotChunk(s, to, pr);
    return false;
  }
  const last = s.log.lastIndex();
  const entries =
    pr.next <= last
      ? s.log.slice(pr.next, last, s.opts.maxAppendEntries, s.opts.maxAppendBytes)
      : [];
  const m: AppendEntries = {
    type: 'AppendEntries',
    from: s.id,
    to,
    term: s.term,
    prevLogIndex: prevLogIndex as LogIndex,
    prevLogTerm,
    entries,
    leaderCommit: s.log.commit,
  };
  s.send(m);
  pr.sentCommit = s.log.commit;
  // Pipelining in replicate mode: nextIndex moves past the append at once (Progress.appendSent).
  pr.appendSent(entries.length === 0 ? undefined : (entries[entries.length - 1] as Entry).index);
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
function sendSnapshotChunk(s: RaftState, to: NodeId, pr: Progress): void {
  const snap = pr.snapshot;
  assert(snap !== null, 'snapshot state without a pinned snapshot');
  const offset = Math.min(pr.snapshotOffset, snap.data.length);
  const data = snap.data.subarray(offset, offset + s.opts.chunkBytes);
  const m: InstallSnapshot = {
    type: 'InstallSnapshot',
    from: s.id,
    to,
    term: s.term,
    meta: snap.meta,
    offset,
    data,
    done: offset + data.length === snap.data.length,
    totalBytes: snap.data.length,
  };
  s.send(m);
  pr.snapshotSent = true;
  pr.snapshotSentTick = s.now;
}

// ---------------------------------------------------------------------------
// Leader: answers and commitment

/**
 * A follower at the leader's term answers about something the leader never
 * sent: an index beyond the leader's log (which only grows within its term)
 * or a heartbeat round it has not started. A correct peer cannot send this;
 * the message is refused with PROTOCOL_ERROR before it changes anything, so
 * that a faulty peer cannot break the leader's invariants (match ≤ lastIndex).
 * Skipped under the test-only bug switches, whose broken clusters do send such
 * answers (two leaders in a term).
 */
function refuse(s: RaftState, from: NodeId, what: string, claimed: number, limit: number): never {
  throw new CohortError(
    'PROTOCOL_ERROR',
    `raft ${s.id} (leader of term ${s.term}): ${from} claims ${what} ${claimed} beyond ${limit}`,
    { details: { from, what, claimed, limit } },
  );
}

/** Raft §5.3: an AppendEntries answer moves the follower's progress (and may commit). */
export function handleAppendResponse(s: RaftState, m: AppendEntriesResponse): void {
  const pr = s.tracker.get(m.from);
  if (pr === undefined) return;
  if (!s.opts.anyBug) {
    const last = s.log.lastIndex();
    if (m.success && m.matchIndex > last) refuse(s, m.from, 'match index', m.matchIndex, last);
    if (!m.success && m.rejectedIndex > last) {
      refuse(s, m.from, 'rejected index', m.rejectedIndex, last);
    }
  }
  pr.lastActiveTick = s.now;
  if (!m.success) {
    // Ignore stale rejections: of an append already known matched, or of an old probe.
    if (pr.isStaleRejection(m.rejectedIndex)) return;
    // Fast backtracking (Raft §5.3, after Figure 7): skip a whole conflicting term per round trip.
    let next: number;
    if (m.conflictTerm > 0) {
      const k = s.log.lastIndexOfTerm(m.conflictTerm, m.rejectedIndex);
      next = k > 0 ? k + 1 : m.conflictIndex;
    } else {
      next = m.conflictIndex;
    }
    next = Math.min(next, m.rejectedIndex);
    pr.becomeProbe(Math.max(next, 1));
    s.needFlush = true;
    return;
  }
  const moved = pr.maybeUpdate(m.matchIndex);
  // Postcondition (refused above otherwise): a leader never records a match beyond its log.
  if (pr.match > s.log.lastIndex() && !s.opts.anyBug) {
    assert(false, `match ${pr.match} of ${m.from} beyond the last index ${s.log.lastIndex()}`);
  }
  if (pr.state === 'probe') {
    pr.becomeReplicate();
  } else if (pr.state === 'snapshot' && pr.match >= pr.snapshotIndex) {
    pr.becomeProbe(pr.match + 1);
  }
  if (moved) maybeCommit(s);
  if (s.leadTransferee === m.from && pr.match === s.log.lastIndex()) sendTimeoutNow(s, m.from);
  s.needFlush = true;
}

/** A heartbeat answer: the follower is alive (§6.2), acknowledges a read round (§6.4), may be behind. */
export function handleHeartbeatResponse(s: RaftState, m: HeartbeatResponse): void {
  const pr = s.tracker.get(m.from);
  if (pr === undefined) return;
  if (!s.opts.anyBug && m.seq > s.reads.heartbeatSeq) {
    refuse(s, m.from, 'heartbeat round', m.seq, s.reads.heartbeatSeq);
  }
  pr.lastActiveTick = s.now;
  if (m.seq > pr.ackedSeq) pr.ackedSeq = m.seq;
  if (pr.state === 'snapshot') {
    // Resend a chunk that may have been lost.
    if (s.now - pr.snapshotSentTick >= 2 * s.opts.heartbeatTicks) pr.snapshotSent = false;
  } else if (pr.match < s.log.lastIndex()) {
    pr.resumeAfterHeartbeat(s.opts.maxInflight);
  }
  if (pr.forceSend || (pr.state === 'snapshot' && !pr.snapshotSent)) s.needFlush = true;
  confirmReads(s);
}

/** Raft §7: a snapshot chunk was taken (send the next) or the snapshot installed (probe after it). */
export function handleSnapshotResponse(s: RaftState, m: InstallSnapshotResponse): void {
  const pr = s.tracker.get(m.from);
  if (pr === undefined) return;
  if (!s.opts.anyBug && m.done && m.snapshotIndex > s.log.lastIndex()) {
    refuse(s, m.from, 'snapshot index', m.snapshotIndex, s.log.lastIndex());
  }
  pr.lastActiveTick = s.now;
  if (m.done) {
    pr.maybeUpdate(m.snapshotIndex);
    if (pr.state === 'snapshot') pr.becomeProbe(pr.match + 1);
    maybeCommit(s);
    s.needFlush = true;
    return;
  }
  if (pr.state !== 'snapshot' || m.snapshotIndex !== pr.snapshotIndex) return;
  pr.snapshotOffset = m.nextOffset;
  pr.snapshotSent = false;
  s.needFlush = true;
}

/** Raft §5.3 + §5.4.2: commit the highest index stored on a quorum, if it is of the current term. */
export function maybeCommit(s: RaftState): void {
  if (s.role !== 'leader') return;
  const idx = s.tracker.committed(s.log.config(), s.id, s.log.persisted);
  const last = s.log.lastIndex();
  // Every match index is within the leader's log (answers claiming more are refused), and so is
  // what a quorum holds; only the test-only bug switches let it pass the end (then capped here).
  if (idx > last && !s.opts.anyBug) {
    assert(false, `a quorum holds ${idx}, beyond the leader's last index ${last}`);
  }
  const q = Math.min(idx, last);
  if (q <= s.log.commit) return;
  // Raft §5.4.2: never commit an older term's entry by counting replicas (Figure 8).
  if (s.log.term(q) !== s.term && s.opts.bugs.countOldTermEntriesForCommit !== true) return;
  s.log.commitTo(q);
  onCommitAdvanced(s);
}

function onCommitAdvanced(s: RaftState): void {
  s.needFlush = true;
  if (!s.progressSyncedAt && s.log.commit >= s.log.configIndex()) s.syncProgress();
  if (!s.committedInTerm && s.log.term(s.log.commit) === s.term) {
    s.committedInTerm = true;
    s.reads.startDeferred(s.log.commit, s.now, soleVoter(s), s.leadTransferee !== null);
  }
  const config = s.log.config();
  if (!isVoter(config, s.id) && s.log.commit >= s.log.configIndex()) {
    // Dissertation §4.2.2: a leader removed from the configuration steps down once the change commits,
    // handing over to the most up-to-date voter so the cluster need not wait for a timeout.
    let best: NodeId | null = null;
    for (const [id, pr] of s.tracker.progress) {
      if (isVoter(config, id) && pr.match === s.log.lastIndex()) best = best ?? id;
    }
    flush(s);
    if (best !== null) sendTimeoutNow(s, best);
    s.becomeFollower(s.term, null);
  }
}

// ---------------------------------------------------------------------------
// Follower

/** A leader's message at our term: candidates step down; two leaders in a term is a bug. */
export function acceptLeader(s: RaftState, from: NodeId): boolean {
  if (s.role === 'leader') {
    assert(s.opts.anyBug, `two leaders in term ${s.term}: ${s.id} and ${from}`);
    return false;
  }
  if (s.role !== 'follower') s.becomeFollower(s.term, from);
  s.leader = from;
  s.electionElapsed = 0;
  return true;
}

/** Raft §5.3 receiver rules: the consistency check, log repair, append, commit. */
export function handleAppendEntries(s: RaftState, m: AppendEntries): void {
  const commit = s.log.commit;
  let prevIndex: number = m.prevLogIndex;
  let prevTerm: number = m.prevLogTerm;
  let entries = m.entries;
  if (prevIndex < commit) {
    // Entries up to our commit index are known to match the leader's (Leader Completeness, Raft §5.4).
    const skip = Math.min(commit - prevIndex, entries.length);
    entries = entries.slice(skip);
    if (entries.length === 0) {
      replyAppend(s, m, true, Math.max(commit, 0));
      return;
    }
    prevIndex += skip;
    prevTerm = (m.entries[skip - 1] as Entry).term;
  }
  const matches =
    s.log.matchTerm(prevIndex, prevTerm) ||
    (s.opts.bugs.skipLogConsistencyCheck === true &&
      prevIndex <= s.log.lastIndex() &&
      prevIndex >= s.log.snapshotMeta().index);
  if (!matches) {
    // Raft §5.3: reject; include the conflicting term and its first index so the leader skips it.
    const last = s.log.lastIndex();
    let conflictTerm = 0;
    let conflictIndex: number = last + 1;
    if (prevIndex <= last) {
      conflictTerm = s.log.term(prevIndex) as number;
      conflictIndex = s.log.firstIndexOfTermAt(prevIndex);
    }
    s.send({
      type: 'AppendEntriesResponse',
      from: s.id,
      to: m.from,
      term: s.term,
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
    if (s.log.term(e.index) !== e.term) break;
    k++;
  }
  if (k < entries.length) {
    const rest = k === 0 ? entries : entries.slice(k);
    const from = (rest[0] as Entry).index;
    if (from <= s.log.lastIndex()) s.dropAcksFrom(from);
    if (from <= commit && s.opts.anyBug) {
      s.log.append(rest, true);
    } else {
      s.log.append(rest);
    }
  }
  const lastNew = prevIndex + entries.length;
  // Raft §5.3 receiver rule 5.
  s.log.commitTo(Math.min(m.leaderCommit, lastNew));
  replyAppend(s, m, true, lastNew);
}

function replyAppend(s: RaftState, m: AppendEntries, success: boolean, matchIndex: number): void {
  s.send({
    type: 'AppendEntriesResponse',
    from: s.id,
    to: m.from,
    term: s.term,
    success,
    matchIndex: matchIndex as LogIndex,
    rejectedIndex: m.prevLogIndex,
    conflictIndex: 0 as LogIndex,
    conflictTerm: 0 as Term,
  });
}

/** A leader's heartbeat: learn its commit index (within what we hold) and answer the round. */
export function handleHeartbeat(s: RaftState, m: Heartbeat): void {
  // The leader caps `commit` by what it knows we hold, so it never exceeds our matching prefix.
  s.log.commitTo(Math.min(m.commit, s.log.lastIndex()));
  s.send({
    type: 'HeartbeatResponse',
    from: s.id,
    to: m.from,
    term: s.term,
    seq: m.seq,
  });
}

/** Raft §7 receiver: collect chunks, then adopt the snapshot (rules 6–8) and hand it to the shell. */
export function handleInstallSnapshot(s: RaftState, m: InstallSnapshot): void {
  const meta = m.meta;
  const reply = (nextOffset: number, done: boolean): void => {
    s.send({
      type: 'InstallSnapshotResponse',
      from: s.id,
      to: m.from,
      term: s.term,
      snapshotIndex: meta.index,
      nextOffset,
      done,
    });
  };
  if (meta.index <= s.log.commit) {
    // We already hold (committed) everything the snapshot covers.
    s.receiver.reset();
    reply(0, true);
    return;
  }
  const got = s.receiver.accept(m);
  if (!got.done) {
    reply(got.nextOffset, false);
    return;
  }
  // Raft §7 receiver rules 6–8. Without the entry at meta.index the whole log goes.
  if (s.log.term(meta.index) !== meta.term) s.dropAcksFrom(meta.index + 1);
  s.log.restore(meta);
  const snapshot: Snapshot = { meta, data: got.data };
  s.localSnapshot = snapshot;
  s.pendingSnapshot = { snapshot, restore: true };
  reply(got.data.length, true);
}
