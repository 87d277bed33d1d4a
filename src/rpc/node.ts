/**
 * An RPC node: one transport, used for serving, calling and pub/sub at once.
 * It owns the transport's message and peer-status handlers and routes each
 * message to the client side, the server side or pub/sub.
 *
 * ```ts
 * const net = new MemoryNetwork();
 * const server = new RpcNode(net.transport(nodeId('s'), rpcCodec));
 * server.serve(ListMax, { listMax: ({ values }) => ({ max: Math.max(...values) }) });
 * const client = new RpcNode(net.transport(nodeId('c'), rpcCodec));
 * const stub = client.client(ListMax, nodeId('s'));
 * console.log(await stub.listMax({ values: [4, 9, 2] }));   // { max: 9 }
 * await client.close(); await server.close();
 * ```
 */
import { RealClock } from '../lib/clock.js';
import type { Clock } from '../lib/clock.js';
import type { CohortError } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import { anonymous } from '../trust/identity.js';
import type { Random } from '../lib/random.js';
import type { Transport } from '../transport/transport.js';
import { makeClient, RpcClientSide } from './client.js';
import type { Invoker, RpcClientOptions } from './client.js';
import type { RpcWireMessage } from './messages.js';
import { PubSub } from './pubsub.js';
import type { PubSubOptions } from './pubsub.js';
import { RpcServerSide } from './server.js';
import type { RpcServerOptions, ServerInterceptor } from './server.js';
import type { CallOptions, Client, Handlers, ServiceDef } from './service.js';

/** Options of an {@link RpcNode}. */
export interface RpcNodeOptions {
  /** Time source for deadlines (default: the real clock). */
  readonly clock?: Clock;
  /** Randomness for the pub/sub publisher epoch (default: Math.random). */
  readonly random?: Random;
  readonly client?: RpcClientOptions;
  readonly server?: RpcServerOptions;
  readonly pubsub?: PubSubOptions;
  /**
   * Take over the transport's message and peer-status handlers (default
   * true). Pass false when the transport also carries other protocols' messages:
   * the owner then calls {@link RpcNode.deliver} and {@link RpcNode.peerStatus}.
   */
  readonly attach?: boolean;
}

/** Serves services, calls other nodes and carries pub/sub topics over one transport. */
export class RpcNode {
  /** The calling side (pending calls, counters). */
  readonly calls: RpcClientSide;
  /** The serving side (handlers, in-flight calls, counters). */
  readonly server: RpcServerSide;
  /** Topics: publish and subscribe across nodes. */
  readonly pubsub: PubSub;
  private closing: Promise<void> | undefined;

  constructor(
    readonly transport: Transport<RpcWireMessage>,
    options: RpcNodeOptions = {},
  ) {
    const clock = options.clock ?? new RealClock();
    const send = (to: NodeId, msg: RpcWireMessage): void => transport.send(to, msg);
    this.calls = new RpcClientSide(send, clock, options.client);
    const identityOf = transport.identityOf?.bind(transport);
    this.server = new RpcServerSide(send, clock, {
      ...(identityOf === undefined
        ? {}
        : { identify: (peer: NodeId) => identityOf(peer) ?? anonymous }),
      ...options.server,
    });
    const random = options.pubsub?.random ?? options.random;
    this.pubsub = new PubSub(
      transport.self,
      send,
      clock,
      random === undefined ? options.pubsub : { ...options.pubsub, random },
    );
    if (options.attach !== false) {
      transport.onMessage((from, msg) => this.deliver(from, msg));
      transport.onPeerStatus((peer, status, reason) => this.peerStatus(peer, status, reason));
    }
  }

  /**
   * Link status of `peer`: a lost link fails calls to it and aborts calls
   * from it; a refused one (`reason`, HANDSHAKE_FAILED) fails calls to it with
   * that reason.
   */
  peerStatus(peer: NodeId, status: 'up' | 'down', reason?: CohortError): void {
    this.calls.peerStatus(peer, status, reason);
    this.server.peerStatus(peer, status);
    this.pubsub.peerStatus(peer, status);
  }

  /** This node's id. */
  get self(): NodeId {
    return this.transport.self;
  }

  /** Serves `service` with `handlers` (typed: the compiler checks each one). */
  serve<S extends ServiceDef>(service: S, handlers: Handlers<S>): this {
    this.server.serve(service, handlers);
    return this;
  }

  /** Adds a server interceptor (logging, metrics, auth). */
  intercept(interceptor: ServerInterceptor): this {
    this.server.intercept(interceptor);
    return this;
  }

  /** A typed stub calling `service` on `peer`; `defaults` apply to every call. */
  client<S extends ServiceDef>(service: S, peer: NodeId, defaults: CallOptions = {}): Client<S> {
    return makeClient(service, this.calls.invoker(peer, defaults));
  }

  /** The plain invoker for `peer` (resilience policies wrap it). */
  invoker(peer: NodeId, defaults: CallOptions = {}): Invoker {
    return this.calls.invoker(peer, defaults);
  }

  /** Fails pending calls, aborts running ones, stops pub/sub and closes the transport. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.calls.close();
      this.server.close();
      this.pubsub.close();
      await this.transport.close();
    })();
    return this.closing;
  }

  /** Handles one RPC or pub/sub message received from `from`. */
  deliver(from: NodeId, msg: RpcWireMessage): void {
    switch (msg.type) {
      case 'RpcRequest':
      case 'RpcCancel':
      case 'RpcCredit':
        this.server.onMessage(from, msg);
        return;
      case 'RpcResponse':
      case 'RpcError':
      case 'RpcStreamItem':
      case 'RpcStreamEnd':
        this.calls.onReply(from, msg);
        return;
      case 'PsSubscribe':
      case 'PsUnsubscribe':
      case 'PsMessage':
      case 'PsAck':
        this.pubsub.onMessage(from, msg);
    }
  }
}
