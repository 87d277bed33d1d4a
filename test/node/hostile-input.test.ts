/**
 * Hostile input against real `cohort node` processes (issue 14, items 1 and
 * 13): an outsider on the same machine opens raw sockets to every node's RPC
 * and Raft ports and sends what once took a cluster down — a 9.7 KB RPC
 * request of 9,600 nested arrays (it overflowed the decoder's stack and the
 * exception left the transport's data handler, ending the process) and Raft
 * messages with a term near 2^53 (every node adopted it, and the next
 * election's term was then refused everywhere: leaderless for good). Every
 * process must stay up, close those connections, and keep a leader that
 * accepts writes, with a sane term.
 */
import net from 'node:net';
import { pack } from 'msgpackr';
import { afterAll, describe, expect, it } from 'vitest';
import { limits } from '../../src/lib/limits.js';
import { KvClient } from '../../src/kv/client.js';
import { encodeFrame, FrameDecoder } from '../../src/wire/frame.js';
import { handshakeCodec } from '../../src/wire/handshake.js';
import { ProcessCluster, until } from '../harness/process-cluster.js';

let cluster: ProcessCluster | undefined;
const sockets: net.Socket[] = [];

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await cluster?.close();
});

/** A raw link to `port` introduced as `self`; resolves once the node answered the Hello. */
async function rawLink(
  port: number,
  self: string,
  to: string,
  clusterId: string,
): Promise<{ send(bytes: Uint8Array): void; closed(): boolean; answer: string }> {
  const socket = net.connect(port, '127.0.0.1');
  sockets.push(socket);
  socket.on('error', () => {});
  let closed = false;
  socket.on('close', () => {
    closed = true;
  });
  const decoder = new FrameDecoder();
  const answer = new Promise<string>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      decoder.push(chunk);
      for (let p = decoder.next(); p !== undefined; p = decoder.next()) {
        if (p.length === 0) continue; // a keepalive
        try {
          resolve(handshakeCodec.decode(p).type);
        } catch {
          // messages after the handshake: not read here
        }
      }
    });
    socket.once('close', () => reject(new Error(`${to} closed the link during the handshake`)));
  });
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.write(
    handshakeCodec.encodeFrame({
      type: 'Hello',
      protocolVersion: limits.protocolVersion,
      clusterId,
      nodeId: self,
      to,
    }),
  );
  return { send: (bytes) => socket.write(bytes), closed: () => closed, answer: await answer };
}

/** An RpcRequest frame whose payload is `depth` nested one-item arrays. */
function nestedRequest(id: number, depth: number): Uint8Array {
  const head = pack({
    type: 'RpcRequest',
    id,
    service: 'Probe',
    method: 'x',
    timeoutMs: 1000,
    payload: 0,
  });
  return encodeFrame(
    new Uint8Array([...head.subarray(0, -1), ...new Uint8Array(depth).fill(0x91), 1]),
  );
}

describe('cohort node processes under hostile input', () => {
  it('survive a 9,600-deep RPC request and terms near 2^53 or far ahead, and keep a leader that takes writes', async () => {
    cluster = await ProcessCluster.start({ nodes: 3 });
    const c = cluster;
    const before = await c.waitForLeader();
    const ids = c.nodes.map((n) => n.id);

    // 1. The deep request, after many shallow ones (they warm the decoder up:
    // optimised code has smaller stack frames, which is how the probe's
    // 9,600 levels got past the MessagePack decoder and overflowed later).
    for (const n of c.nodes) {
      const link = await rawLink(n.rpc.port, 'client-probe', n.id, c.clusterId);
      expect(link.answer).toBe('Welcome');
      const warm = Array.from({ length: 500 }, (_, i) => nestedRequest(i + 1, 90));
      link.send(
        Buffer.concat([...warm, nestedRequest(1_000, 9_600), nestedRequest(1_001, 12_000)]),
      );
      await until(`${n.id} to close the deep request's connection`, () =>
        Promise.resolve(link.closed() ? true : undefined),
      );
    }

    // Every node still runs and follows a leader.
    await c.waitForLeader({ followers: ids.length });
    for (const id of ids) expect(c.running(id), `${id} is running\n${c.output(id)}`).toBe(true);

    // 2. Raft messages from a "peer" (the handshake only checks the claimed id
    // against the address book; the real peer's link is replaced meanwhile).
    const raftMessages = (from: string, to: string, term: number): Uint8Array =>
      Buffer.concat([
        encodeFrame(pack({ type: 'Heartbeat', from, to, term, commit: 0, seq: 0 })),
        encodeFrame(
          pack({
            type: 'RequestVote',
            from,
            to,
            term,
            lastLogIndex: 1_000_000,
            lastLogTerm: term,
            transfer: true,
          }),
        ),
      ]);
    for (const [k, n] of c.nodes.entries()) {
      const claim = ids[(k + 1) % ids.length] as string;
      const link = await rawLink(n.listen.port, claim, n.id, c.clusterId);
      expect(link.answer).toBe('Welcome');
      link.send(raftMessages(claim, n.id, Number.MAX_SAFE_INTEGER));
      await until(`${n.id} to close the link with the term near 2^53`, () =>
        Promise.resolve(link.closed() ? true : undefined),
      );
    }
    const far = before.term + limits.raftTermJumpMax + 10; // valid on the wire, implausible as a jump
    for (const [k, n] of c.nodes.entries()) {
      const claim = ids[(k + 2) % ids.length] as string;
      const link = await rawLink(n.listen.port, claim, n.id, c.clusterId);
      link.send(raftMessages(claim, n.id, far));
    }

    // Every process is still up, and there is a leader with a sane term that takes writes.
    for (const id of ids) expect(c.running(id), `${id} is running\n${c.output(id)}`).toBe(true);
    const after = await c.waitForLeader();
    expect(after.term).toBeLessThan(far);
    const kv = await KvClient.connect({ endpoints: c.endpoints(), clusterId: c.clusterId });
    try {
      const put = await kv.put('after-the-probe', 'ok');
      expect(put.revision).toBeGreaterThan(0);
    } finally {
      await kv.close();
    }
    for (const id of ids) expect(c.running(id), `${id} is running\n${c.output(id)}`).toBe(true);
    for (const s of await c.statuses()) expect(s.term).toBeLessThan(far);
  });
});
