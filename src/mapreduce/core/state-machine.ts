/**
 * The MapReduce coordinator as a replicated state machine: pure, deterministic,
 * synchronous (see types.ts for the model and every command). Every replica
 * applies the same committed commands in the same order and ends in the same
 * state; the leader's driver proposes the commands that need a clock
 * (expireLeases, rebaseLeases) or a failure detector (nodeLost).
 *
 * ```ts
 * const sm = new MapReduceStateMachine();
 * const out = sm.apply(command);               // never throws on bad input
 * if (!out.ok) reply(out.error);               // refused: nothing changed
 * sm.job('wc-1')?.progress;                    // queries read the applied state
 * if (sm.nextLeaseDeadline() <= now) propose({ type: 'expireLeases', now });
 * const copy = MapReduceStateMachine.fromSnapshot(sm.snapshot());
 * ```
 */
import { assert } from '../../lib/assert.js';
import type {
  AttemptInfo,
  JobId,
  JobStatus,
  MapOutputLocation,
  MrApplied,
  TaskInfo,
} from './types.js';

/** Version of the snapshot encoding; other versions are refused with CORRUPTION. */
export const MR_SNAPSHOT_VERSION = 1;

/** The coordinator's state machine (see the file comment). API committed first; bodies follow. */
export class MapReduceStateMachine {
  /** Builds a state machine from {@link snapshot} bytes; CORRUPTION if they are not one. */
  static fromSnapshot(bytes: Uint8Array): MapReduceStateMachine {
    const sm = new MapReduceStateMachine();
    sm.restore(bytes);
    return sm;
  }

  /**
   * Applies one committed command (any decoded value). Never throws for bad
   * input: a refused command comes back as `{ ok: false, error }` with nothing
   * changed. Throws only an AssertionError (a bug).
   */
  apply(command: unknown): MrApplied {
    void command;
    assert(false, 'not implemented yet');
  }

  /** The whole state as bytes (MessagePack), equal on replicas that applied the same commands. */
  snapshot(): Uint8Array {
    assert(false, 'not implemented yet');
  }

  /** Replaces the state with a snapshot's; CORRUPTION (a CohortError) if the bytes are not one. */
  restore(bytes: Uint8Array): void {
    void bytes;
    assert(false, 'not implemented yet');
  }

  /** One job's status, progress and counters; undefined if unknown (or forgotten). */
  job(jobId: JobId): JobStatus | undefined {
    void jobId;
    assert(false, 'not implemented yet');
  }

  /** Every kept job, in submission order. */
  jobs(): JobStatus[] {
    assert(false, 'not implemented yet');
  }

  /** Where map task `map` of the job has its committed output; undefined if the map is not done. */
  mapOutput(jobId: JobId, map: number): MapOutputLocation | undefined {
    void jobId;
    void map;
    assert(false, 'not implemented yet');
  }

  /** Every task of a job (maps then reduces); empty if the job is unknown. */
  tasks(jobId: JobId): TaskInfo[] {
    void jobId;
    assert(false, 'not implemented yet');
  }

  /** Attempts in state `running`, in id order (what the leader's driver watches). */
  runningAttempts(): AttemptInfo[] {
    assert(false, 'not implemented yet');
  }

  /** One attempt (any state) of a kept job; undefined if unknown. */
  attempt(attemptId: number): AttemptInfo | undefined {
    void attemptId;
    assert(false, 'not implemented yet');
  }

  /**
   * The earliest lease deadline of a running attempt (Infinity if none): the
   * leader proposes `expireLeases { now }` once its clock reaches it.
   */
  nextLeaseDeadline(): number {
    assert(false, 'not implemented yet');
  }
}
