/**
 * The HTTP/JSON gateway over both transports: listing with JSON Schemas,
 * calls, streams as NDJSON, and bad input (bad JSON, schema violations,
 * unknown methods, oversize bodies) answered with 4xx, code and field path.
 */
import http from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitFor } from '../transport/compliance.js';
import { testLogger } from '../transport/tcp-harness.js';
import { Type } from '@sinclair/typebox';
import { CohortError } from '../../src/lib/errors.js';
import { limits } from '../../src/lib/limits.js';
import { defineService, unary } from '../../src/rpc/service.js';
import { HttpGateway } from '../../src/rpc/http-gateway.js';
import { RpcMetrics } from '../../src/rpc/interceptors.js';
import type { RpcNode } from '../../src/rpc/node.js';
import { harnesses, Observed, TestService } from './harness.js';
import type { RpcHarness } from './harness.js';

describe.each(harnesses)('http gateway (%o)', (make) => {
  let h: RpcHarness;
  let node: RpcNode;
  let gw: HttpGateway;
  let base: string;
  let obs: Observed;

  beforeEach(async () => {
    h = make();
    node = await h.node('a');
    obs = new Observed();
    node.serve(TestService, obs.handlers());
    gw = await HttpGateway.start(node, { port: 0, bodyBytesMax: 4096, logger: testLogger() });
    base = `http://127.0.0.1:${gw.address.port}`;
  });
  afterEach(async () => {
    await gw.close();
    await h.cleanup();
  });

  const post = async (
    path: string,
    body: string,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; json: unknown; text: string }> => {
    const r = await fetch(`${base}${path}`, { method: 'POST', body, headers });
    const text = await r.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: r.status, json, text };
  };

  it('GET /rpc lists services with their JSON Schemas', async () => {
    const r = await fetch(`${base}/rpc`);
    expect(r.status).toBe(200);
    const listing = (await r.json()) as {
      services: { name: string; methods: { name: string; kind: string; request: unknown }[] }[];
    };
    const test = listing.services.find((s) => s.name === 'Test');
    const echo = test?.methods.find((m) => m.name === 'echo');
    expect(echo).toMatchObject({
      kind: 'unary',
      idempotent: true,
      request: {
        type: 'object',
        required: ['text'],
        properties: { text: { type: 'string', maxLength: 1000 } },
      },
      response: { type: 'object' },
    });
    expect(test?.methods.find((m) => m.name === 'count')?.kind).toBe('stream');
  });

  it('POST calls a unary method with a JSON body', async () => {
    const r = await post('/rpc/Test/echo', JSON.stringify({ text: 'hello', n: 3 }));
    expect(r).toMatchObject({ status: 200, json: { text: 'hello', n: 3 } });
  });

  it('returns reply metadata as one x-cohort-reply-meta JSON header, any characters escaped', async () => {
    node.intercept(async (call, next) => {
      call.setReplyMeta('plain', 'v');
      call.setReplyMeta('odd', 'é\nü\u007f');
      return next();
    });
    const r = await fetch(`${base}/rpc/Test/echo`, { method: 'POST', body: '{"text":"x"}' });
    expect(r.status).toBe(200);
    const header = r.headers.get('x-cohort-reply-meta') ?? '';
    expect(header).toMatch(/^[\x20-\x7e]+$/);
    expect(JSON.parse(header)).toEqual({ plain: 'v', odd: 'é\nü\u007f' });
  });

  it('streams as NDJSON', async () => {
    const r = await post('/rpc/Test/count', '{"n":3}');
    expect(r.status).toBe(200);
    expect(
      r.text
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as unknown),
    ).toEqual([{ i: 0 }, { i: 1 }, { i: 2 }]);
  });

  it('bad JSON, schema violations, oversize and unknown methods get 4xx with code and path', async () => {
    expect(await post('/rpc/Test/echo', '{"text":')).toMatchObject({
      status: 400,
      json: { error: { code: 'INVALID_ARGUMENT', definite: true, details: { path: '' } } },
    });
    expect(await post('/rpc/Test/echo', '{"text":42}')).toMatchObject({
      status: 400,
      json: { error: { code: 'INVALID_ARGUMENT', details: { path: '/text' } } },
    });
    expect(await post('/rpc/Test/echo', '{}')).toMatchObject({
      status: 400,
      json: { error: { code: 'INVALID_ARGUMENT', details: { path: '/text' } } },
    });
    expect(await post('/rpc/Test/echo', JSON.stringify({ text: 'x'.repeat(1001) }))).toMatchObject({
      status: 400,
      json: { error: { code: 'INVALID_ARGUMENT', details: { path: '/text' } } },
    });
    expect((await post('/rpc/Test/echo', JSON.stringify({ text: 'x'.repeat(5000) }))).status).toBe(
      413,
    );
    expect(await post('/rpc/Test/nope', '{}')).toMatchObject({
      status: 404,
      json: { error: { code: 'NOT_FOUND' } },
    });
    expect(
      await post('/rpc/Test/echo', '{"text":"ok"}', { 'x-cohort-timeout-ms': 'soon' }),
    ).toMatchObject({
      status: 400,
      json: { error: { code: 'INVALID_ARGUMENT', details: { path: 'x-cohort-timeout-ms' } } },
    });
    // Still serving.
    expect((await post('/rpc/Test/echo', '{"text":"ok"}')).status).toBe(200);
  });

  it('answers 431 to an 8 KiB x-cohort-meta-token header (and too many meta headers), and keeps serving', async () => {
    // The probe: this header made the gateway process exit (thrown out of the loopback drain).
    const long = await post('/rpc/Test/echo', '{"text":"a"}', {
      'x-cohort-meta-token': 't'.repeat(8 * 1024),
    });
    expect(long).toMatchObject({
      status: 431,
      json: {
        error: {
          code: 'INVALID_ARGUMENT',
          definite: true,
          details: { path: '/meta/token', header: 'x-cohort-meta-token', limit: 4096 },
        },
      },
    });
    const many: Record<string, string> = {};
    for (let i = 0; i <= limits.rpcMetaEntriesMax; i++) many[`x-cohort-meta-k${i}`] = 'v';
    expect(await post('/rpc/Test/echo', '{"text":"a"}', many)).toMatchObject({
      status: 431,
      json: { error: { code: 'INVALID_ARGUMENT', details: { path: '/meta' } } },
    });
    const longKey = { [`x-cohort-meta-${'k'.repeat(limits.rpcMetaKeyCharsMax + 1)}`]: 'v' };
    expect((await post('/rpc/Test/echo', '{"text":"a"}', longKey)).status).toBe(431);
    // At the bound is fine.
    expect(
      (
        await post('/rpc/Test/echo', '{"text":"a"}', {
          'x-cohort-meta-token': 't'.repeat(limits.rpcMetaValueCharsMax),
        })
      ).status,
    ).toBe(200);
    expect((await post('/rpc/Test/echo', '{"text":"ok"}')).status).toBe(200);
  });

  it('answers 400 to a body nested deeper than the wire allows, and 500 to a result JSON cannot carry', async () => {
    const Odd = defineService('Odd', {
      echo: unary(Type.Unknown(), Type.Unknown()),
      big: unary(Type.Object({}), Type.Unknown()),
    });
    node.serve(Odd, {
      echo: (v) => v,
      big: () => ({ n: 2n ** 60n }), // a bigint: MessagePack carries it, JSON does not
    });
    const nested = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth);
    expect((await post('/rpc/Odd/echo', nested(50))).status).toBe(200);
    expect(await post('/rpc/Odd/echo', nested(1_500))).toMatchObject({
      status: 400,
      json: { error: { code: 'INVALID_ARGUMENT' } },
    });
    expect(await post('/rpc/Odd/big', '{}')).toMatchObject({
      status: 500,
      json: { error: { code: 'INTERNAL' } },
    });
    expect((await post('/rpc/Test/echo', '{"text":"ok"}')).status).toBe(200);
  });

  it('refuses oversized call metadata from a binary client with INVALID_ARGUMENT, keeping the link', async () => {
    const client = await h.node('b');
    const stub = client.client(TestService, node.self);
    let err: unknown;
    try {
      await stub.echo({ text: 'a' }, { meta: { token: 't'.repeat(8 * 1024) } });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'INVALID_ARGUMENT', definite: true });
    expect(await stub.echo({ text: 'still' })).toEqual({ text: 'still' });
    expect(client.transport.counters.connectionsLost).toBe(0);
  });

  it('an HTTP client that goes away cancels its call on the server', async () => {
    const req = http.request(`${base}/rpc/Test/block`, { method: 'POST' });
    req.on('error', () => undefined);
    req.end('{"key":"gone"}');
    await waitFor(() => obs.started.has('gone'), 'handler started');
    req.destroy();
    await waitFor(() => obs.aborted.has('gone'), 'server abort');
    expect(obs.aborted.get('gone')).toBe('CANCELLED');
  });

  it('serves metrics at GET /metrics when given', async () => {
    const metrics = new RpcMetrics();
    node.intercept(metrics.server());
    const withMetrics = await HttpGateway.start(node, { port: 0, metrics });
    try {
      const at = `http://127.0.0.1:${withMetrics.address.port}`;
      await fetch(`${at}/rpc/Test/echo`, { method: 'POST', body: '{"text":"m"}' });
      const text = await (await fetch(`${at}/metrics`)).text();
      expect(text).toContain('cohort_rpc_calls_total{side="server",rpc="Test.echo"} 1');
      expect((await fetch(`${base}/metrics`)).status).toBe(404); // not configured there
    } finally {
      await withMetrics.close();
    }
  });

  it('maps handler errors, deadlines and metadata', async () => {
    expect(await post('/rpc/Test/fail', '{"code":"NOT_FOUND"}')).toMatchObject({
      status: 404,
      json: { error: { code: 'NOT_FOUND', definite: true } },
    });
    expect(
      await post('/rpc/Test/block', '{"key":"k"}', { 'x-cohort-timeout-ms': '30' }),
    ).toMatchObject({ status: 504, json: { error: { code: 'TIMEOUT', definite: false } } });
    node.intercept(async (call, next) => {
      if (call.meta.token !== 's3cret') throw new CohortError('PERMISSION_DENIED', 'token');
      return next();
    });
    expect((await post('/rpc/Test/echo', '{"text":"a"}')).status).toBe(403);
    expect(
      (await post('/rpc/Test/echo', '{"text":"a"}', { 'x-cohort-meta-token': 's3cret' })).status,
    ).toBe(200);
  });
});
