/**
 * Naming's opt-in failure-detector group against a real in-process cluster
 * (three nodes over TCP) and real sockets: instances registered with a long
 * lease and a detector member; a name-based client running a member too
 * drops a crashed instance while its registry entry (and lease) still
 * exists, and its calls keep succeeding.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ListMax, listMaxHandlers } from '../../examples/list-max/service.js';
import type { KvClient } from '../../src/kv/client.js';
import { decodeInstance, encodeInstance, serviceKey } from '../../src/naming/core/registry.js';
import { Naming } from '../../src/naming/naming.js';
import { registerInstance } from '../../src/naming/registration.js';
import type { Registration } from '../../src/naming/registration.js';
import { startTcpServer } from '../../src/rpc/tcp-endpoints.js';
import { CertDir } from '../../src/trust/cert-dir.js';
import type { CredentialFiles } from '../../src/trust/index.js';
import type { TcpTlsOptions } from '../../src/transport/tcp-transport.js';
import { tempDir } from '../harness/tmp.js';
import { testCluster } from '../transport/tcp-harness.js';
import type { RpcNode } from '../../src/rpc/node.js';
import { waitUntil } from '../harness/wait.js';
import { callLanes } from './lanes.js';
import { KvTestCluster } from '../kv/kv-cluster.js';

const silent = pino({ level: 'silent' });
/** Short SWIM periods for the test (the defaults are untouched). */
const swim = { periodMs: 100, pingTimeoutMs: 40 };
/** Longer than any wait of the test: the lease cannot expire while it runs. */
const longTtlMs = 300_000;

describe('registry entries with a detector member', () => {
  const base = {
    service: 'ListMax',
    id: 'lm-1',
    node: 'h',
    address: { host: '127.0.0.1', port: 7401 },
    metadata: {},
    weight: 1,
  };
  const key = serviceKey('ListMax', 'lm-1');

  it('reads back the detector reference, and an entry without one stays valid', () => {
    const withRef = { ...base, detector: { id: 'lm-1', address: '127.0.0.1:9001' } };
    expect(decodeInstance(key, encodeInstance(withRef))).toEqual({ ok: true, instance: withRef });
    expect(decodeInstance(key, encodeInstance(base))).toEqual({ ok: true, instance: base });
    expect(encodeInstance(base)).not.toMatch(/detector/);
  });

  it('refuses a malformed detector reference', () => {
    const text = (detector: unknown): string => JSON.stringify({ v: 1, ...base, detector });
    for (const bad of [
      null,
      'x',
      { id: 'lm-1' },
      { id: '', address: '127.0.0.1:9001' },
      { id: 'lm-1', address: '127.0.0.1' },
      { id: 'lm-1', address: '127.0.0.1:0' },
      { id: 'lm-1', address: '127.0.0.1:70000' },
      { id: 'lm-1', address: 'a b:1' },
    ]) {
      expect(decodeInstance(key, text(bad))).toMatchObject({ ok: false, reason: /detector/ });
    }
  });
});

describe('a name-based client in the detector group', () => {
  let cluster: KvTestCluster;
  beforeAll(async () => {
    cluster = await KvTestCluster.start(3);
    await cluster.leader();
  });
  afterAll(async () => {
    await cluster.close();
  });

  interface Instance {
    readonly server: RpcNode & { address: { host: string; port: number } };
    readonly kv: KvClient;
    readonly reg: Registration;
    served: number;
  }

  async function startInstance(id: string): Promise<Instance> {
    const server = await startTcpServer({ id, port: 0, logger: silent });
    const kv = await cluster.client();
    const reg = await registerInstance(
      kv,
      { service: 'ListMax', id, address: server.address },
      { ttlMs: longTtlMs, detector: { ...swim, logger: silent } },
    );
    const inst: Instance = { server, kv, reg, served: 0 };
    server.serve(ListMax, {
      listMax: (req, ctx) => {
        inst.served++;
        return listMaxHandlers.listMax(req, ctx);
      },
    });
    return inst;
  }

  it('drops a crashed instance before its lease expires, and calls keep succeeding', async () => {
    const a = await startInstance('det-a');
    const b = await startInstance('det-b');
    expect(a.reg.detector?.ref.id).toBe('det-a');
    const naming = new Naming(await cluster.client(), { logger: silent, detector: swim });
    const client = naming.service(ListMax);
    const lanes = callLanes(client, 2);
    await waitUntil('both instances served', () => a.served > 10 && b.served > 10);
    const member = await naming.detectorMember();
    await waitUntil('the client knows both instances alive', () => {
      const alive = member?.detector.members().filter((m) => m.state === 'alive') ?? [];
      return ['det-a', 'det-b'].every((id) => alive.some((m) => m.id === id));
    });

    // Crash a: its RPC server and its detector member go without a word (no
    // deregistration, no `left`), and its KV client stops renewing the lease.
    await a.reg.detector?.close({ leave: false });
    await a.server.close();
    await a.kv.close();

    await waitUntil('the client dropped a', () =>
      naming.instances('ListMax').every((i) => i.id !== 'det-a'),
    );
    expect(naming.instances('ListMax').map((i) => i.id)).toEqual(['det-b']);
    // a's entry and lease live on: only the detector said it is gone.
    const admin = await cluster.client();
    const entry = await admin.get(serviceKey('ListMax', 'det-a'));
    expect(entry).toBeDefined();
    expect(
      naming
        .resolver('ListMax')
        .instances()
        .map((i) => i.id),
    ).toEqual(['det-a', 'det-b']);
    expect(member?.detector.member('det-a')?.state).toBe('failed');

    const afterDrop = b.served;
    await waitUntil('b carries on', () => b.served > afterDrop + 50);

    // a restarts (new ports, a new detector member joining through b's): the
    // client takes it back, and its detector sees it alive again.
    const a2 = await startInstance('det-a');
    expect(a2.reg.detector?.ref.address).not.toBe(a.reg.detector?.ref.address);
    await waitUntil('the client took a back', () =>
      naming.instances('ListMax').some((i) => i.id === 'det-a'),
    );
    await waitUntil('the restarted a serves', () => a2.served > 10);
    await waitUntil(
      'the detector sees a alive again',
      () => member?.detector.member('det-a')?.state === 'alive',
    );
    await lanes.stop();
    expect(lanes.failures).toEqual([]);
    expect(lanes.ok).toBeGreaterThan(50);
    expect(client.$counters.failed).toBe(0);

    await a2.reg.close();
    await a2.server.close();
    await b.reg.close();
    await b.server.close();
    await naming.close();
  });

  it('runs the group over mutual TLS: node-certified instances, a user-certified client', async () => {
    const certs = new CertDir(join(tempDir('cohort-naming-det-tls-'), 'certs'));
    await certs.init(testCluster);
    const load = (f: CredentialFiles): TcpTlsOptions => ({
      ca: readFileSync(f.ca, 'utf8'),
      cert: readFileSync(f.cert, 'utf8'),
      key: readFileSync(f.key, 'utf8'),
    });
    const regs: Registration[] = [];
    for (const id of ['tls-a', 'tls-b']) {
      const tls = load(await certs.issue({ kind: 'node', id }));
      regs.push(
        await registerInstance(
          await cluster.client(),
          { service: 'Secure', id, address: { host: '127.0.0.1', port: 9 } },
          { ttlMs: longTtlMs, detector: { ...swim, clusterId: testCluster, tls, logger: silent } },
        ),
      );
    }
    await certs.issue({ kind: 'user', name: 'caller' });
    const naming = new Naming(await cluster.client(), {
      logger: silent,
      detector: swim,
      instances: {
        clusterId: testCluster,
        tls: load(certs.files({ kind: 'user', name: 'caller' })),
      },
    });
    await waitUntil('both resolved', () => naming.instances('Secure').length === 2);
    const member = await naming.detectorMember();
    expect(member?.ref.id).toMatch(/^user:caller:/);
    await waitUntil('the client knows both alive over TLS', () =>
      ['tls-a', 'tls-b'].every((id) => member?.detector.member(id)?.state === 'alive'),
    );
    await regs[0]?.detector?.close({ leave: false });
    await waitUntil('the client dropped tls-a', () =>
      naming.instances('Secure').every((i) => i.id !== 'tls-a'),
    );
    expect(naming.resolver('Secure').instances()).toHaveLength(2);
    await regs[1]?.close();
    await naming.close();
  });
});
