/**
 * Who is on the other end of a connection. An identity is written into a
 * certificate by the cluster's CA as one SAN URI, and read back from the
 * verified certificate of a TLS peer; the handshake's claimed id must match
 * it (DESIGN.md, Trust).
 *
 * ```ts
 * identityUri({ kind: 'node', clusterId, id: nodeId('n1') });   // 'cohort://cohort-local/node/n1'
 * identityUri({ kind: 'user', clusterId, name: 'alice' });      // 'cohort://cohort-local/user/alice'
 * const who = identityOfCertificate(socket.getPeerX509Certificate()!);  // PeerIdentity, or why not
 * connectionId(who, 'a1b2c3');                                  // 'n1', or 'user:alice:a1b2c3'
 * checkClaim(who, hello.nodeId);                                // undefined, or why the claim is refused
 * ```
 *
 * A node claims its own id in the handshake. A user's connections claim
 * `user:<name>:<suffix>` (any suffix: one user may hold many connections),
 * so a user can never take a node's place on a link, and the RPC layer can
 * tell every connection apart. Node ids may therefore not start with
 * `user:`. A plaintext (`--insecure`) connection authenticates nobody: its
 * identity is {@link anonymous}.
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import { CohortError } from '../lib/errors.js';
import type { ClusterId, NodeId } from '../lib/ids.js';
import { isValidId, isValidUserName } from '../lib/ids.js';

export { isValidUserName };

/** The authenticated identity of a connection's peer. */
export type PeerIdentity =
  /** A member (or would-be member) node of the cluster. */
  | { readonly kind: 'node'; readonly clusterId: ClusterId; readonly id: NodeId }
  /** A user: a person or a program acting as a client. */
  | { readonly kind: 'user'; readonly clusterId: ClusterId; readonly name: string }
  /** Nobody was authenticated: a plaintext (`--insecure`) link, or an in-process one. */
  | { readonly kind: 'anonymous' };

/** The identity of an unauthenticated connection. */
export const anonymous: PeerIdentity = Object.freeze({ kind: 'anonymous' });

/** The URI scheme of identities in certificates. */
export const identityScheme = 'cohort';

/** The claimed-id prefix of a user's connections. */
export const userIdPrefix = 'user:';

/** True if `id` may name a node in a certificate (a valid id not in the users' namespace). */
export function isValidNodeIdentity(id: unknown): id is string {
  return isValidId(id) && !id.startsWith(userIdPrefix);
}

/** The SAN URI of an identity: `cohort://<cluster>/node/<id>` or `cohort://<cluster>/user/<name>`. */
export function identityUri(identity: Exclude<PeerIdentity, { kind: 'anonymous' }>): string {
  return identity.kind === 'node'
    ? `${identityScheme}://${identity.clusterId}/node/${identity.id}`
    : `${identityScheme}://${identity.clusterId}/user/${identity.name}`;
}

/** The SAN URI that marks a cluster's CA certificate: `cohort://<cluster>/ca`. */
export function caUri(clusterId: string): string {
  return `${identityScheme}://${clusterId}/ca`;
}

/** Parses an identity URI; undefined if it is not one (wrong scheme, shape, or characters). */
export function parseIdentityUri(uri: string): PeerIdentity | undefined {
  const m = /^cohort:\/\/([^/]+)\/(node|user)\/([^/]+)$/.exec(uri);
  if (m === null) return undefined;
  const [, cluster, kind, name] = m as unknown as [string, string, string, string];
  if (!isValidId(cluster)) return undefined;
  if (kind === 'node') {
    return isValidNodeIdentity(name)
      ? { kind: 'node', clusterId: cluster as ClusterId, id: name as NodeId }
      : undefined;
  }
  return isValidUserName(name)
    ? { kind: 'user', clusterId: cluster as ClusterId, name }
    : undefined;
}

/** The URIs among a certificate's subject alternative names (node's text form, quoted values unquoted). */
export function sanUris(cert: X509Certificate): string[] {
  const text = cert.subjectAltName;
  if (text === undefined) return [];
  const out: string[] = [];
  // Node joins entries with ", "; a value with special characters is JSON-quoted.
  for (const m of text.matchAll(/URI:("(?:[^"\\]|\\.)*"|[^,]*)/g)) {
    const raw = m[1] ?? '';
    try {
      out.push(raw.startsWith('"') ? (JSON.parse(raw) as string) : raw.trim());
    } catch {
      // not well quoted: not one of ours
    }
  }
  return out;
}

/**
 * The identity a certificate names, or why it names none: exactly one
 * `cohort://` SAN URI of a node or a user. (The chain to the cluster's CA
 * and the validity dates are node:tls's to check.)
 */
export function identityOfCertificate(cert: X509Certificate): PeerIdentity | string {
  const ours = sanUris(cert).filter((u) => u.startsWith(`${identityScheme}://`));
  if (ours.length === 0) {
    return `certificate ${cert.subject.replace(/\n/g, ', ')} names no cohort identity (no cohort:// SAN URI)`;
  }
  if (ours.length > 1)
    return `certificate names ${ours.length} cohort identities (${ours.join(', ')})`;
  const uri = ours[0] as string;
  const identity = parseIdentityUri(uri);
  if (identity === undefined) return `certificate's identity ${JSON.stringify(uri)} is malformed`;
  return identity;
}

/** The id a connection of `identity` claims in the handshake (`suffix` tells a user's connections apart). */
export function connectionId(
  identity: Exclude<PeerIdentity, { kind: 'anonymous' }>,
  suffix: string,
): NodeId {
  return (
    identity.kind === 'node' ? identity.id : `${userIdPrefix}${identity.name}:${suffix}`
  ) as NodeId;
}

/**
 * Whether a handshake's claimed id is one `identity` may claim: a node its
 * own id, a user `user:<name>` or `user:<name>:<suffix>`. Undefined if so,
 * else why not.
 */
export function checkClaim(identity: PeerIdentity, claimed: string): string | undefined {
  if (identity.kind === 'anonymous') return undefined;
  if (identity.kind === 'node') {
    return claimed === identity.id
      ? undefined
      : `claims id ${JSON.stringify(claimed)} but its certificate is node ${identity.id}'s`;
  }
  const own = `${userIdPrefix}${identity.name}`;
  return claimed === own || claimed.startsWith(`${own}:`)
    ? undefined
    : `claims id ${JSON.stringify(claimed)} but its certificate is user ${identity.name}'s (a user's connections claim ${own}:<suffix>)`;
}

/** The identity in log lines and messages: `node n1`, `user alice`, `anonymous`. */
export function describeIdentity(identity: PeerIdentity): string {
  switch (identity.kind) {
    case 'node':
      return `node ${identity.id}`;
    case 'user':
      return `user ${identity.name}`;
    case 'anonymous':
      return 'anonymous';
  }
}

/** The identity in structured logs: `{ identity: 'node n1' }`. */
export function identityField(identity: PeerIdentity | undefined): string {
  return identity === undefined ? 'unauthenticated' : describeIdentity(identity);
}

/**
 * The id a dialer holding certificate `cert` (PEM) claims: a node its id, a
 * user `user:<name>:` and 12 random hex digits (each connection its own).
 * INVALID_ARGUMENT if the certificate names no cohort identity.
 */
export function claimForCertificate(cert: string | Uint8Array): NodeId {
  let identity: PeerIdentity | string;
  try {
    identity = identityOfCertificate(new X509Certificate(cert));
  } catch (e) {
    throw new CohortError('INVALID_ARGUMENT', `the certificate does not parse: ${String(e)}`, {
      cause: e,
    });
  }
  if (typeof identity === 'string') throw new CohortError('INVALID_ARGUMENT', identity);
  if (identity.kind === 'anonymous') throw new CohortError('INVALID_ARGUMENT', 'no identity');
  return connectionId(identity, randomBytes(6).toString('hex'));
}
