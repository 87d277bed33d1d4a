/**
 * Extreme terms from the network (issue 14, item 13): a Raft message with a
 * term near 2^53 once left a cluster leaderless for good (every node adopted
 * it, and the next election's term + 1 was refused by every receiver). Three
 * RaftNodes run over real TCP transports in this process; a rogue peer in
 * their address book (but not a voter) speaks frames by hand on a raw socket.
 */
import net from 'node:net';
import { pack } from 'msgpackr';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { clusterId, nodeId } from '../../../src/lib/ids.js';
import type { NodeId } from '../../../src/lib/ids.js';
import { limits } from '../../../src/lib/limits.js';
import { seededRandom } from '../../../src/lib/random.js';
import type { RaftMessage } from '../../../src/raft/core/messages.js';
import { raftMessagesCodec } from '../../../src/raft/raft-messages-codec.js';
import { RaftNode } from '../../../src/raft/raft-node.js';
import { MemoryStorage } from '../../../src/raft/storage/memory.js';
import { TcpTransport } from '../../../src/transport/tcp-transport.js';
import type { PeerAddress } from '../../../src/transport/tcp-transport.js';
import { encodeFrame, FrameDecoder } from '../../../src/wire/frame.js';
import { handshakeCodec } from '../../../src/wire/handshake.js';
import { conditionWaitMs } from '../../harness/wait.js';
import { freePort } from '../../transport/tcp-harness.js';
import { ListMachine, testLogger, text } from './helpers.js';

const cluster = clusterId('raft-extreme-terms');
const ids = ['n1', 'n2', 'n3'].map(nodeId);
const rogueId = nodeId('x');

interface Running {
  readonly node: RaftNode<ListMachine>;
  readonly transport: TcpTransport<RaftMessage>;
  readonly lines: string[];
}

const running = new Map<NodeId, Running>();
const sockets: net.Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all([...running.values()].map((r) => r.node.close()));
  running.clear();
});

async function startCluster(): Promise<void> {
  const book = new Map<NodeId, PeerAddress>();
  for (const id of [...ids, rogueId]) book.set(id, { host: '127.0.0.1', port: await freePort() });
  for (const [k, id] of ids.entries()) {
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(line) });
    const transport = await TcpTransport.start<RaftMessage>({
      self: id,
      clusterId: cluster,
      codec: raftMessagesCodec(),
      listen: book.get(id) as PeerAddress,
      peers: book,
      limits: { reconnectDelayMsMin: 5, reconnectDelayMsMax: 100 },
      logger: testLogger(),
    });
    const node = await RaftNode.start({
      id,
      peers: ids.filter((p) => p !== id),
      transport,
      storage: new MemoryStorage(),
      stateMachine: new ListMachine(),
      random: seededRandom(k + 1),
      tickMs: 10,
      raft: { electionTicks: 10 },
      logger,
    });
    running.set(id, { node, transport, lines });
  }
}

function get(id: NodeId): Running {
  return running.get(id) as Running;
}

/** The one leader all nodes follow, once there is one. */
async function waitForLeader(): Promise<RaftNode<ListMachine>> {
  return vi.waitFor(
    () => {
      const leaders = ids.filter((id) => get(id).node.isLeader());
      if (leaders.length !== 1) throw new Error(`leaders: ${leaders.join(',') || 'none'}`);
      const leader = get(leaders[0] as NodeId).node;
      for (const id of ids) {
        if (get(id).node.leaderId() !== leader.id) throw new Error(`${id} disagrees`);
      }
      return leader;
    },
    { timeout: conditionWaitMs, interval: 20 },
  );
}

/** A raw connection to `to` that claims to be the rogue peer; resolves after the Welcome. */
async function rogueLink(to: NodeId): Promise<{ send(m: object): void; closed(): boolean }> {
  const { port } = get(to).transport.address as PeerAddress;
  const socket = net.connect(port, '127.0.0.1');
  sockets.push(socket);
  socket.on('error', () => {});
  let closed = false;
  socket.on('close', () => {
    closed = true;
  });
  const decoder = new FrameDecoder();
  const welcome = new Promise<void>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      decoder.push(chunk);
      for (let p = decoder.next(); p !== undefined; p = decoder.next()) {
        if (p.length === 0) continue; // keepalive
        try {
          if (handshakeCodec.decode(p).type === 'Welcome') resolve();
        } catch {
          // Raft messages after the handshake: not for us to read.
        }
      }
    });
    socket.once('close', () =>
      reject(new Error(`${to} closed the rogue link during the handshake`)),
    );
  });
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.write(
    handshakeCodec.encodeFrame({
      type: 'Hello',
      protocolVersion: limits.protocolVersion,
      clusterId: cluster,
      nodeId: rogueId,
      to,
    }),
  );
  await welcome;
  // Frames made by hand: no encoder in the way of an out-of-bounds field.
  return { send: (m) => socket.write(encodeFrame(pack(m))), closed: () => closed };
}

/** Messages that make a node adopt their term: a leader's heartbeat, a transfer vote request. */
function adoptable(to: NodeId, term: number): object[] {
  return [
    { type: 'Heartbeat', from: rogueId, to, term, commit: 0, seq: 0 },
    {
      type: 'RequestVote',
      from: rogueId,
      to,
      term,
      lastLogIndex: 1_000_000,
      lastLogTerm: term,
      transfer: true,
    },
  ];
}

async function proposes(leader: RaftNode<ListMachine>, what: string): Promise<void> {
  await leader.propose(text(what));
}

describe('RaftNode: terms far out of range from the network', () => {
  it('refuses a term near 2^53 where it is decoded, and the cluster keeps a leader', async () => {
    await startCluster();
    const before = await waitForLeader();
    const links = await Promise.all(ids.map((id) => rogueLink(id)));
    for (const [k, id] of ids.entries()) {
      for (const m of adoptable(id, Number.MAX_SAFE_INTEGER)) links[k]?.send(m);
    }
    // Refused by the schema (term above raftTermMax): each connection is closed.
    await vi.waitFor(
      () => {
        if (!links.every((l) => l.closed())) throw new Error('rogue links still open');
      },
      { timeout: conditionWaitMs, interval: 20 },
    );
    for (const id of ids) expect(get(id).transport.counters.decodeErrors).toBeGreaterThanOrEqual(1);
    const after = await waitForLeader();
    await proposes(after, 'still works');
    for (const id of ids) expect(get(id).node.status().term).toBeLessThan(limits.raftTermJumpMax);
    expect(after.status().term).toBeGreaterThanOrEqual(before.status().term);
  });

  it('drops a term more than raftTermJumpMax above its own (counted, warned, naming the peer), but follows a small jump', async () => {
    await startCluster();
    const leader = await waitForLeader();
    const term = leader.status().term;
    const links = await Promise.all(ids.map((id) => rogueLink(id)));
    const far = term + limits.raftTermJumpMax + 1;
    expect(far).toBeLessThan(limits.raftTermMax); // within the schema: only the jump is implausible
    for (const [k, id] of ids.entries()) for (const m of adoptable(id, far)) links[k]?.send(m);
    await vi.waitFor(
      () => {
        for (const id of ids) {
          if (get(id).node.status().termJumpsRefused < 2) throw new Error(`${id} not yet`);
        }
      },
      { timeout: conditionWaitMs, interval: 20 },
    );
    for (const id of ids) {
      const s = get(id).node.status();
      expect(s.term).toBeLessThan(far); // not adopted (elections under load may add a few)
      expect(s.droppedMessages).toBeGreaterThanOrEqual(2);
      const warning = get(id).lines.find((l) => l.includes('implausibly far above ours'));
      expect(warning).toContain('"from":"x"');
      expect(warning).toContain(`"messageTerm":${far}`);
    }
    expect(links.every((l) => !l.closed())).toBe(true); // well-formed: the link stays
    await proposes(await waitForLeader(), 'after the far term');

    // A plausible higher term is Raft's own business: the nodes follow it (the
    // rogue "leader" then goes quiet) and elect a leader of their own above it.
    const near = get(ids[0] as NodeId).node.status().term + 5;
    for (const [k, id] of ids.entries()) links[k]?.send(adoptable(id, near)[0] as object);
    const regained = await vi.waitFor(
      async () => {
        const l = await waitForLeader();
        if (l.status().term <= near) throw new Error(`leader term ${l.status().term}`);
        return l;
      },
      { timeout: conditionWaitMs, interval: 50 },
    );
    await proposes(regained, 'after the near term');
  });
});
