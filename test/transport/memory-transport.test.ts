import { describe, expect, it } from 'vitest';
import { nodeId } from '../../src/lib/ids.js';
import { MemoryNetwork } from '../../src/transport/memory-transport.js';
import type { MemoryTransport } from '../../src/transport/memory-transport.js';
import { NODES, testCodec, transportCompliance, waitFor } from './compliance.js';
import type { TestMessage, TransportHarness } from './compliance.js';
import { isCohortError } from '../../src/lib/errors.js';

function memoryHarness(): TransportHarness {
  const net = new MemoryNetwork();
  const open = new Set<MemoryTransport<TestMessage>>();
  return {
    start(id, limits) {
      const t = net.transport(id, testCodec, { peers: NODES, ...(limits ? { limits } : {}) });
      open.add(t);
      return Promise.resolve(t);
    },
    async cleanup() {
      await Promise.all([...open].map((t) => t.close()));
    },
  };
}

transportCompliance('memory', memoryHarness);

describe('MemoryNetwork', () => {
  it('refuses a second open transport with the same id', () => {
    const net = new MemoryNetwork();
    net.transport(nodeId('a'), testCodec);
    try {
      net.transport(nodeId('a'), testCodec);
      expect.unreachable();
    } catch (err) {
      expect(isCohortError(err) && err.code).toBe('INVALID_ARGUMENT');
    }
  });

  it('drops, and counts, what a closing node had queued to absent peers', async () => {
    const net = new MemoryNetwork();
    const a = net.transport(nodeId('a'), testCodec);
    for (let i = 0; i < 3; i++) a.send(nodeId('b'), { type: 'Seq', seq: i, note: '' });
    await a.close();
    expect(a.counters.dropped).toBe(3);
    const b = net.transport(nodeId('b'), testCodec);
    const got: number[] = [];
    b.onMessage((_from, m) => got.push(m.seq));
    const c = net.transport(nodeId('c'), testCodec);
    c.send(nodeId('b'), { type: 'Seq', seq: 9, note: '' });
    await waitFor(() => got.length === 1, 'the barrier');
    expect(got).toEqual([9]);
  });
});
