/** The ready-made interceptors: metrics on both sides, the token auth hook, logging. */
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { nodeId } from '../../src/lib/ids.js';
import {
  clientLogging,
  requireToken,
  RpcMetrics,
  sendToken,
  serverLogging,
} from '../../src/rpc/interceptors.js';
import { memoryHarness, Observed, rejection, TestService } from './harness.js';
import type { RpcHarness } from './harness.js';

describe('ready-made interceptors', () => {
  let h: RpcHarness;
  afterEach(async () => {
    await h.cleanup();
  });

  it('counts calls and errors per method on both sides, and exports Prometheus text', async () => {
    h = memoryHarness();
    const metrics = new RpcMetrics();
    const server = await h.node('a', { server: { interceptors: [metrics.server()] } });
    server.serve(TestService, new Observed().handlers());
    const client = await h.node('b', { client: { interceptors: [metrics.client()] } });
    const stub = client.client(TestService, nodeId('a'));
    await stub.echo({ text: 'x' });
    await stub.echo({ text: 'y' });
    await rejection(stub.fail({ code: 'NOT_FOUND' }));
    expect(metrics.calls('client', 'Test.echo')).toBe(2);
    expect(metrics.calls('server', 'Test.echo')).toBe(2);
    const text = metrics.prometheus();
    expect(text).toContain('cohort_rpc_calls_total{side="server",rpc="Test.echo"} 2');
    expect(text).toContain(
      'cohort_rpc_errors_total{side="client",rpc="Test.fail",code="NOT_FOUND"} 1',
    );
    expect(text).toContain('cohort_rpc_seconds_count{side="server",rpc="Test.fail"} 1');
  });

  it('requireToken refuses calls without the token; sendToken supplies it; logging records failures', async () => {
    h = memoryHarness();
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    const logger = pino({ level: 'debug' }, sink);
    const server = await h.node('a', {
      server: { interceptors: [serverLogging(logger), requireToken('t0k')] },
    });
    server.serve(TestService, new Observed().handlers());
    const anon = (await h.node('b', { client: { interceptors: [clientLogging(logger)] } })).client(
      TestService,
      nodeId('a'),
    );
    const err = await rejection(anon.echo({ text: 'x' }));
    expect([err.code, err.definite]).toEqual(['PERMISSION_DENIED', true]);
    const authed = (await h.node('c', { client: { interceptors: [sendToken('t0k')] } })).client(
      TestService,
      nodeId('a'),
    );
    expect(await authed.echo({ text: 'ok' })).toEqual({ text: 'ok' });
    const logged = lines.map((l) => JSON.parse(l) as { msg: string; code?: string });
    expect(logged.some((l) => l.msg === 'rpc call failed' && l.code === 'PERMISSION_DENIED')).toBe(
      true,
    );
    expect(logged.some((l) => l.msg === 'rpc served')).toBe(true);
  });
});
