/**
 * The KV client against an in-process 3-node cluster over TCP: basic
 * operations, leader discovery through redirects, concurrency over session lanes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CohortError, isCohortError } from '../../src/lib/errors.js';
import type { ClientInterceptor } from '../../src/rpc/client.js';
import { kvKey, kvText } from '../../src/kv/core/bytes.js';
import { KvTestCluster } from './kv-cluster.js';
import { lostReplyThenRefused } from './lost-reply.js';

let cluster: KvTestCluster;
/**
 * The leaders' clock, which log time (and so session expiry) follows: it moves
 * only when a test moves it, so a busy machine's stalls expire no session.
 */
let nowMs = 0;
beforeAll(async () => {
  cluster = await KvTestCluster.start(3, { kv: { now: () => nowMs } });
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

describe('KvClient exactly-once', () => {
  it('retries a write whose reply was lost with the same session seq: applied once', async () => {
    let failNext = true;
    const lost: ClientInterceptor = async (call, next) => {
      const out = await next(call);
      if (call.method === 'put' && failNext) {
        failNext = false;
        // The write was applied, but the caller never hears of it.
        throw new CohortError('TIMEOUT', 'reply lost (test)', { definite: false });
      }
      return out;
    };
    const kv = await cluster.client({ rpc: { client: { interceptors: [lost] } } });
    const before = await kv.range('once', { countOnly: true });
    const put = await kv.put('once', 'x');
    expect(failNext).toBe(false);
    // One revision for one put, even though it was sent twice.
    expect(put.revision).toBe(before.revision + 1);
    const got = await kv.get('once');
    expect(got?.version).toBe(1);
    expect(got?.modRevision).toBe(put.revision);
    const again = await kv.range('once', { countOnly: true });
    expect(again.revision).toBe(put.revision);
  });

  it('gives up on a write that may have been applied with an indefinite error, even if the last attempt failed definitely', async () => {
    const retryMs = 60_000;
    const lost = lostReplyThenRefused({ retryMs, refusals: 1 });
    const kv = await cluster.client({
      retryMs,
      clock: lost.clock,
      rpc: { client: { interceptors: [lost.interceptor] } },
    });
    const err = await kv.put('maybe', 'x').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(lost.refused()).toBe(1);
    expect(err).toMatchObject({ code: 'UNAVAILABLE', definite: false });
    expect(kvText((await (await cluster.client()).get('maybe'))?.value ?? kvKey(''))).toBe('x');
  });

  it('does not retry a refused write (a definite answer about the request itself)', async () => {
    const outcomes: string[] = [];
    const record: ClientInterceptor = async (call, next) => {
      try {
        return await next(call);
      } catch (e) {
        if (call.method === 'put') outcomes.push(isCohortError(e) ? e.code : 'other');
        throw e;
      }
    };
    const kv = await cluster.client({ rpc: { client: { interceptors: [record] } } });
    await expect(kv.put('l', 'x', { lease: 999_999 })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    // Redirects (NOT_LEADER) may come first; the state machine's answer ends it.
    expect(outcomes.filter((c) => c !== 'NOT_LEADER')).toEqual(['NOT_FOUND']);
  });
});

describe('KvClient sessions (registered, expired by log time)', () => {
  /** Counts calls of each method that succeeded, through a client. */
  function counter(): { counts: Record<string, number>; interceptor: ClientInterceptor } {
    const counts: Record<string, number> = {};
    return {
      counts,
      interceptor: async (call, next) => {
        const out = await next(call);
        counts[call.method] = (counts[call.method] ?? 0) + 1;
        return out;
      },
    };
  }

  it('a client restarted with a fixed clientId writes at once (no stale-sequence failure)', async () => {
    // The first incarnation "crashes": its close cannot end its sessions on the cluster.
    const noEnd: ClientInterceptor = (call, next) => {
      if (call.method === 'sessionEnd') throw new CohortError('UNAVAILABLE', 'crashed (test)');
      return next(call);
    };
    const first = await cluster.client({
      clientId: 'fixed',
      retryMs: 300,
      rpc: { client: { interceptors: [noEnd] } },
    });
    for (let i = 0; i < 3; i++) await first.put('restart', String(i));
    await first.close();
    const second = await cluster.client({ clientId: 'fixed' });
    const put = await second.put('restart', 'again');
    expect(put.revision).toBeGreaterThan(0);
    expect(kvText((await second.get('restart'))!.value)).toBe('again');
  });

  it('a lane whose session expired while idle registers again and writes (the write was not applied twice)', async () => {
    const { counts, interceptor } = counter();
    const kv = await cluster.client({
      sessionTtlMs: 1000,
      rpc: { client: { interceptors: [interceptor] } },
    });
    await kv.put('idle', '1');
    expect(counts.sessionOpen).toBe(1);
    // Over a second of log time passes: another client's write carries it.
    nowMs += 1300;
    await (await cluster.client()).put('tick', 'x');
    const before = await kv.range('idle', { countOnly: true });
    const put = await kv.put('idle', '2');
    expect(counts.sessionOpen).toBe(2);
    expect(put.revision).toBe(before.revision + 1);
    expect((await kv.get('idle'))?.version).toBe(2);
  });

  it('a write that may have applied and then finds its session expired fails with an indefinite SESSION_EXPIRED', async () => {
    const other = await cluster.client();
    let lost = false;
    const lossy: ClientInterceptor = async (call, next) => {
      if (call.method !== 'put') return next(call);
      if (!lost) {
        await next(call); // a redirect (NOT_LEADER) throws here: not this case yet
        lost = true;
        // Applied, but the reply is lost; the session then expires before the retry.
        nowMs += 1300;
        await other.put('tick', 'y');
        throw new CohortError('CONNECTION_LOST', 'reply lost (test)', { definite: false });
      }
      return next(call);
    };
    const kv = await cluster.client({
      sessionTtlMs: 1000,
      rpc: { client: { interceptors: [lossy] } },
    });
    const err = await kv.put('expired', 'x').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({
      code: 'SESSION_EXPIRED',
      definite: false,
      details: { earlierAttemptUncertain: true },
    });
    // It applied once; the client did not apply it again under a new session.
    expect((await other.get('expired'))?.version).toBe(1);
    // The lane registers again for the next write.
    expect((await kv.put('expired', 'z')).revision).toBeGreaterThan(0);
  });
});

describe('KvClient transactions and watches', () => {
  it('runs an optimistic transaction that retries on conflict', async () => {
    const kv = await cluster.client();
    await kv.put('acct/a', '100');
    await kv.put('acct/b', '0');
    let attempts = 0;
    const out = await kv.transaction(async (tx) => {
      attempts++;
      const a = Number(kvText((await tx.get(kvKey('acct/a'))) ?? kvKey('0')));
      if (attempts === 1) await kv.put('acct/a', String(a + 1)); // a concurrent writer
      const b = Number(kvText((await tx.get(kvKey('acct/b'))) ?? kvKey('0')));
      tx.put(kvKey('acct/a'), kvKey(String(a - 10)));
      tx.put(kvKey('acct/b'), kvKey(String(b + 10)));
    });
    expect(out.status).toBe('committed');
    expect(attempts).toBe(2);
    expect(kvText((await kv.get('acct/a'))?.value ?? kvKey(''))).toBe('91');
    expect(kvText((await kv.get('acct/b'))?.value ?? kvKey(''))).toBe('10');
  });

  it('watches a prefix from a past revision, then live', async () => {
    const kv = await cluster.client();
    const first = await kv.put('wp/1', 'a');
    const seen: string[] = [];
    for await (const batch of kv.watch('wp/', { prefix: true, startRevision: first.revision })) {
      for (const ev of batch.events)
        seen.push(`${ev.type} ${kvText(ev.kv.key)} ${ev.kv.modRevision}`);
      if (seen.length === 1) await kv.put('wp/2', 'b');
      if (seen.length === 2) break;
    }
    expect(seen[0]).toBe(`PUT wp/1 ${first.revision}`);
    expect(seen[1]).toMatch(/^PUT wp\/2 \d+$/);
  });
});
