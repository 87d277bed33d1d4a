/**
 * Frames: how messages are cut out of a byte stream. A frame is
 *
 * ```text
 * u32 big-endian payload length | u32 big-endian CRC32C(payload) | payload
 * ```
 *
 * CRC32C is the Castagnoli polynomial (the iSCSI digest of RFC 3720, also in
 * ext4): it detects every single-bit error and every burst up to 32 bits.
 * The length comes first so a reader can refuse an oversized frame
 * (`FRAME_TOO_LARGE`) as soon as it has read 4 bytes, before buffering any of
 * the payload. The checksum covers the payload only: a corrupted length is
 * caught either by the limit or by the checksum of the bytes it then covers.
 *
 * ```ts
 * const frame = encodeFrame(payload);            // header + payload, one buffer
 * const decoder = new FrameDecoder();
 * socket.on('data', (chunk) => {
 *   decoder.push(chunk);
 *   for (let p = decoder.next(); p !== undefined; p = decoder.next()) handle(p);
 * });                                            // next() throws a CohortError on bad input
 * ```
 */
import { CohortError, isCohortError } from '../lib/errors.js';
import { crc32cRange } from '../lib/crc32c.js';
import { limits } from '../lib/limits.js';

/** Bytes of a frame header: u32 length + u32 CRC32C. */
export const FRAME_HEADER_BYTES = limits.frameHeaderBytes;

/**
 * Writes the header of the frame whose payload sits at `frame[8..]`, in place.
 * The caller reserved the first 8 bytes (see the codec's `encodeFrame`), which
 * saves copying the payload. Throws FRAME_TOO_LARGE above `frameBytesMax`.
 */
export function writeFrameHeader(
  frame: Uint8Array,
  frameBytesMax: number = limits.frameBytesMax,
): void {
  const payloadBytes = frame.length - FRAME_HEADER_BYTES;
  if (payloadBytes > frameBytesMax) {
    throw new CohortError(
      'FRAME_TOO_LARGE',
      `frame payload of ${payloadBytes} bytes exceeds frameBytesMax ${frameBytesMax}`,
      { details: { bytes: payloadBytes, limit: frameBytesMax } },
    );
  }
  writeU32(frame, 0, payloadBytes);
  writeU32(frame, 4, crc32cRange(frame, FRAME_HEADER_BYTES, frame.length));
}

/** Copies `payload` into a new frame (header + payload). Throws FRAME_TOO_LARGE above the limit. */
export function encodeFrame(
  payload: Uint8Array,
  frameBytesMax: number = limits.frameBytesMax,
): Uint8Array {
  if (payload.length > frameBytesMax) {
    throw new CohortError(
      'FRAME_TOO_LARGE',
      `frame payload of ${payload.length} bytes exceeds frameBytesMax ${frameBytesMax}`,
      { details: { bytes: payload.length, limit: frameBytesMax } },
    );
  }
  const frame = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  frame.set(payload, FRAME_HEADER_BYTES);
  writeFrameHeader(frame, frameBytesMax);
  return frame;
}

/** The payload source of a decoder that has read no frame. */
const EMPTY = new Uint8Array(0);

/** Options of a {@link FrameDecoder}. */
export interface FrameDecoderOptions {
  /** Largest payload accepted; a bigger announced length is refused before buffering. */
  readonly frameBytesMax?: number;
}

/**
 * A streaming frame decoder for one connection. Feed it chunks with
 * {@link push} in arrival order and drain it with {@link next} after every
 * push. Handles frames split across chunks and many frames per chunk.
 *
 * Errors (all `CohortError`, definite): `FRAME_TOO_LARGE` (announced length
 * over the limit, detected from the first 4 bytes), `CHECKSUM_MISMATCH`.
 * A truncated stream is detected by the owner at end of stream with
 * {@link finish} (`DECODE_ERROR`). After any error the decoder is dead: every
 * later call throws the same error, so nothing after corrupt bytes is ever
 * delivered — the connection must be closed.
 *
 * Payloads returned by {@link next} are views into the pushed chunks (or into
 * a fresh buffer when a frame spans chunks); the decoder never writes into
 * memory it has handed out, so they stay valid. Decode them promptly: a view
 * keeps its whole chunk alive.
 */
export class FrameDecoder {
  private frameBytesMax: number;
  /** Unconsumed chunks in arrival order; the first is read from `offset`. */
  private chunks: Uint8Array[] = [];
  private offset = 0;
  /** Unconsumed bytes over all chunks. */
  private buffered = 0;
  private failure: CohortError | undefined;
  private framesOut = 0;

  constructor(options: FrameDecoderOptions = {}) {
    this.frameBytesMax = options.frameBytesMax ?? limits.frameBytesMax;
  }

  /**
   * Changes the largest payload accepted from now on. A connection starts
   * with the small handshake limit and raises it once the peer is known.
   */
  setFrameBytesMax(bytes: number): void {
    this.frameBytesMax = bytes;
  }

  /** Frames delivered so far. */
  get frames(): number {
    return this.framesOut;
  }

  /** Bytes received but not yet returned as a frame. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** The error that killed this decoder, if any. */
  get error(): CohortError | undefined {
    return this.failure;
  }

  /** Appends a chunk read from the stream. Throws the decoder's error if it is dead. */
  push(chunk: Uint8Array): void {
    if (this.failure !== undefined) throw this.failure;
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /**
   * After {@link nextInPlace} returned true: the payload of the frame it
   * read is `frameSource[frameStart..frameEnd)` (a pushed chunk, or a fresh
   * buffer for a frame that spanned chunks). Valid until the next call.
   */
  frameSource: Uint8Array = EMPTY;
  /** See {@link frameSource}. */
  frameStart = 0;
  /** See {@link frameSource}. */
  frameEnd = 0;

  /**
   * The next complete frame's payload, or `undefined` if more bytes are
   * needed. Throws a `CohortError` on bad input (and stays dead).
   */
  next(): Uint8Array | undefined {
    if (!this.nextInPlace()) return undefined;
    return this.frameSource.subarray(this.frameStart, this.frameEnd);
  }

  /**
   * Like {@link next}, without making a view: true if a whole frame was
   * read (its payload is then at {@link frameSource}), false if more bytes
   * are needed. Checks the same (length, checksum) and throws the same. A
   * receiver that decodes payloads in place (Codec.decodeRange) saves an
   * object per frame.
   */
  nextInPlace(): boolean {
    if (this.failure !== undefined) throw this.failure;
    if (this.buffered < 4) return false;
    try {
      return this.read();
    } catch (err) {
      // Only our own typed errors are expected here; anything else is a bug.
      if (!isCohortError(err)) throw err;
      this.fail(err);
      throw err;
    }
  }

  /**
   * Declares the end of the stream. Throws `DECODE_ERROR` if a partial frame
   * is left over (a truncated stream), and kills the decoder either way.
   */
  finish(): void {
    if (this.failure !== undefined) throw this.failure;
    const leftover = this.buffered;
    if (leftover > 0) {
      const err = new CohortError(
        'DECODE_ERROR',
        `stream truncated: ${leftover} bytes of an incomplete frame at end of stream`,
        { details: { bytes: leftover } },
      );
      this.fail(err);
      throw err;
    }
    this.fail(new CohortError('CLOSED', 'frame stream ended'));
  }

  private fail(err: CohortError): void {
    this.failure = err;
    this.frameSource = EMPTY;
    this.frameStart = 0;
    this.frameEnd = 0;
    this.chunks = [];
    this.buffered = 0;
    this.offset = 0;
  }

  private read(): boolean {
    const head = this.chunks[0] as Uint8Array;
    const avail = head.length - this.offset;
    // Fast path: the whole header is in the first chunk.
    let length: number;
    let checksum: number;
    if (avail >= FRAME_HEADER_BYTES) {
      const o = this.offset;
      length = readU32(head, o);
      this.checkLength(length);
      checksum = readU32(head, o + 4);
      if (avail >= FRAME_HEADER_BYTES + length) {
        const start = o + FRAME_HEADER_BYTES;
        this.verify(head, start, start + length, checksum);
        this.consume(FRAME_HEADER_BYTES + length);
        this.framesOut++;
        this.frameSource = head;
        this.frameStart = start;
        this.frameEnd = start + length;
        return true;
      }
    } else {
      length = this.peekU32(0);
      this.checkLength(length);
      if (this.buffered < FRAME_HEADER_BYTES) return false;
      checksum = this.peekU32(4);
    }
    if (this.buffered < FRAME_HEADER_BYTES + length) return false;
    // Slow path: the frame spans chunks; gather it into a fresh buffer.
    this.consume(FRAME_HEADER_BYTES);
    // Its own memory (not the shared pool), not zero-filled: every byte is written below.
    const payload = Buffer.allocUnsafeSlow(length);
    let filled = 0;
    while (filled < length) {
      const chunk = this.chunks[0] as Uint8Array;
      const take = Math.min(length - filled, chunk.length - this.offset);
      payload.set(chunk.subarray(this.offset, this.offset + take), filled);
      filled += take;
      this.consume(take);
    }
    this.verify(payload, 0, length, checksum);
    this.framesOut++;
    this.frameSource = payload;
    this.frameStart = 0;
    this.frameEnd = length;
    return true;
  }

  private checkLength(length: number): void {
    if (length > this.frameBytesMax) {
      throw new CohortError(
        'FRAME_TOO_LARGE',
        `peer announced a frame of ${length} bytes, over frameBytesMax ${this.frameBytesMax}`,
        { details: { bytes: length, limit: this.frameBytesMax } },
      );
    }
  }

  private verify(bytes: Uint8Array, start: number, end: number, checksum: number): void {
    const actual = crc32cRange(bytes, start, end);
    if (actual !== checksum) {
      throw new CohortError(
        'CHECKSUM_MISMATCH',
        `frame checksum mismatch: header says ${hex32(checksum)}, payload has ${hex32(actual)}`,
        { details: { expected: checksum, actual, bytes: end - start } },
      );
    }
  }

  /** Reads a u32 at `at` bytes past the read position, across chunk boundaries. */
  private peekU32(at: number): number {
    let value = 0;
    let chunkIndex = 0;
    let pos = this.offset + at;
    for (let i = 0; i < 4; i++) {
      let chunk = this.chunks[chunkIndex] as Uint8Array;
      while (pos >= chunk.length) {
        pos -= chunk.length;
        chunkIndex++;
        chunk = this.chunks[chunkIndex] as Uint8Array;
      }
      value = value * 256 + (chunk[pos] as number);
      pos++;
    }
    return value;
  }

  /** Drops `bytes` from the front of the buffered stream. */
  private consume(bytes: number): void {
    this.buffered -= bytes;
    let left = bytes;
    while (left > 0) {
      const chunk = this.chunks[0] as Uint8Array;
      const avail = chunk.length - this.offset;
      if (left < avail) {
        this.offset += left;
        return;
      }
      left -= avail;
      this.chunks.shift();
      this.offset = 0;
    }
  }
}

function readU32(bytes: Uint8Array, at: number): number {
  return (
    (bytes[at] as number) * 0x1000000 +
    (((bytes[at + 1] as number) << 16) |
      ((bytes[at + 2] as number) << 8) |
      (bytes[at + 3] as number))
  );
}

function writeU32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value >>> 24;
  bytes[at + 1] = (value >>> 16) & 0xff;
  bytes[at + 2] = (value >>> 8) & 0xff;
  bytes[at + 3] = value & 0xff;
}

function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}
