/**
 * The failure detector's messages and their validation. Every message a
 * detector receives goes through {@link validateSwimMessage} before it can
 * change anything; a malformed one is refused whole (the core reports the
 * reason and changes nothing).
 *
 * ```ts
 * const checked = validateSwimMessage(decoded);
 * if (typeof checked === 'string') log.warn({ reason: checked }, 'bad detector message');
 * else core.step(from, checked);
 * ```
 *
 * Vocabulary from SWIM (Das, Gupta, Motivala 2002): `ping`, `ack`, `ping-req`
 * (§3.1), membership updates `alive`, `suspect`, `confirm` (here `failed`)
 * piggybacked on them (§4.3), and `join`/`leave`.
 */
import { isValidId } from '../../lib/ids.js';
import { limits } from '../../lib/limits.js';

/** What a member is, as one detector believes. */
export type MemberState = 'alive' | 'suspect' | 'failed' | 'left';

/**
 * A membership update, disseminated by piggybacking (SWIM §4.3). `alive` at a
 * higher incarnation refutes a suspicion; `failed` is SWIM's `confirm`.
 */
export interface Update {
  readonly kind: MemberState;
  readonly member: string;
  readonly incarnation: number;
  readonly address: string;
}

/** A direct probe (SWIM §3.1). `target` names who it is for (a stale address may reach another node). */
export interface PingMessage {
  readonly type: 'ping';
  readonly seq: number;
  readonly target: string;
  readonly updates: readonly Update[];
}

/** The answer to a ping, direct or relayed; `target` is the member that answered the ping. */
export interface AckMessage {
  readonly type: 'ack';
  readonly seq: number;
  readonly target: string;
  readonly updates: readonly Update[];
}

/** Asks the receiver to probe `target` on the sender's behalf (SWIM §3.1, indirect probing). */
export interface PingReqMessage {
  readonly type: 'ping-req';
  readonly seq: number;
  readonly target: string;
  readonly address: string;
  readonly updates: readonly Update[];
}

/** A member asks a seed to let it in; it says its incarnation and address. */
export interface JoinMessage {
  readonly type: 'join';
  readonly incarnation: number;
  readonly address: string;
}

/** A seed's answer to a join: the members it knows (bounded), as updates. */
export interface JoinAckMessage {
  readonly type: 'join-ack';
  readonly members: readonly Update[];
}

/** Updates alone (a leaving member's farewell). */
export interface GossipMessage {
  readonly type: 'gossip';
  readonly updates: readonly Update[];
}

/** Every message a detector sends or receives. */
export type SwimMessage =
  PingMessage | AckMessage | PingReqMessage | JoinMessage | JoinAckMessage | GossipMessage;

const kinds: ReadonlySet<string> = new Set(['alive', 'suspect', 'failed', 'left']);

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function isSeq(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

function isIncarnation(x: unknown): x is number {
  return (
    typeof x === 'number' && Number.isSafeInteger(x) && x >= 0 && x <= limits.swimIncarnationMax
  );
}

function isAddress(x: unknown): x is string {
  return typeof x === 'string' && x.length <= limits.swimAddressCharsMax;
}

function checkUpdates(x: unknown, max: number): string | undefined {
  if (!Array.isArray(x)) return 'updates is not an array';
  if (x.length > max) return `more than ${max} updates`;
  for (const u of x as unknown[]) {
    if (!isRecord(u)) return 'an update is not an object';
    if (typeof u.kind !== 'string' || !kinds.has(u.kind)) return 'an update has a bad kind';
    if (!isValidId(u.member)) return 'an update names a bad member id';
    if (!isIncarnation(u.incarnation)) return 'an update has a bad incarnation';
    if (!isAddress(u.address)) return 'an update has a bad address';
  }
  return undefined;
}

/**
 * Checks an untrusted value (decoded from the wire) against {@link SwimMessage}
 * and every bound of lib/limits.ts. Returns the message, or the reason it is
 * refused.
 */
export function validateSwimMessage(x: unknown): SwimMessage | string {
  if (!isRecord(x)) return 'not an object';
  switch (x.type) {
    case 'ping':
    case 'ack': {
      if (!isSeq(x.seq)) return 'bad seq';
      if (!isValidId(x.target)) return 'bad target';
      const bad = checkUpdates(x.updates, limits.swimPiggybackUpdatesMax);
      if (bad !== undefined) return bad;
      break;
    }
    case 'ping-req': {
      if (!isSeq(x.seq)) return 'bad seq';
      if (!isValidId(x.target)) return 'bad target';
      if (!isAddress(x.address)) return 'bad address';
      const bad = checkUpdates(x.updates, limits.swimPiggybackUpdatesMax);
      if (bad !== undefined) return bad;
      break;
    }
    case 'join':
      if (!isIncarnation(x.incarnation)) return 'bad incarnation';
      if (!isAddress(x.address)) return 'bad address';
      break;
    case 'join-ack': {
      const bad = checkUpdates(x.members, limits.swimJoinMembersMax);
      if (bad !== undefined) return bad;
      break;
    }
    case 'gossip': {
      const bad = checkUpdates(x.updates, limits.swimPiggybackUpdatesMax);
      if (bad !== undefined) return bad;
      break;
    }
    default:
      return 'unknown message type';
  }
  return x as unknown as SwimMessage;
}
