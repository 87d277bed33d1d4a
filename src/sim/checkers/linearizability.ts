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
 * Unknown outcomes make the search explode (each may be placed anywhere after
 * its invocation), so three sound prunings apply, all checked against a
 * brute-force search in the tests:
 * - subsumption: a configuration that placed a superset of another's unknown
 *   operations, with the same completed operations and state, is skipped (the
 *   smaller one has every option the bigger one has);
 * - an unknown operation that leaves the state unchanged is never placed;
 * - a blind write (Model.isBlindWrite: a put) is never placed right after an
 *   unknown operation, whose effect it would hide unobserved.
 * Two candidate orders run as a portfolio (see SearchStrategy): Wing & Gong's
 * eager order, then a lookahead order that first places the operation that is
 * due and those that make it legal.
 *
 * The search has a budget (steps, memo bytes, optionally time); when it runs
 * out the verdict is `unknown`, never a guess. Cost grows with the number of
 * operations concurrent per partition, and most with unknown outcomes on one
 * key: workloads should spread over several keys (each checked alone) and keep
 * per-key concurrency modest. Measured here (2 shared cores): the 102 Jepsen
 * etcd histories in 0.05–0.15 s in all, the 50-client kv history (3 400 ops,
 * 10 keys) in about 0.2 s, the other kv histories in milliseconds.
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
import type { Model, StateKey } from './models.js';
import { illegal } from './models.js';

/** Budget and time source for {@link checkLinearizability}. */
export interface CheckOptions {
  /** Search steps (candidate placements tried) allowed over all partitions; default `limits.linearizabilityStepsMax`. */
  readonly maxSteps?: number;
  /** Memo bytes allowed per partition; default `limits.linearizabilityMemoBytesMax`. */
  readonly maxMemoBytes?: number;
  /** Wall-clock budget in milliseconds, measured with {@link now}; default none. */
  readonly timeoutMs?: number;
  /**
   * Search orders to run, in turn, each with a share of what is left of the
   * budget (all but the last get half). Default `['eager', 'lookahead']`; tests
   * pin one to exercise it alone.
   */
  readonly strategies?: readonly SearchStrategy[];
  /** Time source for the budget; default `performance.now`. */
  readonly now?: () => number;
}

/** Search effort, for reports and benchmarks. */
export interface CheckStats {
  /** Operations in the history (including dropped ones). */
  readonly operations: number;
  /** Partitions checked (or 1 for an unpartitioned model). */
  readonly partitions: number;
  /** Candidate placements tried by the search (over all attempts). */
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

/** Shared budget and counters across partitions, with a cap for the current attempt. */
class Budget {
  steps = 0;
  cacheEntries = 0;
  private readonly deadline: number;
  private attemptSteps = Infinity;
  private attemptDeadline = Infinity;

  constructor(
    readonly maxSteps: number,
    readonly maxMemoBytes: number,
    timeoutMs: number | undefined,
    private readonly now: () => number,
  ) {
    this.deadline = timeoutMs === undefined ? Infinity : now() + timeoutMs;
  }

  /** Caps the next attempt at `share` of what is left of the steps and time. */
  startAttempt(share: number): void {
    this.attemptSteps = this.steps + Math.ceil((this.maxSteps - this.steps) * share);
    const t = this.now();
    this.attemptDeadline = this.deadline === Infinity ? Infinity : t + (this.deadline - t) * share;
  }

  /** True when the whole budget (not just an attempt's share) is spent. */
  spent(): boolean {
    return this.steps >= this.maxSteps || this.now() >= this.deadline;
  }

  /** Which budget ran out, for the result's reason. */
  exhausted(): string {
    return this.steps >= Math.min(this.maxSteps, this.attemptSteps)
      ? `step budget of ${this.maxSteps} spent`
      : 'time budget spent';
  }

  /** Counts one step; false when the attempt's share is spent. The clock is read every 4096 steps. */
  step(): boolean {
    this.steps++;
    if (this.steps > this.maxSteps || this.steps > this.attemptSteps) return false;
    return (this.steps & 4095) !== 0 || this.now() < Math.min(this.deadline, this.attemptDeadline);
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

/** V8 Maps hold at most 2^24 entries; the memo reports 'full' before any of its Maps gets there. */
const mapEntriesMax = 16_000_000;

/** Subsumption candidates scanned per lookup: pruning is optional, so a bounded scan stays sound. */
const subsumptionScanMax = 16;

/**
 * The memo of explored (linearized set, state) pairs, packed in one growable
 * Uint32Array so a search of millions of pairs stays compact: each entry is
 * [stateId, next in exact chain + 1, next in subsumption chain + 1, ...bitset
 * words]. Bitsets are compared in full, so a hash collision never prunes.
 *
 * Subsumption for unknown operations: a pair (L, s) is also pruned when some
 * stored (L', s) has L' ⊆ L with L \ L' made only of unknown operations. Those
 * have no return event, so they never force or block anything; having placed
 * fewer of them leaves strictly more choices. (Completeness: this order is a
 * simulation that preserves success, so a depth-first search that prunes nodes
 * dominated by any visited node still finds a linearization when one exists.)
 * Such pairs share a subsumption chain, keyed by the completed operations and
 * the state; only its newest {@link subsumptionScanMax} entries are scanned.
 */
class MemoTable {
  private pool: Uint32Array;
  private readonly exactHeads = new Map<number, number>();
  private readonly subsumeHeads = new Map<number, number>();
  private readonly stride: number;
  private readonly hasOptional: boolean;
  /** Entries stored. */
  entries = 0;
  /** Bytes charged so far (entries plus interned state keys). */
  bytes = 0;

  /**
   * @param optional bitset of the unknown operations (they may be left unplaced)
   * @param maxBytes memory budget
   */
  constructor(
    private readonly optional: Uint32Array,
    private readonly maxBytes: number,
  ) {
    this.stride = 3 + optional.length;
    this.pool = new Uint32Array(this.stride * 1024);
    this.hasOptional = optional.some((w) => w !== 0);
  }

  /** Charges `n` bytes (e.g. an interned state key); false when over budget. */
  charge(n: number): boolean {
    this.bytes += n;
    return this.bytes <= this.maxBytes;
  }

  /**
   * Records (bits, stateId): 'new', 'seen' (equal or subsumed), or 'full'
   * (budget spent). `exactKey` hashes all of bits and the state;
   * `subsumeKey` only the completed operations' bits and the state.
   */
  insert(
    exactKey: number,
    subsumeKey: number,
    stateId: number,
    bits: Uint32Array,
  ): 'new' | 'seen' | 'full' {
    const stride = this.stride;
    const pool = this.pool;
    const words = this.optional.length;
    const exactHead = this.exactHeads.get(exactKey) ?? 0;
    for (let e = exactHead; e !== 0; e = pool[(e - 1) * stride + 1] as number) {
      const o = (e - 1) * stride;
      if (pool[o] !== stateId) continue;
      let same = true;
      for (let w = 0; w < words; w++) {
        if (pool[o + 3 + w] !== bits[w]) {
          same = false;
          break;
        }
      }
      if (same) return 'seen';
    }
    const subsumeHead = this.hasOptional ? (this.subsumeHeads.get(subsumeKey) ?? 0) : 0;
    let scanned = 0;
    for (
      let e = subsumeHead;
      e !== 0 && scanned < subsumptionScanMax;
      e = pool[(e - 1) * stride + 2] as number, scanned++
    ) {
      const o = (e - 1) * stride;
      if (pool[o] !== stateId) continue;
      let subsumed = true;
      for (let w = 0; w < words; w++) {
        const stored = pool[o + 3 + w] as number;
        const current = bits[w] as number;
        // stored ⊆ current, and what current adds is only unknown operations.
        if (
          (stored & ~current) !== 0 ||
          (current & ~stored & ~(this.optional[w] as number)) !== 0
        ) {
          subsumed = false;
          break;
        }
      }
      if (subsumed) return 'seen';
    }
    if (this.entries >= mapEntriesMax) return 'full';
    if (!this.charge(stride * 4 + memoEntryOverheadBytes)) return 'full';
    const o = this.entries * stride;
    if (o + stride > this.pool.length) {
      const grown = new Uint32Array(this.pool.length * 2);
      grown.set(this.pool);
      this.pool = grown;
    }
    this.pool[o] = stateId;
    this.pool[o + 1] = exactHead;
    this.pool[o + 2] = subsumeHead;
    this.pool.set(bits, o + 3);
    this.entries++;
    this.exactHeads.set(exactKey, this.entries);
    if (this.hasOptional) this.subsumeHeads.set(subsumeKey, this.entries);
    return 'new';
  }
}

/**
 * The order in which a configuration's candidates are tried. Either order is
 * complete (it only changes which branch is explored first), and the checker
 * runs them as a portfolio: each wins on different histories.
 *
 * - `eager`: Wing & Gong's order, earliest invocation first. Places unknown
 *   operations early and notices wrong guesses quickly; best on linearizable
 *   histories with many unknown outcomes.
 * - `lookahead`: the due operation (the one whose return comes first) first,
 *   then operations after which it becomes legal, then completed ones, then
 *   unknown ones. Best at proving a history with unknown outcomes wrong.
 */
export type SearchStrategy = 'eager' | 'lookahead';

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
  strategy: SearchStrategy,
): PartitionOutcome<I, O> {
  const n = ops.length;
  const outputs: (O | undefined)[] = ops.map((op) => (op.outcome === 'ok' ? op.output : undefined));
  const unknown = ops.map((op) => op.outcome !== 'ok');

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
  const zobristCompleted = zobrist.slice();
  const bits = new Uint32Array(Math.max(1, Math.ceil(n / 32)));
  const optional = new Uint32Array(bits.length);
  ops.forEach((op, i) => {
    if (op.outcome === 'ok') return;
    optional[i >>> 5] = ((optional[i >>> 5] as number) | (1 << (i & 31))) >>> 0;
    zobristCompleted[i] = 0; // the subsumption key covers completed operations only
  });
  let setHash = 0;
  let completedHash = 0;
  const memo = new MemoTable(optional, budget.maxMemoBytes);
  const flip = (i: number): void => {
    bits[i >>> 5] = ((bits[i >>> 5] as number) ^ (1 << (i & 31))) >>> 0;
    setHash = (setHash ^ (zobrist[i] as number)) >>> 0;
    completedHash = (completedHash ^ (zobristCompleted[i] as number)) >>> 0;
  };

  // States are interned as small integers, and transitions (state, operation) →
  // state cached: the model is deterministic, so each pair is computed once.
  const stateIds = new Map<StateKey, number>();
  const states: S[] = [];
  const intern = (st: S): number => {
    const key = model.stateKey(st);
    let id = stateIds.get(key);
    if (id === undefined) {
      if (states.length >= mapEntriesMax) return memoFullId;
      const keyBytes = typeof key === 'string' ? 2 * key.length : 8;
      if (!memo.charge(keyBytes + memoEntryOverheadBytes)) return memoFullId;
      id = states.length;
      stateIds.set(key, id);
      states.push(st);
    }
    return id;
  };
  const transitions = new Map<number, number>();
  /** The state after op i from state `from`: an id, illegalId, or memoFullId. */
  const stepId = (from: number, i: number): number => {
    if (strategy === 'eager') {
      // Eager computes each transition about once: a cache would only cost.
      const next = model.step(states[from] as S, (ops[i] as Operation<I, O>).input, outputs[i]);
      return next === illegal ? illegalId : intern(next);
    }
    const key = from * n + i;
    let to = transitions.get(key);
    if (to === undefined) {
      const next = model.step(states[from] as S, (ops[i] as Operation<I, O>).input, outputs[i]);
      to = next === illegal ? illegalId : intern(next);
      if (to === memoFullId || transitions.size >= mapEntriesMax) return memoFullId;
      if (!memo.charge(memoEntryOverheadBytes)) return memoFullId;
      transitions.set(key, to);
    }
    return to;
  };

  // Canonical linearizations: an unknown operation directly followed by a blind
  // write (one whose result ignores the state and that no state refuses) is
  // invisible; dropping it leaves a valid linearization using fewer unknown
  // operations. So the search never places a blind write right after an
  // unknown operation, and whether the last placed operation is unknown is part
  // of the memoized configuration.
  const blind = ops.map((op, i) => model.isBlindWrite?.(op.input, outputs[i]) === true);

  // The search (Wing & Gong; Lowe's Algorithm 1 shape): a depth-first search
  // over configurations (placed operations, state). The candidates of a
  // configuration are the operations whose call comes before the first return
  // still in the list: the operation of that return (the due one) must be
  // placed before any operation invoked after it.
  interface Frame {
    /** Eager: the next call entry to try (the list order is the candidate order). */
    cursor: Entry | null;
    /** Lookahead: the operations to try, best first, and the next index. */
    readonly candidates: readonly number[] | undefined;
    next: number;
  }
  /** The operation of the first return still in the list. */
  const due = (): number => {
    let e = head.next;
    while (e !== null && e.isCall) e = e.next;
    assert(e !== null, 'a configuration with unplaced completed operations has a return left');
    return e.op;
  };
  /** The candidates of the current configuration, or undefined when the memory budget is spent. */
  const frame = (): Frame | undefined => {
    if (strategy === 'eager') return { cursor: head.next, candidates: undefined, next: 0 };
    // lookahead: due, then enablers of due, then completed, then unknown.
    const d = due();
    const enablers: number[] = [];
    const completed: number[] = [];
    const rest: number[] = [];
    for (let e = head.next; e !== null && e.isCall; e = e.next) {
      const c = e.op;
      if (c === d) continue;
      const mid = stepId(stateId, c);
      if (mid === memoFullId) return undefined;
      const after = mid === illegalId ? illegalId : stepId(mid, d);
      if (after === memoFullId) return undefined;
      if (after !== illegalId) enablers.push(c);
      else (unknown[c] ? rest : completed).push(c);
    }
    return { cursor: null, candidates: [d, ...enablers, ...completed, ...rest], next: 0 };
  };
  /** The next candidate of a frame, or -1 when it has none left. */
  const nextCandidate = (f: Frame): number => {
    if (f.candidates !== undefined) {
      return f.next < f.candidates.length ? (f.candidates[f.next++] as number) : -1;
    }
    const e = f.cursor;
    if (e === null || !e.isCall) return -1;
    f.cursor = e.next;
    return e.op;
  };
  /** All candidates of a frame, for explanations. */
  const allCandidates = (f: Frame): number[] => {
    if (f.candidates !== undefined) return [...f.candidates];
    const out: number[] = [];
    for (let e = head.next; e !== null && e.isCall; e = e.next) out.push(e.op);
    return out;
  };

  let stateId = intern(model.init());
  if (stateId === memoFullId) return { kind: 'budget', why: memoFullWhy(memo) };
  let topUnknown = false;
  const stackOps: number[] = [];
  const stackStateIds: number[] = [];
  let deepest = -Infinity;
  let deadEnd:
    | {
        stackOps: number[];
        stackStateIds: number[];
        stateId: number;
        at: { candidates: number[]; due: number };
      }
    | undefined;
  let placedRequired = 0;
  const witness = (): PartitionOutcome<I, O> => ({
    kind: 'ok',
    order: stackOps.map((i) => (ops[i] as Operation<I, O>).id),
  });

  try {
    // Every completed operation placed: the unknown ones left did not take effect.
    if (required === 0) return witness();
    const first = frame();
    if (first === undefined) return { kind: 'budget', why: memoFullWhy(memo) };
    const frames: Frame[] = [first];
    for (;;) {
      const f = frames[frames.length - 1] as Frame;
      const i = nextCandidate(f);
      if (i >= 0) {
        if (!budget.step()) return { kind: 'budget', why: budget.exhausted() };
        if (blind[i] && topUnknown) continue;
        const nextId = stepId(stateId, i);
        if (nextId === memoFullId) return { kind: 'budget', why: memoFullWhy(memo) };
        if (nextId === illegalId) continue;
        // An unknown operation that leaves the state as it is only uses itself up: skip it.
        if (unknown[i] && nextId === stateId) continue;
        flip(i);
        const key = 2 * nextId + (unknown[i] ? 1 : 0);
        const seen = memo.insert(
          (setHash ^ Math.imul(key + 1, 0x9e3779b1)) >>> 0,
          (completedHash ^ Math.imul(key + 1, 0x9e3779b1)) >>> 0,
          key,
          bits,
        );
        if (seen === 'full') return { kind: 'budget', why: memoFullWhy(memo) };
        if (seen === 'seen') {
          flip(i);
          continue;
        }
        stackOps.push(i);
        stackStateIds.push(stateId);
        if (!unknown[i]) placedRequired++;
        stateId = nextId;
        topUnknown = unknown[i] as boolean;
        lift(i);
        if (placedRequired === required) return witness();
        const next = frame();
        if (next === undefined) return { kind: 'budget', why: memoFullWhy(memo) };
        frames.push(next);
      } else {
        // Dead end: no candidate leads to a linearization; the due operation cannot be placed.
        // Keep the dead end that placed the most completed operations (then the fewest unknown ones).
        const score = placedRequired * (n + 1) - (stackOps.length - placedRequired);
        if (score > deepest) {
          deepest = score;
          // Copied now, rendered only if the partition fails (most dead ends are not final).
          deadEnd = {
            stackOps: [...stackOps],
            stackStateIds: [...stackStateIds],
            stateId,
            at: { candidates: allCandidates(f), due: due() },
          };
        }
        frames.pop();
        const last = stackOps.pop();
        if (last === undefined) {
          assert(deadEnd !== undefined, 'a failed search recorded why');
          const d = deadEnd;
          const explanation = explain(
            partition,
            ops,
            outputs,
            model,
            d.stackOps,
            d.stackStateIds,
            states,
            d.stateId,
            d.at,
            required,
          );
          return { kind: 'fail', explanation };
        }
        stateId = stackStateIds.pop() as number;
        const top = stackOps[stackOps.length - 1];
        topUnknown = top !== undefined && (unknown[top] as boolean);
        if (!unknown[last]) placedRequired--;
        flip(last);
        lower(last);
      }
    }
  } finally {
    budget.cacheEntries += memo.entries;
  }
}

/** Transition result: the operation is illegal in that state. */
const illegalId = -1;
/** Transition result: the memory budget is spent. */
const memoFullId = -2;

function memoFullWhy(memo: MemoTable): string {
  return `memo reached ${memo.bytes} bytes (linearizabilityMemoBytesMax)`;
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
  stackStateIds: readonly number[],
  states: readonly S[],
  stateId: number,
  at: { readonly candidates: readonly number[]; readonly due: number },
  required: number,
): Explanation<I, O> {
  const state = states[stateId] as S;
  const prefix: PrefixStep<I, O>[] = stackOps.map((i, k) => ({
    op: ops[i] as Operation<I, O>,
    stateAfter: model.describeState(
      states[k + 1 < stackStateIds.length ? (stackStateIds[k + 1] as number) : stateId] as S,
    ),
  }));
  const pending = [...at.candidates].sort((a, b) => a - b).map((i) => ops[i] as Operation<I, O>);
  const stuck = ops[at.due] as OkOperation<I, O>;
  const describe = (op: Operation<I, O>): string => {
    const times =
      op.outcome === 'ok' ? `[${op.invokeTime}, ${op.completeTime}]` : `[${op.invokeTime}, ?)`;
    const what = model.describeOperation(op.input, op.outcome === 'ok' ? op.output : undefined);
    return `#${op.id} p${op.process} ${clip(what)} ${times}`;
  };
  const placedCompleted = prefix.filter((p) => p.op.outcome === 'ok').length;
  const lines: string[] = [];
  lines.push(
    `not linearizable${partition === undefined ? '' : ` (partition ${JSON.stringify(partition)})`}: ` +
      `the longest linearizable prefix places ${placedCompleted} of the ${required} completed operations` +
      (prefix.length > placedCompleted
        ? ` (and ${prefix.length - placedCompleted} with unknown outcome)`
        : ''),
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
    const next = model.step(state, op.input, outputs[ops.indexOf(op)]);
    const why =
      next === illegal
        ? 'impossible now'
        : op.outcome !== 'ok' && model.stateKey(next) === model.stateKey(state)
          ? 'no effect now'
          : 'possible now, dead end later';
    lines.push(`  ${describe(op)}  (${why})`);
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

  const strategies = options.strategies ?? ['eager', 'lookahead'];
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
    // A portfolio: each order gets half of what is left (the last one all of it).
    let outcome: PartitionOutcome<I, O> = { kind: 'budget', why: 'no search strategy given' };
    for (let k = 0; k < strategies.length; k++) {
      if (k > 0 && budget.spent()) break;
      budget.startAttempt(k === strategies.length - 1 ? 1 : 0.5);
      outcome = checkPartition(key, ops, model, budget, strategies[k] as SearchStrategy);
      if (outcome.kind !== 'budget') break;
    }
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
