/**
 * Test helper: an in-process cluster of real nodes (startNode: Raft over TCP,
 * FileStorage in temp dirs, the Kv service on each RPC port) and KV clients.
 *
 * ```ts
 * const c = await KvTestCluster.start(3);
 * const client = await c.client();
 * await client.put('a', '1');
 * const leader = await c.leader();
 * await c.stop(leader.config.id);    // close one node (a crash-like stop)
 * await c.close();
 * ```
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { KvClient } from '../../src/kv/client.js';
import type { KvClientOptions } from '../../src/kv/client.js';
import { resolveNodeConfig } from '../../src/node/config.js';
import type { NodeConfig } from '../../src/node/config.js';
import { startNode } from '../../src/node/node.js';
import type { CohortNode, StartNodeOptions } from '../../src/node/node.js';
import { freePort } from '../transport/tcp-harness.js';
import type { CertDir } from '../../src/trust/cert-dir.js';
import { waitUntil } from '../harness/wait.js';

const silent = pino({ level: 'silent' });

/** Polls `f` until it returns a value (not undefined); fails after a generous bound (harness/wait.ts). */
export async function until<T>(
  f: () => Promise<T | undefined> | T | undefined,
  what = 'condition',
): Promise<T> {
  return waitUntil(what, f);
}

/** A cluster of in-process nodes (see the file comment). */
export class KvTestCluster {
  readonly nodes = new Map<string, CohortNode>();
  private readonly clients: KvClient[] = [];

  private constructor(
    readonly configs: NodeConfig[],
    private readonly dirs: string[],
    private readonly options: StartNodeOptions,
  ) {}

  static async start(
    n: number,
    options: StartNodeOptions = {},
    flags: Record<string, string> = {},
    /** Run over mutual TLS with these certificates (one per node, n1..nN, must exist); default --insecure. */
    certs?: CertDir,
  ): Promise<KvTestCluster> {
    const ports = await Promise.all(
      Array.from({ length: n }, async () => ({ raft: await freePort(), rpc: await freePort() })),
    );
    const dirs: string[] = [];
    const tlsFlags = (id: string): Record<string, string | boolean> => {
      if (certs === undefined) return { insecure: true };
      const f = certs.files({ kind: 'node', id });
      return { tlsCa: f.ca, tlsCert: f.cert, tlsKey: f.key };
    };
    const configs = ports.map((p, i) => {
      const dir = mkdtempSync(join(tmpdir(), `cohort-kv-n${i + 1}-`));
      dirs.push(dir);
      const peers = ports
        .map((q, j) => (j === i ? '' : `n${j + 1}=127.0.0.1:${q.raft}/${q.rpc}`))
        .filter((s) => s !== '')
        .join(',');
      return resolveNodeConfig({
        flags: {
          id: `n${i + 1}`,
          dataDir: dir,
          listen: `127.0.0.1:${p.raft}`,
          rpc: `127.0.0.1:${p.rpc}`,
          peers,
          tickMs: '20',
          electionTicks: '10',
          ...tlsFlags(`n${i + 1}`),
          ...flags,
        },
        env: {},
      });
    });
    const c = new KvTestCluster(configs, dirs, options);
    await Promise.all(configs.map((cfg) => c.startNode(cfg.id)));
    return c;
  }

  /** (Re)starts node `id` from its data dir. */
  async startNode(id: string): Promise<CohortNode> {
    const cfg = this.configs.find((c) => c.id === id);
    if (cfg === undefined) throw new Error(`no node ${id}`);
    const node = await startNode(cfg, { logger: silent, modules: [], ...this.options });
    this.nodes.set(id, node);
    return node;
  }

  /** Stops node `id` (graceful close). */
  async stop(id: string): Promise<void> {
    const node = this.nodes.get(id);
    this.nodes.delete(id);
    await node?.close();
  }

  /** The leader every running node agrees on, once elected and its lease clock runs. */
  leader(): Promise<CohortNode> {
    return until(() => {
      for (const n of this.nodes.values()) {
        if (n.raft.isLeader() && n.kv.leaseClockRunning) return n;
      }
      return undefined;
    }, 'a leader');
  }

  /** Endpoints of every node (`n1=127.0.0.1:port`). */
  endpoints(): string[] {
    return this.configs.map((c) => `${c.id}=${c.rpc.host}:${c.rpc.port}`);
  }

  /** A client on every endpoint (or those given); closed with the cluster. */
  async client(options: Partial<KvClientOptions> = {}): Promise<KvClient> {
    const client = await KvClient.connect({ endpoints: this.endpoints(), ...options });
    this.clients.push(client);
    return client;
  }

  /** Closes the clients and the nodes and removes the data dirs. */
  async close(): Promise<void> {
    await Promise.allSettled(this.clients.map((c) => c.close()));
    await Promise.allSettled([...this.nodes.values()].map((n) => n.close()));
    this.nodes.clear();
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
  }
}
