/**
 * Naming with auth on a TLS cluster: registering needs write permission on
 * the service's prefix, resolving needs read; each refusal says which
 * permission on which prefix is missing and writes nothing.
 */
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthClient } from '../../src/auth/client.js';
import { kvKey, prefixRange } from '../../src/kv/core/bytes.js';
import { KvClient } from '../../src/kv/client.js';
import { Naming } from '../../src/naming/naming.js';
import { ServiceResolver } from '../../src/naming/resolver.js';
import { CertDir } from '../../src/trust/cert-dir.js';
import { tempDir } from '../harness/tmp.js';
import { KvTestCluster } from '../kv/kv-cluster.js';

const silent = pino({ level: 'silent' });
let cluster: KvTestCluster;
let certs: CertDir;
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  certs = new CertDir(join(tempDir('cohort-naming-auth-'), 'certs'));
  await certs.ensure({ clusterId: 'cohort-local', nodes: ['n1', 'n2', 'n3'], users: ['root'] });
  cluster = await KvTestCluster.start(3, {}, {}, certs);
  await cluster.leader();
  const root = certs.files({ kind: 'user', name: 'root' });
  const auth = await AuthClient.connect({
    nodes: cluster.configs.map((c) => ({ id: c.id, rpc: c.rpc })),
    clusterId: 'cohort-local',
    tls: root,
  });
  closers.push(() => auth.close());
  for (const name of ['reader', 'nobody']) {
    await certs.issue({ kind: 'user', name });
    await auth.call((s) => s.userAdd({ name }));
  }
  await auth.call((s) => s.roleAdd({ name: 'lm-read' }));
  await auth.call((s) =>
    s.roleGrant({
      name: 'lm-read',
      permission: { type: 'read', ...prefixRange(kvKey('/cohort/services/ListMax/')) },
    }),
  );
  await auth.call((s) => s.userGrantRole({ name: 'reader', role: 'lm-read' }));
});
afterAll(async () => {
  for (const c of closers) await c().catch(() => undefined);
  await cluster.close();
});

async function naming(user: string): Promise<Naming> {
  const n = await Naming.connect(
    { endpoints: cluster.endpoints(), tls: certs.files({ kind: 'user', name: user }) },
    { logger: silent },
  );
  closers.push(() => n.close());
  return n;
}

describe('naming with auth', () => {
  const spec = { service: 'ListMax', id: 'lm-1', address: { host: '127.0.0.1', port: 7401 } };

  it('refuses to register without write permission, naming the prefix, and writes nothing', async () => {
    const reader = await naming('reader');
    await expect(reader.register(spec)).rejects.toMatchObject({
      code: 'PERMISSION_DENIED',
      definite: true,
      message: expect.stringMatching(
        /cannot register an instance of ListMax: .*user reader lacks write permission.*needs write permission on the prefix \/cohort\/services\/ListMax\//,
      ) as unknown,
    });
    const root = await KvClient.connect({
      endpoints: cluster.endpoints(),
      tls: certs.files({ kind: 'user', name: 'root' }),
    });
    closers.push(() => root.close());
    expect((await root.range('/cohort/services/', { prefix: true })).kvs).toEqual([]);
  });

  it('resolves with read permission, and refuses resolving without it', async () => {
    const admin = await naming('root');
    const reg = await admin.register(spec);
    const reader = await naming('reader');
    expect((await reader.resolver('ListMax').ready()).map((i) => i.id)).toEqual(['lm-1']);
    const nobody = await naming('nobody');
    const resolver = new ServiceResolver(nobody.kv, 'ListMax', { logger: silent });
    closers.push(() => resolver.close());
    await expect(resolver.ready()).rejects.toMatchObject({
      code: 'PERMISSION_DENIED',
      message: expect.stringMatching(
        /cannot resolve service ListMax: .*needs read permission on the prefix \/cohort\/services\/ListMax\//,
      ) as unknown,
    });
    await expect(nobody.list()).rejects.toMatchObject({
      code: 'PERMISSION_DENIED',
      message: expect.stringMatching(/cannot list the registered services/) as unknown,
    });
    await reg.close();
  });
});
