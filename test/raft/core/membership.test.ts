/**
 * Single-server membership changes (dissertation §4.1, Raft §6): learners,
 * promotion after catch-up, removal (including of the leader), one change at
 * a time, configurations in force from the moment they are appended.
 */
import { describe, expect, it } from 'vitest';
import type { LogIndex, NodeId, Term } from '../../../src/lib/ids.js';
import { encodeConfig } from '../../../src/raft/core/config.js';
import { A, B, C, Cluster, logState, soloCore, stepReady } from './harness.js';

const D = 'd' as NodeId;
const opts = { preVote: true, checkQuorum: true, electionTicks: 10 } as const;

function withLearner(): Cluster {
  const c = new Cluster(['a', 'b', 'c'], { raft: opts });
  c.elect('a');
  c.propose('a', 'x');
  c.stabilize();
  c.addNode('d', { voters: [], learners: [] });
  expect(c.core('a').proposeConfigChange({ type: 'addLearner', node: D })).toMatchObject({
    kind: 'accepted',
  });
  c.processAll();
  c.stabilize();
  return c;
}

describe('dissertation §4.1: single-server membership changes', () => {
  it('§4.1 an added learner receives the log but does not vote or count toward commitment', () => {
    const c = withLearner();
    expect(c.applied('d')).toEqual(['x']);
    expect(c.core('d').status().config).toEqual({ voters: ['a', 'b', 'c'], learners: ['d'] });
    // Learners never campaign.
    for (let i = 0; i < 50; i++) c.tick('d');
    expect(c.core('d').status().role).toBe('follower');
    // With b and c down, a and the learner are not a majority: nothing commits.
    c.crash('b');
    c.crash('c');
    c.propose('a', 'y');
    c.stabilize();
    expect(c.applied('a')).toEqual(['x']);
  });

  it('§4.1 a configuration is in force as soon as it is appended, before it commits', () => {
    const c = new Cluster(['a', 'b', 'c'], { raft: opts });
    c.elect('a');
    c.stabilize();
    c.core('a').proposeConfigChange({ type: 'addLearner', node: D });
    expect(c.core('a').status().config.learners).toEqual(['d']);
    expect(c.core('a').status().commit).toBeLessThan(c.core('a').status().lastIndex);
  });

  it('§4.1 only one change at a time: a second change waits until the first commits', () => {
    const c = new Cluster(['a', 'b', 'c'], { raft: opts });
    c.elect('a');
    c.stabilize();
    expect(c.core('a').proposeConfigChange({ type: 'addLearner', node: D }).kind).toBe('accepted');
    expect(c.core('a').proposeConfigChange({ type: 'removeNode', node: C })).toMatchObject({
      reason: 'CONFIG_CHANGE_PENDING',
    });
    c.stabilize();
    expect(c.core('a').proposeConfigChange({ type: 'removeNode', node: C }).kind).toBe('accepted');
  });

  it('§4.1 a new leader makes no change before it has committed an entry of its term', () => {
    const c = new Cluster(['a', 'b', 'c'], { raft: opts });
    c.campaign('a');
    // Pre-vote and vote round trips, stopping as soon as a leads (its no-op not yet committed).
    for (let i = 0; i < 4 && c.core('a').status().role !== 'leader'; i++) c.deliver();
    expect(c.core('a').status().role).toBe('leader');
    expect(c.core('a').proposeConfigChange({ type: 'addLearner', node: D })).toMatchObject({
      reason: 'CONFIG_CHANGE_PENDING',
    });
  });

  it('§4.2.1 a learner is promoted only once it has caught up', () => {
    const c = new Cluster(['a', 'b', 'c'], { raft: opts });
    c.elect('a');
    for (let i = 0; i < 5; i++) c.propose('a', `v${i}`);
    c.stabilize();
    c.addNode('d', { voters: [], learners: [] });
    c.core('a').proposeConfigChange({ type: 'addLearner', node: D });
    c.processAll();
    c.drop((m) => m.to === 'd');
    c.deliver(); // b and c acknowledge: the learner entry commits, d still knows nothing
    c.deliver();
    expect(c.core('a').proposeConfigChange({ type: 'promoteLearner', node: D })).toMatchObject({
      reason: 'LEARNER_NOT_CAUGHT_UP',
    });
    c.tick('a');
    c.stabilize();
    expect(c.core('a').proposeConfigChange({ type: 'promoteLearner', node: D }).kind).toBe(
      'accepted',
    );
    c.stabilize();
    expect(c.core('d').status().config.voters).toEqual(['a', 'b', 'c', 'd']);
    // d now counts: with b and c down, a and d are not a majority of 4, but with c back they are.
    c.crash('b');
    c.propose('a', 'z');
    c.stabilize();
    expect(c.applied('d')).toContain('z');
  });

  it('§4.1 a removed follower no longer receives entries and the rest keeps committing', () => {
    const c = new Cluster(['a', 'b', 'c'], { raft: opts });
    c.elect('a');
    c.stabilize();
    c.core('a').proposeConfigChange({ type: 'removeNode', node: C });
    c.processAll();
    c.stabilize();
    expect(c.core('a').status().config.voters).toEqual(['a', 'b']);
    c.propose('a', 'after');
    c.stabilize();
    expect(c.applied('b')).toEqual(['after']);
    expect(c.applied('c')).toEqual([]);
    // A removed node never campaigns once it knows it was removed.
    for (let i = 0; i < 50; i++) c.tick('c');
    expect(c.core('c').status().role).toBe('follower');
  });

  it('§4.2.2 removing the leader: it steps down after the change commits and a remaining node takes over', () => {
    const c = new Cluster(['a', 'b', 'c'], { raft: opts });
    c.elect('a');
    c.stabilize();
    expect(c.core('a').proposeConfigChange({ type: 'removeNode', node: A }).kind).toBe('accepted');
    c.processAll();
    c.stabilize();
    expect(c.core('a').status().role).toBe('follower');
    const leader = c.leader();
    expect(leader === 'b' || leader === 'c').toBe(true);
    c.propose(leader as string, 'after');
    c.stabilize();
    expect(c.applied('b')).toEqual(['after']);
    expect(c.applied('c')).toEqual(['after']);
  });

  it('§4.1 a follower falls back to the previous configuration when the config entry is overwritten', () => {
    const core = soloCore(logState([1], 2));
    const entry = {
      index: 2 as LogIndex,
      term: 2 as Term,
      kind: 'config' as const,
      data: encodeConfig({ voters: [A, B], learners: [] }),
    };
    stepReady(core, {
      type: 'AppendEntries',
      from: B,
      to: A,
      term: 2 as Term,
      prevLogIndex: 1 as LogIndex,
      prevLogTerm: 1 as Term,
      entries: [entry],
      leaderCommit: 1 as LogIndex,
    });
    expect(core.status().config.voters).toEqual(['a', 'b']);
    stepReady(core, {
      type: 'AppendEntries',
      from: C,
      to: A,
      term: 3 as Term,
      prevLogIndex: 1 as LogIndex,
      prevLogTerm: 1 as Term,
      entries: [{ index: 2 as LogIndex, term: 3 as Term, kind: 'noop', data: new Uint8Array() }],
      leaderCommit: 1 as LogIndex,
    });
    expect(core.status().config.voters).toEqual(['a', 'b', 'c']);
  });

  it('nonsensical changes are refused with INVALID_CHANGE', () => {
    const c = new Cluster(['a']);
    c.campaign('a');
    c.stabilize();
    const a = c.core('a');
    expect(a.proposeConfigChange({ type: 'addLearner', node: A })).toMatchObject({
      reason: 'INVALID_CHANGE',
    });
    expect(a.proposeConfigChange({ type: 'promoteLearner', node: D })).toMatchObject({
      reason: 'INVALID_CHANGE',
    });
    expect(a.proposeConfigChange({ type: 'removeNode', node: D })).toMatchObject({
      reason: 'INVALID_CHANGE',
    });
    expect(a.proposeConfigChange({ type: 'removeNode', node: A })).toMatchObject({
      reason: 'INVALID_CHANGE',
    });
  });
});
