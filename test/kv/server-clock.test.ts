/**
 * The KV server's leader duties run on the injected clock: a one-node cluster
 * on a VirtualClock expires a lease when virtual time passes its TTL, not
 * before, however little real time went by.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/lib/clock.js';
import { nodeId } from '../../src/lib/ids.js';
import { seededRandom } from '../../src/lib/random.js';
import { kvKey } from '../../src/kv/core/bytes.js';
import { encodeKvEntry } from '../../src/kv/core/codec.js';
import { KvServer, ObservedStateMachine } from '../../src/kv/server.js';
import type { RaftMessage } from '../../src/raft/core/messages.js';
import { RaftNode } from '../../src/raft/raft-node.js';
import { MemoryStorage } from '../../src/raft/storage/memory.js';
import { rpcCodec } from '../../src/rpc/messages.js';
import { RpcNode } from '../../src/rpc/node.js';
import { MemoryNetwork } from '../../src/transport/memory-transport.js';
import { newCounters } from '../../src/transport/transport.js';
import type { Transport } from '../../src/transport/transport.js';

const n1 = nodeId('n1');
const silent = pino({ level: 'silent' });

/** The Raft transport of a one-node cluster: nothing to send to. */
const alone: Transport<RaftMessage> = {
  self: n1,
  send: () => {},
  onMessage: () => {},
  onPeerStatus: () => {},
  close: () => Promise.resolve(),
  counters: newCounters(),
};

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

describe('KvServer on an injected clock', () => {
  it('expires a lease once virtual time passes its TTL (and not before)', async () => {
    const clock = new VirtualClock();
    const sm = new ObservedStateMachine();
    const raft = await RaftNode.start({
      id: n1,
      peers: [],
      transport: alone,
      storage: new MemoryStorage(),
      stateMachine: sm,
      random: seededRandom(1),
      clock,
      tickMs: 10,
      raft: { electionTicks: 3 },
      logger: silent,
    });
    closers.push(() => raft.close());
    /** Moves virtual time in steps of 10 ms, letting the node work after each. */
    const advance = async (ms: number): Promise<void> => {
      for (let t = 0; t < ms; t += 10) {
        clock.advance(10);
        await settle();
      }
    };
    while (!raft.isLeader()) await advance(10);
    const rpc = new RpcNode(new MemoryNetwork().transport(n1, rpcCodec), { clock });
    closers.push(() => rpc.close());
    const kv = new KvServer({
      raft,
      stateMachine: sm,
      rpc,
      peerRpc: () => undefined,
      electionTimeoutMs: 0,
      clock,
      leaseTickMs: 50,
      leaseCheckpointMs: 10_000,
      logger: silent,
    });
    kv.start();
    closers.push(() => kv.close());
    await raft.propose(encodeKvEntry({ command: { type: 'leaseGrant', ttlMs: 1_000, id: 7 } }));
    const grantedAt = clock.now();
    await raft.propose(
      encodeKvEntry({ command: { type: 'put', key: kvKey('k'), value: kvKey('v'), lease: 7 } }),
    );
    await advance(900);
    expect(kv.leaseClockRunning).toBe(true);
    expect(sm.kv.leaseList().map((l) => l.id)).toEqual([7]);
    while (sm.kv.leaseList().length > 0 && clock.now() < grantedAt + 2_000) await advance(10);
    expect(sm.kv.leaseList()).toEqual([]);
    expect(clock.now()).toBeGreaterThanOrEqual(grantedAt + 1_000);
    expect(sm.kv.read({ type: 'range', key: kvKey('k') }).kvs).toEqual([]);
  });
});
