/**
 * Shared by the Raft simulator tests: run a range of seeds of the `raft`
 * scenario, sum their counters, and render failures with everything needed
 * to replay them (seed, drawn parameters, last events, replay command).
 */
import { describe as render } from '../../../src/lib/describe.js';
import { runScenario } from '../../../src/sim/scenario.js';
import type { ScenarioResult } from '../../../src/sim/scenario.js';
import { raftScenario } from '../../../src/sim/raft/scenario.js';
import type { RaftScenarioOptions } from '../../../src/sim/raft/scenario.js';

/**
 * The vitest timeout of a test that runs simulations. A simulation has no
 * wall-clock limit (its time is virtual): this only guards against a hang, so
 * it is far above what a loaded machine needs.
 */
export const simTimeoutMs = 30 * 60_000;

/** What a batch of seeds did. */
export interface SeedsReport {
  readonly failures: ScenarioResult[];
  /** Every counter summed over the seeds. */
  readonly totals: Record<string, number>;
  /** Seeds by cluster size. */
  readonly bySize: Record<string, number>;
}

/**
 * Runs seeds `from`..`from+count-1` of the raft scenario with `options` — those of a
 * registered scenario, so the printed replay command reproduces the run — without tracing
 * messages (faster; a failure is re-run with every message traced for its report).
 */
export async function runSeeds(
  from: number,
  count: number,
  options: RaftScenarioOptions = {},
): Promise<SeedsReport> {
  const scenario = raftScenario({ ...options, traceMessages: false });
  const tracedScenario = raftScenario(options);
  const failures: ScenarioResult[] = [];
  const totals: Record<string, number> = {};
  const bySize: Record<string, number> = {};
  for (let seed = from; seed < from + count; seed++) {
    const r = await runScenario(scenario, { seed, lastEvents: 30 });
    // Replay a failure with every message traced, so its report shows the last messages too.
    if (r.outcome !== 'ok')
      failures.push(await runScenario(tracedScenario, { seed, lastEvents: 30 }));
    for (const [k, v] of Object.entries(r.counts)) totals[k] = (totals[k] ?? 0) + v;
    const size = String(r.params['voters']);
    bySize[size] = (bySize[size] ?? 0) + 1;
  }
  return { failures, totals, bySize };
}

/** A failure as the simulator CLI prints it: outcome, message, parameters, last events, replay. */
export function formatFailure(r: ScenarioResult): string {
  return [
    `seed ${r.seed}: ${r.outcome}: ${r.message ?? ''}`,
    `  params: ${render(r.params)}`,
    `  last events:`,
    ...r.lastEvents.map((l) => `    ${l}`),
    ...(r.stack === undefined ? [] : [`  stack: ${r.stack}`]),
    `  replay: ${r.replay}`,
  ].join('\n');
}

/** The first seed in [1, maxSeeds] whose run does not pass, or undefined. */
export async function firstFailingSeed(
  options: RaftScenarioOptions,
  maxSeeds: number,
): Promise<ScenarioResult | undefined> {
  const scenario = raftScenario({ traceMessages: false, ...options });
  for (let seed = 1; seed <= maxSeeds; seed++) {
    const r = await runScenario(scenario, { seed, lastEvents: 10 });
    if (r.outcome !== 'ok') return r;
  }
  return undefined;
}

/** Sum of the totals whose key starts with `prefix`. */
export function total(totals: Record<string, number>, prefix: string): number {
  let n = 0;
  for (const [k, v] of Object.entries(totals)) if (k.startsWith(prefix)) n += v;
  return n;
}
