import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { pack } from 'msgpackr';
import fc from 'fast-check';
import { isCohortError } from '../../src/lib/errors.js';
import { limits } from '../../src/lib/limits.js';
import { clusterId, nodeId } from '../../src/lib/ids.js';
import { seededRandom } from '../../src/lib/random.js';
import { VirtualClock } from '../../src/lib/clock.js';
import { reconnectDelayMs, TcpTransport } from '../../src/transport/tcp-transport.js';
import type { PeerStatus } from '../../src/transport/transport.js';
import { encodeFrame, FrameDecoder } from '../../src/wire/frame.js';
import { handshakeCodec } from '../../src/wire/handshake.js';
import type { HandshakeMessage } from '../../src/wire/handshake.js';
import { conditionWaitMs } from '../harness/wait.js';
import { settle, transportCompliance, waitFor } from './compliance.js';
import {
  fastLimits,
  freePort,
  tcpHarness,
  testCluster,
  testLogger,
  local,
  perTestNodes,
} from './tcp-harness.js';
import { testCodec } from './test-messages.js';
import type { TestMessage } from './test-messages.js';
import { rpcCodec } from '../../src/rpc/messages.js';
import type { RpcWireMessage } from '../../src/rpc/messages.js';

transportCompliance('tcp', tcpHarness);

const A = nodeId('a');
const B = nodeId('b');

const { cleanups, startNode } = perTestNodes();

/** A logger that keeps its lines, to check what was logged. */
function capturingLogger(): { logger: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(line) });
  return { logger, lines };
}

/** A raw client socket that speaks frames by hand (it counts keepalives, and keeps other frames' payloads). */
async function rawClient(port: number): Promise<{
  socket: net.Socket;
  frames: HandshakeMessage[];
  payloads: Uint8Array[];
  keepalives: () => number;
  closed: () => boolean;
}> {
  const socket = net.connect(port, '127.0.0.1');
  cleanups.push(() => void socket.destroy());
  const frames: HandshakeMessage[] = [];
  const payloads: Uint8Array[] = [];
  const decoder = new FrameDecoder();
  let isClosed = false;
  let keepalives = 0;
  socket.on('data', (chunk: Buffer) => {
    decoder.push(chunk);
    for (let p = decoder.next(); p !== undefined; p = decoder.next()) {
      if (p.length === 0) keepalives++;
      else if (frames.length === 0) frames.push(handshakeCodec.decode(p));
      else payloads.push(p);
    }
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    isClosed = true;
  });
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  return { socket, frames, payloads, keepalives: () => keepalives, closed: () => isClosed };
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

describe('TcpTransport: handshake', () => {
  it('refuses a node of another cluster, logging the reason on both sides', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const logA = capturingLogger();
    const logB = capturingLogger();
    const b = await startNode({ self: B, port: pb, peers: { a: local(pa) }, logger: logB.logger });
    const a = await startNode({
      self: A,
      port: pa,
      peers: { b: local(pb) },
      clusterId: clusterId('elsewhere'),
      logger: logA.logger,
    });
    const got: TestMessage[] = [];
    b.onMessage((_f, m) => got.push(m));
    a.send(B, { type: 'Seq', seq: 1, note: '' });
    await waitFor(() => a.counters.handshakeFailures >= 2, 'refusals');
    expect(b.counters.handshakeFailures).toBeGreaterThanOrEqual(2);
    expect(logB.lines.join('')).toMatch(/cluster id mismatch: peer a is in \\"elsewhere\\"/);
    expect(logA.lines.join('')).toMatch(/b refused the handshake \(cluster\)/);
    expect(logA.lines.join('')).toContain('"code":"HANDSHAKE_FAILED"');
    expect(logB.lines.join('')).toContain('"code":"HANDSHAKE_FAILED"');
    expect(a.isConnected(B)).toBe(false);
    await settle();
    expect(got).toEqual([]);
  });

  it('refuses another protocol version', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const logB = capturingLogger();
    await startNode({ self: B, port: pb, peers: { a: local(pa) }, logger: logB.logger });
    const other = limits.protocolVersion + 1;
    const a = await startNode({
      self: A,
      port: pa,
      peers: { b: local(pb) },
      protocolVersion: other,
    });
    a.send(B, { type: 'Seq', seq: 1, note: '' });
    await waitFor(() => a.counters.handshakeFailures >= 1, 'the refusal');
    expect(logB.lines.join('')).toContain(
      `protocol version mismatch: peer a speaks ${other}, this node ${limits.protocolVersion}`,
    );
  });

  it('refuses a node that is not in the address book, and a Hello meant for another node', async () => {
    const pb = await freePort();
    const b = await startNode({ self: B, port: pb, peers: { a: local(await freePort()) } });
    const stranger = await rawClient(pb);
    stranger.socket.write(hello('zz', 'b'));
    await waitFor(() => stranger.closed(), 'the close');
    expect(stranger.frames).toEqual([
      expect.objectContaining({ type: 'Reject', code: 'node' }) as unknown,
    ]);
    const lost = await rawClient(pb);
    lost.socket.write(hello('a', 'c'));
    await waitFor(() => lost.closed(), 'the close');
    expect(lost.frames[0]).toMatchObject({ type: 'Reject', code: 'node' });
    expect(b.counters.handshakeFailures).toBe(2);
  });

  it('closes a connection that never completes the handshake', async () => {
    const pb = await freePort();
    const b = await startNode({
      self: B,
      port: pb,
      peers: { a: local(await freePort()) },
      limits: { handshakeTimeoutMs: 50 },
    });
    const silent = await rawClient(pb);
    await waitFor(() => silent.closed(), 'the timeout');
    expect(b.counters.handshakeFailures).toBe(1);
    expect(b.counters.handshakeTimeouts).toBe(1);
  });
});

describe('TcpTransport: unauthenticated connections', () => {
  it('refuses a frame larger than a handshake before the handshake', async () => {
    const pb = await freePort();
    const b = await startNode({ self: B, port: pb, peers: { a: local(await freePort()) } });
    const client = await rawClient(pb);
    client.socket.write(new Uint8Array([0, 0x10, 0, 0, 0, 0, 0, 0])); // announces 1 MiB
    await waitFor(() => client.closed(), 'the close');
    expect(b.counters.handshakeFailures).toBe(1);
  });

  it('bounds the connections that are mid-handshake, closing the oldest to make room', async () => {
    const pb = await freePort();
    const b = await startNode({
      self: B,
      port: pb,
      peers: { a: local(await freePort()) },
      // (A handshake timeout far beyond the test: a busy machine must not time them out.)
      limits: { handshakesPendingMax: 2, handshakeTimeoutMs: conditionWaitMs },
    });
    const first = await rawClient(pb);
    const second = await rawClient(pb);
    await waitFor(() => pendingOf(b) === 2, 'two pending');
    const third = await rawClient(pb);
    await waitFor(() => first.closed(), 'the oldest connection to be closed');
    expect(second.closed() || third.closed()).toBe(false);
    expect(b.counters.handshakesEvicted).toBe(1);
    // The newest can still finish its handshake: a flood of idle connections cannot keep it out.
    third.socket.write(hello('a', 'b'));
    await waitFor(() => third.frames.length === 1, 'the Welcome');
    expect(third.frames[0]).toMatchObject({ type: 'Welcome' });
    // Finishing a handshake frees a slot: no eviction for the next one.
    const fourth = await rawClient(pb);
    await waitFor(() => pendingOf(b) === 2, 'the fourth pending');
    expect(second.closed() || fourth.closed()).toBe(false);
    expect(b.counters.handshakesEvicted).toBe(1);
  });

  it('caps the pending handshakes of one remote address, so it competes only with itself', async () => {
    const pb = await freePort();
    const b = await startNode({
      self: B,
      port: pb,
      peers: { a: local(await freePort()) },
      limits: { handshakesPendingMax: 4, handshakesPendingPerAddressMax: 2 },
    });
    const conns: Awaited<ReturnType<typeof rawClient>>[] = [];
    for (let i = 0; i < 5; i++) {
      conns.push(await rawClient(pb));
      await waitFor(() => pendingOf(b) === Math.min(i + 1, 2), `pending ${i}`);
    }
    // From 127.0.0.1 only two are ever pending: each new one closed the oldest from there.
    await waitFor(() => conns.filter((c) => c.closed()).length === 3, 'three evictions');
    expect(conns.map((c) => c.closed())).toEqual([true, true, true, false, false]);
    expect(b.counters.handshakesEvicted).toBe(3);
  });

  it('closes a connection flood with a few log lines and a summary, not a line each', async () => {
    const pb = await freePort();
    const { logger, lines } = capturingLogger();
    const b = await startNode({
      self: B,
      port: pb,
      peers: { a: local(await freePort()) },
      logger,
      limits: { handshakesPendingMax: 1, handshakesPendingPerAddressMax: 1 },
    });
    const conns: Awaited<ReturnType<typeof rawClient>>[] = [];
    for (let i = 0; i < 40; i++) conns.push(await rawClient(pb));
    await waitFor(() => b.counters.handshakesEvicted === 39, 'every eviction');
    const evictions = lines.filter((l) => l.includes('to make room'));
    expect(evictions.length).toBeLessThanOrEqual(limits.logRepeatBurstMax);
    await b.close();
    const summary = lines.find((l) => l.includes('more like this suppressed'));
    expect(summary).toBeDefined();
    expect(summary).toContain(`${39 - evictions.length} more like this suppressed`);
  });
});

/** Connections mid-handshake on `t` (white-box: the transport keeps no public counter of them). */
function pendingOf(t: TcpTransport<TestMessage>): number {
  return (t as unknown as { pendingHandshakes: number }).pendingHandshakes;
}

describe('TcpTransport: malformed input', () => {
  async function handshaken(): Promise<{
    b: TcpTransport<TestMessage>;
    pb: number;
    got: TestMessage[];
    lines: string[];
    client: Awaited<ReturnType<typeof rawClient>>;
  }> {
    const pb = await freePort();
    const { logger, lines } = capturingLogger();
    const b = await startNode({
      self: B,
      port: pb,
      peers: { a: local(await freePort()) },
      limits: { frameBytesMax: 1024 },
      logger,
    });
    const got: TestMessage[] = [];
    b.onMessage((_f, m) => got.push(m));
    const client = await rawClient(pb);
    client.socket.write(hello('a', 'b'));
    await waitFor(() => client.frames.length === 1, 'the Welcome');
    expect(client.frames[0]).toMatchObject({ type: 'Welcome', nodeId: 'b' });
    return { b, pb, got, lines, client };
  }

  const cases: [string, (good: Uint8Array) => Uint8Array, string][] = [
    ['a wrong field type', () => encodeFrame(pack({ type: 'Seq', seq: 'x', note: '' })), 'SCHEMA'],
    ['an unknown message type', () => encodeFrame(pack({ type: 'Nope' })), 'UNKNOWN'],
    [
      'bytes that are not MessagePack',
      () => encodeFrame(new Uint8Array([0xd4, 0x22, 0])),
      'DECODE',
    ],
    [
      'a bad checksum',
      (good) => {
        const bad = Uint8Array.from(good);
        bad[bad.length - 1] = (bad[bad.length - 1] as number) ^ 0x10;
        return bad;
      },
      'CHECKSUM',
    ],
    ['an oversized length', () => new Uint8Array([0x40, 0, 0, 0, 0, 0, 0, 0]), 'FRAME_TOO_LARGE'],
  ];

  for (const [what, corrupt, code] of cases) {
    it(`closes the connection on ${what}, delivers nothing after it, and keeps serving others`, async () => {
      const { b, pb, got, lines, client } = await handshaken();
      const good = testCodec.encodeFrame({ type: 'Seq', seq: 1, note: 'ok' });
      const after = testCodec.encodeFrame({ type: 'Seq', seq: 2, note: 'after' });
      client.socket.write(Buffer.concat([good, corrupt(good), after]));
      await waitFor(() => client.closed(), 'the close');
      expect(got).toEqual([{ type: 'Seq', seq: 1, note: 'ok' }]);
      expect(b.counters.decodeErrors).toBe(1);
      expect(lines.join('')).toContain(`malformed input from a`);
      expect(lines.join('')).toContain(code);
      // The node is fine: a new, well-behaved connection works.
      const again = await rawClient(pb);
      again.socket.write(Buffer.concat([hello('a', 'b'), after]));
      await waitFor(() => got.length === 2, 'the message on the new connection');
    });
  }
});

describe('TcpTransport: arbitrary input over a real socket', () => {
  it('delivers exactly the valid messages before the first garbage, and keeps running', async () => {
    const pb = await freePort();
    const b = await startNode({
      self: B,
      port: pb,
      peers: { a: local(await freePort()) },
      limits: { frameBytesMax: 4096 },
    });
    const got: number[] = [];
    b.onMessage((_f, m) => got.push(m.seq));
    const segment = fc.oneof(
      fc.nat({ max: 1_000_000 }).map((seq) => ({ valid: true as const, seq })),
      fc
        .uint8Array({ minLength: 1, maxLength: 40 })
        .map((bytes) => ({ valid: false as const, bytes })),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(segment, { maxLength: 8 }), async (segments) => {
        got.length = 0;
        const client = await rawClient(pb);
        client.socket.write(hello('a', 'b'));
        await waitFor(() => client.frames.length === 1, 'the Welcome');
        const expected: number[] = [];
        let clean = true;
        for (const s of segments) {
          if (s.valid) {
            if (clean) expected.push(s.seq);
            client.socket.write(testCodec.encodeFrame({ type: 'Seq', seq: s.seq, note: '' }));
          } else {
            clean = false;
            client.socket.write(s.bytes);
          }
        }
        client.socket.end();
        await waitFor(() => client.closed(), 'the connection to close');
        await waitFor(() => got.length >= expected.length, 'the valid messages');
        await settle();
        expect(got).toEqual(expected);
      }),
      { numRuns: Number(process.env.FC_NUM_RUNS_SOCKET ?? 100) },
    );
    // Still serving.
    const last = await rawClient(pb);
    last.socket.write(hello('a', 'b'));
    await waitFor(() => last.frames.length === 1, 'a Welcome after all that');
  });
});

describe('TcpTransport: sending', () => {
  it('coalesces the messages of one event-loop turn into few socket writes', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const b = await startNode({ self: B, port: pb, peers: { a: local(pa) } });
    const a = await startNode({ self: A, port: pa, peers: { b: local(pb) } });
    const got: number[] = [];
    b.onMessage((_f, m) => got.push(m.seq));
    a.send(B, { type: 'Seq', seq: 0, note: '' });
    await waitFor(() => got.length === 1, 'the link');
    const writesBefore = a.counters.writes;
    for (let i = 1; i <= 1000; i++) a.send(B, { type: 'Seq', seq: i, note: 'coalesce' });
    await waitFor(() => got.length === 1001, 'all messages');
    // ~25 KB of frames: one batch (writeBatchBytesMax is 256 KiB).
    expect(a.counters.writes - writesBefore).toBe(1);
  });

  it('delivers intact contents while its write memory is recycled (small and large frames, stalled reads)', async () => {
    // A hand-made "b" that stops reading during each burst, so writes stay
    // pending in a full socket while later frames reuse recycled memory.
    const sockets: net.Socket[] = [];
    const bad: number[] = [];
    let received = 0;
    const padOf = (seq: number): Uint8Array =>
      new Uint8Array(seq % 3 === 0 ? 10 + (seq % 500) : 2000 + ((seq * 37) % 6000)).fill(
        seq & 0xff,
      );
    const server = net.createServer((socket) => {
      sockets.push(socket);
      const decoder = new FrameDecoder();
      let welcomed = false;
      socket.on('data', (chunk: Buffer) => {
        decoder.push(chunk);
        for (let p = decoder.next(); p !== undefined; p = decoder.next()) {
          if (!welcomed) {
            welcomed = true;
            socket.write(
              handshakeCodec.encodeFrame({
                type: 'Welcome',
                protocolVersion: limits.protocolVersion,
                clusterId: testCluster,
                nodeId: 'b',
              }),
            );
            continue;
          }
          const m = testCodec.decode(p);
          received++;
          const want = padOf(m.seq);
          const pad = m.pad ?? new Uint8Array();
          if (pad.length !== want.length || pad.some((x) => x !== (m.seq & 0xff))) bad.push(m.seq);
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          for (const s of sockets) s.destroy();
          server.close(() => r());
        }),
    );
    const port = (server.address() as net.AddressInfo).port;
    const a = await startNode({ self: A, port: await freePort(), peers: { b: local(port) } });
    a.send(B, { type: 'Seq', seq: 0, note: '', pad: padOf(0) });
    await waitFor(() => received === 1, 'the link');
    let seq = 1;
    for (let round = 0; round < 6; round++) {
      for (const s of sockets) s.pause();
      for (let i = 0; i < 1500; i++, seq++)
        a.send(B, { type: 'Seq', seq, note: '', pad: padOf(seq) });
      await new Promise((r) => setTimeout(r, 50));
      for (const s of sockets) s.resume();
      await waitFor(() => received >= seq - 500, `round ${round}`);
    }
    await waitFor(() => received === seq, 'all messages');
    expect(bad).toEqual([]);
  });

  it('answers OVERLOADED when a connected peer stops reading (backpressure reaches the queue)', async () => {
    const pa = await freePort();
    // A fake "b" that completes the handshake and then never reads again.
    const stalled: net.Socket[] = [];
    const server = net.createServer((socket) => {
      stalled.push(socket);
      socket.once('data', () => {
        socket.write(
          handshakeCodec.encodeFrame({
            type: 'Welcome',
            protocolVersion: limits.protocolVersion,
            clusterId: testCluster,
            nodeId: 'b',
          }),
        );
        socket.pause();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          for (const s of stalled) s.destroy();
          server.close(() => r());
        }),
    );
    const port = (server.address() as net.AddressInfo).port;
    const a = await startNode({
      self: A,
      port: pa,
      peers: { b: local(port) },
      limits: { peerQueueMessagesMax: 16 },
    });
    const events: PeerStatus[] = [];
    a.onPeerStatus((_p, s) => events.push(s));
    const pad = new Uint8Array(64 * 1024);
    let overloaded = false;
    for (let round = 0; round < 10_000 && !overloaded; round++) {
      try {
        a.send(B, { type: 'Seq', seq: round, note: 'fill', pad });
      } catch (err) {
        expect(isCohortError(err) && err.code).toBe('OVERLOADED');
        expect(isCohortError(err) && err.definite).toBe(true);
        overloaded = true;
      }
      await settle(1);
    }
    expect(overloaded).toBe(true);
    expect(events).toEqual(['up']);
    expect(a.counters.overloaded).toBe(1);
    expect(a.queuedTo(B)).toBe(16);
  });

  it('holds a burst far larger than the write batch in its queue until the peer reads, then delivers it in order', async () => {
    // A fake "b" that completes the handshake, then reads only when told.
    const sockets: net.Socket[] = [];
    const seqs: number[] = [];
    const server = net.createServer((socket) => {
      sockets.push(socket);
      const decoder = new FrameDecoder();
      let welcomed = false;
      socket.on('data', (chunk: Buffer) => {
        decoder.push(chunk);
        while (decoder.nextInPlace()) {
          if (!welcomed) {
            welcomed = true;
            socket.write(
              handshakeCodec.encodeFrame({
                type: 'Welcome',
                protocolVersion: limits.protocolVersion,
                clusterId: testCluster,
                nodeId: 'b',
              }),
            );
            socket.pause();
            continue;
          }
          seqs.push(
            testCodec.decodeRange(decoder.frameSource, decoder.frameStart, decoder.frameEnd).seq,
          );
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          for (const s of sockets) s.destroy();
          server.close(() => r());
        }),
    );
    const port = (server.address() as net.AddressInfo).port;
    const batch = 16 * 1024;
    const a = await startNode({
      self: A,
      port: await freePort(),
      peers: { b: local(port) },
      limits: { writeBatchBytesMax: batch },
    });
    await a.connect(B, 10_000);
    // 48 MiB in one turn, in frames of 64 KiB and of 100 bytes: far more than
    // the socket and the kernel's buffers take while b does not read.
    const big = new Uint8Array(64 * 1024);
    const small = new Uint8Array(100);
    const total = 1536;
    for (let seq = 0; seq < total; seq++) {
      a.send(B, { type: 'Seq', seq, note: '', pad: seq % 2 === 0 ? big : small });
    }
    const burstBytes = (total / 2) * (big.length + small.length);
    await settle(20);
    // What went to the socket is bounded: the rest waits in the queue for 'drain'.
    expect(a.queuedTo(B)).toBeGreaterThan(0);
    expect(a.counters.bytesSent).toBeLessThan(burstBytes);
    for (const s of sockets) s.resume();
    await waitFor(() => seqs.length === total, 'the whole burst');
    expect(seqs).toEqual(Array.from({ length: total }, (_, i) => i));
    expect(a.queuedTo(B)).toBe(0);
  });

  it('resolves simultaneous dials to one connection (the smaller id dials)', async () => {
    for (let round = 0; round < 5; round++) {
      const [pa, pb] = [await freePort(), await freePort()];
      const a = await startNode({ self: A, port: pa, peers: { b: local(pb) } });
      const b = await startNode({ self: B, port: pb, peers: { a: local(pa) } });
      const atA: number[] = [];
      const atB: number[] = [];
      a.onMessage((_f, m) => atA.push(m.seq));
      b.onMessage((_f, m) => atB.push(m.seq));
      for (let i = 0; i < 20; i++) {
        a.send(B, { type: 'Seq', seq: i, note: '' });
        b.send(A, { type: 'Seq', seq: i, note: '' });
      }
      await waitFor(() => atA.length === 20 && atB.length === 20, 'all messages');
      expect(atA).toEqual(Array.from({ length: 20 }, (_, i) => i));
      expect(atB).toEqual(Array.from({ length: 20 }, (_, i) => i));
      expect(a.counters.connectionsOpened).toBe(1);
      expect(b.counters.connectionsOpened).toBe(1);
      expect(a.counters.connectionsLost + b.counters.connectionsLost).toBe(0);
      await a.close();
      await b.close();
    }
  });

  it('redials a failing peer only when its backoff delay has passed', async () => {
    // A "peer" that accepts and at once hangs up: every attempt fails.
    let attempts = 0;
    const server = net.createServer((socket) => {
      attempts++;
      socket.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const clock = new VirtualClock();
    const a = await startNode({
      self: A,
      port: await freePort(),
      peers: { b: local((server.address() as net.AddressInfo).port) },
      clock,
      random: seededRandom(7),
      limits: { reconnectDelayMsMin: 100, reconnectDelayMsMax: 800 },
    });
    a.send(B, { type: 'Seq', seq: 0, note: '' });
    for (let attempt = 1; attempt <= 4; attempt++) {
      await waitFor(
        () => attempts === attempt && a.linkState(B) === 'backoff',
        `attempt ${attempt} to fail`,
      );
      // Each failure schedules exactly one redial, due in [d/2, d] with
      // d = min(800, 100·2^(attempt-1)): nothing before d/2, a dial by d.
      const d = Math.min(800, 100 * 2 ** (attempt - 1));
      clock.advance(d / 2 - 1);
      await settle();
      expect(attempts).toBe(attempt);
      expect(a.linkState(B)).toBe('backoff');
      clock.advance(d / 2 + 1);
    }
  });

  it('forgets a removed peer: link closed, queue dropped, sends and dials refused', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const b = await startNode({ self: B, port: pb, peers: { a: local(pa) } });
    const a = await startNode({ self: A, port: pa, peers: { b: local(pb) } });
    const got: number[] = [];
    b.onMessage((_f, m) => got.push(m.seq));
    a.send(B, { type: 'Seq', seq: 0, note: '' });
    await waitFor(() => got.length === 1, 'the link');
    b.removePeer(A);
    expect(b.linkState(A)).toBe('idle');
    await waitFor(() => a.linkState(B) !== 'up', 'the link to drop');
    // A redials; B now refuses it as an unknown node.
    a.send(B, { type: 'Seq', seq: 1, note: '' });
    await waitFor(() => b.counters.handshakeFailures >= 1, 'the refusal');
    try {
      b.send(A, { type: 'Seq', seq: 0, note: '' });
      expect.unreachable();
    } catch (err) {
      expect(isCohortError(err) && err.code).toBe('UNAVAILABLE');
    }
    expect(got).toEqual([0]);
  });

  it('backs off exponentially with jitter, within [d/2, d]', () => {
    const rng = seededRandom(1);
    const delays = Array.from({ length: 12 }, (_, i) => reconnectDelayMs(i, 50, 5_000, rng));
    delays.forEach((d, i) => {
      const cap = Math.min(5_000, 50 * 2 ** i);
      expect(d).toBeGreaterThanOrEqual(cap / 2);
      expect(d).toBeLessThanOrEqual(cap);
    });
    expect(new Set(delays.slice(-3)).size).toBe(3); // jittered, not constant at the cap
  });
});

describe('TcpTransport: a peer process restarts', () => {
  function spawnPeer(config: object): Promise<{ child: ChildProcess; exited: Promise<void> }> {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(import.meta.dirname, 'tcp-peer.ts'), JSON.stringify(config)],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    cleanups.push(async () => {
      child.kill('SIGKILL');
      await exited;
    });
    return new Promise((resolve, reject) => {
      let out = '';
      child.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready')) resolve({ child, exited });
      });
      child.once('exit', (code) => reject(new Error(`peer exited early (${code})`)));
    });
  }

  it('reconnects to the restarted process and delivers again', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const a = await startNode({ self: A, port: pa, peers: { b: local(pb) } });
    const echoes: TestMessage[] = [];
    a.onMessage((_f, m) => echoes.push(m));
    const events: PeerStatus[] = [];
    a.onPeerStatus((_p, s) => events.push(s));
    const config = { self: 'b', port: pb, peers: { a: local(pa) } };

    const first = await spawnPeer(config);
    a.send(B, { type: 'Seq', seq: 0, note: 'hi' });
    await waitFor(() => echoes.length === 1, 'the first echo');
    expect(echoes[0]?.note).toBe(`echo:${first.child.pid}`);

    first.child.kill('SIGKILL');
    await first.exited;
    await waitFor(() => events.includes('down'), 'the link to go down');

    const second = await spawnPeer(config);
    let seq = 1;
    await waitFor(() => {
      if (a.queuedTo(B) < 10) a.send(B, { type: 'Seq', seq: seq++, note: 'again' });
      return echoes.some((m) => m.note === `echo:${second.child.pid}`);
    }, 'an echo from the new process');
    const fromSecond = echoes
      .filter((m) => m.note === `echo:${second.child.pid}`)
      .map((m) => m.seq);
    expect(fromSecond.every((s, i) => i === 0 || (fromSecond[i - 1] as number) < s)).toBe(true);
    expect(events.filter((e) => e === 'up').length).toBe(2);
  });
});

// TLS: test/transport/tls.test.ts.

describe('dial-only clients (acceptUnknownPeers)', () => {
  it('serves clients missing from the address book on their own connection, and forgets them when they go', async () => {
    const serverPort = await freePort();
    const server = await startNode({ self: A, port: serverPort, acceptUnknownPeers: true });
    const got: string[] = [];
    server.onMessage((from, msg) => {
      got.push(`${from}:${msg.seq}`);
      server.send(from, { type: 'Seq', seq: msg.seq + 100, note: 'reply' });
    });
    const clients = await Promise.all(
      ['client-x', 'client-y'].map(async (id) => {
        const c = await TcpTransport.start<TestMessage>({
          self: nodeId(id),
          clusterId: testCluster,
          codec: testCodec,
          peers: { a: local(serverPort) },
          limits: fastLimits,
          logger: testLogger(),
        });
        cleanups.push(() => c.close());
        const replies: number[] = [];
        c.onMessage((_from, msg) => replies.push(msg.seq));
        return { c, replies };
      }),
    );
    clients[0]?.c.send(A, { type: 'Seq', seq: 1, note: '' });
    clients[1]?.c.send(A, { type: 'Seq', seq: 2, note: '' });
    await waitFor(
      () => clients.every(({ replies }) => replies.length === 1),
      'replies to both clients',
    );
    expect(clients.map(({ replies }) => replies[0])).toEqual([101, 102]);
    expect(got.sort()).toEqual(['client-x:1', 'client-y:2']);

    await clients[0]?.c.close();
    await waitFor(() => !server.isConnected(nodeId('client-x')), 'server sees client-x gone');
    let code: string | undefined;
    try {
      server.send(nodeId('client-x'), { type: 'Seq', seq: 9, note: '' });
    } catch (err) {
      code = isCohortError(err) ? err.code : 'other';
    }
    expect(code).toBe('UNAVAILABLE');
  });

  it('refuses unknown dialers by default', async () => {
    const serverPort = await freePort();
    const server = await startNode({ self: A, port: serverPort });
    const c = await TcpTransport.start<TestMessage>({
      self: nodeId('client-z'),
      clusterId: testCluster,
      codec: testCodec,
      peers: { a: local(serverPort) },
      limits: fastLimits,
      logger: testLogger(),
    });
    cleanups.push(() => c.close());
    c.send(A, { type: 'Seq', seq: 1, note: '' });
    await waitFor(() => server.counters.handshakeFailures > 0, 'handshake refused');
    expect(server.isConnected(nodeId('client-z'))).toBe(false);
  });
});

describe('TcpTransport: input that makes a decoder throw', () => {
  it('closes the connection on a 9.7 KB RPC request of 9,600 nested arrays, and keeps serving', async () => {
    const pb = await freePort();
    const { logger, lines } = capturingLogger();
    const b = await TcpTransport.start<RpcWireMessage>({
      self: B,
      clusterId: testCluster,
      codec: rpcCodec,
      listen: local(pb),
      peers: { a: local(await freePort()) },
      limits: fastLimits,
      logger,
    });
    cleanups.push(() => b.close());
    const got: RpcWireMessage[] = [];
    b.onMessage((_f, m) => got.push(m));
    const client = await rawClient(pb);
    client.socket.write(hello('a', 'b'));
    await waitFor(() => client.frames.length === 1, 'the Welcome');
    // The probe's frame: an RpcRequest whose payload is 9,600 arrays deep.
    const head = pack({
      type: 'RpcRequest',
      id: 1,
      service: 'Kv',
      method: 'put',
      timeoutMs: 1000,
      payload: 0,
    });
    const payload = new Uint8Array([
      ...head.subarray(0, -1),
      ...new Uint8Array(9_600).fill(0x91),
      1,
    ]);
    expect(payload.length).toBeGreaterThan(9_600);
    client.socket.write(encodeFrame(payload));
    await waitFor(() => client.closed(), 'the connection to close');
    expect(b.counters.decodeErrors).toBe(1);
    expect(got).toEqual([]);
    expect(lines.join('')).toContain('nests arrays and maps deeper than');
    // Still serving: a well-formed request on a new connection arrives.
    const again = await rawClient(pb);
    again.socket.write(hello('a', 'b'));
    again.socket.write(rpcCodec.encodeFrame({ type: 'RpcCancel', id: 7 }));
    await waitFor(() => got.length === 1, 'the message on the new connection');
  });

  it('closes the connection, not the process, when a decoder throws something untyped', async () => {
    const pb = await freePort();
    const { logger, lines } = capturingLogger();
    // A codec that fails the way a library can on hostile input (a RangeError from recursion).
    // (Both decode paths: the transport decodes frames in place with decodeRange when a codec has it.)
    const decode = (bytes: Uint8Array): TestMessage => {
      const m = testCodec.decode(bytes);
      if (m.note === 'boom') throw new RangeError('Maximum call stack size exceeded');
      return m;
    };
    const fragile: typeof testCodec = Object.assign(Object.create(testCodec) as typeof testCodec, {
      decode,
      decodeRange: (bytes: Uint8Array, start: number, end: number): TestMessage =>
        decode(bytes.subarray(start, end)),
    });
    const b = await startNode({
      self: B,
      port: pb,
      peers: { a: local(await freePort()) },
      codec: fragile,
      logger,
    });
    const got: number[] = [];
    b.onMessage((_f, m) => got.push(m.seq));
    const client = await rawClient(pb);
    client.socket.write(hello('a', 'b'));
    client.socket.write(
      Buffer.concat([
        testCodec.encodeFrame({ type: 'Seq', seq: 1, note: '' }),
        testCodec.encodeFrame({ type: 'Seq', seq: 2, note: 'boom' }),
        testCodec.encodeFrame({ type: 'Seq', seq: 3, note: '' }),
      ]),
    );
    await waitFor(() => client.closed(), 'the connection to close');
    expect(got).toEqual([1]);
    expect(b.counters.decodeErrors).toBe(1);
    // One line, at error level, with the stack.
    const logged = lines.filter((l) =>
      l.includes('DECODE_ERROR: Maximum call stack size exceeded'),
    );
    expect(logged).toHaveLength(1);
    expect(logged[0]).toContain('"level":50');
    expect(logged[0]).toContain('"type":"RangeError"');
  });
});

/** Polls until `t` has read at least `bytes` bytes (a virtual clock only moves when told). */
async function readAtLeast(
  t: { counters: { bytesReceived: number } },
  bytes: number,
): Promise<void> {
  await waitFor(() => t.counters.bytesReceived >= bytes, `${bytes} bytes read`);
}

describe('TcpTransport: read and idle timeouts (virtual clock, real sockets)', () => {
  const bounds = {
    handshakeTimeoutMs: 1_000,
    frameReadTimeoutMs: 3_000,
    idleTimeoutMs: 6_000,
    keepaliveIntervalMs: 2_000,
  };

  async function handshaken(clock: VirtualClock, limits = {}) {
    const pb = await freePort();
    const b = await startNode({
      self: B,
      port: pb,
      peers: { a: local(await freePort()) },
      clock,
      limits: { ...bounds, ...limits },
    });
    const client = await rawClient(pb);
    client.socket.write(hello('a', 'b'));
    await waitFor(() => client.frames.length === 1, 'the Welcome');
    return { b, pb, client };
  }

  it('closes a connection that trickles a frame one byte per second (slowloris)', async () => {
    const clock = new VirtualClock();
    const { b, client } = await handshaken(clock);
    const frame = testCodec.encodeFrame({ type: 'Seq', seq: 1, note: 'slow' });
    let read = b.counters.bytesReceived;
    let trickled = 0;
    while (trickled < frame.length && b.counters.frameReadTimeouts === 0) {
      client.socket.write(frame.subarray(trickled, trickled + 1));
      trickled++;
      await readAtLeast(b, ++read);
      clock.advance(1_000);
    }
    await waitFor(() => client.closed(), 'the connection to close');
    expect(b.counters.frameReadTimeouts).toBe(1);
    expect(b.counters.idleTimeouts).toBe(0);
    // Cut off once the frame was overdue (3 s at one byte a second), long before its end.
    expect(trickled).toBeLessThanOrEqual(bounds.frameReadTimeoutMs / 1_000 + 1);
    expect(trickled).toBeLessThan(frame.length);
  });

  it('lets frames that arrive whole in time through, however slowly they come one after another', async () => {
    const clock = new VirtualClock();
    const { b, client } = await handshaken(clock);
    const got: number[] = [];
    b.onMessage((_f, m) => got.push(m.seq));
    let read = b.counters.bytesReceived;
    for (let seq = 0; seq < 5; seq++) {
      const frame = testCodec.encodeFrame({ type: 'Seq', seq, note: '' });
      const half = frame.length >> 1;
      client.socket.write(frame.subarray(0, half));
      await readAtLeast(b, read + half);
      clock.advance(bounds.frameReadTimeoutMs - 1_000);
      client.socket.write(frame.subarray(half));
      read += frame.length;
      await readAtLeast(b, read);
      clock.advance(bounds.frameReadTimeoutMs - 1_000); // a quiet gap between frames
      await settle();
    }
    await waitFor(() => got.length === 5, 'every message');
    expect(client.closed()).toBe(false);
    expect(b.counters.frameReadTimeouts + b.counters.idleTimeouts).toBe(0);
  });

  it('closes a handshaked connection that sends nothing at all, after idleTimeoutMs', async () => {
    const clock = new VirtualClock();
    const { b, client } = await handshaken(clock);
    clock.advance(bounds.idleTimeoutMs - 1_000);
    await settle();
    expect(client.closed()).toBe(false);
    // The transport itself keeps the link alive from its side...
    await waitFor(() => client.keepalives() >= 1, 'a keepalive from the transport');
    clock.advance(2_000);
    // ...but nothing came back: the silent peer is closed.
    await waitFor(() => client.closed(), 'the idle connection to close');
    expect(b.counters.idleTimeouts).toBe(1);
    expect(b.counters.keepalivesSent).toBeGreaterThanOrEqual(1);
  });

  it('keeps a quiet link between two transports open with keepalives, for many idle timeouts', async () => {
    const clock = new VirtualClock();
    const [pa, pb] = [await freePort(), await freePort()];
    const b = await startNode({
      self: B,
      port: pb,
      peers: { a: local(pa) },
      clock,
      limits: bounds,
    });
    const a = await startNode({
      self: A,
      port: pa,
      peers: { b: local(pb) },
      clock,
      limits: bounds,
    });
    const got: number[] = [];
    b.onMessage((_f, m) => got.push(m.seq));
    a.send(B, { type: 'Seq', seq: 1, note: '' });
    await waitFor(() => got.length === 1, 'the first message');
    // Ten idle timeouts of silence, in sweep-sized steps; each keepalive is read before time moves on.
    for (let t = 0; t < 10 * bounds.idleTimeoutMs; t += 500) {
      clock.advance(500);
      await waitFor(
        () =>
          b.counters.keepalivesReceived === a.counters.keepalivesSent &&
          a.counters.keepalivesReceived === b.counters.keepalivesSent,
        'the keepalives to arrive',
      );
    }
    expect(a.isConnected(B) && b.isConnected(A)).toBe(true);
    expect(a.counters.idleTimeouts + b.counters.idleTimeouts).toBe(0);
    expect(a.counters.connectionsOpened).toBe(1);
    expect(a.counters.keepalivesSent + b.counters.keepalivesSent).toBeGreaterThanOrEqual(10);
    a.send(B, { type: 'Seq', seq: 2, note: '' });
    await waitFor(() => got.length === 2, 'a message after the silence');
  });
});

describe('TcpTransport: connection bounds', () => {
  it('closes the longest-idle dial-only client to make room for a new one', async () => {
    const clock = new VirtualClock();
    const pb = await freePort();
    const b = await startNode({
      self: B,
      port: pb,
      acceptUnknownPeers: true,
      clock,
      limits: { dialOnlyPeersMax: 2, dialOnlyEvictIdleMsMin: 5_000 },
    });
    const join = async (id: string) => {
      const c = await rawClient(pb);
      c.socket.write(hello(id, 'b'));
      await waitFor(() => c.frames.length === 1, `the answer to ${id}`);
      return c;
    };
    const c1 = await join('c1');
    clock.advance(1_000);
    const c2 = await join('c2');
    // Full, and nobody has been quiet for 5 s: a newcomer is refused.
    const early = await join('c3');
    expect(early.frames[0]).toMatchObject({ type: 'Reject' });
    clock.advance(4_500); // c1 quiet for 5.5 s, c2 for 4.5 s
    const late = await join('c4');
    expect(late.frames[0]).toMatchObject({ type: 'Welcome' });
    await waitFor(() => c1.closed(), 'c1 to be closed');
    expect(c2.closed()).toBe(false);
    expect(b.counters.dialOnlyEvicted).toBe(1);
    expect(b.isConnected(nodeId('c4')) && !b.isConnected(nodeId('c1'))).toBe(true);
  });

  it('caps the partial frames buffered over all connections, closing the non-members holding most', async () => {
    const pb = await freePort();
    const b = await startNode({
      self: B,
      port: pb,
      peers: { a: local(await freePort()) },
      acceptUnknownPeers: true,
      limits: { inputBufferedBytesMax: 64 * 1024, frameBytesMax: 1024 * 1024 },
    });
    const got: string[] = [];
    b.onMessage((from, m) => got.push(`${from}:${m.seq}`));
    const join = async (id: string) => {
      const c = await rawClient(pb);
      c.socket.write(hello(id, 'b'));
      await waitFor(() => c.frames.length === 1, `the Welcome to ${id}`);
      return c;
    };
    const frameOf = (seq: number, bytes: number): Uint8Array =>
      Uint8Array.from(
        testCodec.encodeFrame({ type: 'Seq', seq, note: '', pad: new Uint8Array(bytes) }),
      );
    const member = await join('a');
    const small = await join('client-small');
    const big = await join('client-big');
    const memberFrame = frameOf(1, 60 * 1024);
    let read = b.counters.bytesReceived;
    // Each stops short of the end of a frame: 29 + 8 KiB, under the 64 KiB budget.
    member.socket.write(memberFrame.subarray(0, 29 * 1024));
    small.socket.write(frameOf(2, 20 * 1024).subarray(0, 8 * 1024));
    read += 37 * 1024;
    await readAtLeast(b, read);
    expect(b.counters.inputBudgetCloses).toBe(0);
    // 29 KiB more from a client crosses the budget: the client holding the most is closed.
    big.socket.write(frameOf(3, 200 * 1024).subarray(0, 29 * 1024));
    await waitFor(() => big.closed(), 'the biggest non-member to be closed');
    expect(b.counters.inputBudgetCloses).toBe(1);
    expect(small.closed() || member.closed()).toBe(false);
    // When a member's bytes cross it, a client still goes first (the one holding the most).
    const more = await join('client-more');
    read = b.counters.bytesReceived;
    more.socket.write(frameOf(4, 40 * 1024).subarray(0, 20 * 1024));
    await readAtLeast(b, read + 20 * 1024);
    expect(b.counters.inputBudgetCloses).toBe(1);
    member.socket.write(memberFrame.subarray(29 * 1024, 39 * 1024));
    await waitFor(() => more.closed(), 'the client holding the most to be closed');
    expect(member.closed()).toBe(false);
    expect(b.counters.inputBudgetCloses).toBe(2);
    // The member's frame completes and is delivered.
    member.socket.write(memberFrame.subarray(39 * 1024));
    await waitFor(() => got.includes('a:1'), "the member's message");
  });
});
