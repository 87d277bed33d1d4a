/**
 * Linearizability checker (Herlihy & Wing 1990): is there a total order of the
 * history's operations, consistent with real time (an operation that completed
 * before another was invoked comes first), that the sequential {@link Model}
 * accepts, with every operation returning what its client saw?
 *
 * The search follows Wing & Gong (1993): walk the history's call/return events
 * in time order; at a call, try to linearize that operation now (the model must
 * accept its output); at a return, the operation returning there could not be
 * placed before it, so backtrack. Lowe (2017, "Testing for linearizability")
 * makes it practical: the pair (set of linearized operations, model state)
 * fully determines the rest of the search, so each pair is explored once
 * (memoized as a bitset plus an interned state key). P-compositionality
 * (Horn & Kroening 2015; locality, Herlihy & Wing): when the model partitions
 * operations by key, each key is checked alone, which turns one exponential
 * search into many small ones.
 *
 * Outcomes: a `fail` operation definitely did not happen and is dropped; an
 * `unknown` one may take effect at any time after its invocation, or never (it
 * has no return event, so nothing forces it into the order). A read with an
 * unknown outcome constrains nothing and is dropped. Events at equal times are
 * ordered calls first: operations that touch in time count as concurrent, which
 * can only accept more histories, never reject a correct one.
 *
 * The search has a budget (steps and optionally time); when it runs out the
 * verdict is `unknown`, never a guess.
 *
 * ```ts
 * const result = checkLinearizability(history, kvModel(), { timeoutMs: 10_000 });
 * if (result.verdict === 'not-linearizable') console.log(result.explanation.text);
 * ```
 */
import { assert } from '../../lib/assert.js';
import { limits } from '../../lib/limits.js';
import type { History, OkOperation, Operation } from './history.js';
import { validateHistory } from './history.js';
import type { Model } from './models.js';
import { illegal } from './models.js';

/** Budget and time source for {@link checkLinearizability}. */
export interface CheckOptions {
  /** Search steps (events visited) allowed over all partitions; default `limits.linearizabilityStepsMax`. */
  readonly maxSteps?: number;
  /** Memo bytes allowed per partition; default `limits.linearizabilityMemoBytesMax`. */
  readonly maxMemoBytes?: number;
  /** Wall-clock budget in milliseconds, measured with {@link now}; default none. */
  readonly timeoutMs?: number;
  /** Time source for the budget; default `performance.now`. */
  readonly now?: () => number;
}

/** Search effort, for reports and benchmarks. */
export interface CheckStats {
  /** Operations in the history (including dropped ones). */
  readonly operations: number;
  /** Partitions checked (or 1 for an unpartitioned model). */
  readonly partitions: number;
  /** Events visited by the search. */
  readonly steps: number;
  /** Distinct (linearized set, state) pairs memoized. */
  readonly cacheEntries: number;
  /** Time spent, per the injected clock. */
  readonly elapsedMs: number;
}

/** A linearization of one partition: operation ids in the order they took effect. */
export interface PartitionWitness {
  /** The partition key, or undefined for an unpartitioned model. */
  readonly partition: string | undefined;
  /** Ids of the operations that took effect, in order (unknown ones left out did not take effect). */
  readonly order: readonly number[];
}

/** One step of the longest linearizable prefix found. */
export interface PrefixStep<I, O> {
  readonly op: Operation<I, O>;
  /** The model state after it, rendered. */
  readonly stateAfter: string;
}

/** Why a partition is not linearizable, from the deepest point the search reached. */
export interface Explanation<I, O> {
  /** The partition key, or undefined for an unpartitioned model. */
  readonly partition: string | undefined;
  /** Operations that must be placed in this partition (ok ones; unknown ones are optional). */
  readonly required: number;
  /** The longest order of operations the model accepts, consistent with real time. */
  readonly prefix: readonly PrefixStep<I, O>[];
  /** The state after the prefix, rendered. */
  readonly state: string;
  /** The operation that had to take effect before it completed, but could not be placed. */
  readonly stuck: OkOperation<I, O>;
  /** Every operation that was pending there (invoked, not yet placed): none leads to a linearization. */
  readonly pending: readonly Operation<I, O>[];
  /** A human-readable account of the above. */
  readonly text: string;
}

/** The verdict of {@link checkLinearizability}. */
export type CheckResult<I, O> =
  | {
      readonly verdict: 'linearizable';
      /** One valid order per partition. */
      readonly witness: readonly PartitionWitness[];
      readonly stats: CheckStats;
    }
  | {
      readonly verdict: 'not-linearizable';
      readonly explanation: Explanation<I, O>;
      readonly stats: CheckStats;
    }
  | {
      readonly verdict: 'unknown';
      /** Why no verdict was reached (budget exhausted). */
      readonly reason: string;
      /** Partitions left undecided. */
      readonly undecided: readonly (string | undefined)[];
      readonly stats: CheckStats;
    };

/** Linked list node for one call or return event (dancing links: removal is undone in O(1)). */
interface Entry {
  /** Local index of the operation in its partition; -1 for the head sentinel. */
  readonly op: number;
  readonly isCall: boolean;
  prev: Entry | null;
  next: Entry | null;
}

type PartitionOutcome<I, O> =
  | { kind: 'ok'; order: number[] }
  | { kind: 'fail'; explanation: Explanation<I, O> }
  | { kind: 'budget'; why: string };

/** Shared budget and counters across partitions. */
class Budget {
  steps = 0;
  cacheEntries = 0;
  private readonly deadline: number;

  constructor(
    readonly maxSteps: number,
    readonly maxMemoBytes: number,
    timeoutMs: number | undefined,
    private readonly now: () => number,
  ) {
    this.deadline = timeoutMs === undefined ? Infinity : now() + timeoutMs;
  }

  /** Which budget ran out, for the result's reason. */
  exhausted(): string {
    return this.steps > this.maxSteps
      ? `step budget of ${this.maxSteps} spent`
      : 'time budget spent';
  }

  /** Counts one step; false when the budget is spent. The clock is read every 4096 steps. */
  step(): boolean {
    this.steps++;
    if (this.steps > this.maxSteps) return false;
    return (this.steps & 4095) !== 0 || this.now() < this.deadline;
  }
}

/** Deterministic 32-bit values for Zobrist hashing of the linearized set (xorshift32). */
function zobristKeys(n: number): Uint32Array {
  const z = new Uint32Array(n);
  let x = 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    z[i] = x >>> 0;
  }
  return z;
}

/** Bytes charged per memo entry beyond its words: the Map slot for a chain head, amortized. */
const memoEntryOverheadBytes = 32;

/**
 * The memo of explored (linearized set, state) pairs, packed in one growable
 * Uint32Array so a search of millions of pairs stays compact: each entry is
 * [stateId, next entry in chain + 1, ...bitset words], chained per hash key.
 * Bitsets are compared in full, so a hash collision never prunes the search.
 */
class MemoTable {
  private pool: Uint32Array;
  private readonly heads = new Map<number, number>();
  private readonly stride: number;
  /** Entries stored. */
  entries = 0;
  /** Bytes charged so far (entries plus interned state keys). */
  bytes = 0;

  constructor(
    private readonly words: number,
    private readonly maxBytes: number,
  ) {
    this.stride = 2 + words;
    this.pool = new Uint32Array(this.stride * 1024);
  }

  /** Charges `n` bytes (e.g. an interned state key); false when over budget. */
  charge(n: number): boolean {
    this.bytes += n;
    return this.bytes <= this.maxBytes;
  }

  /** Records (bits, stateId) under `key`: 'new', 'seen' before, or 'full' (budget spent). */
  insert(key: number, stateId: number, bits: Uint32Array): 'new' | 'seen' | 'full' {
    const stride = this.stride;
    const pool = this.pool;
    const head = this.heads.get(key);
    for (let e = head ?? 0; e !== 0; e = pool[(e - 1) * stride + 1] as number) {
      const o = (e - 1) * stride;
      if (pool[o] !== stateId) continue;
      let same = true;
      for (let w = 0; w < this.words; w++) {
        if (pool[o + 2 + w] !== bits[w]) {
          same = false;
          break;
        }
      }
      if (same) return 'seen';
    }
    if (!this.charge(this.stride * 4 + memoEntryOverheadBytes)) return 'full';
    let o = this.entries * stride;
    if (o + stride > this.pool.length) {
      const grown = new Uint32Array(this.pool.length * 2);
      grown.set(this.pool);
      this.pool = grown;
    }
    o = this.entries * stride;
    this.pool[o] = stateId;
    this.pool[o + 1] = head ?? 0;
    this.pool.set(bits, o + 2);
    this.entries++;
    this.heads.set(key, this.entries);
    return 'new';
  }
}

/**
 * Checks one partition with the Wing–Gong search plus Lowe's memoization.
 * `ops` holds only operations that matter (ok ones, and unknown ones that may
 * change the state).
 */
function checkPartition<S, I, O>(
  partition: string | undefined,
  ops: readonly Operation<I, O>[],
  model: Model<S, I, O>,
  budget: Budget,
): PartitionOutcome<I, O> {
  const n = ops.length;
  const outputs: (O | undefined)[] = ops.map((op) => (op.outcome === 'ok' ? op.output : undefined));

  // Events in time order; at equal times calls first (touching operations are concurrent).
  interface Event {
    time: number;
    isCall: boolean;
    op: number;
  }
  const events: Event[] = [];
  let required = 0;
  ops.forEach((op, i) => {
    events.push({ time: op.invokeTime, isCall: true, op: i });
    if (op.outcome === 'ok') {
      events.push({ time: op.completeTime, isCall: false, op: i });
      required++;
    }
  });
  events.sort(
    (a, b) => a.time - b.time || Number(a.isCall ? 0 : 1) - Number(b.isCall ? 0 : 1) || a.op - b.op,
  );

  const head: Entry = { op: -1, isCall: true, prev: null, next: null };
  const calls: Entry[] = new Array<Entry>(n);
  const returns: (Entry | null)[] = new Array<Entry | null>(n).fill(null);
  let tail = head;
  for (const ev of events) {
    const e: Entry = { op: ev.op, isCall: ev.isCall, prev: tail, next: null };
    tail.next = e;
    tail = e;
    if (ev.isCall) calls[ev.op] = e;
    else returns[ev.op] = e;
  }

  const unlink = (e: Entry): void => {
    (e.prev as Entry).next = e.next;
    if (e.next !== null) e.next.prev = e.prev;
  };
  const relink = (e: Entry): void => {
    (e.prev as Entry).next = e;
    if (e.next !== null) e.next.prev = e;
  };
  // Lift removes call then return; lower restores in reverse (LIFO, as the search backtracks).
  const lift = (i: number): void => {
    unlink(calls[i] as Entry);
    const r = returns[i];
    if (r !== null && r !== undefined) unlink(r);
  };
  const lower = (i: number): void => {
    const r = returns[i];
    if (r !== null && r !== undefined) relink(r);
    relink(calls[i] as Entry);
  };

  // Memoization (Lowe §3): (linearized set, state) pairs already explored.
  const zobrist = zobristKeys(n);
  const bits = new Uint32Array(Math.max(1, Math.ceil(n / 32)));
  let setHash = 0;
  const memo = new MemoTable(bits.length, budget.maxMemoBytes);
  const stateIds = new Map<string, number>();
  /** Interns a state as a small integer; -1 when the memory budget is spent. */
  const intern = (s: S): number => {
    const key = model.stateKey(s);
    let id = stateIds.get(key);
    if (id === undefined) {
      if (!memo.charge(2 * key.length + memoEntryOverheadBytes)) return -1;
      id = stateIds.size;
      stateIds.set(key, id);
    }
    return id;
  };
  const flip = (i: number): void => {
    bits[i >>> 5] = ((bits[i >>> 5] as number) ^ (1 << (i & 31))) >>> 0;
    setHash = (setHash ^ (zobrist[i] as number)) >>> 0;
  };

  // The search (Wing & Gong; Lowe's Algorithm 1 shape).
  const stackOps: number[] = [];
  const stackStates: S[] = [];
  let state = model.init();
  let deepest = -1;
  let explanation: Explanation<I, O> | undefined;

  let placedRequired = 0;
  let entry = head.next;
  try {
    for (;;) {
      if (placedRequired === required) {
        // Every completed operation is placed; the unknown ones left did not take effect.
        return { kind: 'ok', order: stackOps.map((i) => (ops[i] as Operation<I, O>).id) };
      }
      // Reaching the end means a return was passed, which never happens: returns stop the scan.
      assert(entry !== null, 'the scan stops at a return before the end of the events');
      if (!budget.step()) return { kind: 'budget', why: budget.exhausted() };
      const i = entry.op;
      if (entry.isCall) {
        const op = ops[i] as Operation<I, O>;
        const next = model.step(state, op.input, outputs[i]);
        if (next !== illegal) {
          flip(i);
          const stateId = intern(next);
          const seen =
            stateId < 0
              ? 'full'
              : memo.insert((setHash ^ Math.imul(stateId + 1, 0x9e3779b1)) >>> 0, stateId, bits);
          if (seen === 'full') {
            return {
              kind: 'budget',
              why: `memo reached ${memo.bytes} bytes (linearizabilityMemoBytesMax)`,
            };
          }
          if (seen === 'new') {
            stackOps.push(i);
            stackStates.push(state);
            if (op.outcome === 'ok') placedRequired++;
            state = next;
            lift(i);
            entry = head.next;
            continue;
          }
          flip(i);
        }
        entry = entry.next;
      } else {
        // Operation i returns here, but no order of the pending operations places it first.
        if (stackOps.length > deepest) {
          deepest = stackOps.length;
          explanation = explain(
            partition,
            ops,
            outputs,
            model,
            stackOps,
            stackStates,
            state,
            head,
            entry,
            required,
          );
        }
        const last = stackOps.pop();
        if (last === undefined) {
          assert(explanation !== undefined, 'a failed search recorded why');
          return { kind: 'fail', explanation };
        }
        state = stackStates.pop() as S;
        if ((ops[last] as Operation<I, O>).outcome === 'ok') placedRequired--;
        flip(last);
        lower(last);
        entry = (calls[last] as Entry).next;
      }
    }
  } finally {
    budget.cacheEntries += memo.entries;
  }
}

/** Shortens long renderings (append-built values) in explanation text; the structured fields keep them whole. */
function clip(text: string): string {
  const max = 100;
  return text.length <= max
    ? text
    : `${text.slice(0, 45)}…(${text.length} chars)…${text.slice(-45)}`;
}

/** Builds the explanation at a dead end of the search. */
function explain<S, I, O>(
  partition: string | undefined,
  ops: readonly Operation<I, O>[],
  outputs: readonly (O | undefined)[],
  model: Model<S, I, O>,
  stackOps: readonly number[],
  stackStates: readonly S[],
  state: S,
  head: Entry,
  stuckEntry: Entry,
  required: number,
): Explanation<I, O> {
  const prefix: PrefixStep<I, O>[] = stackOps.map((i, k) => ({
    op: ops[i] as Operation<I, O>,
    stateAfter: model.describeState(k + 1 < stackStates.length ? (stackStates[k + 1] as S) : state),
  }));
  const pending: Operation<I, O>[] = [];
  for (let e = head.next; e !== null && e !== stuckEntry; e = e.next) {
    if (e.isCall) pending.push(ops[e.op] as Operation<I, O>);
  }
  const stuck = ops[stuckEntry.op] as OkOperation<I, O>;
  const describe = (op: Operation<I, O>): string => {
    const times =
      op.outcome === 'ok' ? `[${op.invokeTime}, ${op.completeTime}]` : `[${op.invokeTime}, ?)`;
    const what = model.describeOperation(op.input, op.outcome === 'ok' ? op.output : undefined);
    return `#${op.id} p${op.process} ${clip(what)} ${times}`;
  };
  const lines: string[] = [];
  lines.push(
    `not linearizable${partition === undefined ? '' : ` (partition ${JSON.stringify(partition)})`}: ` +
      `the longest linearizable prefix places ${prefix.length} of the ${required} completed operations` +
      (prefix.length > required ? ' (counting unknown ones)' : ''),
  );
  const shown = 20;
  if (prefix.length > shown) lines.push(`  … ${prefix.length - shown} earlier operations`);
  for (const p of prefix.slice(-shown)) lines.push(`  ${describe(p.op)}  ⇒ ${clip(p.stateAfter)}`);
  lines.push(`then, in state ${clip(model.describeState(state))}, operation`);
  lines.push(`  ${describe(stuck)}`);
  lines.push(
    'must take effect before it completes, but none of the pending operations can be placed next',
  );
  lines.push('(each is impossible in this state or leads to a dead end):');
  for (const op of pending) {
    const legal = model.step(state, op.input, outputs[ops.indexOf(op)]) !== illegal;
    lines.push(
      `  ${describe(op)}${legal ? '  (possible now, dead end later)' : '  (impossible now)'}`,
    );
  }
  return {
    partition,
    required,
    prefix,
    state: model.describeState(state),
    stuck,
    pending,
    text: lines.join('\n'),
  };
}

/**
 * Checks `history` against `model`. Returns a witness order per partition when
 * linearizable, an explanation when not, and `unknown` when the budget runs
 * out first. Throws a CohortError `INVALID_ARGUMENT` for a malformed history.
 */
export function checkLinearizability<S, I, O>(
  history: History<I, O>,
  model: Model<S, I, O>,
  options: CheckOptions = {},
): CheckResult<I, O> {
  validateHistory(history);
  const now = options.now ?? (() => performance.now());
  const start = now();
  const budget = new Budget(
    options.maxSteps ?? limits.linearizabilityStepsMax,
    options.maxMemoBytes ?? limits.linearizabilityMemoBytesMax,
    options.timeoutMs,
    now,
  );

  // Drop what cannot matter: failed operations, and reads whose outcome is unknown.
  const partitions = new Map<string | undefined, Operation<I, O>[]>();
  for (const op of history) {
    if (op.outcome === 'fail') continue;
    if (op.outcome === 'unknown' && model.isReadOnly?.(op.input) === true) continue;
    const key = model.partition === undefined ? undefined : model.partition(op.input);
    let list = partitions.get(key);
    if (list === undefined) {
      list = [];
      partitions.set(key, list);
    }
    list.push(op);
  }
  // Small partitions first: a cheap failure is found before a big search spends the budget.
  const order = [...partitions.entries()].sort(
    (a, b) => a[1].length - b[1].length || String(a[0]).localeCompare(String(b[0])),
  );

  const witness: PartitionWitness[] = [];
  const undecided: (string | undefined)[] = [];
  const why = new Set<string>();
  const stats = (): CheckStats => ({
    operations: history.length,
    partitions: Math.max(1, partitions.size),
    steps: budget.steps,
    cacheEntries: budget.cacheEntries,
    elapsedMs: now() - start,
  });
  for (const [key, ops] of order) {
    const outcome = checkPartition(key, ops, model, budget);
    switch (outcome.kind) {
      case 'ok':
        witness.push({ partition: key, order: outcome.order });
        break;
      case 'fail':
        return { verdict: 'not-linearizable', explanation: outcome.explanation, stats: stats() };
      case 'budget':
        undecided.push(key);
        why.add(outcome.why);
        break;
    }
  }
  if (undecided.length > 0) {
    const s = stats();
    return {
      verdict: 'unknown',
      reason: `search budget exhausted (${[...why].join('; ')}) after ${s.steps} steps and ${Math.round(s.elapsedMs)} ms; ${undecided.length} of ${order.length} partitions undecided`,
      undecided,
      stats: s,
    };
  }
  return { verdict: 'linearizable', witness, stats: stats() };
}

/** A one-paragraph rendering of a result, for test failures and simulator reports. */
export function formatCheckResult<I, O>(result: CheckResult<I, O>): string {
  const s = result.stats;
  const effort = `${s.operations} ops, ${s.partitions} partitions, ${s.steps} steps, ${Math.round(s.elapsedMs)} ms`;
  switch (result.verdict) {
    case 'linearizable':
      return `linearizable (${effort})`;
    case 'unknown':
      return `unknown: ${result.reason} (${effort})`;
    case 'not-linearizable':
      return `${result.explanation.text}\n(${effort})`;
  }
}
