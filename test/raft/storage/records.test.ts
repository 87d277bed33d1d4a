import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { LogIndex, Term } from '../../../src/lib/ids.js';
import type { Entry } from '../../../src/raft/core/types.js';
import {
  anyValidRecordAfter,
  decodeEntries,
  decodeRecordAt,
  encodeEntries,
  encodeRecord,
  RecordType,
} from '../../../src/raft/storage/records.js';

const entryArb = fc.record({
  term: fc.integer({ min: 1, max: 2 ** 40 }),
  kind: fc.constantFrom('normal' as const, 'noop' as const, 'config' as const),
  data: fc.uint8Array({ maxLength: 300 }),
});

describe('WAL records', () => {
  it('round-trips entries and detects any single flipped bit (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 ** 50 }),
        fc.array(entryArb, { minLength: 1, maxLength: 5 }),
        fc.nat(),
        (start, raw, flip) => {
          const entries: Entry[] = raw.map((e, i) => ({
            ...e,
            index: (start + i) as LogIndex,
            term: e.term as Term,
          }));
          const rec = encodeRecord(RecordType.Entries, encodeEntries(entries, 0, entries.length));
          const back = decodeRecordAt(rec, 0);
          if (typeof back === 'string') throw new Error(back);
          expect(back.type).toBe(RecordType.Entries);
          expect(back.end).toBe(rec.length);
          expect(decodeEntries(back.payload)).toEqual(entries);

          const bit = flip % (rec.length * 8);
          const bad = Buffer.from(rec);
          bad[bit >> 3] = (bad[bit >> 3] as number) ^ (1 << (bit & 7));
          expect(typeof decodeRecordAt(bad, 0)).toBe('string');
        },
      ),
    );
  });

  it('tells a torn tail (nothing valid after) from damage in the middle (valid records after)', () => {
    const a = encodeRecord(RecordType.HardState, Buffer.from([1, 2, 3]));
    const b = encodeRecord(RecordType.Truncate, Buffer.from([4]));
    const log = Buffer.concat([a, b]);
    for (let cut = 1; cut < b.length; cut++) {
      const torn = log.subarray(0, a.length + cut);
      expect(decodeRecordAt(torn, a.length)).toBe('short');
      expect(anyValidRecordAfter(torn, a.length)).toBe(false);
    }
    const damaged = Buffer.from(log);
    damaged[2] = (damaged[2] as number) ^ 0x40; // a's length field
    expect(typeof decodeRecordAt(damaged, 0)).toBe('string');
    expect(anyValidRecordAfter(damaged, 0)).toBe(true);
    expect(decodeRecordAt(Buffer.alloc(32), 0)).toBe('length');
  });

  it('refuses malformed entry payloads instead of throwing', () => {
    const good = encodeEntries(
      [{ index: 1 as LogIndex, term: 1 as Term, kind: 'noop', data: new Uint8Array(4) }],
      0,
      1,
    );
    expect(decodeEntries(good.subarray(0, good.length - 1))).toBeNull();
    expect(decodeEntries(Buffer.concat([good, Buffer.from([0])]))).toBeNull();
    const badKind = Buffer.from(good);
    badKind[4 + 16] = 9;
    expect(decodeEntries(badKind)).toBeNull();
  });
});
