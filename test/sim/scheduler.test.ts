import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Scheduler } from '../../src/sim/scheduler.js';
import { AssertionError } from '../../src/lib/assert.js';

describe('Scheduler', () => {
  it('runs events by time, ties in scheduling order (against a sort)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ at: fc.integer({ min: 0, max: 20 }), cancel: fc.boolean() }), {
          maxLength: 200,
        }),
        (specs) => {
          const s = new Scheduler();
          const ran: number[] = [];
          const handles = specs.map((spec, i) => s.at(spec.at, `e${i}`, () => ran.push(i)));
          specs.forEach((spec, i) => {
            if (spec.cancel) s.cancel(handles[i]!);
          });
          const expected = specs
            .map((spec, i) => ({ ...spec, i }))
            .filter((e) => !e.cancel)
            .sort((a, b) => a.at - b.at || a.i - b.i)
            .map((e) => e.i);
          expect(s.pending).toBe(expected.length);
          s.run();
          expect(ran).toEqual(expected);
          expect(s.pending).toBe(0);
        },
      ),
    );
  });

  it('orders events scheduled from inside events, and advances time to each', () => {
    const s = new Scheduler();
    const log: string[] = [];
    s.after(10, 'a', () => {
      log.push(`a@${s.now()}`);
      s.after(0, 'a-now', () => log.push(`a-now@${s.now()}`));
      s.after(5, 'a+5', () => log.push(`a+5@${s.now()}`));
    });
    s.after(10, 'b', () => log.push(`b@${s.now()}`));
    s.after(12, 'c', () => log.push(`c@${s.now()}`));
    s.run();
    expect(log).toEqual(['a@10', 'b@10', 'a-now@10', 'c@12', 'a+5@15']);
  });

  it('stops at a time limit and at an event limit', () => {
    const s = new Scheduler();
    const ran: number[] = [];
    for (let t = 1; t <= 10; t++) s.at(t * 10, `e${t}`, () => ran.push(t));
    expect(s.run({ untilMs: 35 })).toEqual({ events: 3, stop: 'time' });
    expect(s.now()).toBe(35);
    expect(s.run({ maxEvents: 2 })).toEqual({ events: 2, stop: 'events' });
    expect(s.run()).toEqual({ events: 5, stop: 'idle' });
    expect(ran).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(s.eventsRun).toBe(10);
    expect(s.step()).toBe(false);
  });

  it('ignores cancelling an event twice or after it ran, and compacts many cancellations', () => {
    const s = new Scheduler();
    let runs = 0;
    const h = s.after(1, 'x', () => runs++);
    s.run();
    s.cancel(h);
    expect(s.pending).toBe(0);
    const hs = Array.from({ length: 1000 }, (_, i) => s.after(i + 1, 'y', () => runs++));
    for (const x of hs.slice(0, 990)) {
      s.cancel(x);
      s.cancel(x);
    }
    expect(s.pending).toBe(10);
    s.run();
    expect(runs).toBe(11);
  });

  it('calls afterEach after every event', () => {
    const s = new Scheduler();
    const log: string[] = [];
    s.after(1, 'a', () => log.push('a'));
    s.after(2, 'b', () => log.push('b'));
    s.run({ afterEach: () => log.push(`check@${s.now()}`) });
    expect(log).toEqual(['a', 'check@1', 'b', 'check@2']);
  });

  it('refuses to schedule in the past', () => {
    const s = new Scheduler(100);
    expect(() => s.at(99, 'late', () => {})).toThrow(AssertionError);
    expect(() => s.after(-1, 'late', () => {})).toThrow(AssertionError);
  });

  it('adapts to the lib Clock interface', () => {
    const s = new Scheduler();
    const clock = s.clock();
    const log: number[] = [];
    clock.setTimer(5, () => log.push(clock.now()));
    const h = clock.setTimer(3, () => log.push(-1));
    clock.clearTimer(h);
    clock.setTimer(2.5, () => log.push(clock.now()));
    s.run();
    expect(log).toEqual([3, 5]);
  });
});
