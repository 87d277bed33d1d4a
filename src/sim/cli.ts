/**
 * The simulator's command line (`npm run sim -- ...`).
 *
 * ```sh
 * npm run sim -- --seed 42                  # one run of the default scenario (raft), prints the trace hash
 * npm run sim -- --seeds 100000             # seeds 1..100000, counts by outcome
 * npm run sim -- --scenario echo --seed 7 --verbose   # print every trace line
 * npm run sim -- --list                     # the registered scenarios
 * npm run sim -- detector --members 100 --loss 0.05 --seed 7   # the SWIM detector (src/sim/detector)
 * ```
 *
 * Exit code 0 when every run passed its checks, 1 when one did not, 2 on bad usage.
 */
import { Command, InvalidArgumentError } from 'commander';
import { describe } from '../lib/describe.js';
import { detectorMain } from './detector/cli.js';
import { runScenario } from './scenario.js';
import type { Outcome, ScenarioResult } from './scenario.js';
import { getScenario, scenarioNames } from './scenarios.js';

function parseSeed(text: string): number {
  const n = Number(text);
  if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError('expected an integer');
  }
  return n;
}

function parseCount(text: string): number {
  const n = parseSeed(text);
  if (n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

function printFailure(r: ScenarioResult, out: (line: string) => void): void {
  out(`FAILED ${r.scenario} seed ${r.seed}: ${r.outcome}: ${r.message ?? ''}`);
  out(`  params: ${describe(r.params)}`);
  out(`  last ${r.lastEvents.length} events:`);
  for (const line of r.lastEvents) out(`    ${line}`);
  if (r.stack !== undefined) out(`  stack: ${r.stack}`);
  out(`  replay: ${r.replay}`);
}

function printResult(r: ScenarioResult, out: (line: string) => void): void {
  out(`scenario ${r.scenario} seed ${r.seed}: ${r.outcome}`);
  out(`  params: ${describe(r.params)}`);
  out(`  events: ${r.events} run, virtual time ${r.virtualMs} ms`);
  out(`  counts: ${describe(r.counts)}`);
  out(`  trace hash: ${r.traceHash}`);
  if (r.outcome !== 'ok') printFailure(r, out);
}

/** Parses `argv` (without node and script) and runs; resolves to the exit code. */
export async function main(
  argv: readonly string[],
  out: (line: string) => void = (l) => console.log(l),
): Promise<number> {
  if (argv[0] === 'detector') return detectorMain(argv.slice(1), out);
  const program = new Command('sim')
    .description('Run cohort deterministic simulations from a seed')
    .option('--seed <n>', 'seed of the (first) run', parseSeed, 1)
    .option('--seeds <k>', 'run K seeds starting at --seed and count outcomes', parseCount)
    .option('--scenario <name>', 'scenario to run (echo: the network alone)', 'raft')
    .option('--verbose', 'print every trace line as it happens', false)
    .option('--list', 'list the registered scenarios and exit', false)
    .exitOverride()
    .configureOutput({ writeOut: (s) => out(s.trimEnd()), writeErr: (s) => out(s.trimEnd()) });
  try {
    program.parse([...argv], { from: 'user' });
  } catch (err) {
    const code = (err as { exitCode?: number }).exitCode;
    return code === 0 ? 0 : 2;
  }
  const opts = program.opts<{
    seed: number;
    seeds?: number;
    scenario: string;
    verbose: boolean;
    list: boolean;
  }>();
  if (opts.list) {
    for (const name of scenarioNames()) out(`${name}: ${getScenario(name)?.description ?? ''}`);
    return 0;
  }
  const scenario = getScenario(opts.scenario);
  if (scenario === undefined) {
    out(`unknown scenario ${opts.scenario}; known: ${scenarioNames().join(', ')}`);
    return 2;
  }
  const sink = opts.verbose ? out : undefined;
  if (opts.seeds === undefined) {
    const r = await runScenario(scenario, { seed: opts.seed, sink });
    printResult(r, out);
    return r.outcome === 'ok' ? 0 : 1;
  }
  const outcomes: Record<Outcome, number> = { ok: 0, violation: 0, error: 0 };
  const failed: ScenarioResult[] = [];
  for (let i = 0; i < opts.seeds; i++) {
    const r = await runScenario(scenario, { seed: opts.seed + i, sink });
    outcomes[r.outcome]++;
    if (r.outcome !== 'ok') {
      failed.push(r);
      printFailure(r, out);
    }
  }
  out(
    `scenario ${scenario.name} seeds ${opts.seed}..${opts.seed + opts.seeds - 1}: ${describe(outcomes)}`,
  );
  for (const r of failed) out(`  ${r.outcome} seed ${r.seed}: ${r.replay}`);
  return failed.length === 0 ? 0 : 1;
}

// Run when executed directly (tsx src/sim/cli.ts), not when imported by tests.
if (process.argv[1] !== undefined && /sim[/\\]cli\.[jt]s$/.test(process.argv[1])) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
