import { describe, expect, it } from 'vitest';
import { runScenario } from '../../../src/sim/scenario.js';
import { kvScenario } from '../../../src/sim/kv/scenario.js';
import { firstFailingKvSeed } from './helpers.js';

/**
 * The KV checks can fail: each deliberate bug (test-only switches in the
 * Raft core, the simulator's shell, the KV replica and the lease driver) is
 * caught within a bounded number of seeds by the check that matches it. The
 * bounds leave room above the first failing seed observed today.
 */
describe('the KV simulation catches each deliberate bug', () => {
  it('a state machine without exactly-once sessions (a retried write applied again): caught within 20 seeds, by the exactly-once check or (a double write seen by a reader) the linearizability check', async () => {
    const r = await firstFailingKvSeed({ replicaBugs: { dropSessions: true } }, 20);
    expect(r, 'no seed caught it').toBeDefined();
    expect(r?.outcome).toBe('violation');
    expect(r?.message).toMatch(
      /exactly-once: value .* written at revision \d+ and again at \d+|not linearizable/,
    );
  });

  it('without sessions, the exactly-once check itself names the double write (seed 3)', async () => {
    const r = await runScenario(
      kvScenario({ traceMessages: false, replicaBugs: { dropSessions: true } }),
      { seed: 3 },
    );
    expect(r.message).toMatch(/exactly-once: value .* written at revision \d+ and again at \d+/);
  });

  it('a shell answering reads locally without ReadIndex: stale reads caught within 10 seeds', async () => {
    const r = await firstFailingKvSeed({ unsafeLocalReads: true }, 10);
    expect(r, 'no seed caught it').toBeDefined();
    expect(r?.message).toMatch(/not linearizable|revisions go back in real time/);
  });

  it('a core answering ReadIndex without confirming leadership (skipReadConfirmation), with check-quorum off so a deposed leader lingers: caught within 60 seeds', async () => {
    const r = await firstFailingKvSeed(
      { bugs: { skipReadConfirmation: true }, raft: { checkQuorum: false } },
      60,
    );
    expect(r, 'no seed caught it').toBeDefined();
    expect(r?.message).toMatch(/not linearizable|revisions go back in real time/);
  });

  it('a new leader that ignores the replicated remaining TTLs: a lease expires early, caught within 20 seeds', async () => {
    const r = await firstFailingKvSeed(
      { leases: true, leaseBugs: { promoteWithoutRemaining: true } },
      20,
    );
    expect(r, 'no seed caught it').toBeDefined();
    expect(r?.message).toMatch(/lease \d+ .* expired at \d+ ms, but a grant or keep-alive sent at/);
  });

  it('the correct store passes the same seeds', async () => {
    expect(await firstFailingKvSeed({ leases: true }, 20)).toBeUndefined();
  });
});
