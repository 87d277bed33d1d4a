/**
 * Helpers for TCP transport tests: free ports, a silent logger, and the
 * compliance harness (every node on 127.0.0.1 at a port fixed for the test,
 * so a restarted node comes back at the same address).
 */
import net from 'node:net';
import { afterEach } from 'vitest';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { clusterId } from '../../src/lib/ids.js';
import type { NodeId } from '../../src/lib/ids.js';
import { TcpTransport } from '../../src/transport/tcp-transport.js';
import type {
  PeerAddress,
  TcpTransportLimits,
  TcpTransportOptions,
} from '../../src/transport/tcp-transport.js';
import type { TransportHarness } from './compliance.js';
import { NODES, testCodec } from './test-messages.js';
import type { TestMessage } from './test-messages.js';

/** Ports this test process has handed out: the kernel may offer a closed probe's port again. */
const handedOut = new Set<number>();

/** A port that was free a moment ago (the OS picks it), never one this process handed out before. */
export async function freePort(): Promise<number> {
  // A probe's port is free again once it closes, so two calls (even concurrent
  // ones) could get the same port: never hand one out twice in a process.
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = await probePort();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('freePort: no new port after 100 probes');
}

function probePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** A logger for tests: silent unless COHORT_TEST_LOG is set (e.g. to 'debug'). */
export function testLogger(): Logger {
  return pino({ level: process.env.COHORT_TEST_LOG ?? 'silent' }, pino.destination(2));
}

/** Fast reconnects and short timeouts, so tests do not wait on production delays. */
export const fastLimits: Partial<TcpTransportLimits> = {
  reconnectDelayMsMin: 5,
  reconnectDelayMsMax: 100,
  connectTimeoutMs: 2_000,
  handshakeTimeoutMs: 2_000,
  transportCloseGraceMs: 500,
};

/** The cluster id of the tests. */
export const testCluster = clusterId('test-cluster');

/** The compliance harness for {@link TcpTransport}. */
export function tcpHarness(): TransportHarness {
  const open = new Set<TcpTransport<TestMessage>>();
  let book: Map<NodeId, PeerAddress> | undefined;
  async function addresses(): Promise<Map<NodeId, PeerAddress>> {
    if (book === undefined) {
      const entries: [NodeId, PeerAddress][] = [];
      for (const id of NODES) entries.push([id, { host: '127.0.0.1', port: await freePort() }]);
      book = new Map(entries);
    }
    return book;
  }
  return {
    async start(id, limits) {
      const peers = await addresses();
      const t = await TcpTransport.start<TestMessage>({
        self: id,
        clusterId: testCluster,
        codec: testCodec,
        listen: peers.get(id) as PeerAddress,
        peers,
        limits: { ...fastLimits, ...limits },
        logger: testLogger(),
      });
      open.add(t);
      return t;
    },
    async cleanup() {
      await Promise.all([...open].map((t) => t.close()));
    },
  };
}

/** A 127.0.0.1 address at `port`. */
export const local = (port: number): PeerAddress => ({ host: '127.0.0.1', port });

/**
 * For a test file's top level: `cleanups` (transports and sockets a test
 * opened, closed last first after it) and `startNode`, a TcpTransport of test
 * messages on 127.0.0.1 with the fast limits, closed after the test.
 */
export function perTestNodes(): {
  cleanups: (() => Promise<void> | void)[];
  startNode: (
    options: Partial<TcpTransportOptions<TestMessage>> & { self: NodeId; port: number },
  ) => Promise<TcpTransport<TestMessage>>;
} {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  const startNode = async (
    options: Partial<TcpTransportOptions<TestMessage>> & { self: NodeId; port: number },
  ): Promise<TcpTransport<TestMessage>> => {
    const t = await TcpTransport.start<TestMessage>({
      clusterId: testCluster,
      codec: testCodec,
      listen: local(options.port),
      peers: {},
      logger: testLogger(),
      ...options,
      limits: { ...fastLimits, ...options.limits },
    });
    cleanups.push(() => t.close());
    return t;
  };
  return { cleanups, startNode };
}
