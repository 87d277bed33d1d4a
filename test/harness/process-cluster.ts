/**
 * A cluster of real `cohort node` processes on 127.0.0.1 for fault tests and
 * benchmarks: start N nodes (each its own OS process, durable WAL with
 * fdatasync as in production), find the leader, and break things the way a
 * machine breaks — `kill -9`, `SIGSTOP`/`SIGCONT`, restart from the data dir,
 * or restart with the data dir wiped (the node then rejoins from the leader's
 * log or snapshot).
 *
 * ```ts
 * const cluster = await ProcessCluster.start({ nodes: 3, snapshotEntries: 200 });
 * const leader = await cluster.waitForLeader();          // NodeStatus of a leader all up nodes follow
 * await cluster.kill(leader.id);                          // kill -9, resolves once it exited
 * const next = await cluster.waitForLeader({ notId: leader.id, minTerm: leader.term + 1 });
 * await cluster.restart(leader.id, { wipe: true });       // empty data dir: rejoins from a snapshot
 * cluster.pause(next.id); cluster.resume(next.id);        // SIGSTOP / SIGCONT
 * cluster.endpoints();                                    // [{ id: 'n1', host, port }, ...] (RPC)
 * await cluster.plan('n4'); await cluster.join('n4');    // a new node: --join through the members
 * await cluster.close();                                  // SIGKILL everything still running
 * ```
 *
 * Nodes run from the sources under tsx (`runtime: 'source'`, for tests: no
 * build step, always current) or from the compiled `bin/cohort.js`
 * (`runtime: 'dist'`, for benchmarks: what users run; needs `npm run build`).
 * Each node's last output is kept (see {@link ProcessCluster.output}) for
 * failure messages.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { freePort } from '../transport/tcp-harness.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StatusPoller } from '../../src/node/cluster.js';
import type { ClusterNode, PollResult } from '../../src/node/cluster.js';
import type { NodeStatus } from '../../src/node/node-service.js';
import { CertDir } from '../../src/trust/cert-dir.js';
import type { CredentialFiles } from '../../src/trust/credentials.js';
import { conditionWaitMs, waitUntil } from './wait.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const sourceCli = fileURLToPath(new URL('../node/fixtures/cohort-cli.ts', import.meta.url));
const distCli = join(repo, 'bin', 'cohort.js');

/** How much of each node's output is kept for diagnostics. */
const outputKeepChars = 64 * 1024;

/** Options of {@link ProcessCluster.start}. */
export interface ProcessClusterOptions {
  /** Number of voters (default 3). */
  readonly nodes?: number;
  /** Parent directory of the data dirs (default: a fresh temp dir, removed by close()). */
  readonly dir?: string;
  /** Cluster id (default cohort-local). */
  readonly clusterId?: string;
  /** Run the nodes from the sources under tsx, or from dist/ (default 'source'). */
  readonly runtime?: 'source' | 'dist';
  /** --snapshot-entries (default: the node's own default). */
  readonly snapshotEntries?: number;
  /** --tick-ms (default: the node's own default). */
  readonly tickMs?: number;
  /** --election-ticks (default: the node's own default). */
  readonly electionTicks?: number;
  /** --heartbeat-ticks (default: the node's own default). */
  readonly heartbeatTicks?: number;
  /** --log-level (default warn: the harness keeps output only for failure messages). */
  readonly logLevel?: string;
  /** --kv-quota-bytes (default: the node's own default). */
  readonly kvQuotaBytes?: number;
  /**
   * Mutual TLS: a CA and certificates for every node and the `root` user
   * under `<dir>/certs` (see {@link ProcessCluster.clientTls}); default false:
   * the nodes run with --insecure.
   */
  readonly tls?: boolean;
  /** Node.js flags for every node process, before the entry (e.g. `--cpu-prof`; benchmarks). */
  readonly nodeFlags?: readonly string[];
}

/** A node's RPC address, as clients dial it. */
export interface Endpoint {
  readonly id: string;
  readonly host: string;
  readonly port: number;
}

/** Options of {@link ProcessCluster.waitForLeader}. */
export interface LeaderWait {
  /** The leader must not be this node. */
  readonly notId?: string;
  /** The leader's term must be at least this. */
  readonly minTerm?: number;
  /** Nodes that must follow it (default: every node that answers). */
  readonly followers?: number;
  /** Give up after this long (default {@link conditionWaitMs}: node processes start slowly on a busy machine). */
  readonly timeoutMs?: number;
}

/** A port that was free a moment ago (the transport tests' helper; the bench imports it from here). */
export { freePort };

/** Sleeps `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `f` every `everyMs` until it returns a value other than undefined; throws after `ms`. */
export async function until<T>(
  what: string,
  f: () => Promise<T | undefined>,
  ms = conditionWaitMs,
  everyMs = 50,
): Promise<T> {
  return waitUntil(what, f, { timeoutMs: ms, everyMs });
}

/**
 * How long a status poll made while waiting for a condition waits for each
 * node's answer: a starved node answers late, and a poll that gave up on it
 * would only be repeated (a SIGSTOPped node never answers: each poll then
 * takes this long).
 */
const waitPollMs = 2_000;

/** Every child of every cluster, killed if this process exits without closing them. */
const allChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of allChildren) c.kill('SIGKILL');
});

function exited(child: ChildProcess): Promise<void> {
  return new Promise((r) => {
    if (child.exitCode !== null || child.signalCode !== null) r();
    else child.once('exit', () => r());
  });
}

/** Node processes on 127.0.0.1 (see the file comment). */
export class ProcessCluster {
  private readonly children = new Map<string, ChildProcess>();
  private readonly outputs = new Map<string, string>();
  private readonly paused = new Set<string>();
  /** Nodes started with --join (and never with --peers). */
  private readonly joiners = new Map<string, { learner: boolean }>();
  private closed = false;

  private constructor(
    private readonly all: ClusterNode[],
    /** The cluster id the nodes were started with. */
    readonly clusterId: string,
    private readonly options: ProcessClusterOptions,
    private readonly dir: string,
    private readonly ownDir: string | undefined,
    private poller: StatusPoller,
    /** The cluster's certificates (with `tls`). */
    readonly certs: CertDir | undefined,
  ) {}

  /** The root user's credentials (with `tls`), for clients of the cluster. */
  get clientTls(): CredentialFiles | undefined {
    return this.certs?.files({ kind: 'user', name: 'root' });
  }

  /** The nodes: ids, Raft and RPC addresses, data dirs (those started with the cluster, then planned ones). */
  get nodes(): readonly ClusterNode[] {
    return this.all;
  }

  /** Plans one more node (ports, data dir) without starting it; {@link join} starts it. */
  async plan(id: string): Promise<ClusterNode> {
    if (this.all.some((n) => n.id === id)) throw new Error(`node ${id} exists`);
    const n: ClusterNode = {
      id,
      listen: { host: '127.0.0.1', port: await freePort() },
      rpc: { host: '127.0.0.1', port: await freePort() },
      dataDir: join(this.dir, id),
    };
    this.all.push(n);
    // With TLS, the new node needs its certificate from the cluster's CA.
    await this.certs?.ensure({
      clusterId: this.clusterId,
      nodes: this.all.map((m) => m.id),
      users: ['root'],
    });
    const old = this.poller;
    this.poller = await StatusPoller.connect(this.all, this.clusterId, 'none', this.clientTls);
    await old.close();
    return n;
  }

  /**
   * Starts a planned node with `--join` through every other node's RPC
   * endpoint (it asks the leader to add it as a learner; the leader promotes
   * it once caught up unless `learner`). Restarts of it pass --join again,
   * which a node with a log ignores.
   */
  join(id: string, o: { learner?: boolean } = {}): void {
    this.joiners.set(id, { learner: o.learner === true });
    this.spawnNode(id);
  }

  /** Plans ports and data dirs and starts every node (does not wait for a leader). */
  static async start(options: ProcessClusterOptions = {}): Promise<ProcessCluster> {
    const count = options.nodes ?? 3;
    const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'cohort-cluster-'));
    const ownDir = options.dir === undefined ? dir : undefined;
    const nodes: ClusterNode[] = [];
    for (let i = 1; i <= count; i++) {
      nodes.push({
        id: `n${i}`,
        listen: { host: '127.0.0.1', port: await freePort() },
        rpc: { host: '127.0.0.1', port: await freePort() },
        dataDir: join(dir, `n${i}`),
      });
    }
    const id = options.clusterId ?? 'cohort-local';
    let certs: CertDir | undefined;
    if (options.tls === true) {
      certs = new CertDir(join(dir, 'certs'));
      await certs.ensure({ clusterId: id, nodes: nodes.map((n) => n.id), users: ['root'] });
    }
    const clientTls = certs?.files({ kind: 'user', name: 'root' });
    const poller = await StatusPoller.connect(nodes, id, 'none', clientTls);
    const cluster = new ProcessCluster(nodes, id, options, dir, ownDir, poller, certs);
    for (const n of nodes) cluster.spawnNode(n.id);
    return cluster;
  }

  /** RPC endpoints of every node, in node order. */
  endpoints(): Endpoint[] {
    return this.nodes.map((n) => ({ id: n.id, host: n.rpc.host, port: n.rpc.port }));
  }

  /** The node with this id (throws on an unknown id). */
  node(id: string): ClusterNode {
    const n = this.nodes.find((x) => x.id === id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  /** The node's process id, if it runs. */
  pid(id: string): number | undefined {
    const c = this.children.get(id);
    return c !== undefined && c.exitCode === null && c.signalCode === null ? c.pid : undefined;
  }

  /** How the node's latest process ended: its exit code, or its signal; undefined while it runs. */
  ended(id: string): number | NodeJS.Signals | undefined {
    const c = this.children.get(id);
    if (c === undefined) return undefined;
    return c.exitCode ?? c.signalCode ?? undefined;
  }

  /** True if the node's process runs (paused or not). */
  running(id: string): boolean {
    return this.pid(id) !== undefined;
  }

  /** True if the node is SIGSTOPped. */
  isPaused(id: string): boolean {
    return this.paused.has(id);
  }

  /** The last output (stdout and stderr) of the node's latest process. */
  output(id: string): string {
    return this.outputs.get(id) ?? '';
  }

  /** Sends `signal` (default SIGKILL: kill -9) and resolves once the process exited. */
  async kill(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const c = this.children.get(id);
    if (c === undefined) return;
    if (this.paused.has(id) && signal !== 'SIGKILL') c.kill('SIGCONT');
    this.paused.delete(id);
    c.kill(signal);
    await exited(c);
  }

  /** SIGSTOP: the process freezes (its sockets stay open, nothing answers). */
  pause(id: string): void {
    const c = this.children.get(id);
    if (c === undefined || !this.running(id)) throw new Error(`${id} is not running`);
    c.kill('SIGSTOP');
    this.paused.add(id);
  }

  /** SIGCONT after {@link pause}. */
  resume(id: string): void {
    const c = this.children.get(id);
    if (c === undefined || !this.running(id)) throw new Error(`${id} is not running`);
    c.kill('SIGCONT');
    this.paused.delete(id);
  }

  /**
   * Starts a stopped node again from its data dir (or an empty one with
   * `wipe`), optionally at another log level (e.g. 'info' to see it install
   * a snapshot).
   */
  async restart(id: string, o: { wipe?: boolean; logLevel?: string } = {}): Promise<void> {
    if (this.running(id)) await this.kill(id);
    if (o.wipe === true) rmSync(this.node(id).dataDir, { recursive: true, force: true });
    this.spawnNode(id, o.logLevel);
  }

  /** Every node's status (or why not), in node order. */
  poll(timeoutMs = 300): Promise<PollResult[]> {
    return this.poller.poll(timeoutMs);
  }

  /** Status of the nodes that answered. */
  async statuses(timeoutMs = 300): Promise<NodeStatus[]> {
    return (await this.poll(timeoutMs)).flatMap((r) => (r.ok ? [r.status] : []));
  }

  /** One node's status, or undefined if it does not answer. */
  async status(id: string, timeoutMs = 300): Promise<NodeStatus | undefined> {
    return (await this.statuses(timeoutMs)).find((s) => s.id === id);
  }

  /**
   * Waits for a leader whose term is the highest any answering node reports
   * and that the answering nodes (or `followers` of them) follow.
   */
  async waitForLeader(w: LeaderWait = {}): Promise<NodeStatus> {
    return until(
      `a leader${w.notId === undefined ? '' : ` other than ${w.notId}`}${w.minTerm === undefined ? '' : ` in term >= ${w.minTerm}`}`,
      async () => {
        const up = await this.statuses(waitPollMs);
        const term = Math.max(0, ...up.map((s) => s.term));
        const l = up.find((s) => s.role === 'leader' && s.term === term);
        if (l === undefined || l.id === w.notId || l.term < (w.minTerm ?? 0)) return undefined;
        const following = up.filter((s) => s.leader === l.id && s.term === l.term).length;
        return following >= (w.followers ?? up.length) ? l : undefined;
      },
      w.timeoutMs ?? conditionWaitMs,
    );
  }

  /** Waits until node `id` answers and has applied at least `index`. */
  async waitForApplied(
    id: string,
    index: number,
    timeoutMs = conditionWaitMs,
  ): Promise<NodeStatus> {
    return until(
      `${id} to apply index ${index}`,
      async () => {
        const s = await this.status(id, waitPollMs);
        return s !== undefined && s.appliedIndex >= index ? s : undefined;
      },
      timeoutMs,
    );
  }

  /** SIGKILLs every process still running, closes the poller and removes a temp dir it made. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.children.keys()].map((id) => this.kill(id)));
    await this.poller.close();
    if (this.ownDir !== undefined && existsSync(this.ownDir)) {
      rmSync(this.ownDir, { recursive: true, force: true });
    }
  }

  private spawnNode(id: string, logLevel?: string): ChildProcess {
    if (this.closed) throw new Error('cluster closed');
    const n = this.node(id);
    const o = this.options;
    const joiner = this.joiners.get(id);
    const others = this.all.filter((p) => p.id !== n.id && !this.joiners.has(p.id));
    const membership =
      joiner === undefined
        ? [
            '--peers',
            others
              // Raft address, then the RPC port (as cohort up does): followers name the leader's in redirects.
              .map((p) => `${p.id}=${p.listen.host}:${p.listen.port}/${p.rpc.port}`)
              .join(','),
          ]
        : [
            '--join',
            others.map((p) => `${p.id}=${p.rpc.host}:${p.rpc.port}`).join(','),
            ...(joiner.learner ? ['--learner'] : []),
          ];
    const args = [
      'node',
      '--id',
      n.id,
      '--cluster-id',
      this.clusterId,
      '--data-dir',
      n.dataDir,
      '--listen',
      `${n.listen.host}:${n.listen.port}`,
      '--rpc',
      `${n.rpc.host}:${n.rpc.port}`,
      ...membership,
      '--log-level',
      logLevel ?? o.logLevel ?? 'warn',
    ];
    if (o.snapshotEntries !== undefined) args.push('--snapshot-entries', `${o.snapshotEntries}`);
    if (o.tickMs !== undefined) args.push('--tick-ms', `${o.tickMs}`);
    if (o.electionTicks !== undefined) args.push('--election-ticks', `${o.electionTicks}`);
    if (o.heartbeatTicks !== undefined) args.push('--heartbeat-ticks', `${o.heartbeatTicks}`);
    if (o.kvQuotaBytes !== undefined) args.push('--kv-quota-bytes', `${o.kvQuotaBytes}`);
    if (this.certs === undefined) {
      args.push('--insecure');
    } else {
      const f = this.certs.files({ kind: 'node', id: n.id });
      args.push('--tls-ca', f.ca, '--tls-cert', f.cert, '--tls-key', f.key);
    }
    const entry = o.runtime === 'dist' ? [distCli] : ['--import', 'tsx', sourceCli];
    const child = spawn(process.execPath, [...(o.nodeFlags ?? []), ...entry, ...args], {
      cwd: repo,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.outputs.set(id, '');
    const keep = (d: Buffer): void => {
      const s = (this.outputs.get(id) ?? '') + d.toString();
      this.outputs.set(id, s.length > outputKeepChars ? s.slice(-outputKeepChars) : s);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.children.set(id, child);
    allChildren.add(child);
    child.once('exit', () => allChildren.delete(child));
    this.paused.delete(id);
    return child;
  }
}
