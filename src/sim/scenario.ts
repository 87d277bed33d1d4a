/**
 * What a simulation scenario is and how one runs: a scenario builds nodes on a
 * {@link Scheduler} and {@link SimNetwork} from a seed, records the parameters
 * it drew, and throws {@link CheckFailure} when a checker finds a violation.
 * {@link runScenario} wraps a run into a {@link ScenarioResult} with the trace
 * hash, event counts, the last events and the replay command.
 *
 * ```ts
 * const myScenario: Scenario = {
 *   name: 'raft',
 *   description: 'Raft cores under crashes and partitions',
 *   run(ctx) {
 *     ctx.params.nodes = 3 + ctx.random.fork('params').int(3);
 *     const net = new SimNetwork({ scheduler: ctx.scheduler, random: ctx.random.fork('net'), codec, trace: ctx.trace });
 *     ...
 *     while (ctx.scheduler.step()) if (!safe()) throw new CheckFailure('two leaders in term 3');
 *   },
 * };
 * const result = await runScenario(myScenario, { seed: 7 });
 * ```
 */
import { seededRandom } from '../lib/random.js';
import type { Random } from '../lib/random.js';
import { Scheduler } from './scheduler.js';
import { Trace } from './trace.js';

/** Thrown by a checker when the system broke a promise; the run's outcome is `violation`. */
export class CheckFailure extends Error {
  override readonly name = 'CheckFailure';
}

/**
 * Where a check that runs inside the code under test reports. The production
 * shells call the simulator back from promise callbacks (a state machine's
 * apply, a send, a finished save); an exception thrown there would not reach
 * the scenario but reject a promise nobody handles. Such callbacks run inside
 * {@link FailureTrap.guard}, which records the first failure (a
 * {@link CheckFailure} or any other error) and returns; the scenario's loop
 * rethrows it after the event ({@link FailureTrap.throwIfFailed}).
 *
 * ```ts
 * node.onApplied = (e) => ctx.trap.guard(() => invariants.onApply(id, e, digest));
 * scheduler.step(); await settle(); ctx.trap.throwIfFailed();
 * ```
 */
export class FailureTrap {
  private first: unknown;
  private failed = false;

  /** Runs `fn`; if it throws, records the error (the first one is kept) and returns undefined. */
  guard<T>(fn: () => T): T | undefined {
    try {
      return fn();
    } catch (err) {
      this.record(err);
      return undefined;
    }
  }

  /** Records a failure (the first one is kept). */
  record(err: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.first = err;
  }

  /** Throws the first recorded failure, if any. */
  throwIfFailed(): void {
    if (this.failed) throw this.first;
  }
}

/** What a scenario gets: its seed, a root random stream, the scheduler and the trace. */
export interface ScenarioContext {
  readonly seed: number;
  /** Root stream for this seed; fork one per subsystem (`params`, `net`, `nemesis`, ...). */
  readonly random: Random;
  readonly scheduler: Scheduler;
  readonly trace: Trace;
  /** Failures raised inside callbacks of the code under test; the run throws the first. */
  readonly trap: FailureTrap;
  /** Parameters drawn from the seed; fill in early, they are printed with any failure. */
  readonly params: Record<string, unknown>;
  /** Scenario-specific counters, printed with the trace's event counts. */
  readonly counts: Record<string, number>;
}

/** A named, seeded simulation. */
export interface Scenario {
  /** Name used with `--scenario`. */
  readonly name: string;
  /** One line for `--help` and listings. */
  readonly description: string;
  /** Runs one seed; throws {@link CheckFailure} on a violation. */
  run(ctx: ScenarioContext): void | Promise<void>;
}

/** How a run ended: checks held, a checker found a violation, or something threw (a bug). */
export type Outcome = 'ok' | 'violation' | 'error';

/** Everything a run reports. */
export interface ScenarioResult {
  readonly scenario: string;
  readonly seed: number;
  readonly outcome: Outcome;
  /** The failure's message (violation or error). */
  readonly message?: string;
  /** The error's stack, for `error` outcomes. */
  readonly stack?: string;
  readonly params: Readonly<Record<string, unknown>>;
  /** Trace events by kind, then the scenario's own counters. */
  readonly counts: Readonly<Record<string, number>>;
  readonly events: number;
  readonly virtualMs: number;
  readonly traceHash: string;
  /** The last trace lines (for failure reports). */
  readonly lastEvents: readonly string[];
  /** The command that replays this run. */
  readonly replay: string;
}

/** Options for {@link runScenario}. */
export interface RunScenarioOptions {
  readonly seed: number;
  /** Receives every trace line as it is recorded (`--verbose`). */
  readonly sink?: ((line: string) => void) | undefined;
  /** How many trace lines to keep for the report (default 40). */
  readonly lastEvents?: number;
}

/** The command line that replays `scenario` with `seed`. */
export function replayCommand(scenario: string, seed: number): string {
  return `npm run sim -- --scenario ${scenario} --seed ${seed}`;
}

/**
 * Runs `scenario` for one seed and reports; never throws for a failing run.
 *
 * Stack traces are off while the scenario runs (unless a `sink` is set): the
 * shells under test create expected-outcome errors by the thousand (a
 * follower refusing a proposal, a deadline passing), capturing their stacks
 * is most of what they cost, and nobody reads them. A run that ends in an
 * unexpected error is run again with stack traces, for the report: runs are
 * deterministic, so it fails the same way (if it does not, the report says
 * so). Runs must not overlap (the stack trace limit is the process's).
 */
export async function runScenario(
  scenario: Scenario,
  options: RunScenarioOptions,
): Promise<ScenarioResult> {
  if (options.sink !== undefined) return runOnce(scenario, options, true);
  const fast = await runOnce(scenario, options, false);
  if (fast.outcome !== 'error') return fast;
  const traced = await runOnce(scenario, options, true);
  if (traced.traceHash === fast.traceHash) return traced;
  return {
    ...traced,
    message: `${traced.message ?? ''} (the run without stack traces ended otherwise: ${fast.message ?? ''}; the run is not deterministic)`,
  };
}

async function runOnce(
  scenario: Scenario,
  options: RunScenarioOptions,
  stacks: boolean,
): Promise<ScenarioResult> {
  const keep = options.lastEvents ?? 40;
  const trace = new Trace({ keepLast: keep, sink: options.sink });
  const ctx: ScenarioContext = {
    seed: options.seed,
    random: seededRandom(options.seed),
    scheduler: new Scheduler(),
    trace,
    trap: new FailureTrap(),
    params: {},
    counts: {},
  };
  let outcome: Outcome = 'ok';
  let message: string | undefined;
  let stack: string | undefined;
  const stackTraceLimit = Error.stackTraceLimit;
  if (!stacks) Error.stackTraceLimit = 0;
  try {
    try {
      await scenario.run(ctx);
    } finally {
      Error.stackTraceLimit = stackTraceLimit;
      // A failure raised inside a callback comes first: what followed may be its consequence.
      ctx.trap.throwIfFailed();
    }
  } catch (err) {
    outcome = err instanceof CheckFailure ? 'violation' : 'error';
    message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    if (outcome === 'error' && err instanceof Error && err.stack !== undefined) stack = err.stack;
  }
  // A run may keep the process busy without a turn of the event loop (drive.ts): let timers
  // and I/O in between runs.
  await new Promise((resolve) => setImmediate(resolve));
  return {
    scenario: scenario.name,
    seed: options.seed,
    outcome,
    ...(message === undefined ? {} : { message }),
    ...(stack === undefined ? {} : { stack }),
    params: ctx.params,
    counts: { ...trace.counts(), ...ctx.counts },
    events: ctx.scheduler.eventsRun,
    virtualMs: ctx.scheduler.now(),
    traceHash: trace.hash(),
    lastEvents: trace.tail(keep),
    replay: replayCommand(scenario.name, options.seed),
  };
}
