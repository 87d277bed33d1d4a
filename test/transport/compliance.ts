/**
 * The Transport compliance suite: the contract of src/transport/transport.ts,
 * run against every implementation (memory-transport.test.ts,
 * tcp-transport.test.ts) through a harness that starts and restarts nodes.
 *
 * ```ts
 * transportCompliance('memory', () => memoryHarness());
 * ```
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isCohortError } from '../../src/lib/errors.js';
import type { ErrorCode } from '../../src/lib/errors.js';
import { nodeId } from '../../src/lib/ids.js';
import type { NodeId } from '../../src/lib/ids.js';
import type { PeerStatus, Transport, TransportLimits } from '../../src/transport/transport.js';
import { NODES } from './test-messages.js';
import type { TestMessage } from './test-messages.js';
import { conditionWaitMs } from '../harness/wait.js';

export { NODES, Seq, testCodec } from './test-messages.js';
export type { TestMessage } from './test-messages.js';

const [A, B, C] = NODES as [NodeId, NodeId, NodeId];

/** Starts and stops transports of the nodes in {@link NODES}. */
export interface TransportHarness {
  /** Starts node `id` (again, after a stop: a restart at the same address). */
  start(id: NodeId, limits?: Partial<TransportLimits>): Promise<Transport<TestMessage>>;
  /** Closes every transport still open and frees resources. */
  cleanup(): Promise<void>;
}

/** Polls `condition` until it holds; fails with `what` after `timeoutMs`. Not a timing assertion. */
export async function waitFor(
  condition: () => boolean,
  what: string,
  timeoutMs = conditionWaitMs,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Lets the event loop run a few turns (for "nothing happens" checks after a barrier). */
export async function settle(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
}

function codeOf(fn: () => unknown): ErrorCode | 'no error' {
  try {
    fn();
    return 'no error';
  } catch (err) {
    if (isCohortError(err)) {
      expect(err.definite).toBe(true);
      return err.code;
    }
    throw err;
  }
}

interface Received {
  from: NodeId;
  msg: TestMessage;
}

function record(t: Transport<TestMessage>): Received[] {
  const got: Received[] = [];
  t.onMessage((from, msg) => got.push({ from, msg }));
  return got;
}

function seqsFrom(got: readonly Received[], from: NodeId, note?: string): number[] {
  return got
    .filter((r) => r.from === from && (note === undefined || r.msg.note === note))
    .map((r) => r.msg.seq);
}

function isIncreasing(xs: readonly number[]): boolean {
  return xs.every((x, i) => i === 0 || (xs[i - 1] as number) < x);
}

/** Registers the compliance tests for one implementation. */
export function transportCompliance(name: string, makeHarness: () => TransportHarness): void {
  describe(`Transport compliance: ${name}`, () => {
    let h: TransportHarness;
    beforeEach(() => {
      h = makeHarness();
    });
    afterEach(async () => {
      await h.cleanup();
    });

    it('delivers every message of a link in send order, with the sender id', async () => {
      const a = await h.start(A);
      const b = await h.start(B);
      const c = await h.start(C);
      const atB = record(b);
      const atA = record(a);
      for (let i = 0; i < 2000; i++) {
        a.send(B, { type: 'Seq', seq: i, note: 'ab' });
        if (i % 3 === 0) c.send(B, { type: 'Seq', seq: i, note: 'cb' });
        if (i % 2 === 0) b.send(A, { type: 'Seq', seq: i, note: 'ba' });
        // Spread over several event-loop turns so several batches are involved.
        if (i % 500 === 0) await settle(1);
      }
      await waitFor(() => atB.length === 2000 + 667 && atA.length === 1000, 'all messages');
      expect(seqsFrom(atB, A)).toEqual(Array.from({ length: 2000 }, (_, i) => i));
      expect(seqsFrom(atB, C)).toEqual(Array.from({ length: 667 }, (_, i) => i * 3));
      expect(seqsFrom(atA, B)).toEqual(Array.from({ length: 1000 }, (_, i) => i * 2));
      expect(a.counters.messagesSent).toBe(2000);
      expect(b.counters.messagesReceived).toBe(2667);
    });

    it('delivers asynchronously, a copy of the message as it was when sent', async () => {
      const a = await h.start(A);
      const b = await h.start(B);
      const atB = record(b);
      const msg = { type: 'Seq' as const, seq: 1, note: 'before', pad: new Uint8Array([1, 2]) };
      a.send(B, msg);
      expect(atB).toHaveLength(0); // never inside send()
      msg.note = 'after';
      msg.pad[0] = 9;
      await waitFor(() => atB.length === 1, 'the message');
      expect(atB[0]?.msg.note).toBe('before');
      expect([...(atB[0]?.msg.pad ?? [])]).toEqual([1, 2]);
    });

    it('delivers a message a node sends to itself', async () => {
      const a = await h.start(A);
      const atA = record(a);
      a.send(A, { type: 'Seq', seq: 5, note: 'self' });
      await waitFor(() => atA.length === 1, 'the loopback message');
      expect(atA[0]).toEqual({ from: A, msg: { type: 'Seq', seq: 5, note: 'self' } });
    });

    it('refuses, at send(), a message to itself that a receiver would refuse (definite INVALID_ARGUMENT)', async () => {
      const a = await h.start(A);
      const atA = record(a);
      // note is at most 64 characters: the compiler cannot see that, the receiver's schema does.
      expect(codeOf(() => a.send(A, { type: 'Seq', seq: 1, note: 'x'.repeat(65) }))).toBe(
        'INVALID_ARGUMENT',
      );
      a.send(A, { type: 'Seq', seq: 2, note: 'ok' });
      await waitFor(() => atA.length === 1, 'the valid message');
      await settle();
      expect(atA.map((r) => r.msg.seq)).toEqual([2]);
      expect(a.counters.messagesSent).toBe(1);
    });

    it('refuses a node it has no address for with a definite UNAVAILABLE', async () => {
      const a = await h.start(A);
      expect(codeOf(() => a.send(nodeId('zz'), { type: 'Seq', seq: 0, note: '' }))).toBe(
        'UNAVAILABLE',
      );
      expect(a.counters.messagesSent).toBe(0);
    });

    it('refuses an oversized message with a definite FRAME_TOO_LARGE and keeps the link working', async () => {
      const a = await h.start(A, { frameBytesMax: 1024 });
      const b = await h.start(B);
      const atB = record(b);
      const big = { type: 'Seq' as const, seq: 1, note: 'big', pad: new Uint8Array(2000) };
      expect(codeOf(() => a.send(B, big))).toBe('FRAME_TOO_LARGE');
      expect(a.counters.messagesSent).toBe(0);
      a.send(B, { type: 'Seq', seq: 2, note: 'small', pad: new Uint8Array(900) });
      await waitFor(() => atB.length === 1, 'the small message');
      expect(atB[0]?.msg.seq).toBe(2);
    });

    it('answers a definite OVERLOADED when the queue to a peer is full, then delivers the queue once the peer is up', async () => {
      const a = await h.start(A, { peerQueueMessagesMax: 50 });
      for (let i = 0; i < 50; i++) a.send(B, { type: 'Seq', seq: i, note: 'q' });
      expect(codeOf(() => a.send(B, { type: 'Seq', seq: 50, note: 'q' }))).toBe('OVERLOADED');
      expect(codeOf(() => a.send(B, { type: 'Seq', seq: 51, note: 'q' }))).toBe('OVERLOADED');
      expect(a.counters.overloaded).toBe(2);
      expect(a.counters.messagesSent).toBe(50);
      // Other peers are unaffected by B's full queue.
      const c = await h.start(C);
      const atC = record(c);
      a.send(C, { type: 'Seq', seq: 0, note: 'c' });
      await waitFor(() => atC.length === 1, 'the message to C');
      // B comes up: the queued messages go out in order.
      const b = await h.start(B);
      const atB = record(b);
      await waitFor(() => atB.length === 50, 'the queued messages');
      expect(seqsFrom(atB, A)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    });

    it('bounds the queue by bytes too', async () => {
      const a = await h.start(A, { peerQueueBytesMax: 10_000 });
      let sent = 0;
      let code: ErrorCode | 'no error' = 'no error';
      while (code === 'no error' && sent < 1000) {
        code = codeOf(() =>
          a.send(B, { type: 'Seq', seq: sent, note: 'x', pad: new Uint8Array(1000) }),
        );
        if (code === 'no error') sent++;
      }
      expect(code).toBe('OVERLOADED');
      expect(sent).toBeGreaterThan(5);
      expect(sent).toBeLessThan(10);
    });

    it('delivers again after the receiver restarts, in order, without duplicates', async () => {
      const a = await h.start(A);
      let b = await h.start(B);
      let atB = record(b);
      let seq = 0;
      a.send(B, { type: 'Seq', seq: seq++, note: 'r' });
      await waitFor(() => atB.length === 1, 'the first message');
      await b.close();
      b = await h.start(B);
      atB = record(b);
      // Messages in flight when B went away may be lost; keep sending until one arrives.
      await waitFor(() => {
        a.send(B, { type: 'Seq', seq: seq++, note: 'r' });
        return atB.length > 0;
      }, 'delivery after the restart');
      const last = seq;
      for (let i = 0; i < 100; i++) a.send(B, { type: 'Seq', seq: seq++, note: 'r' });
      await waitFor(() => atB.some((r) => r.msg.seq === last + 99), 'the last message');
      const got = seqsFrom(atB, A);
      expect(isIncreasing(got)).toBe(true);
      expect(got.slice(-100)).toEqual(Array.from({ length: 100 }, (_, i) => last + i));
    });

    it('reports a link up and down', async () => {
      const a = await h.start(A);
      const events: [NodeId, PeerStatus][] = [];
      a.onPeerStatus((peer, status) => events.push([peer, status]));
      const b = await h.start(B);
      const atB = record(b);
      a.send(B, { type: 'Seq', seq: 0, note: 's' });
      await waitFor(() => atB.length === 1, 'the message');
      await waitFor(() => events.some(([p, s]) => p === B && s === 'up'), 'up');
      await b.close();
      await waitFor(() => events.some(([p, s]) => p === B && s === 'down'), 'down');
    });

    it('after close: send throws a definite CLOSED, close is idempotent, no handler runs', async () => {
      const a = await h.start(A);
      const b = await h.start(B);
      const c = await h.start(C);
      const atB = record(b);
      const atC = record(c);
      a.send(B, { type: 'Seq', seq: 0, note: 'x' });
      await waitFor(() => atB.length === 1, 'the first message');
      const closing = b.close();
      expect(codeOf(() => b.send(A, { type: 'Seq', seq: 0, note: 'x' }))).toBe('CLOSED');
      await closing;
      await b.close();
      for (let i = 1; i <= 10; i++) a.send(B, { type: 'Seq', seq: i, note: 'x' });
      // A barrier through another link, then a few turns: B's handler stays silent.
      a.send(C, { type: 'Seq', seq: 0, note: 'barrier' });
      await waitFor(() => atC.length === 1, 'the barrier');
      await settle();
      expect(atB).toHaveLength(1);
    });

    it('close() flushes what was already queued to a reachable peer', async () => {
      const a = await h.start(A);
      const b = await h.start(B);
      const atB = record(b);
      a.send(B, { type: 'Seq', seq: 0, note: 'f' });
      await waitFor(() => atB.length === 1, 'the link');
      for (let i = 1; i <= 300; i++) a.send(B, { type: 'Seq', seq: i, note: 'f' });
      await a.close();
      await waitFor(() => atB.length === 301, 'the flushed messages');
      expect(seqsFrom(atB, A)).toEqual(Array.from({ length: 301 }, (_, i) => i));
    });

    it('drops messages that arrive while no handler is set, and counts them', async () => {
      const a = await h.start(A);
      const b = await h.start(B);
      a.send(B, { type: 'Seq', seq: 0, note: 'n' });
      await waitFor(() => b.counters.droppedNoHandler === 1, 'the dropped message');
      const atB = record(b);
      a.send(B, { type: 'Seq', seq: 1, note: 'n' });
      await waitFor(() => atB.length === 1, 'the next message');
      expect(atB[0]?.msg.seq).toBe(1);
    });
  });
}
