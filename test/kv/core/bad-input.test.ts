/**
 * Bad input never crashes the state machine and never changes it: each refusal
 * has a clear code, and the snapshot before equals the snapshot after.
 */
import fc from 'fast-check';
import { pack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { KvStateMachine, prefixRange } from '../../../src/kv/core/index.js';
import type { KvCommand, KvEntry, TxnOp, TxnRequest } from '../../../src/kv/core/index.js';
import { limits } from '../../../src/lib/limits.js';
import { b, ok, put, session } from './helpers.js';

function seeded(): KvStateMachine {
  const sm = new KvStateMachine();
  ok(sm, { type: 'leaseGrant', id: 1, ttlMs: 5000 });
  ok(sm, put('a', '1', { lease: 1 }));
  ok(sm, put('b', '2'));
  ok(sm, put('a', '3', { lease: 1 }));
  ok(sm, { type: 'compact', revision: 2 });
  ok(sm, put('c', '4'), { clientId: session(sm), seq: 1 });
  return sm; // revision 4, compacted 2
}

/** Applies `entry` and expects refusal `code` with the state unchanged. */
function expectRefused(entry: KvEntry | { command: unknown; session?: unknown }, code: string) {
  const sm = seeded();
  const before = sm.snapshot();
  const out = sm.apply(entry as KvEntry);
  expect(out.ok ? 'accepted' : out.error.code).toBe(code);
  expect(out.ok ? undefined : out.error.message.length).toBeGreaterThan(0);
  expect(sm.snapshot()).toEqual(before);
}

const bigKey = new Uint8Array(limits.kvKeyBytesMax + 1).fill(0x61);
const bigValue = new Uint8Array(limits.kvValueBytesMax + 1);
const many = (n: number): TxnOp[] => Array.from({ length: n }, (_, i) => put(`k${i}`, 'v'));
const nest = (depth: number): TxnRequest =>
  depth === 1
    ? { type: 'txn', compare: [], success: [], failure: [] }
    : { type: 'txn', compare: [], success: [nest(depth - 1)], failure: [] };

const cases: [string, unknown, string][] = [
  ['an oversize key', put('x', 'v', { key: bigKey }), 'INVALID_ARGUMENT'],
  ['an oversize value', { type: 'put', key: b('x'), value: bigValue }, 'INVALID_ARGUMENT'],
  ['an empty key', { type: 'put', key: new Uint8Array(), value: b('v') }, 'INVALID_ARGUMENT'],
  ['a string key', { type: 'put', key: 'x', value: b('v') }, 'INVALID_ARGUMENT'],
  ['a numeric value', { type: 'put', key: b('x'), value: 5 }, 'INVALID_ARGUMENT'],
  ['a put on an unknown lease', put('a', 'v', { lease: 9 }), 'NOT_FOUND'],
  ['a negative lease', put('a', 'v', { lease: -1 }), 'INVALID_ARGUMENT'],
  ['lease with ignoreLease', put('a', 'v', { lease: 1, ignoreLease: true }), 'INVALID_ARGUMENT'],
  [
    'a non-boolean flag',
    put('a', 'v', { prevKv: 'yes' as unknown as boolean }),
    'INVALID_ARGUMENT',
  ],
  ['rangeEnd equal to key', { type: 'range', key: b('b'), rangeEnd: b('b') }, 'INVALID_ARGUMENT'],
  [
    'rangeEnd before key',
    { type: 'deleteRange', key: b('b'), rangeEnd: b('a') },
    'INVALID_ARGUMENT',
  ],
  [
    'an empty rangeEnd',
    { type: 'range', key: b('b'), rangeEnd: new Uint8Array() },
    'INVALID_ARGUMENT',
  ],
  ['a negative limit', { type: 'range', key: b('a'), limit: -1 }, 'INVALID_ARGUMENT'],
  ['a fractional limit', { type: 'range', key: b('a'), limit: 1.5 }, 'INVALID_ARGUMENT'],
  [
    'an unknown sort target',
    { type: 'range', key: b('a'), sortTarget: 'size' },
    'INVALID_ARGUMENT',
  ],
  ['a compacted revision', { type: 'range', key: b('a'), revision: 1 }, 'COMPACTED'],
  ['a future revision', { type: 'range', key: b('a'), revision: 5 }, 'FAILED_PRECONDITION'],
  ['compacting a compacted revision', { type: 'compact', revision: 2 }, 'COMPACTED'],
  ['compacting the future', { type: 'compact', revision: 5 }, 'FAILED_PRECONDITION'],
  [
    'too many txn ops',
    { type: 'txn', compare: [], success: many(limits.kvTxnOpsMax + 1), failure: [] },
    'INVALID_ARGUMENT',
  ],
  [
    'too many ops counted over both branches',
    { type: 'txn', compare: [], success: many(100), failure: many(100) },
    'INVALID_ARGUMENT',
  ],
  ['txns nested too deep', nest(limits.kvTxnDepthMax + 1), 'INVALID_ARGUMENT'],
  [
    'a bad op in the branch not taken',
    { type: 'txn', compare: [], success: [], failure: [put('x', 'v', { key: bigKey })] },
    'INVALID_ARGUMENT',
  ],
  [
    'an unknown lease after valid writes in a txn',
    {
      type: 'txn',
      compare: [],
      success: [put('n1', 'v'), { type: 'deleteRange', key: b('b') }, put('n2', 'v', { lease: 7 })],
      failure: [],
    },
    'NOT_FOUND',
  ],
  [
    'a compacted read after writes in a txn',
    {
      type: 'txn',
      compare: [],
      success: [put('n1', 'v'), { type: 'range', key: b('a'), revision: 1 }],
      failure: [],
    },
    'COMPACTED',
  ],
  [
    'a put inside a deleted range',
    {
      type: 'txn',
      compare: [],
      success: [{ type: 'deleteRange', ...prefixRange(b('n')) }, put('n1', 'v')],
      failure: [],
    },
    'INVALID_ARGUMENT',
  ],
  [
    'a malformed compare',
    {
      type: 'txn',
      compare: [{ target: 'version', key: b('a'), op: '=>', value: 1 }],
      success: [],
      failure: [],
    },
    'INVALID_ARGUMENT',
  ],
  [
    'a value compare with a number',
    {
      type: 'txn',
      compare: [{ target: 'value', key: b('a'), op: '=', value: 1 }],
      success: [],
      failure: [],
    },
    'INVALID_ARGUMENT',
  ],
  ['a txn without branches', { type: 'txn', compare: [] }, 'INVALID_ARGUMENT'],
  [
    'an unknown op in a txn',
    { type: 'txn', compare: [], success: [{ type: 'lock' }], failure: [] },
    'INVALID_ARGUMENT',
  ],
  ['a lease TTL too short', { type: 'leaseGrant', ttlMs: 1 }, 'INVALID_ARGUMENT'],
  [
    'a lease TTL too long',
    { type: 'leaseGrant', ttlMs: limits.kvLeaseTtlMsMax + 1 },
    'INVALID_ARGUMENT',
  ],
  ['a lease id in use', { type: 'leaseGrant', id: 1, ttlMs: 5000 }, 'ALREADY_EXISTS'],
  ['revoking an unknown lease', { type: 'leaseRevoke', id: 2 }, 'NOT_FOUND'],
  ['keeping an unknown lease alive', { type: 'leaseKeepAlive', id: 2 }, 'NOT_FOUND'],
  ['a checkpoint that is not a list', { type: 'leaseCheckpoint', leases: 3 }, 'INVALID_ARGUMENT'],
  [
    'a checkpoint with a bad entry after a good one',
    {
      type: 'leaseCheckpoint',
      leases: [
        { id: 1, remainingMs: 1, epoch: 0 },
        { id: 1, remainingMs: -5, epoch: 0 },
      ],
    },
    'INVALID_ARGUMENT',
  ],
  ['an expiry with a bad entry', { type: 'leaseExpire', leases: [{ id: 1 }] }, 'INVALID_ARGUMENT'],
  ['an empty client id', { type: 'sessionEnd', clientId: '' }, 'INVALID_ARGUMENT'],
  [
    'a session TTL below the minimum',
    { type: 'sessionOpen', ttlMs: limits.kvSessionTtlMsMin - 1 },
    'INVALID_ARGUMENT',
  ],
  [
    'a session TTL above the maximum',
    { type: 'sessionOpen', ttlMs: limits.kvSessionTtlMsMax + 1 },
    'INVALID_ARGUMENT',
  ],
  ['a fractional session TTL', { type: 'sessionOpen', ttlMs: 1500.5 }, 'INVALID_ARGUMENT'],
  ['an unknown command', { type: 'drop' }, 'INVALID_ARGUMENT'],
  // Found by the junk property below: error messages must not call a hostile toString.
  [
    'a TTL whose toString is broken',
    { type: 'leaseGrant', ttlMs: [{ toString: '' }] },
    'INVALID_ARGUMENT',
  ],
  ['a command type whose toString is broken', { type: { toString: 1 } }, 'INVALID_ARGUMENT'],
  [
    'an op type whose toString is broken',
    { type: 'txn', compare: [], success: [{ type: Object.create(null) as object }], failure: [] },
    'INVALID_ARGUMENT',
  ],
  ['a null command', null, 'INVALID_ARGUMENT'],
];

/** Junk as a decoder or a hostile caller might produce it. */
const hostile = {
  withNullPrototype: true,
  withBoxedValues: true,
  withTypedArray: true,
  withMap: true,
  withSet: true,
  withSparseArray: true,
  withObjectString: true,
};

describe('bad input changes nothing', () => {
  it.each(cases)('%s', (_name, command, code) => {
    expectRefused({ command }, code);
  });

  it('an entry with a bad log time is refused, and the log time does not move', () => {
    for (const timeMs of [-1, 1.5, 'soon', 2 ** 53, null]) {
      expectRefused({ command: put('z', '1'), timeMs } as unknown as KvEntry, 'INVALID_ARGUMENT');
    }
  });

  it('an entry that is not an object is refused', () => {
    const sm = seeded();
    const before = sm.snapshot();
    for (const junk of [null, 5, 'put']) {
      const out = sm.apply(junk as unknown as KvEntry);
      expect(out.ok ? 'accepted' : out.error.code).toBe('INVALID_ARGUMENT');
    }
    expect(sm.snapshot()).toEqual(before);
  });

  it('a bad session tag is refused and not remembered', () => {
    expectRefused(
      { command: put('z', '1'), session: { clientId: '', seq: 1 } },
      'INVALID_ARGUMENT',
    );
    expectRefused(
      { command: put('z', '1'), session: { clientId: 'x', seq: 0 } },
      'INVALID_ARGUMENT',
    );
    expectRefused({ command: put('z', '1'), session: 'x' }, 'INVALID_ARGUMENT');
    // A session nobody registered (a client naming its own, as before registration existed).
    expectRefused(
      { command: put('z', '1'), session: { clientId: 'x', seq: 1 } },
      'SESSION_EXPIRED',
    );
    expectRefused(
      {
        command: put('z', '1'),
        session: { clientId: 'x'.repeat(limits.kvClientIdCharsMax + 1), seq: 1 },
      },
      'INVALID_ARGUMENT',
    );
  });

  it('read-only queries refuse bad input with a CohortError', () => {
    const sm = seeded();
    const code = (f: () => unknown) => {
      try {
        f();
        return 'no error';
      } catch (e) {
        return (e as { code?: string }).code;
      }
    };
    expect(code(() => sm.read({ type: 'range', key: b('b'), rangeEnd: b('a') }))).toBe(
      'INVALID_ARGUMENT',
    );
    expect(code(() => sm.read(null as unknown as KvCommand & { type: 'range' }))).toBe(
      'INVALID_ARGUMENT',
    );
    expect(code(() => sm.eventsSince({ key: b('a') }, 0))).toBe('INVALID_ARGUMENT');
    expect(code(() => sm.eventsSince(null as unknown as { key: Uint8Array }, 3))).toBe(
      'INVALID_ARGUMENT',
    );
    expect(code(() => sm.eventsSince({ key: b('a') }, 2))).toBe('COMPACTED');
    expect(code(() => sm.leaseTimeToLive(5))).toBe('NOT_FOUND');
    expect(code(() => sm.leaseTimeToLive(-1))).toBe('INVALID_ARGUMENT');
  });

  it('any decoded junk as a command is refused or applied, never a crash', () => {
    const sm = seeded();
    const junk = fc.oneof(
      fc.anything(hostile),
      fc.record(
        {
          type: fc.constantFrom(
            'range',
            'put',
            'deleteRange',
            'txn',
            'compact',
            'leaseGrant',
            'leaseExpire',
          ),
          key: fc.oneof(fc.uint8Array({ maxLength: 4 }), fc.anything(hostile)),
          rangeEnd: fc.oneof(fc.uint8Array({ maxLength: 4 }), fc.anything(hostile)),
          value: fc.oneof(fc.uint8Array({ maxLength: 4 }), fc.integer()),
          revision: fc.oneof(fc.integer(), fc.double()),
          compare: fc.anything(hostile),
          success: fc.array(fc.anything(hostile), { maxLength: 3 }),
          failure: fc.anything(hostile),
          leases: fc.anything(hostile),
          ttlMs: fc.anything(hostile),
        },
        { requiredKeys: ['type'] },
      ),
    );
    fc.assert(
      fc.property(junk, (command) => {
        const before = sm.snapshot();
        const out = sm.apply({ command: command as KvCommand });
        if (!out.ok) {
          expect(typeof out.error.code).toBe('string');
          expect(sm.snapshot()).toEqual(before);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

/** A hand-made snapshot: keys as [key, [rev, sub, value | null, createRevision, version, lease]...]. */
function handMade(
  fields: { v?: number; revision: number; leases?: number[][] },
  keys: [string, (string | number | null)[]][],
): Uint8Array {
  let blob = '';
  const rows = keys.map(([key, recs]) => {
    blob += key;
    const lens = recs.map((x, i) => {
      if (i % 6 !== 2) return x;
      if (x === null) return -1;
      blob += x as string;
      return (x as string).length;
    });
    return [key.length, lens];
  });
  return pack({
    v: fields.v ?? 1,
    revision: fields.revision,
    compacted: 0,
    nextLeaseId: 1,
    bytes: b(blob),
    keys: rows,
    leases: fields.leases ?? [],
    sessions: [],
  });
}

describe('a bad snapshot is refused and changes nothing', () => {
  it('a hand-made snapshot of the format restores (the cases below differ in one flaw)', () => {
    const sm = KvStateMachine.fromSnapshot(
      handMade({ revision: 9, leases: [[3, 5000, 5000, 0]] }, [
        ['a', [5, 0, 'x', 5, 1, 3]],
        ['b', [4, 0, 'y', 4, 1, 0, 6, 0, null, 0, 0, 0]],
      ]),
    );
    expect(sm.read({ type: 'range', ...prefixRange(new Uint8Array()) }).count).toBe(1);
    expect(sm.leaseTimeToLive(3, true).keys).toEqual([b('a')]);
    expect(sm.eventsSince({ key: b('b') }, 1).map((e) => e.type)).toEqual(['PUT', 'DELETE']);
  });

  it('random bytes, truncation, another version, inconsistent content', () => {
    const sm = seeded();
    const good = sm.snapshot();
    const before = sm.snapshot();
    const bad: Uint8Array[] = [
      Uint8Array.of(1, 2, 3),
      good.subarray(0, good.length - 5),
      handMade({ v: 99, revision: 1 }, []),
      // A version newer than the store's revision.
      handMade({ revision: 1 }, [['a', [5, 0, 'x', 1, 1, 0]]]),
      // A key on a lease that does not exist.
      handMade({ revision: 9 }, [['a', [5, 0, 'x', 5, 1, 3]]]),
      // Keys out of order.
      handMade({ revision: 9 }, [
        ['b', [5, 0, 'x', 5, 1, 0]],
        ['a', [6, 0, 'x', 6, 1, 0]],
      ]),
      // Versions of a key out of order.
      handMade({ revision: 9 }, [['a', [6, 0, 'x', 6, 1, 0, 5, 0, 'y', 6, 2, 0]]]),
      // A value length past the end of the blob.
      pack({
        v: 1,
        revision: 9,
        compacted: 0,
        nextLeaseId: 1,
        bytes: b('a'),
        keys: [[1, [5, 0, 9, 5, 1, 0]]],
        leases: [],
        sessions: [],
      }),
    ];
    for (const bytes of bad) {
      expect(() => sm.restore(bytes)).toThrow(expect.objectContaining({ code: 'CORRUPTION' }));
      expect(sm.snapshot()).toEqual(before);
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          KvStateMachine.fromSnapshot(bytes);
        } catch (e) {
          expect((e as { code?: string }).code).toBe('CORRUPTION');
        }
      }),
    );
  });
});
