/**
 * One CI slice of the KV simulation: `count` seeds starting at `from`, all of
 * which must pass every check, and which together must have exercised what
 * the checks are about (so a workload or nemesis that silently stopped doing
 * something fails here).
 */
import { expect, it } from 'vitest';
import { formatFailure, runKvSeeds, simTimeoutMs } from './helpers.js';

/** Registers the test for one slice of seeds. */
export function kvSeedSlice(from: number, count: number): void {
  it(
    `kv seeds ${from}..${from + count - 1} pass every check`,
    async () => {
      const { failures, totals, voters, leases } = await runKvSeeds(from, count);
      expect(failures.map(formatFailure).join('\n\n')).toBe('');
      expect(voters['3'] ?? 0).toBeGreaterThan(count / 5);
      expect(voters['5'] ?? 0).toBeGreaterThan(count / 5);
      expect(leases['true'] ?? 0).toBeGreaterThan(count / 3);
      for (const kind of [
        // The workload (KvClients): every operation, retries, writes answered from the session,
        // sessions registered, and commands refused because their session expired by log time.
        'op get ok',
        'op serializable get ok',
        'op put ok',
        'op cas ok',
        'op delete ok',
        'op put retries',
        'kv session duplicates applied',
        'sessions opened',
        'sessions expired',
        'op get answered by a deposed leader',
        'kv compactions applied',
        // Leases (the KV server's leader duties): clocks on new leaders, checkpoints, expiries.
        'lease clocks promoted',
        'lease checkpoints applied',
        'lease keepAlive ok',
        'leases expired',
        // The nemesis on the KV store: crashes with torn writes, snapshots taken and installed.
        'nemesis crash-mid-write',
        'disk writes torn at crash',
        'snapshots taken',
        'snapshots restored',
        'membership addLearner applied',
        // The checks ran.
        'kv revisions',
        'kv states compared (sampled)',
        'kv states compared (snapshot restored)',
        'kv states compared (end of run)',
        'kv watch replays compared (snapshot restored)',
        'kv watch replays compared (end of run)',
        'linearizability linearizable',
      ]) {
        expect(totals[kind] ?? 0, kind).toBeGreaterThan(0);
      }
      expect(totals['linearizability linearizable']).toBe(count);
      expect(totals['checks leaderCompletenessChecks'] ?? 0).toBeGreaterThan(count);
    },
    simTimeoutMs,
  );
}
