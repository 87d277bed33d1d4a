/**
 * cohort's public API: the package's main entry gives every name below;
 * the subpaths `cohort/kv`, `cohort/rpc`, `cohort/mapreduce`, `cohort/gateway` and `cohort/naming` give parts of
 * it, grouped by what a program does (package.json `exports`).
 *
 * ```ts
 * import { CohortError, KvClient, Lock, clusterStatus, defineService, runJob } from 'cohort';
 * ```
 *
 * - the foundations: `CohortError` and its codes, ids, limits, seeded random,
 *   logical clocks, the wire format and transports;
 * - typed RPC and pub/sub (`defineService`, `unary`, `startTcpServer`, ...);
 * - the KV store's client, with the lock and election recipes (`cohort/kv`);
 * - the cluster's status and leader ({@link clusterStatus}, {@link findLeader},
 *   `readClusterFile` for a `cohort up` cluster);
 * - the serving farm's gateway (`cohort/gateway`): `Gateway`, the HTTP
 *   proxy and RPC front end, backend sources;
 * - naming (`cohort/naming`): `Naming`, the service registry, resolvers
 *   and name-based RPC clients;
 * - MapReduce: `defineJob` for job modules (`cohort/mapreduce`),
 *   `MapReduceClient` for a running cluster, and {@link runJob}, which runs
 *   one job on a given cluster or on a one-node cluster it starts in this
 *   process.
 */
export * from './lib/index.js';
export * from './clock/index.js';
export * from './wire/index.js';
export * from './transport/index.js';
export * from './rpc/index.js';
export { version } from './version.js';
export * from './kv/index.js';
export * from './mapreduce/index.js';
export * from './gateway/index.js';
export * from './naming/index.js';
export {
  isFinished,
  MapReduceClient,
  prepareJob,
  progressLine,
  removeOutput,
} from './mapreduce/client.js';
export type { JobRequest, MapReduceEndpoint, PreparedJob } from './mapreduce/client.js';
export type {
  JobCounters,
  JobId,
  JobOptions,
  JobProgress,
  JobStatus,
  JobStatusName,
  TaskInfo,
} from './mapreduce/core/types.js';
export { clusterStatus, findLeader } from './node/status.js';
export type { ClusterLeader, ClusterStatus, ClusterStatusOptions } from './node/status.js';
export { readClusterFile } from './node/cluster.js';
export type { ClusterFile, ClusterNode, ClusterSummary, PollResult } from './node/cluster.js';
export type { NodeStatus } from './node/node-service.js';
export { runJob, startEmbeddedCluster } from './cli/embedded-cluster.js';
export type {
  EmbeddedCluster,
  EmbeddedOptions,
  JobRun,
  RunJobOptions,
} from './cli/embedded-cluster.js';
