/**
 * A local cluster as `cohort up` lays it out and `cohort status` finds it:
 * the plan of N nodes on 127.0.0.1 (ids, ports, data dirs), the
 * `.cohort/cluster.json` file describing a running cluster, and polling every
 * node's `Node.status` RPC.
 *
 * ```ts
 * const plan = planCluster({ nodes: 3, basePort: 7100, dir: '.cohort' });
 * // n1: raft 127.0.0.1:7101, rpc 127.0.0.1:7201, dataDir .cohort/n1
 * const poller = await StatusPoller.connect(plan.nodes, plan.clusterId);
 * const statuses = await poller.poll(400);      // one entry per node: NodeStatus or { error }
 * summarize(statuses);                          // { leader, term, commitIndex, up, total }
 * await poller.close();
 * ```
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CohortError, isCohortError } from '../lib/errors.js';
import { clusterId as checkClusterId, isValidId } from '../lib/ids.js';
import type { ClusterNode } from '../trust/cluster-file.js';
import { resolveUserTls } from '../trust/client-tls.js';
import type { ClientTlsOptions } from '../trust/client-tls.js';
import type { RpcNode } from '../rpc/node.js';
import { startTcpClient } from '../rpc/tcp-endpoints.js';
import type { NodeId } from '../lib/ids.js';
import { parseHostPort } from './config.js';
import { NodeService } from './node-service.js';
import type { NodeStatus } from './node-service.js';

export { clusterFilePath, readClusterFile } from '../trust/cluster-file.js';
export type { ClusterFile, ClusterNode } from '../trust/cluster-file.js';

/** The most nodes `cohort up` starts on one machine. */
export const upNodesMax = 9;

/** Ids, ports and data dirs of a local cluster: raft on base+i, RPC on base+100+i. */
export function planCluster(o: {
  nodes: number;
  basePort: number;
  dir: string;
  clusterId?: string;
}): { clusterId: string; nodes: ClusterNode[] } {
  if (!Number.isInteger(o.nodes) || o.nodes < 1 || o.nodes > upNodesMax) {
    throw new CohortError('INVALID_ARGUMENT', `--nodes must be an integer 1..${upNodesMax}`, {
      details: { field: 'nodes', value: o.nodes },
    });
  }
  if (!Number.isInteger(o.basePort) || o.basePort < 1 || o.basePort + 100 + o.nodes > 65535) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      `--base-port must leave room for ports base+1..base+${100 + o.nodes} below 65536`,
      { details: { field: 'basePort', value: o.basePort } },
    );
  }
  const nodes: ClusterNode[] = [];
  for (let i = 1; i <= o.nodes; i++) {
    nodes.push({
      id: `n${i}`,
      listen: { host: '127.0.0.1', port: o.basePort + i },
      rpc: { host: '127.0.0.1', port: o.basePort + 100 + i },
      dataDir: join(o.dir, `n${i}`),
    });
  }
  return { clusterId: checkClusterId(o.clusterId ?? 'cohort-local'), nodes };
}

/** Parses `--endpoints n1=127.0.0.1:7201,n2=...` (RPC addresses) into cluster nodes. */
export function parseEndpoints(text: string): ClusterNode[] {
  const nodes: ClusterNode[] = [];
  for (const part of text.split(',')) {
    const item = part.trim();
    if (item === '') continue;
    const eq = item.indexOf('=');
    const id = item.slice(0, eq);
    if (eq <= 0 || !isValidId(id)) {
      throw new CohortError('INVALID_ARGUMENT', `endpoints: expected id=host:port, got ${item}`, {
        details: { field: 'endpoints' },
      });
    }
    const rpc = parseHostPort(item.slice(eq + 1), `endpoints.${id}`);
    nodes.push({ id, rpc, listen: rpc, dataDir: '' });
  }
  if (nodes.length === 0) {
    throw new CohortError('INVALID_ARGUMENT', 'endpoints: none given', {
      details: { field: 'endpoints' },
    });
  }
  return nodes;
}

/**
 * The start time of process `pid` (clock ticks since boot, field 22 of
 * /proc/<pid>/stat), or undefined if there is no such process (or no /proc).
 * A pid is reused once its process is gone; a pid with its start time is not.
 */
export function processStartTime(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // After "pid (comm) ", fields 3.. follow; comm may hold spaces and parentheses.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const t = Number(fields[19]);
  return Number.isFinite(t) ? t : undefined;
}

/** True if a process with this pid exists. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** One node's poll result. */
export type PollResult =
  | {
      readonly id: string;
      readonly ok: true;
      readonly status: NodeStatus;
      /** How long the status call took, in ms. */
      readonly latencyMs?: number;
    }
  | {
      readonly id: string;
      readonly ok: false;
      /** The error code (`UNAVAILABLE`, `HANDSHAKE_FAILED`, `TIMEOUT`, `PERMISSION_DENIED`, ...), or `WRONG_NODE`. */
      readonly error: string;
      /** What went wrong, in words (connection refused, another cluster, ...). */
      readonly message?: string;
    };

/**
 * How a poll checks that the process answering at a node's address is that
 * node (another cluster's node on the same port is not): `'pid'` — the pid
 * `cohort up` started; `'dataDir'` — the data dir the cluster file names (it
 * survives restarts); `'none'`. The cluster id is always checked, at the
 * handshake.
 */
export type IdentityCheck = 'pid' | 'dataDir' | 'none';

/** Why `status` is not from `node` (see {@link IdentityCheck}); undefined if it is. */
export function identityMismatch(
  node: ClusterNode,
  status: NodeStatus,
  check: IdentityCheck,
): string | undefined {
  const who = `pid ${status.pid}, cluster ${status.clusterId}${status.dataDir === undefined ? '' : `, data dir ${status.dataDir}`}`;
  const at = `${node.rpc.host}:${node.rpc.port}`;
  if (status.id !== node.id) {
    return `${at} answers as node ${status.id} (${who}), not ${node.id}`;
  }
  if (check === 'pid' && node.pid !== undefined && status.pid !== node.pid) {
    return `${at} is answered by another process (${who}), not node ${node.id} (pid ${node.pid}) started here`;
  }
  if (
    check === 'dataDir' &&
    status.dataDir !== undefined &&
    node.dataDir !== '' &&
    resolve(node.dataDir) !== status.dataDir
  ) {
    return `${at} is answered by a node of another cluster (${who}), not node ${node.id} of ${resolve(node.dataDir)}`;
  }
  return undefined;
}

/** Calls Node.status on every node of a cluster, over one RPC client per node. */
export class StatusPoller {
  private constructor(
    private readonly clients: readonly {
      node: ClusterNode;
      rpc: RpcNode;
      peer: NodeId;
    }[],
    private readonly check: IdentityCheck,
  ) {}

  /**
   * Opens a dial-only RPC client per node (no connection is made until the
   * first poll). `check` says how a poll tells the node from another process
   * on its port (default 'none'); `tls`: the CA and a user certificate and
   * key, for a TLS cluster.
   */
  static async connect(
    nodes: readonly ClusterNode[],
    clusterId: string,
    check: IdentityCheck = 'none',
    tls?: ClientTlsOptions,
  ): Promise<StatusPoller> {
    const creds = tls === undefined ? undefined : resolveUserTls(tls, 'cohort status');
    const clients: { node: ClusterNode; rpc: RpcNode; peer: NodeId }[] = [];
    for (const n of nodes) {
      const c = await startTcpClient({
        server: { id: n.id, host: n.rpc.host, port: n.rpc.port },
        clusterId,
        ...(creds === undefined ? {} : { tls: creds }),
      });
      clients.push({ node: n, rpc: c, peer: c.serverId });
    }
    return new StatusPoller(clients, check);
  }

  /** Every node's status (or why it could not be had), in node order. */
  poll(timeoutMs: number): Promise<PollResult[]> {
    return Promise.all(
      this.clients.map(async ({ node, rpc, peer }): Promise<PollResult> => {
        const id = node.id;
        const started = performance.now();
        try {
          const status = await rpc.client(NodeService, peer).status({}, { timeoutMs });
          const latencyMs = Math.round((performance.now() - started) * 100) / 100;
          const wrong = identityMismatch(node, status, this.check);
          if (wrong !== undefined) return { id, ok: false, error: 'WRONG_NODE', message: wrong };
          return { id, ok: true, status, latencyMs };
        } catch (e) {
          return isCohortError(e)
            ? { id, ok: false, error: e.code, message: e.message }
            : { id, ok: false, error: 'INTERNAL', message: String(e) };
        }
      }),
    );
  }

  /** Closes the clients. */
  async close(): Promise<void> {
    await Promise.allSettled(this.clients.map((c) => c.rpc.close()));
  }
}

/** The cluster at a glance, from one poll. */
export interface ClusterSummary {
  /** The leader of the highest term seen, if a node in that term reports itself leader. */
  readonly leader: string | null;
  /** The highest term any reachable node reports. */
  readonly term: number;
  /** The leader's commit index (or the highest seen without a leader). */
  readonly commitIndex: number;
  /** The leader's KV revision (or the highest seen). */
  readonly revision: number;
  readonly up: number;
  readonly total: number;
}

/** Summarises one poll (see {@link ClusterSummary}). */
export function summarize(results: readonly PollResult[]): ClusterSummary {
  const up = results.flatMap((r) => (r.ok ? [r.status] : []));
  const term = Math.max(0, ...up.map((s) => s.term));
  const leaderStatus = up.find((s) => s.role === 'leader' && s.term === term);
  return {
    leader: leaderStatus?.id ?? null,
    term,
    commitIndex: leaderStatus?.commitIndex ?? Math.max(0, ...up.map((s) => s.commitIndex)),
    revision: leaderStatus?.revision ?? Math.max(0, ...up.map((s) => s.revision)),
    up: up.length,
    total: results.length,
  };
}

/** One line: `leader n2 · term 3 · commit 17 · revision 0 · 3/3 up`. */
export function summaryLine(s: ClusterSummary): string {
  return `leader ${s.leader ?? 'none'} · term ${s.term} · commit ${s.commitIndex} · revision ${s.revision} · ${s.up}/${s.total} up`;
}
