/**
 * The KV server: the handlers of {@link KvService} on one node, over its Raft
 * node and the replicated {@link KvStateMachine}. Every node serves it.
 *
 * ```ts
 * const stateMachine = new ObservedStateMachine(modules);     // the node's state machine, observable
 * const raft = await RaftNode.start({ ..., stateMachine });
 * const kv = new KvServer({ raft, stateMachine, rpc, peerRpc: (id) => rpcAddressOf(id), electionTimeoutMs });
 * kv.start();                                                 // serves Kv on `rpc`, runs leader duties
 * await kv.close();
 * ```
 *
 * - **Writes** (put, deleteRange, txn, compact, lease grant/revoke/keep-alive,
 *   sessionOpen, sessionEnd) are proposed by the leader only; a follower
 *   answers NOT_LEADER (definite) with `details.leaderId` and
 *   `details.leaderRpc` ("host:port"). The proposal carries the caller's
 *   session, so a retried write is applied once. A refusal by the state
 *   machine becomes a CohortError with its code. Every entry this server
 *   proposes carries its `quotaBytes` (the storage quota; see
 *   core/state-machine.ts): while the NOSPACE alarm is raised the leader
 *   refuses a write that adds values at once with NO_SPACE, without
 *   proposing it.
 * - **Log time**: every proposal carries `timeMs`, the leader's monotonic
 *   clock carried on from the log time it found on taking over (read once
 *   its log is applied, with the lease clock); sessions expire by it
 *   (Raft dissertation §6.3), so no replica's own clock decides.
 * - **Reads** are linearizable by default (RaftNode.read: ReadIndex, leader
 *   only, so followers redirect) or `serializable` from the local state of any
 *   node. A range answer is cut at kvRangeBytesMax bytes of keys and values
 *   (at least one key is always returned) with `more: true`; the caller
 *   continues from the last key.
 * - **Leases**: the leader runs a {@link LeaseClock} (promoted once its log is
 *   applied, via a ReadIndex read), proposes `leaseExpire` when a deadline
 *   passes and `leaseCheckpoint` every kvLeaseCheckpointMs; it drops the clock
 *   when it loses leadership. Followers never expire anything.
 * - **Compaction**: the leader proposes `compact` to keep the last
 *   kvHistoryRevisionsKept revisions.
 * - **Watches**: one server stream per watch: a `created` item, catch-up from
 *   `startRevision` (eventsSince, read a page per item as the stream is
 *   consumed), then live events from applied entries, and progress
 *   notifications while idle. Live events queue per watcher until its
 *   stream takes them; a watcher whose backlog passes kvWatchBufferEventsMax
 *   events or kvWatchBufferBytesMax bytes (its client reads too slowly or
 *   not at all) is cancelled, and so are the largest backlogs while all
 *   watchers of the node hold more than kvWatchNodeBufferBytesMax: its queue
 *   is dropped and its stream ends, after what it was sent, with a definite
 *   OVERLOADED (`details.reason: 'watcherTooSlow'`, `resumeRevision`,
 *   `compactedRevision`); `counters` counts them. A snapshot installed on
 *   this node ends every watch (UNAVAILABLE). The client resumes from its
 *   last revision + 1 either way, from history (COMPACTED if it is gone).
 * - **Snapshots** (`snapshot`, for `cohort snapshot save`): the store as of a
 *   linearizable read (or this node's state, serializable), encoded while
 *   entries keep applying and streamed as meta, chunks and a SHA-256.
 *   Besides its queue, a stream holds at most one item (about
 *   kvRangeBytesMax) and the RPC credit window in the transport.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { assert } from '../lib/assert.js';
import { RealClock } from '../lib/clock.js';
import type { Clock, TimerHandle } from '../lib/clock.js';
import { CohortError, isCohortError } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import { limits } from '../lib/limits.js';
import type { Entry } from '../raft/core/types.js';
import type { RaftNode } from '../raft/raft-node.js';
import type { RpcNode } from '../rpc/node.js';
import type { CallContext, Handlers } from '../rpc/service.js';
import type { PeerAddress } from '../transport/tcp-transport.js';
import { KvRaftStateMachine, isModuleApplied } from '../host/kv-state-machine.js';
import type { NodeApplied } from '../host/kv-state-machine.js';
import type { NodeModule } from '../host/modules.js';
import { keyNeeds } from './access.js';
import type { KvAccessControl } from './access.js';
import { compareBytes } from './core/bytes.js';
import { decodeKvEntry, encodeKvEntry } from './core/codec.js';
import { LeaseClock } from './core/lease-clock.js';
import { kvBytes } from './core/reply-size.js';
import type {
  KvApplied,
  KvCommand,
  KvEntry,
  KvEvent,
  KvResult,
  RangeRequest,
  RangeResult,
  SessionTag,
  TxnOp,
} from './core/types.js';
import { resolveRange } from './core/validate.js';
import { KvService } from './service.js';
import type { SnapshotItem, WatchItem } from './service.js';

/**
 * The node's state machine with hooks: the KV server sees every applied entry
 * (watch events, the leader's lease clock) and every snapshot restore.
 */
export class ObservedStateMachine extends KvRaftStateMachine {
  /** Called after each applied entry, with what apply returned. */
  onApplied: ((applied: NodeApplied, entry: Entry) => void) | undefined;
  /** Called after the state was replaced by a snapshot. */
  onRestored: (() => void) | undefined;

  constructor(modules: readonly NodeModule[] = []) {
    super(modules);
  }

  override apply(entry: Entry): NodeApplied {
    const out = super.apply(entry);
    this.onApplied?.(out, entry);
    return out;
  }

  override restore(bytes: Uint8Array): void {
    super.restore(bytes);
    this.onRestored?.();
  }
}

/** Keys encoded per event-loop turn by a snapshot stream (~3 ms per 10k keys): the node keeps answering meanwhile. */
const snapshotStepKeys = 10_000;

/** Options of {@link KvServer}. */
export interface KvServerOptions {
  readonly raft: RaftNode<KvRaftStateMachine>;
  readonly stateMachine: ObservedStateMachine;
  readonly rpc: RpcNode;
  /** The RPC address of a node (for NOT_LEADER redirects); undefined if unknown. */
  readonly peerRpc: (id: NodeId) => PeerAddress | undefined;
  /** Extra lease time a new leader grants (about an election timeout). */
  readonly electionTimeoutMs: number;
  readonly logger?: Logger;
  /** Time and timers of the leader duties, watches and election waits (default: the real clock). */
  readonly clock?: Clock;
  /** Monotonic milliseconds (default: the clock's). */
  readonly now?: () => number;
  /** Revisions of history kept by periodic compaction (default kvHistoryRevisionsKept; 0: never compact). */
  readonly historyRevisionsKept?: number;
  /** Compaction check period (default kvCompactCheckMs). */
  readonly compactCheckMs?: number;
  /** Lease checkpoint period (default kvLeaseCheckpointMs). */
  readonly leaseCheckpointMs?: number;
  /** Lease expiry check period (default kvLeaseTickMs). */
  readonly leaseTickMs?: number;
  /** Events buffered per watch (default kvWatchBufferEventsMax). */
  readonly watchBufferEventsMax?: number;
  /** The store's storage quota in bytes, carried in every entry proposed here (default kvQuotaBytesDefault; 0: none). */
  readonly quotaBytes?: number;
  /** Bytes buffered per watch (default kvWatchBufferBytesMax). */
  readonly watchBufferBytesMax?: number;
  /** Bytes buffered by all watches of this node together (default kvWatchNodeBufferBytesMax). */
  readonly watchNodeBufferBytesMax?: number;
  /**
   * Who may do what (access.ts): checked on the leader before a write is
   * proposed, before a read reads and before a watch starts; a refusal is a
   * definite PERMISSION_DENIED and changes nothing. Default: everyone may do
   * everything.
   */
  readonly access?: KvAccessControl;
}

/** Copies the fields of `src` named in `keys` that are defined (drops unknown fields from the wire). */
function pick<T extends object>(src: T, keys: readonly (keyof T)[]): Partial<T> {
  const out: Partial<T> = {};
  for (const k of keys) if (src[k] !== undefined) out[k] = src[k];
  return out;
}

const rangeKeys = [
  'key',
  'rangeEnd',
  'limit',
  'sortTarget',
  'sortOrder',
  'revision',
  'countOnly',
  'keysOnly',
] as const;

/**
 * Cuts a range answer at kvRangeBytesMax bytes of keys and values, each
 * key-value counted with its encoding overhead (reply-size.ts), so many tiny
 * keys cannot make a reply larger than a frame (at least one key stays).
 */
export function capRange(r: RangeResult, bytesMax = limits.kvRangeBytesMax): RangeResult {
  let bytes = 0;
  for (let i = 0; i < r.kvs.length; i++) {
    const kv = r.kvs[i];
    assert(kv !== undefined, 'range result index');
    bytes += kvBytes(kv.key.length, kv.value.length);
    if (bytes > bytesMax && i > 0) return { ...r, kvs: r.kvs.slice(0, i), more: true };
  }
  return r;
}

/** The CohortError of a refused command. */
function refusal(applied: Extract<KvApplied, { ok: false }>): CohortError {
  const e = applied.error;
  return new CohortError(e.code, e.message, { definite: e.definite, details: e.details });
}

interface WatchBatch {
  readonly revision: number;
  readonly events: readonly KvEvent[];
  /** eventBytes of the events. */
  readonly bytes: number;
}

/** Bytes one event holds for a watcher: its key-value and, if it keeps it, its prevKv (reply-size.ts). */
function eventBytes(ev: KvEvent, prevKv: boolean): number {
  const p = prevKv ? ev.prevKv : undefined;
  return (
    kvBytes(ev.kv.key.length, ev.kv.value.length) +
    (p === undefined ? 0 : kvBytes(p.key.length, p.value.length))
  );
}

/** What every watcher on a node holds queued together (kvWatchNodeBufferBytesMax bounds it). */
interface WatchBudget {
  bytes: number;
}

/** The bounds of one watcher's backlog. */
interface WatchBounds {
  readonly eventsMax: number;
  readonly bytesMax: number;
}

/** One live watch: its key range and a bounded queue of event batches. */
class Watcher {
  readonly queue: WatchBatch[] = [];
  queuedEvents = 0;
  queuedBytes = 0;
  error: CohortError | undefined;
  /** Every event up to this revision was handed to the stream (resume from it + 1). */
  sentRevision: number;
  private wake: (() => void) | undefined;

  constructor(
    readonly key: Uint8Array,
    /** undefined: one key; null: to the end of the key space. */
    readonly end: Uint8Array | null | undefined,
    readonly prevKv: boolean,
    /** Events below this revision are not delivered (a start revision in the future). */
    readonly minRevision: number,
    sentRevision: number,
    private readonly budget: WatchBudget,
  ) {
    this.sentRevision = sentRevision;
  }

  matches(key: Uint8Array): boolean {
    if (this.end === undefined) return compareBytes(key, this.key) === 0;
    if (compareBytes(key, this.key) < 0) return false;
    return this.end === null || compareBytes(key, this.end) < 0;
  }

  /**
   * Queues a batch; false, queueing nothing, if it would take the backlog
   * past `bounds` (a first batch always fits: one revision is never split).
   */
  push(batch: WatchBatch, bounds: WatchBounds): boolean {
    if (this.error !== undefined) return true;
    if (
      this.queue.length > 0 &&
      (this.queuedEvents + batch.events.length > bounds.eventsMax ||
        this.queuedBytes + batch.bytes > bounds.bytesMax)
    ) {
      return false;
    }
    this.queue.push(batch);
    this.queuedEvents += batch.events.length;
    this.queuedBytes += batch.bytes;
    this.budget.bytes += batch.bytes;
    this.notify();
    return true;
  }

  /** Takes the oldest batch. */
  shift(): WatchBatch | undefined {
    const b = this.queue.shift();
    if (b === undefined) return undefined;
    this.queuedEvents -= b.events.length;
    this.queuedBytes -= b.bytes;
    this.budget.bytes -= b.bytes;
    return b;
  }

  /** Ends the watch with `err` (delivered after what the stream already sent); drops the backlog. */
  fail(err: CohortError): void {
    this.error ??= err;
    this.budget.bytes -= this.queuedBytes;
    this.queue.length = 0;
    this.queuedEvents = 0;
    this.queuedBytes = 0;
    this.notify();
  }

  notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Resolves when something was queued, the watcher failed, or `ms` passed on `clock` (0: never). */
  wait(ms: number, signal: AbortSignal, clock: Clock): Promise<void> {
    if (this.queue.length > 0 || this.error !== undefined || signal.aborted) {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = ms > 0 ? clock.setTimer(ms, done) : undefined;
      const onAbort = (): void => done();
      signal.addEventListener('abort', onAbort, { once: true });
      function done(): void {
        if (timer !== undefined) clock.clearTimer(timer);
        signal.removeEventListener('abort', onAbort);
        resolve();
      }
      this.wake = done;
    });
  }
}

/** Counters of a {@link KvServer}'s watches. */
export interface KvWatchCounters {
  /** Watch streams cancelled because their backlog passed the watcher's bounds (too slow). */
  watchersCutOffSlow: number;
  /** Watch streams cancelled to bring the node's watch backlog under kvWatchNodeBufferBytesMax. */
  watchersCutOffNodeBudget: number;
}

/** The KV service on one node (see the file comment). */
export class KvServer {
  private readonly raft: RaftNode<KvRaftStateMachine>;
  private readonly sm: ObservedStateMachine;
  private readonly log: Logger | undefined;
  /** Time and timers (the lease clock is `clock`). */
  private readonly time: Clock;
  private readonly now: () => number;
  /** Watchers fed by applied entries (a cut-off one is not, though its stream may not have ended yet). */
  private readonly watchers = new Set<Watcher>();
  /** Watch streams open (what kvWatchesMax bounds). */
  private watchStreams = 0;
  private readonly watchBounds: WatchBounds;
  private readonly watchNodeBytesMax: number;
  private readonly watchBudget: WatchBudget = { bytes: 0 };
  /** Live counters of the watches. */
  readonly counters: KvWatchCounters = { watchersCutOffSlow: 0, watchersCutOffNodeBudget: 0 };
  /** What every proposed entry carries (see KvEntry.quotaBytes). */
  private readonly quota: { quotaBytes?: number };
  private clock: LeaseClock | undefined;
  /** This leader's log time: the log's time when it took over, and its clock then. */
  private logClock: { readonly base: number; readonly at: number } | undefined;
  /** The term whose leader duties run (undefined: not leading). */
  private leadingTerm: number | undefined;
  /** The leader duties' timers (each re-armed when it fires), by duty. */
  private readonly timers = new Map<string, TimerHandle>();
  private compacting = false;
  private unsubscribe: (() => void) | undefined;
  private closed = false;

  constructor(private readonly options: KvServerOptions) {
    this.raft = options.raft;
    this.sm = options.stateMachine;
    this.log = options.logger;
    const time = options.clock ?? new RealClock();
    this.time = time;
    this.now = options.now ?? (() => time.now());
    this.watchBounds = {
      eventsMax: options.watchBufferEventsMax ?? limits.kvWatchBufferEventsMax,
      bytesMax: options.watchBufferBytesMax ?? limits.kvWatchBufferBytesMax,
    };
    this.watchNodeBytesMax = options.watchNodeBufferBytesMax ?? limits.kvWatchNodeBufferBytesMax;
    const quotaBytes = options.quotaBytes ?? limits.kvQuotaBytesDefault;
    this.quota = quotaBytes > 0 ? { quotaBytes } : {};
  }

  /** Serves the Kv service and starts following leadership. */
  start(): void {
    this.sm.onApplied = (applied, entry) => this.applied(applied, entry);
    this.sm.onRestored = () => this.restored();
    this.options.rpc.serve(KvService, this.handlers());
    this.unsubscribe = this.raft.onStateChange((c) => {
      if (c.role === 'leader') this.lead(c.term);
      else this.stepDown();
    });
    const s = this.raft.status();
    if (this.raft.isLeader()) this.lead(s.term);
  }

  /** Stops leader duties and ends every watch. Idempotent. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    this.unsubscribe?.();
    this.stepDown();
    this.sm.onApplied = undefined;
    this.sm.onRestored = undefined;
    for (const w of this.watchers) w.fail(new CohortError('CLOSED', 'the node is stopping'));
    this.watchers.clear();
    return Promise.resolve();
  }

  /** Watches fed by this node (a cut-off one no longer counts; for status and tests). */
  get watchCount(): number {
    return this.watchers.size;
  }

  /** Bytes of events queued for all watches of this node (bounded by kvWatchNodeBufferBytesMax). */
  get watchBufferedBytes(): number {
    return this.watchBudget.bytes;
  }

  /** True while this node runs a lease clock (it leads and has applied its log). */
  get leaseClockRunning(): boolean {
    return this.clock !== undefined;
  }

  // ------------------------------------------------------------ leadership

  private lead(term: number): void {
    if (this.closed || this.leadingTerm === term) return;
    this.stepDown();
    this.leadingTerm = term;
    this.promoteClock(term);
    const every = (duty: string, ms: number, fn: () => void): void => {
      const arm = (): void => {
        this.timers.set(
          duty,
          this.time.setTimer(ms, () => {
            arm();
            fn();
          }),
        );
      };
      arm();
    };
    every('expire', this.options.leaseTickMs ?? limits.kvLeaseTickMs, () => this.expireLeases());
    every('checkpoint', this.options.leaseCheckpointMs ?? limits.kvLeaseCheckpointMs, () =>
      this.checkpointLeases(),
    );
    const kept = this.options.historyRevisionsKept ?? limits.kvHistoryRevisionsKept;
    if (kept > 0) {
      every('compact', this.options.compactCheckMs ?? limits.kvCompactCheckMs, () =>
        this.compact(kept),
      );
    }
  }

  /**
   * Starts the lease clock of `term`'s leadership. A ReadIndex read completes
   * once this leader has committed an entry of its term and applied everything
   * before it: the lease table is then current, and the clock follows every
   * later entry (see applied()). Tried again while this node still leads.
   */
  private promoteClock(term: number): void {
    this.raft
      .read((sm) => {
        if (this.leadingTerm !== term || !this.raft.isLeader()) return;
        this.clock = LeaseClock.promote(
          sm.kv.leaseList(),
          this.now(),
          this.options.electionTimeoutMs,
        );
        // Every entry of earlier terms is applied: no stamp this leader makes is below theirs.
        this.logClock = { base: sm.kv.logTimeMs, at: this.now() };
        this.log?.debug({ term, leases: this.clock.size }, 'lease clock started');
      })
      .catch((e: unknown) => {
        if (this.closed || this.leadingTerm !== term || !this.raft.isLeader()) return;
        this.log?.debug({ err: e, term }, 'lease clock not started yet; trying again');
        this.time.setTimer(50, () => this.promoteClock(term));
      });
  }

  private stepDown(): void {
    for (const t of this.timers.values()) this.time.clearTimer(t);
    this.timers.clear();
    this.clock = undefined;
    this.logClock = undefined;
    this.leadingTerm = undefined;
  }

  /** The log time to stamp on a proposal (undefined until this leader's log clock runs). */
  private stamp(): number | undefined {
    const c = this.logClock;
    return c === undefined ? undefined : Math.floor(c.base + Math.max(0, this.now() - c.at));
  }

  /** A KV entry for a proposal: the command, its session if any, the quota, the log time if known. */
  private entry(command: KvCommand, session?: SessionTag): KvEntry {
    const timeMs = this.stamp();
    return {
      command,
      ...(session === undefined ? {} : { session }),
      ...this.quota,
      ...(timeMs === undefined ? {} : { timeMs }),
    };
  }

  /** Proposes a leader-side command; failures are logged (the duty runs again later). */
  private proposeDuty(command: KvCommand, what: string): Promise<unknown> {
    return this.raft.propose(encodeKvEntry(this.entry(command))).catch((e: unknown) => {
      this.log?.debug({ err: e }, `${what} proposal failed`);
    });
  }

  private expireLeases(): void {
    const expire = this.clock?.expired(this.now());
    if (expire === undefined) return;
    this.log?.info({ leases: expire.leases.map((l) => l.id) }, 'leases expired');
    void this.proposeDuty(expire, 'lease expiry');
  }

  private checkpointLeases(): void {
    if (this.clock === undefined || this.clock.size === 0) return;
    void this.proposeDuty(this.clock.checkpoint(this.now()), 'lease checkpoint');
  }

  private compact(kept: number): void {
    const kv = this.sm.kv;
    // Compact in steps of a tenth of the history kept, not on every revision.
    if (this.compacting || kv.revision - kv.compactedRevision < kept + Math.ceil(kept / 10)) return;
    this.compacting = true;
    void this.proposeDuty({ type: 'compact', revision: kv.revision - kept }, 'compaction').finally(
      () => {
        this.compacting = false;
      },
    );
  }

  // ------------------------------------------------------------ applied entries

  private applied(applied: NodeApplied, entry: Entry): void {
    if (isModuleApplied(applied) || !applied.ok || applied.duplicate) return;
    if (this.clock !== undefined) {
      const type = applied.result.type;
      // Only these need the command (their results do not name every lease).
      const command: KvCommand =
        type === 'leaseRevoke' || type === 'leaseExpire'
          ? decodeKvEntry(entry.data).command
          : ({ type } as KvCommand);
      this.clock.onApplied(command, applied, this.now());
    }
    if (this.watchers.size === 0 || applied.events.length === 0) return;
    for (const w of this.watchers) {
      if (applied.revision < w.minRevision) continue;
      let mine: KvEvent[] | undefined;
      let bytes = 0;
      for (const ev of applied.events) {
        if (!w.matches(ev.kv.key)) continue;
        (mine ??= []).push(w.prevKv || ev.prevKv === undefined ? ev : { type: ev.type, kv: ev.kv });
        bytes += eventBytes(ev, w.prevKv);
      }
      if (mine === undefined) continue;
      if (!w.push({ revision: applied.revision, events: mine, bytes }, this.watchBounds)) {
        this.cutOff(w, 'watcher');
      }
    }
    // The node's bound: cut off the largest backlogs until the rest fit.
    while (this.watchBudget.bytes > this.watchNodeBytesMax) {
      let largest: Watcher | undefined;
      for (const w of this.watchers) {
        if (w.queuedBytes > (largest?.queuedBytes ?? 0)) largest = w;
      }
      if (largest === undefined) break;
      this.cutOff(largest, 'node');
    }
  }

  /**
   * Cancels a watch whose backlog passed a bound (etcd cancels a slow
   * watcher too, and tells it where to resume): its queue is dropped, it is
   * no longer fed, and its stream ends, after what it already sent, with a
   * definite OVERLOADED naming the revision to resume from and the oldest
   * one still in history. KvClient resumes it from there by itself.
   */
  private cutOff(w: Watcher, bound: 'watcher' | 'node'): void {
    const resumeRevision = w.sentRevision + 1;
    const compactedRevision = this.sm.kv.compactedRevision;
    const what =
      bound === 'watcher'
        ? `it fell more than ${this.watchBounds.eventsMax} events or ${this.watchBounds.bytesMax} bytes behind`
        : `this node's watches hold more than kvWatchNodeBufferBytesMax ${this.watchNodeBytesMax} bytes and this one held the most`;
    w.fail(
      new CohortError(
        'OVERLOADED',
        `watch cancelled, too slow: ${what}; every event up to revision ${w.sentRevision} was sent: ` +
          `resume from revision ${resumeRevision}` +
          (resumeRevision <= compactedRevision
            ? ` (already compacted: history starts after ${compactedRevision})`
            : ''),
        {
          details: {
            reason: 'watcherTooSlow',
            bound,
            resumeRevision,
            compactedRevision,
            ...(bound === 'watcher'
              ? { eventsMax: this.watchBounds.eventsMax, bytesMax: this.watchBounds.bytesMax }
              : { bytesMax: this.watchNodeBytesMax }),
          },
        },
      ),
    );
    this.watchers.delete(w);
    if (bound === 'watcher') this.counters.watchersCutOffSlow++;
    else this.counters.watchersCutOffNodeBudget++;
    this.log?.debug({ bound, resumeRevision }, 'slow watcher cut off');
  }

  private restored(): void {
    // Events between the old state and the snapshot were never seen here.
    for (const w of this.watchers) {
      w.fail(
        new CohortError(
          'UNAVAILABLE',
          'this node installed a snapshot; resume the watch from the last revision received',
          { details: { reason: 'snapshotInstalled' } },
        ),
      );
    }
    this.watchers.clear();
    // A leader never installs a snapshot, but keep the clock honest if it did.
    if (this.clock !== undefined) {
      this.clock = LeaseClock.promote(
        this.sm.kv.leaseList(),
        this.now(),
        this.options.electionTimeoutMs,
      );
    }
  }

  // ------------------------------------------------------------ requests

  /** The keys attached to lease `id` here (none if it is unknown: the command then fails NOT_FOUND). */
  private leaseKeys(id: number): readonly Uint8Array[] {
    try {
      return this.sm.kv.leaseTimeToLive(id, true).keys ?? [];
    } catch (e) {
      if (isCohortError(e)) return [];
      throw e;
    }
  }

  /**
   * NOT_LEADER naming the leader and its RPC address. Definite (nothing was
   * done: `details.reason` NOT_LEADER) unless `cause` is the Raft node's
   * indefinite one — leadership lost after the command was proposed, or its
   * entry covered by a snapshot (`details.reason` LEADERSHIP_LOST): the
   * command may still commit under the next leader, and the message says so.
   */
  private notLeader(cause?: CohortError): CohortError {
    const leaderId = this.raft.leaderId();
    const addr = leaderId === null ? undefined : this.options.peerRpc(leaderId);
    const leaderRpc = addr === undefined ? null : `${addr.host}:${addr.port}`;
    const leader = leaderId === null ? 'no leader known' : `the leader is ${leaderId}`;
    const definite = cause?.definite ?? true;
    return new CohortError(
      'NOT_LEADER',
      definite
        ? `${this.raft.id} is not the leader (${leader}); nothing was done`
        : `${this.raft.id} lost its leadership after the command was proposed (${leader}): it may still be applied, its outcome is unknown`,
      {
        definite,
        details: {
          reason: definite ? 'NOT_LEADER' : 'LEADERSHIP_LOST',
          ...(cause?.details ?? {}),
          leaderId,
          leaderRpc,
        },
        ...(cause === undefined ? {} : { cause }),
      },
    );
  }

  /**
   * During an election (no leader known) a request waits here, up to two
   * election timeouts or its deadline, for a leader to emerge: true if this
   * node became leader, false (answer NOT_LEADER naming the new one) otherwise.
   * The client is then redirected the moment a leader is known instead of
   * polling the followers.
   */
  private leaderElected(ctx: CallContext): Promise<boolean> {
    if (this.raft.leaderId() !== null || this.closed) return Promise.resolve(false);
    const waitMs = Math.min(2 * this.options.electionTimeoutMs, ctx.remainingMs() - 50);
    if (waitMs <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (): void => {
        this.time.clearTimer(timer);
        off();
        ctx.signal.removeEventListener('abort', done);
        resolve(this.raft.isLeader());
      };
      const timer = this.time.setTimer(waitMs, done);
      const off = this.raft.onStateChange((c) => {
        if (c.leader !== null) done();
      });
      ctx.signal.addEventListener('abort', done, { once: true });
    });
  }

  private rethrow(e: unknown): never {
    if (isCohortError(e) && e.code === 'NOT_LEADER') throw this.notLeader(e);
    throw e;
  }

  /** Throws PERMISSION_DENIED unless the caller may make the key accesses `command` needs. */
  private checkKeys(ctx: CallContext, command: KvCommand | RangeRequest): void {
    this.options.access?.checkKeys(ctx, keyNeeds(command));
  }

  /** Throws PERMISSION_DENIED unless the session `clientId` belongs to the caller (see KvAccessControl.sessionOwner). */
  private checkSession(ctx: CallContext, clientId: string | undefined): void {
    const owner = this.options.access?.sessionOwner(ctx);
    if (owner === undefined || clientId === undefined || clientId.startsWith(`${owner}/`)) return;
    throw new CohortError(
      'PERMISSION_DENIED',
      `session ${JSON.stringify(clientId)} belongs to another user than ${owner}; a user may use only the sessions it opened`,
      { details: { user: owner, session: clientId } },
    );
  }

  /**
   * Proposes a write on the leader: `authorize` (the permission checks) runs
   * there, after the leadership check and before anything is proposed.
   */
  private async write<R extends KvResult>(
    command: KvCommand,
    session: SessionTag | undefined,
    ctx: CallContext,
    authorize: () => void = () => this.checkKeys(ctx, command),
  ): Promise<R> {
    if (!this.raft.isLeader() && !(await this.leaderElected(ctx))) throw this.notLeader();
    this.checkSession(ctx, session?.clientId);
    authorize();
    const entry = this.entry(command, session);
    // The NOSPACE alarm: refused here, before the log (apply would refuse it the same way).
    const noSpace = this.sm.kv.spaceRefusal(entry);
    if (noSpace !== undefined) {
      throw new CohortError(noSpace.code, noSpace.message, {
        definite: noSpace.definite,
        details: noSpace.details,
      });
    }
    let applied: NodeApplied;
    try {
      // No cancellation: once sent, a write's fate is the log's (the client
      // retries under the same session if it gave up waiting).
      applied = await this.raft.propose(encodeKvEntry(entry));
    } catch (e) {
      this.rethrow(e);
    }
    assert(!isModuleApplied(applied), 'a KV entry applied as a module entry');
    if (!applied.ok) throw refusal(applied);
    return applied.result as R;
  }

  /** Reads: `authorize` runs on the node that reads (the leader, or any node for a serializable read) before it reads. */
  private async read<T>(
    serializable: boolean | undefined,
    ctx: CallContext,
    fn: (sm: KvRaftStateMachine) => T,
    authorize: () => void = () => {},
  ): Promise<T> {
    if (serializable === true) {
      authorize();
      return this.raft.read(fn, { consistency: 'serializable' });
    }
    if (!this.raft.isLeader() && !(await this.leaderElected(ctx))) throw this.notLeader();
    authorize();
    try {
      return await this.raft.read(fn, { signal: ctx.signal });
    } catch (e) {
      this.rethrow(e);
    }
  }

  private handlers(): Handlers<typeof KvService> {
    return {
      range: (req, ctx) => {
        const cmd = { type: 'range', ...pick(req, rangeKeys) } as RangeRequest;
        return this.read(
          req.serializable,
          ctx,
          (sm) => capRange(sm.kv.read(cmd)),
          () => this.checkKeys(ctx, cmd),
        );
      },
      put: (req, ctx) =>
        this.write(
          {
            type: 'put',
            ...pick(req, ['key', 'value', 'lease', 'prevKv', 'ignoreValue', 'ignoreLease']),
          } as KvCommand,
          req.session,
          ctx,
        ),
      deleteRange: (req, ctx) =>
        this.write(
          { type: 'deleteRange', ...pick(req, ['key', 'rangeEnd', 'prevKv']) } as KvCommand,
          req.session,
          ctx,
        ),
      txn: (req, ctx) =>
        this.write(
          {
            type: 'txn',
            compare: req.compare,
            success: req.success as TxnOp[],
            failure: req.failure as TxnOp[],
          },
          req.session,
          ctx,
        ),
      compact: (req, ctx) =>
        this.write({ type: 'compact', revision: req.revision }, req.session, ctx, () =>
          this.options.access?.checkCapability(ctx, 'compact'),
        ),
      leaseGrant: (req, ctx) =>
        this.write(
          { type: 'leaseGrant', ttlMs: req.ttlMs, ...(req.id === undefined ? {} : { id: req.id }) },
          req.session,
          ctx,
        ),
      leaseRevoke: (req, ctx) =>
        this.write({ type: 'leaseRevoke', id: req.id }, req.session, ctx, () =>
          // Revoking deletes the attached keys: write on each (an unknown lease is NOT_FOUND at apply).
          this.options.access?.checkKeys(
            ctx,
            this.leaseKeys(req.id).map((key) => ({ access: 'write', key })),
          ),
        ),
      leaseKeepAlive: (req, ctx) =>
        this.write({ type: 'leaseKeepAlive', id: req.id }, req.session, ctx, () =>
          // Renewing keeps the attached keys from being deleted at expiry: write on
          // each, as revoking (see kv/access.ts).
          this.options.access?.checkKeys(
            ctx,
            this.leaseKeys(req.id).map((key) => ({ access: 'write', key })),
          ),
        ),
      sessionOpen: (req, ctx) => {
        const owner = this.options.access?.sessionOwner(ctx);
        return this.write(
          {
            type: 'sessionOpen',
            ...(req.ttlMs === undefined ? {} : { ttlMs: req.ttlMs }),
            ...(owner === undefined ? {} : { owner }),
          },
          undefined,
          ctx,
        );
      },
      sessionEnd: (req, ctx) =>
        this.write({ type: 'sessionEnd', clientId: req.clientId }, undefined, ctx, () =>
          this.checkSession(ctx, req.clientId),
        ),
      leaseTimeToLive: (req, ctx) =>
        this.read(
          req.serializable,
          ctx,
          (sm) => {
            const info = sm.kv.leaseTimeToLive(req.id, req.keys === true);
            const left = this.clock?.remainingMs(req.id, this.now());
            return left === undefined ? info : { ...info, remainingMs: Math.ceil(left) };
          },
          () => {
            if (req.keys !== true) return;
            this.options.access?.checkKeys(
              ctx,
              this.leaseKeys(req.id).map((key) => ({ access: 'read', key })),
            );
          },
        ),
      leases: (req, ctx) =>
        this.read(req.serializable, ctx, (sm) => ({
          revision: sm.kv.revision,
          leases: sm.kv.leaseList().map((l) => {
            const left = this.clock?.remainingMs(l.id, this.now());
            return left === undefined ? l : { ...l, remainingMs: Math.ceil(left) };
          }),
        })),
      watch: (req, ctx) => this.watch(req, ctx),
      snapshot: (req, ctx) => this.snapshot(req.serializable, ctx),
    };
  }

  /**
   * A snapshot of the store as of a linearizable read (serializable: this
   * node's state now), encoded a step per event-loop turn while entries keep
   * applying, then streamed: meta, data chunks, SHA-256 (SnapshotItemSchema).
   * Only the store: node modules' state (MapReduce) is not in it.
   */
  private async *snapshot(
    serializable: boolean | undefined,
    ctx: CallContext,
  ): AsyncGenerator<SnapshotItem> {
    if (this.closed) throw new CohortError('CLOSED', 'the node is stopping');
    const begun = await this.read(serializable, ctx, (sm) => ({
      encoder: sm.kv.beginSnapshot(),
      revision: sm.kv.revision,
      index: this.raft.status().applied,
    }));
    while (!begun.encoder.step(snapshotStepKeys)) {
      if (ctx.signal.aborted || this.closed)
        throw new CohortError('CANCELLED', 'snapshot cancelled');
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const bytes = begun.encoder.bytes();
    yield {
      meta: {
        revision: begun.revision,
        index: begun.index,
        bytes: bytes.length,
        nodeId: this.raft.id,
      },
    };
    const hash = createHash('sha256');
    for (let at = 0; at < bytes.length; at += limits.kvSnapshotChunkBytes) {
      const data = bytes.subarray(at, at + limits.kvSnapshotChunkBytes);
      hash.update(data);
      yield { data };
    }
    yield { sha256: hash.digest('hex') };
  }

  private async *watch(
    req: {
      key: Uint8Array;
      rangeEnd?: Uint8Array;
      startRevision?: number;
      prevKv?: boolean;
      progressMs?: number;
    },
    ctx: CallContext,
  ): AsyncGenerator<WatchItem> {
    if (this.closed) throw new CohortError('CLOSED', 'the node is stopping');
    if (this.watchStreams >= limits.kvWatchesMax) {
      throw new CohortError(
        'OVERLOADED',
        `this node serves kvWatchesMax ${limits.kvWatchesMax} watches`,
        {
          details: { limit: limits.kvWatchesMax },
        },
      );
    }
    const range = resolveRange(req.key, req.rangeEnd, 'watch');
    // Before anything is read or registered: a refused watch sees nothing.
    this.options.access?.checkKeys(ctx, [
      req.rangeEnd === undefined
        ? { access: 'read', key: req.key }
        : { access: 'read', key: req.key, rangeEnd: req.rangeEnd },
    ]);
    const kv = this.sm.kv;
    const keys =
      req.rangeEnd === undefined ? { key: req.key } : { key: req.key, rangeEnd: req.rangeEnd };
    // Synchronously: the first page of catch-up (COMPACTED now if the start
    // is gone), then register, so live events (applied later) all have
    // higher revisions than `created`: no gap, no duplicate. Later pages are
    // read as the stream is consumed, one item at a time.
    const created = kv.revision;
    const start = req.startRevision;
    // Everything below the start revision counts as delivered.
    const base = start === undefined ? created : Math.min(start - 1, created);
    let page: WatchItem | undefined =
      base < created
        ? this.catchUpItem(kv, keys, base + 1, created, req.prevKv === true)
        : undefined;
    const w = new Watcher(
      req.key,
      range.single ? undefined : range.end === undefined ? null : (req.rangeEnd ?? null),
      req.prevKv === true,
      start ?? created + 1,
      base,
      this.watchBudget,
    );
    this.watchers.add(w);
    this.watchStreams++;
    const progressMs = req.progressMs ?? limits.kvWatchProgressMsDefault;
    try {
      yield { revision: base, events: [], created: true };
      while (page !== undefined) {
        w.sentRevision = page.revision;
        yield page;
        if (w.error !== undefined) throw w.error;
        page = this.catchUpItem(kv, keys, w.sentRevision + 1, created, w.prevKv);
      }
      if (base < created) {
        // Catch-up covered everything up to `created`.
        w.sentRevision = created;
        yield { revision: created, events: [], progress: true };
      }
      for (;;) {
        await w.wait(progressMs, ctx.signal, this.time);
        if (ctx.signal.aborted) return;
        if (w.error !== undefined) throw w.error;
        if (w.queue.length === 0) {
          // Idle: every event up to the current revision was sent.
          w.sentRevision = Math.max(kv.revision, w.minRevision - 1);
          yield { revision: w.sentRevision, events: [], progress: true };
          continue;
        }
        yield this.liveItem(w);
      }
    } finally {
      this.watchers.delete(w);
      this.watchStreams--;
      // Ended (cancelled, disconnected, failed): release its backlog.
      w.fail(new CohortError('CANCELLED', 'the watch ended'));
    }
  }

  /**
   * One stream item of catch-up from `from` (events in (from - 1, created],
   * about one item's worth: kvWatchBatchEventsMax events or kvRangeBytesMax
   * bytes, a revision never split); undefined when there is no more.
   */
  private catchUpItem(
    kv: KvRaftStateMachine['kv'],
    keys: { key: Uint8Array; rangeEnd?: Uint8Array },
    from: number,
    created: number,
    prevKv: boolean,
  ): WatchItem | undefined {
    if (from > created) return undefined;
    const page = kv.eventsSince(keys, from, {
      eventsMax: limits.kvWatchBatchEventsMax,
      bytesMax: limits.kvRangeBytesMax,
    });
    const events: KvEvent[] = [];
    for (const ev of page) {
      if (ev.kv.modRevision > created) break; // live events from here on
      events.push(prevKv || ev.prevKv === undefined ? ev : { type: ev.type, kv: ev.kv });
    }
    const last = events[events.length - 1];
    return last === undefined ? undefined : { revision: last.kv.modRevision, events };
  }

  /** The next live item: queued batches up to kvWatchBatchEventsMax events / kvRangeBytesMax bytes (at least one batch). */
  private liveItem(w: Watcher): WatchItem {
    const events: KvEvent[] = [];
    let bytes = 0;
    let revision = 0;
    while (
      w.queue.length > 0 &&
      (events.length === 0 ||
        (events.length + (w.queue[0] as WatchBatch).events.length <= limits.kvWatchBatchEventsMax &&
          bytes + (w.queue[0] as WatchBatch).bytes <= limits.kvRangeBytesMax))
    ) {
      const b = w.shift();
      assert(b !== undefined, 'watch queue');
      for (const ev of b.events) events.push(ev);
      bytes += b.bytes;
      revision = b.revision;
    }
    w.sentRevision = revision;
    return { revision, events };
  }
}
