/**
 * A bounded FIFO of encoded frames for one peer. Full means a definite
 * OVERLOADED for the sender (DESIGN.md, Limits: a full queue answers instead
 * of growing).
 *
 * ```ts
 * const q = new FrameQueue('n2', { peerQueueMessagesMax: 2, peerQueueBytesMax: 1024 });
 * q.offer(frame);                       // throws CohortError OVERLOADED when full
 * q.offerRecord(slab, at, end);         // a batch record written into `slab`: no object per message
 * const next = q.shift();
 * ```
 *
 * Internally the queue holds *runs*: a stretch `bytes[start..end)` of one
 * byte array holding one or more items back to back. `offer` adds a run of
 * one item; `offerRecord` adds a batch record (`u32 big-endian length |
 * message`, wire/frame.ts) and extends the last run when the record lies
 * right after it in the same memory, which is how the TCP transport's
 * records are written into its slabs: a sender queues thousands of
 * messages a turn without one object per message, and {@link takeRecords}
 * hands the writer whole stretches of them. A run of several items is
 * always one of records, so it can be cut between them by their length
 * prefixes.
 */
import { CohortError } from '../lib/errors.js';
import { readU32 } from '../wire/frame.js';
import type { TransportLimits } from './transport.js';

const EMPTY = new Uint8Array(0);

/** A FIFO of frames bounded by count and bytes. O(1) amortised offer and shift. */
export class FrameQueue {
  /** Run i is `runBytes[i][runStart[i]..runEnd[i])`, holding `runCount[i]` items. */
  private runBytes: Uint8Array[] = [];
  private runStart: number[] = [];
  private runEnd: number[] = [];
  private runCount: number[] = [];
  private head = 0;
  private items = 0;
  private totalBytes = 0;

  /** What the last {@link takeRecords} took: `takenBytes[takenStart..takenEnd)`. */
  takenBytes: Uint8Array = EMPTY;
  /** See {@link takenBytes}. */
  takenStart = 0;
  /** See {@link takenBytes}. */
  takenEnd = 0;

  constructor(
    private readonly peer: string,
    private readonly limits: Pick<TransportLimits, 'peerQueueMessagesMax' | 'peerQueueBytesMax'>,
  ) {}

  /** Frames (messages) queued. */
  get length(): number {
    return this.items;
  }

  /** Bytes queued. */
  get bytes(): number {
    return this.totalBytes;
  }

  /** Appends `frame`, or throws a definite OVERLOADED if that would exceed a bound. */
  offer(frame: Uint8Array): void {
    this.admit(frame.length);
    this.runBytes.push(frame);
    this.runStart.push(0);
    this.runEnd.push(frame.length);
    this.runCount.push(1);
    this.items++;
    this.totalBytes += frame.length;
  }

  /**
   * Appends the batch record `bytes[start..end)` (a u32 big-endian length
   * prefix, then that many bytes), merged into the last run when it
   * continues it; throws a definite OVERLOADED if that would exceed a bound.
   * The caller must not write into those bytes while they are queued.
   */
  offerRecord(bytes: Uint8Array, start: number, end: number): void {
    this.admit(end - start);
    const last = this.runBytes.length - 1;
    if (
      last >= this.head &&
      this.runBytes[last] === bytes &&
      this.runEnd[last] === start &&
      // Only runs of records are extended (a lone offer()ed frame has no prefix).
      this.isRecordRun(last)
    ) {
      this.runEnd[last] = end;
      this.runCount[last] = Math.abs(this.runCount[last] as number) + 1;
    } else {
      this.runBytes.push(bytes);
      this.runStart.push(start);
      this.runEnd.push(end);
      this.runCount.push(-1); // -1: one record (a run of records has a count > 1)
    }
    this.items++;
    this.totalBytes += end - start;
  }

  /** True if run i holds records (offerRecord), not an offer()ed frame. */
  private isRecordRun(i: number): boolean {
    const c = this.runCount[i] as number;
    return c < 0 || c > 1;
  }

  private admit(bytes: number): void {
    const count = this.items;
    if (
      count >= this.limits.peerQueueMessagesMax ||
      this.totalBytes + bytes > this.limits.peerQueueBytesMax
    ) {
      throw new CohortError(
        'OVERLOADED',
        `send queue to ${this.peer} is full (${count} messages, ${this.totalBytes} bytes)`,
        {
          details: {
            peer: this.peer,
            messages: count,
            bytes: this.totalBytes,
            messagesMax: this.limits.peerQueueMessagesMax,
            bytesMax: this.limits.peerQueueBytesMax,
          },
        },
      );
    }
  }

  /**
   * Takes whole records from the front of the oldest run: the first one
   * always (if `first`), then as many as keep the bytes taken within
   * `bytesMax` and the records within `recordsMax`. Sets
   * {@link takenBytes}/{@link takenStart}/{@link takenEnd} to where they lie
   * (back to back) and returns how many were taken (0: the queue is empty or
   * the first record does not fit). Records only: the queue must hold
   * what offerRecord (or offer, for single records) queued.
   */
  takeRecords(bytesMax: number, recordsMax: number, first: boolean): number {
    const h = this.head;
    if (h >= this.runBytes.length || recordsMax <= 0) return 0;
    const bytes = this.runBytes[h] as Uint8Array;
    const start = this.runStart[h] as number;
    const end = this.runEnd[h] as number;
    const count = Math.abs(this.runCount[h] as number);
    let taken: number;
    let to: number;
    if (count <= recordsMax && (end - start <= bytesMax || (first && count === 1))) {
      taken = count;
      to = end;
    } else {
      // Cut the run between records, by their length prefixes.
      taken = 0;
      to = start;
      while (taken < count && taken < recordsMax) {
        const next = to + 4 + readU32(bytes, to);
        if (next - start > bytesMax && !(first && taken === 0)) break;
        to = next;
        taken++;
      }
      if (taken === 0) return 0;
    }
    this.takenBytes = bytes;
    this.takenStart = start;
    this.takenEnd = to;
    this.consume(h, taken, to);
    return taken;
  }

  /** Drops the first `n` items (ending at `to`) of the oldest run `h`. */
  private consume(h: number, n: number, to: number): void {
    const count = Math.abs(this.runCount[h] as number);
    this.items -= n;
    this.totalBytes -= to - (this.runStart[h] as number);
    if (n < count) {
      this.runStart[h] = to;
      const left = count - n;
      this.runCount[h] = left === 1 ? -1 : left;
      return;
    }
    this.runBytes[h] = EMPTY;
    this.head++;
    if (this.head === this.runBytes.length) this.reset();
    else if (this.head >= 1024 && this.head * 2 >= this.runBytes.length) {
      this.runBytes = this.runBytes.slice(this.head);
      this.runStart = this.runStart.slice(this.head);
      this.runEnd = this.runEnd.slice(this.head);
      this.runCount = this.runCount.slice(this.head);
      this.head = 0;
    }
  }

  /** The length of the first item of run i (the whole run when it holds one). */
  private firstItemEnd(i: number): number {
    const count = this.runCount[i] as number;
    const start = this.runStart[i] as number;
    if (count === 1 || count === -1) return this.runEnd[i] as number;
    return start + 4 + readU32(this.runBytes[i] as Uint8Array, start);
  }

  /** The oldest frame, without removing it. */
  peek(): Uint8Array | undefined {
    return this.peekAt(0);
  }

  /** The frame `i` places behind the oldest (0 is the oldest), without removing it. O(i). */
  peekAt(i: number): Uint8Array | undefined {
    let left = i;
    for (let r = this.head; r < this.runBytes.length; r++) {
      const count = Math.abs(this.runCount[r] as number);
      if (left >= count) {
        left -= count;
        continue;
      }
      const bytes = this.runBytes[r] as Uint8Array;
      let at = this.runStart[r] as number;
      if (count === 1) return view(bytes, at, this.runEnd[r] as number);
      for (; left > 0; left--) at += 4 + readU32(bytes, at);
      return view(bytes, at, at + 4 + readU32(bytes, at));
    }
    return undefined;
  }

  /** Removes and returns the oldest frame. */
  shift(): Uint8Array | undefined {
    const h = this.head;
    if (h >= this.runBytes.length) return undefined;
    const bytes = this.runBytes[h] as Uint8Array;
    const start = this.runStart[h] as number;
    const end = this.firstItemEnd(h);
    this.consume(h, 1, end);
    return view(bytes, start, end);
  }

  /** Empties the queue; returns how many frames were discarded. */
  clear(): number {
    const n = this.items;
    this.reset();
    this.items = 0;
    this.totalBytes = 0;
    return n;
  }

  private reset(): void {
    this.runBytes = [];
    this.runStart = [];
    this.runEnd = [];
    this.runCount = [];
    this.head = 0;
  }
}

/** `bytes[start..end)`: `bytes` itself when that is all of it. */
function view(bytes: Uint8Array, start: number, end: number): Uint8Array {
  if (start === 0 && end === bytes.length) return bytes;
  return new Uint8Array(bytes.buffer, bytes.byteOffset + start, end - start);
}
