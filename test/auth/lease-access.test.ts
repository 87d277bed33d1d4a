/**
 * Leases under auth on a TLS node (kv/access.ts): renewing a lease
 * (keep-alive) needs write permission on every key attached to it, as
 * revoking does, because a renewal keeps those keys from being deleted at
 * expiry. A refused renewal is a definite PERMISSION_DENIED naming the key
 * and the missing permission, and renews nothing (the lease's epoch, which
 * every applied keep-alive advances, does not move).
 *
 * Before the rule, the keep-alive of another user's lease was applied: the
 * first expectation below fails on that code.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AuthClient } from '../../src/auth/client.js';
import { kvKey, prefixRange } from '../../src/kv/core/bytes.js';
import { isCohortError } from '../../src/lib/errors.js';
import { CertDir } from '../../src/trust/cert-dir.js';
import { KvTestCluster } from '../kv/kv-cluster.js';
import { tempDir } from '../harness/tmp.js';

let cluster: KvTestCluster | undefined;
afterAll(async () => {
  await cluster?.close();
});

async function failure(
  p: Promise<unknown>,
): Promise<{ code: string; message: string; definite: boolean; details: unknown }> {
  try {
    await p;
  } catch (e) {
    if (isCohortError(e)) {
      return { code: e.code, message: e.message, definite: e.definite, details: e.details };
    }
    throw e;
  }
  throw new Error('the call succeeded');
}

describe('lease permissions', () => {
  it('a keep-alive needs write on every attached key; a refused one renews nothing', async () => {
    const certs = new CertDir(join(tempDir('cohort-lease-access-'), 'certs'));
    await certs.ensure({ clusterId: 'cohort-local', nodes: ['n1'], users: ['root', 'alice'] });
    const c = await KvTestCluster.start(1, {}, {}, certs);
    cluster = c;
    const leader = await c.leader();
    const root = certs.files({ kind: 'user', name: 'root' });
    const alice = certs.files({ kind: 'user', name: 'alice' });
    const auth = await AuthClient.connect({
      nodes: [{ id: leader.config.id, rpc: leader.config.rpc }],
      clusterId: 'cohort-local',
      tls: root,
    });
    try {
      await auth.call((s) => s.userAdd({ name: 'alice' }));
      await auth.call((s) => s.roleAdd({ name: 'app' }));
      await auth.call((s) =>
        s.roleGrant({
          name: 'app',
          permission: { type: 'readwrite', ...prefixRange(kvKey('app/')) },
        }),
      );
      // Read, not write, on secret/: she may see the keys but not keep them alive.
      await auth.call((s) =>
        s.roleGrant({
          name: 'app',
          permission: { type: 'read', ...prefixRange(kvKey('secret/')) },
        }),
      );
      await auth.call((s) => s.userGrantRole({ name: 'alice', role: 'app' }));
    } finally {
      await auth.close();
    }
    const admin = await c.client({ clusterId: 'cohort-local', tls: root });
    const kv = await c.client({ clusterId: 'cohort-local', tls: alice });

    // Root's lease holds secret/x (alice may not write it) and app/r (she may).
    const lease = await admin.leaseGrant(60_000);
    await admin.put('app/r', 'root', { lease: lease.id });
    await admin.put('secret/x', 'root', { lease: lease.id });
    const epoch = async (id: number): Promise<number> => (await admin.leaseTimeToLive(id)).epoch;
    const before = await epoch(lease.id);

    const f = await failure(kv.leaseKeepAlive(lease.id));
    expect(f.code).toBe('PERMISSION_DENIED');
    expect(f.definite).toBe(true);
    expect(f.message).toMatch(/user alice lacks write permission on key "secret\/x"/);
    // Nothing renewed.
    expect(await epoch(lease.id)).toBe(before);

    // Root may renew it (the epoch moves: the check above can see a renewal).
    await admin.leaseKeepAlive(lease.id);
    expect(await epoch(lease.id)).toBe(before + 1);

    // A lease whose keys she may all write, and one with no keys: she may renew both.
    const mine = await kv.leaseGrant(60_000);
    await kv.put('app/y', 'alice', { lease: mine.id });
    await kv.leaseKeepAlive(mine.id);
    expect(await epoch(mine.id)).toBe(1);
    const bare = await kv.leaseGrant(60_000);
    await kv.leaseKeepAlive(bare.id);
    expect(await epoch(bare.id)).toBe(1);

    // Once secret/x is gone from the lease, she may renew root's lease too.
    await admin.put('secret/x', 'root');
    await kv.leaseKeepAlive(lease.id);
    expect(await epoch(lease.id)).toBe(before + 2);
  });
});
