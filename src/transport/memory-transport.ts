/**
 * The in-process twin of the TCP transport, for tests of shells and of the
 * RPC layer: same {@link Transport} contract, same limits, same errors, but
 * messages move through a {@link MemoryNetwork} instead of sockets. Every
 * message is encoded by the sender's codec and decoded by the receiver's, as
 * on the wire, so a handler never shares objects with the sender.
 *
 * ```ts
 * const net = new MemoryNetwork();
 * const a = net.transport(nodeId('a'), codec);
 * const b = net.transport(nodeId('b'), codec);
 * b.onMessage((from, msg) => console.log(from, msg));   // "a {type:'Ping',...}"
 * a.send(nodeId('b'), { type: 'Ping', seq: 1 });          // delivered asynchronously
 * await b.close();                                       // a's later sends wait in a's queue
 * const b2 = net.transport(nodeId('b'), codec);          // "restart": the queue drains to b2
 * ```
 *
 * Delivery runs in a `setImmediate` callback, per link in send order. A link
 * whose receiver is absent (closed, or not yet created) keeps its messages in
 * the sender's bounded queue until a transport with that id appears, like TCP
 * reconnecting. The simulator has its own faulty network (src/sim); this twin
 * is deliberately reliable.
 */
import { CohortError, isCohortError } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import { limits } from '../lib/limits.js';
import { anonymous } from '../trust/identity.js';
import type { PeerIdentity } from '../trust/identity.js';
import type { Codec } from '../wire/codec.js';
import { FrameQueue } from './frame-queue.js';
import type {
  MessageHandler,
  PeerStatus,
  PeerStatusHandler,
  Transport,
  TransportCounters,
  TransportLimits,
} from './transport.js';
import { defaultTransportLimits, newCounters } from './transport.js';

/** Options of one {@link MemoryTransport}. */
export interface MemoryTransportOptions {
  /** Bounds (default: lib/limits.ts). */
  readonly limits?: Partial<TransportLimits>;
  /**
   * The nodes this one may send to; others give UNAVAILABLE (as a TCP
   * transport without their address). Default: any node id.
   */
  readonly peers?: Iterable<NodeId>;
  /** The identity other transports see for this one (`identityOf`; default anonymous), for tests of authorization. */
  readonly identity?: PeerIdentity;
}

interface Link {
  readonly from: MemoryTransport<unknown>;
  readonly to: NodeId;
  readonly queue: FrameQueue;
}

/** A set of in-process transports that can reach each other by node id. */
export class MemoryNetwork {
  private readonly nodes = new Map<NodeId, MemoryTransport<unknown>>();

  /** @internal The identity of the open transport of `id`. */
  identityOf(id: NodeId): PeerIdentity | undefined {
    return this.nodes.get(id)?.identity;
  }
  private readonly links = new Map<string, Link>();
  private pumpScheduled = false;

  /**
   * Creates the transport of node `self`. Throws INVALID_ARGUMENT if an open
   * transport with that id exists (close it first to simulate a restart).
   */
  transport<M>(
    self: NodeId,
    codec: Codec<M>,
    options: MemoryTransportOptions = {},
  ): MemoryTransport<M> {
    if (this.nodes.has(self)) {
      throw new CohortError('INVALID_ARGUMENT', `node ${self} already has an open transport`);
    }
    const t = new MemoryTransport<M>(this, self, codec, options);
    const peer = t as unknown as MemoryTransport<unknown>;
    this.nodes.set(self, peer);
    for (const other of this.nodes.values()) {
      if (other === peer) continue;
      other.status(self, 'up');
      peer.status(other.self, 'up');
    }
    this.schedule();
    return t;
  }

  /** @internal The link queue from `from` to `to`, created on demand. */
  link(from: MemoryTransport<unknown>, to: NodeId, bounds: TransportLimits): FrameQueue {
    const key = linkKey(from.self, to);
    let link = this.links.get(key);
    if (link === undefined || link.from !== from) {
      link = { from, to, queue: new FrameQueue(to, bounds) };
      this.links.set(key, link);
    }
    return link.queue;
  }

  /** @internal Called when a transport closes. */
  leave(t: MemoryTransport<unknown>): void {
    if (this.nodes.get(t.self) !== t) return;
    this.nodes.delete(t.self);
    for (const other of this.nodes.values()) other.status(t.self, 'down');
    // What the leaving node queued to present receivers is still delivered
    // (close flushes); what it queued to absent ones is dropped.
    for (const [key, link] of this.links) {
      if (link.from === t && !this.nodes.has(link.to)) {
        t.countDropped(link.queue.clear());
        this.links.delete(key);
      }
    }
    this.schedule();
  }

  /** @internal Schedules a delivery pass. */
  schedule(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** Delivers every queued message whose receiver is present, per link in order. */
  private pump(): void {
    for (const [key, link] of this.links) {
      const receiver = this.nodes.get(link.to);
      if (receiver === undefined) continue;
      if (link.queue.length > 0) link.from.countWrite();
      for (let frame = link.queue.shift(); frame !== undefined; frame = link.queue.shift()) {
        receiver.receive(link.from.self, frame);
        if (this.nodes.get(link.to) !== receiver) break; // closed by its own handler
      }
      if (link.queue.length === 0 && this.nodes.get(link.from.self) !== link.from) {
        this.links.delete(key); // a closed sender's flushed link
      }
    }
  }
}

function linkKey(from: NodeId, to: NodeId): string {
  return `${from}\u0000${to}`;
}

/** One node's endpoint on a {@link MemoryNetwork}. See the file comment. */
export class MemoryTransport<M> implements Transport<M> {
  private readonly codec: Codec<M>;
  private readonly bounds: TransportLimits;
  private readonly peers: ReadonlySet<NodeId> | undefined;
  private handler: MessageHandler<M> | undefined;
  private statusHandler: PeerStatusHandler | undefined;
  private closed = false;
  private readonly stats: TransportCounters = newCounters();

  /** @internal Use {@link MemoryNetwork.transport}. */
  constructor(
    private readonly network: MemoryNetwork,
    readonly self: NodeId,
    codec: Codec<M>,
    options: MemoryTransportOptions,
  ) {
    this.codec = codec;
    this.bounds = { ...defaultTransportLimits, ...options.limits };
    this.peers = options.peers === undefined ? undefined : new Set(options.peers);
    this.identity = options.identity ?? anonymous;
  }

  /** The identity others see for this transport. */
  readonly identity: PeerIdentity;

  get counters(): Readonly<TransportCounters> {
    return this.stats;
  }

  /** The identity of `peer`'s transport (its `identity` option), if it is open. */
  identityOf(peer: NodeId): PeerIdentity | undefined {
    return this.network.identityOf(peer);
  }

  send(to: NodeId, message: M): void {
    if (this.closed) throw new CohortError('CLOSED', `transport of ${this.self} is closed`);
    if (this.peers !== undefined && !this.peers.has(to)) {
      throw new CohortError('UNAVAILABLE', `no address known for node ${to}`, {
        details: { peer: to },
      });
    }
    const payload = this.codec.encode(message);
    if (payload.length > this.bounds.frameBytesMax) {
      throw new CohortError(
        'FRAME_TOO_LARGE',
        `message of ${payload.length} bytes exceeds frameBytesMax ${this.bounds.frameBytesMax}`,
        { details: { bytes: payload.length, limit: this.bounds.frameBytesMax } },
      );
    }
    if (to === this.self) {
      // As over TCP: a message to oneself that the receiver would refuse fails at send().
      try {
        this.codec.decode(payload);
      } catch (err) {
        if (!isCohortError(err)) throw err;
        throw new CohortError('INVALID_ARGUMENT', `message refused by validation: ${err.message}`, {
          cause: err,
          details: { ...err.details, code: err.code },
        });
      }
    }
    const queue = this.network.link(this as unknown as MemoryTransport<unknown>, to, this.bounds);
    try {
      queue.offer(payload);
    } catch (err) {
      this.stats.overloaded++;
      throw err;
    }
    this.stats.messagesSent++;
    this.stats.bytesSent += payload.length + limits.frameHeaderBytes;
    this.network.schedule();
  }

  onMessage(handler: MessageHandler<M>): void {
    this.handler = handler;
  }

  onPeerStatus(handler: PeerStatusHandler): void {
    this.statusHandler = handler;
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.network.leave(this as unknown as MemoryTransport<unknown>);
    }
    return Promise.resolve();
  }

  /** @internal Delivers one encoded message from `from`. */
  receive(from: NodeId, payload: Uint8Array): void {
    if (this.closed) return;
    this.stats.bytesReceived += payload.length + limits.frameHeaderBytes;
    // The sender encoded it with a codec for the same messages; a decode
    // failure means the two codecs differ. TCP would close the connection;
    // here the message is dropped and counted.
    let message: M;
    try {
      message = this.codec.decode(payload);
    } catch (err) {
      if (!isCohortError(err)) throw err;
      this.stats.decodeErrors++;
      return;
    }
    if (this.handler === undefined) {
      this.stats.droppedNoHandler++;
      return;
    }
    this.stats.messagesReceived++;
    this.handler(from, message);
  }

  /** @internal Reports a link change. */
  status(peer: NodeId, status: PeerStatus): void {
    if (this.closed) return;
    if (status === 'up') this.stats.connectionsOpened++;
    else this.stats.connectionsLost++;
    this.statusHandler?.(peer, status);
  }

  /** @internal Counts one delivery batch (the twin of a socket write). */
  countWrite(): void {
    this.stats.writes++;
  }

  /** @internal Counts frames discarded at close. */
  countDropped(n: number): void {
    this.stats.dropped += n;
  }
}
