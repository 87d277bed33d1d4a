/**
 * The vocabulary of {@link RaftCore}'s API: the {@link Ready} batch it hands
 * the shell, the results of its requests, and the {@link RaftStatus} it
 * reports. raft-core.ts re-exports all of it; the contract itself ("The
 * Ready contract") is described in raft-core.ts's file header.
 *
 * ```ts
 * const r: ProposeResult = core.propose(bytes);
 * if (r.kind === 'rejected' && r.reason === 'NOT_LEADER') retryAt(r.leaderHint);
 * ```
 */
import type { LogIndex, NodeId, Term } from '../../lib/ids.js';
import type { RaftMessage } from './messages.js';
import type { ProgressState } from './progress.js';
import type { ClusterConfig, Entry, HardState, Snapshot } from './types.js';

/** A node's role (Raft §5.1, plus the pre-candidate of dissertation §9.6). */
export type RaftRole = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/** Volatile state worth reporting when it changes. */
export interface SoftState {
  readonly role: RaftRole;
  readonly leader: NodeId | null;
}

/** Context a caller attaches to a read to recognise its {@link ReadState}. */
export type ReadContext = string | number;

/** The outcome of a ReadIndex request (dissertation §6.4). */
export type ReadState =
  | { readonly ctx: ReadContext; readonly ok: true; readonly index: LogIndex }
  | { readonly ctx: ReadContext; readonly ok: false; readonly leaderHint: NodeId | null };

/** A snapshot to persist; `restore` says whether the state machine must load it (it came from the leader). */
export interface ReadySnapshot {
  readonly snapshot: Snapshot;
  readonly restore: boolean;
}

/** One batch of work for the shell; see "The Ready contract" in raft-core.ts's file header. */
export interface Ready {
  readonly softState?: SoftState;
  readonly hardState?: HardState;
  readonly snapshot?: ReadySnapshot;
  readonly entries: readonly Entry[];
  readonly messages: readonly RaftMessage[];
  readonly committedEntries: readonly Entry[];
  readonly readStates: readonly ReadState[];
}

/** Why a request was refused. */
export type RejectReason =
  | 'NOT_LEADER'
  | 'TRANSFERRING'
  | 'OVERLOADED'
  | 'CONFIG_CHANGE_PENDING'
  | 'INVALID_CHANGE'
  | 'LEARNER_NOT_CAUGHT_UP';

/** A refusal, with the leader this node knows of (null if none). */
export interface Rejected {
  readonly kind: 'rejected';
  readonly reason: RejectReason;
  readonly leaderHint: NodeId | null;
}

/** Result of {@link RaftCore.propose} and {@link RaftCore.proposeConfigChange}. */
export type ProposeResult =
  { readonly kind: 'accepted'; readonly index: LogIndex; readonly term: Term } | Rejected;

/** Result of requests answered later through Ready ({@link RaftCore.readIndex}, {@link RaftCore.transferLeadership}). */
export type RequestResult = { readonly kind: 'accepted' } | Rejected;

/** A single-server membership change (dissertation §4.1). */
export type ConfigChange =
  | { readonly type: 'addLearner'; readonly node: NodeId }
  | { readonly type: 'promoteLearner'; readonly node: NodeId }
  | { readonly type: 'removeNode'; readonly node: NodeId };

/** One follower's replication state as the leader sees it. */
export interface PeerStatus {
  readonly match: LogIndex;
  readonly next: LogIndex;
  readonly state: ProgressState;
  readonly recentActive: boolean;
}

/** A read-only summary of a node, for tests, the simulator's checkers and dashboards. */
export interface RaftStatus {
  readonly id: NodeId;
  readonly role: RaftRole;
  readonly term: Term;
  readonly vote: NodeId | null;
  readonly leader: NodeId | null;
  readonly commit: LogIndex;
  readonly applied: LogIndex;
  readonly firstIndex: LogIndex;
  readonly lastIndex: LogIndex;
  readonly lastTerm: Term;
  readonly snapshotIndex: LogIndex;
  readonly config: ClusterConfig;
  readonly leadTransferee: NodeId | null;
  /** Leader only: every other member's progress (recentActive: heard from within an election timeout). */
  readonly progress: ReadonlyMap<NodeId, PeerStatus>;
}
