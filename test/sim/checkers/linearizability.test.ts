import { describe, expect, it } from 'vitest';
import { CohortError } from '../../../src/lib/errors.js';
import type { History } from '../../../src/sim/checkers/history.js';
import type { CheckResult } from '../../../src/sim/checkers/linearizability.js';
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
import { Builder, cas, r, w, witnessProblem } from './helpers.js';

type RI = RegisterInput<number>;
type RO = RegisterOutput<number>;
const reg = registerModel<number>();

function check(h: History<RI, RO>): CheckResult<RI, RO> {
  const result = checkLinearizability(h, reg);
  if (result.verdict === 'linearizable') {
    expect(witnessProblem(h, reg, result.witness)).toBeUndefined();
  }
  return result;
}

function accepts(b: Builder<RI, RO>): void {
  const result = check(b.ops);
  expect(result.verdict, formatCheckResult(result)).toBe('linearizable');
}

function rejects(b: Builder<RI, RO>): CheckResult<RI, RO> {
  const result = check(b.ops);
  expect(result.verdict, formatCheckResult(result)).toBe('not-linearizable');
  return result;
}

const reg0 = (): Builder<RI, RO> => new Builder<RI, RO>();

describe('register: accepted histories', () => {
  it('accepts the empty history', () => {
    accepts(reg0());
  });

  it('accepts a sequential write then read of the same value', () => {
    const b = reg0();
    w(b, 1, 1, 0, 1);
    r(b, 2, 1, 2, 3);
    accepts(b);
  });

  it('accepts a read of nil before any write', () => {
    const b = reg0();
    r(b, 1, null, 0, 1);
    w(b, 1, 1, 2, 3);
    accepts(b);
  });

  it('accepts a read concurrent with a write returning either the old or the new value', () => {
    const b = reg0();
    w(b, 1, 1, 0, 1);
    w(b, 2, 2, 2, 10);
    r(b, 3, 1, 3, 4);
    r(b, 4, 2, 5, 6);
    accepts(b);
  });

  it('accepts a write placed before an earlier-invoked concurrent write', () => {
    const b = reg0();
    w(b, 1, 1, 0, 10);
    w(b, 2, 2, 1, 3);
    r(b, 3, 1, 11, 12); // so w1 took effect after w2
    accepts(b);
  });

  it('treats operations that touch in time as concurrent', () => {
    const b = reg0();
    w(b, 1, 1, 0, 5);
    r(b, 2, null, 5, 6); // invoked at the instant the write completed
    accepts(b);
  });

  it('accepts a failed CAS when the value differed and a successful one when it matched', () => {
    const b = reg0();
    w(b, 1, 1, 0, 1);
    cas(b, 2, 2, 3, false, 2, 3);
    cas(b, 2, 1, 3, true, 4, 5);
    r(b, 3, 3, 6, 7);
    accepts(b);
  });

  it('accepts a CAS from nil on the empty register', () => {
    const b = reg0();
    cas(b, 1, null, 7, true, 0, 1);
    r(b, 2, 7, 2, 3);
    accepts(b);
  });

  it('accepts two concurrent CASes where only one wins', () => {
    const b = reg0();
    w(b, 1, 0, 0, 1);
    cas(b, 2, 0, 1, true, 2, 6);
    cas(b, 3, 0, 2, false, 3, 7);
    r(b, 4, 1, 8, 9);
    accepts(b);
  });
});

describe('register: rejected histories', () => {
  it('rejects a stale read after a completed write', () => {
    const b = reg0();
    w(b, 1, 1, 0, 1);
    w(b, 1, 2, 2, 3);
    r(b, 2, 1, 4, 5);
    const result = rejects(b);
    if (result.verdict !== 'not-linearizable') return;
    const e = result.explanation;
    expect(e.stuck.id).toBe(2);
    expect(e.prefix.map((p) => p.op.id)).toEqual([0, 1]);
    expect(e.state).toBe('2');
    expect(e.text).toContain('read → 1');
    expect(e.partition).toBeUndefined();
  });

  it('rejects a read of nil after a completed write', () => {
    const b = reg0();
    w(b, 1, 1, 0, 1);
    r(b, 2, null, 2, 3);
    rejects(b);
  });

  it('rejects reads going back in time while concurrent with one write', () => {
    const b = reg0();
    w(b, 1, 1, 0, 1);
    w(b, 2, 2, 2, 10);
    r(b, 3, 2, 3, 4);
    r(b, 4, 1, 5, 6); // the register was 2 already
    rejects(b);
  });

  it('rejects a read of a value never written', () => {
    const b = reg0();
    w(b, 1, 1, 0, 10);
    r(b, 2, 9, 1, 11);
    rejects(b);
  });

  it('rejects a lost write: a later read ignores an acknowledged overwrite', () => {
    const b = reg0();
    w(b, 1, 1, 0, 1);
    w(b, 2, 2, 2, 4);
    r(b, 3, 2, 5, 6);
    r(b, 4, 1, 7, 8);
    rejects(b);
  });

  it('rejects two successful CASes from the same expected value', () => {
    const b = reg0();
    w(b, 1, 0, 0, 1);
    cas(b, 2, 0, 1, true, 2, 6);
    cas(b, 3, 0, 2, true, 3, 7);
    rejects(b);
  });

  it('rejects a failed CAS whose comparison must have matched', () => {
    const b = reg0();
    w(b, 1, 1, 0, 1);
    cas(b, 2, 1, 2, false, 2, 3);
    rejects(b);
  });

  it('rejects a successful CAS whose comparison cannot have matched', () => {
    const b = reg0();
    w(b, 1, 1, 0, 1);
    cas(b, 2, 5, 2, true, 2, 3);
    rejects(b);
  });

  it('rejects a read that misses a successful CAS', () => {
    const b = reg0();
    w(b, 1, 1, 0, 1);
    cas(b, 2, 1, 2, true, 2, 3);
    r(b, 3, 1, 4, 5);
    rejects(b);
  });
});

describe('register values', () => {
  it('keeps numbers and strings apart (1 is not "1")', () => {
    const m = registerModel();
    const b = new Builder<RegisterInput, RegisterOutput>();
    b.ok(1, { f: 'write', value: 1 }, 0, 1, { f: 'write' });
    b.ok(2, { f: 'read' }, 2, 3, { f: 'read', value: '1' });
    expect(checkLinearizability(b.ops, m).verdict).toBe('not-linearizable');
  });
});

describe('unknown and failed outcomes', () => {
  it('lets an unknown write take effect long after its invocation', () => {
    const b = reg0();
    b.unknown(1, { f: 'write', value: 5 }, 0);
    r(b, 2, null, 10, 11);
    r(b, 2, 5, 12, 13);
    accepts(b);
  });

  it('lets an unknown write never take effect', () => {
    const b = reg0();
    b.unknown(1, { f: 'write', value: 5 }, 0);
    r(b, 2, null, 10, 11);
    accepts(b);
  });

  it('takes an unknown write effect at most once', () => {
    const b = reg0();
    b.unknown(1, { f: 'write', value: 5 }, 0);
    w(b, 2, 1, 1, 2);
    r(b, 3, 5, 3, 4);
    r(b, 3, 1, 5, 6); // would need the 1 written again after the 5
    rejects(b);
  });

  it('does not let an unknown write explain a read that completed before it was invoked', () => {
    const b = reg0();
    r(b, 2, 5, 0, 1);
    b.unknown(1, { f: 'write', value: 5 }, 2);
    rejects(b);
  });

  it('lets an unknown CAS succeed when the value matches', () => {
    const b = reg0();
    w(b, 1, 1, 0, 1);
    b.unknown(2, { f: 'cas', expected: 1, value: 2 }, 2);
    r(b, 3, 2, 10, 11);
    accepts(b);
  });

  it('does not let an unknown CAS succeed when the value never matched', () => {
    const b = reg0();
    w(b, 1, 1, 0, 1);
    b.unknown(2, { f: 'cas', expected: 7, value: 2 }, 2);
    r(b, 3, 2, 10, 11);
    rejects(b);
  });

  it('drops a failed write: it definitely did not happen', () => {
    const b = reg0();
    b.fail(1, { f: 'write', value: 5 }, 0, 1);
    r(b, 2, 5, 2, 3);
    rejects(b);
  });

  it('ignores a read whose outcome is unknown', () => {
    const b = reg0();
    w(b, 1, 1, 0, 1);
    b.unknown(2, { f: 'read' }, 2);
    r(b, 3, 1, 3, 4);
    const result = check(b.ops);
    expect(result.verdict).toBe('linearizable');
    if (result.verdict === 'linearizable') expect(result.witness[0]?.order).toEqual([0, 2]);
  });

  it('places unknown operations that took effect in the witness and leaves the others out', () => {
    const b = reg0();
    b.unknown(1, { f: 'write', value: 5 }, 0);
    b.unknown(2, { f: 'write', value: 6 }, 20);
    r(b, 3, 5, 10, 11);
    const result = check(b.ops);
    expect(result.verdict).toBe('linearizable');
    if (result.verdict === 'linearizable') expect(result.witness[0]?.order).toEqual([0, 2]);
  });
});

describe('pruning for unknown outcomes (verdicts unchanged, witnesses minimal)', () => {
  it('leaves out an unknown write that a later write would hide', () => {
    const b = reg0();
    b.unknown(1, { f: 'write', value: 5 }, 0);
    w(b, 2, 6, 1, 2);
    r(b, 3, 6, 3, 4);
    const result = check(b.ops);
    expect(result.verdict).toBe('linearizable');
    if (result.verdict === 'linearizable') expect(result.witness[0]?.order).toEqual([1, 2]);
  });

  it('still lets an unknown write take effect after a later-invoked write', () => {
    const b = reg0();
    b.unknown(1, { f: 'write', value: 5 }, 0);
    w(b, 2, 6, 1, 2);
    r(b, 3, 5, 3, 4);
    const result = check(b.ops);
    expect(result.verdict).toBe('linearizable');
    if (result.verdict === 'linearizable') expect(result.witness[0]?.order).toEqual([1, 0, 2]);
  });

  it('leaves out an unknown CAS that would fail (it changes nothing)', () => {
    const b = reg0();
    b.unknown(1, { f: 'cas', expected: 5, value: 6 }, 0);
    r(b, 2, null, 1, 2);
    const result = check(b.ops);
    expect(result.verdict).toBe('linearizable');
    if (result.verdict === 'linearizable') expect(result.witness[0]?.order).toEqual([1]);
  });

  it('labels each pending operation in the explanation', () => {
    const b = reg0();
    b.unknown(1, { f: 'cas', expected: 5, value: 6 }, 0);
    b.unknown(2, { f: 'write', value: 7 }, 0);
    r(b, 3, 9, 1, 2);
    const result = rejects(b);
    if (result.verdict !== 'not-linearizable') return;
    const text = result.explanation.text;
    expect(text).toContain('cas(5 → 6) → ? [0, ?)  (no effect now)');
    expect(text).toContain('write(7) → ? [0, ?)  (possible now, dead end later)');
    expect(text).toContain('read → 9 [1, 2]  (impossible now)');
    expect(result.explanation.pending.map((op) => op.id)).toEqual([0, 1, 2]);
  });
});

describe('key-value model', () => {
  type KvB = Builder<KvInput, KvOutput>;
  const kv = kvModel();
  const kvCheck = (b: KvB): CheckResult<KvInput, KvOutput> => {
    const result = checkLinearizability(b.ops, kv);
    if (result.verdict === 'linearizable')
      expect(witnessProblem(b.ops, kv, result.witness)).toBeUndefined();
    return result;
  };
  const put = (b: KvB, p: number, key: string, value: string, t0: number, t1: number): KvB =>
    b.ok(p, { f: 'put', key, value }, t0, t1, { f: 'put' });
  const get = (b: KvB, p: number, key: string, value: string | null, t0: number, t1: number): KvB =>
    b.ok(p, { f: 'get', key }, t0, t1, { f: 'get', value });

  it('reads absent keys as null and checks keys independently', () => {
    const b = new Builder<KvInput, KvOutput>();
    get(b, 1, 'a', null, 0, 1);
    put(b, 1, 'a', 'x', 2, 3);
    put(b, 2, 'b', 'y', 0, 10);
    get(b, 3, 'a', 'x', 4, 5);
    get(b, 3, 'b', null, 6, 7);
    const result = kvCheck(b);
    expect(result.verdict).toBe('linearizable');
    expect(result.stats.partitions).toBe(2);
  });

  it('names the partition of a stale read', () => {
    const b = new Builder<KvInput, KvOutput>();
    put(b, 1, 'a', 'x', 0, 1);
    put(b, 1, 'b', 'y', 2, 3);
    put(b, 1, 'b', 'z', 4, 5);
    get(b, 2, 'a', 'x', 6, 7);
    get(b, 2, 'b', 'y', 8, 9);
    const result = kvCheck(b);
    expect(result.verdict).toBe('not-linearizable');
    if (result.verdict === 'not-linearizable') {
      expect(result.explanation.partition).toBe('b');
      expect(result.explanation.text).toContain('partition "b"');
    }
  });

  it('rejects a lost append', () => {
    const b = new Builder<KvInput, KvOutput>();
    b.ok(1, { f: 'append', key: 'k', value: 'x' }, 0, 1, { f: 'append' });
    b.ok(2, { f: 'append', key: 'k', value: 'y' }, 0, 2, { f: 'append' });
    get(b, 3, 'k', 'x', 3, 4);
    expect(kvCheck(b).verdict).toBe('not-linearizable');
  });

  it('accepts concurrent appends in either order', () => {
    const b = new Builder<KvInput, KvOutput>();
    b.ok(1, { f: 'append', key: 'k', value: 'x' }, 0, 5, { f: 'append' });
    b.ok(2, { f: 'append', key: 'k', value: 'y' }, 1, 4, { f: 'append' });
    get(b, 3, 'k', 'yx', 6, 7);
    expect(kvCheck(b).verdict).toBe('linearizable');
  });

  it('models delete, including whether the key existed', () => {
    const ok = new Builder<KvInput, KvOutput>();
    put(ok, 1, 'k', 'v', 0, 1);
    ok.ok(1, { f: 'delete', key: 'k' }, 2, 3, { f: 'delete', deleted: true });
    ok.ok(1, { f: 'delete', key: 'k' }, 4, 5, { f: 'delete', deleted: false });
    get(ok, 2, 'k', null, 6, 7);
    expect(kvCheck(ok).verdict).toBe('linearizable');

    const bad = new Builder<KvInput, KvOutput>();
    bad.ok(1, { f: 'delete', key: 'k' }, 0, 1, { f: 'delete', deleted: true }); // nothing to delete
    expect(kvCheck(bad).verdict).toBe('not-linearizable');
  });

  it('models cas with create-if-absent (expected null)', () => {
    const b = new Builder<KvInput, KvOutput>();
    b.ok(1, { f: 'cas', key: 'k', expected: null, value: '1' }, 0, 1, { f: 'cas', ok: true });
    b.ok(2, { f: 'cas', key: 'k', expected: null, value: '2' }, 2, 3, { f: 'cas', ok: false });
    b.ok(2, { f: 'cas', key: 'k', expected: '1', value: '3' }, 4, 5, { f: 'cas', ok: true });
    get(b, 3, 'k', '3', 6, 7);
    expect(kvCheck(b).verdict).toBe('linearizable');

    const bad = new Builder<KvInput, KvOutput>();
    bad.ok(1, { f: 'cas', key: 'k', expected: null, value: '1' }, 0, 1, { f: 'cas', ok: true });
    bad.ok(2, { f: 'cas', key: 'k', expected: null, value: '2' }, 2, 3, { f: 'cas', ok: true });
    expect(kvCheck(bad).verdict).toBe('not-linearizable');
  });

  it('rejects an output of another operation kind', () => {
    const b = new Builder<KvInput, KvOutput>();
    b.ok(1, { f: 'get', key: 'k' }, 0, 1, { f: 'put' });
    expect(kvCheck(b).verdict).toBe('not-linearizable');
  });

  it('starts keys at the configured initial value', () => {
    const b = new Builder<KvInput, KvOutput>();
    get(b, 1, 'k', '', 0, 1);
    expect(checkLinearizability(b.ops, kvModel({ initialValue: '' })).verdict).toBe('linearizable');
    expect(checkLinearizability(b.ops, kvModel()).verdict).toBe('not-linearizable');
  });
});

describe('budget and validation', () => {
  /**
   * `n` concurrent appends with unknown outcomes and a read nobody can explain:
   * every subset in every order gives a different value, so the search must
   * visit about e·n! configurations before it can answer.
   */
  function hard(n: number): History<KvInput, KvOutput> {
    const b = new Builder<KvInput, KvOutput>();
    for (let i = 0; i < n; i++)
      b.unknown(i, { f: 'append', key: 'k', value: String.fromCharCode(97 + i) }, 0);
    b.ok(99, { f: 'get', key: 'k' }, 1, 2, { f: 'get', value: 'zzz' });
    return b.ops;
  }
  const kv = kvModel();

  it('answers unknown, never a verdict, when the step budget runs out', () => {
    const result = checkLinearizability(hard(9), kv, { maxSteps: 1000 });
    expect(result.verdict).toBe('unknown');
    if (result.verdict === 'unknown') {
      expect(result.undecided).toEqual(['k']);
      expect(result.reason).toContain('step budget of 1000 spent');
      expect(result.stats.steps).toBeLessThanOrEqual(1001);
    }
    // A smaller instance of the same shape is decided.
    const small = checkLinearizability(hard(4), kv);
    expect(small.verdict).toBe('not-linearizable');
    expect(small.stats.cacheEntries).toBeGreaterThanOrEqual(64); // every ordered subset of 4 appends
  });

  it('answers unknown when the memo outgrows its byte budget', () => {
    const result = checkLinearizability(hard(9), kv, { maxMemoBytes: 64 * 1024 });
    expect(result.verdict).toBe('unknown');
    if (result.verdict === 'unknown') {
      expect(result.reason).toContain('linearizabilityMemoBytesMax');
    }
  });

  it('answers unknown when the time budget runs out, by the injected clock', () => {
    let t = 0;
    const result = checkLinearizability(hard(9), kv, { timeoutMs: 5, now: () => (t += 10) });
    expect(result.verdict).toBe('unknown');
    if (result.verdict === 'unknown') expect(result.reason).toContain('time budget spent');
  });

  it('refuses a completion before the invocation with INVALID_ARGUMENT', () => {
    const b = reg0();
    w(b, 1, 1, 5, 4);
    expect(() => checkLinearizability(b.ops, reg)).toThrow(CohortError);
    try {
      checkLinearizability(b.ops, reg);
    } catch (err) {
      expect((err as CohortError).code).toBe('INVALID_ARGUMENT');
    }
  });

  it('refuses duplicate ids and non-finite invoke times', () => {
    const b = reg0();
    w(b, 1, 1, 0, 1);
    const dup = [...b.ops, ...b.ops];
    expect(() => checkLinearizability(dup, reg)).toThrow(/duplicate/);
    const nan = [{ ...b.ops[0]!, invokeTime: NaN }];
    expect(() => checkLinearizability(nan, reg)).toThrow(/non-finite/);
  });

  it('formats every verdict', () => {
    const ok = reg0();
    w(ok, 1, 1, 0, 1);
    expect(formatCheckResult(checkLinearizability(ok.ops, reg))).toMatch(/^linearizable \(1 ops/);
    expect(formatCheckResult(checkLinearizability(hard(9), kv, { maxSteps: 5 }))).toMatch(
      /^unknown: /,
    );
    const text = formatCheckResult(checkLinearizability(hard(3), kv));
    expect(text).toMatch(/^not linearizable \(partition "k"\): the longest linearizable prefix/);
    expect(text).toContain('get("k") → "zzz"');
  });
});
