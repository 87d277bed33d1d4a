/**
 * Naming against a real in-process cluster (three nodes over TCP): instances
 * register under leases, resolvers follow them, and a name-based client
 * keeps serving idempotent calls through an instance kill and an instance
 * move with no failed call; a non-idempotent call that may have run is never
 * sent twice.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ListMax, listMaxHandlers } from '../../examples/list-max/service.js';
import type { KvClient } from '../../src/kv/client.js';
import { isCohortError } from '../../src/lib/errors.js';
import { serviceKey } from '../../src/naming/core/registry.js';
import { Naming } from '../../src/naming/naming.js';
import { registerInstance } from '../../src/naming/registration.js';
import { ServiceResolver } from '../../src/naming/resolver.js';
import { defineService, serverStream, Type, unary } from '../../src/rpc/index.js';
import { startTcpServer } from '../../src/rpc/tcp-endpoints.js';
import type { RpcNode } from '../../src/rpc/node.js';
import { waitUntil } from '../harness/wait.js';
import { callLanes } from './lanes.js';
import { KvTestCluster } from '../kv/kv-cluster.js';

const silent = pino({ level: 'silent' });
let cluster: KvTestCluster;

beforeAll(async () => {
  cluster = await KvTestCluster.start(3);
  await cluster.leader();
});
afterAll(async () => {
  await cluster.close();
});

/** A list-max instance: its own RPC server and its own KV client (like a separate process). */
interface Instance {
  readonly id: string;
  readonly server: RpcNode & { address: { host: string; port: number } };
  readonly kv: KvClient;
  served: number;
  close(): Promise<void>;
}

async function startInstance(id: string, service = 'ListMax'): Promise<Instance> {
  const server = await startTcpServer({ id, port: 0, logger: silent });
  const inst: Instance = {
    id,
    server,
    kv: await cluster.client(),
    served: 0,
    close: async () => {
      await server.close();
    },
  };
  server.serve(ListMax, {
    listMax: (req, ctx) => {
      inst.served++;
      return listMaxHandlers.listMax(req, ctx);
    },
  });
  void service;
  return inst;
}

describe('the registry', () => {
  it('lists an instance while its lease lives, drops it on close, and when its owner dies', async () => {
    const kv = await cluster.client();
    const resolver = new ServiceResolver(kv, 'Reg1', { logger: silent });
    expect(await resolver.ready()).toEqual([]);
    const a = await startInstance('reg1-a');
    const b = await startInstance('reg1-b');
    const ra = await registerInstance(a.kv, {
      service: 'Reg1',
      id: 'reg1-a',
      address: a.server.address,
      metadata: { zone: 'z1' },
    });
    await registerInstance(
      b.kv,
      { service: 'Reg1', id: 'reg1-b', address: b.server.address },
      {
        ttlMs: 1_000,
      },
    );
    await waitUntil('both listed', () => resolver.instances().length === 2);
    expect(resolver.instances()[0]).toMatchObject({
      id: 'reg1-a',
      metadata: { zone: 'z1' },
      address: a.server.address,
    });
    // Closing deregisters at once (the lease is revoked).
    await ra.close();
    await waitUntil('a gone', () => resolver.instances().every((i) => i.id !== 'reg1-a'));
    // b's owner dies: its KV client stops renewing; the lease expires.
    await b.kv.close();
    await waitUntil('b expired', () => resolver.instances().length === 0);
    expect(await kv.get(serviceKey('Reg1', 'reg1-b'))).toBeUndefined();
    await resolver.close();
    await a.close();
    await b.close();
  });

  it('skips a malformed entry with a warning, and keeps the good ones', async () => {
    const kv = await cluster.client();
    const warnings: string[] = [];
    const logger = pino(
      { level: 'warn' },
      {
        write: (line: string) => warnings.push(String((JSON.parse(line) as { msg?: unknown }).msg)),
      },
    );
    const a = await startInstance('mal-a');
    await registerInstance(a.kv, { service: 'Mal', id: 'mal-a', address: a.server.address });
    await kv.put(serviceKey('Mal', 'mal-b'), '{"v":1,"service":"Mal","id":"mal-b"}');
    await kv.put('/cohort/services/Mal/not/an-instance', 'x');
    const resolver = new ServiceResolver(kv, 'Mal', { logger });
    expect((await resolver.ready()).map((i) => i.id)).toEqual(['mal-a']);
    expect(warnings.some((w) => w.includes('mal-b') && w.includes('node:'))).toBe(true);
    // A bad write after the listing is skipped the same way.
    await kv.put(serviceKey('Mal', 'mal-c'), 'garbage');
    await waitUntil('warned about mal-c', () => warnings.some((w) => w.includes('mal-c')));
    expect(resolver.instances().map((i) => i.id)).toEqual(['mal-a']);
    await resolver.close();
    await a.close();
  });

  it('writes the entry again under a new lease when its lease is lost while the instance lives', async () => {
    const kv = await cluster.client();
    const states: string[] = [];
    const reg = await registerInstance(
      kv,
      { service: 'Regrant', id: 'rg-1', address: { host: '127.0.0.1', port: 9 } },
      { ttlMs: 1_000, onState: (s) => states.push(s) },
    );
    const first = reg.leaseId;
    // Someone revokes the lease (as if it had expired in a partition): the entry goes with it.
    const admin = await cluster.client();
    await admin.leaseRevoke(first);
    await waitUntil('registered again', () => states.includes('registered'));
    expect(states).toEqual(['lost', 'registered']);
    expect(reg.leaseId).not.toBe(first);
    const entry = await admin.get(serviceKey('Regrant', 'rg-1'));
    expect(entry?.lease).toBe(reg.leaseId);
    await reg.close();
    expect(await admin.get(serviceKey('Regrant', 'rg-1'))).toBeUndefined();
  });

  it('refuses a bad registration before writing anything', async () => {
    const kv = await cluster.client();
    await expect(
      registerInstance(kv, { service: 'Bad/Name', id: 'x', address: { host: 'h', port: 1 } }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(
      registerInstance(kv, { service: 'Ok', id: 'x', address: { host: 'h', port: 0 } }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: /address.port/ });
    await expect(
      registerInstance(
        kv,
        { service: 'Ok', id: 'x', address: { host: 'h', port: 1 } },
        {
          ttlMs: 10,
        },
      ),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: /ttlMs/ });
    expect((await kv.range('/cohort/services/Ok/', { prefix: true })).kvs).toEqual([]);
  });

  it('keeps following across a leader change', async () => {
    const kv = await cluster.client();
    const resolver = new ServiceResolver(kv, 'Lead', { logger: silent });
    await resolver.ready();
    const a = await startInstance('lead-a');
    await registerInstance(a.kv, { service: 'Lead', id: 'lead-a', address: a.server.address });
    await waitUntil('a listed', () => resolver.instances().length === 1);
    const leader = await cluster.leader();
    await cluster.stop(leader.config.id);
    const b = await startInstance('lead-b');
    await registerInstance(b.kv, { service: 'Lead', id: 'lead-b', address: b.server.address });
    await waitUntil('b listed after the leader change', () => resolver.instances().length === 2);
    await cluster.startNode(leader.config.id);
    await resolver.close();
    await a.close();
    await b.close();
  });
});

describe('a name-based client', () => {
  it('serves through an instance kill and an instance move with 0 failed idempotent calls', async () => {
    const naming = new Naming(await cluster.client(), { logger: silent });
    const a = await startInstance('lm-a');
    const b = await startInstance('lm-b');
    const regA = await registerInstance(
      a.kv,
      { service: 'ListMax', id: 'lm-a', address: a.server.address },
      { ttlMs: 1_000 },
    );
    let regB = await registerInstance(
      b.kv,
      { service: 'ListMax', id: 'lm-b', address: b.server.address },
      { ttlMs: 1_000 },
    );
    void regA;
    const client = naming.service(ListMax);
    const lanes = callLanes(client, 4);
    await waitUntil('both instances served', () => a.served > 10 && b.served > 10);

    // Kill a mid-stream: its server goes away without deregistering (its lease lapses later).
    await a.close();
    await a.kv.close();
    const afterKill = b.served;
    await waitUntil('b carries on', () => b.served > afterKill + 50);
    await waitUntil('a expired', () => naming.resolver('ListMax').instances().length === 1);

    // Move b: deregister, serve at a new port under the same id, register again.
    await regB.close();
    await b.close();
    const moved = await startInstance('lm-b');
    regB = await registerInstance(
      moved.kv,
      { service: 'ListMax', id: 'lm-b', address: moved.server.address },
      { ttlMs: 1_000 },
    );
    expect(moved.server.address.port).not.toBe(b.server.address.port);
    await waitUntil('the moved instance serves', () => moved.served > 50);

    await lanes.stop();
    expect(lanes.failures).toEqual([]);
    expect(lanes.ok).toBeGreaterThan(100);
    expect(client.$counters.failed).toBe(0);
    await regB.close();
    await moved.close();
    await naming.close();
  });

  it('never re-sends a non-idempotent call that may have run: indefinite UNAVAILABLE', async () => {
    const Counter = defineService('Counter', {
      add: unary(Type.Object({ n: Type.Integer() }), Type.Object({ total: Type.Integer() })),
    });
    let runs = 0;
    let release: () => void = () => undefined;
    const started = new Promise<void>((r) => (release = r));
    const server = await startTcpServer({ id: 'ctr-1', port: 0, logger: silent });
    server.serve(Counter, {
      add: async (_req, ctx) => {
        runs++;
        release();
        await new Promise<void>((r) => ctx.signal.addEventListener('abort', () => r()));
        return { total: 0 };
      },
    });
    const kv = await cluster.client();
    await registerInstance(kv, { service: 'Counter', id: 'ctr-1', address: server.address });
    // A second instance that would accept a retry.
    const spare = await startTcpServer({ id: 'ctr-2', port: 0, logger: silent });
    spare.serve(Counter, {
      add: () => {
        runs++;
        return { total: 1 };
      },
    });
    const naming = new Naming(await cluster.client(), { logger: silent });
    const client = naming.service(Counter, { balance: 'round-robin' });
    const call = client.add({ n: 1 }, { timeoutMs: 20_000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    await started;
    await registerInstance(kv, { service: 'Counter', id: 'ctr-2', address: spare.address });
    await server.close();
    const err = await call;
    expect(isCohortError(err) && err.code).toBe('UNAVAILABLE');
    expect(isCohortError(err) && err.definite).toBe(false);
    expect(isCohortError(err) && err.message).toMatch(/not idempotent/);
    expect(runs).toBe(1);
    // A call that cannot have reached a dead instance is definite and goes to a live one.
    expect(await client.add({ n: 1 })).toEqual({ total: 1 });
    await spare.close();
    await naming.close();
  });

  it('relays a server stream from one instance', async () => {
    const Counting = defineService('Counting', {
      count: serverStream(Type.Object({ n: Type.Integer() }), Type.Object({ i: Type.Integer() })),
    });
    const server = await startTcpServer({ id: 'cnt-1', port: 0, logger: silent });
    server.serve(Counting, {
      async *count({ n }) {
        for (let i = 0; i < n; i++) yield await Promise.resolve({ i });
      },
    });
    const kv = await cluster.client();
    const reg = await registerInstance(kv, {
      service: 'Counting',
      id: 'cnt-1',
      address: server.address,
    });
    const naming = new Naming(await cluster.client(), { logger: silent });
    const got: number[] = [];
    for await (const { i } of naming.service(Counting).count({ n: 5 })) got.push(i);
    expect(got).toEqual([0, 1, 2, 3, 4]);
    await reg.close();
    await naming.close();
    await server.close();
  });

  it('fails a call to a name nobody registered with a definite UNAVAILABLE', async () => {
    const naming = new Naming(await cluster.client(), { logger: silent });
    const err = await naming
      .service(ListMax, { name: 'Nobody' })
      .listMax({ values: [1] }, { timeoutMs: 300 })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'UNAVAILABLE',
      definite: true,
      message: /no instance of service Nobody/,
    });
    await naming.close();
  });
});
