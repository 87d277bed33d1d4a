import { describe, expect, it } from 'vitest';
import { getScenario } from '../../../src/sim/scenarios.js';
import { formatFailure, runKvSeeds, simTimeoutMs } from './helpers.js';

/**
 * The KV store on RaftNode over the real FileStorage on the simulated disk
 * (torn writes recovered): `kv-file`.
 */
describe('kv simulation on FileStorage over the simulated disk', () => {
  it('is registered as kv-file, and under the names of the retired simulator-only shell', () => {
    expect(getScenario('kv-file')?.name).toBe('kv-file');
    expect(getScenario('kv-production')?.name).toBe('kv-production');
    expect(getScenario('kv-production-file')?.name).toBe('kv-production-file');
  });

  it(
    'seeds 1..60 pass every check, with torn writes among the crashes',
    async () => {
      const { failures, totals } = await runKvSeeds(1, 60, { name: 'kv-file', storage: 'file' });
      expect(failures.map(formatFailure).join('\n\n')).toBe('');
      expect(totals['disk writes torn at crash'] ?? 0).toBeGreaterThan(0);
      expect(totals['linearizability linearizable']).toBe(60);
    },
    simTimeoutMs,
  );
});
