/**
 * Finding a cluster's leader and status from a program: what `cohort status`
 * shows, from the nodes' RPC endpoints (the same `id=host:port` strings a
 * `KvClient` takes). Each node answers its `Node.status` RPC; the leader
 * is the node that reports itself leader in the highest term any node reports.
 *
 * ```ts
 * import { clusterStatus, findLeader } from 'cohort';
 * const endpoints = ['n1=127.0.0.1:7201', 'n2=127.0.0.1:7202', 'n3=127.0.0.1:7203'];
 * const leader = await findLeader({ endpoints });  // { id: 'n2', term: 3, host, port } or null
 * const s = await clusterStatus({ endpoints });    // s.summary: { leader, term, commitIndex, up, total }
 * for (const n of s.nodes) console.log(n.id, n.ok ? n.status.role : n.error);
 * ```
 *
 * A node that does not answer within `timeoutMs` is reported with its error
 * code (`TIMEOUT`, `UNAVAILABLE`, ...); neither function throws for a node
 * that is down, only for endpoints that do not parse (`INVALID_ARGUMENT`).
 */
import type { KvEndpoint } from '../kv/client.js';
import { parseKvEndpoint } from '../kv/client.js';
import type { ClientTlsOptions } from '../trust/client-tls.js';
import { StatusPoller, summarize } from './cluster.js';
import type { ClusterSummary, PollResult } from './cluster.js';

/** Options of {@link clusterStatus} and {@link findLeader}. */
export interface ClusterStatusOptions {
  /** The nodes' RPC endpoints: `"n1=127.0.0.1:7201"` or `{ id, host, port }`. */
  readonly endpoints: readonly KvEndpoint[];
  /** The cluster id (default 'cohort-local', what `cohort up` uses). */
  readonly clusterId?: string;
  /** How long to wait for each node's answer, in ms (default 1000). */
  readonly timeoutMs?: number;
  /** Mutual TLS: the cluster's CA, a user certificate and key (paths or PEM), for a TLS cluster. */
  readonly tls?: ClientTlsOptions;
}

/** Every node's answer and the cluster at a glance. */
export interface ClusterStatus {
  /** One entry per endpoint, in the order given: the node's status or why it had none. */
  readonly nodes: readonly PollResult[];
  readonly summary: ClusterSummary;
}

/** The leader of the cluster, as {@link findLeader} finds it. */
export interface ClusterLeader {
  readonly id: string;
  readonly term: number;
  /** Its RPC endpoint, if it is one of the endpoints given. */
  readonly host: string | undefined;
  readonly port: number | undefined;
}

/** Asks every endpoint for its status at once (see the file comment). */
export async function clusterStatus(options: ClusterStatusOptions): Promise<ClusterStatus> {
  const nodes = options.endpoints.map((e) => {
    const { id, address } = parseKvEndpoint(e);
    return { id, rpc: address, listen: address, dataDir: '' };
  });
  const poller = await StatusPoller.connect(
    nodes,
    options.clusterId ?? 'cohort-local',
    'none',
    options.tls,
  );
  try {
    const results = await poller.poll(options.timeoutMs ?? 1000);
    return { nodes: results, summary: summarize(results) };
  } finally {
    await poller.close();
  }
}

/** The cluster's current leader, or null if no answering node leads in the highest term seen. */
export async function findLeader(options: ClusterStatusOptions): Promise<ClusterLeader | null> {
  const { summary } = await clusterStatus(options);
  if (summary.leader === null) return null;
  const ep = options.endpoints.map(parseKvEndpoint).find((p) => p.id === summary.leader);
  return {
    id: summary.leader,
    term: summary.term,
    host: ep?.address.host,
    port: ep?.address.port,
  };
}
