import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../src/lib/assert.js';
import {
  BYTE_HASH_SEED,
  ByteKeyIndex,
  KeyTable,
  byteHash,
  sortKeyIds,
  sortKeys,
} from '../../src/mapreduce/key-table.js';

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

describe('ByteKeyIndex', () => {
  it('numbers byte ranges as the table numbers their UTF-8 decodings (any bytes, invalid UTF-8 that decodes alike, growth)', () => {
    const common = [
      [],
      [0x61],
      [0x61, 0x62],
      [0x62, 0x61],
      [0xff],
      [0xfe],
      [0xc3],
      [0xc3, 0xa9],
      [0xe6, 0x97],
    ];
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.oneof(
              fc.uint8Array({ maxLength: 6 }),
              fc.constantFrom(...common.map((b) => Uint8Array.from(b))),
            ),
            fc.uint8Array({ maxLength: 3 }),
          ),
          { maxLength: 3000 },
        ),
        (keys) => {
          const table = new KeyTable();
          const index = new ByteKeyIndex(table);
          const ref = new Map<string, number>();
          const byBytes = new Set<string>();
          for (const [key, pad] of keys) {
            // The range sits inside other bytes, which must not count.
            const buf = Buffer.concat([pad, key, pad]);
            const text = Buffer.from(key).toString('utf8');
            const want = ref.get(text) ?? ref.size;
            ref.set(text, want);
            byBytes.add(Buffer.from(key).toString('hex'));
            expect(index.intern(buf, pad.length, pad.length + key.length)).toBe(want);
          }
          expect(table.keys).toEqual([...ref.keys()]);
          expect(index.size).toBe(byBytes.size);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('stays right across many growths (20k keys, found again in another buffer)', () => {
    const table = new KeyTable();
    const index = new ByteKeyIndex(table);
    const keys = Array.from({ length: 20_000 }, (_, i) => `k${i.toString(36)}`);
    const one = Buffer.from(keys.join(' '));
    let at = 0;
    for (const [i, k] of keys.entries()) {
      expect(index.intern(one, at, at + k.length)).toBe(i);
      at += k.length + 1;
    }
    const again = Buffer.from(`xx ${keys.join(',')}`);
    at = 3;
    for (const [i, k] of keys.entries()) {
      expect(index.intern(again, at, at + k.length)).toBe(i);
      at += k.length + 1;
    }
    expect(table.size).toBe(keys.length);
    expect(index.size).toBe(keys.length);
  });

  it('tells apart keys whose hashes collide (the bytes are compared, not only the hash and length)', () => {
    // 300k pseudo-random 6-byte ASCII keys (FNV spreads structured keys such as
    // counters without a collision): about n^2 / 2^33 ~ 10 pairs share their
    // full 32-bit hash (and length), whatever the random basis; a lookup that
    // trusted the hash would give two different keys one number (odds of no
    // such pair: about e^-10).
    const n = 300_000;
    const b = Buffer.alloc(6 * n);
    let x = 1;
    for (let i = 0; i < b.length; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      b[i] = 32 + ((x >>> 16) % 95); // printable ASCII: distinct bytes, distinct keys
    }
    const want = new Map<string, number>();
    const table = new KeyTable();
    const index = new ByteKeyIndex(table);
    for (let i = 0; i < n; i++) {
      const k = b.toString('hex', 6 * i, 6 * i + 6);
      const w = want.get(k) ?? want.size;
      want.set(k, w);
      if (index.intern(b, 6 * i, 6 * i + 6) !== w) expect.fail(`key ${k} got another key's number`);
    }
    expect(index.size).toBe(want.size);
  });
});

describe('ByteKeyIndex.internHashed', () => {
  it("with the range's byte hash numbers ranges as intern does; with any other hash returns -1 and adds nothing (a new key or a known one)", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.uint8Array({ maxLength: 5 }),
            fc.boolean(),
            fc.oneof(fc.integer({ min: 1, max: 0xffff }), fc.constantFrom(0x80000000, -1)),
          ),
          { maxLength: 2000 },
        ),
        (keys) => {
          const ref = new ByteKeyIndex(new KeyTable());
          const table = new KeyTable();
          const index = new ByteKeyIndex(table);
          for (const [key, wrong, flip] of keys) {
            const buf = Buffer.concat([Buffer.from('x'), key, Buffer.from('y')]);
            const end = 1 + key.length;
            const h = byteHash(BYTE_HASH_SEED, buf, 1, end);
            if (wrong) {
              const size = index.size;
              const keysBefore = table.size;
              expect(index.internHashed(buf, 1, end, h ^ flip)).toBe(-1);
              expect([index.size, table.size]).toEqual([size, keysBefore]);
            } else {
              expect(index.internHashed(buf, 1, end, h)).toBe(ref.intern(buf, 1, end));
            }
          }
          expect(table.keys).toEqual(ref.table.keys);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("byteHash is the index's hash: a hashed lookup finds what intern added", () => {
    const index = new ByteKeyIndex(new KeyTable());
    const b = Buffer.from('to be or not to be');
    expect(index.intern(b, 0, 2)).toBe(0);
    expect(index.internHashed(b, 13, 15, byteHash(BYTE_HASH_SEED, b, 13, 15))).toBe(0);
    expect(index.size).toBe(1);
  });
});

describe('ByteKeyIndex.sortedSubset', () => {
  it("gives any set of the table's key numbers sorted by key, as keys are added between calls", () => {
    const word = fc.oneof(
      fc.stringMatching(/^[a-e]{0,7}$/),
      fc.string({ unit: 'grapheme', maxLength: 4 }),
    );
    fc.assert(
      fc.property(
        // Rounds: the words a task interns, then which of the table's keys it writes.
        fc.array(fc.tuple(fc.array(word, { maxLength: 40 }), fc.array(fc.boolean())), {
          maxLength: 6,
        }),
        (rounds) => {
          const index = new ByteKeyIndex(new KeyTable());
          for (const [words, picks] of rounds) {
            for (const w of words) {
              const b = Buffer.from(w);
              index.intern(b, 0, b.length);
            }
            const keys = index.table.keys;
            // Every key, a most of them, or a few (the path that sorts them on their own).
            const ids = keys.map((_, g) => g).filter((g) => picks[g % (picks.length + 1)] ?? true);
            const want = [...ids].sort((a, b) =>
              (keys[a] as string) < (keys[b] as string) ? -1 : 1,
            );
            expect([...index.sortedSubset(ids)]).toEqual(want);
            // The same numbers in another order give the same answer.
            expect([...index.sortedSubset([...ids].reverse())]).toEqual(want);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('ByteKeyIndex.sortedSubset, a few keys of many', () => {
  it('sorts them on their own, with the same answer', () => {
    const index = new ByteKeyIndex(new KeyTable());
    for (let i = 0; i < 200; i++) {
      const b = Buffer.from(`w${(i * 7919) % 1000}`);
      index.intern(b, 0, b.length);
    }
    const keys = index.table.keys;
    expect([...index.sortedSubset([150, 3, 77])].map((g) => keys[g])).toEqual(
      [keys[150], keys[3], keys[77]].sort(),
    );
    const all = keys.map((_, g) => g);
    expect([...index.sortedSubset(all)].map((g) => keys[g])).toEqual([...keys].sort());
    expect(() => index.sortedSubset([1, 1, ...all.slice(2)])).toThrow(AssertionError);
  });
});

/**
 * A key that stresses a sort: mostly short words of `units` (ASCII), some
 * sharing a long prefix, a few of any code points.
 */
function keyToSort(
  units: string[],
  maxLength: number,
  binaryMaxLength: number,
): fc.Arbitrary<string> {
  const ascii = fc.string({ unit: fc.constantFrom(...units), maxLength });
  return fc.oneof(
    { weight: 8, arbitrary: ascii },
    { weight: 2, arbitrary: ascii.map((s) => `prefix${s}`) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: binaryMaxLength }) },
  );
}

describe('sortKeyIds', () => {
  it('orders key numbers as their keys sort (any subset, ASCII and non-ASCII keys, shared prefixes)', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(keyToSort(['a', 'b', 'A', '\u0000', '~'], 8, 5), {
          maxLength: 400,
          size: 'max',
        }),
        fc.func(fc.boolean()),
        (keys, pick) => {
          const chosen = keys.map((_, i) => i).filter((i) => pick(i));
          const ids = Int32Array.from(chosen);
          sortKeyIds(keys, ids);
          expect(Array.from(ids, (e) => keys[e])).toEqual(chosen.map((e) => keys[e]).sort());
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('sortKeys', () => {
  it('sorts as Array.prototype.sort does (ASCII words with shared prefixes and NULs, long runs of one prefix, non-ASCII keys)', () => {
    fc.assert(
      fc.property(
        fc.array(keyToSort(['a', 'b', 'z', 'A', '0', '\u0000', '~'], 9, 6), {
          maxLength: 400,
          size: 'max',
        }),
        (keys) => {
          const want = keys.slice().sort();
          sortKeys(keys);
          expect(keys).toEqual(want);
        },
      ),
      { numRuns: 300 },
    );
  });
});
