/**
 * The SWIM detector in simulation (src/sim/detector/run.ts): every crashed
 * member is declared failed by every live member, no live member is declared
 * failed without loss, the load per member does not grow with n, and a run
 * replays from its seed.
 */
import { describe, expect, it } from 'vitest';
import { limits } from '../../src/lib/limits.js';
import { detectorSimDefaults, runDetectorSim } from '../../src/sim/detector/run.js';
import type { DetectorSimOptions } from '../../src/sim/detector/run.js';

function options(
  members: number,
  seed: number,
  over: Partial<DetectorSimOptions> = {},
): DetectorSimOptions {
  return { ...detectorSimDefaults(members), seed, durationMs: 60_000, ...over };
}

describe('detector simulation', () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    it(`10 members, 5% loss, seed ${seed}: every crash is declared failed by every live member, in time`, () => {
      const r = runDetectorSim(options(10, seed, { crashes: 2, pauses: 2 }));
      expect(r.undetected).toEqual([]);
      expect(r.firstDetection.count).toBe(2);
      // Every live member (8 of them) saw each crash as failed exactly once.
      expect(r.allDetection.count).toBeGreaterThanOrEqual(2 * 8);
      // Detection is not just eventual: within the suspicion timeout plus a few
      // rounds of the 10-member probe cycle.
      expect(r.allDetection.maxMs).toBeLessThanOrEqual(
        r.suspicionTimeoutMs + 20 * r.options.periodMs,
      );
      expect(r.refused).toBe(0);
    });
  }

  for (const seed of [1, 2, 3]) {
    it(`100 members, 5% loss, seed ${seed}: every crash detected everywhere; no false positive`, () => {
      const r = runDetectorSim(options(100, seed, { crashes: 5, pauses: 5 }));
      expect(r.undetected).toEqual([]);
      expect(r.firstDetection.count).toBe(5);
      expect(r.allDetection.count).toBeGreaterThanOrEqual(5 * 94);
      expect(r.falsePositiveEvents).toBe(0);
    });
  }

  it('no live member is declared failed at 0% loss (pauses shorter than the suspicion timeout)', () => {
    for (const seed of [1, 2]) {
      const r = runDetectorSim(options(100, seed, { loss: 0, crashes: 3, pauses: 10 }));
      expect(r.falsePositiveEvents).toBe(0);
      expect(r.undetected).toEqual([]);
    }
  });

  it('load per member is bounded independent of n (10 vs 100 members)', () => {
    const small = runDetectorSim(options(10, 7, { crashes: 1, pauses: 0 }));
    const big = runDetectorSim(options(100, 7, { crashes: 1, pauses: 0 }));
    // r pings and their acks per period, indirect probes on loss, a little gossip.
    const r = limits.swimProbesPerPeriodDefault;
    for (const x of [small, big]) {
      expect(x.messagesPerMemberPerSecond).toBeGreaterThan(1.5 * r);
      expect(x.messagesPerMemberPerSecond).toBeLessThan(4 * r);
    }
    expect(big.messagesPerMemberPerSecond / small.messagesPerMemberPerSecond).toBeLessThan(1.5);
  });

  it('same seed, same run (trace hash); another seed, another run', () => {
    const a = runDetectorSim(options(30, 11, { crashes: 2, pauses: 2 }));
    const b = runDetectorSim(options(30, 11, { crashes: 2, pauses: 2 }));
    const c = runDetectorSim(options(30, 12, { crashes: 2, pauses: 2 }));
    expect(a.traceHash).toBe(b.traceHash);
    expect(a.messagesSent).toBe(b.messagesSent);
    expect(c.traceHash).not.toBe(a.traceHash);
  });

  it('a detector without suspicion refutation would be caught: long pauses are declared failed', () => {
    // A pause longer than the suspicion timeout is a (correct) failure: the
    // simulation sees and counts such declarations, so the zero above means something.
    const r = runDetectorSim(
      options(10, 3, { loss: 0, crashes: 0, pauses: 3, pauseMaxMs: 30_000 }),
    );
    expect(r.falsePositivesPaused).toBeGreaterThan(0);
  });
});
