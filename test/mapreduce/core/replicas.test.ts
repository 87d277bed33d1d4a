/**
 * Deterministic simulation of the coordinator as the Raft group runs it:
 * three replicas apply one command log (followers lag, and one may restart
 * from another's snapshot), a leader proposes the commands from its own view
 * on its own clock, workers take tasks, renew, finish, crash and deliver
 * completions twice, and the leader fails over (the new one catches up,
 * possibly from a snapshot, and rebases the leases on its clock). Seeded by
 * lib/random, so a failure replays from its seed.
 *
 * Checked: every replica computes the same result for every entry and ends
 * with the same snapshot bytes; the job ends done; no task is assigned again
 * after it was committed (a new leader re-runs no finished task) and none is
 * committed twice.
 */
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../../src/lib/random.js';
import type {
  AssignTaskResult,
  CompleteTaskCommand,
  CompleteTaskResult,
  MrApplied,
  MrCommand,
  RenewTaskResult,
  TaskAssignment,
} from '../../../src/mapreduce/core/index.js';
import { MapReduceStateMachine } from '../../../src/mapreduce/core/index.js';

/** Seeds per run: 60 in CI; `MR_SIM_SEEDS=5000 MR_SIM_FIRST_SEED=1 npx vitest run test/mapreduce/core/replicas.test.ts` for a long search. */
const SEEDS = Number(process.env['MR_SIM_SEEDS'] ?? 60);
const FIRST_SEED = Number(process.env['MR_SIM_FIRST_SEED'] ?? 1);
const LEASE = 1_000;
const STEP = 50;
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

interface Worker {
  id: string;
  node: string;
  task: TaskAssignment | null;
  doneAt: number;
  nextRenew: number;
  downUntil: number;
}

interface Outcome {
  failovers: number;
  restores: number;
  commands: number;
  reExecutions: number;
  backups: number;
}

function simulate(seed: number): Outcome {
  const rng = seededRandom(seed);
  const replicas = [0, 1, 2].map(() => new MapReduceStateMachine());
  const applied = [0, 0, 0];
  // Each replica's clock is its own: the leader stamps commands with its reading.
  const clockBase = [1_000_000, 50_000, 7_000_000];
  const log: MrCommand[] = [];
  const results: string[] = [];
  let leader = 0;
  let t = 0;
  const now = (): number => clockBase[leader]! + t;

  const catchUp = (i: number, upto: number): void => {
    while (applied[i]! < upto) {
      const idx = applied[i]!;
      const out: MrApplied = replicas[i]!.apply(log[idx]!);
      expect(JSON.stringify(out), `replica ${i} entry ${idx} (seed ${seed})`).toBe(results[idx]);
      applied[i] = idx + 1;
    }
  };
  const propose = <T>(cmd: MrCommand): T => {
    catchUp(leader, log.length);
    log.push(cmd);
    const out = replicas[leader]!.apply(cmd);
    results.push(JSON.stringify(out));
    applied[leader] = log.length;
    if (!out.ok) throw new Error(`seed ${seed}: refused ${cmd.type}: ${out.error.message}`);
    return out.result as T;
  };

  const maps = rng.intBetween(1, 12);
  const reducers = rng.intBetween(1, 4);
  propose({
    type: 'submitJob',
    jobId: 'job',
    module: '/m.js',
    output: '/out',
    splits: Array.from({ length: maps }, (_, i) => ({ file: `/in/${i}`, start: 0, end: 10 })),
    reducers,
    options: { backupAfterMs: 1500 },
    now: now(),
  });
  const workers: Worker[] = Array.from({ length: 4 }, (_, i) => ({
    id: `w${i}`,
    node: `n${i}`,
    task: null,
    doneAt: 0,
    nextRenew: 0,
    downUntil: 0,
  }));
  const committedAt = new Map<string, number>();
  const pendingDups: CompleteTaskCommand[] = [];
  let failovers = 0;
  let restores = 0;
  const keyOf = (kind: string, index: number): string => `${kind}${index}`;

  for (let step = 0; step < 20_000; step++) {
    t += STEP;
    const sm = replicas[leader]!;
    if (sm.job('job')?.status === 'done') break;
    // Followers apply committed entries at their own pace.
    for (let i = 0; i < 3; i++) {
      if (i !== leader && rng.chance(0.3)) catchUp(i, rng.intBetween(applied[i]!, log.length));
    }
    // Leader failover; the new leader may first restart from another replica's snapshot.
    if (rng.chance(0.01)) {
      const next = (leader + rng.intBetween(1, 2)) % 3;
      if (rng.chance(0.5)) {
        const donor = rng.pick([0, 1, 2].filter((i) => i !== next));
        catchUp(donor, rng.intBetween(applied[donor]!, log.length));
        const bytes = replicas[donor]!.snapshot();
        replicas[next] = MapReduceStateMachine.fromSnapshot(bytes);
        expect(hex(replicas[next].snapshot())).toBe(hex(bytes));
        applied[next] = applied[donor]!;
        restores++;
      }
      leader = next;
      failovers++;
      propose({ type: 'rebaseLeases', now: now(), leaseMs: LEASE });
    }
    const lead = replicas[leader]!;
    catchUp(leader, log.length);
    if (lead.nextLeaseDeadline() <= now()) propose({ type: 'expireLeases', now: now() });
    if (pendingDups.length > 0 && rng.chance(0.2)) {
      const dup = pendingDups.shift()!;
      const r = propose<CompleteTaskResult>({ ...dup, now: now() });
      expect(r.committed, `duplicate committed (seed ${seed})`).toBe(false);
    }
    for (const w of workers) {
      if (w.downUntil > t) continue;
      if (w.task !== null && rng.chance(0.003)) {
        // The worker's process dies with its task; it comes back later.
        w.task = null;
        w.downUntil = t + rng.intBetween(0, 3000);
        continue;
      }
      if (w.task === null) {
        const peek = replicas[leader]!.peekAssignment(w.id, now());
        if ('reason' in peek) continue;
        const r = propose<AssignTaskResult>({
          type: 'assignTask',
          worker: w.id,
          node: w.node,
          now: now(),
          leaseMs: LEASE,
        });
        const a = r.assignment;
        expect(a, `peek promised a task (seed ${seed})`).not.toBeNull();
        if (a === null) continue;
        expect(
          committedAt.has(keyOf(a.kind, a.index)),
          `finished ${a.kind} ${a.index} assigned again (seed ${seed})`,
        ).toBe(false);
        w.task = a;
        // Some tasks straggle, long enough for a backup copy.
        w.doneAt = t + (rng.chance(0.1) ? rng.intBetween(3000, 6000) : rng.intBetween(50, 1200));
        w.nextRenew = t + 300;
        continue;
      }
      const a = w.task;
      if (t >= w.doneAt) {
        const cmd: CompleteTaskCommand = {
          type: 'completeTask',
          attemptId: a.attemptId,
          now: now(),
          output:
            a.kind === 'map'
              ? { kind: 'map', partitionBytes: Array.from({ length: a.reducers }, () => 1) }
              : { kind: 'reduce', bytes: 1 },
          counters: { inputRecords: 1, inputBytes: 1, outputRecords: 1, outputBytes: 1 },
        };
        const r = propose<CompleteTaskResult>(cmd);
        if (r.committed) {
          const k = keyOf(a.kind, a.index);
          expect(committedAt.has(k), `${k} committed twice (seed ${seed})`).toBe(false);
          committedAt.set(k, t);
        }
        if (rng.chance(0.2)) pendingDups.push(cmd);
        w.task = null;
      } else if (t >= w.nextRenew) {
        const r = propose<RenewTaskResult>({
          type: 'renewTask',
          attemptId: a.attemptId,
          now: now(),
          leaseMs: LEASE,
        });
        if (r.action === 'stop') w.task = null;
        else w.nextRenew = t + 300;
      }
    }
  }
  for (let i = 0; i < 3; i++) catchUp(i, log.length);
  const job = replicas[leader]!.job('job')!;
  expect(job.status, `seed ${seed}`).toBe('done');
  expect(committedAt.size).toBe(maps + reducers);
  const snap = hex(replicas[0]!.snapshot());
  expect(hex(replicas[1]!.snapshot())).toBe(snap);
  expect(hex(replicas[2]!.snapshot())).toBe(snap);
  expect(replicas[1]!.jobs()).toEqual(replicas[0]!.jobs());
  return {
    failovers,
    restores,
    commands: log.length,
    reExecutions: job.counters.reExecutions,
    backups: job.counters.backupAttempts,
  };
}

describe('replicas applying one log under leader failover', () => {
  it('agree on every result and snapshot, and never re-run a finished task', () => {
    const totals = { failovers: 0, restores: 0, commands: 0, reExecutions: 0, backups: 0 };
    for (let seed = FIRST_SEED; seed < FIRST_SEED + SEEDS; seed++) {
      const o = simulate(seed);
      totals.failovers += o.failovers;
      totals.restores += o.restores;
      totals.commands += o.commands;
      totals.reExecutions += o.reExecutions;
      totals.backups += o.backups;
    }
    // The runs exercised what they claim to.
    expect(totals.failovers).toBeGreaterThan(20);
    expect(totals.restores).toBeGreaterThan(5);
    expect(totals.reExecutions).toBeGreaterThan(5);
    expect(totals.backups).toBeGreaterThan(0);
  });
});
