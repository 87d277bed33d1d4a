import { describe, expect, it } from 'vitest';
import type { LogIndex, NodeId, Term } from '../../../src/lib/ids.js';
import { nodeId } from '../../../src/lib/ids.js';
import type { RaftMessage } from '../../../src/raft/core/messages.js';
import type { RaftCore, RaftRole } from '../../../src/raft/core/raft-core.js';
import type { Entry } from '../../../src/raft/core/types.js';
import { CheckFailure } from '../../../src/sim/scenario.js';
import { RaftDisk } from '../../../src/sim/raft/disk.js';
import { RaftInvariants } from '../../../src/sim/raft/invariants.js';

const n1 = nodeId('n1');
const n2 = nodeId('n2');
const n3 = nodeId('n3');

function entry(index: number, term: number, text = `${index}/${term}`): Entry {
  return {
    index: index as LogIndex,
    term: term as Term,
    kind: 'normal',
    data: new TextEncoder().encode(text),
  };
}

/** A stand-in for RaftCore exposing what the invariants read. */
function fakeCore(
  id: NodeId,
  o: { role?: RaftRole; term: number; commit: number; log: Entry[]; snapshotIndex?: number },
): RaftCore {
  const snap = o.snapshotIndex ?? 0;
  const last = o.log.length === 0 ? snap : (o.log[o.log.length - 1] as Entry).index;
  return {
    status: () => ({
      id,
      role: o.role ?? 'follower',
      term: o.term,
      commit: o.commit,
      firstIndex: snap + 1,
      lastIndex: last,
      snapshotIndex: snap,
    }),
    entries: (lo: number, hi: number) => o.log.filter((e) => e.index >= lo && e.index <= hi),
    termAt: (i: number) => (i === 0 ? 0 : o.log.find((e) => e.index === i)?.term),
  } as unknown as RaftCore;
}

function violation(f: () => void): string {
  try {
    f();
  } catch (err) {
    if (err instanceof CheckFailure) return err.message;
    throw err;
  }
  return '';
}

describe('Raft invariants (each one can fail)', () => {
  it('election safety: two leaders in one term (Raft §5.2)', () => {
    const inv = new RaftInvariants();
    inv.observeNode(n1, fakeCore(n1, { role: 'leader', term: 3, commit: 0, log: [] }));
    inv.observeNode(n1, fakeCore(n1, { role: 'leader', term: 3, commit: 0, log: [] }));
    inv.observeNode(n2, fakeCore(n2, { role: 'leader', term: 4, commit: 0, log: [] }));
    expect(
      violation(() =>
        inv.observeNode(n3, fakeCore(n3, { role: 'leader', term: 3, commit: 0, log: [] })),
      ),
    ).toMatch(/two leaders in term 3: n1 and n3/);
  });

  it('commit index never decreases while a node runs', () => {
    const inv = new RaftInvariants();
    const log = [entry(1, 1), entry(2, 1)];
    inv.observeNode(n1, fakeCore(n1, { term: 1, commit: 2, log }));
    expect(violation(() => inv.observeNode(n1, fakeCore(n1, { term: 1, commit: 1, log })))).toMatch(
      /went back from 2 to 1/,
    );
  });

  it('commit safety: one index committed with two different entries', () => {
    const inv = new RaftInvariants();
    inv.observeNode(n1, fakeCore(n1, { term: 2, commit: 2, log: [entry(1, 1), entry(2, 1)] }));
    expect(
      violation(() =>
        inv.observeNode(n2, fakeCore(n2, { term: 2, commit: 2, log: [entry(1, 1), entry(2, 2)] })),
      ),
    ).toMatch(/index 2 committed with term 1 on n1 and term 2 on n2/);
  });

  it('leader completeness: a leader without an entry committed in an earlier term (Raft §5.4)', () => {
    const inv = new RaftInvariants();
    inv.observeNode(n1, fakeCore(n1, { term: 2, commit: 2, log: [entry(1, 1), entry(2, 2)] }));
    // A leader of term 2 itself need not hold it (it may be elected before the commit is seen)...
    inv.observeNode(n2, fakeCore(n2, { term: 2, commit: 1, log: [entry(1, 1)] }));
    inv.observeNode(n2, fakeCore(n2, { role: 'leader', term: 2, commit: 1, log: [entry(1, 1)] }));
    // ...but a leader of a later term must.
    inv.observeNode(n3, fakeCore(n3, { term: 2, commit: 1, log: [entry(1, 1), entry(2, 1)] }));
    expect(
      violation(() =>
        inv.observeNode(
          n3,
          fakeCore(n3, { role: 'leader', term: 3, commit: 1, log: [entry(1, 1), entry(2, 1)] }),
        ),
      ),
    ).toMatch(/leader completeness: n3 leads term 3 without entry 2 \(term 2\)/);
  });

  it('commit rule: a leader commits an older-term entry by counting replicas (Raft §5.4.2)', () => {
    const inv = new RaftInvariants();
    const log = [entry(1, 1), entry(2, 1), entry(3, 3)];
    inv.observeNode(n1, fakeCore(n1, { term: 3, commit: 1, log }));
    inv.observeNode(n1, fakeCore(n1, { role: 'leader', term: 3, commit: 1, log }));
    expect(
      violation(() =>
        inv.observeNode(n1, fakeCore(n1, { role: 'leader', term: 3, commit: 2, log })),
      ),
    ).toMatch(/leader n1 of term 3 committed index 2 of term 1/);
    // Committing its own entry (and so the older ones before it) is the rule.
    const ok = new RaftInvariants();
    ok.observeNode(n1, fakeCore(n1, { term: 3, commit: 1, log }));
    ok.observeNode(n1, fakeCore(n1, { role: 'leader', term: 3, commit: 1, log }));
    ok.observeNode(n1, fakeCore(n1, { role: 'leader', term: 3, commit: 3, log }));
  });

  it('log matching: same index and term, different predecessor term (Raft §5.3)', () => {
    const inv = new RaftInvariants();
    const a = fakeCore(n1, { term: 3, commit: 0, log: [entry(1, 1), entry(2, 3, 'x')] });
    inv.onEntries(n1, a, [entry(2, 3, 'x')]);
    const b = fakeCore(n2, { term: 3, commit: 0, log: [entry(1, 2), entry(2, 3, 'x')] });
    expect(violation(() => inv.onEntries(n2, b, [entry(2, 3, 'x')]))).toMatch(
      /entry 2 of term 3 follows term 1 on n1 but term 2 on n2/,
    );
    const c = fakeCore(n3, { term: 3, commit: 0, log: [entry(1, 1), entry(2, 3, 'y')] });
    expect(violation(() => inv.onEntries(n3, c, [entry(2, 3, 'y')]))).toMatch(
      /entry 2 of term 3 differs between n1 and n3/,
    );
  });

  it('state machine safety: replicas whose applied digests differ at an index (Raft §5.4.3)', () => {
    const inv = new RaftInvariants();
    inv.onApply(n1, entry(1, 1), 111);
    inv.onApply(n2, entry(1, 1), 111);
    expect(violation(() => inv.onApply(n3, entry(1, 1), 222))).toMatch(
      /replicas differ after index 1/,
    );
  });

  it('one vote per node per term (Raft Figure 2)', () => {
    const inv = new RaftInvariants({ durability: false });
    const disk = new RaftDisk();
    const grant = (to: NodeId): RaftMessage => ({
      type: 'RequestVoteResponse',
      from: n1,
      to,
      term: 5 as Term,
      granted: true,
    });
    inv.onSend(n1, grant(n2), disk);
    inv.onSend(n1, grant(n2), disk); // a resent grant is fine
    expect(violation(() => inv.onSend(n1, grant(n3), disk))).toMatch(
      /n1 voted for both n2 and n3 in term 5/,
    );
  });

  it('persist before send: a vote or an acknowledgement not yet durable', () => {
    const inv = new RaftInvariants();
    const disk = new RaftDisk();
    const hs = { term: 5 as Term, vote: n2, commit: 0 as LogIndex };
    disk.write({ hardState: hs, entries: [entry(1, 5)] });
    const grant: RaftMessage = {
      type: 'RequestVoteResponse',
      from: n1,
      to: n2,
      term: 5 as Term,
      granted: true,
    };
    const ack: RaftMessage = {
      type: 'AppendEntriesResponse',
      from: n1,
      to: n2,
      term: 5 as Term,
      success: true,
      matchIndex: 1 as LogIndex,
      rejectedIndex: 0 as LogIndex,
      conflictIndex: 0 as LogIndex,
      conflictTerm: 0 as Term,
    };
    expect(violation(() => inv.onSend(n1, grant, disk))).toMatch(/persist before send/);
    expect(violation(() => inv.onSend(n1, ack, disk))).toMatch(/persist before send/);
    disk.sync();
    inv.onSend(n1, grant, disk);
    inv.onSend(n1, ack, disk);
  });

  it('apply only what is durable locally (the Ready contract)', () => {
    const inv = new RaftInvariants();
    const disk = new RaftDisk();
    disk.write({ entries: [entry(1, 1)] });
    expect(violation(() => inv.onApply(n1, entry(1, 1), 1, disk))).toMatch(
      /applies entry 1 of term 1 before it is durable/,
    );
    disk.sync();
    inv.onApply(n1, entry(1, 1), 1, disk);
  });

  it('durable state: commit and term never go back; the vote of a term never changes', () => {
    const inv = new RaftInvariants();
    const disk = new RaftDisk((before, after) => inv.onDurable(n1, before, after));
    disk.write({ hardState: { term: 2 as Term, vote: n2, commit: 0 as LogIndex } });
    disk.sync();
    disk.write({ hardState: { term: 2 as Term, vote: n3, commit: 0 as LogIndex } });
    expect(violation(() => disk.sync())).toMatch(
      /durable vote of n1 in term 2 changed from n2 to n3/,
    );
    const inv2 = new RaftInvariants();
    const disk2 = new RaftDisk((before, after) => inv2.onDurable(n1, before, after));
    disk2.write({ hardState: { term: 3 as Term, vote: null, commit: 0 as LogIndex } });
    disk2.sync();
    disk2.write({ hardState: { term: 2 as Term, vote: null, commit: 0 as LogIndex } });
    expect(violation(() => disk2.sync())).toMatch(/durable term of n1 went back from 3 to 2/);
  });
});
