/**
 * Answers from a peer that claim what the leader never sent (an index beyond
 * its log, a heartbeat round it never started) are refused with
 * PROTOCOL_ERROR and change nothing: a faulty peer cannot corrupt the
 * leader's view of its followers.
 */
import { describe, expect, it } from 'vitest';
import type { LogIndex, Term } from '../../../src/lib/ids.js';
import { isCohortError } from '../../../src/lib/errors.js';
import type { RaftMessage } from '../../../src/raft/core/messages.js';
import type { RaftCore } from '../../../src/raft/core/raft-core.js';
import { A, B, drain, logState, soloCore } from './harness.js';

const plain = { preVote: false, checkQuorum: false } as const;

/** Node a of {a, b, c} as leader of term 1 (b voted for it), its no-op sent. */
function leaderOfThree(): RaftCore {
  const core = soloCore(logState([]), plain);
  core.campaign();
  core.step({ type: 'RequestVoteResponse', from: B, to: A, term: 1 as Term, granted: true });
  drain(core);
  expect(core.status()).toMatchObject({ role: 'leader', term: 1, lastIndex: 1, commit: 0 });
  return core;
}

describe("PROTOCOL_ERROR: a peer's answer about what the leader never sent changes nothing", () => {
  const cases: Array<[string, RaftMessage]> = [
    [
      'an acknowledgement beyond the last index',
      {
        type: 'AppendEntriesResponse',
        from: B,
        to: A,
        term: 1 as Term,
        success: true,
        matchIndex: 99 as LogIndex,
        rejectedIndex: 0 as LogIndex,
        conflictIndex: 0 as LogIndex,
        conflictTerm: 0 as Term,
      },
    ],
    [
      'a rejection of an append beyond the last index',
      {
        type: 'AppendEntriesResponse',
        from: B,
        to: A,
        term: 1 as Term,
        success: false,
        matchIndex: 0 as LogIndex,
        rejectedIndex: 50 as LogIndex,
        conflictIndex: 60 as LogIndex,
        conflictTerm: 0 as Term,
      },
    ],
    [
      'an installed snapshot beyond the last index',
      {
        type: 'InstallSnapshotResponse',
        from: B,
        to: A,
        term: 1 as Term,
        snapshotIndex: 40 as LogIndex,
        nextOffset: 0,
        done: true,
      },
    ],
    [
      'an acknowledgement of a heartbeat round never sent',
      { type: 'HeartbeatResponse', from: B, to: A, term: 1 as Term, seq: 1000 },
    ],
  ];
  for (const [what, m] of cases) {
    it(what, () => {
      const core = leaderOfThree();
      const before = core.status();
      let err: unknown;
      try {
        core.step(m);
      } catch (e) {
        err = e;
      }
      expect(isCohortError(err) ? err.code : err).toBe('PROTOCOL_ERROR');
      expect(core.status()).toEqual(before);
      expect(core.hasReady()).toBe(false);
      // The leader carries on: a true acknowledgement still commits the no-op.
      core.step({ ...(cases[0] as [string, RaftMessage])[1], matchIndex: 1 } as RaftMessage);
      expect(core.status().commit).toBe(1);
    });
  }
});
