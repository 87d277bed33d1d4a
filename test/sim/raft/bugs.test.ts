import { describe, expect, it } from 'vitest';
import type { RaftBugs } from '../../../src/raft/core/raft-core.js';
import { firstFailingSeed, simTimeoutMs } from './helpers.js';

/**
 * The checks can fail: the core built with each test-only bug switch must be
 * caught within a bounded number of seeds, by the checker that matches the
 * bug. The bounds leave room above the first failing seed observed today.
 */
const cases: { bugs: RaftBugs; seeds: number; caughtBy: RegExp }[] = [
  // Raft §5.4.2 / Figure 8: the commit-rule check sees the leader count old-term replicas.
  { bugs: { countOldTermEntriesForCommit: true }, seeds: 30, caughtBy: /commit rule \(§5\.4\.2\)/ },
  // Figure 2: a vote sent before it is durable.
  { bugs: { forgetToPersistVote: true }, seeds: 30, caughtBy: /persist before send/ },
  // §5.4.1: an out-of-date candidate wins and lacks committed entries.
  { bugs: { skipElectionRestriction: true }, seeds: 30, caughtBy: /leader completeness/ },
  // §5.3: entries appended after a mismatching predecessor.
  { bugs: { skipLogConsistencyCheck: true }, seeds: 30, caughtBy: /log matching/ },
];

describe('the simulator catches each deliberate core bug', () => {
  for (const c of cases) {
    it(
      `${Object.keys(c.bugs).join(', ')} within ${c.seeds} seeds`,
      async () => {
        const r = await firstFailingSeed({ bugs: c.bugs }, c.seeds);
        expect(r, 'no seed caught it').toBeDefined();
        expect(r?.outcome).toBe('violation');
        expect(r?.message).toMatch(c.caughtBy);
      },
      simTimeoutMs,
    );
  }

  it(
    'forgetToPersistVote breaks safety itself: with the durability checks off, a double vote or two leaders in a term within 600 seeds',
    async () => {
      const r = await firstFailingSeed(
        { bugs: { forgetToPersistVote: true }, durabilityChecks: false },
        600,
      );
      expect(r, 'no seed caught it').toBeDefined();
      expect(r?.message).toMatch(/voted for both|two leaders in term/);
    },
    simTimeoutMs,
  );

  it(
    'a shell serving reads locally without ReadIndex: the client history is not linearizable within 10 seeds',
    async () => {
      const r = await firstFailingSeed({ unsafeLocalReads: true }, 10);
      expect(r, 'no seed caught it').toBeDefined();
      expect(r?.message).toMatch(/client history not linearizable/);
    },
    simTimeoutMs,
  );

  it(
    'a shell sending before persisting: caught by the persist-before-send check within 10 seeds',
    async () => {
      const r = await firstFailingSeed({ sendBeforePersist: true }, 10);
      expect(r?.message).toMatch(/persist before send/);
    },
    simTimeoutMs,
  );

  it(
    'a correct core passes the same seeds',
    async () => {
      expect(await firstFailingSeed({}, 30)).toBeUndefined();
    },
    simTimeoutMs,
  );
});
