/**
 * Real processes on 127.0.0.1: three `cohort node` processes (run from the
 * sources under tsx) elect exactly one leader over TCP; `kill -9` of the
 * leader makes the other two elect a new one in a higher term; the killed
 * node, restarted from its data dir, recovers its log from the WAL and
 * rejoins as a follower of the new leader.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { StatusPoller } from '../../src/node/cluster.js';
import type { ClusterNode, PollResult } from '../../src/node/cluster.js';
import type { NodeStatus } from '../../src/node/node-service.js';
import { freePort } from '../transport/tcp-harness.js';
import { tempDir } from '../harness/tmp.js';
import { waitUntil } from '../harness/wait.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const cli = fileURLToPath(new URL('./fixtures/cohort-cli.ts', import.meta.url));
const dir = tempDir('cohort-proc-');
const children = new Map<string, ChildProcess>();

afterAll(() => {
  for (const c of children.values()) c.kill('SIGKILL');
});

function spawnNode(n: ClusterNode, all: readonly ClusterNode[]): ChildProcess {
  const peers = all
    .filter((p) => p.id !== n.id)
    .map((p) => `${p.id}=${p.listen.host}:${p.listen.port}`)
    .join(',');
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      cli,
      'node',
      '--id',
      n.id,
      '--data-dir',
      n.dataDir,
      '--listen',
      `${n.listen.host}:${n.listen.port}`,
      '--rpc',
      `${n.rpc.host}:${n.rpc.port}`,
      '--peers',
      peers,
      '--insecure',
    ],
    { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  child.once('exit', () => (lastOutput[n.id] = out));
  children.set(n.id, child);
  return child;
}
const lastOutput: Record<string, string> = {};

function until<T>(what: string, f: () => Promise<T | undefined>): Promise<T> {
  return waitUntil(what, f, { everyMs: 100 });
}

/** How long one status poll waits for each node: a starved node answers late. */
const pollMs = 2_000;

function up(results: readonly PollResult[]): NodeStatus[] {
  return results.flatMap((r) => (r.ok ? [r.status] : []));
}

function killed(child: ChildProcess): Promise<void> {
  return new Promise((r) => {
    if (child.exitCode !== null || child.signalCode !== null) r();
    else child.once('exit', () => r());
  });
}

describe('cohort node processes', () => {
  it('elect one leader, re-elect after kill -9, and the restarted node rejoins', async () => {
    const nodes: ClusterNode[] = [];
    for (const id of ['n1', 'n2', 'n3']) {
      nodes.push({
        id,
        listen: { host: '127.0.0.1', port: await freePort() },
        rpc: { host: '127.0.0.1', port: await freePort() },
        dataDir: join(dir, id),
      });
    }
    for (const n of nodes) spawnNode(n, nodes);
    const poller = await StatusPoller.connect(nodes, 'cohort-local');
    try {
      // Exactly one leader, which every node agrees on, with its first entry committed.
      const first = await until('a leader all three agree on', async () => {
        const s = up(await poller.poll(pollMs));
        const leaders = s.filter((x) => x.role === 'leader');
        if (s.length !== 3 || leaders.length !== 1) return undefined;
        const l = leaders[0];
        if (l === undefined || l.commitIndex < 1) return undefined;
        return s.every((x) => x.leader === l.id && x.term === l.term) ? l : undefined;
      });
      expect(first.members).toEqual(['n1', 'n2', 'n3']);

      const victim = children.get(first.id);
      expect(victim).toBeDefined();
      victim?.kill('SIGKILL');
      if (victim !== undefined) await killed(victim);

      const second = await until('a new leader in a higher term', async () => {
        const s = up(await poller.poll(pollMs));
        const l = s.find((x) => x.role === 'leader' && x.id !== first.id);
        return l !== undefined && l.term > first.term && l.commitIndex > first.commitIndex
          ? l
          : undefined;
      });
      expect(second.id).not.toBe(first.id);

      const restarted = nodes.find((n) => n.id === first.id);
      if (restarted === undefined) throw new Error('unreachable');
      const child = spawnNode(restarted, nodes);
      // (The new leader, or a later one: a starved leader may lose its place meanwhile.)
      const rejoined = await until('the restarted node to follow a new leader', async () => {
        const s = up(await poller.poll(pollMs)).find((x) => x.id === first.id);
        return s !== undefined &&
          s.role === 'follower' &&
          s.leader !== null &&
          s.leader !== first.id &&
          s.commitIndex >= second.commitIndex
          ? s
          : undefined;
      });
      expect(rejoined.term).toBeGreaterThanOrEqual(second.term);

      // It recovered its own log from the WAL before hearing from the leader.
      child.kill('SIGTERM');
      await killed(child);
      expect(child.exitCode).toBe(0);
      const log = lastOutput[first.id] ?? '';
      const started = log
        .split('\n')
        .filter((l) => l.includes('"raft node started"'))
        .map((l) => JSON.parse(l) as { recoveredEntries: number });
      expect(started[0]?.recoveredEntries).toBeGreaterThanOrEqual(1);
      expect(
        readFileSync(join(restarted.dataDir, 'wal', '0000000000000001.wal')).length,
      ).toBeGreaterThan(0);
    } finally {
      await poller.close();
    }
  });
});
