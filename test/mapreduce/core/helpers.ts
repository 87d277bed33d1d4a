/** Shared builders for the coordinator's tests. */
import { expect } from 'vitest';
import { MapReduceStateMachine } from '../../../src/mapreduce/core/index.js';
import type {
  AssignTaskResult,
  CompleteTaskCommand,
  CompleteTaskResult,
  JobOptions,
  MrCommand,
  MrResult,
  SubmitJobCommand,
  TaskAssignment,
  TaskCounters,
} from '../../../src/mapreduce/core/index.js';

/** Lease used by the tests, in ms. */
export const LEASE = 10_000;

/** Applies `cmd`, expects it accepted, returns its result. */
export function ok<T extends MrResult = MrResult>(sm: MapReduceStateMachine, cmd: MrCommand): T {
  const out = sm.apply(cmd);
  if (!out.ok) throw new Error(`refused ${cmd.type}: ${out.error.code} ${out.error.message}`);
  return out.result as T;
}

/** A submitJob with `maps` splits of 100 bytes each. */
export function submit(
  jobId: string,
  maps: number,
  reducers: number,
  options: JobOptions = {},
  now = 0,
): SubmitJobCommand {
  return {
    type: 'submitJob',
    jobId,
    module: '/jobs/wc.js',
    output: `/out/${jobId}`,
    splits: Array.from({ length: maps }, (_, i) => ({ file: `/in/f${i}.txt`, start: 0, end: 100 })),
    reducers,
    options,
    now,
  };
}

/** Asks for a task for worker `w` on `node`; returns the assignment or null. */
export function assign(
  sm: MapReduceStateMachine,
  worker: string,
  node: string,
  now = 0,
  leaseMs = LEASE,
): TaskAssignment | null {
  return ok<AssignTaskResult>(sm, { type: 'assignTask', worker, node, now, leaseMs }).assignment;
}

/** Counters a test attempt reports: derived from the task so sums are predictable. */
export function countersFor(a: TaskAssignment): TaskCounters {
  return a.kind === 'map'
    ? { inputRecords: 10, inputBytes: 100, outputRecords: 20, outputBytes: 200 }
    : { inputRecords: 5, inputBytes: 50, outputRecords: 3, outputBytes: 30 };
}

/** Completes an assignment as its worker would. */
export function complete(
  sm: MapReduceStateMachine,
  a: TaskAssignment,
  now = 1,
): CompleteTaskResult {
  return ok<CompleteTaskResult>(sm, completion(a, now));
}

/**
 * Completes an assignment as its worker would, asking in the same command
 * for `worker`'s next task (completeTask `next`).
 */
export function completeNext(
  sm: MapReduceStateMachine,
  a: TaskAssignment,
  now = 1,
  worker = 'n1:w0',
  node = 'n1',
): CompleteTaskResult {
  return ok<CompleteTaskResult>(sm, {
    ...completion(a, now),
    next: { worker, node, leaseMs: LEASE },
  });
}

/** The completeTask command of an assignment (as {@link complete} sends it). */
export function completion(a: TaskAssignment, now = 1): CompleteTaskCommand {
  return {
    type: 'completeTask',
    attemptId: a.attemptId,
    now,
    output:
      a.kind === 'map'
        ? { kind: 'map', partitionBytes: Array.from({ length: a.reducers }, () => 7) }
        : { kind: 'reduce', bytes: 11 },
    counters: countersFor(a),
  };
}

/** Expects an assignment (not null) and returns it. */
export function must(a: TaskAssignment | null): TaskAssignment {
  expect(a).not.toBeNull();
  return a as TaskAssignment;
}

/** Runs a job to done with one worker, no faults. */
export function runToDone(sm: MapReduceStateMachine, worker = 'n1:w0', node = 'n1'): number {
  let n = 0;
  for (;;) {
    const a = assign(sm, worker, node, n);
    if (a === null) return n;
    complete(sm, a, n + 1);
    n++;
  }
}

export { MapReduceStateMachine };
