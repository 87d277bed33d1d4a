/**
 * The determinism check every simulator scenario shares: for each seed, two
 * runs give the same trace hash, event count, counters and drawn parameters,
 * and different seeds give different runs.
 *
 * ```ts
 * await expectSeedsReplay(raftScenario(), [1, 2, 3]);
 * ```
 */
import { expect } from 'vitest';
import { runScenario } from '../../src/sim/scenario.js';
import type { Scenario } from '../../src/sim/scenario.js';

/** Runs each seed twice; asserts both runs agree and that the seeds' traces all differ. */
export async function expectSeedsReplay(
  scenario: Scenario,
  seeds: readonly number[],
): Promise<void> {
  const hashes = new Set<string>();
  for (const seed of seeds) {
    const a = await runScenario(scenario, { seed });
    const b = await runScenario(scenario, { seed });
    expect(a.outcome).toBe('ok');
    expect(b.traceHash).toBe(a.traceHash);
    expect(b.events).toBe(a.events);
    expect(b.counts).toEqual(a.counts);
    expect(b.params).toEqual(a.params);
    hashes.add(a.traceHash);
  }
  expect(hashes.size).toBe(seeds.length);
}
