/**
 * Model-based test: random command sequences (puts, deletes, ranges at past
 * revisions, txns, compaction, leases) applied to the state machine and to a
 * deliberately naive reference model (a full copy of the keyspace per
 * revision); every result, every past revision and every watch event must agree.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KvStateMachine, RANGE_END_ALL, kvKey, kvText } from '../../../src/kv/core/index.js';
import type {
  Compare,
  KvEntry,
  SessionTag,
  KeyValue,
  KvCommand,
  RangeRequest,
  SortOrder,
  SortTarget,
  TxnOp,
} from '../../../src/kv/core/index.js';

interface MKv {
  value: string;
  createRevision: number;
  modRevision: number;
  version: number;
  lease: number;
}
type MState = Map<string, MKv>;

/** What the model expects: a result in the state machine's shape, or an error code. */
type Expect = { ok: true; result: unknown } | { ok: false; code: string };

const KEYS = ['a', 'ab', 'b', 'ba', 'c', 'd'];
const VALUES = ['', 'x', 'y', 'zz'];

/** A key range in model form: one key, [key, end), or [key, ∞) when end is null. */
interface MRange {
  key: string;
  end?: string | null;
}

function inRange(r: MRange, k: string): boolean {
  if (r.end === undefined) return k === r.key;
  return k >= r.key && (r.end === null || k < r.end);
}

function toKv(key: string, m: MKv): KeyValue {
  return { key: kvKey(key), value: kvKey(m.value), ...omitValue(m) };
}
function omitValue(m: MKv) {
  return {
    createRevision: m.createRevision,
    modRevision: m.modRevision,
    version: m.version,
    lease: m.lease,
  };
}

class Model {
  states: MState[] = [new Map<string, MKv>()];
  compacted = 0;
  /** Live leases and their epochs. */
  leases = new Map<number, number>();
  nextLease = 1;

  get rev(): number {
    return this.states.length - 1;
  }
  get cur(): MState {
    return this.states[this.rev]!;
  }

  range(req: MRangeReq, state: MState, revision: number) {
    let found = [...state.entries()]
      .filter(([k]) => inRange(req.range, k))
      .sort(([a], [b]) => (a < b ? -1 : 1));
    const target = req.sortTarget ?? 'key';
    let order = req.sortOrder ?? 'none';
    if (order === 'none' && target !== 'key') order = 'ascend';
    if (order !== 'none') {
      const field = (e: [string, MKv]): string | number =>
        target === 'key' ? e[0] : target === 'value' ? e[1].value : e[1][target];
      const sign = order === 'ascend' ? 1 : -1;
      found = found
        .map((e, i) => [e, i] as const)
        .sort(([a, i], [b, j]) => {
          const x = field(a);
          const y = field(b);
          return (x < y ? -sign : x > y ? sign : 0) || i - j;
        })
        .map(([e]) => e);
    }
    const count = found.length;
    if (req.countOnly) return { type: 'range', revision, kvs: [], count, more: false };
    const limit = req.limit ?? 0;
    const more = limit > 0 && count > limit;
    const kvs = (more ? found.slice(0, limit) : found).map(([k, m]) =>
      req.keysOnly ? { ...toKv(k, m), value: new Uint8Array() } : toKv(k, m),
    );
    return { type: 'range', revision, kvs, count, more };
  }

  readRevisionError(rev: number): string | undefined {
    if (rev === 0) return undefined;
    if (rev < this.compacted) return 'COMPACTED';
    if (rev > this.rev) return 'FAILED_PRECONDITION';
    return undefined;
  }

  compare(c: MCompare): boolean {
    const hits = [...this.cur.entries()].filter(([k]) => inRange(c.range, k));
    const one = (m: MKv | undefined): boolean => {
      if (c.target === 'value') {
        if (m === undefined) return false;
        const d = m.value < c.value ? -1 : m.value > c.value ? 1 : 0;
        return cmp(d, c.op);
      }
      const have = m === undefined ? 0 : m[c.target];
      return cmp(Math.sign(have - c.num), c.op);
    };
    return hits.length === 0 ? one(undefined) : hits.every(([, m]) => one(m));
  }

  /** Applies one command; returns what the state machine must answer. */
  apply(cmd: MCmd): Expect {
    switch (cmd.t) {
      case 'range': {
        const err = this.readRevisionError(cmd.revision);
        if (err !== undefined) return { ok: false, code: err };
        const at = cmd.revision === 0 ? this.rev : cmd.revision;
        return { ok: true, result: this.range(cmd, this.states[at]!, this.rev) };
      }
      case 'compact': {
        if (cmd.revision < 1) return { ok: false, code: 'INVALID_ARGUMENT' };
        if (cmd.revision <= this.compacted) return { ok: false, code: 'COMPACTED' };
        if (cmd.revision > this.rev) return { ok: false, code: 'FAILED_PRECONDITION' };
        this.compacted = cmd.revision;
        return {
          ok: true,
          result: { type: 'compact', revision: this.rev, compactedRevision: this.compacted },
        };
      }
      case 'grant': {
        const id = this.nextLease++;
        this.leases.set(id, 0);
        return { ok: true, result: { type: 'leaseGrant', revision: this.rev, id, ttlMs: 5000 } };
      }
      case 'keepAlive': {
        const epoch = this.leases.get(cmd.id);
        if (epoch === undefined) return { ok: false, code: 'NOT_FOUND' };
        this.leases.set(cmd.id, epoch + 1);
        return {
          ok: true,
          result: {
            type: 'leaseKeepAlive',
            revision: this.rev,
            id: cmd.id,
            ttlMs: 5000,
            epoch: epoch + 1,
          },
        };
      }
      case 'expire': {
        const expired = [
          ...new Set(cmd.leases.filter((l) => this.leases.get(l.id) === l.epoch).map((l) => l.id)),
        ];
        const next = new Map(this.cur);
        let deleted = 0;
        for (const id of expired) {
          this.leases.delete(id);
          for (const [k, m] of next) {
            if (m.lease === id) {
              next.delete(k);
              deleted++;
            }
          }
        }
        if (deleted > 0) this.states.push(next);
        return { ok: true, result: { type: 'leaseExpire', revision: this.rev, expired, deleted } };
      }
      case 'revoke': {
        if (!this.leases.has(cmd.id)) return { ok: false, code: 'NOT_FOUND' };
        this.leases.delete(cmd.id);
        const next = new Map(this.cur);
        let deleted = 0;
        for (const [k, m] of next) {
          if (m.lease === cmd.id) {
            next.delete(k);
            deleted++;
          }
        }
        if (deleted > 0) this.states.push(next);
        return { ok: true, result: { type: 'leaseRevoke', revision: this.rev, deleted } };
      }
      case 'txn':
      case 'put':
      case 'del': {
        const txn: MTxn =
          cmd.t === 'txn' ? cmd : { t: 'txn', compare: [], success: [cmd], failure: [] };
        const succeeded = txn.compare.every((c) => this.compare(c));
        const ops = succeeded ? txn.success : txn.failure;
        // Validate the taken path before changing anything, in the state machine's order:
        // per op (a put of a key already put, an unknown lease, an unreadable revision),
        // then puts inside deleted ranges.
        const puts = new Set<string>();
        const dels: MRange[] = [];
        for (const o of ops) {
          if (o.t === 'put') {
            if (puts.has(o.key)) return { ok: false, code: 'INVALID_ARGUMENT' };
            puts.add(o.key);
            if (o.lease !== 0 && !this.leases.has(o.lease)) return { ok: false, code: 'NOT_FOUND' };
          } else if (o.t === 'range') {
            const err = this.readRevisionError(o.revision);
            if (err !== undefined) return { ok: false, code: err };
          } else {
            dels.push(o.range);
          }
        }
        if ([...puts].some((k) => dels.some((r) => inRange(r, k)))) {
          return { ok: false, code: 'INVALID_ARGUMENT' };
        }
        const rev = this.rev + 1;
        const work = new Map(this.cur);
        let changed = false;
        const responses = ops.map((o): Record<string, unknown> => {
          switch (o.t) {
            case 'put': {
              const prev = work.get(o.key);
              work.set(o.key, {
                value: o.value,
                createRevision: prev?.createRevision ?? rev,
                modRevision: rev,
                version: (prev?.version ?? 0) + 1,
                lease: o.lease,
              });
              changed = true;
              return o.prevKv && prev !== undefined
                ? { type: 'put', prevKv: toKv(o.key, prev) }
                : { type: 'put' };
            }
            case 'del': {
              const doomed = [...work.keys()].filter((k) => inRange(o.range, k)).sort();
              const prevKvs = doomed.map((k) => toKv(k, work.get(k)!));
              for (const k of doomed) work.delete(k);
              if (doomed.length > 0) changed = true;
              return o.prevKv
                ? { type: 'deleteRange', deleted: doomed.length, prevKvs }
                : { type: 'deleteRange', deleted: doomed.length };
            }
            case 'range': {
              const state = o.revision === 0 ? work : this.states[o.revision]!;
              const { revision: _r, ...rest } = this.range(o, state, 0);
              return rest;
            }
          }
        });
        if (changed) this.states.push(work);
        const withRev = responses.map((r) => ({ ...r, revision: this.rev }));
        if (cmd.t !== 'txn') return { ok: true, result: withRev[0] };
        return {
          ok: true,
          result: { type: 'txn', revision: this.rev, succeeded, responses: withRev },
        };
      }
    }
  }
}

function cmp(d: number, op: Compare['op']): boolean {
  switch (op) {
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
  }
}

interface MRangeReq {
  range: MRange;
  revision: number;
  limit?: number;
  sortTarget?: SortTarget;
  sortOrder?: SortOrder;
  countOnly?: boolean;
  keysOnly?: boolean;
}
type MRangeCmd = { t: 'range' } & MRangeReq;
interface MPut {
  t: 'put';
  key: string;
  value: string;
  lease: number;
  prevKv: boolean;
}
interface MDel {
  t: 'del';
  range: MRange;
  prevKv: boolean;
}
type MCompare =
  | { target: 'value'; range: MRange; op: Compare['op']; value: string }
  | {
      target: 'version' | 'createRevision' | 'modRevision' | 'lease';
      range: MRange;
      op: Compare['op'];
      num: number;
    };
interface MTxn {
  t: 'txn';
  compare: MCompare[];
  success: MOp[];
  failure: MOp[];
}
type MOp = MPut | MDel | MRangeCmd;
type MCmd =
  | MOp
  | MTxn
  | { t: 'compact'; revision: number }
  | { t: 'grant' }
  | { t: 'revoke'; id: number }
  | { t: 'keepAlive'; id: number }
  | { t: 'expire'; leases: { id: number; epoch: number }[] };

function rangeFields(r: MRange): { key: Uint8Array; rangeEnd?: Uint8Array } {
  if (r.end === undefined) return { key: kvKey(r.key) };
  return { key: kvKey(r.key), rangeEnd: r.end === null ? RANGE_END_ALL : kvKey(r.end) };
}

function toOp(o: MOp): TxnOp {
  switch (o.t) {
    case 'put':
      return {
        type: 'put',
        key: kvKey(o.key),
        value: kvKey(o.value),
        ...(o.lease !== 0 ? { lease: o.lease } : {}),
        ...(o.prevKv ? { prevKv: true } : {}),
      };
    case 'del':
      return {
        type: 'deleteRange',
        ...rangeFields(o.range),
        ...(o.prevKv ? { prevKv: true } : {}),
      };
    case 'range': {
      const req: RangeRequest = {
        type: 'range',
        ...rangeFields(o.range),
        revision: o.revision,
        ...(o.limit !== undefined ? { limit: o.limit } : {}),
        ...(o.sortTarget !== undefined ? { sortTarget: o.sortTarget } : {}),
        ...(o.sortOrder !== undefined ? { sortOrder: o.sortOrder } : {}),
        ...(o.countOnly === true ? { countOnly: true } : {}),
        ...(o.keysOnly === true ? { keysOnly: true } : {}),
      };
      return req;
    }
  }
}

function toCommand(c: MCmd): KvCommand {
  switch (c.t) {
    case 'txn':
      return {
        type: 'txn',
        compare: c.compare.map((x): Compare => {
          const base = { ...rangeFields(x.range), op: x.op };
          return x.target === 'value'
            ? { ...base, target: 'value', value: kvKey(x.value) }
            : { ...base, target: x.target, value: x.num };
        }),
        success: c.success.map(toOp),
        failure: c.failure.map(toOp),
      };
    case 'compact':
      return { type: 'compact', revision: c.revision };
    case 'grant':
      return { type: 'leaseGrant', ttlMs: 5000 };
    case 'revoke':
      return { type: 'leaseRevoke', id: c.id };
    case 'keepAlive':
      return { type: 'leaseKeepAlive', id: c.id };
    case 'expire':
      return { type: 'leaseExpire', leases: c.leases };
    case 'put':
    case 'del':
    case 'range':
      return toOp(c);
  }
}

// ------------------------------------------------------------- generators

const keyArb = fc.constantFrom(...KEYS);
const rangeArb: fc.Arbitrary<MRange> = fc.oneof(
  keyArb.map((key) => ({ key })),
  fc
    .tuple(keyArb, keyArb)
    .filter(([a, b]) => a < b)
    .map(([key, end]) => ({ key, end })),
  keyArb.map((key) => ({ key, end: null })),
);
/**
 * A read or compaction revision, relative to the store's revision when the
 * command runs (see {@link resolveRevisions}): 0 is "current", 1..100 a
 * fraction of revision + 1, so some land compacted and some in the future.
 */
const revArb = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 100 }));

function resolveRev(v: number, rev: number): number {
  return v === 0 ? 0 : Math.max(1, Math.round((v / 100) * (rev + 1)));
}

/** Makes the relative revisions of `c` absolute against the store's revision `rev`. */
function resolveRevisions(c: MCmd, rev: number): MCmd {
  const op = (o: MOp): MOp =>
    o.t === 'range' ? { ...o, revision: resolveRev(o.revision, rev) } : o;
  switch (c.t) {
    case 'compact':
      return { ...c, revision: resolveRev(c.revision, rev) };
    case 'txn':
      return { ...c, success: c.success.map(op), failure: c.failure.map(op) };
    case 'range':
      return op(c);
    case 'put':
    case 'del':
    case 'grant':
    case 'revoke':
    case 'keepAlive':
    case 'expire':
      return c;
  }
}
const rangeCmdArb: fc.Arbitrary<MRangeCmd> = fc.record(
  {
    t: fc.constant('range' as const),
    range: rangeArb,
    revision: revArb,
    limit: fc.integer({ min: 0, max: 3 }),
    sortTarget: fc.constantFrom<SortTarget>(
      'key',
      'version',
      'createRevision',
      'modRevision',
      'value',
    ),
    sortOrder: fc.constantFrom<SortOrder>('none', 'ascend', 'descend'),
    countOnly: fc.boolean(),
    keysOnly: fc.boolean(),
  },
  { requiredKeys: ['t', 'range', 'revision'] },
);
const putArb: fc.Arbitrary<MPut> = fc.record({
  t: fc.constant('put' as const),
  key: keyArb,
  value: fc.constantFrom(...VALUES),
  lease: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, fc.integer({ min: 1, max: 3 })),
  prevKv: fc.boolean(),
});
const delArb: fc.Arbitrary<MDel> = fc.record({
  t: fc.constant('del' as const),
  range: rangeArb,
  prevKv: fc.boolean(),
});
const opArb: fc.Arbitrary<MOp> = fc.oneof(putArb, delArb, rangeCmdArb);
const compareArb: fc.Arbitrary<MCompare> = fc.oneof(
  fc.record({
    target: fc.constant('value' as const),
    range: rangeArb,
    op: fc.constantFrom<Compare['op']>('=', '!=', '<', '>', '<=', '>='),
    value: fc.constantFrom(...VALUES),
  }),
  fc.record({
    target: fc.constantFrom(
      'version' as const,
      'createRevision' as const,
      'modRevision' as const,
      'lease' as const,
    ),
    range: rangeArb,
    op: fc.constantFrom<Compare['op']>('=', '!=', '<', '>', '<=', '>='),
    num: fc.integer({ min: 0, max: 8 }),
  }),
);
const txnArb: fc.Arbitrary<MTxn> = fc.record({
  t: fc.constant('txn' as const),
  compare: fc.array(compareArb, { maxLength: 2 }),
  success: fc.array(opArb, { maxLength: 3 }),
  failure: fc.array(opArb, { maxLength: 3 }),
});
/** A command sequence of the model's language. */
const commandsArb: fc.Arbitrary<MCmd[]> = fc.array(
  fc.oneof(
    { weight: 5, arbitrary: putArb },
    { weight: 2, arbitrary: delArb },
    { weight: 2, arbitrary: rangeCmdArb },
    { weight: 3, arbitrary: txnArb },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('compact' as const), revision: revArb }) },
    { weight: 1, arbitrary: fc.constant({ t: 'grant' as const }) },
    {
      weight: 1,
      arbitrary: fc.record({
        t: fc.constant('keepAlive' as const),
        id: fc.integer({ min: 1, max: 3 }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        t: fc.constant('expire' as const),
        leases: fc.array(
          fc.record({ id: fc.integer({ min: 1, max: 3 }), epoch: fc.integer({ min: 0, max: 2 }) }),
          { maxLength: 3 },
        ),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        t: fc.constant('revoke' as const),
        id: fc.integer({ min: 1, max: 3 }),
      }),
    },
  ),
  { maxLength: 40 },
);

function allOf(sm: KvStateMachine, revision: number) {
  return sm.read({ type: 'range', key: kvKey('\0'), rangeEnd: RANGE_END_ALL, revision }).kvs;
}

function eventKey(e: { type: string; kv: KeyValue; prevKv?: KeyValue }) {
  return `${e.type} ${kvText(e.kv.key)}@${e.kv.modRevision} prev=${e.prevKv === undefined ? '-' : `${kvText(e.prevKv.value)}@${e.prevKv.modRevision}`}`;
}

describe('KvStateMachine against a reference model', () => {
  it('agrees on every result, every readable revision and every event', () => {
    fc.assert(
      fc.property(commandsArb, (cmds) => {
        const sm = new KvStateMachine();
        const model = new Model();
        for (const relative of cmds) {
          const c = resolveRevisions(relative, model.rev);
          const want = model.apply(c);
          const got = sm.apply({ command: toCommand(c) });
          if (want.ok) {
            expect(got.ok ? got.result : got.error).toEqual(want.result);
          } else {
            expect(got.ok ? got.result : got.error.code).toEqual(want.code);
          }
          expect(sm.revision).toBe(model.rev);
        }
        // Every revision still readable matches the model's copy of it.
        for (let r = Math.max(1, model.compacted); r <= model.rev; r++) {
          const want = [...model.states[r]!.entries()]
            .sort(([a], [b]) => (a < b ? -1 : 1))
            .map(([k, m]) => toKv(k, m));
          expect(allOf(sm, r)).toEqual(want);
        }
        // Events since the compaction point are the diffs between consecutive states.
        const events = sm.eventsSince(
          { key: kvKey('\0'), rangeEnd: RANGE_END_ALL },
          model.compacted + 1,
        );
        const want: string[] = [];
        for (let r = model.compacted + 1; r <= model.rev; r++) {
          const before = model.states[r - 1]!;
          const after = model.states[r]!;
          const keys = [...new Set([...before.keys(), ...after.keys()])].sort();
          for (const k of keys) {
            const p = before.get(k);
            const n = after.get(k);
            if (n !== undefined && n.modRevision === r) {
              want.push(
                eventKey({ type: 'PUT', kv: toKv(k, n), ...(p ? { prevKv: toKv(k, p) } : {}) }),
              );
            } else if (n === undefined && p !== undefined) {
              want.push(
                eventKey({
                  type: 'DELETE',
                  kv: { ...toKv(k, p), modRevision: r },
                  prevKv: toKv(k, p),
                }),
              );
            }
          }
        }
        const got = events.map(eventKey);
        // Within a revision the order is the txn's op order; compare per revision as sets.
        expect([...got].sort()).toEqual([...want].sort());
        expect(events.map((e) => e.kv.modRevision)).toEqual(
          [...events.map((e) => e.kv.modRevision)].sort((a, b) => a - b),
        );
      }),
      { numRuns: 300 },
    );
  });
});

/**
 * A command with an optional session (`step` 0 retries the client's last seq,
 * 1 moves on, 2 skips one) and a log time step (entries without one do not
 * move the log time; sessions last 1 s of it, so some expire).
 */
const taggedArb = fc.tuple(
  commandsArb,
  fc.array(
    fc.option(
      fc.record({ clientId: fc.constantFrom('p', 'q'), step: fc.integer({ min: 0, max: 2 }) }),
      {
        nil: undefined,
      },
    ),
    { minLength: 40, maxLength: 40 },
  ),
  fc.array(fc.option(fc.integer({ min: 0, max: 600 }), { nil: undefined }), {
    minLength: 40,
    maxLength: 40,
  }),
);

/** Sessions the tags name, registered on the state machine under test; the log time so far. */
interface Clients {
  readonly ids: Record<string, string>;
  readonly seqs: Map<string, number>;
  timeMs: number;
}

function clients(sm: KvStateMachine): Clients {
  const open = (): string => {
    const out = sm.apply({ command: { type: 'sessionOpen', ttlMs: 1000 } });
    if (!out.ok || out.result.type !== 'sessionOpen') throw new Error('sessionOpen refused');
    return out.result.clientId;
  };
  return { ids: { p: open(), q: open() }, seqs: new Map(), timeMs: 0 };
}

function entries(
  [cmds, tags, ticks]: [
    MCmd[],
    ({ clientId: string; step: number } | undefined)[],
    (number | undefined)[],
  ],
  c: Clients,
  revisionOf: () => number,
): (() => KvEntry)[] {
  return cmds.map((cmd, i) => () => {
    const command = toCommand(resolveRevisions(cmd, revisionOf()));
    const tick = ticks[i];
    if (tick !== undefined) c.timeMs += tick;
    const time = tick === undefined ? {} : { timeMs: c.timeMs };
    const t = tags[i];
    if (t === undefined) return { command, ...time };
    const seq = Math.max(1, (c.seqs.get(t.clientId) ?? 0) + t.step);
    c.seqs.set(t.clientId, seq);
    const session: SessionTag = { clientId: c.ids[t.clientId] as string, seq };
    return { command, session, ...time };
  });
}

describe('snapshots', () => {
  it('restore(snapshot(sm)) behaves identically to sm', () => {
    fc.assert(
      fc.property(taggedArb, taggedArb, (before, after) => {
        const sm = new KvStateMachine();
        const c = clients(sm);
        for (const e of entries(before, c, () => sm.revision)) sm.apply(e());
        const bytes = sm.snapshot();
        const copy = KvStateMachine.fromSnapshot(bytes);
        expect(copy.snapshot()).toEqual(bytes);
        expect([copy.revision, copy.compactedRevision, copy.keyCount, copy.sessionCount]).toEqual([
          sm.revision,
          sm.compactedRevision,
          sm.keyCount,
          sm.sessionCount,
        ]);
        const all = { key: kvKey('\0'), rangeEnd: RANGE_END_ALL };
        expect(copy.eventsSince(all, sm.compactedRevision + 1)).toEqual(
          sm.eventsSince(all, sm.compactedRevision + 1),
        );
        expect(copy.leaseList()).toEqual(sm.leaseList());
        expect(copy.logTimeMs).toBe(sm.logTimeMs);
        for (const e of entries(after, c, () => sm.revision)) {
          const entry = e();
          expect(copy.apply(entry)).toEqual(sm.apply(entry));
        }
        expect(copy.snapshot()).toEqual(sm.snapshot());
        expect(copy.eventsSince(all, sm.compactedRevision + 1)).toEqual(
          sm.eventsSince(all, sm.compactedRevision + 1),
        );
      }),
      { numRuns: 150 },
    );
  });
});
