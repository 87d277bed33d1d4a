/**
 * Which cluster a client command talks to, and with which certificate:
 * `cohort kv`, `cohort status`, `cohort mr`, `cohort auth`, `cohort user`
 * and `cohort role` share these flags and rules.
 *
 * ```sh
 * cohort kv get a                                     # the cluster cohort up runs in .cohort, its root certificate
 * cohort kv get a --endpoints n1=10.0.0.1:7201 --ca ca.crt --cert alice.crt --key alice.key
 * cohort kv get a --endpoints n1=127.0.0.1:7201 --insecure   # a plaintext (--insecure) cluster
 * ```
 *
 * The nodes: `--endpoints`, else `<dir>/cluster.json`. The certificate:
 * `--ca`/`--cert`/`--key` (or COHORT_TLS_CA, COHORT_TLS_CERT,
 * COHORT_TLS_KEY), else the one cluster.json names (cohort up's `root`
 * user), else `<dir>/certs/user-root.crt` if it exists; none with
 * `--insecure` or for a cluster.json of an --insecure cluster. A TLS node
 * refuses a client without a certificate, saying so.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { CohortError } from '../lib/errors.js';
import { parseEndpoints, readClusterFile } from '../node/cluster.js';
import type { ClusterNode } from '../node/cluster.js';
import type { ClientTlsOptions } from '../trust/client-tls.js';
import { CertDir } from '../trust/cert-dir.js';

/** The flags {@link addTargetOptions} adds. */
export interface TargetFlags {
  dir: string;
  endpoints?: string;
  clusterId?: string;
  ca?: string;
  cert?: string;
  key?: string;
  insecure?: boolean;
}

/** A resolved target: the nodes, the cluster id, the client credentials (undefined: plaintext). */
export interface Target {
  readonly nodes: ClusterNode[];
  /** `n1=host:port` strings (what KvClient takes). */
  readonly endpoints: string[];
  readonly clusterId: string;
  readonly tls: ClientTlsOptions | undefined;
}

/** Adds --dir, --endpoints, --cluster-id, --ca, --cert, --key and --insecure to a command. */
export function addTargetOptions(cmd: Command): Command {
  return cmd
    .option('--dir <dir>', 'where cohort up put cluster.json', '.cohort')
    .option('--endpoints <list>', 'RPC endpoints instead: n1=host:port,n2=host:port')
    .option('--cluster-id <id>', 'cluster id for --endpoints (default cohort-local)')
    .option('--ca <file>', "the cluster CA's certificate (COHORT_TLS_CA; default: cluster.json's)")
    .option(
      '--cert <file>',
      "your user certificate (COHORT_TLS_CERT; default: cluster.json's, the root user)",
    )
    .option('--key <file>', 'its private key (COHORT_TLS_KEY)')
    .option('--insecure', 'talk plaintext to a cluster started with --insecure');
}

/** Resolves the flags (see the file comment); throws CohortError with what to do. */
export function resolveTarget(flags: TargetFlags, env: NodeJS.ProcessEnv = process.env): Target {
  let nodes: ClusterNode[];
  let clusterId: string;
  let fileTls: ClientTlsOptions | undefined;
  let fileInsecure = false;
  if (flags.endpoints !== undefined) {
    nodes = parseEndpoints(flags.endpoints);
    clusterId = flags.clusterId ?? 'cohort-local';
  } else {
    const file = readClusterFile(flags.dir);
    nodes = [...file.nodes];
    clusterId = flags.clusterId ?? file.clusterId;
    fileTls = file.tls;
    fileInsecure = file.insecure === true;
  }
  const given = {
    ca: flags.ca ?? env.COHORT_TLS_CA,
    cert: flags.cert ?? env.COHORT_TLS_CERT,
    key: flags.key ?? env.COHORT_TLS_KEY,
  };
  const anyGiven = given.ca !== undefined || given.cert !== undefined || given.key !== undefined;
  let tls: ClientTlsOptions | undefined;
  if (flags.insecure === true) {
    if (anyGiven) {
      throw new CohortError('INVALID_ARGUMENT', '--insecure conflicts with --ca/--cert/--key', {
        details: { field: 'insecure' },
      });
    }
  } else if (anyGiven) {
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
    tls = { ca: given.ca, cert: given.cert, key: given.key };
  } else if (fileTls !== undefined) {
    tls = fileTls;
  } else if (!fileInsecure) {
    const certs = new CertDir(join(flags.dir, 'certs'));
    const root = certs.files({ kind: 'user', name: 'root' });
    if (existsSync(root.cert) && existsSync(root.key) && existsSync(root.ca)) tls = root;
  }
  return {
    nodes,
    endpoints: nodes.map((n) => `${n.id}=${n.rpc.host}:${n.rpc.port}`),
    clusterId,
    tls,
  };
}
