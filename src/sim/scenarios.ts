/**
 * The registry of simulation scenarios that `npm run sim -- --scenario NAME`
 * can run. A new scenario (the Raft simulator, say) adds itself by adding one
 * line to {@link builtins} below.
 *
 * ```ts
 * const s = getScenario('echo');          // undefined if unknown
 * scenarioNames();                        // ['echo', ...]
 * registerScenario(myScenario);           // e.g. from a test
 * ```
 */
import { assert } from '../lib/assert.js';
import type { Scenario } from './scenario.js';
import { echoScenario } from './scenarios/echo.js';
import { raftScenario } from './raft/scenario.js';
import { kvScenario } from './kv/scenario.js';

const registry = new Map<string, Scenario>();

/** Adds `scenario` under its name; a name may be registered once. */
export function registerScenario(scenario: Scenario): void {
  assert(!registry.has(scenario.name), `scenario ${scenario.name} registered twice`);
  registry.set(scenario.name, scenario);
}

/** The scenario called `name`, or undefined. */
export function getScenario(name: string): Scenario | undefined {
  return registry.get(name);
}

/** Every registered scenario name, sorted. */
export function scenarioNames(): string[] {
  return [...registry.keys()].sort();
}

/** The scenarios that ship with cohort. Add new ones here. */
const builtins: readonly Scenario[] = [
  echoScenario(),
  raftScenario(),
  raftScenario({ name: 'raft-7', nodes: [7] }),
  raftScenario({ name: 'raft-file', storage: 'file' }),
  raftScenario({ name: 'raft-members', replace: true }),
  kvScenario(),
  kvScenario({ name: 'kv-file', storage: 'file' }),
  kvScenario({ name: 'kv-members', replace: true }),
  // Older names, from when the simulator had a shell of its own besides the production one:
  // every scenario runs the production shell now.
  alias('raft', raftScenario({ name: 'raft-production' })),
  alias('raft-file', raftScenario({ name: 'raft-production-file', storage: 'file' })),
  alias('kv', kvScenario({ name: 'kv-production' })),
  alias('kv-file', kvScenario({ name: 'kv-production-file', storage: 'file' })),
];

/** `scenario` described as an older name of `of`. */
function alias(of: string, scenario: Scenario): Scenario {
  return { ...scenario, description: `the same as ${of} (an older name)` };
}

for (const s of builtins) registerScenario(s);
