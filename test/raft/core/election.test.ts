/**
 * Leader election rules: Raft §5.1, §5.2, §5.4.1, plus pre-vote
 * (dissertation §9.6), check-quorum (§6.2) and leader stickiness (§4.2.3).
 */
import { describe, expect, it } from 'vitest';
import type { LogIndex, NodeId, Term } from '../../../src/lib/ids.js';
import type { RaftMessage, RequestVote } from '../../../src/raft/core/messages.js';
import { A, B, C, Cluster, drain, logState, soloCore, stepReady } from './harness.js';

const plain = { preVote: false, checkQuorum: false } as const;

function requestVote(
  from: NodeId,
  term: number,
  lastLogIndex: number,
  lastLogTerm: number,
): RequestVote {
  return {
    type: 'RequestVote',
    from,
    to: A,
    term: term as Term,
    lastLogIndex: lastLogIndex as LogIndex,
    lastLogTerm: lastLogTerm as Term,
    transfer: false,
  };
}

function voteGranted(msgs: readonly RaftMessage[]): boolean | undefined {
  const r = msgs.find((m) => m.type === 'RequestVoteResponse');
  return r?.type === 'RequestVoteResponse' ? r.granted : undefined;
}

describe('Raft §5.1: terms', () => {
  it('§5.1 stale term rejected: a message from an older term is refused and answered with the current term', () => {
    const core = soloCore(logState([1, 2], 5), plain);
    const rd = stepReady(core, {
      type: 'AppendEntries',
      from: B,
      to: A,
      term: 3 as Term,
      prevLogIndex: 2 as LogIndex,
      prevLogTerm: 2 as Term,
      entries: [],
      leaderCommit: 2 as LogIndex,
    });
    const resp = rd?.messages[0];
    expect(resp).toMatchObject({ type: 'AppendEntriesResponse', success: false, term: 5 });
    expect(core.status()).toMatchObject({ term: 5, commit: 0, leader: null });
  });

  it('§5.1 a leader that sees a higher term steps down to follower', () => {
    const c = new Cluster(['a', 'b', 'c'], { raft: plain });
    c.elect('a');
    const term = c.core('a').status().term;
    stepReady(c.core('a'), {
      type: 'Heartbeat',
      from: C,
      to: A,
      term: (term + 1) as Term,
      commit: 0 as LogIndex,
      seq: 1,
    });
    expect(c.core('a').status()).toMatchObject({ role: 'follower', term: term + 1, leader: 'c' });
  });
});

describe('Raft §5.2: leader election', () => {
  it('§5.2 vote once per term: the first candidate gets the vote, a second one in the same term does not', () => {
    const core = soloCore(logState([]), plain);
    const first = stepReady(core, requestVote(B, 2, 0, 0));
    expect(voteGranted(first?.messages ?? [])).toBe(true);
    // The vote is in the HardState to persist in the very Ready that carries the grant.
    expect(first?.hardState).toMatchObject({ term: 2, vote: 'b' });
    expect(voteGranted(stepReady(core, requestVote(C, 2, 0, 0))?.messages ?? [])).toBe(false);
    // Asking again (a duplicate) is answered with the same grant.
    expect(voteGranted(stepReady(core, requestVote(B, 2, 0, 0))?.messages ?? [])).toBe(true);
    // A new term frees the vote.
    expect(voteGranted(stepReady(core, requestVote(C, 3, 0, 0))?.messages ?? [])).toBe(true);
  });

  it('§5.2 a restarted node remembers its vote (it was persisted before the grant was sent)', () => {
    const c = new Cluster(['a', 'b', 'c'], { raft: plain });
    c.core('a').step(requestVote(B, 2, 0, 0));
    c.processReady(c.node('a')); // persists through the node's disk
    expect(c.node('a').disk.hardState.vote).toBe('b');
    c.crash('a');
    c.restart('a');
    const msgs = [...(stepReady(c.core('a'), requestVote(C, 2, 0, 0))?.messages ?? [])];
    expect(voteGranted(msgs)).toBe(false);
  });

  it('§5.2 a candidate that wins a majority becomes leader and others follow it', () => {
    const c = new Cluster(['a', 'b', 'c'], { raft: plain });
    c.campaign('a');
    expect(c.core('a').status()).toMatchObject({ role: 'candidate', term: 1, vote: 'a' });
    c.stabilize();
    expect(c.core('a').status()).toMatchObject({ role: 'leader', term: 1 });
    expect(c.core('b').status()).toMatchObject({ role: 'follower', leader: 'a', term: 1 });
  });

  it('§5.2 a candidate that hears from a leader of its term steps down', () => {
    const core = soloCore(logState([]), plain);
    core.campaign();
    drain(core);
    expect(core.status().role).toBe('candidate');
    const term = core.status().term;
    stepReady(core, { type: 'Heartbeat', from: B, to: A, term, commit: 0 as LogIndex, seq: 1 });
    expect(core.status()).toMatchObject({ role: 'follower', leader: 'b', term });
  });

  it('§5.2 a candidate that loses the majority returns to follower', () => {
    const core = soloCore(logState([]), plain);
    core.campaign();
    drain(core);
    const term = core.status().term;
    for (const from of [B, C]) {
      core.step({ type: 'RequestVoteResponse', from, to: A, term, granted: false });
    }
    expect(core.status().role).toBe('follower');
  });

  it('§5.2 randomized election timeouts: a follower campaigns after E+1..2E ticks (one tick past the lease), at different times per seed', () => {
    const seen = new Set<number>();
    for (let seed = 1; seed <= 30; seed++) {
      const c = new Cluster(['a', 'b', 'c'], { seed, raft: { ...plain, electionTicks: 10 } });
      let ticks = 0;
      while (c.core('a').status().role === 'follower') {
        c.tick('a');
        ticks++;
        expect(ticks).toBeLessThanOrEqual(20);
      }
      // Never at E: a voter one tick behind in phase would still be in its lease (§4.2.3).
      expect(ticks).toBeGreaterThanOrEqual(11);
      seen.add(ticks);
    }
    expect(seen.size).toBeGreaterThan(3);
  });
});

describe('Raft §5.4.1: election restriction', () => {
  it('§5.4.1 a voter refuses a candidate whose last log term is older', () => {
    const core = soloCore(logState([1, 2], 2), plain);
    expect(voteGranted(stepReady(core, requestVote(B, 3, 5, 1))?.messages ?? [])).toBe(false);
  });

  it('§5.4.1 a voter refuses a candidate with the same last term but a shorter log', () => {
    const core = soloCore(logState([1, 2, 2], 2), plain);
    expect(voteGranted(stepReady(core, requestVote(B, 3, 2, 2))?.messages ?? [])).toBe(false);
  });

  it('§5.4.1 a voter grants a candidate whose log is at least as up-to-date', () => {
    expect(
      voteGranted(
        stepReady(soloCore(logState([1, 2], 2), plain), requestVote(B, 3, 2, 2))?.messages ?? [],
      ),
    ).toBe(true);
    expect(
      voteGranted(
        stepReady(soloCore(logState([1, 2], 2), plain), requestVote(B, 3, 1, 3))?.messages ?? [],
      ),
    ).toBe(true);
  });

  it('§5.4.1 a node with a stale log cannot become leader even after many timeouts', () => {
    const c = new Cluster(['a', 'b', 'c'], {
      raft: plain,
      initial: { a: logState([1], 1), b: logState([1, 1], 1), c: logState([1, 1], 1) },
    });
    c.crash('b');
    for (let i = 0; i < 10; i++) {
      c.campaign('a');
      c.stabilize();
      expect(c.core('a').status().role).not.toBe('leader');
    }
  });
});

describe('dissertation §9.6: pre-vote', () => {
  it('a partitioned follower does not raise its term, and rejoining does not disturb the leader', () => {
    const c = new Cluster(['a', 'b', 'c'], { raft: { preVote: true, checkQuorum: false } });
    c.elect('a');
    const term = c.core('a').status().term;
    c.isolate('c');
    for (let i = 0; i < 50; i++) {
      c.tick('c');
      c.drop();
    }
    expect(c.core('c').status().term).toBe(term);
    c.heal();
    for (let i = 0; i < 20; i++) {
      c.tick();
      c.stabilize();
    }
    expect(c.leader()).toBe('a');
    expect(c.core('a').status().term).toBe(term);
  });

  it('without pre-vote the same rejoin forces a new election (the disruption pre-vote prevents)', () => {
    const c = new Cluster(['a', 'b', 'c'], { raft: plain });
    c.elect('a');
    const term = c.core('a').status().term;
    c.isolate('c');
    for (let i = 0; i < 50; i++) {
      c.tick('c');
      c.drop();
    }
    expect(c.core('c').status().term).toBeGreaterThan(term);
    c.heal();
    for (let i = 0; i < 20; i++) {
      c.tick();
      c.stabilize();
    }
    expect(c.core('a').status().term).toBeGreaterThan(term);
  });

  it('a pre-vote request never changes the voter term', () => {
    const core = soloCore(logState([1], 1));
    const rd = stepReady(core, {
      type: 'PreVote',
      from: B,
      to: A,
      term: 5 as Term,
      lastLogIndex: 1 as LogIndex,
      lastLogTerm: 1 as Term,
    });
    expect(rd?.messages[0]).toMatchObject({ type: 'PreVoteResponse', granted: true, term: 5 });
    expect(core.status().term).toBe(1);
    expect(rd?.hardState).toBeUndefined();
  });

  it('a follower that heard from its leader recently refuses pre-votes', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    const term = c.core('a').status().term;
    const rd = stepReady(c.core('b'), {
      type: 'PreVote',
      from: C,
      to: B,
      term: (term + 1) as Term,
      lastLogIndex: 100 as LogIndex,
      lastLogTerm: term,
    });
    expect(rd?.messages[0]).toMatchObject({ type: 'PreVoteResponse', granted: false });
  });
});

describe('dissertation §6.2 / §4.2.3: check-quorum and leader stickiness', () => {
  it('check-quorum: a leader cut off from the majority steps down within an election timeout', () => {
    const c = new Cluster(['a', 'b', 'c'], { raft: { checkQuorum: true, electionTicks: 10 } });
    c.elect('a');
    c.isolate('a');
    for (let i = 0; i < 21; i++) {
      c.tick('a');
      c.drop();
    }
    expect(c.core('a').status().role).toBe('follower');
  });

  it('without check-quorum the isolated leader keeps believing it leads', () => {
    const c = new Cluster(['a', 'b', 'c'], { raft: { checkQuorum: false, electionTicks: 10 } });
    c.elect('a');
    c.isolate('a');
    for (let i = 0; i < 50; i++) {
      c.tick('a');
      c.drop();
    }
    expect(c.core('a').status().role).toBe('leader');
  });

  it('leader stickiness: a follower that hears from a live leader ignores a higher-term RequestVote', () => {
    const c = new Cluster(['a', 'b', 'c'], { raft: { checkQuorum: true, preVote: false } });
    c.elect('a');
    const term = c.core('b').status().term;
    const rd = stepReady(c.core('b'), {
      type: 'RequestVote',
      from: C,
      to: B,
      term: (term + 1) as Term,
      lastLogIndex: 100 as LogIndex,
      lastLogTerm: term,
      transfer: false,
    });
    expect(rd).toBeNull();
    expect(c.core('b').status()).toMatchObject({ term, leader: 'a' });
  });

  it('a lone node in a one-voter cluster elects itself', () => {
    const c = new Cluster(['a']);
    c.campaign('a');
    expect(c.core('a').status().role).toBe('leader');
    c.propose('a', 'x');
    c.stabilize();
    expect(c.applied('a')).toEqual(['x']);
  });
});
