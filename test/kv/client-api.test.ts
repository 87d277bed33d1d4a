/**
 * The KV client's API for programs, against an in-process 3-node cluster:
 * strings or bytes everywhere, text helpers on results, cas/putIfAbsent,
 * per-call deadlines and signals, ready(), errors that tell a refused
 * connection from another cluster from a timeout, and a lease keeper that
 * reports a lease it could not renew for a whole TTL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvClient } from '../../src/kv/client.js';
import { kvKey } from '../../src/kv/core/bytes.js';
import { CohortError, isCohortError } from '../../src/lib/errors.js';
import type { ClientInterceptor } from '../../src/rpc/client.js';
import { freePort } from '../transport/tcp-harness.js';
import { KvTestCluster } from './kv-cluster.js';

let cluster: KvTestCluster;
beforeAll(async () => {
  cluster = await KvTestCluster.start(3);
  await cluster.leader();
});
afterAll(async () => {
  await cluster.close();
});

async function caught(p: Promise<unknown>): Promise<CohortError> {
  try {
    await p;
  } catch (e) {
    if (isCohortError(e)) return e;
    throw e;
  }
  throw new Error('expected a CohortError');
}

describe('KvClient API', () => {
  it('takes strings or bytes in every method and gives text helpers on results', async () => {
    const kv = await cluster.client();
    expect(await kv.ready()).toMatchObject({ revision: expect.any(Number) as number });
    await kv.put('api/a', 'hello');
    await kv.put(kvKey('api/b'), kvKey('wörld'));
    expect(await kv.getText('api/a')).toBe('hello');
    expect(await kv.getText('api/none')).toBeUndefined();
    const b = await kv.get('api/b');
    expect(b?.text).toBe('wörld');
    expect(b?.keyText).toBe('api/b');
    // The helpers are not data: JSON has the stored fields only.
    expect(Object.keys(JSON.parse(JSON.stringify(b)) as object).sort()).toEqual([
      'createRevision',
      'key',
      'lease',
      'modRevision',
      'value',
      'version',
    ]);
    const r = await kv.range('api/', { prefix: true });
    expect(r.kvs.map((p) => `${p.keyText}=${p.text}`)).toEqual(['api/a=hello', 'api/b=wörld']);
    const t = await kv.txn({
      compare: [{ target: 'value', key: 'api/a', op: '>=', value: 'hello' }],
      success: [
        { type: 'put', key: 'api/c', value: 'from txn', prevKv: true },
        { type: 'get', key: 'api/', prefix: true },
      ],
      failure: [],
    });
    expect(t.succeeded).toBe(true);
    const got = t.responses[1];
    expect(got?.type === 'range' ? got.kvs.map((p) => p.text) : []).toEqual([
      'hello',
      'wörld',
      'from txn',
    ]);
    const no = await kv.txn({
      compare: [{ target: 'version', key: 'api/a', op: '<=', value: 0 }],
      failure: [{ type: 'delete', key: 'api/c', prevKv: true }],
    });
    expect(no.succeeded).toBe(false);
    const del = no.responses[0];
    expect(del?.type === 'deleteRange' ? del.prevKvs?.[0]?.text : undefined).toBe('from txn');
  });

  it('cas and putIfAbsent: from absent, on a value, on a version; a failure shows the current pair', async () => {
    const kv = await cluster.client();
    const first = await kv.putIfAbsent('cas/k', 'one');
    expect(first.succeeded).toBe(true);
    const again = await kv.putIfAbsent('cas/k', 'two');
    expect(again).toMatchObject({ succeeded: false });
    expect(again.current?.text).toBe('one');
    expect((await kv.cas('cas/k', 'nope', 'x')).succeeded).toBe(false);
    const swapped = await kv.cas('cas/k', 'one', 'two', { prevKv: true });
    expect(swapped.succeeded).toBe(true);
    expect(swapped.prevKv?.text).toBe('one');
    const v = (await kv.get('cas/k'))?.version ?? -1;
    expect((await kv.cas('cas/k', { version: v }, 'three')).succeeded).toBe(true);
    expect((await kv.cas('cas/k', { version: v }, 'four')).succeeded).toBe(false);
    expect(await kv.getText('cas/k')).toBe('three');
    // A value compare on a missing key is false: cas from a value never creates.
    expect((await kv.cas('cas/missing', '', 'x')).succeeded).toBe(false);
  });

  it('a per-call timeout or signal ends the call; nothing waits past it', async () => {
    // Every put hangs (the reply never comes) until its attempt deadline.
    const hang: ClientInterceptor = async (call, next) => {
      if (call.method !== 'put') return next(call);
      return new Promise((_, reject) => {
        const t = setTimeout(
          () => reject(new CohortError('TIMEOUT', 'no reply (test)', { definite: false })),
          call.options.timeoutMs ?? 2000,
        );
        call.options.signal?.addEventListener('abort', () => {
          clearTimeout(t);
          reject(new CohortError('CANCELLED', 'aborted (test)', { definite: false }));
        });
      });
    };
    const kv = await cluster.client({ rpc: { client: { interceptors: [hang] } } });
    const timedOut = await caught(kv.put('slow', '1', { timeoutMs: 300 }));
    expect(timedOut.code).toBe('TIMEOUT');
    expect(timedOut.definite).toBe(false);
    expect(timedOut.message).toMatch(/within 300 ms/);
    const past = await caught(kv.put('slow', '1', { deadline: Date.now() + 200 }));
    expect(past.code).toBe('TIMEOUT');
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const cancelled = await caught(kv.put('slow', '1', { signal: ac.signal, timeoutMs: 60_000 }));
    expect(cancelled.code).toBe('CANCELLED');
    expect(cancelled.definite).toBe(false); // the put had been sent
    const before = new AbortController();
    before.abort();
    const early = await caught(kv.get('slow', { signal: before.signal }));
    expect(early).toMatchObject({ code: 'CANCELLED', definite: true });
  });

  it('tells a refused connection, another cluster and a timeout apart', async () => {
    const dead = `n1=127.0.0.1:${await freePort()}`;
    const refused = await caught(
      KvClient.connect({ endpoints: [dead], callTimeoutMs: 500, lazy: true }).then((c) =>
        c.put('x', '1'),
      ),
    );
    expect(refused.code).toBe('UNAVAILABLE');
    expect(refused.definite).toBe(true);
    expect(refused.message).toMatch(/connection refused/);
    const other = await caught(
      KvClient.connect({ endpoints: cluster.endpoints(), clusterId: 'other', callTimeoutMs: 500 }),
    );
    expect(other.code).toBe('HANDSHAKE_FAILED');
    expect(other.definite).toBe(true);
    expect(other.message).toMatch(/cluster id mismatch/);
    expect(Object.keys(other.details.endpoints as object).sort()).toEqual(['n1', 'n2', 'n3']);
  });

  it('a definite NOT_LEADER and an indefinite leadership loss differ in details and message', async () => {
    const leader = await cluster.leader();
    const follower = [...cluster.nodes.values()].find((n) => n !== leader);
    const kv = await KvClient.connect({
      endpoints: cluster.endpoints().filter((e) => e.startsWith(`${follower?.config.id}=`)),
      lazy: true,
      callTimeoutMs: 300,
      // Redirects are not followed: the follower is the only endpoint, and the leader's address is hidden.
      rpc: {
        client: {
          interceptors: [
            async (call, next) => {
              try {
                return await next(call);
              } catch (e) {
                if (!isCohortError(e) || e.code !== 'NOT_LEADER') throw e;
                throw new CohortError('NOT_LEADER', e.message, {
                  definite: e.definite,
                  details: { ...e.details, leaderId: null, leaderRpc: null },
                });
              }
            },
          ],
        },
      },
    });
    try {
      const e = await caught(kv.put('nl', '1'));
      expect(e.code).toBe('NOT_LEADER');
      expect(e.definite).toBe(true);
      expect(e.message).toMatch(/is not the leader \(the leader is n\d\); nothing was done/);
      expect(e.details).toMatchObject({ reason: 'NOT_LEADER' });
    } finally {
      await kv.close();
    }
  });

  it('a keeper reports a lease it could not renew for a whole TTL as lost (unreachable)', async () => {
    let cut = false;
    const partition: ClientInterceptor = (call, next) =>
      cut ? Promise.reject(new CohortError('UNAVAILABLE', 'cut (test)')) : next(call);
    const kv = await cluster.client({ rpc: { client: { interceptors: [partition] } } });
    const { id } = await kv.leaseGrant(1000);
    let why: string | undefined;
    const keeper = kv.keepAlive(id, { ttlMs: 1000, onLost: (r) => (why = r) });
    await new Promise((r) => setTimeout(r, 400));
    cut = true;
    expect(await keeper.done).toBe('lost');
    expect(why).toBe('unreachable');
  });
});
