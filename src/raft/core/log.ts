/**
 * The in-memory Raft log of one node: a snapshot base plus the entries after
 * it, the commit index, and the bookkeeping that turns changes into `Ready`
 * batches (which entries still need persisting, which committed entries still
 * need applying). It also tracks the configuration history, because a node
 * uses the newest configuration in its log, committed or not (dissertation
 * §4.1), and must fall back to an older one when a suffix is overwritten.
 *
 * ```ts
 * const log = new RaftLog(initialState, bootstrapConfig);
 * log.append([{ index: 1, term: 1, kind: 'noop', data }]);
 * log.term(1);                 // 1
 * log.takeUnstable();          // entries to persist in the next Ready
 * ```
 *
 * Pure: it never touches storage; the shell persists what `takeUnstable()`
 * returned and reports it with `markPersisted()`.
 */
import { assert } from '../../lib/assert.js';
import type { LogIndex, Term } from '../../lib/ids.js';
import { decodeConfig } from './config.js';
import type { ClusterConfig, Entry, RaftInitialState, SnapshotMeta } from './types.js';

/** A configuration and the index of the entry that introduced it. */
export interface ConfigAt {
  readonly index: LogIndex;
  readonly config: ClusterConfig;
}

/** Rough size of an entry in bytes, for batching limits. */
export function entryBytes(e: Entry): number {
  return e.data.length + 24;
}

/** The log of one Raft node (see the file header). */
export class RaftLog {
  private snap: SnapshotMeta;
  private entries: Entry[];
  private configs: ConfigAt[] = [];
  /** Raft Figure 2: highest index known committed. */
  commit: LogIndex;
  /** Highest index handed to the state machine and acknowledged by advance(). */
  applied: LogIndex;
  /** Highest index handed to the state machine in a Ready (>= applied). */
  applying: LogIndex;
  /** Highest index durably stored and still part of this log. */
  persisted: LogIndex;
  /** First index not yet handed out for persisting. */
  private unstableFrom: number;
  /** Last index handed out for persisting in the outstanding Ready (clamped on truncation). */
  private pendingPersistLast: number;

  constructor(initial: RaftInitialState, bootstrap: ClusterConfig) {
    const s = initial.snapshot;
    this.snap = s?.meta ?? { index: 0 as LogIndex, term: 0 as Term, config: bootstrap };
    this.entries = [];
    let expect = this.snap.index + 1;
    for (const e of initial.entries) {
      if (e.index <= this.snap.index) continue; // covered by the snapshot
      assert(e.index === expect, `initial entries not contiguous at ${e.index}`);
      this.entries.push(e);
      if (e.kind === 'config') this.configs.push({ index: e.index, config: decodeConfig(e.data) });
      expect++;
    }
    const last = this.lastIndex();
    this.commit = Math.min(Math.max(initial.hardState.commit, this.snap.index), last) as LogIndex;
    this.applied = this.snap.index;
    this.applying = this.snap.index;
    this.persisted = last;
    this.unstableFrom = last + 1;
    this.pendingPersistLast = last;
  }

  /** The snapshot the log starts after (index 0 and the bootstrap configuration if none). */
  snapshotMeta(): SnapshotMeta {
    return this.snap;
  }

  /** Index of the first entry held in memory (snapshot index + 1). */
  firstIndex(): LogIndex {
    return (this.snap.index + 1) as LogIndex;
  }

  /** Index of the last entry (the snapshot's index if the log is empty). */
  lastIndex(): LogIndex {
    return (this.snap.index + this.entries.length) as LogIndex;
  }

  /** Term of the last entry (Raft §5.4.1 compares it). */
  lastTerm(): Term {
    return this.term(this.lastIndex()) as Term;
  }

  /** Term of the entry at `index`; undefined if it was compacted away or does not exist yet. */
  term(index: number): Term | undefined {
    if (index === this.snap.index) return this.snap.term;
    if (index < this.snap.index || index > this.lastIndex()) return undefined;
    return (this.entries[index - this.snap.index - 1] as Entry).term;
  }

  /** The entry at `index`, or undefined if not held in memory. */
  entry(index: number): Entry | undefined {
    if (index <= this.snap.index) return undefined;
    return this.entries[index - this.snap.index - 1];
  }

  /**
   * Entries from `lo` to `hi` inclusive, at most `maxEntries`, stopping before
   * `maxBytes` is exceeded (but always at least one entry). `lo` must be held.
   */
  slice(lo: number, hi: number, maxEntries = Infinity, maxBytes = Infinity): Entry[] {
    assert(lo > this.snap.index, `slice(${lo}) below the log start ${this.firstIndex()}`);
    const end = Math.min(hi, this.lastIndex(), lo + maxEntries - 1);
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i <= end; i++) {
      const e = this.entries[i - this.snap.index - 1] as Entry;
      bytes += entryBytes(e);
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  /** Raft §5.4.1: is a log ending at (`lastIndex`, `lastTerm`) at least as up-to-date as this one? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /** True if this log holds an entry at `index` with term `term` (Raft §5.3 consistency check). */
  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /**
   * Fast-backtracking hint for a follower rejecting `prevLogIndex` (the
   * optimisation after Raft Figure 7): the first index of the term it holds at
   * `index`, not below its first held index.
   */
  firstIndexOfTermAt(index: number): LogIndex {
    const t = this.term(index);
    assert(t !== undefined, 'firstIndexOfTermAt needs a held index');
    let i = index;
    while (i - 1 > this.snap.index && this.term(i - 1) === t) i--;
    return i as LogIndex;
  }

  /** The last index holding term `term` at or below `atOrBelow`, or 0 if none is held (leader side of fast backtracking). */
  lastIndexOfTerm(term: number, atOrBelow: number): LogIndex {
    for (let i = Math.min(atOrBelow, this.lastIndex()); i >= this.snap.index; i--) {
      const t = this.term(i) as number;
      if (t === term) return i as LogIndex;
      if (t < term) break;
    }
    return 0 as LogIndex;
  }

  /** The configuration in force: the newest one in the log, committed or not (dissertation §4.1). */
  config(): ClusterConfig {
    // (Never read index -1 of an empty array: V8 looks that up as a named property, slowly.)
    const n = this.configs.length;
    return n === 0 ? this.snap.config : (this.configs[n - 1] as ConfigAt).config;
  }

  /** Index of the newest config entry in the log (the snapshot's index if none). */
  configIndex(): LogIndex {
    const n = this.configs.length;
    return n === 0 ? this.snap.index : (this.configs[n - 1] as ConfigAt).index;
  }

  /** The configuration in force as of `index` (for a snapshot taken there). */
  configAt(index: number): ClusterConfig {
    let c = this.snap.config;
    for (const x of this.configs) {
      if (x.index > index) break;
      c = x.config;
    }
    return c;
  }

  /**
   * Appends `entries`, replacing any held entries at or after the first one's
   * index (log repair, Raft §5.3). Entries must start at or below lastIndex+1
   * and above the snapshot. `allowTruncateCommitted` exists only for the
   * test-only bug switches; otherwise overwriting a committed entry is a bug.
   */
  append(entries: readonly Entry[], allowTruncateCommitted = false): void {
    const first = entries[0];
    if (first === undefined) return;
    // Messages are built only on failure: these run for every append.
    if (first.index <= this.snap.index)
      assert(false, `append at ${first.index} inside the snapshot`);
    if (first.index > this.lastIndex() + 1) assert(false, `append at ${first.index} leaves a gap`);
    if (first.index <= this.lastIndex()) this.truncateFrom(first.index, allowTruncateCommitted);
    for (const e of entries) {
      assert(e.index === this.lastIndex() + 1, 'appended entries must be contiguous');
      this.entries.push(e);
      if (e.kind === 'config') this.configs.push({ index: e.index, config: decodeConfig(e.data) });
    }
  }

  private truncateFrom(index: number, allowTruncateCommitted: boolean): void {
    if (!allowTruncateCommitted) {
      assert(
        index > this.commit,
        `truncating committed entries (at ${index}, commit ${this.commit})`,
      );
    }
    this.entries.length = index - this.snap.index - 1;
    while (
      this.configs.length > 0 &&
      (this.configs[this.configs.length - 1] as ConfigAt).index >= index
    ) {
      this.configs.pop();
    }
    this.unstableFrom = Math.min(this.unstableFrom, index);
    this.persisted = Math.min(this.persisted, index - 1) as LogIndex;
    this.pendingPersistLast = Math.min(this.pendingPersistLast, index - 1);
    if (this.commit >= index) this.commit = (index - 1) as LogIndex; // only reachable under a bug switch
  }

  /** Raises the commit index (never lowers it; Raft Figure 2). */
  commitTo(index: number): boolean {
    if (index <= this.commit) return false;
    if (index > this.lastIndex()) {
      assert(false, `commit ${index} beyond last index ${this.lastIndex()}`);
    }
    this.commit = index as LogIndex;
    return true;
  }

  /**
   * Raft §7 (receiver rules 6–8): adopt a snapshot from the leader. If the log
   * holds the snapshot's last entry, the entries after it are kept; otherwise
   * the whole log is discarded.
   */
  restore(meta: SnapshotMeta): void {
    assert(meta.index > this.commit, 'restoring a snapshot the log already committed');
    const keep = this.term(meta.index) === meta.term;
    if (keep) {
      this.entries = this.entries.slice(meta.index - this.snap.index);
      this.configs = this.configs.filter((c) => c.index > meta.index);
    } else {
      this.entries = [];
      this.configs = [];
    }
    this.snap = meta;
    this.commit = meta.index;
    this.applying = meta.index;
    this.applied = meta.index;
    if (keep) {
      // Storage keeps its suffix too iff it durably holds the entry at meta.index, i.e. iff we
      // persisted that far; otherwise nothing above it is durable and all of it is still unstable.
      this.persisted = Math.max(this.persisted, meta.index) as LogIndex;
      this.unstableFrom = Math.max(this.unstableFrom, meta.index + 1);
      this.pendingPersistLast = Math.max(this.pendingPersistLast, meta.index);
    } else {
      this.persisted = meta.index;
      this.unstableFrom = meta.index + 1;
      this.pendingPersistLast = meta.index;
    }
  }

  /** Drops the entries up to `meta.index`, which a local snapshot now covers (Raft §7 log compaction). */
  compact(meta: SnapshotMeta): void {
    assert(
      meta.index > this.snap.index && meta.index <= this.applied,
      'compact outside (snapshot, applied]',
    );
    assert(this.term(meta.index) === meta.term, 'compact: term mismatch');
    this.entries = this.entries.slice(meta.index - this.snap.index);
    this.configs = this.configs.filter((c) => c.index > meta.index);
    this.snap = meta;
  }

  /** True if some entries still need to be handed out for persisting. */
  hasUnstable(): boolean {
    return this.unstableFrom <= this.lastIndex();
  }

  /** Hands out the entries not yet given to the shell for persisting. */
  takeUnstable(): Entry[] {
    const last = this.lastIndex();
    if (this.unstableFrom > last) return [];
    const out = this.entries.slice(this.unstableFrom - this.snap.index - 1);
    this.unstableFrom = last + 1;
    this.pendingPersistLast = last;
    return out;
  }

  /** Records that the entries handed out by the last `takeUnstable()` are durable. */
  markPersisted(): void {
    this.persisted = Math.max(this.persisted, this.pendingPersistLast) as LogIndex;
  }

  /** True if committed, persisted entries wait to be handed to the state machine. */
  hasCommittedToApply(): boolean {
    return Math.min(this.commit, this.persisted) > this.applying;
  }

  /** Hands out up to `max` committed and persisted entries not yet given to the state machine. */
  takeCommitted(max: number): Entry[] {
    const hi = Math.min(this.commit, this.persisted, this.applying + max);
    if (hi <= this.applying) return [];
    const out = this.slice(this.applying + 1, hi);
    this.applying = hi as LogIndex;
    return out;
  }

  /** Records that the state machine applied everything up to `index`. */
  markApplied(index: number): void {
    if (index > this.applied) this.applied = index as LogIndex;
  }
}
