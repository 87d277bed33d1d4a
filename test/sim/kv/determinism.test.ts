import { describe, expect, it } from 'vitest';
import { main } from '../../../src/sim/cli.js';
import { runScenario } from '../../../src/sim/scenario.js';
import { getScenario } from '../../../src/sim/scenarios.js';
import { kvScenario } from '../../../src/sim/kv/scenario.js';
import { expectSeedsReplay } from '../determinism.js';
import { simTimeoutMs } from './helpers.js';

/** Which of the real timer functions code under src/ (the simulator's own driver aside) called. */
async function realTimersCalledFromSrc(run: () => Promise<unknown>): Promise<string[]> {
  const calls: string[] = [];
  const g = globalThis as unknown as Record<string, (...args: unknown[]) => unknown>;
  const names = ['setTimeout', 'setInterval', 'setImmediate'] as const;
  const saved = names.map((n) => g[n]);
  names.forEach((name, i) => {
    const real = saved[i] as (...args: unknown[]) => unknown;
    g[name] = (...args: unknown[]) => {
      const frames = (new Error().stack ?? '').split('\n').slice(2);
      const caller = frames.find((f) => f.includes('/src/'));
      if (caller !== undefined && !caller.includes('/src/sim/scenario.ts')) {
        calls.push(`${name} from ${caller.trim()}`);
      }
      return real(...args);
    };
  });
  try {
    await run();
  } finally {
    names.forEach((name, i) => (g[name] = saved[i] as (...args: unknown[]) => unknown));
  }
  return calls;
}

describe('kv simulation determinism', () => {
  it(
    'the shells set no real timers or immediates: every timer and deferred step is a scheduler event',
    async () => {
      const calls = await realTimersCalledFromSrc(async () => {
        for (const seed of [1, 2, 3]) {
          expect((await runScenario(kvScenario({ storage: 'file' }), { seed })).outcome).toBe('ok');
          expect((await runScenario(kvScenario(), { seed })).outcome).toBe('ok');
        }
      });
      expect(calls).toEqual([]);
    },
    simTimeoutMs,
  );

  it(
    'the same seed gives the same trace hash, event count, counters and parameters; other seeds differ',
    async () => {
      await expectSeedsReplay(kvScenario(), [1, 2, 3]);
    },
    simTimeoutMs,
  );

  it(
    'tracing messages or not does not change the run (so the replay command reproduces CI runs)',
    async () => {
      for (const seed of [4, 5]) {
        const a = await runScenario(kvScenario({ traceMessages: false }), { seed });
        const b = await runScenario(kvScenario(), { seed });
        expect(b.events).toBe(a.events);
        expect(b.virtualMs).toBe(a.virtualMs);
        expect(b.counts['entries applied']).toBe(a.counts['entries applied']);
        expect(b.counts['kv revisions']).toBe(a.counts['kv revisions']);
      }
    },
    simTimeoutMs,
  );

  it(
    'is registered as `kv` and runs from the command line, printing the trace hash and the verdict',
    async () => {
      expect(getScenario('kv')?.name).toBe('kv');
      const one: string[] = [];
      expect(await main(['--scenario', 'kv', '--seed', '7'], (l) => one.push(l))).toBe(0);
      const text = one.join('\n');
      expect(text).toContain('scenario kv seed 7: ok');
      expect(text).toMatch(/trace hash: [0-9a-f]{64}/);
      expect(text).toContain('linearizability linearizable:1');
      const many: string[] = [];
      expect(
        await main(['--scenario', 'kv', '--seed', '10', '--seeds', '3'], (l) => many.push(l)),
      ).toBe(0);
      expect(many.join('\n')).toContain('scenario kv seeds 10..12: {ok:3 violation:0 error:0}');
    },
    simTimeoutMs,
  );
});
