/**
 * A cluster's certificate directory, as `cohort certs` and `cohort up` keep
 * it: the CA and every certificate it issued, each file written with mode
 * 0600 through a temp file and a rename (a reader never sees half a key).
 *
 * ```text
 * <dir>/ca.crt  ca.key                 the cluster's CA (cohort certs init)
 * <dir>/node-n1.crt  node-n1.key       a node (cohort certs issue node n1)
 * <dir>/user-root.crt  user-root.key   a user (cohort certs issue user root)
 * ```
 *
 * ```ts
 * const dir = new CertDir('.cohort/certs');
 * await dir.init('cohort-local');                  // ALREADY_EXISTS if there is a CA
 * await dir.issue({ kind: 'node', id: 'n1' });     // node-n1.crt + node-n1.key
 * dir.files({ kind: 'user', name: 'root' });       // { ca, cert, key } paths
 * ```
 */
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { makeDirs } from '../lib/dirs.js';
import { CohortError } from '../lib/errors.js';
import type { ClusterId, NodeId } from '../lib/ids.js';
import { isValidId } from '../lib/ids.js';
import { limits } from '../lib/limits.js';
import { createCa, issueCertificate } from './certificates.js';
import type { PemPair, ValidityOptions } from './certificates.js';
import { daysLeft, loadCredentials, readPemFile } from './credentials.js';
import type { CredentialFiles } from './credentials.js';
import { identityScheme, isValidNodeIdentity, isValidUserName, sanUris } from './identity.js';

/** Whom a certificate of the directory is for. */
export type Subject =
  { readonly kind: 'node'; readonly id: string } | { readonly kind: 'user'; readonly name: string };

/** Writes `text` to `path` with mode 0600: a temp file in the same directory, then a rename. */
export function writeSecretFile(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, text, { mode: 0o600, flag: 'w' });
    chmodSync(tmp, 0o600); // the mode of writeFileSync is masked by the umask, and ignored for an existing file
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new CohortError('IO_ERROR', `cannot write ${path}: ${(e as Error).message}`, {
      cause: e,
      details: { file: path },
    });
  }
}

/** Checks a subject's name (INVALID_ARGUMENT naming what is wrong). */
export function checkSubject(s: Subject): void {
  if (s.kind === 'node' && !isValidNodeIdentity(s.id)) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      `node id ${JSON.stringify(s.id)} may contain only letters, digits and . _ : - and may not start with "user:"`,
      { details: { field: 'id' } },
    );
  }
  if (s.kind === 'user' && !isValidUserName(s.name)) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      `user name ${JSON.stringify(s.name)} may contain only letters, digits and . _ - (at most 32)`,
      { details: { field: 'name' } },
    );
  }
}

/** The certificate directory of one cluster (see the file comment). */
export class CertDir {
  /** The directory (absolute). */
  readonly dir: string;

  constructor(dir: string) {
    this.dir = resolve(dir);
  }

  /** The CA's certificate file. */
  get caCert(): string {
    return join(this.dir, 'ca.crt');
  }

  /** The CA's key file. */
  get caKey(): string {
    return join(this.dir, 'ca.key');
  }

  /** True if the directory holds a CA. */
  hasCa(): boolean {
    return existsSync(this.caCert) && existsSync(this.caKey);
  }

  /** The files of a subject's credentials (they may not exist yet). */
  files(s: Subject): CredentialFiles {
    const base = s.kind === 'node' ? `node-${s.id}` : `user-${s.name}`;
    return {
      ca: this.caCert,
      cert: join(this.dir, `${base}.crt`),
      key: join(this.dir, `${base}.key`),
    };
  }

  /** True if the subject's certificate and key exist. */
  has(s: Subject): boolean {
    const f = this.files(s);
    return existsSync(f.cert) && existsSync(f.key);
  }

  /** Makes the directory's CA for `clusterId`; ALREADY_EXISTS if it has one (never overwritten). */
  async init(
    clusterId: string,
    validity: ValidityOptions = {},
  ): Promise<CredentialFiles & { clusterId: string }> {
    if (!isValidId(clusterId)) {
      throw new CohortError(
        'INVALID_ARGUMENT',
        `cluster id ${JSON.stringify(clusterId)} is not valid`,
        {
          details: { field: 'clusterId' },
        },
      );
    }
    if (existsSync(this.caCert) || existsSync(this.caKey)) {
      throw new CohortError(
        'ALREADY_EXISTS',
        `${this.dir} already holds a CA (${this.caCert}); a new CA would not trust the certificates it issued`,
        { details: { file: this.caCert } },
      );
    }
    makeDirs(this.dir, 0o700);
    const ca = await createCa({ clusterId, ...validity });
    writeSecretFile(this.caKey, ca.key);
    writeSecretFile(this.caCert, ca.cert);
    return { ca: this.caCert, cert: this.caCert, key: this.caKey, clusterId };
  }

  /** The CA (PEM) and the cluster it names; NOT_FOUND if the directory has none. */
  ca(): PemPair & { clusterId: ClusterId } {
    if (!this.hasCa()) {
      throw new CohortError(
        'NOT_FOUND',
        `no CA in ${this.dir}: make one with \`cohort certs init\` (or start the cluster once with cohort up)`,
        { details: { file: this.caCert } },
      );
    }
    const cert = readPemFile(this.caCert, 'ca', false);
    const key = readPemFile(this.caKey, 'key', true);
    const uri = sanUris(new X509Certificate(cert)).find((u) =>
      u.startsWith(`${identityScheme}://`),
    );
    const m = uri === undefined ? null : /^cohort:\/\/([^/]+)\/ca$/.exec(uri);
    const clusterId = m?.[1];
    if (clusterId === undefined || !isValidId(clusterId)) {
      throw new CohortError(
        'FAILED_PRECONDITION',
        `${this.caCert} is not a cohort CA (no cohort://<cluster>/ca SAN URI)`,
        {
          details: { file: this.caCert },
        },
      );
    }
    return { cert, key, clusterId: clusterId as ClusterId };
  }

  /**
   * Makes what a local cluster needs, keeping what is there: the CA (if
   * missing), and a certificate for each node and user that has none, or
   * whose certificate no longer loads or expires within certRenewWithinDays
   * (reissued). FAILED_PRECONDITION if the directory's CA is another
   * cluster's. Returns the subjects it issued.
   */
  async ensure(o: {
    readonly clusterId: string;
    readonly nodes: readonly string[];
    readonly users: readonly string[];
  }): Promise<{ createdCa: boolean; issued: Subject[] }> {
    let createdCa = false;
    if (!this.hasCa()) {
      await this.init(o.clusterId);
      createdCa = true;
    }
    const ca = this.ca();
    if (ca.clusterId !== o.clusterId) {
      throw new CohortError(
        'FAILED_PRECONDITION',
        `the CA in ${this.dir} is cluster ${ca.clusterId}'s, not ${o.clusterId}'s`,
        { details: { file: this.caCert } },
      );
    }
    const issued: Subject[] = [];
    const subjects: Subject[] = [
      ...o.nodes.map((id): Subject => ({ kind: 'node', id })),
      ...o.users.map((name): Subject => ({ kind: 'user', name })),
    ];
    for (const s of subjects) {
      if (this.has(s)) {
        try {
          const creds = loadCredentials(this.files(s));
          if (daysLeft(creds) >= limits.certRenewWithinDays) continue;
        } catch {
          // Unreadable, expired, from an older CA: issue a new one.
        }
      }
      await this.issue(s);
      issued.push(s);
    }
    return { createdCa, issued };
  }

  /**
   * Issues a certificate for `s` signed by the directory's CA and writes it
   * (replacing an older one of the same subject: that is how a certificate
   * is rotated). Returns the files.
   */
  async issue(s: Subject, validity: ValidityOptions = {}): Promise<CredentialFiles> {
    checkSubject(s);
    const ca = this.ca();
    const identity =
      s.kind === 'node'
        ? { kind: 'node' as const, clusterId: ca.clusterId, id: s.id as NodeId }
        : { kind: 'user' as const, clusterId: ca.clusterId, name: s.name };
    const pair = await issueCertificate(ca, identity, validity);
    const files = this.files(s);
    // The key first: a reader that sees the new certificate finds its key.
    writeSecretFile(files.key, pair.key);
    writeSecretFile(files.cert, pair.cert);
    return files;
  }
}
