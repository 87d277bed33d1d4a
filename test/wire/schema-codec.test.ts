/**
 * The codecs compiled per message type (src/wire/schema-codec.ts) against
 * the generic path they stand in for (msgpackr + the nesting scan + the
 * TypeBox check: a MessageCodec with `compiled: false`):
 * - what the compiled encoder writes, the generic decoder (an older node)
 *   reads as the same message, and what msgpackr wrote, the compiled
 *   decoder reads as the same message;
 * - on any bytes (random, mutated, truncated, extended valid encodings) the
 *   compiled codec accepts exactly what the generic one accepts, with the
 *   same value, and refuses the rest with the same error code;
 * - the compiled decoder really takes real traffic (Raft, RPC, the bench's
 *   Blob), so the properties above are not met by always falling back.
 * FC_NUM_RUNS (default 2,000) sets the cases per property.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Kind, OptionalKind, Type } from '@sinclair/typebox';
import type { TSchema } from '@sinclair/typebox';
import { Packr, Unpackr } from 'msgpackr';
import { message, MessageCodec, messageCodec, shortLivedBytes } from '../../src/wire/codec.js';
import type { MessageSchema } from '../../src/wire/codec.js';
import {
  compileMessage,
  CompiledTypes,
  FALLBACK,
  SchemaReader,
  SchemaWriter,
} from '../../src/wire/schema-codec.js';
import type { CompiledMessage } from '../../src/wire/schema-codec.js';
import { outcome, plain } from '../harness/outcome.js';
import { raftMessageSchemas } from '../../src/raft/raft-messages-codec.js';
import { rpcSchemas } from '../../src/rpc/messages.js';

const numRuns = Number(process.env.FC_NUM_RUNS ?? 2_000);
const timeout = Math.max(60_000, numRuns * 30);

const Blob = message('Blob', { seq: Type.Integer({ minimum: 0 }), body: Type.Uint8Array() });
const Mixed = message('Mixed', {
  small: Type.Integer({ minimum: -5, maximum: 300 }),
  open: Type.Integer(),
  above: Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 10 }),
  name: Type.String({ minLength: 1, maxLength: 20 }),
  text: Type.String(),
  flag: Type.Boolean(),
  bytes: Type.Uint8Array({ minByteLength: 1, maxByteLength: 40 }),
  kind: Type.Union([Type.Literal('a'), Type.Literal('bb'), Type.Literal(7), Type.Literal(false)]),
  list: Type.Array(Type.Integer({ minimum: 0 }), { maxItems: 6 }),
  inner: Type.Object(
    { x: Type.Optional(Type.Integer()), tags: Type.Array(Type.String({ maxLength: 8 })) },
    { additionalProperties: false },
  ),
  any: Type.Unknown(),
  note: Type.Optional(Type.String({ maxLength: 30 })),
  dict: Type.Optional(Type.Record(Type.String(), Type.Integer())),
  pattern: Type.Optional(Type.String({ pattern: '^[a-z]+$' })),
});

/** A valid `Mixed` message, every field set (the refusal cases and the encoder's fallback start from it). */
const validMixed = {
  type: 'Mixed',
  small: 3,
  open: -70000,
  above: 2.5,
  name: 'n1',
  text: 'hello',
  flag: true,
  bytes: new Uint8Array([1, 2, 3]),
  kind: 'bb',
  list: [1, 2],
  inner: { tags: ['x'] },
  any: { a: [1, 'b'] },
};

/** A short-lived byte field (a view of stable input, see shortLivedBytes) beside a number. */
const Note = message('Note', { n: Type.Integer(), body: shortLivedBytes() });

const schemas: readonly MessageSchema[] = [Blob, Mixed, Note, ...raftMessageSchemas, ...rpcSchemas];
/** Any message of the test schemas (checked by the codecs, not the compiler). */
type AnyMessage = { type: string } & Record<string, unknown>;
const compiled = new MessageCodec<AnyMessage>(schemas);
const reference = new MessageCodec<AnyMessage>(schemas, { compiled: false });

// ---- arbitraries from schemas ----------------------------------------------

const safeKey = fc.string({ maxLength: 8 }).filter((k) => k !== '__proto__');
const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer(),
  fc.string({ maxLength: 10 }),
  fc.boolean(),
  fc.constant(null),
  fc.uint8Array({ maxLength: 12 }),
  fc.array(fc.integer(), { maxLength: 4 }),
  fc.dictionary(safeKey, fc.oneof(fc.integer(), fc.string({ maxLength: 5 })), { maxKeys: 3 }),
);

function num(schema: TSchema, key: string): number | undefined {
  const v = (schema as unknown as Record<string, unknown>)[key];
  return typeof v === 'number' ? v : undefined;
}

/** Values a schema accepts (for the kinds the test schemas use). */
function arbOf(schema: TSchema): fc.Arbitrary<unknown> {
  const kind = (schema as unknown as Record<symbol, unknown>)[Kind];
  const s = schema as unknown as Record<string, unknown>;
  switch (kind) {
    case 'Integer': {
      const lo = Math.max(num(schema, 'minimum') ?? -(2 ** 53 - 1), -(2 ** 53 - 1));
      const hi = Math.min(num(schema, 'maximum') ?? 2 ** 53 - 1, 2 ** 53 - 1);
      const edges = [lo, hi, 0, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32]
        .concat([-1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1])
        .filter((v) => v >= lo && v <= hi);
      return fc.oneof(
        fc.integer({ min: Math.max(lo, -(2 ** 31)), max: Math.min(hi, 2 ** 31 - 1) }),
        fc.maxSafeInteger().map((v) => Math.min(hi, Math.max(lo, v))),
        fc.constantFrom(...edges),
      );
    }
    case 'Number':
      return fc.double({ min: 1e-9, max: 9.99, noNaN: true });
    case 'Boolean':
      return fc.boolean();
    case 'String': {
      if (s.pattern !== undefined) return fc.stringMatching(/^[a-z]{1,6}$/);
      const minLength = num(schema, 'minLength') ?? 0;
      const maxLength = Math.min(num(schema, 'maxLength') ?? 40, 40);
      return fc.oneof(
        fc.string({ minLength, maxLength }),
        fc.string({ unit: 'grapheme-ascii', minLength, maxLength }),
        // Non-ASCII goes the generic way; its length in code units must stay within bounds.
        fc.string({ unit: 'binary', minLength, maxLength }).filter((x) => x.length <= maxLength),
      );
    }
    case 'Uint8Array':
      return fc.uint8Array({
        minLength: num(schema, 'minByteLength') ?? 0,
        maxLength: Math.min(num(schema, 'maxByteLength') ?? 300, 300),
      });
    case 'Literal':
      return fc.constant(s.const);
    case 'Union':
      return fc.oneof(...(s.anyOf as TSchema[]).map(arbOf));
    case 'Array':
      return fc.array(arbOf(s.items as TSchema), {
        minLength: num(schema, 'minItems') ?? 0,
        maxLength: Math.min(num(schema, 'maxItems') ?? 4, 4),
      });
    case 'Object': {
      const props = s.properties as Record<string, TSchema>;
      const required = Object.keys(props).filter(
        (k) => (props[k] as unknown as Record<symbol, unknown>)[OptionalKind] !== 'Optional',
      );
      return fc.record(Object.fromEntries(Object.entries(props).map(([k, p]) => [k, arbOf(p)])), {
        requiredKeys: required,
      });
    }
    case 'Record': {
      const values = Object.values(s.patternProperties as Record<string, TSchema>)[0] as TSchema;
      return fc.dictionary(
        fc.string({ maxLength: 6 }).filter((k) => k !== '__proto__'),
        arbOf(values),
        { maxKeys: Math.min(num(schema, 'maxProperties') ?? 3, 3) },
      );
    }
    default:
      return anyValue;
  }
}

const messageArb: fc.Arbitrary<AnyMessage> = fc.oneof(
  ...schemas.map((schema) => arbOf(schema) as fc.Arbitrary<AnyMessage>),
);

/** The MessagePack of `m` with its keys in the object's order (msgpackr, as an older node encodes). */
const packr = new Packr({ useRecords: false, moreTypes: false, variableMapSize: true });
const unpackr = new Unpackr({
  useRecords: false,
  mapsAsObjects: true,
  int64AsType: 'auto' as 'bigint',
});

/** A reader over all of `bytes`. */
function readerOf(bytes: Uint8Array): SchemaReader {
  const r = new SchemaReader();
  r.bytes = bytes;
  r.pos = 0;
  r.end = bytes.length;
  r.depthMax = 100;
  return r;
}

/**
 * The compiled decoder of one type, run on `bytes` directly as the codec
 * runs it (CompiledTypes: the type read once, then decodeAfterType); a
 * message it takes, CompiledMessage.decode (the whole map) takes the same.
 */
function compiledDecode(schema: MessageSchema, bytes: Uint8Array): unknown {
  const type = String(schema.properties.type?.const);
  const c = compileMessage(schema, type, { packr, unpackr, copierOf: () => undefined });
  expect(c).toBeDefined();
  const types = new CompiledTypes();
  types.add(c as CompiledMessage);
  const v = types.decode(readerOf(bytes));
  if (v !== FALLBACK) expect(plain(c?.decode(readerOf(bytes)))).toEqual(plain(v));
  return v;
}

describe('compiled message codecs', () => {
  it('compile every type of the Raft and RPC protocols and the benchmark', () => {
    const codec = new MessageCodec(schemas);
    expect(codec.compiledTypes).toEqual(codec.types);
  });

  it(
    'write what the generic decoder (an older node) reads back, and read what msgpackr wrote',
    () => {
      fc.assert(
        fc.property(messageArb, (m) => {
          const bytes = Uint8Array.from(compiled.encode(m));
          expect(plain(reference.decode(bytes))).toEqual(plain(m));
          expect(plain(unpackr.unpack(bytes))).toEqual(plain(m));
          expect(plain(compiled.decode(bytes))).toEqual(plain(m));
          const old = Uint8Array.from(packr.pack(m));
          expect(plain(compiled.decode(old))).toEqual(plain(m));
        }),
        { numRuns },
      );
    },
    timeout,
  );

  it(
    'take real traffic on the fast path: the compiled decoder accepts every valid message',
    () => {
      // Raft, RPC and Blob messages with ASCII strings (non-ASCII ones go the generic way).
      const ascii = (v: unknown): boolean =>
        typeof v === 'string'
          ? [...v].every((c) => c.charCodeAt(0) < 0x80)
          : Array.isArray(v)
            ? v.every(ascii)
            : v !== null && typeof v === 'object' && !(v instanceof Uint8Array)
              ? Object.values(v).every(ascii)
              : true;
      fc.assert(
        fc.property(messageArb.filter(ascii), (m) => {
          const schema = schemas.find((s) => s.properties.type?.const === m.type) as MessageSchema;
          const bytes = Uint8Array.from(packr.pack(m));
          const v = compiledDecode(schema, bytes);
          expect(v).not.toBe(FALLBACK);
          expect(plain(v)).toEqual(plain(m));
        }),
        { numRuns },
      );
    },
    timeout,
  );

  it(
    'accept and refuse exactly what the generic path does, on mutated, truncated and random bytes',
    () => {
      const mutation = fc.oneof(
        fc.record({
          kind: fc.constant('flip' as const),
          at: fc.nat(),
          byte: fc.integer({ min: 0, max: 255 }),
        }),
        fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
        fc.record({
          kind: fc.constant('insert' as const),
          at: fc.nat(),
          byte: fc.integer({ min: 0, max: 255 }),
        }),
        fc.record({
          kind: fc.constant('append' as const),
          bytes: fc.uint8Array({ minLength: 1, maxLength: 4 }),
        }),
      );
      const mutated = fc
        .tuple(messageArb, fc.array(mutation, { minLength: 1, maxLength: 3 }))
        .map(([m, mutations]) => {
          let bytes = Uint8Array.from(compiled.encode(m));
          for (const mu of mutations) {
            if (mu.kind === 'append') bytes = Uint8Array.from([...bytes, ...mu.bytes]);
            else {
              const at = mu.at % Math.max(1, bytes.length);
              if (mu.kind === 'flip') bytes[at] = mu.byte;
              else if (mu.kind === 'cut') bytes = bytes.slice(0, at);
              else bytes = Uint8Array.from([...bytes.slice(0, at), mu.byte, ...bytes.slice(at)]);
            }
          }
          return bytes;
        });
      const input = fc.oneof(mutated, fc.uint8Array({ maxLength: 64 }));
      fc.assert(
        fc.property(input, fc.boolean(), (bytes, stable) => {
          // In place in a larger read too, as the transport decodes.
          const read = Buffer.concat([Buffer.from([1, 2, 3]), bytes, Buffer.from([4])]);
          const options = { stable };
          const want = outcome(() => reference.decodeRange(read, 3, 3 + bytes.length, options));
          expect(outcome(() => compiled.decodeRange(read, 3, 3 + bytes.length, options))).toEqual(
            want,
          );
          expect(outcome(() => compiled.decode(bytes))).toEqual(
            outcome(() => reference.decode(bytes)),
          );
        }),
        { numRuns: numRuns * 5 },
      );
    },
    timeout,
  );

  it('decode every field in schema order (straight-line) and in any other order (the general loop) to the same message', () => {
    const inner = Type.Object(
      { x: Type.Integer(), y: Type.Optional(Type.String()), z: Type.Boolean() },
      { additionalProperties: false },
    );
    const Three = message('Three', {
      a: Type.Integer(),
      b: Type.Optional(Type.String()),
      c: inner,
    });
    const value = { type: 'Three', a: 5, b: 'hi', c: { x: 1, y: 'q', z: true } };
    const orders = [
      ['type', 'a', 'b', 'c'],
      ['type', 'c', 'b', 'a'],
      ['type', 'b', 'a', 'c'],
    ];
    for (const order of orders) {
      for (const innerOrder of [
        ['x', 'y', 'z'],
        ['z', 'x', 'y'],
      ]) {
        const c = Object.fromEntries(innerOrder.map((k) => [k, value.c[k as 'x' | 'y' | 'z']]));
        const m = Object.fromEntries(order.map((k) => [k, k === 'c' ? c : value[k as 'a']]));
        const bytes = Uint8Array.from(packr.pack(m));
        const decoded = compiledDecode(Three, bytes);
        expect(decoded).not.toBe(FALLBACK);
        expect(decoded).toEqual(value);
        // Keys in schema order, as the builder of the general loop sets them.
        expect(Object.keys(decoded as object)).toEqual(['type', 'a', 'c', 'b']);
      }
    }
    // Same-length keys that are not the schema's: the straight-line code does not take them.
    const wrong = Uint8Array.from(packr.pack({ type: 'Three', a: 5, b: 'hi', d: value.c }));
    expect(compiledDecode(Three, wrong)).toBe(FALLBACK);
  });

  it('read the type once and take the map16 form; leave another form of the type string to the generic path', () => {
    const m = { type: 'Blob', seq: 7, body: new Uint8Array([1, 2]) };
    const bytes = Uint8Array.from(packr.pack(m));
    expect(bytes[0]).toBe(0x83); // fixmap of 3
    // The same map as map16 (de 00 03): still the fast path, the same message.
    const map16 = Uint8Array.from([0xde, 0x00, 0x03, ...bytes.subarray(1)]);
    expect(plain(compiledDecode(Blob, map16))).toEqual(plain(m));
    // The type as a str8 (d9 04 'Blob') instead of a fixstr: valid MessagePack the compiled
    // decoder does not compare, so the generic path decodes it, to the same message.
    const at = 1 + 5; // after the map header and the key "type"
    const str8 = Uint8Array.from([...bytes.subarray(0, at), 0xd9, 4, ...bytes.subarray(at + 1)]);
    expect(compiledDecode(Blob, str8)).toBe(FALLBACK);
    expect(plain(compiled.decode(str8))).toEqual(plain(m));
    // A type that is not the schema's (same length): not this decoder's.
    const other = Uint8Array.from(packr.pack({ ...m, type: 'Blub' }));
    expect(compiledDecode(Blob, other)).toBe(FALLBACK);
    expect(outcome(() => compiled.decode(other))).toEqual({ code: 'UNKNOWN_MESSAGE' });
    // The nesting bound still holds for the message's own map.
    const flat = messageCodec([Blob], { nestingDepthMax: 0 });
    expect(outcome(() => flat.decode(bytes))).toEqual({ code: 'DECODE_ERROR' });
  });

  describe('refuse (fall back to the generic path, which gives the error)', () => {
    const valid = validMixed;
    const cases: [string, Record<string, unknown>, string][] = [
      ['an integer above its maximum', { small: 301 }, 'SCHEMA_VIOLATION'],
      ['an integer below its minimum', { small: -6 }, 'SCHEMA_VIOLATION'],
      ['a non-integer for an integer', { open: 1.5 }, 'SCHEMA_VIOLATION'],
      ['a number at an exclusive bound', { above: 10 }, 'SCHEMA_VIOLATION'],
      ['a string too long', { name: 'x'.repeat(21) }, 'SCHEMA_VIOLATION'],
      ['a string too short', { name: '' }, 'SCHEMA_VIOLATION'],
      ['a number for a string', { text: 5 }, 'SCHEMA_VIOLATION'],
      ['bytes too long', { bytes: new Uint8Array(41) }, 'SCHEMA_VIOLATION'],
      ['a string for bytes', { bytes: 'abc' }, 'SCHEMA_VIOLATION'],
      ['a literal not in the union', { kind: 'c' }, 'SCHEMA_VIOLATION'],
      ['an array too long', { list: [1, 2, 3, 4, 5, 6, 7] }, 'SCHEMA_VIOLATION'],
      ['a negative array item', { list: [-1] }, 'SCHEMA_VIOLATION'],
      ['an extra key', { extra: 1 }, 'SCHEMA_VIOLATION'],
      ['an extra key in a nested object', { inner: { tags: [], y: 1 } }, 'SCHEMA_VIOLATION'],
      ['a missing required field', { flag: undefined }, 'SCHEMA_VIOLATION'],
      ['a string failing its pattern', { pattern: 'ABC' }, 'SCHEMA_VIOLATION'],
      ['a record value of the wrong type', { dict: { a: 'x' } }, 'SCHEMA_VIOLATION'],
    ];
    for (const [what, change, code] of cases) {
      it(what, () => {
        const m: Record<string, unknown> = { ...valid, ...change };
        for (const [k, v] of Object.entries(change)) if (v === undefined) delete m[k];
        const bytes = Uint8Array.from(packr.pack(m));
        expect(compiledDecode(Mixed, bytes)).toBe(FALLBACK);
        expect(outcome(() => compiled.decode(bytes))).toEqual({ code });
      });
    }

    it('a duplicate key', () => {
      // {type: 'Blob', seq: 1, body: <>, seq: 2}: msgpackr keeps the last; the compiled path does not decide.
      const bytes = Uint8Array.from([
        0x84,
        0xa4,
        ...Buffer.from('type'),
        0xa4,
        ...Buffer.from('Blob'),
        0xa3,
        ...Buffer.from('seq'),
        1,
        0xa4,
        ...Buffer.from('body'),
        0xc4,
        0,
        0xa3,
        ...Buffer.from('seq'),
        2,
      ]);
      expect(compiledDecode(Blob, bytes)).toBe(FALLBACK);
      expect(plain(compiled.decode(bytes))).toEqual({ type: 'Blob', seq: 2, body: { bytes: [] } });
    });

    it('trailing bytes, and a cut message', () => {
      const bytes = Uint8Array.from(packr.pack({ type: 'Blob', seq: 1, body: new Uint8Array(3) }));
      const longer = Uint8Array.from([...bytes, 0]);
      expect(compiledDecode(Blob, longer)).toBe(FALLBACK);
      expect(outcome(() => compiled.decode(longer))).toEqual({ code: 'DECODE_ERROR' });
      for (let n = 0; n < bytes.length; n++) {
        expect(compiledDecode(Blob, bytes.subarray(0, n))).toBe(FALLBACK);
        expect(outcome(() => compiled.decode(bytes.subarray(0, n)))).toEqual({
          code: 'DECODE_ERROR',
        });
      }
    });

    it('an opaque field nested deeper than the limit, or holding a foreign extension', () => {
      let deep: unknown = 1;
      for (let i = 0; i < 120; i++) deep = [deep];
      const bytes = Uint8Array.from(packr.pack({ ...valid, any: deep }));
      expect(compiledDecode(Mixed, bytes)).toBe(FALLBACK);
      expect(outcome(() => compiled.decode(bytes))).toEqual({ code: 'DECODE_ERROR' });
      const ext = Uint8Array.from(packr.pack({ ...valid, any: 'ZZZZ' }));
      // Replace the str 'ZZZZ' (a4 5a 5a 5a 5a) by a list of one fixext 2 of type 5 (91 d5 05 00 00).
      const at = Buffer.from(ext).indexOf(Buffer.from([0xa4, 0x5a, 0x5a, 0x5a, 0x5a]));
      ext.set([0x91, 0xd5, 0x05, 0x00, 0x00], at);
      expect(compiledDecode(Mixed, ext)).toBe(FALLBACK);
      expect(outcome(() => compiled.decode(ext))).toEqual({ code: 'DECODE_ERROR' });
    });
  });

  it('keep a large byte field of stable input as a view and copy small ones', () => {
    const encoded = compiled.encode({ type: 'Blob', seq: 1, body: new Uint8Array(1000).fill(7) });
    const big = Buffer.allocUnsafeSlow(encoded.length); // its own memory, as a socket read's
    big.set(encoded);
    const m = compiled.decode(big, { stable: true }) as unknown as { body: Uint8Array };
    expect(m.body.buffer).toBe(big.buffer);
    const read = Buffer.alloc(65536);
    const small = compiled.encode({ type: 'Blob', seq: 1, body: new Uint8Array(10).fill(7) });
    read.set(small, 100);
    const s = compiled.decodeRange(read, 100, 100 + small.length, { stable: true }) as unknown as {
      body: Uint8Array;
    };
    expect(s.body.buffer).not.toBe(read.buffer);
    expect([...s.body]).toEqual(new Array(10).fill(7));
  });

  it('decode a short-lived byte field of stable input as a plain Uint8Array view whatever its size, both ways', () => {
    const read = Buffer.alloc(65536);
    // (The generic path copies messages under 140 bytes through a scratch buffer: a longer one there.)
    const fast = messageCodec([Note]);
    const cases: [typeof fast, number][] = [
      [fast, 10],
      [fast, 2000],
      [messageCodec([Note], { compiled: false }), 2000],
    ];
    for (const [codec, size] of cases) {
      const bytes = codec.encode({ type: 'Note', n: 1, body: new Uint8Array(size).fill(3) });
      read.set(bytes, 500);
      const stable = codec.decodeRange(read, 500, 500 + bytes.length, { stable: true });
      expect(stable.body.buffer).toBe(read.buffer);
      // A plain Uint8Array, not a Buffer (cheaper to make), on both paths.
      expect(Buffer.isBuffer(stable.body)).toBe(false);
      expect([...stable.body]).toEqual(new Array(size).fill(3));
      const copied = codec.decodeRange(read, 500, 500 + bytes.length);
      expect(copied.body.buffer).not.toBe(read.buffer);
    }
  });

  it('encodeInto writes the encoding into the target, or says it needs more room', () => {
    const m = { type: 'Blob', seq: 5, body: new Uint8Array(100).fill(1) };
    const want = Buffer.from(compiled.encode(m));
    const target = Buffer.alloc(300);
    expect(compiled.encodeInto(m, target, 10, 300)).toBe(10 + want.length);
    expect(target.subarray(10, 10 + want.length)).toEqual(want);
    expect(compiled.encodeInto(m, target, 10, 10 + want.length - 1)).toBe(-1);
    // A value not of its schema's shape is encoded by msgpackr (the receiver refuses it, as before).
    const odd = { type: 'Blob', seq: 'x', body: new Uint8Array(1) };
    const end = compiled.encodeInto(odd, target, 0, 300);
    expect(outcome(() => reference.decode(target.subarray(0, end)))).toEqual({
      code: 'SCHEMA_VIOLATION',
    });
  });

  it('refuse to encode an opaque field msgpackr cannot encode as the generic path does (INVALID_ARGUMENT)', () => {
    let deep: unknown = [];
    for (let i = 0; i < 20_000; i++) deep = [deep];
    const m = { type: 'RpcResponse', id: 1, payload: deep };
    for (const codec of [compiled, reference]) {
      expect(outcome(() => codec.encode(m))).toEqual({ code: 'INVALID_ARGUMENT' });
      expect(outcome(() => codec.encodeInto(m, Buffer.alloc(64), 0, 64))).toEqual({
        code: 'INVALID_ARGUMENT',
      });
    }
  });

  it('encode the same bytes as msgpackr for messages written in schema order', () => {
    const w = new SchemaWriter();
    w.buf = Buffer.alloc(1024);
    w.limit = 1024;
    const m = { type: 'Blob', seq: 70000, body: new Uint8Array(300).fill(9) };
    const c = compileMessage(Blob, 'Blob', { packr, unpackr, copierOf: () => undefined });
    expect(c?.encode(w, m)).toBe(true);
    expect(w.buf.subarray(0, w.pos)).toEqual(Buffer.from(packr.pack(m)));
  });

  it('write the type as constant bytes, and leave a message of another type to the generic encoder', () => {
    const c = compileMessage(Blob, 'Blob', { packr, unpackr, copierOf: () => undefined });
    const w = new SchemaWriter();
    w.buf = Buffer.alloc(256);
    w.limit = 256;
    const m = { type: 'Blob', seq: 3, body: new Uint8Array([1, 2, 3]) };
    expect(c?.encode(w, m)).toBe(true);
    expect(w.buf.subarray(0, w.pos)).toEqual(Buffer.from(packr.pack(m)));
    // Not this schema's type (the codec never asks this, it finds the encoder by type): not written.
    w.pos = 0;
    expect(c?.encode(w, { ...m, type: 'Blub' })).toBe(false);
    expect(w.full).toBe(false);
    // Out of room within the type's bytes: says so.
    w.pos = 0;
    w.limit = 6;
    expect(c?.encode(w, m)).toBe(false);
    expect(w.full).toBe(true);
  });

  it('leave a message missing a required field, or with one undefined, to the generic encoder', () => {
    // `any` (an opaque field) would encode undefined as nil; the generic path leaves it out.
    const m = validMixed;
    const c = compileMessage(Mixed, 'Mixed', { packr, unpackr, copierOf: () => undefined });
    const w = new SchemaWriter();
    w.buf = Buffer.alloc(1024);
    w.limit = 1024;
    expect(c?.encode(w, m)).toBe(true);
    for (const missing of [
      { ...m, any: undefined },
      { ...m, inner: {} },
    ]) {
      w.pos = 0;
      expect(c?.encode(w, missing)).toBe(false);
      expect(w.full).toBe(false);
      expect(Buffer.from(compiled.encode(missing))).toEqual(Buffer.from(reference.encode(missing)));
    }
  });
});
