/**
 * One CI slice of the Raft simulation: `count` seeds starting at `from`, all
 * of which must pass every check, and which together must have exercised every
 * kind of fault (so a nemesis that silently stopped injecting one fails here).
 */
import { expect, it } from 'vitest';
import { formatFailure, runSeeds, simTimeoutMs } from './helpers.js';

/** Registers the test for one slice of seeds. */
export function seedSlice(from: number, count: number): void {
  it(
    `seeds ${from}..${from + count - 1} pass every check (3 and 5 nodes, all fault kinds)`,
    async () => {
      const { failures, totals, bySize } = await runSeeds(from, count);
      expect(failures.map(formatFailure).join('\n\n')).toBe('');
      // Both cluster sizes ran.
      expect(bySize['3'] ?? 0).toBeGreaterThan(count / 5);
      expect(bySize['5'] ?? 0).toBeGreaterThan(count / 5);
      // Every fault kind was injected.
      for (const kind of [
        'nemesis partition-majority',
        'nemesis isolate-leader',
        'nemesis bridge',
        'nemesis partition-random',
        'nemesis cut-one-way',
        'nemesis clog',
        'nemesis crash',
        'nemesis crash-leader',
        'nemesis crash-mid-write',
        'nemesis bounce',
        'nemesis restart',
        'nemesis slow',
        'nemesis link-faults',
        'nemesis membership',
        'nemesis transfer',
        'membership addLearner applied',
        'membership promoteLearner applied',
        'membership removeNode applied',
        'disk writes torn at crash',
        'disk writes lost at crash',
        'snapshots taken',
        'snapshots restored',
        'op get ok',
        'op put ok',
        'op cas ok',
        'linearizability linearizable',
      ]) {
        expect(totals[kind] ?? 0, kind).toBeGreaterThan(0);
      }
      // Safety checks really ran, and the cluster really made progress.
      expect(totals['checks leaderCompletenessChecks'] ?? 0).toBeGreaterThan(count);
      expect(totals['entries applied'] ?? 0).toBeGreaterThan(count * 20);
    },
    simTimeoutMs,
  );
}
