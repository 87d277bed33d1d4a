import { describe, expect, it } from 'vitest';
import { getScenario } from '../../../src/sim/scenarios.js';
import { formatFailure, runKvSeeds } from './helpers.js';

/**
 * The KV store on the production shell (RaftNode, with the node's state
 * machine adapter and RaftNode's own read, propose and snapshot paths) under
 * the same nemesis, workload and checks; also with the real FileStorage on
 * the simulated disk (torn writes recovered).
 */
describe('kv simulation on the production RaftNode shell', () => {
  it('is registered as kv-production and kv-production-file', () => {
    expect(getScenario('kv-production')?.name).toBe('kv-production');
    expect(getScenario('kv-production-file')?.name).toBe('kv-production-file');
  });

  it('seeds 1..60 pass every check', async () => {
    const { failures, totals } = await runKvSeeds(1, 60, { shell: 'production' });
    expect(failures.map(formatFailure).join('\n\n')).toBe('');
    for (const kind of [
      'op get ok',
      'op put ok',
      'op cas ok',
      'session duplicate answers',
      'kv states compared (snapshot restored)',
      'lease clocks promoted',
      'leases expired',
    ]) {
      expect(totals[kind] ?? 0, kind).toBeGreaterThan(0);
    }
    expect(totals['linearizability linearizable']).toBe(60);
  });

  it('seeds 1..30 pass every check with FileStorage on the simulated disk', async () => {
    const { failures, totals } = await runKvSeeds(1, 30, {
      shell: 'production',
      storage: 'file',
    });
    expect(failures.map(formatFailure).join('\n\n')).toBe('');
    expect(totals['disk writes torn at crash'] ?? 0).toBeGreaterThan(0);
    expect(totals['linearizability linearizable']).toBe(30);
  });
});
