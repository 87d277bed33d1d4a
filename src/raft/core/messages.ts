/**
 * The messages Raft peers exchange, as a discriminated union on `type`.
 * Every message is plain data (strings, numbers, booleans, arrays, objects and
 * `Uint8Array`), so it encodes with msgpackr unchanged; no field is optional or
 * `undefined` (absent values are `0` or `null`).
 *
 * ```ts
 * const m: RaftMessage = {
 *   type: 'Heartbeat', from: nodeId('n1'), to: nodeId('n2'), term: 3 as Term,
 *   commit: 7 as LogIndex, seq: 12,
 * };
 * validateMessage(decoded);   // throws SCHEMA_VIOLATION on a malformed one
 * core.step(m);
 * ```
 *
 * Sources: Raft paper (Ongaro & Ousterhout 2014) Figure 2 for RequestVote,
 * AppendEntries and InstallSnapshot; Ongaro's dissertation §9.6 for PreVote and
 * §3.10 for TimeoutNow; §6.4 for heartbeats that confirm leadership (ReadIndex).
 */
import { CohortError } from '../../lib/errors.js';
import type { LogIndex, NodeId, Term } from '../../lib/ids.js';
import { limits } from '../../lib/limits.js';
import { decodeConfig } from './config.js';
import type { Entry, SnapshotMeta } from './types.js';

/** Fields every message carries (Raft §5.1: each RPC carries the sender's term). */
export interface MessageBase {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: Term;
}

/**
 * Raft §5.2 / Figure 2: a candidate asks for a vote. `transfer` is set when the
 * election was started by a TimeoutNow (leadership transfer), which lets it
 * bypass leader stickiness (dissertation §4.2.3 / §3.10).
 */
export interface RequestVote extends MessageBase {
  readonly type: 'RequestVote';
  readonly lastLogIndex: LogIndex;
  readonly lastLogTerm: Term;
  readonly transfer: boolean;
}

/** The answer to {@link RequestVote}; `term` is the voter's current term. */
export interface RequestVoteResponse extends MessageBase {
  readonly type: 'RequestVoteResponse';
  readonly granted: boolean;
}

/**
 * Dissertation §9.6: a pre-candidate asks whether it *could* win an election
 * at `term` (its current term + 1) without changing anyone's term. Receivers
 * do not update their term from it.
 */
export interface PreVote extends MessageBase {
  readonly type: 'PreVote';
  readonly lastLogIndex: LogIndex;
  readonly lastLogTerm: Term;
}

/** The answer to {@link PreVote}: a grant echoes the asked `term`; a refusal carries the voter's term. */
export interface PreVoteResponse extends MessageBase {
  readonly type: 'PreVoteResponse';
  readonly granted: boolean;
}

/** Raft §5.3 / Figure 2: replicate entries after (`prevLogIndex`, `prevLogTerm`) and say how far is committed. */
export interface AppendEntries extends MessageBase {
  readonly type: 'AppendEntries';
  readonly prevLogIndex: LogIndex;
  readonly prevLogTerm: Term;
  readonly entries: readonly Entry[];
  readonly leaderCommit: LogIndex;
}

/**
 * The answer to {@link AppendEntries}. On success `matchIndex` is the last
 * index now known to match the leader. On failure the fast-backtracking hints
 * of Raft §5.3 (the paragraph after Figure 7) tell the leader where to retry:
 * `conflictTerm` is the follower's term at `rejectedIndex` (0 if it has no
 * entry there) and `conflictIndex` the first index the follower holds for that
 * term (or its last index + 1). `rejectedIndex` echoes the request's
 * `prevLogIndex` so the leader can ignore stale rejections.
 */
export interface AppendEntriesResponse extends MessageBase {
  readonly type: 'AppendEntriesResponse';
  readonly success: boolean;
  readonly matchIndex: LogIndex;
  readonly rejectedIndex: LogIndex;
  readonly conflictIndex: LogIndex;
  readonly conflictTerm: Term;
}

/**
 * Leader liveness and commit propagation without entries. `commit` is capped by
 * what the follower is known to hold. `seq` numbers heartbeat rounds so a
 * ReadIndex request can wait for a quorum to acknowledge a round sent after it
 * (dissertation §6.4).
 */
export interface Heartbeat extends MessageBase {
  readonly type: 'Heartbeat';
  readonly commit: LogIndex;
  readonly seq: number;
}

/** The answer to {@link Heartbeat}, echoing its `seq`. */
export interface HeartbeatResponse extends MessageBase {
  readonly type: 'HeartbeatResponse';
  readonly seq: number;
}

/**
 * Raft §7 / Figure 13: one chunk of a snapshot, starting at byte `offset`;
 * `done` marks the last chunk. `totalBytes` is the snapshot's size.
 */
export interface InstallSnapshot extends MessageBase {
  readonly type: 'InstallSnapshot';
  readonly meta: SnapshotMeta;
  readonly offset: number;
  readonly data: Uint8Array;
  readonly done: boolean;
  readonly totalBytes: number;
}

/**
 * The answer to {@link InstallSnapshot}. `nextOffset` is the byte the follower
 * expects next for snapshot `snapshotIndex` (the leader resends from there);
 * `done` reports that the follower now holds everything up to `snapshotIndex`.
 */
export interface InstallSnapshotResponse extends MessageBase {
  readonly type: 'InstallSnapshotResponse';
  readonly snapshotIndex: LogIndex;
  readonly nextOffset: number;
  readonly done: boolean;
}

/** Dissertation §3.10: the leader tells an up-to-date follower to start an election now (leadership transfer). */
export interface TimeoutNow extends MessageBase {
  readonly type: 'TimeoutNow';
}

/** Every message of the Raft protocol. */
export type RaftMessage =
  | RequestVote
  | RequestVoteResponse
  | PreVote
  | PreVoteResponse
  | AppendEntries
  | AppendEntriesResponse
  | Heartbeat
  | HeartbeatResponse
  | InstallSnapshot
  | InstallSnapshotResponse
  | TimeoutNow;

/** The `type` tags of {@link RaftMessage}. */
export type RaftMessageType = RaftMessage['type'];

/** All message types, for decoders and tests. */
export const raftMessageTypes: readonly RaftMessageType[] = [
  'RequestVote',
  'RequestVoteResponse',
  'PreVote',
  'PreVoteResponse',
  'AppendEntries',
  'AppendEntriesResponse',
  'Heartbeat',
  'HeartbeatResponse',
  'InstallSnapshot',
  'InstallSnapshotResponse',
  'TimeoutNow',
];

// ---------------------------------------------------------------------------
// Validation of messages received from the network.

function bad(message: string, details: Record<string, unknown> = {}): never {
  throw new CohortError('SCHEMA_VIOLATION', `raft message: ${message}`, { details });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function nat(o: Record<string, unknown>, key: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    bad(`${key} must be a non-negative safe integer`, { field: key });
  }
  return v;
}

/** A term: a natural number up to limits.raftTermMax (term + 1 must stay exact). */
function term(o: Record<string, unknown>, key: string): number {
  const v = nat(o, key);
  if (v > limits.raftTermMax) {
    bad(`${key} ${v} is above raftTermMax ${limits.raftTermMax}`, { field: key });
  }
  return v;
}

/** A log index: a natural number up to limits.raftIndexMax. */
function index(o: Record<string, unknown>, key: string): number {
  const v = nat(o, key);
  if (v > limits.raftIndexMax) {
    bad(`${key} ${v} is above raftIndexMax ${limits.raftIndexMax}`, { field: key });
  }
  return v;
}

function bool(o: Record<string, unknown>, key: string): void {
  if (typeof o[key] !== 'boolean') bad(`${key} must be a boolean`, { field: key });
}

function id(o: Record<string, unknown>, key: string): void {
  const v = o[key];
  if (typeof v !== 'string' || v.length === 0 || v.length > 64) {
    bad(`${key} must be a node id`, { field: key });
  }
}

function idList(v: unknown, key: string): void {
  if (!Array.isArray(v)) bad(`${key} must be an array`, { field: key });
  for (const x of v as unknown[]) {
    if (typeof x !== 'string' || x.length === 0 || x.length > 64) {
      bad(`${key} must hold node ids`, { field: key });
    }
  }
}

function checkMeta(v: unknown): void {
  if (!isRecord(v)) bad('meta must be an object');
  index(v, 'index');
  term(v, 'term');
  const c = v['config'];
  if (!isRecord(c)) bad('meta.config must be an object');
  idList(c['voters'], 'meta.config.voters');
  idList(c['learners'], 'meta.config.learners');
  if (c['votersOutgoing'] !== undefined) idList(c['votersOutgoing'], 'meta.config.votersOutgoing');
}

const entryKinds = new Set(['normal', 'noop', 'config']);

function checkEntries(o: Record<string, unknown>, prevIndex: number, messageTerm: number): void {
  const es = o['entries'];
  if (!Array.isArray(es)) bad('entries must be an array');
  let expect = prevIndex + 1;
  let lastTerm = 0;
  for (const e of es as unknown[]) {
    if (!isRecord(e)) bad('entry must be an object');
    const i = index(e, 'index');
    const t = term(e, 'term');
    if (i !== expect) bad('entries must be contiguous after prevLogIndex', { index: i, expect });
    if (t > messageTerm || t < lastTerm || t === 0) {
      bad('entry terms must be positive, ascending and not above the message term', { index: i });
    }
    if (typeof e['kind'] !== 'string' || !entryKinds.has(e['kind'])) bad('bad entry kind');
    if (!(e['data'] instanceof Uint8Array)) bad('entry data must be bytes');
    if (e['kind'] === 'config') decodeConfig(e['data']);
    lastTerm = t;
    expect++;
  }
}

/**
 * Checks that `m` is a well-formed {@link RaftMessage} (types, non-negative
 * integers, terms up to `limits.raftTermMax` and indexes up to
 * `limits.raftIndexMax`, contiguous entries, entry terms not above the
 * message's term). Throws a
 * `SCHEMA_VIOLATION` {@link CohortError} otherwise; it never changes anything.
 * The core calls it on every message it steps, so a malformed message from the
 * network can never break an invariant.
 */
export function validateMessage(m: unknown): asserts m is RaftMessage {
  if (!isRecord(m)) bad('not an object');
  id(m, 'from');
  id(m, 'to');
  const messageTerm = term(m, 'term');
  const type = m['type'];
  switch (type) {
    case 'RequestVote':
    case 'PreVote':
      index(m, 'lastLogIndex');
      term(m, 'lastLogTerm');
      if (type === 'RequestVote') bool(m, 'transfer');
      return;
    case 'RequestVoteResponse':
    case 'PreVoteResponse':
      bool(m, 'granted');
      return;
    case 'AppendEntries': {
      const prev = index(m, 'prevLogIndex');
      term(m, 'prevLogTerm');
      index(m, 'leaderCommit');
      checkEntries(m, prev, messageTerm);
      return;
    }
    case 'AppendEntriesResponse':
      bool(m, 'success');
      index(m, 'matchIndex');
      index(m, 'rejectedIndex');
      index(m, 'conflictIndex');
      term(m, 'conflictTerm');
      return;
    case 'Heartbeat':
      index(m, 'commit');
      nat(m, 'seq');
      return;
    case 'HeartbeatResponse':
      nat(m, 'seq');
      return;
    case 'InstallSnapshot': {
      checkMeta(m['meta']);
      const offset = nat(m, 'offset');
      const total = nat(m, 'totalBytes');
      bool(m, 'done');
      const data = m['data'];
      if (!(data instanceof Uint8Array)) bad('snapshot chunk data must be bytes');
      if (data.length > limits.snapshotChunkBytesMax)
        bad('snapshot chunk above snapshotChunkBytesMax');
      if (offset + data.length > total) bad('snapshot chunk beyond totalBytes');
      if (m['done'] === true && offset + data.length !== total) {
        bad('last snapshot chunk must end at totalBytes');
      }
      return;
    }
    case 'InstallSnapshotResponse':
      index(m, 'snapshotIndex');
      nat(m, 'nextOffset');
      bool(m, 'done');
      return;
    case 'TimeoutNow':
      return;
    default:
      throw new CohortError('UNKNOWN_MESSAGE', `unknown raft message type ${String(type)}`);
  }
}
