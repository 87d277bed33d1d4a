/**
 * How a client finds a local cluster: `<dir>/cluster.json`, written by
 * `cohort up`, names the nodes, their addresses and, for a TLS cluster, the
 * client credentials to use (the CA and the `root` user's certificate that
 * `cohort up` made under `<dir>/certs`). `cohort kv`, `cohort status`,
 * `cohort mr`, `KvClient.connect({ cluster })` and `MapReduceClient` read it.
 *
 * ```ts
 * const file = readClusterFile('.cohort');      // NOT_FOUND if no cluster was started there
 * file.nodes[0].rpc;                            // { host: '127.0.0.1', port: 7201 }
 * file.tls;                                     // { ca, cert, key } paths, or undefined (--insecure)
 * ```
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CohortError } from '../lib/errors.js';
import { isValidId } from '../lib/ids.js';
import type { CredentialFiles } from './credentials.js';

/** One node of a local cluster. */
export interface ClusterNode {
  readonly id: string;
  /** Raft address. */
  readonly listen: { readonly host: string; readonly port: number };
  /** Node service (RPC) address. */
  readonly rpc: { readonly host: string; readonly port: number };
  readonly dataDir: string;
  /** Its process, once started. */
  readonly pid?: number;
  /**
   * The process's start time (clock ticks since boot, /proc/<pid>/stat field
   * 22): with the pid, it names the process in a way a reused pid cannot.
   */
  readonly startTime?: number;
  /** The `node` arguments it was started with (after the Node.js executable): to restart it alone. */
  readonly args?: readonly string[];
}

/** What `.cohort/cluster.json` holds. */
export interface ClusterFile {
  readonly clusterId: string;
  /** The `cohort up` process supervising the nodes, or null when detached. */
  readonly supervisor: number | null;
  /** The supervisor's start time (see {@link ClusterNode.startTime}). */
  readonly supervisorStartTime?: number;
  readonly startedAt: string;
  readonly nodes: readonly ClusterNode[];
  /** The client credentials of this cluster (absolute paths); absent for a plaintext (--insecure) cluster. */
  readonly tls?: CredentialFiles;
  /** True when the nodes run without TLS (--insecure). */
  readonly insecure?: boolean;
}

/** The path of the cluster file in `dir`. */
export function clusterFilePath(dir: string): string {
  return join(dir, 'cluster.json');
}

/** Reads `dir/cluster.json`; NOT_FOUND if there is none, INVALID_ARGUMENT if it is malformed. */
export function readClusterFile(dir: string): ClusterFile {
  const path = clusterFilePath(dir);
  if (!existsSync(path)) {
    throw new CohortError(
      'NOT_FOUND',
      `no cluster found: ${resolve(path)} does not exist (start one with cohort up, or pass --endpoints)`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new CohortError('INVALID_ARGUMENT', `${path} is not valid JSON: ${(e as Error).message}`);
  }
  const f = parsed as Partial<ClusterFile> | null;
  const tls = f?.tls as Partial<CredentialFiles> | undefined;
  if (
    typeof f !== 'object' ||
    f === null ||
    typeof f.clusterId !== 'string' ||
    !Array.isArray(f.nodes) ||
    !f.nodes.every(
      (n: Partial<ClusterNode>) =>
        typeof n.id === 'string' &&
        isValidId(n.id) &&
        typeof n.rpc?.host === 'string' &&
        typeof n.rpc.port === 'number',
    ) ||
    (tls !== undefined &&
      (typeof tls !== 'object' ||
        typeof tls.ca !== 'string' ||
        typeof tls.cert !== 'string' ||
        typeof tls.key !== 'string'))
  ) {
    throw new CohortError('INVALID_ARGUMENT', `${path} is not a cohort cluster file`);
  }
  return f as ClusterFile;
}

/** What a client needs of a local cluster: its RPC endpoints, its id and its client credentials. */
export interface ClusterTarget {
  /** `n1=127.0.0.1:7201`, ... */
  readonly endpoints: string[];
  readonly clusterId: string;
  /** Absent for a plaintext (--insecure) cluster. */
  readonly tls?: CredentialFiles;
}

/** The target of the cluster `cohort up` runs in `dir` (see {@link readClusterFile}). */
export function clusterTarget(dir: string): ClusterTarget {
  const file = readClusterFile(dir);
  return {
    endpoints: file.nodes.map((n) => `${n.id}=${n.rpc.host}:${n.rpc.port}`),
    clusterId: file.clusterId,
    ...(file.tls === undefined ? {} : { tls: file.tls }),
  };
}
