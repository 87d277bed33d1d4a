/**
 * Making certificates: a cluster's CA, and node and user certificates it
 * signs, with the identity as a SAN URI (identity.ts). ECDSA P-256 keys with
 * SHA-256 signatures: small, fast to make and to verify in every TLS handshake.
 *
 * ```ts
 * const ca = await createCa({ clusterId: 'cohort-local' });                       // { cert, key } PEM
 * const n1 = await issueCertificate(ca, { kind: 'node', clusterId, id: nodeId('n1') });
 * const root = await issueCertificate(ca, { kind: 'user', clusterId, name: 'root' }, { days: 30 });
 * ```
 *
 * Certificates are made with `@peculiar/x509` over node:crypto's WebCrypto;
 * that library resolves its algorithms through `tsyringe`, which needs the
 * `reflect-metadata` polyfill loaded first. Both are imported lazily, on the
 * first certificate made, so a node process (which only *reads*
 * certificates, with node:crypto) never loads them nor the global `Reflect`
 * extensions the polyfill installs.
 *
 * Every certificate has: a random 128-bit serial number, the validity asked
 * for (from one minute before now, for clock skew between machines), basic
 * constraints (a CA, or not one), key usages, and for leaves the extended
 * key usages serverAuth + clientAuth (a node both accepts and dials) and the
 * subject and authority key identifiers node:tls uses to build chains.
 */
import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import type * as X509Types from '@peculiar/x509';
import { CohortError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import { caUri, identityUri } from './identity.js';
import type { PeerIdentity } from './identity.js';

/** A certificate and its private key, both PEM. */
export interface PemPair {
  readonly cert: string;
  readonly key: string;
}

/** Validity of a certificate being made. */
export interface ValidityOptions {
  /** Days it is valid (default certValidityDaysDefault; a CA: caValidityDaysDefault). */
  readonly days?: number;
  /** Start of validity (default: one minute ago, for clock skew). Tests pass a past date to make an expired certificate. */
  readonly notBefore?: Date;
}

const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
/** Certificates start this long before now, so a peer whose clock is a little behind accepts them. */
const backdateMs = 60_000;

type X509Module = typeof X509Types;
let x509Module: Promise<X509Module> | undefined;

/** Loads @peculiar/x509 (after its reflect-metadata polyfill) once, on first use. */
function x509(): Promise<X509Module> {
  x509Module ??= (async () => {
    await import('reflect-metadata');
    const m = await import('@peculiar/x509');
    m.cryptoProvider.set(webcrypto as unknown as Parameters<typeof m.cryptoProvider.set>[0]);
    return m;
  })();
  return x509Module;
}

function validity(o: ValidityOptions, defaultDays: number): { notBefore: Date; notAfter: Date } {
  const days = o.days ?? defaultDays;
  if (!Number.isInteger(days) || days < 1 || days > limits.certValidityDaysMax) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      `validity must be a whole number of days in 1..${limits.certValidityDaysMax}, got ${days}`,
      { details: { field: 'days', value: days } },
    );
  }
  const notBefore = o.notBefore ?? new Date(Date.now() - backdateMs);
  return { notBefore, notAfter: new Date(notBefore.getTime() + days * 86_400_000 + backdateMs) };
}

/** A random positive 128-bit serial number, hex (RFC 5280 §4.1.2.2: positive, at most 20 bytes). */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] as number) & 0x7f;
  return bytes.toString('hex');
}

async function keyPair(): Promise<webcrypto.CryptoKeyPair> {
  return webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
}

async function pemOfPrivateKey(m: X509Module, key: webcrypto.CryptoKey): Promise<string> {
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', key);
  return m.PemConverter.encode(pkcs8, 'PRIVATE KEY');
}

/**
 * A new CA for cluster `clusterId`: a self-signed certificate (SAN URI
 * `cohort://<cluster>/ca`, path length 0: it signs leaves only) and its key.
 */
export async function createCa(
  o: { readonly clusterId: string } & ValidityOptions,
): Promise<PemPair> {
  const m = await x509();
  const keys = await keyPair();
  const { notBefore, notAfter } = validity(o, limits.caValidityDaysDefault);
  const cert = await m.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: `CN=cohort CA ${o.clusterId}, O=cohort`,
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: algorithm,
    extensions: [
      new m.BasicConstraintsExtension(true, 0, true),
      new m.KeyUsagesExtension(m.KeyUsageFlags.keyCertSign | m.KeyUsageFlags.cRLSign, true),
      new m.SubjectAlternativeNameExtension([{ type: 'url', value: caUri(o.clusterId) }]),
      await m.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString('pem'), key: await pemOfPrivateKey(m, keys.privateKey) };
}

/**
 * A certificate for `identity`, signed by `ca` (its cert and key, PEM), with
 * a fresh key pair. The common name is the node id or user name; the
 * identity proper is the SAN URI.
 */
export async function issueCertificate(
  ca: PemPair,
  identity: Exclude<PeerIdentity, { kind: 'anonymous' }>,
  o: ValidityOptions = {},
): Promise<PemPair> {
  const m = await x509();
  const caCert = new m.X509Certificate(ca.cert);
  const caDer = createPrivateKey(ca.key).export({ type: 'pkcs8', format: 'der' });
  const caKey = await webcrypto.subtle.importKey('pkcs8', caDer, algorithm, false, ['sign']);
  const keys = await keyPair();
  const { notBefore, notAfter } = validity(o, limits.certValidityDaysDefault);
  const name = identity.kind === 'node' ? identity.id : identity.name;
  const cert = await m.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: `CN=${name}, OU=${identity.kind}, O=cohort ${identity.clusterId}`,
    issuer: caCert.subject,
    notBefore,
    notAfter,
    signingKey: caKey,
    publicKey: keys.publicKey,
    signingAlgorithm: algorithm,
    extensions: [
      new m.BasicConstraintsExtension(false, undefined, true),
      new m.KeyUsagesExtension(
        m.KeyUsageFlags.digitalSignature | m.KeyUsageFlags.keyAgreement,
        true,
      ),
      new m.ExtendedKeyUsageExtension([
        m.ExtendedKeyUsage.serverAuth,
        m.ExtendedKeyUsage.clientAuth,
      ]),
      new m.SubjectAlternativeNameExtension([{ type: 'url', value: identityUri(identity) }]),
      await m.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await m.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return { cert: cert.toString('pem'), key: await pemOfPrivateKey(m, keys.privateKey) };
}
