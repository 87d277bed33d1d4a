/**
 * The TCP transport over mutual TLS bound to identities: what gets through
 * (members, users where admitted) and what is refused, with what log line
 * (no certificate, another CA, an expired certificate, a claim that is not
 * the certificate's, TLS and plaintext mixed), and certificate rotation.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { limits } from '../../src/lib/limits.js';
import { nodeId } from '../../src/lib/ids.js';
import { TcpTransport } from '../../src/transport/tcp-transport.js';
import type { TcpTlsOptions } from '../../src/transport/tcp-transport.js';
import type { CohortError } from '../../src/lib/errors.js';
import { CertDir, issueCertificate } from '../../src/trust/index.js';
import type { CredentialFiles } from '../../src/trust/index.js';
import { FrameDecoder } from '../../src/wire/frame.js';
import { handshakeCodec } from '../../src/wire/handshake.js';
import type { HandshakeMessage } from '../../src/wire/handshake.js';
import { tempDir } from '../harness/tmp.js';
import { waitFor } from './compliance.js';
import {
  fastLimits,
  freePort,
  testCluster,
  testLogger,
  local,
  perTestNodes,
} from './tcp-harness.js';
import { testCodec } from './test-messages.js';
import type { TestMessage } from './test-messages.js';

const A = nodeId('a');
const B = nodeId('b');

const { cleanups, startNode } = perTestNodes();

let certs: CertDir;
let other: CertDir;
const creds = new Map<string, TcpTlsOptions>();

function load(files: CredentialFiles): TcpTlsOptions {
  return {
    ca: readFileSync(files.ca, 'utf8'),
    cert: readFileSync(files.cert, 'utf8'),
    key: readFileSync(files.key, 'utf8'),
  };
}

function tlsOf(name: string): TcpTlsOptions {
  const c = creds.get(name);
  if (c === undefined) throw new Error(`no credentials ${name}`);
  return c;
}

beforeAll(async () => {
  const dir = tempDir('cohort-tls-');
  certs = new CertDir(join(dir, 'certs'));
  other = new CertDir(join(dir, 'other'));
  await certs.init(testCluster);
  await other.init(testCluster);
  for (const id of ['a', 'b', 'c']) {
    creds.set(id, load(await certs.issue({ kind: 'node', id })));
  }
  creds.set('alice', load(await certs.issue({ kind: 'user', name: 'alice' })));
  // A node certificate for `a` from another cluster's CA (it trusts that CA only).
  creds.set('a-other-ca', load(await other.issue({ kind: 'node', id: 'a' })));
  const expired = await issueCertificate(
    certs.ca(),
    { kind: 'node', clusterId: testCluster, id: A },
    { notBefore: new Date(Date.now() - 3 * 86_400_000), days: 1 },
  );
  creds.set('a-expired', { ca: certs.ca().cert, ...expired });
});

function capturingLogger(): { logger: pino.Logger; text: () => string } {
  const lines: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(line) });
  return { logger, text: () => lines.join('') };
}

function hello(from: string, to: string): Uint8Array {
  return handshakeCodec.encodeFrame({
    type: 'Hello',
    protocolVersion: limits.protocolVersion,
    clusterId: testCluster,
    nodeId: from,
    to,
  });
}

/** A TLS client speaking handshake frames by hand. */
function rawTlsClient(
  port: number,
  options: Partial<tls.ConnectionOptions>,
): {
  socket: tls.TLSSocket;
  frames: HandshakeMessage[];
  closed: () => boolean;
  error: () => Error | undefined;
} {
  const socket = tls.connect({
    host: '127.0.0.1',
    port,
    checkServerIdentity: () => undefined,
    ...options,
  });
  cleanups.push(() => void socket.destroy());
  const frames: HandshakeMessage[] = [];
  const decoder = new FrameDecoder();
  let isClosed = false;
  let err: Error | undefined;
  socket.on('data', (chunk: Buffer) => {
    decoder.push(chunk);
    for (let p = decoder.next(); p !== undefined; p = decoder.next()) {
      if (p.length > 0) frames.push(handshakeCodec.decode(p));
    }
  });
  socket.on('error', (e: Error) => {
    err = e;
  });
  socket.on('close', () => {
    isClosed = true;
  });
  return { socket, frames, closed: () => isClosed, error: () => err };
}

describe('mutual TLS bound to identities', () => {
  it('links members over TLS and tells handlers who sent each message', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const b = await startNode({ self: B, port: pb, peers: { a: local(pa) }, tls: tlsOf('b') });
    const a = await startNode({ self: A, port: pa, peers: { b: local(pb) }, tls: tlsOf('a') });
    const got: string[] = [];
    b.onMessage((from, m) => got.push(`${from}:${m.seq}:${JSON.stringify(b.identityOf(from))}`));
    for (let i = 0; i < 20; i++) a.send(B, { type: 'Seq', seq: i, note: 'tls' });
    await waitFor(() => got.length === 20, 'the messages over TLS');
    expect(got[0]).toBe(`a:0:${JSON.stringify({ kind: 'node', clusterId: testCluster, id: 'a' })}`);
    expect(a.identityOf(B)).toEqual({ kind: 'node', clusterId: testCluster, id: 'b' });
    expect(a.identity).toEqual({ kind: 'node', clusterId: testCluster, id: 'a' });
    expect(a.secure).toBe(true);
  });

  it('refuses to start with a certificate that is not its own id', async () => {
    await expect(startNode({ self: A, port: await freePort(), tls: tlsOf('b') })).rejects.toThrow(
      /claims id "a" but its certificate is node b's/,
    );
  });

  it("refuses a member certificate claiming another member's id, logging the address and both ids", async () => {
    const pb = await freePort();
    const log = capturingLogger();
    const b = await startNode({
      self: B,
      port: pb,
      peers: { a: local(await freePort()), c: local(await freePort()) },
      tls: tlsOf('b'),
      logger: log.logger,
    });
    const delivered: string[] = [];
    b.onMessage((from) => delivered.push(from));
    // c's valid certificate, claiming to be a.
    const c = tlsOf('c');
    const client = rawTlsClient(pb, { ca: c.ca as string, cert: c.cert, key: c.key });
    await new Promise<void>((r) => client.socket.once('secureConnect', () => r()));
    client.socket.write(hello('a', 'b'));
    await waitFor(() => client.closed(), 'the impostor to be refused');
    expect(client.frames[0]).toMatchObject({ type: 'Reject', code: 'identity' });
    expect(client.frames[0]).toMatchObject({
      reason: expect.stringMatching(/claims id "a" but its certificate is node c's/) as unknown,
    });
    const text = log.text();
    expect(text).toContain('handshake refused: identity');
    expect(text).toMatch(/"remote":"[^"]*127\.0\.0\.1:\d+"/);
    expect(text).toContain('"claimed":"a"');
    expect(text).toContain('"identity":"node c"');
    expect(delivered).toEqual([]);
  });

  it('refuses a client with no certificate, from another CA, or expired, saying why', async () => {
    const pb = await freePort();
    const log = capturingLogger();
    await startNode({
      self: B,
      port: pb,
      peers: { a: local(await freePort()) },
      tls: tlsOf('b'),
      logger: log.logger,
    });
    const ca = tlsOf('b').ca as string;
    const none = rawTlsClient(pb, { ca });
    const foreign = tlsOf('a-other-ca');
    const otherCa = rawTlsClient(pb, {
      ca, // it trusts our CA; its own certificate is the other CA's
      cert: foreign.cert,
      key: foreign.key,
    });
    const old = tlsOf('a-expired');
    const expired = rawTlsClient(pb, { ca, cert: old.cert, key: old.key });
    for (const c of [none, otherCa, expired]) {
      c.socket.once('secureConnect', () => c.socket.write(hello('a', 'b')));
    }
    await waitFor(
      () => none.closed() && otherCa.closed() && expired.closed(),
      'the three clients to be refused',
    );
    // Each learns why, over TLS, in a Reject; nothing else.
    for (const c of [none, otherCa, expired]) {
      expect(c.frames).toEqual([
        expect.objectContaining({ type: 'Reject', code: 'identity' }) as unknown,
      ]);
    }
    expect(none.frames[0]).toMatchObject({
      reason: expect.stringMatching(/no certificate/) as unknown,
    });
    expect(expired.frames[0]).toMatchObject({
      reason: expect.stringMatching(/CERT_HAS_EXPIRED/) as unknown,
    });
    const text = log.text();
    expect(text).toMatch(/presented no certificate — no client certificate/);
    expect(text).toMatch(/not from the same CA/);
    expect(text).toMatch(/EXPIRED[^"]*a certificate expired/);
    expect(text).toContain('"code":"HANDSHAKE_FAILED"');
  });

  it('a dialer refuses an acceptor whose certificate is another node (and is told why)', async () => {
    const pb = await freePort();
    // The node at b's address holds c's certificate.
    await startNode({
      self: nodeId('c'),
      port: pb,
      peers: { a: local(await freePort()) },
      tls: tlsOf('c'),
    });
    const log = capturingLogger();
    const a = await startNode({
      self: A,
      port: await freePort(),
      peers: { b: local(pb) },
      tls: tlsOf('a'),
      logger: log.logger,
    });
    const reasons: CohortError[] = [];
    a.onPeerStatus((_p, s, reason) => {
      if (s === 'down' && reason !== undefined) reasons.push(reason);
    });
    a.send(B, { type: 'Seq', seq: 1, note: 'x' });
    await waitFor(() => reasons.length > 0, 'the refusal');
    expect(reasons[0]?.code).toBe('HANDSHAKE_FAILED');
    expect(reasons[0]?.message).toMatch(/dialed b at .* but its certificate is node c's/);
    expect(log.text()).toMatch(/but its certificate is node c's/);
  });

  it('admits only what the policy allows: users stay off a peer port, non-members are refused', async () => {
    const pb = await freePort();
    const log = capturingLogger();
    await startNode({
      self: B,
      port: pb,
      peers: { a: local(await freePort()), c: local(await freePort()) },
      tls: tlsOf('b'),
      logger: log.logger,
      admit: (who) => (who.kind === 'node' && who.id === 'c' ? 'node c was removed' : undefined),
    });
    const alice = tlsOf('alice');
    const user = rawTlsClient(pb, {
      ca: alice.ca as string,
      cert: alice.cert,
      key: alice.key,
    });
    user.socket.once('secureConnect', () => user.socket.write(hello('user:alice:1', 'b')));
    const c = tlsOf('c');
    const removed = rawTlsClient(pb, { ca: c.ca as string, cert: c.cert, key: c.key });
    removed.socket.once('secureConnect', () => removed.socket.write(hello('c', 'b')));
    await waitFor(() => user.closed() && removed.closed(), 'both refused');
    // The admit policy answers for users too: without a policy's yes they would pass
    // checkHello only if acceptUnknownPeers; here the address book refuses them.
    expect(user.frames[0]).toMatchObject({ type: 'Reject' });
    expect(removed.frames[0]).toMatchObject({ type: 'Reject', code: 'identity' });
    expect(log.text()).toContain('node c was removed');

    // Without a policy, a user is refused on a peer port.
    const pd = await freePort();
    await startNode({
      self: nodeId('c'),
      port: pd,
      peers: { a: local(await freePort()) },
      tls: tlsOf('c'),
    });
    const user2 = rawTlsClient(pd, {
      ca: alice.ca as string,
      cert: alice.cert,
      key: alice.key,
    });
    user2.socket.once('secureConnect', () => user2.socket.write(hello('user:alice:2', 'c')));
    await waitFor(() => user2.closed(), 'the user refused');
    expect(user2.frames[0]).toMatchObject({
      type: 'Reject',
      code: 'identity',
      reason: expect.stringMatching(/users may not connect to c's peer port/) as unknown,
    });
  });

  it('serves users on a client port (acceptUnknownPeers), bound to their names', async () => {
    const pb = await freePort();
    const server = await startNode({
      self: B,
      port: pb,
      tls: tlsOf('b'),
      acceptUnknownPeers: true,
    });
    const seen: string[] = [];
    server.onMessage((from) => seen.push(`${from} ${JSON.stringify(server.identityOf(from))}`));
    const client = await TcpTransport.start<TestMessage>({
      self: nodeId('user:alice:abc'),
      clusterId: testCluster,
      codec: testCodec,
      peers: { b: local(pb) },
      tls: tlsOf('alice'),
      logger: testLogger(),
      limits: fastLimits,
    });
    cleanups.push(() => client.close());
    client.send(B, { type: 'Seq', seq: 1, note: 'hi' });
    await waitFor(() => seen.length === 1, 'the user message');
    expect(seen[0]).toBe(
      `user:alice:abc ${JSON.stringify({ kind: 'user', clusterId: testCluster, name: 'alice' })}`,
    );
  });
});

describe('TLS and plaintext do not mix', () => {
  it('a TLS node refuses a plaintext dialer with a Reject it can read, and vice versa', async () => {
    const [pTls, pPlain] = [await freePort(), await freePort()];
    const logTls = capturingLogger();
    const logPlain = capturingLogger();
    await startNode({
      self: B,
      port: pTls,
      peers: { a: local(await freePort()) },
      tls: tlsOf('b'),
      logger: logTls.logger,
    });
    const plainA = await startNode({
      self: A,
      port: await freePort(),
      peers: { b: local(pTls) },
      logger: logPlain.logger,
    });
    const reasons: CohortError[] = [];
    plainA.onPeerStatus((_p, s, r) => {
      if (s === 'down' && r !== undefined) reasons.push(r);
    });
    plainA.send(B, { type: 'Seq', seq: 1, note: 'x' });
    await waitFor(() => reasons.length > 0, 'the plaintext dialer refused');
    expect(reasons[0]?.message).toMatch(/refused the handshake \(tls\): b requires mutual TLS/);

    // A TLS dialer to a plaintext node.
    const logDialer = capturingLogger();
    await startNode({
      self: B,
      port: pPlain,
      peers: { a: local(await freePort()) },
      logger: logPlain.logger,
    });
    const tlsA = await startNode({
      self: A,
      port: await freePort(),
      peers: { b: local(pPlain) },
      tls: tlsOf('a'),
      logger: logDialer.logger,
    });
    const tlsReasons: CohortError[] = [];
    tlsA.onPeerStatus((_p, s, r) => {
      if (s === 'down' && r !== undefined) tlsReasons.push(r);
    });
    tlsA.send(B, { type: 'Seq', seq: 1, note: 'x' });
    await waitFor(() => tlsReasons.length > 0, 'the TLS dialer refused');
    expect(tlsReasons[0]?.message).toMatch(/plaintext \(--insecure\) node/);
    expect(logPlain.text()).toContain('TLS connection refused: this node runs without TLS');
  });
});

describe('certificate rotation', () => {
  it('new connections use the new certificate; the identity must stay the same', async () => {
    const pb = await freePort();
    const b = await startNode({
      self: B,
      port: pb,
      peers: { a: local(await freePort()) },
      tls: tlsOf('b'),
    });
    const fingerprint = async (): Promise<string> => {
      const ca = tlsOf('a').ca as string;
      const c = rawTlsClient(pb, { ca, cert: tlsOf('a').cert, key: tlsOf('a').key });
      await new Promise<void>((r) => c.socket.once('secureConnect', () => r()));
      const fp = c.socket.getPeerX509Certificate()?.fingerprint256 ?? '';
      c.socket.destroy();
      return fp;
    };
    const before = await fingerprint();
    const renewed = load(await certs.issue({ kind: 'node', id: 'b' }));
    b.setTls(renewed);
    const after = await fingerprint();
    expect(after).not.toBe(before);
    expect(() => b.setTls(tlsOf('c'))).toThrow(/certificate is node c's/);
  });
});
