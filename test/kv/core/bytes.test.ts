import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  KvStateMachine,
  RANGE_END_ALL,
  compareBytes,
  fromByteString,
  prefixEnd,
  toByteString,
} from '../../../src/kv/core/index.js';
import { writeByteString } from '../../../src/kv/core/bytes.js';

const bytes = fc.oneof(
  fc.uint8Array({ maxLength: 40 }),
  fc.uint8Array({ maxLength: 10_000 }), // past one fromCharCode chunk
  fc.uint8Array({ min: 0, max: 0x7f, maxLength: 40 }), // the ASCII fast path
);

describe('byte strings', () => {
  it('round-trip any bytes, in both directions and through writeByteString', () => {
    fc.assert(
      fc.property(bytes, (a) => {
        const s = toByteString(a);
        expect(s.length).toBe(a.length);
        expect(fromByteString(s)).toEqual(a);
        const out = new Uint8Array(a.length + 2);
        expect(writeByteString(s, out, 1)).toBe(a.length + 1);
        expect(out.subarray(1, a.length + 1)).toEqual(a);
      }),
    );
  });

  it('order like the bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 6 }), fc.uint8Array({ maxLength: 6 }), (a, b) => {
        const x = toByteString(a);
        const y = toByteString(b);
        expect(Math.sign(x < y ? -1 : x > y ? 1 : 0)).toBe(Math.sign(compareBytes(a, b)));
      }),
    );
  });

  it('prefixEnd bounds exactly the keys with the prefix', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4 }), fc.uint8Array({ maxLength: 6 }), (p, k) => {
        const end = prefixEnd(p);
        const hasPrefix = k.length >= p.length && compareBytes(k.subarray(0, p.length), p) === 0;
        const inRange =
          compareBytes(k, p) >= 0 && (end === RANGE_END_ALL || compareBytes(k, end) < 0);
        expect(inRange).toBe(hasPrefix);
      }),
    );
  });

  it('binary keys and values survive a snapshot', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 8 }), bytes), { maxLength: 20 }),
        (pairs) => {
          const sm = new KvStateMachine();
          for (const [key, value] of pairs) sm.apply({ command: { type: 'put', key, value } });
          const all = { type: 'range' as const, key: Uint8Array.of(0), rangeEnd: RANGE_END_ALL };
          const copy = KvStateMachine.fromSnapshot(sm.snapshot());
          expect(copy.read(all)).toEqual(sm.read(all));
          expect(copy.snapshot()).toEqual(sm.snapshot());
        },
      ),
      { numRuns: 50 },
    );
  });
});
