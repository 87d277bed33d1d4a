/**
 * The data Raft persists and replicates, shared by the pure core
 * (src/raft/core/), durable storage (src/raft/storage/) and the simulator.
 *
 * ```ts
 * const e: Entry = { index: 1 as LogIndex, term: 1 as Term, kind: 'noop', data: new Uint8Array() };
 * ```
 */
import type { LogIndex, NodeId, Term } from '../../lib/ids.js';

/**
 * What an entry carries: a client command (`normal`), the empty entry a new
 * leader appends at the start of its term (`noop`, Raft §8), or a membership
 * change whose `data` encodes a {@link ClusterConfig} (`config`, Raft §6 / §4 of
 * the dissertation).
 */
export type EntryKind = 'normal' | 'noop' | 'config';

/** One log entry (Raft Figure 2: index, term, command). */
export interface Entry {
  readonly index: LogIndex;
  readonly term: Term;
  readonly kind: EntryKind;
  readonly data: Uint8Array;
}

/**
 * Cluster membership. `voters` decide elections and commitment; `learners`
 * receive the log but do not vote. During a joint-consensus change
 * `votersOutgoing` holds the old voter set and both majorities are needed
 * (Raft §6).
 */
export interface ClusterConfig {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  readonly votersOutgoing?: readonly NodeId[];
}

/** State that must survive a crash before any message depending on it is sent (Raft Figure 2, "persistent state"). */
export interface HardState {
  readonly term: Term;
  /** The candidate this node voted for in `term`, or null. */
  readonly vote: NodeId | null;
  /** Highest index known committed (persisting it is an optimisation: it spares re-learning it). */
  readonly commit: LogIndex;
}

/** Describes a snapshot: the last entry it covers and the configuration as of that entry (Raft §7). */
export interface SnapshotMeta {
  readonly index: LogIndex;
  readonly term: Term;
  readonly config: ClusterConfig;
}

/** A state-machine snapshot and its metadata. */
export interface Snapshot {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
}

/**
 * What a node starts from: exactly what durable storage recovered (the shape
 * of `PersistentState` in src/raft/storage/storage.ts, restated here because a
 * core imports only lib/ and its siblings). A brand-new node passes
 * {@link emptyInitialState}.
 */
export interface RaftInitialState {
  readonly hardState: HardState;
  /** The newest snapshot, or null if none was ever saved. */
  readonly snapshot: Snapshot | null;
  /** Entries after the snapshot (or from index 1), contiguous and in order. */
  readonly entries: readonly Entry[];
}

/** The state of a node that has never persisted anything. */
export const emptyInitialState: RaftInitialState = {
  hardState: { term: 0 as Term, vote: null, commit: 0 as LogIndex },
  snapshot: null,
  entries: [],
};
