/**
 * The core's own invariant assertions (src/raft/core/invariants.ts and the
 * pre- and postconditions of its transitions) fire on a corrupted state. The
 * corruption comes from outside, without any test hook in the core: through
 * an object the core shares with its caller (an entry handed out in a Ready,
 * the bootstrap configuration, the Ready itself, the injected Random), or by
 * writing a private field through a cast, as a memory corruption or a stray
 * write in a shell would. (What a peer sends cannot trip them: see
 * protocol-error.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../../src/lib/assert.js';
import type { LogIndex, NodeId, Term } from '../../../src/lib/ids.js';
import { seededRandom } from '../../../src/lib/random.js';
import type { Random } from '../../../src/lib/random.js';
import type { RaftMessage } from '../../../src/raft/core/messages.js';
import { Progress } from '../../../src/raft/core/progress.js';
import { RaftCore } from '../../../src/raft/core/raft-core.js';
import type { RaftState } from '../../../src/raft/core/state.js';
import type { Entry } from '../../../src/raft/core/types.js';
import { A, B, C, cmd, drain, logState, soloCore } from './harness.js';

const plain = { preVote: false, checkQuorum: false } as const;

/** The core's private state, reached through a cast: the test plays a stray write. */
function internals(core: RaftCore): RaftState {
  return (core as unknown as { state: RaftState }).state;
}

/** A one-voter leader of term 1 whose no-op (index 1) is committed and applied. */
function soloLeader(voters: NodeId[] = [A]): RaftCore {
  const core = soloCore(logState([]), plain, { voters, learners: [] });
  core.campaign();
  drain(core);
  expect(core.status()).toMatchObject({ role: 'leader', term: 1, commit: 1, applied: 1 });
  return core;
}

function heartbeat(term: number): RaftMessage {
  return { type: 'Heartbeat', from: B, to: A, term: term as Term, commit: 0 as LogIndex, seq: 1 };
}

describe('boundary assertions: Raft Figure 2 state never moves backwards', () => {
  it('a term that went back trips "term went back" at the next input', () => {
    const core = soloCore(logState([]), plain);
    core.step(heartbeat(5));
    drain(core);
    internals(core).term = 3 as Term;
    expect(() => core.tick()).toThrow(AssertionError);
    expect(() => core.tick()).toThrow(/term went back from 5 to 3/);
  });

  it('a second vote in the same term trips "one vote per term"', () => {
    const core = soloCore(logState([]), plain);
    core.step({
      type: 'RequestVote',
      from: B,
      to: A,
      term: 2 as Term,
      lastLogIndex: 0 as LogIndex,
      lastLogTerm: 0 as Term,
      transfer: false,
    });
    expect(core.status()).toMatchObject({ term: 2, vote: B });
    internals(core).vote = C;
    expect(() => core.tick()).toThrow(/vote in term 2 changed from b to c/);
  });

  it('a commit index that went back trips "commit went back"', () => {
    const core = soloLeader();
    core.propose(cmd('x'));
    drain(core);
    expect(core.status().commit).toBe(2);
    internals(core).log.commit = 1 as LogIndex;
    expect(() => core.tick()).toThrow(/commit went back from 2 to 1/);
  });
});

describe("boundary assertions: a leader's log is append-only within its term (Raft Figure 3)", () => {
  it("a shell rewriting the term of an entry it was handed to persist trips the leader's last-entry check", () => {
    const core = soloCore(logState([]), plain, { voters: [A], learners: [] });
    core.campaign();
    const rd = core.ready();
    const noop = rd.entries[0] as Entry;
    expect(noop).toMatchObject({ index: 1, term: 1, kind: 'noop' });
    core.advance(rd);
    (noop as { term: Term }).term = 7 as Term; // the Ready's entry is the log's own object
    expect(() => core.tick()).toThrow(/leader of term 1 ends its log with term 7/);
  });

  it('an entry the leader held at the last boundary that changed trips "lost or rewrote"', () => {
    const core = soloLeader();
    core.propose(cmd('x'));
    const rd = core.ready();
    const x = rd.entries[0] as Entry;
    expect(x).toMatchObject({ index: 2, term: 1 });
    core.advance(rd);
    (x as { term: Term }).term = 0 as Term;
    expect(() => core.propose(cmd('y'))).toThrow(/leader of term 1 lost or rewrote its entry 2/);
  });
});

describe('boundary assertions: the Ready contract', () => {
  it('advance() with a Ready whose committed entries were doctored trips its precondition', () => {
    const core = soloLeader();
    core.propose(cmd('x'));
    drain(core); // persisted: commit 2
    core.propose(cmd('y'));
    const rd = core.ready();
    expect(rd.committedEntries).toEqual([]);
    (rd.committedEntries as Entry[]).push({
      index: 9 as LogIndex,
      term: 1 as Term,
      kind: 'normal',
      data: cmd('forged'),
    });
    expect(() => core.advance(rd)).toThrow(/committed entries end at 9 but -1 was handed out/);
  });
});

describe('transition pre- and postconditions', () => {
  it('an injected Random that draws an election timeout out of range is refused at once', () => {
    const base = seededRandom(7);
    const broken: Random = new Proxy(base, {
      get: (target, key): unknown =>
        key === 'intBetween' ? () => 99 : Reflect.get(target, key, target),
    });
    expect(
      () =>
        new RaftCore({ id: A, random: broken, electionTicks: 10 }, logState([]), {
          voters: [A, B, C],
          learners: [],
        }),
    ).toThrow(/random election timeout 99 outside \[11, 20\]/);
  });

  it('a configuration corrupted in place is caught by the next change (well-formed postcondition)', () => {
    const voters = [A];
    const core = soloLeader(voters);
    voters.push(A); // the bootstrap configuration is the log's own object
    expect(() => core.proposeConfigChange({ type: 'addLearner', node: B })).toThrow(
      /proposed config: voter "a" empty, repeated or also a learner/,
    );
  });

  it('Progress asserts match < next after every transition', () => {
    const pr = new Progress(5);
    pr.match = 9 as LogIndex; // a stray write
    expect(() => pr.appendSent(undefined)).toThrow(/next 5 not above match 9/);
    const ok = new Progress(5);
    ok.becomeReplicate();
    expect(() => ok.appendSent(0)).toThrow(/append up to 0 sent behind next 1/);
  });
});
