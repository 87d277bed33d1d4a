/**
 * The HTTP reverse proxy in one process over real sockets: relaying and
 * headers, the size limits (431, 413, 400), failover by phase and method
 * against refusing, hanging and garbage-sending backends, drain, hash
 * stickiness, replicated routes, and large bodies streamed both ways.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { StaticBackendSource } from '../../src/gateway/backend-source.js';
import type { BackendSpec } from '../../src/gateway/backend-source.js';
import { HttpProxy } from '../../src/gateway/http-proxy.js';
import type { HttpProxyOptions } from '../../src/gateway/http-proxy.js';
import { freePort } from '../transport/tcp-harness.js';
import { quietLogger } from './helpers.js';

type Handler = (req: http.IncomingMessage, body: Buffer, res: http.ServerResponse) => void;

interface Backend {
  readonly spec: BackendSpec;
  /** Requests received (method + url). */
  readonly seen: string[];
  close(): Promise<void>;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function backend(id: string, handler?: Handler): Promise<Backend> {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push(`${req.method} ${req.url}`);
      const body = Buffer.concat(chunks);
      if (handler !== undefined) handler(req, body, res);
      else {
        res.writeHead(200, { 'content-type': 'text/plain', 'x-backend': id });
        res.end(`${id} ${req.method} ${req.url} ${body.length}`);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const b = {
    spec: { id, host: '127.0.0.1', port, weight: 1 },
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
  cleanups.push(b.close);
  return b;
}

/** A TCP server that answers every connection with bytes that are not HTTP. */
async function garbageBackend(id: string): Promise<{ spec: BackendSpec; requests: () => number }> {
  let requests = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.once('data', () => {
      requests++;
      s.end('\x00\x01garbage that is not HTTP\r\n\r\n');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  return { spec: { id, host: '127.0.0.1', port, weight: 1 }, requests: () => requests };
}

async function proxyOf(
  backends: readonly BackendSpec[],
  options: Partial<HttpProxyOptions> = {},
): Promise<{ proxy: HttpProxy; url: string; source: StaticBackendSource }> {
  const source = new StaticBackendSource(backends);
  const proxy = await HttpProxy.start({
    listen: { host: '127.0.0.1', port: 0 },
    source,
    check: { intervalMs: 0 },
    logger: quietLogger(),
    ...options,
  });
  cleanups.push(() => proxy.close());
  return { proxy, url: `http://127.0.0.1:${proxy.address.port}`, source };
}

/** Sends raw bytes to `port` and returns everything the server sent before closing. */
function raw(port: number, bytes: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let out = '';
    s.on('data', (d: Buffer) => (out += d.toString('latin1')));
    s.on('error', (e) => (out === '' ? reject(e) : resolve(out)));
    s.on('close', () => resolve(out));
    s.write(bytes);
  });
}

describe('HttpProxy: relaying', () => {
  it('relays method, path and body; sets X-Forwarded-*; drops hop-by-hop headers both ways', async () => {
    let seenHeaders: http.IncomingHttpHeaders = {};
    const a = await backend('a', (req, body, res) => {
      seenHeaders = req.headers;
      res.writeHead(201, {
        'x-app': 'yes',
        connection: 'keep-alive, x-hop-reply',
        'x-hop-reply': 'secret',
        'keep-alive': 'timeout=5',
      });
      res.end(`got ${body.toString()}`);
    });
    const { url } = await proxyOf([a.spec]);
    // node:http, not fetch: fetch refuses to send a Connection header.
    const r = await new Promise<{
      status: number;
      headers: http.IncomingHttpHeaders;
      body: string;
    }>((resolve, reject) => {
      const req = http.request(`${url}/path?q=1`, {
        method: 'POST',
        headers: { 'x-forwarded-for': '10.0.0.9', 'x-hop': 'drop me', connection: 'x-hop' },
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on('error', reject);
      req.end('hello');
    });
    expect(r.status).toBe(201);
    expect(r.body).toBe('got hello');
    expect(r.headers['x-app']).toBe('yes');
    expect(r.headers['x-hop-reply']).toBeUndefined();
    expect(r.headers['keep-alive']).not.toBe('timeout=5');
    expect(a.seen).toEqual(['POST /path?q=1']);
    expect(seenHeaders['x-forwarded-for']).toBe('10.0.0.9, 127.0.0.1');
    expect(seenHeaders['x-forwarded-proto']).toBe('http');
    expect(seenHeaders['x-forwarded-host']).toBe(new URL(url).host);
    expect(seenHeaders['x-hop']).toBeUndefined();
  });

  it('streams large bodies both ways intact (request beyond the retry buffer, 8 MiB reply)', async () => {
    const reply = Buffer.alloc(8 * 1024 * 1024, 7);
    let gotHash = '';
    const a = await backend('a', (_req, body, res) => {
      gotHash = createHash('sha256').update(body).digest('hex');
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(reply);
    });
    const { url } = await proxyOf([a.spec]);
    const sent = Buffer.alloc(1024 * 1024, 3);
    const r = await fetch(`${url}/up`, { method: 'PUT', body: sent });
    const got = Buffer.from(await r.arrayBuffer());
    expect(r.status).toBe(200);
    expect(got.equals(reply)).toBe(true);
    expect(gotHash).toBe(createHash('sha256').update(sent).digest('hex'));
  });

  it('sends a key to the same backend with hash balancing', async () => {
    const bs = await Promise.all(['a', 'b', 'c'].map((id) => backend(id)));
    const { url } = await proxyOf(
      bs.map((b) => b.spec),
      { balance: 'hash' },
    );
    for (const key of ['u1', 'u2', 'u3']) {
      const ids = new Set<string>();
      for (let i = 0; i < 5; i++) {
        const r = await fetch(`${url}/`, { headers: { 'x-cohort-key': key } });
        ids.add(r.headers.get('x-backend') ?? '');
      }
      expect(ids.size).toBe(1);
    }
  });
});

describe('HttpProxy: limits and bad input', () => {
  it('answers 431 for an oversized head, 413 for an oversized body, 400 for garbage; none reaches a backend', async () => {
    const a = await backend('a');
    const { proxy, url } = await proxyOf([a.spec], { bodyBytesMax: 1000, headerBytesMax: 4096 });
    const port = proxy.address.port;
    const big = await fetch(`${url}/`, { headers: { 'x-big': 'a'.repeat(8000) } });
    expect(big.status).toBe(431);
    const tooLong = await fetch(`${url}/`, { method: 'POST', body: 'x'.repeat(2000) });
    expect(tooLong.status).toBe(413);
    // Chunked (no Content-Length): refused as the stream passes the limit.
    const chunked = await raw(
      port,
      `POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${'400\r\n' + 'y'.repeat(1024) + '\r\n'}${'400\r\n' + 'y'.repeat(1024) + '\r\n'}0\r\n\r\n`,
    );
    expect(chunked).toMatch(/^HTTP\/1\.1 413/);
    expect(await raw(port, 'GARBAGE\x00\x01 not http\r\n\r\n')).toMatch(/^HTTP\/1\.1 400/);
    expect(await raw(port, 'GET / HTTP/1.1\r\nContent-Length: -5\r\n\r\n')).toMatch(
      /^HTTP\/1\.1 400/,
    );
    expect(a.seen).toEqual([]);
    // Still serving.
    expect((await fetch(`${url}/ok`)).status).toBe(200);
    expect(proxy.counters).toMatchObject({ headersTooLarge431: 1, tooLarge413: 2 });
  });
});

describe('HttpProxy: failover', () => {
  it('retries any request, POST included, when the backend refused the connection', async () => {
    const good = await backend('good');
    const refused = { id: 'refused', host: '127.0.0.1', port: await freePort(), weight: 1 };
    const { proxy, url } = await proxyOf([refused, good.spec], { balance: 'round-robin' });
    for (let i = 0; i < 6; i++) {
      const r = await fetch(`${url}/p${i}`, { method: 'POST', body: 'x' });
      expect(r.status).toBe(200);
    }
    expect(good.seen).toHaveLength(6);
    expect(proxy.counters.retriesNotSent).toBeGreaterThan(0);
  });

  it('retries a GET once after a backend sent garbage, but answers a POST 502 (indefinite) and never resends it', async () => {
    const junk = await garbageBackend('junk');
    const good = await backend('good');
    // Round robin in id order: good, junk, good, junk...
    const { url } = await proxyOf([junk.spec, good.spec], { balance: 'round-robin' });
    for (let i = 0; i < 4; i++) expect((await fetch(`${url}/g${i}`)).status).toBe(200);
    const before = junk.requests();
    const statuses: number[] = [];
    const definite: (string | null)[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await fetch(`${url}/order${i}`, { method: 'POST', body: 'once' });
      statuses.push(r.status);
      if (r.status !== 200) definite.push(r.headers.get('x-cohort-definite'));
    }
    // The POSTs that landed on junk failed there and went nowhere else.
    expect(statuses.filter((s) => s === 502)).toHaveLength(junk.requests() - before);
    expect(statuses.filter((s) => s === 200)).toHaveLength(
      good.seen.filter((s) => s.startsWith('POST')).length,
    );
    expect(statuses.filter((s) => s === 502).length).toBeGreaterThan(0);
    expect(definite.every((d) => d === 'false')).toBe(true);
  });

  it('answers a POST to a hanging backend 504 (indefinite) and retries a GET elsewhere', async () => {
    const hang = await backend('hang', () => {
      /* never answers */
    });
    const good = await backend('good');
    const { url } = await proxyOf([hang.spec, good.spec], {
      balance: 'round-robin',
      tryTimeoutMs: 300,
    });
    for (let i = 0; i < 2; i++) expect((await fetch(`${url}/g${i}`)).status).toBe(200);
    const statuses: number[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await fetch(`${url}/order${i}`, { method: 'POST', body: 'once' });
      statuses.push(r.status);
      if (r.status === 504) expect(r.headers.get('x-cohort-definite')).toBe('false');
    }
    expect(statuses.sort()).toEqual([200, 504]);
    const posts = [...hang.seen, ...good.seen].filter((s) => s.startsWith('POST'));
    expect(posts.sort()).toEqual(['POST /order0', 'POST /order1']);
  });

  it('answers 503 (definite) when no backend is left, and ejects a failing backend', async () => {
    const junk = await garbageBackend('junk');
    const good = await backend('good');
    const { proxy, url } = await proxyOf([junk.spec, good.spec], {
      health: { ejectFailures: 2, ejectMs: 60_000 },
    });
    for (let i = 0; i < 10; i++) expect((await fetch(`${url}/g${i}`)).status).toBe(200);
    const j = proxy.status().find((s) => s.id === 'junk');
    expect(j).toMatchObject({ breaker: 'open', eligible: false });
    const none = await proxyOf([]);
    const r = await fetch(`${none.url}/`);
    expect(r.status).toBe(503);
    expect(r.headers.get('x-cohort-definite')).toBe('true');
  });
});

describe('HttpProxy: drain', () => {
  it('a removed backend finishes its in-flight request, takes no new ones, then leaves', async () => {
    let release: (() => void) | undefined;
    const slow = await backend('slow', (_req, _body, res) => {
      release = () => res.end('slow done');
    });
    const fast = await backend('fast');
    const { proxy, url, source } = await proxyOf([slow.spec], {});
    const inflight = fetch(`${url}/slow`);
    while (release === undefined) await new Promise((r) => setTimeout(r, 10));
    source.set([fast.spec]);
    expect(proxy.status().find((s) => s.id === 'slow')).toMatchObject({ draining: true });
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`${url}/new`);
      expect(await r.text()).toMatch(/^fast/);
    }
    release();
    expect(await (await inflight).text()).toBe('slow done');
    expect(proxy.status().map((s) => s.id)).toEqual(['fast']);
  });

  it('a backend listed again under its id at a new address joins once the old address drained', async () => {
    let release: (() => void) | undefined;
    const old = await backend('a', (_req, _body, res) => {
      release = () => res.end('old done');
    });
    const moved = await backend('a', (_req, _body, res) => res.end('moved'));
    const other = await backend('b', (_req, _body, res) => res.end('other'));
    const { proxy, url, source } = await proxyOf([old.spec], {});
    const inflight = fetch(`${url}/slow`);
    while (release === undefined) await new Promise((r) => setTimeout(r, 10));
    // The list is handed over once; nothing hands it over again after the drain.
    source.set([moved.spec, other.spec]);
    expect(proxy.status().find((s) => s.id === 'a')).toMatchObject({ draining: true });
    release();
    expect(await (await inflight).text()).toBe('old done');
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) seen.add(await (await fetch(`${url}/x${i}`)).text());
    expect(seen).toEqual(new Set(['moved', 'other']));
    expect(proxy.status().find((s) => s.id === 'a')).toMatchObject({
      port: moved.spec.port,
      draining: false,
    });
  });
});

describe('HttpProxy: replicated routes', () => {
  it('majority: answers the reply most replicas agree on, with the rule and outcome in headers', async () => {
    const bs = await Promise.all(
      ['a', 'b', 'c'].map((id) =>
        backend(id, (_req, _body, res) => res.end(id === 'c' ? 'minority' : 'agreed')),
      ),
    );
    const { url } = await proxyOf(
      bs.map((b) => b.spec),
      { replicated: [{ pathPrefix: '/vote', mode: 'majority', replicas: 3 }] },
    );
    const r = await fetch(`${url}/vote/x`, { method: 'POST', body: 'v' });
    expect(r.status).toBe(200);
    expect(await r.text()).toBe('agreed');
    expect(r.headers.get('x-cohort-combine')).toBe('majority');
    expect(r.headers.get('x-cohort-outcome')).toMatch(/^success;agreed=2;replied=(2|3);/);
    for (const b of bs) expect(b.seen).toEqual(['POST /vote/x']);
    // Other paths are not replicated.
    await fetch(`${url}/plain`);
    expect(bs.reduce((n, b) => n + b.seen.length, 0)).toBe(4);
  });

  it('all: fails 502 when one replica fails, saying so in the headers', async () => {
    const a = await backend('a');
    const junk = await garbageBackend('junk');
    const { url } = await proxyOf([a.spec, junk.spec], {
      replicated: [{ pathPrefix: '/', mode: 'all', replicas: 2 }],
    });
    const r = await fetch(`${url}/x`);
    expect(r.status).toBe(502);
    expect(r.headers.get('x-cohort-combine')).toBe('all');
    expect(r.headers.get('x-cohort-outcome')).toMatch(/^failure;/);
    expect(r.headers.get('x-cohort-replicas')).toContain('junk=failed');
  });
});
