/**
 * A simulated KV client process: the production {@link KvClient} on the
 * simulated network (its RPC node over a {@link SimTransport}) and virtual
 * time. It finds the leader, follows redirects, retries by the definite /
 * indefinite rules and de-duplicates retried writes with its sessions, as an
 * application's client would; the workload only calls it and records what it
 * answered. A client process never crashes, and partitions do not cut it off
 * from the nodes (it is added `unpartitioned`): its links still lose and
 * delay messages.
 *
 * ```ts
 * const c = new KvClientNode(nodeId('c1'), { endpoints: nodeIds, timeoutMs: 200, retryMs: 1000,
 *   sessionTtlMs: 60_000, trap });
 * net.addNode(c.id, c, { unpartitioned: true });
 * const r = await c.kv.put('k', 'v');     // once started (at once, in virtual time)
 * ```
 */
import { nodeId } from '../../lib/ids.js';
import type { NodeId } from '../../lib/ids.js';
import { KvClient } from '../../kv/client.js';
import type { RpcWireMessage } from '../../rpc/messages.js';
import type { NodeContext, SimNode } from '../network.js';
import type { FailureTrap } from '../scenario.js';
import { CheckFailure } from '../scenario.js';
import { SimTransport } from '../transport.js';
import { isRpcMessage } from '../wire.js';
import type { SimWire } from '../wire.js';

/** Options of a {@link KvClientNode}. */
export interface KvClientNodeOptions {
  /** Every KV node. */
  readonly endpoints: readonly NodeId[];
  /** Deadline of one attempt (KvClient's timeoutMs). */
  readonly timeoutMs: number;
  /** How long a call keeps retrying (KvClient's retryMs). */
  readonly retryMs: number;
  /** TTL (log time) of the sessions the client registers (KvClient's sessionTtlMs). */
  readonly sessionTtlMs: number;
  readonly trap: FailureTrap;
}

/** One client process running a KvClient (see the file header). */
export class KvClientNode implements SimNode<SimWire> {
  /** RPC requests this client sent so far (attempts: a retried call sends more than one). */
  requests = 0;
  private client: KvClient | undefined;
  private transport: SimTransport<RpcWireMessage> | undefined;

  constructor(
    readonly id: NodeId,
    private readonly o: KvClientNodeOptions,
  ) {}

  /** The KvClient (available once the node started: right after it was added). */
  get kv(): KvClient {
    const c = this.client;
    if (c === undefined) throw new CheckFailure(`client ${this.id} used before it started`);
    return c;
  }

  /** True once the KvClient is ready. */
  get ready(): boolean {
    return this.client !== undefined;
  }

  onStart(ctx: NodeContext<SimWire>): void {
    const transport = new SimTransport<RpcWireMessage>(this.id, (to, m) => {
      if (m.type === 'RpcRequest') this.requests++;
      ctx.send(to, m);
    });
    this.transport = transport;
    KvClient.connect({
      endpoints: this.o.endpoints.map((id) => ({ id, host: 'sim', port: 1 })),
      transport,
      clock: ctx.clock,
      clientId: this.id,
      timeoutMs: this.o.timeoutMs,
      retryMs: this.o.retryMs,
      sessionTtlMs: this.o.sessionTtlMs,
      random: ctx.random.fork('kv-client'),
    }).then(
      (client) => {
        this.client = client;
      },
      (err: unknown) => this.o.trap.record(err),
    );
  }

  onMessage(from: NodeId, message: SimWire): void {
    if (isRpcMessage(message)) this.transport?.deliver(from, message);
  }
}

/** The ids of `n` client processes named `prefix1..prefixN`. */
export function clientIds(prefix: string, n: number): NodeId[] {
  return Array.from({ length: n }, (_, i) => nodeId(`${prefix}${i + 1}`));
}
