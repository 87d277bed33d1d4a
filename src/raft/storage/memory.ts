/**
 * MemoryStorage: the reference implementation of {@link Storage}'s semantics,
 * kept in memory. Used by unit tests and the Raft simulator; every other
 * implementation must pass the same compliance suite
 * (test/raft/storage/compliance.ts).
 *
 * ```ts
 * const storage = new MemoryStorage();
 * await storage.load();
 * await storage.save({ entries: [e1, e2], hardState: { term: 1, vote: null, commit: 0 } });
 * const again = new MemoryStorage(storage.current());   // "restart" with what was saved
 * ```
 */
import { assert } from '../../lib/assert.js';
import { CohortError } from '../../lib/errors.js';
import type { LogIndex, Term } from '../../lib/ids.js';
import type { Entry, HardState, Snapshot } from '../core/types.js';
import type { PersistentState, Storage, StorageWrite } from './storage.js';
import { planWrite } from './write-plan.js';
import type { LogShape } from './write-plan.js';

/** The hard state of a node that never saved one: term 0, no vote, nothing committed. */
export const emptyHardState: HardState = {
  term: 0 as Term,
  vote: null,
  commit: 0 as LogIndex,
};

/** An empty persistent state (a node that never saved anything). */
export function emptyPersistentState(): PersistentState {
  return { hardState: emptyHardState, snapshot: null, entries: [] };
}

/**
 * Applies a write that {@link planWrite} accepted to a state (pure; returns a new
 * state, sharing unchanged parts). The one definition of the write semantics.
 */
export function applyWrite(state: PersistentState, write: StorageWrite): PersistentState {
  let snapshot: Snapshot | null = state.snapshot;
  let entries: readonly Entry[] = state.entries;
  let hardState = state.hardState;
  const first = (): number => (snapshot === null ? 1 : snapshot.meta.index + 1);
  if (write.snapshot !== undefined) {
    const s = write.snapshot;
    const base = first();
    // Raft §7: keep the suffix only if the entry at the snapshot's index has its term
    // (the stored snapshot's own index counts as an entry with the snapshot's term).
    const termThere =
      s.meta.index === base - 1 ? (snapshot?.meta.term ?? 0) : entries[s.meta.index - base]?.term;
    const keeps = termThere === s.meta.term;
    snapshot = s;
    entries = keeps ? entries.slice(Math.max(0, s.meta.index + 1 - base)) : [];
  }
  if (write.entries !== undefined && write.entries.length > 0) {
    const from = (write.entries[0] as Entry).index - first();
    assert(from >= 0 && from <= entries.length, 'applyWrite on an unplanned write');
    entries = entries.slice(0, from).concat(write.entries);
  }
  if (write.hardState !== undefined) hardState = write.hardState;
  return { hardState, snapshot, entries };
}

/** In-memory {@link Storage}; every save is "durable" at once. */
export class MemoryStorage implements Storage {
  private state: PersistentState;
  private loaded = false;
  private closed = false;

  /** Starts from `initial` (what a previous instance saved), or empty. */
  constructor(initial: PersistentState = emptyPersistentState()) {
    this.state = initial;
  }

  /** What has been saved so far (for restarting a new instance from it). */
  current(): PersistentState {
    return this.state;
  }

  load(): Promise<PersistentState> {
    if (this.closed) return Promise.reject(closedError());
    this.loaded = true;
    return Promise.resolve(this.state);
  }

  save(write: StorageWrite): Promise<void> {
    if (this.closed) return Promise.reject(closedError());
    if (!this.loaded) {
      return Promise.reject(new CohortError('FAILED_PRECONDITION', 'save() before load()'));
    }
    try {
      planWrite(shapeOf(this.state), write);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    this.state = applyWrite(this.state, copyWrite(write));
    return Promise.resolve();
  }

  /** Nothing to do ahead: save() stores the snapshot at once. */
  prepareSnapshot(_snapshot: Snapshot): Promise<void> {
    if (this.closed) return Promise.reject(closedError());
    if (!this.loaded) {
      return Promise.reject(
        new CohortError('FAILED_PRECONDITION', 'prepareSnapshot() before load()'),
      );
    }
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

/** The {@link LogShape} of a persistent state. */
export function shapeOf(state: PersistentState): LogShape {
  const snapIndex = state.snapshot?.meta.index ?? 0;
  return {
    snapshotIndex: snapIndex,
    snapshotTerm: state.snapshot?.meta.term ?? 0,
    lastIndex: snapIndex + state.entries.length,
    termAt: (i: number): number => {
      const e = state.entries[i - snapIndex - 1];
      assert(e !== undefined, `termAt(${i}) outside the stored log`);
      return e.term;
    },
  };
}

/** Copies the byte arrays of a write so a caller reusing its buffers cannot change what was "stored". */
function copyWrite(write: StorageWrite): StorageWrite {
  const out: {
    snapshot?: Snapshot;
    entries?: readonly Entry[];
    hardState?: HardState;
  } = {};
  if (write.snapshot !== undefined) {
    out.snapshot = {
      meta: structuredClone(write.snapshot.meta),
      data: write.snapshot.data.slice(),
    };
  }
  if (write.entries !== undefined)
    out.entries = write.entries.map((e) => ({ ...e, data: e.data.slice() }));
  if (write.hardState !== undefined) out.hardState = { ...write.hardState };
  return out;
}

function closedError(): CohortError {
  return new CohortError('CLOSED', 'storage is closed');
}
