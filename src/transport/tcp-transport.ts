/**
 * The TCP {@link Transport}: node:net (or node:tls), one persistent connection
 * per peer pair, reconnect with exponential backoff and jitter, write
 * coalescing, bounded per-peer queues, a handshake on every connection.
 *
 * ```ts
 * const t = await TcpTransport.start({
 *   self: nodeId('n1'),
 *   clusterId: clusterId('demo'),
 *   codec,                                              // a Codec<M>, e.g. messageCodec([...])
 *   listen: { host: '127.0.0.1', port: 7001 },
 *   peers: { n2: { host: '127.0.0.1', port: 7002 } },
 * });
 * t.onMessage((from, msg) => ...);
 * t.send(nodeId('n2'), msg);                            // throws OVERLOADED when n2's queue is full
 * await t.close();
 * ```
 *
 * **Connections.** A node dials a peer when it first sends to it, and from
 * then on keeps a connection to it (redialling after failures, with
 * exponential backoff and jitter, while it knows the peer's address). A
 * connection carries messages both ways, so a pair needs only one. When both
 * nodes dial at once, the dial of the node with the smaller id (string order)
 * wins: an acceptor whose own dial to that peer is still in progress refuses
 * a dial from a larger id with `Reject{code:'duplicate'}` (not an error; the
 * refused side waits for the other dial, and retries with backoff in case it
 * fails); an acceptor otherwise adopts the new connection, abandons its own
 * dial and replaces an older connection (the peer redialled, so it considers
 * the old one dead). A dialer sends messages only after the acceptor's
 * Welcome, and an acceptor adopts a connection (dropping the older one) before
 * it sends Welcome, so on each link the messages that arrive arrive in order.
 * {@link TcpTransport.connect} dials a peer without sending and reports why
 * a dial failed (refused, unreachable, another cluster), for clients that
 * want to know before they send. Sockets are unref'd: a connection alone
 * never keeps the process alive (a listening server does, and so do pending
 * RPC calls).
 *
 * **Sending.** `send` encodes the message at once (its size is known and
 * the caller may reuse the object) into a record, `u32 length | message`,
 * appends it to the peer's bounded queue, and schedules a flush with
 * `setImmediate`, so every message sent in one event-loop turn leaves in as
 * few frames and system calls as possible. A codec with `encodeInto` (the
 * MessageCodec's encoders compiled per message type) writes the record
 * straight into slabs of memory the transport recycles once their frames
 * are written, and the queue keeps records written back to back as one run
 * (FrameQueue.offerRecord), so a message costs no copy and no object of
 * its own; a codec with only `encodeTransient` encodes into a reused arena
 * and the record is copied into a slab. Either way messages are never
 * written into fresh memory. On a link that agreed protocol version 3
 * in the handshake, the flush writes *batch frames* (wire/frame.ts): one
 * header and one CRC32C over up to `batchFrameBytesMax` of records; records
 * copied one after another lie back to back in a slab and go out as one view
 * of it, with no further copy (the header is a separate piece of the same
 * writev), and short runs interleaved with other peers' records are copied
 * together. To an older peer (version 2) each record is copied into a
 * single-message frame with its own header and CRC32C. A flush corks the
 * socket, so Node hands each round to the kernel as one writev. Rounds are
 * written only while the socket's own buffer is below `writeBatchBytesMax`;
 * beyond that the queue holds the records until 'drain', so memory stays
 * bounded by the queue limits and a slow peer gets OVERLOADED instead of
 * unbounded buffering ({@link TcpTransport.waitQueueBelow} lets a bulk
 * sender wait instead). Messages written to a connection that then breaks are
 * lost (at-most-once); queued ones wait for the next connection.
 *
 * **Receiving.** Each connection has a {@link FrameDecoder}; each frame is
 * split into its messages where they lie in the socket reads (a batch
 * frame: `FrameDecoder.nextBatchInPlace`; only a message cut by a read
 * boundary is copied), and
 * every message of the frame is decoded and validated by the codec before
 * any is delivered, so a frame with one bad message is refused whole; any
 * failure while splitting, decoding or validating (a typed error, or any
 * other exception a decoder throws on input) closes that connection with a
 * logged reason and counts `decodeErrors`. Nothing is thrown out of socket
 * callbacks except a handler's own exception or a failed assertion (bugs).
 *
 * **Bounds on what peers can hold** (each in lib/limits.ts, each counted):
 * - Until its handshake completes a connection is unauthenticated: its
 *   frames are limited to `handshakeBytesMax`, it has `handshakeTimeoutMs`
 *   to finish (`handshakeTimeouts`), and at most `handshakesPendingMax` such
 *   connections are kept, `handshakesPendingPerAddressMax` per remote
 *   address. Past either, the *oldest* pending one is closed
 *   (`handshakesEvicted`): an honest handshake takes one round trip, so a
 *   flood of connections that never finish cannot keep it out (a SYN-cache
 *   policy), and one address competes only with itself once at its cap.
 * - A frame that started arriving must arrive whole within
 *   `frameReadTimeoutMs` (`frameReadTimeouts`): a peer trickling bytes is cut off.
 * - An open connection on which nothing arrives for `idleTimeoutMs` is closed
 *   (`idleTimeouts`). Quiet links stay open because both ends send an empty
 *   frame (8 zero bytes: length 0, CRC32C 0) after `keepaliveIntervalMs`
 *   without sending (`keepalivesSent`); the receiver skips it. So Raft
 *   followers (which do not talk to each other while a leader lives) and idle
 *   clients keep their links, and a dead, hung or junk peer is noticed.
 * - At most `dialOnlyPeersMax` dial-only clients; a new one past it takes the
 *   place of the client that exchanged no message for the longest, if that
 *   was at least `dialOnlyEvictIdleMsMin` ago (`dialOnlyEvicted`; the evicted
 *   client's transport redials with backoff, as after any lost link, and its
 *   calls in flight fail with CONNECTION_LOST), else it is refused.
 *   Address-book peers never count against this bound.
 * - Partial frames buffered over all connections are capped by
 *   `inputBufferedBytesMax`: past it the non-peer connections holding the
 *   most are closed first, then the connection whose bytes crossed the cap
 *   (`inputBudgetCloses`).
 * Refusals and timeouts are logged through a {@link LogLimiter}, so a flood
 * logs a few lines and a summary per window, not a line per connection.
 *
 * **Sending to self** goes through a loopback queue (encoded and decoded like
 * a remote message), so callers need no special case. The message is decoded
 * at `send()`, so one that a receiver would refuse throws a definite
 * `INVALID_ARGUMENT` to the sender instead of failing later.
 *
 * **Mutual TLS, bound to identities.** Pass `tls` (the cluster's CA, this
 * node's certificate and key, PEM) to run every connection over node:tls
 * 1.3 with certificates required both ways and verified against the CA. A
 * connection's identity is its peer's certificate's (src/trust/identity.ts:
 * a node id or a user name), never what its handshake claims: an acceptor
 * refuses a Hello whose claimed id is not one the certificate may claim
 * (a node its own id, a user `user:<name>:<suffix>`), with
 * `Reject{code:'identity'}` and a warn line naming the address and both
 * ids; a dialer refuses an acceptor whose certificate is not the node it
 * dialed. `admit` decides which identities may connect at all (a Raft port
 * takes members only, an RPC port users too); without it, node identities
 * in the address book, and users when `acceptUnknownPeers`. `identityOf`
 * gives handlers the identity behind a peer id; on a plaintext transport
 * every peer is `anonymous`. `setTls` swaps the certificate (rotation): new
 * connections use the new one, open ones keep theirs.
 *
 * **No mixing.** Both sides look at the first byte a dialer sends: a TLS
 * node answers a plaintext dialer with a plaintext `Reject{code:'tls'}` it
 * can read, and a plaintext node closes a TLS dialer's connection; both log
 * why. A TLS dialer whose connection fails in the TLS handshake logs the
 * error with what it likely means (a plaintext peer, a certificate from
 * another CA, an expired one).
 */
import { X509Certificate } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { assert, AssertionError } from '../lib/assert.js';
import { RealClock } from '../lib/clock.js';
import type { Clock, TimerHandle } from '../lib/clock.js';
import { CohortError, isCohortError } from '../lib/errors.js';
import type { ErrorCode } from '../lib/errors.js';
import type { ClusterId, NodeId } from '../lib/ids.js';
import { limits } from '../lib/limits.js';
import { LogLimiter } from '../lib/log-limiter.js';
import type { LogLevel } from '../lib/log-limiter.js';
import { seededRandom } from '../lib/random.js';
import type { Random } from '../lib/random.js';
import { crc32cRange } from '../lib/crc32c.js';
import type { Codec, DecodeOptions, FrameCodec } from '../wire/codec.js';
import {
  BATCH_FRAME_VERSION,
  BATCH_RECORD_HEADER_BYTES,
  batchFrameBytesMax,
  encodeFrame,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  putFrameHeader,
  putRecordHeader,
} from '../wire/frame.js';
import { checkHello, checkWelcome, handshakeCodec } from '../wire/handshake.js';
import type { HandshakeIdentity, HandshakeMessage, RejectCodeValue } from '../wire/handshake.js';
import {
  anonymous,
  checkClaim,
  describeIdentity,
  identityField,
  identityOfCertificate,
} from '../trust/identity.js';
import type { PeerIdentity } from '../trust/identity.js';
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

/** Where a peer listens. */
export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}

/** The bounds and delays of a {@link TcpTransport} (defaults from lib/limits.ts). */
export interface TcpTransportLimits extends TransportLimits {
  readonly reconnectDelayMsMin: number;
  readonly reconnectDelayMsMax: number;
  readonly connectTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
  readonly transportCloseGraceMs: number;
  readonly handshakeBytesMax: number;
  readonly handshakesPendingMax: number;
  readonly handshakesPendingPerAddressMax: number;
  readonly frameReadTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly keepaliveIntervalMs: number;
  readonly dialOnlyPeersMax: number;
  readonly dialOnlyEvictIdleMsMin: number;
  readonly inputBufferedBytesMax: number;
}

/**
 * Mutual TLS: the cluster's CA certificate(s), and this node's (or user's)
 * certificate and private key, PEM. Every connection then runs over TLS 1.3
 * with certificates required and checked both ways (see the file comment).
 */
export interface TcpTlsOptions {
  /** The CA certificate(s) peers' certificates must chain to (several during a CA rotation). */
  readonly ca: string | Buffer | readonly (string | Buffer)[];
  /** This end's certificate (its identity must allow the transport's `self` id). */
  readonly cert: string | Buffer;
  /** Its private key. */
  readonly key: string | Buffer;
}

/**
 * Decides whether a peer with this authenticated identity, claiming `claimed`,
 * may connect: undefined to admit it, else why not (sent to it in the
 * Reject, and logged). Called after the claim was bound to the certificate.
 */
export type AdmitPolicy = (identity: PeerIdentity, claimed: NodeId) => string | undefined;

/** Options of {@link TcpTransport.start}. */
export interface TcpTransportOptions<M> {
  /** This node's id, sent in the handshake. */
  readonly self: NodeId;
  /** The cluster; nodes of other clusters are refused. */
  readonly clusterId: ClusterId;
  /** Encodes and validates messages (a `FrameCodec` avoids one copy per message). */
  readonly codec: Codec<M>;
  /** Where to accept connections; omit for a node that only dials. Port 0 picks a free port. */
  readonly listen?: PeerAddress;
  /** The address book: every node this one may talk to. Dials from other nodes are refused. */
  readonly peers: ReadonlyMap<NodeId, PeerAddress> | Readonly<Record<string, PeerAddress>>;
  /** Overrides of the bounds (tests shrink them). */
  readonly limits?: Partial<TcpTransportLimits>;
  /** Structured logger (default: pino at 'warn' on stderr). */
  readonly logger?: Logger;
  /** Time source for timeouts and reconnect delays (default: the real clock). */
  readonly clock?: Clock;
  /** Jitter source for reconnect delays (default: seeded from Math.random). */
  readonly random?: Random;
  /** Protocol version every peer must share, announced in the handshake (default: limits.protocolVersion; tests override). */
  readonly protocolVersion?: number;
  /**
   * Newest protocol version offered in the handshake (default:
   * limits.protocolVersionMax); a test sets it to `protocolVersion` to act
   * as an older node, which sends and takes one message per frame.
   */
  readonly protocolVersionMax?: number;
  /** Run every connection over mutual TLS bound to identities (see the file comment). */
  readonly tls?: TcpTlsOptions;
  /** Which authenticated identities may connect (see {@link AdmitPolicy}; default in the file comment). */
  readonly admit?: AdmitPolicy;
  /**
   * Accept dials from nodes missing from the address book: dial-only
   * clients (the RPC client, the CLI). Such a peer has no address, so it is
   * reachable only while its connection is up: sends to it fail with
   * UNAVAILABLE once it is gone, and its state is forgotten when its link
   * drops. At most `dialOnlyPeersMax` are connected at once (see the file comment).
   */
  readonly acceptUnknownPeers?: boolean;
}

/** Runs of outgoing bytes at least this big are written as they are; smaller ones are copied together first. */
const COPY_BELOW_BYTES = 2048;
/** Idle time before TCP keepalive probes start: finds a dead peer on an idle link (the kernel's default is 2 h). */
const KEEPALIVE_DELAY_MS = 10_000;
/** Size of a write slab (see slabTake). */
const SLAB_BYTES = 1024 * 1024;
/** Messages (with their prefix) up to this size are copied into recycled slabs; bigger ones get their own buffer. */
const SLAB_FRAME_BYTES_MAX = SLAB_BYTES / 4;
/** Fully written slabs kept for reuse (the rest are left to the GC). */
const FREE_SLABS_MAX = 4;
/** A keepalive: a frame with an empty payload (length 0; the CRC32C of nothing is 0). */
const KEEPALIVE_FRAME = new Uint8Array(limits.frameHeaderBytes);

/**
 * A block of memory that outgoing frames and write chunks are cut from,
 * reused once nothing cut from it is still queued or being written (see
 * `releasePiece`): writing messages into memory that is already
 * mapped and cached is much cheaper than into fresh allocations.
 */
class WriteSlab {
  readonly bytes: Buffer;
  used = 0;
  /** Pieces handed out and not yet released. */
  outstanding = 0;
  /** Nothing more will be cut from it; it is reused when `outstanding` reaches 0. */
  retired = false;

  constructor(size: number) {
    this.bytes = Buffer.allocUnsafeSlow(size);
  }
}

/** Decode options for payloads cut from socket reads (see DecodeOptions.stable). */
const STABLE_INPUT: DecodeOptions = { stable: true };
/** What a decoded frame's slots in `batchSources` are reset to (see readFrames). */
const NO_SOURCE = new Uint8Array(0);

/** `bytes[start..end)` as a view (no copy). */
function viewOf(bytes: Uint8Array, start: number, end: number): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset + start, end - start);
}

type ConnState = 'connecting' | 'handshake' | 'open' | 'closed';

/** One socket and its decoding state. */
class Connection {
  state: ConnState;
  readonly decoder: FrameDecoder;
  timer: TimerHandle | undefined;
  /** The peer: known from the start for a dialer, after the Hello for an acceptor. */
  peer: Peer | undefined;
  lastError: Error | undefined;
  /** An accepted connection still counted in pendingHandshakes. */
  pending = false;
  /** The remote IP address (the per-address handshake cap counts by it). */
  readonly address: string;
  /** When bytes last arrived (idle timeout). */
  lastReceived: number;
  /** When bytes were last written (keepalives go out after keepaliveIntervalMs without). */
  lastSent: number;
  /** When an application message last went either way (dial-only eviction picks the oldest). */
  lastMessage: number;
  /** When the partial frame now buffered started arriving; undefined if none is. */
  partialSince: number | undefined;
  /** Bytes of this connection counted in the transport's input budget. */
  accounted = 0;
  /** Closed for a reason that is not a failure of the link (the simultaneous-dial tie-break). */
  benign = false;
  /** Who the peer is: from its certificate (TLS, once verified), `anonymous` on plaintext; undefined until known. */
  identity: PeerIdentity | undefined;
  /** Bytes received so far (the first byte tells TLS from plaintext). */
  received = 0;
  /** The protocol version agreed in the handshake (0 until then); from BATCH_FRAME_VERSION frames carry batches. */
  version = 0;

  constructor(
    /** The socket: a TLS acceptor's raw socket until its TLS handshake completes, then the TLS one. */
    public socket: net.Socket,
    readonly role: 'dialer' | 'acceptor',
    peer: Peer | undefined,
    handshakeBytesMax: number,
    now: number,
  ) {
    this.state = role === 'dialer' ? 'connecting' : 'handshake';
    this.peer = peer;
    this.address = socket.remoteAddress ?? '?';
    this.lastReceived = now;
    this.lastSent = now;
    this.lastMessage = now;
    this.partialSince = undefined;
    // Until the handshake names the peer, frames are limited to handshake size.
    this.decoder = new FrameDecoder({ frameBytesMax: handshakeBytesMax });
  }

  /** True for a connection to or from an address-book peer (not a dial-only client, not yet unknown). */
  get fromMember(): boolean {
    return this.peer !== undefined && !this.peer.dialOnly;
  }

  get remote(): string {
    return `${this.socket.remoteAddress ?? '?'}:${this.socket.remotePort ?? '?'}`;
  }

  /** The remote address and port as a key (a raw socket and the TLS socket over it share it). */
  get key(): string {
    return this.remote;
  }
}

/** Per-peer state: address, queue, the open connection and the dial in progress. */
class Peer {
  address: PeerAddress | undefined;
  conn: Connection | undefined;
  dialing: Connection | undefined;
  retryTimer: TimerHandle | undefined;
  attempts = 0;
  /** Set once something was sent to this peer: from then on we keep a connection. */
  wanted = false;
  /** Accepted from a node missing from the address book; forgotten when its link drops. */
  dialOnly = false;
  flushScheduled = false;
  /** Callers of waitQueueBelow(): resolved once the queue is shorter than `below`. */
  waiters: { below: number; resolve: () => void }[] = [];
  /** Why the last dial failed (cleared when a link opens): what connect() reports. */
  linkFailure: CohortError | undefined;
  /** Callers of connect() waiting for the link to open or a dial to fail. */
  readonly linkWaiters = new Set<LinkWaiter>();

  constructor(
    readonly id: NodeId,
    readonly queue: FrameQueue,
  ) {}
}

/** A caller of {@link TcpTransport.connect}. */
interface LinkWaiter {
  resolve(): void;
  reject(err: CohortError): void;
}

/** What a failed dial tells its connect() callers: refused, unreachable, or another cluster. */
function linkFailure(
  peer: Peer,
  reason: string,
  code: ErrorCode | undefined,
  cause: Error | undefined,
): CohortError {
  const where = peer.address === undefined ? '' : ` at ${peer.address.host}:${peer.address.port}`;
  const address =
    peer.address === undefined ? {} : { address: `${peer.address.host}:${peer.address.port}` };
  if (code === 'HANDSHAKE_FAILED') {
    return new CohortError('HANDSHAKE_FAILED', `${peer.id}${where}: ${reason}`, {
      details: { peer: peer.id, ...address, reason },
      ...(cause === undefined ? {} : { cause }),
    });
  }
  const errno = (cause as NodeJS.ErrnoException | undefined)?.code;
  const what =
    errno === 'ECONNREFUSED'
      ? 'connection refused (nothing listens there)'
      : errno === 'EHOSTUNREACH' || errno === 'ENETUNREACH'
        ? `unreachable (${errno})`
        : errno === 'ENOTFOUND' || errno === 'EAI_AGAIN'
          ? `unknown host (${errno})`
          : reason;
  return new CohortError('UNAVAILABLE', `${peer.id}${where}: ${what}`, {
    details: { peer: peer.id, ...address, ...(errno === undefined ? {} : { errno }), reason },
    ...(cause === undefined ? {} : { cause }),
  });
}

function toMap(
  peers: ReadonlyMap<NodeId, PeerAddress> | Readonly<Record<string, PeerAddress>>,
): Map<NodeId, PeerAddress> {
  if (peers instanceof Map) return new Map<NodeId, PeerAddress>(peers);
  return new Map(Object.entries(peers) as [NodeId, PeerAddress][]);
}

/** The TCP transport. Create it with {@link TcpTransport.start}; see the file comment. */
export class TcpTransport<M> implements Transport<M> {
  readonly self: NodeId;
  private readonly codec: Codec<M>;
  private readonly frameCodec: FrameCodec<M> | undefined;
  private readonly bounds: TcpTransportLimits;
  private readonly log: Logger;
  /** Rate-limited lines for events a peer can repeat at will (refusals, timeouts, bad input). */
  private readonly limited: LogLimiter;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly handshakeIdentity: HandshakeIdentity;
  /** node:tls options built from `options.tls` (replaced by setTls). */
  private tlsConfig: TlsConfig | undefined;
  /** Runs the TLS handshake of accepted connections (never listens itself: see acceptRaw). */
  private tlsServer: tls.Server | undefined;
  private readonly admit: AdmitPolicy | undefined;
  /** This end's identity: its certificate's, or anonymous on plaintext. */
  private ownIdentity: PeerIdentity;
  /** Accepted connections in their TLS handshake, by remote address:port. */
  private readonly tlsPending = new Map<string, Connection>();
  private readonly acceptUnknownPeers: boolean;
  /** Connected peers without an address (dial-only clients), bounded by dialOnlyPeersMax. */
  private dialOnlyPeers = 0;
  private readonly peers = new Map<NodeId, Peer>();
  private readonly live = new Set<Connection>();
  private readonly stats: TransportCounters = newCounters();
  private readonly loopback: FrameQueue;
  /** The decoded messages of the frames in `loopback`, in the same order (decoded at send()). */
  private loopbackMessages: M[] = [];
  private loopbackHead = 0;
  private loopbackScheduled = false;
  /**
   * The slab that frames and write chunks are cut from now, fully written
   * slabs ready for reuse, and the slab of each piece handed out (weakly, so
   * a slab whose pieces were dropped unwritten is simply collected).
   */
  private slab: WriteSlab = new WriteSlab(0);
  private freeSlabs: WriteSlab[] = [];
  private readonly slabOf = new WeakMap<ArrayBufferLike, WriteSlab>();
  private server: net.Server | undefined;
  private handler: MessageHandler<M> | undefined;
  private statusHandler: PeerStatusHandler | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  /** Accepted connections that have not finished their handshake. */
  private pendingHandshakes = 0;
  /** The same connections, oldest first (the first is closed to make room). */
  private readonly pendingConns = new Set<Connection>();
  /** Pending handshakes per remote address. */
  private readonly pendingByAddress = new Map<string, number>();
  /** Bytes of partial frames buffered over all connections (inputBufferedBytesMax). */
  private inputBuffered = 0;
  /** The periodic check of timeouts and keepalives. */
  private sweepTimer: TimerHandle | undefined;
  private readonly socketsGone: (() => void)[] = [];
  /** Where the messages of the frame being read lie (see FrameDecoder.nextBatchInPlace). */
  private readonly batchSources: Uint8Array[] = [];
  /** Their start and end offsets in batchSources, two per message. */
  private readonly batchBounds: number[] = [];
  /** The decoded messages of the frame being read, delivered once all decoded. */
  private readonly batchMessages: (M | undefined)[] = [];

  private constructor(options: TcpTransportOptions<M>) {
    this.self = options.self;
    this.codec = options.codec;
    const maybeFrame = options.codec as Partial<FrameCodec<M>>;
    this.frameCodec =
      typeof maybeFrame.encodeFrame === 'function' ? (options.codec as FrameCodec<M>) : undefined;
    this.bounds = {
      ...defaultTransportLimits,
      reconnectDelayMsMin: limits.reconnectDelayMsMin,
      reconnectDelayMsMax: limits.reconnectDelayMsMax,
      connectTimeoutMs: limits.connectTimeoutMs,
      handshakeTimeoutMs: limits.handshakeTimeoutMs,
      transportCloseGraceMs: limits.transportCloseGraceMs,
      handshakeBytesMax: limits.handshakeBytesMax,
      handshakesPendingMax: limits.handshakesPendingMax,
      handshakesPendingPerAddressMax: limits.handshakesPendingPerAddressMax,
      frameReadTimeoutMs: limits.frameReadTimeoutMs,
      idleTimeoutMs: limits.idleTimeoutMs,
      keepaliveIntervalMs: limits.keepaliveIntervalMs,
      dialOnlyPeersMax: limits.dialOnlyPeersMax,
      dialOnlyEvictIdleMsMin: limits.dialOnlyEvictIdleMsMin,
      inputBufferedBytesMax: limits.inputBufferedBytesMax,
      ...options.limits,
    };
    assert(
      this.bounds.reconnectDelayMsMin > 0 &&
        this.bounds.reconnectDelayMsMin <= this.bounds.reconnectDelayMsMax,
      'reconnect delays: 0 < min <= max',
    );
    this.log = (options.logger ?? defaultLogger()).child({
      node: options.self,
      component: 'transport',
    });
    this.clock = options.clock ?? new RealClock();
    this.limited = new LogLimiter(this.log, { clock: this.clock });
    this.random = options.random ?? seededRandom(Math.floor(Math.random() * 2 ** 32));
    const protocolVersion = options.protocolVersion ?? limits.protocolVersion;
    this.handshakeIdentity = {
      protocolVersion,
      protocolVersionMax: Math.max(
        protocolVersion,
        options.protocolVersionMax ?? limits.protocolVersionMax,
      ),
      clusterId: options.clusterId,
      self: options.self,
    };
    this.admit = options.admit;
    this.ownIdentity = anonymous;
    if (options.tls !== undefined) {
      this.tlsConfig = tlsConfig(options.tls);
      this.ownIdentity = this.checkOwnCertificate(options.tls);
    }
    this.acceptUnknownPeers = options.acceptUnknownPeers ?? false;
    this.loopback = new FrameQueue(options.self, this.bounds);
    for (const [id, address] of toMap(options.peers)) {
      if (id === options.self) continue;
      this.peerState(id).address = address;
    }
  }

  /** Creates a transport and, if `listen` is given, waits until it listens. */
  static async start<M>(options: TcpTransportOptions<M>): Promise<TcpTransport<M>> {
    const t = new TcpTransport(options);
    if (options.listen !== undefined) await t.listen(options.listen);
    return t;
  }

  /** The address the server listens on (with the real port when 0 was asked), if listening. */
  get address(): PeerAddress | undefined {
    const a = this.server?.address();
    if (a === null || a === undefined || typeof a === 'string') return undefined;
    return { host: a.address, port: a.port };
  }

  get counters(): Readonly<TransportCounters> {
    return this.stats;
  }

  /** Frames queued for `peer` (not yet written to a socket). */
  queuedTo(peer: NodeId): number {
    return peer === this.self ? this.loopback.length : (this.peers.get(peer)?.queue.length ?? 0);
  }

  /**
   * The state of the link to `peer`, for status pages and tests: 'up'
   * (handshake done), 'dialing' (connecting or handshaking), 'backoff'
   * (waiting to redial after a failure), 'idle' (nothing wanted yet).
   */
  linkState(peer: NodeId): 'up' | 'dialing' | 'backoff' | 'idle' {
    const state = this.peers.get(peer);
    if (state === undefined) return 'idle';
    if (state.conn !== undefined) return 'up';
    if (state.dialing !== undefined) return 'dialing';
    if (state.retryTimer !== undefined) return 'backoff';
    return 'idle';
  }

  /** Whether the link to `peer` is up (handshake done). */
  isConnected(peer: NodeId): boolean {
    return this.peers.get(peer)?.conn !== undefined;
  }

  /**
   * The authenticated identity behind `peer`'s open link (its certificate's;
   * `anonymous` on a plaintext transport), this end's own for `self`, or
   * undefined if no link is up. Messages are delivered while their link is
   * up, so a handler that asks at once gets the sender's identity.
   */
  identityOf(peer: NodeId): PeerIdentity | undefined {
    if (peer === this.self) return this.ownIdentity;
    return this.peers.get(peer)?.conn?.identity;
  }

  /** This end's identity (its certificate's; `anonymous` without TLS). */
  get identity(): PeerIdentity {
    return this.ownIdentity;
  }

  /** True if connections run over mutual TLS. */
  get secure(): boolean {
    return this.tlsConfig !== undefined;
  }

  /**
   * Replaces the certificate, key and CA (rotation): connections made from
   * now on, both ways, use the new ones; open connections keep theirs. The
   * new certificate must name the same identity. Throws INVALID_ARGUMENT
   * (changing nothing) if it does not, or if this transport runs without TLS.
   */
  setTls(next: TcpTlsOptions): void {
    if (this.tlsConfig === undefined) {
      throw new CohortError('INVALID_ARGUMENT', 'this transport runs without TLS (--insecure)');
    }
    const config = tlsConfig(next);
    const identity = this.checkOwnCertificate(next);
    if (describeIdentity(identity) !== describeIdentity(this.ownIdentity)) {
      throw new CohortError(
        'INVALID_ARGUMENT',
        `the new certificate is ${describeIdentity(identity)}'s, the transport is ${describeIdentity(this.ownIdentity)}'s`,
      );
    }
    this.tlsServer?.setSecureContext(config.server);
    this.tlsConfig = config;
    this.log.info({ identity: describeIdentity(identity) }, 'TLS certificate replaced');
  }

  /** This end's identity from its certificate; INVALID_ARGUMENT if it does not allow the `self` id. */
  private checkOwnCertificate(options: TcpTlsOptions): PeerIdentity {
    let identity: PeerIdentity | string;
    try {
      identity = identityOfCertificate(new X509Certificate(options.cert));
    } catch (e) {
      throw new CohortError('INVALID_ARGUMENT', `TLS certificate does not parse: ${String(e)}`, {
        cause: e,
      });
    }
    if (typeof identity === 'string') throw new CohortError('INVALID_ARGUMENT', identity);
    const wrong = checkClaim(identity, this.self);
    if (wrong !== undefined) {
      throw new CohortError('INVALID_ARGUMENT', `transport ${this.self}: ${wrong}`);
    }
    if (identity.kind !== 'anonymous' && identity.clusterId !== this.handshakeIdentity.clusterId) {
      throw new CohortError(
        'INVALID_ARGUMENT',
        `the certificate is for cluster ${identity.clusterId}, the transport is in ${this.handshakeIdentity.clusterId}`,
      );
    }
    return identity;
  }

  /**
   * Resolves once fewer than `below` frames are queued for `peer` (at once
   * if that is already so, and at close). For bulk senders that would rather
   * wait than handle OVERLOADED: send until the queue is long, then await this.
   */
  waitQueueBelow(peer: NodeId, below: number): Promise<void> {
    const state = this.peers.get(peer);
    if (state === undefined || this.closed || state.queue.length < below) return Promise.resolve();
    return new Promise((resolve) => state.waiters.push({ below, resolve }));
  }

  /**
   * Resolves once the link to `peer` is up, dialing it now unless a dial is
   * under way or waiting to be retried. Rejects with why the link is not up:
   * at once if the last dial failed and the next waits its backoff, else when
   * the dial under way fails — UNAVAILABLE (refused, unreachable, no
   * connection within the connect timeout; `details.errno`) or
   * HANDSHAKE_FAILED (another cluster, node id or protocol version;
   * `details.reason`) — or with UNAVAILABLE after `timeoutMs`. Every failure
   * is definite: connect() sends nothing. Clients call it before a request,
   * so a request is never queued for a link that may open after they gave up.
   */
  connect(peer: NodeId, timeoutMs: number): Promise<void> {
    if (this.closed) {
      return Promise.reject(new CohortError('CLOSED', `transport of ${this.self} is closed`));
    }
    const state = this.peers.get(peer);
    if (state?.conn !== undefined) return Promise.resolve();
    if (state === undefined || state.address === undefined) {
      return Promise.reject(
        new CohortError('UNAVAILABLE', `no address known for node ${peer}`, {
          details: { peer },
        }),
      );
    }
    if (state.retryTimer !== undefined && state.linkFailure !== undefined) {
      return Promise.reject(state.linkFailure);
    }
    state.wanted = true;
    if (state.dialing === undefined && state.retryTimer === undefined) this.dial(state);
    return new Promise<void>((resolve, reject) => {
      const timer = this.clock.setTimer(Math.max(0, timeoutMs), () => {
        state.linkWaiters.delete(waiter);
        const a = state.address;
        reject(
          new CohortError(
            'UNAVAILABLE',
            `${peer}${a === undefined ? '' : ` at ${a.host}:${a.port}`}: no connection within ${timeoutMs} ms`,
            { details: { peer, timeoutMs } },
          ),
        );
      });
      const waiter: LinkWaiter = {
        resolve: () => {
          this.clock.clearTimer(timer);
          resolve();
        },
        reject: (err) => {
          this.clock.clearTimer(timer);
          reject(err);
        },
      };
      state.linkWaiters.add(waiter);
    });
  }

  /** Ends connect() waits on `peer`: resolved if `err` is undefined, else rejected with it. */
  private settleLinkWaiters(peer: Peer, err: CohortError | undefined): void {
    if (peer.linkWaiters.size === 0) return;
    const waiters = [...peer.linkWaiters];
    peer.linkWaiters.clear();
    for (const w of waiters) {
      if (err === undefined) w.resolve();
      else w.reject(err);
    }
  }

  /** Adds or changes a peer's address; a changed address takes effect at the next dial. */
  setPeer(id: NodeId, address: PeerAddress): void {
    if (id === this.self) return;
    const peer = this.peerState(id);
    if (peer.dialOnly) {
      peer.dialOnly = false;
      this.dialOnlyPeers--;
    }
    peer.address = address;
  }

  /**
   * Forgets a peer (it left the cluster): closes its link, discards its
   * queue (counted as dropped), and refuses its dials from now on.
   */
  removePeer(id: NodeId): void {
    const peer = this.peers.get(id);
    if (peer === undefined) return;
    this.peers.delete(id);
    if (peer.dialOnly) this.dialOnlyPeers--;
    peer.wanted = false;
    peer.address = undefined;
    if (peer.retryTimer !== undefined) this.clock.clearTimer(peer.retryTimer);
    peer.retryTimer = undefined;
    if (peer.dialing !== undefined) this.drop(peer.dialing, 'peer removed', 'info', false);
    if (peer.conn !== undefined) this.drop(peer.conn, 'peer removed', 'info', false);
    this.stats.dropped += peer.queue.clear();
    this.wakeWaiters(peer);
    this.settleLinkWaiters(
      peer,
      new CohortError('UNAVAILABLE', `node ${id} was removed`, { details: { peer: id } }),
    );
  }

  send(to: NodeId, message: M): void {
    if (this.closed) throw new CohortError('CLOSED', `transport of ${this.self} is closed`);
    if (to === this.self) {
      this.sendToSelf(message);
      return;
    }
    const peer = this.peers.get(to);
    if (peer === undefined || (peer.address === undefined && peer.conn === undefined)) {
      throw new CohortError('UNAVAILABLE', `no address known for node ${to}`, {
        details: { peer: to },
      });
    }
    this.enqueue(peer.queue, message);
    peer.wanted = true;
    if (peer.conn !== undefined) this.scheduleFlush(peer);
    else if (peer.dialing === undefined && peer.retryTimer === undefined) this.dial(peer);
  }

  onMessage(handler: MessageHandler<M>): void {
    this.handler = handler;
  }

  onPeerStatus(handler: PeerStatusHandler): void {
    this.statusHandler = handler;
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  // ---- sending ------------------------------------------------------------

  private enqueue(queue: FrameQueue, message: M): void {
    const end = this.encodeIntoSlab(message);
    if (end >= 0) {
      // Queued where it was written: no object per message (see FrameQueue.offerRecord).
      const slab = this.slab;
      try {
        queue.offerRecord(slab.bytes, slab.used, end);
      } catch (err) {
        this.stats.overloaded++;
        throw err;
      }
      slab.used = end;
      slab.outstanding++;
    } else {
      const record = this.encodeRecord(message);
      try {
        queue.offer(record);
      } catch (err) {
        this.stats.overloaded++;
        this.releasePiece(record);
        throw err;
      }
    }
    this.stats.messagesSent++;
  }

  /**
   * Queues a message to this node itself. It is decoded at once, as a
   * receiver would decode it, so one that a receiver refuses is a definite
   * INVALID_ARGUMENT for the sender (an HTTP header too long for call
   * metadata, say) rather than an exception in a later turn.
   */
  private sendToSelf(message: M): void {
    const frame = this.encodeChecked(message);
    let decoded: M;
    try {
      decoded = this.codec.decode(frame.subarray(limits.frameHeaderBytes));
    } catch (err) {
      if (!isCohortError(err)) throw err;
      throw new CohortError('INVALID_ARGUMENT', `message refused by validation: ${err.message}`, {
        cause: err,
        details: { ...err.details, code: err.code },
      });
    }
    try {
      this.loopback.offer(frame);
    } catch (err) {
      this.stats.overloaded++;
      throw err;
    }
    this.loopbackMessages.push(decoded);
    this.stats.messagesSent++;
    this.scheduleLoopback();
  }

  /** Encodes a message to this node itself into a frame; throws FRAME_TOO_LARGE. */
  private encodeChecked(message: M): Uint8Array {
    const frame =
      this.frameCodec !== undefined
        ? this.frameCodec.encodeFrame(message)
        : encodeFrame(this.codec.encode(message), this.bounds.frameBytesMax);
    this.checkSize(frame.length - FRAME_HEADER_BYTES);
    return frame;
  }

  /**
   * Encodes a message for a peer's queue as a record, `u32 length |
   * message` (the unit of a batch frame; see flush), in slab memory when it
   * fits. No checksum yet: one is computed per frame when it is written.
   * Throws FRAME_TOO_LARGE.
   */
  private encodeRecord(message: M): Uint8Array {
    const head = BATCH_RECORD_HEADER_BYTES;
    const codec = this.frameCodec;
    const transient =
      codec?.encodeTransient !== undefined ? codec.encodeTransient(message, head) : undefined;
    const encoded = transient === undefined ? this.codec.encode(message) : undefined;
    const bytes =
      transient !== undefined ? transient.length - head : (encoded as Uint8Array).length;
    this.checkSize(bytes);
    assert(bytes > 0, 'a codec encoded a message into no bytes');
    const record =
      head + bytes <= SLAB_FRAME_BYTES_MAX
        ? this.slabTake(head + bytes)
        : Buffer.allocUnsafeSlow(head + bytes);
    if (transient !== undefined) record.set(transient);
    else record.set(encoded as Uint8Array, head);
    putRecordHeader(record, 0, bytes);
    return record;
  }

  /**
   * Encodes a message as a record straight into the current slab, behind
   * its length prefix, when the codec can (FrameCodec.encodeInto) and the
   * record fits a slab piece: returns where the record ends in `this.slab`
   * (it starts at `slab.used`, which the caller advances once it is
   * queued), or -1 (then {@link encodeRecord}). Throws FRAME_TOO_LARGE.
   */
  private encodeIntoSlab(message: M): number {
    const codec = this.frameCodec;
    if (codec?.encodeInto === undefined) return -1;
    const head = BATCH_RECORD_HEADER_BYTES;
    for (;;) {
      const slab = this.slab;
      const at = slab.used;
      const limit = Math.min(slab.bytes.length, at + SLAB_FRAME_BYTES_MAX);
      const end = at + head < limit ? codec.encodeInto(message, slab.bytes, at + head, limit) : -1;
      if (end >= 0) {
        const bytes = end - at - head;
        this.checkSize(bytes);
        assert(bytes > 0, 'a codec encoded a message into no bytes');
        putRecordHeader(slab.bytes, at, bytes);
        return end;
      }
      // The slab's end was in the way: once more in a fresh one; else it is a big message.
      if (limit === at + SLAB_FRAME_BYTES_MAX || at === 0) return -1;
      this.slabEnsure(slab.bytes.length - at + 1);
    }
  }

  private checkSize(payloadBytes: number): void {
    if (payloadBytes > this.bounds.frameBytesMax) {
      throw new CohortError(
        'FRAME_TOO_LARGE',
        `message of ${payloadBytes} bytes exceeds frameBytesMax ${this.bounds.frameBytesMax}`,
        { details: { bytes: payloadBytes, limit: this.bounds.frameBytesMax } },
      );
    }
  }

  private scheduleFlush(peer: Peer): void {
    if (peer.flushScheduled) return;
    peer.flushScheduled = true;
    setImmediate(() => {
      peer.flushScheduled = false;
      this.flush(peer, false);
    });
  }

  /**
   * Writes the peer's queued messages to its socket, in corked rounds of one
   * frame (batch frames, protocol version 3) or up to `writeBatchBytesMax`
   * bytes of single-message frames (an older peer), each of which Node hands
   * to the kernel as one writev. Unless `force`d (at close), stops while the
   * socket's own buffer holds a batch or more and resumes on 'drain'.
   */
  private flush(peer: Peer, force: boolean): void {
    const conn = peer.conn;
    if (conn === undefined || conn.state !== 'open') return;
    const socket = conn.socket;
    const batchMax = this.bounds.writeBatchBytesMax;
    const queue = peer.queue;
    if (queue.length > 0) {
      const now = this.clock.now();
      conn.lastSent = now;
      conn.lastMessage = now;
    }
    const batched = conn.version >= BATCH_FRAME_VERSION;
    while (queue.length > 0 && (force || socket.writableLength < batchMax)) {
      socket.cork();
      const bytes = batched
        ? this.writeBatch(socket, queue)
        : this.writeFrames(socket, queue, batchMax);
      socket.uncork();
      this.stats.writes++;
      this.stats.bytesSent += bytes;
    }
    if (peer.waiters.length > 0) this.wakeWaiters(peer);
  }

  private wakeWaiters(peer: Peer): void {
    const length = peer.queue.length;
    const gone = this.closed || this.peers.get(peer.id) !== peer;
    const ready = peer.waiters.filter((w) => length < w.below || gone);
    if (ready.length === 0) return;
    peer.waiters = peer.waiters.filter((w) => !ready.includes(w));
    for (const w of ready) w.resolve();
  }

  /**
   * Writes one batch frame of the oldest queued records: as many as fit
   * `batchFrameBytesMax` and `writeBatchBytesMax` (at least one) and
   * `batchFrameMessagesMax`. Its
   * header (length, one CRC32C over all its records) is a separate 8-byte
   * piece; records that lie back to back in a slab (queued one after the
   * other) go out as one view of it, with no copy; runs shorter than
   * COPY_BELOW_BYTES (records interleaved with other peers') are copied
   * together. Returns the bytes written.
   */
  private writeBatch(socket: net.Socket, queue: FrameQueue): number {
    const room = Math.min(limits.batchFrameBytesMax, this.bounds.writeBatchBytesMax);
    const messagesMax = limits.batchFrameMessagesMax;
    // Runs of adjacent records: [view, pieces] in order.
    const runs: Uint8Array[] = [];
    const runPieces: number[] = [];
    let total = 0;
    let count = 0;
    let buffer: ArrayBufferLike | undefined;
    let runStart = 0;
    let runEnd = 0;
    let pieces = 0;
    for (;;) {
      const n = queue.takeRecords(room - total, messagesMax - count, count === 0);
      if (n === 0) break;
      const bytes = queue.takenBytes;
      // Offsets in the underlying memory: records cut from one slab are adjacent whatever views they came in.
      const start = bytes.byteOffset + queue.takenStart;
      const end = bytes.byteOffset + queue.takenEnd;
      count += n;
      total += end - start;
      if (pieces > 0 && bytes.buffer === buffer && start === runEnd) {
        runEnd = end;
        pieces += n;
        continue;
      }
      if (pieces > 0) {
        runs.push(new Uint8Array(buffer as ArrayBufferLike, runStart, runEnd - runStart));
        runPieces.push(pieces);
      }
      buffer = bytes.buffer;
      runStart = start;
      runEnd = end;
      pieces = n;
    }
    assert(count > 0, 'writeBatch: a non-empty queue gave no record');
    runs.push(new Uint8Array(buffer as ArrayBufferLike, runStart, runEnd - runStart));
    runPieces.push(pieces);
    const header = this.slabTake(FRAME_HEADER_BYTES);
    const out: Uint8Array[] = [header];
    const outPieces: number[] = [1];
    let crc = 0;
    for (let i = 0; i < runs.length;) {
      const run = runs[i] as Uint8Array;
      let j = i + 1;
      let small = run.length;
      if (run.length < COPY_BELOW_BYTES) {
        for (; j < runs.length && (runs[j] as Uint8Array).length < COPY_BELOW_BYTES; j++) {
          small += (runs[j] as Uint8Array).length;
        }
      }
      if (j === i + 1) {
        out.push(run);
        outPieces.push(runPieces[i] as number);
      } else {
        // Several short runs: one copy of them all (fewer, larger writes).
        const chunk = this.slabTake(small);
        let at = 0;
        for (let k = i; k < j; k++) {
          const r = runs[k] as Uint8Array;
          chunk.set(r, at);
          at += r.length;
          this.releasePiece(r, runPieces[k]);
        }
        out.push(chunk);
        outPieces.push(1);
      }
      const last = out[out.length - 1] as Uint8Array;
      crc = crc32cRange(last, 0, last.length, crc);
      i = j;
    }
    putFrameHeader(header, 0, total, crc);
    for (let i = 0; i < out.length; i++) {
      // Callbacks run in write order, after the data left our memory (or the
      // write failed): the last one releases the whole frame.
      socket.write(
        out[i] as Uint8Array,
        i < out.length - 1
          ? undefined
          : () => {
              for (let k = 0; k < out.length; k++) {
                this.releasePiece(out[k] as Uint8Array, outPieces[k]);
              }
            },
      );
    }
    return FRAME_HEADER_BYTES + total;
  }

  /**
   * Writes the oldest queued records as single-message frames (protocol
   * version 2, an older peer): up to `room` bytes of them (at least one),
   * copied into one chunk with a frame header and CRC32C in place of each
   * length prefix. Returns the bytes written.
   */
  private writeFrames(socket: net.Socket, queue: FrameQueue, room: number): number {
    const grow = FRAME_HEADER_BYTES - BATCH_RECORD_HEADER_BYTES;
    const records: Uint8Array[] = [];
    let total = 0;
    // One record at a time, while its frame fits (the first one always).
    while (queue.takeRecords(room - total - grow, 1, records.length === 0) === 1) {
      const record = viewOf(queue.takenBytes, queue.takenStart, queue.takenEnd);
      records.push(record);
      total += record.length + grow;
    }
    assert(records.length > 0, 'writeFrames: a non-empty queue gave no record');
    const chunk =
      total <= SLAB_FRAME_BYTES_MAX ? this.slabTake(total) : Buffer.allocUnsafeSlow(total);
    let at = 0;
    for (const record of records) {
      const bytes = record.length - BATCH_RECORD_HEADER_BYTES;
      const start = at + FRAME_HEADER_BYTES;
      chunk.set(record.subarray(BATCH_RECORD_HEADER_BYTES), start);
      putFrameHeader(chunk, at, bytes, crc32cRange(chunk, start, start + bytes));
      this.releasePiece(record);
      at = start + bytes;
    }
    socket.write(chunk, () => this.releasePiece(chunk));
    return total;
  }

  /**
   * `bytes` bytes cut from the current slab (moving to a recycled or new
   * slab when it runs out); give them back with `releasePiece` once
   * written or copied. Pieces are cut back to back.
   */
  private slabTake(bytes: number): Uint8Array {
    return this.slabCut(this.slabEnsure(bytes), bytes);
  }

  /** The current slab, first replaced by a recycled or new one if it has less than `bytes` left. */
  private slabEnsure(bytes: number): WriteSlab {
    let slab = this.slab;
    if (slab.bytes.length - slab.used < bytes) {
      slab.retired = true;
      if (slab.outstanding === 0) this.recycle(slab);
      const reused = bytes <= SLAB_BYTES ? this.freeSlabs.pop() : undefined;
      slab = reused ?? new WriteSlab(Math.max(SLAB_BYTES, bytes));
      slab.used = 0;
      slab.retired = false;
      this.slab = slab;
      this.slabOf.set(slab.bytes.buffer, slab);
    }
    return slab;
  }

  /** Cuts the next `bytes` bytes of `slab` (the current one, with room for them). */
  private slabCut(slab: WriteSlab, bytes: number): Uint8Array {
    // Pieces are cut back to back, so records queued one after the other
    // can be written as one view (see writeBatch).
    const piece = new Uint8Array(slab.bytes.buffer, slab.bytes.byteOffset + slab.used, bytes);
    slab.used += bytes;
    slab.outstanding++;
    return piece;
  }

  /**
   * Gives back `count` pieces of a slab that `piece` covers (no-op for
   * other memory); a retired slab with none left out is reused.
   */
  private releasePiece(piece: Uint8Array, count = 1): void {
    const slab = this.slabOf.get(piece.buffer);
    if (slab === undefined) return;
    assert(slab.outstanding >= count, 'write slab released more often than taken');
    slab.outstanding -= count;
    if (slab.outstanding === 0 && slab.retired) this.recycle(slab);
  }

  private recycle(slab: WriteSlab): void {
    if (slab.bytes.length === SLAB_BYTES && this.freeSlabs.length < FREE_SLABS_MAX) {
      this.freeSlabs.push(slab);
    }
  }

  private scheduleLoopback(): void {
    if (this.loopbackScheduled) return;
    this.loopbackScheduled = true;
    setImmediate(() => {
      this.loopbackScheduled = false;
      this.drainLoopback();
    });
  }

  private drainLoopback(): void {
    // Only what is queued now: a handler that sends to itself again is served
    // in a later turn, so it cannot starve the event loop.
    for (let n = this.loopback.length; n > 0 && !this.closed; n--) {
      this.loopback.shift(); // kept only for the queue's bounds: decoded at send()
      const message = this.loopbackMessages[this.loopbackHead] as M;
      this.loopbackMessages[this.loopbackHead] = undefined as M;
      this.loopbackHead++;
      if (this.loopbackHead === this.loopbackMessages.length) this.clearLoopbackMessages();
      else if (this.loopbackHead >= 1024 && this.loopbackHead * 2 >= this.loopbackMessages.length) {
        this.loopbackMessages = this.loopbackMessages.slice(this.loopbackHead);
        this.loopbackHead = 0;
      }
      this.deliver(this.self, message);
    }
    if (this.loopback.length > 0 && !this.closed) this.scheduleLoopback();
  }

  private clearLoopbackMessages(): void {
    this.loopbackMessages = [];
    this.loopbackHead = 0;
  }

  // ---- connections ----------------------------------------------------------

  private peerState(id: NodeId): Peer {
    let peer = this.peers.get(id);
    if (peer === undefined) {
      peer = new Peer(id, new FrameQueue(id, this.bounds));
      this.peers.set(id, peer);
    }
    return peer;
  }

  private listen(address: PeerAddress): Promise<void> {
    const server = net.createServer((socket) => this.accept(socket));
    this.server = server;
    server.on('error', (err) => this.log.error({ err }, 'server error'));
    if (this.tlsConfig !== undefined) {
      // It never listens: an accepted socket is handed to it once its first
      // byte shows a TLS ClientHello (see firstBytes), so a plaintext dialer
      // can be told, in plaintext, why it is refused.
      const tlsServer = tls.createServer(this.tlsConfig.server, (socket) => this.secured(socket));
      tlsServer.on('tlsClientError', (err: Error, socket: tls.TLSSocket) =>
        this.tlsFailed(socket, err),
      );
      this.tlsServer = tlsServer;
    }
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        reject(
          new CohortError(
            'UNAVAILABLE',
            `cannot listen on ${address.host}:${address.port}: ${err.message}`,
            {
              cause: err,
            },
          ),
        );
      };
      server.once('error', onError);
      server.listen(address.port, address.host, () => {
        server.off('error', onError);
        this.log.info({ address: this.address, tls: this.secure }, 'listening');
        resolve();
      });
    });
  }

  private dial(peer: Peer): void {
    const address = peer.address;
    assert(address !== undefined, `dialing ${peer.id} without an address`);
    assert(
      peer.dialing === undefined && peer.conn === undefined,
      `already connected to ${peer.id}`,
    );
    const options = { host: address.host, port: address.port };
    const tlsClient = this.tlsConfig?.client;
    const socket =
      tlsClient === undefined ? net.connect(options) : tls.connect({ ...tlsClient, ...options });
    const conn = new Connection(
      socket,
      'dialer',
      peer,
      this.bounds.handshakeBytesMax,
      this.clock.now(),
    );
    peer.dialing = conn;
    this.attach(conn);
    conn.timer = this.clock.setTimer(this.bounds.connectTimeoutMs, () =>
      this.drop(conn, `connect to ${address.host}:${address.port} timed out`, 'debug'),
    );
    socket.once(tlsClient === undefined ? 'connect' : 'secureConnect', () => {
      if (conn.state !== 'connecting') return;
      this.clearTimer(conn);
      conn.state = 'handshake';
      if (tlsClient === undefined) {
        conn.identity = anonymous;
      } else {
        // The acceptor's certificate (verified against the CA by node:tls)
        // must be the node we dialed.
        const identity = this.certificateIdentity(socket as tls.TLSSocket);
        if (typeof identity === 'string') {
          this.failHandshake(conn, `dialed ${peer.id} at ${conn.remote}: ${identity}`, true);
          return;
        }
        conn.identity = identity;
        if (identity.kind !== 'node' || identity.id !== peer.id) {
          this.failHandshake(
            conn,
            `dialed ${peer.id} at ${conn.remote} but its certificate is ${describeIdentity(identity)}'s (a wrong address, or an impostor)`,
            true,
          );
          return;
        }
      }
      socket.write(
        handshakeCodec.encodeFrame({
          type: 'Hello',
          protocolVersion: this.handshakeIdentity.protocolVersion,
          clusterId: this.handshakeIdentity.clusterId,
          nodeId: this.self,
          to: peer.id,
          protocolVersionMax: this.handshakeIdentity.protocolVersionMax as number,
        }),
      );
      this.startHandshakeTimer(conn);
    });
  }

  /** The identity of a TLS peer's (verified) certificate, or why it has none this cluster accepts. */
  private certificateIdentity(socket: tls.TLSSocket): PeerIdentity | string {
    const cert = socket.getPeerX509Certificate();
    if (cert === undefined) return 'the peer presented no certificate';
    const identity = identityOfCertificate(cert);
    if (typeof identity === 'string') return identity;
    if (identity.kind !== 'anonymous' && identity.clusterId !== this.handshakeIdentity.clusterId) {
      return `its certificate (${describeIdentity(identity)}) is for cluster ${identity.clusterId}, not ${this.handshakeIdentity.clusterId}`;
    }
    return identity;
  }

  private accept(socket: net.Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    const conn = new Connection(
      socket,
      'acceptor',
      undefined,
      this.bounds.handshakeBytesMax,
      this.clock.now(),
    );
    // Make room: the oldest pending handshake of this address once it is at
    // its cap, else the oldest of all once every slot is taken.
    const sameAddress = this.pendingByAddress.get(conn.address) ?? 0;
    if (sameAddress >= this.bounds.handshakesPendingPerAddressMax) {
      this.evictPending(
        this.oldestPending(conn.address),
        `${sameAddress} handshakes pending from ${conn.address}`,
      );
    } else if (this.pendingHandshakes >= this.bounds.handshakesPendingMax) {
      this.evictPending(this.oldestPending(), `${this.pendingHandshakes} handshakes pending`);
    }
    this.pendingHandshakes++;
    this.pendingConns.add(conn);
    this.pendingByAddress.set(conn.address, (this.pendingByAddress.get(conn.address) ?? 0) + 1);
    conn.pending = true;
    if (this.tlsConfig === undefined) conn.identity = anonymous;
    this.attach(conn);
    // Covers the TLS handshake too: both must finish within handshakeTimeoutMs.
    this.startHandshakeTimer(conn);
  }

  /**
   * The first bytes on an accepted connection: a TLS node hands a TLS
   * ClientHello (record type 0x16) to its TLS server and refuses anything
   * else with a plaintext Reject; a plaintext node refuses a ClientHello.
   * True if it took the chunk.
   */
  private firstBytes(conn: Connection, chunk: Buffer): boolean {
    const isTls = chunk[0] === TLS_HANDSHAKE_RECORD;
    const tlsServer = this.tlsServer;
    if (tlsServer !== undefined) {
      if (isTls) {
        const raw = conn.socket;
        raw.pause();
        raw.removeAllListeners('data');
        raw.removeAllListeners('drain');
        raw.unshift(chunk);
        conn.received += chunk.length;
        this.tlsPending.set(conn.key, conn);
        tlsServer.emit('connection', raw);
        return true;
      }
      this.refuse(
        conn,
        'tls',
        `${this.self} requires mutual TLS and refuses plaintext connections (is the dialer running with --insecure? nodes do not mix TLS and plaintext)`,
      );
      return true;
    }
    if (isTls) {
      this.stats.handshakeFailures++;
      this.limited.warn(
        { remote: conn.remote, code: 'HANDSHAKE_FAILED', reject: 'tls' },
        'TLS connection refused: this node runs without TLS (--insecure); nodes do not mix TLS and plaintext',
      );
      // A TLS alert (fatal, protocol_version) so the dialer's TLS stack reports a refusal, not garbage.
      conn.socket.end(TLS_ALERT_PROTOCOL_VERSION);
      this.drop(conn, 'a TLS dialer on a plaintext node', 'debug', false);
      return true;
    }
    return false;
  }

  /** An accepted connection finished its TLS handshake (the peer's certificate verified). */
  private secured(socket: tls.TLSSocket): void {
    const key = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    const conn = this.tlsPending.get(key);
    this.tlsPending.delete(key);
    if (conn === undefined || conn.state === 'closed' || this.closed) {
      socket.destroy();
      return;
    }
    conn.socket = socket;
    socket.on('data', (chunk: Buffer) => this.onData(conn, chunk));
    socket.on('error', (err: Error) => {
      conn.lastError = err;
    });
    socket.on('drain', () => this.drained(conn));
    if (!socket.authorized) {
      const why = socket.authorizationError as unknown;
      const code = typeof why === 'string' ? why : why instanceof Error ? why.message : 'unknown';
      this.refuse(
        conn,
        'identity',
        socket.getPeerX509Certificate() === undefined
          ? `${conn.remote} presented no certificate${tlsHint('CERTIFICATE_REQUIRED', 'acceptor')}`
          : `the certificate of ${conn.remote} was refused: ${code}${tlsHint(code, 'acceptor')}`,
      );
      return;
    }
    const identity = this.certificateIdentity(socket);
    if (typeof identity === 'string') {
      this.refuse(conn, 'identity', `${conn.remote}: ${identity}`);
      return;
    }
    conn.identity = identity;
  }

  /** An accepted connection's TLS handshake failed (no certificate, another CA, expired, ...). */
  private tlsFailed(socket: tls.TLSSocket, err: Error): void {
    const key = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    const conn = this.tlsPending.get(key);
    this.tlsPending.delete(key);
    socket.destroy();
    if (conn === undefined) return;
    this.failHandshake(
      conn,
      `TLS handshake with ${conn.remote} failed: ${tlsErrorText(err)}${tlsHint(err, 'acceptor')}`,
    );
  }

  private drained(conn: Connection): void {
    if (conn.state === 'open' && conn.peer !== undefined && !this.closed) {
      this.flush(conn.peer, false);
    }
  }

  /** The oldest connection mid-handshake (from `address` if given). */
  private oldestPending(address?: string): Connection | undefined {
    for (const conn of this.pendingConns) {
      if (address === undefined || conn.address === address) return conn;
    }
    return undefined;
  }

  private evictPending(conn: Connection | undefined, why: string): void {
    if (conn === undefined) return;
    this.stats.handshakesEvicted++;
    this.drop(
      conn,
      `closed the oldest unfinished handshake to make room (${why})`,
      'warn',
      true,
      'OVERLOADED',
    );
  }

  private attach(conn: Connection): void {
    // For a TLS acceptor this is the raw socket: 'data' and 'drain' move to
    // the TLS socket once it is secured; 'close' stays here (the TCP
    // connection's end, whichever socket is on top).
    const socket = conn.socket;
    this.live.add(conn);
    if (this.sweepTimer === undefined && !this.closed) this.armSweep();
    socket.setNoDelay(true);
    socket.setKeepAlive(true, KEEPALIVE_DELAY_MS);
    // A connection alone never keeps the process alive: a listening server
    // does, and so does a pending call (Clock.hold), but an idle client's
    // links do not hold a script that is done.
    socket.unref();
    socket.on('data', (chunk: Buffer) => this.onData(conn, chunk));
    socket.on('error', (err) => {
      conn.lastError = err;
    });
    socket.on('drain', () => this.drained(conn));
    socket.on('close', () => {
      const err = conn.lastError;
      if (
        !this.closed &&
        conn.role === 'dialer' &&
        conn.state !== 'open' &&
        conn.state !== 'closed' &&
        this.tlsConfig !== undefined &&
        err !== undefined &&
        isTlsFailure(err)
      ) {
        // The TLS handshake (or the peer's verdict on our certificate, which
        // TLS 1.3 delivers just after it) failed: say so and what it likely means.
        this.failHandshake(
          conn,
          `TLS handshake with ${conn.peer?.id ?? '?'} (${conn.remote}) failed: ${tlsErrorText(err)}${tlsHint(err, 'dialer')}`,
          true,
        );
      }
      const reason = this.closed
        ? 'transport closed'
        : err !== undefined
          ? err.message
          : 'connection closed by the peer';
      this.drop(conn, reason, conn.state === 'open' ? 'info' : 'debug');
      this.live.delete(conn);
      if (this.live.size === 0) for (const done of this.socketsGone.splice(0)) done();
    });
  }

  private startHandshakeTimer(conn: Connection): void {
    conn.timer = this.clock.setTimer(this.bounds.handshakeTimeoutMs, () => {
      if (conn.state !== 'handshake') return;
      this.stats.handshakeTimeouts++;
      this.failHandshake(
        conn,
        `handshake with ${conn.remote} timed out after ${this.bounds.handshakeTimeoutMs} ms`,
      );
    });
  }

  private clearTimer(conn: Connection): void {
    if (conn.timer !== undefined) {
      this.clock.clearTimer(conn.timer);
      conn.timer = undefined;
    }
  }

  // ---- receiving ------------------------------------------------------------

  private onData(conn: Connection, chunk: Buffer): void {
    if (conn.state === 'closed' || this.closed) return;
    if (conn.received === 0 && conn.role === 'acceptor' && this.firstBytes(conn, chunk)) return;
    conn.received += chunk.length;
    const now = this.clock.now();
    conn.lastReceived = now;
    this.stats.bytesReceived += chunk.length;
    conn.decoder.push(chunk); // the decoder is alive: a dead one means conn was dropped
    const framesBefore = conn.decoder.frames;
    this.readFrames(conn, now);
    if (isClosed(conn) || this.closed) return;
    // A frame that started must arrive whole within frameReadTimeoutMs (see sweep()).
    const buffered = conn.decoder.bufferedBytes;
    if (buffered === 0) conn.partialSince = undefined;
    else if (conn.partialSince === undefined || conn.decoder.frames !== framesBefore) {
      conn.partialSince = now;
    }
    this.inputBuffered += buffered - conn.accounted;
    conn.accounted = buffered;
    if (this.inputBuffered > this.bounds.inputBufferedBytesMax) this.enforceInputBudget(conn);
  }

  /** Decodes and handles every whole frame buffered on `conn`. */
  private readFrames(conn: Connection, now: number): void {
    const decoder = conn.decoder;
    const codec = this.codec;
    const sources = this.batchSources;
    const bounds = this.batchBounds;
    const messages = this.batchMessages;
    for (;;) {
      let handshake: HandshakeMessage | undefined;
      let count = 0;
      try {
        // A frame error kills the decoder and the connection: nothing after
        // corrupt bytes is ever delivered.
        if (conn.state === 'open' && conn.version >= BATCH_FRAME_VERSION) {
          count = decoder.nextBatchInPlace(this.bounds.frameBytesMax, sources, bounds);
          if (count < 0) return;
          if (count === 0) {
            this.stats.keepalivesReceived++; // skipped: it only keeps the link from idling out
            continue;
          }
        } else {
          if (!decoder.nextInPlace()) return;
          const source = decoder.frameSource;
          const start = decoder.frameStart;
          const end = decoder.frameEnd;
          if (conn.state !== 'open') {
            handshake = handshakeCodec.decode(source.subarray(start, end));
          } else if (end === start) {
            this.stats.keepalivesReceived++;
            continue;
          } else {
            // An older peer (version 2): one message per frame.
            sources[0] = source;
            bounds[0] = start;
            bounds[1] = end;
            count = 1;
          }
        }
        // Every message of a frame is decoded and validated before any is
        // delivered: a frame with one bad message is refused whole. Socket
        // reads are never reused and the decoder never writes into what it
        // returned, so large byte fields may stay views (no copy).
        for (let i = 0; i < count; i++) {
          const source = sources[i] as Uint8Array;
          const from = bounds[2 * i] as number;
          const to = bounds[2 * i + 1] as number;
          // Decoded where it sits in the socket read (no view per message) when the codec can.
          messages[i] =
            codec.decodeRange !== undefined
              ? codec.decodeRange(source, from, to, STABLE_INPUT)
              : codec.decode(source.subarray(from, to), STABLE_INPUT);
        }
        // Let go of the socket reads, keeping the array's room for the next frame
        // (`length = 0` would drop it, and the next batch regrow it step by step).
        sources.fill(NO_SOURCE, 0, count);
      } catch (err) {
        sources.length = 0;
        messages.length = 0;
        // Whatever a decoder throws on input closes this connection only;
        // a failed assertion is a bug and crashes.
        if (err instanceof AssertionError) throw err;
        this.badInput(conn, err);
        return;
      }
      if (handshake !== undefined) {
        this.onHandshakeFrame(conn, handshake);
        if (isClosed(conn) || this.closed) return;
        continue;
      }
      conn.lastMessage = now;
      const from = (conn.peer as Peer).id;
      for (let i = 0; i < count; i++) {
        const message = messages[i] as M;
        messages[i] = undefined;
        // Outside the try: a handler's exception is the application's bug.
        // A handler that closes the link or the transport stops the rest.
        if (isClosed(conn) || this.closed) {
          messages.length = 0;
          return;
        }
        this.deliver(from, message);
      }
      if (isClosed(conn) || this.closed) return;
    }
  }

  /** Closes a connection whose input could not be decoded or validated; logs the reason. */
  private badInput(conn: Connection, err: unknown): void {
    const code: ErrorCode = isCohortError(err) ? err.code : 'DECODE_ERROR';
    const text = err instanceof Error ? err.message : String(err);
    const reason = `malformed input from ${describePeer(conn)}: ${code}: ${text}`;
    // Not one of our typed errors: a decoder failed in a way nobody planned
    // for (e.g. a RangeError). The input is still the peer's, but the one
    // line about it is an error, with the stack.
    const untyped = isCohortError(err) ? undefined : err;
    const level = untyped === undefined ? 'warn' : 'error';
    if (conn.state === 'open') {
      this.stats.decodeErrors++;
      this.drop(conn, reason, level, true, code, untyped);
    } else {
      this.stats.handshakeFailures++;
      this.drop(conn, reason, level, true, 'HANDSHAKE_FAILED', untyped);
    }
  }

  private deliver(from: NodeId, message: M): void {
    if (this.closed) return;
    if (this.handler === undefined) {
      this.stats.droppedNoHandler++;
      return;
    }
    this.stats.messagesReceived++;
    this.handler(from, message);
  }

  private onHandshakeFrame(conn: Connection, msg: HandshakeMessage): void {
    if (conn.role === 'acceptor') {
      if (msg.type !== 'Hello') {
        this.refuse(conn, 'protocol', `expected Hello, got ${msg.type}`);
        return;
      }
      // The claim must be one the certificate allows (DESIGN.md, Trust), and
      // the identity one this transport admits.
      const identity = conn.identity;
      if (identity === undefined) {
        // A TLS acceptor learns it when the TLS handshake completes, before any frame.
        this.refuse(conn, 'identity', `no authenticated identity for ${conn.remote}`);
        return;
      }
      const wrong = checkClaim(identity, msg.nodeId);
      if (wrong !== undefined) {
        this.refuse(conn, 'identity', `peer at ${conn.remote} ${wrong}`, {
          claimed: msg.nodeId,
          identity: describeIdentity(identity),
        });
        return;
      }
      const denied = this.admission(identity, msg.nodeId as NodeId);
      if (denied !== undefined) {
        this.refuse(
          conn,
          'identity',
          `${describeIdentity(identity)} at ${conn.remote}: ${denied}`,
          {
            claimed: msg.nodeId,
            identity: describeIdentity(identity),
          },
        );
        return;
      }
      const verdict = checkHello(
        this.handshakeIdentity,
        msg,
        (id) => this.peers.get(id)?.address !== undefined || this.acceptUnknownPeers,
      );
      if (!verdict.ok) {
        this.refuse(conn, verdict.code, verdict.reason);
        return;
      }
      const known = this.peers.get(verdict.peer);
      if (known === undefined && this.dialOnlyPeers >= this.bounds.dialOnlyPeersMax) {
        if (!this.evictIdleClient()) {
          this.refuse(conn, 'protocol', `too many dial-only clients (${this.dialOnlyPeers})`);
          return;
        }
      }
      const peer = this.peerState(verdict.peer);
      if (known === undefined) {
        peer.dialOnly = true;
        this.dialOnlyPeers++;
      }
      if (peer.dialing !== undefined && this.self < peer.id) {
        // Simultaneous dials: the smaller id's dial wins; ours is in progress.
        this.refuse(
          conn,
          'duplicate',
          `${this.self} is dialing ${peer.id} itself (smaller id wins)`,
        );
        return;
      }
      if (peer.dialing !== undefined)
        this.drop(peer.dialing, `${peer.id} dialed us first`, 'debug', false);
      if (peer.conn !== undefined)
        this.drop(peer.conn, `${peer.id} opened a new connection`, 'info', false);
      conn.peer = peer;
      conn.socket.write(
        handshakeCodec.encodeFrame({
          type: 'Welcome',
          protocolVersion: this.handshakeIdentity.protocolVersion,
          clusterId: this.handshakeIdentity.clusterId,
          nodeId: this.self,
          protocolVersionAgreed: verdict.version,
        }),
      );
      conn.version = verdict.version;
      this.open(conn, peer);
      return;
    }
    const peer = conn.peer as Peer;
    if (msg.type === 'Reject') {
      const reason = `${peer.id} refused the handshake (${msg.code}): ${msg.reason}`;
      // 'duplicate' is the simultaneous-dial tie-break, not a failure.
      if (msg.code === 'duplicate') {
        conn.benign = true;
        this.drop(conn, reason, 'debug');
      } else this.failHandshake(conn, reason, true);
      return;
    }
    if (msg.type !== 'Welcome') {
      this.failHandshake(conn, `expected Welcome from ${peer.id}, got ${msg.type}`);
      return;
    }
    const verdict = checkWelcome(this.handshakeIdentity, peer.id, msg);
    if (!verdict.ok) {
      this.failHandshake(
        conn,
        `handshake with ${peer.id} failed (${verdict.code}): ${verdict.reason}`,
        true,
      );
      return;
    }
    if (peer.conn !== undefined)
      this.drop(peer.conn, 'replaced by our new connection', 'info', false);
    conn.version = verdict.version;
    this.open(conn, peer);
  }

  /** Counts and logs a failed handshake (HANDSHAKE_FAILED) and closes the connection. */
  /**
   * Counts and logs a failed handshake (HANDSHAKE_FAILED) and closes the
   * connection. `refused`: a dial the other side (or its certificate) refused,
   * which redialling will not mend by itself; the peer is reported 'down' with
   * the reason, so callers waiting on the link learn why at once.
   */
  private failHandshake(conn: Connection, reason: string, refused = false): void {
    if (conn.state === 'closed') return;
    this.stats.handshakeFailures++;
    this.drop(conn, reason, 'warn', true, 'HANDSHAKE_FAILED');
    const peer = conn.peer;
    if (refused && conn.role === 'dialer' && peer !== undefined && peer.conn === undefined) {
      this.emitStatus(
        peer.id,
        'down',
        new CohortError('HANDSHAKE_FAILED', reason, { details: { peer: peer.id, refused: true } }),
      );
    }
  }

  /** Stops counting `conn` as a pending handshake. */
  private release(conn: Connection): void {
    if (conn.pending) {
      conn.pending = false;
      this.pendingHandshakes--;
      this.pendingConns.delete(conn);
      const n = (this.pendingByAddress.get(conn.address) ?? 1) - 1;
      if (n === 0) this.pendingByAddress.delete(conn.address);
      else this.pendingByAddress.set(conn.address, n);
    }
  }

  /**
   * Makes room for a new dial-only client by closing the one that exchanged
   * no message for the longest, if that was at least dialOnlyEvictIdleMsMin
   * ago. False if every client is busier than that.
   */
  private evictIdleClient(): boolean {
    let victim: Connection | undefined;
    for (const peer of this.peers.values()) {
      const c = peer.conn;
      if (!peer.dialOnly || c === undefined) continue;
      if (victim === undefined || c.lastMessage < victim.lastMessage) victim = c;
    }
    if (victim === undefined) return false;
    const idleMs = this.clock.now() - victim.lastMessage;
    if (idleMs < this.bounds.dialOnlyEvictIdleMsMin) return false;
    this.stats.dialOnlyEvicted++;
    this.drop(
      victim,
      `closed to make room for a new client (dialOnlyPeersMax ${this.bounds.dialOnlyPeersMax}; no message for ${Math.round(idleMs)} ms)`,
      'warn',
      true,
      'OVERLOADED',
    );
    return true;
  }

  /**
   * Brings the bytes of partial frames buffered over all connections back
   * under inputBufferedBytesMax: closes the connections of non-members
   * (clients, unfinished handshakes) holding the most first, then, if
   * members' frames alone are over, the connection whose bytes crossed it.
   */
  private enforceInputBudget(trigger: Connection): void {
    const budget = this.bounds.inputBufferedBytesMax;
    while (this.inputBuffered > budget) {
      let victim: Connection | undefined;
      for (const c of this.live) {
        if (
          c.accounted > 0 &&
          !c.fromMember &&
          (victim === undefined || c.accounted > victim.accounted)
        ) {
          victim = c;
        }
      }
      if (victim === undefined && trigger.accounted > 0 && !isClosed(trigger)) victim = trigger;
      if (victim === undefined) return;
      this.stats.inputBudgetCloses++;
      this.drop(
        victim,
        `${this.inputBuffered} bytes of partial frames buffered on this node, over inputBufferedBytesMax ${budget}; this connection held ${victim.accounted}`,
        'warn',
        true,
        'OVERLOADED',
      );
    }
  }

  /**
   * Whether `identity` may connect claiming `claimed`: the `admit` policy if
   * given; else, with TLS, node identities (the address book is checked by
   * checkHello) and users when acceptUnknownPeers. Undefined: admitted.
   */
  private admission(identity: PeerIdentity, claimed: NodeId): string | undefined {
    if (this.admit !== undefined) return this.admit(identity, claimed);
    if (identity.kind === 'user' && !this.acceptUnknownPeers) {
      return `users may not connect to ${this.self}'s peer port`;
    }
    return undefined;
  }

  /** Sends Reject with a reason, logs it (with `fields`), and closes after the write. */
  private refuse(
    conn: Connection,
    code: RejectCodeValue,
    reason: string,
    fields: Readonly<Record<string, unknown>> = {},
  ): void {
    if (code !== 'duplicate') this.stats.handshakeFailures++;
    this.limited.log(
      code === 'duplicate' ? 'debug' : 'warn',
      {
        remote: conn.remote,
        identity: identityField(conn.identity),
        code: 'HANDSHAKE_FAILED',
        reject: code,
        reason,
        ...fields,
      },
      code === 'identity' ? 'handshake refused: identity' : 'handshake refused',
    );
    conn.state = 'closed';
    this.clearTimer(conn);
    this.release(conn);
    this.unaccount(conn);
    this.forgetTlsPending(conn);
    conn.socket.end(handshakeCodec.encodeFrame({ type: 'Reject', code, reason }));
    conn.socket.destroySoon();
  }

  /** Forgets a connection waiting for its TLS handshake. */
  private forgetTlsPending(conn: Connection): void {
    if (this.tlsPending.get(conn.key) === conn) this.tlsPending.delete(conn.key);
  }

  /** Takes a closed connection's buffered bytes out of the input budget. */
  private unaccount(conn: Connection): void {
    this.inputBuffered -= conn.accounted;
    conn.accounted = 0;
    conn.partialSince = undefined;
  }

  private open(conn: Connection, peer: Peer): void {
    this.clearTimer(conn);
    this.release(conn);
    conn.lastMessage = this.clock.now();
    // A batch frame may carry a few bytes more than one maximal message (frame.ts).
    conn.decoder.setFrameBytesMax(
      conn.version >= BATCH_FRAME_VERSION
        ? batchFrameBytesMax(this.bounds.frameBytesMax)
        : this.bounds.frameBytesMax,
    );
    conn.state = 'open';
    if (peer.dialing === conn) peer.dialing = undefined;
    if (peer.retryTimer !== undefined) {
      this.clock.clearTimer(peer.retryTimer);
      peer.retryTimer = undefined;
    }
    peer.conn = conn;
    peer.attempts = 0;
    peer.linkFailure = undefined;
    this.settleLinkWaiters(peer, undefined);
    this.stats.connectionsOpened++;
    this.log.info(
      {
        peer: peer.id,
        remote: conn.remote,
        identity: identityField(conn.identity),
        role: conn.role,
        version: conn.version,
      },
      'link up',
    );
    this.emitStatus(peer.id, 'up');
    if (peer.queue.length > 0) this.scheduleFlush(peer);
  }

  /**
   * Closes a connection (idempotent) and updates its peer: the link goes
   * down, and a reconnect is scheduled if we still want this peer (unless
   * `reconnect` is false because a replacement is being adopted).
   */
  private drop(
    conn: Connection,
    reason: string,
    level: LogLevel,
    reconnect = true,
    code?: ErrorCode,
    err?: unknown,
  ): void {
    if (conn.state === 'closed') return;
    const wasOpen = conn.state === 'open';
    conn.state = 'closed';
    this.clearTimer(conn);
    this.release(conn);
    this.unaccount(conn);
    this.forgetTlsPending(conn);
    conn.socket.destroy();
    const peer = conn.peer;
    const identity = identityField(conn.identity);
    if (peer === undefined) {
      this.limited.log(
        level,
        { remote: conn.remote, identity, reason, code, ...(err === undefined ? {} : { err }) },
        'connection closed',
        `${level} connection closed`,
      );
      return;
    }
    if (peer.dialing === conn) {
      peer.dialing = undefined;
      // A failed dial of ours (not one replaced by the peer's own): tell connect() why.
      if (reconnect && !conn.benign && peer.conn === undefined) {
        peer.linkFailure = linkFailure(peer, reason, code, conn.lastError);
        this.settleLinkWaiters(peer, peer.linkFailure);
      }
    }
    if (peer.conn === conn) {
      peer.conn = undefined;
      this.stats.connectionsLost++;
    }
    const message = wasOpen ? 'link down' : 'connection failed';
    this.limited.log(
      level,
      {
        peer: peer.id,
        remote: conn.remote,
        identity,
        reason,
        code,
        ...(err === undefined ? {} : { err }),
      },
      message,
      `${level} ${message}`,
    );
    if (reconnect && peer.dialOnly && peer.conn === undefined && this.peers.get(peer.id) === peer) {
      // A dial-only client cannot be redialled: forget it and what was queued for it.
      // (Drops without `reconnect` are replacements and removals, handled there.)
      this.peers.delete(peer.id);
      this.dialOnlyPeers--;
      this.stats.dropped += peer.queue.clear();
      this.wakeWaiters(peer);
    }
    if (this.closed) return;
    if (wasOpen) this.emitStatus(peer.id, 'down');
    if (reconnect) this.scheduleReconnect(peer);
  }

  private scheduleReconnect(peer: Peer): void {
    if (
      this.closed ||
      !peer.wanted ||
      peer.address === undefined ||
      peer.conn !== undefined ||
      peer.dialing !== undefined ||
      peer.retryTimer !== undefined
    ) {
      return;
    }
    const delay = this.backoff(peer.attempts++);
    peer.retryTimer = this.clock.setTimer(delay, () => {
      peer.retryTimer = undefined;
      if (!this.closed && peer.conn === undefined && peer.dialing === undefined) this.dial(peer);
    });
  }

  private backoff(attempt: number): number {
    return reconnectDelayMs(
      attempt,
      this.bounds.reconnectDelayMsMin,
      this.bounds.reconnectDelayMsMax,
      this.random,
    );
  }

  private emitStatus(peer: NodeId, status: PeerStatus, reason?: CohortError): void {
    if (this.closed) return;
    if (reason === undefined) this.statusHandler?.(peer, status);
    else this.statusHandler?.(peer, status, reason);
  }

  // ---- timeouts and keepalives ----------------------------------------------

  /** Every this often, {@link sweep} checks the timeouts and sends keepalives. */
  private get sweepMs(): number {
    const b = this.bounds;
    return Math.max(1, Math.min(b.keepaliveIntervalMs, b.frameReadTimeoutMs, b.idleTimeoutMs) / 4);
  }

  private armSweep(): void {
    this.sweepTimer = this.clock.setTimer(this.sweepMs, () => {
      this.sweepTimer = undefined;
      if (this.closed) return;
      this.sweep();
      if (this.live.size > 0) this.armSweep();
    });
  }

  /**
   * One pass over the live connections: closes those whose partial frame is
   * overdue (frameReadTimeoutMs) or on which nothing arrived for
   * idleTimeoutMs, and sends a keepalive on open ones quiet for
   * keepaliveIntervalMs. A timeout fires within a sweep period after it is due.
   */
  private sweep(): void {
    const now = this.clock.now();
    const b = this.bounds;
    for (const conn of [...this.live]) {
      if (conn.state === 'closed' || conn.state === 'connecting') continue;
      if (conn.partialSince !== undefined && now - conn.partialSince >= b.frameReadTimeoutMs) {
        this.stats.frameReadTimeouts++;
        const reason = `a frame from ${describePeer(conn)} did not arrive whole within ${b.frameReadTimeoutMs} ms (${conn.decoder.bufferedBytes} bytes so far)`;
        if (conn.state === 'open') this.drop(conn, reason, 'warn', true, 'TIMEOUT');
        else this.failHandshake(conn, reason);
        continue;
      }
      if (conn.state !== 'open') continue; // the handshake has its own timer
      if (now - conn.lastReceived >= b.idleTimeoutMs) {
        this.stats.idleTimeouts++;
        this.drop(
          conn,
          `nothing arrived from ${describePeer(conn)} for ${Math.round(now - conn.lastReceived)} ms (idleTimeoutMs ${b.idleTimeoutMs})`,
          'warn',
          true,
          'TIMEOUT',
        );
        continue;
      }
      if (
        now - conn.lastSent >= b.keepaliveIntervalMs &&
        conn.socket.writableLength === 0 &&
        conn.peer?.queue.length === 0
      ) {
        conn.lastSent = now;
        this.stats.keepalivesSent++;
        this.stats.bytesSent += KEEPALIVE_FRAME.length;
        // Between whole frames: flushes write whole frames only.
        conn.socket.write(KEEPALIVE_FRAME);
      }
    }
  }

  // ---- shutdown -------------------------------------------------------------

  private async shutdown(): Promise<void> {
    this.closed = true;
    if (this.sweepTimer !== undefined) this.clock.clearTimer(this.sweepTimer);
    this.sweepTimer = undefined;
    const serverClosed = new Promise<void>((resolve) => {
      if (this.server === undefined) resolve();
      else this.server.close(() => resolve());
    });
    for (const peer of this.peers.values()) {
      if (peer.retryTimer !== undefined) this.clock.clearTimer(peer.retryTimer);
      peer.retryTimer = undefined;
      const conn = peer.conn;
      if (conn !== undefined && conn.state === 'open') {
        this.flush(peer, true); // best effort: whatever is queued goes out before FIN
        conn.socket.end();
      }
      this.stats.dropped += peer.queue.clear();
      this.wakeWaiters(peer);
      this.settleLinkWaiters(
        peer,
        new CohortError('CLOSED', `transport of ${this.self} is closed`),
      );
    }
    this.stats.dropped += this.loopback.clear();
    this.clearLoopbackMessages();
    for (const conn of this.live) {
      if (conn.state !== 'open') {
        this.clearTimer(conn);
        conn.socket.destroy();
      }
    }
    if (this.live.size > 0) {
      const gone = new Promise<void>((resolve) => this.socketsGone.push(resolve));
      const grace = this.clock.setTimer(this.bounds.transportCloseGraceMs, () => {
        for (const conn of this.live) conn.socket.destroy();
      });
      await gone;
      this.clock.clearTimer(grace);
    }
    await serverClosed;
    this.limited.close();
    this.log.info('transport closed');
  }
}

/**
 * The delay before reconnect attempt `attempt` (0-based): exponential backoff
 * with jitter, uniform in [d/2, d] where d = min(max, min·2^attempt) — the
 * "equal jitter" of Brooker, "Exponential Backoff And Jitter" (AWS
 * Architecture Blog, 2015). The jitter spreads the redials of many nodes
 * after a common failure; the d/2 floor keeps a flapping peer from being
 * hammered.
 */
export function reconnectDelayMs(
  attempt: number,
  min: number,
  max: number,
  random: Random,
): number {
  const d = Math.min(max, min * 2 ** Math.min(attempt, 30));
  return d / 2 + random.next() * (d / 2);
}

/** Reads the state afresh (callbacks may have closed the connection meanwhile). */
function isClosed(conn: Connection): boolean {
  return conn.state === 'closed';
}

/** A peer in messages: its id, authenticated identity and address. */
function describePeer(conn: Connection): string {
  const who = identityField(conn.identity);
  return conn.peer !== undefined
    ? `${conn.peer.id} (${who}, ${conn.remote})`
    : `${who} at ${conn.remote}`;
}

/** The first byte of a TLS record carrying a handshake message (a ClientHello opens with it). */
const TLS_HANDSHAKE_RECORD = 0x16;
/** A TLS alert record (TLS 1.0 framing): fatal, protocol_version (70). */
const TLS_ALERT_PROTOCOL_VERSION = Buffer.from([0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46]);

/** node:tls options of both sides, from the CA, certificate and key. */
interface TlsConfig {
  readonly server: tls.TlsOptions;
  readonly client: tls.ConnectionOptions;
}

function tlsConfig(o: TcpTlsOptions): TlsConfig {
  const ca = (Array.isArray(o.ca) ? o.ca : [o.ca]) as (string | Buffer)[];
  const common = { ca, cert: o.cert, key: o.key, minVersion: 'TLSv1.3' as const };
  return {
    // The acceptor checks `authorized` itself (secured()): node:tls would
    // otherwise drop a client whose certificate fails silently, with no
    // event to log and nothing the client could read.
    server: { ...common, requestCert: true, rejectUnauthorized: false },
    client: {
      ...common,
      rejectUnauthorized: true,
      // Not a host name check: the acceptor's identity is checked against the
      // node dialed once the TLS handshake is done (see dial()).
      checkServerIdentity: () => undefined,
    },
  };
}

/** True for an error of the TLS handshake or a TLS alert from the peer. */
function isTlsFailure(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  return (
    code.startsWith('ERR_SSL_') ||
    code.startsWith('ERR_TLS_') ||
    /CERT|SIGNATURE|ISSUER/.test(code) ||
    code === 'ECONNRESET' ||
    /secure TLS connection/.test(err.message)
  );
}

function tlsErrorText(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  // OpenSSL's messages open with a long error-queue prefix: the code says it.
  const text = err.message.includes(':error:')
    ? (err.message.split(':').at(-2) ?? err.message)
    : err.message;
  return code === undefined ? text.trim() : `${code} (${text.trim()})`;
}

/** What a TLS failure likely means, for the log line. */
function tlsHint(err: Error | string, side: 'dialer' | 'acceptor'): string {
  const code = typeof err === 'string' ? err : ((err as NodeJS.ErrnoException).code ?? '');
  if (
    /PROTOCOL_VERSION|WRONG_VERSION|PACKET_LENGTH|HTTP_REQUEST|UNKNOWN_PROTOCOL/.test(code) ||
    code === 'ECONNRESET'
  ) {
    return side === 'dialer'
      ? ' — is the peer a plaintext (--insecure) node? nodes do not mix TLS and plaintext'
      : ' — not a TLS client of this cluster';
  }
  if (/EXPIRED|NOT_YET_VALID/.test(code))
    return ' — a certificate expired: issue a new one (cohort certs issue)';
  if (
    /UNKNOWN_CA|UNABLE_TO_VERIFY|UNABLE_TO_GET|SELF_SIGNED|ISSUER|SIGNATURE|BAD_CERTIFICATE|CERTIFICATE_UNKNOWN|DECRYPT_ERROR/.test(
      code,
    )
  ) {
    return " — the certificates are not from the same CA: each cluster has its own (the peer's, or ours, is not this cluster's CA's)";
  }
  if (/CERTIFICATE_REQUIRED|DID_NOT_RETURN/.test(code)) {
    return ' — no client certificate: every connection needs one from the cluster CA (cohort certs issue user <name>)';
  }
  return '';
}

function defaultLogger(): Logger {
  return pino({ level: process.env.COHORT_LOG_LEVEL ?? 'warn' }, pino.destination(2));
}
