/**
 * The multi-version keyspace: one global revision, a B+ tree of keys in byte
 * order, and per key its versions (puts and delete tombstones) since the last
 * compaction. Past reads binary-search a key's versions; watch replays walk a
 * compact log of (revision, key) changes, trimmed by compaction.
 *
 * The key index is a B+ tree from `sorted-btree` (typed, no dependencies,
 * widely used): O(log n) insert and delete and ordered iteration from any key,
 * where a sorted array pays O(n) per insert and a hash map cannot range-scan.
 *
 * Memory: keys and values are held as byte strings (see bytes.ts), not as
 * Uint8Arrays. A string is one cheap heap object; a Uint8Array is several
 * (view, buffer, backing store) that the garbage collector must trace and
 * sweep, which made a store of a few hundred thousand keys spend seconds per
 * full GC. `KeyValue`s with bytes are built only on the way out.
 *
 * Writes happen in a batch that becomes one revision: `beginWrite()`, any
 * number of `put`/`delete`, then `endWrite()`, which returns the batch's events
 * and bumps the revision only if something changed. Callers validate first:
 * this class asserts its invariants and never refuses input.
 *
 * Size: {@link MvccStore.sizeBytes} is what the store counts toward its
 * quota (see {@link versionBytes}): a function of the versions kept and
 * nothing else, so every replica, and a replica restored from a snapshot,
 * agrees on it to the byte.
 *
 * ```ts
 * const mvcc = new MvccStore();
 * mvcc.beginWrite();
 * mvcc.put('a', '1', 0);
 * const events = mvcc.endWrite();         // [{ type: 'PUT', kv: { modRevision: 1, ... } }]
 * mvcc.scan({ start: 'a', end: undefined, single: false }, 1, (k, v) => ...);
 * ```
 */
import btreeModule from 'sorted-btree';
import { bulkLoad } from 'sorted-btree/extended/bulkLoad.js';
import { assert } from '../../lib/assert.js';
import { limits } from '../../lib/limits.js';
import { EMPTY_BYTES, fromByteString } from './bytes.js';
import type { KeyValue, KvEvent } from './types.js';
import type { ResolvedRange } from './validate.js';

// sorted-btree is CommonJS: Node hands ESM its module object (the class on
// `.default`); some bundlers hand the class itself.
type BTreeClass = typeof btreeModule.default;
const BTree: BTreeClass = typeof btreeModule === 'function' ? btreeModule : btreeModule.default;
/** Keys per B+ tree node (sorted-btree's default). */
const BTREE_NODE_SIZE = 32;

/** One version of a key: its state from revision `rev` on. */
export interface Version {
  readonly rev: number;
  /** Order of the change within its revision (a txn writes several keys). */
  readonly sub: number;
  /** The value as a byte string; undefined for a delete tombstone. */
  readonly value: string | undefined;
  readonly createRevision: number;
  readonly version: number;
  readonly lease: number;
}

interface Change {
  readonly keyStr: string;
  readonly cur: Version;
  readonly prev: Version | undefined;
}

/** The MVCC keyspace (see file comment). */
export class MvccStore {
  /** Versions per key, oldest first, never empty. */
  private index = new BTree<string, Version[]>(undefined, compareKeys, BTREE_NODE_SIZE);
  /** Keys whose history compaction may shorten (more than one version, or a tombstone). */
  private readonly compactable = new Set<string>();
  /** The change log: revision and key of every change, in apply order. */
  private logRevs: number[] = [];
  private logKeys: string[] = [];
  private rev = 0;
  private compacted = 0;
  private live = 0;
  private bytes = 0;
  private pending: { rev: number; sub: number; changes: Change[] } | undefined;

  /** The store's revision: that of the last change (0 before any). */
  get revision(): number {
    return this.rev;
  }

  /** Revisions below this are compacted: reads and replays there get COMPACTED. */
  get compactedRevision(): number {
    return this.compacted;
  }

  /** Keys that exist now. */
  get liveKeys(): number {
    return this.live;
  }

  /** The sum of {@link versionBytes} over every version kept (history included, until compacted). */
  get sizeBytes(): number {
    return this.bytes;
  }

  /** Starts a batch of changes that will share one revision. */
  beginWrite(): void {
    assert(this.pending === undefined, 'write batch already open');
    this.pending = { rev: this.rev + 1, sub: 0, changes: [] };
  }

  /** Ends the batch: bumps the revision if anything changed, logs and returns the events. */
  endWrite(): KvEvent[] {
    const p = this.pending;
    assert(p !== undefined, 'no write batch open');
    this.pending = undefined;
    if (p.changes.length === 0) return [];
    this.rev = p.rev;
    return p.changes.map(({ keyStr, cur, prev }) => {
      this.logRevs.push(p.rev);
      this.logKeys.push(keyStr);
      return eventOf(keyStr, cur, prev);
    });
  }

  /** The latest live version of a key (the open batch's changes included). */
  current(keyStr: string): Version | undefined {
    const hist = this.index.get(keyStr);
    const last = hist?.[hist.length - 1];
    return last?.value === undefined ? undefined : last;
  }

  /** Writes a key in the open batch. Returns its previous live version. */
  put(keyStr: string, value: string, lease: number): Version | undefined {
    const p = this.pending;
    assert(p !== undefined, 'put outside a write batch');
    let hist = this.index.get(keyStr);
    if (hist === undefined) {
      hist = [];
      this.index.set(keyStr, hist);
    }
    const last = hist[hist.length - 1];
    assert(last === undefined || last.rev < p.rev, 'a key written twice in one revision');
    const prev = last?.value === undefined ? undefined : last;
    const cur: Version = {
      rev: p.rev,
      sub: p.sub++,
      value,
      createRevision: prev === undefined ? p.rev : prev.createRevision,
      version: prev === undefined ? 1 : prev.version + 1,
      lease,
    };
    hist.push(cur);
    this.bytes += versionBytes(keyStr.length, value.length);
    if (prev === undefined) this.live++;
    if (hist.length > 1) this.compactable.add(keyStr);
    p.changes.push({ keyStr, cur, prev });
    return prev;
  }

  /** Deletes a key in the open batch if it exists. Returns its last live version. */
  delete(keyStr: string): Version | undefined {
    const p = this.pending;
    assert(p !== undefined, 'delete outside a write batch');
    const hist = this.index.get(keyStr);
    const last = hist?.[hist.length - 1];
    if (hist === undefined || last?.value === undefined) return undefined;
    assert(last.rev < p.rev, 'a key written twice in one revision');
    const cur: Version = {
      rev: p.rev,
      sub: p.sub++,
      value: undefined,
      createRevision: 0,
      version: 0,
      lease: 0,
    };
    hist.push(cur);
    this.bytes += versionBytes(keyStr.length, 0);
    this.live--;
    this.compactable.add(keyStr);
    p.changes.push({ keyStr, cur, prev: last });
    return last;
  }

  /**
   * Calls `visit` for each key in `range` live at revision `rev` (Infinity:
   * the latest, open batch included), in byte order; stops when `visit`
   * returns false. The caller checked `rev` against compaction.
   */
  scan(range: ResolvedRange, rev: number, visit: (keyStr: string, v: Version) => boolean): void {
    if (range.single) {
      const hist = this.index.get(range.start);
      const v = hist === undefined ? undefined : versionAt(hist, rev);
      if (v !== undefined) visit(range.start, v);
      return;
    }
    const high = range.end;
    for (const [k, hist] of this.index.entries(range.start)) {
      if (high !== undefined && k >= high) break;
      const v = versionAt(hist, rev);
      if (v !== undefined && !visit(k, v)) break;
    }
  }

  /**
   * Drops history below `revision`: per key, only the newest version at or
   * below it survives (a tombstone there is dropped with its key); the change
   * log keeps revisions above it. The caller checked the bounds.
   */
  compact(revision: number): void {
    assert(this.pending === undefined, 'compact inside a write batch');
    assert(revision > this.compacted && revision <= this.rev, 'compact revision out of bounds');
    this.compacted = revision;
    for (const keyStr of this.compactable) {
      let hist = this.index.get(keyStr);
      assert(hist !== undefined, 'compactable key missing from the index');
      let keepFrom = latestAtOrBelow(hist, revision);
      if (keepFrom < 0) continue;
      if ((hist[keepFrom] as Version).value === undefined) keepFrom++;
      for (let i = 0; i < keepFrom; i++) {
        this.bytes -= versionBytes(keyStr.length, (hist[i] as Version).value?.length ?? 0);
      }
      if (keepFrom > 0) {
        // A new array, not splice(): a snapshot being encoded may hold the old one
        // (histories otherwise only grow, see KvStateMachine.beginSnapshot).
        hist = hist.slice(keepFrom);
        if (hist.length > 0) this.index.set(keyStr, hist);
      }
      if (hist.length === 0) {
        this.index.delete(keyStr);
        this.compactable.delete(keyStr);
      } else if (hist.length === 1 && hist[0]?.value !== undefined) {
        this.compactable.delete(keyStr);
      }
    }
    const firstKept = firstAbove(this.logRevs, revision);
    this.logRevs = this.logRevs.slice(firstKept);
    this.logKeys = this.logKeys.slice(firstKept);
  }

  /**
   * Events with revision >= `startRevision` on keys in `range`, oldest first.
   * The caller checked that `startRevision` is above the compacted revision.
   * With `page`, stops before the first revision that would start once
   * `eventsMax` events or `bytesMax` bytes of keys and values (prevKv
   * included) were taken: a page never splits a revision, so the next page
   * starts at the last event's revision + 1.
   */
  eventsSince(
    range: ResolvedRange,
    startRevision: number,
    page?: { readonly eventsMax: number; readonly bytesMax: number },
  ): KvEvent[] {
    const out: KvEvent[] = [];
    let bytes = 0;
    let lastRev = 0;
    for (let i = firstAbove(this.logRevs, startRevision - 1); i < this.logRevs.length; i++) {
      const keyStr = this.logKeys[i] as string;
      const rev = this.logRevs[i] as number;
      if (
        page !== undefined &&
        rev > lastRev &&
        (out.length >= page.eventsMax || bytes >= page.bytesMax)
      ) {
        break;
      }
      if (!inRange(range, keyStr)) continue;
      const hist = this.index.get(keyStr);
      assert(hist !== undefined, 'logged key missing from the index');
      const j = latestAtOrBelow(hist, rev);
      const cur = hist[j];
      assert(cur !== undefined && cur.rev === rev, 'logged change missing from its key');
      const prev = hist[j - 1];
      const p = prev?.value === undefined ? undefined : prev;
      out.push(eventOf(keyStr, cur, p));
      lastRev = rev;
      if (page !== undefined) {
        bytes += keyStr.length * (p === undefined ? 1 : 2) + (cur.value?.length ?? 0);
        bytes += p?.value?.length ?? 0;
      }
    }
    return out;
  }

  /**
   * Every key with its versions, in byte order (for snapshots). A version
   * never changes and a key's array only grows (compaction replaces it), so
   * a snapshot may hold the arrays with their lengths and read them later.
   */
  entries(): IterableIterator<[string, Version[]]> {
    return this.index.entries();
  }

  /**
   * Replaces the whole state (restore from a snapshot): keys in byte order
   * (strictly ascending) with their versions (same index), the revision and
   * the compacted revision. Builds the key index in bulk (O(n), where one
   * insert per key cost ~80 ms for 200k keys) and rebuilds the change log.
   */
  load(
    keys: readonly string[],
    histories: readonly Version[][],
    revision: number,
    compactedRevision: number,
  ): void {
    assert(this.pending === undefined, 'load inside a write batch');
    assert(keys.length === histories.length, 'one history per key');
    this.index = bulkLoad(keys as string[], histories as Version[][], BTREE_NODE_SIZE, compareKeys);
    this.compactable.clear();
    this.rev = revision;
    this.compacted = compactedRevision;
    this.live = 0;
    this.bytes = 0;
    let logged = 0;
    for (let i = 0; i < keys.length; i++) {
      const keyStr = keys[i] as string;
      const hist = histories[i] as Version[];
      assert(hist.length > 0, 'a key without versions');
      const last = hist[hist.length - 1] as Version;
      if (last.value !== undefined) this.live++;
      if (hist.length > 1 || last.value === undefined) this.compactable.add(keyStr);
      for (const v of hist) {
        if (v.rev > compactedRevision) logged++;
        this.bytes += versionBytes(keyStr.length, v.value?.length ?? 0);
      }
    }
    // The change log: every version above the compacted revision, by (rev, sub).
    const revs = new Float64Array(logged);
    const subs = new Float64Array(logged);
    const logKeys: string[] = new Array<string>(logged);
    let n = 0;
    for (let i = 0; i < keys.length; i++) {
      for (const v of histories[i] as Version[]) {
        if (v.rev <= compactedRevision) continue;
        assert(v.rev <= revision, 'a version above the revision');
        revs[n] = v.rev;
        subs[n] = v.sub;
        logKeys[n] = keys[i] as string;
        n++;
      }
    }
    const order = changeOrder(revs, subs, compactedRevision, revision);
    this.logRevs = new Array<number>(logged);
    this.logKeys = new Array<string>(logged);
    for (let i = 0; i < logged; i++) {
      const j = order[i] as number;
      this.logRevs[i] = revs[j] as number;
      this.logKeys[i] = logKeys[j] as string;
    }
  }
}

/**
 * Indexes of the changes sorted by (revision, sub). A real store changes at
 * every revision above the compacted one, so revisions span at most about
 * as many slots as there are changes: a counting sort by revision (then
 * insertion sort by sub within a revision, a txn's few keys), O(n). A sparse
 * span (only from hand-made input) falls back to a comparison sort.
 */
function changeOrder(
  revs: Float64Array,
  subs: Float64Array,
  compacted: number,
  revision: number,
): Uint32Array {
  const n = revs.length;
  const order = new Uint32Array(n);
  const span = revision - compacted;
  if (span > 2 * n + 1024) {
    for (let i = 0; i < n; i++) order[i] = i;
    return order.sort(
      (a, b) =>
        (revs[a] as number) - (revs[b] as number) || (subs[a] as number) - (subs[b] as number),
    );
  }
  // Slot s holds revision compacted + 1 + s; begin[s] is where it starts in `order`.
  const begin = new Uint32Array(span);
  for (let i = 0; i < n; i++) (begin[(revs[i] as number) - compacted - 1] as number)++;
  let sum = 0;
  for (let s = 0; s < span; s++) {
    const c = begin[s] as number;
    begin[s] = sum;
    sum += c;
  }
  const next = begin.slice();
  for (let i = 0; i < n; i++) {
    const s = (revs[i] as number) - compacted - 1;
    const at = next[s] as number;
    next[s] = at + 1;
    order[at] = i;
    // Insertion sort by sub among this revision's changes placed so far.
    for (let k = at; k > (begin[s] as number); k--) {
      const prev = order[k - 1] as number;
      if ((subs[prev] as number) <= (subs[i] as number)) break;
      order[k] = prev;
      order[k - 1] = i;
    }
  }
  return order;
}

/**
 * What one kept version counts toward the store's size (the KV quota): its
 * key's bytes, its value's bytes (0 for a delete tombstone) and
 * `limits.kvVersionOverheadBytes` for its numbers and index entries. The key
 * counts once per version, as in a log of changes. (Keys and values are byte
 * strings, one UTF-16 unit per byte, see bytes.ts: their lengths are bytes.)
 */
export function versionBytes(keyBytes: number, valueBytes: number): number {
  return keyBytes + valueBytes + limits.kvVersionOverheadBytes;
}

/** Byte strings order like their bytes (see bytes.ts). */
function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The KeyValue of a live version of `keyStr` (bytes built here, owned by the caller). */
export function kvOf(keyStr: string, v: Version, keysOnly = false): KeyValue {
  return {
    key: fromByteString(keyStr),
    value: keysOnly || v.value === undefined ? EMPTY_BYTES : fromByteString(v.value),
    createRevision: v.createRevision,
    modRevision: v.rev,
    version: v.version,
    lease: v.lease,
  };
}

function eventOf(keyStr: string, cur: Version, prev: Version | undefined): KvEvent {
  const type = cur.value === undefined ? 'DELETE' : 'PUT';
  const kv = kvOf(keyStr, cur);
  return prev === undefined ? { type, kv } : { type, kv, prevKv: kvOf(keyStr, prev) };
}

/** Index of the newest version with rev <= `rev`, or -1. */
function latestAtOrBelow(hist: readonly Version[], rev: number): number {
  let lo = 0;
  let hi = hist.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((hist[mid] as Version).rev <= rev) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** Index of the first entry of ascending `revs` above `rev`. */
function firstAbove(revs: readonly number[], rev: number): number {
  let lo = 0;
  let hi = revs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((revs[mid] as number) <= rev) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The key's live version at `rev`, if any. */
function versionAt(hist: readonly Version[], rev: number): Version | undefined {
  const last = hist[hist.length - 1];
  const v = last !== undefined && last.rev <= rev ? last : hist[latestAtOrBelow(hist, rev)];
  return v?.value === undefined ? undefined : v;
}

/** True if byte string `k` is in `range`. */
export function inRange(range: ResolvedRange, k: string): boolean {
  if (range.single) return k === range.start;
  return k >= range.start && (range.end === undefined || k < range.end);
}
