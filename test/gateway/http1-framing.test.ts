/**
 * The proxy's own HTTP/1.1 handling on raw sockets (src/gateway/http1.ts,
 * upstream.ts and the front of http-proxy.ts): request smuggling shapes
 * refused with 400 before any backend, bodies ending where their framing
 * says, pipelined requests answered in order, reads split at every byte
 * boundary on both sides, random pipelines (fast-check), responses framed
 * anew (chunked, HTTP/1.0, HEAD), backend connections kept alive and never
 * reused after stray bytes.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { StaticBackendSource } from '../../src/gateway/backend-source.js';
import type { BackendSpec } from '../../src/gateway/backend-source.js';
import { keepAliveHintMs, requestHead, responseHeaderLines } from '../../src/gateway/http1.js';
import { HttpProxy } from '../../src/gateway/http-proxy.js';
import type { HttpProxyOptions } from '../../src/gateway/http-proxy.js';
import { quietLogger } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const sha = (b: Buffer | string): string =>
  createHash('sha256').update(b).digest('hex').slice(0, 12);

interface Seen {
  readonly method: string;
  readonly url: string;
  readonly body: string;
  readonly headers: http.IncomingHttpHeaders;
}

/** A node:http backend (an independent parser) echoing `METHOD URL sha(body)`, after `?d=` ms if the URL says so. */
async function echoBackend(
  id = 'a',
): Promise<{ spec: BackendSpec; seen: Seen[]; connections: () => number }> {
  const seen: Seen[] = [];
  let connections = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        body: body.toString('latin1'),
        headers: req.headers,
      });
      const delay = Number(/[?&]d=(\d+)/.exec(req.url ?? '')?.[1] ?? 0);
      setTimeout(() => res.end(`${req.method} ${req.url} ${sha(body)}`), delay);
    });
  });
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  );
  const port = (server.address() as AddressInfo).port;
  return { spec: { id, host: '127.0.0.1', port, weight: 1 }, seen, connections: () => connections };
}

/**
 * A raw TCP backend: each request head (requests here have no body) gets
 * `respond(url)`, written in the pieces it returns with a pause between.
 */
async function rawBackend(
  respond: (url: string) => (string | Buffer)[],
): Promise<{ spec: BackendSpec; connections: () => number }> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    connections++;
    sockets.add(s);
    s.setNoDelay(true);
    s.on('error', () => {});
    let buf = '';
    let busy = Promise.resolve();
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        const url = head.split(' ')[1] ?? '/';
        const pieces = respond(url);
        busy = busy.then(async () => {
          for (const [i, p] of pieces.entries()) {
            if (i > 0) await pause();
            if (!s.destroyed) s.write(p);
          }
        });
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  const port = (server.address() as AddressInfo).port;
  return {
    spec: { id: 'raw', host: '127.0.0.1', port, weight: 1 },
    connections: () => connections,
  };
}

/** A short pause so two writes tend to arrive as two reads (never asserted on). */
const pause = (): Promise<void> => new Promise((r) => setTimeout(r, 1));

async function proxyOf(
  backends: readonly BackendSpec[],
  options: Partial<HttpProxyOptions> = {},
): Promise<HttpProxy> {
  const proxy = await HttpProxy.start({
    listen: { host: '127.0.0.1', port: 0 },
    source: new StaticBackendSource(backends),
    check: { intervalMs: 0 },
    logger: quietLogger(),
    ...options,
  });
  cleanups.push(() => proxy.close());
  return proxy;
}

/** Writes `pieces` to `port` (pausing between them) and returns all it got back until the proxy closed. */
function exchange(port: number, pieces: readonly (string | Buffer)[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    s.setNoDelay(true);
    let out = '';
    s.on('data', (d: Buffer) => (out += d.toString('latin1')));
    s.on('error', (e) => (out === '' ? reject(e) : resolve(out)));
    s.on('close', () => resolve(out));
    void (async () => {
      for (const [i, p] of pieces.entries()) {
        if (i > 0) await pause();
        if (!s.destroyed) s.write(p);
      }
    })();
  });
}

/** The bodies of the HTTP/1.1 responses in `text` with Content-Length framing, in order. */
function bodies(text: string): { status: number; body: string }[] {
  const out: { status: number; body: string }[] = [];
  let rest = text;
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) throw new Error(`no head end in ${JSON.stringify(rest)}`);
    const head = rest.slice(0, end);
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
    const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0);
    out.push({ status, body: rest.slice(end + 4, end + 4 + length) });
    rest = rest.slice(end + 4 + length);
  }
  return out;
}

describe('http1 heads', () => {
  it('drops hop-by-hop request headers and those Connection names; appends X-Forwarded-For', () => {
    const head = requestHead(
      'POST',
      '/p?q=1',
      [
        'Host',
        'front:80',
        'Connection',
        'keep-alive, X-Private',
        'X-Private',
        'secret',
        'Keep-Alive',
        'timeout=5',
        'Transfer-Encoding',
        'chunked',
        'TE',
        'trailers',
        'Upgrade',
        'h2c',
        'Expect',
        '100-continue',
        'X-Forwarded-For',
        '10.0.0.1',
        'x-forwarded-for',
        '10.0.0.2',
        'X-Forwarded-Proto',
        'https',
        'X-App',
        'kept',
      ],
      '127.0.0.9',
      { length: 5 },
    );
    expect(head).toBe(
      'POST /p?q=1 HTTP/1.1\r\nHost: front:80\r\nX-App: kept\r\n' +
        'x-forwarded-for: 10.0.0.1, 10.0.0.2, 127.0.0.9\r\nx-forwarded-proto: http\r\n' +
        'x-forwarded-host: front:80\r\ncontent-length: 5\r\n\r\n',
    );
    expect(requestHead('GET', '/', [], '::1', 'chunked')).toBe(
      'GET / HTTP/1.1\r\nx-forwarded-for: ::1\r\nx-forwarded-proto: http\r\ntransfer-encoding: chunked\r\n\r\n',
    );
  });

  it('drops hop-by-hop and framing response headers; reads the Keep-Alive hint', () => {
    const raw = [
      'Content-Type',
      'text/plain',
      'Connection',
      'X-Hop',
      'X-Hop',
      'x',
      'Keep-Alive',
      'timeout=5, max=100',
      'Content-Length',
      '3',
      'Transfer-Encoding',
      'chunked',
      'Set-Cookie',
      'a=1',
    ];
    expect(responseHeaderLines(raw)).toBe('Content-Type: text/plain\r\nSet-Cookie: a=1\r\n');
    expect(keepAliveHintMs(raw)).toBe(5000);
    expect(keepAliveHintMs(['Keep-Alive', 'max=5'])).toBeUndefined();
    expect(keepAliveHintMs([])).toBeUndefined();
  });
});

describe('HttpProxy front: smuggling shapes', () => {
  it('refuses ambiguous framing with 400 and never reaches a backend', async () => {
    const a = await echoBackend();
    const proxy = await proxyOf([a.spec]);
    const port = proxy.address.port;
    // Refused at the head: no connection to a backend is even opened.
    const badHeads = [
      // Content-Length and Transfer-Encoding together (RFC 9112 §6.3).
      'POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      'POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n',
      // Differing and repeated Content-Length.
      'POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde',
      'POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 4, 5\r\n\r\nabcde',
      // obs-fold (RFC 9112 §5.2).
      'GET /x HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n',
      // A coding after chunked, or no chunked at all.
      'POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n',
      'POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\nabc',
      // Bare LF, space before the colon, a bad chunk size.
      'GET /x HTTP/1.1\nHost: h\n\n',
      'GET /x HTTP/1.1\r\nHost : h\r\n\r\n',
    ];
    for (const b of badHeads) {
      const out = await exchange(port, [b]);
      expect(out, JSON.stringify(b)).toMatch(/^HTTP\/1\.1 400 /);
      expect(out).toMatch(/\r\nconnection: close\r\n/);
    }
    expect(a.connections()).toBe(0);
    // A body that breaks mid-way (a bad chunk size): its head may have gone on, the request never completes there.
    const bad = [
      ...badHeads,
      'POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n',
    ];
    for (const b of bad.slice(badHeads.length)) {
      const out = await exchange(port, [b]);
      expect(out, JSON.stringify(b)).toMatch(/^HTTP\/1\.1 400 /);
      expect(out).toMatch(/\r\nconnection: close\r\n/);
    }
    expect(a.seen).toEqual([]);
    expect(proxy.counters.badRequest400).toBe(bad.length);
  });

  it('ends a body where its Content-Length says: the bytes after it are the next request, parsed by the gateway', async () => {
    const a = await echoBackend();
    const proxy = await proxyOf([a.spec]);
    const hidden = 'GET /admin HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n';
    const out = await exchange(proxy.address.port, [
      `POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello${hidden}`,
    ]);
    expect(a.seen.map((s) => [s.method, s.url, s.body])).toEqual([
      ['POST', '/a', 'hello'],
      ['GET', '/admin', ''],
    ]);
    expect(bodies(out).map((r) => r.body)).toEqual([
      `POST /a ${sha('hello')}`,
      `GET /admin ${sha('')}`,
    ]);
  });

  it('answers pipelined requests in order, then a malformed one 400', async () => {
    const a = await echoBackend();
    const proxy = await proxyOf([a.spec]);
    const out = await exchange(proxy.address.port, [
      // The backend answers the first last and the last first: the client still gets them in order.
      'GET /1?d=40 HTTP/1.1\r\nHost: h\r\n\r\n' +
        'POST /2?d=20 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n' +
        'GET /3 HTTP/1.1\r\nHost: h\r\n\r\n' +
        'GET /4 HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx',
    ]);
    const rs = bodies(out);
    expect(rs.map((r) => r.status)).toEqual([200, 200, 200, 400]);
    expect(rs.slice(0, 3).map((r) => r.body)).toEqual([
      `GET /1?d=40 ${sha('')}`,
      `POST /2?d=20 ${sha('abc')}`,
      `GET /3 ${sha('')}`,
    ]);
    expect(a.seen.map((s) => s.url).sort()).toEqual(['/1?d=40', '/2?d=20', '/3']);
    // The trailer is not a header of the next request.
    expect(a.seen[2]!.headers['x-trailer']).toBeUndefined();
  });
});

describe('HttpProxy front: split reads', () => {
  const pipeline =
    'POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n' +
    'PUT /l?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc' +
    'GET /g HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n';

  it('relays a pipeline split at every byte boundary', async () => {
    const a = await echoBackend();
    const proxy = await proxyOf([a.spec]);
    for (let i = 1; i < pipeline.length; i++) {
      a.seen.length = 0;
      const out = await exchange(proxy.address.port, [pipeline.slice(0, i), pipeline.slice(i)]);
      expect(
        bodies(out).map((r) => r.body),
        `split at ${i}`,
      ).toEqual([`POST /c ${sha('wikipedia')}`, `PUT /l?x=1 ${sha('abc')}`, `GET /g ${sha('')}`]);
      expect(a.seen.map((s) => s.body)).toEqual(['wikipedia', 'abc', '']);
    }
  });

  it('relays a backend response split at every byte boundary, chunked and by length', async () => {
    const chunked =
      'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n';
    const sized = 'HTTP/1.1 201 Created\r\nContent-Length: 9\r\nX-A: b\r\n\r\nwikipedia';
    const b = await rawBackend((url) => {
      const [, kind, at] = url.split('/');
      const text = kind === 'chunked' ? chunked : sized;
      const i = Number(at);
      return [text.slice(0, i), text.slice(i)];
    });
    const proxy = await proxyOf([b.spec]);
    const base = `http://127.0.0.1:${proxy.address.port}`;
    for (const [kind, text] of [
      ['chunked', chunked],
      ['sized', sized],
    ] as const) {
      for (let i = 1; i < text.length; i++) {
        const r = await fetch(`${base}/${kind}/${i}`);
        expect(await r.text(), `${kind} split at ${i}`).toBe('wikipedia');
        expect(r.status).toBe(kind === 'chunked' ? 200 : 201);
      }
    }
    // One kept-alive connection carried them all.
    expect(b.connections()).toBe(1);
  });

  it('relays random pipelines cut at random places (property)', async () => {
    const a = await echoBackend();
    const proxy = await proxyOf([a.spec]);
    const request = fc.record({
      kind: fc.constantFrom('get', 'length', 'chunked'),
      path: fc.stringMatching(/^\/[a-z0-9]{0,8}$/),
      body: fc.string({ maxLength: 40 }).map((s) => s.replace(/[^\x20-\x7e]/g, 'x')),
      chunks: fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 4 }),
      // Past 32 header lines the parser hands them over in batches.
      extraHeaders: fc.integer({ min: 0, max: 40 }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(request, { minLength: 1, maxLength: 4 }),
        fc.array(fc.nat(), { maxLength: 4 }),
        async (requests, cuts) => {
          a.seen.length = 0;
          const expected: { method: string; url: string; body: string }[] = [];
          let text = '';
          requests.forEach((r, i) => {
            const last = i === requests.length - 1;
            let head = `${r.kind === 'get' ? 'GET' : 'POST'} ${r.path} HTTP/1.1\r\nHost: h\r\n`;
            for (let h = 0; h < r.extraHeaders; h++) head += `X-H${h}: v${h}\r\n`;
            if (last) head += 'Connection: close\r\n';
            let body = '';
            if (r.kind === 'length') {
              body = r.body;
              text += `${head}Content-Length: ${body.length}\r\n\r\n${body}`;
            } else if (r.kind === 'chunked') {
              body = r.body;
              let rest = body;
              let chunked = '';
              for (let c = 0; rest.length > 0; c++) {
                const n = r.chunks[c % r.chunks.length]!;
                chunked += `${Math.min(n, rest.length).toString(16)}\r\n${rest.slice(0, n)}\r\n`;
                rest = rest.slice(n);
              }
              text += `${head}Transfer-Encoding: chunked\r\n\r\n${chunked}0\r\n\r\n`;
            } else text += `${head}\r\n`;
            expected.push({ method: r.kind === 'get' ? 'GET' : 'POST', url: r.path, body });
          });
          const points = [...new Set(cuts.map((c) => c % text.length))]
            .filter((c) => c > 0)
            .sort((x, y) => x - y);
          const pieces: string[] = [];
          let from = 0;
          for (const p of points) {
            pieces.push(text.slice(from, p));
            from = p;
          }
          pieces.push(text.slice(from));
          const out = await exchange(proxy.address.port, pieces);
          expect(bodies(out).map((r) => r.body)).toEqual(
            expected.map((e) => `${e.method} ${e.url} ${sha(e.body)}`),
          );
          expect(a.seen.map((s) => ({ method: s.method, url: s.url, body: s.body }))).toEqual(
            expected,
          );
          // Every header line arrived, those after the parser's first batch of 32 included.
          a.seen.forEach((s, i) => {
            const n = requests[i]!.extraHeaders;
            expect(Object.keys(s.headers).filter((k) => k.startsWith('x-h'))).toHaveLength(n);
            if (n > 0) expect(s.headers[`x-h${n - 1}`]).toBe(`v${n - 1}`);
          });
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('HttpProxy: responses framed anew and connections reused', () => {
  it('re-chunks a response without Content-Length for HTTP/1.1, delimits it by the close for HTTP/1.0; HEAD keeps its length', async () => {
    const server = http.createServer((req, res) => {
      if (req.method === 'HEAD') {
        res.writeHead(200, { 'content-length': '10' });
        res.end();
        return;
      }
      res.write('part1-');
      setImmediate(() => res.end('part2'));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          server.close(() => r());
          server.closeAllConnections();
        }),
    );
    const port = (server.address() as AddressInfo).port;
    const proxy = await proxyOf([{ id: 'a', host: '127.0.0.1', port, weight: 1 }]);
    const p = proxy.address.port;
    const v11 = await exchange(p, ['GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n']);
    expect(v11).toMatch(/\r\ntransfer-encoding: chunked\r\n/i);
    expect(v11.slice(v11.indexOf('\r\n\r\n') + 4)).toBe('6\r\npart1-\r\n5\r\npart2\r\n0\r\n\r\n');
    const v10 = await exchange(p, ['GET / HTTP/1.0\r\nHost: h\r\n\r\n']);
    expect(v10).not.toMatch(/transfer-encoding/i);
    expect(v10).toMatch(/\r\nconnection: close\r\n/i);
    expect(v10.slice(v10.indexOf('\r\n\r\n') + 4)).toBe('part1-part2');
    // HEAD: the length is the GET's; no body follows, so the next response is intact.
    const head = await exchange(p, [
      'HEAD / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
    ]);
    const first = head.indexOf('\r\n\r\n');
    expect(head.slice(0, first)).toMatch(/\r\ncontent-length: 10/i);
    expect(head.slice(first + 4)).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('keeps backend connections alive, and never reuses one that sent bytes past its response', async () => {
    const a = await echoBackend();
    const proxy = await proxyOf([a.spec]);
    const base = `http://127.0.0.1:${proxy.address.port}`;
    for (let i = 0; i < 20; i++) expect((await fetch(`${base}/k${i}`)).status).toBe(200);
    expect(a.connections()).toBe(1);
    // A backend that answers, then sends a second unasked response.
    const b = await rawBackend(() => [
      'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil',
    ]);
    const proxy2 = await proxyOf([b.spec]);
    const base2 = `http://127.0.0.1:${proxy2.address.port}`;
    for (let i = 0; i < 3; i++) expect(await (await fetch(`${base2}/s${i}`)).text()).toBe('ok');
    expect(b.connections()).toBe(3);
  });

  it('finds the body of a response read whole whatever comes before or after it in the read', async () => {
    // A response whose head and body come in one read is relayed from the read buffer
    // (upstream.ts, inlineBody): these shapes put other bytes around it.
    const shapes: Record<string, string> = {
      // CR/LF before a message are skipped by the parser.
      crlf: '\r\n\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nwiki',
      // 1xx responses before the final one.
      early:
        'HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\npedia',
      // The start of an unasked second response: relayed as is, the connection is not reused.
      partial: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 2',
      // No body whatever Content-Length says, and the bytes after it are not one.
      notModified: 'HTTP/1.1 304 Not Modified\r\nContent-Length: 4\r\n\r\n',
    };
    const b = await rawBackend((url) => [shapes[url.slice(1)] ?? 'HTTP/1.1 404 x\r\n\r\n']);
    const proxy = await proxyOf([b.spec]);
    const base = `http://127.0.0.1:${proxy.address.port}`;
    const got = async (path: string): Promise<[number, string]> => {
      const r = await fetch(`${base}/${path}`);
      return [r.status, await r.text()];
    };
    expect(await got('crlf')).toEqual([200, 'wiki']);
    expect(await got('early')).toEqual([200, 'pedia']);
    expect(await got('notModified')).toEqual([304, '']);
    expect(await got('crlf')).toEqual([200, 'wiki']);
    expect(b.connections()).toBe(1);
    expect(await got('partial')).toEqual([200, 'ok']);
    expect(await got('crlf')).toEqual([200, 'wiki']);
    expect(b.connections()).toBe(2);
  });

  it('answers a client that shut its side right after its requests, then closes', async () => {
    const a = await echoBackend();
    const proxy = await proxyOf([a.spec]);
    const out = await new Promise<string>((resolve, reject) => {
      const s = net.connect({ port: proxy.address.port, host: '127.0.0.1', allowHalfOpen: true });
      let text = '';
      s.on('data', (d: Buffer) => (text += d.toString('latin1')));
      s.on('error', reject);
      s.on('close', () => resolve(text));
      s.end('GET /h1?d=20 HTTP/1.1\r\nHost: h\r\n\r\nGET /h2 HTTP/1.1\r\nHost: h\r\n\r\n');
    });
    expect(bodies(out).map((r) => r.body)).toEqual([
      `GET /h1?d=20 ${sha('')}`,
      `GET /h2 ${sha('')}`,
    ]);
  });

  it('answers Expect: 100-continue itself, then relays', async () => {
    const a = await echoBackend();
    const proxy = await proxyOf([a.spec]);
    const out = await exchange(proxy.address.port, [
      'POST /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\nConnection: close\r\n\r\n',
      'abc',
    ]);
    expect(out).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /);
    expect(a.seen.map((s) => [s.body, s.headers.expect])).toEqual([['abc', undefined]]);
  });
});
