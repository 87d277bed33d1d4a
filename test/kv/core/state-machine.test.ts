import { describe, expect, it } from 'vitest';
import { decodeKvSnapshot } from '../../../src/kv/core/snapshot-codec.js';
import { KvStateMachine, fromKeyRange, kvText, prefixRange } from '../../../src/kv/core/index.js';
import type { TxnRequest } from '../../../src/kv/core/index.js';
import { limits } from '../../../src/lib/limits.js';
import { b, fresh, ok, pairs, put, refused, session } from './helpers.js';

function seeded(): KvStateMachine {
  const sm = fresh();
  for (const [k, v] of [
    ['a', '1'],
    ['b', '22'],
    ['b/x', '3'],
    ['b/y', '0'],
    ['c', '5'],
  ] as const) {
    ok(sm, put(k, v));
  }
  return sm; // revision 5
}

describe('put', () => {
  it('creates a key at a new revision with version 1 and bumps the version on overwrite', () => {
    const sm = fresh();
    expect(sm.revision).toBe(0);
    const r1 = ok(sm, put('a', '1'));
    expect(r1.revision).toBe(1);
    const r2 = ok(sm, put('a', '2', { prevKv: true }));
    expect(r2.revision).toBe(2);
    expect(r2.prevKv).toMatchObject({ createRevision: 1, modRevision: 1, version: 1 });
    expect(kvText(r2.prevKv!.value)).toBe('1');
    const kv = sm.read({ type: 'range', key: b('a') }).kvs[0]!;
    expect(kv).toMatchObject({ createRevision: 1, modRevision: 2, version: 2, lease: 0 });
  });

  it('emits a PUT event with the previous value', () => {
    const sm = fresh();
    ok(sm, put('a', '1'));
    const r = ok(sm, put('a', '2'));
    expect(r.events).toHaveLength(1);
    expect(r.events[0]!.type).toBe('PUT');
    expect(kvText(r.events[0]!.kv.value)).toBe('2');
    expect(kvText(r.events[0]!.prevKv!.value)).toBe('1');
  });

  it('does not keep a reference to the caller’s buffers', () => {
    const sm = fresh();
    const value = b('x');
    const key = b('k');
    ok(sm, { type: 'put', key, value });
    value[0] = 0x79;
    key[0] = 0x6a;
    expect(pairs(sm.read({ type: 'range', key: b('k') }).kvs)).toEqual(['k=x']);
  });

  it('ignoreValue keeps the value and ignoreLease keeps the lease; both need the key', () => {
    const sm = fresh();
    const l = ok(sm, { type: 'leaseGrant', ttlMs: 5000 });
    ok(sm, put('a', 'v', { lease: l.id }));
    ok(sm, { type: 'put', key: b('a'), value: new Uint8Array(), ignoreValue: true });
    let kv = sm.read({ type: 'range', key: b('a') }).kvs[0]!;
    expect([kvText(kv.value), kv.lease, kv.version]).toEqual(['v', 0, 2]);
    ok(sm, put('a', 'w', { lease: l.id }));
    ok(sm, put('a', 'z', { ignoreLease: true }));
    kv = sm.read({ type: 'range', key: b('a') }).kvs[0]!;
    expect([kvText(kv.value), kv.lease]).toEqual(['z', l.id]);
    expect(refused(sm, put('nope', '', { ignoreValue: true })).code).toBe('NOT_FOUND');
  });
});

describe('range', () => {
  it('reads one key, a range, a prefix and from a key', () => {
    const sm = seeded();
    expect(pairs(sm.read({ type: 'range', key: b('b') }).kvs)).toEqual(['b=22']);
    expect(pairs(sm.read({ type: 'range', key: b('a'), rangeEnd: b('b/y') }).kvs)).toEqual([
      'a=1',
      'b=22',
      'b/x=3',
    ]);
    expect(pairs(sm.read({ type: 'range', ...prefixRange(b('b/')) }).kvs)).toEqual([
      'b/x=3',
      'b/y=0',
    ]);
    expect(pairs(sm.read({ type: 'range', ...fromKeyRange(b('b/y')) }).kvs)).toEqual([
      'b/y=0',
      'c=5',
    ]);
    expect(sm.read({ type: 'range', ...prefixRange(new Uint8Array()) }).count).toBe(5);
    expect(sm.read({ type: 'range', key: b('zz') }).kvs).toEqual([]);
  });

  it('orders keys by bytes, not by UTF-16 or locale', () => {
    const sm = fresh();
    const keys = [Uint8Array.of(0xff), Uint8Array.of(0x7f), Uint8Array.of(0x80, 0), b('é'), b('z')];
    for (const key of keys) ok(sm, { type: 'put', key, value: b('') });
    const got = sm
      .read({ type: 'range', ...fromKeyRange(Uint8Array.of(1)) })
      .kvs.map((kv) => [...kv.key]);
    expect(got).toEqual([[0x7a], [0x7f], [0x80, 0], [0xc3, 0xa9], [0xff]]);
  });

  it('limit cuts the result, sets more, and count counts everything', () => {
    const r = seeded().read({ type: 'range', ...fromKeyRange(b('a')), limit: 2 });
    expect(pairs(r.kvs)).toEqual(['a=1', 'b=22']);
    expect([r.count, r.more]).toEqual([5, true]);
    const all = seeded().read({ type: 'range', ...fromKeyRange(b('a')), limit: 5 });
    expect(all.more).toBe(false);
  });

  it('sorts by each target in both directions (ties in key order)', () => {
    const sm = seeded();
    ok(sm, put('b/x', '4')); // b/x version 2, modRevision 6
    const all = { type: 'range' as const, ...fromKeyRange(b('a')) };
    const keys = (r: { kvs: readonly { key: Uint8Array }[] }) => r.kvs.map((kv) => kvText(kv.key));
    expect(keys(sm.read({ ...all, sortTarget: 'key', sortOrder: 'descend' }))).toEqual([
      'c',
      'b/y',
      'b/x',
      'b',
      'a',
    ]);
    expect(keys(sm.read({ ...all, sortTarget: 'value', sortOrder: 'ascend' }))).toEqual([
      'b/y',
      'a',
      'b',
      'b/x',
      'c',
    ]);
    expect(keys(sm.read({ ...all, sortTarget: 'version', sortOrder: 'descend' }))[0]).toBe('b/x');
    expect(keys(sm.read({ ...all, sortTarget: 'modRevision', sortOrder: 'descend' }))).toEqual([
      'b/x',
      'c',
      'b/y',
      'b',
      'a',
    ]);
    expect(keys(sm.read({ ...all, sortTarget: 'createRevision', sortOrder: 'ascend' }))).toEqual([
      'a',
      'b',
      'b/x',
      'b/y',
      'c',
    ]);
    // A target without an order sorts ascending (etcd's rule).
    expect(keys(sm.read({ ...all, sortTarget: 'modRevision' }))[4]).toBe('b/x');
    // Sort then limit: the newest two.
    const newest = sm.read({ ...all, sortTarget: 'modRevision', sortOrder: 'descend', limit: 2 });
    expect(keys(newest)).toEqual(['b/x', 'c']);
  });

  it('countOnly and keysOnly', () => {
    const sm = seeded();
    const c = sm.read({ type: 'range', ...prefixRange(b('b')), countOnly: true });
    expect([c.count, c.kvs.length]).toEqual([3, 0]);
    const k = sm.read({ type: 'range', ...prefixRange(b('b')), keysOnly: true });
    expect(k.kvs.map((kv) => [kvText(kv.key), kv.value.length, kv.version])).toEqual([
      ['b', 0, 1],
      ['b/x', 0, 1],
      ['b/y', 0, 1],
    ]);
  });

  it('reads at a past revision, refuses a compacted or future one', () => {
    const sm = seeded();
    ok(sm, put('a', 'new'));
    ok(sm, { type: 'deleteRange', key: b('c') });
    const at = (revision: number) =>
      pairs(sm.read({ type: 'range', ...fromKeyRange(b('a')), revision }).kvs);
    expect(at(1)).toEqual(['a=1']);
    expect(at(5)).toEqual(['a=1', 'b=22', 'b/x=3', 'b/y=0', 'c=5']);
    expect(at(6)).toEqual(['a=new', 'b=22', 'b/x=3', 'b/y=0', 'c=5']);
    expect(at(7)).toEqual(['a=new', 'b=22', 'b/x=3', 'b/y=0']);
    expect(sm.read({ type: 'range', key: b('a'), revision: 1 }).revision).toBe(7);
    ok(sm, { type: 'compact', revision: 6 });
    expect(at(6)).toEqual(['a=new', 'b=22', 'b/x=3', 'b/y=0', 'c=5']);
    expect(() => at(5)).toThrow(expect.objectContaining({ code: 'COMPACTED' }));
    expect(() => at(8)).toThrow(expect.objectContaining({ code: 'FAILED_PRECONDITION' }));
    expect(refused(sm, { type: 'range', key: b('a'), revision: 2 }).code).toBe('COMPACTED');
  });
});

describe('deleteRange', () => {
  it('deletes a range at one revision with DELETE events and prevKvs', () => {
    const sm = seeded();
    const r = ok(sm, { type: 'deleteRange', ...prefixRange(b('b')), prevKv: true });
    expect(r.deleted).toBe(3);
    expect(r.revision).toBe(6);
    expect(pairs(r.prevKvs!)).toEqual(['b=22', 'b/x=3', 'b/y=0']);
    expect(r.events.map((e) => [e.type, kvText(e.kv.key), e.kv.modRevision])).toEqual([
      ['DELETE', 'b', 6],
      ['DELETE', 'b/x', 6],
      ['DELETE', 'b/y', 6],
    ]);
    expect(r.events[0]!.kv).toMatchObject({ version: 0, createRevision: 0, lease: 0 });
    expect(pairs(sm.read({ type: 'range', ...fromKeyRange(b('a')) }).kvs)).toEqual(['a=1', 'c=5']);
  });

  it('deleting nothing does not bump the revision', () => {
    const sm = seeded();
    const r = ok(sm, { type: 'deleteRange', key: b('zzz') });
    expect([r.deleted, r.revision, r.events.length, sm.revision]).toEqual([0, 5, 0, 5]);
  });

  it('a deleteRange whose prevKvs would pass kvRangeBytesMax is refused before it changes anything (definite), and runs without prevKv', () => {
    const sm = fresh();
    const big = new Uint8Array(limits.kvValueBytesMax);
    const n = Math.floor(limits.kvRangeBytesMax / limits.kvValueBytesMax) + 1;
    for (let i = 0; i < n; i++) ok(sm, { type: 'put', key: b(`big/${i}`), value: big });
    const same = (x: Uint8Array, y: Uint8Array): boolean => Buffer.compare(x, y) === 0;
    const before = sm.snapshot();
    const e = refused(sm, { type: 'deleteRange', ...prefixRange(b('big/')), prevKv: true });
    expect([e.code, e.definite, e.details.reason]).toEqual([
      'FAILED_PRECONDITION',
      true,
      'replyTooLarge',
    ]);
    expect(same(sm.snapshot(), before)).toBe(true);
    // The same cap inside a txn, for its prevKvs and its ranges.
    const txn = (op: TxnRequest['success'][number]): TxnRequest => ({
      type: 'txn',
      compare: [],
      success: [op],
      failure: [],
    });
    expect(
      refused(sm, txn({ type: 'deleteRange', ...prefixRange(b('big/')), prevKv: true })).details
        .reason,
    ).toBe('replyTooLarge');
    expect(refused(sm, txn({ type: 'range', ...prefixRange(b('big/')) })).details.reason).toBe(
      'replyTooLarge',
    );
    expect(
      ok(sm, txn({ type: 'range', ...prefixRange(b('big/')), limit: 2 })).responses,
    ).toHaveLength(1);
    expect(
      ok(sm, txn({ type: 'range', ...prefixRange(b('big/')), keysOnly: true })).succeeded,
    ).toBe(true);
    expect(same(sm.snapshot(), before)).toBe(true);
    expect(ok(sm, { type: 'deleteRange', ...prefixRange(b('big/')) }).deleted).toBe(n);
  });

  it('a key recreated after a delete starts a new life', () => {
    const sm = seeded();
    ok(sm, { type: 'deleteRange', key: b('a') });
    ok(sm, put('a', 'again'));
    const kv = sm.read({ type: 'range', key: b('a') }).kvs[0]!;
    expect(kv).toMatchObject({ createRevision: 7, modRevision: 7, version: 1 });
  });
});

describe('txn', () => {
  const cas = (key: string, modRevision: number, value: string): TxnRequest => ({
    type: 'txn',
    compare: [{ target: 'modRevision', key: b(key), op: '=', value: modRevision }],
    success: [put(key, value)],
    failure: [{ type: 'range', key: b(key) }],
  });

  it('runs success when every compare holds, failure otherwise', () => {
    const sm = seeded();
    const won = ok(sm, cas('a', 1, 'x'));
    expect([won.succeeded, won.revision]).toEqual([true, 6]);
    const lost = ok(sm, cas('a', 1, 'y'));
    expect(lost.succeeded).toBe(false);
    expect(lost.revision).toBe(6);
    expect(lost.events).toEqual([]);
    const read = lost.responses[0]!;
    expect(read.type === 'range' && pairs(read.kvs)).toEqual(['a=x']);
  });

  it('all writes of a txn share one revision and later ops see earlier writes', () => {
    const sm = seeded();
    const r = ok(sm, {
      type: 'txn',
      compare: [],
      success: [
        put('n1', '1'),
        { type: 'deleteRange', key: b('c') },
        put('n2', '2'),
        { type: 'range', ...prefixRange(b('n')) },
      ],
      failure: [],
    });
    expect(r.revision).toBe(6);
    expect(r.responses.map((x) => x.revision)).toEqual([6, 6, 6, 6]);
    const read = r.responses[3]!;
    expect(read.type === 'range' && pairs(read.kvs)).toEqual(['n1=1', 'n2=2']);
    expect(r.events.map((e) => `${e.type} ${kvText(e.kv.key)}@${e.kv.modRevision}`)).toEqual([
      'PUT n1@6',
      'DELETE c@6',
      'PUT n2@6',
    ]);
    expect(sm.revision).toBe(6);
  });

  it('a read-only txn does not bump the revision', () => {
    const sm = seeded();
    const r = ok(sm, {
      type: 'txn',
      compare: [],
      success: [{ type: 'range', key: b('a') }],
      failure: [],
    });
    expect([r.revision, sm.revision]).toEqual([5, 5]);
  });

  it('compares every target with every operator', () => {
    const sm = seeded();
    const l = ok(sm, { type: 'leaseGrant', ttlMs: 5000 });
    ok(sm, put('b', '22', { lease: l.id })); // b: version 2, create 2, mod 6
    const holds = (c: TxnRequest['compare'][number]) =>
      ok(sm, { type: 'txn', compare: [c], success: [], failure: [] }).succeeded;
    const key = b('b');
    expect(holds({ target: 'value', key, op: '=', value: b('22') })).toBe(true);
    expect(holds({ target: 'value', key, op: '<', value: b('3') })).toBe(true);
    expect(holds({ target: 'value', key, op: '>', value: b('3') })).toBe(false);
    expect(holds({ target: 'value', key, op: '!=', value: b('22') })).toBe(false);
    expect(holds({ target: 'version', key, op: '=', value: 2 })).toBe(true);
    expect(holds({ target: 'version', key, op: '>', value: 1 })).toBe(true);
    expect(holds({ target: 'createRevision', key, op: '=', value: 2 })).toBe(true);
    expect(holds({ target: 'createRevision', key, op: '<', value: 2 })).toBe(false);
    expect(holds({ target: 'modRevision', key, op: '=', value: 6 })).toBe(true);
    expect(holds({ target: 'modRevision', key, op: '!=', value: 6 })).toBe(false);
    expect(holds({ target: 'lease', key, op: '=', value: l.id })).toBe(true);
    expect(holds({ target: 'lease', key: b('a'), op: '=', value: 0 })).toBe(true);
    // A missing key: zeros, and a value compare is false.
    const missing = b('missing');
    expect(holds({ target: 'version', key: missing, op: '=', value: 0 })).toBe(true);
    expect(holds({ target: 'createRevision', key: missing, op: '=', value: 0 })).toBe(true);
    expect(holds({ target: 'value', key: missing, op: '!=', value: b('x') })).toBe(false);
    // A range compare holds only if it holds for every key in it.
    const pre = prefixRange(b('b/'));
    expect(holds({ target: 'version', ...pre, op: '=', value: 1 })).toBe(true);
    expect(holds({ target: 'value', ...pre, op: '=', value: b('3') })).toBe(false);
  });

  it('nested txns choose their branch against the state before the txn', () => {
    const sm = seeded();
    const r = ok(sm, {
      type: 'txn',
      compare: [],
      success: [
        put('a', 'changed'),
        {
          type: 'txn',
          compare: [{ target: 'value', key: b('a'), op: '=', value: b('1') }],
          success: [put('saw', 'old')],
          failure: [put('saw', 'new')],
        },
      ],
      failure: [],
    });
    const inner = r.responses[1]!;
    expect(inner.type === 'txn' && inner.succeeded).toBe(true);
    expect(inner.revision).toBe(6);
    expect(pairs(sm.read({ type: 'range', key: b('saw') }).kvs)).toEqual(['saw=old']);
  });

  it('refuses a key written twice in the taken path, but not across exclusive branches', () => {
    const sm = seeded();
    const before = sm.snapshot();
    const twice = refused(sm, {
      type: 'txn',
      compare: [],
      success: [put('k', '1'), put('k', '2')],
      failure: [],
    });
    expect(twice.code).toBe('INVALID_ARGUMENT');
    const putDeleted = refused(sm, {
      type: 'txn',
      compare: [],
      success: [put('b/q', '1'), { type: 'deleteRange', ...prefixRange(b('b/')) }],
      failure: [],
    });
    expect(putDeleted.code).toBe('INVALID_ARGUMENT');
    expect(sm.snapshot()).toEqual(before);
    ok(sm, {
      type: 'txn',
      compare: [],
      success: [
        {
          type: 'txn',
          compare: [],
          success: [put('k', 'inner-success')],
          failure: [put('k', 'inner-failure')],
        },
      ],
      failure: [put('k', 'outer-failure')],
    });
    expect(pairs(sm.read({ type: 'range', key: b('k') }).kvs)).toEqual(['k=inner-success']);
  });
});

describe('compact', () => {
  it('drops history below the revision and refuses compacted or future revisions', () => {
    const sm = seeded();
    ok(sm, put('a', '2'));
    ok(sm, put('a', '3'));
    ok(sm, { type: 'deleteRange', key: b('c') });
    const r = ok(sm, { type: 'compact', revision: 8 });
    expect([r.revision, r.compactedRevision, sm.compactedRevision]).toEqual([8, 8, 8]);
    expect(refused(sm, { type: 'compact', revision: 8 }).code).toBe('COMPACTED');
    expect(refused(sm, { type: 'compact', revision: 9 }).code).toBe('FAILED_PRECONDITION');
    expect(pairs(sm.read({ type: 'range', ...fromKeyRange(b('a')), revision: 8 }).kvs)).toEqual([
      'a=3',
      'b=22',
      'b/x=3',
      'b/y=0',
    ]);
    // Below 8 only the newest version of each key survives, and the deleted key is gone.
    const snap = decodeKvSnapshot(sm.snapshot());
    expect(snap.keys.map((k, i) => [k, snap.histories[i]?.length])).toEqual([
      ['a', 1],
      ['b', 1],
      ['b/x', 1],
      ['b/y', 1],
    ]);
    const again = KvStateMachine.fromSnapshot(sm.snapshot());
    expect(again.read({ type: 'range', ...fromKeyRange(b('a')) }).count).toBe(4);
  });

  it('keeps a value written before the compacted revision readable', () => {
    const sm = seeded();
    ok(sm, put('z', '1'));
    ok(sm, { type: 'compact', revision: 6 });
    ok(sm, put('z', '2'));
    expect(pairs(sm.read({ type: 'range', key: b('a'), revision: 6 }).kvs)).toEqual(['a=1']);
    expect(pairs(sm.read({ type: 'range', key: b('z'), revision: 6 }).kvs)).toEqual(['z=1']);
  });
});

describe('watch events', () => {
  it('replays events for a key, a prefix or everything from a revision', () => {
    const sm = seeded();
    ok(sm, put('b/x', '4'));
    ok(sm, { type: 'deleteRange', key: b('b/y') });
    const evs = (range: { key: Uint8Array; rangeEnd?: Uint8Array }, from: number) =>
      sm.eventsSince(range, from).map((e) => `${e.type} ${kvText(e.kv.key)}@${e.kv.modRevision}`);
    expect(evs({ key: b('b/x') }, 1)).toEqual(['PUT b/x@3', 'PUT b/x@6']);
    expect(evs(prefixRange(b('b/')), 4)).toEqual(['PUT b/y@4', 'PUT b/x@6', 'DELETE b/y@7']);
    expect(evs(fromKeyRange(b('a')), 7)).toEqual(['DELETE b/y@7']);
    expect(evs(fromKeyRange(b('a')), 8)).toEqual([]);
    expect(sm.eventsSince({ key: b('b/y') }, 7)[0]!.prevKv?.modRevision).toBe(4);
    ok(sm, { type: 'compact', revision: 6 });
    expect(() => evs({ key: b('a') }, 6)).toThrow(expect.objectContaining({ code: 'COMPACTED' }));
    expect(evs(prefixRange(b('b/')), 7)).toEqual(['DELETE b/y@7']);
  });

  it('the replayed events equal the events apply returned', () => {
    const sm = fresh();
    const emitted = [
      ok(sm, put('a', '1')).events,
      ok(sm, put('a', '2')).events,
      ok(sm, { type: 'deleteRange', key: b('a') }).events,
    ].flat();
    expect(sm.eventsSince(fromKeyRange(b('a')), 1)).toEqual(emitted);
  });

  it('replays in pages that never split a revision and add up to the whole', () => {
    const sm = fresh();
    for (let i = 0; i < 20; i++) {
      // Revisions of one, two and three events, on keys in and out of the range.
      const n = (i % 3) + 1;
      const ops = Array.from({ length: n }, (_, j) => put(`${j === 2 ? 'z' : 'k'}${i}/${j}`, 'v'));
      ok(sm, { type: 'txn', compare: [], success: ops, failure: [] });
    }
    const range = { key: b('k'), rangeEnd: b('l') };
    const all = sm.eventsSince(range, 1);
    for (const page of [
      { eventsMax: 1, bytesMax: 1e9 },
      { eventsMax: 3, bytesMax: 1e9 },
      { eventsMax: 1e9, bytesMax: 1 },
    ]) {
      const pages: (typeof all)[] = [];
      for (let from = 1; ;) {
        const p = sm.eventsSince(range, from, page);
        if (p.length === 0) break;
        pages.push(p);
        from = p[p.length - 1]!.kv.modRevision + 1;
      }
      expect(pages.flat()).toEqual(all);
      // No revision in two pages; each page stops at the first revision past its bound.
      const revs = pages.map((p) => new Set(p.map((e) => e.kv.modRevision)));
      for (let i = 1; i < revs.length; i++) {
        for (const r of revs[i]!) expect(revs[i - 1]!.has(r)).toBe(false);
      }
      if (page.eventsMax === 1) expect(revs.every((r) => r.size === 1)).toBe(true);
    }
  });
});

describe('leases', () => {
  it('grants ids in order or as asked, refuses a taken id and an out-of-range TTL', () => {
    const sm = fresh();
    expect(ok(sm, { type: 'leaseGrant', ttlMs: 2000 }).id).toBe(1);
    expect(ok(sm, { type: 'leaseGrant', id: 2, ttlMs: 2000 }).id).toBe(2);
    expect(ok(sm, { type: 'leaseGrant', ttlMs: 2000 }).id).toBe(3);
    expect(refused(sm, { type: 'leaseGrant', id: 3, ttlMs: 2000 }).code).toBe('ALREADY_EXISTS');
    expect(refused(sm, { type: 'leaseGrant', ttlMs: limits.kvLeaseTtlMsMin - 1 }).code).toBe(
      'INVALID_ARGUMENT',
    );
    expect(sm.revision).toBe(0);
  });

  it('putting on an unknown lease is NOT_FOUND and writes nothing', () => {
    const sm = seeded();
    const before = sm.snapshot();
    expect(refused(sm, put('a', 'x', { lease: 99 })).code).toBe('NOT_FOUND');
    expect(sm.snapshot()).toEqual(before);
  });

  it('revoke deletes the attached keys at one revision; keys moved off the lease survive', () => {
    const sm = seeded();
    const l = ok(sm, { type: 'leaseGrant', ttlMs: 5000 }).id;
    ok(sm, put('l1', '1', { lease: l }));
    ok(sm, put('l2', '2', { lease: l }));
    ok(sm, put('l3', '3', { lease: l }));
    ok(sm, put('l3', '3')); // detached
    ok(sm, { type: 'deleteRange', key: b('l2') });
    expect(sm.leaseTimeToLive(l, true).keys!.map(kvText)).toEqual(['l1']);
    const r = ok(sm, { type: 'leaseRevoke', id: l });
    expect([r.deleted, r.revision]).toEqual([1, 11]);
    expect(r.events.map((e) => [e.type, kvText(e.kv.key)])).toEqual([['DELETE', 'l1']]);
    expect(
      sm.read({ type: 'range', ...prefixRange(b('l')) }).kvs.map((kv) => kvText(kv.key)),
    ).toEqual(['l3']);
    expect(() => sm.leaseTimeToLive(l)).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
    expect(refused(sm, { type: 'leaseRevoke', id: l }).code).toBe('NOT_FOUND');
  });

  it('keep-alive renews and advances the epoch; checkpoints lower the remaining TTL', () => {
    const sm = fresh();
    const l = ok(sm, { type: 'leaseGrant', ttlMs: 10_000 }).id;
    ok(sm, {
      type: 'leaseCheckpoint',
      leases: [
        { id: l, remainingMs: 4000, epoch: 0 },
        { id: 77, remainingMs: 1, epoch: 0 },
      ],
    });
    expect(sm.leaseTimeToLive(l)).toMatchObject({ ttlMs: 10_000, remainingMs: 4000, epoch: 0 });
    ok(sm, { type: 'leaseCheckpoint', leases: [{ id: l, remainingMs: 50_000, epoch: 0 }] });
    expect(sm.leaseTimeToLive(l).remainingMs).toBe(10_000);
    const k = ok(sm, { type: 'leaseKeepAlive', id: l });
    expect([k.epoch, k.ttlMs]).toEqual([1, 10_000]);
    expect(sm.leaseTimeToLive(l).remainingMs).toBe(10_000);
    // A checkpoint made before that keep-alive (epoch 0) must not shorten the renewed lease.
    ok(sm, { type: 'leaseCheckpoint', leases: [{ id: l, remainingMs: 10, epoch: 0 }] });
    expect(sm.leaseTimeToLive(l).remainingMs).toBe(10_000);
    ok(sm, { type: 'leaseCheckpoint', leases: [{ id: l, remainingMs: 10, epoch: 1 }] });
    expect(sm.leaseTimeToLive(l).remainingMs).toBe(10);
    expect(refused(sm, { type: 'leaseKeepAlive', id: 5 }).code).toBe('NOT_FOUND');
    expect(sm.leaseList().map((x) => x.id)).toEqual([l]);
  });

  it('leaseExpire revokes only leases whose epoch the leader saw', () => {
    const sm = fresh();
    const a = ok(sm, { type: 'leaseGrant', ttlMs: 2000 }).id;
    const c = ok(sm, { type: 'leaseGrant', ttlMs: 2000 }).id;
    ok(sm, put('ka', '1', { lease: a }));
    ok(sm, put('kc', '1', { lease: c }));
    ok(sm, { type: 'leaseKeepAlive', id: c }); // c renewed after the leader decided (epoch 0)
    const r = ok(sm, {
      type: 'leaseExpire',
      leases: [
        { id: a, epoch: 0 },
        { id: c, epoch: 0 },
        { id: 42, epoch: 0 },
      ],
    });
    expect([r.expired, r.deleted, r.revision]).toEqual([[a], 1, 3]);
    expect(sm.leaseList().map((x) => x.id)).toEqual([c]);
    expect(
      sm.read({ type: 'range', ...prefixRange(b('k')) }).kvs.map((kv) => kvText(kv.key)),
    ).toEqual(['kc']);
  });
});

describe('sessions (exactly-once)', () => {
  it('a retried write applies once and returns the same result', () => {
    const sm = fresh();
    const s = { clientId: session(sm), seq: 1 };
    const first = sm.apply({ command: put('a', '1'), session: s });
    const again = sm.apply({ command: put('a', '1'), session: s });
    expect(again).toMatchObject({ ok: true, duplicate: true, events: [] });
    expect(first.ok && again.ok && again.result).toEqual(first.ok && first.result);
    expect(sm.revision).toBe(1);
    ok(sm, put('a', '2'), { clientId: s.clientId, seq: 2 });
    expect(sm.revision).toBe(2);
  });

  it('remembers refusals too, and refuses stale sequence numbers (definite)', () => {
    const sm = fresh();
    const c = session(sm);
    expect(refused(sm, put('a', '1', { lease: 9 }), { clientId: c, seq: 1 }).code).toBe(
      'NOT_FOUND',
    );
    ok(sm, { type: 'leaseGrant', id: 9, ttlMs: 5000 });
    const dup = sm.apply({
      command: put('a', '1', { lease: 9 }),
      session: { clientId: c, seq: 1 },
    });
    expect(dup).toMatchObject({ ok: false, duplicate: true, error: { code: 'NOT_FOUND' } });
    ok(sm, put('a', '1'), { clientId: c, seq: 3 });
    const stale = refused(sm, put('a', '0'), { clientId: c, seq: 2 });
    expect([stale.code, stale.definite, stale.details.reason]).toEqual([
      'FAILED_PRECONDITION',
      true,
      'staleSequence',
    ]);
    expect(pairs(sm.read({ type: 'range', key: b('a') }).kvs)).toEqual(['a=1']);
  });

  it('an unknown client at sequence 1 is not taken as new: SESSION_EXPIRED (definite), nothing applied', () => {
    const sm = fresh();
    session(sm); // this store registers sessions
    const e = refused(sm, put('a', '1'), { clientId: 'never-registered', seq: 1 });
    expect([e.code, e.definite, e.details.reason]).toEqual([
      'SESSION_EXPIRED',
      true,
      'sessionExpired',
    ]);
    expect([sm.revision, sm.sessionCount]).toEqual([0, 1]);
  });

  it('a log written before registration (no session ever opened) replays as it applied', () => {
    const sm = fresh();
    const s = { clientId: 'old-client', seq: 1 };
    expect(sm.apply({ command: put('a', '1'), session: s }).ok).toBe(true);
    expect(sm.apply({ command: put('a', '1'), session: s })).toMatchObject({ duplicate: true });
    ok(sm, put('a', '2'), { clientId: 'old-client', seq: 2 });
    expect(refused(sm, put('b', '1'), { clientId: 'other', seq: 2 }).code).toBe('SESSION_EXPIRED');
    expect(sm.revision).toBe(2);
    // The first registration ends it.
    session(sm);
    expect(refused(sm, put('b', '1'), { clientId: 'new-client', seq: 1 }).code).toBe(
      'SESSION_EXPIRED',
    );
    ok(sm, put('a', '3'), { clientId: 'old-client', seq: 3 }); // known sessions go on
  });

  it('registration names fresh ids, never reused after sessionEnd or expiry', () => {
    const sm = fresh();
    const ids = [session(sm), session(sm), session(sm)];
    expect(new Set(ids).size).toBe(3);
    expect(ok(sm, { type: 'sessionEnd', clientId: ids[0]! }).existed).toBe(true);
    expect(refused(sm, put('a', '1'), { clientId: ids[0]!, seq: 1 }).code).toBe('SESSION_EXPIRED');
    expect(ids).not.toContain(session(sm));
    const r = ok(sm, { type: 'sessionOpen', ttlMs: 5000 });
    expect(r.ttlMs).toBe(5000);
    expect(ok(sm, { type: 'sessionOpen' }).ttlMs).toBe(limits.kvSessionTtlMsDefault);
  });

  it('a write that applied, lost its reply and had its session evicted (kvSessionsMax) is not applied again on retry', () => {
    const sm = fresh();
    const first = { command: put('a', '1'), session: { clientId: session(sm), seq: 1 } };
    expect(sm.apply(first).ok).toBe(true);
    // Other clients register until the first session is the least recently used past the bound.
    for (let i = 0; i < limits.kvSessionsMax; i++) session(sm);
    expect(sm.sessionCount).toBe(limits.kvSessionsMax);
    const retry = sm.apply(first);
    expect(retry).toMatchObject({ ok: false, error: { code: 'SESSION_EXPIRED' } });
    expect(sm.revision).toBe(1);
    expect(pairs(sm.read({ type: 'range', key: b('a') }).kvs)).toEqual(['a=1']);
  });

  it('sessions expire by the log time entries carry, idle past their TTL; every replica agrees', () => {
    const run = (sm: ReturnType<typeof fresh>): unknown[] => {
      const out: unknown[] = [];
      const c = session(sm, 1000, 100); // registered at log time 100
      const d = session(sm, 5000, 100);
      const step = (seq: number, timeMs?: number, clientId = c) => {
        const r = sm.apply({
          command: put('k', `${seq}`),
          session: { clientId, seq },
          ...(timeMs === undefined ? {} : { timeMs }),
        });
        out.push(r.ok ? 'ok' : r.error.code);
      };
      step(1, 900); // idle 800: alive
      step(2, 1900); // idle 1000 (not more than the TTL): alive
      // Entries without a time, however many, do not move the log time.
      for (let i = 0; i < 5; i++) sm.apply({ command: put('x', `${i}`) });
      step(3); // still log time 1900
      sm.apply({ command: { type: 'compact', revision: 1 }, timeMs: 2901 }); // another client's entry
      step(4); // idle 1001 > 1000 at log time 2901: expired (swept by the entry that moved time)
      step(1, 2901, d); // the 5 s session lives on
      // A time earlier than the log time does not move it back.
      sm.apply({ command: put('y', '1'), timeMs: 10 });
      out.push(sm.logTimeMs, sm.sessionCount);
      return out;
    };
    const a = fresh();
    const b2 = fresh();
    const outA = run(a);
    expect(outA).toEqual(['ok', 'ok', 'ok', 'SESSION_EXPIRED', 'ok', 2901, 1]);
    expect(run(b2)).toEqual(outA);
    expect(Buffer.compare(a.snapshot(), b2.snapshot())).toBe(0);
  });

  it('a result over kvSessionResultBytesMax is not kept: a retry learns it applied, at which revision (indefinite)', () => {
    const sm = fresh();
    const big = new Uint8Array(limits.kvSessionResultBytesMax);
    ok(sm, { type: 'put', key: b('big'), value: big });
    const s = { clientId: session(sm), seq: 1 };
    const entry = { command: { ...put('big', 'small'), prevKv: true }, session: s };
    const first = sm.apply(entry);
    expect(first.ok && first.result.type === 'put' && first.result.prevKv?.value.length).toBe(
      big.length,
    );
    expect(sm.sessionResultBytes).toBeLessThan(1024);
    const retry = sm.apply(entry);
    expect(retry).toMatchObject({
      ok: false,
      duplicate: true,
      error: {
        code: 'FAILED_PRECONDITION',
        definite: false,
        details: { reason: 'resultNotKept', revision: 2 },
      },
    });
    expect(sm.revision).toBe(2);
  });

  it('results kept by all sessions stay within kvSessionResultsBytesMax: the least recently used expire', () => {
    const sm = fresh();
    const value = new Uint8Array(limits.kvSessionResultBytesMax - 1024);
    ok(sm, { type: 'put', key: b('v'), value });
    const read: TxnRequest = {
      type: 'txn',
      compare: [],
      success: [{ type: 'range', key: b('v') }],
      failure: [],
    };
    const n = Math.ceil(limits.kvSessionResultsBytesMax / value.length) + 10;
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const id = session(sm);
      ids.push(id);
      ok(sm, read, { clientId: id, seq: 1 });
      expect(sm.sessionResultBytes).toBeLessThanOrEqual(limits.kvSessionResultsBytesMax);
    }
    expect(sm.sessionCount).toBeLessThan(n);
    expect(refused(sm, read, { clientId: ids[0]!, seq: 1 }).code).toBe('SESSION_EXPIRED');
    expect(sm.apply({ command: read, session: { clientId: ids[n - 1]!, seq: 1 } })).toMatchObject({
      ok: true,
      duplicate: true,
    });
  });
});

describe('a keyspace spanning many B-tree nodes', () => {
  it('ranges, deletes and compaction agree with a sorted list', () => {
    const sm = fresh();
    const model = new Map<string, string>();
    const key = (i: number) => `k${String(i).padStart(5, '0')}`;
    // A deterministic shuffle of 4000 keys, each put twice, then ranges deleted.
    let x = 12345;
    const next = () => (x = (x * 1103515245 + 12345) % 2 ** 31);
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 4000; i++) {
        const k = key(next() % 4000);
        ok(sm, put(k, `${round}:${i}`));
        model.set(k, `${round}:${i}`);
      }
    }
    const afterPuts = sm.revision;
    for (let d = 0; d < 40; d++) {
      const a = next() % 4000;
      const bEnd = a + 1 + (next() % 60);
      ok(sm, { type: 'deleteRange', key: b(key(a)), rangeEnd: b(key(bEnd)) });
      for (const k of [...model.keys()]) if (k >= key(a) && k < key(bEnd)) model.delete(k);
    }
    const sorted = () =>
      [...model.entries()].sort(([p], [q]) => (p < q ? -1 : 1)).map(([k, v]) => `${k}=${v}`);
    const all = () => pairs(sm.read({ type: 'range', ...prefixRange(b('k')) }).kvs);
    expect(all()).toEqual(sorted());
    expect(sm.keyCount).toBe(model.size);
    for (let r = 0; r < 50; r++) {
      const a = key(next() % 4000);
      const e = key(next() % 4000);
      if (a >= e) continue;
      const got = sm.read({ type: 'range', key: b(a), rangeEnd: b(e), limit: 7 });
      const want = sorted().filter((s) => s >= a && s.slice(0, 6) < e);
      expect(got.count).toBe(want.length);
      expect(pairs(got.kvs)).toEqual(want.slice(0, 7));
    }
    ok(sm, { type: 'compact', revision: sm.revision });
    expect(all()).toEqual(sorted());
    const copy = KvStateMachine.fromSnapshot(sm.snapshot());
    expect(pairs(copy.read({ type: 'range', ...prefixRange(b('k')) }).kvs)).toEqual(sorted());
    expect(() => sm.read({ type: 'range', key: b('k'), revision: afterPuts })).toThrow(
      expect.objectContaining({ code: 'COMPACTED' }),
    );
  });
});
