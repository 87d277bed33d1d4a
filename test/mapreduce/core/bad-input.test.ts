/**
 * Bad commands never crash the coordinator and never change it: each refusal
 * has a stable code and a message, and the snapshot before equals the
 * snapshot after. Hand-picked refusals first, then fast-check junk: arbitrary
 * values, and valid commands with one field replaced by junk.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { limits } from '../../../src/lib/limits.js';
import type { MrCommand } from '../../../src/mapreduce/core/index.js';
import { MapReduceStateMachine, assign, complete, must, ok, submit } from './helpers.js';

/** A coordinator mid-job: maps done and running, a reduce running, a skipped record, a cancelled job. */
function seeded(): { sm: MapReduceStateMachine; valid: MrCommand[] } {
  const sm = new MapReduceStateMachine();
  ok(sm, submit('j1', 3, 2, { skipBadRecords: true }));
  ok(sm, submit('j2', 1, 1));
  const m0 = must(assign(sm, 'a', 'n1', 1));
  const m1 = must(assign(sm, 'b', 'n2', 1));
  complete(sm, m0, 2);
  ok(sm, { type: 'cancelJob', jobId: 'j2', now: 2 });
  const valid: MrCommand[] = [
    submit('j3', 2, 1),
    { type: 'assignTask', worker: 'c', node: 'n3', now: 3, leaseMs: 1000 },
    { type: 'renewTask', attemptId: m1.attemptId, now: 3, leaseMs: 1000 },
    {
      type: 'completeTask',
      attemptId: m1.attemptId,
      now: 3,
      output: { kind: 'map', partitionBytes: [1, 2] },
      counters: { inputRecords: 1, inputBytes: 1, outputRecords: 1, outputBytes: 1 },
    },
    { type: 'failTask', attemptId: m1.attemptId, now: 3, error: 'x', badRecordOffset: 4 },
    { type: 'expireLeases', now: 1e9 },
    { type: 'rebaseLeases', now: 3, leaseMs: 1000 },
    { type: 'nodeLost', node: 'n1', now: 3 },
    { type: 'shuffleDone', attemptId: m1.attemptId, now: 3 },
    { type: 'fetchFailed', attemptId: m1.attemptId, map: 0, node: 'n1', now: 3 },
    { type: 'cancelJob', jobId: 'j1', now: 3 },
    { type: 'forgetJob', jobId: 'j2' },
    {
      type: 'completeTask',
      attemptId: m1.attemptId,
      now: 3,
      output: { kind: 'map', partitionBytes: [1, 2] },
      counters: { inputRecords: 1, inputBytes: 1, outputRecords: 1, outputBytes: 1 },
      next: { worker: 'b', node: 'n2', leaseMs: 1000 },
    },
  ];
  return { sm, valid };
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function expectRefused(command: unknown, code: string): void {
  const { sm } = seeded();
  const before = sm.snapshot();
  const out = sm.apply(command);
  expect(out.ok ? 'accepted' : out.error.code).toBe(code);
  expect(out.ok ? '' : out.error.message.length).toBeGreaterThan(0);
  expect(out.ok || out.error.definite).toBe(true);
  expect(sm.snapshot()).toEqual(before);
}

describe('refused commands change nothing', () => {
  const base = submit('jx', 1, 1);
  it.each([
    ['not an object', 42],
    ['null', null],
    ['an array', [1]],
    ['an unknown type', { type: 'launchMissiles' }],
    ['no type', {}],
    ['a bad job id', { ...base, jobId: 'has space' }],
    ['an empty job id', { ...base, jobId: '' }],
    ['zero reducers', { ...base, reducers: 0 }],
    [
      'too many partition files',
      {
        ...base,
        reducers: 2048,
        splits: Array.from({ length: 1024 }, () => ({ file: '/a', start: 0, end: 1 })),
      },
    ],
    ['too many reducers', { ...base, reducers: limits.mrReducersMax + 1 }],
    ['a fractional reducer count', { ...base, reducers: 1.5 }],
    ['splits not an array', { ...base, splits: 'x' }],
    ['a split ending before it starts', { ...base, splits: [{ file: '/a', start: 5, end: 4 }] }],
    ['a split without file', { ...base, splits: [{ start: 0, end: 4 }] }],
    ['a negative split offset', { ...base, splits: [{ file: '/a', start: -1, end: 4 }] }],
    [
      'too many splits',
      {
        ...base,
        splits: Array.from({ length: limits.mrMapTasksMax + 1 }, () => ({
          file: '/a',
          start: 0,
          end: 1,
        })),
      },
    ],
    ['a long module path', { ...base, module: 'x'.repeat(limits.mrPathCharsMax + 1) }],
    ['a missing output', { ...base, output: undefined }],
    ['a NaN time', { ...base, now: NaN }],
    ['a negative time', { ...base, now: -1 }],
    ['a non-string param', { ...base, params: { a: 1 } }],
    ['a __proto__ param', { ...base, params: JSON.parse('{"__proto__":"x"}') as unknown }],
    ['huge params', { ...base, params: { a: 'x'.repeat(limits.mrParamsCharsMax + 1) } }],
    ['options not an object', { ...base, options: 'fast' }],
    ['a non-boolean option', { ...base, options: { skipBadRecords: 'yes' } }],
    ['zero maxTaskFailures', { ...base, options: { maxTaskFailures: 0 } }],
    [
      'a short lease',
      { type: 'assignTask', worker: 'w', node: 'n', now: 0, leaseMs: limits.mrLeaseMsMin - 1 },
    ],
    [
      'a long lease',
      { type: 'assignTask', worker: 'w', node: 'n', now: 0, leaseMs: limits.mrLeaseMsMax + 1 },
    ],
    ['a bad worker id', { type: 'assignTask', worker: 'a/b', node: 'n', now: 0, leaseMs: 1000 }],
    [
      'a worker id too long',
      {
        type: 'assignTask',
        worker: 'w'.repeat(2 * limits.idBytesMax + 1),
        node: 'n',
        now: 0,
        leaseMs: 1000,
      },
    ],
    [
      'a worker id starting with a colon',
      { type: 'assignTask', worker: ':w0', node: 'n', now: 0, leaseMs: 1000 },
    ],
    ['a missing node', { type: 'assignTask', worker: 'w', now: 0, leaseMs: 1000 }],
    ['attempt id 0', { type: 'renewTask', attemptId: 0, now: 0, leaseMs: 1000 }],
    ['a string attempt id', { type: 'renewTask', attemptId: '1', now: 0, leaseMs: 1000 }],
    ['a non-string error', { type: 'failTask', attemptId: 1, now: 0, error: 5 }],
    [
      'a fractional bad record offset',
      { type: 'failTask', attemptId: 2, now: 0, error: 'x', badRecordOffset: 0.5 },
    ],
    [
      'counters with a negative count',
      {
        type: 'completeTask',
        attemptId: 2,
        now: 0,
        output: { kind: 'map', partitionBytes: [1, 1] },
        counters: { inputRecords: -1, inputBytes: 0, outputRecords: 0, outputBytes: 0 },
      },
    ],
    [
      'counters missing',
      {
        type: 'completeTask',
        attemptId: 2,
        now: 0,
        output: { kind: 'map', partitionBytes: [1, 1] },
      },
    ],
    [
      'an output of the wrong kind',
      {
        type: 'completeTask',
        attemptId: 2,
        now: 0,
        output: { kind: 'reduce', bytes: 1 },
        counters: { inputRecords: 0, inputBytes: 0, outputRecords: 0, outputBytes: 0 },
      },
    ],
    [
      'too many user counters',
      {
        type: 'completeTask',
        attemptId: 2,
        now: 0,
        output: { kind: 'map', partitionBytes: [1, 1] },
        counters: {
          inputRecords: 0,
          inputBytes: 0,
          outputRecords: 0,
          outputBytes: 0,
          user: Object.fromEntries(
            Array.from({ length: limits.mrUserCountersMax + 1 }, (_, i) => [`c${i}`, 1]),
          ),
        },
      },
    ],
    [
      'a fetch failure naming a map out of range',
      { type: 'fetchFailed', attemptId: 2, map: 3, node: 'n1', now: 0 },
    ],
    ['expireLeases without now', { type: 'expireLeases' }],
    ['rebaseLeases without leaseMs', { type: 'rebaseLeases', now: 0 }],
    ['nodeLost with a bad node', { type: 'nodeLost', node: '', now: 0 }],
    ...(
      [
        ['not an object', 'b'],
        ['a bad worker id', { worker: 'a/b', node: 'n2', leaseMs: 1000 }],
        ['a bad node', { worker: 'b', node: '', leaseMs: 1000 }],
        ['a short lease', { worker: 'b', node: 'n2', leaseMs: limits.mrLeaseMsMin - 1 }],
        ['no lease', { worker: 'b', node: 'n2' }],
      ] as const
    ).map(([what, next]): [string, unknown] => [
      // A completion that is valid by itself (attempt 2 runs map 1 of j1): the next request is refused, and the completion with it.
      `a completion whose next request is ${what}`,
      {
        type: 'completeTask',
        attemptId: 2,
        now: 0,
        output: { kind: 'map', partitionBytes: [1, 1] },
        counters: { inputRecords: 0, inputBytes: 0, outputRecords: 0, outputBytes: 0 },
        next,
      },
    ]),
  ])('%s', (_name, command) => expectRefused(command, 'INVALID_ARGUMENT'));

  it('a map attempt reporting shuffleDone or fetchFailed is refused', () => {
    expectRefused({ type: 'shuffleDone', attemptId: 2, now: 0 }, 'INVALID_ARGUMENT');
    expectRefused(
      { type: 'fetchFailed', attemptId: 2, map: 0, node: 'n1', now: 0 },
      'INVALID_ARGUMENT',
    );
  });

  it('an unknown job is NOT_FOUND; a known one ALREADY_EXISTS or FAILED_PRECONDITION', () => {
    expectRefused({ type: 'cancelJob', jobId: 'nope', now: 0 }, 'NOT_FOUND');
    expectRefused({ type: 'forgetJob', jobId: 'nope' }, 'NOT_FOUND');
    expectRefused(submit('j1', 1, 1), 'ALREADY_EXISTS');
    expectRefused({ type: 'forgetJob', jobId: 'j1' }, 'FAILED_PRECONDITION');
    expectRefused({ type: 'cancelJob', jobId: 'j2', now: 0 }, 'FAILED_PRECONDITION');
  });
});

describe('junk never crashes the coordinator', () => {
  const junk = fc.oneof(
    fc.anything(),
    fc.constantFrom(NaN, Infinity, -1, 0.5, 2 ** 60, '', 'x'.repeat(5000), [], {}, null, undefined),
  );

  it('arbitrary values are refused, changing nothing', () => {
    const { sm } = seeded();
    const before = sm.snapshot();
    fc.assert(
      fc.property(fc.anything(), (value) => {
        const out = sm.apply(value);
        if (out.ok) return; // an arbitrary value that happens to be a valid command
        expect(out.error.code).toBe('INVALID_ARGUMENT');
        expect(hex(sm.snapshot())).toBe(hex(before));
      }),
      { numRuns: 300 },
    );
  });

  it('valid commands with one field replaced by junk are refused unchanged or applied', () => {
    fc.assert(
      fc.property(fc.nat(12), fc.nat(20), junk, (which, field, value) => {
        const { sm, valid } = seeded();
        const cmd = valid[which] as unknown as Record<string, unknown>;
        const keys = Object.keys(cmd).filter((k) => k !== 'type');
        const key = keys[field % keys.length] as string;
        const before = sm.snapshot();
        const out = sm.apply({ ...cmd, [key]: value });
        if (!out.ok) {
          expect(out.error.message.length).toBeGreaterThan(0);
          expect(hex(sm.snapshot())).toBe(hex(before));
        }
        // Whatever happened, the state still encodes and restores to itself.
        expect(hex(MapReduceStateMachine.fromSnapshot(sm.snapshot()).snapshot())).toBe(
          hex(sm.snapshot()),
        );
      }),
      { numRuns: 500 },
    );
  });
});
