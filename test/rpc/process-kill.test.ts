/**
 * Real processes: the server is a child process on 127.0.0.1; it is killed
 * (SIGKILL) while a call is in flight. The caller must get an indefinite
 * error (CONNECTION_LOST), and a retry policy must not re-send the
 * non-idempotent call.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { RpcNode } from '../../src/rpc/node.js';
import { EndpointPolicy, resilientClient } from '../../src/rpc/resilience.js';
import { startTcpClient } from '../../src/rpc/tcp-endpoints.js';
import { freePort } from '../transport/tcp-harness.js';
import { rejection } from './harness.js';
import { Slow } from './fixtures/slow-service.js';
import { conditionWaitMs } from '../harness/wait.js';

const script = fileURLToPath(new URL('./fixtures/server-process.ts', import.meta.url));

function startServer(port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', script, String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('READY')) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`server exited early (${code})`)));
  });
}

describe('server process killed mid-call (TCP, real process)', () => {
  let child: ChildProcess | undefined;
  let client: (RpcNode & { serverId: RpcNode['self'] }) | undefined;
  afterEach(async () => {
    child?.kill('SIGKILL');
    await client?.close();
  });

  it('gives an indefinite CONNECTION_LOST and is not retried (non-idempotent)', async () => {
    const port = await freePort();
    child = await startServer(port);
    client = await startTcpClient({
      server: { id: 'proc-server', host: '127.0.0.1', port },
      id: 'client-0',
    });
    const plain = client.client(Slow, client.serverId);
    const { pid } = await plain.ping({});
    expect(pid).toBe(child.pid);
    const policy = new EndpointPolicy({ retry: { attempts: 5, baseDelayMs: 1 }, breaker: false });
    const stub = resilientClient(client, Slow, client.serverId, policy);
    const outcome = rejection(stub.hang({}, { timeoutMs: conditionWaitMs }));
    // Make sure the request reached the server before killing it.
    await plain.ping({});
    const exited = new Promise((r) => child?.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    const err = await outcome;
    expect([err.code, err.definite]).toEqual(['CONNECTION_LOST', false]);
    expect(policy.retries).toBe(0);
  });
});
