/**
 * The KV server's side of the storage quota (in-process node, real Raft and
 * WAL): the quota set with `kvQuotaBytes` travels in every entry the leader
 * proposes, the first put past it is refused in apply (and raises the
 * NOSPACE alarm), and while the alarm is raised the leader refuses writes
 * before proposing them, so refused writes do not grow the log.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCohortError } from '../../src/lib/errors.js';
import type { CohortError } from '../../src/lib/errors.js';
import { limits } from '../../src/lib/limits.js';
import { KvTestCluster } from './kv-cluster.js';

const value = new Uint8Array(10_000);
const cost = 3 + value.length + limits.kvVersionOverheadBytes; // keys k00..k99
const quota = 20 * cost + 100;

let cluster: KvTestCluster;
beforeAll(async () => {
  cluster = await KvTestCluster.start(1, {}, { kvQuotaBytes: String(quota) });
  await cluster.leader();
});
afterAll(async () => {
  await cluster.close();
});

/**
 * How many log entries after `after` carry `key` (its bytes appear in the
 * entry's command). The node may append entries of its own meanwhile (other
 * modules' state, on their timers), so the test counts the KV writes it made
 * rather than the log's length.
 */
function entriesWith(
  leader: Awaited<ReturnType<KvTestCluster['leader']>>,
  after: number,
  key: string,
): number {
  const needle = Buffer.from(key);
  const last = leader.raft.status().lastIndex;
  return leader.raft
    .inspect()
    .entries(after + 1, last)
    .filter((e) =>
      Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength).includes(needle),
    ).length;
}

async function refusal(p: Promise<unknown>): Promise<CohortError> {
  try {
    await p;
  } catch (e) {
    if (isCohortError(e)) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

describe('the KV server and the quota', () => {
  it('refuses past the quota through the log once, then on the leader without proposing', async () => {
    const kv = await cluster.client();
    const leader = await cluster.leader();
    for (let i = 0; i < 20; i++) await kv.put(`k${String(i).padStart(2, '0')}`, value);
    expect(leader.raft.stateMachine.kv.sizeBytes).toBe(20 * cost);
    const last = leader.raft.status().lastIndex;
    // The first refusal is applied (every replica raises the alarm): one entry.
    expect(await refusal(kv.put('k20', value))).toMatchObject({
      code: 'NO_SPACE',
      definite: true,
      details: { reason: 'quota', quotaBytes: quota },
    });
    expect(entriesWith(leader, last, 'k20')).toBe(1);
    expect(leader.status().alarms).toEqual(['NOSPACE']);
    // Later ones are refused before the log, even small ones that would fit.
    for (const k of ['k21', 'k22', 'k23']) {
      expect(await refusal(kv.put(k, 'x'))).toMatchObject({
        code: 'NO_SPACE',
        details: { reason: 'alarm' },
      });
    }
    for (const k of ['k21', 'k22', 'k23']) expect(entriesWith(leader, last, k)).toBe(0);
    // Deletes and compaction go through; compaction disarms the alarm.
    const del = await kv.delete('k', { prefix: true });
    expect(del.deleted).toBe(20);
    await kv.compact(del.revision);
    expect(leader.status().alarms).toEqual([]);
    expect(leader.status().kvBytes).toBe(0);
    await kv.put('k20', value);
  });
});
