/**
 * KvClient over an injected transport and clock (what the simulator gives
 * it): calls go over the given transport, and its retry deadline and
 * backoffs are measured on the given clock.
 */
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/lib/clock.js';
import { CohortError, isCohortError } from '../../src/lib/errors.js';
import { nodeId } from '../../src/lib/ids.js';
import { seededRandom } from '../../src/lib/random.js';
import { KvClient } from '../../src/kv/client.js';
import { KvService } from '../../src/kv/service.js';
import { rpcCodec } from '../../src/rpc/messages.js';
import { RpcNode } from '../../src/rpc/node.js';
import type { Handlers } from '../../src/rpc/service.js';
import { MemoryNetwork } from '../../src/transport/memory-transport.js';

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('KvClient on an injected transport and clock', () => {
  it('calls over the transport and gives up after retryMs of the injected clock', async () => {
    const clock = new VirtualClock();
    const net = new MemoryNetwork();
    const server = new RpcNode(net.transport(nodeId('n1'), rpcCodec), { clock });
    let calls = 0;
    // A node that never knows a leader: every call is refused (definite), no hint.
    const refuse = (): never => {
      calls++;
      throw new CohortError('NOT_LEADER', 'no leader known', { details: { leaderId: null } });
    };
    server.serve(
      KvService,
      Object.fromEntries(
        [...KvService.compiled.keys()].map((m) => [m, refuse]),
      ) as unknown as Handlers<typeof KvService>,
    );
    const kv = await KvClient.connect({
      endpoints: [{ id: 'n1', host: 'unused', port: 1 }],
      transport: net.transport(nodeId('c1'), rpcCodec),
      clock,
      clientId: 'c1',
      timeoutMs: 100,
      retryMs: 1_000,
    });
    let outcome: unknown;
    kv.range('k').then(
      () => (outcome = 'ok'),
      (e: unknown) => (outcome = e),
    );
    // Real time does not move the client: only the virtual clock does.
    for (let i = 0; i < 20; i++) await settle();
    expect(outcome).toBeUndefined();
    expect(calls).toBeGreaterThan(0);
    while (outcome === undefined && clock.now() < 5_000) {
      clock.advance(10);
      // Let each attempt's round trip over the memory network finish before time moves on.
      for (let i = 0; i < 5; i++) await settle();
    }
    expect(isCohortError(outcome) && outcome.code).toBe('NOT_LEADER');
    expect(isCohortError(outcome) && outcome.definite).toBe(true);
    // Retried with backoffs of 10-50 ms until the 1 s deadline (it gives up
    // as soon as the next backoff would end past the deadline: within 50 ms of it).
    expect(clock.now()).toBeGreaterThanOrEqual(1_000 - 50);
    expect(clock.now()).toBeLessThan(1_200);
    expect(calls).toBeGreaterThan(15);
    await kv.close();
    await server.close();
  });

  it('draws its default client id from the injected Random (a seed gives the same id)', async () => {
    const net = new MemoryNetwork();
    const ids: string[] = [];
    for (const c of ['c1', 'c2', 'c3']) {
      const kv = await KvClient.connect({
        endpoints: [{ id: 'n1', host: 'unused', port: 1 }],
        transport: net.transport(nodeId(c), rpcCodec),
        clock: new VirtualClock(),
        random: seededRandom(c === 'c3' ? 8 : 7),
      });
      ids.push(kv.clientId);
      await kv.close();
    }
    expect(ids[0]).toMatch(/^kv-[0-9a-f]{12}$/);
    expect(ids[1]).toBe(ids[0]);
    expect(ids[2]).not.toBe(ids[0]);
  });
});
