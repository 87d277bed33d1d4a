/**
 * Issue 13's attacks against real `cohort node` processes running with
 * mutual TLS (the default), as an outsider on the same machine would try
 * them with cohort's own modules: a plaintext handshake claiming to be n1, a
 * member's certificate claiming another member's id, a user's certificate on
 * the Raft port, a client with no certificate, one from another CA, an
 * expired one, a node's certificate used as a client, and a user without
 * permission trying every kind of KV access and a MapReduce submit. Each is
 * refused with a clear error, no forged Raft message reaches a Raft core
 * (the term does not move), and nothing changes.
 *
 * On the code before issue 13 (plaintext links, a handshake believed on its
 * claim, no users) the first attack got a Welcome and every later one
 * succeeded; run with `tls: false` below, the first assertion fails.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { join } from 'node:path';
import { pack } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthClient } from '../../src/auth/client.js';
import { kvKey, prefixRange } from '../../src/kv/core/bytes.js';
import { KvClient } from '../../src/kv/client.js';
import { isCohortError } from '../../src/lib/errors.js';
import { clusterId } from '../../src/lib/ids.js';
import { limits } from '../../src/lib/limits.js';
import { MapReduceService } from '../../src/mapreduce/service.js';
import { startTcpClient } from '../../src/rpc/tcp-endpoints.js';
import { CertDir } from '../../src/trust/cert-dir.js';
import { issueCertificate } from '../../src/trust/certificates.js';
import { encodeFrame, FrameDecoder } from '../../src/wire/frame.js';
import { handshakeCodec } from '../../src/wire/handshake.js';
import type { HandshakeMessage } from '../../src/wire/handshake.js';
import { ProcessCluster, until } from '../harness/process-cluster.js';
import { tempDir } from '../harness/tmp.js';

let cluster: ProcessCluster;
let certs: CertDir;
const closers: (() => unknown)[] = [];

beforeAll(async () => {
  cluster = await ProcessCluster.start({ nodes: 3, tls: true, logLevel: 'info' });
  certs = cluster.certs as CertDir;
  await cluster.waitForLeader();
});

afterAll(async () => {
  for (const c of closers.reverse()) await c();
  await cluster.close();
});

/** A link speaking handshake frames by hand, over TLS with `options` or plaintext without. */
async function rawLink(
  port: number,
  options: tls.ConnectionOptions | undefined,
  hello: { self: string; to: string },
): Promise<{
  send(bytes: Uint8Array): void;
  frames: HandshakeMessage[];
  closed(): boolean;
  error(): Error | undefined;
}> {
  const socket =
    options === undefined
      ? net.connect(port, '127.0.0.1')
      : tls.connect({ host: '127.0.0.1', port, checkServerIdentity: () => undefined, ...options });
  closers.push(() => socket.destroy());
  let closed = false;
  let err: Error | undefined;
  socket.on('error', (e: Error) => (err = e));
  socket.on('close', () => (closed = true));
  const frames: HandshakeMessage[] = [];
  const decoder = new FrameDecoder();
  socket.on('data', (chunk: Buffer) => {
    decoder.push(chunk);
    for (let p = decoder.next(); p !== undefined; p = decoder.next()) {
      if (p.length === 0) continue;
      try {
        frames.push(handshakeCodec.decode(p));
      } catch {
        // after the handshake: not read here
      }
    }
  });
  await new Promise<void>((resolve) => {
    socket.once(options === undefined ? 'connect' : 'secureConnect', () => resolve());
    socket.once('close', () => resolve());
  });
  if (!closed) {
    socket.write(
      handshakeCodec.encodeFrame({
        type: 'Hello',
        protocolVersion: limits.protocolVersion,
        clusterId: cluster.clusterId,
        nodeId: hello.self,
        to: hello.to,
      }),
    );
  }
  return {
    send: (b) => socket.write(b),
    frames,
    closed: () => closed,
    error: () => err,
  };
}

/** The forged Raft messages of the issue: a heartbeat at a high term, and a vote request at 2^53-1. */
function forgedRaft(from: string, to: string, term: number): Uint8Array {
  return Buffer.concat([
    encodeFrame(pack({ type: 'Heartbeat', from, to, term, commit: 0, seq: 0 })),
    encodeFrame(
      pack({
        type: 'RequestVote',
        from,
        to,
        term: Number.MAX_SAFE_INTEGER,
        lastLogIndex: 1_000_000,
        lastLogTerm: term,
        transfer: true,
      }),
    ),
  ]);
}

/** PEM text of a credential file set, for tls.connect. */
function pemOf(files: { ca: string; cert: string; key: string }): tls.ConnectionOptions {
  // The files are 0600 and ours: read them as the test's user.
  return {
    ca: readText(files.ca),
    cert: readText(files.cert),
    key: readText(files.key),
  };
}

function readText(path: string): string {
  return readFileSync(path, 'utf8');
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return isCohortError(e) ? `${e.code}: ${e.message}` : String(e);
  }
}

describe('attacks on a TLS cluster (issue 13)', () => {
  it('refuses forged handshakes: plaintext as n1, n3 claiming n2, a user on the Raft port, a non-member; Raft messages over a client link; no forged message reaches Raft', async () => {
    const before = await cluster.waitForLeader();
    const [n1, n2] = [cluster.node('n1'), cluster.node('n2')];

    // 1. A plaintext Hello claiming n1 (what took the cluster down before).
    const plain = await rawLink(n2.listen.port, undefined, { self: 'n1', to: 'n2' });
    await until('the plaintext impostor to be closed', () =>
      Promise.resolve(plain.closed() ? true : undefined),
    );
    expect(plain.frames.map((f) => f.type)).not.toContain('Welcome');
    plain.send(forgedRaft('n1', 'n2', before.term + 1));

    // 2. n3's valid certificate, claiming to be n2.
    const n3 = certs.files({ kind: 'node', id: 'n3' });
    const impostor = await rawLink(n1.listen.port, pemOf(n3), { self: 'n2', to: 'n1' });
    await until('n3-as-n2 to be refused', () =>
      Promise.resolve(impostor.closed() ? true : undefined),
    );
    expect(impostor.frames[0]).toMatchObject({ type: 'Reject', code: 'identity' });
    expect(impostor.frames.map((f) => f.type)).not.toContain('Welcome');
    impostor.send(forgedRaft('n2', 'n1', before.term + 1));
    // n1 logs it at warn, naming the address and both ids.
    await until('n1 to log the refused identity', () =>
      Promise.resolve(cluster.output('n1').includes('"claimed":"n2"') ? true : undefined),
    );
    const line = cluster
      .output('n1')
      .split('\n')
      .find((l) => l.includes('"claimed":"n2"')) as string;
    expect(line).toContain('"level":40');
    expect(line).toContain('"identity":"node n3"');
    expect(line).toMatch(/"remote":"[^"]*127\.0\.0\.1:\d+"/);

    // 3. The root user's certificate on a Raft port: users are clients, never peers.
    const root = certs.files({ kind: 'user', name: 'root' });
    const user = await rawLink(n1.listen.port, pemOf(root), { self: 'n2', to: 'n1' });
    await until('the user on the Raft port to be refused', () =>
      Promise.resolve(user.closed() ? true : undefined),
    );
    expect(user.frames[0]).toMatchObject({ type: 'Reject', code: 'identity' });
    user.send(forgedRaft('n2', 'n1', before.term + 1));

    // 4. A node certificate of the cluster's CA for a node that is not a member (n9).
    await certs.issue({ kind: 'node', id: 'n9' });
    const stranger = await rawLink(n1.listen.port, pemOf(certs.files({ kind: 'node', id: 'n9' })), {
      self: 'n9',
      to: 'n1',
    });
    await until('the non-member to be refused', () =>
      Promise.resolve(stranger.closed() ? true : undefined),
    );
    expect(stranger.frames[0]).toMatchObject({ type: 'Reject', code: 'identity' });
    expect((stranger.frames[0] as { reason: string }).reason).toMatch(/n9 is not a member/);
    stranger.send(forgedRaft('n9', 'n1', before.term + 1));

    // 5. Raft messages over a client link: the root user's accepted link to an RPC port.
    const client = await rawLink(n1.rpc.port, pemOf(root), { self: 'user:root:0042', to: 'n1' });
    await until('the client link to be welcomed', () =>
      Promise.resolve(client.frames.some((f) => f.type === 'Welcome') ? true : undefined),
    );
    client.send(forgedRaft('n2', 'n1', before.term + 1));
    // The RPC port does not speak Raft: the node closes the link as bad input.
    await until('the client link carrying Raft messages to be closed', () =>
      Promise.resolve(client.closed() ? true : undefined),
    );

    // The leader and its term did not move: no forged message reached a Raft core.
    const after = await cluster.waitForLeader({ followers: 2 });
    expect(after.term).toBe(before.term);
    for (const n of cluster.nodes) expect(cluster.running(n.id)).toBe(true);
  });

  it('refuses clients with no certificate, another CA, an expired certificate; a node certificate gets no client API', async () => {
    const endpoints = cluster.endpoints();
    const n1 = cluster.node('n1');
    const root = certs.files({ kind: 'user', name: 'root' });

    // No certificate at all (TLS, trusting the CA).
    const none = await rawLink(n1.rpc.port, { ca: readText(root.ca) }, { self: 'kv-x', to: 'n1' });
    await until('the anonymous client to be refused', () =>
      Promise.resolve(none.closed() ? true : undefined),
    );
    expect(none.frames.map((f) => f.type)).not.toContain('Welcome');
    // A plaintext client, as KvClient without credentials.
    const plain = await KvClient.connect({
      endpoints,
      clusterId: cluster.clusterId,
      retryMs: 500,
      lazy: true,
    });
    closers.push(() => plain.close());
    expect(await code(plain.put('a', 'plain'))).toMatch(/HANDSHAKE_FAILED|requires mutual TLS/);

    // Another cluster's CA.
    const other = new CertDir(join(tempDir('cohort-other-ca-'), 'certs'));
    await other.ensure({ clusterId: cluster.clusterId, nodes: [], users: ['root'] });
    // The library checks a certificate against the CA it is given; a raw TLS link does not.
    const foreign = await rawLink(
      n1.rpc.port,
      { ...pemOf(other.files({ kind: 'user', name: 'root' })), ca: readText(root.ca) },
      { self: 'user:root:0001', to: 'n1' },
    );
    await until("the other CA's certificate to be refused", () =>
      Promise.resolve(foreign.closed() ? true : undefined),
    );
    expect(foreign.frames.map((f) => f.type)).not.toContain('Welcome');

    // An expired certificate of a real user.
    const expired = await issueCertificate(
      certs.ca(),
      { kind: 'user', clusterId: clusterId(cluster.clusterId), name: 'root' },
      { notBefore: new Date(Date.now() - 3 * 86_400_000), days: 1 },
    );
    const stale = rawLink(
      n1.rpc.port,
      { ca: readText(root.ca), cert: expired.cert, key: expired.key },
      { self: 'user:root:0000', to: 'n1' },
    );
    const s = await stale;
    await until('the expired certificate to be refused', () =>
      Promise.resolve(s.closed() ? true : undefined),
    );
    expect(s.frames.map((f) => f.type)).not.toContain('Welcome');

    // A node's certificate as a client: the library refuses it, and so does the node.
    expect(
      await code(
        KvClient.connect({
          endpoints,
          clusterId: cluster.clusterId,
          tls: certs.files({ kind: 'node', id: 'n3' }),
        }),
      ),
    ).toMatch(/INVALID_ARGUMENT: .*needs a user certificate/);
    const rpc = await startTcpClient({
      server: { id: n1.id, host: n1.rpc.host, port: n1.rpc.port },
      clusterId: cluster.clusterId,
      tls: (await import('../../src/trust/client-tls.js')).resolveClientTls(
        certs.files({ kind: 'node', id: 'n3' }),
      ),
    });
    closers.push(() => rpc.close());
    const { KvService } = await import('../../src/kv/service.js');
    expect(
      await code(rpc.client(KvService, rpc.serverId).put({ key: kvKey('a'), value: kvKey('n3') })),
    ).toMatch(/PERMISSION_DENIED: .*node n3 may not/);

    // Nothing was written.
    const admin = await KvClient.connect({ endpoints, clusterId: cluster.clusterId, tls: root });
    closers.push(() => admin.close());
    expect(await admin.get('a')).toBeUndefined();
  });

  it('a user without permission gets PERMISSION_DENIED for every access, and nothing changes', async () => {
    const endpoints = cluster.endpoints();
    const root = certs.files({ kind: 'user', name: 'root' });
    await certs.issue({ kind: 'user', name: 'alice' });
    const alice = certs.files({ kind: 'user', name: 'alice' });
    const auth = await AuthClient.connect({
      nodes: cluster.nodes,
      clusterId: cluster.clusterId,
      tls: root,
    });
    closers.push(() => auth.close());
    await auth.call((s) => s.userAdd({ name: 'alice' }));
    await auth.call((s) => s.roleAdd({ name: 'app' }));
    await auth.call((s) =>
      s.roleGrant({
        name: 'app',
        permission: { type: 'readwrite', ...prefixRange(kvKey('app/')) },
      }),
    );
    await auth.call((s) => s.userGrantRole({ name: 'alice', role: 'app' }));

    const admin = await KvClient.connect({ endpoints, clusterId: cluster.clusterId, tls: root });
    closers.push(() => admin.close());
    const lease = await admin.leaseGrant(60_000);
    await admin.put('secret/x', 'root', { lease: lease.id });
    const rev = (await admin.range('secret/', { prefix: true })).revision;

    const kv = await KvClient.connect({ endpoints, clusterId: cluster.clusterId, tls: alice });
    closers.push(() => kv.close());
    // Allowed: her prefix.
    await kv.put('app/x', 'alice');
    expect(Buffer.from((await kv.get('app/x'))?.value ?? []).toString()).toBe('alice');

    const denied = /^PERMISSION_DENIED: user alice lacks (read|write) permission on /;
    expect(await code(kv.get('secret/x'))).toMatch(denied);
    expect(await code(kv.put('secret/x', 'alice'))).toMatch(denied);
    expect(await code(kv.delete('secret/', { prefix: true }))).toMatch(denied);
    // A txn: the branch not taken counts too.
    expect(
      await code(
        kv.txn({
          compare: [],
          success: [{ type: 'put', key: kvKey('app/y'), value: kvKey('1') }],
          failure: [{ type: 'deleteRange', key: kvKey('secret/x') }],
        }),
      ),
    ).toMatch(denied);
    // A watch on a key she may not read.
    const watch = kv.watch('secret/', { prefix: true, startRevision: 1 });
    expect(await code(watch.next())).toMatch(denied);
    // Revoking root's lease would delete secret/x.
    expect(await code(kv.leaseRevoke(lease.id))).toMatch(denied);
    // Her own lease, attached to a key she may not write.
    const own = await kv.leaseGrant(60_000);
    expect(await code(kv.put('secret/y', 'alice', { lease: own.id }))).toMatch(denied);
    // MapReduce needs the mapreduce capability.
    const n1 = cluster.node('n1');
    const rpc = await startTcpClient({
      server: { id: n1.id, host: n1.rpc.host, port: n1.rpc.port },
      clusterId: cluster.clusterId,
      tls: (await import('../../src/trust/client-tls.js')).resolveUserTls(alice),
    });
    closers.push(() => rpc.close());
    expect(
      await code(
        rpc.client(MapReduceService, rpc.serverId).submit({
          jobId: 'evil',
          module: '/tmp/evil.js',
          splits: [],
          reducers: 1,
          output: '/tmp/evil-out',
        }),
      ),
    ).toMatch(/^PERMISSION_DENIED: user alice lacks the mapreduce capability/);
    // Even root (every capability) may not run a module outside the nodes' --mr-module-dirs
    // (default: their working directory, the repository here).
    const leader = (await cluster.waitForLeader()).id;
    const l = cluster.node(leader);
    const toLeader = await startTcpClient({
      server: { id: l.id, host: l.rpc.host, port: l.rpc.port },
      clusterId: cluster.clusterId,
      tls: (await import('../../src/trust/client-tls.js')).resolveUserTls(root),
    });
    closers.push(() => toLeader.close());
    expect(
      await code(
        toLeader.client(MapReduceService, toLeader.serverId).submit({
          jobId: 'evil-root',
          module: '/tmp/evil.js',
          splits: [],
          reducers: 1,
          output: '/tmp/evil-out',
        }),
      ),
    ).toMatch(/^PERMISSION_DENIED: job module \/tmp\/evil\.js is outside the directories/);
    // Managing users takes root.
    const asAlice = await AuthClient.connect({
      nodes: cluster.nodes,
      clusterId: cluster.clusterId,
      tls: alice,
    });
    closers.push(() => asAlice.close());
    expect(
      await code(asAlice.call((s) => s.userGrantRole({ name: 'alice', role: 'root' }))),
    ).toMatch(/^PERMISSION_DENIED: user alice may not manage users and roles/);

    // Nothing changed: root's key is there, untouched, and nothing else was written under secret/.
    const now = await admin.range('secret/', { prefix: true });
    expect(
      now.kvs.map((x) => [Buffer.from(x.key).toString(), Buffer.from(x.value).toString()]),
    ).toEqual([['secret/x', 'root']]);
    expect(now.kvs[0]?.modRevision).toBeLessThanOrEqual(rev);
    expect((await asAlice.call((s) => s.whoami({}))).roles).toEqual(['app']);
  });

  it("rotates every node's certificate under writes (SIGHUP): no write fails, new connections use the new certificates", async () => {
    const endpoints = cluster.endpoints();
    const root = certs.files({ kind: 'user', name: 'root' });
    const kv = await KvClient.connect({ endpoints, clusterId: cluster.clusterId, tls: root });
    closers.push(() => kv.close());
    let ok = 0;
    const failures: string[] = [];
    let stop = false;
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        try {
          await kv.put(`rot/${i % 10}`, String(i));
          ok++;
        } catch (e) {
          failures.push(String(e));
        }
      }
    })();
    const atLeast = (n: number) => () => Promise.resolve(ok >= n ? true : undefined);
    await until('writes to flow', atLeast(20));
    const reloaded = (id: string): number =>
      cluster.output(id).split('TLS certificate reloaded').length - 1;
    for (const n of cluster.nodes) {
      const before = reloaded(n.id);
      const fresh = await certs.issue({ kind: 'node', id: n.id });
      expect(fresh.cert).toBe(certs.files({ kind: 'node', id: n.id }).cert);
      process.kill(cluster.pid(n.id) as number, 'SIGHUP');
      await until(`${n.id} to reload its certificate`, () =>
        Promise.resolve(reloaded(n.id) > before ? true : undefined),
      );
      const mark = ok;
      await until(`writes to go on after ${n.id}'s rotation`, atLeast(mark + 10));
    }
    // A new client's connections handshake with the new certificates.
    const fresh = await KvClient.connect({ endpoints, clusterId: cluster.clusterId, tls: root });
    closers.push(() => fresh.close());
    await fresh.put('rot/after', 'yes');
    stop = true;
    await writer;
    expect(failures).toEqual([]);
    for (const n of cluster.nodes) expect(cluster.running(n.id)).toBe(true);
  });
});
