/**
 * The nemesis harness's own rules, on hand-made histories: which acknowledged
 * writes count as lost at the end, and how client errors are recorded.
 */
import { describe, expect, it } from 'vitest';
import { CohortError } from '../../src/lib/errors.js';
import type { KvHistory } from './kv-nemesis.js';
import { classifyKvError, historyFigures, lostWrites } from './kv-nemesis.js';

/** An ok put of `value` on key k over [t0, t1]. */
function put(id: number, value: string, t0: number, t1: number): KvHistory[number] {
  return {
    id,
    process: 1,
    input: { f: 'put', key: 'k', value },
    invokeTime: t0,
    outcome: 'ok',
    completeTime: t1,
    output: { f: 'put' },
  };
}

/** The final read of key k, seeing `value`, at time t. */
function final(id: number, value: string | null, t: number): KvHistory[number] {
  return {
    id,
    process: 'final',
    input: { f: 'get', key: 'k' },
    invokeTime: t,
    outcome: 'ok',
    completeTime: t + 1,
    output: { f: 'get', value },
  };
}

describe('lostWrites', () => {
  it('accepts a final value written by the last write', () => {
    expect(lostWrites([put(0, 'a', 0, 1), put(1, 'b', 2, 3), final(2, 'b', 10)])).toEqual([]);
  });

  it('accepts either of two concurrent writes as the final value', () => {
    const h = [put(0, 'a', 0, 5), put(1, 'b', 1, 4)];
    expect(lostWrites([...h, final(2, 'a', 10)])).toEqual([]);
    expect(lostWrites([...h, final(2, 'b', 10)])).toEqual([]);
  });

  it('flags a write acknowledged after the final value was already overwritten', () => {
    const lost = lostWrites([put(0, 'a', 0, 1), put(1, 'b', 2, 3), final(2, 'a', 10)]);
    expect(lost).toHaveLength(1);
    expect(lost[0]).toContain('"b"');
  });

  it('flags every acknowledged write when the key reads as absent', () => {
    expect(lostWrites([put(0, 'a', 0, 1), final(1, null, 10)])).toHaveLength(1);
  });

  it('lets a write with an unknown outcome be the last one', () => {
    const unknown: KvHistory[number] = {
      id: 1,
      process: 2,
      input: { f: 'put', key: 'k', value: 'u' },
      invokeTime: 0.5,
      outcome: 'unknown',
    };
    expect(lostWrites([put(0, 'a', 2, 3), unknown, final(2, 'u', 10)])).toEqual([]);
    expect(historyFigures([put(0, 'a', 2, 3), unknown])).toEqual({
      ops: 2,
      ok: 1,
      fail: 0,
      unknown: 1,
      unknownWrites: 1,
    });
  });
});

describe('classifyKvError', () => {
  it('records only definite, non-routing errors as failed', () => {
    expect(classifyKvError(new CohortError('INVALID_ARGUMENT', 'x', { definite: true }))).toBe(
      'fail',
    );
    // A definite routing error after retries does not prove that no earlier
    // attempt was applied (see process-nemesis-client.test.ts).
    expect(classifyKvError(new CohortError('UNAVAILABLE', 'x', { definite: true }))).toBe(
      'unknown',
    );
    expect(classifyKvError(new CohortError('NOT_LEADER', 'x', { definite: true }))).toBe('unknown');
    expect(classifyKvError(new CohortError('TIMEOUT', 'x', { definite: false }))).toBe('unknown');
    expect(classifyKvError(new Error('boom'))).toBe('unknown');
  });
});
