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
 * **Batch frames** (protocol version 3, agreed per connection in the
 * handshake, see handshake.ts): after the handshake every frame's payload is
 * a run of records, each `u32 big-endian message length | message`, so one
 * header and one CRC32C cover many messages. The records must fill the
 * payload exactly; a message is never empty (an empty payload is still a
 * keepalive); each is at most `frameBytesMax`; a frame holds at most
 * `limits.batchFrameMessagesMax` of them, and more than one only within
 * `limits.batchFrameBytesMax`. {@link FrameDecoder.nextBatchInPlace} (and
 * {@link splitBatch} for a payload in one buffer) checks all of this before
 * anything is decoded, and a receiver decodes every message of a frame
 * before it delivers any: a damaged or malformed batch is refused whole.
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

/** Bytes of a record's length prefix inside a batch frame. */
export const BATCH_RECORD_HEADER_BYTES = limits.batchRecordHeaderBytes;

/** The protocol version from which frames carry batches of messages. */
export const BATCH_FRAME_VERSION = 3;

/**
 * The largest batch frame payload a receiver whose single messages may be
 * `frameBytesMax` long accepts: a batch of several messages within
 * `batchFrameBytesMax`, or one maximal message with its prefix.
 */
export function batchFrameBytesMax(frameBytesMax: number): number {
  return Math.max(frameBytesMax, limits.batchFrameBytesMax) + BATCH_RECORD_HEADER_BYTES;
}

/** Writes a frame header (payload length, CRC32C of the payload) at `at` of `bytes`. */
export function putFrameHeader(
  bytes: Uint8Array,
  at: number,
  payloadBytes: number,
  checksum: number,
): void {
  writeU32(bytes, at, payloadBytes);
  writeU32(bytes, at + 4, checksum);
}

/** Writes the length prefix of a batch record at `at` of `bytes`. */
export function putRecordHeader(bytes: Uint8Array, at: number, messageBytes: number): void {
  writeU32(bytes, at, messageBytes);
}

/**
 * Splits the batch frame payload `bytes[start..end)` into its messages:
 * stores each message's start and end offsets in `out` (2 entries per
 * message, from index 0) and returns how many there are. Throws a definite
 * CohortError and stores nothing useful if the records do not fill the
 * payload exactly (`DECODE_ERROR`: a cut prefix or message, an empty
 * message, more than `messagesMax` messages, or several messages over
 * `limits.batchFrameBytesMax`) or a message is over `messageBytesMax`
 * (`FRAME_TOO_LARGE`). The payload has passed its CRC32C already.
 */
export function splitBatch(
  bytes: Uint8Array,
  start: number,
  end: number,
  messageBytesMax: number,
  out: number[],
  messagesMax: number = limits.batchFrameMessagesMax,
): number {
  let at = start;
  let count = 0;
  while (at < end) {
    if (count >= messagesMax) {
      throw batchError(`a batch frame holds more than ${messagesMax} messages`, end - start);
    }
    if (end - at < BATCH_RECORD_HEADER_BYTES) {
      throw batchError(`a batch frame ends inside a record's length prefix`, end - start);
    }
    const length = readU32(bytes, at);
    const from = at + BATCH_RECORD_HEADER_BYTES;
    checkRecord(length, messageBytesMax, end - from, end - start);
    out[2 * count] = from;
    out[2 * count + 1] = from + length;
    count++;
    at = from + length;
  }
  checkBatchBytes(count, end - start);
  return count;
}

/** Checks a record's announced message length against the limit and the bytes left in its frame. */
function checkRecord(
  length: number,
  messageBytesMax: number,
  left: number,
  frameBytes: number,
): void {
  if (length === 0) throw batchError('a batch frame holds an empty message', frameBytes);
  if (length > messageBytesMax) {
    throw new CohortError(
      'FRAME_TOO_LARGE',
      `a message of ${length} bytes in a batch frame is over frameBytesMax ${messageBytesMax}`,
      { details: { bytes: length, limit: messageBytesMax } },
    );
  }
  if (length > left) {
    throw batchError(
      `a batch frame ends inside a message (${length} bytes announced, ${left} left)`,
      frameBytes,
    );
  }
}

/** Several messages in one frame must fit batchFrameBytesMax. */
function checkBatchBytes(count: number, frameBytes: number): void {
  if (count > 1 && frameBytes > limits.batchFrameBytesMax) {
    throw batchError(
      `a batch frame of ${count} messages holds ${frameBytes} bytes, over batchFrameBytesMax ${limits.batchFrameBytesMax}`,
      frameBytes,
    );
  }
}

function batchError(what: string, bytes: number): CohortError {
  return new CohortError('DECODE_ERROR', what, { details: { bytes } });
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
  /** The checksum of the frame whose header {@link header} read last. */
  private headerChecksum = 0;

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
   * Reads the next batch frame (protocol version 3, see the file comment)
   * without copying it: returns -1 if more bytes are needed, 0 for an empty
   * frame (a keepalive), else the number n of messages, message i being
   * `sources[i][bounds[2i]..bounds[2i+1])`. A message lies where it arrived
   * in a pushed chunk; only one cut by a chunk boundary is gathered into a
   * fresh buffer (so a frame spanning socket reads costs no copy of the
   * rest). Checks the frame's length and CRC32C, then its records as
   * {@link splitBatch} does, and throws the same errors (and stays dead).
   * The caller should drop its references to `sources` once decoded.
   */
  nextBatchInPlace(
    messageBytesMax: number,
    sources: Uint8Array[],
    bounds: number[],
    messagesMax: number = limits.batchFrameMessagesMax,
  ): number {
    if (this.failure !== undefined) throw this.failure;
    if (this.buffered < 4) return -1;
    try {
      return this.readBatch(messageBytesMax, sources, bounds, messagesMax);
    } catch (err) {
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

  /**
   * Reads the next frame's header, refusing an oversized length as soon as
   * its 4 bytes are buffered: the payload length, with the checksum in
   * {@link headerChecksum}, or -1 until the whole frame is buffered.
   */
  private header(): number {
    const head = this.chunks[0] as Uint8Array;
    const o = this.offset;
    let length: number;
    if (head.length - o >= FRAME_HEADER_BYTES) {
      // The usual case: the whole header in the first chunk.
      length = readU32(head, o);
      this.checkLength(length);
      this.headerChecksum = readU32(head, o + 4);
    } else {
      length = this.peekU32(0);
      this.checkLength(length);
      if (this.buffered < FRAME_HEADER_BYTES) return -1;
      this.headerChecksum = this.peekU32(4);
    }
    return this.buffered < FRAME_HEADER_BYTES + length ? -1 : length;
  }

  private read(): boolean {
    const length = this.header();
    if (length < 0) return false;
    const checksum = this.headerChecksum;
    const head = this.chunks[0] as Uint8Array;
    const start = this.offset + FRAME_HEADER_BYTES;
    if (head.length >= start + length) {
      // Fast path: the whole frame is in the first chunk.
      this.verify(head, start, start + length, checksum);
      this.consume(FRAME_HEADER_BYTES + length);
      this.framesOut++;
      this.frameSource = head;
      this.frameStart = start;
      this.frameEnd = start + length;
      return true;
    }
    // Slow path: the frame spans chunks; gather it into a fresh buffer.
    this.consume(FRAME_HEADER_BYTES);
    // Its own memory (not the shared pool), not zero-filled: every byte is written below.
    const payload = Buffer.allocUnsafeSlow(length);
    this.gather(payload, length);
    this.verify(payload, 0, length, checksum);
    this.framesOut++;
    this.frameSource = payload;
    this.frameStart = 0;
    this.frameEnd = length;
    return true;
  }

  private readBatch(
    messageBytesMax: number,
    sources: Uint8Array[],
    bounds: number[],
    messagesMax: number,
  ): number {
    const length = this.header();
    if (length < 0) return -1;
    const checksum = this.headerChecksum;
    const head = this.chunks[0] as Uint8Array;
    const start = this.offset + FRAME_HEADER_BYTES;
    if (head.length >= start + length) {
      // Fast path: the whole frame is in the first chunk.
      this.verify(head, start, start + length, checksum);
      const n = splitBatch(head, start, start + length, messageBytesMax, bounds, messagesMax);
      for (let i = 0; i < n; i++) sources[i] = head;
      this.consume(FRAME_HEADER_BYTES + length);
      this.framesOut++;
      return n;
    }
    // The frame spans chunks: check its CRC32C piece by piece, then take each
    // record where it lies, gathering only those a chunk boundary cuts.
    this.consume(FRAME_HEADER_BYTES);
    let crc = 0;
    for (let c = 0, p = this.offset, left = length; left > 0; c++, p = 0) {
      const chunk = this.chunks[c] as Uint8Array;
      const n = Math.min(left, chunk.length - p);
      crc = crc32cRange(chunk, p, p + n, crc);
      left -= n;
    }
    if (crc !== checksum) throw mismatch(checksum, crc, length);
    let left = length;
    let count = 0;
    while (left > 0) {
      if (count >= messagesMax) {
        throw batchError(`a batch frame holds more than ${messagesMax} messages`, length);
      }
      if (left < BATCH_RECORD_HEADER_BYTES) {
        throw batchError(`a batch frame ends inside a record's length prefix`, length);
      }
      let chunk = this.chunks[0] as Uint8Array;
      let at = this.offset;
      // The usual case, in locals: records inside this chunk with more bytes after them.
      const size = chunk.length;
      const first = at;
      while (size - at > BATCH_RECORD_HEADER_BYTES) {
        const bytes = readU32(chunk, at);
        checkRecord(bytes, messageBytesMax, left - BATCH_RECORD_HEADER_BYTES, length);
        const end = at + BATCH_RECORD_HEADER_BYTES + bytes;
        if (end >= size) break;
        sources[count] = chunk;
        bounds[2 * count] = at + BATCH_RECORD_HEADER_BYTES;
        bounds[2 * count + 1] = end;
        count++;
        left -= end - at;
        at = end;
        if (count >= messagesMax || left < BATCH_RECORD_HEADER_BYTES) break;
      }
      if (at !== first) {
        this.offset = at;
        this.buffered -= at - first;
        continue;
      }
      const inChunk = chunk.length - at;
      const bytes = inChunk >= BATCH_RECORD_HEADER_BYTES ? readU32(chunk, at) : this.peekU32(0);
      checkRecord(bytes, messageBytesMax, left - BATCH_RECORD_HEADER_BYTES, length);
      if (inChunk > BATCH_RECORD_HEADER_BYTES + bytes) {
        // The usual case: prefix and message inside this chunk, with more after them.
        sources[count] = chunk;
        bounds[2 * count] = at + BATCH_RECORD_HEADER_BYTES;
        bounds[2 * count + 1] = at + BATCH_RECORD_HEADER_BYTES + bytes;
        this.offset = at + BATCH_RECORD_HEADER_BYTES + bytes;
        this.buffered -= BATCH_RECORD_HEADER_BYTES + bytes;
        count++;
        left -= BATCH_RECORD_HEADER_BYTES + bytes;
        continue;
      }
      this.consume(BATCH_RECORD_HEADER_BYTES);
      chunk = this.chunks[0] as Uint8Array;
      at = this.offset;
      if (chunk.length - at >= bytes) {
        sources[count] = chunk;
        bounds[2 * count] = at;
        bounds[2 * count + 1] = at + bytes;
        this.consume(bytes);
      } else {
        // Its own memory for a large message, so its byte fields may stay views of it.
        const copy = bytes >= 1024 ? Buffer.allocUnsafeSlow(bytes) : Buffer.allocUnsafe(bytes);
        this.gather(copy, bytes);
        sources[count] = copy;
        bounds[2 * count] = 0;
        bounds[2 * count + 1] = bytes;
      }
      count++;
      left -= BATCH_RECORD_HEADER_BYTES + bytes;
    }
    checkBatchBytes(count, length);
    this.framesOut++;
    return count;
  }

  /** Copies the next `bytes` buffered bytes into `into` and consumes them. */
  private gather(into: Uint8Array, bytes: number): void {
    let filled = 0;
    while (filled < bytes) {
      const chunk = this.chunks[0] as Uint8Array;
      const take = Math.min(bytes - filled, chunk.length - this.offset);
      into.set(chunk.subarray(this.offset, this.offset + take), filled);
      filled += take;
      this.consume(take);
    }
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
    if (actual !== checksum) throw mismatch(checksum, actual, end - start);
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

/** The big-endian u32 at `bytes[at..at+4)` (frame and record lengths, MessagePack's 32-bit forms). */
export function readU32(bytes: Uint8Array, at: number): number {
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

function mismatch(expected: number, actual: number, bytes: number): CohortError {
  return new CohortError(
    'CHECKSUM_MISMATCH',
    `frame checksum mismatch: header says ${hex32(expected)}, payload has ${hex32(actual)}`,
    { details: { expected, actual, bytes } },
  );
}

function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}
