/**
 * The node composition in-process: a single-node cluster elects itself and
 * answers Node.status and Node.health over TCP; refused starts (port in use,
 * a data dir that is not a directory, a WAL of another cluster) give clear
 * errors and leave the ports free; a second node on a data dir in use is
 * refused.
 */
import net from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { isCohortError } from '../../src/lib/errors.js';
import { StatusPoller } from '../../src/node/cluster.js';
import { resolveNodeConfig } from '../../src/node/config.js';
import { startNode } from '../../src/node/node.js';
import type { CohortNode } from '../../src/node/node.js';
import { NodeService } from '../../src/node/node-service.js';
import { encodeKvEntry } from '../../src/host/kv-state-machine.js';
import { kvKey, kvText } from '../../src/kv/core/bytes.js';
import { startTcpClient } from '../../src/rpc/tcp-endpoints.js';
import { freePort } from '../transport/tcp-harness.js';
import { tempDir } from '../harness/tmp.js';
import { waitUntil } from '../harness/wait.js';

const silent = pino({ level: 'silent' });
const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.allSettled(open.splice(0).map((c) => c.close()));
});

async function config(o: { dataDir?: string; clusterId?: string; listen?: number } = {}) {
  return resolveNodeConfig({
    flags: {
      id: 'n1',
      dataDir: o.dataDir ?? tempDir('cohort-node-'),
      listen: `127.0.0.1:${o.listen ?? (await freePort())}`,
      rpc: `127.0.0.1:${await freePort()}`,
      tickMs: '5',
      insecure: true,
      ...(o.clusterId === undefined ? {} : { clusterId: o.clusterId }),
    },
    env: {},
  });
}

async function start(c: Awaited<ReturnType<typeof config>>): Promise<CohortNode> {
  const node = await startNode(c, { logger: silent });
  open.push(node);
  return node;
}

async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    if (!isCohortError(e)) throw e;
    return { code: e.code, message: e.message };
  }
  throw new Error('the node started');
}

function until<T>(f: () => Promise<T | undefined> | T | undefined): Promise<T> {
  return waitUntil('the condition', f);
}

describe('node composition', () => {
  it('a single node elects itself and serves status and health over TCP', async () => {
    const c = await config();
    await start(c);
    const poller = await StatusPoller.connect(
      [{ id: 'n1', listen: c.listen, rpc: c.rpc, dataDir: '' }],
      'cohort-local',
    );
    open.push(poller);
    const status = await until(async () => {
      const [r] = await poller.poll(1000);
      return r?.ok === true && r.status.role === 'leader' && r.status.commitIndex >= 1
        ? r.status
        : undefined;
    });
    expect(status).toMatchObject({ id: 'n1', leader: 'n1', members: ['n1'], state: 'running' });
    expect(status.commitIndex).toBeGreaterThanOrEqual(1);
    const client = await startTcpClient({
      server: { id: 'n1', host: c.rpc.host, port: c.rpc.port },
      clusterId: 'cohort-local',
    });
    open.push(client);
    expect(await client.client(NodeService, client.serverId).health({})).toEqual({
      ok: true,
      id: 'n1',
      state: 'running',
    });
  });

  it('says which port is in use, and frees what it opened', async () => {
    const blocker = net.createServer();
    const port = await freePort();
    await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', r));
    try {
      const c = await config({ listen: port });
      const r = await refusal(start(c));
      expect(r.code).toBe('UNAVAILABLE');
      expect(r.message).toContain(`port ${port} is in use`);
      // The RPC port was never bound or was released: a node can take it now.
      const again = await config();
      await start({ ...again, rpc: c.rpc });
    } finally {
      blocker.close();
    }
  });

  it('refuses a data dir that is not a directory', async () => {
    const file = join(tempDir('cohort-node-'), 'plain-file');
    writeFileSync(file, 'x');
    const r = await refusal(start(await config({ dataDir: file })));
    expect(r.code).toBe('FAILED_PRECONDITION');
    expect(r.message).toMatch(/data dir .*plain-file/);
  });

  it('refuses a data dir written by another cluster, and frees its ports', async () => {
    const dataDir = tempDir('cohort-node-');
    const first = await start(await config({ dataDir, clusterId: 'alpha' }));
    await until(() => (first.status().role === 'leader' ? true : undefined));
    await first.close();
    const c = await config({ dataDir, clusterId: 'beta' });
    const r = await refusal(start(c));
    expect(r.code).toBe('FAILED_PRECONDITION');
    expect(r.message).toMatch(/belongs to another cluster or node.*cluster alpha/);
    // Same dir, right cluster id, same ports: starts, and recovers its log.
    const again = await start({ ...c, clusterId: first.config.clusterId });
    expect(again.status().lastIndex).toBeGreaterThanOrEqual(1);
  });

  it('refuses a second node on the same data dir, naming the lock and the holder, and frees its ports', async () => {
    const dataDir = tempDir('cohort-node-');
    const first = await start(await config({ dataDir }));
    const c = await config({ dataDir });
    const r = await refusal(start(c));
    expect(r.code).toBe('FAILED_PRECONDITION');
    expect(r.message).toContain(`data dir ${dataDir} is in use by another cohort node`);
    expect(r.message).toContain(`pid ${process.pid}`);
    expect(r.message).toContain(`lock ${join(dataDir, 'LOCK')}`);
    // Once the first is closed, the dir is free, and the refused node's ports were never taken.
    await first.close();
    const again = await start(c);
    expect(again.status().lastIndex).toBeGreaterThanOrEqual(0);
  });

  it('applies KV commands through Raft and the WAL, refusing undecodable entries', async () => {
    const c = await config();
    const first = await start(c);
    await until(() => (first.status().role === 'leader' ? true : undefined));
    const put = await first.raft.propose(
      encodeKvEntry({ command: { type: 'put', key: kvKey('a'), value: kvKey('1') } }),
    );
    expect(put).toMatchObject({ ok: true, revision: 1 });
    const junk = await first.raft.propose(Uint8Array.of(0xc1));
    expect(junk).toMatchObject({ ok: false, error: { code: 'DECODE_ERROR' }, revision: 1 });
    expect(first.status().revision).toBe(1);
    await first.close();

    // Restarted from its data dir, it replays the log into a fresh state machine.
    const second = await start(c);
    await until(() => (second.status().role === 'leader' ? true : undefined));
    const value = await second.raft.read((sm) => sm.kv.read({ type: 'range', key: kvKey('a') }));
    expect(value.kvs.map((kv) => kvText(kv.value))).toEqual(['1']);
  });
});
