import { describe, expect, it } from 'vitest';
import { runScenario } from '../../../src/sim/scenario.js';
import { kvScenario } from '../../../src/sim/kv/scenario.js';
import { firstFailingKvSeed, simTimeoutMs } from './helpers.js';

/**
 * The KV checks can fail: each deliberate bug (test-only switches in the
 * Raft core, in how the KV server reads, and in the replica's state machine)
 * is caught within a bounded number of seeds by the check that matches it.
 * The bounds leave room above the first failing seed observed today.
 */
describe('the KV simulation catches each deliberate bug', () => {
  it(
    'a state machine without exactly-once sessions (a retried write applied again): caught within 20 seeds, by the exactly-once check or (a double write seen by a reader) the linearizability check',
    async () => {
      const r = await firstFailingKvSeed({ replicaBugs: { dropSessions: true } }, 20);
      expect(r, 'no seed caught it').toBeDefined();
      expect(r?.outcome).toBe('violation');
      expect(r?.message).toMatch(
        /exactly-once: value .* written at revision \d+ and again at \d+|not linearizable/,
      );
    },
    simTimeoutMs,
  );

  it(
    'without sessions, the exactly-once check itself names the double write (seed 1)',
    async () => {
      const r = await runScenario(
        kvScenario({ traceMessages: false, replicaBugs: { dropSessions: true } }),
        { seed: 1 },
      );
      expect(r.message).toMatch(/exactly-once: value .* written at revision \d+ and again at \d+/);
    },
    simTimeoutMs,
  );

  it(
    'a server answering reads locally without ReadIndex, with check-quorum off so a deposed leader lingers: stale reads (from a deposed leader that does not know it yet) caught within 40 seeds',
    async () => {
      // With check-quorum on, a deposed leader steps down within an election timeout and
      // few reads land in that window: seeds 93, 99, 189 and 256 of 1..300 catch it (since
      // clients register their sessions); with it off, seeds 9 and 16 of 1..80.
      const r = await firstFailingKvSeed(
        { unsafeLocalReads: true, raft: { checkQuorum: false } },
        40,
      );
      expect(r, 'no seed caught it').toBeDefined();
      expect(r?.message).toMatch(/not linearizable|revisions go back in real time/);
    },
    simTimeoutMs,
  );

  it(
    'a core answering ReadIndex without confirming leadership (skipReadConfirmation), with check-quorum off so a deposed leader lingers: caught within 60 seeds',
    async () => {
      const r = await firstFailingKvSeed(
        { bugs: { skipReadConfirmation: true }, raft: { checkQuorum: false } },
        60,
      );
      expect(r, 'no seed caught it').toBeDefined();
      expect(r?.message).toMatch(/not linearizable|revisions go back in real time/);
    },
    simTimeoutMs,
  );

  it(
    'a lease table without the replicated remaining TTLs (a new leader gives each lease only the grace): a lease expires early, caught within 20 seeds',
    async () => {
      const r = await firstFailingKvSeed(
        { leases: true, replicaBugs: { leasesWithoutRemaining: true } },
        20,
      );
      expect(r, 'no seed caught it').toBeDefined();
      expect(r?.message).toMatch(
        /lease \d+ .* expired at \d+ ms, but a grant or keep-alive sent at/,
      );
    },
    simTimeoutMs,
  );

  it(
    'the correct store passes the same seeds',
    async () => {
      expect(await firstFailingKvSeed({ leases: true }, 20)).toBeUndefined();
    },
    simTimeoutMs,
  );
});
