import { describe, expect, it } from 'vitest';
import { Type } from '@sinclair/typebox';
import { pack } from 'msgpackr';
import { message, messageCodec } from '../../src/wire/codec.js';
import { FrameDecoder } from '../../src/wire/frame.js';
import { isCohortError } from '../../src/lib/errors.js';
import { codeOf } from '../harness/errors.js';
import { limits } from '../../src/lib/limits.js';

const Ping = message('Ping', { seq: Type.Integer({ minimum: 0 }) });
const Put = message('Put', {
  key: Type.String(),
  value: Type.Uint8Array(),
  lease: Type.Optional(Type.Integer()),
  tags: Type.Array(Type.String()),
});
const codec = messageCodec([Ping, Put]);

describe('MessageCodec', () => {
  it('round-trips registered messages', () => {
    const put = {
      type: 'Put' as const,
      key: 'k',
      value: new Uint8Array([1, 2, 3]),
      tags: ['a', 'b'],
    };
    const back = codec.decode(codec.encode(put));
    expect(back).toEqual({ ...put, value: expect.any(Uint8Array) as unknown });
    expect(back.type === 'Put' && [...back.value]).toEqual([1, 2, 3]);
    expect(codec.decode(codec.encode({ type: 'Ping', seq: 7 }))).toEqual({ type: 'Ping', seq: 7 });
  });

  it('decodes binary fields as copies, not views into the input', () => {
    const bytes = codec.encode({ type: 'Put', key: 'k', value: new Uint8Array([9, 9]), tags: [] });
    const copy = Uint8Array.from(bytes);
    const msg = codec.decode(copy);
    copy.fill(0);
    expect(msg.type === 'Put' && [...msg.value]).toEqual([9, 9]);
  });

  it('with stable input, keeps a field that fills half its memory as a view and copies small ones', () => {
    const big = new Uint8Array(1000).fill(7);
    const input = Uint8Array.from(codec.encode({ type: 'Put', key: 'k', value: big, tags: [] }));
    const view = codec.decode(input, { stable: true });
    expect(view.type === 'Put' && view.value.buffer).toBe(input.buffer);
    expect(view.type === 'Put' && [...view.value]).toEqual([...big]);
    // The same bytes inside a read four times larger: the field is copied.
    const read = new Uint8Array(input.length * 4);
    read.set(input, 8);
    const copied = codec.decode(read.subarray(8, 8 + input.length), { stable: true });
    expect(copied.type === 'Put' && copied.value.buffer).not.toBe(read.buffer);
    // Without the promise, always a copy.
    const plain = codec.decode(input);
    expect(plain.type === 'Put' && plain.value.buffer).not.toBe(input.buffer);
    expect(plain.type === 'Put' && [...plain.value]).toEqual([...big]);
  });

  it('copies byte fields wherever a schema lets them be (nested, optional, unions, records, open objects)', () => {
    const Deep = message('Deep', {
      top: Type.Uint8Array(),
      maybe: Type.Optional(Type.Uint8Array()),
      entries: Type.Array(
        Type.Object(
          { term: Type.Integer(), data: Type.Uint8Array() },
          { additionalProperties: false },
        ),
      ),
      either: Type.Union([Type.Uint8Array(), Type.Null()]),
      byKey: Type.Record(Type.String(), Type.Uint8Array()),
      open: Type.Object({ n: Type.Integer() }),
      grid: Type.Array(Type.Array(Type.Uint8Array())),
      any: Type.Unknown(),
    });
    const deepCodec = messageCodec([Deep]);
    const b = (n: number): Uint8Array => new Uint8Array(100).fill(n);
    const sent = {
      type: 'Deep' as const,
      top: b(1),
      entries: [
        { term: 1, data: b(2) },
        { term: 2, data: b(3) },
      ],
      either: b(4),
      byKey: { k: b(5) },
      open: { n: 1, extra: b(6) },
      grid: [[b(7)], [b(8), b(9)]],
      any: { deeper: [b(10)] },
    };
    // Inside a read 8 times larger: every field must be copied, stable or not.
    const bytes = deepCodec.encode(sent);
    const read = new Uint8Array(bytes.length * 8);
    read.set(bytes);
    for (const stable of [false, true]) {
      const got = deepCodec.decode(read.subarray(0, bytes.length), { stable });
      const fields: Uint8Array[] = [];
      const collect = (v: unknown): void => {
        if (v instanceof Uint8Array) fields.push(v);
        else if (v !== null && typeof v === 'object') Object.values(v).forEach(collect);
      };
      collect(got);
      expect(fields).toHaveLength(10);
      for (const f of fields) expect(f.buffer).not.toBe(read.buffer);
      expect(fields.map((f) => [f.length, f[0], f[99]])).toEqual(
        Array.from({ length: 10 }, (_, i) => [100, i + 1, i + 1]),
      );
      expect(got.entries.map((e) => e.term)).toEqual([1, 2]);
    }
    const none = deepCodec.decode(deepCodec.encode({ ...sent, either: null }));
    expect(none.either).toBeNull();
    // A type that names no byte field but nests an open object: an extra property may be one.
    const Meta = message('Meta', { info: Type.Object({ n: Type.Integer() }) });
    const metaCodec = messageCodec([Meta]);
    const meta = metaCodec.encode({ type: 'Meta', info: { n: 1, extra: b(11) } as { n: number } });
    const metaRead = new Uint8Array(meta.length * 8);
    metaRead.set(meta);
    const gotMeta = metaCodec.decode(metaRead.subarray(0, meta.length), { stable: true });
    const extra = (gotMeta.info as { extra?: unknown }).extra;
    expect(extra instanceof Uint8Array && extra.buffer).not.toBe(metaRead.buffer);
  });

  it('decodeRange decodes a message inside a larger read exactly as decode decodes a view of it', () => {
    const put = { type: 'Put' as const, key: 'k', value: new Uint8Array(300).fill(3), tags: ['t'] };
    const one = codec.encode(put);
    const ping = codec.encode({ type: 'Ping', seq: 5 });
    const read = Buffer.concat([Buffer.from([1, 2, 3]), one, ping, Buffer.from([0xc4, 0x7f])]);
    const start = 3;
    const end = start + one.length;
    const got = codec.decodeRange(read, start, end, { stable: true });
    expect(got.type === 'Put' && [...got.value]).toEqual([...put.value]);
    expect(codec.decodeRange(read, end, end + ping.length)).toEqual({ type: 'Ping', seq: 5 });
    // A range cut short is refused, though the bytes after it would complete the value.
    expect(codeOf(() => codec.decodeRange(read, start, end - 1))).toBe('DECODE_ERROR');
    expect(codeOf(() => codec.decode(read.subarray(start, end - 1)))).toBe('DECODE_ERROR');
    // A bin whose length runs past the range (into the next frame's bytes) is refused.
    const lying = Buffer.concat([read, codec.encode({ type: 'Ping', seq: 1 })]);
    expect(codeOf(() => codec.decodeRange(lying, read.length - 2, read.length))).toBe(
      'DECODE_ERROR',
    );
    // Trailing bytes inside the range are refused, and so is an empty range.
    expect(codeOf(() => codec.decodeRange(read, start, end + 1))).toBe('DECODE_ERROR');
    expect(codeOf(() => codec.decodeRange(read, start, start))).toBe('DECODE_ERROR');
    // The nesting bound applies inside the range too.
    const deep = Buffer.concat([Buffer.from([9]), Buffer.alloc(200, 0x91), Buffer.from([1])]);
    expect(codeOf(() => codec.decodeRange(deep, 1, deep.length))).toBe('DECODE_ERROR');
  });

  it('refuses a message with a wrong field type (SCHEMA_VIOLATION)', () => {
    expect(codeOf(() => codec.decode(pack({ type: 'Ping', seq: 'one' })))).toBe('SCHEMA_VIOLATION');
    expect(codeOf(() => codec.decode(pack({ type: 'Ping', seq: -1 })))).toBe('SCHEMA_VIOLATION');
    expect(codeOf(() => codec.decode(pack({ type: 'Ping', seq: 1.5 })))).toBe('SCHEMA_VIOLATION');
  });

  it('refuses a message with a missing or extra field (SCHEMA_VIOLATION)', () => {
    expect(codeOf(() => codec.decode(pack({ type: 'Ping' })))).toBe('SCHEMA_VIOLATION');
    expect(codeOf(() => codec.decode(pack({ type: 'Ping', seq: 1, x: 2 })))).toBe(
      'SCHEMA_VIOLATION',
    );
  });

  it('names the offending field in the error', () => {
    try {
      codec.decode(pack({ type: 'Put', key: 'k', value: new Uint8Array(), tags: [1] }));
      expect.unreachable();
    } catch (err) {
      expect(isCohortError(err) && err.message).toMatch(/Put at \/tags\/0/);
    }
  });

  it('refuses non-objects and objects without a string type (SCHEMA_VIOLATION)', () => {
    for (const v of [1, 'x', null, [1], { seq: 1 }, { type: 3 }]) {
      expect(codeOf(() => codec.decode(pack(v)))).toBe('SCHEMA_VIOLATION');
    }
  });

  it('refuses an unregistered type (UNKNOWN_MESSAGE)', () => {
    expect(codeOf(() => codec.decode(pack({ type: 'Nope' })))).toBe('UNKNOWN_MESSAGE');
    expect(codeOf(() => codec.decode(pack({ type: '__proto__' })))).toBe('UNKNOWN_MESSAGE');
  });

  it('refuses bytes that are not MessagePack, or have trailing bytes (DECODE_ERROR)', () => {
    expect(codeOf(() => codec.decode(new Uint8Array([])))).toBe('DECODE_ERROR');
    expect(codeOf(() => codec.decode(new Uint8Array([0xd4, 0x22, 0x00])))).toBe('DECODE_ERROR');
    expect(codeOf(() => codec.decode(new Uint8Array([0xdd, 0x7f, 0xff, 0xff, 0xff])))).toBe(
      'DECODE_ERROR',
    );
    const good = codec.encode({ type: 'Ping', seq: 1 });
    expect(codeOf(() => codec.decode(new Uint8Array([...good, 0])))).toBe('DECODE_ERROR');
  });

  it('refuses extension values where plain fields are expected', () => {
    // A msgpack timestamp decodes to a Date, which is not an integer.
    const withDate = pack({ type: 'Ping', seq: new Date(0) });
    expect(codeOf(() => codec.decode(withDate))).toBe('SCHEMA_VIOLATION');
  });

  it('refuses nesting deeper than messageNestingDepthMax before decoding recursively (DECODE_ERROR)', () => {
    const Any = message('Any', { payload: Type.Unknown() });
    const anyCodec = messageCodec([Any]);
    /** {type:'Any', payload: [[[...]]]} with `depth` arrays, each holding a byte array at the bottom. */
    const nested = (depth: number, open: number): Uint8Array => {
      const head = pack({ type: 'Any', payload: 0 });
      // Replace the trailing fixint 0 by `depth` one-item array headers and a bin 8 of one byte.
      const body = new Uint8Array(depth).fill(open);
      return new Uint8Array([...head.subarray(0, head.length - 1), ...body, 0xc4, 1, 7]);
    };
    // The probe's frame: 9,600 nested arrays in 9.7 KB overflowed the stack of copyBinaries.
    for (const open of [0x91, 0xdc]) {
      const header = open === 0xdc ? [0xdc, 0, 1] : [open];
      const bytes = new Uint8Array([
        ...pack({ type: 'Any', payload: 0 }).subarray(0, -1),
        ...Array.from({ length: 9_600 }, () => header).flat(),
        0xc4,
        1,
        7,
      ]);
      expect(codeOf(() => anyCodec.decode(bytes))).toBe('DECODE_ERROR');
    }
    // Maps count too: {a: {a: ...}}.
    const maps = new Uint8Array([
      ...pack({ type: 'Any', payload: 0 }).subarray(0, -1),
      ...Array.from({ length: 200 }, () => [0x81, 0xa1, 0x61]).flat(),
      0xc0,
    ]);
    expect(codeOf(() => anyCodec.decode(maps))).toBe('DECODE_ERROR');
    // Up to the limit is fine (the message object itself is one level).
    const limit = limits.messageNestingDepthMax;
    expect(codeOf(() => anyCodec.decode(nested(limit - 1, 0x91)))).toBe('no error');
    expect(codeOf(() => anyCodec.decode(nested(limit, 0x91)))).toBe('DECODE_ERROR');
    // Empty containers open a level as well.
    const emptyAtBottom = new Uint8Array([
      ...pack({ type: 'Any', payload: 0 }).subarray(0, -1),
      ...new Uint8Array(limit - 1).fill(0x91),
      0x90,
    ]);
    expect(codeOf(() => anyCodec.decode(emptyAtBottom))).toBe('DECODE_ERROR');
    const shallow = messageCodec([Any], { nestingDepthMax: 3 });
    expect(codeOf(() => shallow.decode(pack({ type: 'Any', payload: [[1]] })))).toBe('no error');
    expect(codeOf(() => shallow.decode(pack({ type: 'Any', payload: [[[1]]] })))).toBe(
      'DECODE_ERROR',
    );
  });

  it("refuses MessagePack extensions cohort's encoder never writes (DECODE_ERROR)", () => {
    const Any = message('Any', { payload: Type.Unknown() });
    const anyCodec = messageCodec([Any]);
    const head = pack({ type: 'Any', payload: 0 }).subarray(0, -1);
    const withPayload = (...bytes: number[]): Uint8Array => new Uint8Array([...head, ...bytes]);
    // msgpackr's built-ins: 0x73 a Set of the next value, 0x78 a RegExp, 0x65 an Error, 0x69/0x70
    // structured-clone references; some decode a nested value recursively.
    expect(codeOf(() => anyCodec.decode(withPayload(0xd4, 0x73, 0, 0x91, 1)))).toBe('DECODE_ERROR');
    expect(codeOf(() => anyCodec.decode(withPayload(0xd4, 0x78, 0, 0x92, 0xa1, 0x61, 0xa0)))).toBe(
      'DECODE_ERROR',
    );
    expect(codeOf(() => anyCodec.decode(withPayload(0xc7, 1, 0x65, 0, 0x90)))).toBe('DECODE_ERROR');
    expect(codeOf(() => anyCodec.decode(withPayload(0xd6, 0x70, 0, 0, 0, 1)))).toBe('DECODE_ERROR');
    // What the encoder does write still decodes: undefined and timestamps.
    expect(anyCodec.decode(anyCodec.encode({ type: 'Any', payload: { u: undefined } }))).toEqual({
      type: 'Any',
      payload: { u: undefined },
    });
    expect(anyCodec.decode(anyCodec.encode({ type: 'Any', payload: new Date(5) }))).toEqual({
      type: 'Any',
      payload: new Date(5),
    });
  });

  it('refuses to encode a message over the size limit (FRAME_TOO_LARGE)', () => {
    const small = messageCodec([Put], { messageBytesMax: 100 });
    const put = { type: 'Put' as const, key: 'k', value: new Uint8Array(200), tags: [] };
    expect(codeOf(() => small.encode(put))).toBe('FRAME_TOO_LARGE');
    expect(codeOf(() => small.encodeFrame(put))).toBe('FRAME_TOO_LARGE');
  });

  it('validates on encode when asked', () => {
    const strict = messageCodec([Ping], { validateOnEncode: true });
    expect(codeOf(() => strict.encode({ type: 'Ping', seq: -5 }))).toBe('SCHEMA_VIOLATION');
    expect(codeOf(() => codec.encode({ type: 'Ping', seq: -5 }))).toBe('no error');
  });

  it('encodeFrame produces a frame the FrameDecoder accepts', () => {
    const frame = codec.encodeFrame({ type: 'Ping', seq: 42 });
    const dec = new FrameDecoder();
    dec.push(frame);
    const payload = dec.next();
    expect(payload).toBeDefined();
    expect(codec.decode(payload as Uint8Array)).toEqual({ type: 'Ping', seq: 42 });
  });

  it('encodeFrameTransient gives the bytes of encodeFrame, in memory the next encode reuses', () => {
    const put = { type: 'Put' as const, key: 'k', value: new Uint8Array(300).fill(5), tags: ['t'] };
    const expected = Uint8Array.from(codec.encodeFrame(put));
    const transient = codec.encodeFrameTransient(put);
    expect(Uint8Array.from(transient)).toEqual(expected);
    const next = codec.encodeFrame({ type: 'Ping', seq: 1 });
    expect(next.buffer === transient.buffer && next.byteOffset === transient.byteOffset).toBe(true);
    const small = messageCodec([Put], { messageBytesMax: 100 });
    expect(codeOf(() => small.encodeFrameTransient(put))).toBe('FRAME_TOO_LARGE');
  });

  it('extends a codec with more types and lists its schemas', () => {
    const Pong = message('Pong', { seq: Type.Integer() });
    const more = codec.with([Pong]);
    expect(more.types).toEqual(['Ping', 'Put', 'Pong']);
    expect(more.decode(more.encode({ type: 'Pong', seq: 1 }))).toEqual({ type: 'Pong', seq: 1 });
    expect(codeOf(() => codec.decode(more.encode({ type: 'Pong', seq: 1 })))).toBe(
      'UNKNOWN_MESSAGE',
    );
    expect(more.schemaOf('Pong')?.properties.seq).toMatchObject({ type: 'integer' });
  });
});
