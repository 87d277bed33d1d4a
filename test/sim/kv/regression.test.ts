import { describe, expect, it } from 'vitest';
import { runScenario } from '../../../src/sim/scenario.js';
import { kvScenario } from '../../../src/sim/kv/scenario.js';
import type { KvScenarioOptions } from '../../../src/sim/kv/scenario.js';

/**
 * Seeds of the `kv` scenario worth replaying on every CI run. A seed names a
 * run of the current scenario, harness and core: when one of them changes the
 * draws, re-find the seed and update it here.
 */
const seeds: { seed: number; options: KvScenarioOptions; expect: 'ok' | RegExp; why: string }[] = [
  {
    seed: 178,
    options: { raft: { snapshotChunkBytes: 16 } },
    expect: /liveness: members n4 did not apply index \d+ within \d+ ticks/,
    why:
      "Found by the kv scenario when it used the Raft scenario's 16-byte chunks: pre-vote and " +
      'check-quorum both off, and n2, removed while partitioned, never learns it and forces an ' +
      'election every timeout (raft-core.ts documents this corner, dissertation §4.2.3); each new ' +
      'leader restarted the 1.2 KB snapshot transfer to the lagging n4, which never completed. ' +
      'The kv scenario now draws KV-sized chunks (64 B and up). Since election timeouts start one ' +
      'tick past the lease (2026-11-21) the draws differ and neither this option set (seeds ' +
      '1-3000) nor snapshotEvery: 1 (1-3000) reproduces it; the corner itself remains. Since ' +
      'clients register their sessions (a sessionOpen entry each, issue 14) the draws moved again ' +
      'and this seed shows the corner once more: n2, removed while partitioned, campaigns at ' +
      'every timeout and n4 never completes its 16-byte-chunk snapshot. Kept as the corner it ' +
      'documents (a violation) until the Raft core handles it.',
  },
  {
    seed: 178,
    options: {},
    expect: 'ok',
    why: 'The same run with the chunk size the kv scenario draws (64 B): n4 catches up.',
  },
  {
    seed: 2423,
    options: {},
    expect: 'ok',
    why:
      'Liveness failed before clients backed off: one entry per append, one in flight and 30 ms ' +
      'disks commit ~75 entries/s, while retried writes (each a new log entry) arrived faster, so ' +
      'the probe never got through the backlog after heal. Overload, not a Raft bug: requests.ts ' +
      'now doubles attempt timeouts and pauses per attempt (also seeds 2571 and 6568).',
  },
  {
    seed: 16,
    options: { raft: { checkQuorum: false } },
    expect: 'ok',
    why: 'The first seed that catches skipReadConfirmation (bugs.test.ts) passes without the bug.',
  },
];

describe('kv simulation regression seeds', () => {
  for (const s of seeds) {
    it(`seed ${s.seed} ${JSON.stringify(s.options)}: ${s.expect === 'ok' ? 'ok' : 'violation'} (${s.why.slice(0, 60)}…)`, async () => {
      const r = await runScenario(kvScenario({ traceMessages: false, ...s.options }), {
        seed: s.seed,
      });
      if (s.expect === 'ok') expect(r.message ?? '').toBe('');
      else expect(r.message).toMatch(s.expect);
    });
  }
});
