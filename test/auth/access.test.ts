/**
 * A node's access policy (node/access.ts) rule by rule, and a member removed
 * from the Raft configuration of a TLS cluster: its links are closed and a
 * new link with its (still valid) certificate is refused.
 */
import { join } from 'node:path';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { AuthStore } from '../../src/auth/core/auth-store.js';
import { kvKey } from '../../src/kv/core/bytes.js';
import type { CohortError } from '../../src/lib/errors.js';
import { clusterId, nodeId } from '../../src/lib/ids.js';
import type { NodeId } from '../../src/lib/ids.js';
import { limits } from '../../src/lib/limits.js';
import { AccessPolicy } from '../../src/node/access.js';
import type { CallContext } from '../../src/rpc/service.js';
import type { ServerCallInfo } from '../../src/rpc/server.js';
import { CertDir } from '../../src/trust/cert-dir.js';
import type { PeerIdentity } from '../../src/trust/identity.js';
import { FrameDecoder } from '../../src/wire/frame.js';
import { handshakeCodec } from '../../src/wire/handshake.js';
import type { HandshakeMessage } from '../../src/wire/handshake.js';
import { KvTestCluster } from '../kv/kv-cluster.js';
import { tempDir } from '../harness/tmp.js';
import { waitUntil } from '../harness/wait.js';

const cid = clusterId('cohort-local');
const node = (id: string): PeerIdentity => ({ kind: 'node', clusterId: cid, id: nodeId(id) });
const user = (name: string): PeerIdentity => ({ kind: 'user', clusterId: cid, name });
const anonymous: PeerIdentity = { kind: 'anonymous' };

function policy(members: string[] = ['n1', 'n2', 'n3']): { p: AccessPolicy; store: AuthStore } {
  const store = new AuthStore();
  const p = new AccessPolicy({
    self: nodeId('n1'),
    insecure: false,
    auth: store,
    isMember: (id: NodeId) => members.includes(id),
  });
  return { p, store };
}

function call(identity: PeerIdentity, service: string, method: string, meta = {}): ServerCallInfo {
  return { peer: nodeId('x'), identity, service, method, meta, request: {} };
}

const codeOf = (e: CohortError | undefined): string | undefined => e?.code;

describe('the access policy', () => {
  it('admits members only on the Raft port, users and members on the RPC port', () => {
    const members = ['n1', 'n2', 'n3'];
    const { p } = policy(members);
    expect(p.raftAdmit(node('n2'), nodeId('n2'))).toBeUndefined();
    expect(p.raftAdmit(node('n9'), nodeId('n9'))).toMatch(/n9 is not a member/);
    expect(p.raftAdmit(user('root'), nodeId('n2'))).toMatch(/users may not connect/);
    expect(p.rpcAdmit(user('alice'), nodeId('user:alice:1'))).toBeUndefined();
    expect(p.rpcAdmit(node('n3'), nodeId('n3'))).toBeUndefined();
    expect(p.rpcAdmit(node('n9'), nodeId('n9'))).toMatch(/n9 is not a member/);
    // Removal takes effect at once.
    members.splice(members.indexOf('n3'), 1);
    expect(p.raftAdmit(node('n3'), nodeId('n3'))).toMatch(/n3 is not a member/);
    expect(p.rpcAdmit(node('n3'), nodeId('n3'))).toMatch(/n3 is not a member/);
  });

  it('keeps nodes off the client API and users off the node-to-node methods', () => {
    const { p, store } = policy();
    store.apply({ type: 'userAdd', name: 'alice' });
    expect(codeOf(p.authorize(call(node('n2'), 'Kv', 'put')))).toBe('PERMISSION_DENIED');
    expect(codeOf(p.authorize(call(node('n2'), 'Auth', 'userAdd')))).toBe('PERMISSION_DENIED');
    expect(codeOf(p.authorize(call(node('n2'), 'MapReduce', 'submit')))).toBe('PERMISSION_DENIED');
    expect(p.authorize(call(node('n2'), 'MapReduce', 'submit', { 'mr-forwarded': 'n2' }))).toBe(
      undefined,
    );
    expect(p.authorize(call(node('n2'), 'MapReduce', 'requestTask'))).toBeUndefined();
    expect(p.authorize(call(node('n2'), 'Node', 'status'))).toBeUndefined();
    expect(codeOf(p.authorize(call(user('root'), 'MapReduce', 'requestTask')))).toBe(
      'PERMISSION_DENIED',
    );
    expect(codeOf(p.authorize(call(user('root'), 'Raft', 'anything')))).toBe('PERMISSION_DENIED');
    // Capabilities and root.
    expect(codeOf(p.authorize(call(user('alice'), 'MapReduce', 'submit')))).toBe(
      'PERMISSION_DENIED',
    );
    expect(codeOf(p.authorize(call(user('alice'), 'Node', 'status')))).toBe('PERMISSION_DENIED');
    expect(codeOf(p.authorize(call(user('alice'), 'Auth', 'userAdd')))).toBe('PERMISSION_DENIED');
    expect(p.authorize(call(user('alice'), 'Auth', 'whoami'))).toBeUndefined();
    expect(p.authorize(call(user('alice'), 'Kv', 'put'))).toBeUndefined(); // per key, in the server
    expect(p.authorize(call(user('root'), 'MapReduce', 'submit'))).toBeUndefined();
    expect(p.authorize(call(user('root'), 'Auth', 'userAdd'))).toBeUndefined();
    store.apply({ type: 'roleAdd', name: 'ops' });
    store.apply({ type: 'roleGrantCapability', name: 'ops', capability: 'mapreduce' });
    store.apply({ type: 'userGrantRole', name: 'alice', role: 'ops' });
    expect(p.authorize(call(user('alice'), 'MapReduce', 'submit'))).toBeUndefined();
    // Auth disabled: every user may call the client API, never the node-to-node one.
    store.apply({ type: 'authDisable' });
    expect(p.authorize(call(user('bob'), 'Auth', 'userAdd'))).toBeUndefined();
    expect(codeOf(p.authorize(call(user('bob'), 'MapReduce', 'requestTask')))).toBe(
      'PERMISSION_DENIED',
    );
    // --insecure: nobody is authenticated, every caller is root.
    expect(p.authorize(call(anonymous, 'Auth', 'userAdd'))).toBeUndefined();
  });

  it("checks KV keys against the caller's roles; a node may not use the store", () => {
    const { p, store } = policy();
    store.apply({ type: 'userAdd', name: 'alice' });
    const ctx = (identity: PeerIdentity): CallContext => ({ identity }) as unknown as CallContext;
    const refused = (identity: PeerIdentity, key: string): string | undefined => {
      try {
        p.kv.checkKeys(ctx(identity), [{ access: 'read', key: kvKey(key) }]);
        return undefined;
      } catch (e) {
        return (e as CohortError).message;
      }
    };
    expect(refused(user('alice'), 'a')).toMatch(/user alice lacks read permission on key "a"/);
    expect(refused(user('root'), 'a')).toBeUndefined();
    expect(refused(node('n2'), 'a')).toMatch(/node n2 may not use the key-value store/);
    expect(refused(anonymous, 'a')).toBeUndefined();
    expect(p.kv.sessionOwner(ctx(user('alice')))).toBe('alice');
    expect(p.kv.sessionOwner(ctx(anonymous))).toBeUndefined();
  });
});

let cluster: KvTestCluster | undefined;
afterAll(async () => {
  await cluster?.close();
});

describe('a removed member', () => {
  it('loses its links and is refused when it dials again with its valid certificate', async () => {
    const certs = new CertDir(join(tempDir('cohort-removed-'), 'certs'));
    await certs.ensure({ clusterId: 'cohort-local', nodes: ['n1', 'n2', 'n3'], users: [] });
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (l: string) => lines.push(l) });
    cluster = await KvTestCluster.start(3, { logger }, {}, certs);
    const leader = await cluster.leader();
    const victim = leader.config.id === 'n3' ? 'n2' : 'n3';
    await leader.raft.removeNode(nodeId(victim));
    await until(() =>
      lines.some((l) => l.includes('node is no longer a member') && l.includes(`"${victim}"`)),
    );

    // A fresh link to the leader's Raft port with the removed node's certificate.
    const f = certs.files({ kind: 'node', id: victim });
    const socket = tls.connect({
      host: '127.0.0.1',
      port: leader.config.listen.port,
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
    await new Promise<void>((r) => socket.once('secureConnect', () => r()));
    socket.write(
      handshakeCodec.encodeFrame({
        type: 'Hello',
        protocolVersion: limits.protocolVersion,
        clusterId: 'cohort-local',
        nodeId: victim,
        to: leader.config.id,
      }),
    );
    await until(() => closed);
    expect(frames[0]).toMatchObject({ type: 'Reject', code: 'identity' });
    expect((frames[0] as { reason: string }).reason).toMatch(
      new RegExp(`node ${victim} is not a member`),
    );
    expect(frames.map((x) => x.type)).not.toContain('Welcome');
  });
});

async function until(cond: () => boolean, what = 'the condition'): Promise<void> {
  await waitUntil(what, () => cond());
}
