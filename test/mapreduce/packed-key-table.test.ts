import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../src/lib/assert.js';
import { KeyTable } from '../../src/mapreduce/key-table.js';
import { INLINE_CHARS, PackedKeyTable } from '../../src/mapreduce/packed-key-table.js';

/** Keys around the packing's edges: lengths up to and past INLINE_CHARS, ASCII or not, NULs, 0x7f/0x80. */
const key = fc.oneof(
  fc.string({ maxLength: INLINE_CHARS + 2 }),
  fc.string({
    unit: fc.constantFrom('a', 'b', '\u0000', '\u007f', '\u0080', 'é', '\uffff'),
    maxLength: 10,
  }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.constantFrom(
    '',
    'a',
    'a\u0000',
    '\u0000',
    'abcdefgh',
    'abcdefghi',
    'abcdefgé',
    'x'.repeat(100),
  ),
);

describe('PackedKeyTable', () => {
  it('numbers distinct keys in insertion order and finds each again, like a Map and like KeyTable (any keys, growth)', () => {
    fc.assert(
      fc.property(fc.array(key, { maxLength: 3000 }), (words) => {
        const t = new PackedKeyTable();
        const k = new KeyTable();
        const ref = new Map<string, number>();
        for (const w of words) {
          const want = ref.get(w) ?? -1;
          const e = t.find(w);
          expect(e).toBe(want);
          expect(k.find(w)).toBe(want);
          if (e < 0) {
            const added = t.add(w);
            expect(added).toBe(ref.size);
            expect(k.add(w)).toBe(added);
            ref.set(w, added);
          }
        }
        expect(t.size).toBe(ref.size);
        expect(t.keys).toEqual([...ref.keys()]);
        for (const [w, e] of ref) expect(t.intern(w)).toBe(e);
        expect(t.find('\u0000not-a-key\u0000'.repeat(3))).toBe(-1);
      }),
      { numRuns: 60 },
    );
  });

  it('keys equal in their first characters, or packed alike but for their length, are told apart', () => {
    const t = new PackedKeyTable();
    const keys = [
      '',
      '\u0000',
      '\u0000\u0000',
      'abcd',
      'abcd\u0000',
      'abcdefgh',
      'abcdefghi',
      'abcdefgha',
    ];
    for (const k of keys) expect(t.intern(k)).toBe(t.size - 1);
    keys.forEach((k, i) => expect(t.find(k)).toBe(i));
    expect(t.find('abcdefg')).toBe(-1);
    expect(t.find('abcdefgi')).toBe(-1);
  });

  it('keys whose hashes collide are told apart, packed or not, by their length too', () => {
    // With the basis 97, 'a' hashes to 0, and so does 'a' followed by any NULs
    // (FNV-1a: 0 ^ 0 = 0, 0 * prime = 0): equal hashes, equal packed characters.
    const t = new PackedKeyTable(97);
    const keys = Array.from({ length: INLINE_CHARS + 3 }, (_, i) => 'a' + '\u0000'.repeat(i));
    for (const k of keys) {
      expect(t.find(k)).toBe(-1);
      expect(t.add(k)).toBe(t.size - 1);
    }
    keys.forEach((k, i) => expect(t.find(k)).toBe(i));
    expect(t.longestProbe()).toBe(keys.length - 1); // they did share a home slot
  });

  it('stays right across many growths (20k keys)', () => {
    const t = new PackedKeyTable();
    const keys = Array.from(
      { length: 20_000 },
      (_, i) => `k${i.toString(36)}${i % 3 === 0 ? 'long-key' : ''}`,
    );
    for (const k of keys) expect(t.intern(k)).toBe(t.size - 1);
    keys.forEach((k, i) => expect(t.find(k)).toBe(i));
    expect(t.size).toBe(keys.length);
  });

  it('keys that differ only in the high bits of their code units spread over the table', () => {
    const t = new PackedKeyTable();
    for (let i = 0; i < 1 << 15; i++) {
      let k = '';
      for (let b = 0; b < 15; b++) k += (i >> b) & 1 ? '\u8061' : 'a';
      t.intern(k);
    }
    expect(t.size).toBe(1 << 15);
    expect(t.longestProbe()).toBeLessThan(200);
  });

  it('add() without a missed find() is a bug (assert)', () => {
    const t = new PackedKeyTable();
    expect(() => t.add('a')).toThrow(AssertionError);
    expect(t.find('a')).toBe(-1);
    t.add('a');
    expect(() => t.add('a')).toThrow(AssertionError);
  });
});
