import { describe, expect, it } from 'vitest';
import { main } from '../../../src/sim/cli.js';
import { runScenario } from '../../../src/sim/scenario.js';
import { getScenario } from '../../../src/sim/scenarios.js';
import { raftScenario } from '../../../src/sim/raft/scenario.js';
import { expectSeedsReplay } from '../determinism.js';
import { simTimeoutMs } from './helpers.js';

describe('raft simulation determinism', () => {
  it(
    'the same seed gives the same trace hash, event count and history; other seeds differ',
    async () => {
      await expectSeedsReplay(raftScenario(), [1, 2, 3]);
    },
    simTimeoutMs,
  );

  it(
    'tracing messages or not does not change the run (so the replay command reproduces CI runs)',
    async () => {
      const quiet = raftScenario({ traceMessages: false });
      const loud = raftScenario();
      for (const seed of [4, 5]) {
        const a = await runScenario(quiet, { seed });
        const b = await runScenario(loud, { seed });
        expect(b.events).toBe(a.events);
        expect(b.virtualMs).toBe(a.virtualMs);
        expect(b.counts['entries applied']).toBe(a.counts['entries applied']);
        expect(b.counts['send'] ?? 0).toBeGreaterThan(0);
        expect(a.counts['send']).toBeUndefined();
      }
    },
    simTimeoutMs,
  );

  it(
    'is registered as `raft` and runs from the command line, printing counts by outcome',
    async () => {
      expect(getScenario('raft')?.name).toBe('raft');
      const lines: string[] = [];
      const code = await main(['--scenario', 'raft', '--seed', '10', '--seeds', '3'], (l) =>
        lines.push(l),
      );
      expect(code).toBe(0);
      expect(lines.join('\n')).toContain('scenario raft seeds 10..12: {ok:3 violation:0 error:0}');
    },
    simTimeoutMs,
  );

  it(
    'a failing run prints the seed, the fault parameters, the last events and the replay command',
    async () => {
      const buggy = raftScenario({ name: 'raft', bugs: { skipLogConsistencyCheck: true } });
      const r = await runScenario(buggy, { seed: 1, lastEvents: 20 });
      expect(r.outcome).toBe('violation');
      expect(r.message).toMatch(/log matching/);
      expect(r.params).toHaveProperty('weights');
      expect(r.params).toHaveProperty('linkFaultsMax');
      expect(r.lastEvents.length).toBe(20);
      expect(r.replay).toBe('npm run sim -- --scenario raft --seed 1');
    },
    simTimeoutMs,
  );
});
