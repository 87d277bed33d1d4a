/**
 * One test per coordinator rule (MapReduce paper §3.2–§3.7 as types.ts states
 * them): the barrier, commit-once, exactly-once counters, lease expiry,
 * backups, lost nodes, fetch failures, skipping bad records, cancel/forget,
 * and snapshots.
 */
import { describe, expect, it } from 'vitest';
import { limits } from '../../../src/lib/limits.js';
import type {
  AssignTaskResult,
  CancelJobResult,
  FailTaskResult,
  FetchFailedResult,
  LeasesResult,
  NodeLostResult,
  RenewTaskResult,
  ShuffleDoneResult,
  SubmitJobResult,
  TaskAssignment,
} from '../../../src/mapreduce/core/index.js';
import {
  LEASE,
  MapReduceStateMachine,
  assign,
  complete,
  completeNext,
  completion,
  countersFor,
  must,
  ok,
  runToDone,
  submit,
} from './helpers.js';

function jobOf(sm: MapReduceStateMachine, id = 'j1') {
  const j = sm.job(id);
  expect(j).toBeDefined();
  return j!;
}

describe('a job without faults', () => {
  it('runs every map once, then every reduce once, and ends done with summed counters', () => {
    const sm = new MapReduceStateMachine();
    const r = ok<SubmitJobResult>(sm, submit('j1', 3, 2));
    expect(r).toEqual({ type: 'submitJob', jobId: 'j1', maps: 3, reducers: 2, forgotten: [] });
    expect(jobOf(sm).status).toBe('submitted');
    const kinds: string[] = [];
    for (let i = 0; i < 5; i++) {
      const a = must(assign(sm, 'n1:w0', 'n1', i));
      kinds.push(`${a.kind}${a.index}`);
      expect(a.attempt).toBe(1);
      expect(a.backup).toBe(false);
      expect(jobOf(sm).status).toBe(a.kind === 'map' ? 'mapping' : 'reducing');
      complete(sm, a, i + 1);
    }
    expect(kinds).toEqual(['map0', 'map1', 'map2', 'reduce0', 'reduce1']);
    expect(assign(sm, 'n1:w0', 'n1', 9)).toBeNull();
    const j = jobOf(sm);
    expect(j.status).toBe('done');
    expect(j.finishedAt).toBe(5);
    expect(j.progress).toEqual({
      maps: 3,
      mapsDone: 3,
      mapsRunning: 0,
      reduces: 2,
      reducesDone: 2,
      reducesRunning: 0,
    });
    expect(j.counters).toMatchObject({
      mapInputRecords: 30,
      mapOutputBytes: 600,
      reduceOutputRecords: 6,
      mapAttempts: 3,
      reduceAttempts: 2,
      reExecutions: 0,
      backupAttempts: 0,
    });
    expect(j.inputBytes).toBe(300);
  });

  it('a map assignment carries its split and the job; a reduce carries every map output location', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, { ...submit('j1', 2, 3), params: { pattern: 'x+' } });
    const m0 = must(assign(sm, 'n1:w0', 'n1', 5));
    expect(m0).toMatchObject({
      kind: 'map',
      index: 0,
      jobId: 'j1',
      module: '/jobs/wc.js',
      maps: 2,
      reducers: 3,
      split: { file: '/in/f0.txt', start: 0, end: 100 },
      skipOffsets: [],
      params: { pattern: 'x+' },
      leaseDeadline: 5 + LEASE,
    });
    const m1 = must(assign(sm, 'n2:w0', 'n2', 5));
    complete(sm, m0);
    complete(sm, m1);
    const r = must(assign(sm, 'n3:w0', 'n3', 6));
    expect(r.kind).toBe('reduce');
    expect(r.kind === 'reduce' && r.mapOutputs).toEqual([
      { map: 0, node: 'n1', attemptId: m0.attemptId, bytes: 7 },
      { map: 1, node: 'n2', attemptId: m1.attemptId, bytes: 7 },
    ]);
    expect(sm.mapOutput('j1', 1)).toEqual({
      map: 1,
      node: 'n2',
      attemptId: m1.attemptId,
      partitionBytes: [7, 7, 7],
    });
    // A finished job keeps its status only.
    for (let j = 0; j < 3; j++) complete(sm, j === 0 ? r : must(assign(sm, 'n3:w0', 'n3', 7)));
    expect(sm.job('j1')).toMatchObject({
      status: 'done',
      progress: { mapsDone: 2, reducesDone: 3 },
    });
    expect(sm.job('j1')?.counters.mapInputRecords).toBe(20);
    expect(sm.mapOutput('j1', 1)).toBeUndefined();
    expect(sm.tasks('j1')).toEqual([]);
    expect(sm.attempt(m0.attemptId)).toBeUndefined();
  });

  it('a worker id may be a maximal node id plus a thread suffix', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 1, 1));
    const node = 'n'.repeat(limits.idBytesMax);
    expect(must(assign(sm, `${node}:w12`, node)).kind).toBe('map');
  });

  it('jobs are served in submission order; an empty input goes straight to the reduces', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('a', 1, 1));
    ok(sm, submit('b', 0, 1));
    const first = must(assign(sm, 'w1', 'n1'));
    expect([first.jobId, first.kind]).toEqual(['a', 'map']);
    const second = must(assign(sm, 'w2', 'n1'));
    expect([second.jobId, second.kind]).toEqual(['b', 'reduce']);
    expect(second.kind === 'reduce' && second.mapOutputs).toEqual([]);
  });
});

describe('the barrier', () => {
  it('holds every reduce until the last map is done', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 2, 2, { backupTasks: false }));
    const m0 = must(assign(sm, 'w1', 'n1'));
    const m1 = must(assign(sm, 'w2', 'n1'));
    expect(
      sm.apply({ type: 'assignTask', worker: 'w3', node: 'n1', now: 0, leaseMs: LEASE }),
    ).toEqual({
      ok: true,
      result: { type: 'assignTask', assignment: null, reason: 'barrier' },
    });
    complete(sm, m0);
    expect(assign(sm, 'w3', 'n1')).toBeNull();
    complete(sm, m1);
    expect(must(assign(sm, 'w3', 'n1')).kind).toBe('reduce');
  });

  it('says allAssigned when only reduces run, and noJobs when nothing is active', () => {
    const sm = new MapReduceStateMachine();
    expect(
      ok(sm, { type: 'assignTask', worker: 'w', node: 'n', now: 0, leaseMs: LEASE }),
    ).toMatchObject({
      reason: 'noJobs',
    });
    ok(sm, submit('j1', 0, 1, { backupTasks: false }));
    must(assign(sm, 'w1', 'n1'));
    expect(
      ok(sm, { type: 'assignTask', worker: 'w', node: 'n', now: 0, leaseMs: LEASE }),
    ).toMatchObject({
      reason: 'allAssigned',
    });
  });
});

describe('commit once', () => {
  it('ignores a duplicate completion and does not count it twice', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 2, 1));
    const a = must(assign(sm, 'w1', 'n1'));
    expect(complete(sm, a)).toMatchObject({ committed: true, jobStatus: 'mapping' });
    const before = sm.snapshot();
    expect(complete(sm, a)).toEqual({
      type: 'completeTask',
      committed: false,
      task: { jobId: 'j1', kind: 'map', index: 0 },
      reason: 'alreadyDone',
    });
    expect(sm.snapshot()).toEqual(before);
    expect(jobOf(sm).counters.mapInputRecords).toBe(10);
  });

  it('ignores completions of unknown attempts and of finished jobs', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 1, 1));
    const m = must(assign(sm, 'w1', 'n1'));
    expect(complete(sm, { ...m, attemptId: 99 })).toMatchObject({
      committed: false,
      reason: 'unknownAttempt',
    });
    complete(sm, m);
    const r = must(assign(sm, 'w1', 'n1'));
    complete(sm, r);
    expect(complete(sm, r)).toMatchObject({ committed: false, reason: 'jobFinished' });
  });

  it('ignores a failure report after the task was committed', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 2, 1));
    const a = must(assign(sm, 'w1', 'n1'));
    complete(sm, a);
    expect(
      ok<FailTaskResult>(sm, { type: 'failTask', attemptId: a.attemptId, now: 2, error: 'late' }),
    ).toMatchObject({
      action: 'ignored',
      reason: 'alreadyDone',
    });
    expect(jobOf(sm).counters.failedAttempts).toBe(0);
  });

  it('refuses an output that does not fit the task, changing nothing', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 1, 2));
    const a = must(assign(sm, 'w1', 'n1'));
    const before = sm.snapshot();
    const counters = { inputRecords: 1, inputBytes: 1, outputRecords: 1, outputBytes: 1 };
    for (const output of [
      { kind: 'map', partitionBytes: [1] },
      { kind: 'reduce', bytes: 1 },
      { kind: 'map', partitionBytes: [1, -1] },
      { kind: 'map', partitionBytes: [1, 2], skippedOffsets: [0.5] },
    ]) {
      const out = sm.apply({
        type: 'completeTask',
        attemptId: a.attemptId,
        now: 1,
        output,
        counters,
      });
      expect(out.ok ? 'accepted' : out.error.code).toBe('INVALID_ARGUMENT');
    }
    expect(sm.snapshot()).toEqual(before);
  });
});

describe('a completion that asks for the next task', () => {
  /**
   * Two replicas of `sm`: `step` completes `a` on one with `next` and on the
   * other with completeTask then assignTask; both must answer alike and end
   * in equal states. Returns the assignment.
   */
  function twin(sm: MapReduceStateMachine) {
    const one = MapReduceStateMachine.fromSnapshot(sm.snapshot());
    const two = MapReduceStateMachine.fromSnapshot(sm.snapshot());
    const step = (a: TaskAssignment, now: number, worker: string): TaskAssignment | null => {
      const { next, ...completed } = completeNext(one, a, now, worker, 'n1');
      expect(completed).toEqual(complete(two, a, now));
      const after = ok<AssignTaskResult>(two, {
        type: 'assignTask',
        worker,
        node: 'n1',
        now,
        leaseMs: LEASE,
      });
      expect(next).toEqual(after);
      expect(Buffer.from(one.snapshot()).equals(Buffer.from(two.snapshot()))).toBe(true);
      return after.assignment;
    };
    return { one, two, step };
  }

  it('assigns what assignTask right after the completion would, through the barrier to the end', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 3, 2, { backupTasks: false }));
    const t = twin(sm);
    let a = must(assign(t.one, 'n1:w0', 'n1', 0));
    must(assign(t.two, 'n1:w0', 'n1', 0));
    const kinds: string[] = [];
    for (let now = 1; ; now++) {
      kinds.push(`${a.kind}${a.index}`);
      const next = t.step(a, now, 'n1:w0');
      if (next === null) break;
      a = next;
    }
    // The last map's completion hands out the first reduce; the last reduce's, nothing.
    expect(kinds).toEqual(['map0', 'map1', 'map2', 'reduce0', 'reduce1']);
    expect(t.one.job('j1')?.status).toBe('done');
    expect(completeNext(t.one, a, 9).next).toEqual({
      type: 'assignTask',
      assignment: null,
      reason: 'noJobs',
    });
  });

  it('assigns even when the completion is ignored (a duplicate, the losing copy)', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 3, 1, { backupTasks: false }));
    const m0 = must(assign(sm, 'w1', 'n1'));
    complete(sm, m0, 1);
    const t = twin(sm);
    // A retried report of m0 (its first answer was lost) still gets the worker a task.
    expect(t.step(m0, 2, 'w1')).toMatchObject({ kind: 'map', index: 1 });
    expect(completeNext(t.one, m0, 3, 'w1').next?.assignment).toMatchObject({
      kind: 'map',
      index: 2,
    });
  });

  it('says why there is no task: the barrier while another map runs', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 2, 1, { backupTasks: false }));
    const m0 = must(assign(sm, 'w1', 'n1'));
    must(assign(sm, 'w2', 'n1'));
    const t = twin(sm);
    expect(t.step(m0, 1, 'w1')).toBeNull();
    expect(completeNext(t.one, m0, 2, 'w1').next).toMatchObject({ reason: 'barrier' });
  });

  it('refuses a bad next request, changing nothing (not even the completion)', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 2, 1));
    const a = must(assign(sm, 'w1', 'n1'));
    const before = sm.snapshot();
    for (const next of [
      'w1',
      { worker: 'a/b', node: 'n1', leaseMs: LEASE },
      { worker: 'w1', node: '', leaseMs: LEASE },
      { worker: 'w1', node: 'n1', leaseMs: limits.mrLeaseMsMin - 1 },
      { worker: 'w1', node: 'n1' },
    ]) {
      const out = sm.apply({ ...completion(a, 1), next });
      expect(out.ok ? 'accepted' : out.error.code).toBe('INVALID_ARGUMENT');
    }
    expect(sm.snapshot()).toEqual(before);
  });
});

describe('leases', () => {
  it('an expired attempt gives its task to the next worker, which counts a re-execution', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 1, 1, { backupTasks: false }));
    const a = must(assign(sm, 'w1', 'n1', 0));
    expect(sm.nextLeaseDeadline()).toBe(LEASE);
    expect(ok<LeasesResult>(sm, { type: 'expireLeases', now: LEASE - 1 }).attempts).toEqual([]);
    expect(assign(sm, 'w2', 'n2', LEASE - 1)).toBeNull();
    expect(ok<LeasesResult>(sm, { type: 'expireLeases', now: LEASE }).attempts).toEqual([
      a.attemptId,
    ]);
    expect(sm.nextLeaseDeadline()).toBe(Infinity);
    expect(sm.attempt(a.attemptId)?.state).toBe('expired');
    const b = must(assign(sm, 'w2', 'n2', LEASE));
    expect([b.kind, b.index, b.attempt]).toEqual(['map', 0, 2]);
    expect(jobOf(sm).counters).toMatchObject({
      expiredAttempts: 1,
      reExecutions: 1,
      mapAttempts: 2,
    });
  });

  it('renewing extends the lease; a renewal of an expired attempt revives it while its task is not done', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 1, 1));
    const a = must(assign(sm, 'w1', 'n1', 0));
    expect(
      ok<RenewTaskResult>(sm, {
        type: 'renewTask',
        attemptId: a.attemptId,
        now: 5000,
        leaseMs: LEASE,
      }),
    ).toEqual({
      type: 'renewTask',
      action: 'continue',
      leaseDeadline: 5000 + LEASE,
    });
    expect(ok<LeasesResult>(sm, { type: 'expireLeases', now: LEASE }).attempts).toEqual([]);
    ok(sm, { type: 'expireLeases', now: 5000 + LEASE });
    const b = must(assign(sm, 'w2', 'n2', 20_000));
    // The first attempt was only slow: it comes back, and its completion still counts.
    expect(
      ok<RenewTaskResult>(sm, {
        type: 'renewTask',
        attemptId: a.attemptId,
        now: 20_001,
        leaseMs: LEASE,
      }).action,
    ).toBe('continue');
    expect(sm.runningAttempts().map((x) => x.attemptId)).toEqual([a.attemptId, b.attemptId]);
    expect(complete(sm, a)).toMatchObject({ committed: true });
    expect(sm.attempt(b.attemptId)?.state).toBe('superseded');
    expect(
      ok<RenewTaskResult>(sm, {
        type: 'renewTask',
        attemptId: b.attemptId,
        now: 20_002,
        leaseMs: LEASE,
      }),
    ).toEqual({
      type: 'renewTask',
      action: 'stop',
      reason: 'alreadyDone',
    });
    expect(complete(sm, b)).toMatchObject({ committed: false, reason: 'alreadyDone' });
    expect(jobOf(sm).counters.mapInputRecords).toBe(10);
  });

  it('a completion from an expired attempt whose task is still idle is accepted', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 1, 1));
    const a = must(assign(sm, 'w1', 'n1', 0));
    ok(sm, { type: 'expireLeases', now: LEASE });
    expect(complete(sm, a, LEASE + 1)).toMatchObject({ committed: true });
    expect(must(assign(sm, 'w2', 'n2', LEASE + 2)).kind).toBe('reduce');
  });

  it('rebaseLeases restarts every running lease on the new leader clock', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 2, 1));
    const a = must(assign(sm, 'w1', 'n1', 1_000_000));
    const b = must(assign(sm, 'w2', 'n1', 1_000_000));
    expect(ok<LeasesResult>(sm, { type: 'rebaseLeases', now: 7, leaseMs: 3000 })).toEqual({
      type: 'rebaseLeases',
      attempts: [a.attemptId, b.attemptId],
    });
    expect(sm.nextLeaseDeadline()).toBe(3007);
    expect(ok<LeasesResult>(sm, { type: 'expireLeases', now: 3007 }).attempts).toHaveLength(2);
  });

  it('a task attempted limits.mrTaskAttemptsMax times fails its job', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 1, 1));
    let now = 0;
    for (let i = 0; i < limits.mrTaskAttemptsMax; i++) {
      must(assign(sm, 'w1', 'n1', now));
      now += LEASE;
      ok(sm, { type: 'expireLeases', now });
    }
    const j = jobOf(sm);
    expect(j.status).toBe('failed');
    expect(j.error).toContain('mrTaskAttemptsMax');
    expect(assign(sm, 'w1', 'n1', now)).toBeNull();
  });
});

describe('the attempt bound while several attempts end at once', () => {
  function atTheBound() {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 2, 1, { backupTasks: false }));
    let now = 0;
    for (let i = 1; i < limits.mrTaskAttemptsMax; i++) {
      expect(must(assign(sm, 'w1', 'n1', now)).index).toBe(0);
      now += LEASE;
      ok(sm, { type: 'expireLeases', now });
    }
    const last = must(assign(sm, 'w1', 'n1', now));
    const other = must(assign(sm, 'w2', 'n2', now));
    expect([last.index, last.attempt, other.index]).toEqual([0, limits.mrTaskAttemptsMax, 1]);
    return { sm, now, other };
  }

  it('expiring both fails the job once and drops the other attempt', () => {
    const { sm, now, other } = atTheBound();
    const r = ok<LeasesResult>(sm, { type: 'expireLeases', now: now + LEASE });
    expect(r.attempts).toHaveLength(1);
    expect(sm.job('j1')?.status).toBe('failed');
    expect(sm.attempt(other.attemptId)).toBeUndefined();
    expect(sm.runningAttempts()).toEqual([]);
  });

  it('losing their node fails the job once', () => {
    const { sm, now } = atTheBound();
    ok(sm, { type: 'nodeLost', node: 'n1', now });
    ok(sm, { type: 'nodeLost', node: 'n2', now });
    expect(sm.job('j1')?.status).toBe('failed');
    expect(sm.runningAttempts()).toEqual([]);
  });
});

describe('backup tasks (§3.6)', () => {
  function nearlyDone(maps: number) {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', maps, 1));
    const slow = must(assign(sm, 'slow', 'n1', 0));
    for (let i = 1; i < maps; i++) complete(sm, must(assign(sm, 'fast', 'n2', 10)), 20);
    return { sm, slow };
  }

  it('runs a copy of the last straggler; the first completion wins and counts once', () => {
    const { sm, slow } = nearlyDone(10);
    // Too early: the straggler has not run backupAfterMs yet.
    expect(assign(sm, 'fast', 'n2', limits.mrBackupAfterMsDefault - 1)).toBeNull();
    // Never a backup on the worker that runs the original.
    expect(assign(sm, 'slow', 'n1', limits.mrBackupAfterMsDefault)).toBeNull();
    const copy = must(assign(sm, 'fast', 'n2', limits.mrBackupAfterMsDefault));
    expect(copy).toMatchObject({ kind: 'map', index: 0, backup: true, attempt: 2 });
    // One backup per task.
    expect(assign(sm, 'other', 'n3', limits.mrBackupAfterMsDefault)).toBeNull();
    expect(complete(sm, copy, 6000)).toMatchObject({ committed: true });
    expect(sm.attempt(slow.attemptId)?.state).toBe('superseded');
    expect(complete(sm, slow, 6001)).toMatchObject({ committed: false, reason: 'alreadyDone' });
    expect(sm.mapOutput('j1', 0)?.node).toBe('n2');
    expect(jobOf(sm).counters).toMatchObject({
      backupAttempts: 1,
      reExecutions: 0,
      mapAttempts: 11,
      mapInputRecords: 100,
    });
  });

  it('waits until the phase is nearly done', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 10, 1));
    must(assign(sm, 'a', 'n1', 0));
    must(assign(sm, 'b', 'n1', 0));
    for (let i = 2; i < 10; i++) complete(sm, must(assign(sm, 'fast', 'n2', 10)), 20);
    // Two of ten still running: more than 10% remain.
    expect(assign(sm, 'fast', 'n2', 100_000)).toBeNull();
  });

  it('does not back up a task that runs no longer than twice the mean task time', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 10, 1, { backupAfterMs: 0 }));
    must(assign(sm, 'slow', 'n1', 0));
    for (let i = 1; i < 10; i++) {
      const a = must(assign(sm, 'fast', 'n2', 0));
      complete(sm, a, 1000); // each took 1000 ms
    }
    expect(assign(sm, 'fast', 'n2', 1999)).toBeNull();
    expect(must(assign(sm, 'fast', 'n2', 2000)).backup).toBe(true);
  });

  it('can be turned off per job', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 1, 1, { backupTasks: false }));
    must(assign(sm, 'slow', 'n1', 0));
    expect(assign(sm, 'fast', 'n2', 1e9)).toBeNull();
  });
});

describe('lost nodes (§3.3)', () => {
  function mapsDoneOnTwoNodes() {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 4, 2, { backupTasks: false }));
    for (let i = 0; i < 4; i++)
      complete(sm, must(assign(sm, i % 2 === 0 ? 'a' : 'b', i % 2 === 0 ? 'n1' : 'n2')));
    return sm;
  }

  it('resets the running attempts of the node', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 2, 1));
    const a = must(assign(sm, 'a', 'n1'));
    const b = must(assign(sm, 'b', 'n2'));
    expect(ok<NodeLostResult>(sm, { type: 'nodeLost', node: 'n1', now: 1 })).toEqual({
      type: 'nodeLost',
      resetAttempts: [a.attemptId],
      redoneMaps: [],
    });
    expect(sm.attempt(a.attemptId)?.state).toBe('lost');
    expect(sm.attempt(b.attemptId)?.state).toBe('running');
    expect(complete(sm, a)).toMatchObject({ committed: false, reason: 'attemptNotRunning' });
    const again = must(assign(sm, 'c', 'n3', 2));
    expect([again.index, again.attempt]).toEqual([0, 2]);
    expect(jobOf(sm).counters).toMatchObject({ lostAttempts: 1, reExecutions: 1 });
  });

  it('redoes the done maps whose output was on the node while reduces still need them', () => {
    const sm = mapsDoneOnTwoNodes();
    expect(jobOf(sm).status).toBe('reducing');
    const lost = ok<NodeLostResult>(sm, { type: 'nodeLost', node: 'n1', now: 5 });
    expect(lost.redoneMaps.map((t) => t.index)).toEqual([0, 2]);
    const j = jobOf(sm);
    expect(j.status).toBe('mapping');
    expect(j.progress.mapsDone).toBe(2);
    expect(sm.mapOutput('j1', 0)).toBeUndefined();
    // The barrier holds again: maps 0 and 2 first.
    const redo = [must(assign(sm, 'c', 'n3', 6)), must(assign(sm, 'c', 'n3', 6))];
    expect(redo.map((a) => `${a.kind}${a.index}`)).toEqual(['map0', 'map2']);
    expect(assign(sm, 'd', 'n3', 6)).toBeNull();
    for (const a of redo) complete(sm, a, 7);
    expect(jobOf(sm).counters).toMatchObject({ reExecutions: 2, mapInputRecords: 40 });
    const r = must(assign(sm, 'c', 'n3', 8));
    expect(r.kind === 'reduce' && r.mapOutputs.map((l) => l.node)).toEqual([
      'n3',
      'n2',
      'n3',
      'n2',
    ]);
  });

  it('does not redo maps that no reduce needs any more', () => {
    const sm = mapsDoneOnTwoNodes();
    const r0 = must(assign(sm, 'a', 'n2'));
    const r1 = must(assign(sm, 'b', 'n3'));
    complete(sm, r0);
    expect(
      ok<ShuffleDoneResult>(sm, { type: 'shuffleDone', attemptId: r1.attemptId, now: 3 }),
    ).toEqual({
      type: 'shuffleDone',
      recorded: true,
    });
    expect(ok<NodeLostResult>(sm, { type: 'nodeLost', node: 'n1', now: 5 }).redoneMaps).toEqual([]);
    expect(jobOf(sm).status).toBe('reducing');
    complete(sm, r1);
    expect(jobOf(sm).status).toBe('done');
  });

  it('redoes them when a reduce that has not fetched everything still runs', () => {
    const sm = mapsDoneOnTwoNodes();
    const r0 = must(assign(sm, 'a', 'n2'));
    must(assign(sm, 'b', 'n3'));
    complete(sm, r0);
    expect(
      ok<NodeLostResult>(sm, { type: 'nodeLost', node: 'n1', now: 5 }).redoneMaps,
    ).toHaveLength(2);
  });

  it('with keepOutputs only the attempts are reset; a fetch failure redoes a map later', () => {
    const sm = mapsDoneOnTwoNodes();
    const r0 = must(assign(sm, 'a', 'n1'));
    const r1 = must(assign(sm, 'b', 'n2'));
    expect(
      ok<NodeLostResult>(sm, { type: 'nodeLost', node: 'n1', now: 5, keepOutputs: true }),
    ).toEqual({
      type: 'nodeLost',
      resetAttempts: [r0.attemptId],
      redoneMaps: [],
    });
    expect(sm.mapOutput('j1', 0)?.node).toBe('n1');
    expect(
      ok<FetchFailedResult>(sm, {
        type: 'fetchFailed',
        attemptId: r1.attemptId,
        map: 0,
        node: 'n1',
        now: 6,
      }).redo,
    ).toBe(true);
  });

  it('a reduce running on the lost node is reset too', () => {
    const sm = mapsDoneOnTwoNodes();
    const r0 = must(assign(sm, 'a', 'n1'));
    ok(sm, { type: 'shuffleDone', attemptId: r0.attemptId, now: 1 });
    const r1 = must(assign(sm, 'b', 'n2'));
    ok(sm, { type: 'shuffleDone', attemptId: r1.attemptId, now: 1 });
    const lost = ok<NodeLostResult>(sm, { type: 'nodeLost', node: 'n1', now: 5 });
    expect(lost.resetAttempts).toEqual([r0.attemptId]);
    // r0's reduce must run again and needs the maps from n1.
    expect(lost.redoneMaps.map((t) => t.index)).toEqual([0, 2]);
  });
});

describe('fetch failures', () => {
  it('one fetch failure from a node loses all its outputs at once; only the reduce that needs them reruns', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 6, 2, { backupTasks: false }));
    // Maps 0-3 on n2, 4-5 on n1.
    for (let i = 0; i < 6; i++)
      complete(sm, must(assign(sm, i < 4 ? 'b' : 'a', i < 4 ? 'n2' : 'n1')));
    const r0 = must(assign(sm, 'a', 'n1', 1));
    const r1 = must(assign(sm, 'c', 'n3', 1));
    // r1 fetched everything before n2 died; r0 had not.
    ok(sm, { type: 'shuffleDone', attemptId: r1.attemptId, now: 2 });
    const failed = ok<FetchFailedResult>(sm, {
      type: 'fetchFailed',
      attemptId: r0.attemptId,
      map: 0,
      node: 'n2',
      now: 3,
      release: true,
    });
    expect(failed).toMatchObject({ redo: true, released: true });
    // Every output n2 held is lost now, not only map 0's.
    for (let m = 0; m < 4; m++) expect(sm.mapOutput('j1', m)).toBeUndefined();
    for (let m = 4; m < 6; m++) expect(sm.mapOutput('j1', m)?.node).toBe('n1');
    // The reduce that had everything goes on and commits.
    expect(complete(sm, r1, 4)).toMatchObject({ committed: true });
    // The lost maps rerun on n1, then the released reduce once, fetching nothing from n2.
    let now = 5;
    for (;;) {
      const a = assign(sm, 'a', 'n1', now);
      if (a === null) break;
      if (a.kind === 'reduce') expect(a.mapOutputs.every((o) => o.node === 'n1')).toBe(true);
      complete(sm, a, ++now);
    }
    const j = jobOf(sm);
    expect(j.status).toBe('done');
    // Four maps and one reduce ran again: nothing more (one discovery per map cost a reduce each).
    expect(j.counters.reExecutions).toBe(5);
  });

  function reducing() {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 2, 2, { backupTasks: false }));
    complete(sm, must(assign(sm, 'a', 'n1')));
    complete(sm, must(assign(sm, 'b', 'n2')));
    const r0 = must(assign(sm, 'c', 'n3'));
    const r1 = must(assign(sm, 'd', 'n3'));
    return { sm, r0, r1 };
  }

  it('marks the map for re-execution; a second report of the same location is stale', () => {
    const { sm, r0, r1 } = reducing();
    expect(
      ok<FetchFailedResult>(sm, {
        type: 'fetchFailed',
        attemptId: r0.attemptId,
        map: 1,
        node: 'n2',
        now: 1,
      }),
    ).toEqual({
      type: 'fetchFailed',
      redo: true,
      redoneMaps: [{ jobId: 'j1', kind: 'map', index: 1 }],
      released: false,
    });
    expect(
      ok<FetchFailedResult>(sm, {
        type: 'fetchFailed',
        attemptId: r1.attemptId,
        map: 1,
        node: 'n2',
        now: 1,
      }),
    ).toEqual({
      type: 'fetchFailed',
      redo: false,
      redoneMaps: [],
      released: false,
      reason: 'staleLocation',
    });
    const m = must(assign(sm, 'e', 'n4', 2));
    expect([m.kind, m.index, m.attempt]).toEqual(['map', 1, 2]);
    complete(sm, m, 3);
    expect(sm.mapOutput('j1', 1)?.node).toBe('n4');
    // The reduces kept their tasks and finish.
    complete(sm, r0, 4);
    complete(sm, r1, 4);
    expect(jobOf(sm).status).toBe('done');
  });

  it('with release, the reduce gives its task back without counting a failure', () => {
    const { sm, r0 } = reducing();
    expect(
      ok<FetchFailedResult>(sm, {
        type: 'fetchFailed',
        attemptId: r0.attemptId,
        map: 0,
        node: 'n1',
        now: 1,
        release: true,
      }),
    ).toEqual({
      type: 'fetchFailed',
      redo: true,
      redoneMaps: [{ jobId: 'j1', kind: 'map', index: 0 }],
      released: true,
    });
    expect(
      ok<FetchFailedResult>(sm, {
        type: 'fetchFailed',
        attemptId: r0.attemptId,
        map: 0,
        node: 'n1',
        now: 1,
        release: true,
      }),
    ).toEqual({
      type: 'fetchFailed',
      redo: false,
      redoneMaps: [],
      released: false,
      reason: 'attemptNotRunning',
    });
    expect(sm.attempt(r0.attemptId)?.state).toBe('released');
    complete(sm, must(assign(sm, 'e', 'n4', 2)), 3); // the map
    const again = must(assign(sm, 'e', 'n4', 4));
    expect([again.kind, again.index, again.attempt]).toEqual(['reduce', 0, 2]);
    expect(
      sm.tasks('j1').find((t) => t.task.kind === 'reduce' && t.task.index === 0)?.failures,
    ).toBe(0);
  });

  it('a map attempt cannot report a fetch failure', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 1, 1));
    const m = must(assign(sm, 'a', 'n1'));
    const out = sm.apply({
      type: 'fetchFailed',
      attemptId: m.attemptId,
      map: 0,
      node: 'n1',
      now: 1,
    });
    expect(out.ok ? 'accepted' : out.error.code).toBe('INVALID_ARGUMENT');
  });
});

describe('failures and bad records (§3.7)', () => {
  it('retries a failed task, then fails the job after maxTaskFailures', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 2, 1, { maxTaskFailures: 3 }));
    const other = must(assign(sm, 'b', 'n2'));
    for (let i = 1; i <= 3; i++) {
      const a = must(assign(sm, 'a', 'n1', i));
      expect([a.index, a.attempt]).toEqual([1, i]);
      const r = ok<FailTaskResult>(sm, {
        type: 'failTask',
        attemptId: a.attemptId,
        now: i,
        error: `boom ${i}`,
      });
      expect(r.action).toBe(i < 3 ? 'retry' : 'jobFailed');
    }
    const j = jobOf(sm);
    expect(j.status).toBe('failed');
    expect(j.error).toBe('map task 1 failed 3 times; last error: boom 3');
    expect(j.finishedAt).toBe(3);
    expect(sm.attempt(other.attemptId)).toBeUndefined();
    expect(
      ok<RenewTaskResult>(sm, {
        type: 'renewTask',
        attemptId: other.attemptId,
        now: 4,
        leaseMs: LEASE,
      }),
    ).toEqual({
      type: 'renewTask',
      action: 'stop',
      reason: 'jobFinished',
    });
    expect(sm.runningAttempts()).toEqual([]);
    expect(j.progress).toMatchObject({ mapsRunning: 0, reducesRunning: 0 });
  });

  it('skips a record that crashed the map twice, reports it, and never fails the job for it', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 1, 1, { skipBadRecords: true, maxTaskFailures: 1 }));
    const a1 = must(assign(sm, 'a', 'n1', 0));
    expect(
      ok<FailTaskResult>(sm, {
        type: 'failTask',
        attemptId: a1.attemptId,
        now: 1,
        error: 'TypeError',
        badRecordOffset: 42,
      }).action,
    ).toBe('retry');
    const a2 = must(assign(sm, 'a', 'n1', 2));
    expect(a2.kind === 'map' && a2.skipOffsets).toEqual([]);
    expect(
      ok<FailTaskResult>(sm, {
        type: 'failTask',
        attemptId: a2.attemptId,
        now: 3,
        error: 'TypeError',
        badRecordOffset: 42,
      }).action,
    ).toBe('skipRecord');
    const a3 = must(assign(sm, 'a', 'n1', 4));
    expect(a3.kind === 'map' && a3.skipOffsets).toEqual([42]);
    complete(sm, a3, 5);
    complete(sm, must(assign(sm, 'a', 'n1', 6)), 7);
    const j = jobOf(sm);
    expect(j.status).toBe('done');
    expect(j.skipped).toEqual([{ map: 0, file: '/in/f0.txt', offset: 42, error: 'TypeError' }]);
    expect(j.counters).toMatchObject({ skippedRecords: 1, failedAttempts: 2 });
  });

  it('lists every record a map skipped on its own with its error, up to the per-task bound; counts them all', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 2, 1, { skipBadRecords: true }));
    const listedMax = limits.mrSkippedRecordsListedMax;
    const offsets = (base: number, n: number): number[] =>
      Array.from({ length: n }, (_, i) => base + i);
    for (const [n, now] of [
      [3, 1],
      [listedMax, 2],
    ] as const) {
      const a = must(assign(sm, 'a', 'n1', now));
      const skippedOffsets = offsets(a.index * 1000, n);
      ok(sm, {
        type: 'completeTask',
        attemptId: a.attemptId,
        now,
        output: {
          kind: 'map',
          partitionBytes: [7],
          skippedOffsets,
          skippedErrors: skippedOffsets.map((o) => `bad ${o} ${'x'.repeat(300)}`),
        },
        // The task skipped more than it could list.
        counters: { ...countersFor(a), skippedRecords: n + 5 },
      });
    }
    runToDone(sm);
    const j = jobOf(sm);
    expect(j.status).toBe('done');
    expect(j.counters.skippedRecords).toBe(3 + 5 + listedMax + 5);
    expect(j.skipped).toHaveLength(3 + listedMax);
    expect(j.skipped[0]).toMatchObject({ map: 0, file: '/in/f0.txt', offset: 0 });
    expect(j.skipped[0]?.error.startsWith('bad 0 xxx')).toBe(true);
    expect(j.skipped[0]?.error.length).toBe(limits.mrSkippedErrorCharsMax);
    expect(j.skipped[3]).toMatchObject({ map: 1, file: '/in/f1.txt', offset: 1000 });
    // A list longer than the per-task bound, or errors not matching it, is refused.
    const sm2 = new MapReduceStateMachine();
    ok(sm2, submit('j2', 1, 1, { skipBadRecords: true }));
    const a = must(assign(sm2, 'a', 'n1'));
    const refused = sm2.apply({
      type: 'completeTask',
      attemptId: a.attemptId,
      now: 1,
      output: { kind: 'map', partitionBytes: [7], skippedOffsets: [1], skippedErrors: ['a', 'b'] },
      counters: countersFor(a),
    });
    expect(refused.ok).toBe(false);
  });

  it('without skipBadRecords a crash on a record is an ordinary failure', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 1, 1, { maxTaskFailures: 1 }));
    const a = must(assign(sm, 'a', 'n1'));
    expect(
      ok<FailTaskResult>(sm, {
        type: 'failTask',
        attemptId: a.attemptId,
        now: 1,
        error: 'x',
        badRecordOffset: 42,
      }).action,
    ).toBe('jobFailed');
  });

  it('a record offset outside the split is an ordinary failure', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 1, 1, { skipBadRecords: true, maxTaskFailures: 1 }));
    const a = must(assign(sm, 'a', 'n1'));
    expect(
      ok<FailTaskResult>(sm, {
        type: 'failTask',
        attemptId: a.attemptId,
        now: 1,
        error: 'x',
        badRecordOffset: 100,
      }).action,
    ).toBe('jobFailed');
  });

  it('records the maps skipped on their own and their user counters, once per task', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 1, 1));
    const a = must(assign(sm, 'a', 'n1'));
    const cmd = {
      type: 'completeTask' as const,
      attemptId: a.attemptId,
      now: 1,
      output: { kind: 'map' as const, partitionBytes: [5], skippedOffsets: [3, 9] },
      counters: {
        inputRecords: 4,
        inputBytes: 9,
        outputRecords: 2,
        outputBytes: 5,
        skippedRecords: 2,
        user: { lines: 4 },
      },
    };
    ok(sm, cmd);
    ok(sm, cmd);
    const j = jobOf(sm);
    expect(j.skipped.map((s) => s.offset)).toEqual([3, 9]);
    expect(j.counters.skippedRecords).toBe(2);
    expect(j.userCounters).toEqual({ lines: 4 });
  });
});

describe('cancel, forget and garbage collection', () => {
  it('cancelling stops the running attempts; forgetting needs a finished job', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 2, 1));
    const a = must(assign(sm, 'a', 'n1'));
    const refused = sm.apply({ type: 'forgetJob', jobId: 'j1' });
    expect(refused.ok ? 'accepted' : refused.error.code).toBe('FAILED_PRECONDITION');
    expect(
      ok<CancelJobResult>(sm, { type: 'cancelJob', jobId: 'j1', now: 3, reason: 'user' }),
    ).toEqual({
      type: 'cancelJob',
      jobId: 'j1',
      stoppedAttempts: [a.attemptId],
    });
    expect(jobOf(sm)).toMatchObject({ status: 'cancelled', error: 'user', finishedAt: 3 });
    const again = sm.apply({ type: 'cancelJob', jobId: 'j1', now: 4 });
    expect(again.ok ? 'accepted' : again.error.code).toBe('FAILED_PRECONDITION');
    expect(assign(sm, 'a', 'n1')).toBeNull();
    ok(sm, { type: 'forgetJob', jobId: 'j1' });
    expect(sm.job('j1')).toBeUndefined();
    expect(sm.attempt(a.attemptId)).toBeUndefined();
    expect(complete(sm, a)).toMatchObject({ committed: false, reason: 'jobFinished' });
    const gone = sm.apply({ type: 'forgetJob', jobId: 'j1' });
    expect(gone.ok ? 'accepted' : gone.error.code).toBe('NOT_FOUND');
  });

  it('a resubmitted id is ALREADY_EXISTS', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 1, 1));
    const out = sm.apply(submit('j1', 1, 1));
    expect(out.ok ? 'accepted' : out.error.code).toBe('ALREADY_EXISTS');
  });

  it('past mrJobsMax the oldest finished jobs are forgotten; with none finished, OVERLOADED', () => {
    const sm = new MapReduceStateMachine();
    for (let i = 0; i < limits.mrJobsMax; i++) ok(sm, submit(`j${i}`, 1, 1));
    const full = sm.apply(submit('late', 1, 1));
    expect(full.ok ? 'accepted' : full.error.code).toBe('OVERLOADED');
    ok(sm, { type: 'cancelJob', jobId: 'j7', now: 1 });
    ok(sm, { type: 'cancelJob', jobId: 'j3', now: 1 });
    expect(ok<SubmitJobResult>(sm, submit('late', 1, 1)).forgotten).toEqual(['j3']);
    expect(sm.jobs()).toHaveLength(limits.mrJobsMax);
    expect(sm.job('j7')?.status).toBe('cancelled');
  });
});

describe('snapshots', () => {
  it('a restored copy equals the original and behaves the same from there', () => {
    const sm = new MapReduceStateMachine();
    ok(sm, submit('j1', 3, 2, { skipBadRecords: true }));
    ok(sm, submit('j2', 1, 1));
    const a = must(assign(sm, 'a', 'n1', 1));
    const b = must(assign(sm, 'b', 'n2', 1));
    complete(sm, a, 2);
    ok(sm, { type: 'failTask', attemptId: b.attemptId, now: 3, error: 'x', badRecordOffset: 5 });
    const c = must(assign(sm, 'c', 'n3', 4));
    ok(sm, { type: 'cancelJob', jobId: 'j2', now: 4 });
    const copy = MapReduceStateMachine.fromSnapshot(sm.snapshot());
    expect(copy.snapshot()).toEqual(sm.snapshot());
    expect(copy.jobs()).toEqual(sm.jobs());
    expect(copy.runningAttempts()).toEqual(sm.runningAttempts());
    expect(copy.nextLeaseDeadline()).toBe(sm.nextLeaseDeadline());
    for (const s of [sm, copy]) {
      complete(s, c, 5);
      runToDone(s, 'z', 'n9');
    }
    expect(copy.snapshot()).toEqual(sm.snapshot());
    expect(copy.job('j1')?.status).toBe('done');
  });

  it('refuses bytes that are not a snapshot with CORRUPTION', () => {
    const sm = new MapReduceStateMachine();
    for (const bytes of [
      new Uint8Array([0xc1]),
      new Uint8Array([0x80]),
      new MapReduceStateMachine().snapshot().subarray(0, 3),
    ]) {
      expect(() => sm.restore(bytes)).toThrow(
        expect.objectContaining({ code: 'CORRUPTION' }) as Error,
      );
    }
  });
});
