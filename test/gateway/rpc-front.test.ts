/**
 * The RPC front end over real TCP in one process: calls spread over the
 * backends, failover by the idempotent flag (a hanging backend: the
 * non-idempotent call fails UNAVAILABLE indefinite and ran once, the
 * idempotent one is retried elsewhere), a closed backend skipped, streams
 * relayed, reply metadata relayed, replicated methods combined (the rule and
 * outcome in the reply metadata), and pass-through services declared
 * by name.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { StaticBackendSource } from '../../src/gateway/backend-source.js';
import { parseRpcMethods, RpcFront } from '../../src/gateway/rpc-front.js';
import type { RpcFrontOptions } from '../../src/gateway/rpc-front.js';
import { CohortError } from '../../src/lib/errors.js';
import type { RpcNode } from '../../src/rpc/node.js';
import { defineService, serverStream, unary } from '../../src/rpc/service.js';
import type { ServiceDef } from '../../src/rpc/service.js';
import { startTcpClient, startTcpServer } from '../../src/rpc/tcp-endpoints.js';
import { Type } from '@sinclair/typebox';
import { quietLogger } from './helpers.js';

const Counter = defineService('Counter', {
  bump: unary(Type.Object({ n: Type.Integer() }), Type.Object({ by: Type.String() })),
  read: unary(Type.Object({}), Type.Object({ by: Type.String() }), { idempotent: true }),
  vote: unary(Type.Object({}), Type.Object({ v: Type.String() }), { idempotent: true }),
  count: serverStream(Type.Object({ n: Type.Integer() }), Type.Object({ i: Type.Integer() }), {
    idempotent: true,
  }),
});

interface Backend {
  readonly id: string;
  readonly node: RpcNode & { address: { host: string; port: number } };
  readonly bumps: number[];
  hang: boolean;
  vote: string;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function backend(id: string): Promise<Backend> {
  const node = await startTcpServer({ id, port: 0, logger: quietLogger() });
  const b: Backend = { id, node, bumps: [], hang: false, vote: 'yes' };
  const never = (signal: AbortSignal): Promise<never> =>
    new Promise((_, reject) =>
      signal.addEventListener('abort', () => reject(new CohortError('CANCELLED', 'stop'))),
    );
  node.serve(Counter, {
    bump: async ({ n }, ctx) => {
      b.bumps.push(n);
      if (b.hang) await never(ctx.signal);
      return { by: id };
    },
    read: async (_req, ctx) => {
      if (b.hang) await never(ctx.signal);
      ctx.setReplyMeta('served-by', id);
      return { by: id };
    },
    vote: () => ({ v: b.vote }),
    async *count({ n }) {
      for (let i = 0; i < n; i++) {
        await Promise.resolve();
        yield { i };
      }
    },
  });
  cleanups.push(() => node.close());
  return b;
}

async function front(
  backends: readonly Backend[],
  options: Partial<RpcFrontOptions> = {},
  services: readonly ServiceDef[] = [Counter],
) {
  const f = await RpcFront.start({
    listen: { host: '127.0.0.1', port: 0 },
    services,
    source: new StaticBackendSource(
      backends.map((b) => ({ id: b.id, host: '127.0.0.1', port: b.node.address.port, weight: 1 })),
    ),
    check: { intervalMs: 100, timeoutMs: 1_000 },
    tryTimeoutMs: 400,
    logger: quietLogger(),
    ...options,
  });
  cleanups.push(() => f.close());
  const client = await startTcpClient({
    server: { id: 'gateway', host: '127.0.0.1', port: f.address.port },
    logger: quietLogger(),
  });
  cleanups.push(() => client.close());
  // Wait until the gateway is linked to every backend.
  for (let i = 0; i < 200; i++) {
    const s = f.status() as { backends: { connected: boolean }[] };
    if (s.backends.every((b) => b.connected)) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  return { f, stub: client.client(Counter, client.serverId, { timeoutMs: 10_000 }) };
}

describe('RpcFront', () => {
  it('spreads calls over the backends and relays streams', async () => {
    const bs = await Promise.all(['b1', 'b2', 'b3'].map((id) => backend(id)));
    const { stub } = await front(bs, { balance: 'round-robin' });
    const by = new Set<string>();
    for (let i = 0; i < 6; i++) {
      let meta: Readonly<Record<string, string>> = {};
      const r = await stub.read({}, { onReplyMeta: (m) => (meta = m) });
      by.add(r.by);
      // The backend's reply metadata comes through the gateway.
      expect(meta).toEqual({ 'served-by': r.by });
    }
    expect([...by].sort()).toEqual(['b1', 'b2', 'b3']);
    const items: number[] = [];
    for await (const { i } of stub.count({ n: 5 })) items.push(i);
    expect(items).toEqual([0, 1, 2, 3, 4]);
  });

  it('a non-idempotent call whose backend hangs fails UNAVAILABLE indefinite, sent once; an idempotent one is retried', async () => {
    const [hang, ok] = await Promise.all([backend('a-hang'), backend('b-ok')]);
    hang.hang = true;
    const { f, stub } = await front([hang, ok], { balance: 'round-robin' });
    const reads = await Promise.all([stub.read({}), stub.read({}), stub.read({}), stub.read({})]);
    expect(reads.every((r) => r.by === 'b-ok')).toBe(true);
    const results = await Promise.allSettled([1, 2, 3, 4].map((n) => stub.bump({ n })));
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(failed.length).toBeGreaterThan(0);
    for (const r of failed) {
      expect(r.reason).toMatchObject({
        code: 'UNAVAILABLE',
        definite: false,
      });
    }
    // Every bump ran exactly once, somewhere.
    expect([...hang.bumps, ...ok.bumps].sort()).toEqual([1, 2, 3, 4]);
    expect(hang.bumps).toHaveLength(failed.length);
    expect(f.counters.retriesMaybeSent).toBeGreaterThan(0);
  });

  it('skips a backend that went away, for every method', async () => {
    const [gone, ok] = await Promise.all([backend('a-gone'), backend('b-ok')]);
    const { stub } = await front([gone, ok], { balance: 'round-robin' });
    await gone.node.close();
    for (let n = 0; n < 6; n++) expect(await stub.bump({ n })).toEqual({ by: 'b-ok' });
    expect(ok.bumps).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('replicated majority: the value most backends agree on; a split fails with the outcome in details', async () => {
    const bs = await Promise.all(['b1', 'b2', 'b3'].map((id) => backend(id)));
    bs[2]!.vote = 'no';
    const { f, stub } = await front(bs, {
      replicated: { 'Counter.vote': { mode: 'majority', replicas: 3 } },
    });
    let meta: Readonly<Record<string, string>> = {};
    expect(await stub.vote({}, { onReplyMeta: (m) => (meta = m) })).toEqual({ v: 'yes' });
    expect(f.lastReplicated.get('Counter.vote')).toMatch(/^majority success: agreed 2/);
    // The rule and the outcome are in the reply's metadata.
    expect(meta['cohort-combine']).toBe('majority');
    expect(meta['cohort-outcome']).toMatch(/^success;agreed=2;replied=[23];failed=0;of=3$/);
    expect(meta['cohort-replicas']?.split(',').sort()[0]).toMatch(/^b1=(ok|pending)$/);
    bs[1]!.vote = 'maybe';
    await expect(stub.vote({})).rejects.toMatchObject({
      code: 'UNAVAILABLE',
      details: { combine: 'majority', outcome: 'failure', of: 3 },
    });
  });

  it('routes pass-through services declared by name (the CLI has no service definitions)', async () => {
    const bs = await Promise.all(['b1', 'b2'].map((id) => backend(id)));
    const services = parseRpcMethods('Counter.bump,Counter.read:idempotent,Counter.count:stream');
    expect(services.map((s) => [s.name, [...s.compiled.keys()]])).toEqual([
      ['Counter', ['bump', 'read', 'count']],
    ]);
    const { stub } = await front(bs, {}, services);
    expect((await stub.bump({ n: 7 })).by).toMatch(/^b[12]$/);
    // The backend still validates: a bad request is its answer, relayed as is.
    await expect(stub.bump({ n: 'x' } as never)).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    expect(() => parseRpcMethods('Counter.bump:weird')).toThrow(/unknown flag/);
    expect(() => parseRpcMethods('nodot')).toThrow(/expected Service.method/);
  });
});
