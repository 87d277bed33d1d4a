/**
 * Validation of a {@link StorageWrite} against the shape of the stored log, shared
 * by every Storage implementation so they agree on what is refused. The plan it
 * returns says what the write does to the log (whether a snapshot keeps the
 * suffix, where a conflicting suffix is cut), which the WAL logs explicitly.
 *
 * ```ts
 * const plan = planWrite(shape, write);   // throws INVALID_ARGUMENT, changes nothing
 * if (plan.truncateFrom !== null) log.truncate(plan.truncateFrom);
 * ```
 */
import { CohortError } from '../../lib/errors.js';
import { isValidId } from '../../lib/ids.js';
import { limits } from '../../lib/limits.js';
import type { Entry, HardState, Snapshot } from '../core/types.js';
import type { StorageWrite } from './storage.js';

/** What {@link planWrite} needs to know about the stored log. */
export interface LogShape {
  /** Index of the stored snapshot, 0 if none. */
  readonly snapshotIndex: number;
  /** Term of the stored snapshot, 0 if none. */
  readonly snapshotTerm: number;
  /** Index of the last stored entry (the snapshot's index if the log is empty). */
  readonly lastIndex: number;
  /** Term of the entry at `index`, for snapshotIndex < index <= lastIndex. */
  termAt(index: number): number;
}

/** What a valid write does to the log. */
export interface WritePlan {
  /** With a snapshot: true if stored entries above it are kept (Raft §7, rule 6). */
  readonly snapshotKeepsLog: boolean;
  /** With entries that overwrite stored ones: the first index discarded (Raft §5.3); else null. */
  readonly truncateFrom: number | null;
  /** Last index after the write. */
  readonly lastIndex: number;
}

function invalid(message: string): CohortError {
  return new CohortError('INVALID_ARGUMENT', `storage write refused: ${message}`);
}

function isCount(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

function checkHardState(hs: HardState): void {
  if (typeof hs !== 'object' || hs === null) throw invalid('hardState is not an object');
  if (!isCount(hs.term)) throw invalid(`hardState.term ${String(hs.term)} is not a count`);
  if (!isCount(hs.commit)) throw invalid(`hardState.commit ${String(hs.commit)} is not a count`);
  if (hs.vote !== null && !isValidId(hs.vote)) {
    throw invalid(`hardState.vote ${JSON.stringify(hs.vote)} is not a node id or null`);
  }
}

function checkSnapshot(s: Snapshot): void {
  if (typeof s !== 'object' || s === null || typeof s.meta !== 'object' || s.meta === null) {
    throw invalid('snapshot is not an object with meta');
  }
  if (!isCount(s.meta.index) || !isCount(s.meta.term)) {
    throw invalid('snapshot.meta index and term must be counts');
  }
  if (!(s.data instanceof Uint8Array)) throw invalid('snapshot.data is not bytes');
  const c = s.meta.config;
  if (
    typeof c !== 'object' ||
    c === null ||
    !Array.isArray(c.voters) ||
    !Array.isArray(c.learners) ||
    !c.voters.every(isValidId) ||
    !c.learners.every(isValidId) ||
    (c.votersOutgoing !== undefined &&
      (!Array.isArray(c.votersOutgoing) || !c.votersOutgoing.every(isValidId)))
  ) {
    throw invalid('snapshot.meta.config is not a valid configuration');
  }
}

function checkEntry(e: Entry, at: number): void {
  if (typeof e !== 'object' || e === null) throw invalid(`entries[${at}] is not an object`);
  if (!isCount(e.index) || e.index < 1) throw invalid(`entries[${at}].index is not >= 1`);
  if (!isCount(e.term) || e.term < 1) throw invalid(`entries[${at}].term is not >= 1`);
  const kind = e.kind;
  // Compared one by one (interned strings): cheaper than a Set on this per-entry path.
  if (kind !== 'normal' && kind !== 'noop' && kind !== 'config')
    throw invalid(`entries[${at}].kind ${String(e.kind)} is unknown`);
  if (!(e.data instanceof Uint8Array)) throw invalid(`entries[${at}].data is not bytes`);
  if (e.data.byteLength > limits.raftEntryBytesMax) {
    throw invalid(`entries[${at}] carries ${e.data.byteLength} bytes > raftEntryBytesMax`);
  }
}

/** Checks a non-empty run of entries: each valid, indexes contiguous, terms not decreasing. */
function checkEntryRun(entries: readonly Entry[]): void {
  checkEntry(entries[0] as Entry, 0);
  for (let i = 1; i < entries.length; i++) {
    const prev = entries[i - 1] as Entry;
    const cur = entries[i] as Entry;
    checkEntry(cur, i);
    if (cur.index !== prev.index + 1) throw invalid(`entries are not contiguous at ${i}`);
    if (cur.term < prev.term) throw invalid(`entry terms decrease at index ${cur.index}`);
  }
}

/**
 * The common case of {@link planWrite} on its own, for a storage's hot path: a
 * write of non-empty `entries` only, whose first index is one past the stored
 * log's last (the caller checked that), so nothing is truncated. Applies the
 * same rules and throws the same errors; `lastTerm` is the term of the last
 * stored entry, or of the snapshot when the log holds none.
 */
export function checkAppend(entries: readonly Entry[], lastTerm: number): void {
  checkEntryRun(entries);
  const first = entries[0] as Entry;
  if (first.term < lastTerm) {
    throw invalid(`entry ${first.index} has a lower term than entry ${first.index - 1}`);
  }
}

/**
 * Checks `write` against `shape` and the rules documented on StorageWrite; throws
 * a CohortError INVALID_ARGUMENT naming the broken rule. Pure: changes nothing.
 */
export function planWrite(shape: LogShape, write: StorageWrite): WritePlan {
  if (typeof write !== 'object' || write === null) throw invalid('write is not an object');
  let snapIndex = shape.snapshotIndex;
  let snapTerm = shape.snapshotTerm;
  let last = shape.lastIndex;
  let keeps = true;

  if (write.snapshot !== undefined) {
    const s = write.snapshot;
    checkSnapshot(s);
    if (s.meta.index < shape.snapshotIndex) {
      throw invalid(
        `snapshot at ${s.meta.index} is older than the stored one at ${shape.snapshotIndex}`,
      );
    }
    if (
      s.meta.index === shape.snapshotIndex &&
      s.meta.term !== shape.snapshotTerm &&
      snapIndex > 0
    ) {
      throw invalid(`snapshot at ${s.meta.index} has term ${s.meta.term}, stored has ${snapTerm}`);
    }
    // Raft §7: keep the suffix only if the entry at the snapshot's index matches its term.
    keeps =
      s.meta.index <= last &&
      (s.meta.index === snapIndex ? snapTerm : shape.termAt(s.meta.index)) === s.meta.term;
    snapIndex = s.meta.index;
    snapTerm = s.meta.term;
    if (!keeps) last = snapIndex;
  }

  let truncateFrom: number | null = null;
  const entries = write.entries;
  if (entries !== undefined) {
    if (!Array.isArray(entries)) throw invalid('entries is not an array');
    if (entries.length > 0) {
      checkEntryRun(entries);
      const first = (entries[0] as Entry).index;
      if (first <= snapIndex) {
        throw invalid(`entry ${first} is at or below the snapshot index ${snapIndex}`);
      }
      if (first > last + 1) throw invalid(`entry ${first} leaves a gap after ${last}`);
      // Raft log matching: terms never decrease along the log.
      const prevTerm = first - 1 === snapIndex ? snapTerm : shape.termAt(first - 1);
      if ((entries[0] as Entry).term < prevTerm) {
        throw invalid(`entry ${first} has a lower term than entry ${first - 1}`);
      }
      if (first <= last) truncateFrom = first;
      last = (entries[entries.length - 1] as Entry).index;
    }
  }

  if (write.hardState !== undefined) checkHardState(write.hardState);
  return { snapshotKeepsLog: keeps, truncateFrom, lastIndex: last };
}
