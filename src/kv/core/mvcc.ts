/**
 * The multi-version keyspace: one global revision, a B+ tree of keys in byte
 * order, and per key its history of versions (puts and delete tombstones) since
 * the last compaction. Past reads binary-search a key's history; watch replays
 * read a log of the events of each revision, trimmed by compaction.
 *
 * Writes happen in a batch that becomes one revision: `beginWrite()`, any
 * number of `put`/`delete`, then `endWrite()`, which returns the batch's events
 * and bumps the revision only if something changed. Callers validate first:
 * this class asserts its invariants and never refuses input.
 *
 * ```ts
 * const mvcc = new MvccStore();
 * mvcc.beginWrite();
 * mvcc.put(kvKey('a'), kvKey('1'), 0);
 * const events = mvcc.endWrite();         // [{ type: 'PUT', kv: { modRevision: 1, ... } }]
 * mvcc.scan({ start: 'a', end: undefined, single: false }, 1, (kv) => ...);
 * ```
 */
import btreeModule from 'sorted-btree';
import { assert } from '../../lib/assert.js';
import { EMPTY_BYTES, copyBytes, toByteString } from './bytes.js';
import type { KeyValue, KvEvent } from './types.js';
import type { ResolvedRange } from './validate.js';

// sorted-btree is CommonJS: Node hands ESM its module object (the class on
// `.default`); some bundlers hand the class itself.
type BTreeClass = typeof btreeModule.default;
const BTree: BTreeClass = typeof btreeModule === 'function' ? btreeModule : btreeModule.default;

/** One version of a key: its state from revision `rev` on (`kv` undefined: deleted). */
export interface KeyRecord {
  readonly rev: number;
  /** Order of the change within its revision (a txn writes several keys). */
  readonly sub: number;
  readonly kv: KeyValue | undefined;
}

/** A key and its versions, oldest first. */
export interface KeyEntry {
  readonly key: Uint8Array;
  readonly hist: KeyRecord[];
}

interface LogEntry {
  readonly revision: number;
  readonly events: KvEvent[];
}

/** The MVCC keyspace (see file comment). */
export class MvccStore {
  private readonly index = new BTree<string, KeyEntry>();
  /** Keys whose history compaction may shorten (more than one record, or a tombstone). */
  private readonly compactable = new Set<string>();
  private log: LogEntry[] = [];
  private rev = 0;
  private compacted = 0;
  private live = 0;
  private pending: { rev: number; sub: number; events: KvEvent[] } | undefined;

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

  /** Starts a batch of changes that will share one revision. */
  beginWrite(): void {
    assert(this.pending === undefined, 'write batch already open');
    this.pending = { rev: this.rev + 1, sub: 0, events: [] };
  }

  /** Ends the batch: bumps the revision if anything changed, logs and returns the events. */
  endWrite(): KvEvent[] {
    const p = this.pending;
    assert(p !== undefined, 'no write batch open');
    this.pending = undefined;
    if (p.events.length === 0) return [];
    this.rev = p.rev;
    this.log.push({ revision: p.rev, events: p.events });
    return p.events;
  }

  /** The latest state of a key (including the open batch's changes). */
  current(keyStr: string): KeyValue | undefined {
    const e = this.index.get(keyStr);
    return e === undefined ? undefined : e.hist[e.hist.length - 1]?.kv;
  }

  /** Writes `key` in the open batch. Returns the previous state. */
  put(key: Uint8Array, value: Uint8Array, lease: number): KeyValue | undefined {
    const p = this.pending;
    assert(p !== undefined, 'put outside a write batch');
    const keyStr = toByteString(key);
    let entry = this.index.get(keyStr);
    if (entry === undefined) {
      entry = { key: copyBytes(key), hist: [] };
      this.index.set(keyStr, entry);
    }
    const last = entry.hist[entry.hist.length - 1];
    assert(last === undefined || last.rev < p.rev, 'a key written twice in one revision');
    const prev = last?.kv;
    const kv: KeyValue = {
      key: entry.key,
      value: copyBytes(value),
      createRevision: prev === undefined ? p.rev : prev.createRevision,
      modRevision: p.rev,
      version: prev === undefined ? 1 : prev.version + 1,
      lease,
    };
    entry.hist.push({ rev: p.rev, sub: p.sub++, kv });
    if (prev === undefined) this.live++;
    if (entry.hist.length > 1) this.compactable.add(keyStr);
    p.events.push(prev === undefined ? { type: 'PUT', kv } : { type: 'PUT', kv, prevKv: prev });
    return prev;
  }

  /** Deletes `keyStr` in the open batch if it exists. Returns its last state. */
  delete(keyStr: string): KeyValue | undefined {
    const p = this.pending;
    assert(p !== undefined, 'delete outside a write batch');
    const entry = this.index.get(keyStr);
    const last = entry?.hist[entry.hist.length - 1];
    if (entry === undefined || last?.kv === undefined) return undefined;
    assert(last.rev < p.rev, 'a key written twice in one revision');
    const prev = last.kv;
    entry.hist.push({ rev: p.rev, sub: p.sub++, kv: undefined });
    this.live--;
    this.compactable.add(keyStr);
    p.events.push({ type: 'DELETE', kv: tombstone(entry.key, p.rev), prevKv: prev });
    return prev;
  }

  /**
   * Calls `visit` for each key in `range` that exists at revision `rev`
   * (Infinity: the latest, open batch included), in byte order; stops when
   * `visit` returns false. The caller checked `rev` against compaction.
   */
  scan(range: ResolvedRange, rev: number, visit: (kv: KeyValue, keyStr: string) => boolean): void {
    if (range.single) {
      const e = this.index.get(range.start);
      const kv = e === undefined ? undefined : stateAt(e.hist, rev);
      if (kv !== undefined) visit(kv, range.start);
      return;
    }
    const high = range.end;
    for (const [k, e] of this.index.entries(range.start)) {
      if (high !== undefined && k >= high) break;
      const kv = stateAt(e.hist, rev);
      if (kv !== undefined && !visit(kv, k)) break;
    }
  }

  /**
   * Drops history below `revision`: per key, only the newest version at or
   * below it survives (a tombstone there is dropped with its key); the event
   * log keeps revisions above it. The caller checked the bounds.
   */
  compact(revision: number): void {
    assert(this.pending === undefined, 'compact inside a write batch');
    assert(revision > this.compacted && revision <= this.rev, 'compact revision out of bounds');
    this.compacted = revision;
    for (const keyStr of this.compactable) {
      const e = this.index.get(keyStr);
      assert(e !== undefined, 'compactable key missing from the index');
      const hist = e.hist;
      let keepFrom = latestAtOrBelow(hist, revision);
      if (keepFrom < 0) continue;
      if ((hist[keepFrom] as KeyRecord).kv === undefined) keepFrom++;
      if (keepFrom > 0) hist.splice(0, keepFrom);
      if (hist.length === 0) {
        this.index.delete(keyStr);
        this.compactable.delete(keyStr);
      } else if (hist.length === 1 && hist[0]?.kv !== undefined) {
        this.compactable.delete(keyStr);
      }
    }
    const firstKept = this.log.findIndex((l) => l.revision > revision);
    this.log = firstKept < 0 ? [] : this.log.slice(firstKept);
  }

  /**
   * Events with revision >= `startRevision` on keys in `range`, oldest first.
   * The caller checked that `startRevision` is above the compacted revision.
   */
  eventsSince(range: ResolvedRange, startRevision: number): KvEvent[] {
    const out: KvEvent[] = [];
    let lo = 0;
    let hi = this.log.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.log[mid] as LogEntry).revision < startRevision) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.log.length; i++) {
      for (const ev of (this.log[i] as LogEntry).events) {
        if (inRange(range, toByteString(ev.kv.key))) out.push(ev);
      }
    }
    return out;
  }

  /** Every key entry in byte order (for snapshots). */
  *entries(): IterableIterator<[string, KeyEntry]> {
    yield* this.index.entries();
  }

  /**
   * Replaces the whole state (restore from a snapshot): key entries in byte
   * order, the revision and the compacted revision. Rebuilds the event log.
   */
  load(entries: Iterable<KeyEntry>, revision: number, compactedRevision: number): void {
    assert(this.pending === undefined, 'load inside a write batch');
    this.index.clear();
    this.compactable.clear();
    this.rev = revision;
    this.compacted = compactedRevision;
    this.live = 0;
    const records: { rec: KeyRecord; prev: KeyValue | undefined; key: Uint8Array }[] = [];
    for (const e of entries) {
      const keyStr = toByteString(e.key);
      this.index.set(keyStr, e);
      const last = e.hist[e.hist.length - 1];
      if (last?.kv !== undefined) this.live++;
      if (e.hist.length > 1 || (last !== undefined && last.kv === undefined)) {
        this.compactable.add(keyStr);
      }
      e.hist.forEach((rec, i) => {
        if (rec.rev > compactedRevision) records.push({ rec, prev: e.hist[i - 1]?.kv, key: e.key });
      });
    }
    records.sort((a, b) => a.rec.rev - b.rec.rev || a.rec.sub - b.rec.sub);
    this.log = [];
    for (const { rec, prev, key } of records) {
      const ev: KvEvent =
        rec.kv === undefined
          ? prev === undefined
            ? { type: 'DELETE', kv: tombstone(key, rec.rev) }
            : { type: 'DELETE', kv: tombstone(key, rec.rev), prevKv: prev }
          : prev === undefined
            ? { type: 'PUT', kv: rec.kv }
            : { type: 'PUT', kv: rec.kv, prevKv: prev };
      const tail = this.log[this.log.length - 1];
      if (tail !== undefined && tail.revision === rec.rev) tail.events.push(ev);
      else this.log.push({ revision: rec.rev, events: [ev] });
    }
  }
}

/** The kv a DELETE event carries. */
function tombstone(key: Uint8Array, rev: number): KeyValue {
  return { key, value: EMPTY_BYTES, createRevision: 0, modRevision: rev, version: 0, lease: 0 };
}

/** Index of the newest record with rev <= `rev`, or -1. */
function latestAtOrBelow(hist: readonly KeyRecord[], rev: number): number {
  let lo = 0;
  let hi = hist.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((hist[mid] as KeyRecord).rev <= rev) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** The key's state at `rev`. */
function stateAt(hist: readonly KeyRecord[], rev: number): KeyValue | undefined {
  const last = hist[hist.length - 1];
  if (last !== undefined && last.rev <= rev) return last.kv;
  const i = latestAtOrBelow(hist, rev);
  return i < 0 ? undefined : (hist[i] as KeyRecord).kv;
}

/** True if byte string `k` is in `range`. */
export function inRange(range: ResolvedRange, k: string): boolean {
  if (range.single) return k === range.start;
  return k >= range.start && (range.end === undefined || k < range.end);
}
