/**
 * The KV client against an in-process 3-node cluster over TCP: basic
 * operations, leader discovery through redirects, concurrency over session lanes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kvText } from '../../src/kv/core/bytes.js';
import { KvTestCluster } from './kv-cluster.js';

let cluster: KvTestCluster;
beforeAll(async () => {
  cluster = await KvTestCluster.start(3);
  await cluster.leader();
});
afterAll(async () => {
  await cluster.close();
});

describe('KvClient', () => {
  it('puts, gets, deletes and ranges through whichever node it reaches first', async () => {
    const kv = await cluster.client();
    const put = await kv.put('a', '1');
    expect(put.revision).toBeGreaterThan(0);
    const got = await kv.get('a');
    expect(got === undefined ? undefined : kvText(got.value)).toBe('1');
    await kv.put('p/x', 'x');
    await kv.put('p/y', 'y');
    const r = await kv.range('p/', { prefix: true });
    expect(r.kvs.map((k) => kvText(k.key))).toEqual(['p/x', 'p/y']);
    const del = await kv.delete('p/', { prefix: true });
    expect(del.deleted).toBe(2);
    expect(await kv.get('p/x')).toBeUndefined();
  });

  it('runs many concurrent writes from one client in parallel lanes', async () => {
    const kv = await cluster.client();
    const puts = await Promise.all(
      Array.from({ length: 100 }, (_, i) => kv.put(`c/${i}`, String(i))),
    );
    expect(new Set(puts.map((p) => p.revision)).size).toBe(100);
    const r = await kv.range('c/', { prefix: true, countOnly: true });
    expect(r.count).toBe(100);
  });
});
