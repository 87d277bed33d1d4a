/**
 * Ready-made RPC nodes over TCP for a server and its dial-only clients (the
 * examples, the bench, the CLI).
 *
 * ```ts
 * const server = await startTcpServer({ id: 'ttt-server', port: 7400 });
 * server.serve(TicTacToe, handlers);
 * const client = await startTcpClient({ server: { id: 'ttt-server', host: '127.0.0.1', port: 7400 } });
 * const ttt = client.client(TicTacToe, client.serverId);
 * ```
 *
 * Clients do not listen: they dial the server, which answers on the same
 * connection. The server's transport accepts dial-only peers
 * (`acceptUnknownPeers`); each client takes a fresh random id, so any number
 * of clients can talk to one server at once.
 */
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { clusterId, nodeId } from '../lib/ids.js';
import type { NodeId } from '../lib/ids.js';
import { TcpTransport } from '../transport/tcp-transport.js';
import type { PeerAddress, TcpTlsOptions } from '../transport/tcp-transport.js';
import { claimForCertificate } from '../trust/identity.js';
import { rpcCodec } from './messages.js';
import type { RpcWireMessage } from './messages.js';
import { RpcNode } from './node.js';
import type { RpcNodeOptions } from './node.js';

/** The cluster id examples use unless told otherwise. */
export const defaultClusterId = 'cohort-examples';

/** Options of {@link startTcpServer}. */
export interface TcpServerOptions {
  readonly id: string;
  readonly host?: string;
  /** 0 picks a free port (see `address`). */
  readonly port: number;
  readonly clusterId?: string;
  readonly logger?: Logger;
  readonly rpc?: RpcNodeOptions;
  /** Mutual TLS: the CA, the server's node certificate (for `id`) and key; clients then need certificates too. */
  readonly tls?: TcpTlsOptions;
}

/** An RPC node listening on TCP; `address` gives the bound port. */
export async function startTcpServer(
  options: TcpServerOptions,
): Promise<RpcNode & { readonly address: PeerAddress }> {
  const logger = options.logger ?? quietLogger();
  const transport = await TcpTransport.start<RpcWireMessage>({
    self: nodeId(options.id),
    clusterId: clusterId(options.clusterId ?? defaultClusterId),
    codec: rpcCodec,
    listen: { host: options.host ?? '127.0.0.1', port: options.port },
    peers: {},
    acceptUnknownPeers: true,
    logger,
    ...(options.tls === undefined ? {} : { tls: options.tls }),
  });
  const node = new RpcNode(transport, {
    ...options.rpc,
    server: { logger, ...options.rpc?.server },
  });
  return Object.assign(node, { address: transport.address as PeerAddress });
}

/** Options of {@link startTcpClient}. */
export interface TcpClientOptions {
  readonly server: { readonly id: string; readonly host: string; readonly port: number };
  readonly clusterId?: string;
  /**
   * This client's id (default: `client-` and 12 random hex digits; with
   * `tls`, the id its certificate allows: `user:<name>:<hex>` for a user,
   * the node id for a node).
   */
  readonly id?: string;
  readonly logger?: Logger;
  readonly rpc?: RpcNodeOptions;
  /** Mutual TLS: the cluster CA, this client's certificate and key. */
  readonly tls?: TcpTlsOptions;
}

/**
 * A dial-only RPC node that talks to one server; `serverId` names it. Each
 * call dials first if the link is down, so a server that is not running
 * fails the call at once with a definite UNAVAILABLE ("connection refused"),
 * and one of another cluster with HANDSHAKE_FAILED.
 */
export async function startTcpClient(
  options: TcpClientOptions,
): Promise<RpcNode & { readonly serverId: NodeId }> {
  const serverId = nodeId(options.server.id);
  const transport = await TcpTransport.start<RpcWireMessage>({
    self:
      options.id !== undefined
        ? nodeId(options.id)
        : options.tls !== undefined
          ? claimForCertificate(options.tls.cert)
          : nodeId(`client-${randomBytes(6).toString('hex')}`),
    clusterId: clusterId(options.clusterId ?? defaultClusterId),
    codec: rpcCodec,
    peers: new Map([[serverId, { host: options.server.host, port: options.server.port }]]),
    logger: options.logger ?? quietLogger(),
    ...(options.tls === undefined ? {} : { tls: options.tls }),
  });
  // Dial before a call is sent: a server that is down or of another cluster fails the call at once, saying so.
  const node = new RpcNode(transport, {
    ...options.rpc,
    client: {
      connect: (peer, ms) =>
        transport.isConnected(peer) ? Promise.resolve() : transport.connect(peer, ms),
      ...options.rpc?.client,
    },
  });
  return Object.assign(node, { serverId });
}

function quietLogger(): Logger {
  return pino({ level: process.env.COHORT_LOG_LEVEL ?? 'error' }, pino.destination(2));
}
