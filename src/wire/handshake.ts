/**
 * The connection handshake. The first frame each way on every connection is a
 * handshake message; application messages flow only after it succeeded.
 *
 * ```text
 * dialer                                acceptor
 *   Hello {protocolVersion, clusterId, nodeId, to}  →
 *                                        checkHello(): ok → Welcome {protocolVersion, clusterId, nodeId}
 *                                                      no → Reject {reason, code}, then close
 *   checkWelcome(): ok → the link is up; no → log the reason, close
 * ```
 *
 * ```ts
 * const verdict = checkHello(local, hello);
 * if (!verdict.ok) log.warn({ peer: hello.nodeId, reason: verdict.reason }, 'handshake refused');
 * ```
 *
 * **Versions.** `protocolVersion` is the version every peer must share
 * (exact match, else `Reject{code:'version'}`). A dialer that also speaks
 * newer versions says so with `protocolVersionMax` in its Hello; the
 * acceptor answers with the version the connection speaks,
 * `protocolVersionAgreed` in its Welcome: the newest both know. A peer that
 * sends neither field (an older node) speaks `protocolVersion`, and an older
 * acceptor ignores the dialer's extra field (the schemas are lenient), so
 * its Welcome names no agreed version and the link speaks
 * `protocolVersion`. Version 3: frames carry batches of messages (frame.ts).
 *
 * The handshake messages are the one part of the wire format that must never
 * change shape between protocol versions: a node of version 2 must still read
 * a version-1 Hello well enough to say "version mismatch". So their schemas
 * accept extra fields (a later version may add some) and contain only fields
 * every version has.
 */
import { Type } from '@sinclair/typebox';
import type { ClusterId, NodeId } from '../lib/ids.js';
import { isValidId } from '../lib/ids.js';
import { limits } from '../lib/limits.js';
import { message, messageCodec } from './codec.js';
import type { MessageOf } from './codec.js';

const idSchema = Type.String({ minLength: 1, maxLength: limits.idBytesMax });
const lenient = { additionalProperties: true };

/** Sent by the dialer: who it is, and whom it meant to reach. */
export const Hello = message(
  'Hello',
  {
    protocolVersion: Type.Integer({ minimum: 0 }),
    clusterId: idSchema,
    nodeId: idSchema,
    /** The node the dialer thinks it connected to (catches a wrong address book). */
    to: idSchema,
    /** The newest version the dialer speaks (absent: `protocolVersion` only). */
    protocolVersionMax: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  lenient,
);

/** The acceptor's answer to a good Hello. */
export const Welcome = message(
  'Welcome',
  {
    protocolVersion: Type.Integer({ minimum: 0 }),
    clusterId: idSchema,
    nodeId: idSchema,
    /** The version this connection speaks (absent: `protocolVersion`). */
    protocolVersionAgreed: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  lenient,
);

/** The acceptor's answer to a bad Hello, sent just before it closes the connection. */
export const Reject = message(
  'Reject',
  { code: Type.String({ maxLength: 32 }), reason: Type.String({ maxLength: 1024 }) },
  lenient,
);

/** The codec of handshake frames. */
export const handshakeCodec = messageCodec([Hello, Welcome, Reject], {
  messageBytesMax: limits.handshakeBytesMax,
});

/** Any handshake message. */
export type HandshakeMessage = MessageOf<[typeof Hello, typeof Welcome, typeof Reject]>;
/** A Hello message. */
export type HelloMessage = Extract<HandshakeMessage, { type: 'Hello' }>;
/** A Welcome message. */
export type WelcomeMessage = Extract<HandshakeMessage, { type: 'Welcome' }>;
/** A Reject message. */
export type RejectMessage = Extract<HandshakeMessage, { type: 'Reject' }>;
/**
 * Why a handshake was refused; `duplicate` is not an error (see the TCP
 * transport's tie-break). `identity`: the claimed id is not the certificate's,
 * or that identity may not connect here; `tls`: a plaintext dialer reached a
 * node that requires mutual TLS.
 */
export type RejectCodeValue =
  'version' | 'cluster' | 'node' | 'duplicate' | 'protocol' | 'identity' | 'tls';

/** What this node expects of a peer. */
export interface HandshakeIdentity {
  /** The version every peer must share. */
  readonly protocolVersion: number;
  /** The newest version this node speaks (default `protocolVersion`). */
  readonly protocolVersionMax?: number;
  readonly clusterId: ClusterId;
  readonly self: NodeId;
}

/** The outcome of checking a peer's handshake message. */
export type HandshakeVerdict =
  | {
      readonly ok: true;
      readonly peer: NodeId;
      /** The protocol version the connection speaks. */
      readonly version: number;
    }
  | { readonly ok: false; readonly code: RejectCodeValue; readonly reason: string };

function common(
  local: HandshakeIdentity,
  m: { protocolVersion: number; clusterId: string; nodeId: string },
): HandshakeVerdict {
  if (m.protocolVersion !== local.protocolVersion) {
    return {
      ok: false,
      code: 'version',
      reason: `protocol version mismatch: peer ${m.nodeId} speaks ${m.protocolVersion}, this node ${local.protocolVersion}`,
    };
  }
  if (m.clusterId !== local.clusterId) {
    return {
      ok: false,
      code: 'cluster',
      reason: `cluster id mismatch: peer ${m.nodeId} is in ${JSON.stringify(m.clusterId)}, this node in ${JSON.stringify(local.clusterId)}`,
    };
  }
  if (!isValidId(m.nodeId)) {
    return { ok: false, code: 'node', reason: `malformed node id ${JSON.stringify(m.nodeId)}` };
  }
  if (m.nodeId === local.self) {
    return { ok: false, code: 'node', reason: `peer claims this node's own id ${local.self}` };
  }
  return { ok: true, peer: m.nodeId as NodeId, version: m.protocolVersion };
}

/** The newest version `local` speaks. */
function newest(local: HandshakeIdentity): number {
  return Math.max(local.protocolVersion, local.protocolVersionMax ?? local.protocolVersion);
}

/**
 * Checks a dialer's Hello on the accepting side: same protocol version, same
 * cluster, addressed to this node, from a node this one accepts.
 */
export function checkHello(
  local: HandshakeIdentity,
  hello: HelloMessage,
  isKnownPeer: (id: NodeId) => boolean,
): HandshakeVerdict {
  const verdict = common(local, hello);
  if (!verdict.ok) return verdict;
  if (hello.to !== local.self) {
    return {
      ok: false,
      code: 'node',
      reason: `peer ${hello.nodeId} dialed node ${JSON.stringify(hello.to)} but reached ${local.self} (wrong address?)`,
    };
  }
  if (!isKnownPeer(verdict.peer)) {
    return {
      ok: false,
      code: 'node',
      reason: `unknown node ${verdict.peer} is not a peer of ${local.self}`,
    };
  }
  const offered = hello.protocolVersionMax ?? hello.protocolVersion;
  if (offered < hello.protocolVersion) {
    return {
      ok: false,
      code: 'version',
      reason: `peer ${hello.nodeId} offers versions ${hello.protocolVersion} to ${offered}, an empty range`,
    };
  }
  return { ...verdict, version: Math.min(offered, newest(local)) };
}

/** Checks the acceptor's Welcome on the dialing side: the node we meant to reach, same version and cluster. */
export function checkWelcome(
  local: HandshakeIdentity,
  expectedPeer: NodeId,
  welcome: WelcomeMessage,
): HandshakeVerdict {
  const verdict = common(local, welcome);
  if (!verdict.ok) return verdict;
  if (verdict.peer !== expectedPeer) {
    return {
      ok: false,
      code: 'node',
      reason: `dialed ${expectedPeer} but ${verdict.peer} answered (wrong address?)`,
    };
  }
  const agreed = welcome.protocolVersionAgreed ?? welcome.protocolVersion;
  if (agreed < local.protocolVersion || agreed > newest(local)) {
    return {
      ok: false,
      code: 'version',
      reason: `peer ${welcome.nodeId} chose protocol version ${agreed}, outside the offered ${local.protocolVersion} to ${newest(local)}`,
    };
  }
  return { ...verdict, version: agreed };
}
