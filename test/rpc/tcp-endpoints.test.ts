/**
 * A dial-only TCP client (startTcpClient, what the CLI and examples use)
 * dials before it sends: a call to a server that is not running fails at
 * once, definite, saying the connection was refused; one to a server of
 * another cluster says so (HANDSHAKE_FAILED) — neither waits out its
 * deadline to end as an unexplained TIMEOUT.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { isCohortError } from '../../src/lib/errors.js';
import type { RpcNode } from '../../src/rpc/node.js';
import { startTcpClient, startTcpServer } from '../../src/rpc/tcp-endpoints.js';
import { freePort } from '../transport/tcp-harness.js';
import { Observed, TestService } from './harness.js';

const open: RpcNode[] = [];
afterEach(async () => {
  for (const n of open.splice(0)) await n.close();
});

async function failure(
  p: Promise<unknown>,
): Promise<{ code: string; definite: boolean; message: string }> {
  try {
    await p;
  } catch (e) {
    if (!isCohortError(e)) throw e;
    return { code: e.code, definite: e.definite, message: e.message };
  }
  throw new Error('the call succeeded');
}

describe('startTcpClient', () => {
  it('a server that is not running: UNAVAILABLE (connection refused), definite, not TIMEOUT', async () => {
    const port = await freePort();
    const c = await startTcpClient({ server: { id: 's', host: '127.0.0.1', port } });
    open.push(c);
    const err = await failure(
      c.client(TestService, c.serverId).echo({ text: 'x', n: 1 }, { timeoutMs: 5000 }),
    );
    expect(err).toMatchObject({ code: 'UNAVAILABLE', definite: true });
    expect(err.message).toMatch(/connection refused/);
  });

  it('a server of another cluster: HANDSHAKE_FAILED, definite', async () => {
    const s = await startTcpServer({ id: 's', port: 0, clusterId: 'theirs' });
    open.push(s);
    s.serve(TestService, new Observed().handlers());
    const c = await startTcpClient({
      server: { id: 's', host: '127.0.0.1', port: s.address.port },
      clusterId: 'ours',
    });
    open.push(c);
    const err = await failure(
      c.client(TestService, c.serverId).echo({ text: 'x', n: 1 }, { timeoutMs: 5000 }),
    );
    expect(err).toMatchObject({ code: 'HANDSHAKE_FAILED', definite: true });
  });

  it('the same server in the same cluster answers', async () => {
    const s = await startTcpServer({ id: 's', port: 0, clusterId: 'ours' });
    open.push(s);
    s.serve(TestService, new Observed().handlers());
    const c = await startTcpClient({
      server: { id: 's', host: '127.0.0.1', port: s.address.port },
      clusterId: 'ours',
    });
    open.push(c);
    expect(await c.client(TestService, c.serverId).echo({ text: 'x', n: 1 })).toEqual({
      text: 'x',
      n: 1,
    });
  });
});
