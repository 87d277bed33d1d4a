/**
 * Elections and votes: the election timer (Raft §5.2), pre-vote
 * (dissertation §9.6), RequestVote with the election restriction (Raft §5.2,
 * §5.4.1), leader stickiness (dissertation §4.2.3), and leadership transfer,
 * which ends in an election (TimeoutNow, dissertation §3.10). The role changes
 * themselves are in state.ts; votes are tallied by the tracker (tracker.ts).
 *
 * ```ts
 * tickElection(s);                    // a follower's tick: campaign when the timer runs out
 * handleRequestVote(s, m);            // answer a candidate
 * handleVoteResponse(s, m);           // count an answer; may make this node leader
 * ```
 */
import type { NodeId, Term } from '../../lib/ids.js';
import type { RequestResult } from './api.js';
import { isVoter } from './config.js';
import type { PreVote, PreVoteResponse, RequestVote, RequestVoteResponse } from './messages.js';
import type { Progress } from './progress.js';
import type { RaftState } from './state.js';
import type { ClusterConfig } from './types.js';

/** True if this node may campaign: it votes in the configuration it uses. */
export function promotable(s: RaftState): boolean {
  return isVoter(s.log.config(), s.id);
}

function otherVoters(s: RaftState, config: ClusterConfig): NodeId[] {
  const out = new Set<NodeId>(config.voters);
  for (const v of config.votersOutgoing ?? []) out.add(v);
  out.delete(s.id);
  return [...out];
}

/** Heard from a leader within the minimum election timeout (leader stickiness, dissertation §4.2.3). */
export function inLease(s: RaftState): boolean {
  return s.leader !== null && s.electionElapsed < s.opts.electionTicks;
}

/** A follower's or candidate's tick (Raft §5.2): start an election when the timeout runs out. */
export function tickElection(s: RaftState): void {
  s.electionElapsed++;
  if (s.electionElapsed >= s.randomizedElectionTimeout && promotable(s)) {
    s.electionElapsed = 0;
    campaign(s, s.opts.preVote ? 'pre' : 'real', false);
  }
}

/**
 * Starts an election now: a pre-vote round (dissertation §9.6) that asks at
 * term+1 without changing anyone's term, or a real one (Raft §5.2). A no-op on
 * a leader or a non-voter. `transfer` marks an election ordered by TimeoutNow.
 */
export function campaign(s: RaftState, kind: 'pre' | 'real', transfer: boolean): void {
  if (s.role === 'leader' || !promotable(s)) return;
  s.leader = null;
  s.tracker.resetVotes(s.id);
  s.resetElectionTimer();
  const config = s.log.config();
  if (kind === 'pre') {
    s.role = 'preCandidate';
    for (const to of otherVoters(s, config)) {
      const m: PreVote = {
        type: 'PreVote',
        from: s.id,
        to,
        term: (s.term + 1) as Term,
        lastLogIndex: s.log.lastIndex(),
        lastLogTerm: s.log.lastTerm(),
      };
      s.send(m);
    }
  } else {
    // Raft §5.2: increment the term, vote for self, ask everyone else.
    s.role = 'candidate';
    s.term = (s.term + 1) as Term;
    s.vote = s.id;
    for (const to of otherVoters(s, config)) {
      const m: RequestVote = {
        type: 'RequestVote',
        from: s.id,
        to,
        term: s.term,
        lastLogIndex: s.log.lastIndex(),
        lastLogTerm: s.log.lastTerm(),
        transfer,
      };
      s.send(m);
    }
  }
  tallyVotes(s);
}

function tallyVotes(s: RaftState): void {
  const result = s.tracker.tally(s.log.config());
  if (result === 'won') {
    if (s.role === 'preCandidate') campaign(s, 'real', false);
    else if (s.role === 'candidate') s.becomeLeader();
  } else if (result === 'lost') {
    s.becomeFollower(s.term, null);
  }
}

/** Counts a (pre-)vote answer at the current term; a majority makes this node candidate or leader. */
export function handleVoteResponse(s: RaftState, m: RequestVoteResponse | PreVoteResponse): void {
  if (m.type === 'RequestVoteResponse') {
    if (s.role === 'candidate') {
      s.tracker.recordVote(m.from, m.granted);
      tallyVotes(s);
    }
    return;
  }
  // A pre-vote grant echoes term+1; a refusal at our own term counts as a no.
  if (s.role === 'preCandidate' && (m.granted ? m.term === s.term + 1 : m.term === s.term)) {
    s.tracker.recordVote(m.from, m.granted);
    tallyVotes(s);
  }
}

/** Answers a RequestVote at the current term. */
export function handleRequestVote(s: RaftState, m: RequestVote): void {
  // Raft §5.2: one vote per term, first come first served; §5.4.1: only for an up-to-date log.
  const canVote = s.vote === m.from || (s.vote === null && s.leader === null);
  const upToDate =
    s.opts.bugs.skipElectionRestriction === true || s.log.isUpToDate(m.lastLogIndex, m.lastLogTerm);
  const granted = canVote && upToDate && s.role !== 'leader';
  if (granted) {
    s.vote = m.from;
    s.resetElectionTimer();
  }
  s.send({
    type: 'RequestVoteResponse',
    from: s.id,
    to: m.from,
    term: s.term,
    granted,
  });
}

/** Answers a PreVote (at the current term or one it would move to). */
export function handlePreVote(s: RaftState, m: PreVote): void {
  // Dissertation §9.6: grant if we could vote for it at m.term and have not heard from a leader lately.
  const canVote = m.term > s.term || s.vote === m.from || (s.vote === null && s.leader === null);
  const upToDate =
    s.opts.bugs.skipElectionRestriction === true || s.log.isUpToDate(m.lastLogIndex, m.lastLogTerm);
  const granted = canVote && upToDate && !inLease(s);
  s.send({
    type: 'PreVoteResponse',
    from: s.id,
    to: m.from,
    term: granted ? m.term : s.term,
    granted,
  });
}

/** Dissertation §3.10: the leader asks us to start an election at once (skipping pre-vote and stickiness). */
export function handleTimeoutNow(s: RaftState): void {
  if (s.role !== 'leader' && promotable(s)) campaign(s, 'real', true);
}

/**
 * Starts handing leadership to `to` (dissertation §3.10): once `to` has the
 * whole log it gets TimeoutNow. The leader refuses proposals meanwhile and
 * abandons the transfer after an election timeout (replication.ts tickLeader).
 */
export function transferLeadership(s: RaftState, to: NodeId): RequestResult {
  if (s.role !== 'leader') return s.reject('NOT_LEADER');
  if (to === s.id) return { kind: 'accepted' };
  if (!isVoter(s.log.config(), to) || !s.tracker.has(to)) return s.reject('INVALID_CHANGE');
  if (s.leadTransferee === to) return { kind: 'accepted' };
  s.leadTransferee = to;
  s.transferElapsed = 0;
  const pr = s.tracker.get(to) as Progress;
  if (pr.match === s.log.lastIndex()) {
    sendTimeoutNow(s, to);
  } else {
    pr.forceSend = true; // catch it up now rather than at the next heartbeat
    pr.probeSent = false;
    s.needFlush = true;
  }
  return { kind: 'accepted' };
}

/** Dissertation §3.10: tells `to`, whose log is complete, to campaign now. */
export function sendTimeoutNow(s: RaftState, to: NodeId): void {
  s.reads.revokeLease(); // the transferee's election ignores leader stickiness
  s.send({ type: 'TimeoutNow', from: s.id, to, term: s.term });
}
