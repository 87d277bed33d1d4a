import { describe as group, expect, it } from 'vitest';
import { assert, assertNever, AssertionError } from '../../src/lib/assert.js';
import { VirtualClock } from '../../src/lib/clock.js';
import { CohortError, errorCodes, isErrorCode } from '../../src/lib/errors.js';
import { checkLimits, limits } from '../../src/lib/limits.js';
import { clusterId, nodeId } from '../../src/lib/ids.js';
import { describe } from '../../src/lib/describe.js';

group('assert', () => {
  it('throws AssertionError when the condition fails', () => {
    expect(() => assert(false, 'boom')).toThrow(AssertionError);
    expect(() => assert(1 === 1)).not.toThrow();
    expect(() => assertNever('x' as never)).toThrow(/unexpected value/);
  });
});

group('VirtualClock', () => {
  it('fires timers in due order, ties by creation, and only when advanced', () => {
    const c = new VirtualClock();
    const fired: string[] = [];
    c.setTimer(20, () => fired.push(`b@${c.now()}`));
    c.setTimer(10, () => fired.push(`a@${c.now()}`));
    c.setTimer(20, () => fired.push(`c@${c.now()}`));
    const h = c.setTimer(15, () => fired.push('cancelled'));
    c.clearTimer(h);
    c.advance(9);
    expect(fired).toEqual([]);
    c.advance(11);
    expect(fired).toEqual(['a@10', 'b@20', 'c@20']);
    expect(c.now()).toBe(20);
  });

  it('runs timers scheduled by timers within the same advance', () => {
    const c = new VirtualClock();
    const fired: number[] = [];
    c.setTimer(5, () => c.setTimer(5, () => fired.push(c.now())));
    c.advance(100);
    expect(fired).toEqual([10]);
  });
});

group('CohortError', () => {
  it('takes definiteness from the table unless overridden', () => {
    expect(new CohortError('OVERLOADED', 'full').definite).toBe(true);
    expect(new CohortError('TIMEOUT', 'late').definite).toBe(false);
    expect(new CohortError('TIMEOUT', 'late', { definite: true }).definite).toBe(true);
    const e = new CohortError('INVALID_ARGUMENT', 'bad', { details: { path: '/a' } });
    expect(e.toJSON()).toEqual({
      code: 'INVALID_ARGUMENT',
      message: 'bad',
      definite: true,
      details: { path: '/a' },
    });
  });

  it('recognises its own codes only', () => {
    for (const code of Object.keys(errorCodes)) expect(isErrorCode(code)).toBe(true);
    expect(isErrorCode('toString')).toBe(false);
    expect(isErrorCode(3)).toBe(false);
  });
});

group('limits', () => {
  it('hold their relations, and a broken relation is caught', () => {
    expect(() => checkLimits(limits)).not.toThrow();
    expect(() => checkLimits({ ...limits, frameBytesMax: 1024 })).toThrow(/frameBytesMax/);
  });
});

group('ids', () => {
  it('accepts well-formed ids and refuses others with INVALID_ARGUMENT', () => {
    expect(nodeId('n1')).toBe('n1');
    expect(clusterId('prod-1')).toBe('prod-1');
    for (const bad of ['', ' n1', 'a b', '-x', 'x'.repeat(65), 'é']) {
      expect(() => nodeId(bad)).toThrow(CohortError);
    }
  });
});

group('describe', () => {
  it('renders messages on one line, deterministically', () => {
    expect(describe({ type: 'Vote', term: 3, from: 'n1', granted: true })).toBe(
      'Vote{term:3 from:n1 granted:true}',
    );
    expect(describe({ a: [1, 2], b: new Uint8Array([1, 255]), c: 'two words' })).toBe(
      '{a:[1 2] b:0x01ff c:"two words"}',
    );
    expect(describe(new Uint8Array(40))).toMatch(/…\(40B\)$/);
    expect(describe(new Map([['k', 1n]]))).toBe('Map{k=>1n}');
  });
});

group('crc32c', () => {
  it('matches the standard check value and chains', async () => {
    const { crc32c } = await import('../../src/lib/crc32c.js');
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(0))).toBe(0);
    const whole = crc32c(Buffer.from('hello world'));
    expect(crc32c(Buffer.from(' world'), crc32c(Buffer.from('hello')))).toBe(whole);
    const view = new Uint8Array(Buffer.from('xx123456789yy')).subarray(2, 11);
    expect(crc32c(view)).toBe(0xe3069283);
  });
});
