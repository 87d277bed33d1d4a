/**
 * Exactly-once sessions (Raft dissertation §6.3): a client registers a
 * session (the replicated `sessionOpen` command, which names a fresh id),
 * then tags each command with that id and a sequence number 1, 2, 3...; the
 * state machine remembers, per session, the last sequence number applied and
 * its outcome (result or refusal). A retry of that number gets the remembered
 * outcome without being applied again.
 *
 * Rules, all deterministic so every replica agrees:
 * - seq > last: new, apply it and remember its outcome;
 * - seq = last: duplicate, answer the remembered outcome;
 * - seq < last: stale (an old copy of a command the client already moved
 *   past), refused with a definite FAILED_PRECONDITION, not applied;
 * - a session that is unknown, ended or expired: refused with a definite
 *   SESSION_EXPIRED, not applied. Never taken as new: a write that applied,
 *   lost its reply and had its session expire before the retry would
 *   otherwise apply twice. The client registers again and retries only if
 *   no earlier attempt can have applied (or the command is idempotent);
 *   otherwise the outcome is unknown to it.
 *
 * Logs written before registration existed: while no session was ever
 * registered in a store (its session id counter unused), an unknown client
 * at seq 1 starts a session as it did then, so a node upgraded with such
 * entries in its log replays them as they applied (acknowledged writes
 * included). The first `sessionOpen` ends that for good; a cluster whose
 * clients register (KvClient does, before its first write) never uses it.
 *
 * Ids are never reused: they come from a counter in the replicated state
 * (skipping any id a restored older snapshot still holds), so a restarted
 * client cannot collide with its former self's sequence numbers.
 *
 * Expiry by log time, not local clocks: each entry may carry the time its
 * leader stamped (`KvEntry.timeMs`); the store's log time is the largest
 * seen. A session idle (no command) for more than its TTL of log time
 * expires: checked when it is next used, and swept from the least recently
 * used end as the log time moves (the sweep stops at the first live
 * session, so one with a shorter TTL behind a longer one waits for its use
 * or the bounds). One command in flight per session: a client wanting
 * concurrency opens one session per lane.
 *
 * Bounds: at most kvSessionsMax sessions and kvSessionResultsBytesMax bytes
 * of remembered results, the least recently used expired first past either
 * (the Map's insertion order is the LRU order; snapshots keep it); a result
 * over kvSessionResultBytesMax is not kept, a note that it applied is (a
 * retry gets an indefinite FAILED_PRECONDITION, reason `resultNotKept`,
 * naming its revision). `sessionEnd` forgets a session.
 *
 * ```ts
 * const s = new SessionTable();
 * const id = s.open(nowMs, limits.kvSessionTtlMsDefault);
 * s.check({ clientId: id, seq: 1 }, nowMs);    // { kind: 'new' }
 * s.record({ clientId: id, seq: 1 }, { ok: true, result }, nowMs);
 * s.check({ clientId: id, seq: 1 }, nowMs);    // { kind: 'duplicate', outcome }
 * ```
 */
import { limits } from '../../lib/limits.js';
import { resultBytes } from './reply-size.js';
import type { KvFailure, KvResult, SessionTag } from './types.js';
import { checkInt, invalid } from './validate.js';

/** What a session remembers of its last command. */
export type SessionOutcome =
  | { readonly ok: true; readonly result: KvResult }
  | { readonly ok: false; readonly error: KvFailure };

/** One client's session. */
export interface SessionRecord {
  /** Sequence number of the last command applied (0: none yet). */
  readonly seq: number;
  /** That command's outcome (undefined while `seq` is 0). */
  readonly outcome: SessionOutcome | undefined;
  /** Log time of the registration or the last command. */
  readonly lastActiveMs: number;
  /** Idle log time after which the session expires. */
  readonly ttlMs: number;
}

/** The verdict on a tagged command before it is applied. */
export type SessionCheck =
  | { readonly kind: 'new' }
  | { readonly kind: 'duplicate'; readonly outcome: SessionOutcome }
  | { readonly kind: 'refused'; readonly error: KvFailure };

/** Checks a tag's shape (INVALID_ARGUMENT on a bad one). */
export function checkSessionTag(tag: SessionTag): void {
  if (typeof tag !== 'object' || tag === null) invalid('session must be an object');
  checkClientId(tag.clientId);
  checkInt(tag.seq, 'session.seq', 1);
}

/** Checks a client id's shape. */
export function checkClientId(clientId: unknown): asserts clientId is string {
  if (
    typeof clientId !== 'string' ||
    clientId.length === 0 ||
    clientId.length > limits.kvClientIdCharsMax
  ) {
    invalid(`clientId must be 1..${limits.kvClientIdCharsMax} characters`);
  }
}

/** Checks a requested session TTL (INVALID_ARGUMENT outside the limits). */
export function checkSessionTtl(ttlMs: unknown): asserts ttlMs is number {
  checkInt(ttlMs, 'ttlMs');
  if (ttlMs < limits.kvSessionTtlMsMin || ttlMs > limits.kvSessionTtlMsMax) {
    invalid(`ttlMs must be within ${limits.kvSessionTtlMsMin}..${limits.kvSessionTtlMsMax}`, {
      field: 'ttlMs',
    });
  }
}

/** Bytes a remembered outcome counts against the bounds. */
function outcomeBytes(o: SessionOutcome | undefined): number {
  if (o === undefined) return 0;
  return o.ok ? resultBytes(o.result) : 256 + o.error.message.length;
}

/** The note kept instead of a result over kvSessionResultBytesMax. */
function notKept(result: KvResult, bytes: number): SessionOutcome {
  return {
    ok: false,
    error: {
      code: 'FAILED_PRECONDITION',
      message:
        `this command was applied (revision ${result.revision}), but its result (~${bytes} bytes) ` +
        `is over kvSessionResultBytesMax ${limits.kvSessionResultBytesMax} and was not kept for retries`,
      definite: false,
      details: {
        reason: 'resultNotKept',
        revision: result.revision,
        bytes,
        limit: limits.kvSessionResultBytesMax,
      },
    },
  };
}

function expired(clientId: string): KvFailure {
  return {
    code: 'SESSION_EXPIRED',
    message:
      `session ${clientId} is unknown or expired, so this command was not applied; ` +
      'register a new session (an earlier attempt of the same command may have applied before it expired)',
    details: { reason: 'sessionExpired', clientId },
    definite: true,
  };
}

interface Held extends SessionRecord {
  /** outcomeBytes(outcome), kept for the running total. */
  readonly bytes: number;
}

/** Sessions by client id, in least-recently-used-first order. */
export class SessionTable {
  private readonly byClient = new Map<string, Held>();
  private heldBytes = 0;
  private nextId = 1;

  /** Sessions remembered. */
  get size(): number {
    return this.byClient.size;
  }

  /** Bytes of remembered outcomes (what kvSessionResultsBytesMax bounds). */
  get resultBytes(): number {
    return this.heldBytes;
  }

  /** The counter the next session id comes from (for snapshots). */
  get nextSessionId(): number {
    return this.nextId;
  }

  /** Registers a session at log time `nowMs`; returns its fresh id. */
  open(nowMs: number, ttlMs: number, owner?: string): string {
    // An owner's sessions are named `<owner>/<n>` (the leader checks that only it uses them).
    const name = (n: number): string => (owner === undefined ? String(n) : `${owner}/${n}`);
    let id = name(this.nextId++);
    // An older snapshot may hold sessions named by their clients: never reuse a name.
    while (this.byClient.has(id)) id = name(this.nextId++);
    this.put(id, { seq: 0, outcome: undefined, lastActiveMs: nowMs, ttlMs, bytes: 0 });
    return id;
  }

  /**
   * Expires sessions idle past their TTL at log time `nowMs`, from the least
   * recently used end up to the first live one. Returns how many.
   */
  expire(nowMs: number): number {
    let n = 0;
    for (const [id, rec] of this.byClient) {
      if (nowMs - rec.lastActiveMs <= rec.ttlMs) break;
      this.drop(id);
      n++;
    }
    return n;
  }

  /**
   * What {@link check} would decide for `tag` at log time `nowMs`, without
   * changing anything: for a leader's checks before it proposes (changing the
   * table outside apply would make this replica differ from the others).
   */
  peek(tag: SessionTag, nowMs: number): SessionCheck['kind'] {
    const rec = this.byClient.get(tag.clientId);
    if (rec === undefined) return this.nextId === 1 && tag.seq === 1 ? 'new' : 'refused';
    if (nowMs - rec.lastActiveMs > rec.ttlMs) return 'refused';
    if (tag.seq === rec.seq && rec.outcome !== undefined) return 'duplicate';
    return tag.seq <= rec.seq ? 'refused' : 'new';
  }

  /** Decides what to do with a command tagged `tag` (shape already checked) at log time `nowMs`. */
  check(tag: SessionTag, nowMs: number): SessionCheck {
    const rec = this.byClient.get(tag.clientId);
    if (rec === undefined) {
      if (this.nextId === 1 && tag.seq === 1) {
        // No session was ever registered here: a log from before registration (see above).
        const ttlMs = limits.kvSessionTtlMsDefault;
        this.put(tag.clientId, {
          seq: 0,
          outcome: undefined,
          lastActiveMs: nowMs,
          ttlMs,
          bytes: 0,
        });
        return { kind: 'new' };
      }
      return { kind: 'refused', error: expired(tag.clientId) };
    }
    if (nowMs - rec.lastActiveMs > rec.ttlMs) {
      this.drop(tag.clientId);
      return { kind: 'refused', error: expired(tag.clientId) };
    }
    if (tag.seq === rec.seq && rec.outcome !== undefined) {
      this.put(tag.clientId, { ...rec, lastActiveMs: nowMs });
      return { kind: 'duplicate', outcome: rec.outcome };
    }
    if (tag.seq <= rec.seq) {
      return {
        kind: 'refused',
        error: {
          code: 'FAILED_PRECONDITION',
          message: `stale sequence number ${tag.seq} for session ${tag.clientId} (last ${rec.seq})`,
          details: { reason: 'staleSequence', clientId: tag.clientId, last: rec.seq },
          definite: true,
        },
      };
    }
    return { kind: 'new' };
  }

  /**
   * Remembers the outcome of `tag`'s command (checked 'new' just before) at
   * log time `nowMs`; a result over kvSessionResultBytesMax is replaced by a
   * note that it applied. Expires the least recently used past the bounds.
   */
  record(tag: SessionTag, outcome: SessionOutcome, nowMs: number): void {
    const rec = this.byClient.get(tag.clientId);
    if (rec === undefined) return; // a sessionEnd of its own session: nothing to remember
    let kept = outcome;
    let bytes = outcomeBytes(outcome);
    if (bytes > limits.kvSessionResultBytesMax && outcome.ok) {
      kept = notKept(outcome.result, bytes);
      bytes = outcomeBytes(kept);
    }
    this.put(tag.clientId, {
      seq: tag.seq,
      outcome: kept,
      lastActiveMs: nowMs,
      ttlMs: rec.ttlMs,
      bytes,
    });
  }

  /** Forgets `clientId`; true if it had a session. */
  end(clientId: string): boolean {
    if (!this.byClient.has(clientId)) return false;
    this.drop(clientId);
    return true;
  }

  /** Sessions in LRU order (for snapshots). */
  *entries(): IterableIterator<[string, SessionRecord]> {
    for (const [id, { seq, outcome, lastActiveMs, ttlMs }] of this.byClient) {
      yield [id, { seq, outcome, lastActiveMs, ttlMs }];
    }
  }

  /** Replaces the table (restore), keeping the given order. */
  load(entries: Iterable<readonly [string, SessionRecord]>, nextSessionId: number): void {
    this.byClient.clear();
    this.heldBytes = 0;
    this.nextId = nextSessionId;
    for (const [id, rec] of entries) {
      const bytes = outcomeBytes(rec.outcome);
      this.byClient.set(id, { ...rec, bytes });
      this.heldBytes += bytes;
    }
  }

  /** Sets `id` as the most recently used, then expires the least recently used past the bounds. */
  private put(id: string, rec: Held): void {
    const old = this.byClient.get(id);
    if (old !== undefined) {
      this.byClient.delete(id);
      this.heldBytes -= old.bytes;
    }
    this.byClient.set(id, rec);
    this.heldBytes += rec.bytes;
    while (
      this.byClient.size > limits.kvSessionsMax ||
      this.heldBytes > limits.kvSessionResultsBytesMax
    ) {
      const oldest = this.byClient.keys().next();
      if (oldest.done === true || oldest.value === id) break;
      this.drop(oldest.value);
    }
  }

  private drop(id: string): void {
    const rec = this.byClient.get(id);
    if (rec === undefined) return;
    this.byClient.delete(id);
    this.heldBytes -= rec.bytes;
  }
}
