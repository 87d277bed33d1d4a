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
  oneBitRepair,
  RecordType,
  tornOrCorrupt,
} from '../../../src/raft/storage/records.js';
import type { InvalidRecord } from '../../../src/raft/storage/records.js';

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

  it('finds the one flipped bit of a damaged record, wherever it is, and calls it corrupt', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 700 }), fc.nat(), (payload, pick) => {
        const rec = encodeRecord(RecordType.HardState, payload);
        // A last byte with two bits set, so that no single flip leaves zeros
        // at the record's end (a flipped lone bit there reads as a tear: torn).
        rec[rec.length - 1] = (rec[rec.length - 1] as number) | 0x81;
        const sealed = encodeRecord(RecordType.HardState, rec.subarray(9));
        const bit = pick % (sealed.length * 8);
        const bad = Buffer.from(sealed);
        bad[bit >> 3] = (bad[bit >> 3] as number) ^ (1 << (bit & 7));
        const invalid = decodeRecordAt(bad, 0);
        expect(typeof invalid).toBe('string');
        const mend = oneBitRepair(bad, 0);
        expect(mend?.at).toBe(bit >> 3);
        expect(tornOrCorrupt(bad, 0, invalid as InvalidRecord)).toBe('corrupt');
        expect(oneBitRepair(sealed, 0)).toBeNull();
      }),
      {
        numRuns: 300,
        // CI's failure of 2026-12-07: the flip cleared the last byte's only set bit.
        examples: [[Uint8Array.from([0, 0, 0, 0]), 894343527]],
      },
    );
  });

  it('calls a record whose end is missing (zeros, or past the end of the file) torn', () => {
    const rec = encodeRecord(RecordType.HardState, Buffer.alloc(1500, 7));
    for (let cut = 1; cut < rec.length; cut += 37) {
      const zeroed = Buffer.from(rec);
      zeroed.fill(0, cut);
      const short = rec.subarray(0, cut);
      for (const torn of [zeroed, short]) {
        const invalid = decodeRecordAt(torn, 0);
        expect(typeof invalid, `cut ${cut}`).toBe('string');
        expect(tornOrCorrupt(torn, 0, invalid as InvalidRecord), `cut ${cut}`).toBe('torn');
      }
    }
    // A whole sector missing in the middle (written out of order) is torn too; two flipped bits are not.
    const hole = Buffer.from(rec);
    hole.fill(0, 512, 1024);
    expect(tornOrCorrupt(hole, 0, 'checksum')).toBe('torn');
    const twice = Buffer.from(rec);
    twice[100] = 1;
    twice[900] = 1;
    expect(tornOrCorrupt(twice, 0, 'checksum')).toBe('corrupt');
    // A valid checksum over an unknown type was written so: corrupt.
    expect(tornOrCorrupt(rec, 0, 'type')).toBe('corrupt');
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
