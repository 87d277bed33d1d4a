/**
 * Leadership transfer with TimeoutNow (dissertation §3.10).
 */
import { describe, expect, it } from 'vitest';
import type { NodeId } from '../../../src/lib/ids.js';
import { cmd, Cluster } from './harness.js';

const B = 'b' as NodeId;
const C = 'c' as NodeId;
const opts = { preVote: true, checkQuorum: true, electionTicks: 10 } as const;

describe('dissertation §3.10: leadership transfer', () => {
  it('§3.10 an up-to-date transferee gets TimeoutNow and wins at once, even under leader stickiness', () => {
    const c = new Cluster(['a', 'b', 'c'], { raft: opts });
    c.elect('a');
    c.stabilize();
    const term = c.core('a').status().term;
    expect(c.core('a').transferLeadership(B)).toEqual({ kind: 'accepted' });
    c.processAll();
    expect(c.inFlight('TimeoutNow')).toHaveLength(1);
    c.stabilize();
    expect(c.leader()).toBe('b');
    expect(c.core('b').status().term).toBe(term + 1);
    expect(c.core('a').status()).toMatchObject({ role: 'follower', leader: 'b' });
  });

  it('§3.10 a lagging transferee is caught up first, then told to time out', () => {
    const c = new Cluster(['a', 'b', 'c'], { raft: opts });
    c.elect('a');
    c.stabilize();
    c.isolate('c');
    c.propose('a', 'x');
    c.stabilize();
    c.heal();
    c.core('a').transferLeadership(C);
    c.processAll();
    expect(c.inFlight('TimeoutNow')).toHaveLength(0);
    c.stabilize();
    expect(c.leader()).toBe('c');
    expect(c.applied('c')).toEqual(['x']);
  });

  it('§3.10 proposals are refused during a transfer', () => {
    const c = new Cluster(['a', 'b', 'c'], { raft: opts });
    c.elect('a');
    c.stabilize();
    c.core('a').transferLeadership(B);
    expect(c.core('a').propose(cmd('x'))).toMatchObject({
      kind: 'rejected',
      reason: 'TRANSFERRING',
    });
  });

  it('§3.10 a transfer that does not finish within an election timeout is abandoned', () => {
    const c = new Cluster(['a', 'b', 'c'], { raft: opts });
    c.elect('a');
    c.stabilize();
    c.crash('b');
    c.core('a').transferLeadership(B);
    for (let i = 0; i < 10; i++) {
      c.tick('a');
      c.stabilize();
    }
    expect(c.core('a').status()).toMatchObject({ role: 'leader', leadTransferee: null });
    expect(c.core('a').propose(cmd('x')).kind).toBe('accepted');
  });

  it('transfer requests are refused by a follower and for a non-voter', () => {
    const c = new Cluster(['a', 'b', 'c'], { raft: opts });
    c.elect('a');
    expect(c.core('b').transferLeadership(C)).toMatchObject({
      reason: 'NOT_LEADER',
      leaderHint: 'a',
    });
    expect(c.core('a').transferLeadership('zz' as NodeId)).toMatchObject({
      reason: 'INVALID_CHANGE',
    });
  });
});
