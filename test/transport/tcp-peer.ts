/**
 * A peer process for TCP transport tests: runs one TcpTransport and echoes
 * every message back to its sender with `note` set to `echo:<pid>`. Prints
 * `ready <port>` on stdout once listening.
 *
 * ```sh
 * node --import tsx test/transport/tcp-peer.ts '{"self":"b","port":7002,"peers":{"a":{"host":"127.0.0.1","port":7001}}}'
 * ```
 */
import { nodeId } from '../../src/lib/ids.js';
import type { PeerAddress } from '../../src/transport/tcp-transport.js';
import { TcpTransport } from '../../src/transport/tcp-transport.js';
import { testCodec } from './test-messages.js';
import { fastLimits, testCluster, testLogger } from './tcp-harness.js';

interface PeerConfig {
  self: string;
  port: number;
  peers: Record<string, PeerAddress>;
}

const config = JSON.parse(process.argv[2] ?? '{}') as PeerConfig;
const transport = await TcpTransport.start({
  self: nodeId(config.self),
  clusterId: testCluster,
  codec: testCodec,
  listen: { host: '127.0.0.1', port: config.port },
  peers: config.peers,
  limits: fastLimits,
  logger: testLogger(),
});
transport.onMessage((from, msg) => {
  transport.send(from, { ...msg, note: `echo:${process.pid}` });
});
process.on('SIGTERM', () => {
  void transport.close().then(() => process.exit(0));
});
process.stdout.write(`ready ${transport.address?.port ?? 0}\n`);
