/**
 * State checks of the KV simulation, fed by every replica as it applies:
 *
 * - **the revision log**: the watch events of each revision, recorded by the
 *   first replica to apply it and compared on every other. Revisions must be
 *   contiguous (a change bumps the store revision by exactly one), a PUT
 *   event's modRevision is its revision, and from the log the state of any
 *   key at any revision is known ({@link KvStateChecks.stateAt}), which the
 *   workload's results are checked against (see workload.ts);
 * - **exactly-once**: every value the simulation writes is unique, so a value
 *   PUT at two revisions means one client write was applied twice;
 * - **replica states**: the KV store's snapshot bytes at equal applied index
 *   are equal on every replica, compared at sampled indexes, at every
 *   compaction, every restore, and at the end of the run. Snapshots are
 *   deterministic (equal states, equal bytes), so this compares whole states:
 *   MVCC history, leases, sessions;
 * - **watch replay**: a replica's change history (`eventsSince`, what
 *   watches catch up from) equals the revision log since its compacted
 *   revision, after a restore and at the end, and every event's previous
 *   value is the key's state just before.
 *
 * ```ts
 * const checks = new KvStateChecks({ sampleEvery: 8, counts });
 * checks.onEvents(node, revision, events);      // each applied change (replica.ts)
 * checks.onState(node, index, kvSnapshotBytes, 'sampled');
 * checks.stateAt('k0', 17);                      // { value: 'c1.4', modRevision: 15 } or null
 * ```
 */
import type { NodeId } from '../../lib/ids.js';
import { RANGE_END_ALL, kvText } from '../../kv/core/bytes.js';
import type { KvStateMachine } from '../../kv/core/state-machine.js';
import type { KvEvent } from '../../kv/core/types.js';
import { CheckFailure } from '../scenario.js';

/** A key's state at some revision: its value and the revision that wrote it; null if absent. */
export type KeyState = { readonly value: string; readonly modRevision: number } | null;

/** One change of one key in the revision log. */
interface Change {
  readonly revision: number;
  /** null: deleted. */
  readonly value: string | null;
}

/** What a replica must expose for the sampled state comparison. */
export interface KvStateSource {
  readonly index: number;
  kvSnapshot(): Uint8Array;
}

/** Options for {@link KvStateChecks}. */
export interface KvStateChecksOptions {
  /** Compare whole states every this many applied entries (1: every entry). */
  readonly sampleEvery: number;
  readonly counts: Record<string, number>;
}

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

/** Events as one line (without previous values, which a replay may lack after compaction). */
function renderEvents(events: readonly KvEvent[]): string {
  return events
    .map((e) => `${e.type} ${kvText(e.kv.key)}=${kvText(e.kv.value)}@${e.kv.modRevision}`)
    .join(', ');
}

/** FNV-1a over 32 bits of `bytes`. */
function hashBytes(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ (bytes[i] as number), 16777619) >>> 0;
  return h;
}

/** The revision log and replica-state checks of one KV simulation (see the file header). */
export class KvStateChecks {
  /** Highest revision recorded. */
  maxRevision = 0;
  private readonly eventsAt = new Map<number, { rendered: string; node: NodeId }>();
  private readonly byKey = new Map<string, Change[]>();
  private readonly writtenAt = new Map<string, number>();
  private readonly states = new Map<
    number,
    { hash: number; length: number; node: NodeId; why: string }
  >();

  constructor(private readonly o: KvStateChecksOptions) {}

  /** A replica applied a change at `revision` with these events. */
  onEvents(node: NodeId, revision: number, events: readonly KvEvent[]): void {
    const rendered = renderEvents(events);
    this.checkPrevKvs(node, revision, events, 'applied');
    const known = this.eventsAt.get(revision);
    if (known !== undefined) {
      if (known.rendered !== rendered) {
        throw new CheckFailure(
          `replicas differ at revision ${revision}: ${known.node} applied [${known.rendered}], ${node} [${rendered}]`,
        );
      }
      return;
    }
    if (revision !== this.maxRevision + 1) {
      throw new CheckFailure(
        `${node} applied revision ${revision} when the highest applied anywhere is ${this.maxRevision}`,
      );
    }
    this.maxRevision = revision;
    this.eventsAt.set(revision, { rendered, node });
    bump(this.o.counts, 'kv revisions');
    for (const e of events) {
      const key = kvText(e.kv.key);
      if (e.kv.modRevision !== revision) {
        throw new CheckFailure(
          `${node}: event ${e.type} on ${key} at revision ${revision} has modRevision ${e.kv.modRevision}`,
        );
      }
      const value = e.type === 'PUT' ? kvText(e.kv.value) : null;
      let changes = this.byKey.get(key);
      if (changes === undefined) this.byKey.set(key, (changes = []));
      changes.push({ revision, value });
      if (value === null) continue;
      // Exactly-once: every value the simulation writes is unique to one client write.
      const before = this.writtenAt.get(value);
      if (before !== undefined) {
        throw new CheckFailure(
          `exactly-once: value ${JSON.stringify(value)} of key ${key} was written at revision ` +
            `${before} and again at ${revision} (one write applied twice)`,
        );
      }
      this.writtenAt.set(value, revision);
    }
  }

  /**
   * Watch replay: the store's change history since its compacted revision
   * (`eventsSince`, what a watch catches up from) holds exactly the revision
   * log's events, each previous value as the log had it. Run on restored
   * replicas and on every replica at the end.
   */
  checkReplay(node: NodeId, store: KvStateMachine, why: string): void {
    bump(this.o.counts, `kv watch replays compared (${why})`);
    const from = store.compactedRevision + 1;
    const events = store.eventsSince({ key: Uint8Array.of(0), rangeEnd: RANGE_END_ALL }, from);
    const byRevision = new Map<number, KvEvent[]>();
    for (const e of events) {
      let list = byRevision.get(e.kv.modRevision);
      if (list === undefined) byRevision.set(e.kv.modRevision, (list = []));
      list.push(e);
    }
    for (let r = from; r <= store.revision; r++) {
      const have = renderEvents(byRevision.get(r) ?? []);
      const want = this.eventsAt.get(r)?.rendered;
      if (have !== want) {
        throw new CheckFailure(
          `${node} (${why}): watch replay from revision ${from} has [${have}] at revision ${r}, ` +
            `the revision log [${want ?? 'nothing'}]`,
        );
      }
      this.checkPrevKvs(node, r, byRevision.get(r) ?? [], `replayed (${why})`);
    }
  }

  /** Each event's previous value, when it carries one, is the key's state just before. */
  private checkPrevKvs(
    node: NodeId,
    revision: number,
    events: readonly KvEvent[],
    what: string,
  ): void {
    for (const e of events) {
      if (e.prevKv === undefined) continue;
      const key = kvText(e.kv.key);
      const before = this.stateAt(key, revision - 1);
      const prev = { value: kvText(e.prevKv.value), modRevision: e.prevKv.modRevision };
      if (
        before === null ||
        before.value !== prev.value ||
        before.modRevision !== prev.modRevision
      ) {
        throw new CheckFailure(
          `${node}: ${what} event ${e.type} on ${key} at revision ${revision} has previous value ` +
            `${JSON.stringify(prev.value)}@${prev.modRevision}, but the key was ` +
            `${before === null ? 'absent' : `${JSON.stringify(before.value)}@${before.modRevision}`}`,
        );
      }
    }
  }

  /** After each applied entry: compares the whole state at sampled indexes. */
  onApplied(node: NodeId, replica: KvStateSource): void {
    if (replica.index % this.o.sampleEvery !== 0) return;
    this.onState(node, replica.index, replica.kvSnapshot(), 'sampled');
  }

  /** Replica `node` holds the KV state `bytes` at applied index `index`: equal to every other's there. */
  onState(node: NodeId, index: number, bytes: Uint8Array, why: string): void {
    bump(this.o.counts, `kv states compared (${why})`);
    const hash = hashBytes(bytes);
    const known = this.states.get(index);
    if (known === undefined) {
      this.states.set(index, { hash, length: bytes.length, node, why });
      return;
    }
    if (known.hash !== hash || known.length !== bytes.length) {
      throw new CheckFailure(
        `replica states differ at applied index ${index}: ${known.node} (${known.why}, ` +
          `${known.length} bytes) and ${node} (${why}, ${bytes.length} bytes)`,
      );
    }
  }

  /** Key `key` as of `revision` per the revision log (null if absent then). */
  stateAt(key: string, revision: number): KeyState {
    const changes = this.byKey.get(key);
    if (changes === undefined) return null;
    // The last change at or below `revision` (binary search; changes are in revision order).
    let lo = 0;
    let hi = changes.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((changes[mid] as Change).revision <= revision) lo = mid + 1;
      else hi = mid;
    }
    const c = changes[lo - 1];
    if (c === undefined || c.value === null) return null;
    return { value: c.value, modRevision: c.revision };
  }

  /** Revision of the last change of `key` in the log (0 if never changed). */
  lastChange(key: string): number {
    const changes = this.byKey.get(key);
    return changes === undefined ? 0 : (changes[changes.length - 1] as Change).revision;
  }

  /** True if the log has a change of `key` exactly at `revision` (to `value`, or a delete when null). */
  changedAt(key: string, revision: number, value: string | null): boolean {
    const changes = this.byKey.get(key);
    return changes?.some((c) => c.revision === revision && c.value === value) ?? false;
  }
}
