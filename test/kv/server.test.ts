/**
 * The Kv service on a 3-node in-process cluster over TCP: followers redirect
 * writes and linearizable reads with the leader's id and RPC address, serve
 * serializable reads; bad input gets a clear code and changes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCohortError } from '../../src/lib/errors.js';
import type { CohortError } from '../../src/lib/errors.js';
import { nodeId } from '../../src/lib/ids.js';
import { limits } from '../../src/lib/limits.js';
import { kvKey, kvText } from '../../src/kv/core/bytes.js';
import type { RangeResult, TxnOp } from '../../src/kv/core/types.js';
import { capRange } from '../../src/kv/server.js';
import { KvService } from '../../src/kv/service.js';
import { startTcpClient } from '../../src/rpc/tcp-endpoints.js';
import type { RpcNode } from '../../src/rpc/node.js';
import { KvTestCluster, until } from './kv-cluster.js';
import { conditionWaitMs } from '../harness/wait.js';

let cluster: KvTestCluster;
const rpcs: RpcNode[] = [];
beforeAll(async () => {
  cluster = await KvTestCluster.start(3);
  await cluster.leader();
});
afterAll(async () => {
  await Promise.allSettled(rpcs.map((r) => r.close()));
  await cluster.close();
});

/** A raw Kv stub on node `id`. */
async function stub(id: string) {
  const cfg = cluster.configs.find((c) => c.id === id);
  if (cfg === undefined) throw new Error(id);
  const rpc = await startTcpClient({
    server: { id, host: cfg.rpc.host, port: cfg.rpc.port },
    clusterId: 'cohort-local',
  });
  rpcs.push(rpc);
  return rpc.client(KvService, nodeId(id), { timeoutMs: conditionWaitMs });
}

async function refusal(p: Promise<unknown>): Promise<CohortError> {
  try {
    await p;
  } catch (e) {
    if (isCohortError(e)) return e;
    throw e;
  }
  throw new Error('the call succeeded');
}

describe('Kv service', () => {
  it('a follower refuses writes and linearizable reads with NOT_LEADER naming the leader and its RPC port', async () => {
    const leader = await cluster.leader();
    const follower = cluster.configs.find((c) => c.id !== leader.config.id);
    if (follower === undefined) throw new Error('no follower');
    const kv = await stub(follower.id);
    const e = await refusal(kv.put({ key: kvKey('f'), value: kvKey('1') }));
    expect(e.code).toBe('NOT_LEADER');
    expect(e.definite).toBe(true);
    expect(e.details.leaderId).toBe(leader.config.id);
    expect(e.details.leaderRpc).toBe(`${leader.config.rpc.host}:${leader.config.rpc.port}`);
    expect((await refusal(kv.range({ key: kvKey('f') }))).code).toBe('NOT_LEADER');
    // Serializable reads are served from the follower's own state.
    const onLeader = await stub(leader.config.id);
    const put = await onLeader.put({ key: kvKey('f'), value: kvKey('2') });
    const seen = await until(async () => {
      const r = await kv.range({ key: kvKey('f'), serializable: true });
      return r.revision >= put.revision ? r : undefined;
    });
    expect(kvText(seen.kvs[0]?.value ?? new Uint8Array())).toBe('2');
  });

  it('refuses bad input with clear codes, writes nothing and keeps serving', async () => {
    const leader = await cluster.leader();
    const kv = await stub(leader.config.id);
    // Requests sent without the client's own schema check, so the server's checks answer.
    const rpc = rpcs[rpcs.length - 1];
    if (rpc === undefined) throw new Error('no rpc');
    const raw = (method: string, request: unknown): Promise<unknown> => {
      const m = KvService.compiled.get(method);
      if (m === undefined) throw new Error(method);
      return rpc
        .invoker(leader.config.id, { timeoutMs: conditionWaitMs })
        .unary({ ...m, checkRequest: () => undefined }, request, {});
    };
    const before = (await kv.range({ key: kvKey('bad') })).revision;
    const big = new Uint8Array(limits.kvValueBytesMax + 1);
    const longKey = new Uint8Array(limits.kvKeyBytesMax + 1).fill(97);
    const cases: [string, () => Promise<unknown>, string][] = [
      ['oversize value', () => raw('put', { key: kvKey('bad'), value: big }), 'INVALID_ARGUMENT'],
      ['oversize key', () => raw('put', { key: longKey, value: kvKey('1') }), 'INVALID_ARGUMENT'],
      [
        'empty key',
        () => raw('put', { key: new Uint8Array(0), value: kvKey('1') }),
        'INVALID_ARGUMENT',
      ],
      [
        'malformed range',
        () => raw('range', { key: kvKey('b'), rangeEnd: kvKey('a') }),
        'INVALID_ARGUMENT',
      ],
      [
        'malformed delete range',
        () => raw('deleteRange', { key: kvKey('b'), rangeEnd: kvKey('a') }),
        'INVALID_ARGUMENT',
      ],
      [
        'unknown lease',
        () => raw('put', { key: kvKey('bad'), value: kvKey('1'), lease: 424242 }),
        'NOT_FOUND',
      ],
      ['unknown lease revoke', () => raw('leaseRevoke', { id: 424242 }), 'NOT_FOUND'],
      ['unknown lease ttl', () => raw('leaseTimeToLive', { id: 424242 }), 'NOT_FOUND'],
      [
        'too many txn ops',
        () =>
          raw('txn', {
            compare: [],
            success: Array.from({ length: limits.kvTxnOpsMax + 1 }, (_, i): TxnOp => ({
              type: 'put',
              key: kvKey(`bad/${i}`),
              value: kvKey('x'),
            })),
            failure: [],
          }),
        'INVALID_ARGUMENT',
      ],
      [
        'future revision',
        () => raw('range', { key: kvKey('bad'), revision: before + 1000 }),
        'FAILED_PRECONDITION',
      ],
      ['short lease', () => raw('leaseGrant', { ttlMs: 1 }), 'INVALID_ARGUMENT'],
      [
        'junk field types',
        () => raw('put', { key: 'not bytes', value: kvKey('1') }),
        'INVALID_ARGUMENT',
      ],
    ];
    for (const [what, p, code] of cases) {
      const e = await refusal(p());
      expect(`${what}: ${e.code}`).toBe(`${what}: ${code}`);
      expect(e.message.length).toBeGreaterThan(0);
    }
    const after = await kv.range({ key: kvKey('bad'), rangeEnd: kvKey('bad0') });
    expect(after.revision).toBe(before);
    expect(after.count).toBe(0);
    // Still serving.
    const ok = await kv.put({ key: kvKey('bad'), value: kvKey('fine') });
    expect(ok.revision).toBe(before + 1);
  });

  it('a watch from a compacted revision ends with COMPACTED; a valid one replays then follows', async () => {
    const leader = await cluster.leader();
    const kv = await stub(leader.config.id);
    const a = await kv.put({ key: kvKey('w/a'), value: kvKey('1') });
    await kv.put({ key: kvKey('w/b'), value: kvKey('2') });
    await kv.compact({ revision: a.revision });
    const old = kv.watch({
      key: kvKey('w/'),
      rangeEnd: kvKey('w0'),
      startRevision: a.revision - 1,
    });
    const e = await refusal(
      (async () => {
        for await (const item of old) void item;
      })(),
    );
    expect(e.code).toBe('COMPACTED');
    const stream = kv.watch({
      key: kvKey('w/'),
      rangeEnd: kvKey('w0'),
      startRevision: a.revision + 1,
    });
    const seen: string[] = [];
    for await (const item of stream) {
      for (const ev of item.events) seen.push(`${ev.type} ${kvText(ev.kv.key)}`);
      if (seen.length === 1) await kv.deleteRange({ key: kvKey('w/a') });
      if (seen.length === 2) break;
    }
    expect(seen).toEqual(['PUT w/b', 'DELETE w/a']);
  });

  it('refuses a deleteRange whose prevKvs would not fit a reply, before it deletes anything', async () => {
    const leader = await cluster.leader();
    const kv = await stub(leader.config.id);
    const big = new Uint8Array(limits.kvValueBytesMax);
    const n = Math.floor(limits.kvRangeBytesMax / limits.kvValueBytesMax) + 1;
    for (let i = 0; i < n; i++) await kv.put({ key: kvKey(`del/${i}`), value: big });
    const range = { key: kvKey('del/'), rangeEnd: kvKey('del0') };
    const e = await refusal(kv.deleteRange({ ...range, prevKv: true }));
    expect([e.code, e.definite, e.details.reason]).toEqual([
      'FAILED_PRECONDITION',
      true,
      'replyTooLarge',
    ]);
    expect((await kv.range({ ...range, countOnly: true })).count).toBe(n);
    expect((await kv.deleteRange(range)).deleted).toBe(n);
  });

  it('counts each key-value’s encoding in the range cap: many tiny keys are cut too', () => {
    const kvs = Array.from({ length: 100 }, (_, i) => ({
      key: kvKey(String(i % 10)),
      value: new Uint8Array(0),
      createRevision: 1,
      modRevision: 1,
      version: 1,
      lease: 0,
    }));
    const cut = capRange({ type: 'range', revision: 1, kvs, count: 100, more: false }, 1000);
    expect(cut.more).toBe(true);
    expect(cut.kvs.length).toBeLessThan(20);
  });

  it('cuts a range answer over the byte cap and flags more', () => {
    const kv = (k: string, n: number) => ({
      key: kvKey(k),
      value: new Uint8Array(n),
      createRevision: 1,
      modRevision: 1,
      version: 1,
      lease: 0,
    });
    const r: RangeResult = {
      type: 'range',
      revision: 3,
      kvs: [kv('a', 60), kv('b', 60), kv('c', 60)],
      count: 3,
      more: false,
    };
    const cut = capRange(r, 100);
    expect(cut.kvs.map((x) => kvText(x.key))).toEqual(['a']);
    expect(cut.more).toBe(true);
    expect(cut.count).toBe(3);
    // One key always goes out, even over the cap.
    expect(capRange(r, 10).kvs).toHaveLength(1);
    expect(capRange(r, 1000)).toBe(r);
  });
});
