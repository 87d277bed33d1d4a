/**
 * The KV storage quota on three real `cohort node` processes started with a
 * small `--kv-quota-bytes`: puts are accepted until the store would pass it,
 * then refused with a definite NO_SPACE (the NOSPACE alarm, on every node,
 * also for a put that would fit); reads and deletes still work; the alarm
 * survives a kill -9 of the whole cluster (the nodes replay it from their
 * snapshots and logs); compaction after the deletes disarms it and writes
 * work again, also after a restart.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvClient } from '../../src/kv/client.js';
import { kvText } from '../../src/kv/core/index.js';
import { isCohortError } from '../../src/lib/errors.js';
import type { CohortError } from '../../src/lib/errors.js';
import { limits } from '../../src/lib/limits.js';
import type { NodeStatus } from '../../src/node/node-service.js';
import { ProcessCluster, until } from '../harness/process-cluster.js';
import { conditionWaitMs } from '../harness/wait.js';

const quota = 3 * 1024 * 1024;
const value = new Uint8Array(64 * 1024).fill(0x76);
const key = (i: number): string => `k/${String(i).padStart(3, '0')}`;
/** What one put of `value` under a 5-byte key adds to the store's size. */
const cost = 5 + value.length + limits.kvVersionOverheadBytes;

let cluster: ProcessCluster;

beforeAll(async () => {
  // Small --snapshot-entries: restarted nodes load the alarm from a snapshot, then replay the log.
  cluster = await ProcessCluster.start({ nodes: 3, kvQuotaBytes: quota, snapshotEntries: 20 });
});

afterAll(async () => {
  await cluster.close();
});

function connect(): Promise<KvClient> {
  return KvClient.connect({
    endpoints: cluster.endpoints().map((e) => `${e.id}=${e.host}:${e.port}`),
    clientId: `quota-${process.pid}`,
    // Generous: a starved node answers late (the test is about the quota, not deadlines).
    timeoutMs: 5_000,
    retryMs: conditionWaitMs,
  });
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

/** Waits until every node answers with the same applied index and returns their statuses. */
async function settled(): Promise<NodeStatus[]> {
  return until('every node to apply the same index', async () => {
    const all = await cluster.statuses(2_000);
    if (all.length !== 3) return undefined;
    const applied = new Set(all.map((s) => s.appliedIndex));
    const commit = Math.max(...all.map((s) => s.commitIndex));
    return applied.size === 1 && all.every((s) => s.appliedIndex >= commit) ? all : undefined;
  });
}

/** Every node reports `alarms` and the store size `kvBytes` (once they applied the same log). */
async function expectEveryNode(alarms: string[], kvBytes: number): Promise<void> {
  const all = await settled();
  for (const s of all)
    expect({ id: s.id, alarms: s.alarms, kvBytes: s.kvBytes }).toEqual({
      id: s.id,
      alarms,
      kvBytes,
    });
}

async function restartAll(): Promise<void> {
  for (const n of cluster.nodes) await cluster.kill(n.id);
  for (const n of cluster.nodes) await cluster.restart(n.id);
  await cluster.waitForLeader();
}

describe('the KV quota (--kv-quota-bytes) on real node processes', () => {
  it('refuses writes past it with NO_SPACE on every node, keeps reads and deletes working, survives restarts, and recovers after compaction', async () => {
    await cluster.waitForLeader();
    let kv = await connect();
    try {
      // Fill: every put fits until the next one would pass the quota.
      let puts = 0;
      let refused: CohortError | undefined;
      while (refused === undefined) {
        try {
          await kv.put(key(puts), value);
          puts++;
        } catch (e) {
          if (!isCohortError(e)) throw e;
          refused = e;
        }
        if (puts > 1_000) throw new Error('the quota never refused a put');
      }
      expect(refused).toMatchObject({
        code: 'NO_SPACE',
        definite: true,
        details: { reason: 'quota' },
      });
      expect(puts).toBe(Math.floor(quota / cost));
      await expectEveryNode(['NOSPACE'], puts * cost);

      // The alarm refuses even a tiny put; reads answer, linearizable and serializable.
      expect(await refusal(kv.put('tiny', 'x'))).toMatchObject({
        code: 'NO_SPACE',
        details: { reason: 'alarm' },
      });
      expect((await kv.get(key(0)))?.value.length).toBe(value.length);
      expect(
        (await kv.range('k/', { prefix: true, countOnly: true, serializable: true })).count,
      ).toBe(puts);

      // kill -9 every node and start them again: the alarm is still raised everywhere.
      await kv.close();
      await restartAll();
      kv = await connect();
      await expectEveryNode(['NOSPACE'], puts * cost);
      expect((await refusal(kv.put('tiny', 'x'))).code).toBe('NO_SPACE');
      expect((await kv.range('k/', { prefix: true, countOnly: true })).count).toBe(puts);

      // Deletes work under the alarm; their tombstones keep it raised until compaction.
      const deleted = await kv.delete('k/', { prefix: true });
      expect(deleted.deleted).toBe(puts);
      expect((await kv.range('k/', { prefix: true, countOnly: true })).count).toBe(0);
      expect((await refusal(kv.put('tiny', 'x'))).code).toBe('NO_SPACE');
      await kv.compact(deleted.revision);
      await expectEveryNode([], 0);
      await kv.put('after', 'compaction');
      const after = await kv.get('after');
      expect(after === undefined ? undefined : kvText(after.value)).toBe('compaction');
      const size = (await settled())[0]?.kvBytes;

      // And after another restart of every node the alarm stays down.
      await kv.close();
      await restartAll();
      kv = await connect();
      await expectEveryNode([], size ?? -1);
      await kv.put('again', 'ok');
    } finally {
      await kv.close();
    }
  });
});
