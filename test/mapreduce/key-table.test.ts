import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../src/lib/assert.js';
import { KeyTable } from '../../src/mapreduce/key-table.js';

describe('KeyTable', () => {
  it('numbers distinct keys in insertion order and finds each again, like a Map (any keys, growth)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.string({ maxLength: 6 }),
            fc.string({ unit: 'binary', maxLength: 20 }),
            fc.constantFrom('', 'a', 'A', 'ab', 'ba', '\u0000', '\uffff', 'x'.repeat(100)),
          ),
          { maxLength: 3000 },
        ),
        (words) => {
          const t = new KeyTable();
          const ref = new Map<string, number>();
          for (const w of words) {
            const want = ref.get(w) ?? -1;
            const e = t.find(w);
            expect(e).toBe(want);
            if (e < 0) {
              const added = t.add(w);
              expect(added).toBe(ref.size);
              ref.set(w, added);
            }
          }
          expect(t.size).toBe(ref.size);
          expect(t.keys).toEqual([...ref.keys()]);
          for (const [k, e] of ref) expect(t.intern(k)).toBe(e);
          expect(t.find('\u0000not-a-key\u0000'.repeat(3))).toBe(-1);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('stays right across many growths (20k keys)', () => {
    const t = new KeyTable();
    const keys = Array.from({ length: 20_000 }, (_, i) => `k${i.toString(36)}`);
    for (const k of keys) expect(t.intern(k)).toBe(t.size - 1);
    keys.forEach((k, i) => expect(t.find(k)).toBe(i));
    expect(t.size).toBe(keys.length);
  });

  it('keys that differ only in the high bits of their code units spread over the table', () => {
    // FNV-1a alone gives these 2^15 keys the same low 15 bits whatever its basis.
    const t = new KeyTable();
    for (let i = 0; i < 1 << 15; i++) {
      let k = '';
      for (let b = 0; b < 15; b++) k += (i >> b) & 1 ? '\u8061' : 'a';
      t.intern(k);
    }
    expect(t.size).toBe(1 << 15);
    expect(t.longestProbe()).toBeLessThan(200);
  });

  it('add() without a missed find() is a bug (assert)', () => {
    const t = new KeyTable();
    expect(() => t.add('a')).toThrow(AssertionError);
    expect(t.find('a')).toBe(-1);
    t.add('a');
    expect(() => t.add('a')).toThrow(AssertionError);
  });
});
