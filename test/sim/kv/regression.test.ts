import { describe, expect, it } from 'vitest';
import { runScenario } from '../../../src/sim/scenario.js';
import { kvScenario } from '../../../src/sim/kv/scenario.js';
import type { KvScenarioOptions } from '../../../src/sim/kv/scenario.js';
import { simTimeoutMs } from './helpers.js';

/**
 * Seeds of the `kv` scenario worth replaying on every CI run. A seed names a
 * run of the current scenario, harness, shells and core: when one of them
 * changes the runs, re-find the seed and update it here. (Since the simulator
 * runs the production RaftNode, KV server and KvClients, seeds 178 and 2423
 * name other runs than the ones they were found as; they are kept as passing
 * runs of the corners they were found in.)
 */
const seeds: { seed: number; options: KvScenarioOptions; expect: 'ok' | RegExp; why: string }[] = [
  {
    seed: 213,
    options: { raft: { snapshotChunkBytes: 16, preVote: false, checkQuorum: false } },
    expect: /liveness: members n5 did not apply index \d+ within \d+ ticks/,
    why:
      "Found (as seed 178) by the kv scenario when it used the Raft scenario's 16-byte chunks: " +
      'pre-vote and check-quorum both off, and a node removed while partitioned never learns it ' +
      'and forces an election every timeout (raft-core.ts documents this corner, dissertation ' +
      '§4.2.3); each new leader restarts the snapshot transfer to a lagging member, which never ' +
      'completes. The kv scenario draws KV-sized chunks (64 B and up). Under the production ' +
      'shells with registered sessions seed 178 with 16-byte chunks passes; with pre-vote and ' +
      'check-quorum forced off, seed 213 shows the corner again (n3, removed, a candidate at ' +
      'every timeout; n5 never completes its snapshot). Kept as the corner it documents (a ' +
      'violation) until the Raft core handles it.',
  },
  {
    seed: 178,
    options: { raft: { snapshotChunkBytes: 16 } },
    expect: 'ok',
    why: 'The run that first showed the corner above, with 16-byte chunks: it passes today.',
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
    seed: 9,
    options: { raft: { checkQuorum: false } },
    expect: 'ok',
    why:
      'The first seed that catches skipReadConfirmation (bugs.test.ts) passes without the bug ' +
      '(seed 16 before the simulator ran the production KV server and KvClients).',
  },
];

describe('kv simulation regression seeds', () => {
  for (const s of seeds) {
    it(
      `seed ${s.seed} ${JSON.stringify(s.options)}: ${s.expect === 'ok' ? 'ok' : 'violation'} (${s.why.slice(0, 60)}…)`,
      async () => {
        const r = await runScenario(kvScenario({ traceMessages: false, ...s.options }), {
          seed: s.seed,
        });
        if (s.expect === 'ok') expect(r.message ?? '').toBe('');
        else expect(r.message).toMatch(s.expect);
      },
      simTimeoutMs,
    );
  }
});
