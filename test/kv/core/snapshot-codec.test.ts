/**
 * The columnar KV snapshot (version 3): states survive encode and decode
 * unchanged and encode to the same bytes again; a restored state machine
 * reads like the state it came from; version 1 and 2 snapshots still
 * restore (their client-named sessions with log time 0); corrupt or
 * truncated bytes are CORRUPTION and change nothing.
 */
import fc from 'fast-check';
import { Packr, unpack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import {
  KV_SNAPSHOT_VERSION,
  KvStateMachine,
  RANGE_END_ALL,
  fromByteString,
  toByteString,
} from '../../../src/kv/core/index.js';
import type { KeyValue, KvApplied, KvEntry } from '../../../src/kv/core/index.js';
import type { Version } from '../../../src/kv/core/mvcc.js';
import {
  decodeKvSnapshot,
  encodeKvSnapshot,
  swapByteOrder,
} from '../../../src/kv/core/snapshot-codec.js';
import type { KvSnapshotState } from '../../../src/kv/core/snapshot-codec.js';
import type { SessionRecord } from '../../../src/kv/core/sessions.js';
import { crc32c } from '../../../src/lib/crc32c.js';
import { isCohortError } from '../../../src/lib/errors.js';
import { limits } from '../../../src/lib/limits.js';
import { b, ok, put, session } from './helpers.js';
import { V1_SNAPSHOT_BASE64, V2_SNAPSHOT_BASE64, v1FixtureEntries } from './snapshot-v1-fixture.js';

/** A failing property prints its seed and path: replay it with FC_SEED=<seed> FC_PATH=<path>. */
const replay =
  process.env.FC_SEED === undefined
    ? {}
    : {
        seed: Number(process.env.FC_SEED),
        ...(process.env.FC_PATH === undefined ? {} : { path: process.env.FC_PATH }),
      };

// ------------------------------------------------------------ generators

const byteString = (minLength: number, maxLength: number): fc.Arbitrary<string> =>
  fc.uint8Array({ minLength, maxLength }).map(toByteString);

/** Numbers near a base: small stores, past 2^32 (float64 columns), near 2^53. */
const baseArb = fc.constantFrom(0, 0, 2 ** 32 - 3, 2 ** 53 - 1_000);

interface VersionSpec {
  gap: number;
  sub: number;
  value: string | null;
  version: number;
  lease: number;
}

const versionSpecArb: fc.Arbitrary<VersionSpec> = fc.record({
  gap: fc.integer({ min: 1, max: 4 }),
  sub: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 70_000 })),
  value: fc.option(byteString(0, 12), { nil: null, freq: 4 }),
  version: fc.integer({ min: 1, max: 300 }),
  lease: fc.integer({ min: 0, max: 3 }),
});

const outcomeArb = fc.oneof(
  fc.record({
    ok: fc.constant(true),
    result: fc.record({ type: fc.constant('put'), revision: fc.nat() }),
  }),
  fc.record({
    ok: fc.constant(true),
    result: fc.record({
      type: fc.constant('range'),
      revision: fc.nat(),
      kvs: fc.array(
        fc.record({
          key: fc.uint8Array(),
          value: fc.uint8Array(),
          createRevision: fc.nat(),
          modRevision: fc.nat(),
          version: fc.nat(),
          lease: fc.nat(),
        }),
        { maxLength: 2 },
      ),
      count: fc.nat(),
      more: fc.boolean(),
    }),
  }),
  fc.record({
    ok: fc.constant(false),
    error: fc.record({
      code: fc.constant('NOT_FOUND'),
      message: fc.string(),
      definite: fc.boolean(),
      details: fc.constant({}),
    }),
  }),
);

/**
 * A consistent state, as a live store could hold it: keys ascending, each
 * key's revisions ascending and at most the revision, a live last version's
 * lease among the leases, tombstones with zero numbers.
 */
const stateArb: fc.Arbitrary<KvSnapshotState> = fc
  .record({
    base: baseArb,
    keys: fc.uniqueArray(byteString(1, 6), { maxLength: 10 }),
    specs: fc.array(fc.array(versionSpecArb, { minLength: 1, maxLength: 4 }), {
      minLength: 10,
      maxLength: 10,
    }),
    leaseIds: fc.uniqueArray(
      fc.oneof(fc.integer({ min: 1, max: 1000 }), fc.constant(2 ** 40 + 1)),
      { minLength: 3, maxLength: 3 },
    ),
    extra: fc.nat(5),
    // -1: compacted 0, far below revisions past 2^32 (a sparse span of revisions).
    compactAt: fc.oneof(fc.constant(-1), fc.double({ min: 0, max: 1, noNaN: true })),
    nextLeaseId: fc.nat(),
    sessions: fc.uniqueArray(
      fc.tuple(
        fc.string({ minLength: 1, maxLength: 8 }),
        // 0: registered, no command yet (no outcome).
        fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 1e9 })),
        outcomeArb,
        fc.nat(),
        fc.integer({ min: limits.kvSessionTtlMsMin, max: limits.kvSessionTtlMsMax }),
      ),
      { maxLength: 3, selector: ([id]) => id },
    ),
    logTimeMs: fc.oneof(fc.constant(0), fc.nat(), fc.constant(2 ** 53 - 1)),
    nextSessionId: fc.integer({ min: 1, max: 2 ** 53 - 1 }),
  })
  .map(({ base, keys, specs, leaseIds, extra, compactAt, nextLeaseId, ...rest }) => {
    const sorted = [...keys].sort();
    let top = base;
    const histories = sorted.map((_, i) => {
      let rev = base;
      return (specs[i] as VersionSpec[]).map((v, j, all): Version => {
        rev += v.gap;
        top = Math.max(top, rev);
        const lease = v.lease === 0 ? 0 : (leaseIds[v.lease - 1] as number);
        // A deleted key's last version may be its tombstone; earlier ones too.
        if (v.value === null && (j < all.length - 1 || j % 2 === 0)) {
          return { rev, sub: v.sub, value: undefined, createRevision: 0, version: 0, lease: 0 };
        }
        return {
          rev,
          sub: v.sub,
          value: v.value ?? '',
          createRevision: rev - 1 < base ? base : rev - 1,
          version: v.version,
          lease,
        };
      });
    });
    const revision = top + extra;
    return {
      revision,
      compacted: compactAt < 0 ? 0 : Math.floor(base + (revision - base) * compactAt),
      nextLeaseId,
      keys: sorted,
      histories,
      leases: [...leaseIds]
        .sort((x, y) => x - y)
        .map((id, i) => ({ id, ttlMs: 1000 + i, remainingMs: 500 + i, epoch: i })),
      sessions: rest.sessions.map(([id, seq, outcome, active, ttlMs]): [string, SessionRecord] => [
        id,
        {
          seq,
          outcome: seq === 0 ? undefined : (outcome as SessionRecord['outcome']),
          lastActiveMs: Math.min(active, rest.logTimeMs),
          ttlMs,
        },
      ]),
      logTimeMs: rest.logTimeMs,
      nextSessionId: rest.nextSessionId,
    };
  });

// -------------------------------------------------------------- helpers

/**
 * What a version 1 or 2 snapshot can hold of `s`: client-named sessions with
 * an outcome, no log time (restored at log time 0 with the default TTL).
 */
function legacy(s: KvSnapshotState): KvSnapshotState {
  return {
    ...s,
    sessions: s.sessions
      .filter(([, r]) => r.outcome !== undefined)
      .map(([id, r]) => [
        id,
        { seq: r.seq, outcome: r.outcome, lastActiveMs: 0, ttlMs: limits.kvSessionTtlMsDefault },
      ]),
    logTimeMs: 0,
    nextSessionId: 1,
  };
}

/** Version 2 bytes of `s` (as the state machine wrote them before version 3): legacy sessions. */
function encodeV2(s: KvSnapshotState): Uint8Array {
  const v3 = encodeKvSnapshot(legacy(s));
  const meta = metaOf(v3);
  delete meta['logTimeMs'];
  delete meta['nextSessionId'];
  meta['sessions'] = (meta['sessions'] as unknown[][]).map((r) => r.slice(0, 3));
  const out = withMetaOf(v3, meta);
  new DataView(out.buffer).setUint32(4, 2, true);
  return reseal(out);
}

function metaOf(bytes: Uint8Array): Record<string, unknown> {
  const metaBytes = new DataView(bytes.buffer, bytes.byteOffset).getUint32(12, true);
  return unpack(bytes.subarray(16, 16 + metaBytes)) as Record<string, unknown>;
}

/** `bytes` with another meta map, the columns and blob moved to stay 8-aligned, resealed. */
function withMetaOf(bytes: Uint8Array, m: unknown): Uint8Array {
  const align8 = (n: number): number => Math.ceil(n / 8) * 8;
  const metaBytes = new DataView(bytes.buffer, bytes.byteOffset).getUint32(12, true);
  const packed = new Packr({ useRecords: false }).pack(m);
  const rest = bytes.subarray(align8(16 + metaBytes));
  const out = new Uint8Array(align8(16 + packed.length) + rest.length);
  out.set(bytes.subarray(0, 16));
  new DataView(out.buffer).setUint32(12, packed.length, true);
  out.set(packed, 16);
  out.set(rest, align8(16 + packed.length));
  return reseal(out);
}

/** The same state in version 1, as the state machine wrote it before version 2. */
function encodeV1(s: KvSnapshotState): Uint8Array {
  let blob = '';
  const keys = s.keys.map((k, i) => {
    blob += k;
    const recs: number[] = [];
    for (const v of s.histories[i] as Version[]) {
      if (v.value === undefined) {
        recs.push(v.rev, v.sub, -1, 0, 0, 0);
      } else {
        blob += v.value;
        recs.push(v.rev, v.sub, v.value.length, v.createRevision, v.version, v.lease);
      }
    }
    return [k.length, recs];
  });
  return new Uint8Array(
    new Packr({ useRecords: false }).pack({
      v: 1,
      revision: s.revision,
      compacted: s.compacted,
      nextLeaseId: s.nextLeaseId,
      bytes: fromByteString(blob),
      keys,
      leases: s.leases.map((l) => [l.id, l.ttlMs, l.remainingMs, l.epoch]),
      sessions: legacy(s).sessions.map(([id, r]) => [id, r.seq, r.outcome]),
    }),
  );
}

/** Recomputes the checksum of (edited) version 2 bytes, so the checks behind it are reached. */
function reseal(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes);
  new DataView(out.buffer).setUint32(8, crc32c(out.subarray(12)), true);
  return out;
}

/** The keys live now with their latest version, from a state. */
function liveKvs(s: KvSnapshotState): KeyValue[] {
  const out: KeyValue[] = [];
  s.keys.forEach((k, i) => {
    const hist = s.histories[i] as Version[];
    const v = hist[hist.length - 1] as Version;
    if (v.value === undefined) return;
    out.push({
      key: fromByteString(k),
      value: fromByteString(v.value),
      createRevision: v.createRevision,
      modRevision: v.rev,
      version: v.version,
      lease: v.lease,
    });
  });
  return out;
}

const all = { type: 'range' as const, key: RANGE_END_ALL, rangeEnd: RANGE_END_ALL };

/** A small store with every kind of content. */
/** A version at revision `rev` holding 'x' (fields overridable), for hand-built states. */
function v(rev: number, extra: Partial<Version> = {}): Version {
  return { rev, sub: 0, value: 'x', createRevision: rev, version: 1, lease: 0, ...extra };
}

function seeded(): KvStateMachine {
  const sm = new KvStateMachine();
  ok(sm, { type: 'leaseGrant', id: 1, ttlMs: 5000 });
  ok(sm, put('a', '1', { lease: 1 }));
  ok(sm, { type: 'put', key: Uint8Array.of(0xff, 0x80), value: Uint8Array.of(0, 0x9f, 0xff) });
  ok(sm, put('b', '2'));
  ok(sm, put('a', '3', { lease: 1 }));
  ok(sm, { type: 'deleteRange', key: b('b') });
  ok(sm, { type: 'compact', revision: 2 });
  ok(sm, put('c', '4'), { clientId: session(sm, 2000, 50), seq: 1 });
  session(sm); // registered, no command yet
  return sm;
}

/** Expects `bytes` to be refused with CORRUPTION by `sm`, leaving it as it was. */
function expectCorruption(sm: KvStateMachine, bytes: Uint8Array): void {
  const before = sm.snapshot();
  let code: string | undefined;
  try {
    sm.restore(bytes);
  } catch (e) {
    if (!isCohortError(e)) throw e;
    code = e.code;
  }
  expect(code).toBe('CORRUPTION');
  expect(sm.snapshot()).toEqual(before);
}

// ---------------------------------------------------------------- tests

describe('the columnar snapshot (version 2)', () => {
  it('a state decodes to itself and encodes to the same bytes again', () => {
    fc.assert(
      fc.property(stateArb, (s) => {
        const bytes = encodeKvSnapshot(s);
        const back = decodeKvSnapshot(bytes);
        expect(back).toEqual(s);
        expect(encodeKvSnapshot(back)).toEqual(bytes);
      }),
      { numRuns: 300 },
    );
  });

  it('restore gives the same snapshot bytes and the same reads', () => {
    fc.assert(
      fc.property(stateArb, (s) => {
        const bytes = encodeKvSnapshot(s);
        const sm = KvStateMachine.fromSnapshot(bytes);
        expect(sm.snapshot()).toEqual(bytes);
        expect([sm.revision, sm.compactedRevision]).toEqual([s.revision, s.compacted]);
        expect(sm.read(all).kvs).toEqual(liveKvs(s));
        expect(sm.leaseList().map((l) => l.id)).toEqual(s.leases.map((l) => l.id));
        // The change log: every version above the compacted revision, by (revision, sub).
        const changes = s.keys
          .flatMap((k, i) => (s.histories[i] as Version[]).map((v) => ({ k, v })))
          .filter(({ v }) => v.rev > s.compacted)
          .sort((x, y) => x.v.rev - y.v.rev || x.v.sub - y.v.sub);
        const events = sm.eventsSince(all, s.compacted + 1);
        expect(events.map((e) => [e.kv.modRevision, toByteString(e.kv.key)])).toEqual(
          changes.map(({ k, v }) => [v.rev, k]),
        );
      }),
      { numRuns: 200 },
    );
  });

  it('a live store round-trips, and equal stores give equal bytes', () => {
    const sm = seeded();
    const bytes = sm.snapshot();
    expect(seeded().snapshot()).toEqual(bytes);
    const copy = KvStateMachine.fromSnapshot(bytes);
    expect(copy.snapshot()).toEqual(bytes);
    expect(copy.read(all)).toEqual(sm.read(all));
    expect(copy.read({ ...all, revision: 3 })).toEqual(sm.read({ ...all, revision: 3 }));
    expect(copy.eventsSince(all, 3)).toEqual(sm.eventsSince(all, 3));
    expect(copy.leaseTimeToLive(1, true)).toEqual(sm.leaseTimeToLive(1, true));
    // The sessions survive: a retry is answered from them, the log time and next id too.
    expect([copy.sessionCount, copy.logTimeMs]).toEqual([2, 50]);
    const retry = { command: put('c', '4'), session: { clientId: '1', seq: 1 } };
    expect(copy.apply(retry)).toMatchObject({ ok: true, duplicate: true });
    expect(copy.apply(retry)).toEqual(sm.apply(retry));
    expect(session(copy)).toBe(session(sm));
    // And they expire alike.
    const later = { command: put('d', '1'), timeMs: 2051 };
    expect(copy.apply(later)).toEqual(sm.apply(later));
    expect(copy.apply(retry)).toMatchObject({ ok: false, error: { code: 'SESSION_EXPIRED' } });
    expect(copy.snapshot()).toEqual((sm.apply(retry), sm.snapshot()));
  });

  it('each column takes the smallest width that holds its numbers', () => {
    const widths = (s: KvSnapshotState): unknown => {
      const bytes = encodeKvSnapshot(s);
      const metaBytes = new DataView(bytes.buffer).getUint32(12, true);
      return (unpack(bytes.subarray(16, 16 + metaBytes)) as { widths: number[] }).widths;
    };
    const state = (hist: Version[], revision: number): KvSnapshotState => ({
      revision,
      compacted: 0,
      nextLeaseId: 1,
      keys: ['k'],
      histories: [hist],
      leases: [],
      sessions: [],
      logTimeMs: 0,
      nextSessionId: 1,
    });
    // key length, versions per key, rev, sub, value length + 1, createRevision, version, lease
    expect(widths(state([v(5)], 5))).toEqual([1, 1, 1, 1, 1, 1, 1, 1]);
    expect(widths(state([v(300), v(70_000, { sub: 2 ** 32 })], 70_000))).toEqual([
      1, 1, 4, 8, 1, 4, 1, 1,
    ]);
    expect(widths(state([v(2 ** 53 - 1, { value: 'y'.repeat(255) })], 2 ** 53 - 1))).toEqual([
      1, 1, 8, 1, 2, 8, 1, 1,
    ]);
  });

  it('decodes from a view at any offset of a larger buffer', () => {
    fc.assert(
      fc.property(stateArb, fc.integer({ min: 1, max: 7 }), (s, shift) => {
        const bytes = encodeKvSnapshot(s);
        const host = new Uint8Array(bytes.length + 8);
        host.set(bytes, shift);
        expect(decodeKvSnapshot(host.subarray(shift, shift + bytes.length))).toEqual(s);
      }),
      { numRuns: 50 },
    );
  });

  it('swaps the byte order of 2-, 4- and 8-byte numbers (big-endian hosts)', () => {
    const u8 = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);
    swapByteOrder(u8, 2);
    expect([...u8]).toEqual([2, 1, 4, 3, 6, 5, 8, 7]);
    swapByteOrder(u8, 2);
    swapByteOrder(u8, 4);
    expect([...u8]).toEqual([4, 3, 2, 1, 8, 7, 6, 5]);
    swapByteOrder(u8, 4);
    swapByteOrder(u8, 8);
    expect([...u8]).toEqual([8, 7, 6, 5, 4, 3, 2, 1]);
    swapByteOrder(u8, 1);
    expect([...u8]).toEqual([8, 7, 6, 5, 4, 3, 2, 1]);
  });

  it('writes version 3', () => {
    const bytes = seeded().snapshot();
    expect(KV_SNAPSHOT_VERSION).toBe(3);
    expect(toByteString(bytes.subarray(0, 4))).toBe('KVSN');
    expect(new DataView(bytes.buffer).getUint32(4, true)).toBe(3);
  });
});

describe('version 1 and 2 snapshots still restore', () => {
  /**
   * The fixture's entries through today's state machine (a log from before
   * registration replays as it applied, client-named sessions included),
   * and each entry's result.
   */
  function replay(): { sm: KvStateMachine; results: KvApplied[] } {
    const sm = new KvStateMachine();
    const results = v1FixtureEntries().map((e) => sm.apply(e));
    for (const r of results) expect(r.ok).toBe(true);
    return { sm, results };
  }

  for (const [version, base64] of [
    [1, V1_SNAPSHOT_BASE64],
    [2, V2_SNAPSHOT_BASE64],
  ] as const) {
    it(`a snapshot written by the version ${version} state machine restores to the state its entries give, its sessions kept`, () => {
      const old = Uint8Array.from(Buffer.from(base64, 'base64'));
      if (version === 1) expect((unpack(old) as { v: number }).v).toBe(1);
      else expect(new DataView(old.buffer).getUint32(4, true)).toBe(2);
      const { sm: replayed, results } = replay();
      const restored = KvStateMachine.fromSnapshot(old);
      expect(restored.snapshot()).toEqual(replayed.snapshot());
      expect(restored.read(all)).toEqual(replayed.read(all));
      expect(restored.eventsSince(all, 6)).toEqual(replayed.eventsSince(all, 6));
      expect(restored.leaseList()).toEqual(replayed.leaseList());
      expect(restored.leaseTimeToLive(7, true).keys).toEqual([b('svc/x')]);
      expect([restored.sessionCount, restored.logTimeMs]).toEqual([2, 0]);
      // client-1's second put, already applied: answered from its session.
      const retry = v1FixtureEntries()[11] as KvEntry;
      const again = restored.apply(retry);
      expect(again).toMatchObject({ ok: true, duplicate: true });
      expect(again.ok && again.result).toEqual(
        (results[11] as KvApplied).ok && (results[11] as { result: unknown }).result,
      );
      // New sessions get fresh ids; the legacy ones expire by log time like any other.
      expect(session(restored)).toBe('1');
      restored.apply({
        command: { type: 'compact', revision: 6 },
        timeMs: limits.kvSessionTtlMsDefault + 1,
      });
      expect(restored.apply(retry)).toMatchObject({
        ok: false,
        error: { code: 'SESSION_EXPIRED' },
      });
    });
  }

  it('the version 1 and 2 fixtures restore to the same state', () => {
    const v1 = KvStateMachine.fromSnapshot(Buffer.from(V1_SNAPSHOT_BASE64, 'base64'));
    const v2 = KvStateMachine.fromSnapshot(Buffer.from(V2_SNAPSHOT_BASE64, 'base64'));
    expect(v2.snapshot()).toEqual(v1.snapshot());
  });

  it('a legacy session named like a fresh id is never handed out again', () => {
    const s: KvSnapshotState = {
      revision: 1,
      compacted: 0,
      nextLeaseId: 1,
      keys: [],
      histories: [],
      leases: [],
      sessions: [
        [
          '1',
          {
            seq: 4,
            outcome: { ok: true, result: { type: 'put', revision: 1 } },
            lastActiveMs: 0,
            ttlMs: limits.kvSessionTtlMsDefault,
          },
        ],
      ],
      logTimeMs: 0,
      nextSessionId: 1,
    };
    const sm = KvStateMachine.fromSnapshot(encodeV2(s));
    expect(session(sm)).toBe('2');
    expect(sm.sessionCount).toBe(2);
  });

  it('any state in version 1 or 2 restores to what its version 3 bytes restore to, sessions as legacy', () => {
    fc.assert(
      fc.property(stateArb, (s) => {
        const want = legacy(s);
        for (const bytes of [encodeV1(s), encodeV2(s)]) {
          expect(decodeKvSnapshot(bytes)).toEqual(want);
          expect(KvStateMachine.fromSnapshot(bytes).snapshot()).toEqual(encodeKvSnapshot(want));
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('corrupt snapshots are refused and change nothing', () => {
  it('every truncation, every single-byte change and extra bytes are CORRUPTION', () => {
    const sm = seeded();
    const good = sm.snapshot();
    for (let len = 0; len < good.length; len++) expectCorruption(sm, good.slice(0, len));
    for (let i = 0; i < good.length; i++) {
      for (const flip of [0x01, 0x80, 0xff]) {
        const bad = good.slice();
        bad[i] = (bad[i] as number) ^ flip;
        expectCorruption(sm, bad);
      }
    }
    const longer = new Uint8Array(good.length + 3);
    longer.set(good);
    expectCorruption(sm, longer);
    expectCorruption(sm, reseal(longer));
  });

  it('random damage is CORRUPTION, and damage behind a valid checksum never crashes', () => {
    fc.assert(
      fc.property(
        stateArb,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.boolean(),
        (s, edits, resealed) => {
          const sm = seeded();
          const good = encodeKvSnapshot(s);
          let bad: Uint8Array = good.slice();
          for (const [at, flip] of edits) {
            const i = 12 + (at % (bad.length - 12));
            bad[i] = (bad[i] as number) ^ flip;
          }
          if (!resealed) return expectCorruption(sm, bad);
          bad = reseal(bad);
          const before = sm.snapshot();
          try {
            sm.restore(bad);
          } catch (e) {
            if (!isCohortError(e) || e.code !== 'CORRUPTION') throw e;
            expect(sm.snapshot()).toEqual(before);
            return;
          }
          // The damage made another consistent snapshot: it restored as a whole.
          expect(sm.snapshot()).toEqual(encodeKvSnapshot(decodeKvSnapshot(bad)));
        },
      ),
      { numRuns: 400, ...replay },
    );
  });

  it('inconsistent content behind a valid checksum is CORRUPTION', () => {
    const sm = seeded();
    const state = (over: Partial<KvSnapshotState>): KvSnapshotState => ({
      revision: 9,
      compacted: 0,
      nextLeaseId: 1,
      keys: ['a', 'b'],
      histories: [[v(5)], [v(6)]],
      leases: [],
      sessions: [],
      logTimeMs: 100,
      nextSessionId: 3,
      ...over,
    });
    const rec = (over: Partial<SessionRecord> = {}): SessionRecord => ({
      seq: 1,
      outcome: { ok: true, result: { type: 'sessionEnd', revision: 1, existed: false } },
      lastActiveMs: 50,
      ttlMs: 5000,
      ...over,
    });
    expect(
      KvStateMachine.fromSnapshot(
        encodeKvSnapshot(
          state({
            sessions: [
              ['c', rec()],
              ['d', rec({ seq: 0, outcome: undefined })],
            ],
          }),
        ),
      ).sessionCount,
    ).toBe(2);
    expect(KvStateMachine.fromSnapshot(encodeKvSnapshot(state({}))).keyCount).toBe(2);
    const bad: KvSnapshotState[] = [
      state({ keys: ['b', 'a'] }), // keys out of order
      state({ keys: ['a', 'a'] }), // a key twice
      state({ keys: ['', 'b'] }), // an empty key
      state({ histories: [[v(5)], []] }), // a key without versions
      state({ histories: [[v(6), v(5)], [v(7)]] }), // revisions out of order
      state({ histories: [[v(5), v(5)], [v(7)]] }), // a revision twice
      state({ histories: [[v(5)], [v(10)]] }), // a version above the revision
      state({ histories: [[v(5)], [v(6, { lease: 3 })]] }), // a key on an unknown lease
      state({ compacted: 10 }), // compacted above the revision
      state({ revision: -1 }),
      state({ nextLeaseId: 0.5 }),
      state({ leases: [{ id: 1, ttlMs: -5, remainingMs: 0, epoch: 0 }] }),
      state({ leases: [2, 1].map((id) => ({ id, ttlMs: 5, remainingMs: 0, epoch: 0 })) }),
      state({ leases: [3, 3].map((id) => ({ id, ttlMs: 5, remainingMs: 0, epoch: 0 })) }),
      state({ leases: [{ id: 0, ttlMs: 5, remainingMs: 0, epoch: 0 }] }),
      state({
        sessions: [
          ['c', rec()],
          ['c', rec({ seq: 2 })],
        ],
      }), // a session twice
      state({ sessions: [['c', rec({ outcome: 7 as never })]] }),
      // A damaged key in a remembered outcome (once a crash in resultBytes; FC_SEED=-462291745).
      state({
        sessions: [
          ['c', rec({ outcome: { ok: true, result: { uype: 'put', revision: 1 } } as never })],
        ],
      }),
      state({
        sessions: [
          ['c', rec({ outcome: { ok: true, result: { type: 'nope', revision: 1 } } as never })],
        ],
      }),
      // Damaged remembered outcomes: a bad result shape, an unknown error code, a non-string message.
      ...[
        { ok: true, result: { type: 'range', revision: 1, kvs: 3, count: 0, more: false } },
        { ok: true, result: { type: 'put', revision: 1, prevKv: { key: 'k' } } },
        {
          ok: true,
          result: {
            type: 'txn',
            revision: 1,
            succeeded: true,
            responses: [{ type: 'compact', revision: 1, compactedRevision: 0 }],
          },
        },
        { ok: false, error: { code: 'NO_SUCH_CODE', message: '', definite: true, details: {} } },
        { ok: false, error: { code: 'NOT_FOUND', message: 5, definite: true, details: {} } },
      ].map((outcome) => state({ sessions: [['c', rec({ outcome: outcome as never })]] })),
      state({ sessions: [['c', rec({ outcome: undefined })]] }), // a command without its outcome
      state({ sessions: [['', rec()]] }), // an empty id
      state({ sessions: [['c', rec({ lastActiveMs: 101 })]] }), // active after the log time
      state({ sessions: [['c', rec({ ttlMs: limits.kvSessionTtlMsMin - 1 })]] }),
      state({ sessions: [['c', rec({ ttlMs: limits.kvSessionTtlMsMax + 1 })]] }),
      state({ nextSessionId: 0 }),
      state({ logTimeMs: -1 }),
    ];
    for (const s of bad) expectCorruption(sm, encodeKvSnapshot(s));
    const good = encodeKvSnapshot(state({}));
    const metaBytes = new DataView(good.buffer).getUint32(12, true);
    const meta = unpack(good.subarray(16, 16 + metaBytes)) as Record<string, unknown>;
    const align8 = (n: number): number => Math.ceil(n / 8) * 8;
    /** `good` with another meta map, the columns and blob moved to stay 8-aligned. */
    const withMeta = (m: unknown): Uint8Array => {
      const packed = new Packr({ useRecords: false }).pack(m);
      const rest = good.subarray(align8(16 + metaBytes));
      const out = new Uint8Array(align8(16 + packed.length) + rest.length);
      out.set(good.subarray(0, 16));
      new DataView(out.buffer).setUint32(12, packed.length, true);
      out.set(packed, 16);
      out.set(rest, align8(16 + packed.length));
      return reseal(out);
    };
    // The same meta re-packed restores (so the cases below fail for their one flaw).
    expect(KvStateMachine.fromSnapshot(withMeta(meta)).keyCount).toBe(2);
    for (const m of [
      { ...meta, widths: [1, 1, 1, 1, 1, 1, 1, 3] }, // a width that is not 1, 2, 4 or 8
      { ...meta, widths: [1, 1, 1] },
      { ...meta, keys: 3 }, // counts that do not match the columns
      { ...meta, versions: 1 },
      { ...meta, blob: 1 },
      { ...meta, revision: 'nine' },
      { ...meta, logTimeMs: undefined }, // version 3 without its log time
      { ...meta, nextSessionId: 'one' },
      [1, 2, 3],
    ]) {
      expectCorruption(sm, withMeta(m));
    }
    // A tombstone with a version number (the encoder always writes zeros there).
    const tomb = encodeKvSnapshot(state({ histories: [[v(5, { value: undefined })], [v(6)]] }));
    expect(KvStateMachine.fromSnapshot(tomb).keyCount).toBe(1);
    const columns = align8(16 + new DataView(tomb.buffer).getUint32(12, true));
    const versionColumn = columns + 6 * 8; // all widths 1, two keys and two versions: 8 bytes apart
    expect(tomb[versionColumn + 1]).toBe(1);
    tomb[versionColumn] = 2;
    expectCorruption(sm, reseal(tomb));
    const v4 = good.slice();
    new DataView(v4.buffer).setUint32(4, 4, true);
    expectCorruption(sm, reseal(v4));
    // A version 2 snapshot with version 3 session rows, and the reverse.
    const withSession = encodeKvSnapshot(state({ sessions: [['c', rec()]] }));
    const v2 = withSession.slice();
    new DataView(v2.buffer).setUint32(4, 2, true);
    expectCorruption(sm, reseal(v2));
    expectCorruption(
      sm,
      withMetaOf(withSession, { ...metaOf(withSession), sessions: [['c', 1, rec().outcome]] }),
    );
    expectCorruption(sm, reseal(good.slice(0, 16)));
  });
});

describe('a snapshot encoded in steps while the store moves on', () => {
  /** One command on a few keys, leases and sessions; refusals are fine. */
  const commandArb = fc.oneof(
    fc.record({
      type: fc.constant('put' as const),
      key: fc.constantFrom('a', 'b', 'c', 'd'),
      value: byteString(0, 4),
      lease: fc.constantFrom(0, 0, 1, 2),
      session: fc.option(fc.constantFrom('s1', 's2'), { nil: undefined }),
    }),
    fc.record({ type: fc.constant('delete' as const), key: fc.constantFrom('a', 'b', 'c', 'd') }),
    fc.record({ type: fc.constant('compact' as const), back: fc.nat(3) }),
    fc.record({ type: fc.constant('lease' as const), id: fc.constantFrom(1, 2), op: fc.nat(3) }),
  );
  type Cmd = typeof commandArb extends fc.Arbitrary<infer C> ? C : never;
  const seqs = new Map<string, number>();
  /** The sessions 's1' and 's2' name, registered on the store under test. */
  let ids: Record<string, string> = {};
  function run(sm: KvStateMachine, c: Cmd): void {
    switch (c.type) {
      case 'put': {
        const command = {
          type: 'put' as const,
          key: b(c.key),
          value: fromByteString(c.value),
          ...(c.lease === 0 ? {} : { lease: c.lease }),
        };
        if (c.session === undefined) sm.apply({ command });
        else {
          const seq = (seqs.get(c.session) ?? 0) + 1;
          seqs.set(c.session, seq);
          sm.apply({ command, session: { clientId: ids[c.session] as string, seq } });
        }
        return;
      }
      case 'delete':
        sm.apply({ command: { type: 'deleteRange', key: b(c.key) } });
        return;
      case 'compact':
        sm.apply({ command: { type: 'compact', revision: Math.max(1, sm.revision - c.back) } });
        return;
      case 'lease': {
        const lease = sm.leaseList().find((l) => l.id === c.id);
        if (c.op === 0) sm.apply({ command: { type: 'leaseGrant', id: c.id, ttlMs: 5000 } });
        else if (c.op === 1) sm.apply({ command: { type: 'leaseRevoke', id: c.id } });
        else if (c.op === 2) sm.apply({ command: { type: 'leaseKeepAlive', id: c.id } });
        else if (lease !== undefined) {
          const leases = [{ id: c.id, remainingMs: 1234, epoch: lease.epoch }];
          sm.apply({ command: { type: 'leaseCheckpoint', leases } });
        }
        return;
      }
    }
  }

  it('gives the bytes the store had when the snapshot began', () => {
    fc.assert(
      fc.property(
        fc.array(commandArb, { maxLength: 40 }),
        fc.array(commandArb, { maxLength: 40 }),
        fc.integer({ min: 1, max: 3 }),
        (before, after, keysPerStep) => {
          seqs.clear();
          const sm = new KvStateMachine();
          ids = { s1: session(sm), s2: session(sm) };
          for (const c of before) run(sm, c);
          const expected = sm.snapshot();
          const enc = sm.beginSnapshot();
          let i = 0;
          // Every step is followed by a few more commands (compactions among them).
          while (!enc.step(keysPerStep)) {
            for (const c of after.slice(i, i + 3)) run(sm, c);
            i += 3;
          }
          for (const c of after.slice(i)) run(sm, c);
          expect(enc.bytes()).toEqual(expected);
          expect(KvStateMachine.fromSnapshot(enc.bytes()).snapshot()).toEqual(expected);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses the bytes before the encoding finished', () => {
    const enc = seeded().beginSnapshot();
    expect(() => enc.bytes()).toThrow(/before the encoding finished/);
    expect(enc.step(1)).toBe(false);
    while (!enc.step(1));
    expect(enc.bytes()).toEqual(seeded().snapshot());
  });
});
