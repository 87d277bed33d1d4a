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

  /** Writes records (u32 length | bytes filled with the seq) back to back into `slab` from `at`; returns their [start, end) offsets. */
  function records(
    slab: Uint8Array,
    at: number,
    lengths: readonly number[],
    seq0: number,
  ): [number, number][] {
    const out: [number, number][] = [];
    lengths.forEach((n, i) => {
      new DataView(slab.buffer, slab.byteOffset).setUint32(at, n);
      slab.fill((seq0 + i) & 0xff, at + 4, at + 4 + n);
      out.push([at, at + 4 + n]);
      at += 4 + n;
    });
    return out;
  }

  it('merges records queued back to back in one memory and hands them out whole or cut between records', () => {
    const q = new FrameQueue('n2', { peerQueueMessagesMax: 100, peerQueueBytesMax: 10_000 });
    const slab = new Uint8Array(4096);
    const rs = records(slab, 0, [3, 10, 1, 7], 0);
    for (const [a, b] of rs) q.offerRecord(slab, a, b);
    // Not adjacent: a new run.
    const far = records(slab, 1000, [2], 4);
    q.offerRecord(slab, (far[0] as [number, number])[0], (far[0] as [number, number])[1]);
    expect([q.length, q.bytes]).toEqual([5, 4 * 5 + 3 + 10 + 1 + 7 + 2]);
    // peekAt sees through runs.
    expect([...(q.peekAt(2) as Uint8Array)]).toEqual([0, 0, 0, 1, 2]);
    expect([...(q.peekAt(4) as Uint8Array)]).toEqual([0, 0, 0, 2, 4, 4]);
    // 20 bytes: the first record (7) and the second (14) do not both fit: one.
    expect(q.takeRecords(20, 100, true)).toBe(1);
    expect([q.takenStart, q.takenEnd]).toEqual([0, 7]);
    // The rest of the run, at most 2 records.
    expect(q.takeRecords(1000, 2, false)).toBe(2);
    expect([q.takenStart, q.takenEnd]).toEqual([7, 7 + 14 + 5]);
    expect(q.takenBytes).toBe(slab);
    // A record over the byte budget is taken only as the first of a frame.
    expect(q.takeRecords(3, 100, false)).toBe(0);
    expect(q.takeRecords(3, 100, true)).toBe(1);
    expect([q.takenStart, q.takenEnd]).toEqual([26, 37]);
    expect(q.shift()?.length).toBe(6);
    expect([q.length, q.bytes]).toEqual([0, 0]);
    expect(q.takeRecords(1000, 100, true)).toBe(0);
  });

  it('keeps records and frames in one FIFO order, within its bounds', () => {
    const q = new FrameQueue('n2', { peerQueueMessagesMax: 5, peerQueueBytesMax: 1000 });
    const slab = new Uint8Array(256);
    const rs = records(slab, 0, [1, 2, 3], 10);
    q.offerRecord(slab, ...(rs[0] as [number, number]));
    q.offer(frame(4, 99));
    // Adjacent in memory to the first record, but behind the frame: not merged with it.
    q.offerRecord(slab, ...(rs[1] as [number, number]));
    q.offerRecord(slab, ...(rs[2] as [number, number]));
    q.offer(frame(2, 98));
    expect(() => q.offerRecord(slab, 100, 105)).toThrow(/full/);
    const out = [];
    for (let f = q.shift(); f !== undefined; f = q.shift()) out.push([...f]);
    expect(out).toEqual([
      [0, 0, 0, 1, 10],
      [99, 99, 99, 99],
      [0, 0, 0, 2, 11, 11],
      [0, 0, 0, 3, 12, 12, 12],
      [98, 98],
    ]);
  });

  it('stays FIFO with runs across its internal compaction', () => {
    const q = new FrameQueue('n2', { peerQueueMessagesMax: 100_000, peerQueueBytesMax: 1e9 });
    const slab = new Uint8Array(1 << 20);
    let at = 0;
    let next = 0;
    const out: number[] = [];
    for (let round = 0; round < 40; round++) {
      for (let i = 0; i < 150; i++) {
        // Every other record starts a new run (a gap in memory): enough runs to compact.
        if (next % 2 === 0) at += 1;
        const [[a, b]] = records(slab, at, [1 + (next % 3)], next) as [[number, number]];
        q.offerRecord(slab, a, b);
        at = b;
        next++;
      }
      for (let n = q.takeRecords(60, 40, true); out.length < (round + 1) * 100 && n > 0;) {
        for (let p = q.takenStart; p < q.takenEnd;) {
          const len = new DataView(slab.buffer).getUint32(p);
          out.push(slab[p + 4] as number);
          p += 4 + len;
        }
        if (out.length >= (round + 1) * 100) break;
        n = q.takeRecords(60, 40, true);
      }
    }
    while (q.length > 0) out.push((q.shift() as Uint8Array)[4] as number);
    expect(out).toEqual(Array.from({ length: next }, (_, i) => i & 0xff));
  });
});
