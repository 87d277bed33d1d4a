import { describe, expect, it } from 'vitest';
import { KvStateMachine, LeaseClock, kvKey } from '../../../src/kv/core/index.js';
import type { KvCommand } from '../../../src/kv/core/index.js';
import { limits } from '../../../src/lib/limits.js';

/** A leader: a state machine plus its lease clock, fed every applied command. */
function leader(sm = new KvStateMachine(), nowMs = 0, graceMs = 0) {
  const clock = LeaseClock.promote(sm.leaseList(), nowMs, graceMs);
  const apply = (command: KvCommand, now: number) => {
    const out = sm.apply({ command });
    clock.onApplied(command, out, now);
    return out;
  };
  return { sm, clock, apply };
}

describe('LeaseClock', () => {
  it('expires a lease once its TTL passes without a keep-alive, deleting its keys', () => {
    const { sm, clock, apply } = leader();
    const g = apply({ type: 'leaseGrant', ttlMs: 5000 }, 1000);
    const id = g.ok && g.result.type === 'leaseGrant' ? g.result.id : 0;
    apply({ type: 'put', key: kvKey('k'), value: kvKey('v'), lease: id }, 1000);
    expect(clock.nextDeadlineMs()).toBe(6000);
    expect(clock.expired(5999)).toBeUndefined();
    const cmd = clock.expired(6000);
    expect(cmd).toEqual({ type: 'leaseExpire', leases: [{ id, epoch: 0 }] });
    const out = apply(cmd!, 6001);
    expect(out.ok && out.result).toMatchObject({ expired: [id], deleted: 1 });
    expect(sm.read({ type: 'range', key: kvKey('k') }).count).toBe(0);
    expect(clock.size).toBe(0);
  });

  it('a keep-alive moves the deadline; one applied after the expiry was proposed wins', () => {
    const { sm, clock, apply } = leader();
    apply({ type: 'leaseGrant', id: 7, ttlMs: 5000 }, 0);
    apply({ type: 'leaseKeepAlive', id: 7 }, 3000);
    expect(clock.expired(5000)).toBeUndefined();
    const stale = clock.expired(8000)!;
    expect(stale.leases).toEqual([{ id: 7, epoch: 1 }]);
    apply({ type: 'leaseKeepAlive', id: 7 }, 8001); // the client's renewal got in first
    const out = apply(stale, 8002);
    expect(out.ok && out.result).toMatchObject({ expired: [] });
    expect(sm.leaseTimeToLive(7).epoch).toBe(2);
    expect(clock.remainingMs(7, 9001)).toBe(4000);
    expect(clock.expired(13_000)).toBeUndefined();
    expect(clock.expired(13_001)?.leases).toEqual([{ id: 7, epoch: 2 }]);
  });

  it('does not re-propose an expiry in flight until retryMs passes', () => {
    const { clock, apply } = leader();
    apply({ type: 'leaseGrant', id: 1, ttlMs: 1000 }, 0);
    expect(clock.expired(1000)).toBeDefined();
    expect(clock.expired(1500)).toBeUndefined();
    expect(clock.expired(2000)?.leases).toEqual([{ id: 1, epoch: 0 }]);
  });

  it('proposes at most kvLeaseExpireBatchMax leases at once, earliest first', () => {
    const { clock, apply } = leader();
    const n = limits.kvLeaseExpireBatchMax + 5;
    for (let i = n; i >= 1; i--) apply({ type: 'leaseGrant', id: i, ttlMs: 1000 + i }, 0);
    const first = clock.expired(10_000)!;
    expect(first.leases).toHaveLength(limits.kvLeaseExpireBatchMax);
    expect(first.leases[0]).toEqual({ id: 1, epoch: 0 });
    expect(clock.expired(10_000)!.leases.map((l) => l.id)).toEqual([n - 4, n - 3, n - 2, n - 1, n]);
  });

  it('after a failover no lease expires earlier than the old leader would have expired it', () => {
    const old = leader();
    old.apply({ type: 'leaseGrant', id: 1, ttlMs: 10_000 }, 0);
    old.apply({ type: 'leaseGrant', id: 2, ttlMs: 10_000 }, 0);
    const checkpoint = old.clock.checkpoint(4000); // both leases: 6000 ms left at epoch 0
    old.apply({ type: 'leaseKeepAlive', id: 2 }, 6000); // lease 2 renewed: deadline 16000
    old.apply(checkpoint, 6500); // lands after the renewal: kept for 1, skipped for 2
    expect(old.sm.leaseTimeToLive(1).remainingMs).toBe(6000);
    expect(old.sm.leaseTimeToLive(2).remainingMs).toBe(10_000);
    // The old leader dies at 7000 (its deadlines: 1 at 10000, 2 at 16000); a new one takes over at 7500.
    const promotedAt = 7500;
    const next = leader(old.sm, promotedAt, 0);
    expect(next.clock.remainingMs(1, promotedAt)! + promotedAt).toBeGreaterThanOrEqual(10_000);
    expect(next.clock.remainingMs(2, promotedAt)! + promotedAt).toBeGreaterThanOrEqual(16_000);
    // The checkpoint kept the extension bounded: lease 1 was not given a whole new TTL.
    expect(next.clock.remainingMs(1, promotedAt)).toBe(6000);
  });

  it('a grace period on promotion extends every lease', () => {
    const sm = new KvStateMachine();
    sm.apply({ command: { type: 'leaseGrant', id: 3, ttlMs: 2000 } });
    const { clock } = leader(sm, 100, 1500);
    expect(clock.remainingMs(3, 100)).toBe(3500);
    expect(clock.checkpoint(100)).toEqual({
      type: 'leaseCheckpoint',
      leases: [{ id: 3, remainingMs: 3500, epoch: 0 }],
    });
  });

  it('ignores refusals and duplicates, follows revocations', () => {
    const { sm, clock } = leader();
    const grant: KvCommand = { type: 'leaseGrant', id: 4, ttlMs: 2000 };
    const opened = sm.apply({ command: { type: 'sessionOpen' } });
    const clientId =
      opened.ok && opened.result.type === 'sessionOpen' ? opened.result.clientId : '';
    const session = { clientId, seq: 1 };
    clock.onApplied(grant, sm.apply({ command: grant, session }), 0);
    clock.onApplied(grant, sm.apply({ command: grant, session }), 1500); // duplicate: no new deadline
    expect(clock.remainingMs(4, 0)).toBe(2000);
    clock.onApplied(grant, sm.apply({ command: grant }), 1500); // ALREADY_EXISTS
    expect(clock.remainingMs(4, 0)).toBe(2000);
    const revoke: KvCommand = { type: 'leaseRevoke', id: 4 };
    clock.onApplied(revoke, sm.apply({ command: revoke }), 10);
    expect(clock.size).toBe(0);
    expect(clock.nextDeadlineMs()).toBeUndefined();
  });
});
