/**
 * A client's TLS credentials as a program or the CLI gives them: each of
 * `ca`, `cert` and `key` a file path, or the PEM itself (text that opens
 * with `-----BEGIN`, or bytes). Files are read with the node's checks (a key
 * file must be 0600 or stricter).
 *
 * ```ts
 * const creds = resolveClientTls({ ca: '.cohort/certs/ca.crt', cert: '.cohort/certs/user-root.crt', key: '.cohort/certs/user-root.key' });
 * creds.identity;                 // { kind: 'user', clusterId: 'cohort-local', name: 'root' }
 * const kv = await KvClient.connect({ endpoints, tls: { ca, cert, key } });   // the same, as KvClient takes it
 * ```
 */
import { CohortError } from '../lib/errors.js';
import { credentialsFromPem, readPemFile } from './credentials.js';
import type { CredentialFiles, Credentials } from './credentials.js';
import { describeIdentity } from './identity.js';

/** Client TLS credentials: each a file path, or PEM text or bytes. */
export interface ClientTlsOptions {
  /** The cluster's CA certificate(s). */
  readonly ca: string | Uint8Array;
  /** The client's certificate (a user's: `cohort certs issue user <name>`). */
  readonly cert: string | Uint8Array;
  /** Its private key. */
  readonly key: string | Uint8Array;
}

function isPem(v: string | Uint8Array): boolean {
  return typeof v !== 'string' || v.trimStart().startsWith('-----BEGIN');
}

/** Reads and checks client credentials (see the file comment). */
export function resolveClientTls(o: ClientTlsOptions): Credentials {
  const text = (v: string | Uint8Array, field: string, secret: boolean): string =>
    isPem(v)
      ? typeof v === 'string'
        ? v
        : Buffer.from(v).toString('utf8')
      : readPemFile(v as string, field, secret);
  const files: { -readonly [K in keyof CredentialFiles]?: string } = {};
  for (const f of ['ca', 'cert', 'key'] as const) {
    const v = o[f];
    if (!isPem(v)) files[f] = v as string;
  }
  return credentialsFromPem(
    {
      ca: text(o.ca, 'ca', false),
      cert: text(o.cert, 'cert', false),
      key: text(o.key, 'key', true),
    },
    files.ca !== undefined && files.cert !== undefined && files.key !== undefined
      ? (files as CredentialFiles)
      : undefined,
  );
}

/**
 * Credentials for a client of the cluster's user API: a user certificate.
 * A node's certificate is refused (INVALID_ARGUMENT): it is for links
 * between members, and the nodes refuse it on their client API anyway.
 */
export function resolveUserTls(o: ClientTlsOptions, what = 'a client'): Credentials {
  const creds = resolveClientTls(o);
  if (creds.identity.kind !== 'user') {
    throw new CohortError(
      'INVALID_ARGUMENT',
      `${what} needs a user certificate, and this one is ${describeIdentity(creds.identity)}'s: node certificates are for links between members (issue one with cohort certs issue user <name>)`,
      { details: { field: 'tls.cert' } },
    );
  }
  return creds;
}
