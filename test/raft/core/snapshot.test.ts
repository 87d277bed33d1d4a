/**
 * Log compaction and InstallSnapshot (Raft §7), sent in chunks.
 */
import { describe, expect, it } from 'vitest';
import type { LogIndex, Term } from '../../../src/lib/ids.js';
import type { InstallSnapshot } from '../../../src/raft/core/messages.js';
import { A, B, C, Cluster, logState, soloCore, stepReady } from './harness.js';

const opts = { snapshotChunkBytes: 16, preVote: false, checkQuorum: false } as const;

function filled(n: number): Cluster {
  const c = new Cluster(['a', 'b', 'c'], { raft: opts });
  c.elect('a');
  for (let i = 0; i < n; i++) c.propose('a', `v${i}`);
  c.stabilize();
  return c;
}

describe('Raft §7: log compaction', () => {
  it('§7 compact() drops the log prefix and hands the snapshot to persist (restore: false)', () => {
    const c = filled(10);
    const a = c.core('a');
    const applied = c.node('a').appliedIndex;
    expect(c.compact('a')).toBe(true);
    expect(a.status()).toMatchObject({ snapshotIndex: applied, firstIndex: applied + 1 });
    const rd = a.ready();
    expect(rd.snapshot?.restore).toBe(false);
    expect(rd.snapshot?.snapshot.meta).toMatchObject({ index: applied, term: 1 });
    expect(rd.snapshot?.snapshot.meta.config.voters).toEqual(['a', 'b', 'c']);
    a.advance(rd);
    // Compacting again at the same index is a no-op.
    expect(c.compact('a')).toBe(false);
  });

  it('§7 compacting beyond what was applied is a bug (assertion)', () => {
    const c = filled(3);
    expect(() => c.core('a').compact(100 as LogIndex, new Uint8Array())).toThrow(/beyond applied/);
  });

  it('§7 a restarted node recovers from its snapshot plus the entries after it', () => {
    const c = filled(10);
    c.compact('b');
    c.processAll();
    c.propose('a', 'after');
    c.stabilize();
    c.crash('b');
    c.restart('b');
    c.tick('a');
    c.stabilize();
    expect(c.applied('b')).toEqual(c.applied('a'));
    expect(c.node('b').disk.snapshot).not.toBeNull();
  });
});

describe('Raft §7: InstallSnapshot', () => {
  it('§7 a follower that lags behind the compacted log receives the snapshot in chunks and catches up', () => {
    const c = filled(2);
    c.crash('c');
    for (let i = 0; i < 20; i++) c.propose('a', `w${i}`);
    c.stabilize();
    c.compact('a');
    c.processAll();
    c.restart('c');
    c.tick('a');
    let chunks = 0;
    for (let i = 0; i < 200 && c.network.length > 0; i++) {
      chunks += c.inFlight('InstallSnapshot').length;
      c.deliver();
    }
    expect(chunks).toBeGreaterThan(3); // the snapshot is far larger than 16 bytes
    c.propose('a', 'tail');
    c.stabilize();
    expect(c.applied('c')).toEqual(c.applied('a'));
    expect(c.node('c').disk.snapshot?.meta.index).toBe(c.core('a').status().snapshotIndex);
  });

  it('§7 a chunked transfer keeps its snapshot while the leader compacts to newer ones, so a lagging follower catches up', () => {
    // Found by the simulator (seed 1, snapshotEvery 1, 8-byte chunks): the leader restarted the
    // transfer from offset 0 on every compaction, and a follower it lapped never finished one.
    const c = filled(2);
    c.crash('c');
    for (let i = 0; i < 20; i++) c.propose('a', `w${i}`);
    c.stabilize();
    c.compact('a');
    c.processAll();
    const first = c.core('a').status().snapshotIndex;
    c.restart('c');
    c.tick('a');
    // Each round: deliver what is in flight, then the leader takes a new entry and compacts to
    // everything it has applied, i.e. far more often than one transfer of ~60 chunks takes.
    let compactions = 0;
    let rounds = 0;
    for (; rounds < 400 && c.node('c').disk.snapshot === null; rounds++) {
      c.deliver();
      c.processAll();
      c.propose('a', `x${rounds}`);
      if (c.compact('a')) compactions++;
      c.processAll();
    }
    expect(compactions).toBeGreaterThan(10);
    // The transfer finished: the snapshot it started with, not one restarted at every compaction.
    expect(c.node('c').disk.snapshot?.meta.index).toBe(first);
    expect(c.core('a').status().snapshotIndex).toBeGreaterThan(first);
    // Proposals stop: the follower gets the newer snapshot (the log no longer reaches back) and
    // the tail, and holds what the leader holds.
    for (let i = 0; i < 5; i++) {
      c.tick('a');
      c.stabilize();
    }
    expect(c.applied('c')).toEqual(c.applied('a'));
    expect(c.core('a').status().progress.get(C)?.state).not.toBe('snapshot');
  });

  it('§7 a lost chunk is sent again after a heartbeat', () => {
    const c = filled(2);
    c.crash('c');
    for (let i = 0; i < 10; i++) c.propose('a', `w${i}`);
    c.stabilize();
    c.compact('a');
    c.processAll();
    c.restart('c');
    c.tick('a');
    c.stabilize();
    expect(c.core('a').status().progress.get(C)?.state).not.toBe('snapshot');
    // Now again, dropping the second chunk once.
    c.crash('b');
    for (let i = 0; i < 10; i++) c.propose('a', `x${i}`);
    c.crash('c');
    c.restart('b');
    c.tick('a');
    c.stabilize();
    c.compact('a');
    c.processAll();
    c.restart('c');
    c.tick('a');
    let dropped = false;
    for (let i = 0; i < 200 && c.network.length > 0; i++) {
      if (!dropped) {
        const chunk = c
          .inFlight('InstallSnapshot')
          .find((m) => m.type === 'InstallSnapshot' && m.offset > 0);
        if (chunk !== undefined) {
          c.drop((m) => m === chunk);
          dropped = true;
        }
      }
      c.deliver();
    }
    expect(dropped).toBe(true);
    for (let i = 0; i < 10; i++) {
      c.tick('a');
      c.stabilize();
    }
    expect(c.applied('c')).toEqual(c.applied('a'));
  });

  function chunk(index: number, term: number, data: Uint8Array): InstallSnapshot {
    return {
      type: 'InstallSnapshot',
      from: B,
      to: A,
      term: 5 as Term,
      meta: {
        index: index as LogIndex,
        term: term as Term,
        config: { voters: [A, B, C], learners: [] },
      },
      offset: 0,
      data,
      done: true,
      totalBytes: data.length,
    };
  }

  it('§7 receiver rule 6: entries after the snapshot are kept when the log holds its last entry', () => {
    const core = soloCore(logState([1, 1, 1, 1, 1], 5));
    const rd = stepReady(core, chunk(3, 1, new TextEncoder().encode('[]')));
    expect(rd?.snapshot?.restore).toBe(true);
    expect(core.status()).toMatchObject({ snapshotIndex: 3, lastIndex: 5, commit: 3 });
    expect(rd?.messages[0]).toMatchObject({
      type: 'InstallSnapshotResponse',
      done: true,
      snapshotIndex: 3,
    });
  });

  it('§7 receiver rule 7: the whole log is discarded when it conflicts with the snapshot', () => {
    const core = soloCore(logState([1, 1, 1, 1, 1], 5));
    stepReady(core, chunk(3, 2, new TextEncoder().encode('[]')));
    expect(core.status()).toMatchObject({ snapshotIndex: 3, lastIndex: 3 });
  });

  it('§7 a snapshot the follower already covers by its commit index is acknowledged and ignored', () => {
    const core = soloCore(logState([1, 1, 1], 5));
    stepReady(core, {
      type: 'AppendEntries',
      from: B,
      to: A,
      term: 5 as Term,
      prevLogIndex: 3 as LogIndex,
      prevLogTerm: 1 as Term,
      entries: [],
      leaderCommit: 3 as LogIndex,
    });
    const rd = stepReady(core, chunk(2, 1, new Uint8Array([1])));
    expect(rd?.snapshot).toBeUndefined();
    expect(rd?.messages[0]).toMatchObject({ type: 'InstallSnapshotResponse', done: true });
    expect(core.status().snapshotIndex).toBe(0);
  });

  it('§7 a chunk that does not continue the transfer asks the leader to resend from the expected offset', () => {
    const core = soloCore(logState([], 5));
    const first: InstallSnapshot = {
      ...chunk(4, 2, new Uint8Array(4)),
      done: false,
      totalBytes: 8,
    };
    stepReady(core, first);
    const rd = stepReady(core, { ...first, offset: 6, data: new Uint8Array(2), done: true });
    expect(rd?.messages[0]).toMatchObject({
      type: 'InstallSnapshotResponse',
      nextOffset: 4,
      done: false,
    });
    const last = stepReady(core, { ...first, offset: 4, data: new Uint8Array(4), done: true });
    expect(last?.snapshot?.snapshot.data).toHaveLength(8);
  });
});
