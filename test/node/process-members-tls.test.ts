/**
 * Membership on a secure cluster (the default `cohort up` makes): a node
 * started with `--join` and its own node certificate is added and promoted,
 * `cohort member list/remove` work with the root user's certificate, the
 * removed member's certificate no longer opens a Raft link nor adds it back
 * (a user's `cohort member add` does), and a caller without a certificate
 * is refused. Before `cohort member` and
 * `--join` spoke TLS, both failed against every TLS cluster.
 */
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { limits } from '../../src/lib/limits.js';
import type { CertDir } from '../../src/trust/cert-dir.js';
import { FrameDecoder } from '../../src/wire/frame.js';
import { handshakeCodec } from '../../src/wire/handshake.js';
import type { HandshakeMessage } from '../../src/wire/handshake.js';
import { callLeader } from '../../src/node/members.js';
import type { MemberList } from '../../src/node/members.js';
import { runCli } from '../harness/cli.js';
import { ProcessCluster, until } from '../harness/process-cluster.js';

const cohort = runCli;

let cluster: ProcessCluster;

beforeAll(async () => {
  cluster = await ProcessCluster.start({ nodes: 3, tls: true });
});

afterAll(async () => {
  await cluster.close();
});

/**
 * Opens a TLS link to `to`'s Raft port with node `id`'s certificate, says
 * Hello as `id`, and returns the first handshake frame the node answers
 * (undefined if it closed without one).
 */
async function dialRaftAs(id: string, to: string): Promise<HandshakeMessage | undefined> {
  const f = (cluster.certs as CertDir).files({ kind: 'node', id });
  const socket = tls.connect({
    host: '127.0.0.1',
    port: cluster.node(to).listen.port,
    ca: readFileSync(f.ca),
    cert: readFileSync(f.cert),
    key: readFileSync(f.key),
    checkServerIdentity: () => undefined,
  });
  const frames: HandshakeMessage[] = [];
  const decoder = new FrameDecoder();
  let closed = false;
  socket.on('error', () => {});
  socket.on('close', () => (closed = true));
  socket.on('data', (chunk: Buffer) => {
    decoder.push(chunk);
    for (let p = decoder.next(); p !== undefined; p = decoder.next()) {
      if (p.length > 0) frames.push(handshakeCodec.decode(p));
    }
  });
  await new Promise<void>((r) => {
    socket.once('secureConnect', () => r());
    socket.once('close', () => r());
  });
  socket.write(
    handshakeCodec.encodeFrame({
      type: 'Hello',
      protocolVersion: limits.protocolVersion,
      clusterId: cluster.clusterId,
      nodeId: id,
      to,
    }),
  );
  await until('the link to be answered and closed', () =>
    Promise.resolve(closed || frames.length > 0 ? true : undefined),
  );
  socket.destroy();
  return frames[0];
}

describe('membership on a TLS cluster', () => {
  it('joins with a node certificate, lists and removes with a user certificate, refuses plaintext', async () => {
    await cluster.waitForLeader();
    await cluster.plan('n4');
    const tls = cluster.clientTls;
    expect(tls).toBeDefined();
    const endpoints = cluster
      .endpoints()
      .map((e) => `${e.id}=${e.host}:${e.port}`)
      .join(',');
    const target = [
      '--endpoints',
      endpoints,
      '--cluster-id',
      cluster.clusterId,
      '--ca',
      tls?.ca ?? '',
      '--cert',
      tls?.cert ?? '',
      '--key',
      tls?.key ?? '',
    ];
    cluster.join('n4');
    const list = async (): Promise<MemberList | undefined> => {
      const r = await cohort(['member', 'list', '--json', ...target]);
      return r.code === 0 ? (JSON.parse(r.stdout) as MemberList) : undefined;
    };
    await until('n4 promoted to voter', async () => {
      const l = await list();
      return l?.members.some((m) => m.id === 'n4' && m.role === 'voter') === true ? l : undefined;
    });

    const removed = await cohort(['member', 'remove', 'n4', '--json', ...target]);
    expect(removed.stderr).toBe('');
    expect(removed.code).toBe(0);
    const after = await list();
    expect(after?.members.map((m) => m.id).sort()).toEqual(['n1', 'n2', 'n3']);
    // n4 asks the leader over mTLS with its node certificate, learns it was removed, stops with 0.
    expect(
      await until('n4 stopped after its removal', () => Promise.resolve(cluster.ended('n4'))),
    ).toBe(0);
    expect(cluster.output('n4')).toContain('this node was removed from the cluster');

    // The removed member dials a Raft port again with its still valid certificate: refused.
    const refusal = await dialRaftAs('n4', 'n1');
    expect(refusal).toMatchObject({ type: 'Reject', code: 'identity' });
    expect((refusal as { reason: string }).reason).toMatch(/node n4 is not a member/);

    // A node certificate adds only its own node: n4's, asking to add n9, is refused.
    const f4 = (cluster.certs as CertDir).files({ kind: 'node', id: 'n4' });
    const asN4 = {
      ca: readFileSync(f4.ca),
      cert: readFileSync(f4.cert),
      key: readFileSync(f4.key),
    };
    const members = cluster
      .endpoints()
      .filter((e) => e.id !== 'n4')
      .map((e) => ({ id: e.id, rpc: { host: e.host, port: e.port } }));
    await expect(
      callLeader(
        members,
        cluster.clusterId,
        (m, t) => m.add({ id: 'n9', raft: '127.0.0.1:1', rpc: '127.0.0.1:2' }, { timeoutMs: t }),
        { tls: asN4 },
      ),
    ).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });

    // Nor may it add itself back with that certificate (--join, empty data dir): refused,
    // and the node does not start.
    await cluster.restart('n4', { wipe: true });
    expect(await until('the rejoin refused', () => Promise.resolve(cluster.ended('n4')))).not.toBe(
      0,
    );
    expect(cluster.output('n4')).toMatch(/n4 was removed from the cluster/);
    expect((await list())?.members.map((m) => m.id).sort()).toEqual(['n1', 'n2', 'n3']);
    // A user adds it back; then the node's own join goes through and it is promoted.
    const n4 = cluster.node('n4');
    const readded = await cohort([
      'member',
      'add',
      'n4',
      `${n4.listen.host}:${n4.listen.port}`,
      `${n4.rpc.host}:${n4.rpc.port}`,
      ...target,
    ]);
    expect(readded.stderr).toBe('');
    expect(readded.code).toBe(0);
    await cluster.restart('n4', { wipe: true });
    await until('n4 a voter again', async () => {
      const l = await list();
      return l?.members.some((m) => m.id === 'n4' && m.role === 'voter') === true ? l : undefined;
    });

    // Plaintext against the TLS cluster: refused, and says so.
    const plain = await cohort([
      'member',
      'list',
      '--endpoints',
      endpoints,
      '--cluster-id',
      cluster.clusterId,
      '--insecure',
      '--timeout-ms',
      '2000',
    ]);
    expect(plain.code).not.toBe(0);
    expect(plain.stderr).toMatch(/cohort member list/);
  });
});
