/**
 * The list-max example served by name, as processes: two instances
 * (`cohort example list-max serve --register`) against a real cluster; a
 * name-resolved client keeps calling while one instance is killed with
 * SIGKILL (it never deregisters: its lease lapses) and the other moves
 * (SIGTERM deregisters it; it comes back on another port under the same
 * id). No idempotent call fails, and the moved instance answers again.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INSTANCE_META } from '../../examples/list-max/cli.js';
import { ListMax } from '../../examples/list-max/service.js';
import { Naming } from '../../src/naming/naming.js';
import { runCli, startCli } from '../harness/cli.js';
import { freePort } from '../harness/process-cluster.js';
import { tempDir } from '../harness/tmp.js';
import type { CliProcess } from '../harness/cli.js';
import { waitUntil } from '../harness/wait.js';
import { KvTestCluster } from '../kv/kv-cluster.js';

let cluster: KvTestCluster;
const children: CliProcess[] = [];

beforeAll(async () => {
  cluster = await KvTestCluster.start(3);
  await cluster.leader();
});
afterAll(async () => {
  for (const c of children) if (c.child.exitCode === null) c.child.kill('SIGKILL');
  await cluster.close();
});

function serveInstance(id: string): CliProcess {
  const p = startCli([
    'example',
    'list-max',
    'serve',
    '--register',
    '--id',
    id,
    '--port',
    '0',
    '--ttl-ms',
    '1000',
    '--endpoints',
    cluster.endpoints().join(','),
    '--insecure',
  ]);
  children.push(p);
  return p;
}

const portOf = (p: CliProcess): number | undefined => {
  const m = /list-max server on [\d.]+:(\d+) as \S+, registered/.exec(p.out.stdout);
  return m === null ? undefined : Number(m[1]);
};

describe('list-max by name, as processes', () => {
  it('carries on through a kill -9 and a move with 0 failed calls', async () => {
    const a = serveInstance('lm-a');
    let b = serveInstance('lm-b');
    await waitUntil(
      'both instances registered',
      () => portOf(a) !== undefined && portOf(b) !== undefined,
    );
    const oldPortB = portOf(b);

    const naming = new Naming(await cluster.client(), { logger: pino({ level: 'silent' }) });
    const listMax = naming.service(ListMax);
    const servedBy = new Map<string, number>();
    const failures: unknown[] = [];
    let ok = 0;
    let stop = false;
    const lane = async (): Promise<void> => {
      for (let k = 0; !stop; k++) {
        try {
          let by = '?';
          const r = await listMax.listMax(
            { values: [k, k + 7, 3] },
            { onReplyMeta: (m) => (by = m[INSTANCE_META] ?? '?') },
          );
          if (r.max !== k + 7 || r.index !== 1)
            failures.push(new Error(`wrong answer ${JSON.stringify(r)}`));
          servedBy.set(by, (servedBy.get(by) ?? 0) + 1);
          ok++;
        } catch (e) {
          failures.push(e);
        }
      }
    };
    const lanes = Array.from({ length: 3 }, lane);
    const served = (id: string): number => servedBy.get(id) ?? 0;
    await waitUntil('both answer', () => served('lm-a') > 20 && served('lm-b') > 20);

    a.child.kill('SIGKILL');
    await a.exit;
    const bBefore = served('lm-b');
    await waitUntil('lm-b carries on', () => served('lm-b') > bBefore + 100);
    await waitUntil('lm-a expired', () =>
      naming
        .resolver('ListMax')
        .instances()
        .every((i) => i.id !== 'lm-a'),
    );

    b.child.kill('SIGTERM');
    expect(await b.exit).toBe(0);
    const bMoved = served('lm-b');
    b = serveInstance('lm-b');
    await waitUntil('lm-b registered again', () => portOf(b) !== undefined);
    expect(portOf(b)).not.toBe(oldPortB);
    await waitUntil('the moved lm-b answers', () => served('lm-b') > bMoved + 100);

    stop = true;
    await Promise.all(lanes);
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(300);
    await naming.close();
    b.child.kill('SIGTERM');
    expect(await b.exit).toBe(0);
  });

  it('cohort services lists what is registered and where; exit 5 for a name with none, 1 without a cluster', async () => {
    const c = serveInstance('lm-svc');
    await waitUntil('registered', () => portOf(c) !== undefined);
    const target = ['--endpoints', cluster.endpoints().join(','), '--insecure'];
    const table = await runCli(['services', ...target]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^SERVICE +INSTANCE +ADDRESS +NODE +WEIGHT +METADATA$/m);
    expect(table.stdout).toMatch(
      new RegExp(`^ListMax +lm-svc +127\\.0\\.0\\.1:${portOf(c)} `, 'm'),
    );
    const json = await runCli(['services', 'ListMax', '--json', ...target]);
    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.stdout) as { services: Record<string, { id: string }[]> };
    expect(parsed.services.ListMax?.map((i) => i.id)).toContain('lm-svc');
    const none = await runCli(['services', 'Nobody', ...target]);
    expect(none.code).toBe(5);
    expect(none.stdout).toBe('no instance of Nobody registered\n');
    const bad = await runCli(['services', 'bad/name', ...target]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('error: INVALID_ARGUMENT: bad service name "bad/name"\n');
    const nowhere = await runCli(
      [
        'services',
        '--endpoints',
        `n1=127.0.0.1:${await freePort()}`,
        '--insecure',
        '--timeout-ms',
        '1000',
      ],
      {},
    );
    expect(nowhere.code).toBe(1);
    expect(nowhere.stderr.trim().split('\n')).toHaveLength(1);
    expect(nowhere.stderr).toMatch(/^error: UNAVAILABLE: /);
    // A bad name is refused before connecting: a usage error even with no cluster there.
    const badNowhere = await runCli(
      ['services', 'bad name!', '--endpoints', `n1=127.0.0.1:${await freePort()}`, '--insecure'],
      {},
    );
    expect(badNowhere.code).toBe(2);
    expect(badNowhere.stderr).toBe('error: INVALID_ARGUMENT: bad service name "bad name!"\n');
    const noCluster = await runCli(['services', '--dir', tempDir('cohort-no-cluster-')]);
    expect(noCluster.code).toBe(1);
    expect(noCluster.stderr).toMatch(/^error: NOT_FOUND: no cluster found/);
    c.child.kill('SIGTERM');
    expect(await c.exit).toBe(0);
  });
});
