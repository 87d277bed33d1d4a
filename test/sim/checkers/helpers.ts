// Test helpers for the linearizability checker: a terse history builder, an
// independent witness verifier and a brute-force checker (all orders, no memo).
import type { History, Operation, ProcessId } from '../../../src/sim/checkers/history.js';
import type { PartitionWitness } from '../../../src/sim/checkers/linearizability.js';
import type { Model, RegisterInput, RegisterOutput } from '../../../src/sim/checkers/models.js';
import { illegal } from '../../../src/sim/checkers/models.js';

/** Builds histories op by op; ids follow insertion order. */
export class Builder<I, O> {
  readonly ops: Operation<I, O>[] = [];

  ok(process: ProcessId, input: I, invokeTime: number, completeTime: number, output: O): this {
    this.ops.push({
      id: this.ops.length,
      process,
      input,
      invokeTime,
      outcome: 'ok',
      completeTime,
      output,
    });
    return this;
  }

  fail(process: ProcessId, input: I, invokeTime: number, completeTime: number): this {
    this.ops.push({
      id: this.ops.length,
      process,
      input,
      invokeTime,
      outcome: 'fail',
      completeTime,
    });
    return this;
  }

  unknown(process: ProcessId, input: I, invokeTime: number): this {
    this.ops.push({ id: this.ops.length, process, input, invokeTime, outcome: 'unknown' });
    return this;
  }
}

type R = Builder<RegisterInput<number>, RegisterOutput<number>>;

/** Register shorthand: write(v) ok over [t0, t1]. */
export function w(b: R, p: ProcessId, v: number, t0: number, t1: number): R {
  return b.ok(p, { f: 'write', value: v }, t0, t1, { f: 'write' });
}

/** Register shorthand: read → v over [t0, t1]. */
export function r(b: R, p: ProcessId, v: number | null, t0: number, t1: number): R {
  return b.ok(p, { f: 'read' }, t0, t1, { f: 'read', value: v });
}

/** Register shorthand: cas(from → to) with result `ok` over [t0, t1]. */
export function cas(
  b: R,
  p: ProcessId,
  from: number | null,
  to: number,
  ok: boolean,
  t0: number,
  t1: number,
): R {
  return b.ok(p, { f: 'cas', expected: from, value: to }, t0, t1, { f: 'cas', ok });
}

function outputOf<I, O>(op: Operation<I, O>): O | undefined {
  return op.outcome === 'ok' ? op.output : undefined;
}

/** True when `a` must precede `b` in real time (same convention as the checker: touching = concurrent). */
function precedes<I, O>(a: Operation<I, O>, b: Operation<I, O>): boolean {
  return a.outcome === 'ok' && a.completeTime < b.invokeTime;
}

/**
 * Independently checks a witness: every ok op appears once, no failed op
 * appears, real-time order holds, and the model accepts each partition's order.
 * With `partial`, ok ops may be missing (checks a prefix from an explanation).
 * Returns a problem description, or undefined when the witness is valid.
 */
export function witnessProblem<S, I, O>(
  history: History<I, O>,
  model: Model<S, I, O>,
  witness: readonly PartitionWitness[],
  partial = false,
): string | undefined {
  const byId = new Map(history.map((op) => [op.id, op]));
  const seen = new Set<number>();
  for (const part of witness) {
    let state = model.init();
    const placed: Operation<I, O>[] = [];
    for (const id of part.order) {
      const op = byId.get(id);
      if (op === undefined) return `unknown id ${id}`;
      if (op.outcome === 'fail') return `failed op ${id} placed`;
      if (seen.has(id)) return `op ${id} placed twice`;
      seen.add(id);
      const key = model.partition?.(op.input);
      if (key !== part.partition) return `op ${id} in the wrong partition`;
      for (const earlier of placed) {
        if (precedes(op, earlier))
          return `op ${id} completes before ${earlier.id} is invoked but is placed after it`;
      }
      const next = model.step(state, op.input, outputOf(op));
      if (next === illegal) return `op ${id} illegal in state ${model.describeState(state)}`;
      state = next;
      placed.push(op);
    }
  }
  if (partial) return undefined;
  for (const op of history) {
    if (op.outcome === 'ok' && !seen.has(op.id)) return `ok op ${op.id} missing`;
  }
  return undefined;
}

/**
 * Brute-force linearizability: tries every order of every subset of unknown
 * operations, keeping one state per partition (no P-compositional split, no
 * memo). Exponential; for histories of a handful of operations.
 */
export function bruteForce<S, I, O>(history: History<I, O>, model: Model<S, I, O>): boolean {
  const ops = history.filter((op) => op.outcome !== 'fail');
  const used = new Array<boolean>(ops.length).fill(false);
  const states = new Map<string | undefined, S>();
  const go = (): boolean => {
    let allOkPlaced = true;
    for (let i = 0; i < ops.length; i++) {
      if (!used[i] && ops[i]?.outcome === 'ok') allOkPlaced = false;
    }
    if (allOkPlaced) return true;
    for (let i = 0; i < ops.length; i++) {
      if (used[i]) continue;
      const op = ops[i] as Operation<I, O>;
      // op can go next only if no unplaced op must precede it.
      let minimal = true;
      for (let j = 0; j < ops.length; j++) {
        if (!used[j] && j !== i && precedes(ops[j] as Operation<I, O>, op)) minimal = false;
      }
      if (!minimal) continue;
      const key = model.partition?.(op.input);
      const before = states.has(key) ? (states.get(key) as S) : model.init();
      const next = model.step(before, op.input, outputOf(op));
      if (next === illegal) continue;
      const had = states.has(key);
      states.set(key, next);
      used[i] = true;
      const found = go();
      used[i] = false;
      if (had) states.set(key, before);
      else states.delete(key);
      if (found) return true;
    }
    return false;
  };
  return go();
}
