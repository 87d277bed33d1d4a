/**
 * Client histories for the linearizability checker: what each client asked
 * (input), when it asked (invoke time), and how it ended (ok with an output and
 * a completion time, fail = it definitely did not happen, unknown = it may or
 * may not have taken effect, at any time after its invocation).
 *
 * The simulator (virtual time) and real-process tests (`performance.now()`)
 * record histories with the same {@link HistoryRecorder}; only the injected
 * time source differs.
 *
 * ```ts
 * const rec = new HistoryRecorder<KvInput, KvOutput>(() => clock.now());
 * const h = rec.invoke('client-1', { f: 'put', key: 'a', value: '1' });
 * try {
 *   await kv.put('a', '1');
 *   rec.complete(h, { f: 'put' });
 * } catch (err) {
 *   if (isCohortError(err) && err.definite) rec.fail(h);
 *   else rec.unknown(h);
 * }
 * // or, the same in one call:
 * await rec.track('client-1', { f: 'get', key: 'a' }, async () => ({ f: 'get', value: await kv.get('a') }));
 * const result = checkLinearizability(rec.history(), kvModel());
 * ```
 */
import { assert } from '../../lib/assert.js';
import { CohortError } from '../../lib/errors.js';

/** How an operation ended, as seen by its client. */
export type Outcome = 'ok' | 'fail' | 'unknown';

/** Identifies the client (Jepsen: process) that issued an operation. */
export type ProcessId = number | string;

/** Fields every operation has, whatever its outcome. */
interface OperationBase<I> {
  /** Position in the history; explanations and witnesses refer to operations by it. */
  readonly id: number;
  /** The client that issued the operation. */
  readonly process: ProcessId;
  /** What was asked (e.g. `{ f: 'put', key, value }`). */
  readonly input: I;
  /** When the client sent it. */
  readonly invokeTime: number;
}

/** The operation completed and its client saw `output`; it took effect between invoke and complete. */
export interface OkOperation<I, O> extends OperationBase<I> {
  readonly outcome: 'ok';
  /** When the client received the answer. */
  readonly completeTime: number;
  /** What the client saw. */
  readonly output: O;
}

/** The operation definitely did not take effect (a definite error); the checker drops it. */
export interface FailedOperation<I> extends OperationBase<I> {
  readonly outcome: 'fail';
  /** When the client learned it failed (informational). */
  readonly completeTime: number;
}

/**
 * The outcome is unknown (an indefinite error, a crash, no answer): the operation
 * may have taken effect at any time after its invocation, or never.
 */
export interface UnknownOperation<I> extends OperationBase<I> {
  readonly outcome: 'unknown';
  /** When the client gave up (informational: it does not bound when the operation took effect). */
  readonly completeTime?: number;
}

/** One client operation in a history. */
export type Operation<I, O> = OkOperation<I, O> | FailedOperation<I> | UnknownOperation<I>;

/** A client history: every operation with its times and outcome. Order does not matter. */
export type History<I, O> = readonly Operation<I, O>[];

/**
 * Checks that a history is well formed: unique ids, finite times, no completion
 * before invocation. Histories come from recorders and parsers of external
 * files, so a malformed one is bad input: a CohortError `INVALID_ARGUMENT`.
 */
export function validateHistory<I, O>(history: History<I, O>): void {
  const ids = new Set<number>();
  for (const op of history) {
    const where = { id: op.id, process: op.process };
    if (ids.has(op.id)) {
      throw new CohortError('INVALID_ARGUMENT', `history: duplicate operation id ${op.id}`, {
        details: where,
      });
    }
    ids.add(op.id);
    if (!Number.isFinite(op.invokeTime)) {
      throw new CohortError(
        'INVALID_ARGUMENT',
        `history: op ${op.id} has a non-finite invoke time`,
        {
          details: where,
        },
      );
    }
    if (op.outcome === 'ok' || op.outcome === 'fail') {
      if (Number.isNaN(op.completeTime) || op.completeTime < op.invokeTime) {
        throw new CohortError(
          'INVALID_ARGUMENT',
          `history: op ${op.id} completes (${op.completeTime}) before it is invoked (${op.invokeTime})`,
          { details: where },
        );
      }
    }
  }
}

/** A definite CohortError certainly did not take effect; any other error may have (DESIGN.md, Errors). */
function defaultClassify(err: unknown): 'fail' | 'unknown' {
  return err instanceof CohortError && err.definite ? 'fail' : 'unknown';
}

/** A pending operation returned by {@link HistoryRecorder.invoke}; pass it back to end the operation. */
export interface OperationHandle {
  /** The id the operation will have in the history. */
  readonly id: number;
}

interface PendingOp<I> {
  readonly id: number;
  readonly process: ProcessId;
  readonly input: I;
  readonly invokeTime: number;
}

/**
 * Records a client history as it happens. Time is injected so the simulator
 * (virtual time) and real-process tests (`performance.now()`) share it.
 * Operations still pending when {@link history} is called are reported as
 * unknown (they may yet take effect).
 */
export class HistoryRecorder<I, O> {
  private nextId = 0;
  private readonly pending = new Map<number, PendingOp<I>>();
  private readonly done: Operation<I, O>[] = [];

  /** @param now the time source: a virtual clock in the simulator, `performance.now` for real processes. */
  constructor(private readonly now: () => number) {}

  /** Records that `process` sent `input`; returns the handle to end it with. */
  invoke(process: ProcessId, input: I): OperationHandle {
    const id = this.nextId++;
    this.pending.set(id, { id, process, input, invokeTime: this.now() });
    return { id };
  }

  /** Records that the operation completed and its client saw `output`. */
  complete(handle: OperationHandle, output: O): void {
    const p = this.take(handle);
    this.done.push({ ...p, outcome: 'ok', completeTime: this.now(), output });
  }

  /** Records that the operation definitely did not take effect (a definite error). */
  fail(handle: OperationHandle): void {
    const p = this.take(handle);
    this.done.push({ ...p, outcome: 'fail', completeTime: this.now() });
  }

  /** Records that the outcome is unknown (an indefinite error): it may take effect at any later time. */
  unknown(handle: OperationHandle): void {
    const p = this.take(handle);
    this.done.push({ ...p, outcome: 'unknown', completeTime: this.now() });
  }

  /**
   * Runs `run` as one operation of `process`: records the invocation, then
   * the output, or on an error its outcome as `classify` says (by default a
   * definite CohortError is `fail`, anything else `unknown`), and rethrows.
   */
  async track(
    process: ProcessId,
    input: I,
    run: () => Promise<O>,
    classify: (err: unknown) => 'fail' | 'unknown' = defaultClassify,
  ): Promise<O> {
    const handle = this.invoke(process, input);
    let output: O;
    try {
      output = await run();
    } catch (err) {
      if (classify(err) === 'fail') this.fail(handle);
      else this.unknown(handle);
      throw err;
    }
    this.complete(handle, output);
    return output;
  }

  /** Number of operations invoked and not yet ended. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** The history so far, in id order; pending operations appear as unknown. */
  history(): Operation<I, O>[] {
    const ops: Operation<I, O>[] = [...this.done];
    for (const p of this.pending.values()) ops.push({ ...p, outcome: 'unknown' });
    return ops.sort((a, b) => a.id - b.id);
  }

  private take(handle: OperationHandle): PendingOp<I> {
    const p = this.pending.get(handle.id);
    assert(p !== undefined, `history recorder: operation ${handle.id} is not pending`);
    this.pending.delete(handle.id);
    return p;
  }
}
