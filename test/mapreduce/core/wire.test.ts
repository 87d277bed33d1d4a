/**
 * Commands reach replicas as MessagePack (the node's `{ module, command }`
 * entries, msgpackr without records): a replica fed the decoded bytes ends
 * exactly like one fed the objects, wall-clock-sized and fractional times
 * included.
 */
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import type { MrCommand, TaskAssignment } from '../../../src/mapreduce/core/index.js';
import { MapReduceStateMachine } from '../../../src/mapreduce/core/index.js';

const packr = new Packr({ useRecords: false });
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('commands through MessagePack', () => {
  it('a replica applying decoded entries matches one applying the objects', () => {
    const direct = new MapReduceStateMachine();
    const decoded = new MapReduceStateMachine();
    const t0 = 1_763_700_000_123; // a Date.now() reading
    const run = (command: MrCommand): unknown => {
      const a = direct.apply(command);
      const entry = packr.unpack(packr.pack({ module: 'mapreduce', command })) as {
        command: unknown;
      };
      const b = decoded.apply(entry.command);
      expect(b).toEqual(a);
      return a.ok ? a.result : undefined;
    };
    run({
      type: 'submitJob',
      jobId: 'wc-1',
      name: 'word count',
      module: '/jobs/wc.ts',
      output: '/tmp/out',
      splits: [
        { file: '/in/a.txt', start: 0, end: 33_554_432 },
        { file: '/in/a.txt', start: 33_554_432, end: 2 ** 40 },
      ],
      reducers: 2,
      params: { pattern: 'ß|ü' },
      options: { skipBadRecords: true, backupAfterMs: 0 },
      now: t0,
    });
    const grant = (w: string, now: number): TaskAssignment =>
      (
        run({ type: 'assignTask', worker: w, node: 'n1', now, leaseMs: 10_000 }) as {
          assignment: TaskAssignment;
        }
      ).assignment;
    const m0 = grant('n1:w0', t0 + 0.25);
    const m1 = grant('n1:w1', t0 + 1.5);
    run({ type: 'renewTask', attemptId: m0.attemptId, now: t0 + 3000.75, leaseMs: 10_000 });
    run({
      type: 'failTask',
      attemptId: m1.attemptId,
      now: t0 + 4000,
      error: 'TypeError: x',
      badRecordOffset: 2 ** 35,
    });
    for (const a of [m0, grant('n1:w1', t0 + 5000)]) {
      run({
        type: 'completeTask',
        attemptId: a.attemptId,
        now: t0 + 6000,
        output: { kind: 'map', partitionBytes: [2 ** 33, 0], skippedOffsets: [7] },
        counters: {
          inputRecords: 2 ** 40,
          inputBytes: 1,
          outputRecords: 3,
          outputBytes: 4,
          skippedRecords: 1,
          user: { 'lines.long': -2 },
        },
      });
    }
    const r = grant('n1:w0', t0 + 7000);
    run({ type: 'shuffleDone', attemptId: r.attemptId, now: t0 + 7001 });
    run({ type: 'expireLeases', now: t0 + 20_000 });
    run({ type: 'rebaseLeases', now: 12.5, leaseMs: 10_000 });
    run({ type: 'nodeLost', node: 'n1', now: 13 });
    expect(hex(decoded.snapshot())).toBe(hex(direct.snapshot()));
    expect(decoded.jobs()).toEqual(direct.jobs());
    expect(direct.job('wc-1')?.counters.mapInputRecords).toBe(2 ** 41);
  });
});
