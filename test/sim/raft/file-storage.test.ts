import { describe, expect, it } from 'vitest';
import { runScenario } from '../../../src/sim/scenario.js';
import { getScenario } from '../../../src/sim/scenarios.js';
import { raftScenario } from '../../../src/sim/raft/scenario.js';
import { formatFailure, runSeeds, simTimeoutMs } from './helpers.js';

// RaftNode on the real FileStorage (WAL, snapshot files, recovery) over the simulated disk
// that loses or tears unsynced writes (`raft-file`; replay: npm run sim -- --scenario raft-file --seed N).
const fileOptions = { name: 'raft-file', storage: 'file' } as const;

describe('raft simulation on FileStorage over the simulated disk', () => {
  it(
    'seeds 1..150 pass every check, with torn writes recovered',
    async () => {
      const { failures, totals } = await runSeeds(1, 150, fileOptions);
      expect(failures.map(formatFailure).join('\n\n')).toBe('');
      expect(totals['linearizability linearizable'] ?? 0).toBeGreaterThan(140);
      expect(totals['disk writes torn at crash'] ?? 0).toBeGreaterThan(0);
      expect(totals['disk ops lost at crash'] ?? 0).toBeGreaterThan(0);
      expect(totals['snapshots loaded at start'] ?? 0).toBeGreaterThan(0);
    },
    simTimeoutMs,
  );

  it(
    'replays: the same seed gives the same trace hash',
    async () => {
      const scenario = raftScenario(fileOptions);
      const a = await runScenario(scenario, { seed: 5 });
      const b = await runScenario(scenario, { seed: 5 });
      expect(a.outcome).toBe('ok');
      expect(b.traceHash).toBe(a.traceHash);
    },
    simTimeoutMs,
  );

  it('the names of the retired simulator-only shell run the production shell', () => {
    // Replay commands printed before every scenario ran RaftNode still work.
    expect(getScenario('raft-production')?.name).toBe('raft-production');
    expect(getScenario('raft-production-file')?.name).toBe('raft-production-file');
    expect(getScenario('raft-file')?.name).toBe('raft-file');
  });
});
