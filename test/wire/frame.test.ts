import { describe, expect, it } from 'vitest';
import { FRAME_HEADER_BYTES, FrameDecoder, encodeFrame } from '../../src/wire/frame.js';
import { codeOf } from '../harness/errors.js';
import { concatBytes } from '../harness/bytes.js';
import { crc32c } from '../../src/lib/crc32c.js';

function frames(...payloads: number[][]): Uint8Array {
  return concatBytes(payloads.map((p) => encodeFrame(new Uint8Array(p))));
}

function drain(dec: FrameDecoder): number[][] {
  const out: number[][] = [];
  for (let p = dec.next(); p !== undefined; p = dec.next()) out.push([...p]);
  return out;
}

describe('frames', () => {
  it('lays out a frame as u32 length, u32 CRC32C, payload (big-endian)', () => {
    const frame = encodeFrame(new Uint8Array([1, 2, 3]));
    const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    expect(FRAME_HEADER_BYTES).toBe(8);
    expect(view.getUint32(0)).toBe(3);
    expect(view.getUint32(4)).toBe(crc32c(new Uint8Array([1, 2, 3])));
    expect([...frame.subarray(8)]).toEqual([1, 2, 3]);
  });

  it('decodes many frames from one chunk', () => {
    const dec = new FrameDecoder();
    dec.push(frames([1], [], [2, 3], [4, 5, 6]));
    expect(drain(dec)).toEqual([[1], [], [2, 3], [4, 5, 6]]);
    expect(dec.frames).toBe(4);
    expect(dec.bufferedBytes).toBe(0);
  });

  it('decodes frames split at every possible point, byte by byte', () => {
    const stream = frames([1, 2, 3, 4, 5], [6], [7, 8]);
    for (let cut = 0; cut <= stream.length; cut++) {
      const dec = new FrameDecoder();
      dec.push(stream.subarray(0, cut));
      const first = drain(dec);
      dec.push(stream.subarray(cut));
      expect([...first, ...drain(dec)]).toEqual([[1, 2, 3, 4, 5], [6], [7, 8]]);
    }
    const dec = new FrameDecoder();
    const got: number[][] = [];
    for (const byte of stream) {
      dec.push(new Uint8Array([byte]));
      got.push(...drain(dec));
    }
    expect(got).toEqual([[1, 2, 3, 4, 5], [6], [7, 8]]);
  });

  it('refuses an oversized length from the first 4 bytes, before buffering the payload', () => {
    const dec = new FrameDecoder({ frameBytesMax: 100 });
    dec.push(new Uint8Array([0, 0, 0, 101]));
    expect(codeOf(() => dec.next())).toBe('FRAME_TOO_LARGE');
    expect(dec.bufferedBytes).toBe(0);
    const split = new FrameDecoder({ frameBytesMax: 100 });
    split.push(new Uint8Array([0xff, 0xff]));
    expect(split.next()).toBeUndefined();
    split.push(new Uint8Array([0xff, 0xff]));
    expect(codeOf(() => split.next())).toBe('FRAME_TOO_LARGE');
  });

  it('refuses to encode an oversized payload', () => {
    expect(codeOf(() => encodeFrame(new Uint8Array(11), 10))).toBe('FRAME_TOO_LARGE');
    expect(codeOf(() => encodeFrame(new Uint8Array(10), 10))).toBe('no error');
  });

  it('detects a bad checksum, then stays dead', () => {
    const stream = frames([1, 2, 3], [4]);
    stream[FRAME_HEADER_BYTES] = 9; // corrupt the first payload
    const dec = new FrameDecoder();
    dec.push(stream);
    expect(codeOf(() => dec.next())).toBe('CHECKSUM_MISMATCH');
    expect(codeOf(() => dec.next())).toBe('CHECKSUM_MISMATCH');
    expect(codeOf(() => dec.push(frames([5])))).toBe('CHECKSUM_MISMATCH');
    expect(dec.error?.code).toBe('CHECKSUM_MISMATCH');
  });

  it('detects a bad checksum in a frame spanning chunks', () => {
    const stream = frames([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    stream[stream.length - 1] = (stream[stream.length - 1] as number) ^ 1;
    const dec = new FrameDecoder();
    dec.push(stream.subarray(0, 10));
    expect(dec.next()).toBeUndefined();
    dec.push(stream.subarray(10));
    expect(codeOf(() => dec.next())).toBe('CHECKSUM_MISMATCH');
  });

  it('reports a truncated stream at its end', () => {
    const dec = new FrameDecoder();
    dec.push(frames([1, 2, 3]).subarray(0, 9));
    expect(dec.next()).toBeUndefined();
    expect(codeOf(() => dec.finish())).toBe('DECODE_ERROR');
    expect(codeOf(() => dec.next())).toBe('DECODE_ERROR');
    const clean = new FrameDecoder();
    clean.push(frames([1]));
    drain(clean);
    expect(codeOf(() => clean.finish())).toBe('no error');
    expect(codeOf(() => clean.next())).toBe('CLOSED');
  });

  it('returns payloads that stay valid after later pushes', () => {
    const stream = frames([1, 2, 3, 4], [5, 6, 7, 8]);
    const dec = new FrameDecoder();
    dec.push(stream.subarray(0, 10));
    dec.push(stream.subarray(10, 14));
    const first = dec.next();
    dec.push(stream.subarray(14));
    const second = dec.next();
    expect(first && [...first]).toEqual([1, 2, 3, 4]);
    expect(second && [...second]).toEqual([5, 6, 7, 8]);
  });
});
