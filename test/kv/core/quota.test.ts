/**
 * The KV store's storage quota and its NOSPACE alarm (core/state-machine.ts):
 * the size counted (keys + values + a fixed overhead per version kept), the
 * refusal of writes past the quota carried by the entry, the alarm that
 * persists (also through snapshots) while reads, deletes, compaction and
 * leases still work, and its disarming once compaction frees space. Every
 * replica applying the same entries reaches the same size, alarm and answers.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KvStateMachine } from '../../../src/kv/core/index.js';
import type { KvApplied, KvCommand, KvEntry, KvFailure } from '../../../src/kv/core/index.js';
import { limits } from '../../../src/lib/limits.js';
import { b, fresh, put } from './helpers.js';

const O = limits.kvVersionOverheadBytes;

/** Applies `command` as an entry carrying `quotaBytes` (and `session`, if given). */
function apply(
  sm: KvStateMachine,
  command: KvCommand,
  quotaBytes?: number,
  session?: KvEntry['session'],
): KvApplied {
  const entry: KvEntry = {
    command,
    ...(quotaBytes === undefined ? {} : { quotaBytes }),
    ...(session === undefined ? {} : { session }),
  };
  return sm.apply(entry);
}

function failure(out: KvApplied): KvFailure {
  if (out.ok) throw new Error(`expected a refusal, got ${out.result.type}`);
  return out.error;
}

/** A value of `n` bytes. */
function bytes(n: number): Uint8Array {
  return new Uint8Array(n).fill(0x61);
}

/**
 * Puts 100-byte values under 2-byte keys (166 bytes a version) until one is
 * refused: k0..k9 over and over, or with `distinct` a new key each time
 * (k0..k9, then ka.., 2 bytes while under 36 puts).
 */
function fill(
  sm: KvStateMachine,
  quota: number,
  distinct = false,
): { puts: number; refusal: KvFailure } {
  for (let i = 0; ; i++) {
    const key = distinct ? `k${i.toString(36)}` : `k${i % 10}`;
    const out = apply(sm, { type: 'put', key: b(key), value: bytes(100) }, quota);
    if (!out.ok) return { puts: i, refusal: out.error };
    if (i > 10_000) throw new Error('never refused');
  }
}

describe('the size the quota counts', () => {
  it('is key + value + overhead per version kept, tombstones included, until compaction', () => {
    const sm = fresh();
    expect(sm.sizeBytes).toBe(0);
    apply(sm, put('ab', 'xyz'));
    expect(sm.sizeBytes).toBe(2 + 3 + O);
    apply(sm, put('ab', 'v'));
    expect(sm.sizeBytes).toBe(2 + 3 + O + (2 + 1 + O));
    apply(sm, { type: 'deleteRange', key: b('ab') });
    expect(sm.sizeBytes).toBe(2 + 3 + O + (2 + 1 + O) + (2 + O));
    apply(sm, put('c', 'zz'));
    // Compaction at the delete's revision drops the key's whole history (ending in a tombstone).
    expect(apply(sm, { type: 'compact', revision: 3 }).ok).toBe(true);
    expect(sm.sizeBytes).toBe(1 + 2 + O);
    // A failed or read-only command changes nothing.
    apply(sm, { type: 'range', key: b('c') });
    apply(sm, { type: 'put', key: b('d'), value: b('1'), lease: 99 });
    expect(sm.sizeBytes).toBe(1 + 2 + O);
  });

  it('is a function of the state: a replica restored from a snapshot counts the same', () => {
    const keys = ['a', 'b', 'c', 'dd', 'eee'];
    const op = fc.oneof(
      fc.record({
        t: fc.constant('put' as const),
        k: fc.constantFrom(...keys),
        n: fc.nat({ max: 40 }),
      }),
      fc.record({ t: fc.constant('del' as const), k: fc.constantFrom(...keys) }),
      fc.record({ t: fc.constant('compact' as const), back: fc.nat({ max: 5 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const sm = fresh();
        for (const o of ops) {
          if (o.t === 'put') apply(sm, { type: 'put', key: b(o.k), value: bytes(o.n) });
          else if (o.t === 'del') apply(sm, { type: 'deleteRange', key: b(o.k) });
          else if (sm.revision - o.back > sm.compactedRevision) {
            apply(sm, { type: 'compact', revision: sm.revision - o.back });
          }
          expect(KvStateMachine.fromSnapshot(sm.snapshot()).sizeBytes).toBe(sm.sizeBytes);
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('the NOSPACE alarm', () => {
  const quota = 20 * (2 + 100 + O); // 20 puts of 166 bytes

  it('refuses the put that would pass the quota, definitely, and changes nothing else', () => {
    const sm = fresh();
    const { puts, refusal } = fill(sm, quota);
    expect(puts).toBe(20);
    expect(refusal).toMatchObject({
      code: 'NO_SPACE',
      definite: true,
      details: { reason: 'quota', sizeBytes: quota, costBytes: 166, quotaBytes: quota },
    });
    expect(sm.noSpaceAlarm).toBe(true);
    expect(sm.revision).toBe(20);
    expect(sm.sizeBytes).toBe(quota);
  });

  it('once raised, refuses every write that adds a value, even one that would fit', () => {
    const sm = fresh();
    fill(sm, quota + 100);
    expect(sm.noSpaceAlarm).toBe(true);
    // 100 bytes of room are left and this put needs 65 (1 + 0 + overhead), but the alarm refuses it.
    const tiny = failure(apply(sm, put('x', ''), quota + 100));
    expect(tiny).toMatchObject({ code: 'NO_SPACE', details: { reason: 'alarm', costBytes: 65 } });
    // Also in a txn, nested or not, and an ignoreValue put (it adds a version).
    const txn = (ops: KvCommand[]): KvCommand =>
      ({ type: 'txn', compare: [], success: ops, failure: [] }) as KvCommand;
    expect(failure(apply(sm, txn([put('y', '1')]), quota)).code).toBe('NO_SPACE');
    expect(failure(apply(sm, txn([txn([put('y', '1')])]), quota)).code).toBe('NO_SPACE');
    expect(
      failure(
        apply(sm, { type: 'put', key: b('k1'), value: new Uint8Array(), ignoreValue: true }, quota),
      ).code,
    ).toBe('NO_SPACE');
    // An entry without a quota (no check of its own) is refused too.
    expect(failure(apply(sm, put('z', '1'))).code).toBe('NO_SPACE');
    expect(sm.revision).toBe(20);
  });

  it('lets reads, deletes, read-only or deleting txns, compaction and leases through', () => {
    const sm = fresh();
    fill(sm, quota);
    const before = sm.revision;
    expect(sm.read({ type: 'range', key: b('k0') }).kvs).toHaveLength(1);
    expect(apply(sm, { type: 'range', key: b('k0') }, quota).ok).toBe(true);
    const lease = apply(sm, { type: 'leaseGrant', ttlMs: 5_000 }, quota);
    expect(lease.ok).toBe(true);
    expect(
      apply(
        sm,
        {
          type: 'txn',
          compare: [],
          success: [{ type: 'range', key: b('k1') }],
          failure: [put('k1', 'never')],
        },
        quota,
      ).ok,
    ).toBe(true);
    expect(
      apply(
        sm,
        { type: 'txn', compare: [], success: [{ type: 'deleteRange', key: b('k1') }], failure: [] },
        quota,
      ).ok,
    ).toBe(true);
    expect(apply(sm, { type: 'deleteRange', key: b('k2') }, quota).ok).toBe(true);
    expect(apply(sm, { type: 'leaseRevoke', id: 1 }, quota).ok).toBe(true);
    expect(apply(sm, { type: 'compact', revision: sm.revision }, quota).ok).toBe(true);
    expect(sm.revision).toBe(before + 2);
  });

  it('disarms once compaction brings the store to the disarm mark, not before', () => {
    const sm = fresh();
    fill(sm, quota);
    // Deletes alone add tombstones: the store grows, the alarm stays.
    for (let i = 0; i < 10; i++) apply(sm, { type: 'deleteRange', key: b(`k${i}`) }, quota);
    expect(sm.sizeBytes).toBeGreaterThan(quota);
    expect(sm.noSpaceAlarm).toBe(true);
    expect(failure(apply(sm, put('n', '1'), quota)).details).toMatchObject({ reason: 'alarm' });
    // The compaction entry itself disarms (it carries the quota and leaves the store empty).
    expect(apply(sm, { type: 'compact', revision: sm.revision }, quota).ok).toBe(true);
    expect(sm.sizeBytes).toBe(0);
    expect(sm.noSpaceAlarm).toBe(false);
    expect(apply(sm, put('n', '1'), quota).ok).toBe(true);
  });

  it('stays raised while the store is above the disarm mark, and a raised alarm survives a larger quota there', () => {
    const sm = fresh();
    fill(sm, quota, true);
    // Deleting one key of 20 and compacting leaves the store above 90% of the quota.
    apply(sm, { type: 'deleteRange', key: b('k0') }, quota);
    apply(sm, { type: 'compact', revision: sm.revision }, quota);
    expect(sm.sizeBytes).toBeGreaterThan((quota * limits.kvQuotaDisarmPercent) / 100);
    expect(sm.noSpaceAlarm).toBe(true);
    // A leader with twice the quota: the store is well below its mark, so its entry disarms.
    expect(apply(sm, put('n', '1'), 2 * quota).ok).toBe(true);
    expect(sm.noSpaceAlarm).toBe(false);
  });

  it('a value larger than the room left, in a store below the mark, is refused without raising it', () => {
    const sm = fresh();
    apply(sm, put('a', 'x'), 10_000);
    const big = failure(apply(sm, { type: 'put', key: b('b'), value: bytes(20_000) }, 10_000));
    expect(big).toMatchObject({ code: 'NO_SPACE', details: { reason: 'quota' } });
    expect(sm.noSpaceAlarm).toBe(false);
    expect(apply(sm, put('c', 'y'), 10_000).ok).toBe(true);
  });

  it('is in the snapshot: a restored replica refuses the same writes, and disarms the same way', () => {
    const sm = fresh();
    fill(sm, quota);
    const copy = KvStateMachine.fromSnapshot(sm.snapshot());
    expect(copy.noSpaceAlarm).toBe(true);
    expect(copy.sizeBytes).toBe(sm.sizeBytes);
    expect(copy.snapshot()).toEqual(sm.snapshot());
    const entries: KvCommand[] = [
      put('p', '1'),
      { type: 'deleteRange', key: b('k'), rangeEnd: b('l') },
      put('p', '2'),
    ];
    for (const c of entries) expect(apply(copy, c, quota)).toEqual(apply(sm, c, quota));
    const compact: KvCommand = { type: 'compact', revision: sm.revision };
    expect(apply(copy, compact, quota)).toEqual(apply(sm, compact, quota));
    expect(copy.noSpaceAlarm).toBe(false);
    expect(sm.noSpaceAlarm).toBe(false);
    expect(copy.snapshot()).toEqual(sm.snapshot());
    // Without the alarm the snapshot has no trace of it.
    expect(fresh().snapshot()).toEqual(KvStateMachine.fromSnapshot(fresh().snapshot()).snapshot());
  });

  it('a session remembers a NO_SPACE refusal: a retry gets it again, a new command is judged anew', () => {
    const sm = fresh();
    fill(sm, quota);
    const s1 = { clientId: 'c', seq: 1 };
    const first = failure(apply(sm, put('q', '1'), quota, s1));
    expect(first.code).toBe('NO_SPACE');
    const retry = apply(sm, put('q', '1'), quota, s1);
    expect(retry).toMatchObject({ ok: false, duplicate: true, error: { code: 'NO_SPACE' } });
    apply(sm, { type: 'deleteRange', key: b('k'), rangeEnd: b('l') }, quota);
    apply(sm, { type: 'compact', revision: sm.revision }, quota);
    expect(apply(sm, put('q', '1'), quota, { clientId: 'c', seq: 2 }).ok).toBe(true);
  });

  it('refuses a malformed quotaBytes as INVALID_ARGUMENT, changing nothing', () => {
    const sm = fresh();
    for (const q of [0, -1, 1.5, '100', Number.MAX_SAFE_INTEGER + 2]) {
      const out = sm.apply({ command: put('a', '1'), quotaBytes: q } as unknown as KvEntry);
      expect(failure(out)).toMatchObject({
        code: 'INVALID_ARGUMENT',
        details: { field: 'quotaBytes' },
      });
    }
    expect(sm.revision).toBe(0);
  });
});

describe("the leader's check before proposing (spaceRefusal)", () => {
  const quota = 10 * (2 + 100 + O);

  it('answers nothing until the alarm is raised: a write that merely does not fit goes through the log', () => {
    const sm = fresh();
    for (let i = 0; i < 10; i++) {
      apply(sm, { type: 'put', key: b(`k${i}`), value: bytes(100) }, quota);
    }
    const entry: KvEntry = { command: put('x', '1'), quotaBytes: quota };
    expect(sm.spaceRefusal(entry)).toBeUndefined();
    // Two such puts raced past the check; apply refuses both, on every replica alike.
    expect(failure(sm.apply(entry)).details).toMatchObject({ reason: 'quota' });
    expect(failure(sm.apply(entry)).details).toMatchObject({ reason: 'alarm' });
    expect(sm.spaceRefusal(entry)).toMatchObject({ code: 'NO_SPACE', definite: true });
  });

  it('refuses what apply would refuse for the alarm, and nothing else', () => {
    const sm = fresh();
    for (let i = 0; ; i++) {
      const out = apply(sm, { type: 'put', key: b(`k${i}`), value: bytes(100) }, quota, {
        clientId: 'w',
        seq: i + 1,
      });
      if (!out.ok) break;
    }
    expect(sm.noSpaceAlarm).toBe(true);
    const check = (command: KvCommand, extra: Partial<KvEntry> = {}): string | undefined =>
      sm.spaceRefusal({ command, quotaBytes: quota, ...extra })?.code;
    expect(check(put('x', '1'))).toBe('NO_SPACE');
    expect(check({ type: 'txn', compare: [], success: [put('x', '1')], failure: [] })).toBe(
      'NO_SPACE',
    );
    expect(check({ type: 'deleteRange', key: b('k1') })).toBeUndefined();
    expect(check({ type: 'compact', revision: 1 })).toBeUndefined();
    expect(check({ type: 'leaseGrant', ttlMs: 5_000 })).toBeUndefined();
    expect(
      check({ type: 'txn', compare: [], success: [], failure: [put('x', '1')] }),
    ).toBeUndefined();
    // A retry of the session's last command is answered from the session, never refused here.
    expect(check(put('x', '1'), { session: { clientId: 'w', seq: 11 } })).toBeUndefined();
    expect(check(put('x', '1'), { session: { clientId: 'w', seq: 12 } })).toBe('NO_SPACE');
    // Bad input is left to apply, which says what is wrong with it.
    expect(check({ type: 'put', key: new Uint8Array(), value: b('1') })).toBeUndefined();
    // A leader whose quota leaves the store below the mark: its entry would disarm the alarm.
    expect(check(put('x', '1'), { quotaBytes: 10 * quota })).toBeUndefined();
  });

  it('changes nothing: the check runs on the leader only, outside apply', () => {
    // A store in which no session was ever registered takes an unknown client at
    // seq 1 as new, and check() would register it: the peek must not.
    const sm = fresh();
    for (;;) {
      const out = apply(sm, { type: 'put', key: b(`k${sm.revision}`), value: bytes(100) }, quota);
      if (!out.ok) break;
    }
    expect(sm.noSpaceAlarm).toBe(true);
    const before = Buffer.from(sm.snapshot());
    const sessions = sm.sessionCount;
    expect(
      sm.spaceRefusal({
        command: put('x', '1'),
        quotaBytes: quota,
        session: { clientId: 'u', seq: 1 },
      })?.code,
    ).toBe('NO_SPACE');
    expect(sm.sessionCount).toBe(sessions);
    expect(Buffer.from(sm.snapshot()).equals(before)).toBe(true);
  });
});
