import { describe, expect, it } from 'vitest';
import { runScenario } from '../../../src/sim/scenario.js';
import { raftScenario } from '../../../src/sim/raft/scenario.js';
import { formatFailure, runSeeds } from './helpers.js';

// The production RaftNode shell under the same nemesis, workload and checks
// (registered as `raft-production`: npm run sim -- --scenario raft-production --seed N).
const options = { name: 'raft-production', shell: 'production' } as const;

describe('raft simulation of the production shell (RaftNode)', () => {
  it('seeds 1..150 pass every check', async () => {
    const { failures, totals } = await runSeeds(1, 150, options);
    expect(failures.map(formatFailure).join('\n\n')).toBe('');
    expect(totals['linearizability linearizable'] ?? 0).toBeGreaterThan(140);
    expect(totals['entries applied'] ?? 0).toBeGreaterThan(150 * 20);
    expect(totals['nemesis crash'] ?? 0).toBeGreaterThan(0);
  });

  it('replays: the same seed gives the same trace hash', async () => {
    const scenario = raftScenario(options);
    for (const seed of [3, 4]) {
      const a = await runScenario(scenario, { seed });
      const b = await runScenario(scenario, { seed });
      expect(a.outcome).toBe('ok');
      expect(b.traceHash).toBe(a.traceHash);
    }
  });
});

// The production shell on the real FileStorage (WAL, snapshot files, recovery) over the
// simulated disk that loses or tears unsynced writes (`raft-production-file`).
const fileOptions = { name: 'raft-production-file', shell: 'production', storage: 'file' } as const;

describe('raft simulation of the production shell on FileStorage over the simulated disk', () => {
  it('seeds 1..150 pass every check, with torn writes recovered', async () => {
    const { failures, totals } = await runSeeds(1, 150, fileOptions);
    expect(failures.map(formatFailure).join('\n\n')).toBe('');
    expect(totals['linearizability linearizable'] ?? 0).toBeGreaterThan(140);
    expect(totals['disk writes torn at crash'] ?? 0).toBeGreaterThan(0);
    expect(totals['disk ops lost at crash'] ?? 0).toBeGreaterThan(0);
  });

  it('replays: the same seed gives the same trace hash', async () => {
    const scenario = raftScenario(fileOptions);
    const a = await runScenario(scenario, { seed: 5 });
    const b = await runScenario(scenario, { seed: 5 });
    expect(a.outcome).toBe('ok');
    expect(b.traceHash).toBe(a.traceHash);
  });
});
