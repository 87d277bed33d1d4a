/**
 * Linearizable reads: ReadIndex (dissertation §6.4) and, behind a flag,
 * clock-dependent lease reads (§6.4.1).
 */
import { describe, expect, it } from 'vitest';
import { Cluster } from './harness.js';

const opts = { preVote: true, checkQuorum: true, electionTicks: 10 } as const;

function leaderWithData(raft: object = opts): Cluster {
  const c = new Cluster(['a', 'b', 'c'], { raft });
  c.elect('a');
  c.propose('a', 'x');
  c.stabilize();
  return c;
}

describe('dissertation §6.4: ReadIndex', () => {
  it('§6.4 a read is served at the commit index once a quorum answers a heartbeat round sent after it', () => {
    const c = leaderWithData();
    const commit = c.core('a').status().commit;
    expect(c.core('a').readIndex('r1')).toEqual({ kind: 'accepted' });
    c.processAll();
    expect(c.node('a').readStates).toEqual([]);
    const heartbeats = c.inFlight('Heartbeat');
    expect(heartbeats).toHaveLength(2);
    c.deliver(); // heartbeats reach b and c
    c.deliver(); // their answers reach a
    expect(c.node('a').readStates).toEqual([{ ctx: 'r1', ok: true, index: commit }]);
  });

  it('§6.4 reads requested together share one heartbeat round', () => {
    const c = leaderWithData();
    c.core('a').readIndex('r1');
    c.core('a').readIndex('r2');
    c.processAll();
    expect(c.inFlight('Heartbeat')).toHaveLength(2);
    c.stabilize();
    expect(c.node('a').readStates.map((r) => r.ctx)).toEqual(['r1', 'r2']);
  });

  it('§6.4 step 1: a new leader serves no read before it has committed an entry of its term', () => {
    const c = new Cluster(['a', 'b', 'c'], { raft: opts });
    c.campaign('a');
    for (let i = 0; i < 4 && c.core('a').status().role !== 'leader'; i++) c.deliver();
    expect(c.core('a').status().role).toBe('leader');
    c.core('a').readIndex('early');
    c.processAll();
    // Heartbeats could confirm leadership, but the no-op is not committed yet.
    c.deliver((m) => m.type === 'Heartbeat');
    c.deliver((m) => m.type === 'HeartbeatResponse');
    expect(c.node('a').readStates).toEqual([]);
    c.stabilize();
    expect(c.node('a').readStates).toEqual([{ ctx: 'early', ok: true, index: 1 }]);
  });

  it('§6.4 a leader cut off from the quorum cannot confirm a read; it fails when the leader steps down', () => {
    const c = leaderWithData();
    c.isolate('a');
    c.core('a').readIndex('stale');
    c.processAll();
    c.stabilize();
    expect(c.node('a').readStates).toEqual([]);
    for (let i = 0; i < 11; i++) {
      c.tick('a');
      c.stabilize();
    }
    expect(c.core('a').status().role).not.toBe('leader');
    expect(c.node('a').readStates).toEqual([{ ctx: 'stale', ok: false, leaderHint: null }]);
  });

  it('§6.4 with the test-only bug skipReadConfirmation an isolated leader answers at once (the check can fail)', () => {
    const c = leaderWithData({ ...opts, bugs: { skipReadConfirmation: true } });
    c.isolate('a');
    c.core('a').readIndex('stale');
    c.processAll();
    expect(c.node('a').readStates).toEqual([{ ctx: 'stale', ok: true, index: 2 }]);
  });

  it('§6.4 a follower refuses reads and names the leader', () => {
    const c = leaderWithData();
    expect(c.core('b').readIndex('r')).toEqual({
      kind: 'rejected',
      reason: 'NOT_LEADER',
      leaderHint: 'a',
    });
  });

  it('§6.4 a one-voter cluster serves reads at once', () => {
    const c = new Cluster(['a']);
    c.campaign('a');
    c.stabilize();
    c.core('a').readIndex('solo');
    c.processAll();
    expect(c.node('a').readStates).toEqual([{ ctx: 'solo', ok: true, index: 1 }]);
  });
});

describe('dissertation §6.4.1: lease reads (clock-dependent, opt-in)', () => {
  it('lease reads need check-quorum', () => {
    expect(() => new Cluster(['a'], { raft: { leaseReads: true, checkQuorum: false } })).toThrow(
      /checkQuorum/,
    );
  });

  it('within the lease a read is served without a heartbeat round; after it expires a round is needed again', () => {
    const c = leaderWithData({ ...opts, leaseReads: true, leaseMarginTicks: 2 });
    c.tick('a'); // a heartbeat round acknowledged by the quorum starts the lease
    c.stabilize();
    c.core('a').readIndex('lease');
    c.processAll();
    expect(c.inFlight('Heartbeat')).toHaveLength(0);
    expect(c.node('a').readStates.map((r) => r.ctx)).toEqual(['lease']);
    // Cut a off: no acknowledged round renews the lease, which lapses after electionTicks - margin.
    c.isolate('a');
    for (let i = 0; i < 8; i++) {
      c.tick('a');
      c.drop();
    }
    c.core('a').readIndex('expired');
    c.processAll();
    expect(c.node('a').readStates.map((r) => r.ctx)).toEqual(['lease']);
    expect(c.inFlight('Heartbeat').length).toBeGreaterThan(0);
  });
});
