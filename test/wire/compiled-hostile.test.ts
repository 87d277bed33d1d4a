/**
 * Hostile input for the compiled decoders' entry (CompiledTypes in
 * src/wire/schema-codec.ts: the map header and `type` read once, then a
 * type's straight-line decoder) and for the views they hand out, against
 * the generic path (msgpackr + the nesting scan + the TypeBox check, a
 * MessageCodec with `compiled: false`):
 * - maps built item by item in every header form (fixmap, map16, map32,
 *   counts that lie, the nesting bound at 0 and 1), the `type` key and
 *   value in every str form, type
 *   names that are prefixes of others or share their length, at the
 *   fixstr/str8 boundary, keys that are prefixes of others, `__proto__`,
 *   `constructor`, duplicates, fields after the last, empty maps: the
 *   compiled codec answers exactly as the generic one, in a pooled Buffer
 *   (byteOffset ≠ 0) as the transport decodes too, and a view it hands out
 *   lies inside the message;
 * - a short-lived byte field's view is always exactly its field's bytes,
 *   whatever the codec decoded before (one Buffer object reused with other
 *   contents, views of one ArrayBuffer at other offsets, pooled memory);
 * - a schema with a key every object has (`toString`, ...) or a name that
 *   is not well-formed UTF-16 is decoded as the generic path decodes it.
 * FC_NUM_RUNS (default 2,000) sets the cases per property.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Type } from '@sinclair/typebox';
import { message, MessageCodec, shortLivedBytes } from '../../src/wire/codec.js';
import type { MessageSchema } from '../../src/wire/codec.js';
import { concatBytes } from '../harness/bytes.js';
import { outcome as outcomeOf } from '../harness/outcome.js';
import type { Outcome } from '../harness/outcome.js';

const numRuns = Number(process.env.FC_NUM_RUNS ?? 2_000);

const name31 = 'N'.repeat(31); // the longest fixstr
const name32 = 'N'.repeat(32); // the shortest str8
const name40 = 'M'.repeat(40);
const longKey = 'k'.repeat(40); // a key written as a str8

const schemas: readonly MessageSchema[] = [
  message('A', { a: Type.Integer(), ab: Type.Optional(Type.String({ maxLength: 8 })) }),
  message('AB', { c: Type.Integer({ minimum: 0 }), d: Type.Optional(Type.Boolean()) }),
  message('AC', { body: shortLivedBytes({ maxByteLength: 64 }), n: Type.Optional(Type.Integer()) }),
  message('type', { t: Type.Optional(Type.Integer()) }),
  message('', { e: Type.Optional(Type.Literal('x')) }),
  message(name31, { v: Type.Integer() }),
  message(name32, { v: Type.Integer(), [longKey]: Type.Optional(Type.Integer()) }),
  message(name40, {
    inner: Type.Object(
      { x: Type.Integer(), y: Type.Optional(Type.Uint8Array()) },
      { additionalProperties: false },
    ),
    list: Type.Optional(Type.Array(Type.Integer(), { maxItems: 3 })),
    any: Type.Optional(Type.Unknown()),
  }),
];
type AnyMessage = { type: string } & Record<string, unknown>;
const compiled = new MessageCodec<AnyMessage>(schemas);
const reference = new MessageCodec<AnyMessage>(schemas, { compiled: false });
/** The same with nesting bounds that refuse nested containers (1) and the message's own map (0). */
const shallow = [0, 1].map((nestingDepthMax) => ({
  fast: new MessageCodec<AnyMessage>(schemas, { nestingDepthMax }),
  slow: new MessageCodec<AnyMessage>(schemas, { nestingDepthMax, compiled: false }),
}));

// ---- MessagePack items, in any form ---------------------------------------

const u8 = (...b: number[]): Uint8Array => Uint8Array.from(b);
const be = (v: number, n: number): number[] =>
  Array.from({ length: n }, (_, i) => Math.floor(v / 256 ** (n - 1 - i)) % 256);
const cat = concatBytes;

/** A str in form 0 (the smallest, as every encoder writes it), 1 (str8), 2 (str16) or 3 (str32). */
function str(s: string, form: number): Uint8Array {
  const b = Buffer.from(s, 'utf8');
  if (form === 0 && b.length < 32) return cat([u8(0xa0 | b.length), b]);
  if ((form === 0 || form === 1) && b.length < 256) return cat([u8(0xd9, b.length), b]);
  if (form !== 3 && b.length < 65536) return cat([u8(0xda, ...be(b.length, 2)), b]);
  return cat([u8(0xdb, ...be(b.length, 4)), b]);
}

/** A bin in form 0 (bin8), 1 (bin16) or 2 (bin32). */
function bin(b: Uint8Array, form: number): Uint8Array {
  if (form === 0 && b.length < 256) return cat([u8(0xc4, b.length), b]);
  if (form !== 2 && b.length < 65536) return cat([u8(0xc5, ...be(b.length, 2)), b]);
  return cat([u8(0xc6, ...be(b.length, 4)), b]);
}

/** A map or array header in form 0 (fix), 1 (16-bit) or 2 (32-bit). */
function header(n: number, form: number, map: boolean): Uint8Array {
  if (form === 0 && n < 16) return u8((map ? 0x80 : 0x90) | n);
  if (form !== 2) return u8(map ? 0xde : 0xdc, ...be(n, 2));
  return u8(map ? 0xdf : 0xdd, ...be(n, 4));
}

/** An integer in form 0 (the smallest) or a wider one (1..4: 8, 16, 32, 64 bits), or as float 64/32. */
function int(v: number, form: number): Uint8Array {
  const f64 = (x: number): Uint8Array => {
    const b = Buffer.alloc(9);
    b[0] = 0xcb;
    b.writeDoubleBE(x, 1);
    return b;
  };
  if (form === 5) return f64(v);
  if (form === 6) {
    const b = Buffer.alloc(5);
    b[0] = 0xca;
    b.writeFloatBE(v, 1);
    return b;
  }
  if (v >= 0) {
    if (form <= 0 && v < 128) return u8(v);
    if (form <= 1 && v < 256) return u8(0xcc, v);
    if (form <= 2 && v < 65536) return u8(0xcd, ...be(v, 2));
    if (form <= 3 && v < 2 ** 32) return u8(0xce, ...be(v, 4));
    return u8(0xcf, ...be(v, 8));
  }
  if (form <= 0 && v >= -32) return u8(v & 0xff);
  const b = Buffer.alloc(9);
  if (form <= 1 && v >= -128) return u8(0xd0, v & 0xff);
  if (form <= 2 && v >= -32768) {
    b.writeInt16BE(v, 0);
    return u8(0xd1, ...b.subarray(0, 2));
  }
  if (form <= 3 && v >= -(2 ** 31)) {
    b.writeInt32BE(v, 0);
    return u8(0xd2, ...b.subarray(0, 4));
  }
  b.writeBigInt64BE(BigInt(v), 0);
  return u8(0xd3, ...b.subarray(0, 8));
}

const typeNames = [
  'A',
  'AB',
  'AC',
  'AD',
  'ABC',
  'type',
  '',
  'Ty',
  name31,
  name32,
  name40,
  'N'.repeat(33),
];
const keys = [
  'type',
  'a',
  'ab',
  'abc',
  'constructor',
  'c',
  'd',
  'toString',
  '__proto__',
  'hasOwnProperty',
  'body',
  'n',
  't',
  'e',
  'v',
  longKey,
  'k'.repeat(39),
  'inner',
  'x',
  'y',
  'list',
  'any',
];

const strForm = fc.oneof(
  fc.constant(0),
  fc.constant(0),
  fc.constant(0),
  fc.integer({ min: 1, max: 3 }),
);
const intForm = fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 1, max: 6 }));

const intItem = fc
  .tuple(
    fc.oneof(
      fc.integer({ min: -40, max: 300 }),
      fc.constantFrom(
        -129,
        -32769,
        65535,
        65536,
        2 ** 31,
        2 ** 32 - 1,
        2 ** 32,
        2 ** 40,
        -(2 ** 33),
      ),
      fc.double({ min: -10, max: 10, noNaN: true }),
    ),
    intForm,
  )
  .map(([v, form]) => (Number.isInteger(v) ? int(v, form) : int(v, 5)));
const byteItem = fc
  .tuple(fc.uint8Array({ maxLength: 70 }), fc.integer({ min: 0, max: 2 }))
  .map(([b, form]) => bin(b, form));
const strItem = fc
  .tuple(
    fc.oneof(
      fc.constantFrom(...typeNames, 'x', 'xy'),
      fc.string({ maxLength: 10 }),
      fc.string({ unit: 'binary', maxLength: 4 }),
    ),
    strForm,
  )
  .map(([s, form]) => str(s, form));
const scalar = fc.oneof(
  intItem,
  byteItem,
  strItem,
  fc.constantFrom(
    u8(0xc0), // nil
    u8(0xc2),
    u8(0xc3),
    u8(0xc1), // never used
    u8(0xd4, 0x00, 0x00), // msgpackr's undefined
    u8(0xd4, 0x05, 0x00), // a foreign extension
    u8(0xd6, 0xff, 0, 0, 0, 1), // a timestamp
  ),
);
const arrayItem = fc
  .tuple(
    fc.array(intItem, { maxLength: 4 }),
    fc.integer({ min: 0, max: 2 }),
    fc.integer({ min: -1, max: 1 }),
  )
  .map(([items, form, lie]) =>
    cat([header(Math.max(0, items.length + lie), form, false), ...items]),
  );
/** A map of `entries`, its header in any form, its count true or off by one. */
const mapOf = (entries: fc.Arbitrary<[Uint8Array, Uint8Array][]>): fc.Arbitrary<Uint8Array> =>
  fc
    .tuple(
      entries,
      fc.integer({ min: 0, max: 2 }),
      fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: -1, max: 1 })),
    )
    .map(([es, form, lie]) =>
      cat([header(Math.max(0, es.length + lie), form, true), ...es.flatMap(([k, v]) => [k, v])]),
    );
const keyItem = fc
  .tuple(fc.oneof(fc.constantFrom(...keys), fc.string({ maxLength: 4 })), strForm)
  .map(([k, form]) => str(k, form));
const nested = mapOf(fc.array(fc.tuple(keyItem, fc.oneof(scalar, arrayItem)), { maxLength: 3 }));
const value = fc.oneof(scalar, scalar, arrayItem, nested);

/** A hostile message: usually a map whose first key is `type`, then fields from the schemas' keys and beyond. */
const hostile: fc.Arbitrary<Uint8Array> = fc.oneof(
  mapOf(
    fc
      .tuple(
        fc.tuple(fc.constant('type'), fc.oneof(fc.constant(0), fc.constant(0), strForm)),
        fc.tuple(fc.constantFrom(...typeNames), fc.oneof(fc.constant(0), fc.constant(0), strForm)),
        fc.array(fc.tuple(keyItem, value), { maxLength: 5 }),
      )
      .map(([[k, kf], [t, tf], rest]) => [[str(k, kf), str(t, tf)], ...rest]),
  ),
  mapOf(fc.array(fc.tuple(keyItem, value), { maxLength: 5 })),
  fc.uint8Array({ maxLength: 24 }),
);

/** `value` with every object a plain one (fast-check's records may have no prototype). */
function withPrototypes(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return value;
  if (Array.isArray(value)) return value.map(withPrototypes);
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withPrototypes(v)]));
}

/** Valid messages of the schemas, encoded by the compiled encoder (mutated below). */
const valid: fc.Arbitrary<AnyMessage> = fc
  .oneof(
    fc.record(
      { type: fc.constant('A'), a: fc.integer(), ab: fc.string({ maxLength: 8 }) },
      { requiredKeys: ['type', 'a'] },
    ),
    fc.record(
      { type: fc.constant('AB'), c: fc.nat(), d: fc.boolean() },
      { requiredKeys: ['type', 'c'] },
    ),
    fc.record(
      { type: fc.constant('AC'), body: fc.uint8Array({ maxLength: 64 }), n: fc.integer() },
      { requiredKeys: ['type', 'body'] },
    ),
    fc.record({ type: fc.constant('type'), t: fc.integer() }, { requiredKeys: ['type'] }),
    fc.record({ type: fc.constant(''), e: fc.constant('x') }, { requiredKeys: ['type'] }),
    fc.record({ type: fc.constant(name31), v: fc.integer() }),
    fc.record(
      { type: fc.constant(name32), v: fc.integer(), [longKey]: fc.integer() },
      { requiredKeys: ['type', 'v'] },
    ),
    fc.record(
      {
        type: fc.constant(name40),
        inner: fc.record(
          { x: fc.integer(), y: fc.uint8Array({ maxLength: 5 }) },
          { requiredKeys: ['x'] },
        ),
        list: fc.array(fc.integer(), { maxLength: 3 }),
        any: fc.oneof(fc.integer(), fc.string({ maxLength: 4 }), fc.uint8Array({ maxLength: 4 })),
      },
      { requiredKeys: ['type', 'inner'] },
    ),
  )
  .map((m) => withPrototypes(m) as AnyMessage);

const mutatedValid = fc
  .tuple(
    valid,
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 2 })), {
      maxLength: 2,
    }),
  )
  .map(([m, mutations]) => {
    let bytes: Uint8Array = Uint8Array.from(compiled.encode(m));
    for (const [at0, byte, kind] of mutations) {
      const at = at0 % Math.max(1, bytes.length);
      if (kind === 0) bytes[at] = byte;
      else if (kind === 1) bytes = bytes.slice(0, at);
      else bytes = cat([bytes.subarray(0, at), u8(byte), bytes.subarray(at)]);
    }
    return bytes;
  });

/**
 * Valid messages with their map header rewritten: in another form, with a
 * count that is right or off by one, and maybe entries after the last field
 * (a duplicate, a key of another type, `__proto__`, ...).
 */
const reframedValid = fc
  .tuple(
    valid,
    fc.integer({ min: 0, max: 2 }),
    fc.oneof(fc.constant(0), fc.integer({ min: -1, max: 1 })),
    fc.array(fc.tuple(keyItem, value), { maxLength: 2 }),
  )
  .map(([m, form, lie, extra]) => {
    const bytes = Uint8Array.from(compiled.encode(m));
    const n = (bytes[0] as number) & 0x0f; // a fixmap: every test type has fewer than 16 fields
    const count = Math.max(0, n + extra.length + lie);
    return cat([
      header(count, form, true),
      bytes.subarray(1),
      ...extra.flatMap(([k, v]) => [k, v]),
    ]);
  });

// ---- outcomes ----------------------------------------------------------------

/** Plain data for comparison: byte arrays become number arrays; prototypes are kept apart. */
function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return { bytes: [...value] };
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === 'object') {
    const proto = Object.getPrototypeOf(value) === Object.prototype ? 'object' : 'other';
    return {
      proto,
      entries: Object.entries(value)
        .map(([k, v]): [string, unknown] => [k, plain(v)])
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    };
  }
  return value;
}

/** `outcome` with this file's `plain` (prototypes kept apart, keys sorted). */
function outcome(fn: () => unknown): Outcome {
  return outcomeOf(fn, plain);
}

/** Every byte array inside `value`. */
function byteArrays(value: unknown, out: Uint8Array[] = []): Uint8Array[] {
  if (value instanceof Uint8Array) out.push(value);
  else if (Array.isArray(value)) for (const v of value) byteArrays(v, out);
  else if (value !== null && typeof value === 'object')
    for (const v of Object.values(value)) byteArrays(v, out);
  return out;
}

/** True if `a` and `b` share bytes of memory. */
function overlaps(a: Uint8Array, b: Uint8Array): boolean {
  return (
    a.buffer === b.buffer &&
    a.byteOffset < b.byteOffset + b.length &&
    b.byteOffset < a.byteOffset + a.length
  );
}

/** A Buffer cut from Node's shared pool (byteOffset ≠ 0) holding `bytes` at `at`, with other data around. */
function pooled(bytes: Uint8Array, at: number): Buffer {
  Buffer.allocUnsafe(1 + (at % 7)).fill(0xee); // someone else's data before it in the pool
  const buf = Buffer.allocUnsafe(at + bytes.length + 3).fill(0xdd);
  buf.set(bytes, at);
  return buf;
}

describe('the compiled decoders on hostile maps', () => {
  it('compile every type of the hostile schemas', () => {
    expect(compiled.compiledTypes).toEqual(compiled.types);
  });

  it('answer exactly as the generic path, in any buffer, and hand out views only of the message', () => {
    let accepted = 0;
    fc.assert(
      fc.property(
        fc.oneof(hostile, hostile, mutatedValid, reframedValid),
        fc.nat(40),
        (bytes, at) => {
          const want = outcome(() => reference.decode(bytes));
          if ('ok' in want) accepted++;
          expect(outcome(() => compiled.decode(bytes))).toEqual(want);
          for (const { fast, slow } of shallow) {
            expect(outcome(() => fast.decode(bytes))).toEqual(outcome(() => slow.decode(bytes)));
          }
          // In place in pooled memory, stable (views allowed), as the transport decodes.
          const buf = pooled(bytes, at);
          expect(buf.byteOffset === 0 && buf.buffer.byteLength === buf.length).toBe(false);
          const end = at + bytes.length;
          for (const stable of [true, false]) {
            const got = outcome(() => compiled.decodeRange(buf, at, end, { stable }));
            expect(got).toEqual(outcome(() => reference.decodeRange(buf, at, end, { stable })));
            if (!('ok' in got)) continue;
            for (const b of byteArrays(compiled.decodeRange(buf, at, end, { stable }))) {
              // A view of the input lies inside the message (its bytes are the field's:
              // compared above); a copy may come from the same pool, outside the input.
              if (!overlaps(b, buf)) continue;
              expect(stable).toBe(true);
              expect(b.byteOffset).toBeGreaterThanOrEqual(buf.byteOffset + at);
              expect(b.byteOffset + b.length).toBeLessThanOrEqual(buf.byteOffset + end);
            }
          }
        },
      ),
      { numRuns: numRuns * 5 },
    );
    // The property is not met by refusing everything.
    expect(accepted).toBeGreaterThan(numRuns / 2);
  });

  it('take the fast path for what the encoder writes, whatever the type name', () => {
    fc.assert(
      fc.property(valid, (m) => {
        const bytes = Uint8Array.from(compiled.encode(m));
        expect(outcome(() => compiled.decode(bytes))).toEqual({ ok: plain(m) });
        expect(outcome(() => reference.decode(bytes))).toEqual({ ok: plain(m) });
      }),
      { numRuns },
    );
  });
});

describe('short-lived byte views', () => {
  const Note = message('Note', { n: Type.Integer(), body: shortLivedBytes() });
  const notes = new MessageCodec<{ type: 'Note'; n: number; body: Uint8Array }>([Note]);

  /** Where the body's bytes start in the encoding of a Note (after `type`, `n`, the key `body` and its bin header). */
  function bodyAt(encoded: Uint8Array, body: Uint8Array): number {
    const at = encoded.length - body.length;
    expect([...encoded.subarray(at)]).toEqual([...body]);
    return at;
  }

  it('are exactly the field, whatever was decoded before: one Buffer reused with new contents, other views of its memory, pooled memory, copies in between', () => {
    const own = Buffer.allocUnsafeSlow(2048); // its own memory, as a socket read's
    const small = Buffer.allocUnsafe(600); // cut from Node's shared pool (byteOffset ≠ 0, others' data around)
    const sources = [
      own,
      small,
      own.subarray(3),
      small.subarray(1, 500),
      Buffer.allocUnsafeSlow(900),
    ];
    const op = fc.record({
      source: fc.nat(sources.length - 1),
      at: fc.nat(200),
      n: fc.integer(),
      body: fc.uint8Array({ maxLength: 150 }),
      stable: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 12 }), (ops) => {
        for (const { source, at, n, body, stable } of ops) {
          const buf = sources[source] as Buffer;
          const encoded = Uint8Array.from(notes.encode({ type: 'Note', n, body }));
          // New contents in the same Buffer object (the codec may have cached its memory and offset).
          buf.fill(0xab);
          buf.set(encoded, at);
          const m = notes.decodeRange(buf, at, at + encoded.length, { stable });
          expect(m.n).toBe(n);
          expect([...m.body]).toEqual([...body]);
          if (stable) {
            // A view of exactly the field's bytes in this input.
            expect(m.body.buffer).toBe(buf.buffer);
            expect(m.body.byteOffset).toBe(buf.byteOffset + at + bodyAt(encoded, body));
            expect(m.body.length).toBe(body.length);
          } else {
            // A copy (maybe from the same pool, never over the input).
            expect(m.body.length === 0 || !overlaps(m.body, buf)).toBe(true);
          }
        }
      }),
      { numRuns },
    );
    expect(small.byteOffset === 0 && small.buffer.byteLength === small.length).toBe(false);
  });
});

describe('schemas whose names a plain object or UTF-8 makes something else of', () => {
  const odd: readonly MessageSchema[] = [
    // Keys every object has: TypeBox's check reads an absent optional one as
    // Object.prototype's (a function), so the generic path refuses the message.
    message('Proto', {
      constructor: Type.Integer(),
      toString: Type.Optional(Type.Boolean()),
      valueOf: Type.Optional(Type.Integer()),
    }),
    // A lone surrogate has no UTF-8 form: Buffer writes U+FFFD's bytes, which
    // msgpackr reads back as U+FFFD, so the generic path never matches the name.
    message('P\uD800', { a: Type.Integer() }),
    message('Q', { ['k\uDC00']: Type.Optional(Type.Integer()) }),
    message('R', { v: Type.Optional(Type.Literal('x\uD800')) }),
  ];
  const fast = new MessageCodec<AnyMessage>(odd);
  const slow = new MessageCodec<AnyMessage>(odd, { compiled: false });
  const messages: AnyMessage[] = [
    { type: 'Proto', constructor: 0 },
    { type: 'Proto', constructor: 0, toString: true, valueOf: 2 },
    { type: 'P\uD800', a: 1 },
    { type: 'Q', ['k\uDC00']: 1 },
    { type: 'R', v: 'x\uD800' },
  ];

  it('are decoded as the generic path decodes them, both ways', () => {
    for (const m of messages) {
      for (const codec of [fast, slow]) {
        const bytes = Uint8Array.from(codec.encode(m));
        expect(outcome(() => fast.decode(bytes))).toEqual(outcome(() => slow.decode(bytes)));
      }
    }
    // A peer's bytes for them: `type` "P" + U+FFFD (what 'P\uD800' is written as), and a missing optional toString.
    const forged = Uint8Array.from([
      0x82,
      0xa4,
      ...Buffer.from('type'),
      0xa4,
      0x50,
      0xef,
      0xbf,
      0xbd,
      0xa1,
      0x61,
      1,
    ]);
    expect(outcome(() => fast.decode(forged))).toEqual({ code: 'UNKNOWN_MESSAGE' });
    const proto = Uint8Array.from(slow.encode({ type: 'Proto', constructor: 0 }));
    expect(outcome(() => fast.decode(proto))).toEqual({ code: 'SCHEMA_VIOLATION' });
  });
});
