/**
 * The gateway's backends by name: FollowingBackendSource on its own, then
 * `cohort gateway --rpc-service ListMax` as the command builds it
 * (resolveGatewayOptions + followServices) against a real cluster: an
 * instance that registers joins, one that deregisters drains, and calls
 * through the gateway go on.
 */
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ListMax, listMaxHandlers } from '../../examples/list-max/service.js';
import { followServices, resolveGatewayOptions } from '../../src/cli/gateway-command.js';
import { FollowingBackendSource } from '../../src/gateway/backend-source.js';
import type { BackendSpec, FeedInstance } from '../../src/gateway/backend-source.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { registerInstance } from '../../src/naming/registration.js';
import { startTcpClient, startTcpServer } from '../../src/rpc/tcp-endpoints.js';
import { freePort } from '../harness/process-cluster.js';
import { tempDir } from '../harness/tmp.js';
import { waitUntil } from '../harness/wait.js';
import { KvTestCluster } from '../kv/kv-cluster.js';

const silent = pino({ level: 'silent' });

describe('FollowingBackendSource', () => {
  it('hands over the instances a feed reports, leaving out unusable ones', () => {
    let push: (list: readonly FeedInstance[]) => void = () => undefined;
    const source = new FollowingBackendSource('S');
    const seen: (readonly BackendSpec[])[] = [];
    const stop = source.subscribe((l) => seen.push(l));
    expect(seen).toEqual([[]]);
    source.follow({
      subscribe: (f) => {
        push = f;
        return () => undefined;
      },
    });
    push([
      { id: 'a', address: { host: '127.0.0.1', port: 1 }, weight: 2 },
      { id: 'bad id!', address: { host: '127.0.0.1', port: 2 } },
      { id: 'c', address: { host: '127.0.0.1', port: 0 } },
      { id: 'a', address: { host: '127.0.0.1', port: 3 } },
    ]);
    expect(seen.at(-1)).toEqual([{ id: 'a', host: '127.0.0.1', port: 1, weight: 2 }]);
    expect(seen).toHaveLength(2);
    expect(() => source.follow({ subscribe: () => () => undefined })).toThrow(/already/);
    stop();
    source.stop();
  });
});

describe('cohort gateway --rpc-service', () => {
  let cluster: KvTestCluster;
  beforeAll(async () => {
    cluster = await KvTestCluster.start(3);
    await cluster.leader();
  });
  afterAll(async () => {
    await cluster.close();
  });

  async function instance(id: string) {
    const server = await startTcpServer({ id, port: 0, logger: silent });
    let served = 0;
    server.serve(ListMax, {
      listMax: (req, ctx) => {
        served++;
        return listMaxHandlers.listMax(req, ctx);
      },
    });
    const reg = await registerInstance(
      await cluster.client(),
      { service: 'ListMax', id, address: server.address },
      { ttlMs: 1_000 },
    );
    return { server, reg, served: () => served };
  }

  it('follows the registered instances: new ones join, deregistered ones drain, calls go on', async () => {
    const a = await instance('gw-a');
    const flags = {
      rpcListen: `127.0.0.1:${await freePort()}`,
      rpcService: 'ListMax',
      rpcMethods: 'ListMax.listMax:idempotent',
      registryEndpoints: cluster.endpoints().join(','),
      registryInsecure: 'true',
      admin: '',
      checkIntervalMs: '100',
      logLevel: 'silent',
    };
    const options = resolveGatewayOptions(flags, {});
    const unfollow = await followServices(options, flags, {});
    const gw = await Gateway.start(options);
    const rpc = gw.rpc;
    if (rpc === undefined) throw new Error('no RPC front end');
    const backends = (): string[] =>
      (rpc.status() as { backends: { id: string; active: boolean }[] }).backends
        .filter((b) => b.active)
        .map((b) => b.id)
        .sort();
    const client = await startTcpClient({
      server: { id: 'gateway', host: '127.0.0.1', port: rpc.address.port },
      logger: silent,
    });
    const stub = client.client(ListMax, client.serverId, { timeoutMs: 10_000 });
    const failures: unknown[] = [];
    let stop = false;
    const loop = (async () => {
      for (let k = 0; !stop; k++) {
        await stub.listMax({ values: [k, k + 1] }).catch((e: unknown) => failures.push(e));
      }
    })();
    await waitUntil('gw-a in rotation', () => backends().join() === 'gw-a' && a.served() > 10);
    const b = await instance('gw-b');
    await waitUntil('gw-b joins', () => backends().join() === 'gw-a,gw-b' && b.served() > 10);
    await a.reg.close();
    await waitUntil('gw-a drained', () => backends().join() === 'gw-b');
    const before = b.served();
    await waitUntil('gw-b takes the calls', () => b.served() > before + 50);
    stop = true;
    await loop;
    expect(failures).toEqual([]);
    await client.close();
    await gw.close();
    await unfollow();
    await b.reg.close();
    await a.server.close();
    await b.server.close();
  });

  it('proxies HTTP to the instances registered under a name (--service)', async () => {
    const servers = await Promise.all(
      ['web-1', 'web-2'].map(
        (id) =>
          new Promise<{ id: string; server: http.Server; port: number }>((resolve) => {
            const server = http.createServer((_req, res) => res.end(id));
            server.listen(0, '127.0.0.1', () =>
              resolve({ id, server, port: (server.address() as AddressInfo).port }),
            );
          }),
      ),
    );
    const regs = await Promise.all(
      servers.map(async (w) =>
        registerInstance(await cluster.client(), {
          service: 'Web',
          id: w.id,
          address: { host: '127.0.0.1', port: w.port },
        }),
      ),
    );
    const flags = {
      service: 'Web',
      listen: `127.0.0.1:${await freePort()}`,
      registryEndpoints: cluster.endpoints().join(','),
      registryInsecure: 'true',
      admin: '',
      balance: 'round-robin',
      logLevel: 'silent',
    };
    const options = resolveGatewayOptions(flags, {});
    const unfollow = await followServices(options, flags, {});
    const gw = await Gateway.start(options);
    const url = `http://127.0.0.1:${gw.http?.address.port ?? 0}/`;
    const answers = new Set<string>();
    await waitUntil('both instances answer', async () => {
      answers.add(await (await fetch(url)).text());
      return answers.size === 2;
    });
    await regs[0]?.close();
    await waitUntil('web-1 drained', () =>
      (gw.http?.status() ?? []).every((b) => b.id !== 'web-1'),
    );
    for (let i = 0; i < 5; i++) expect(await (await fetch(url)).text()).toBe('web-2');
    await gw.close();
    await unfollow();
    await regs[1]?.close();
    for (const w of servers) w.server.close();
  });

  it("follows a name from a gateway config file without waiting (cohort node --gateway's way)", async () => {
    const file = join(tempDir('cohort-gw-file-'), 'gateway.json');
    writeFileSync(
      file,
      JSON.stringify({
        rpcListen: `127.0.0.1:${await freePort()}`,
        rpcService: 'FileSvc',
        rpcMethods: 'ListMax.listMax:idempotent',
        registryEndpoints: cluster.endpoints().join(','),
        registryInsecure: true,
        admin: '',
      }),
    );
    const options = resolveGatewayOptions({ config: file }, {});
    const source = options.rpc?.source;
    if (!(source instanceof FollowingBackendSource)) throw new Error('not following a name');
    const unfollow = await followServices(options, { config: file }, {}, process.cwd(), false);
    const lists: string[] = [];
    const stop = source.subscribe((l) => lists.push(l.map((b) => b.id).join()));
    const server = await startTcpServer({ id: 'file-1', port: 0, logger: silent });
    const reg = await registerInstance(await cluster.client(), {
      service: 'FileSvc',
      id: 'file-1',
      address: server.address,
    });
    await waitUntil('file-1 followed', () => lists.at(-1) === 'file-1');
    await reg.close();
    await waitUntil('file-1 gone', () => lists.at(-1) === '');
    stop();
    await unfollow();
    await server.close();
  });

  it('says why when it cannot follow: a bad name, both a list and a name, no registry', async () => {
    expect(() =>
      resolveGatewayOptions({ rpcListen: '127.0.0.1:7', rpcService: 'a/b', rpcMethods: 'S.m' }, {}),
    ).toThrow(/rpcService .*is not a service name/);
    expect(() => resolveGatewayOptions({ backends: 'a=127.0.0.1:1', service: 'S' }, {})).toThrow(
      /--backends or --service, not both/,
    );
    const flags = { service: 'S', registryEndpoints: 'n1=127.0.0.1:1', registryInsecure: 'true' };
    const options = resolveGatewayOptions(flags, {});
    await expect(followServices(options, flags, {})).rejects.toMatchObject({
      code: 'UNAVAILABLE',
    });
  });
});
