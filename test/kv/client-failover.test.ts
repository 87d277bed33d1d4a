/**
 * The KV client across leader changes on a 3-node in-process cluster over
 * TCP: redirects to a leader it was not told about, watches that resume
 * without gaps or duplicates, leases expired only by the leader and never
 * early after a failover, and locks whose fencing tokens increase and that
 * are never held twice.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { kvText } from '../../src/kv/core/bytes.js';
import { Lock } from '../../src/kv/recipes/lock.js';
import { Election } from '../../src/kv/recipes/election.js';
import { KvTestCluster, until } from './kv-cluster.js';

let cluster: KvTestCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

async function start(): Promise<KvTestCluster> {
  cluster = await KvTestCluster.start(3);
  await cluster.leader();
  return cluster;
}

describe('KvClient across leader changes', () => {
  it('finds the leader from a follower-only endpoint list (NOT_LEADER carries its RPC address)', async () => {
    const c = await start();
    const leader = await c.leader();
    const follower = c.configs.find((x) => x.id !== leader.config.id);
    if (follower === undefined) throw new Error('no follower');
    const kv = await c.client({
      endpoints: [`${follower.id}=${follower.rpc.host}:${follower.rpc.port}`],
    });
    const put = await kv.put('r', '1');
    expect(put.revision).toBeGreaterThan(0);
    expect(kv.leaderHint).toBe(leader.config.id);
  });

  it('keeps writing through a leader change and a watch sees every write once, in order', async () => {
    const c = await start();
    const kv = await c.client();
    const watcher = await c.client();
    await watcher.get('wr/'); // the watch then streams from the leader, which is stopped below
    const first = await kv.put('wr/0', '0');
    const seen: number[] = [];
    const revisions: number[] = [];
    const total = 40;
    const watching = (async () => {
      for await (const batch of watcher.watch('wr/', {
        prefix: true,
        startRevision: first.revision,
      })) {
        for (const ev of batch.events) {
          seen.push(Number(kvText(ev.kv.value)));
          revisions.push(ev.kv.modRevision);
        }
        if (seen.length >= total) return;
      }
    })();
    for (let i = 1; i < total; i++) {
      if (i === total / 2) {
        const leader = await c.leader();
        await c.stop(leader.config.id);
      }
      await kv.put(`wr/${i}`, String(i));
    }
    await watching;
    expect(seen).toEqual(Array.from({ length: total }, (_, i) => i));
    for (let i = 1; i < revisions.length; i++) {
      expect(revisions[i]).toBeGreaterThan(revisions[i - 1] ?? 0);
    }
  });

  it('expires a lease on the leader only after its TTL, not early after a failover', async () => {
    // Every node logs here; a leader logs 'leases expired' (with the lease ids)
    // when it proposes an expiry, and pino stamps the line with Date.now().
    const expiries: { time: number; node: string; leases: number[] }[] = [];
    const logger = pino(
      { level: 'info' },
      {
        write(line: string) {
          const o = JSON.parse(line) as {
            msg?: string;
            time: number;
            node: string;
            leases?: number[];
          };
          if (o.msg === 'leases expired')
            expiries.push({ time: o.time, node: o.node, leases: o.leases ?? [] });
        },
      },
    );
    cluster = await KvTestCluster.start(3, { logger });
    const c = cluster;
    await c.leader();
    const kv = await c.client();
    const ttlMs = 2_000;
    const { id } = await kv.leaseGrant(ttlMs);
    await kv.put('leased', 'x', { lease: id });
    // The leader renews at some time after this: its deadline is at least renewedAt + TTL.
    const renewedAt = Date.now();
    await kv.leaseKeepAlive(id);
    const old = await c.leader();
    await c.stop(old.config.id);
    const leader = await c.leader();
    expect(leader.config.id).not.toBe(old.config.id);
    // The new leader expires it, and the key goes with it on every node.
    await until(
      async () => ((await kv.get('leased')) === undefined ? true : undefined),
      'lease expiry',
    );
    await expect(kv.leaseTimeToLive(id)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    for (const n of c.nodes.values()) {
      await until(() => (n.raft.stateMachine.kv.leaseList().length === 0 ? true : undefined));
    }
    // Not early: no leader proposed the expiry before the TTL of the last renewal
    // had passed (however long the failover took: a later expiry is never wrong).
    const mine = expiries.filter((e) => e.leases.includes(id));
    expect(mine.length).toBeGreaterThan(0);
    for (const e of mine)
      expect(e.time - renewedAt, `${e.node} expired it`).toBeGreaterThanOrEqual(ttlMs);
  });

  it('a lock is held by one contender at a time and fencing tokens increase', async () => {
    const c = await start();
    const clients = await Promise.all([c.client(), c.client(), c.client()]);
    let holders = 0;
    let maxHolders = 0;
    const tokens: number[] = [];
    await Promise.all(
      clients.map(async (kv, i) => {
        const lock = new Lock(kv, 'm', { ttlMs: 2_000 });
        for (let round = 0; round < 3; round++) {
          const held = await lock.acquire();
          holders++;
          maxHolders = Math.max(maxHolders, holders);
          tokens.push(held.fencingToken);
          await new Promise((r) => setTimeout(r, 5 + i));
          holders--;
          await held.release();
        }
      }),
    );
    expect(maxHolders).toBe(1);
    expect(tokens).toHaveLength(9);
    for (let i = 1; i < tokens.length; i++) {
      expect(tokens[i]).toBeGreaterThan(tokens[i - 1] ?? 0);
    }
  });

  it('a lock whose holder stops renewing passes to the next contender once the lease expires', async () => {
    const c = await start();
    const [a, b] = await Promise.all([c.client(), c.client()]);
    const first = await new Lock(a, 'x', { ttlMs: 1_000 }).acquire();
    // The holder "dies": no more keep-alives, no release.
    await a.close();
    const second = await new Lock(b, 'x', { ttlMs: 1_000 }).acquire();
    expect(second.fencingToken).toBeGreaterThan(first.fencingToken);
    expect(await b.get(first.key)).toBeUndefined();
    await second.release();
  });

  it('elects one leader; the next candidate wins after a resignation; observers follow', async () => {
    const c = await start();
    const [a, b, o] = await Promise.all([c.client(), c.client(), c.client()]);
    const ea = new Election(a, 'e', { ttlMs: 2_000 });
    const eb = new Election(b, 'e', { ttlMs: 2_000 });
    const ac = new AbortController();
    const observed: (string | undefined)[] = [];
    const observing = (async () => {
      for await (const leader of new Election(o, 'e').observe({ signal: ac.signal })) {
        observed.push(leader === undefined ? undefined : kvText(leader.value));
        if (observed.includes('b')) return;
      }
    })();
    const ta = await ea.campaign('a');
    const bWins = eb.campaign('b');
    expect(kvText((await ea.leader())?.value ?? new Uint8Array())).toBe('a');
    await ta.resign();
    const tb = await bWins;
    expect(tb.revision).toBeGreaterThan(ta.revision);
    await observing;
    ac.abort();
    // Observers see the current leader after each change (they may skip one
    // that came and went while they read): values in election order, ending with b.
    const seen = observed.filter((v) => v !== undefined);
    expect(seen.at(-1)).toBe('b');
    expect(['a,b', 'b']).toContain(seen.join(','));
    await tb.resign();
  });
});
