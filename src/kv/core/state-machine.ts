/**
 * The KV store's replicated state machine: pure, deterministic, synchronous.
 * Every replica applies the same committed entries in the same order and ends
 * in the same state; no clock, randomness or I/O (time arrives only in lease
 * commands the leader proposes, see leases.ts).
 *
 * `apply(entry)` validates the whole command first and only then mutates, so a
 * refused command (a definite CohortError code in `error`) changes nothing
 * except its session's memory of the refusal (and the NOSPACE alarm, below).
 * Each applied command returns its result and the watch events it caused, all
 * at one revision.
 *
 * Quota (like etcd's `--quota-backend-bytes`). The store's size,
 * {@link KvStateMachine.sizeBytes}, is the sum over every version kept
 * (history until compacted, delete tombstones included) of its key bytes,
 * value bytes and `limits.kvVersionOverheadBytes`: a function of the state
 * alone, so replicas agree on it. An entry carries the quota of the leader
 * that proposed it (`KvEntry.quotaBytes`), so every replica judges it against
 * the same number even if nodes are configured differently. A command that
 * adds values (a put, or a txn whose chosen branch puts) is refused with a
 * definite NO_SPACE when the NOSPACE alarm is raised, or when the values it
 * adds would take the size past the entry's quota, which raises the alarm.
 * The alarm is replicated state (it is in snapshots, so it survives
 * restarts). While it is raised, reads, deletes, compaction, leases and
 * session ends work as usual. It disarms by itself when an entry carrying a
 * quota is applied while the size is at most `limits.kvQuotaDisarmPercent`
 * of that quota, that is once compaction (after deletes) freed space: the
 * margin keeps the alarm from flapping, and a value merely larger than the
 * room left, in a store below the mark, is refused without raising it.
 *
 * ```ts
 * const sm = new KvStateMachine();
 * const out = sm.apply({ command: { type: 'put', key: kvKey('a'), value: kvKey('1') } });
 * if (out.ok) fanOut(out.events);                        // [{ type: 'PUT', kv, prevKv? }]
 * sm.read({ type: 'range', key: kvKey('a') });           // serializable / ReadIndex read
 * sm.eventsSince({ key: kvKey('a') }, 1);                // watch catch-up
 * const copy = KvStateMachine.fromSnapshot(sm.snapshot());
 * ```
 */
import { AssertionError, assert, assertNever } from '../../lib/assert.js';
import { CohortError, isCohortError } from '../../lib/errors.js';
import { isValidUserName } from '../../lib/ids.js';
import { limits } from '../../lib/limits.js';
import { fromByteString, toByteString } from './bytes.js';
import { LeaseTable } from './leases.js';
import { kvBytes } from './reply-size.js';
import type { Lease } from './leases.js';
import { MvccStore, inRange, kvOf, versionBytes } from './mvcc.js';
import type { Version } from './mvcc.js';
import { SessionTable, checkClientId, checkSessionTag, checkSessionTtl } from './sessions.js';
import type { SessionOutcome } from './sessions.js';
import { KvSnapshotEncoder, decodeKvSnapshot, encodeKvSnapshot } from './snapshot-codec.js';
import type { DecodedKvSnapshot, KvSnapshotState } from './snapshot-codec.js';
import type {
  Compare,
  CompactRequest,
  DeleteRangeRequest,
  DeleteRangeResult,
  KeyValue,
  KvApplied,
  KvCommand,
  KvEntry,
  KvEvent,
  KvFailure,
  KvResult,
  LeaseCheckpointRequest,
  LeaseExpireRequest,
  LeaseGrantRequest,
  LeaseInfo,
  PutRequest,
  PutResult,
  RangeRequest,
  RangeResult,
  TxnOpResult,
  TxnRequest,
  TxnResult,
} from './types.js';
import {
  checkArray,
  checkFlag,
  checkInt,
  checkKey,
  checkRangeRequest,
  checkTxnShape,
  checkValue,
  invalid,
  preview,
  resolveRange,
} from './validate.js';
import type { ResolvedRange } from './validate.js';

/** Version of the snapshot encoding written (see snapshot-codec.ts). */
export { KV_SNAPSHOT_VERSION, KvSnapshotEncoder } from './snapshot-codec.js';

/** A txn op with its branch decided and its range resolved, ready to run. */
type PlannedOp =
  | { readonly kind: 'range'; readonly op: RangeRequest; readonly range: ResolvedRange }
  | { readonly kind: 'put'; readonly op: PutRequest; readonly keyStr: string }
  | { readonly kind: 'deleteRange'; readonly op: DeleteRangeRequest; readonly range: ResolvedRange }
  | { readonly kind: 'txn'; readonly plan: TxnPlan };

interface TxnPlan {
  readonly succeeded: boolean;
  readonly ops: readonly PlannedOp[];
}

/** What a command produced before its revision is known. */
interface Executed {
  readonly result: KvResult;
  readonly events: readonly KvEvent[];
}

/** The KV state machine (see file comment). */
export class KvStateMachine {
  private mvcc = new MvccStore();
  private leases = new LeaseTable();
  private sessions = new SessionTable();
  /** The NOSPACE alarm (see the file comment). */
  private noSpace = false;
  /** The largest time any applied entry carried (KvEntry.timeMs): sessions expire by it. */
  private logTime = 0;

  /** Builds a state machine from {@link snapshot} bytes; CORRUPTION if they are not one. */
  static fromSnapshot(bytes: Uint8Array): KvStateMachine {
    const sm = new KvStateMachine();
    sm.restore(bytes);
    return sm;
  }

  /** The store's revision (of the last change to the keyspace). */
  get revision(): number {
    return this.mvcc.revision;
  }

  /** Reads and replays below this revision answer COMPACTED. */
  get compactedRevision(): number {
    return this.mvcc.compactedRevision;
  }

  /** Keys that exist now. */
  get keyCount(): number {
    return this.mvcc.liveKeys;
  }

  /** Sessions remembered. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** The store's size as the quota counts it (see the file comment). */
  get sizeBytes(): number {
    return this.mvcc.sizeBytes;
  }

  /** True while the NOSPACE alarm is raised: writes that add values are refused with NO_SPACE. */
  get noSpaceAlarm(): boolean {
    return this.noSpace;
  }

  /** Bytes of results the sessions remember (bounded by kvSessionResultsBytesMax). */
  get sessionResultBytes(): number {
    return this.sessions.resultBytes;
  }

  /** Log time: the largest `timeMs` an applied entry carried (0 before any). */
  get logTimeMs(): number {
    return this.logTime;
  }

  /**
   * Applies one committed entry. Never throws for bad input: a refused command
   * comes back as `{ ok: false, error }` with nothing changed but the log
   * time (an entry's valid `timeMs` moves it, and expires idle sessions,
   * whatever its command: it is a property of the log). Throws only an
   * AssertionError (a bug).
   */
  apply(entry: KvEntry): KvApplied {
    if (typeof entry !== 'object' || entry === null) {
      return this.refusal(
        {
          code: 'INVALID_ARGUMENT',
          message: 'entry must be an object',
          definite: true,
          details: {},
        },
        false,
      );
    }
    const quota = entry.quotaBytes;
    if (quota !== undefined) {
      try {
        checkInt(quota, 'quotaBytes', 1);
      } catch (e) {
        return this.refusal(failureOf(e), false);
      }
    }
    const tag = entry.session;
    if (entry.timeMs !== undefined) {
      const t = entry.timeMs;
      if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 0) {
        return this.refusal(
          {
            code: 'INVALID_ARGUMENT',
            message: 'entry timeMs must be a non-negative integer',
            definite: true,
            details: { field: 'timeMs' },
          },
          false,
        );
      }
      // Raft dissertation §6.3: time comes from the log, so every replica expires alike.
      if (t > this.logTime) {
        this.logTime = t;
        this.sessions.expire(t);
      }
    }
    if (tag !== undefined) {
      try {
        checkSessionTag(tag);
      } catch (e) {
        return this.refusal(failureOf(e), false);
      }
      const verdict = this.sessions.check(tag, this.logTime);
      if (verdict.kind === 'duplicate') {
        const o = verdict.outcome;
        return o.ok
          ? { ok: true, result: o.result, events: [], revision: this.revision, duplicate: true }
          : this.refusal(o.error, true);
      }
      if (verdict.kind === 'refused') return this.refusal(verdict.error, false);
    }
    let outcome: SessionOutcome;
    let events: readonly KvEvent[] = [];
    this.disarmBelow(quota);
    try {
      const done = this.execute(entry.command, quota);
      outcome = { ok: true, result: done.result };
      events = done.events;
    } catch (e) {
      outcome = { ok: false, error: failureOf(e) };
    }
    this.disarmBelow(quota);
    if (tag !== undefined) this.sessions.record(tag, outcome, this.logTime);
    return outcome.ok
      ? { ok: true, result: outcome.result, events, revision: this.revision, duplicate: false }
      : this.refusal(outcome.error, false);
  }

  /**
   * The NO_SPACE refusal `apply(entry)` would give now because the NOSPACE
   * alarm is raised, or undefined: lets the leader refuse a write at once,
   * without a round through the log. Undefined also when the entry would
   * disarm the alarm, when its session already applied it (a retry is
   * answered from the session, never refused), when it adds no values, and
   * when it is invalid (apply refuses it with the reason). A write that
   * merely does not fit is not refused here: it goes through the log, whose
   * apply raises the alarm on every replica.
   */
  spaceRefusal(entry: KvEntry): KvFailure | undefined {
    if (!this.noSpace || typeof entry !== 'object' || entry === null) return undefined;
    const quota = entry.quotaBytes;
    let cost: number;
    try {
      if (quota !== undefined) {
        checkInt(quota, 'quotaBytes', 1);
        if (this.belowDisarmMark(quota)) return undefined;
      }
      if (entry.session !== undefined) {
        checkSessionTag(entry.session);
        if (this.sessions.peek(entry.session, this.logTime) !== 'new') return undefined;
      }
      const plan = this.planWrite(entry.command);
      if (plan === undefined) return undefined;
      this.checkPlan(plan);
      cost = this.planBytes(plan);
    } catch (e) {
      failureOf(e); // rethrows anything but a CohortError (a bug)
      return undefined;
    }
    return cost === 0 ? undefined : failureOf(this.noSpaceError('alarm', cost, quota));
  }

  /**
   * A read outside the log (serializable reads, or linearizable ones after a
   * ReadIndex). Throws CohortError on bad input, COMPACTED or a future revision.
   */
  read(req: RangeRequest): RangeResult {
    if (typeof req !== 'object' || req === null) invalid('range request must be an object');
    const range = checkRangeRequest(req, 'range');
    this.checkReadRevision(req.revision ?? 0, this.revision);
    return this.runRange(req, range, req.revision ?? 0);
  }

  /**
   * Every event at revision >= `startRevision` on the keys of `range`, oldest
   * first: a watch's catch-up. COMPACTED if `startRevision` is at or below the
   * compacted revision (those events, or their prevKv, are gone). A start
   * beyond the current revision gives nothing (yet). With `page`, only the
   * first revisions up to about `eventsMax` events or `bytesMax` bytes (a
   * revision is never split; continue from the last event's revision + 1).
   */
  eventsSince(
    range: { key: Uint8Array; rangeEnd?: Uint8Array },
    startRevision: number,
    page?: { readonly eventsMax: number; readonly bytesMax: number },
  ): KvEvent[] {
    if (typeof range !== 'object' || range === null) invalid('watch range must be an object');
    const r = resolveRange(range.key, range.rangeEnd, 'watch');
    checkInt(startRevision, 'startRevision', 1);
    if (startRevision <= this.compactedRevision) {
      throw new CohortError(
        'COMPACTED',
        `watch from revision ${startRevision}: compacted up to ${this.compactedRevision}`,
        { details: { revision: startRevision, compactedRevision: this.compactedRevision } },
      );
    }
    return this.mvcc.eventsSince(r, startRevision, page);
  }

  /** A lease's TTL state (NOT_FOUND if it is not alive), with its keys if asked. */
  leaseTimeToLive(id: number, withKeys = false): LeaseInfo {
    checkInt(id, 'id', 1);
    const lease = this.leases.get(id);
    if (lease === undefined) {
      throw new CohortError('NOT_FOUND', `lease ${id} not found`, { details: { lease: id } });
    }
    return leaseInfo(lease, withKeys);
  }

  /** Every live lease by id (a new leader starts its deadlines from these). */
  leaseList(): LeaseInfo[] {
    return this.leases.list().map((l) => leaseInfo(l, false));
  }

  // ---------------------------------------------------------------- commands

  private refusal(error: KvFailure, duplicate: boolean): KvApplied {
    return { ok: false, error, revision: this.revision, duplicate };
  }

  private execute(command: KvCommand, quota: number | undefined): Executed {
    if (typeof command !== 'object' || command === null) invalid('command must be an object');
    switch (command.type) {
      case 'range':
        return { result: this.read(command), events: [] };
      case 'put':
        return this.execTxnLike(
          [{ kind: 'put', op: command, keyStr: this.planPut(command) }],
          quota,
        );
      case 'deleteRange':
        return this.execTxnLike(
          [{ kind: 'deleteRange', op: command, range: this.planDelete(command) }],
          quota,
        );
      case 'txn':
        return this.execTxn(command, quota);
      case 'compact':
        return this.execCompact(command);
      case 'leaseGrant':
        return this.execLeaseGrant(command);
      case 'leaseRevoke': {
        checkInt(command.id, 'id', 1);
        this.requireLease(command.id);
        const { events, deleted } = this.revokeLeases([command.id]);
        return { result: { type: 'leaseRevoke', revision: this.revision, deleted }, events };
      }
      case 'leaseKeepAlive': {
        checkInt(command.id, 'id', 1);
        this.requireLease(command.id);
        const l = this.leases.keepAlive(command.id);
        return {
          result: {
            type: 'leaseKeepAlive',
            revision: this.revision,
            id: l.id,
            ttlMs: l.ttlMs,
            epoch: l.epoch,
          },
          events: [],
        };
      }
      case 'leaseCheckpoint':
        return this.execLeaseCheckpoint(command);
      case 'leaseExpire':
        return this.execLeaseExpire(command);
      case 'sessionOpen': {
        const ttlMs = command.ttlMs ?? limits.kvSessionTtlMsDefault;
        checkSessionTtl(ttlMs);
        if (command.owner !== undefined && !isValidUserName(command.owner)) {
          invalid('sessionOpen.owner must be a user name', { field: 'owner' });
        }
        const clientId = this.sessions.open(this.logTime, ttlMs, command.owner);
        return {
          result: { type: 'sessionOpen', revision: this.revision, clientId, ttlMs },
          events: [],
        };
      }
      case 'sessionEnd': {
        checkClientId(command.clientId);
        const existed = this.sessions.end(command.clientId);
        return { result: { type: 'sessionEnd', revision: this.revision, existed }, events: [] };
      }
      default:
        return invalid(`unknown command type ${preview((command as { type: unknown }).type)}`);
    }
  }

  /** A single put or delete runs as a one-op txn plan (same checks, one revision). */
  private execTxnLike(ops: PlannedOp[], quota: number | undefined): Executed {
    this.checkPlan({ succeeded: true, ops });
    this.requireSpace({ succeeded: true, ops }, quota);
    const { responses, events } = this.runPlan({ succeeded: true, ops });
    const result = responses[0];
    assert(result !== undefined, 'one op, one response');
    return { result, events };
  }

  private execTxn(txn: TxnRequest, quota: number | undefined): Executed {
    if (typeof txn !== 'object' || txn === null) invalid('txn must be an object');
    checkTxnShape(txn);
    const plan = this.planTxn(txn);
    this.checkPlan(plan);
    this.requireSpace(plan, quota);
    const { responses, events } = this.runPlan(plan);
    const result: TxnResult = {
      type: 'txn',
      revision: this.revision,
      succeeded: plan.succeeded,
      responses,
    };
    return { result, events };
  }

  private execCompact(cmd: CompactRequest): Executed {
    checkInt(cmd.revision, 'revision', 1);
    if (cmd.revision <= this.compactedRevision) {
      throw new CohortError(
        'COMPACTED',
        `revision ${cmd.revision} is already compacted (compacted revision ${this.compactedRevision})`,
        { details: { revision: cmd.revision, compactedRevision: this.compactedRevision } },
      );
    }
    if (cmd.revision > this.revision) throw futureRevision(cmd.revision, this.revision);
    this.mvcc.compact(cmd.revision);
    return {
      result: {
        type: 'compact',
        revision: this.revision,
        compactedRevision: this.compactedRevision,
      },
      events: [],
    };
  }

  private execLeaseGrant(cmd: LeaseGrantRequest): Executed {
    checkInt(cmd.ttlMs, 'ttlMs');
    if (cmd.ttlMs < limits.kvLeaseTtlMsMin || cmd.ttlMs > limits.kvLeaseTtlMsMax) {
      invalid(`ttlMs must be within ${limits.kvLeaseTtlMsMin}..${limits.kvLeaseTtlMsMax}`, {
        field: 'ttlMs',
      });
    }
    const id = cmd.id ?? 0;
    checkInt(id, 'id');
    if (id !== 0 && this.leases.get(id) !== undefined) {
      throw new CohortError('ALREADY_EXISTS', `lease ${id} already exists`, {
        details: { lease: id },
      });
    }
    if (this.leases.size >= limits.kvLeasesMax) {
      throw new CohortError('OVERLOADED', `kvLeasesMax ${limits.kvLeasesMax} leases are alive`);
    }
    if (id === 0 && !Number.isSafeInteger(this.leases.peekFreeId() + 1)) {
      throw new CohortError('OVERLOADED', 'lease ids exhausted');
    }
    const l = this.leases.grant(id, cmd.ttlMs);
    return {
      result: { type: 'leaseGrant', revision: this.revision, id: l.id, ttlMs: l.ttlMs },
      events: [],
    };
  }

  private execLeaseCheckpoint(cmd: LeaseCheckpointRequest): Executed {
    checkArray(cmd.leases, 'leases', limits.kvLeasesMax);
    for (const [i, c] of cmd.leases.entries()) {
      if (typeof c !== 'object' || c === null) invalid(`leases[${i}] must be an object`);
      checkInt(c.id, `leases[${i}].id`, 1);
      checkInt(c.remainingMs, `leases[${i}].remainingMs`);
      checkInt(c.epoch, `leases[${i}].epoch`);
    }
    for (const c of cmd.leases) {
      const l = this.leases.get(c.id);
      if (l !== undefined && l.epoch === c.epoch) l.remainingMs = Math.min(c.remainingMs, l.ttlMs);
    }
    return { result: { type: 'leaseCheckpoint', revision: this.revision }, events: [] };
  }

  private execLeaseExpire(cmd: LeaseExpireRequest): Executed {
    checkArray(cmd.leases, 'leases', limits.kvLeasesMax);
    for (const [i, c] of cmd.leases.entries()) {
      if (typeof c !== 'object' || c === null) invalid(`leases[${i}] must be an object`);
      checkInt(c.id, `leases[${i}].id`, 1);
      checkInt(c.epoch, `leases[${i}].epoch`);
    }
    const ids = [
      ...new Set(
        cmd.leases.filter((c) => this.leases.get(c.id)?.epoch === c.epoch).map((c) => c.id),
      ),
    ];
    const { events, deleted } = this.revokeLeases(ids);
    return {
      result: { type: 'leaseExpire', revision: this.revision, expired: ids, deleted },
      events,
    };
  }

  /** Removes the leases and deletes all their keys at one revision. */
  private revokeLeases(ids: readonly number[]): { events: KvEvent[]; deleted: number } {
    let deleted = 0;
    this.mvcc.beginWrite();
    for (const id of ids) {
      for (const keyStr of this.leases.remove(id)) {
        const prev = this.mvcc.delete(keyStr);
        assert(prev !== undefined && prev.lease === id, 'lease key set out of sync');
        deleted++;
      }
    }
    return { events: this.mvcc.endWrite(), deleted };
  }

  // -------------------------------------------------------------- quota

  /**
   * NO_SPACE (see the file comment) if `plan` adds values while the alarm is
   * raised, or adds more than the room left under `quota`: then it raises
   * the alarm, the one change a refused command makes besides its session.
   */
  private requireSpace(plan: TxnPlan, quota: number | undefined): void {
    const cost = this.planBytes(plan);
    if (cost === 0) return;
    if (this.noSpace) throw this.noSpaceError('alarm', cost, quota);
    if (quota !== undefined && this.mvcc.sizeBytes + cost > quota) {
      this.noSpace = true;
      throw this.noSpaceError('quota', cost, quota);
    }
  }

  /** NO_SPACE for a write of `cost` bytes: the alarm was raised before it, or it does not fit. */
  private noSpaceError(
    reason: 'alarm' | 'quota',
    cost: number,
    quota: number | undefined,
  ): CohortError {
    const size = this.mvcc.sizeBytes;
    const why =
      reason === 'alarm' ? 'the NOSPACE alarm is raised' : 'it would take the store past its quota';
    return new CohortError(
      'NO_SPACE',
      `write of ${cost} bytes refused: ${why} (store ${size} bytes, quota ${quota ?? 'unknown'}); delete keys and compact to free space`,
      {
        details: {
          reason,
          sizeBytes: size,
          costBytes: cost,
          quotaBytes: quota ?? null,
        },
      },
    );
  }

  /** Disarms the alarm if the store is at or below the disarm mark of `quota`. */
  private disarmBelow(quota: number | undefined): void {
    if (this.noSpace && quota !== undefined && this.belowDisarmMark(quota)) this.noSpace = false;
  }

  private belowDisarmMark(quota: number): boolean {
    return this.mvcc.sizeBytes <= Math.floor((quota / 100) * limits.kvQuotaDisarmPercent);
  }

  /**
   * What a plan's puts add to the store's size (deletes add tombstones too,
   * but are never refused for space: they are how space is freed).
   */
  private planBytes(plan: TxnPlan): number {
    let bytes = 0;
    for (const step of plan.ops) {
      if (step.kind === 'put') {
        const op = step.op;
        const valueBytes =
          op.ignoreValue === true
            ? (this.mvcc.current(step.keyStr)?.value?.length ?? 0)
            : op.value.length;
        bytes += versionBytes(step.keyStr.length, valueBytes);
      } else if (step.kind === 'txn') {
        bytes += this.planBytes(step.plan);
      }
    }
    return bytes;
  }

  /** The plan of a put or txn command (validated), or undefined for any other command. */
  private planWrite(command: KvCommand): TxnPlan | undefined {
    if (typeof command !== 'object' || command === null) return undefined;
    if (command.type === 'put') {
      return {
        succeeded: true,
        ops: [{ kind: 'put', op: command, keyStr: this.planPut(command) }],
      };
    }
    if (command.type === 'txn') {
      checkTxnShape(command);
      return this.planTxn(command);
    }
    return undefined;
  }

  private requireLease(id: number): Lease {
    const l = this.leases.get(id);
    if (l === undefined) {
      throw new CohortError('NOT_FOUND', `lease ${id} not found`, { details: { lease: id } });
    }
    return l;
  }

  // -------------------------------------------------------- txn planning

  private planPut(op: PutRequest): string {
    checkKey(op.key, 'put.key');
    checkValue(op.value, 'put.value');
    if (op.lease !== undefined) checkInt(op.lease, 'put.lease');
    checkFlag(op.prevKv, 'put.prevKv');
    checkFlag(op.ignoreValue, 'put.ignoreValue');
    checkFlag(op.ignoreLease, 'put.ignoreLease');
    if (op.ignoreLease === true && op.lease !== undefined && op.lease !== 0) {
      invalid('put: lease and ignoreLease together');
    }
    return toByteString(op.key);
  }

  private planDelete(op: DeleteRangeRequest): ResolvedRange {
    const range = resolveRange(op.key, op.rangeEnd, 'deleteRange');
    checkFlag(op.prevKv, 'deleteRange.prevKv');
    return range;
  }

  /** Decides every branch against the state before the txn (etcd's rule for nested txns). */
  private planTxn(txn: TxnRequest): TxnPlan {
    const succeeded = txn.compare.every((c) => this.evalCompare(c));
    const ops = (succeeded ? txn.success : txn.failure).map((op): PlannedOp => {
      switch (op.type) {
        case 'range':
          return { kind: 'range', op, range: resolveRange(op.key, op.rangeEnd, 'range') };
        case 'put':
          return { kind: 'put', op, keyStr: toByteString(op.key) };
        case 'deleteRange':
          return { kind: 'deleteRange', op, range: resolveRange(op.key, op.rangeEnd, 'delete') };
        case 'txn':
          return { kind: 'txn', plan: this.planTxn(op) };
        default:
          return assertNever(op, 'txn op type checked by checkTxnShape');
      }
    });
    return { succeeded, ops };
  }

  private evalCompare(c: Compare): boolean {
    const range = resolveRange(c.key, c.rangeEnd, 'compare');
    let any = false;
    let all = true;
    const target = c.target === 'value' ? toByteString(c.value) : '';
    this.mvcc.scan(range, Infinity, (_k, v) => {
      any = true;
      if (!compareOne(c, target, v)) all = false;
      return all;
    });
    if (any) return all;
    if (c.target === 'value') return false;
    return compareOne(c, target, undefined);
  }

  /**
   * The semantic checks of the ops a plan will run, against the state before
   * it: leases exist, ignoreValue/ignoreLease keys exist, read revisions are
   * readable, and no key is written twice. Throws before anything changes.
   */
  private checkPlan(plan: TxnPlan): void {
    const puts = new Map<string, number>();
    const deletes: ResolvedRange[] = [];
    const ranges: { op: RangeRequest; range: ResolvedRange }[] = [];
    const deletesWithPrev: ResolvedRange[] = [];
    const putsWithPrev: string[] = [];
    let putBytes = 0;
    const visit = (p: TxnPlan): void => {
      for (const step of p.ops) {
        switch (step.kind) {
          case 'range':
            this.checkReadRevision(step.op.revision ?? 0, this.revision);
            ranges.push({ op: step.op, range: step.range });
            break;
          case 'put': {
            const op = step.op;
            if (puts.has(step.keyStr)) {
              invalid('txn puts the same key twice', { key: step.keyStr });
            }
            puts.set(step.keyStr, 1);
            putBytes += kvBytes(step.keyStr.length, op.value.length);
            if (op.prevKv === true) putsWithPrev.push(step.keyStr);
            if (op.lease !== undefined && op.lease !== 0) this.requireLease(op.lease);
            if ((op.ignoreValue === true || op.ignoreLease === true) && !this.exists(step.keyStr)) {
              throw new CohortError(
                'NOT_FOUND',
                'put with ignoreValue or ignoreLease on a missing key',
                { details: { field: 'put.key' } },
              );
            }
            break;
          }
          case 'deleteRange':
            deletes.push(step.range);
            if (step.op.prevKv === true) deletesWithPrev.push(step.range);
            break;
          case 'txn':
            visit(step.plan);
            break;
          default:
            assertNever(step);
        }
      }
    };
    visit(plan);
    for (const k of puts.keys()) {
      if (deletes.some((r) => inRange(r, k))) {
        invalid('txn puts a key it also deletes', { key: k });
      }
    }
    this.checkReplyBytes(putsWithPrev, deletesWithPrev, ranges, putBytes);
  }

  /**
   * Refuses, before anything changes, a write whose reply would exceed
   * kvRangeBytesMax (reply-size.ts counts it): a deleteRange's prevKvs, a
   * put's prevKv, and a txn's range results, each range counted against the
   * state before the txn plus every value the txn puts (an upper bound). A
   * write that applied but could not answer would leave its client unsure of
   * a change it made; a range read is cut instead (it changes nothing).
   */
  private checkReplyBytes(
    putsWithPrev: readonly string[],
    deletesWithPrev: readonly ResolvedRange[],
    ranges: readonly { op: RangeRequest; range: ResolvedRange }[],
    putBytes: number,
  ): void {
    const max = limits.kvRangeBytesMax;
    let bytes = 0;
    for (const k of putsWithPrev) {
      const cur = this.mvcc.current(k);
      if (cur?.value !== undefined) bytes += kvBytes(k.length, cur.value.length);
    }
    for (const r of deletesWithPrev) {
      this.mvcc.scan(r, Infinity, (k, v) => {
        bytes += kvBytes(k.length, (v.value as string).length);
        return bytes <= max;
      });
    }
    for (const { op, range } of ranges) {
      if (bytes > max) break;
      bytes += this.rangeReplyBytes(op, range, max - bytes) + putBytes;
    }
    if (bytes > max) {
      throw new CohortError(
        'FAILED_PRECONDITION',
        `the reply would carry more than kvRangeBytesMax ${max} bytes of keys and values; ` +
          'nothing was changed: write or delete smaller ranges, or without prevKv',
        { details: { reason: 'replyTooLarge', limit: max } },
      );
    }
  }

  /** Bytes of a txn's range result (reply-size.ts), or some number above `max` once past it. */
  private rangeReplyBytes(op: RangeRequest, range: ResolvedRange, max: number): number {
    if (op.countOnly === true) return 0;
    const limit = op.limit ?? 0;
    const keysOnly = op.keysOnly === true;
    const target = op.sortTarget ?? 'key';
    const byKey = target === 'key' && op.sortOrder !== 'descend';
    const sizes: number[] = [];
    let sum = 0;
    const at = (op.revision ?? 0) === 0 ? Infinity : (op.revision as number);
    this.mvcc.scan(range, at, (k, v) => {
      const n = kvBytes(k.length, keysOnly ? 0 : (v.value as string).length);
      sum += n;
      if (limit > 0) sizes.push(n);
      // In key order the first `limit` keys are the answer; unlimited, stop once past `max`.
      return limit > 0 ? !(byKey && sizes.length >= limit) : sum <= max;
    });
    if (limit === 0 || sizes.length <= limit) return sum;
    if (target === 'key') {
      // Descending key order: the last `limit` keys.
      return sizes.slice(sizes.length - limit).reduce((a, b) => a + b, 0);
    }
    // Sorted by another field: at most the `limit` largest.
    sizes.sort((a, b) => b - a);
    return sizes.slice(0, limit).reduce((a, b) => a + b, 0);
  }

  private exists(keyStr: string): boolean {
    return this.mvcc.current(keyStr) !== undefined;
  }

  /** Runs a checked plan in one write batch; results carry the final revision. */
  private runPlan(plan: TxnPlan): { responses: TxnOpResult[]; events: KvEvent[] } {
    this.mvcc.beginWrite();
    const responses = this.runOps(plan);
    const events = this.mvcc.endWrite();
    const rev = this.revision;
    return { responses: responses.map((r) => withRevision(r, rev)), events };
  }

  private runOps(plan: TxnPlan): TxnOpResult[] {
    return plan.ops.map((step): TxnOpResult => {
      switch (step.kind) {
        case 'range': {
          const at = step.op.revision ?? 0;
          return this.runRange(step.op, step.range, at);
        }
        case 'put':
          return this.runPut(step.op, step.keyStr);
        case 'deleteRange':
          return this.runDelete(step.op, step.range);
        case 'txn':
          return {
            type: 'txn',
            revision: 0,
            succeeded: step.plan.succeeded,
            responses: this.runOps(step.plan),
          };
        default:
          return assertNever(step);
      }
    });
  }

  private runPut(op: PutRequest, keyStr: string): PutResult {
    const cur = this.mvcc.current(keyStr);
    const value = op.ignoreValue === true ? (cur as Version).value! : toByteString(op.value);
    const lease = op.ignoreLease === true ? (cur as Version).lease : (op.lease ?? 0);
    const prev = this.mvcc.put(keyStr, value, lease);
    if (prev?.lease !== lease) {
      this.leases.detach(prev?.lease ?? 0, keyStr);
      this.leases.attach(lease, keyStr);
    }
    return op.prevKv === true && prev !== undefined
      ? { type: 'put', revision: 0, prevKv: kvOf(keyStr, prev) }
      : { type: 'put', revision: 0 };
  }

  private runDelete(op: DeleteRangeRequest, range: ResolvedRange): DeleteRangeResult {
    const doomed: string[] = [];
    this.mvcc.scan(range, Infinity, (keyStr) => {
      doomed.push(keyStr);
      return true;
    });
    const prevKvs: KeyValue[] = [];
    for (const keyStr of doomed) {
      const prev = this.mvcc.delete(keyStr);
      assert(prev !== undefined, 'scanned key vanished');
      this.leases.detach(prev.lease, keyStr);
      if (op.prevKv === true) prevKvs.push(kvOf(keyStr, prev));
    }
    return op.prevKv === true
      ? { type: 'deleteRange', revision: 0, deleted: doomed.length, prevKvs }
      : { type: 'deleteRange', revision: 0, deleted: doomed.length };
  }

  // ---------------------------------------------------------------- reads

  /** COMPACTED below the compacted revision, FAILED_PRECONDITION past `current`. */
  private checkReadRevision(rev: number, current: number): void {
    if (rev === 0) return;
    if (rev < this.compactedRevision) {
      throw new CohortError(
        'COMPACTED',
        `revision ${rev} is compacted (compacted revision ${this.compactedRevision})`,
        { details: { revision: rev, compactedRevision: this.compactedRevision } },
      );
    }
    if (rev > current) throw futureRevision(rev, current);
  }

  /** Reads `range` as of revision `at` (0: the latest, an open write batch included). */
  private runRange(req: RangeRequest, range: ResolvedRange, at: number): RangeResult {
    const revision = this.revision;
    const countOnly = req.countOnly === true;
    const limit = req.limit ?? 0;
    const target = req.sortTarget ?? 'key';
    let order = req.sortOrder ?? 'none';
    if (order === 'none' && target !== 'key') order = 'ascend'; // etcd's rule
    // In key order a limited read keeps only what it returns (plus one), but counts everything.
    const keep = target === 'key' && order !== 'descend' && limit > 0 ? limit + 1 : Infinity;
    const found: [string, Version][] = [];
    let count = 0;
    this.mvcc.scan(range, at === 0 ? Infinity : at, (keyStr, v) => {
      count++;
      if (!countOnly && found.length < keep) found.push([keyStr, v]);
      return true;
    });
    if (countOnly) return { type: 'range', revision, kvs: [], count, more: false };
    if (order !== 'none' && target !== 'key') {
      const sign = order === 'ascend' ? 1 : -1;
      found.sort(([, a], [, b]) => sign * compareTarget(target, a, b));
    } else if (order === 'descend') {
      found.reverse();
    }
    const more = limit > 0 && count > limit;
    const keysOnly = req.keysOnly === true;
    const kvs = (more ? found.slice(0, limit) : found).map(([k, v]) => kvOf(k, v, keysOnly));
    return { type: 'range', revision, kvs, count, more };
  }

  // ------------------------------------------------------------ snapshots

  /**
   * The whole state as bytes (snapshot-codec.ts, columnar version 3):
   * revisions, every key with its history since compaction, leases, sessions
   * (in LRU order), the next lease and session ids, the log time and the
   * NOSPACE alarm. Equal states give equal bytes.
   */
  snapshot(): Uint8Array {
    return encodeKvSnapshot(this.capture(false));
  }

  /**
   * Captures the state now for a snapshot encoded later, in steps, while
   * entries keep applying (a caller that must not block its event loop for
   * the whole encoding: ~100 ms for 200k keys, the capture ~15-20 ms). Holds
   * each key's version array with its current length (versions never change
   * and arrays only grow; compaction replaces them), and copies of the leases'
   * numbers. The bytes equal what {@link snapshot} returns now.
   *
   * ```ts
   * const enc = sm.beginSnapshot();
   * while (!enc.step(10_000)) await nextTurn();   // sm.apply(...) may run in between
   * const bytes = enc.bytes();
   * ```
   */
  beginSnapshot(): KvSnapshotEncoder {
    return new KvSnapshotEncoder(this.capture(true));
  }

  private capture(later: boolean): KvSnapshotState {
    const keys: string[] = [];
    const histories: Version[][] = [];
    for (const [keyStr, hist] of this.mvcc.entries()) {
      keys.push(keyStr);
      histories.push(hist);
    }
    let counts: Uint32Array | undefined;
    if (later) {
      counts = new Uint32Array(histories.length);
      for (let i = 0; i < histories.length; i++) counts[i] = (histories[i] as Version[]).length;
    }
    const state = {
      revision: this.revision,
      compacted: this.compactedRevision,
      noSpaceAlarm: this.noSpace,
      nextLeaseId: this.leases.nextId,
      keys,
      histories,
      // Copies: a lease's remainingMs and epoch change in place.
      leases: this.leases.list().map(({ id, ttlMs, remainingMs, epoch }) => ({
        id,
        ttlMs,
        remainingMs,
        epoch,
      })),
      // A session's record is replaced, never changed, on its next command.
      sessions: [...this.sessions.entries()],
      logTimeMs: this.logTime,
      nextSessionId: this.sessions.nextSessionId,
    };
    return counts === undefined ? state : { ...state, counts };
  }

  /**
   * Replaces the whole state with a {@link snapshot}'s (this version's, or
   * version 1's or 2's). CORRUPTION, and no change, if the bytes are not one.
   */
  restore(bytes: Uint8Array): void {
    const next = new KvStateMachine();
    try {
      next.load(decodeKvSnapshot(bytes));
    } catch (e) {
      // An AssertionError is a bug (the decoder lets through what the store asserts), not bad bytes.
      if (e instanceof AssertionError || (isCohortError(e) && e.code === 'CORRUPTION')) throw e;
      throw new CohortError('CORRUPTION', 'KV snapshot could not be decoded', { cause: e });
    }
    this.mvcc = next.mvcc;
    this.leases = next.leases;
    this.sessions = next.sessions;
    this.noSpace = next.noSpace;
    this.logTime = next.logTime;
  }

  /** Loads a decoded snapshot into this (fresh) state machine; CORRUPTION on a dangling lease. */
  private load(s: DecodedKvSnapshot): void {
    this.leases.load(s.leases, s.nextLeaseId);
    for (let i = 0; i < s.keys.length; i++) {
      const hist = s.histories[i] as Version[];
      const last = hist[hist.length - 1] as Version;
      if (last.value !== undefined && last.lease !== 0) {
        if (this.leases.get(last.lease) === undefined) {
          throw new CohortError('CORRUPTION', `KV snapshot: key on unknown lease ${last.lease}`);
        }
        this.leases.attach(last.lease, s.keys[i] as string);
      }
    }
    this.mvcc.load(s.keys, s.histories, s.revision, s.compacted);
    this.sessions.load(s.sessions, s.nextSessionId);
    this.logTime = s.logTimeMs;
    this.noSpace = s.noSpaceAlarm === true;
  }
}

function futureRevision(rev: number, current: number): CohortError {
  return new CohortError(
    'FAILED_PRECONDITION',
    `revision ${rev} is in the future (current revision ${current})`,
    { details: { revision: rev, currentRevision: current, reason: 'futureRevision' } },
  );
}

/** The plain-data failure of a thrown CohortError; anything else is a bug and rethrown. */
function failureOf(e: unknown): KvFailure {
  if (!isCohortError(e)) throw e;
  return { code: e.code, message: e.message, definite: e.definite, details: { ...e.details } };
}

function leaseInfo(l: Lease, withKeys: boolean): LeaseInfo {
  const base = { id: l.id, ttlMs: l.ttlMs, remainingMs: l.remainingMs, epoch: l.epoch };
  return withKeys ? { ...base, keys: [...l.keys].sort().map(fromByteString) } : base;
}

/** Sets `revision` on a result built during a write batch (and its nested results). */
function withRevision(r: TxnOpResult, revision: number): TxnOpResult {
  if (r.type === 'txn') {
    return { ...r, revision, responses: r.responses.map((x) => withRevision(x, revision)) };
  }
  return { ...r, revision };
}

function compareTarget(target: string, a: Version, b: Version): number {
  switch (target) {
    case 'version':
      return a.version - b.version;
    case 'createRevision':
      return a.createRevision - b.createRevision;
    case 'modRevision':
      return a.rev - b.rev;
    default: {
      // 'value': byte strings compare like their bytes.
      const x = a.value as string;
      const y = b.value as string;
      return x < y ? -1 : x > y ? 1 : 0;
    }
  }
}

/**
 * One compare against one key's live version (undefined: a missing key, all
 * zeros); `value` is the compare's value as a byte string.
 */
function compareOne(c: Compare, value: string, v: Version | undefined): boolean {
  let d: number;
  if (c.target === 'value') {
    const have = v?.value ?? '';
    d = have < value ? -1 : have > value ? 1 : 0;
  } else {
    const have = v === undefined ? 0 : c.target === 'modRevision' ? v.rev : v[c.target];
    d = have - c.value;
  }
  switch (c.op) {
    case '=':
      return d === 0;
    case '!=':
      return d !== 0;
    case '<':
      return d < 0;
    case '>':
      return d > 0;
    case '<=':
      return d <= 0;
    case '>=':
      return d >= 0;
    default:
      return assertNever(c.op);
  }
}
