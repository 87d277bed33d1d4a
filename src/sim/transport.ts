/**
 * A {@link Transport} onto the simulated network: what a production shell
 * (RaftNode, an RpcNode) sends through it goes out on one incarnation's
 * {@link NodeContext}; what the network delivers to the node is handed to
 * the handler the shell set. The simulated network is worse than the
 * transport contract for Raft (it loses, duplicates and reorders, which Raft
 * tolerates); an RPC channel is ordered and not duplicated there, as on a
 * TCP connection (see SimNetwork's `ordered`).
 *
 * ```ts
 * const t = new SimTransport<RaftMessage>(id, (to, m) => ctx.send(to, m));
 * const node = await RaftNode.start({ ..., transport: t });
 * // in the SimNode's onMessage:
 * t.deliver(from, message);
 * ```
 *
 * Sends after close() throw CLOSED, as the contract says; a crashed
 * incarnation's sends are dropped by the network itself.
 */
import { CohortError } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import { newCounters } from '../transport/transport.js';
import type {
  MessageHandler,
  PeerStatusHandler,
  Transport,
  TransportCounters,
} from '../transport/transport.js';

/** One node's transport of messages `M` over the simulated network (see the file header). */
export class SimTransport<M> implements Transport<M> {
  private readonly stats: TransportCounters = newCounters();
  private handler: MessageHandler<M> | undefined;
  private closed = false;

  constructor(
    readonly self: NodeId,
    private readonly sendOut: (to: NodeId, message: M) => void,
  ) {}

  get counters(): Readonly<TransportCounters> {
    return this.stats;
  }

  send(to: NodeId, message: M): void {
    if (this.closed) throw new CohortError('CLOSED', `transport of ${this.self} is closed`);
    this.stats.messagesSent++;
    this.sendOut(to, message);
  }

  onMessage(handler: MessageHandler<M>): void {
    this.handler = handler;
  }

  onPeerStatus(_handler: PeerStatusHandler): void {
    // Links have no status here: a lost peer shows as lost messages and deadlines.
  }

  close(): Promise<void> {
    this.closed = true;
    this.handler = undefined;
    return Promise.resolve();
  }

  /** Hands a message the network delivered to the shell (dropped if none listens yet). */
  deliver(from: NodeId, message: M): void {
    if (this.closed) return;
    if (this.handler === undefined) {
      this.stats.droppedNoHandler++;
      return;
    }
    this.stats.messagesReceived++;
    this.handler(from, message);
  }
}
