/**
 * Node replacements mixed into the fault schedules (issue 15): the
 * `raft-members` and `kv-members` scenarios, where the nemesis also swaps a
 * voter (often the leader, sometimes after handing leadership over) for a
 * node outside the configuration through single-server changes while it
 * crashes, partitions and slows nodes. Every seed must pass every check
 * (Raft's invariants after each event, liveness after heal, a linearizable
 * history; for KV also equal replica states and no lost acknowledged write),
 * and the seeds together must really have replaced leaders and followers in
 * both orders. The existing scenarios' seeds keep their schedules (the
 * replacements draw from their own streams): checked on one seed.
 */
import { describe, expect, it } from 'vitest';
import { runScenario } from '../../../src/sim/scenario.js';
import { raftScenario } from '../../../src/sim/raft/scenario.js';
import { runKvSeeds } from '../kv/helpers.js';
import { formatFailure, runSeeds, simTimeoutMs } from './helpers.js';

const counters = process.env.COHORT_SIM_COUNTERS !== undefined;

describe('membership changes under the nemesis: nodes replaced', () => {
  it(
    'raft-members seeds 1..500 pass every check, replacing leaders and followers',
    async () => {
      const { failures, totals } = await runSeeds(1, 500, { name: 'raft-members', replace: true });
      if (counters)
        console.log(Object.entries(totals).filter(([k]) => /replace|membership/.test(k)));
      expect(failures.map(formatFailure).join('\n\n')).toBe('');
      for (const kind of [
        'replace leader',
        'replace follower',
        'replace done',
        'replace addLearner applied',
        'replace promoteLearner applied',
        'replace removeNode applied',
        'linearizability linearizable',
      ]) {
        expect(totals[kind] ?? 0, kind).toBeGreaterThan(0);
      }
      // Most replacements run to the end through the faults.
      expect(totals['replace done'] ?? 0).toBeGreaterThan(50);
    },
    simTimeoutMs,
  );

  it(
    'kv-members seeds 1..100 pass every check (linearizable, equal replicas, nothing acknowledged lost)',
    async () => {
      const { failures, totals } = await runKvSeeds(1, 100, { name: 'kv-members', replace: true });
      if (counters)
        console.log(Object.entries(totals).filter(([k]) => /replace|membership/.test(k)));
      expect(failures.map(formatFailure).join('\n\n')).toBe('');
      expect(totals['replace done'] ?? 0).toBeGreaterThan(20);
      expect(totals['replace leader'] ?? 0).toBeGreaterThan(0);
      expect(totals['linearizability linearizable']).toBe(100);
    },
    simTimeoutMs,
  );

  it('the raft scenario without replacements runs as before (same trace as with replace off)', async () => {
    const a = await runScenario(raftScenario({ traceMessages: false }), { seed: 7 });
    const b = await runScenario(raftScenario({ traceMessages: false, replace: false }), {
      seed: 7,
    });
    const c = await runScenario(raftScenario({ traceMessages: false, replace: true }), { seed: 7 });
    expect(a.traceHash).toBe(b.traceHash);
    expect(c.traceHash).not.toBe(a.traceHash);
    // Same seed, same replacements: deterministic.
    const d = await runScenario(raftScenario({ traceMessages: false, replace: true }), { seed: 7 });
    expect(d.traceHash).toBe(c.traceHash);
  });
});
