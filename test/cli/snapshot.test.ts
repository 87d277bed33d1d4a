/**
 * `cohort snapshot save` from a cluster under write load, then `snapshot
 * restore --dir` and `cohort up --dir` on it: the new cluster holds every
 * key written up to the snapshot's revision, and none written after.
 */
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../harness/cli.js';
import { tempDir } from '../harness/tmp.js';
import { KvTestCluster } from '../kv/kv-cluster.js';

function portFree(port: number): Promise<boolean> {
  return new Promise((r) => {
    const s = net.createServer();
    s.once('error', () => r(false));
    s.listen(port, '127.0.0.1', () => s.close(() => r(true)));
  });
}

/** A base port whose raft (base+1..3) and RPC (base+101..103) ports are free. */
async function freeBase(): Promise<number> {
  for (;;) {
    const base = 20_000 + Math.floor(Math.random() * 20_000);
    const ports = [1, 2, 3, 101, 102, 103].map((i) => base + i);
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) return base;
  }
}

const stops: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const s of stops.reverse()) await s();
});

describe('cohort snapshot', () => {
  it('save under write load, restore into a new cluster, up: every key up to the revision is there', async () => {
    const source = await KvTestCluster.start(3);
    stops.push(() => source.close());
    await source.leader();
    const kv = await source.client();
    const written: { key: string; revision: number }[] = [];
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        const key = `k/${String(i).padStart(5, '0')}`;
        written.push({ key, revision: (await kv.put(key, `v${i}`)).revision });
      }
    })();
    while (written.length < 30) await new Promise((r) => setTimeout(r, 20));

    const dir = tempDir('cohort-snapcli-');
    const file = join(dir, 'backup.snap');
    const env = { COHORT_ENDPOINTS: source.endpoints().join(',') };
    const save = await runCli(['snapshot', 'save', file, '-w', 'json'], env);
    writing = false;
    await writer;
    expect(save.code, save.stderr).toBe(0);
    const meta = JSON.parse(save.stdout) as { revision: number; sha256: string };
    const status = await runCli(['snapshot', 'status', file]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(`revision ${meta.revision}`);
    const expected = written.filter((w) => w.revision <= meta.revision).map((w) => w.key);
    expect(expected.length).toBeGreaterThanOrEqual(30);

    const restored = join(dir, 'restored');
    const restore = await runCli(['snapshot', 'restore', file, '--dir', restored]);
    expect(restore.code, restore.stderr).toBe(0);
    expect((await runCli(['snapshot', 'restore', file, '--dir', restored])).code).toBe(1); // not empty

    const up = await runCli([
      'up',
      '--detach',
      '--dir',
      restored,
      '--base-port',
      String(await freeBase()),
      '--workers',
      '1',
    ]);
    stops.push(() => runCli(['down', '--dir', restored]));
    expect(up.code, up.stdout + up.stderr).toBe(0);
    const got = await runCli(['kv', 'get', 'k/', '--prefix', '--keys-only', '--dir', restored]);
    expect(got.code, got.stderr).toBe(0);
    expect(got.stdout.trimEnd().split('\n')).toEqual(expected);
  });
});
