/**
 * A bounded FIFO of encoded frames for one peer. Full means a definite
 * OVERLOADED for the sender (DESIGN.md, Limits: a full queue answers instead
 * of growing).
 *
 * ```ts
 * const q = new FrameQueue('n2', { peerQueueMessagesMax: 2, peerQueueBytesMax: 1024 });
 * q.offer(frame);           // throws CohortError OVERLOADED when full
 * const next = q.shift();
 * ```
 */
import { CohortError } from '../lib/errors.js';
import type { TransportLimits } from './transport.js';

/** A FIFO of frames bounded by count and bytes. O(1) amortised offer and shift. */
export class FrameQueue {
  private items: (Uint8Array | undefined)[] = [];
  private head = 0;
  private totalBytes = 0;

  constructor(
    private readonly peer: string,
    private readonly limits: Pick<TransportLimits, 'peerQueueMessagesMax' | 'peerQueueBytesMax'>,
  ) {}

  /** Frames queued. */
  get length(): number {
    return this.items.length - this.head;
  }

  /** Bytes queued. */
  get bytes(): number {
    return this.totalBytes;
  }

  /** Appends `frame`, or throws a definite OVERLOADED if that would exceed a bound. */
  offer(frame: Uint8Array): void {
    const count = this.length;
    if (
      count >= this.limits.peerQueueMessagesMax ||
      this.totalBytes + frame.length > this.limits.peerQueueBytesMax
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
    this.items.push(frame);
    this.totalBytes += frame.length;
  }

  /** The oldest frame, without removing it. */
  peek(): Uint8Array | undefined {
    return this.items[this.head];
  }

  /** The frame `i` places behind the oldest (0 is the oldest), without removing it. */
  peekAt(i: number): Uint8Array | undefined {
    return this.items[this.head + i];
  }

  /** Removes and returns the oldest frame. */
  shift(): Uint8Array | undefined {
    if (this.head >= this.items.length) return undefined;
    const frame = this.items[this.head] as Uint8Array;
    this.items[this.head] = undefined;
    this.head++;
    this.totalBytes -= frame.length;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return frame;
  }

  /** Empties the queue; returns how many frames were discarded. */
  clear(): number {
    const n = this.length;
    this.items = [];
    this.head = 0;
    this.totalBytes = 0;
    return n;
  }
}
