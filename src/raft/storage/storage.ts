/**
 * The durable storage a Raft node needs: hard state, log entries and the
 * latest snapshot. The pure core never calls it; the shell persists what the
 * core's `Ready` says, waits for `save()` to resolve, and only then sends the
 * messages that depend on it ("persist before you send").
 *
 * ```ts
 * const storage: Storage = new MemoryStorage();
 * const state = await storage.load();                   // on start
 * await storage.save({ entries, hardState });           // durable when this resolves
 * await storage.prepareSnapshot(snapshot);             // optional: its data durable, off the log's path
 * await storage.save({ snapshot });                     // compacts the log prefix
 * ```
 */
import type { Entry, HardState, Snapshot } from '../core/types.js';

/** Everything recovered on start. */
export interface PersistentState {
  readonly hardState: HardState;
  /** The newest valid snapshot, or null if none was ever saved. */
  readonly snapshot: Snapshot | null;
  /** Entries after the snapshot (or from index 1), contiguous and in order. */
  readonly entries: readonly Entry[];
}

/**
 * One durable write. Parts are applied in this order: snapshot, entries, hard state.
 *
 * - `snapshot`: entries at or below `snapshot.meta.index` are dropped. Stored
 *   entries above it are kept only if the stored entry at the snapshot's index
 *   has the snapshot's term; otherwise the whole log is dropped (Raft §7, rule 6).
 *   A snapshot older than the stored one (lower index) is refused.
 * - `entries`: contiguous, ascending. Stored entries with index >=
 *   `entries[0].index` are discarded first (log repair, Raft §5.3); the first
 *   new entry must directly follow what remains (or the snapshot).
 * - `hardState`: replaces the stored hard state.
 */
export interface StorageWrite {
  readonly snapshot?: Snapshot;
  readonly entries?: readonly Entry[];
  readonly hardState?: HardState;
}

/** Durable storage for one Raft node. */
export interface Storage {
  /** Reads what was durably saved. Called once, before any save. */
  load(): Promise<PersistentState>;
  /**
   * Makes `write` durable. Resolves only when it would survive a crash. Writes
   * take effect in call order; an implementation may group concurrent writes
   * into one sync (group commit). Rejects with a CohortError on I/O failure or
   * a write that breaks the rules above (INVALID_ARGUMENT), changing nothing.
   */
  save(write: StorageWrite): Promise<void>;
  /**
   * Makes a snapshot's data durable ahead of the `save({ snapshot })` that
   * records it, without changing what `load()` returns and without holding up
   * other saves (it is ordered with none of them). A later save of the same
   * snapshot (same `data` array and meta) then only has to log it, so a big
   * local compaction snapshot (Raft §7) does not stall the log while its file
   * is written. Optional work: an implementation may just resolve. A prepared
   * snapshot that is never saved is dropped (at the latest on the next
   * `load()`). Rejects with a CohortError on I/O failure.
   */
  prepareSnapshot(snapshot: Snapshot): Promise<void>;
  /** Flushes and releases resources. Later calls reject with CLOSED. */
  close(): Promise<void>;
}
