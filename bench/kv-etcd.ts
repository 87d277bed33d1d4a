/**
 * etcd, the peer of bench/kv.ts: installs Debian's `etcd-server` if `etcd` is
 * not on PATH, runs a 3-member cluster on 127.0.0.1 (default fsync; heartbeat
 * interval, election timeout and snapshot count as given, else etcd's
 * defaults), finds the leader, kill -9s / restarts members for the failover
 * measurement, and compacts the history by cohort's rule
 * ({@link EtcdCluster.startCompactor}). Clients are `etcd3` (the npm package
 * the peer baseline in bench/peers was measured with).
 *
 * ```ts
 * ensureEtcd();                                   // apt-get install -y etcd-server when missing
 * const etcd = await EtcdCluster.start(3, { heartbeatMs: 20, electionMs: 200 });
 * const leader = await etcd.leader();             // { name: 'm2', url: 'http://127.0.0.1:…' }
 * const stop = etcd.startCompactor(10_000, 1_000); // keep 10 000 revisions, check every second
 * await etcd.kill(leader.name); await etcd.restart(leader.name);
 * stop(); await etcd.close();
 * ```
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, sleep, until } from '../test/harness/process-cluster.js';

const require = createRequire(import.meta.url);

/** The subset of the `etcd3` client the benchmark uses. */
export interface Etcd3Client {
  put(key: string): {
    value(v: Buffer | string): { exec(): Promise<unknown> };
  };
  get(key: string): { serializable(s: boolean): { buffer(): Promise<Buffer | null> } };
  maintenance: {
    status(): Promise<{
      header: { member_id: string; revision: string };
      leader: string;
      version: string;
    }>;
  };
  kv: {
    compact(req: { revision: string; physical?: boolean }): Promise<unknown>;
  };
  close(): void;
}

/** A cockatiel policy as etcd3 calls it (only `execute`). */
interface Policy {
  execute<T>(fn: (context: { signal: AbortSignal }) => Promise<T> | T): Promise<T>;
}

/** A policy that runs the call once, as it is: no retry, no circuit breaker. */
const noPolicy: Policy = {
  execute: async (fn) => fn({ signal: new AbortController().signal }),
};

/**
 * Creates an `etcd3` client for these endpoint URLs. `faultHandling: false`
 * turns off its retries and per-host circuit breakers (by default a host is
 * shunned for 5 s after 3 failures): the failover probe then sees each
 * attempt as it is and does its own retrying.
 */
export function etcdClient(
  hosts: readonly string[],
  o: { dialTimeoutMs?: number; faultHandling?: boolean } = {},
): Etcd3Client {
  const { Etcd3 } = require('etcd3') as {
    Etcd3: new (o: {
      hosts: string[];
      dialTimeout?: number;
      faultHandling?: { host: () => Policy; global: Policy };
    }) => Etcd3Client;
  };
  return new Etcd3({
    hosts: [...hosts],
    ...(o.dialTimeoutMs === undefined ? {} : { dialTimeout: o.dialTimeoutMs }),
    ...(o.faultHandling === false
      ? { faultHandling: { host: () => noPolicy, global: noPolicy } }
      : {}),
  });
}

/** True if `cmd` is on PATH. */
function onPath(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/**
 * Installs Debian's etcd-server if `etcd` is not on PATH, without letting the
 * package start a system-wide etcd (a policy-rc.d that refuses service starts,
 * removed again afterwards).
 */
export function ensureEtcd(log: (s: string) => void = console.log): void {
  if (onPath('etcd')) return;
  log('etcd not found: apt-get install -y etcd-server');
  const policy = '/usr/sbin/policy-rc.d';
  const madePolicy = !existsSync(policy);
  if (madePolicy) writeFileSync(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  try {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const install = (): void => {
      execFileSync('apt-get', ['install', '-y', '-qq', 'etcd-server'], { stdio: 'inherit', env });
    };
    try {
      install();
    } catch {
      execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
      install();
    }
  } finally {
    if (madePolicy) rmSync(policy, { force: true });
  }
  if (!onPath('etcd')) throw new Error('etcd-server installed but etcd is not on PATH');
}

/** The installed etcd's version line (e.g. "etcd Version: 3.4.23"). */
export function etcdVersion(): string {
  return execFileSync('etcd', ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? '?';
}

/** Members still running, killed if this process exits without closing them. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

/** Settings of a cluster's members (undefined: etcd's default). */
export interface EtcdSettings {
  /** --heartbeat-interval in ms (etcd's default 100). */
  readonly heartbeatMs?: number;
  /** --election-timeout in ms (etcd's default 1000). */
  readonly electionMs?: number;
  /** --snapshot-count (etcd 3.4's default 100 000). */
  readonly snapshotCount?: number;
}

interface Member {
  readonly name: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  proc?: ChildProcess;
}

/** A 3-member etcd cluster on 127.0.0.1 (see the file comment). */
export class EtcdCluster {
  private constructor(
    private readonly members: Member[],
    private readonly dir: string,
    private readonly initialCluster: string,
    private readonly token: string,
    private readonly settings: EtcdSettings,
  ) {}

  /** Starts `n` members (default 3) with fresh data dirs and waits until a leader serves. */
  static async start(n = 3, settings: EtcdSettings = {}): Promise<EtcdCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'cohort-bench-etcd-'));
    const members: Member[] = [];
    for (let i = 1; i <= n; i++) {
      members.push({
        name: `m${i}`,
        clientPort: await freePort(),
        peerPort: await freePort(),
        dataDir: join(dir, `m${i}`),
      });
    }
    const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(',');
    const c = new EtcdCluster(
      members,
      dir,
      initialCluster,
      `bench-${process.pid}-${Date.now()}`,
      settings,
    );
    for (const m of members) c.spawn(m);
    await c.leader(30_000);
    return c;
  }

  /** Every member's client URL. */
  urls(): string[] {
    return this.members.map((m) => `http://127.0.0.1:${m.clientPort}`);
  }

  /** The running members' process ids by name. */
  pidsByName(): Map<string, number> {
    return new Map(
      this.members.flatMap((m) =>
        m.proc?.pid !== undefined && m.proc.exitCode === null && m.proc.signalCode === null
          ? [[m.name, m.proc.pid] as [string, number]]
          : [],
      ),
    );
  }

  /**
   * Compacts the history the way a cohort leader does (src/kv/server.ts):
   * every `checkMs`, if the store's revision is at least `kept` + `kept`/10
   * past the last compaction, compacts to revision − `kept` (not physical:
   * the call returns once the compaction is committed, as cohort's does).
   * etcd's own `--auto-compaction-mode revision` runs only every 5 minutes,
   * never inside a run. Returns a function that stops it.
   */
  startCompactor(kept: number, checkMs: number): () => void {
    const client = etcdClient(this.urls(), { faultHandling: false });
    let compacted = 0;
    let busy = false;
    const timer = setInterval(() => {
      if (busy) return;
      busy = true;
      void (async () => {
        try {
          const rev = Number((await client.maintenance.status()).header.revision);
          if (rev - compacted < kept + Math.ceil(kept / 10)) return;
          await client.kv.compact({ revision: String(rev - kept), physical: false });
          compacted = rev - kept;
        } catch {
          // A member down (failover) or the revision already compacted: try again later.
        } finally {
          busy = false;
        }
      })();
    }, checkMs);
    timer.unref();
    return () => {
      clearInterval(timer);
      client.close();
    };
  }

  /** Process ids of the running members. */
  pids(): number[] {
    return this.members.flatMap((m) =>
      m.proc?.pid !== undefined && m.proc.exitCode === null && m.proc.signalCode === null
        ? [m.proc.pid]
        : [],
    );
  }

  /** The current leader (asked of every running member; waits up to `timeoutMs`). */
  async leader(timeoutMs = 20_000): Promise<{ name: string; url: string }> {
    return until(
      'an etcd leader',
      async () => {
        const answers = await Promise.all(
          this.members
            .filter((m) => m.proc !== undefined && m.proc.exitCode === null)
            .map(async (m) => {
              const url = `http://127.0.0.1:${m.clientPort}`;
              const client = etcdClient([url], { dialTimeoutMs: 500, faultHandling: false });
              try {
                const s = await Promise.race([
                  client.maintenance.status(),
                  sleep(1000).then(() => undefined),
                ]);
                return s === undefined ? undefined : { name: m.name, url, s };
              } catch {
                return undefined;
              } finally {
                client.close();
              }
            }),
        );
        const l = answers.find((a) => a !== undefined && a.s.leader === a.s.header.member_id);
        return l === undefined ? undefined : { name: l.name, url: l.url };
      },
      timeoutMs,
      100,
    );
  }

  /** kill -9 of a member; resolves once it exited. */
  async kill(name: string): Promise<void> {
    const m = this.member(name);
    const p = m.proc;
    if (p === undefined || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGKILL');
    await gone;
  }

  /** Starts a killed member again from its data dir. */
  restart(name: string): void {
    this.spawn(this.member(name));
  }

  /** Kills every member and removes the data dirs. */
  async close(): Promise<void> {
    await Promise.all(this.members.map((m) => this.kill(m.name)));
    rmSync(this.dir, { recursive: true, force: true });
  }

  private member(name: string): Member {
    const m = this.members.find((x) => x.name === name);
    if (m === undefined) throw new Error(`no etcd member ${name}`);
    return m;
  }

  private spawn(m: Member): void {
    const client = `http://127.0.0.1:${m.clientPort}`;
    const peer = `http://127.0.0.1:${m.peerPort}`;
    m.proc = spawn(
      'etcd',
      [
        '--name',
        m.name,
        '--data-dir',
        m.dataDir,
        '--listen-client-urls',
        client,
        '--advertise-client-urls',
        client,
        '--listen-peer-urls',
        peer,
        '--initial-advertise-peer-urls',
        peer,
        '--initial-cluster',
        this.initialCluster,
        '--initial-cluster-state',
        'new',
        '--initial-cluster-token',
        this.token,
        '--logger',
        'zap',
        '--log-level',
        'warn',
        '--log-outputs',
        join(this.dir, `${m.name}.log`),
        ...(this.settings.heartbeatMs === undefined
          ? []
          : ['--heartbeat-interval', String(this.settings.heartbeatMs)]),
        ...(this.settings.electionMs === undefined
          ? []
          : ['--election-timeout', String(this.settings.electionMs)]),
        ...(this.settings.snapshotCount === undefined
          ? []
          : ['--snapshot-count', String(this.settings.snapshotCount)]),
      ],
      { stdio: 'ignore' },
    );
    const proc = m.proc;
    live.add(proc);
    proc.once('exit', () => live.delete(proc));
  }
}
