/**
 * Helpers for storage tests: building entries and writes, comparing states,
 * and a seeded generator of random (mostly valid) writes against a reference.
 */
import type { LogIndex, NodeId, Term } from '../../../src/lib/ids.js';
import type { Random } from '../../../src/lib/random.js';
import type { Entry, HardState, Snapshot } from '../../../src/raft/core/types.js';
import type { PersistentState, StorageWrite } from '../../../src/raft/storage/storage.js';

/** An entry whose data encodes its index and term (so a mix-up shows). */
export function entry(index: number, term: number, size = 8): Entry {
  // data[i] = (index * 31 + term * 7 + i) & 0xff, cut from a repeating pattern.
  const from = (index * 31 + term * 7) & 0xff;
  if (from + size > PATTERN.length) {
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i++) data[i] = (from + i) & 0xff;
    return { index: index as LogIndex, term: term as Term, kind: 'normal', data };
  }
  return {
    index: index as LogIndex,
    term: term as Term,
    kind: 'normal',
    data: PATTERN.slice(from, from + size),
  };
}

const PATTERN = Uint8Array.from({ length: 1024 }, (_, i) => i & 0xff);

/** Entries from..to inclusive, all in `term`. */
export function entries(from: number, to: number, term: number, size = 8): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, term, size));
  return out;
}

/** A hard state. */
export function hs(term: number, vote: string | null, commit: number): HardState {
  return { term: term as Term, vote: vote as NodeId | null, commit: commit as LogIndex };
}

/** A snapshot at index/term with a little data. */
export function snapshot(index: number, term: number, size = 32): Snapshot {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (index + i * 3) & 0xff;
  return {
    meta: {
      index: index as LogIndex,
      term: term as Term,
      config: { voters: ['n1', 'n2', 'n3'] as NodeId[], learners: [] },
    },
    data,
  };
}

const hex = (b: Uint8Array): string =>
  Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** Entry renderings, cached by identity: states built by applyWrite share entry objects. */
const entryText = new WeakMap<Entry, string>();

function renderEntry(e: Entry): string {
  let t = entryText.get(e);
  if (t === undefined) {
    t = `${e.index}/${e.term}/${e.kind}/${hex(e.data)}`;
    entryText.set(e, t);
  }
  return t;
}

/** A plain, comparable form of a persistent state. */
export function plain(state: PersistentState): unknown {
  return {
    hardState: { ...state.hardState },
    snapshot:
      state.snapshot === null
        ? null
        : { meta: structuredClone(state.snapshot.meta), data: hex(state.snapshot.data) },
    entries: state.entries.map(renderEntry),
  };
}

/**
 * A random write for a log in `state`: usually valid (appends, overwrites of a
 * suffix, snapshots that keep or drop the log, hard states), sometimes not.
 */
export function randomWrite(rng: Random, state: PersistentState, maxTerm: number): StorageWrite {
  const snapIndex = state.snapshot?.meta.index ?? 0;
  const snapTerm = state.snapshot?.meta.term ?? 0;
  const last = snapIndex + state.entries.length;
  const termAt = (i: number): number =>
    i === snapIndex ? snapTerm : (state.entries[i - snapIndex - 1]?.term ?? 0);
  const out: { snapshot?: Snapshot; entries?: Entry[]; hardState?: HardState } = {};
  const roll = rng.next();
  let base = snapIndex;
  let end = last;
  let endTerm = termAt(last);
  if (roll < 0.12) {
    // Snapshot: inside the log (keeps it), with a different term (drops it), or past the end.
    const kind = rng.int(3);
    const at = kind === 2 ? last + rng.intBetween(1, 5) : rng.intBetween(snapIndex, last);
    const term = kind === 0 || at === snapIndex ? termAt(at) : maxTerm + 1;
    out.snapshot = snapshot(at, term, rng.intBetween(0, 64));
    base = at;
    if (!(kind === 0 || at === snapIndex) || at > last) {
      end = at;
      endTerm = term;
    } else if (kind === 0) {
      endTerm = termAt(last);
    }
  }
  if (roll >= 0.06 && rng.chance(0.85)) {
    const from = rng.chance(0.7) ? end + 1 : rng.intBetween(base + 1, end + 1);
    const prevTerm =
      from - 1 === base && out.snapshot !== undefined ? out.snapshot.meta.term : termAt(from - 1);
    const startTerm =
      Math.max(prevTerm, from - 1 <= end ? endTerm : 0, 1) + (rng.chance(0.3) ? 1 : 0);
    const count = rng.intBetween(1, 6);
    const list: Entry[] = [];
    for (let i = 0; i < count; i++) list.push(entry(from + i, startTerm, rng.intBetween(0, 300)));
    out.entries = list;
  }
  if (rng.chance(0.5))
    out.hardState = hs(
      rng.intBetween(0, maxTerm + 1),
      rng.chance(0.5) ? 'n2' : null,
      rng.int(last + 2),
    );
  if (rng.chance(0.04)) {
    // Deliberately invalid: a gap.
    out.entries = [entry(last + 2 + rng.int(3), maxTerm + 1)];
  }
  return out;
}
