/**
 * Which cluster a client command talks to, from any directory, and with which
 * certificate. `cohort kv`, `status`, `endpoint`, `snapshot`, `mr`, `auth`,
 * `user` and `role` share these flags and rules.
 *
 * The nodes:
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
 * The certificate: `--ca`/`--cert`/`--key` (or COHORT_TLS_CA,
 * COHORT_TLS_CERT, COHORT_TLS_KEY), else the one cluster.json names (cohort
 * up's `root` user), else `certs/user-root.crt` of the cluster dir (`--dir`
 * or the nearest `.cohort`) if it exists; none with `--insecure` or for a
 * cluster.json of an --insecure cluster. A TLS node refuses a client without
 * a certificate, saying so.
 *
 * ```sh
 * cohort kv get a                                     # the nearest .cohort's cluster, its root certificate
 * cohort kv get a --endpoints n1=10.0.0.1:7201 --ca ca.crt --cert alice.crt --key alice.key
 * cohort kv get a --endpoints n1=127.0.0.1:7201 --insecure   # a plaintext (--insecure) cluster
 * ```
 *
 * ```ts
 * const target = resolveTarget({}, process.env, process.cwd());
 * // { nodes: [...], clusterId: 'cohort-local', source: '/home/me/app/.cohort/cluster.json', tls: {...} }
 * const kv = await KvClient.connect(kvClientOptions(target, { timeoutMs: 10_000 }));
 * ```
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { CohortError } from '../lib/errors.js';
import type { KvClientOptions } from '../kv/client.js';
import { clusterFilePath, parseEndpoints, readClusterFile } from '../node/cluster.js';
import type { ClusterFile, ClusterNode } from '../node/cluster.js';
import type { ClientTlsOptions } from '../trust/client-tls.js';
import { CertDir } from '../trust/cert-dir.js';

/** The flags every client command takes to name its cluster (see {@link addTargetOptions}). */
export interface TargetFlags {
  readonly endpoints?: string;
  readonly clusterId?: string;
  readonly dir?: string;
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly insecure?: boolean;
}

/** A cluster to talk to, how (TLS or not), and where that came from (for messages). */
export interface ClusterTarget {
  readonly nodes: readonly ClusterNode[];
  /** `n1=host:port` strings (what KvClient takes). */
  readonly endpoints: string[];
  readonly clusterId: string;
  /** The client credentials; undefined: plaintext (an --insecure cluster). */
  readonly tls: ClientTlsOptions | undefined;
  /** `--endpoints`, `COHORT_ENDPOINTS`, or the cluster.json path. */
  readonly source: string;
  /** The cluster file, when the target came from one. */
  readonly file?: ClusterFile;
  /** Its directory (what `cohort up --dir` was given). */
  readonly dir?: string;
}

/** Another name of {@link ClusterTarget}. */
export type Target = ClusterTarget;

/**
 * Adds --endpoints, --cluster-id, --dir, --ca, --cert, --key and --insecure
 * to a command.
 */
export function addTargetOptions(cmd: Command): Command {
  return cmd
    .option('--endpoints <list>', 'RPC endpoints: n1=host:port,n2=host:port (or COHORT_ENDPOINTS)')
    .option(
      '--cluster-id <id>',
      'the cluster id (or COHORT_CLUSTER_ID; default from cluster.json, else cohort-local)',
    )
    .option(
      '--dir <dir>',
      'the cluster cohort up --dir started (default: the nearest .cohort/ at or above here)',
    )
    .option('--ca <file>', "the cluster CA's certificate (COHORT_TLS_CA; default: cluster.json's)")
    .option(
      '--cert <file>',
      "your user certificate (COHORT_TLS_CERT; default: cluster.json's, the root user)",
    )
    .option('--key <file>', 'its private key (COHORT_TLS_KEY)')
    .option('--insecure', 'talk plaintext to a cluster started with --insecure');
}

/** The directory holding the nearest `.cohort/cluster.json` at or above `cwd`, if any. */
export function findClusterDir(cwd: string): string | undefined {
  for (let d = resolve(cwd); ; d = dirname(d)) {
    const dir = join(d, '.cohort');
    if (existsSync(clusterFilePath(dir))) return dir;
    if (dirname(d) === d) return undefined;
  }
}

/** Resolves the cluster of a client command (see the file comment); throws CohortError with what to do. */
export function resolveTarget(
  flags: TargetFlags,
  env: Readonly<Record<string, string | undefined>> = process.env,
  cwd: string = process.cwd(),
): ClusterTarget {
  const idFlag = flags.clusterId ?? nonEmpty(env.COHORT_CLUSTER_ID);
  const fromEnv = nonEmpty(env.COHORT_ENDPOINTS);
  let base: Omit<ClusterTarget, 'endpoints' | 'tls'>;
  if (flags.endpoints !== undefined || (fromEnv !== undefined && flags.dir === undefined)) {
    const byFlag = flags.endpoints !== undefined;
    base = {
      nodes: parseEndpoints(byFlag ? (flags.endpoints ?? '') : (fromEnv ?? '')),
      clusterId: idFlag ?? 'cohort-local',
      source: byFlag ? '--endpoints' : 'COHORT_ENDPOINTS',
    };
  } else {
    const dir = flags.dir === undefined ? findClusterDir(cwd) : resolve(cwd, flags.dir);
    if (dir === undefined) {
      throw new CohortError(
        'NOT_FOUND',
        `no cluster found: no --endpoints, no COHORT_ENDPOINTS, and no .cohort/cluster.json in ${resolve(cwd)} or above (start one with cohort up, or pass --endpoints)`,
        { details: { field: 'endpoints' } },
      );
    }
    const file = readClusterFile(dir);
    base = {
      nodes: file.nodes,
      clusterId: idFlag ?? file.clusterId,
      source: clusterFilePath(dir),
      file,
      dir,
    };
  }
  const tls = resolveTls(flags, env, base.file, () =>
    base.dir !== undefined
      ? base.dir
      : flags.dir === undefined
        ? findClusterDir(cwd)
        : resolve(cwd, flags.dir),
  );
  return { ...base, endpoints: base.nodes.map((n) => `${n.id}=${n.rpc.host}:${n.rpc.port}`), tls };
}

/** The client credentials of a target (see the file comment). */
function resolveTls(
  flags: TargetFlags,
  env: Readonly<Record<string, string | undefined>>,
  file: ClusterFile | undefined,
  clusterDir: () => string | undefined,
): ClientTlsOptions | undefined {
  const given = {
    ca: flags.ca ?? nonEmpty(env.COHORT_TLS_CA),
    cert: flags.cert ?? nonEmpty(env.COHORT_TLS_CERT),
    key: flags.key ?? nonEmpty(env.COHORT_TLS_KEY),
  };
  const anyGiven = given.ca !== undefined || given.cert !== undefined || given.key !== undefined;
  if (flags.insecure === true) {
    if (anyGiven) {
      throw new CohortError('INVALID_ARGUMENT', '--insecure conflicts with --ca/--cert/--key', {
        details: { field: 'insecure' },
      });
    }
    return undefined;
  }
  if (anyGiven) {
    if (given.ca === undefined || given.cert === undefined || given.key === undefined) {
      throw new CohortError(
        'INVALID_ARGUMENT',
        'give all three of --ca, --cert and --key (or COHORT_TLS_CA, COHORT_TLS_CERT, COHORT_TLS_KEY)',
        {
          details: {
            field: given.ca === undefined ? 'ca' : given.cert === undefined ? 'cert' : 'key',
          },
        },
      );
    }
    return { ca: given.ca, cert: given.cert, key: given.key };
  }
  if (file?.tls !== undefined) return file.tls;
  if (file?.insecure === true) return undefined;
  const dir = clusterDir();
  if (dir === undefined) return undefined;
  const root = new CertDir(join(dir, 'certs')).files({ kind: 'user', name: 'root' });
  return existsSync(root.cert) && existsSync(root.key) && existsSync(root.ca) ? root : undefined;
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
    endpoints: target.endpoints,
    clusterId: target.clusterId,
    ...(target.tls === undefined ? {} : { tls: target.tls }),
    ...(o.timeoutMs === undefined ? {} : { callTimeoutMs: o.timeoutMs }),
  };
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v;
}
