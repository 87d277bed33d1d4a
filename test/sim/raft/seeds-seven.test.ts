import { describe, expect, it } from 'vitest';
import { formatFailure, runSeeds, simTimeoutMs } from './helpers.js';

describe('raft simulation, 7-node clusters', () => {
  it(
    'seeds 1..100 pass every check',
    async () => {
      // The registered `raft-7` scenario (replay: npm run sim -- --scenario raft-7 --seed N).
      const { failures, bySize, totals } = await runSeeds(1, 100, { name: 'raft-7', nodes: [7] });
      expect(failures.map(formatFailure).join('\n\n')).toBe('');
      expect(bySize['7']).toBe(100);
      expect(totals['linearizability linearizable'] ?? 0).toBeGreaterThan(90);
    },
    simTimeoutMs,
  );
});
