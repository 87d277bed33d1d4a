/**
 * Which cluster a client command talks to, from any directory:
 *
 * 1. `--endpoints n1=host:port,...` (the nodes' RPC addresses), else
 * 2. `COHORT_ENDPOINTS` (same form), else
 * 3. `--dir D`: the cluster `cohort up --dir D` described in `D/cluster.json`, else
 * 4. the nearest `.cohort/cluster.json` in the current directory or above
 *    (like git finds `.git`): the local cluster `cohort up` started.
 *
 * The cluster id is `--cluster-id`, else `COHORT_CLUSTER_ID`, else the one in
 * cluster.json, else `cohort-local`. A node of another cluster refuses the
 * client at the handshake (HANDSHAKE_FAILED), so a wrong id is reported,
 * never silently talked to.
 *
 * ```ts
 * const target = resolveTarget({ endpoints: undefined, dir: undefined }, process.env, process.cwd());
 * // { nodes: [...], clusterId: 'cohort-local', source: '/home/me/app/.cohort/cluster.json' }
 * const kv = await KvClient.connect(kvClientOptions(target, { timeoutMs: 10_000 }));
 * ```
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { CohortError } from '../lib/errors.js';
import type { KvClientOptions } from '../kv/client.js';
import { clusterFilePath, parseEndpoints, readClusterFile } from '../node/cluster.js';
import type { ClusterFile, ClusterNode } from '../node/cluster.js';

/** The flags every client command takes to name its cluster. */
export interface TargetFlags {
  readonly endpoints?: string;
  readonly clusterId?: string;
  readonly dir?: string;
}

/** A cluster to talk to, and where that came from (for messages). */
export interface ClusterTarget {
  readonly nodes: readonly ClusterNode[];
  readonly clusterId: string;
  /** `--endpoints`, `COHORT_ENDPOINTS`, or the cluster.json path. */
  readonly source: string;
  /** The cluster file, when the target came from one. */
  readonly file?: ClusterFile;
  /** Its directory (what `cohort up --dir` was given). */
  readonly dir?: string;
}

/** The directory holding the nearest `.cohort/cluster.json` at or above `cwd`, if any. */
export function findClusterDir(cwd: string): string | undefined {
  for (let d = resolve(cwd); ; d = dirname(d)) {
    const dir = join(d, '.cohort');
    if (existsSync(clusterFilePath(dir))) return dir;
    if (dirname(d) === d) return undefined;
  }
}

/** Resolves the cluster of a client command (see the file comment). */
export function resolveTarget(
  flags: TargetFlags,
  env: Readonly<Record<string, string | undefined>> = process.env,
  cwd: string = process.cwd(),
): ClusterTarget {
  const idFlag = flags.clusterId ?? nonEmpty(env.COHORT_CLUSTER_ID);
  if (flags.endpoints !== undefined) {
    return {
      nodes: parseEndpoints(flags.endpoints),
      clusterId: idFlag ?? 'cohort-local',
      source: '--endpoints',
    };
  }
  const fromEnv = nonEmpty(env.COHORT_ENDPOINTS);
  if (fromEnv !== undefined && flags.dir === undefined) {
    return {
      nodes: parseEndpoints(fromEnv),
      clusterId: idFlag ?? 'cohort-local',
      source: 'COHORT_ENDPOINTS',
    };
  }
  const dir = flags.dir === undefined ? findClusterDir(cwd) : resolve(cwd, flags.dir);
  if (dir === undefined) {
    throw new CohortError(
      'NOT_FOUND',
      `no cluster found: no --endpoints, no COHORT_ENDPOINTS, and no .cohort/cluster.json in ${resolve(cwd)} or above (start one with cohort up, or pass --endpoints)`,
      { details: { field: 'endpoints' } },
    );
  }
  const file = readClusterFile(dir);
  return {
    nodes: file.nodes,
    clusterId: idFlag ?? file.clusterId,
    source: clusterFilePath(dir),
    file,
    dir,
  };
}

/** `id=host:port` strings of a target's nodes (what KvClient and clusterStatus take). */
export function endpointStrings(target: ClusterTarget): string[] {
  return target.nodes.map((n) => `${n.id}=${n.rpc.host}:${n.rpc.port}`);
}

/**
 * The KvClient options for a target: one object, so connection settings
 * (TLS, credentials) are added in one place.
 */
export function kvClientOptions(
  target: ClusterTarget,
  o: { timeoutMs?: number } = {},
): KvClientOptions {
  return {
    endpoints: endpointStrings(target),
    clusterId: target.clusterId,
    ...(o.timeoutMs === undefined ? {} : { callTimeoutMs: o.timeoutMs }),
  };
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v;
}
