/**
 * `Kv.snapshot` and snapshot files: a snapshot streamed from a cluster under
 * write load holds exactly the writes up to its revision; a node restored
 * from the file serves them; a damaged file or a used data dir is refused.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { KvClient } from '../../src/kv/client.js';
import { kvText } from '../../src/kv/core/bytes.js';
import { resolveNodeConfig } from '../../src/node/config.js';
import { startNode } from '../../src/node/node.js';
import {
  readSnapshotFile,
  restoreDataDir,
  SnapshotFileWriter,
} from '../../src/node/snapshot-file.js';
import { KvTestCluster } from '../kv/kv-cluster.js';
import { tempDir } from '../harness/tmp.js';
import { freePort } from '../transport/tcp-harness.js';

const cleanup: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

describe('snapshot save and restore', () => {
  it('a snapshot taken under write load holds every write up to its revision and none after; a restored node serves them', async () => {
    const cluster = await KvTestCluster.start(3);
    cleanup.push(() => cluster.close());
    await cluster.leader();
    const kv = await cluster.client();
    const written: { key: string; revision: number }[] = [];
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        const key = `k/${String(i).padStart(5, '0')}`;
        const r = await kv.put(key, `v${i}`);
        written.push({ key, revision: r.revision });
      }
    })();
    while (written.length < 50) await new Promise((r) => setTimeout(r, 10));

    const dir = tempDir('cohort-snap-');
    const path = join(dir, 'backup.snap');
    const w = SnapshotFileWriter.create(path);
    const info = await kv.snapshot({ start: () => w.reset(), write: (c) => w.write(c) });
    w.finish({ ...info, clusterId: 'cohort-local' });
    const after = written.length;
    while (written.length < after + 20) await new Promise((r) => setTimeout(r, 10));
    writing = false;
    await writer;

    const file = readSnapshotFile(path);
    expect(file.meta).toMatchObject({
      revision: info.revision,
      bytes: info.bytes,
      sha256: info.sha256,
    });
    const inSnapshot = written.filter((x) => x.revision <= info.revision).map((x) => x.key);
    expect(inSnapshot.length).toBeGreaterThanOrEqual(50);
    expect(inSnapshot.length).toBeLessThan(written.length);

    // A new one-node cluster from the file.
    const dataDir = join(dir, 'n1');
    await restoreDataDir({
      snapshot: file,
      dataDir,
      nodeId: 'n1',
      members: ['n1'],
      clusterId: 'restored',
    });
    const rpc = await freePort();
    const node = await startNode(
      resolveNodeConfig({
        flags: {
          id: 'n1',
          dataDir,
          clusterId: 'restored',
          listen: `127.0.0.1:${await freePort()}`,
          rpc: `127.0.0.1:${rpc}`,
          tickMs: '20',
          electionTicks: '10',
          insecure: true,
        },
        env: {},
      }),
      { logger: pino({ level: 'silent' }), modules: [] },
    );
    cleanup.push(() => node.close());
    const restored = await KvClient.connect({
      endpoints: [`n1=127.0.0.1:${rpc}`],
      clusterId: 'restored',
    });
    cleanup.push(() => restored.close());
    const r = await restored.range('k/', { prefix: true });
    expect(r.kvs.map((x) => kvText(x.key))).toEqual(inSnapshot);
    expect(r.revision).toBeGreaterThanOrEqual(info.revision);
    // And it takes new writes.
    expect((await restored.put('new', '1')).revision).toBeGreaterThan(info.revision);

    // A used data dir is refused; so is a damaged file.
    await expect(
      restoreDataDir({ snapshot: file, dataDir, nodeId: 'n1', members: ['n1'], clusterId: 'x' }),
    ).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    const bytes = readFileSync(path);
    bytes[20] = (bytes[20] ?? 0) ^ 0xff;
    writeFileSync(join(dir, 'bad.snap'), bytes);
    expect(() => readSnapshotFile(join(dir, 'bad.snap'))).toThrow(/not a valid cohort snapshot/);
  });
});
