/**
 * Property: random interleavings of assignments, completions (some asking
 * for the worker's next task in the same command, checked against a twin
 * replica that completes and then assigns), failures,
 * crashed workers, lease expiries, lost nodes, fetch failures, duplicate
 * deliveries and leader failovers (a snapshot restored and its leases
 * rebased) over a simulated set of workers, followed by a fault-free drain,
 * drive every job to `done` with each task's output committed exactly once
 * per time it was needed (a map once, and again only after its output was
 * lost; a reduce once), counters counted once per task, reduces assigned
 * only after the barrier, and `peekAssignment` agreeing with `assignTask`.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type {
  MrApplied,
  AssignTaskResult,
  CompleteTaskCommand,
  CompleteTaskResult,
  FailTaskCommand,
  FetchFailedResult,
  MrCommand,
  MrResult,
  NodeLostResult,
  TaskAssignment,
  TaskCounters,
} from '../../../src/mapreduce/core/index.js';
import { MapReduceStateMachine } from '../../../src/mapreduce/core/index.js';
import type { CoordinatorBounds } from '../../../src/mapreduce/core/index.js';

const FINISHED: readonly string[] = ['done', 'failed', 'cancelled'];
/** Runs per property: 150 in CI; `MR_PROP_RUNS=5000 npx vitest run <this file> --testTimeout=0` for a long search. */
const RUNS = Number(process.env['MR_PROP_RUNS'] ?? 150);

const NODES = ['n1', 'n2', 'n3'] as const;
const WORKERS = Array.from({ length: 6 }, (_, i) => ({
  id: `w${i}`,
  node: NODES[i % 3] as string,
}));
const LEASE = 1_000;

type Action =
  | { kind: 'assign'; w: number }
  | { kind: 'complete'; w: number }
  | { kind: 'completeNext'; w: number }
  | { kind: 'fail'; w: number; bad: boolean }
  | { kind: 'renew'; w: number }
  | { kind: 'tick'; ms: number }
  | { kind: 'crash'; w: number }
  | { kind: 'nodeLost'; n: number; keep: boolean }
  | { kind: 'dup'; i: number }
  | { kind: 'shuffle'; w: number }
  | { kind: 'fetchFail'; w: number; m: number; release: boolean }
  | { kind: 'failover' };

const w = fc.nat(WORKERS.length - 1);
const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ kind: fc.constant('assign' as const), w }) },
  { weight: 10, arbitrary: fc.record({ kind: fc.constant('complete' as const), w }) },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('completeNext' as const), w }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('fail' as const), w, bad: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('renew' as const), w }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('tick' as const),
      ms: fc.integer({ min: 1, max: LEASE / 2 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('crash' as const), w }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('nodeLost' as const),
      n: fc.nat(NODES.length - 1),
      keep: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('dup' as const), i: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('shuffle' as const), w }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('fetchFail' as const),
      w,
      m: fc.nat(7),
      release: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'failover' as const }) },
);

const jobSpec = fc.record({
  maps: fc.integer({ min: 0, max: 6 }),
  reducers: fc.integer({ min: 1, max: 3 }),
  skipBadRecords: fc.boolean(),
  backupTasks: fc.boolean(),
  backupAfterMs: fc.constantFrom(0, 300, 3000),
});

/** Counters that depend only on the task, so a double count shows in the sums. */
function countersOf(a: TaskAssignment): TaskCounters {
  return a.kind === 'map'
    ? { inputRecords: 1000 + a.index, inputBytes: 1, outputRecords: 1, outputBytes: 1 }
    : { inputRecords: 1, inputBytes: 1, outputRecords: 500 + a.index, outputBytes: 1 };
}

const key = (jobId: string, kind: string, index: number): string => `${jobId}/${kind}${index}`;

class World {
  sm: MapReduceStateMachine;

  /** `bounds`: tighter coordinator bounds than lib/limits.ts (every replica uses the same). */
  constructor(private readonly bounds: Partial<CoordinatorBounds> = {}) {
    this.sm = new MapReduceStateMachine(bounds);
  }

  now = 0;
  held = new Map<number, TaskAssignment>();
  sent: (CompleteTaskCommand | FailTaskCommand)[] = [];
  commits = new Map<string, number>();
  undos = new Map<string, number>();
  attempts = new Map<string, number>(); // per job and kind
  /** Map attempts (by id) and the node that holds their output files. */
  mapNode = new Map<number, string>();
  /** Map attempts whose output files died with their node. */
  lostOutputs = new Set<number>();
  /** Reduce attempts that fetched every map output while it existed. */
  fetched = new Set<number>();
  /** Tasks committed and not undone since. */
  live = new Set<string>();

  apply<T extends MrResult>(cmd: MrCommand): T {
    const out = this.sm.apply(cmd);
    if (!out.ok) throw new Error(`refused ${cmd.type}: ${out.error.code} ${out.error.message}`);
    this.afterEach();
    return out.result as T;
  }

  assign(wi: number): TaskAssignment | null {
    const worker = WORKERS[wi]!;
    const peek = this.sm.peekAssignment(worker.id, this.now);
    const r = this.apply<AssignTaskResult>({
      type: 'assignTask',
      worker: worker.id,
      node: worker.node,
      now: this.now,
      leaseMs: LEASE,
    });
    const a = r.assignment;
    if (a === null) {
      expect(peek).toEqual({ reason: r.reason });
      return null;
    }
    expect(peek).toEqual({
      task: { jobId: a.jobId, kind: a.kind, index: a.index },
      backup: a.backup,
    });
    return this.noteAssigned(r, worker.node);
  }

  /** Books an assignment (from assignTask, or a completion's `next`) and checks the barrier. */
  noteAssigned(r: AssignTaskResult, node: string): TaskAssignment | null {
    const a = r.assignment;
    if (a === null) return null;
    if (a.kind === 'map') this.mapNode.set(a.attemptId, node);
    const k = `${a.jobId}/${a.kind}`;
    this.attempts.set(k, (this.attempts.get(k) ?? 0) + 1);
    if (a.kind === 'reduce') {
      // The barrier: every map is done, and the assignment names exactly their committed outputs.
      const job = this.sm.job(a.jobId)!;
      expect(job.progress.mapsDone).toBe(job.progress.maps);
      expect(a.mapOutputs).toEqual(
        a.mapOutputs.map((l) => {
          const loc = this.sm.mapOutput(a.jobId, l.map)!;
          return {
            map: loc.map,
            node: loc.node,
            attemptId: loc.attemptId,
            bytes: loc.partitionBytes[a.index],
          };
        }),
      );
      expect(a.mapOutputs).toHaveLength(a.maps);
    }
    return a;
  }

  /**
   * A reduce fetches its partition from every map's node: if an output died
   * with its node, it reports the fetch failure (giving its task back) and
   * returns false.
   */
  fetch(a: TaskAssignment): boolean {
    if (a.kind !== 'reduce' || this.fetched.has(a.attemptId)) return true;
    const missing = a.mapOutputs.find((l) => this.lostOutputs.has(l.attemptId));
    if (missing === undefined) {
      this.fetched.add(a.attemptId);
      return true;
    }
    const r = this.apply<FetchFailedResult>({
      type: 'fetchFailed',
      attemptId: a.attemptId,
      map: missing.map,
      node: missing.node,
      now: this.now,
      release: true,
    });
    for (const t of r.redoneMaps) this.noteUndo(t.jobId, t.index);
    return false;
  }

  /**
   * Reports `a` done; with `next` (a worker), asks for that worker's next
   * task in the same command and returns what it got, after checking that
   * a twin replica answers and ends alike with the completion and then
   * assignTask.
   */
  complete(a: TaskAssignment, next?: number): TaskAssignment | null {
    if (!this.fetch(a)) return null;
    const base: CompleteTaskCommand = {
      type: 'completeTask',
      attemptId: a.attemptId,
      now: this.now,
      output:
        a.kind === 'map'
          ? { kind: 'map', partitionBytes: Array.from({ length: a.reducers }, () => a.index) }
          : { kind: 'reduce', bytes: a.index },
      counters: countersOf(a),
    };
    if (next === undefined) {
      this.sent.push(base);
      this.deliver(base);
      return null;
    }
    const worker = WORKERS[next]!;
    const cmd: CompleteTaskCommand = {
      ...base,
      next: { worker: worker.id, node: worker.node, leaseMs: LEASE },
    };
    const twin = MapReduceStateMachine.fromSnapshot(this.sm.snapshot(), this.bounds);
    const alone = twin.apply(base);
    const after = twin.apply({
      type: 'assignTask',
      worker: worker.id,
      node: worker.node,
      now: this.now,
      leaseMs: LEASE,
    });
    this.sent.push(cmd);
    const { next: got, ...completed } = this.deliver(cmd) as CompleteTaskResult;
    expect(alone).toEqual({ ok: true, result: completed });
    expect(after).toEqual({ ok: true, result: got });
    expect(Buffer.from(twin.snapshot()).equals(Buffer.from(this.sm.snapshot()))).toBe(true);
    return got?.assignment ?? null;
  }

  /**
   * Applies a report (again, for a duplicate). A completion's `next`
   * assignment is booked; a duplicate's is nobody's (its answer was lost)
   * and runs out its lease.
   */
  deliver(cmd: CompleteTaskCommand | FailTaskCommand): CompleteTaskResult | undefined {
    if (cmd.type === 'failTask') {
      this.apply(cmd);
      return undefined;
    }
    const r = this.apply<CompleteTaskResult>(cmd);
    if (r.next !== undefined && cmd.next !== undefined) this.noteAssigned(r.next, cmd.next.node);
    if (r.committed) {
      if (r.task.kind === 'reduce') expect(this.fetched.has(cmd.attemptId)).toBe(true);
      const k = key(r.task.jobId, r.task.kind, r.task.index);
      // Never committed twice without its output being lost in between.
      expect(this.live.has(k)).toBe(false);
      this.live.add(k);
      this.commits.set(k, (this.commits.get(k) ?? 0) + 1);
    }
    return r;
  }

  noteUndo(jobId: string, index: number): void {
    const k = key(jobId, 'map', index);
    expect(this.live.delete(k)).toBe(true);
    this.undos.set(k, (this.undos.get(k) ?? 0) + 1);
  }

  /** Invariants that hold after every command. */
  afterEach(): void {
    const running = this.sm.runningAttempts();
    for (const job of this.sm.jobs()) {
      const tasks = this.sm.tasks(job.jobId);
      const inProgress = new Set(
        tasks
          .filter((t) => t.state === 'inProgress')
          .map((t) => key(job.jobId, t.task.kind, t.task.index)),
      );
      const runningHere = running.filter((a) => a.task.jobId === job.jobId);
      if (['done', 'failed', 'cancelled'].includes(job.status)) {
        expect(runningHere).toEqual([]);
        continue;
      }
      // A task is in progress exactly when some attempt runs it.
      expect(new Set(runningHere.map((a) => key(job.jobId, a.task.kind, a.task.index)))).toEqual(
        inProgress,
      );
      expect(job.progress.mapsDone).toBe(
        tasks.filter((t) => t.task.kind === 'map' && t.state === 'done').length,
      );
      if (job.status === 'reducing') expect(job.progress.mapsDone).toBe(job.progress.maps);
      if (job.status === 'mapping') expect(job.progress.mapsDone).toBeLessThan(job.progress.maps);
      for (const t of tasks) if (t.state === 'done') expect(t.committedAttempt).toBeDefined();
    }
  }

  step(act: Action): void {
    switch (act.kind) {
      case 'assign': {
        if (this.held.has(act.w)) return;
        const a = this.assign(act.w);
        if (a !== null) this.held.set(act.w, a);
        return;
      }
      case 'complete': {
        const a = this.held.get(act.w);
        if (a === undefined) return;
        this.held.delete(act.w);
        this.complete(a);
        return;
      }
      case 'completeNext': {
        const a = this.held.get(act.w);
        if (a === undefined) return;
        this.held.delete(act.w);
        const next = this.complete(a, act.w);
        if (next !== null) this.held.set(act.w, next);
        return;
      }
      case 'fail': {
        const a = this.held.get(act.w);
        if (a === undefined) return;
        this.held.delete(act.w);
        const cmd: FailTaskCommand = {
          type: 'failTask',
          attemptId: a.attemptId,
          now: this.now,
          error: 'boom',
          ...(act.bad && a.kind === 'map' ? { badRecordOffset: a.split.start } : {}),
        };
        this.sent.push(cmd);
        this.deliver(cmd);
        return;
      }
      case 'renew': {
        const a = this.held.get(act.w);
        if (a !== undefined) {
          this.apply({ type: 'renewTask', attemptId: a.attemptId, now: this.now, leaseMs: LEASE });
        }
        return;
      }
      case 'tick':
        this.now += act.ms;
        this.apply({ type: 'expireLeases', now: this.now });
        return;
      case 'crash':
        this.held.delete(act.w);
        return;
      case 'nodeLost': {
        const node = NODES[act.n]!;
        for (const [wi] of this.held) if (WORKERS[wi]!.node === node) this.held.delete(wi);
        for (const [id, n] of this.mapNode) if (n === node) this.lostOutputs.add(id);
        // keepOutputs bets on the node's disk coming back; here it never does, so
        // reducers must recover through fetchFailed.
        const r = this.apply<NodeLostResult>({
          type: 'nodeLost',
          node,
          now: this.now,
          keepOutputs: act.keep,
        });
        for (const t of r.redoneMaps) this.noteUndo(t.jobId, t.index);
        return;
      }
      case 'dup': {
        const cmd = this.sent[act.i % Math.max(1, this.sent.length)];
        if (cmd !== undefined) this.deliver(cmd);
        return;
      }
      case 'shuffle': {
        const a = this.held.get(act.w);
        if (a?.kind !== 'reduce') return;
        if (this.fetch(a))
          this.apply({ type: 'shuffleDone', attemptId: a.attemptId, now: this.now });
        else this.held.delete(act.w);
        return;
      }
      case 'fetchFail': {
        const a = this.held.get(act.w);
        if (a?.kind !== 'reduce' || a.mapOutputs.length === 0) return;
        const loc = a.mapOutputs[act.m % a.mapOutputs.length]!;
        const r = this.apply<FetchFailedResult>({
          type: 'fetchFailed',
          attemptId: a.attemptId,
          map: loc.map,
          node: loc.node,
          now: this.now,
          release: act.release,
        });
        for (const t of r.redoneMaps) this.noteUndo(t.jobId, t.index);
        if (r.released) this.held.delete(act.w);
        return;
      }
      case 'failover': {
        const bytes = this.sm.snapshot();
        const copy = MapReduceStateMachine.fromSnapshot(bytes, this.bounds);
        expect(Buffer.from(copy.snapshot()).equals(Buffer.from(bytes))).toBe(true);
        this.sm = copy;
        this.apply({ type: 'rebaseLeases', now: this.now, leaseMs: LEASE });
        return;
      }
    }
  }

  /** Fault-free: complete what is held, then let every worker take and finish tasks until all jobs end. */
  drain(): void {
    for (const [wi, a] of [...this.held]) {
      this.held.delete(wi);
      this.complete(a);
    }
    for (let round = 0; round < 500; round++) {
      if (this.sm.jobs().every((j) => FINISHED.includes(j.status))) return;
      let progressed = false;
      for (let wi = 0; wi < WORKERS.length; wi++) {
        const a = this.assign(wi);
        if (a !== null) {
          this.complete(a);
          progressed = true;
        }
      }
      if (!progressed) {
        this.now += LEASE;
        this.apply({ type: 'expireLeases', now: this.now });
      }
    }
    throw new Error(
      `jobs did not finish: ${JSON.stringify(this.sm.jobs().map((j) => [j.jobId, j.status, j.progress]))}`,
    );
  }
}

describe('coordinator under random faults', () => {
  it('drives every job to done, committing each task exactly once per need and counting once', () => {
    fc.assert(
      fc.property(
        fc.array(jobSpec, { minLength: 1, maxLength: 2 }),
        fc.array(action, { minLength: 10, maxLength: 100, size: 'max' }),
        (specs, actions) => {
          const world = new World();
          specs.forEach((s, j) => {
            const jobId = `job${j}`;
            world.apply({
              type: 'submitJob',
              jobId,
              module: '/m.js',
              output: `/out/${jobId}`,
              splits: Array.from({ length: s.maps }, (_, i) => ({
                file: `/in/${i}`,
                start: 10 * i,
                end: 10 * i + 10,
              })),
              reducers: s.reducers,
              options: {
                skipBadRecords: s.skipBadRecords,
                backupTasks: s.backupTasks,
                backupAfterMs: s.backupAfterMs,
                maxTaskFailures: 64,
              },
              now: 0,
            });
          });
          for (const act of actions) world.step(act);
          world.drain();
          specs.forEach((s, j) => {
            const jobId = `job${j}`;
            const job = world.sm.job(jobId)!;
            expect(job.status).toBe('done');
            for (let i = 0; i < s.maps; i++) {
              const k = key(jobId, 'map', i);
              // Once, plus at most once per time its output was lost (a redo may become moot
              // when the reduces finish first).
              expect(world.commits.get(k) ?? 0).toBeGreaterThanOrEqual(1);
              expect(world.commits.get(k) ?? 0).toBeLessThanOrEqual(1 + (world.undos.get(k) ?? 0));
            }
            for (let r = 0; r < s.reducers; r++)
              expect(world.commits.get(key(jobId, 'reduce', r))).toBe(1);
            const expectMapRecords = Array.from({ length: s.maps }, (_, i) => 1000 + i).reduce(
              (x, y) => x + y,
              0,
            );
            const expectReduceRecords = Array.from(
              { length: s.reducers },
              (_, r) => 500 + r,
            ).reduce((x, y) => x + y, 0);
            expect(job.counters.mapInputRecords).toBe(expectMapRecords);
            expect(job.counters.reduceOutputRecords).toBe(expectReduceRecords);
            expect(job.counters.mapAttempts).toBe(world.attempts.get(`${jobId}/map`) ?? 0);
            expect(job.counters.reduceAttempts).toBe(world.attempts.get(`${jobId}/reduce`) ?? 0);
            // (A map reset for a lost output after the last reduce fetched it stays undone.)
            expect(job.progress.reducesDone).toBe(s.reducers);
          });
        },
      ),
      { numRuns: RUNS },
    );
  });
});

/** Job-level commands drawn only in the tight-bounds property. */
type JobAction =
  | { kind: 'submit'; maps: number; reducers: number }
  | { kind: 'cancel'; j: number }
  | { kind: 'forget'; j: number };

const jobAction: fc.Arbitrary<JobAction> = fc.oneof(
  fc.record({
    kind: fc.constant('submit' as const),
    maps: fc.integer({ min: 0, max: 3 }),
    reducers: fc.integer({ min: 1, max: 2 }),
  }),
  fc.record({ kind: fc.constant('cancel' as const), j: fc.nat(6) }),
  fc.record({ kind: fc.constant('forget' as const), j: fc.nat(6) }),
);

describe('coordinator at tight bounds', () => {
  it('reaches its attempt, job and skip bounds without breaking an invariant, and every job ends', () => {
    fc.assert(
      fc.property(
        fc.record({
          taskAttemptsMax: fc.integer({ min: 1, max: 4 }),
          jobsMax: fc.integer({ min: 1, max: 3 }),
          skippedRecordsMax: fc.integer({ min: 0, max: 1 }),
        }),
        fc.array(fc.oneof({ weight: 8, arbitrary: action }, { weight: 2, arbitrary: jobAction }), {
          minLength: 10,
          maxLength: 100,
          size: 'max',
        }),
        (bounds, actions) => {
          const world = new World(bounds);
          let submitted = 0;
          const refusedOk = (out: MrApplied, codes: string[]): void => {
            if (!out.ok) expect(codes).toContain(out.error.code);
            world.afterEach();
          };
          for (const act of actions) {
            if (act.kind === 'submit') {
              const jobId = `job${submitted++}`;
              refusedOk(
                world.sm.apply({
                  type: 'submitJob',
                  jobId,
                  module: '/m.js',
                  output: `/out/${jobId}`,
                  splits: Array.from({ length: act.maps }, (_, i) => ({
                    file: `/in/${i}`,
                    start: 10 * i,
                    end: 10 * i + 10,
                  })),
                  reducers: act.reducers,
                  options: { skipBadRecords: true, skipAfterCrashes: 1, maxTaskFailures: 2 },
                  now: world.now,
                }),
                ['OVERLOADED'],
              );
              expect(world.sm.jobs().length).toBeLessThanOrEqual(bounds.jobsMax);
            } else if (act.kind === 'cancel') {
              refusedOk(
                world.sm.apply({ type: 'cancelJob', jobId: `job${act.j}`, now: world.now }),
                ['NOT_FOUND', 'FAILED_PRECONDITION'],
              );
            } else if (act.kind === 'forget') {
              refusedOk(world.sm.apply({ type: 'forgetJob', jobId: `job${act.j}` }), [
                'NOT_FOUND',
                'FAILED_PRECONDITION',
              ]);
            } else {
              world.step(act);
            }
          }
          world.drain();
          for (const job of world.sm.jobs()) {
            expect(FINISHED).toContain(job.status);
            if (job.status === 'failed') {
              expect(job.error).toMatch(/attempted|lost its output|failed \d+ times|bad records/);
            }
            if (job.status === 'done') expect(job.progress.reducesDone).toBe(job.progress.reduces);
          }
          for (const [k, n] of world.commits) if (k.includes('/reduce')) expect(n).toBe(1);
        },
      ),
      { numRuns: Math.ceil((RUNS * 2) / 3) },
    );
  });
});
