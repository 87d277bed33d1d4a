/**
 * Sequential specifications for the linearizability checker. A {@link Model}
 * says what one operation does to a state and which outputs it may return; the
 * checker searches for an order of the history's operations that the model
 * accepts. Two models are provided: a single register (read / write / cas) and
 * a key-value map (get / put / append / delete / cas) checked one key at a time.
 *
 * ```ts
 * const m = kvModel();                       // absent keys read as null
 * let s = m.init();                          // one key's state: null
 * s = m.step(s, { f: 'put', key: 'a', value: '1' }, { f: 'put' });          // '1'
 * m.step(s, { f: 'get', key: 'a' }, { f: 'get', value: '2' }) === illegal;   // true
 * ```
 */

/** A model state's canonical key: a primitive, compared as a Map key. */
export type StateKey = string | number | boolean | null;

/** Returned by {@link Model.step} when the output is impossible in that state. */
export const illegal: unique symbol = Symbol('illegal');

/** The type of {@link illegal}. */
export type Illegal = typeof illegal;

/**
 * A sequential specification. `State` must be immutable (the checker keeps old
 * states to backtrack) and must not be `undefined`.
 */
export interface Model<State, Input, Output> {
  /** Shown in results. */
  readonly name: string;
  /** The state before any operation (of one partition, when {@link partition} is set). */
  init(): State;
  /**
   * Applies one operation. `output` is `undefined` when the outcome is unknown:
   * the operation then takes effect as the state dictates and constrains nothing.
   * Returns the next state, or {@link illegal} when `output` could not be
   * returned from `state`.
   */
  step(state: State, input: Input, output: Output | undefined): State | Illegal;
  /**
   * A canonical key: equal keys (SameValueZero, as Map keys) if and only if
   * equal states; the search memoizes on it. Returning the state itself when
   * it is a primitive avoids building strings in the search's inner loop.
   */
  stateKey(state: State): StateKey;
  /**
   * P-compositionality (Herlihy & Wing 1990, locality): when set, operations
   * with different keys are independent, and each partition is checked alone
   * from {@link init}. Leave unset when operations span partitions.
   */
  partition?(input: Input): string;
  /**
   * True when the operation never changes the state (a read). Such an operation
   * with an unknown outcome constrains nothing, so the checker drops it.
   */
  isReadOnly?(input: Input): boolean;
  /**
   * True when the operation is a blind write: its next state does not depend on
   * the state, and no state makes it illegal with this output (a put). The
   * checker then never places it right after an unknown operation, whose
   * effect it would hide; a big saving when many outcomes are unknown.
   */
  isBlindWrite?(input: Input, output: Output | undefined): boolean;
  /** One-line rendering of an operation, for explanations. */
  describeOperation(input: Input, output: Output | undefined): string;
  /** One-line rendering of a state, for explanations. */
  describeState(state: State): string;
}

/** Renders a value for explanations: strings quoted, null as nil. */
function show(v: string | number | null): string {
  if (v === null) return 'nil';
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

// ---------------------------------------------------------------------------
// Register

/** A register value: a number or a string. */
export type RegisterValue = string | number;

/** An operation on one register. */
export type RegisterInput<V extends RegisterValue = RegisterValue> =
  | { readonly f: 'read' }
  | { readonly f: 'write'; readonly value: V }
  /** Compare-and-set: if the value is `expected` (null: no value yet), make it `value`. */
  | { readonly f: 'cas'; readonly expected: V | null; readonly value: V };

/** What a client saw from a register operation. */
export type RegisterOutput<V extends RegisterValue = RegisterValue> =
  | { readonly f: 'read'; readonly value: V | null }
  | { readonly f: 'write' }
  /** `ok: false`: the comparison failed and nothing changed. */
  | { readonly f: 'cas'; readonly ok: boolean };

/**
 * A single register holding a value or nothing (null, the initial state).
 * Jepsen's etcd histories (test/sim/checkers/histories/jepsen-etcd) use this model.
 */
export function registerModel<V extends RegisterValue = RegisterValue>(): Model<
  V | null,
  RegisterInput<V>,
  RegisterOutput<V>
> {
  return {
    name: 'register',
    init: () => null,
    step(state, input, output) {
      if (output !== undefined && output.f !== input.f) return illegal;
      switch (input.f) {
        case 'read':
          if (output === undefined) return state;
          return (output as { value: V | null }).value === state ? state : illegal;
        case 'write':
          return input.value;
        case 'cas': {
          const matches = state === input.expected;
          if (output === undefined) return matches ? input.value : state;
          const ok = (output as { ok: boolean }).ok;
          if (ok) return matches ? input.value : illegal;
          return matches ? illegal : state;
        }
      }
    },
    // Numbers and strings stay distinct as Map keys (1 is not '1').
    stateKey: (state) => state,
    isReadOnly: (input) => input.f === 'read',
    isBlindWrite: (input) => input.f === 'write',
    describeOperation(input, output) {
      const out = output === undefined ? ' → ?' : '';
      switch (input.f) {
        case 'read':
          return `read → ${output === undefined ? '?' : show((output as { value: V | null }).value)}`;
        case 'write':
          return `write(${show(input.value)})${out}`;
        case 'cas':
          return `cas(${show(input.expected)} → ${show(input.value)})${
            output === undefined ? out : (output as { ok: boolean }).ok ? ' ok' : ' failed'
          }`;
      }
    },
    describeState: (state) => show(state),
  };
}

// ---------------------------------------------------------------------------
// Key-value map

/** An operation on the key-value store, on one key. */
export type KvInput =
  | { readonly f: 'get'; readonly key: string }
  | { readonly f: 'put'; readonly key: string; readonly value: string }
  /** Appends `value` to the key's value (an absent key counts as empty). */
  | { readonly f: 'append'; readonly key: string; readonly value: string }
  | { readonly f: 'delete'; readonly key: string }
  /** Compare-and-set: if the value is `expected` (null: the key is absent), make it `value`. */
  | {
      readonly f: 'cas';
      readonly key: string;
      readonly expected: string | null;
      readonly value: string;
    };

/** What a client saw from a key-value operation. */
export type KvOutput =
  /** `value` null: the key is absent. */
  | { readonly f: 'get'; readonly value: string | null }
  | { readonly f: 'put' }
  | { readonly f: 'append' }
  /** `deleted`, when reported, says whether the key existed. */
  | { readonly f: 'delete'; readonly deleted?: boolean }
  /** `ok: false`: the comparison failed and nothing changed. */
  | { readonly f: 'cas'; readonly ok: boolean };

/** Options for {@link kvModel}. */
export interface KvModelOptions {
  /**
   * What a key holds before any write: null (absent, cohort's store) or a
   * string (the Jepsen kv histories start every key as "").
   */
  readonly initialValue?: string | null;
}

/**
 * A key-value map, partitioned per key: its state is one key's value (null when
 * absent), and each key is checked separately (P-compositionality).
 */
export function kvModel(options: KvModelOptions = {}): Model<string | null, KvInput, KvOutput> {
  const initial = options.initialValue ?? null;
  return {
    name: 'kv',
    init: () => initial,
    step(state, input, output) {
      if (output !== undefined && output.f !== input.f) return illegal;
      switch (input.f) {
        case 'get':
          if (output === undefined) return state;
          return (output as { value: string | null }).value === state ? state : illegal;
        case 'put':
          return input.value;
        case 'append':
          return (state ?? '') + input.value;
        case 'delete': {
          const deleted = (output as { deleted?: boolean } | undefined)?.deleted;
          if (deleted !== undefined && deleted !== (state !== null)) return illegal;
          return null;
        }
        case 'cas': {
          const matches = state === input.expected;
          if (output === undefined) return matches ? input.value : state;
          const ok = (output as { ok: boolean }).ok;
          if (ok) return matches ? input.value : illegal;
          return matches ? illegal : state;
        }
      }
    },
    stateKey: (state) => state,
    partition: (input) => input.key,
    isReadOnly: (input) => input.f === 'get',
    isBlindWrite: (input, output) =>
      input.f === 'put' ||
      (input.f === 'delete' &&
        (output as { deleted?: boolean } | undefined)?.deleted === undefined),
    describeOperation(input, output) {
      const k = JSON.stringify(input.key);
      const unknown = output === undefined ? ' → ?' : '';
      switch (input.f) {
        case 'get':
          return `get(${k}) → ${
            output === undefined ? '?' : show((output as { value: string | null }).value)
          }`;
        case 'put':
          return `put(${k}, ${show(input.value)})${unknown}`;
        case 'append':
          return `append(${k}, ${show(input.value)})${unknown}`;
        case 'delete': {
          const deleted = (output as { deleted?: boolean } | undefined)?.deleted;
          return `delete(${k})${
            output === undefined
              ? unknown
              : deleted === undefined
                ? ''
                : deleted
                  ? ' → deleted'
                  : ' → absent'
          }`;
        }
        case 'cas':
          return `cas(${k}, ${show(input.expected)} → ${show(input.value)})${
            output === undefined ? unknown : (output as { ok: boolean }).ok ? ' ok' : ' failed'
          }`;
      }
    },
    describeState: (state) => show(state),
  };
}
