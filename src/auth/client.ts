/**
 * A client of the Auth service: calls a cluster's nodes one after another,
 * follows NOT_LEADER to the leader for changes, and retries nodes that do
 * not answer, for a while.
 *
 * ```ts
 * const auth = await AuthClient.connect({ nodes, clusterId, tls });   // tls: the root user's certificate
 * await auth.call((s) => s.userAdd({ name: 'alice' }));
 * const { users } = await auth.call((s) => s.userList({}));
 * await auth.close();
 * ```
 */
import { CohortError, isCohortError } from '../lib/errors.js';
import type { RpcNode } from '../rpc/node.js';
import type { Client } from '../rpc/service.js';
import { startTcpClient } from '../rpc/tcp-endpoints.js';
import { resolveUserTls } from '../trust/client-tls.js';
import type { ClientTlsOptions } from '../trust/client-tls.js';
import { AuthService } from './service.js';

/** Options of {@link AuthClient.connect}. */
export interface AuthClientOptions {
  readonly nodes: readonly {
    readonly id: string;
    readonly rpc: { readonly host: string; readonly port: number };
  }[];
  readonly clusterId: string;
  /** A user certificate (paths or PEM) for a TLS cluster. */
  readonly tls?: ClientTlsOptions;
  /** How long a call keeps trying other nodes (ms, default 10000). */
  readonly retryMs?: number;
}

type Stub = Client<typeof AuthService>;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Calls the Auth service of a cluster (see the file comment). */
export class AuthClient {
  private current = 0;

  private constructor(
    private readonly nodes: readonly { id: string; rpc: RpcNode; stub: Stub }[],
    private readonly retryMs: number,
  ) {}

  /** Opens a dial-only client per node (connections are made on first use). */
  static async connect(o: AuthClientOptions): Promise<AuthClient> {
    const creds = o.tls === undefined ? undefined : resolveUserTls(o.tls, 'cohort auth');
    const nodes: { id: string; rpc: RpcNode; stub: Stub }[] = [];
    for (const n of o.nodes) {
      const rpc = await startTcpClient({
        server: { id: n.id, host: n.rpc.host, port: n.rpc.port },
        clusterId: o.clusterId,
        ...(creds === undefined ? {} : { tls: creds }),
      });
      nodes.push({ id: n.id, rpc, stub: rpc.client(AuthService, rpc.serverId) });
    }
    if (nodes.length === 0) throw new CohortError('INVALID_ARGUMENT', 'no nodes to connect to');
    return new AuthClient(nodes, o.retryMs ?? 10_000);
  }

  /**
   * Runs `fn` on a node: on NOT_LEADER it moves to the leader named, on a
   * node that cannot be reached (definite: nothing was done) to the next;
   * anything else is the answer.
   */
  async call<T>(fn: (stub: Stub) => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.retryMs;
    for (;;) {
      const n = this.nodes[this.current % this.nodes.length] as (typeof this.nodes)[number];
      try {
        return await fn(n.stub);
      } catch (e) {
        if (!isCohortError(e) || Date.now() > deadline) throw e;
        if (e.code === 'NOT_LEADER') {
          const leader = this.nodes.findIndex((x) => x.id === e.details.leaderId);
          this.current = leader >= 0 && leader !== this.current ? leader : this.current + 1;
          if (leader < 0) await sleep(100);
          continue;
        }
        // Only what certainly did nothing is retried (a change is not idempotent).
        if (!e.definite || !['UNAVAILABLE', 'CLOSED', 'OVERLOADED'].includes(e.code)) throw e;
        this.current++;
        await sleep(100);
      }
    }
  }

  /** Closes every connection. */
  async close(): Promise<void> {
    await Promise.allSettled(this.nodes.map((n) => n.rpc.close()));
  }
}
