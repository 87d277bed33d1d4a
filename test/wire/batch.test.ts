import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32c } from '../../src/lib/crc32c.js';
import type { ErrorCode } from '../../src/lib/errors.js';
import { codeOf } from '../harness/errors.js';
import { limits } from '../../src/lib/limits.js';
import {
  BATCH_RECORD_HEADER_BYTES,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  batchFrameBytesMax,
  putFrameHeader,
  putRecordHeader,
  splitBatch,
} from '../../src/wire/frame.js';

/** The payload of a batch frame holding `messages`. */
function batchPayload(messages: readonly Uint8Array[]): Uint8Array {
  const total = messages.reduce((n, m) => n + BATCH_RECORD_HEADER_BYTES + m.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const m of messages) {
    putRecordHeader(out, at, m.length);
    out.set(m, at + BATCH_RECORD_HEADER_BYTES);
    at += BATCH_RECORD_HEADER_BYTES + m.length;
  }
  return out;
}

/** A whole batch frame: header (length, CRC32C) and payload. */
function batchFrame(messages: readonly Uint8Array[]): Uint8Array {
  const payload = batchPayload(messages);
  const frame = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  putFrameHeader(frame, 0, payload.length, crc32c(payload));
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
}

/** The messages splitBatch finds in `bytes[start..end)`. */
function split(
  bytes: Uint8Array,
  start = 0,
  end = bytes.length,
  messageBytesMax = limits.frameBytesMax,
  messagesMax?: number,
): number[][] {
  const ranges: number[] = [];
  const n = splitBatch(bytes, start, end, messageBytesMax, ranges, messagesMax);
  return Array.from({ length: n }, (_, i) => [
    ...bytes.subarray(ranges[2 * i] as number, ranges[2 * i + 1] as number),
  ]);
}

const three = [new Uint8Array([1, 2, 3]), new Uint8Array([4]), new Uint8Array(300).fill(9)];

describe('splitBatch', () => {
  it('finds every message of a batch, in order, at any offset of a larger buffer', () => {
    const payload = batchPayload(three);
    expect(split(payload)).toEqual(three.map((m) => [...m]));
    const outer = new Uint8Array(payload.length + 10);
    outer.set(payload, 7);
    expect(split(outer, 7, 7 + payload.length)).toEqual(three.map((m) => [...m]));
  });

  it('refuses a batch cut at every byte that is not a record boundary, and finds the whole records before a boundary', () => {
    const payload = batchPayload(three);
    const boundaries = new Map<number, number>();
    let at = 0;
    three.forEach((m, i) => {
      boundaries.set(at, i);
      at += BATCH_RECORD_HEADER_BYTES + m.length;
    });
    for (let cut = 1; cut < payload.length; cut++) {
      const whole = boundaries.get(cut);
      if (whole === undefined)
        expect(
          codeOf(() => split(payload, 0, cut)),
          `cut ${cut}`,
        ).toBe('DECODE_ERROR');
      else expect(split(payload, 0, cut)).toEqual(three.slice(0, whole).map((m) => [...m]));
    }
  });

  it('refuses every wrong length in a record prefix unless it ends exactly at the end of the payload', () => {
    const payload = batchPayload(three);
    const second = BATCH_RECORD_HEADER_BYTES + 3; // where the second record's prefix starts
    for (let length = 0; length < payload.length; length++) {
      const bad = Uint8Array.from(payload);
      putRecordHeader(bad, second, length);
      const code = codeOf(() => split(bad));
      // 1 is the true length; the longest swallows the third record and ends the payload.
      if (length === 1) expect(code).toBe('no error');
      else if (length === payload.length - second - BATCH_RECORD_HEADER_BYTES)
        expect(split(bad)).toHaveLength(2);
      else expect(['DECODE_ERROR', 'FRAME_TOO_LARGE'], `length ${length}`).toContain(code);
    }
  });

  it('refuses an empty message, a message over the limit, too many messages, and several over batchFrameBytesMax', () => {
    expect(codeOf(() => split(batchPayload([new Uint8Array([1]), new Uint8Array(0)])))).toBe(
      'DECODE_ERROR',
    );
    expect(codeOf(() => split(batchPayload([new Uint8Array(101)]), 0, undefined, 100))).toBe(
      'FRAME_TOO_LARGE',
    );
    expect(split(batchPayload([new Uint8Array(100)]), 0, undefined, 100)).toHaveLength(1);
    const many = Array.from({ length: 5 }, () => new Uint8Array([7]));
    expect(codeOf(() => split(batchPayload(many), 0, undefined, 100, 4))).toBe('DECODE_ERROR');
    expect(split(batchPayload(many), 0, undefined, 100, 5)).toHaveLength(5);
    // One message may be bigger than batchFrameBytesMax (up to frameBytesMax); two may not.
    const big = new Uint8Array(limits.batchFrameBytesMax);
    expect(split(batchPayload([big]))).toHaveLength(1);
    expect(codeOf(() => split(batchPayload([big, new Uint8Array([1])])))).toBe('DECODE_ERROR');
    expect(batchFrameBytesMax(1024)).toBe(limits.batchFrameBytesMax + BATCH_RECORD_HEADER_BYTES);
    expect(batchFrameBytesMax(limits.frameBytesMax)).toBe(
      limits.frameBytesMax + BATCH_RECORD_HEADER_BYTES,
    );
  });

  it('splits what it was given back into the same messages, and throws only typed errors on any bytes', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { minLength: 1, maxLength: 20 }),
        (messages) => {
          expect(split(batchPayload(messages))).toEqual(messages.map((m) => [...m]));
        },
      ),
      { numRuns: Number(process.env.FC_NUM_RUNS ?? 1000) },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        expect(['no error', 'DECODE_ERROR', 'FRAME_TOO_LARGE']).toContain(
          codeOf(() => split(bytes, 0, bytes.length, 1000)),
        );
      }),
      { numRuns: Number(process.env.FC_NUM_RUNS ?? 1000) },
    );
  });
});

describe('batch frames through the FrameDecoder', () => {
  const frame = batchFrame(three);

  it('deliver nothing from a batch frame cut at any byte, and the end of the stream is then a DECODE_ERROR', () => {
    for (let cut = 1; cut < frame.length; cut++) {
      const dec = new FrameDecoder({ frameBytesMax: batchFrameBytesMax(1024) });
      dec.push(frame.subarray(0, cut));
      expect(dec.next(), `cut ${cut}`).toBeUndefined();
      expect(codeOf(() => dec.finish())).toBe('DECODE_ERROR');
    }
  });

  it('refuse a batch frame with any one bit flipped before splitting it', () => {
    for (let bit = 0; bit < frame.length * 8; bit++) {
      const bad = Uint8Array.from(frame);
      bad[bit >> 3] = (bad[bit >> 3] as number) ^ (1 << (bit & 7));
      const dec = new FrameDecoder({ frameBytesMax: batchFrameBytesMax(1024) });
      let code: ErrorCode | 'no error' = codeOf(() => {
        dec.push(bad);
        expect(dec.next()).toBeUndefined();
      });
      // A flipped length bit that announces more bytes leaves the frame incomplete.
      if (code === 'no error') code = codeOf(() => dec.finish());
      expect(['CHECKSUM_MISMATCH', 'FRAME_TOO_LARGE', 'DECODE_ERROR'], `bit ${bit}`).toContain(
        code,
      );
    }
  });

  it('pass a whole batch frame split across chunks at every byte', () => {
    for (let cut = 0; cut <= frame.length; cut++) {
      const dec = new FrameDecoder({ frameBytesMax: batchFrameBytesMax(1024) });
      dec.push(frame.subarray(0, cut));
      dec.push(frame.subarray(cut));
      const payload = dec.next();
      expect(payload).toBeDefined();
      expect(split(payload as Uint8Array)).toEqual(three.map((m) => [...m]));
    }
  });
});

/** The messages nextBatchInPlace reads from `chunks` pushed in order (null: it wants more bytes). */
function readBatch(
  chunks: readonly Uint8Array[],
  messageBytesMax = limits.frameBytesMax,
  messagesMax?: number,
): number[][] | null {
  const dec = new FrameDecoder({ frameBytesMax: batchFrameBytesMax(messageBytesMax) });
  for (const c of chunks) dec.push(c);
  const sources: Uint8Array[] = [];
  const bounds: number[] = [];
  const n = dec.nextBatchInPlace(messageBytesMax, sources, bounds, messagesMax);
  if (n < 0) return null;
  return Array.from({ length: n }, (_, i) => [
    ...(sources[i] as Uint8Array).subarray(bounds[2 * i] as number, bounds[2 * i + 1] as number),
  ]);
}

describe('FrameDecoder.nextBatchInPlace', () => {
  const frame = batchFrame(three);
  const expected = three.map((m) => [...m]);

  it('reads a batch frame cut into two chunks at every byte, and into three at every pair of bytes', () => {
    for (let cut = 0; cut <= frame.length; cut++) {
      expect(readBatch([frame.subarray(0, cut), frame.subarray(cut)]), `cut ${cut}`).toEqual(
        expected,
      );
    }
    for (let a = 1; a < frame.length; a += 3) {
      for (let b = a; b < frame.length; b += 5) {
        expect(
          readBatch([frame.subarray(0, a), frame.subarray(a, b), frame.subarray(b)]),
          `cuts ${a} ${b}`,
        ).toEqual(expected);
      }
    }
  });

  it('takes a message where it lies unless a chunk boundary cuts it', () => {
    const first = frame.subarray(0, 20); // header, record 1 (3 bytes), part of record 2's prefix
    const rest = frame.subarray(20);
    const dec = new FrameDecoder();
    dec.push(first);
    dec.push(rest);
    const sources: Uint8Array[] = [];
    const bounds: number[] = [];
    expect(dec.nextBatchInPlace(limits.frameBytesMax, sources, bounds)).toBe(3);
    expect(sources[0]).toBe(first);
    expect(sources[2]).toBe(rest);
    expect(dec.bufferedBytes).toBe(0);
  });

  it('wants more bytes for a batch frame cut at any byte, and the end of the stream is then a DECODE_ERROR', () => {
    for (let cut = 0; cut < frame.length; cut++) {
      const dec = new FrameDecoder();
      dec.push(frame.subarray(0, cut));
      expect(dec.nextBatchInPlace(limits.frameBytesMax, [], []), `cut ${cut}`).toBe(-1);
      if (cut > 0) expect(codeOf(() => dec.finish())).toBe('DECODE_ERROR');
    }
  });

  it('refuses a batch frame with any one bit flipped, in one chunk or cut in two', () => {
    for (let bit = 0; bit < frame.length * 8; bit++) {
      const bad = Uint8Array.from(frame);
      bad[bit >> 3] = (bad[bit >> 3] as number) ^ (1 << (bit & 7));
      for (const chunks of [[bad], [bad.subarray(0, 13), bad.subarray(13)]]) {
        const dec = new FrameDecoder();
        let code = codeOf(() => {
          for (const c of chunks) dec.push(c);
          expect(dec.nextBatchInPlace(limits.frameBytesMax, [], [])).toBe(-1);
        });
        if (code === 'no error') code = codeOf(() => dec.finish());
        expect(['CHECKSUM_MISMATCH', 'FRAME_TOO_LARGE', 'DECODE_ERROR'], `bit ${bit}`).toContain(
          code,
        );
      }
    }
  });

  it('refuses malformed records with a valid checksum as splitBatch does, split or not, and stays dead', () => {
    const cases: [Uint8Array[], ErrorCode][] = [
      [[new Uint8Array([1]), new Uint8Array(0)], 'DECODE_ERROR'],
      [[new Uint8Array(101)], 'FRAME_TOO_LARGE'],
      [Array.from({ length: 5 }, () => new Uint8Array([7])), 'DECODE_ERROR'],
    ];
    for (const [messages, code] of cases) {
      const f = batchFrame(messages);
      for (const chunks of [[f], [f.subarray(0, 9), f.subarray(9)]]) {
        const dec = new FrameDecoder();
        for (const c of chunks) dec.push(c);
        expect(codeOf(() => dec.nextBatchInPlace(100, [], [], 4))).toBe(code);
        expect(codeOf(() => dec.nextBatchInPlace(100, [], [], 4))).toBe(code);
      }
    }
    // A payload whose last record is cut short, with a checksum over what is there.
    const payload = batchPayload(three).subarray(0, 20);
    const f = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
    putFrameHeader(f, 0, payload.length, crc32c(payload));
    f.set(payload, FRAME_HEADER_BYTES);
    expect(codeOf(() => readBatch([f]))).toBe('DECODE_ERROR');
    expect(codeOf(() => readBatch([f.subarray(0, 15), f.subarray(15)]))).toBe('DECODE_ERROR');
  });

  it('reads random batches pushed in random chunks, back to back, as sent', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.array(fc.uint8Array({ minLength: 1, maxLength: 200 }), { minLength: 0, maxLength: 8 }),
          { minLength: 1, maxLength: 4 },
        ),
        fc.array(fc.nat(), { maxLength: 6 }),
        (batches, cutSeeds) => {
          const stream = Buffer.concat(batches.map((b) => batchFrame(b)));
          const cuts = [...new Set(cutSeeds.map((c) => c % (stream.length + 1)))].sort(
            (x, y) => x - y,
          );
          const dec = new FrameDecoder();
          let at = 0;
          for (const c of [...cuts, stream.length]) {
            dec.push(stream.subarray(at, c));
            at = c;
          }
          const got: number[][][] = [];
          for (;;) {
            const sources: Uint8Array[] = [];
            const bounds: number[] = [];
            const n = dec.nextBatchInPlace(limits.frameBytesMax, sources, bounds);
            if (n < 0) break;
            got.push(
              Array.from({ length: n }, (_, i) => [
                ...(sources[i] as Uint8Array).subarray(bounds[2 * i], bounds[2 * i + 1]),
              ]),
            );
          }
          expect(got).toEqual(batches.map((b) => b.map((m) => [...m])));
          expect(dec.bufferedBytes).toBe(0);
        },
      ),
      { numRuns: Number(process.env.FC_NUM_RUNS ?? 1000) },
    );
  });
});
