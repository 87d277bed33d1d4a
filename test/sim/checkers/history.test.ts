import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../../src/lib/assert.js';
import { VirtualClock } from '../../../src/lib/clock.js';
import { CohortError } from '../../../src/lib/errors.js';
import { HistoryRecorder } from '../../../src/sim/checkers/history.js';
import { checkLinearizability } from '../../../src/sim/checkers/linearizability.js';
import type { KvInput, KvOutput } from '../../../src/sim/checkers/models.js';
import { kvModel } from '../../../src/sim/checkers/models.js';

describe('HistoryRecorder', () => {
  it('records invoke and completion times from the injected clock', () => {
    const clock = new VirtualClock(100);
    const rec = new HistoryRecorder<KvInput, KvOutput>(() => clock.now());
    const put = rec.invoke('c1', { f: 'put', key: 'a', value: '1' });
    clock.advance(5);
    const get = rec.invoke('c2', { f: 'get', key: 'a' });
    clock.advance(5);
    rec.complete(put, { f: 'put' });
    clock.advance(1);
    rec.complete(get, { f: 'get', value: '1' });
    expect(rec.history()).toEqual([
      {
        id: 0,
        process: 'c1',
        input: { f: 'put', key: 'a', value: '1' },
        invokeTime: 100,
        outcome: 'ok',
        completeTime: 110,
        output: { f: 'put' },
      },
      {
        id: 1,
        process: 'c2',
        input: { f: 'get', key: 'a' },
        invokeTime: 105,
        outcome: 'ok',
        completeTime: 111,
        output: { f: 'get', value: '1' },
      },
    ]);
    expect(checkLinearizability(rec.history(), kvModel()).verdict).toBe('linearizable');
  });

  it('records fail and unknown outcomes, and reports pending operations as unknown', () => {
    let t = 0;
    const rec = new HistoryRecorder<KvInput, KvOutput>(() => t++);
    const a = rec.invoke(1, { f: 'put', key: 'k', value: 'a' });
    const b = rec.invoke(2, { f: 'put', key: 'k', value: 'b' });
    rec.invoke(3, { f: 'put', key: 'k', value: 'c' });
    rec.fail(a);
    rec.unknown(b);
    expect(rec.pendingCount).toBe(1);
    const h = rec.history();
    expect(h.map((op) => op.outcome)).toEqual(['fail', 'unknown', 'unknown']);
    expect(h[2]).not.toHaveProperty('completeTime');

    // The failed put never happened; either unknown one may have.
    const g = rec.invoke(4, { f: 'get', key: 'k' });
    rec.complete(g, { f: 'get', value: 'a' });
    expect(checkLinearizability(rec.history(), kvModel()).verdict).toBe('not-linearizable');
  });

  it('tracks an async operation: output, definite error as fail, other errors as unknown', async () => {
    let t = 0;
    const rec = new HistoryRecorder<KvInput, KvOutput>(() => t++);
    await expect(
      rec.track(1, { f: 'put', key: 'k', value: 'v' }, () =>
        Promise.resolve({ f: 'put' as const }),
      ),
    ).resolves.toEqual({ f: 'put' });
    const definite = new CohortError('NOT_LEADER', 'try n2');
    await expect(
      rec.track(2, { f: 'put', key: 'k', value: 'w' }, () => Promise.reject(definite)),
    ).rejects.toBe(definite);
    const timeout = new CohortError('TIMEOUT', 'no answer');
    await expect(
      rec.track(3, { f: 'put', key: 'k', value: 'x' }, () => Promise.reject(timeout)),
    ).rejects.toBe(timeout);
    await expect(
      rec.track(4, { f: 'get', key: 'k' }, () => Promise.reject(new Error('boom'))),
    ).rejects.toThrow('boom');
    await expect(
      rec.track(
        5,
        { f: 'get', key: 'k' },
        () => Promise.reject(new Error('gone')),
        () => 'fail',
      ),
    ).rejects.toThrow('gone');
    expect(rec.history().map((op) => [op.process, op.outcome])).toEqual([
      [1, 'ok'],
      [2, 'fail'],
      [3, 'unknown'],
      [4, 'unknown'],
      [5, 'fail'],
    ]);
    expect(rec.pendingCount).toBe(0);
  });

  it('treats ending an operation twice as a bug', () => {
    const rec = new HistoryRecorder<KvInput, KvOutput>(() => 0);
    const h = rec.invoke(1, { f: 'get', key: 'k' });
    rec.complete(h, { f: 'get', value: null });
    expect(() => rec.fail(h)).toThrow(AssertionError);
  });
});
