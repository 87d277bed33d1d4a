/** list-max: the classic RPC, over memory and over TCP with separate client and server nodes, binary and HTTP. */
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { nodeId } from '../../src/lib/ids.js';
import { HttpGateway } from '../../src/rpc/http-gateway.js';
import { harnesses } from '../../test/rpc/harness.js';
import type { RpcHarness } from '../../test/rpc/harness.js';
import { call, serve } from './cli.js';
import { ListMax, listMaxHandlers, VALUES_MAX } from './service.js';

describe.each(harnesses)('list-max (%o)', (make) => {
  let h: RpcHarness | undefined;
  afterEach(async () => {
    await h?.cleanup();
  });

  it('answers like a local call, and refuses malformed input with the field path', async () => {
    h = make();
    const server = await h.node('a');
    server.serve(ListMax, listMaxHandlers);
    const client = (await h.node('b')).client(ListMax, nodeId('a'));
    expect(await client.listMax({ values: [3, 9, 4, 9] })).toEqual({ max: 9, index: 1 });
    expect(await client.listMax({ values: [-5] })).toEqual({ max: -5, index: 0 });
    for (const [values, path] of [
      [[], '/values'],
      ['nope', '/values'],
      [[1, 'two'], '/values/1'],
      [Array<number>(VALUES_MAX + 1).fill(1), '/values'],
    ] as const) {
      await expect(client.listMax({ values } as never)).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
        definite: true,
        details: { path },
      });
    }
  });
});

describe('list-max over TCP (the CLI functions: separate server and dial-only client)', () => {
  it('serve, then call as if local', async () => {
    const quiet = new PassThrough().resume();
    const srv = await serve({ host: '127.0.0.1', port: 0 }, quiet);
    const out = new PassThrough();
    let text = '';
    out.on('data', (d: Buffer) => (text += d.toString()));
    try {
      const r = await call({ host: '127.0.0.1', port: srv.port, values: [3, 9, 4] }, out);
      expect(r).toEqual({ max: 9, index: 1 });
      expect(text).toBe('max 9 at index 1\n');
    } finally {
      await srv.close();
    }
  });
});

describe('list-max through the HTTP gateway', () => {
  it('POST /rpc/ListMax/listMax', async () => {
    const h = harnesses[0]?.() as RpcHarness;
    const node = await h.node('a');
    node.serve(ListMax, listMaxHandlers);
    const gw = await HttpGateway.start(node, { port: 0 });
    try {
      const url = `http://127.0.0.1:${gw.address.port}/rpc/ListMax/listMax`;
      const ok = await fetch(url, { method: 'POST', body: '{"values":[3,9,4]}' });
      expect(await ok.json()).toEqual({ max: 9, index: 1 });
      const bad = await fetch(url, { method: 'POST', body: '{"values":[3,"x"]}' });
      expect(bad.status).toBe(400);
      expect(await bad.json()).toMatchObject({
        error: { code: 'INVALID_ARGUMENT', details: { path: '/values/1' } },
      });
    } finally {
      await gw.close();
      await h.cleanup();
    }
  });
});
