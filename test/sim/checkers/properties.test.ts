// Property tests: histories produced by a real sequential execution, stretched
// in time around each operation's linearization point, are always accepted;
// a read of a value never written is always rejected; and on small random
// histories the checker agrees with a brute-force search over all orders.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Operation } from '../../../src/sim/checkers/history.js';
import type { SearchStrategy } from '../../../src/sim/checkers/linearizability.js';
import {
  checkLinearizability,
  formatCheckResult,
} from '../../../src/sim/checkers/linearizability.js';
import type {
  KvInput,
  KvOutput,
  RegisterInput,
  RegisterOutput,
} from '../../../src/sim/checkers/models.js';
import { kvModel, registerModel } from '../../../src/sim/checkers/models.js';
import { bruteForce, witnessProblem } from './helpers.js';

type Fate = 'ok' | 'unknown-applied' | 'unknown-not-applied' | 'fail';

/** One generated operation: what it asks, how it ends, and how far its interval reaches around its point. */
interface GenOp<I> {
  input: I;
  fate: Fate;
  before: number;
  after: number;
  process: number;
}

const fate: fc.Arbitrary<Fate> = fc.oneof(
  { weight: 8, arbitrary: fc.constant<Fate>('ok') },
  { weight: 1, arbitrary: fc.constant<Fate>('unknown-applied') },
  { weight: 1, arbitrary: fc.constant<Fate>('unknown-not-applied') },
  { weight: 1, arbitrary: fc.constant<Fate>('fail') },
);

const keyArb = fc.constantFrom('a', 'b', 'c');
const valueArb = fc.constantFrom('1', '2', '3', 'x');

const kvInput: fc.Arbitrary<KvInput> = fc.oneof(
  fc.record({ f: fc.constant('get' as const), key: keyArb }),
  fc.record({ f: fc.constant('put' as const), key: keyArb, value: valueArb }),
  fc.record({ f: fc.constant('append' as const), key: keyArb, value: valueArb }),
  fc.record({ f: fc.constant('delete' as const), key: keyArb }),
  fc.record({
    f: fc.constant('cas' as const),
    key: keyArb,
    expected: fc.option(valueArb, { nil: null }),
    value: valueArb,
  }),
);

function genOps<I>(input: fc.Arbitrary<I>, maxLength: number): fc.Arbitrary<GenOp<I>[]> {
  return fc.array(
    fc.record({
      input,
      fate,
      before: fc.integer({ min: 0, max: 40 }),
      after: fc.integer({ min: 0, max: 40 }),
      process: fc.integer({ min: 0, max: 5 }),
    }),
    { maxLength },
  );
}

/** Runs one KV operation for real on a map: the next map and what the client sees. */
function execKv(store: Map<string, string>, input: KvInput): KvOutput {
  const cur = store.get(input.key) ?? null;
  switch (input.f) {
    case 'get':
      return { f: 'get', value: cur };
    case 'put':
      store.set(input.key, input.value);
      return { f: 'put' };
    case 'append':
      store.set(input.key, (cur ?? '') + input.value);
      return { f: 'append' };
    case 'delete':
      store.delete(input.key);
      return { f: 'delete', deleted: cur !== null };
    case 'cas':
      if (cur !== input.expected) return { f: 'cas', ok: false };
      store.set(input.key, input.value);
      return { f: 'cas', ok: true };
  }
}

/**
 * Executes the ops sequentially (op i takes effect at time 10·i + 5) and turns
 * the execution into a history: each op's interval contains its point, so the
 * real-time order is consistent with the execution order.
 */
function historyOf<I, O>(
  gen: GenOp<I>[],
  exec: (input: I) => O,
  shuffleSeed: number,
): Operation<I, O>[] {
  const ops: Operation<I, O>[] = gen.map((g, id) => {
    const point = 10 * id + 5;
    const invokeTime = Math.max(0, point - g.before);
    const base = { id, process: g.process, input: g.input, invokeTime };
    switch (g.fate) {
      case 'ok':
        return { ...base, outcome: 'ok', completeTime: point + g.after, output: exec(g.input) };
      case 'unknown-applied':
        exec(g.input);
        return { ...base, outcome: 'unknown' };
      case 'unknown-not-applied':
        return { ...base, outcome: 'unknown' };
      case 'fail':
        return { ...base, outcome: 'fail', completeTime: point + g.after };
    }
  });
  // The order of a history's array carries no meaning.
  let x = shuffleSeed | 1;
  for (let i = ops.length - 1; i > 0; i--) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const j = (x >>> 0) % (i + 1);
    [ops[i], ops[j]] = [ops[j] as Operation<I, O>, ops[i] as Operation<I, O>];
  }
  return ops;
}

describe('histories of sequential executions', () => {
  const kv = kvModel();

  it('are always linearizable (kv, many keys), with a valid witness', () => {
    fc.assert(
      fc.property(genOps(kvInput, 60), fc.integer(), (gen, seed) => {
        const store = new Map<string, string>();
        const history = historyOf(gen, (input: KvInput) => execKv(store, input), seed);
        const result = checkLinearizability(history, kv);
        expect(result.verdict, formatCheckResult(result)).toBe('linearizable');
        if (result.verdict === 'linearizable') {
          expect(witnessProblem(history, kv, result.witness)).toBeUndefined();
        }
      }),
      { numRuns: 150 },
    );
  });

  it('are always linearizable (register with read / write / cas)', () => {
    const reg = registerModel<number>();
    const v = fc.integer({ min: 0, max: 3 });
    const input: fc.Arbitrary<RegisterInput<number>> = fc.oneof(
      fc.constant({ f: 'read' as const }),
      fc.record({ f: fc.constant('write' as const), value: v }),
      fc.record({
        f: fc.constant('cas' as const),
        expected: fc.option(v, { nil: null }),
        value: v,
      }),
    );
    fc.assert(
      fc.property(genOps(input, 40), fc.integer(), (gen, seed) => {
        let value: number | null = null;
        const exec = (i: RegisterInput<number>): RegisterOutput<number> => {
          if (i.f === 'read') return { f: 'read', value };
          if (i.f === 'write') {
            value = i.value;
            return { f: 'write' };
          }
          if (value !== i.expected) return { f: 'cas', ok: false };
          value = i.value;
          return { f: 'cas', ok: true };
        };
        const history = historyOf(gen, exec, seed);
        const result = checkLinearizability(history, reg);
        expect(result.verdict, formatCheckResult(result)).toBe('linearizable');
      }),
      { numRuns: 150 },
    );
  });

  it('are rejected once one read returns a value never written', () => {
    fc.assert(
      fc.property(
        genOps(kvInput, 40),
        fc.integer(),
        keyArb,
        fc.nat({ max: 400 }),
        fc.nat({ max: 40 }),
        (gen, seed, key, at, length) => {
          const store = new Map<string, string>();
          const history = historyOf(gen, (input: KvInput) => execKv(store, input), seed);
          const bad: Operation<KvInput, KvOutput> = {
            id: history.length,
            process: 99,
            input: { f: 'get', key },
            invokeTime: at,
            outcome: 'ok',
            completeTime: at + length,
            output: { f: 'get', value: 'never-written' },
          };
          const result = checkLinearizability([...history, bad], kv);
          expect(result.verdict, formatCheckResult(result)).toBe('not-linearizable');
          if (result.verdict === 'not-linearizable') expect(result.explanation.partition).toBe(key);
        },
      ),
      { numRuns: 150 },
    );
  });
});

/** Brute-force comparisons stress unknown outcomes: half the operations end unknown or failed. */
const fateMixed: fc.Arbitrary<Fate> = fc.constantFrom<Fate>('ok', 'ok', 'unknown-applied', 'fail');

/** Each search order alone, and the default portfolio. */
const strategyCases: { name: string; strategies?: readonly SearchStrategy[] }[] = [
  { name: 'portfolio' },
  { name: 'eager', strategies: ['eager'] },
  { name: 'lookahead', strategies: ['lookahead'] },
];

/** Runs per brute-force comparison (raise with LIN_BRUTE_RUNS for a long local soak). */
const bruteRuns = Number(process.env['LIN_BRUTE_RUNS'] ?? 300);
/** Longest brute-forced history (LIN_BRUTE_LEN; the brute force is factorial in it). */
const bruteLength = Number(process.env['LIN_BRUTE_LEN'] ?? 7);

describe('small random histories', () => {
  // Arbitrary (mostly wrong) histories: random intervals and random outputs.
  const v = fc.integer({ min: 1, max: 2 });
  const regOp = fc.record({
    input: fc.oneof(
      fc.constant<RegisterInput<number>>({ f: 'read' }),
      fc.record({ f: fc.constant('write' as const), value: v }),
      fc.record({
        f: fc.constant('cas' as const),
        expected: fc.option(v, { nil: null }),
        value: v,
      }),
    ),
    readValue: fc.option(v, { nil: null }),
    casOk: fc.boolean(),
    fate: fateMixed,
    invoke: fc.integer({ min: 0, max: 12 }),
    length: fc.integer({ min: 0, max: 8 }),
  });

  it.each(strategyCases)(
    'get the same verdict as a brute-force search over all orders (register, $name)',
    ({ strategies }) => {
      const reg = registerModel<number>();
      let linearizable = 0;
      fc.assert(
        fc.property(fc.array(regOp, { maxLength: bruteLength }), (gen) => {
          const history: Operation<RegisterInput<number>, RegisterOutput<number>>[] = gen.map(
            (g, id) => {
              const base = { id, process: id, input: g.input, invokeTime: g.invoke };
              const completeTime = g.invoke + g.length;
              if (g.fate === 'fail') return { ...base, outcome: 'fail', completeTime };
              if (g.fate !== 'ok') return { ...base, outcome: 'unknown' };
              const output: RegisterOutput<number> =
                g.input.f === 'read'
                  ? { f: 'read', value: g.readValue }
                  : g.input.f === 'write'
                    ? { f: 'write' }
                    : { f: 'cas', ok: g.casOk };
              return { ...base, outcome: 'ok', completeTime, output };
            },
          );
          const expected = bruteForce(history, reg);
          if (expected) linearizable++;
          const result = checkLinearizability(history, reg, strategies ? { strategies } : {});
          expect(result.verdict, formatCheckResult(result)).toBe(
            expected ? 'linearizable' : 'not-linearizable',
          );
        }),
        { numRuns: bruteRuns },
      );
      // The generator must exercise both verdicts, or the comparison proves little.
      expect(linearizable).toBeGreaterThan(bruteRuns * 0.1);
      expect(linearizable).toBeLessThan(bruteRuns * 0.9);
    },
  );

  it.each(strategyCases)(
    'get the same verdict as a brute-force search without partitioning (kv, two keys, $name)',
    ({ strategies }) => {
      const kv = kvModel();
      const kvOp = fc.record({
        input: fc.oneof(
          fc.record({ f: fc.constant('get' as const), key: fc.constantFrom('a', 'b') }),
          fc.record({
            f: fc.constant('put' as const),
            key: fc.constantFrom('a', 'b'),
            value: fc.constantFrom('1', '2'),
          }),
          fc.record({
            f: fc.constant('append' as const),
            key: fc.constantFrom('a', 'b'),
            value: fc.constantFrom('1', '2'),
          }),
          fc.record({ f: fc.constant('delete' as const), key: fc.constantFrom('a', 'b') }),
          fc.record({
            f: fc.constant('cas' as const),
            key: fc.constantFrom('a', 'b'),
            expected: fc.option(fc.constantFrom('1', '2'), { nil: null }),
            value: fc.constantFrom('1', '2'),
          }),
        ),
        readValue: fc.option(fc.constantFrom('1', '2', '12', '21'), { nil: null }),
        flag: fc.option(fc.boolean(), { nil: undefined }),
        fate: fateMixed,
        invoke: fc.integer({ min: 0, max: 12 }),
        length: fc.integer({ min: 0, max: 8 }),
      });
      let linearizable = 0;
      fc.assert(
        fc.property(fc.array(kvOp, { maxLength: bruteLength }), (gen) => {
          const history: Operation<KvInput, KvOutput>[] = gen.map((g, id) => {
            const base = { id, process: id, input: g.input, invokeTime: g.invoke };
            const completeTime = g.invoke + g.length;
            if (g.fate === 'fail') return { ...base, outcome: 'fail', completeTime };
            if (g.fate !== 'ok') return { ...base, outcome: 'unknown' };
            const f = g.input.f;
            const output: KvOutput =
              f === 'get'
                ? { f, value: g.readValue }
                : f === 'cas'
                  ? { f, ok: g.flag ?? true }
                  : f === 'delete'
                    ? g.flag === undefined
                      ? { f }
                      : { f, deleted: g.flag }
                    : { f };
            return { ...base, outcome: 'ok', completeTime, output };
          });
          const expected = bruteForce(history, kv);
          if (expected) linearizable++;
          const result = checkLinearizability(history, kv, strategies ? { strategies } : {});
          expect(result.verdict, formatCheckResult(result)).toBe(
            expected ? 'linearizable' : 'not-linearizable',
          );
        }),
        { numRuns: bruteRuns },
      );
      expect(linearizable).toBeGreaterThan(bruteRuns * 0.1);
      expect(linearizable).toBeLessThan(bruteRuns * 0.9);
    },
  );
});
