/**
 * fast-check properties of the wire format. Each runs FC_NUM_RUNS cases
 * (default 10,000); a longer run: `FC_NUM_RUNS=1000000 npx vitest run test/wire/properties.test.ts`.
 * A failure prints the seed and path; replay with FC_SEED=<seed> FC_PATH=<path>.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Type } from '@sinclair/typebox';
import { message, messageCodec } from '../../src/wire/codec.js';
import type { MessageOf } from '../../src/wire/codec.js';
import { FRAME_HEADER_BYTES, FrameDecoder, encodeFrame } from '../../src/wire/frame.js';
import { isCohortError } from '../../src/lib/errors.js';
import { concatBytes } from '../harness/bytes.js';
import { plain } from '../harness/outcome.js';

const numRuns = Number(process.env.FC_NUM_RUNS ?? 10_000);
const seed = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);
const params = {
  numRuns,
  ...(seed === undefined ? {} : { seed }),
  ...(process.env.FC_PATH === undefined ? {} : { path: process.env.FC_PATH }),
};
const timeout = Math.max(60_000, numRuns * 20);

const Rich = message('Rich', {
  i: Type.Integer(),
  n: Type.Number(),
  s: Type.String(),
  ok: Type.Boolean(),
  bytes: Type.Uint8Array(),
  list: Type.Array(Type.Union([Type.String(), Type.Integer(), Type.Null()])),
  nested: Type.Object(
    { x: Type.Optional(Type.Integer()), tags: Type.Array(Type.String()) },
    { additionalProperties: false },
  ),
  dict: Type.Record(Type.String(), Type.Integer()),
  opt: Type.Optional(Type.String()),
});
const Small = message('Small', { seq: Type.Integer({ minimum: 0 }) });
const codec = messageCodec([Rich, Small]);
type Msg = MessageOf<[typeof Rich, typeof Small]>;

const anyString = fc.string({ unit: 'binary', maxLength: 40 });
const anyInteger = fc.oneof(
  fc.integer(),
  fc.maxSafeInteger(),
  fc.constantFrom(2 ** 32, -(2 ** 32), 2 ** 53 - 1),
);
// Type.Number() accepts finite numbers only (TypeBox's default policy), and
// MessagePack has no negative zero integer: msgpackr writes -0 as 0.
const anyNumber = fc
  .double({ noNaN: true, noDefaultInfinity: true })
  .map((x) => (Object.is(x, -0) ? 0 : x));
const anyKey = anyString.filter((k) => k !== '__proto__'); // msgpackr renames that key (prototype safety)

const richArb: fc.Arbitrary<Msg> = fc.record(
  {
    type: fc.constant('Rich' as const),
    i: anyInteger,
    n: anyNumber,
    s: anyString,
    ok: fc.boolean(),
    bytes: fc.uint8Array({ maxLength: 64 }),
    list: fc.array(fc.oneof(anyString, anyInteger, fc.constant(null)), { maxLength: 8 }),
    nested: fc.record(
      { x: anyInteger, tags: fc.array(anyString, { maxLength: 4 }) },
      { requiredKeys: ['tags'] },
    ),
    dict: fc.dictionary(anyKey, anyInteger, { maxKeys: 5 }),
    opt: anyString,
  },
  { requiredKeys: ['type', 'i', 'n', 's', 'ok', 'bytes', 'list', 'nested', 'dict'] },
);
const smallArb: fc.Arbitrary<Msg> = fc.record({
  type: fc.constant('Small' as const),
  seq: fc.nat(),
});
const msgArb = fc.oneof(richArb, smallArb);

const concat = concatBytes;

/** Cuts `bytes` at the given (sorted, deduplicated) offsets. */
function cut(bytes: Uint8Array, offsets: readonly number[]): Uint8Array[] {
  const points = [...new Set(offsets.map((o) => o % (bytes.length + 1)))].sort((x, y) => x - y);
  const chunks: Uint8Array[] = [];
  let prev = 0;
  for (const p of [...points, bytes.length]) {
    chunks.push(bytes.subarray(prev, p));
    prev = p;
  }
  return chunks;
}

/**
 * Feeds chunks to a decoder + codec like a connection does. Returns the
 * messages accepted before the first error, and that error's code. Anything
 * thrown that is not a CohortError fails the property (a crash).
 */
function receive(
  chunks: readonly Uint8Array[],
  end: boolean,
): { accepted: Msg[]; error: string | undefined } {
  const viaViews = receiveWith(chunks, end, false);
  // The TCP transport's path: payloads decoded where they sit (nextInPlace +
  // decodeRange) must accept and refuse exactly the same.
  expect(plain(receiveWith(chunks, end, true))).toEqual(plain(viaViews));
  return viaViews;
}

function receiveWith(
  chunks: readonly Uint8Array[],
  end: boolean,
  inPlace: boolean,
): { accepted: Msg[]; error: string | undefined } {
  const dec = new FrameDecoder({ frameBytesMax: 64 * 1024 });
  const accepted: Msg[] = [];
  try {
    for (const chunk of chunks) {
      dec.push(chunk);
      if (inPlace) {
        while (dec.nextInPlace()) {
          accepted.push(codec.decodeRange(dec.frameSource, dec.frameStart, dec.frameEnd));
        }
      } else {
        for (let p = dec.next(); p !== undefined; p = dec.next()) accepted.push(codec.decode(p));
      }
    }
    if (end) dec.finish();
    return { accepted, error: undefined };
  } catch (err) {
    if (!isCohortError(err)) throw err;
    return { accepted, error: err.code };
  }
}

describe('wire properties', () => {
  it(
    'encode → decode round-trips arbitrary messages',
    () => {
      fc.assert(
        fc.property(msgArb, (msg) => {
          expect(plain(codec.decode(codec.encode(msg)))).toEqual(plain(msg));
        }),
        params,
      );
    },
    timeout,
  );

  it(
    'a stream of frames cut at arbitrary points decodes to exactly the messages sent',
    () => {
      fc.assert(
        fc.property(
          fc.array(msgArb, { maxLength: 6 }),
          fc.array(fc.nat(), { maxLength: 10 }),
          (msgs, offsets) => {
            const stream = concat(msgs.map((m) => codec.encodeFrame(m)));
            const { accepted, error } = receive(cut(stream, offsets), true);
            expect(error).toBeUndefined();
            expect(plain(accepted)).toEqual(plain(msgs));
          },
        ),
        params,
      );
    },
    timeout,
  );

  it(
    'arbitrary byte streams never crash the decoder and yield only valid messages',
    () => {
      fc.assert(
        fc.property(
          // Raw garbage, garbage payloads in well-formed frames, and valid frames, mixed.
          fc.array(
            fc.oneof(
              fc.uint8Array({ maxLength: 64 }),
              fc.uint8Array({ maxLength: 64 }).map((p) => encodeFrame(p)),
              msgArb.map((m) => codec.encodeFrame(m)),
            ),
            { maxLength: 6 },
          ),
          fc.array(fc.nat(), { maxLength: 6 }),
          fc.boolean(),
          (segments, offsets, end) => {
            const { accepted, error } = receive(cut(concat(segments), offsets), end);
            // Random bytes almost never carry a valid CRC; if they ever do, the
            // message went through schema validation like any other.
            for (const m of accepted) expect(['Rich', 'Small']).toContain(m.type);
            if (error !== undefined) {
              expect([
                'FRAME_TOO_LARGE',
                'CHECKSUM_MISMATCH',
                'DECODE_ERROR',
                'SCHEMA_VIOLATION',
                'UNKNOWN_MESSAGE',
              ]).toContain(error);
            }
          },
        ),
        params,
      );
    },
    timeout,
  );

  it(
    'arbitrary payloads inside valid frames are either rejected with a typed error or are valid messages',
    () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 200 }), (payload) => {
          try {
            const m = codec.decode(payload);
            // Accepted: then it is a valid message that re-encodes to an equal message.
            expect(plain(codec.decode(codec.encode(m)))).toEqual(plain(m));
          } catch (err) {
            if (!isCohortError(err)) throw err;
            expect(['DECODE_ERROR', 'SCHEMA_VIOLATION', 'UNKNOWN_MESSAGE']).toContain(err.code);
          }
          // Garbage leaves no state behind in the codec.
          expect(codec.decode(codec.encode({ type: 'Small', seq: 7 }))).toEqual({
            type: 'Small',
            seq: 7,
          });
        }),
        params,
      );
    },
    timeout,
  );

  it(
    'a truncated stream yields a prefix of the messages, then a typed error',
    () => {
      fc.assert(
        fc.property(fc.array(msgArb, { minLength: 1, maxLength: 4 }), fc.nat(), (msgs, at) => {
          const frames = msgs.map((m) => codec.encodeFrame(m));
          const stream = concat(frames);
          const length = at % stream.length; // strictly shorter than the stream
          const { accepted, error } = receive([stream.subarray(0, length)], true);
          expect(plain(accepted)).toEqual(plain(msgs.slice(0, accepted.length)));
          // Exactly the frames that fit whole are accepted; a partial one is an error.
          let whole = 0;
          let end = 0;
          while (whole < frames.length && end + (frames[whole] as Uint8Array).length <= length) {
            end += (frames[whole] as Uint8Array).length;
            whole++;
          }
          expect(accepted.length).toBe(whole);
          expect(error === undefined).toBe(end === length);
        }),
        params,
      );
    },
    timeout,
  );

  it(
    'a single bit flip in a stream of frames is never accepted as a different message',
    () => {
      fc.assert(
        fc.property(
          fc.array(msgArb, { minLength: 1, maxLength: 4 }),
          fc.nat(),
          fc.integer({ min: 0, max: 7 }),
          fc.array(fc.nat(), { maxLength: 4 }),
          (msgs, at, bit, offsets) => {
            const stream = Uint8Array.from(concat(msgs.map((m) => codec.encodeFrame(m))));
            const index = at % stream.length;
            stream[index] = (stream[index] as number) ^ (1 << bit);
            const { accepted, error } = receive(cut(stream, offsets), true);
            // Only the frames before the damaged one are accepted, unchanged.
            expect(accepted.length).toBeLessThan(msgs.length);
            expect(plain(accepted)).toEqual(plain(msgs.slice(0, accepted.length)));
            expect(error).toBeDefined();
          },
        ),
        params,
      );
    },
    timeout,
  );

  it('keeps the header size the properties assume', () => {
    expect(FRAME_HEADER_BYTES).toBe(8);
  });
});
