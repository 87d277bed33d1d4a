/**
 * Exactly-once sessions (Raft dissertation §6.3): a client tags each command
 * with its id and a sequence number 1, 2, 3...; the state machine remembers,
 * per client, the last sequence number applied and its outcome (result or
 * refusal). A retry of that number gets the remembered outcome without being
 * applied again.
 *
 * Rules, all deterministic so every replica agrees:
 * - seq > last: new, apply it and remember its outcome;
 * - seq = last: duplicate, answer the remembered outcome;
 * - seq < last: stale (an old copy of a command the client already moved past),
 *   refused with FAILED_PRECONDITION, not applied;
 * - unknown client with seq 1: a new session; unknown client with seq > 1: its
 *   session was forgotten, so a retry might be applied twice: refused with an
 *   indefinite FAILED_PRECONDITION (the client starts a new session).
 * One command in flight per client id: a client wanting concurrency uses one
 * id per concurrent stream of commands.
 *
 * Bounds: at most kvSessionsMax clients, least recently used forgotten first
 * (the Map's insertion order is the LRU order; snapshots keep it), and a client
 * ends its session with the replicated `sessionEnd` command.
 *
 * ```ts
 * const s = new SessionTable();
 * s.check({ clientId: 'c', seq: 1 });    // { kind: 'new' }
 * s.record({ clientId: 'c', seq: 1 }, { ok: true, result });
 * s.check({ clientId: 'c', seq: 1 });    // { kind: 'duplicate', outcome }
 * ```
 */
import { limits } from '../../lib/limits.js';
import type { KvFailure, KvResult, SessionTag } from './types.js';
import { checkInt, invalid } from './validate.js';

/** What a session remembers of its last command. */
export type SessionOutcome =
  | { readonly ok: true; readonly result: KvResult }
  | { readonly ok: false; readonly error: KvFailure };

/** One client's session. */
export interface SessionRecord {
  readonly seq: number;
  readonly outcome: SessionOutcome;
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

/** Sessions by client id, in least-recently-used-first order. */
export class SessionTable {
  private readonly byClient = new Map<string, SessionRecord>();

  /** Sessions remembered. */
  get size(): number {
    return this.byClient.size;
  }

  /** Decides what to do with a command tagged `tag` (shape already checked). */
  check(tag: SessionTag): SessionCheck {
    const rec = this.byClient.get(tag.clientId);
    if (rec === undefined) {
      if (tag.seq === 1) return { kind: 'new' };
      return {
        kind: 'refused',
        error: {
          code: 'FAILED_PRECONDITION',
          message: `session of client ${tag.clientId} is unknown or expired; start a new one`,
          details: { reason: 'sessionExpired', clientId: tag.clientId },
          definite: false,
        },
      };
    }
    if (tag.seq === rec.seq) return { kind: 'duplicate', outcome: rec.outcome };
    if (tag.seq < rec.seq) {
      return {
        kind: 'refused',
        error: {
          code: 'FAILED_PRECONDITION',
          message: `stale sequence number ${tag.seq} for client ${tag.clientId} (last ${rec.seq})`,
          details: { reason: 'staleSequence', clientId: tag.clientId, last: rec.seq },
          definite: true,
        },
      };
    }
    return { kind: 'new' };
  }

  /** Remembers the outcome of `tag`'s command; forgets the least recently used past the bound. */
  record(tag: SessionTag, outcome: SessionOutcome): void {
    this.byClient.delete(tag.clientId);
    this.byClient.set(tag.clientId, { seq: tag.seq, outcome });
    while (this.byClient.size > limits.kvSessionsMax) {
      const oldest = this.byClient.keys().next();
      if (oldest.done === true) break;
      this.byClient.delete(oldest.value);
    }
  }

  /** Forgets `clientId`; true if it had a session. */
  end(clientId: string): boolean {
    return this.byClient.delete(clientId);
  }

  /** Sessions in LRU order (for snapshots). */
  entries(): IterableIterator<[string, SessionRecord]> {
    return this.byClient.entries();
  }

  /** Replaces the table (restore), keeping the given order. */
  load(entries: Iterable<[string, SessionRecord]>): void {
    this.byClient.clear();
    for (const [id, rec] of entries) this.byClient.set(id, rec);
  }
}
