/**
 * A simulated KV node: what `cohort node` runs for the KV store, on the
 * simulator's network, disk and clock. One incarnation is a production
 * {@link RaftNode} (hosted by {@link RaftNodeHost}) over the node's state
 * machine ({@link SimKvReplica}), and once it runs, an {@link RpcNode} on the
 * simulated network serving the production {@link KvServer}: its handlers,
 * redirects, ReadIndex reads and sessions, and its leader duties (lease
 * clock, lease expiry and checkpoints, compaction) on virtual time. A crash
 * abandons all three; a restart starts them again from the disk.
 *
 * ```ts
 * const node = new KvServerNode(nodeOptions, { replica: { node: id, checks }, server: { electionTimeoutMs: 100, ... },
 *   deposed: (id) => ..., counts });
 * net.addNode(id, node);
 * ```
 *
 * It counts, for the tests that the workload exercised what matters: lease
 * clocks started on new leaders, linearizable reads answered by a leader
 * that was already deposed (and must have confirmed its leadership first),
 * sessions registered, and commands refused SESSION_EXPIRED (their session
 * idled past its TTL of log time).
 */
import type { Clock } from '../../lib/clock.js';
import { isCohortError } from '../../lib/errors.js';
import type { NodeId } from '../../lib/ids.js';
import { KvServer } from '../../kv/server.js';
import type { NodeApplied } from '../../host/kv-state-machine.js';
import type { RaftNode } from '../../raft/raft-node.js';
import type { RpcWireMessage } from '../../rpc/messages.js';
import { RpcNode } from '../../rpc/node.js';
import type { ServerInterceptor } from '../../rpc/server.js';
import type { NodeContext } from '../network.js';
import { RaftNodeHost } from '../raft/node.js';
import type { SimRaftNodeOptions } from '../raft/node.js';
import { SimTransport } from '../transport.js';
import type { SimWire } from '../wire.js';
import { SimKvReplica } from './replica.js';
import type { KvReplicaOptions } from './replica.js';

/** The KV server's options drawn by the scenario (see KvServerOptions). */
export interface SimKvServerOptions {
  readonly electionTimeoutMs: number;
  readonly leaseTickMs: number;
  readonly leaseCheckpointMs: number;
  readonly compactCheckMs: number;
  /** 0: never compact. */
  readonly historyRevisionsKept: number;
}

/** Options of a {@link KvServerNode} besides the Raft host's. */
export interface KvServerNodeOptions {
  readonly replica: KvReplicaOptions;
  readonly server: SimKvServerOptions;
  /** True if node `id` leads no longer (another node is in a higher term). */
  readonly deposed: (id: NodeId) => boolean;
}

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

/**
 * TEST-ONLY (unsafeLocalReads): the RaftNode as the KV server sees it, its
 * linearizable reads served from the local state at once, without ReadIndex.
 */
function withLocalReads<S extends SimKvReplica>(node: RaftNode<S>): RaftNode<S> {
  return new Proxy(node, {
    get(target, prop) {
      if (prop === 'read') {
        return <T>(fn: (sm: S) => T) => target.read(fn, { consistency: 'serializable' });
      }
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
    },
  });
}

/** One simulated KV node (see the file header). */
export class KvServerNode extends RaftNodeHost<SimKvReplica, NodeApplied> {
  private rpcTransport: SimTransport<RpcWireMessage> | undefined;
  private server: KvServer | undefined;
  private leaseClockRan = false;

  constructor(
    options: SimRaftNodeOptions,
    private readonly kv: KvServerNodeOptions,
  ) {
    super(options, (hooks) => new SimKvReplica(kv.replica, hooks));
  }

  /** Also counts a lease clock that started since the last check. */
  override check(): void {
    super.check();
    const running = this.server?.leaseClockRunning === true;
    if (running && !this.leaseClockRan) bump(this.options.counts, 'lease clocks promoted');
    this.leaseClockRan = running;
  }

  protected override started(
    node: RaftNode<SimKvReplica>,
    ctx: NodeContext<SimWire>,
    clock: Clock,
  ): void {
    const transport = new SimTransport<RpcWireMessage>(this.id, (to, m) => ctx.send(to, m));
    const rpc = new RpcNode(transport, { clock, random: ctx.random.fork('rpc') });
    const counts = this.options.counts;
    const deposedReads: ServerInterceptor = async (call, next) => {
      const out = await next();
      const serializable = (call.request as { serializable?: boolean }).serializable === true;
      if (call.method === 'range' && !serializable && this.kv.deposed(this.id)) {
        bump(counts, 'op get answered by a deposed leader');
      }
      return out;
    };
    // What the clients' sessions went through: registrations answered, and commands refused
    // because their session idled past its TTL of log time (the KvClient registers again).
    const sessions: ServerInterceptor = async (call, next) => {
      try {
        const out = await next();
        if (call.method === 'sessionOpen') bump(counts, 'sessions opened');
        return out;
      } catch (e) {
        if (isCohortError(e) && e.code === 'SESSION_EXPIRED') bump(counts, 'sessions expired');
        throw e;
      }
    };
    rpc.intercept(deposedReads);
    rpc.intercept(sessions);
    const s = this.kv.server;
    const server = new KvServer({
      raft: this.options.unsafeLocalReads === true ? withLocalReads(node) : node,
      stateMachine: this.sm,
      rpc,
      // Clients know every node: redirects name the leader's id alone.
      peerRpc: () => undefined,
      electionTimeoutMs: s.electionTimeoutMs,
      clock,
      leaseTickMs: s.leaseTickMs,
      leaseCheckpointMs: s.leaseCheckpointMs,
      compactCheckMs: s.compactCheckMs,
      historyRevisionsKept: s.historyRevisionsKept,
    });
    server.start();
    this.rpcTransport = transport;
    this.server = server;
    this.leaseClockRan = false;
  }

  protected override stopped(): void {
    // The incarnation is gone: its server and RPC node are abandoned with it (their timers died).
    this.rpcTransport = undefined;
    this.server = undefined;
    this.leaseClockRan = false;
  }

  protected override receiveRpc(from: NodeId, message: RpcWireMessage): void {
    this.rpcTransport?.deliver(from, message);
  }
}
