import { describe, expect, it } from 'vitest';
import { isCohortError } from '../../src/lib/errors.js';
import { FrameQueue } from '../../src/transport/frame-queue.js';

const frame = (n: number, fill = 0): Uint8Array => new Uint8Array(n).fill(fill);

describe('FrameQueue', () => {
  it('is FIFO and tracks count and bytes', () => {
    const q = new FrameQueue('n2', { peerQueueMessagesMax: 10, peerQueueBytesMax: 100 });
    q.offer(frame(3, 1));
    q.offer(frame(5, 2));
    expect([q.length, q.bytes]).toEqual([2, 8]);
    expect(q.peek()?.[0]).toBe(1);
    expect(q.peekAt(1)?.[0]).toBe(2);
    expect(q.shift()?.[0]).toBe(1);
    expect([q.length, q.bytes]).toEqual([1, 5]);
    expect(q.shift()?.[0]).toBe(2);
    expect(q.shift()).toBeUndefined();
  });

  it('refuses beyond the message bound with a definite OVERLOADED naming the peer', () => {
    const q = new FrameQueue('n2', { peerQueueMessagesMax: 2, peerQueueBytesMax: 100 });
    q.offer(frame(1));
    q.offer(frame(1));
    try {
      q.offer(frame(1));
      expect.unreachable();
    } catch (err) {
      expect(isCohortError(err) && [err.code, err.definite]).toEqual(['OVERLOADED', true]);
      expect(isCohortError(err) && err.message).toMatch(/n2/);
    }
    expect(q.length).toBe(2);
  });

  it('refuses beyond the byte bound, and accepts again once drained', () => {
    const q = new FrameQueue('n2', { peerQueueMessagesMax: 100, peerQueueBytesMax: 10 });
    q.offer(frame(6));
    expect(() => q.offer(frame(5))).toThrow(/full/);
    q.offer(frame(4));
    q.shift();
    q.offer(frame(5));
    expect(q.bytes).toBe(9);
  });

  it('stays FIFO across its internal compaction', () => {
    const q = new FrameQueue('n2', { peerQueueMessagesMax: 10_000, peerQueueBytesMax: 1e9 });
    const out: number[] = [];
    let next = 0;
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 97; i++) q.offer(new Uint8Array([next++ % 256]));
      for (let i = 0; i < 60; i++) out.push((q.shift() as Uint8Array)[0] as number);
    }
    while (q.length > 0) out.push((q.shift() as Uint8Array)[0] as number);
    expect(out).toEqual(Array.from({ length: next }, (_, i) => i % 256));
    expect(q.clear()).toBe(0);
  });
});
