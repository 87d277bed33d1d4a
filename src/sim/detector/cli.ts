/**
 * `npm run sim -- detector ...`: runs the SWIM detector simulation and prints
 * detection time, false positives and load.
 *
 * ```sh
 * npm run sim -- detector --members 100 --loss 0.05 --seed 7
 * npm run sim -- detector --members 1000 --duration 60 --crashes 20 --heartbeat
 * ```
 *
 * Exit code 0 when every crashed member was declared failed by every live
 * member, 1 when not, 2 on bad usage.
 */
import { Command, InvalidArgumentError } from 'commander';
import { detectorSimDefaults, runDetectorSim, runHeartbeatSim } from './run.js';
import type { DetectorSimResult } from './run.js';

function int(min: number) {
  return (text: string): number => {
    const n = Number(text);
    if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min) {
      throw new InvalidArgumentError(`expected an integer >= ${min}`);
    }
    return n;
  };
}

function probability(text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < 0 || n >= 1) {
    throw new InvalidArgumentError('expected a number in [0, 1)');
  }
  return n;
}

const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const f2 = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');

/** Prints one result as the CLI and the bench do. */
export function printDetectorResult(r: DetectorSimResult, out: (line: string) => void): void {
  const o = r.options;
  out(
    `${r.protocol} members=${o.members} seed=${o.seed} loss=${o.loss} delay=${o.delayMinMs}-${o.delayMaxMs}ms ` +
      `duration=${o.durationMs / 1000}s crashes=${o.crashes} pauses=${o.pauses} (<=${o.pauseMaxMs}ms) period=${o.periodMs}ms`,
  );
  if (r.protocol === 'swim') {
    out(
      `  suspicion timeout ${r.suspicionTimeoutMs} ms (${f1(r.suspicionTimeoutMs / o.periodMs)} periods)`,
    );
  } else {
    out(`  heartbeat timeout ${o.heartbeatTimeoutMs} ms`);
  }
  const d = r.firstDetection;
  const a = r.allDetection;
  out(
    `  detection (crash -> first member declares failed, ${d.count} crashes): p50 ${d.p50Ms} ms (${f2(d.p50Periods)} periods), p99 ${d.p99Ms} ms (${f2(d.p99Periods)} periods)`,
  );
  out(
    `  detection (crash -> each live member declares failed, ${a.count} samples): p50 ${a.p50Ms} ms (${f2(a.p50Periods)} periods), p99 ${a.p99Ms} ms (${f2(a.p99Periods)} periods)`,
  );
  out(
    `  undetected at the end: ${r.undetected.length}` +
      (r.undetected.length > 0
        ? ` (${r.undetected.map((u) => `${u.member} still not failed at ${u.notFailedAt.length}`).join(', ')})`
        : ''),
  );
  out(
    `  false positives: ${r.falsePositives} (${r.falsePositivesPaused} after a pause; ${r.falsePositiveEvents} observer events) = ${r.falsePositivesPer1000MemberMinutes.toFixed(3)} per 1,000 member-minutes`,
  );
  out(
    `  load: ${f2(r.messagesPerMemberPerSecond)} messages sent per member per second (busiest member ${f2(r.maxMessagesPerMemberPerSecond)} sent+received/s), ${Math.round(r.bytesPerMemberPerSecond)} bytes/s`,
  );
  out(
    `  events ${r.events}, messages ${r.messagesSent} (${r.messagesLost} lost), refused ${r.refused}`,
  );
  out(`  trace hash: ${r.traceHash}`);
}

/** Parses `argv` (after `detector`) and runs; resolves to the exit code. */
export function detectorMain(argv: readonly string[], out: (line: string) => void): number {
  const program = new Command('sim detector')
    .description('Simulate the SWIM failure detector (and optionally all-to-all heartbeats)')
    .option('--members <n>', 'group size', int(3), 100)
    .option('--seed <n>', 'seed', int(0), 1)
    .option('--seeds <k>', 'run K seeds from --seed', int(1), 1)
    .option('--loss <p>', 'chance each message is lost', probability, 0.05)
    .option('--delay-max <ms>', 'largest message delay (uniform from 1 ms)', int(1), 20)
    .option('--duration <s>', 'virtual seconds simulated', int(1))
    .option('--crashes <n>', 'members crashed (default members/20)', int(0))
    .option('--pauses <n>', 'member pauses (default members/20)', int(0))
    .option('--pause-max <ms>', 'longest pause', int(1))
    .option('--period <ms>', 'protocol period', int(10))
    .option('--heartbeat', 'also run the all-to-all heartbeat detector on the same schedule', false)
    .option('--verbose', 'print every trace line', false)
    .exitOverride()
    .configureOutput({ writeOut: (s) => out(s.trimEnd()), writeErr: (s) => out(s.trimEnd()) });
  try {
    program.parse([...argv], { from: 'user' });
  } catch (err) {
    const code = (err as { exitCode?: number }).exitCode;
    return code === 0 ? 0 : 2;
  }
  const opts = program.opts<{
    members: number;
    seed: number;
    seeds: number;
    loss: number;
    delayMax: number;
    duration?: number;
    crashes?: number;
    pauses?: number;
    pauseMax?: number;
    period?: number;
    heartbeat: boolean;
    verbose: boolean;
  }>();
  const base = detectorSimDefaults(opts.members);
  const periodMs = opts.period ?? base.periodMs;
  const scale = periodMs / base.periodMs;
  let failed = 0;
  for (let s = 0; s < opts.seeds; s++) {
    const options = {
      ...base,
      seed: opts.seed + s,
      loss: opts.loss,
      delayMaxMs: opts.delayMax,
      durationMs: opts.duration !== undefined ? opts.duration * 1000 : base.durationMs * scale,
      crashes: opts.crashes ?? base.crashes,
      pauses: opts.pauses ?? base.pauses,
      pauseMaxMs: opts.pauseMax ?? Math.round(base.pauseMaxMs * scale),
      periodMs,
      pingTimeoutMs: Math.round(base.pingTimeoutMs * scale),
      heartbeatTimeoutMs: Math.round(base.heartbeatTimeoutMs * scale),
      sink: opts.verbose ? out : undefined,
    };
    if (options.crashes + 2 > options.members) {
      out(`--crashes ${options.crashes} leaves fewer than two live members`);
      return 2;
    }
    const r = runDetectorSim(options);
    printDetectorResult(r, out);
    if (r.undetected.length > 0) failed++;
    if (opts.heartbeat) {
      const h = runHeartbeatSim(options);
      printDetectorResult(h, out);
      out(
        `  per-member load heartbeat/swim: ${(h.messagesPerMemberPerSecond / r.messagesPerMemberPerSecond).toFixed(1)}`,
      );
    }
  }
  return failed === 0 ? 0 : 1;
}
