/**
 * Log replication rules: Raft §5.3 (consistency check, repair, fast
 * backtracking), Figure 7 (follower log shapes), §5.4.2 and Figure 8 (commit
 * only current-term entries by counting), §8 (no-op at term start), and the
 * Ready contract's "apply only what is committed and durable".
 */
import { describe, expect, it } from 'vitest';
import type { LogIndex, NodeId, Term } from '../../../src/lib/ids.js';
import type {
  AppendEntries,
  InstallSnapshot,
  RaftMessage,
} from '../../../src/raft/core/messages.js';
import { seededRandom } from '../../../src/lib/random.js';
import { RaftCore } from '../../../src/raft/core/raft-core.js';
import type { RaftBugs } from '../../../src/raft/core/raft-core.js';
import {
  A,
  B,
  C,
  Cluster,
  cmd,
  entriesWithTerms,
  logState,
  soloCore,
  stepReady,
} from './harness.js';

const plain = { preVote: false, checkQuorum: false } as const;

function append(
  prevLogIndex: number,
  prevLogTerm: number,
  terms: readonly number[],
  term: number,
  leaderCommit = 0,
): AppendEntries {
  return {
    type: 'AppendEntries',
    from: B,
    to: A,
    term: term as Term,
    prevLogIndex: prevLogIndex as LogIndex,
    prevLogTerm: prevLogTerm as Term,
    entries: entriesWithTerms(terms, prevLogIndex + 1),
    leaderCommit: leaderCommit as LogIndex,
  };
}

function response(msgs: readonly RaftMessage[] | undefined): RaftMessage | undefined {
  return msgs?.find((m) => m.type === 'AppendEntriesResponse');
}

describe('Raft §5.3: log consistency check', () => {
  it('§5.3 a follower rejects an append whose previous entry term does not match, with fast-backtracking hints', () => {
    const core = soloCore(logState([1, 1, 2, 2, 2], 3), plain);
    const rd = stepReady(core, append(4, 3, [3], 3));
    expect(response(rd?.messages)).toMatchObject({
      success: false,
      rejectedIndex: 4,
      conflictTerm: 2,
      conflictIndex: 3, // first index of term 2 in the follower's log
    });
    expect(core.status().lastIndex).toBe(5);
  });

  it('§5.3 a follower missing the previous entry says where its log ends', () => {
    const core = soloCore(logState([1, 1], 1), plain);
    const rd = stepReady(core, append(6, 3, [3], 3));
    expect(response(rd?.messages)).toMatchObject({
      success: false,
      conflictTerm: 0,
      conflictIndex: 3,
    });
  });

  it('§5.3 a follower deletes a conflicting suffix and appends the leader entries', () => {
    const core = soloCore(logState([1, 1, 2, 2], 3), plain);
    const rd = stepReady(core, append(2, 1, [3, 3], 3, 3));
    expect(response(rd?.messages)).toMatchObject({ success: true, matchIndex: 4 });
    expect(core.entries().map((e) => e.term)).toEqual([1, 1, 3, 3]);
    // The repaired suffix is handed out to persist, overwriting from index 3.
    expect(rd?.entries.map((e) => e.index)).toEqual([3, 4]);
    expect(core.status().commit).toBe(3);
  });

  it('§5.3 a stale, shorter append does not truncate matching entries after it', () => {
    const core = soloCore(logState([1, 1, 1], 1), plain);
    const rd = stepReady(core, append(0, 0, [1], 1));
    expect(response(rd?.messages)).toMatchObject({ success: true, matchIndex: 1 });
    expect(core.status().lastIndex).toBe(3);
  });

  it('§5.3 receiver rule 5: commit is capped by the last new entry', () => {
    const core = soloCore(logState([], 1), plain);
    stepReady(core, append(0, 0, [1, 1], 1, 10));
    expect(core.status().commit).toBe(2);
  });
});

describe('Raft Figure 7: follower log shapes converge to the leader log', () => {
  // The leader of term 8 holds terms 1,1,1,4,4,5,5,6,6,6 at indexes 1..10.
  const leaderLog = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
  const shapes: Record<string, number[]> = {
    '(a) missing one entry': [1, 1, 1, 4, 4, 5, 5, 6, 6],
    '(b) missing many entries': [1, 1, 1, 4],
    '(c) one extra uncommitted entry': [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
    '(d) extra entries of a later term': [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
    '(e) missing and extra entries': [1, 1, 1, 4, 4, 4, 4],
    '(f) extra entries of old terms': [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
  };
  for (const [name, followerLog] of Object.entries(shapes)) {
    it(`Figure 7 ${name}: the follower ends with exactly the leader log`, () => {
      const c = new Cluster(['l', 'h', 'f'], {
        raft: plain,
        initial: {
          l: logState(leaderLog, 7),
          h: logState(leaderLog, 7),
          f: logState(followerLog, 7),
        },
      });
      c.elect('l');
      expect(c.core('l').status().term).toBe(8);
      c.propose('l', 'x');
      c.stabilize();
      const expected = [...leaderLog, 8, 8]; // + the no-op and 'x' of term 8
      expect(c.terms('l')).toEqual(expected);
      expect(c.terms('f')).toEqual(expected);
      expect(c.core('f').status().commit).toBe(12);
    });
  }

  it('Figure 7 (f): fast backtracking repairs the log in a few round trips, not one per entry', () => {
    const c = new Cluster(['l', 'h', 'f'], {
      raft: plain,
      initial: {
        l: logState(leaderLog, 7),
        h: logState(leaderLog, 7),
        f: logState([1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], 7),
      },
    });
    c.elect('l');
    let rejections = 0;
    for (let round = 0; round < 50 && c.network.length > 0; round++) {
      rejections += c
        .inFlight('AppendEntriesResponse')
        .filter((m) => m.from === 'f' && m.type === 'AppendEntriesResponse' && !m.success).length;
      c.deliver();
    }
    expect(c.terms('f')).toEqual([...leaderLog, 8]);
    expect(rejections).toBeLessThanOrEqual(3); // one per conflicting term, not one per entry
  });
});

describe('Raft §5.4.2 / Figure 8: committing entries from previous terms', () => {
  /**
   * Figure 8 (c): S1 leads term 4 and holds index 2 from term 2, which also
   * sits on S2 and (once replicated) S3: a majority. S5 holds index 2 from
   * term 3. Counting replicas would commit index 2, yet S5 can still be
   * elected (by S2, S3, S4) and overwrite it (Figure 8 (d)).
   */
  function figure8(bugs: RaftBugs = {}): Cluster {
    const c = new Cluster(['s1', 's2', 's3', 's4', 's5'], {
      raft: { ...plain, maxAppendEntries: 1, bugs },
      initial: {
        s1: logState([1, 2], 3),
        s2: logState([1, 2], 3),
        s3: logState([1], 3),
        s4: logState([1], 3),
        s5: logState([1, 3], 3),
      },
    });
    c.campaign('s1');
    c.deliver((m) => m.type === 'RequestVote' && m.to !== 's5');
    c.deliver((m) => m.type === 'RequestVoteResponse');
    expect(c.core('s1').status()).toMatchObject({ role: 'leader', term: 4 });
    // S1 replicates to S2 and S3 only, and index 3 (its term-4 no-op) never arrives.
    c.partition(['s1'], ['s4', 's5']);
    for (let round = 0; round < 10; round++) {
      c.network = c.network.map((m) =>
        m.type === 'AppendEntries' ? { ...m, entries: m.entries.filter((e) => e.index <= 2) } : m,
      );
      c.deliver();
    }
    return c;
  }

  it('§5.4.2 an old-term entry on a majority is not committed by counting replicas (Figure 8 c)', () => {
    const c = figure8();
    const s1 = c.core('s1').status();
    expect(s1.progress.get('s2' as NodeId)?.match).toBe(2);
    expect(s1.progress.get('s3' as NodeId)?.match).toBe(2);
    expect(s1.commit).toBe(0);
  });

  it('§5.4.2 with the test-only bug countOldTermEntriesForCommit the same scenario commits it (the check can fail)', () => {
    const c = figure8({ countOldTermEntriesForCommit: true });
    expect(c.core('s1').status().commit).toBe(2);
  });

  it('Figure 8 (d): S5 can still win and overwrite index 2 everywhere, which is why it was not committed', () => {
    const c = figure8();
    c.crash('s1');
    c.heal();
    c.drop();
    // S2, S3 and S4 voted for S1 in term 4, so S5 needs a second election (term 5).
    for (let i = 0; i < 3 && c.core('s5').status().role !== 'leader'; i++) {
      c.campaign('s5');
      c.stabilize();
    }
    expect(c.core('s5').status().role).toBe('leader');
    c.propose('s5', 'y');
    c.stabilize();
    for (const id of ['s2', 's3', 's4', 's5']) expect(c.terms(id).slice(0, 2)).toEqual([1, 3]);
  });

  it('§5.4.2 once an entry of the current term is on a majority, it and all before it commit (Figure 8 e)', () => {
    const c = figure8();
    c.heal();
    c.tick('s1'); // the heartbeat answers show S1 who is behind
    c.stabilize();
    expect(c.core('s1').status().commit).toBe(3);
    expect(c.terms('s5')).toEqual([1, 2, 4]);
  });
});

describe('Raft §8 and the Ready contract', () => {
  it('§8 a new leader appends a no-op of its term and commits it', () => {
    const c = new Cluster(['a', 'b', 'c'], { raft: plain });
    c.elect('a');
    c.stabilize();
    const entries = c.core('a').entries();
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ index: 1, term: 1, kind: 'noop' });
    expect(c.core('b').status().commit).toBe(1);
  });

  it('committed entries are handed out only after they were persisted (never in the Ready that persists them)', () => {
    const core = soloCore(logState([]), plain, { voters: [A], learners: [] });
    core.campaign();
    let rd = core.ready();
    expect(rd.entries.map((e) => e.kind)).toEqual(['noop']);
    expect(rd.committedEntries).toEqual([]);
    core.advance(rd);
    rd = core.ready();
    expect(rd.committedEntries.map((e) => e.kind)).toEqual(['noop']);
    core.advance(rd);
    expect(core.propose(cmd('x')).kind).toBe('accepted');
    rd = core.ready();
    expect(rd.entries).toHaveLength(1);
    expect(rd.committedEntries).toHaveLength(0);
    core.advance(rd);
    rd = core.ready();
    expect(rd.committedEntries).toHaveLength(1);
    expect(rd.hardState?.commit).toBe(2);
    core.advance(rd);
  });

  it('a follower refuses to propose and names the leader', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    expect(c.propose('b', 'x')).toEqual({
      kind: 'rejected',
      reason: 'NOT_LEADER',
      leaderHint: 'a',
    });
  });

  it('pipelining: at most maxInflightAppends unacknowledged appends per follower, batched by maxAppendEntries', () => {
    const c = new Cluster(['a', 'b', 'c'], {
      raft: { ...plain, maxInflightAppends: 2, maxAppendEntries: 3 },
    });
    c.elect('a');
    c.stabilize();
    for (let i = 0; i < 20; i++) c.core('a').propose(cmd(`v${i}`));
    c.processReady(c.node('a'));
    const toB = c.inFlight('AppendEntries').filter((m) => m.to === 'b') as AppendEntries[];
    expect(toB).toHaveLength(2);
    expect(toB.map((m) => m.entries.length)).toEqual([3, 3]);
    expect(c.core('a').status().progress.get(B)?.state).toBe('replicate');
    c.stabilize();
    expect(c.applied('b')).toHaveLength(20);
    expect(c.applied('c')).toEqual(c.applied('a'));
  });

  it('batching: maxAppendBytes caps one append (but always carries at least one entry)', () => {
    const c = new Cluster(['a', 'b', 'c'], { raft: { ...plain, maxAppendBytes: 300 } });
    c.elect('a');
    c.stabilize();
    c.crash('c');
    for (let i = 0; i < 6; i++) c.core('a').propose(new Uint8Array(100));
    c.core('a').propose(new Uint8Array(1000));
    c.processReady(c.node('a'));
    const sizes: number[] = [];
    for (let round = 0; round < 20 && c.network.length > 0; round++) {
      for (const m of c.inFlight('AppendEntries')) {
        if (m.type === 'AppendEntries' && m.to === 'b' && m.entries.length > 0)
          sizes.push(m.entries.length);
      }
      c.deliver();
    }
    expect(sizes).toEqual([2, 2, 2, 1]); // 124 bytes per entry with overhead; the big one alone
    expect(c.core('b').status().lastIndex).toBe(8);
  });

  it('a restarted node whose state machine is durable resumes applying after options.applied', () => {
    const c = new Cluster(['a']);
    c.campaign('a');
    for (const v of ['x', 'y', 'z']) c.propose('a', v);
    c.stabilize();
    const disk = c.node('a').disk.load();
    const core = new RaftCore({ id: A, random: seededRandom(3), applied: 3 as LogIndex }, disk, {
      voters: [A],
      learners: [],
    });
    const rd = core.ready();
    expect(rd.committedEntries.map((e) => e.index)).toEqual([4]);
    core.advance(rd);
    const fresh = new RaftCore({ id: A, random: seededRandom(3) }, disk, {
      voters: [A],
      learners: [],
    });
    expect(fresh.ready().committedEntries.map((e) => e.index)).toEqual([1, 2, 3, 4]);
  });

  it('a lost append is recovered through the heartbeat answer', () => {
    const c = new Cluster(['a', 'b', 'c'], { raft: plain });
    c.elect('a');
    c.stabilize();
    c.crash('c');
    c.propose('a', 'x');
    c.drop((m) => m.type === 'AppendEntries' && m.to === 'b');
    c.stabilize();
    expect(c.applied('b')).toEqual([]);
    c.tick('a');
    c.stabilize();
    expect(c.applied('b')).toEqual(['x']);
  });

  it('a proposal too large for one entry is refused with INVALID_ARGUMENT and changes nothing', () => {
    const c = new Cluster(['a']);
    c.campaign('a');
    c.stabilize();
    const before = c.core('a').status().lastIndex;
    expect(() => c.core('a').propose(new Uint8Array(5 * 1024 * 1024))).toThrow(/at most/);
    expect(c.core('a').status().lastIndex).toBe(before);
  });

  it('the leader answers OVERLOADED past maxUncommittedEntries', () => {
    const c = new Cluster(['a', 'b', 'c'], { raft: { maxUncommittedEntries: 5 } });
    c.elect('a');
    c.stabilize();
    const results = Array.from({ length: 8 }, (_, i) => c.core('a').propose(cmd(`v${i}`)).kind);
    expect(results.filter((r) => r === 'accepted')).toHaveLength(5);
    expect(c.core('a').propose(cmd('z'))).toMatchObject({ reason: 'OVERLOADED' });
  });
});

describe('Raft Figure 2: a follower acknowledges only what it will have persisted', () => {
  /** Successful append acks in `rd` that claim more than the log `rd` leaves on disk (lastIndex). */
  function falseAcks(msgs: readonly RaftMessage[], durableLast: number): RaftMessage[] {
    return msgs.filter(
      (m) => m.type === 'AppendEntriesResponse' && m.success && m.matchIndex > durableLast,
    );
  }

  // Simulator seed 100892: a follower queued an ack for index 3 (term 2) while its shell was still
  // persisting an earlier Ready; a term-3 append then replaced index 2.. before the next ready(),
  // so that Ready persisted [2@3] yet still carried the ack of 3 to the term-2 leader.
  it('an ack still queued is dropped when a newer leader truncates the entries it acknowledged', () => {
    const core = soloCore(logState([1, 1], 1), plain);
    core.step(append(2, 1, [2], 2)); // from B, term 2: index 3 @2, ack matchIndex 3 queued
    core.step({ ...append(1, 1, [3], 3), from: C }); // from C, term 3: index 2 @3 replaces 2..3
    const rd = core.ready();
    expect(rd.entries.map((e) => [e.index, e.term])).toEqual([[2, 3]]);
    expect(falseAcks(rd.messages, 2)).toEqual([]);
    // The term-3 leader still gets its (true) acknowledgement.
    expect(response(rd.messages)).toMatchObject({ to: C, term: 3, success: true, matchIndex: 2 });
    core.advance(rd);
  });

  it('an ack still queued is dropped when a snapshot replaces the whole log', () => {
    const core = soloCore(logState([1, 1], 1), plain);
    core.step(append(2, 1, [2], 2)); // ack matchIndex 3 queued
    const data = new TextEncoder().encode('[]');
    const snap: InstallSnapshot = {
      type: 'InstallSnapshot',
      from: C,
      to: A,
      term: 3 as Term,
      meta: { index: 2 as LogIndex, term: 3 as Term, config: { voters: [A, B, C], learners: [] } },
      offset: 0,
      data,
      done: true,
      totalBytes: data.length,
    };
    core.step(snap);
    const rd = core.ready();
    expect(rd.snapshot?.snapshot.meta.index).toBe(2);
    expect(rd.entries).toEqual([]);
    expect(falseAcks(rd.messages, 2)).toEqual([]);
    core.advance(rd);
  });

  it('acks of entries that survive a truncation are kept', () => {
    const core = soloCore(logState([1, 1, 1], 1), plain);
    core.step(append(1, 1, [1], 1)); // ack matchIndex 2, still true after the truncation below
    core.step({ ...append(2, 1, [3], 3), from: C }); // index 3 @3 replaces 3 @1
    const rd = core.ready();
    const acks = rd.messages.filter((m) => m.type === 'AppendEntriesResponse' && m.success);
    expect(acks.map((m) => (m.type === 'AppendEntriesResponse' ? m.matchIndex : -1))).toEqual([
      2, 3,
    ]);
    core.advance(rd);
  });
});
