/**
 * What a shell may tune in a {@link RaftCore}: {@link RaftOptions}, the
 * test-only {@link RaftBugs}, and {@link resolveOptions}, which validates them
 * (INVALID_ARGUMENT on a bad value) and fills in the defaults from
 * src/lib/limits.ts.
 *
 * ```ts
 * const opts = resolveOptions({ id: nodeId('n1'), random: rng.fork('raft:n1'), electionTicks: 10 });
 * opts.heartbeatTicks;   // 1 (the default)
 * ```
 *
 * Raft §5.2 (election timeouts), §9.6 and §6.2 of the dissertation (pre-vote,
 * check-quorum), §6.4 (lease reads).
 */
import { CohortError } from '../../lib/errors.js';
import type { LogIndex, NodeId } from '../../lib/ids.js';
import { limits } from '../../lib/limits.js';
import type { Random } from '../../lib/random.js';

/**
 * TEST-ONLY deliberate bugs. Every switch defaults to off and must never be
 * set outside tests: the simulator turns one on to prove that its checkers
 * catch the violation it causes. With any switch on, the core also tolerates
 * states its assertions would otherwise reject (e.g. overwriting a committed
 * entry) and peers' messages that only a broken cluster sends (e.g. an
 * acknowledgement of entries the leader never had), so that the simulator's
 * checkers, not an assertion, see the damage.
 */
export interface RaftBugs {
  /** Breaks Raft §5.4.2 (Figure 8): commit an entry of an older term by counting replicas. */
  readonly countOldTermEntriesForCommit?: boolean;
  /** Breaks Raft Figure 2 persistence: the vote is left out of the persisted HardState, so a restarted node can vote twice in a term. */
  readonly forgetToPersistVote?: boolean;
  /** Breaks Raft §5.4.1: grant votes without checking that the candidate's log is up to date. */
  readonly skipElectionRestriction?: boolean;
  /** Breaks Raft §5.3: accept AppendEntries without checking the term at prevLogIndex. */
  readonly skipLogConsistencyCheck?: boolean;
  /** Breaks dissertation §6.4: answer ReadIndex at once, without confirming leadership (a deposed leader serves stale reads). */
  readonly skipReadConfirmation?: boolean;
}

/** Configuration of one {@link RaftCore}. */
export interface RaftOptions {
  /** This node's id. */
  readonly id: NodeId;
  /** Injected randomness (election timeouts). Fork one per node. */
  readonly random: Random;
  /** Base election timeout in ticks; the actual one is drawn from [electionTicks+1, 2·electionTicks] (Raft §5.2; one tick past the lease). Default 10. */
  readonly electionTicks?: number;
  /** Ticks between leader heartbeats; must be below electionTicks. Default 1. */
  readonly heartbeatTicks?: number;
  /** Pre-vote phase before each election (dissertation §9.6). Default true. */
  readonly preVote?: boolean;
  /** Leader steps down if it has not heard from a quorum within an election timeout (dissertation §6.2). Default true. */
  readonly checkQuorum?: boolean;
  /** Clock-dependent lease reads (see raft-core.ts's file header). Requires checkQuorum. Default false. */
  readonly leaseReads?: boolean;
  /** Safety margin of lease reads, in ticks (clock drift allowance). Default 2. */
  readonly leaseMarginTicks?: number;
  /** Unacknowledged AppendEntries per follower in replicate mode. */
  readonly maxInflightAppends?: number;
  /** Entries per AppendEntries. */
  readonly maxAppendEntries?: number;
  /** Soft cap on entry bytes per AppendEntries (at least one entry is always sent). */
  readonly maxAppendBytes?: number;
  /** Uncommitted entries a leader accepts before answering OVERLOADED. */
  readonly maxUncommittedEntries?: number;
  /** Bytes per InstallSnapshot chunk. */
  readonly snapshotChunkBytes?: number;
  /** Index the state machine has already applied at start (default: the snapshot's index). */
  readonly applied?: LogIndex;
  /** TEST-ONLY deliberate bugs; see {@link RaftBugs}. */
  readonly bugs?: RaftBugs;
}

/** {@link RaftOptions} checked and with every default filled in: what the core runs with. */
export interface ResolvedOptions {
  readonly id: NodeId;
  readonly random: Random;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly leaseReads: boolean;
  readonly leaseMarginTicks: number;
  readonly maxInflight: number;
  readonly maxAppendEntries: number;
  readonly maxAppendBytes: number;
  readonly maxUncommitted: number;
  readonly chunkBytes: number;
  readonly bugs: RaftBugs;
  /** True if any bug switch is on (the core then relaxes the checks named in {@link RaftBugs}). */
  readonly anyBug: boolean;
}

function positiveInt(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new CohortError('INVALID_ARGUMENT', `raft option ${name} must be a positive integer`, {
      details: { field: name, value },
    });
  }
  return value;
}

/** Validates `options` and fills in the defaults; throws INVALID_ARGUMENT naming the bad option. */
export function resolveOptions(options: RaftOptions): ResolvedOptions {
  const electionTicks = positiveInt('electionTicks', options.electionTicks ?? 10);
  const heartbeatTicks = positiveInt('heartbeatTicks', options.heartbeatTicks ?? 1);
  if (heartbeatTicks >= electionTicks) {
    throw new CohortError('INVALID_ARGUMENT', 'raft heartbeatTicks must be below electionTicks', {
      details: { heartbeatTicks, electionTicks },
    });
  }
  const preVote = options.preVote ?? true;
  const checkQuorum = options.checkQuorum ?? true;
  const leaseReads = options.leaseReads ?? false;
  const leaseMarginTicks = options.leaseMarginTicks ?? 2;
  if (leaseReads && !checkQuorum) {
    throw new CohortError('INVALID_ARGUMENT', 'raft leaseReads requires checkQuorum');
  }
  if (leaseReads && leaseMarginTicks >= electionTicks) {
    throw new CohortError('INVALID_ARGUMENT', 'raft leaseMarginTicks must be below electionTicks');
  }
  const maxInflight = positiveInt(
    'maxInflightAppends',
    options.maxInflightAppends ?? limits.raftInflightAppendsMax,
  );
  const maxAppendEntries = positiveInt(
    'maxAppendEntries',
    options.maxAppendEntries ?? limits.raftAppendEntriesMax,
  );
  const maxAppendBytes = positiveInt(
    'maxAppendBytes',
    options.maxAppendBytes ?? limits.raftAppendBytesMax,
  );
  const maxUncommitted = positiveInt(
    'maxUncommittedEntries',
    options.maxUncommittedEntries ?? limits.raftUncommittedEntriesMax,
  );
  const chunkBytes = positiveInt(
    'snapshotChunkBytes',
    options.snapshotChunkBytes ?? limits.snapshotChunkBytesMax,
  );
  if (chunkBytes > limits.snapshotChunkBytesMax) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      'raft snapshotChunkBytes above snapshotChunkBytesMax',
    );
  }
  const bugs = options.bugs ?? {};
  return {
    id: options.id,
    random: options.random,
    electionTicks,
    heartbeatTicks,
    preVote,
    checkQuorum,
    leaseReads,
    leaseMarginTicks,
    maxInflight,
    maxAppendEntries,
    maxAppendBytes,
    maxUncommitted,
    chunkBytes,
    bugs,
    anyBug: Object.values(bugs).some((v) => v === true),
  };
}
