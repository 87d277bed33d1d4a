/**
 * The Raft simulator's model of one node's durable storage, with crash
 * semantics. It keeps the durable {@link PersistentState} and the writes in
 * flight (issued, not yet synced). A write becomes durable when the shell
 * reports it synced ({@link RaftDisk.sync}); a crash ({@link RaftDisk.crash})
 * keeps a random in-order prefix of the unsynced writes (a real disk may have
 * written some before the power went), may tear the next one (its snapshot
 * and a prefix of its entries reach the disk, its hard state does not — as a
 * write-ahead log torn mid-record recovers to its last whole record), and
 * drops the rest.
 *
 * ```ts
 * const disk = new RaftDisk();
 * disk.write({ entries, hardState });      // validated like every Storage (planWrite)
 * disk.sync();                             // now durable
 * disk.crash(random);                      // unsynced writes: kept, torn or lost
 * const initial = disk.durable;            // what the node restarts from
 * ```
 *
 * Why a model for most runs: it is the Storage contract's semantics alone
 * (the same {@link planWrite} and {@link applyWrite} every Storage uses), at
 * a fraction of the cost of the real FileStorage (record encoding, segment
 * files, group commit) that thousands of seeds per CI run would pay. The
 * real FileStorage on the simulated disk runs too (`raft-file` and
 * `kv-file`, storage.ts), where this model shadows what the storage
 * acknowledged ({@link RaftDisk.syncOldest}, {@link RaftDisk.reset}).
 */
import { assert } from '../../lib/assert.js';
import type { Random } from '../../lib/random.js';
import type { Entry, HardState, Snapshot } from '../../raft/core/types.js';
import { applyWrite, emptyPersistentState, shapeOf } from '../../raft/storage/memory.js';
import type { PersistentState, StorageWrite } from '../../raft/storage/storage.js';
import { planWrite } from '../../raft/storage/write-plan.js';

/** What a crash did to the unsynced writes. */
export interface DiskCrashReport {
  /** Unsynced writes that reached the disk whole. */
  readonly kept: number;
  /** 1 if a write was torn (part of it reached the disk), else 0. */
  readonly torn: number;
  /** Unsynced writes lost entirely. */
  readonly lost: number;
}

/** Called whenever the durable hard state changes (the invariants watch it). */
export type DurableListener = (before: PersistentState, after: PersistentState) => void;

/** One node's durable Raft state, with unsynced writes that a crash may lose. */
export class RaftDisk {
  private state: PersistentState = emptyPersistentState();
  /** Durable state plus every unsynced write: what the next write is validated against. */
  private projected: PersistentState = this.state;
  private readonly pending: StorageWrite[] = [];
  /** Writes validated and accepted so far. */
  writes = 0;

  constructor(private readonly onDurable?: DurableListener) {}

  /** What survives a crash now. */
  get durable(): PersistentState {
    return this.state;
  }

  /** Unsynced writes. */
  get unsynced(): number {
    return this.pending.length;
  }

  /**
   * Issues a write (not yet durable). Throws the Storage contract's
   * INVALID_ARGUMENT CohortError if the write is invalid against the log as it
   * will be after the earlier writes (a core handing out a bad write is a bug
   * the caller reports).
   */
  write(write: StorageWrite): void {
    planWrite(shapeOf(this.projected), write);
    this.projected = applyWrite(this.projected, write);
    this.pending.push(write);
    this.writes++;
  }

  /** Makes every issued write durable (fdatasync). */
  sync(): void {
    if (this.pending.length === 0) return;
    const before = this.state;
    this.state = this.projected;
    this.pending.length = 0;
    this.onDurable?.(before, this.state);
  }

  /** Makes the oldest unsynced write durable (a storage that acknowledges writes one by one, in order). */
  syncOldest(): void {
    const w = this.pending.shift();
    if (w === undefined) return;
    const before = this.state;
    this.state = this.pending.length === 0 ? this.projected : applyWrite(before, w);
    this.onDurable?.(before, this.state);
  }

  /** The power fails: unsynced writes are kept whole, torn, or lost, drawing from `random`. */
  crash(random: Random): DiskCrashReport {
    const before = this.state;
    let state = this.state;
    let kept = 0;
    let torn = 0;
    const n = this.pending.length;
    // A random prefix reached the disk, in order.
    const whole = n === 0 ? 0 : random.chance(1 / 3) ? n : random.int(n);
    for (; kept < whole; kept++) state = applyWrite(state, this.pending[kept] as StorageWrite);
    const next = this.pending[kept];
    if (next !== undefined && random.chance(0.75)) {
      // Torn: the WAL recovers to its last whole record. A snapshot is all-or-nothing (temp
      // file + rename); then a prefix of the entries; the hard state record, written last, is lost.
      const tornWrite: { snapshot?: Snapshot; entries?: readonly Entry[] } = {};
      const withSnapshot = next.snapshot !== undefined && random.chance(0.5);
      if (withSnapshot) tornWrite.snapshot = next.snapshot;
      const es = next.entries ?? [];
      const keep = next.snapshot === undefined || withSnapshot ? random.int(es.length + 1) : 0;
      if (keep > 0) tornWrite.entries = es.slice(0, keep);
      const partial = withSnapshot || keep > 0;
      const differs =
        next.hardState !== undefined ||
        keep < es.length ||
        (next.snapshot !== undefined && !withSnapshot);
      if (partial && differs) {
        planWrite(shapeOf(state), tornWrite);
        state = applyWrite(state, tornWrite);
        torn = 1;
      } else if (partial) {
        // Everything the write held made it: that is a whole write, not a torn one.
        state = applyWrite(state, next);
        kept++;
      }
    }
    const lost = n - kept - torn;
    this.pending.length = 0;
    this.state = state;
    this.projected = state;
    if (state !== before) this.onDurable?.(before, state);
    return { kept, torn, lost };
  }

  /**
   * Replaces the durable state with what a real storage recovered after a crash (the
   * simulator then uses this model as a shadow of what was acknowledged). The durable
   * listener sees the change, so recovery is checked like any other durable change.
   */
  reset(state: PersistentState): void {
    const before = this.state;
    this.pending.length = 0;
    this.state = state;
    this.projected = state;
    if (state !== before) this.onDurable?.(before, state);
  }

  /** The durable hard state. */
  get hardState(): HardState {
    return this.state.hardState;
  }

  /** Durable last log index (snapshot index if no entries). */
  lastIndex(): number {
    const s = this.state;
    return (s.snapshot?.meta.index ?? 0) + s.entries.length;
  }

  /** Durable term of the entry at `index`, or undefined when not stored (or compacted). */
  termAt(index: number): number | undefined {
    const s = this.state;
    const base = s.snapshot?.meta.index ?? 0;
    if (index === base) return s.snapshot?.meta.term ?? 0;
    const e = s.entries[index - base - 1];
    if (index < base || e === undefined) return undefined;
    assert(e.index === index, 'durable entries not contiguous');
    return e.term;
  }
}
