import { describe, expect, it } from 'vitest';
import type { RaftBugs } from '../../../src/raft/core/raft-core.js';
import { fuzz, readsServed } from './fuzz.js';

describe('randomized safety of the core (mini-simulation)', () => {
  it('keeps election safety, log matching, state machine safety and linearizable ReadIndex under faults (3 and 5 nodes)', () => {
    let committed = 0;
    for (let seed = 1; seed <= 60; seed++) {
      const r = fuzz(seed, seed % 2 === 0 ? 3 : 5, 1500);
      expect(r.violation).toBeNull();
      committed += r.committed;
    }
    expect(committed).toBeGreaterThan(500); // the workload really commits
    expect(readsServed.count).toBeGreaterThan(100); // and really reads
  });

  it('catches the test-only bug switches', () => {
    // countOldTermEntriesForCommit needs the precise Figure 8 interleaving, which random
    // faults rarely produce; replication.test.ts shows it deterministically.
    const bugs: RaftBugs[] = [
      { forgetToPersistVote: true },
      { skipElectionRestriction: true },
      { skipLogConsistencyCheck: true },
      { skipReadConfirmation: true },
    ];
    for (const b of bugs) {
      let found = false;
      for (let seed = 1; seed <= 300 && !found; seed++) {
        try {
          found = fuzz(seed, 3, 1500, b, false).violation !== null;
        } catch {
          found = true; // an assertion caught the damage
        }
      }
      expect(found, JSON.stringify(b)).toBe(true);
    }
  });
});
