/**
 * The leader's lease clock: pure bookkeeping of lease deadlines on the
 * leader's monotonic time, which the shell passes in as `nowMs` (a timer in a
 * real node, virtual time in the simulator). It turns the replicated lease
 * table into the commands only a leader proposes — `leaseExpire` when a
 * deadline passes, `leaseCheckpoint` now and then — following the scheme in
 * leases.ts. Followers keep no clock; a node builds one when it becomes leader
 * and drops it when it steps down.
 *
 * ```ts
 * // On winning an election, after applying the whole log:
 * const clock = LeaseClock.promote(sm.leaseList(), now(), electionTimeoutMs);
 * // After applying each committed entry (leader only):
 * clock.onApplied(entry.command, applied, now());
 * // On each tick:
 * const expire = clock.expired(now());
 * if (expire) propose({ command: expire });
 * if (checkpointDue) propose({ command: clock.checkpoint(now()) });
 * ```
 */
import { limits } from '../../lib/limits.js';
import type {
  KvApplied,
  KvCommand,
  LeaseCheckpointRequest,
  LeaseExpireRequest,
  LeaseInfo,
} from './types.js';

interface Deadline {
  deadlineMs: number;
  readonly ttlMs: number;
  epoch: number;
  /** When a leaseExpire naming this lease was last proposed (undefined: none in flight). */
  proposedAtMs: number | undefined;
}

/** Deadlines of every live lease, as the leader sees them (see file comment). */
export class LeaseClock {
  private readonly byId = new Map<number, Deadline>();

  /**
   * @param retryMs how long an expiry proposal may stay unapplied before the
   *   clock proposes it again (a proposal can be dropped on an overloaded or
   *   deposed leader).
   */
  private constructor(private readonly retryMs: number) {}

  /**
   * The clock of a new leader: each lease gets `now + remainingMs + graceMs`.
   * `remainingMs` was an upper bound when replicated, so no lease ends earlier
   * than promised; `graceMs` gives clients time to find the new leader and
   * renew (etcd extends by about an election timeout).
   */
  static promote(
    leases: readonly LeaseInfo[],
    nowMs: number,
    graceMs = 0,
    retryMs = 1_000,
  ): LeaseClock {
    const clock = new LeaseClock(retryMs);
    for (const l of leases) {
      clock.byId.set(l.id, {
        deadlineMs: nowMs + l.remainingMs + graceMs,
        ttlMs: l.ttlMs,
        epoch: l.epoch,
        proposedAtMs: undefined,
      });
    }
    return clock;
  }

  /** Leases the clock follows. */
  get size(): number {
    return this.byId.size;
  }

  /**
   * Follows one applied entry: grants and keep-alives start a full TTL from
   * `nowMs`, revocations and expiries drop leases. Duplicates and refusals
   * changed nothing and are ignored.
   */
  onApplied(command: KvCommand, applied: KvApplied, nowMs: number): void {
    if (!applied.ok || applied.duplicate) return;
    const r = applied.result;
    switch (r.type) {
      case 'leaseGrant':
        this.byId.set(r.id, {
          deadlineMs: nowMs + r.ttlMs,
          ttlMs: r.ttlMs,
          epoch: 0,
          proposedAtMs: undefined,
        });
        return;
      case 'leaseKeepAlive': {
        const d = this.byId.get(r.id);
        if (d === undefined) return;
        d.deadlineMs = nowMs + d.ttlMs;
        d.epoch = r.epoch;
        d.proposedAtMs = undefined;
        return;
      }
      case 'leaseRevoke':
        if (command.type === 'leaseRevoke') this.byId.delete(command.id);
        return;
      case 'leaseExpire':
        for (const id of r.expired) this.byId.delete(id);
        // Those skipped (renewed meanwhile) may be proposed again when due.
        if (command.type === 'leaseExpire') {
          for (const { id } of command.leases) {
            const d = this.byId.get(id);
            if (d !== undefined) d.proposedAtMs = undefined;
          }
        }
        return;
      case 'range':
      case 'put':
      case 'deleteRange':
      case 'txn':
      case 'compact':
      case 'sessionOpen':
      case 'leaseCheckpoint':
      case 'sessionEnd':
        return;
    }
  }

  /**
   * The expiry to propose now: leases past their deadline, with the epochs the
   * clock saw, not already proposed within `retryMs`; undefined if none. At
   * most kvLeaseExpireBatchMax leases, earliest deadline first.
   */
  expired(nowMs: number): LeaseExpireRequest | undefined {
    const due: [number, Deadline][] = [];
    for (const [id, d] of this.byId) {
      if (d.deadlineMs > nowMs) continue;
      if (d.proposedAtMs !== undefined && nowMs - d.proposedAtMs < this.retryMs) continue;
      due.push([id, d]);
    }
    if (due.length === 0) return undefined;
    due.sort(([a, x], [b, y]) => x.deadlineMs - y.deadlineMs || a - b);
    const batch = due.slice(0, limits.kvLeaseExpireBatchMax);
    for (const [, d] of batch) d.proposedAtMs = nowMs;
    return { type: 'leaseExpire', leases: batch.map(([id, d]) => ({ id, epoch: d.epoch })) };
  }

  /** Each lease's TTL left at `nowMs`, to replicate so a next leader starts from it. */
  checkpoint(nowMs: number): LeaseCheckpointRequest {
    const leases = [...this.byId]
      .sort(([a], [b]) => a - b)
      .map(([id, d]) => ({
        id,
        remainingMs: Math.max(0, Math.ceil(d.deadlineMs - nowMs)),
        epoch: d.epoch,
      }));
    return { type: 'leaseCheckpoint', leases };
  }

  /** TTL left of lease `id` at `nowMs` as the leader sees it (for time-to-live answers). */
  remainingMs(id: number, nowMs: number): number | undefined {
    const d = this.byId.get(id);
    return d === undefined ? undefined : Math.max(0, d.deadlineMs - nowMs);
  }

  /** The next deadline, so a shell can sleep until then (undefined: no leases). */
  nextDeadlineMs(): number | undefined {
    let next: number | undefined;
    for (const d of this.byId.values()) {
      if (next === undefined || d.deadlineMs < next) next = d.deadlineMs;
    }
    return next;
  }
}
