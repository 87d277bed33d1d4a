/**
 * `cohort up`, `cohort status` and `cohort down` as real processes (the CLI
 * run from the sources under tsx): a detached 3-node cluster comes up with a
 * leader, a second `up` is refused, `status --json` reports it, `down` stops
 * every node; an attached `up` stops its nodes cleanly on SIGTERM.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pidAlive } from '../../src/node/cluster.js';
import type { ClusterFile } from '../../src/node/cluster.js';
import { runCli as run, startCli } from '../harness/cli.js';
import { rawKeys } from '../harness/json-lines.js';
import { tempDir } from '../harness/tmp.js';
import { waitUntil } from '../harness/wait.js';

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

describe('cohort up / status / down', () => {
  it('up --detach leaves a cluster with a leader; status --json sees it; down stops it', async () => {
    const dir = tempDir('cohort-up-');
    const base = await freeBase();
    const started = await run([
      'up',
      '--detach',
      '--base-port',
      String(base),
      '--dir',
      dir,
      '--workers',
      '1',
      '--wal-sync',
      'inline',
    ]);
    expect(started.stderr).toBe('');
    expect(started.code).toBe(0);
    expect(started.stdout).toContain(`n1  raft 127.0.0.1:${base + 1}  rpc 127.0.0.1:${base + 101}`);
    expect(started.stdout).toMatch(/leader n\d · term \d+ · commit \d+ · revision 0 · 3\/3 up/);
    const file = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as ClusterFile;
    const pids = file.nodes.map((n) => n.pid ?? -1);
    try {
      expect(file.supervisor).toBeNull();
      expect(pids.every(pidAlive)).toBe(true);

      const second = await run(['up', '--detach', '--base-port', String(base), '--dir', dir]);
      expect(second.code).toBe(1);
      expect(second.stderr).toMatch(
        /^error: FAILED_PRECONDITION: cohort up: a cluster is already running/,
      );

      const status = await run(['status', '--json', '--dir', dir]);
      expect(status.code).toBe(0);
      const s = JSON.parse(status.stdout) as {
        leader: string;
        up: number;
        nodes: { id: string; role: string; pid: number; members: string[] }[];
      };
      expect(s.up).toBe(3);
      expect(s.nodes.filter((n) => n.role === 'leader').map((n) => n.id)).toEqual([s.leader]);
      expect(s.nodes.map((n) => n.pid)).toEqual(pids);
      expect(s.nodes[0]?.members).toEqual(['n1', 'n2', 'n3']);
    } finally {
      const stopped = await run(['down', '--dir', dir]);
      expect(stopped.stdout).toContain('stopped 3 processes');
    }
    expect(pids.some(pidAlive)).toBe(false);
    expect(existsSync(join(dir, 'cluster.json'))).toBe(false);
    const log = readFileSync(join(dir, 'n2', 'node.log'), 'utf8');
    expect(log).toContain('"node stopped"');
    // One JSON object per line (the SIGTERM too), an ISO time, every key once.
    for (const line of log.trimEnd().split('\n')) {
      const entry = JSON.parse(line) as { time: unknown };
      expect(entry.time).toMatch(/^\d{4}-\d\d-\d\dT/);
      const keys = rawKeys(line);
      expect(keys.length, line).toBe(new Set(keys).size);
    }
    expect(log).toMatch(/"signal":"SIGTERM","term":\d+,"msg":"shutting down"/);
    // up passed its --workers and --wal-sync on to every node.
    expect(log).toMatch(/"walSync":"inline","workers":1,.*"node started"/);

    const none = await run(['status', '--dir', dir]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no cluster found/);
  });

  it('a fresh directory: up starts a mutual-TLS cluster, and kv put/get with no flags find it and its certificate (issue 13)', async () => {
    // What `npm ci && npm start` (`cohort up`) then `npx cohort kv put a 1 &&
    // npx cohort kv get a` from another terminal do: every command runs in the
    // clone's directory and is given nothing (only up a free base port).
    const clone = tempDir('cohort-fresh-clone-');
    const base = await freeBase();
    const here = { cwd: clone };
    const started = await run(
      ['up', '--detach', '--base-port', String(base), '--workers', '1'],
      {},
      here,
    );
    expect(started.stderr).toBe('');
    expect(started.code).toBe(0);
    try {
      const file = JSON.parse(
        readFileSync(join(clone, '.cohort', 'cluster.json'), 'utf8'),
      ) as ClusterFile;
      // Secure by default: no --insecure, a user certificate for the clients, TLS on every node.
      expect(file.insecure).not.toBe(true);
      expect(file.tls?.cert).toBe(join(clone, '.cohort', 'certs', 'user-root.crt'));
      const log = readFileSync(join(clone, '.cohort', 'n1', 'node.log'), 'utf8');
      expect(log).toMatch(/"tls":\{"fingerprint":"[^"]+","notAfter"/);
      expect(log).not.toMatch(/WITHOUT TLS/);

      const put = await run(['kv', 'put', 'a', '1'], {}, here);
      expect(put.stderr).toBe('');
      expect(put.code).toBe(0);
      const get = await run(['kv', 'get', 'a'], {}, here);
      expect(get.stderr).toBe('');
      expect(get.code).toBe(0);
      expect(get.stdout).toMatch(/^(a\n)?1\n$/);
    } finally {
      const stopped = await run(['down'], {}, here);
      expect(stopped.stdout).toContain('stopped 3 processes');
    }
  });

  it('an attached up stops its nodes cleanly on SIGTERM', async () => {
    const dir = tempDir('cohort-up-');
    const base = await freeBase();
    const up = startCli(['up', '--base-port', String(base), '--dir', dir]);
    const child = up.child;
    try {
      await waitUntil('the live line to show a leader and 3/3 up', () =>
        /leader n\d · term .* 3\/3 up/.test(up.out.stdout),
      );
      expect(up.out.stdout).toMatch(/leader n\d · term \d+ · commit \d+ · revision 0 · 3\/3 up/);
      const file = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as ClusterFile;
      expect(file.supervisor).toBe(child.pid);
      const pids = file.nodes.map((n) => n.pid ?? -1);
      child.kill('SIGTERM');
      expect(await up.exit).toBe(143); // stopped cleanly, as asked by SIGTERM
      expect(up.out.stdout).toContain('cohort: all nodes stopped');
      expect(pids.some(pidAlive)).toBe(false);
      expect(existsSync(join(dir, 'cluster.json'))).toBe(false);
    } finally {
      child.kill('SIGKILL');
      // If the test failed before the nodes were stopped, do not leave them running.
      const path = join(dir, 'cluster.json');
      if (existsSync(path)) {
        const f = JSON.parse(readFileSync(path, 'utf8')) as ClusterFile;
        for (const n of f.nodes)
          if (n.pid !== undefined && pidAlive(n.pid)) process.kill(n.pid, 'SIGKILL');
      }
    }
  });

  it('up --restart restarts one node; down stops nodes restarted by hand and never a process that reused a recorded pid', async () => {
    const dir = tempDir('cohort-up-');
    const base = await freeBase();
    const started = await run([
      'up',
      '--detach',
      '--base-port',
      String(base),
      '--dir',
      dir,
      '--workers',
      '0',
    ]);
    expect(started.code).toBe(0);
    const path = join(dir, 'cluster.json');
    const read = (): ClusterFile => JSON.parse(readFileSync(path, 'utf8')) as ClusterFile;
    const file = read();
    const pidOf = (f: ClusterFile, id: string): number =>
      f.nodes.find((n) => n.id === id)?.pid ?? -1;
    const cleanup: number[] = file.nodes.map((n) => n.pid ?? -1);
    const killed = async (pid: number): Promise<void> => {
      process.kill(pid, 'SIGKILL');
      for (let i = 0; i < 100 && pidAlive(pid); i++) await new Promise((r) => setTimeout(r, 50));
    };
    let stranger: ChildProcess | undefined;
    try {
      // n1 dies; up --restart starts it again as up started it and records the new pid.
      await killed(pidOf(file, 'n1'));
      const restarted = await run(['up', '--restart', 'n1', '--dir', dir]);
      expect(restarted.stderr).toBe('');
      expect(restarted.code).toBe(0);
      const n1 = pidOf(read(), 'n1');
      cleanup.push(n1);
      expect(n1).not.toBe(pidOf(file, 'n1'));
      expect(pidAlive(n1)).toBe(true);
      expect(restarted.stdout).toContain(`n1 restarted (pid ${n1}`);

      // A running node is stopped first, found as down finds it, then started again.
      const again = await run(['up', '--restart', 'n1', '--dir', dir]);
      expect(again.stderr).toBe('');
      expect(again.code).toBe(0);
      expect(again.stdout).toContain(`stopping n1 (pid ${n1})`);
      const n1b = pidOf(read(), 'n1');
      cleanup.push(n1b);
      expect(n1b).not.toBe(n1);
      expect(pidAlive(n1)).toBe(false);
      expect(pidAlive(n1b)).toBe(true);
      expect(again.stdout).toContain(`n1 restarted (pid ${n1b}`);

      // A node the cluster does not have is refused, and nothing changes.
      const unknown = await run(['up', '--restart', 'n9', '--dir', dir]);
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toContain('has no node n9 (it has n1, n2, n3)');
      expect(pidOf(read(), 'n1')).toBe(n1b);

      // n2 is restarted by hand: cluster.json still names its old pid.
      await killed(pidOf(file, 'n2'));
      const args = file.nodes.find((n) => n.id === 'n2')?.args ?? [];
      expect(args).toContain('--id');
      const byHand = spawn(process.execPath, [...args], { stdio: 'ignore', detached: true });
      byHand.unref();
      cleanup.push(byHand.pid ?? -1);
      for (let i = 0; i < 200; i++) {
        const st = await run(['status', '--json', '--dir', dir]);
        if ((JSON.parse(st.stdout) as { up: number }).up === 3) break;
        await new Promise((r) => setTimeout(r, 100));
      }

      // n3 dies and its pid goes to an unrelated process (simulated: cluster.json points at one).
      await killed(pidOf(file, 'n3'));
      stranger = spawn('sleep', ['60'], { stdio: 'ignore' });
      const f = read();
      writeFileSync(
        path,
        JSON.stringify({
          ...f,
          nodes: f.nodes.map((n) => (n.id === 'n3' ? { ...n, pid: stranger?.pid } : n)),
        }),
      );

      const down = await run(['down', '--dir', dir]);
      expect(down.code).toBe(0);
      expect(down.stdout).toContain(
        `n3: its recorded pid ${stranger.pid} belongs to another process now`,
      );
      expect(down.stdout).toContain('stopped 2 processes');
      for (let i = 0; i < 100 && (pidAlive(n1b) || pidAlive(byHand.pid ?? -1)); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(pidAlive(n1b)).toBe(false);
      expect(pidAlive(byHand.pid ?? -1)).toBe(false);
      expect(stranger.exitCode).toBeNull();
      expect(pidAlive(stranger.pid ?? -1)).toBe(true);
    } finally {
      stranger?.kill('SIGKILL');
      for (const pid of cleanup) if (pid > 0 && pidAlive(pid)) process.kill(pid, 'SIGKILL');
    }
  });

  it('up reports a node that cannot start (port in use) and leaves nothing running', async () => {
    const dir = tempDir('cohort-up-');
    const base = await freeBase();
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(base + 2, '127.0.0.1', r));
    try {
      const r = await run(['up', '--detach', '--base-port', String(base), '--dir', dir]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('node n2 could not start');
      expect(r.stderr).toContain(`port ${base + 2} is in use`);
      expect(existsSync(join(dir, 'cluster.json'))).toBe(false);
      const pids = [...r.stdout.matchAll(/pid (\d+)/g)].map((m) => Number(m[1]));
      expect(pids).toHaveLength(3);
      expect(pids.some(pidAlive)).toBe(false);
    } finally {
      blocker.close();
    }
  });

  it('up on ports another cluster answers reports its own nodes dying, never the other cluster; status likewise', async () => {
    const base = await freeBase();
    const first = tempDir('cohort-up-');
    const a = await run([
      'up',
      '--detach',
      '--base-port',
      String(base),
      '--dir',
      first,
      '--workers',
      '1',
    ]);
    expect(a.code).toBe(0);
    try {
      const second = tempDir('cohort-up-');
      const b = await run([
        'up',
        '--detach',
        '--base-port',
        String(base),
        '--dir',
        second,
        '--workers',
        '1',
      ]);
      expect(b.code).toBe(1);
      expect(b.stdout).not.toMatch(/\d\/3 up/);
      expect(b.stderr).toMatch(
        /^error: UNAVAILABLE: cohort up: node n\d could not start: cannot start: port \d+ is in use/m,
      );
      expect(existsSync(join(second, 'cluster.json'))).toBe(false);
      // A cluster file naming these ports but other data dirs: the nodes answering are not its own.
      const file = JSON.parse(readFileSync(join(first, 'cluster.json'), 'utf8')) as ClusterFile;
      const fake = {
        ...file,
        nodes: file.nodes.map((n) => ({ ...n, dataDir: join(second, n.id) })),
      };
      writeFileSync(join(second, 'cluster.json'), JSON.stringify(fake));
      const st = await run(['status', '--dir', second]);
      expect(st.code).toBe(1);
      expect(st.stdout).toMatch(/leader none .* 0\/3 up/);
      expect(st.stdout).toMatch(
        /n1: WRONG_NODE: 127\.0\.0\.1:\d+ is answered by a node of another cluster/,
      );
      expect(st.stderr).toMatch(/^error: UNAVAILABLE: no leader: 0 of 3 nodes answered/);
    } finally {
      await run(['down', '--dir', first]);
    }
  });

  it('up refuses a bad --wal-sync or --workers before starting anything', async () => {
    const dir = tempDir('cohort-up-');
    const bad = await run(['up', '--dir', dir, '--wal-sync', 'async']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/expected auto, thread or inline/);
    const workers = await run(['up', '--dir', dir, '--workers', 'many']);
    expect(workers.code).not.toBe(0);
    expect(workers.stderr).toMatch(/expected a non-negative integer/);
    expect(existsSync(join(dir, 'cluster.json'))).toBe(false);
  });

  it('status exits 1 when no node answers', async () => {
    const r = await run([
      'status',
      '--endpoints',
      `n1=127.0.0.1:${await freeBase()}`,
      '--timeout-ms',
      '300',
    ]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/leader none .* 0\/1 up/);
    expect(r.stdout).toMatch(/^ID +ROLE +TERM +LEADER +COMMIT +APPLIED +LAST +MEMBERS +RPC +PID$/m);
    expect(r.stdout).toMatch(/n1 +unreachable \(refused\)/);
    expect(r.stdout).toMatch(/n1: UNAVAILABLE: n1 at 127\.0\.0\.1:\d+: connection refused/);
  });
});
