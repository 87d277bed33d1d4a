/**
 * Shared by the KV simulation tests: run a range of seeds of the `kv`
 * scenario, sum their counters, and find the first failing seed of a
 * scenario with a deliberate bug.
 */
import { runScenario } from '../../../src/sim/scenario.js';
import type { ScenarioResult } from '../../../src/sim/scenario.js';
import { kvScenario } from '../../../src/sim/kv/scenario.js';
import type { KvScenarioOptions } from '../../../src/sim/kv/scenario.js';

export { formatFailure, simTimeoutMs } from '../raft/helpers.js';

/** What a batch of seeds did. */
export interface KvSeedsReport {
  readonly failures: ScenarioResult[];
  /** Every counter summed over the seeds. */
  readonly totals: Record<string, number>;
  /** Seeds by a drawn parameter's value (cluster size, leases on or off). */
  readonly voters: Record<string, number>;
  readonly leases: Record<string, number>;
}

/**
 * Runs seeds `from`..`from+count-1` of the kv scenario with `options` without tracing
 * messages (faster; a failure is re-run with every message traced for its report).
 */
export async function runKvSeeds(
  from: number,
  count: number,
  options: KvScenarioOptions = {},
): Promise<KvSeedsReport> {
  const scenario = kvScenario({ ...options, traceMessages: false });
  const traced = kvScenario(options);
  const failures: ScenarioResult[] = [];
  const totals: Record<string, number> = {};
  const voters: Record<string, number> = {};
  const leases: Record<string, number> = {};
  for (let seed = from; seed < from + count; seed++) {
    const r = await runScenario(scenario, { seed, lastEvents: 30 });
    if (r.outcome !== 'ok') failures.push(await runScenario(traced, { seed, lastEvents: 30 }));
    for (const [k, v] of Object.entries(r.counts)) totals[k] = (totals[k] ?? 0) + v;
    const size = String(r.params['voters']);
    voters[size] = (voters[size] ?? 0) + 1;
    const l = String((r.params['kv'] as { leases: boolean }).leases);
    leases[l] = (leases[l] ?? 0) + 1;
  }
  return { failures, totals, voters, leases };
}

/** The first seed in [1, maxSeeds] whose run does not pass, or undefined. */
export async function firstFailingKvSeed(
  options: KvScenarioOptions,
  maxSeeds: number,
): Promise<ScenarioResult | undefined> {
  const scenario = kvScenario({ traceMessages: false, ...options });
  for (let seed = 1; seed <= maxSeeds; seed++) {
    const r = await runScenario(scenario, { seed, lastEvents: 10 });
    if (r.outcome !== 'ok') return r;
  }
  return undefined;
}
