import { describe, expect, it } from 'vitest';
import { drive } from '../../src/sim/drive.js';
import { CheckFailure, FailureTrap, runScenario } from '../../src/sim/scenario.js';
import { Scheduler } from '../../src/sim/scheduler.js';

/** A promise chain `depth` awaits deep, then `then()`. */
async function chain(depth: number, then: () => void): Promise<void> {
  for (let i = 0; i < depth; i++) await Promise.resolve();
  then();
}

describe('drive (running production shells on the scheduler)', () => {
  it('runs every promise callback an event started, however deep, before the next event', async () => {
    const sched = new Scheduler();
    const log: string[] = [];
    sched.at(1, 'a', () => {
      log.push('event a');
      void chain(50, () => log.push('a: 50 awaits later'));
      void Promise.resolve().then(() => Promise.resolve().then(() => log.push('a: nested')));
    });
    sched.at(1, 'b', () => log.push('event b'));
    sched.at(2, 'c', () => log.push('event c'));
    const checked: number[] = [];
    await drive(sched, { until: () => false, afterEach: () => checked.push(log.length) });
    expect(log).toEqual(['event a', 'a: nested', 'a: 50 awaits later', 'event b', 'event c']);
    // afterEach sees each event with its callbacks done.
    expect(checked).toEqual([3, 4, 5]);
  });

  it('stops when `until` says so, and rejects with what an event or a check threw', async () => {
    const sched = new Scheduler();
    let n = 0;
    for (let t = 1; t <= 10; t++) sched.at(t, 'tick', () => n++);
    await drive(sched, { until: () => n === 4, afterEach: () => {} });
    expect(n).toBe(4);
    expect(sched.now()).toBe(4);
    await expect(
      drive(sched, {
        until: () => false,
        afterEach: () => {
          if (n === 6) throw new CheckFailure('six');
        },
      }),
    ).rejects.toThrow('six');
    expect(n).toBe(6);
    sched.at(20, 'boom', () => {
      throw new Error('boom');
    });
    await expect(drive(sched, { until: () => false, afterEach: () => {} })).rejects.toThrow('boom');
  });
});

describe("FailureTrap (checks run inside the shells' promise callbacks)", () => {
  it('keeps the first failure and rethrows it', () => {
    const trap = new FailureTrap();
    expect(trap.guard(() => 1)).toBe(1);
    trap.throwIfFailed();
    expect(
      trap.guard(() => {
        throw new CheckFailure('first');
      }),
    ).toBeUndefined();
    trap.record(new CheckFailure('second'));
    expect(() => trap.throwIfFailed()).toThrow('first');
  });

  it("a failure trapped in a callback is the run's outcome, even if the scenario went on", async () => {
    const violation = await runScenario(
      {
        name: 'trapped',
        description: 'a check fails inside a promise callback',
        async run(ctx) {
          await Promise.resolve().then(() =>
            ctx.trap.guard(() => {
              throw new CheckFailure('seen in a callback');
            }),
          );
          throw new CheckFailure('what followed');
        },
      },
      { seed: 1 },
    );
    expect(violation.outcome).toBe('violation');
    expect(violation.message).toBe('CheckFailure: seen in a callback');
    const error = await runScenario(
      {
        name: 'trapped-error',
        description: 'a bug inside a promise callback',
        run(ctx) {
          ctx.trap.guard(() => {
            throw new TypeError('a bug');
          });
        },
      },
      { seed: 1 },
    );
    expect(error.outcome).toBe('error');
    expect(error.message).toBe('TypeError: a bug');
  });
});

describe('runScenario and stack traces', () => {
  it('runs without stack traces, and reports an unexpected error with its stack (from a replay)', async () => {
    const framesSeen: number[] = [];
    function buggyStep(): never {
      throw new TypeError('a bug deep in the code');
    }
    const r = await runScenario(
      {
        name: 'buggy',
        description: 'throws an unexpected error',
        run() {
          framesSeen.push((new Error().stack ?? '').split('\n').length - 1);
          buggyStep();
        },
      },
      { seed: 1 },
    );
    // Two runs: the fast one without frames, the replay for the report with them.
    expect(framesSeen).toHaveLength(2);
    expect(framesSeen[0]).toBe(0);
    expect(framesSeen[1]).toBeGreaterThan(0);
    expect(r.outcome).toBe('error');
    expect(r.message).toBe('TypeError: a bug deep in the code');
    expect(r.stack).toMatch(/buggyStep/);
    // The limit is the process's again.
    expect((new Error().stack ?? '').split('\n').length).toBeGreaterThan(1);
  });
});
