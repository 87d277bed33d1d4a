import fc from 'fast-check';
import { Packr, Unpackr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { crc32c } from '../../src/lib/crc32c.js';
import { RunWriter, readRun } from '../../src/mapreduce/format.js';
import { BadBlock, BlockDecoder, BlockEncoder } from '../../src/mapreduce/run-block.js';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false });

type Rec = [string, unknown[]];

/** Values the encoder writes by hand (every integer width, floats, ASCII and other strings). */
const scalar = fc.oneof(
  fc.integer({ min: -40, max: 300 }),
  fc.integer(),
  fc.integer({ min: -(2 ** 31), max: 2 ** 32 - 1 }),
  fc.constantFrom(0, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, -32, -33, -128),
  fc.constantFrom(-129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, 2 ** 53, 0.5, Infinity, NaN),
  fc.double({ noNaN: true }).filter((d) => !Object.is(d, -0)),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 4 }),
  fc.string({ minLength: 250, maxLength: 300 }),
  fc.boolean(),
  fc.constant(null),
);
/** Arrays and plain objects (by hand up to 8 levels deep), and values left to msgpackr. */
const { nested } = fc.letrec((tie) => ({
  nested: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalar,
    fc.array(tie('nested'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 4 }), tie('nested'), { maxKeys: 3 }),
  ),
}));
const structured = fc.oneof(
  fc.array(scalar, { maxLength: 3 }),
  fc.array(scalar, { minLength: 16, maxLength: 20 }),
  fc.dictionary(fc.string({ maxLength: 4 }), scalar, { maxKeys: 3 }),
  fc.dictionary(fc.string({ maxLength: 4 }), scalar, { minKeys: 16, maxKeys: 18 }),
  nested,
  // Ten levels: past the hand path's depth, left to msgpackr.
  fc.constant([[[[[[[[[[1]]]]]]]]]]),
  // A map key that would set the prototype if assigned: left to msgpackr.
  fc.constant(JSON.parse('{"__proto__": {"x": 1}, "y": [2]}') as unknown),
  fc.constant({ u: undefined, d: new Date(0) }),
  fc.constant(Object.create(null) as unknown),
  fc.constant(new Uint8Array([1, 2, 3])),
);
const key = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'grapheme', maxLength: 6 }),
  fc.string({ minLength: 30, maxLength: 300 }),
);
const recordsOf = (value: fc.Arbitrary<unknown>): fc.Arbitrary<Rec[]> =>
  fc.array(fc.tuple(key, fc.array(value, { maxLength: 20 })), { maxLength: 40 });
const anyRecords = fc.oneof(
  recordsOf(scalar),
  recordsOf(fc.oneof({ weight: 4, arbitrary: scalar }, { weight: 1, arbitrary: structured })),
);

function encode(recs: Rec[]): Buffer {
  const enc = new BlockEncoder();
  for (const [k, vs] of recs) {
    if (!enc.add(k, vs)) enc.addPacked(packr.pack(k), packr.pack(vs));
  }
  return enc.take();
}

function decode(block: Uint8Array): Rec[] {
  const dec = new BlockDecoder(block);
  const out: Rec[] = [];
  while (dec.nextRecord()) out.push([dec.key, dec.takeValues([])]);
  return out;
}

/** What a record looks like after msgpackr packs and unpacks it (the reference). */
function viaMsgpackr(recs: Rec[]): Rec[] {
  return recs.map(([k, vs]) => [unpackr.unpack(packr.pack(k)) as string, roundTrip(vs)]);
}

function roundTrip(vs: unknown[]): unknown[] {
  return unpackr.unpack(packr.pack(vs)) as unknown[];
}

/**
 * Damages a good block (one byte XORed with `mask` at `at`, or cut at
 * `cutAt`): it is refused with BadBlock, or it is still a well-formed block
 * and decodes to what msgpackr reads in it.
 */
function damagedAgrees(
  good: Uint8Array,
  at: number,
  mask: number,
  cutAt: number,
  flip: boolean,
): void {
  const bad = Buffer.from(good);
  let bytes: Uint8Array = bad;
  if (flip) {
    const i = at % bad.length;
    bad[i] = (bad[i] as number) ^ mask;
  } else {
    bytes = bad.subarray(0, cutAt % bad.length);
  }
  let got: Rec[];
  try {
    got = decode(bytes);
  } catch (err) {
    expect(err).toBeInstanceOf(BadBlock);
    return;
  }
  expect(got.flat(1)).toEqual(unpackr.unpack(bytes) as unknown[]);
}

describe('run blocks', () => {
  it('decode to what msgpackr would give, and are MessagePack any decoder reads', () => {
    fc.assert(
      fc.property(anyRecords, (recs) => {
        const block = encode(recs);
        const want = viaMsgpackr(recs);
        expect(decode(block)).toEqual(want);
        expect(unpackr.unpack(block)).toEqual(want.flat(1));
      }),
      { numRuns: 300 },
    );
  });

  it('the hand decoder reads blocks msgpackr packed (any minimal encoding)', () => {
    fc.assert(
      fc.property(anyRecords, (recs) => {
        const block = packr.pack(recs.flat(1));
        expect(decode(block)).toEqual(viaMsgpackr(recs));
      }),
      { numRuns: 200 },
    );
  });

  it('counts records and values; takeValues once per record; nextRecord skips untaken values', () => {
    const block = encode([
      ['a', [1, 2, 3]],
      ['b', [{ x: 1 }]],
      ['c', []],
      ['d', ['x', null]],
    ]);
    const dec = new BlockDecoder(block);
    expect([dec.records, dec.values]).toEqual([4, 6]);
    const seen: string[] = [];
    while (dec.nextRecord()) seen.push(dec.key);
    expect(seen).toEqual(['a', 'b', 'c', 'd']);
    const scalarOnly = new BlockDecoder(
      encode([
        ['a', [1, 2]],
        ['b', [3]],
      ]),
    );
    expect(scalarOnly.nextRecord()).toBe(true);
    expect(scalarOnly.takeValues([])).toEqual([1, 2]);
    expect(scalarOnly.takeValues([])).toEqual([]);
    expect(scalarOnly.nextRecord()).toBe(true);
    expect([scalarOnly.key, scalarOnly.takeValues([0])]).toEqual(['b', [0, 3]]);
    expect(scalarOnly.nextRecord()).toBe(false);
  });

  it('a damaged block is BadBlock or decodes as msgpackr decodes it, never another error', () => {
    fc.assert(
      fc.property(
        anyRecords.filter((r) => r.length > 0),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        fc.nat(),
        fc.boolean(),
        (recs, at, mask, cutAt, flip) => {
          damagedAgrees(encode(recs), at, mask, cutAt, flip);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('postings-shaped blocks (lists of integers of every width) decode as msgpackr, damaged ones are BadBlock or agree with msgpackr', () => {
    // An array of integers is sized and decoded inline (not through simpleSize()/value()):
    // every width, signed and unsigned, next to a value that is not an integer.
    const int = fc.oneof(
      fc.integer({ min: -40, max: 300 }),
      fc.integer({ min: -(2 ** 31), max: 2 ** 32 - 1 }),
      fc.constantFrom(127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, -32, -33, -129, -32769),
    );
    const list = fc.array(
      fc.oneof({ weight: 9, arbitrary: int }, { weight: 1, arbitrary: scalar }),
      {
        maxLength: 40,
      },
    );
    // As a map task writes postings (one `[id]` per emit) and as a combiner's lists.
    const single = int.map((id) => [id]);
    const value = fc.oneof({ weight: 3, arbitrary: single }, { weight: 1, arbitrary: list });
    const postings = fc.array(fc.tuple(key, fc.array(value, { minLength: 1, maxLength: 12 })), {
      minLength: 1,
      maxLength: 20,
    });
    fc.assert(
      fc.property(
        postings,
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        fc.nat(),
        fc.boolean(),
        (recs, at, mask, cutAt, flip) => {
          const good = encode(recs);
          expect(decode(good)).toEqual(viaMsgpackr(recs));
          damagedAgrees(good, at, mask, cutAt, flip);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('a one-number list (a postings `[id]`, written without the general path) is written as the general path writes it', () => {
    const bytesOf = (v: unknown, nested: boolean): Buffer => {
      const enc = new BlockEncoder();
      // Nested in one more list, [x] takes the general path (other()): its bytes follow the outer header.
      expect(enc.appendValue(nested ? [v] : v)).toBe(true);
      return Buffer.from(enc.buffer.subarray(nested ? 6 : 5, enc.bytes));
    };
    const x = fc.oneof(
      scalar,
      fc.constantFrom(-0, 0x80, 0xff, 0x100, 0xffff, 0x10000, 2 ** 32 - 1),
    );
    fc.assert(
      fc.property(x, (v) => {
        expect(bytesOf([v], false)).toEqual(bytesOf([v], true));
      }),
      { numRuns: 500 },
    );
  });

  it('an integer cut short inside a list of values is BadBlock', () => {
    const block = encode([['a', [[1, 70000, 300, -200]]]]);
    // Every cut inside the nested list (after its header) ends in the middle of a value or the list.
    const listAt = block.indexOf(0x94);
    for (let cut = listAt + 1; cut < block.length; cut++) {
      expect(() => decode(block.subarray(0, cut))).toThrow(BadBlock);
    }
    expect(decode(block)).toEqual([['a', [[1, 70000, 300, -200]]]]);
  });

  it('a run whose frame checksum is right but whose data block is malformed is CORRUPTION', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cohort-mr-block-'));
    try {
      const path = join(dir, 'a.run');
      const w = await RunWriter.create(path);
      w.add('apple', [1]);
      await w.finish();
      const bytes = await readFile(path);
      const headerLen = 8 + bytes.readUInt32BE(0);
      const header = bytes.subarray(0, headerLen);
      const frame = (payload: Uint8Array): Buffer => {
        const head = Buffer.alloc(8);
        head.writeUInt32BE(payload.length, 0);
        head.writeUInt32BE(crc32c(payload), 4);
        return Buffer.concat([head, payload]);
      };
      const data = (body: Uint8Array): Buffer => frame(Buffer.concat([Buffer.from('D'), body]));
      const end = frame(Buffer.concat([Buffer.from('E'), packr.pack([1, 1])]));
      const bodies = [
        Buffer.from([0x92, 0xa1, 0x61]), // truncated: no values
        Buffer.from([0x91, 0xa1, 0x61]), // odd element count
        Buffer.from([0x92, 0x01, 0x91, 0x01]), // key not a string
        Buffer.from([0x92, 0xa1, 0x61, 0x01]), // values not an array
        Buffer.from([0x92, 0xa1, 0x61, 0x91, 0x01, 0x00]), // trailing byte
        Buffer.from([0x92, 0xa1, 0x61, 0x91, 0xcd, 0x01]), // truncated uint16
        Buffer.from([0x92, 0xa5, 0x61, 0x91, 0x01]), // string past the end
      ];
      for (const body of bodies) {
        await expect(
          (async () => {
            for await (const _ of readRun([header, data(body), end])) {
              // reading only
            }
          })(),
        ).rejects.toMatchObject({ code: 'CORRUPTION' });
      }
      // The same frames with a well-formed block read fine.
      const ok: unknown[][] = [];
      for await (const b of readRun([
        header,
        data(Buffer.from([0x92, 0xa1, 0x61, 0x91, 0x01])),
        end,
      ])) {
        ok.push(b);
      }
      expect(ok).toEqual([['a', [1]]]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
