/**
 * `cohort gateway` as a command: its options resolved and cross-checked
 * (in process), a bad configuration refused with exit 2 (real process), and
 * SIGHUP reloading the backend lists from the config file: a new backend
 * joins, a removed one drains (its in-flight request still answered), a bad
 * or emptying reload is refused and changes nothing (real processes); and
 * the gateway as a role of `cohort node --gateway <file>`.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { reloadBackends, resolveGatewayOptions } from '../../src/cli/gateway-command.js';
import { StaticBackendSource } from '../../src/gateway/backend-source.js';
import { runCli, startCli } from '../harness/cli.js';
import type { CliProcess } from '../harness/cli.js';
import { until } from '../harness/process-cluster.js';
import { tempDir } from '../harness/tmp.js';
import { freePort } from '../transport/tcp-harness.js';

/** A condition that needs several processes to react (start, eject, recover): twice the harness's default wait. */
const slowWaitMs = 120_000;

const fixture = fileURLToPath(new URL('./fixtures/counting-backend.mjs', import.meta.url));

const children = new Set<ChildProcess>();
let gateway: CliProcess | undefined;
afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  if (gateway !== undefined && gateway.child.exitCode === null) {
    gateway.child.kill('SIGKILL');
    await gateway.exit;
  }
});

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return `${(e as { code?: string }).code}: ${(e as Error).message}`;
  }
  return 'no error';
}

describe('cohort gateway options', () => {
  it('resolves flags and the config file, and refuses inconsistent settings naming the field', () => {
    const dir = tempDir('cohort-gw-opts-');
    const file = join(dir, 'gw.json');
    writeFileSync(file, JSON.stringify({ backends: 'a=127.0.0.1:9001*3,127.0.0.1:9002' }));
    const o = resolveGatewayOptions({ config: file, balance: 'round-robin', admin: '' }, {});
    expect(o.http?.balance).toBe('round-robin');
    expect(o.admin).toBeUndefined();
    expect(o.rpc).toBeUndefined();
    const src = o.http?.source;
    expect(src).toBeInstanceOf(StaticBackendSource);
    expect((src as StaticBackendSource).backends).toEqual([
      { id: 'a', host: '127.0.0.1', port: 9001, weight: 3 },
      { id: '127.0.0.1:9002', host: '127.0.0.1', port: 9002, weight: 1 },
    ]);

    expect(codeOf(() => resolveGatewayOptions({}, {}))).toMatch(/^INVALID_ARGUMENT: .*backends/);
    expect(codeOf(() => resolveGatewayOptions({ backends: 'a=nohost' }, {}))).toMatch(
      /^INVALID_ARGUMENT: .*--backends.*expected \[id=\]host:port/,
    );
    expect(codeOf(() => resolveGatewayOptions({ backends: 'a=h:1', balance: 'x' }, {}))).toMatch(
      /^INVALID_ARGUMENT: .*balance/,
    );
    expect(
      codeOf(() => resolveGatewayOptions({ rpcListen: '127.0.0.1:7500', rpcMethods: 'S.m' }, {})),
    ).toMatch(/^INVALID_ARGUMENT: .*rpcBackends.*required/);
    expect(
      codeOf(() =>
        resolveGatewayOptions(
          {
            rpcListen: '127.0.0.1:7500',
            rpcBackends: 'n1=127.0.0.1:7401',
            rpcMethods: 'S.m:idempotent',
            rpcReplicate: 'S.other=majority:3',
          },
          {},
        ),
      ),
    ).toMatch(/^INVALID_ARGUMENT: .*S\.other is not in --rpc-methods/);
    expect(codeOf(() => resolveGatewayOptions({ replicate: 'x=majority:3' }, {}))).toMatch(
      /INVALID_ARGUMENT: .*starts with \//,
    );
  });

  it('a reload replaces the lists, and refuses one that would start or stop a part', () => {
    const dir = tempDir('cohort-gw-reload-');
    const file = join(dir, 'gw.json');
    writeFileSync(file, JSON.stringify({ backends: 'a=127.0.0.1:9001,b=127.0.0.1:9002' }));
    const running = resolveGatewayOptions({ config: file }, {});
    const src = running.http?.source as StaticBackendSource;
    writeFileSync(file, JSON.stringify({ backends: 'a=127.0.0.1:9001*2,c=127.0.0.1:9003' }));
    expect(reloadBackends(running, { config: file }, {})).toBe(
      'HTTP backends a=127.0.0.1:9001*2,c=127.0.0.1:9003*1',
    );
    expect(src.backends.map((b) => b.id)).toEqual(['a', 'c']);
    for (const bad of [
      { backends: 'nonsense' },
      { backends: '' },
      { backends: 'a=127.0.0.1:9001', rpcListen: '127.0.0.1:7500' },
      { backends: 'a=127.0.0.1:9001', unknownField: 1 },
    ]) {
      writeFileSync(file, JSON.stringify(bad));
      expect(codeOf(() => reloadBackends(running, { config: file }, {}))).toMatch(
        /^INVALID_ARGUMENT/,
      );
      expect(src.backends.map((b) => b.id)).toEqual(['a', 'c']);
    }
  });

  it('exits 2 on a bad configuration, saying what is wrong', async () => {
    const r = await runCli(['gateway', '--backends', 'a=127.0.0.1:99999', '--admin', '']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bad configuration: .*backends/);
  });
});

async function startBackend(id: string, port: number, log: string, postDelayMs: number) {
  const child = spawn(process.execPath, [fixture, id, String(port), log, String(postDelayMs)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`backend ${id} exited ${code}`)));
  });
  return child;
}

// workers 2: the lists reach every worker process; a backend has drained when all dropped it.
describe.each([1, 2])('cohort gateway SIGHUP (real processes), workers %i', (workers) => {
  it('reloads the backend list: a new one joins, a removed one drains, a bad file changes nothing', async () => {
    const dir = tempDir('cohort-gw-hup-');
    const ports = { a: await freePort(), b: await freePort(), c: await freePort() };
    // b answers POSTs 3 s after logging them: a POST in flight across the reload.
    await startBackend('a', ports.a, join(dir, 'a.log'), 0);
    await startBackend('b', ports.b, join(dir, 'b.log'), 3_000);
    await startBackend('c', ports.c, join(dir, 'c.log'), 0);
    const list = (...ids: ('a' | 'b' | 'c')[]) =>
      ids.map((id) => `${id}=127.0.0.1:${ports[id]}`).join(',');
    const file = join(dir, 'gw.json');
    writeFileSync(file, JSON.stringify({ backends: list('a', 'b') }));
    const port = await freePort();
    const admin = await freePort();
    gateway = startCli([
      'gateway',
      '--config',
      file,
      '--balance',
      'hash',
      '--listen',
      `127.0.0.1:${port}`,
      '--admin',
      `127.0.0.1:${admin}`,
      '--workers',
      String(workers),
    ]);
    const gw = gateway;
    await until(
      'the gateway to listen',
      () => Promise.resolve(gw.out.stdout.includes('cohort gateway:') ? true : undefined),
      60_000,
    );
    const url = `http://127.0.0.1:${port}`;
    const backendOf = async (path: string, key: string, method = 'GET'): Promise<string> => {
      const r = await fetch(`${url}${path}`, { method, headers: { 'x-cohort-key': key } });
      await r.arrayBuffer();
      expect(r.status).toBe(200);
      return r.headers.get('x-backend') ?? '';
    };
    const ids = async (): Promise<string[]> => {
      const r = await fetch(`http://127.0.0.1:${admin}/status`);
      const s = (await r.json()) as { http: { backends: { id: string }[] } };
      return s.http.backends.map((b) => b.id);
    };
    const stderrHas = (text: string, count: number) =>
      until(
        `${count}× "${text}" on the gateway's stderr`,
        () => Promise.resolve(gw.out.stderr.split(text).length - 1 >= count ? true : undefined),
        60_000,
      );

    // Find a key that hash balancing sends to b, and start a slow POST there.
    let keyOfB: string | undefined;
    for (let k = 0; k < 200 && keyOfB === undefined; k++) {
      if ((await backendOf('/item', `k${k}`)) === 'b') keyOfB = `k${k}`;
    }
    expect(keyOfB).toBeDefined();
    const inFlight = backendOf('/order?id=slow', keyOfB!, 'POST');
    inFlight.catch(() => undefined); // awaited below; this only keeps a failure from going unhandled
    await until(
      'b to receive the POST',
      async () =>
        (await ids()).length === 2 && (await logged(join(dir, 'b.log'))) ? true : undefined,
      60_000,
    );

    // Drop b, add c: the POST in flight at b is still answered.
    writeFileSync(file, JSON.stringify({ backends: list('a', 'c') }));
    gw.child.kill('SIGHUP');
    await stderrHas('reloaded', 1);
    expect(await inFlight).toBe('b');
    await until(
      'b drained',
      async () => ((await ids()).join() === 'a,c' ? true : undefined),
      60_000,
    );
    const seen = new Set<string>();
    for (let k = 0; k < 60; k++) seen.add(await backendOf('/item', `k${k}`));
    expect([...seen].sort()).toEqual(['a', 'c']);

    // A bad file and an empty list are refused; the gateway carries on as it was.
    writeFileSync(file, '{"backends": ');
    gw.child.kill('SIGHUP');
    await stderrHas('reload refused', 1);
    writeFileSync(file, JSON.stringify({ backends: '' }));
    gw.child.kill('SIGHUP');
    await stderrHas('reload refused', 2);
    expect(await ids()).toEqual(['a', 'c']);
    expect(await backendOf('/item', keyOfB!)).toMatch(/^[ac]$/);

    gw.child.kill('SIGTERM');
    expect(await gw.exit).toBe(0);
  });
});

async function logged(file: string): Promise<boolean> {
  try {
    return (await readFile(file, 'utf8')).includes('slow');
  } catch {
    return false;
  }
}

describe('cohort node --gateway (real processes)', () => {
  it('runs the gateway inside the node: it proxies, reloads on SIGHUP, and a bad file is exit 2', async () => {
    const dir = tempDir('cohort-node-gw-');
    const ports = { a: await freePort(), b: await freePort() };
    await startBackend('a', ports.a, join(dir, 'a.log'), 0);
    await startBackend('b', ports.b, join(dir, 'b.log'), 0);
    const proxyPort = await freePort();
    const file = join(dir, 'gw.json');
    const write = (backends: string) =>
      writeFileSync(
        file,
        JSON.stringify({ backends, listen: `127.0.0.1:${proxyPort}`, admin: '' }),
      );
    const nodeArgs = async (): Promise<string[]> => [
      'node',
      '--id',
      'n1',
      '--data-dir',
      join(dir, 'n1'),
      '--listen',
      `127.0.0.1:${await freePort()}`,
      '--rpc',
      `127.0.0.1:${await freePort()}`,
      '--workers',
      '0',
      '--insecure',
      '--gateway',
      file,
    ];

    writeFileSync(file, JSON.stringify({ backends: 'a=127.0.0.1:99999' }));
    const refused = await runCli(await nodeArgs());
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/bad configuration: .*backends/);

    write(`a=127.0.0.1:${ports.a}`);
    const node = startCli(await nodeArgs());
    gateway = node;
    await until(
      'the node to run its gateway',
      () => Promise.resolve(node.out.stdout.includes('gateway HTTP on') ? true : undefined),
      slowWaitMs,
    );
    const via = async (): Promise<string> => {
      const r = await fetch(`http://127.0.0.1:${proxyPort}/x`);
      await r.arrayBuffer();
      expect(r.status).toBe(200);
      return r.headers.get('x-backend') ?? '';
    };
    expect(await via()).toBe('a');
    write(`b=127.0.0.1:${ports.b}`);
    node.child.kill('SIGHUP');
    await until(
      'the reload',
      () => Promise.resolve(node.out.stdout.includes('gateway reloaded') ? true : undefined),
      60_000,
    );
    for (let i = 0; i < 5; i++) expect(await via()).toBe('b');
    node.child.kill('SIGTERM');
    expect(await node.exit).toBe(0);
  });
});
