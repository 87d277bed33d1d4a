/**
 * Pub/sub over both transports: per-publisher order, at-most-once delivery,
 * at-least-once redelivery after a subscriber's outage, and overflow reports.
 */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { nodeId } from '../../src/lib/ids.js';
import type { NodeId } from '../../src/lib/ids.js';
import type { RpcNode } from '../../src/rpc/node.js';
import type { DeliveryInfo, LossReport } from '../../src/rpc/pubsub.js';
import { waitFor } from '../transport/compliance.js';
import { harnesses } from './harness.js';
import type { RpcHarness } from './harness.js';

const A = nodeId('a');
const C = nodeId('c');

interface Got {
  from: NodeId;
  n: number;
}

function collect(into: Got[]): (msg: unknown, info: DeliveryInfo) => void {
  return (msg, info) => into.push({ from: info.publisher, n: (msg as { n: number }).n });
}

describe.each(harnesses)('pub/sub (%o)', (make) => {
  let h: RpcHarness;
  let a: RpcNode;
  let c: RpcNode;

  beforeEach(async () => {
    h = make();
    a = await h.node('a');
    c = await h.node('c');
  });
  afterEach(async () => {
    await h.cleanup();
  });

  it('keeps per-publisher order with two publishers (at-most-once)', async () => {
    const b = await h.node('b');
    const got: Got[] = [];
    b.pubsub.subscribe('t', collect(got), { publishers: [A, C] });
    await waitFor(
      () => a.pubsub.subscribersOf('t').length === 1 && c.pubsub.subscribersOf('t').length === 1,
      'subscriptions',
    );
    for (let n = 0; n < 300; n++) {
      a.pubsub.publish('t', { n });
      if (n % 3 === 0) c.pubsub.publish('t', { n });
    }
    await waitFor(() => got.length === 400, 'all delivered');
    const fromA = got.filter((g) => g.from === A).map((g) => g.n);
    const fromC = got.filter((g) => g.from === C).map((g) => g.n);
    expect(fromA).toEqual(Array.from({ length: 300 }, (_, i) => i));
    expect(fromC).toEqual(Array.from({ length: 100 }, (_, i) => i * 3));
  });

  it('delivers to local subscribers and stops after unsubscribe', async () => {
    const b = await h.node('b');
    const local: Got[] = [];
    const remote: Got[] = [];
    a.pubsub.subscribe('u', collect(local), { publishers: [] });
    const stop = b.pubsub.subscribe('u', collect(remote), { publishers: [A] });
    await waitFor(() => a.pubsub.subscribersOf('u').length === 1, 'subscribed');
    a.pubsub.publish('u', { n: 1 });
    await waitFor(() => local.length === 1 && remote.length === 1, 'delivered');
    stop();
    await waitFor(() => a.pubsub.subscribersOf('u').length === 0, 'unsubscribed');
    a.pubsub.publish('u', { n: 2 });
    await waitFor(() => local.length === 2, 'local again');
    expect(remote.map((g) => g.n)).toEqual([1]);
  });

  it('at-least-once: redelivers, in order, what a subscriber missed during its outage', async () => {
    const b = await h.node('b');
    const before: Got[] = [];
    b.pubsub.subscribe('q', collect(before), { publishers: [A], atLeastOnce: true });
    await waitFor(() => a.pubsub.subscribersOf('q').length === 1, 'subscribed');
    for (let n = 0; n < 10; n++) a.pubsub.publish('q', { n });
    await waitFor(
      () => before.length === 10 && a.pubsub.unackedFor('q', nodeId('b')) === 0,
      'acked',
    );
    await b.close(); // outage
    for (let n = 10; n < 20; n++) a.pubsub.publish('q', { n });
    expect(a.pubsub.unackedFor('q', nodeId('b'))).toBe(10);
    const b2 = await h.node('b'); // restarted, no subscription yet
    // Whatever the transport still had queued for b arrives and is discarded
    // (nobody subscribed): only the publisher's redelivery can bring it back.
    await waitFor(() => b2.pubsub.counters.discarded >= 10 || h.name === 'tcp', 'queued drained');
    const after: Got[] = [];
    b2.pubsub.subscribe('q', collect(after), { publishers: [A], atLeastOnce: true });
    await waitFor(() => after.length >= 10, 'redelivered');
    await waitFor(() => a.pubsub.unackedFor('q', nodeId('b')) === 0, 'acked again');
    expect(after.map((g) => g.n)).toEqual(Array.from({ length: 10 }, (_, i) => 10 + i));
    expect(a.pubsub.counters.redelivered).toBeGreaterThanOrEqual(10);
  });

  it('at-least-once overflow is reported by the publisher, never silent', async () => {
    await a.close();
    const overflows: number[] = [];
    const a2 = await h.node('a', {
      pubsub: { unackedMax: 3, onOverflow: (_t, _s, seq) => overflows.push(seq) },
    });
    const b = await h.node('b');
    const got: Got[] = [];
    b.pubsub.subscribe('o', collect(got), { publishers: [A], atLeastOnce: true });
    await waitFor(() => a2.pubsub.subscribersOf('o').length === 1, 'subscribed');
    await b.close();
    for (let n = 0; n < 8; n++) a2.pubsub.publish('o', { n });
    expect(overflows).toEqual([0, 1, 2, 3, 4]);
    expect(a2.pubsub.counters.overflowed).toBe(5);
    expect(a2.pubsub.unackedFor('o', nodeId('b'))).toBe(3);
  });
});

describe('pub/sub loss report (memory)', () => {
  it('a subscriber that expected older messages than the publisher still holds calls onLoss', async () => {
    const h = harnesses[0]?.() as RpcHarness;
    try {
      const b = await h.node('b');
      const raw = await h.raw('raw');
      const losses: LossReport[] = [];
      const got: Got[] = [];
      b.pubsub.subscribe('l', collect(got), {
        publishers: [nodeId('raw')],
        atLeastOnce: true,
        onLoss: (l) => losses.push(l),
      });
      const send = (seq: number, floor: number): void =>
        raw.send(nodeId('b'), {
          type: 'PsMessage',
          topic: 'l',
          epoch: 1,
          seq,
          floor,
          payload: { n: seq },
        });
      send(0, 0);
      send(1, 0);
      send(7, 5); // 2..4 were dropped by the publisher's full buffer; 5 and 6 will be resent
      send(5, 5);
      send(6, 5);
      send(7, 5);
      await waitFor(() => got.length === 5, 'delivered');
      expect(got.map((g) => g.n)).toEqual([0, 1, 5, 6, 7]);
      expect(losses).toEqual([{ topic: 'l', publisher: nodeId('raw'), fromSeq: 2, toSeq: 4 }]);
    } finally {
      await h.cleanup();
    }
  });
});

describe('pub/sub at-least-once under random subscriber outages (memory, property)', () => {
  it('every message reaches some incarnation of the subscriber, each in publish order', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            publish: fc.integer({ min: 0, max: 20 }),
            restart: fc.boolean(),
            duringOutage: fc.integer({ min: 0, max: 20 }),
          }),
          {
            minLength: 1,
            maxLength: 6,
          },
        ),
        async (plan) => {
          const h = harnesses[0]?.() as RpcHarness;
          try {
            const a = await h.node('a', { pubsub: { redeliverMs: 5 } });
            const incarnations: number[][] = [];
            const start = async (): Promise<RpcNode> => {
              const got: number[] = [];
              incarnations.push(got);
              const b = await h.node('b');
              b.pubsub.subscribe('p', (m) => got.push((m as { n: number }).n), {
                publishers: [A],
                atLeastOnce: true,
              });
              return b;
            };
            let b = await start();
            await waitFor(() => a.pubsub.subscribersOf('p').length === 1, 'subscribed');
            let n = 0;
            for (const step of plan) {
              for (let i = 0; i < step.publish; i++) a.pubsub.publish('p', { n: n++ });
              if (step.restart) {
                await b.close();
                // Published while the subscriber is down: only redelivery brings these.
                for (let i = 0; i < step.duringOutage; i++) a.pubsub.publish('p', { n: n++ });
                b = await start();
              }
            }
            await waitFor(() => a.pubsub.unackedFor('p', nodeId('b')) === 0, 'all acked');
            const seen = new Set(incarnations.flat());
            for (let i = 0; i < n; i++) expect(seen.has(i)).toBe(true);
            for (const got of incarnations) {
              for (let i = 1; i < got.length; i++) {
                expect(got[i] as number).toBeGreaterThan(got[i - 1] as number);
              }
            }
          } finally {
            await h.cleanup();
          }
        },
      ),
      { numRuns: 15 },
    );
  });
});
