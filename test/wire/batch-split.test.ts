/**
 * FrameDecoder.nextBatchInPlace against splitBatch on hostile batch frames
 * arriving in socket reads of any size, read as the TCP transport reads
 * them (after every push, into the same sources and bounds arrays, the used
 * slots reset after each frame): well-formed batches of many short records
 * (the split loop over one read), records whose announced length is wrong
 * (0, one off, over the message limit, past the frame), payloads cut inside
 * a prefix or a message, more records than allowed, keepalives, all with a
 * valid CRC32C. The decoder delivers each frame's messages exactly as
 * splitBatch finds them in the whole payload, each once, and at the first
 * bad frame the same error code, then nothing more.
 * FC_NUM_RUNS (default 1,000) sets the cases.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { crc32c } from '../../src/lib/crc32c.js';
import { isCohortError } from '../../src/lib/errors.js';
import {
  BATCH_RECORD_HEADER_BYTES,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  putFrameHeader,
  putRecordHeader,
  splitBatch,
} from '../../src/wire/frame.js';

const numRuns = Number(process.env.FC_NUM_RUNS ?? 1_000);
/** Small limits, so records over them and batches of too many come up often. */
const messageBytesMax = 24;

/** One frame's payload: records of `lengths` (contents numbered), then the damage, if any. */
interface FrameSpec {
  readonly lengths: readonly number[];
  /** Which record's prefix announces `announced` instead of its length (-1: none). */
  readonly wrong: number;
  readonly announced: number;
  /** Bytes cut off the end of the payload (0: none). */
  readonly cut: number;
}

let serial = 0;

function payloadOf(spec: FrameSpec): Uint8Array {
  const total = spec.lengths.reduce((n, l) => n + BATCH_RECORD_HEADER_BYTES + l, 0);
  const payload = new Uint8Array(total);
  let at = 0;
  spec.lengths.forEach((length, i) => {
    putRecordHeader(payload, at, i === spec.wrong ? spec.announced : length);
    for (let j = 0; j < length; j++) payload[at + BATCH_RECORD_HEADER_BYTES + j] = serial++ & 0xff;
    at += BATCH_RECORD_HEADER_BYTES + length;
  });
  return payload.subarray(0, Math.max(0, total - spec.cut));
}

function frameOf(payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  putFrameHeader(frame, 0, payload.length, crc32c(payload));
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
}

type Result = number[][] | { code: string };

function codeOf(err: unknown): { code: string } {
  if (!isCohortError(err)) throw err; // anything else is a crash: fails the property
  return { code: err.code };
}

/** What splitBatch makes of a whole payload. */
function reference(payload: Uint8Array, messagesMax: number): Result {
  const out: number[] = [];
  try {
    const n = splitBatch(payload, 0, payload.length, messageBytesMax, out, messagesMax);
    return Array.from({ length: n }, (_, i) => [...payload.subarray(out[2 * i], out[2 * i + 1])]);
  } catch (err) {
    return codeOf(err);
  }
}

const spec: fc.Arbitrary<FrameSpec> = fc
  .tuple(
    fc.oneof(
      fc.array(fc.integer({ min: 1, max: 6 }), { maxLength: 40 }), // many short records
      fc.array(fc.integer({ min: 1, max: messageBytesMax }), { maxLength: 8 }),
    ),
    fc.oneof({ weight: 3, arbitrary: fc.constant(-1) }, { weight: 1, arbitrary: fc.nat(40) }),
    fc.oneof(
      fc.constantFrom(0, 1, messageBytesMax, messageBytesMax + 1, 0xffffffff),
      fc.integer({ min: 0, max: 60 }),
    ),
    fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat(9) }),
  )
  .map(([lengths, wrong, announced, cut]) => ({
    lengths,
    wrong: wrong < lengths.length ? wrong : -1,
    announced,
    cut,
  }));

describe('FrameDecoder.nextBatchInPlace on hostile batch frames in reads of any size', () => {
  it('delivers what splitBatch finds in each whole payload, each message once, and stops at the first bad frame with its error', () => {
    let bad = 0;
    fc.assert(
      fc.property(
        fc.array(spec, { minLength: 1, maxLength: 5 }),
        fc.integer({ min: 1, max: 45 }),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 30 }),
        (specs, messagesMax, readSizes) => {
          const payloads = specs.map(payloadOf);
          // The expected stream: each frame's messages, up to the first error.
          const want: Result[] = [];
          for (const p of payloads) {
            const r = reference(p, messagesMax);
            want.push(r);
            if (!Array.isArray(r)) break;
          }
          if (!Array.isArray(want[want.length - 1])) bad++;
          const stream = Buffer.concat(payloads.map(frameOf));
          // Reads of the given sizes (cycled), each pushed then drained, as the transport does.
          const dec = new FrameDecoder();
          const sources: Uint8Array[] = [];
          const bounds: number[] = [];
          const none = new Uint8Array(0);
          const got: Result[] = [];
          let dead = false;
          for (let at = 0, k = 0; at < stream.length && !dead; k++) {
            const size = readSizes[k % readSizes.length] as number;
            // Its own copy, as a socket read is its own memory.
            dec.push(Uint8Array.from(stream.subarray(at, at + size)));
            at += size;
            for (;;) {
              let n: number;
              try {
                n = dec.nextBatchInPlace(messageBytesMax, sources, bounds, messagesMax);
              } catch (err) {
                got.push(codeOf(err));
                dead = true;
                break;
              }
              if (n < 0) break;
              const messages: number[][] = [];
              for (let i = 0; i < n; i++) {
                const source = sources[i] as Uint8Array;
                const from = bounds[2 * i] as number;
                const to = bounds[2 * i + 1] as number;
                expect(source).not.toBe(none); // a slot of this frame, not one left from before
                expect(0 <= from && from < to && to <= source.length).toBe(true);
                messages.push([...source.subarray(from, to)]);
              }
              got.push(messages);
              sources.fill(none, 0, n);
            }
          }
          expect(got).toEqual(want);
          if (!dead) expect(dec.bufferedBytes).toBe(0);
        },
      ),
      { numRuns },
    );
    // Not met by well-formed frames alone.
    expect(bad).toBeGreaterThan(numRuns / 10);
  });
});
