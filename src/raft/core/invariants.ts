/**
 * The invariants a {@link RaftCore} asserts at its boundaries: after every
 * input (`tick`, `step`, `propose`, …) and every `advance()`, plus the
 * postconditions of `ready()` ({@link checkReady}). They are the single-node
 * halves of what the simulator's checker (src/sim/raft/invariants.ts) verifies
 * across a cluster, checked where the violation happens instead of after the
 * fact:
 *
 * - the term never decreases, and the vote of a term never changes once cast
 *   (Raft Figure 2: currentTerm, votedFor; one vote per term, §5.2);
 * - the commit index never decreases and never passes the last index; what
 *   is applied never passes what is committed and persisted, and never goes
 *   back (Raft Figure 2: lastApplied ≤ commitIndex);
 * - a leader's log is append-only within its term: its last entry is of its
 *   term and an entry it held at the last boundary is still there (Raft §5.3,
 *   Leader Append-Only, Figure 3); it moves its commit index only onto an entry
 *   of its own term (§5.4.2);
 * - roles agree with the rest of the state: a leader leads itself, a candidate
 *   or leader voted for itself, a non-leader keeps no follower progress.
 *
 * Elsewhere, at the transition itself: Progress keeps match < next
 * (progress.ts), a leader never records a match beyond its log (replication.ts
 * refuses such an answer first), a proposed configuration is well formed and
 * changes one node (confchange.ts), the log never truncates a committed entry
 * and never commits past its end (log.ts), and the injected Random draws
 * election timeouts in range (state.ts).
 *
 * Every check is O(1): it compares the state with the values recorded at the
 * previous boundary (nothing the core does changes its state between calls, so
 * a difference found there was made by the input, or by someone writing into
 * the core's objects from outside). With a test-only bug switch on (RaftBugs), the checks that the bug
 * breaks on purpose are skipped so the simulator's checker sees the damage.
 *
 * ```ts
 * const inv = new BoundaryChecks(state);   // checks the initial state
 * state.term = …;                          // any input
 * inv.check(state);                        // throws AssertionError if an invariant broke
 * ```
 */
import { AssertionError } from '../../lib/assert.js';
import type { NodeId } from '../../lib/ids.js';
import type { Ready } from './api.js';
import type { RaftState } from './state.js';
import type { Entry } from './types.js';

/** Throws the AssertionError of a broken invariant; the message is joined from `parts` only then. */
function broken(s: RaftState, ...parts: readonly unknown[]): never {
  throw new AssertionError(`raft ${s.id}: ${parts.join(' ')}`);
}

/** The boundary checks of one core and the values they compare against (see the file header). */
export class BoundaryChecks {
  private term: number;
  private vote: NodeId | null;
  private commit: number;
  private applied: number;
  /** The term this node led at the previous boundary, or -1 if it was not leader. */
  private ledTerm = -1;
  /** The leader's last index at the previous boundary. */
  private ledLast = 0;

  constructor(s: RaftState) {
    this.term = s.term;
    this.vote = s.vote;
    this.commit = s.log.commit;
    this.applied = s.log.applied;
    this.check(s);
  }

  /** Postconditions of an input: the state is consistent and moved only the ways Raft allows. */
  check(s: RaftState): void {
    const log = s.log;
    const last = log.lastIndex();
    const commit = log.commit;
    const applied = log.applied;
    const term = s.term;
    const role = s.role;

    // Raft Figure 2: currentTerm only grows; votedFor is cast at most once per term.
    if (term < this.term) broken(s, 'term went back from', this.term, 'to', term);
    if (term === this.term && this.vote !== null && s.vote !== this.vote) {
      broken(s, 'vote in term', term, 'changed from', this.vote, 'to', s.vote);
    }

    // Roles agree with the rest of the state.
    if (role === 'leader') {
      if (s.leader !== s.id || s.vote !== s.id) {
        broken(s, 'leader of term', term, 'with leader', s.leader, 'and vote', s.vote);
      }
    } else {
      if (s.leader === s.id) broken(s, role, 'names itself leader');
      if (role === 'candidate' && s.vote !== s.id) {
        broken(s, 'candidate of term', term, 'voted for', s.vote, 'not itself');
      }
      if (s.tracker.progress.size !== 0 || s.leadTransferee !== null) {
        broken(s, role, "keeps a leader's follower progress or transfer");
      }
    }

    // The log's marks: snapshot ≤ applied ≤ applying ≤ commit ≤ last, applying ≤ persisted ≤ last.
    if (commit > last || log.persisted > last) {
      broken(s, 'commit', commit, 'or persisted', log.persisted, 'beyond last index', last);
    }
    if (!s.opts.anyBug) {
      if (commit < this.commit) broken(s, 'commit went back from', this.commit, 'to', commit);
      if (applied < this.applied) broken(s, 'applied went back from', this.applied, 'to', applied);
      const applying = log.applying;
      const snap = log.snapshotMeta().index;
      if (applied < snap || applying < applied || applying > commit || applying > log.persisted) {
        broken(
          s,
          'log marks out of order: snapshot',
          snap,
          'applied',
          applied,
          'applying',
          applying,
          'commit',
          commit,
          'persisted',
          log.persisted,
        );
      }
    }

    // A leader's log is append-only within its term (Raft Figure 3, Leader Append-Only).
    if (role === 'leader') {
      if (log.term(last) !== term) {
        broken(s, 'leader of term', term, 'ends its log with term', log.term(last));
      }
      const continued = this.ledTerm === term;
      // (If the last index did not move, the check above covered the entry held before.)
      if (continued && last !== this.ledLast && log.term(this.ledLast) !== term) {
        broken(s, 'leader of term', term, 'lost or rewrote its entry', this.ledLast);
      }
      if (!continued || commit !== this.commit) {
        // Raft §5.4.2: a leader commits by counting replicas only entries of its own term.
        const commitTerm = log.term(commit);
        if (continued && commit > this.commit && commitTerm !== term && !s.opts.anyBug) {
          broken(s, 'leader of term', term, 'committed', commit, 'of term', commitTerm);
        }
        if (s.committedInTerm && commitTerm !== term) {
          broken(s, 'leader of term', term, 'marked committed in its term at', commit);
        }
      }
      this.ledTerm = term;
      this.ledLast = last;
    } else {
      this.ledTerm = -1;
    }

    this.term = term;
    this.vote = s.vote;
    this.commit = commit;
    this.applied = applied;
  }
}

/**
 * Postconditions of `ready()`: the entries to persist are contiguous and end
 * the log; the entries to apply are contiguous, committed, and end exactly
 * where the log now says application has been handed out to.
 */
export function checkReady(s: RaftState, rd: Ready): void {
  const log = s.log;
  const first = rd.entries[0];
  if (first !== undefined) {
    const end = (rd.entries[rd.entries.length - 1] as Entry).index;
    if (end - first.index + 1 !== rd.entries.length || end !== log.lastIndex()) {
      broken(s, `ready entries ${first.index}..${end} (${rd.entries.length}) do not end the log`);
    }
  }
  const firstApply = rd.committedEntries[0];
  if (firstApply !== undefined) {
    const end = (rd.committedEntries[rd.committedEntries.length - 1] as Entry).index;
    if (
      end - firstApply.index + 1 !== rd.committedEntries.length ||
      end > log.commit ||
      end !== log.applying
    ) {
      broken(
        s,
        `ready committed entries ${firstApply.index}..${end} (${rd.committedEntries.length}) ` +
          `vs commit ${log.commit} applying ${log.applying}`,
      );
    }
  }
}
