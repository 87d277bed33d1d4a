/**
 * The Transport interface: best-effort, ordered, bounded message passing
 * between the nodes of one cluster. The RPC layer and every shell build on it;
 * it has two implementations with the same contract (checked by one
 * compliance suite, test/transport/compliance.ts): TCP (tcp-transport.ts) and
 * an in-process twin for tests (memory-transport.ts).
 *
 * ```ts
 * const t: Transport<MyMessage> = await TcpTransport.start({ self, clusterId, listen, peers, codec });
 * t.onMessage((from, msg) => console.log(from, describe(msg)));
 * try {
 *   t.send(nodeId('n2'), { type: 'Ping', seq: 1 });
 * } catch (err) {
 *   if (isCohortError(err) && err.code === 'OVERLOADED') backOff(); // definite: nothing was queued
 * }
 * await t.close();
 * ```
 *
 * Contract (both implementations):
 * - **Per-link FIFO, at most once.** Messages from A to B that arrive, arrive
 *   in the order A sent them, each at most once. Messages may be lost when a
 *   connection breaks or a node restarts (what was in flight is gone), never
 *   duplicated or reordered. Protocols above retry (Raft resends, RPC has
 *   deadlines).
 * - **send() never blocks and throws synchronously** a definite `CohortError`
 *   when the message was not queued: `OVERLOADED` (the bounded per-peer queue
 *   is full, counted in `counters.overloaded`), `FRAME_TOO_LARGE` (the
 *   encoded message exceeds `frameBytesMax`), `UNAVAILABLE` (no address is
 *   known for that node), `CLOSED` (this transport is closed),
 *   `INVALID_ARGUMENT` (a message to this node itself that its own receiver
 *   would refuse: self-sends are validated at once). A synchronous
 *   throw (rather than a result value) keeps the hot path allocation-free and
 *   makes an ignored failure impossible to miss. A successful return means
 *   "queued": delivery is not confirmed.
 * - **Queued while unreachable.** Messages to a peer that is down wait in its
 *   queue (bounded by `peerQueueMessagesMax` and `peerQueueBytesMax`) and go
 *   out, in order, once the peer is reachable again.
 * - **Validated input.** Every received message went through `Codec.decode`;
 *   a malformed one closes that one connection (logged, counted in
 *   `counters.decodeErrors`) and is never delivered. Nothing a peer sends
 *   can make a transport throw out of its own callbacks.
 * - **Handlers run asynchronously**, never inside `send()`, one message at a
 *   time. A message that arrives while no handler is set is dropped and
 *   counted in `counters.droppedNoHandler`.
 * - **close()** is idempotent. From the moment it is called, `send()` throws
 *   `CLOSED` and no handler is called again. Messages already queued to
 *   reachable peers are flushed (best effort, bounded in time); the promise
 *   resolves when every socket and timer is released.
 */
import type { CohortError } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import { limits } from '../lib/limits.js';
import type { PeerIdentity } from '../trust/identity.js';

/** Receives one message; `from` is the authenticated sender of the connection (handshake). */
export type MessageHandler<M> = (from: NodeId, message: M) => void;

/** Whether a peer is currently reachable: 'up' after a handshake, 'down' when the link breaks. */
export type PeerStatus = 'up' | 'down';

/**
 * Called when a link to `peer` comes up or goes down (the RPC layer fails
 * in-flight calls on 'down'). `reason` comes with a 'down' for a link that
 * could not be made because the other side refused it (HANDSHAKE_FAILED:
 * its certificate is not the node dialed, it refused ours, TLS and plaintext
 * mixed, another cluster): nothing queued for it was sent.
 */
export type PeerStatusHandler = (peer: NodeId, status: PeerStatus, reason?: CohortError) => void;

/** Monotonic counters of one transport, for metrics and tests. */
export interface TransportCounters {
  /** Messages accepted by send() (queued). */
  messagesSent: number;
  /** Messages delivered to the handler. */
  messagesReceived: number;
  /** Frame bytes written to the network (headers included). */
  bytesSent: number;
  /** Frame bytes read from the network (headers included). */
  bytesReceived: number;
  /** send() calls refused with OVERLOADED. */
  overloaded: number;
  /** Queued messages discarded at close() without being written (peer unreachable). */
  dropped: number;
  /** Messages that arrived while no handler was set. */
  droppedNoHandler: number;
  /** Connections closed because of malformed input (frame or message). */
  decodeErrors: number;
  /** Links that completed a handshake. */
  connectionsOpened: number;
  /** Links that went down after being up. */
  connectionsLost: number;
  /** Connections refused by the handshake (version, cluster or node mismatch, timeout). */
  handshakeFailures: number;
  /** Socket writes performed (each may carry many frames: write coalescing). */
  writes: number;
  /** Connections closed because their handshake did not finish within handshakeTimeoutMs (also in handshakeFailures). */
  handshakeTimeouts: number;
  /** Connections closed because a frame that had started did not arrive whole within frameReadTimeoutMs. */
  frameReadTimeouts: number;
  /** Open connections closed because nothing, not even a keepalive, arrived within idleTimeoutMs. */
  idleTimeouts: number;
  /** Keepalive frames sent on quiet connections. */
  keepalivesSent: number;
  /** Keepalive frames received (skipped, but they keep a link from idling out). */
  keepalivesReceived: number;
  /** Connections mid-handshake closed to make room for a new one (handshakesPendingMax, or the per-address cap). */
  handshakesEvicted: number;
  /** Idle dial-only clients closed to make room for a new one (dialOnlyPeersMax). */
  dialOnlyEvicted: number;
  /** Connections closed because the node's buffered partial frames exceeded inputBufferedBytesMax. */
  inputBudgetCloses: number;
}

/** A fresh set of zeroed counters. */
export function newCounters(): TransportCounters {
  return {
    messagesSent: 0,
    messagesReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    overloaded: 0,
    dropped: 0,
    droppedNoHandler: 0,
    decodeErrors: 0,
    connectionsOpened: 0,
    connectionsLost: 0,
    handshakeFailures: 0,
    writes: 0,
    handshakeTimeouts: 0,
    frameReadTimeouts: 0,
    idleTimeouts: 0,
    keepalivesSent: 0,
    keepalivesReceived: 0,
    handshakesEvicted: 0,
    dialOnlyEvicted: 0,
    inputBudgetCloses: 0,
  };
}

/** Sends and receives messages of type `M` for one node. See the file comment for the contract. */
export interface Transport<M> {
  /** This node. */
  readonly self: NodeId;
  /**
   * Queues `message` for `to`. Returns once queued; throws a definite
   * CohortError (OVERLOADED, FRAME_TOO_LARGE, UNAVAILABLE, CLOSED, and
   * INVALID_ARGUMENT for an invalid message to itself) if not.
   */
  send(to: NodeId, message: M): void;
  /** Sets the handler for received messages (replacing any previous one). */
  onMessage(handler: MessageHandler<M>): void;
  /** Sets the handler for link up/down events (replacing any previous one). */
  onPeerStatus(handler: PeerStatusHandler): void;
  /**
   * The authenticated identity behind `peer`'s open link (see
   * TcpTransport.identityOf); undefined if unknown or no link is up. A
   * transport without authentication answers `anonymous` (or leaves it out).
   */
  identityOf?(peer: NodeId): PeerIdentity | undefined;
  /** Stops the transport; see the file comment. Idempotent. */
  close(): Promise<void>;
  /** Live counters (read-only view). */
  readonly counters: Readonly<TransportCounters>;
}

/** The bounds a transport enforces; tests shrink them per instance. */
export interface TransportLimits {
  /** Largest encoded message (frame payload). */
  readonly frameBytesMax: number;
  /** Messages queued for one peer before send() answers OVERLOADED. */
  readonly peerQueueMessagesMax: number;
  /** Bytes queued for one peer before send() answers OVERLOADED. */
  readonly peerQueueBytesMax: number;
  /** Bytes gathered into one socket write. */
  readonly writeBatchBytesMax: number;
}

/** The default {@link TransportLimits}, from lib/limits.ts. */
export const defaultTransportLimits: TransportLimits = {
  frameBytesMax: limits.frameBytesMax,
  peerQueueMessagesMax: limits.peerQueueMessagesMax,
  peerQueueBytesMax: limits.peerQueueBytesMax,
  writeBatchBytesMax: limits.writeBatchBytesMax,
};
