/**
 * Raft's safety properties (Raft paper Figure 3), checked by the simulator
 * after every event that touches a node, plus the durability rules of the
 * shell. Each check is incremental (it looks only at what just changed), so
 * running them after every event stays cheap.
 *
 * ```ts
 * const inv = new RaftInvariants();
 * inv.observeNode(id, raftNode.inspect());   // after each event
 * inv.onEntries(id, view, write.entries);    // entries handed to storage
 * inv.onApply(id, entry, sm.digest);         // each entry applied
 * inv.onSend(from, msg, disk);               // persist-before-send
 * // a violation throws CheckFailure with a precise message
 * ```
 *
 * Checked:
 * - election safety: at most one leader per term (§5.2);
 * - one vote per node per term (Figure 2 RequestVote; durably, across crashes);
 * - log matching (§5.3): entries with equal index and term have equal data
 *   and equal predecessors' terms (so, inductively, equal prefixes);
 * - leader completeness (§5.4): a leader of term T holds every entry
 *   committed in a term below T;
 * - the commit rule (§5.4.2): a leader advances its commit index only onto
 *   an entry of its own term;
 * - commit safety: an index once committed never holds another entry anywhere;
 * - state machine safety (§5.4.3): every replica that applied index i has the
 *   same digest of entries 1..i (so the same entries, including what snapshots
 *   restored);
 * - commit index never decreases, in memory while a node runs and on disk
 *   across crashes; a restarted node's commit is at least its durable one;
 * - persist before send: a vote, an append acknowledgement or a snapshot
 *   acknowledgement is sent only once what it promises is durable; an entry
 *   is applied only once it is durable locally.
 */
import type { NodeId } from '../../lib/ids.js';
import type { RaftMessage } from '../../raft/core/messages.js';
import type { Entry } from '../../raft/core/types.js';
import type { RaftNodeInspector } from '../../raft/raft-node.js';
import type { PersistentState } from '../../raft/storage/storage.js';
import { CheckFailure } from '../scenario.js';
import type { RaftDisk } from './disk.js';

interface CommittedEntry {
  readonly term: number;
  readonly kind: string;
  readonly data: Uint8Array;
  /** Lowest term any node was in when it saw this index committed (>= the term it was committed in). */
  commitTerm: number;
  readonly node: NodeId;
}

interface AppliedAt {
  readonly digest: number;
  /** Term of the entry applied there (undefined: the index came from a snapshot). */
  readonly term: number | undefined;
  readonly node: NodeId;
}

function what(term: number | undefined): string {
  return term === undefined ? 'a snapshot' : `term ${term}`;
}

/** Which groups of checks run (all by default); tests turn some off to show others still catch a bug. */
export interface InvariantOptions {
  /** Persist-before-send and durable-vote checks. */
  readonly durability?: boolean;
  /** The §5.4.2 rule: a leader commits only entries of its own term by counting. */
  readonly commitRule?: boolean;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameEntry(a: { term: number; kind: string; data: Uint8Array }, b: Entry): boolean {
  return a.term === b.term && a.kind === b.kind && bytesEqual(a.data, b.data);
}

function fail(message: string): never {
  throw new CheckFailure(message);
}

/** The incremental Raft safety checker of one simulated cluster (see the file header). */
export class RaftInvariants {
  private readonly leaders = new Map<number, NodeId>();
  private readonly votes = new Map<string, NodeId>();
  private readonly logIds = new Map<string, { prevTerm: number; entry: Entry; node: NodeId }>();
  private readonly committed = new Map<number, CommittedEntry>();
  private readonly applied = new Map<number, AppliedAt>();
  private readonly commitSeen = new Map<NodeId, number>();
  private readonly leaderTermSeen = new Map<NodeId, number>();
  private readonly durability: boolean;
  private readonly commitRule: boolean;
  /** How many times each check ran (for reports; shows the checks are exercised). */
  readonly counts = {
    nodeChecks: 0,
    leaderCompletenessChecks: 0,
    logEntriesChecked: 0,
    appliedChecked: 0,
    sendsChecked: 0,
  };

  constructor(options: InvariantOptions = {}) {
    this.durability = options.durability ?? true;
    this.commitRule = options.commitRule ?? true;
  }

  /** Highest index known committed anywhere. */
  maxCommitted(): number {
    let m = 0;
    for (const i of this.committed.keys()) if (i > m) m = i;
    return m;
  }

  /** Terms that had a leader, and who. */
  leadersByTerm(): ReadonlyMap<number, NodeId> {
    return this.leaders;
  }

  /** Checks one node after an event (through RaftNode.inspect(), or a core itself). */
  observeNode(id: NodeId, core: RaftNodeInspector): void {
    this.counts.nodeChecks++;
    const s = core.status();
    // Election safety (Raft §5.2, Figure 3): at most one leader per term.
    if (s.role === 'leader') {
      const other = this.leaders.get(s.term);
      if (other === undefined) this.leaders.set(s.term, id);
      else if (other !== id)
        fail(`election safety: two leaders in term ${s.term}: ${other} and ${id}`);
    }
    // Commit index never decreases while the node runs.
    const seen = this.commitSeen.get(id) ?? 0;
    if (s.commit < seen) fail(`commit index of ${id} went back from ${seen} to ${s.commit}`);
    if (s.commit > seen) {
      // Raft §5.4.2: a leader moves its commit index only onto an entry of its own term
      // (older entries are committed indirectly, never by counting their replicas; Figure 8).
      if (this.commitRule && s.role === 'leader' && core.termAt(s.commit) !== s.term) {
        fail(
          `commit rule (§5.4.2): leader ${id} of term ${s.term} committed index ${s.commit} ` +
            `of term ${core.termAt(s.commit)} by counting replicas`,
        );
      }
      this.commitSeen.set(id, s.commit);
      this.recordCommitted(id, core, Math.max(seen + 1, s.firstIndex), s.commit, s.term);
    }
    // Leader completeness (Raft §5.4): checked when a node becomes leader of a term.
    if (s.role === 'leader' && this.leaderTermSeen.get(id) !== s.term) {
      this.leaderTermSeen.set(id, s.term);
      this.checkLeaderCompleteness(id, core, s.term, s.snapshotIndex, s.lastIndex);
    }
  }

  /** A node (re)started from its durable state: its commit must not be below the durable one. */
  onStart(id: NodeId, core: RaftNodeInspector, disk: RaftDisk): void {
    const s = core.status();
    const durableCommit = Math.min(disk.hardState.commit, disk.lastIndex());
    if (s.commit < durableCommit) {
      fail(`${id} restarted with commit ${s.commit} below its durable commit ${durableCommit}`);
    }
    this.commitSeen.set(id, 0);
    this.leaderTermSeen.delete(id);
    this.observeNode(id, core);
  }

  /** Log matching (Raft §5.3) on entries a node hands to its storage (before they are written). */
  onEntries(id: NodeId, core: RaftNodeInspector, entries: readonly Entry[]): void {
    let prevTerm: number | undefined;
    for (let k = 0; k < entries.length; k++) {
      const e = entries[k] as Entry;
      prevTerm = k === 0 ? core.termAt(e.index - 1) : (entries[k - 1] as Entry).term;
      this.counts.logEntriesChecked++;
      const key = `${e.index}:${e.term}`;
      const known = this.logIds.get(key);
      if (known === undefined) {
        if (prevTerm !== undefined) this.logIds.set(key, { prevTerm, entry: e, node: id });
        continue;
      }
      if (!sameEntry(known.entry, e)) {
        fail(
          `log matching: entry ${e.index} of term ${e.term} differs between ${known.node} and ${id}`,
        );
      }
      if (prevTerm !== undefined && prevTerm !== known.prevTerm) {
        fail(
          `log matching: entry ${e.index} of term ${e.term} follows term ${known.prevTerm} on ` +
            `${known.node} but term ${prevTerm} on ${id}`,
        );
      }
    }
    // A node never overwrites an index it knows committed with another entry. (A node that does
    // not know yet, e.g. a deposed leader, may hold other entries there until it is repaired.)
    const known = this.commitSeen.get(id) ?? 0;
    for (const e of entries) {
      if (e.index > known) break;
      const c = this.committed.get(e.index);
      if (c !== undefined && !sameEntry(c, e)) {
        fail(
          `commit safety: ${id} writes entry ${e.index} of term ${e.term} over its committed ` +
            `entry of term ${c.term} (committed as seen on ${c.node})`,
        );
      }
    }
  }

  /** State machine safety (Raft §5.4.3): the digest of entries 1..index agrees on every replica. */
  onApply(id: NodeId, e: Entry, digest: number, disk?: RaftDisk): void {
    this.counts.appliedChecked++;
    // The Ready contract: committed entries handed to the state machine are durable locally.
    if (this.durability && disk !== undefined) {
      const snap = disk.durable.snapshot?.meta.index ?? 0;
      if (e.index > snap && disk.termAt(e.index) !== e.term) {
        fail(`${id} applies entry ${e.index} of term ${e.term} before it is durable on its disk`);
      }
    }
    const c = this.committed.get(e.index);
    if (c !== undefined && !sameEntry(c, e)) {
      fail(
        `state machine safety: ${id} applies entry ${e.index} of term ${e.term}, but the ` +
          `committed entry there has term ${c.term} (seen on ${c.node})`,
      );
    }
    this.checkDigest(id, e.index, e.term, digest);
  }

  /** A snapshot holding entries up to `index` (digest `digest`) was restored into a replica's state machine. */
  onRestore(id: NodeId, index: number, digest: number): void {
    this.checkDigest(id, index, undefined, digest);
  }

  /** The durable state of `id` changed (a sync, or a crash that kept unsynced writes). */
  onDurable(id: NodeId, before: PersistentState, after: PersistentState): void {
    const b = before.hardState;
    const a = after.hardState;
    if (a.commit < b.commit)
      fail(`durable commit of ${id} went back from ${b.commit} to ${a.commit}`);
    if (a.term < b.term) fail(`durable term of ${id} went back from ${b.term} to ${a.term}`);
    if (this.durability && a.term === b.term && b.vote !== null && a.vote !== b.vote) {
      fail(`durable vote of ${id} in term ${a.term} changed from ${b.vote} to ${a.vote}`);
    }
  }

  /** A message leaves `from`: votes are unique per term, and what it promises is durable. */
  onSend(from: NodeId, m: RaftMessage, disk: RaftDisk): void {
    this.counts.sendsChecked++;
    switch (m.type) {
      case 'RequestVoteResponse': {
        if (!m.granted) return;
        // Raft Figure 2: at most one vote per term.
        const key = `${from}:${m.term}`;
        const before = this.votes.get(key);
        if (before !== undefined && before !== m.to) {
          fail(`${from} voted for both ${before} and ${m.to} in term ${m.term}`);
        }
        this.votes.set(key, m.to);
        if (!this.durability) return;
        // Durable: this vote, or a later term (which makes a vote in m.term impossible after a crash).
        const h = disk.hardState;
        if (h.term < m.term || (h.term === m.term && h.vote !== m.to)) {
          fail(
            `persist before send: ${from} grants its vote to ${m.to} in term ${m.term} but its ` +
              `durable hard state is term ${h.term} vote ${h.vote}`,
          );
        }
        return;
      }
      case 'AppendEntriesResponse': {
        if (!m.success || !this.durability) return;
        if (disk.lastIndex() < m.matchIndex) {
          fail(
            `persist before send: ${from} acknowledges index ${m.matchIndex} but has only ` +
              `${disk.lastIndex()} on disk`,
          );
        }
        return;
      }
      case 'InstallSnapshotResponse': {
        if (!m.done || !this.durability) return;
        if (disk.lastIndex() < m.snapshotIndex) {
          fail(
            `persist before send: ${from} acknowledges snapshot ${m.snapshotIndex} but has only ` +
              `${disk.lastIndex()} on disk`,
          );
        }
        return;
      }
      case 'AppendEntries':
      case 'Heartbeat':
      case 'HeartbeatResponse':
      case 'InstallSnapshot':
      case 'PreVote':
      case 'PreVoteResponse':
      case 'RequestVote':
      case 'TimeoutNow':
        return;
    }
  }

  private checkDigest(id: NodeId, index: number, term: number | undefined, digest: number): void {
    const known = this.applied.get(index);
    if (known === undefined) {
      this.applied.set(index, { digest, term, node: id });
      return;
    }
    if (known.digest !== digest) {
      fail(
        `state machine safety: replicas differ after index ${index}: ${known.node} applied ` +
          `${what(known.term)} there, ${id} ${what(term)} (digests ${known.digest} vs ${digest})`,
      );
    }
  }

  private recordCommitted(
    id: NodeId,
    core: RaftNodeInspector,
    lo: number,
    hi: number,
    term: number,
  ): void {
    if (lo > hi) return;
    for (const e of core.entries(lo, hi)) {
      const c = this.committed.get(e.index);
      if (c === undefined) {
        this.committed.set(e.index, {
          term: e.term,
          kind: e.kind,
          data: e.data,
          commitTerm: term,
          node: id,
        });
        continue;
      }
      if (!sameEntry(c, e)) {
        fail(
          `commit safety: index ${e.index} committed with term ${c.term} on ${c.node} and ` +
            `term ${e.term} on ${id}`,
        );
      }
      if (term < c.commitTerm) c.commitTerm = term;
    }
  }

  private checkLeaderCompleteness(
    id: NodeId,
    core: RaftNodeInspector,
    term: number,
    snapshotIndex: number,
    lastIndex: number,
  ): void {
    this.counts.leaderCompletenessChecks++;
    for (const [index, c] of this.committed) {
      if (c.commitTerm >= term || index <= snapshotIndex) continue;
      const t = index <= lastIndex ? core.termAt(index) : undefined;
      if (t !== c.term) {
        fail(
          `leader completeness: ${id} leads term ${term} without entry ${index} (term ${c.term}), ` +
            `committed by term ${c.commitTerm} as seen on ${c.node}; it holds ` +
            (t === undefined ? 'nothing there' : `term ${t} there`),
        );
      }
    }
  }
}
