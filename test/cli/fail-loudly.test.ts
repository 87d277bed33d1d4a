/**
 * No silent success (issue 18): every client command, run as a user runs it
 * (its own process), exits non-zero with one `error: CODE: ...` line when it
 * could not do its work — every node down, or the nodes of another cluster —
 * and does its work when only the leader was killed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTcpServer } from '../../src/rpc/tcp-endpoints.js';
import { runCli, startCli } from '../harness/cli.js';
import type { CliRun } from '../harness/cli.js';
import { tempDir } from '../harness/tmp.js';
import { freePort } from '../transport/tcp-harness.js';
import { KvTestCluster } from '../kv/kv-cluster.js';

/** Every client command, with the arguments it needs (the cluster comes from COHORT_ENDPOINTS). */
function commands(): string[][] {
  const snap = `${tempDir('cohort-loud-')}/x.snap`;
  return [
    ['kv', 'put', 'a', '1'],
    ['kv', 'get', 'a'],
    ['kv', 'get', 'a', '-w', 'json'],
    ['kv', 'del', 'a'],
    ['kv', 'txn', '--if', 'value(a) == 1', '--then', 'put a 2'],
    ['kv', 'compact', '1'],
    ['kv', 'watch', 'a'],
    ['kv', 'lease', 'grant', '5'],
    ['kv', 'lease', 'revoke', '1'],
    ['kv', 'lease', 'ttl', '1'],
    ['kv', 'lease', 'list'],
    ['kv', 'lease', 'keep-alive', '1'],
    ['kv', 'lock', 'l', '--timeout-ms', '1500', '--', 'true'],
    ['status'],
    ['endpoint', 'status'],
    ['endpoint', 'health'],
    ['snapshot', 'save', snap],
  ];
}

/** Runs every command against COHORT_ENDPOINTS `endpoints`, a few at a time. */
async function runAll(
  endpoints: string,
  extraEnv: Record<string, string> = {},
): Promise<{ args: string[]; r: CliRun }[]> {
  const all = commands().map((c) => (c.includes('--') ? c : [...c, '--timeout-ms', '1500']));
  const results: { args: string[]; r: CliRun }[] = [];
  for (let i = 0; i < all.length; i += 3) {
    const batch = all.slice(i, i + 3);
    results.push(
      ...(await Promise.all(
        batch.map(async (args) => ({
          args,
          r: await runCli(args, { COHORT_ENDPOINTS: endpoints, ...extraEnv }),
        })),
      )),
    );
  }
  return results;
}

describe('no command exits 0 without having done its work', () => {
  it('every node down: exit 1, "connection refused", one error line, nothing on stdout for kv', async () => {
    const endpoints = `n1=127.0.0.1:${await freePort()},n2=127.0.0.1:${await freePort()}`;
    for (const { args, r } of await runAll(endpoints)) {
      const what = `cohort ${args.join(' ')}: ${r.stderr}`;
      expect(r.code, what).toBe(1);
      expect(r.stdout + r.stderr, what).toMatch(/connection refused/);
      if (args[0] === 'kv' || args[0] === 'snapshot') {
        expect(r.stderr, what).toMatch(/^error: UNAVAILABLE: [^\n]*\n$/);
        expect(r.stdout, what).toBe('');
      }
    }
  });

  it('the nodes there are another cluster: exit 1, HANDSHAKE_FAILED, never their data', async () => {
    const other = await startTcpServer({ id: 'n1', port: 0, clusterId: 'theirs' });
    try {
      const endpoints = `n1=127.0.0.1:${other.address.port}`;
      const some = [['kv', 'get', 'a'], ['kv', 'put', 'a', '1'], ['status']];
      for (const args of some) {
        const r = await runCli([...args, '--timeout-ms', '1500'], { COHORT_ENDPOINTS: endpoints });
        const what = `cohort ${args.join(' ')}: ${r.stderr}`;
        expect(r.code, what).toBe(1);
        expect(r.stdout + r.stderr, what).toMatch(/HANDSHAKE_FAILED/);
      }
    } finally {
      await other.close();
    }
  });

  describe('the leader killed', () => {
    let cluster: KvTestCluster;
    beforeAll(async () => {
      cluster = await KvTestCluster.start(3);
      const leader = await cluster.leader();
      await cluster.stop(leader.config.id);
    });
    afterAll(async () => {
      await cluster.close();
    });

    it('kv put, get, txn and lock fail over to the others and succeed', async () => {
      const env = { COHORT_ENDPOINTS: cluster.endpoints().join(',') };
      const put = await runCli(['kv', 'put', 'w/2', 'after-kill'], env);
      expect(put, put.stderr).toMatchObject({ code: 0 });
      expect(put.stdout).toMatch(/^OK \(revision \d+\)\n$/);
      expect(await runCli(['kv', 'get', 'w/2'], env)).toMatchObject({
        code: 0,
        stdout: 'after-kill\n',
      });
      const txn = await runCli(
        ['kv', 'txn', '--if', 'value("w/2") == "after-kill"', '--then', 'put w/3 "a b"'],
        env,
      );
      expect(txn, txn.stderr).toMatchObject({ code: 0 });
      expect(await runCli(['kv', 'get', 'w/3'], env)).toMatchObject({ code: 0, stdout: 'a b\n' });
      const lock = await runCli(['kv', 'lock', 'l', '--', 'node', '-e', 'process.exit(7)'], env);
      expect(lock.code, lock.stderr).toBe(7);
      const status = await runCli(['status'], env);
      expect(status.code, status.stdout).toBe(5); // a leader, and one node down
      const ep = await runCli(['endpoint', 'status', '-w', 'json'], env);
      expect(ep.code, ep.stderr).toBe(5);
      const rows = JSON.parse(ep.stdout) as { id: string; term?: number; error: string | null }[];
      expect(rows.filter((r) => r.error === null && r.term !== undefined)).toHaveLength(2);
      expect(rows.filter((r) => r.error !== null)).toHaveLength(1);
    });
  });

  it('a running watch whose cluster goes away exits 1 with an error line, not 0', async () => {
    const c = await KvTestCluster.start(1);
    let closed = false;
    try {
      await c.leader();
      const kv = await c.client();
      const w = startCli(['kv', 'watch', 'gone', '--timeout-ms', '2000'], {
        COHORT_ENDPOINTS: c.endpoints().join(','),
      });
      while (!w.out.stdout.includes('PUT gone')) {
        await kv.put('gone', '1');
        await new Promise((r) => setTimeout(r, 200));
      }
      await c.close();
      closed = true;
      expect(await w.exit).toBe(1);
      expect(w.out.stderr).toMatch(/^error: UNAVAILABLE: [^\n]*\n$/);
    } finally {
      if (!closed) await c.close();
    }
  });

  it('the examples pointed at a stopped server: exit 1, connection refused', async () => {
    const server = `127.0.0.1:${await freePort()}`;
    for (const args of [
      ['example', 'list-max', 'call', '1', '2', '--server', server],
      ['example', 'tictactoe', 'play', 'X', '--server', server],
    ]) {
      const r = await runCli(args);
      const what = `cohort ${args.join(' ')}: ${r.stderr}`;
      expect(r.code, what).toBe(1);
      expect(r.stderr, what).toMatch(/^error: UNAVAILABLE: .*connection refused/m);
    }
  });

  it('kv lock whose cluster goes away for the lease TTL stops its command and exits 6', async () => {
    const c = await KvTestCluster.start(1);
    let closed = false;
    try {
      await c.leader();
      const p = startCli(
        [
          'kv',
          'lock',
          'cut',
          '--ttl',
          '2',
          '--',
          process.execPath,
          '-e',
          "process.on('SIGTERM', () => { console.log('child got SIGTERM'); process.exit(0); }); console.log('child running'); setInterval(() => {}, 1000);",
        ],
        { COHORT_ENDPOINTS: c.endpoints().join(',') },
      );
      while (!p.out.stdout.includes('child running')) {
        await new Promise((r) => setTimeout(r, 50));
      }
      await c.close();
      closed = true;
      expect(await p.exit).toBe(6);
      expect(p.out.stdout).toContain('child got SIGTERM');
      expect(p.out.stderr).toMatch(/error: LOCK_LOST: lock cut was lost \(no renewal got through/);
    } finally {
      if (!closed) await c.close();
    }
  });
});
