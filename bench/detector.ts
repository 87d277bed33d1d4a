/**
 * bench:detector — the SWIM failure detector at 1,000 members and 5% message
 * loss, in the deterministic simulator (src/sim/detector/run.ts), against an
 * all-to-all heartbeat detector (Moleculer's discovery style: every member
 * broadcasts a heartbeat each period and declares a member failed after three
 * periods without one) on the same crash and pause schedule and network.
 *
 * ```sh
 * npm run bench:detector                       # 1,000 members, 5% loss, 120 virtual s
 * npm run bench:detector -- --members 300 --seconds 60 --seed 2
 * ```
 *
 * What is measured: virtual time, so the figures do not depend on the
 * machine's load (the CPU seconds each simulation took are printed for
 * reference). Detection time is crash → the first member declares the
 * crashed member failed (SWIM's detection), and crash → each live member
 * declares it (dissemination included). Load is messages sent per member per
 * second. Goals (issue 15): detection p99 ≤ 3 protocol periods + the
 * suspicion timeout; false positives ≤ 1 per 1,000 member-minutes at 5%
 * loss. The per-member load ratio heartbeat/SWIM is printed last.
 */
import { Command, InvalidArgumentError } from 'commander';
import { printDetectorResult } from '../src/sim/detector/cli.js';
import { detectorSimDefaults, runDetectorSim, runHeartbeatSim } from '../src/sim/detector/run.js';
import { startBench } from './common.js';

function int(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError('expected a positive integer');
  }
  return n;
}

const program = new Command('bench:detector')
  .option('--members <n>', 'group size', int, 1000)
  .option('--seconds <s>', 'virtual seconds simulated', int, 120)
  .option('--seed <n>', 'seed', int, 1)
  .option('--crashes <n>', 'members crashed (samples of detection time)', int)
  .parse();
const opts = program.opts<{ members: number; seconds: number; seed: number; crashes?: number }>();

const run = startBench(
  'detector',
  `SWIM vs all-to-all heartbeats, ${opts.members} members, 5% loss`,
);
const options = {
  ...detectorSimDefaults(opts.members),
  seed: opts.seed,
  loss: 0.05,
  durationMs: opts.seconds * 1000,
  crashes: opts.crashes ?? Math.max(1, Math.round(opts.members / 10)),
  pauses: Math.max(1, Math.round(opts.members / 20)),
};

const cpu0 = process.cpuUsage();
const swim = runDetectorSim(options);
const cpu1 = process.cpuUsage(cpu0);
printDetectorResult(swim, (l) => console.log(l));
console.log(`  simulated in ${((cpu1.user + cpu1.system) / 1e6).toFixed(1)} CPU s`);
run.sample();

const cpu2 = process.cpuUsage();
const heartbeat = runHeartbeatSim(options);
const cpu3 = process.cpuUsage(cpu2);
printDetectorResult(heartbeat, (l) => console.log(l));
console.log(`  simulated in ${((cpu3.user + cpu3.system) / 1e6).toFixed(1)} CPU s`);

const period = options.periodMs;
const detectionGoalMs = 3 * period + swim.suspicionTimeoutMs;
const p99 = swim.firstDetection.p99Ms;
const fp = swim.falsePositivesPer1000MemberMinutes;
console.log(
  `goal detection p99 <= 3 periods + suspicion timeout = ${detectionGoalMs} ms: ` +
    `first member p99 ${p99} ms (${(p99 / period).toFixed(2)} periods) ${p99 <= detectionGoalMs ? 'MET' : 'NOT MET'}; ` +
    `p50 ${swim.firstDetection.p50Ms} ms ${swim.firstDetection.p50Ms <= detectionGoalMs ? 'within' : 'beyond'} it; ` +
    `every member p99 ${swim.allDetection.p99Ms} ms`,
);
console.log(
  `goal false positives <= 1 per 1,000 member-minutes at 5% loss: ${fp.toFixed(3)} ` +
    `(${swim.falsePositives} in ${Math.round(swim.memberMinutes)} member-minutes) ${fp <= 1 ? 'MET' : 'NOT MET'}`,
);
console.log(
  `per-member load: swim ${swim.messagesPerMemberPerSecond.toFixed(2)} msg/s, ` +
    `heartbeat ${heartbeat.messagesPerMemberPerSecond.toFixed(2)} msg/s`,
);
run.finish();
console.log(
  `detector n=${opts.members} loss=5%: per-member load heartbeat/swim, ratio ${(
    heartbeat.messagesPerMemberPerSecond / swim.messagesPerMemberPerSecond
  ).toFixed(1)}`,
);
if (swim.undetected.length > 0) process.exitCode = 1;
