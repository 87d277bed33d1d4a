/**
 * RaftNode over real sockets and disks: three nodes in one process, each with
 * a TcpTransport on 127.0.0.1 and a FileStorage in its own temp directory.
 * Replicates 1,000 proposals, kills the leader mid-load (transport first, so
 * nothing more leaves it), checks a new leader keeps every acknowledged write,
 * then restarts the old leader from its data dir and checks it catches up.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { CohortError } from '../../../src/lib/errors.js';
import { clusterId, nodeId } from '../../../src/lib/ids.js';
import type { NodeId } from '../../../src/lib/ids.js';
import { seededRandom } from '../../../src/lib/random.js';
import type { RaftMessage } from '../../../src/raft/core/messages.js';
import { raftMessagesCodec } from '../../../src/raft/raft-messages-codec.js';
import { RaftNode } from '../../../src/raft/raft-node.js';
import { FileStorage } from '../../../src/raft/storage/file-storage.js';
import { TcpTransport } from '../../../src/transport/tcp-transport.js';
import type { PeerAddress } from '../../../src/transport/tcp-transport.js';
import { conditionWaitMs } from '../../harness/wait.js';
import { ListMachine, testLogger, text } from './helpers.js';

const cluster = clusterId('raft-node-tcp');
const ids = ['n1', 'n2', 'n3'].map(nodeId);
const fastLimits = {
  reconnectDelayMsMin: 5,
  reconnectDelayMsMax: 100,
  connectTimeoutMs: 2_000,
  handshakeTimeoutMs: 2_000,
  transportCloseGraceMs: 200,
};

interface Running {
  node: RaftNode<ListMachine>;
  transport: TcpTransport<RaftMessage>;
}

const dirs = new Map<NodeId, string>();
const addresses = new Map<NodeId, PeerAddress>();
const running = new Map<NodeId, Running>();

async function startNode(id: NodeId, seed: number): Promise<Running> {
  const transport = await TcpTransport.start<RaftMessage>({
    self: id,
    clusterId: cluster,
    codec: raftMessagesCodec(),
    listen: addresses.get(id) ?? { host: '127.0.0.1', port: 0 },
    peers: addresses,
    limits: fastLimits,
    logger: testLogger(),
  });
  addresses.set(id, transport.address as PeerAddress);
  const storage = new FileStorage({
    dir: dirs.get(id) as string,
    clusterId: cluster,
    nodeId: id,
    logger: testLogger(),
    // Snapshot saves no longer hold up the Ready loop (durability.test.ts), but
    // three nodes in one process still share one disk and libuv's thread pool:
    // their 64 MiB spare segments' zero-fill (preallocate.test.ts covers it)
    // can delay WAL syncs sent to the pool on a loaded machine, past this
    // test's 100 ms election timeout.
    preallocate: false,
  });
  const node = await RaftNode.start({
    id,
    peers: ids.filter((p) => p !== id),
    transport,
    storage,
    stateMachine: new ListMachine(),
    random: seededRandom(seed),
    tickMs: 10,
    raft: { electionTicks: 10 },
    snapshotEntries: 250,
    logger: testLogger(),
  });
  const r = { node, transport };
  running.set(id, r);
  return r;
}

async function waitForLeader(among: readonly NodeId[]): Promise<RaftNode<ListMachine>> {
  return vi.waitFor(
    () => {
      const leaders = among.filter((id) => running.get(id)?.node.isLeader() === true);
      if (leaders.length !== 1) throw new Error(`leaders: ${leaders.join(',') || 'none'}`);
      const leader = (running.get(leaders[0] as NodeId) as Running).node;
      for (const id of among) {
        if (running.get(id)?.node.leaderId() !== leader.id) throw new Error(`${id} disagrees`);
      }
      return leader;
    },
    { timeout: conditionWaitMs, interval: 20 },
  );
}

async function waitForApplied(among: readonly NodeId[], index: number): Promise<void> {
  await vi.waitFor(
    () => {
      for (const id of among) {
        const applied = (running.get(id) as Running).node.status().applied;
        if (applied < index) throw new Error(`${id} applied ${applied} < ${index}`);
      }
    },
    { timeout: conditionWaitMs, interval: 20 },
  );
}

afterAll(async () => {
  await Promise.all([...running.values()].map((r) => r.node.close()));
  await Promise.all([...dirs.values()].map((d) => rm(d, { recursive: true, force: true })));
});

describe('RaftNode over TCP with FileStorage', () => {
  it('replicates 1,000 proposals, survives a leader kill without losing an acknowledged write, and the restarted node catches up', async () => {
    for (const id of ids) dirs.set(id, await mkdtemp(join(tmpdir(), `cohort-raft-${id}-`)));
    // Start every transport first (port 0), then tell each the others' addresses.
    for (const [k, id] of ids.entries()) await startNode(id, k + 1);
    for (const [id, r] of running) {
      for (const [other, address] of addresses)
        if (other !== id) r.transport.setPeer(other, address);
    }

    const leader = await waitForLeader(ids);
    const acked = new Set<string>();
    for (let base = 0; base < 1000; base += 100) {
      await Promise.all(
        Array.from({ length: 100 }, async (_, k) => {
          const v = `v${base + k}`;
          await leader.propose(text(v));
          acked.add(v);
        }),
      );
    }
    expect(acked.size).toBe(1000);
    expect(leader.status().snapshotIndex).toBeGreaterThan(0);

    // Kill the leader while a second wave of proposals is in flight.
    const wave = Array.from({ length: 200 }, async (_, k) => {
      const v = `w${k}`;
      try {
        await leader.propose(text(v));
        acked.add(v);
      } catch (err) {
        // Outcomes the kill may cause; definite ones must not be present later.
        if (!(err instanceof CohortError)) throw err;
      }
    });
    const killed = leader.id;
    const victim = running.get(killed) as Running;
    await victim.transport.close();
    await victim.node.close();
    running.delete(killed);
    await Promise.all(wave);

    const survivors = ids.filter((id) => id !== killed);
    const next = await waitForLeader(survivors);
    expect(next.id).not.toBe(killed);
    const after = await next.propose(text('after-failover'));
    await waitForApplied(survivors, after.index);
    const lists = survivors.map((id) => (running.get(id) as Running).node.stateMachine.items);
    expect(lists[0]).toEqual(lists[1]);
    const present = new Set(lists[0]);
    for (const v of acked) expect(present.has(v)).toBe(true);
    expect(present.has('after-failover')).toBe(true);
    expect(new Set(lists[0]).size).toBe(lists[0]?.length); // nothing applied twice

    // Restart the old leader from its data dir (same port) and let it catch up.
    const back = await startNode(killed, 99);
    // It recovered its own snapshot and log from disk (not only what the leader sends).
    expect(back.node.status().snapshotIndex).toBeGreaterThan(0);
    expect(back.node.status().lastIndex).toBeGreaterThanOrEqual(1000);
    await waitForApplied(ids, after.index);
    expect(back.node.stateMachine.items).toEqual(lists[0]);
    const last = await (await waitForLeader(ids)).propose(text('all-three'));
    await waitForApplied(ids, last.index);
    for (const id of ids) {
      expect((running.get(id) as Running).node.stateMachine.items.at(-1)).toBe('all-three');
    }
  });
});
