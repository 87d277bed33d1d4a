import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runScenario } from '../../../src/sim/scenario.js';
import { raftScenario } from '../../../src/sim/raft/scenario.js';
import type { RaftScenarioOptions } from '../../../src/sim/raft/scenario.js';
import { formatFailure, simTimeoutMs } from './helpers.js';

interface RegressionSeed {
  readonly seed: number;
  readonly options: RaftScenarioOptions;
  readonly expect: string;
  readonly why: string;
  /** A real core bug not fixed yet: the run must still fail this way (flip to ok once fixed). */
  readonly knownCoreBug?: boolean;
}

const list = JSON.parse(
  readFileSync(new URL('./regression-seeds.json', import.meta.url), 'utf8'),
) as { seeds: RegressionSeed[] };

describe('raft simulation regression seeds', () => {
  it('the list is not empty', () => {
    expect(list.seeds.length).toBeGreaterThan(0);
  });
  for (const s of list.seeds) {
    const title = `${s.knownCoreBug === true ? 'KNOWN CORE BUG, still failing: ' : ''}seed ${s.seed} ${JSON.stringify(s.options)}: ${s.expect}`;
    it(
      title,
      async () => {
        const r = await runScenario(raftScenario({ ...s.options, name: 'raft' }), { seed: s.seed });
        if (s.expect === 'ok') {
          expect(r.outcome === 'ok' ? '' : formatFailure(r)).toBe('');
        } else {
          // For a known core bug, a pass here means the core was fixed: update the list.
          expect(r.outcome, 'fixed? set expect to "ok" in regression-seeds.json').toBe('violation');
          expect(r.message).toMatch(new RegExp(s.expect));
        }
      },
      simTimeoutMs,
    );
  }
});
