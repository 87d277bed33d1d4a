/**
 * Loading and checking a certificate, its key and the cluster's CA: what a
 * node does at start and on reload, and what a client does before it dials.
 *
 * ```ts
 * const creds = loadCredentials({ ca: 'certs/ca.crt', cert: 'certs/node-n1.crt', key: 'certs/node-n1.key' });
 * creds.identity;            // { kind: 'node', clusterId: 'cohort-local', id: 'n1' }
 * creds.notAfter;            // Date
 * checkCredentials(creds, { clusterId, kind: 'node', id: nodeId('n1') });   // throws if it names someone else
 * ```
 *
 * Checks, each a clear CohortError naming the file: every file exists and is
 * at most certFileBytesMax; the key file is not readable or writable by
 * group or others (like ssh: mode 0600 or stricter); the certificate parses,
 * names exactly one cohort identity (identity.ts), was signed by a
 * certificate of the CA file (which may hold several, for a CA rotation), is
 * valid now, and matches the key.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { closeSync, fstatSync, openSync, readFileSync, statSync } from 'node:fs';
import { CohortError } from '../lib/errors.js';
import type { ClusterId, NodeId } from '../lib/ids.js';
import { limits } from '../lib/limits.js';
import { describeIdentity, identityOfCertificate } from './identity.js';
import type { PeerIdentity } from './identity.js';

/** Where a certificate, its key and the CA are (paths). */
export interface CredentialFiles {
  /** The cluster's CA certificate(s), PEM. */
  readonly ca: string;
  /** This node's or user's certificate, PEM. */
  readonly cert: string;
  /** Its private key, PEM (mode 0600 or stricter). */
  readonly key: string;
}

/** The same as bytes or text (a program that keeps its credentials elsewhere). */
export interface CredentialPems {
  readonly ca: string | Uint8Array | readonly (string | Uint8Array)[];
  readonly cert: string | Uint8Array;
  readonly key: string | Uint8Array;
}

/** Checked credentials, ready for node:tls. */
export interface Credentials {
  /** Whom the certificate names. */
  readonly identity: Exclude<PeerIdentity, { kind: 'anonymous' }>;
  /** The CA certificates, PEM, one per entry. */
  readonly ca: readonly string[];
  readonly cert: string;
  readonly key: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** The certificate's SHA-256 fingerprint (logs: which certificate is in use). */
  readonly fingerprint: string;
  /** The files they came from, if any. */
  readonly files?: CredentialFiles;
}

/** Whom the credentials must name (a node's own id, the cluster). */
export interface CredentialExpectation {
  readonly clusterId?: ClusterId | string;
  readonly kind?: 'node' | 'user';
  readonly id?: NodeId | string;
}

function refuse(field: string, file: string | undefined, message: string, cause?: unknown): never {
  throw new CohortError('FAILED_PRECONDITION', message, {
    details: { field, ...(file === undefined ? {} : { file }) },
    ...(cause === undefined ? {} : { cause }),
  });
}

/** Reads a PEM file of at most certFileBytesMax; `secret` refuses one that group or others can read or write. */
export function readPemFile(path: string, field: string, secret: boolean): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return refuse(
      field,
      path,
      `${field} file ${path} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? String(e)})`}`,
      e,
    );
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) refuse(field, path, `${field} file ${path} is not a regular file`);
    if (st.size > limits.certFileBytesMax) {
      refuse(
        field,
        path,
        `${field} file ${path} holds ${st.size} bytes, more than certFileBytesMax ${limits.certFileBytesMax}`,
      );
    }
    if (secret && (st.mode & 0o077) !== 0) {
      refuse(
        field,
        path,
        `key file ${path} is accessible by group or others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); a private key must be readable by its owner only: chmod 600 ${path}`,
      );
    }
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/** True if a key file's mode lets group or others at it (for warnings before a refusal). */
export function keyFileExposed(path: string): boolean {
  try {
    return (statSync(path).mode & 0o077) !== 0;
  } catch {
    return false;
  }
}

/** Splits a PEM bundle into its certificates. */
export function splitPemCertificates(text: string): string[] {
  return [...text.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)].map(
    (m) => `${m[0]}\n`,
  );
}

function pemText(v: string | Uint8Array): string {
  return typeof v === 'string' ? v : Buffer.from(v).toString('utf8');
}

/**
 * Checks PEM credentials (see the file comment; `now` for tests) and
 * returns them with the identity their certificate names.
 */
export function credentialsFromPem(
  pems: CredentialPems,
  files?: CredentialFiles,
  now: Date = new Date(),
): Credentials {
  const caTexts = (Array.isArray(pems.ca) ? pems.ca : [pems.ca]) as (string | Uint8Array)[];
  const ca = caTexts.flatMap((t) => splitPemCertificates(pemText(t)));
  if (ca.length === 0)
    refuse('ca', files?.ca, `CA file ${files?.ca ?? ''} holds no PEM certificate`);
  const caCerts = ca.map((p, i) => {
    try {
      return new X509Certificate(p);
    } catch (e) {
      return refuse(
        'ca',
        files?.ca,
        `CA certificate ${i + 1} does not parse: ${(e as Error).message}`,
        e,
      );
    }
  });
  const certText = pemText(pems.cert);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certText);
  } catch (e) {
    return refuse(
      'cert',
      files?.cert,
      `certificate ${files?.cert ?? ''} does not parse: ${(e as Error).message}`,
      e,
    );
  }
  const where = files?.cert ?? 'the certificate';
  const identity = identityOfCertificate(cert);
  if (typeof identity === 'string') refuse('cert', files?.cert, `${where}: ${identity}`);
  if (identity.kind === 'anonymous') refuse('cert', files?.cert, `${where} names nobody`);
  if (!caCerts.some((c) => cert.checkIssued(c) && cert.verify(c.publicKey))) {
    refuse(
      'cert',
      files?.cert,
      `${where} (${describeIdentity(identity)}) was not signed by the CA in ${files?.ca ?? 'the CA bundle'}`,
    );
  }
  const notBefore = new Date(cert.validFrom);
  const notAfter = new Date(cert.validTo);
  if (now < notBefore) {
    refuse('cert', files?.cert, `${where} is not valid before ${notBefore.toISOString()}`);
  }
  if (now > notAfter) {
    refuse(
      'cert',
      files?.cert,
      `${where} (${describeIdentity(identity)}) expired on ${notAfter.toISOString()}; issue a new one (cohort certs issue ${identity.kind} ${identity.kind === 'node' ? identity.id : identity.name})`,
    );
  }
  const keyText = pemText(pems.key);
  let matches: boolean;
  try {
    matches = cert.checkPrivateKey(createPrivateKey(keyText));
  } catch (e) {
    return refuse(
      'key',
      files?.key,
      `key ${files?.key ?? ''} is not a PEM private key: ${(e as Error).message}`,
      e,
    );
  }
  if (!matches) {
    refuse('key', files?.key, `key ${files?.key ?? ''} does not belong to ${where}`);
  }
  return {
    identity,
    ca,
    cert: certText,
    key: keyText,
    notBefore,
    notAfter,
    fingerprint: cert.fingerprint256,
    ...(files === undefined ? {} : { files }),
  };
}

/** Reads and checks credential files (see the file comment). */
export function loadCredentials(files: CredentialFiles, now: Date = new Date()): Credentials {
  const ca = readPemFile(files.ca, 'ca', false);
  const cert = readPemFile(files.cert, 'cert', false);
  const key = readPemFile(files.key, 'key', true);
  return credentialsFromPem({ ca, cert, key }, files, now);
}

/** Throws FAILED_PRECONDITION unless `creds` name whom `expect` says (a node's own id and cluster). */
export function checkCredentials(creds: Credentials, expect: CredentialExpectation): void {
  const who = creds.identity;
  const where = creds.files?.cert ?? 'the certificate';
  if (expect.clusterId !== undefined && who.clusterId !== expect.clusterId) {
    refuse(
      'cert',
      creds.files?.cert,
      `${where} is for cluster ${who.clusterId}, not ${expect.clusterId}`,
    );
  }
  if (expect.kind !== undefined && who.kind !== expect.kind) {
    refuse(
      'cert',
      creds.files?.cert,
      `${where} is ${describeIdentity(who)}'s; a ${expect.kind} certificate is needed here`,
    );
  }
  if (expect.id !== undefined) {
    const name = who.kind === 'node' ? who.id : who.name;
    if (name !== expect.id) {
      refuse(
        'cert',
        creds.files?.cert,
        `${where} is ${describeIdentity(who)}'s, not ${expect.kind ?? who.kind} ${expect.id}'s`,
      );
    }
  }
}

/** Whole days until `creds` expire (negative once expired). */
export function daysLeft(creds: Credentials, now: Date = new Date()): number {
  return Math.floor((creds.notAfter.getTime() - now.getTime()) / 86_400_000);
}
