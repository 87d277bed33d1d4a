/**
 * `cohort up` starts a local cluster of separate `cohort node` processes on
 * 127.0.0.1 and shows a live status line until Ctrl-C; `cohort down` stops a
 * detached one.
 *
 * ```sh
 * cohort up [--nodes 3] [--base-port 7100] [--dir .cohort] [--detach] [--workers 2] [--wal-sync inline] [--kv-quota-bytes n]
 * cohort status            # in another terminal
 * cohort up --restart n2   # stop node n2 if it runs, start it again as up started it
 * cohort down [--dir .cohort]
 * ```
 *
 * Secure by default: on first start it makes the cluster's CA and a
 * certificate for every node and for the `root` user under `<dir>/certs`
 * (files 0600; reissued when they near expiry), starts every node with them
 * (mutual TLS on every link), and writes the root user's paths into
 * cluster.json, so `cohort kv`, `cohort status` and `cohort mr` use them by
 * themselves. `--insecure` runs every node without TLS instead (with a warning).
 *
 * Node i listens for Raft on base+i and serves the Node RPC on base+100+i;
 * its data dir is `<dir>/n<i>` and its log `<dir>/n<i>/node.log`. The
 * cluster is described in `<dir>/cluster.json` (endpoints, each node's pid
 * with its process start time, and the arguments it was started with), which
 * is how `cohort status`, `cohort down`, `cohort up --restart` and a second
 * `cohort up` find it. A process is only ever signalled as a node once it is
 * known to be that node: it answered on the node's RPC address as that node
 * of that cluster (and says its pid: a node restarted by hand is found too),
 * or it is the recorded pid with the recorded start time (a pid reused by an
 * unrelated process has another start time, and is left alone).
 * Children are started with the same Node.js flags and entry script as this
 * process (`bin/cohort.js`, or the sources under tsx in tests). On Ctrl-C or
 * SIGTERM every node gets SIGTERM, and SIGKILL if it has not exited after
 * {@link stopGraceMs}.
 *
 * A node counts as up only when the process answering at its RPC address is
 * the one started here (its pid, in this cluster: the handshake checks the
 * id), so a cluster already on those ports is never reported as this one; a
 * node that exits — at start (a port in use) or later — is reported with the
 * reason from its log. Exit codes: 0 when a detached cluster is up; 130
 * (SIGINT) or 143 (SIGTERM) after an attached one stopped cleanly; 1 when it
 * could not start (another one is running, a port is in use, no leader); 2
 * for bad flags.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import {
  clusterFilePath,
  pidAlive,
  planCluster,
  processStartTime,
  readClusterFile,
  StatusPoller,
  summarize,
  summaryLine,
} from '../node/cluster.js';
import { isCohortError } from '../lib/errors.js';
import type { ClusterFile, ClusterNode } from '../node/cluster.js';
import { CertDir } from '../trust/cert-dir.js';
import type { CredentialFiles } from '../trust/credentials.js';
import { makeDirs } from '../lib/dirs.js';
import { exitCodes } from './exit-codes.js';
import { signalCode } from './run.js';
import { findClusterDir } from './target.js';

/** How long a node gets to exit after SIGTERM before SIGKILL. */
export const stopGraceMs = 5000;
/** How long `cohort up` waits for the first leader before giving up. */
const leaderWaitMs = 20_000;
/** Status refresh period of the live line (about twice a second). */
const refreshMs = 500;

interface UpFlags {
  /** Restart this node of the cluster in `dir` instead of starting a cluster. */
  restart?: string;
  nodes: number;
  basePort: number;
  dir: string;
  detach?: boolean;
  clusterId: string;
  /** MapReduce worker threads per node (the node's --workers); default: the node's. */
  workers?: number;
  /** The nodes' --wal-sync; default: the node's (auto). */
  walSync?: 'auto' | 'thread' | 'inline';
  /** The nodes' --kv-quota-bytes; default: the node's. */
  kvQuotaBytes?: number;
  /** The nodes' --mr-module-dirs; default: the working directory. */
  mrModuleDirs?: string;
  /** Run every node without TLS (the nodes' --insecure). */
  insecure?: boolean;
}

function walSyncMode(text: string): 'auto' | 'thread' | 'inline' {
  if (text !== 'auto' && text !== 'thread' && text !== 'inline') {
    throw new InvalidArgumentError('expected auto, thread or inline');
  }
  return text;
}

function int(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError('expected a non-negative integer');
  }
  return n;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function fail(message: string, code = 'UNAVAILABLE', exitCode: number = exitCodes.failed): void {
  process.stderr.write(`error: ${code}: cohort up: ${message}\n`);
  process.exitCode = exitCode;
}

function addr(a: { host: string; port: number }): string {
  return `${a.host}:${a.port}`;
}

/**
 * True if process `pid` is still the one recorded with `startTime` (no start
 * time recorded, by an older cohort up: the process must at least be a
 * cohort node with this id, by its command line).
 */
function sameProcess(pid: number, startTime: number | undefined, nodeId?: string): boolean {
  const now = processStartTime(pid);
  if (now === undefined) return false;
  if (startTime !== undefined) return now === startTime;
  if (nodeId === undefined) return false;
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const i = argv.indexOf('--id');
    return argv.includes('node') && i >= 0 && argv[i + 1] === nodeId;
  } catch {
    return false;
  }
}

/** What `cohort down` found for one node or the supervisor. */
interface Found {
  readonly what: string;
  readonly pid?: number;
  /** Why nothing is signalled (a stale pid). */
  readonly skipped?: string;
}

/**
 * The processes of a cluster file to stop, supervisor first: each node as it
 * answers on its RPC address (its own pid), else its recorded pid if that is
 * still the same process (pid and start time); a recorded pid now held by
 * another process is skipped.
 */
async function clusterProcesses(f: ClusterFile): Promise<Found[]> {
  const found: Found[] = [];
  if (f.supervisor !== null && pidAlive(f.supervisor)) {
    found.push(
      sameProcess(f.supervisor, f.supervisorStartTime)
        ? { what: 'supervisor', pid: f.supervisor }
        : { what: 'supervisor', skipped: `pid ${f.supervisor} is another process now` },
    );
  }
  const poller = await StatusPoller.connect(f.nodes, f.clusterId, 'none', f.tls);
  let polled;
  try {
    polled = await poller.poll(1_000);
  } finally {
    await poller.close();
  }
  for (const [i, n] of f.nodes.entries()) {
    const r = polled[i];
    if (r?.ok === true && r.status.id === n.id && pidAlive(r.status.pid)) {
      found.push({ what: n.id, pid: r.status.pid });
    } else if (n.pid !== undefined && pidAlive(n.pid)) {
      found.push(
        sameProcess(n.pid, n.startTime, n.id)
          ? { what: n.id, pid: n.pid }
          : {
              what: n.id,
              skipped: `its recorded pid ${n.pid} belongs to another process now; not signalled`,
            },
      );
    }
  }
  return found;
}

function tail(path: string, lines: number): string {
  if (!existsSync(path)) return '';
  return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}

/**
 * Why a node exited, from the end of its JSON log: the message of its last
 * error or fatal line (`cannot start: port 7102 is in use ...`), else the last
 * lines as they are.
 */
export function exitReason(logPath: string): string {
  const lines = tail(logPath, 50).split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    try {
      const entry = JSON.parse(lines[i] ?? '') as { level?: unknown; msg?: unknown };
      if (typeof entry.level === 'number' && entry.level >= 50 && typeof entry.msg === 'string') {
        return entry.msg;
      }
    } catch {
      // not a JSON line
    }
  }
  return lines.slice(-5).join('\n');
}

/** Waits until `pid` is gone or `ms` passed; true if it is gone. */
async function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (pidAlive(pid)) {
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
  return true;
}

/** SIGTERMs the pids, waits up to the grace period, SIGKILLs the stragglers. Returns those killed. */
async function stopPids(pids: readonly number[]): Promise<number[]> {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  const killed: number[] = [];
  await Promise.all(
    pids.map(async (pid) => {
      if (await waitGone(pid, stopGraceMs)) return;
      try {
        process.kill(pid, 'SIGKILL');
        killed.push(pid);
      } catch {
        // gone meanwhile
      }
      await waitGone(pid, 1000);
    }),
  );
  return killed;
}

/** `cohort up` (see the file comment). */
async function up(flags: UpFlags): Promise<void> {
  const dir = resolve(flags.dir);
  let plan;
  try {
    plan = planCluster({
      nodes: flags.nodes,
      basePort: flags.basePort,
      dir,
      clusterId: flags.clusterId,
    });
  } catch (e) {
    fail((e as Error).message, 'INVALID_ARGUMENT', exitCodes.usage);
    return;
  }
  const filePath = clusterFilePath(dir);
  if (existsSync(filePath)) {
    let running: number[] = [];
    try {
      const f = readClusterFile(dir);
      const recorded = [
        ...(f.supervisor === null ? [] : [{ pid: f.supervisor, startTime: f.supervisorStartTime }]),
        ...f.nodes.flatMap((n) => (n.pid === undefined ? [] : [{ ...n, pid: n.pid }])),
      ];
      running = recorded
        .filter((x) => sameProcess(x.pid, x.startTime, 'id' in x ? x.id : undefined))
        .map((x) => x.pid);
    } catch {
      // an unreadable file describes no running cluster
    }
    if (running.length > 0) {
      fail(
        `a cluster is already running in ${dir} (pids ${running.join(', ')}); ` +
          `stop it with Ctrl-C in its terminal or \`cohort down --dir ${flags.dir}\``,
        'FAILED_PRECONDITION',
      );
      return;
    }
    rmSync(filePath);
  }
  try {
    // Not mkdirSync's recursive mode: it spins forever where a parent refuses children (/proc).
    for (const d of [dir, ...plan.nodes.map((n) => n.dataDir)]) makeDirs(d);
  } catch (e) {
    fail(`cannot create ${dir}: ${(e as Error).message}`);
    return;
  }

  // Secure by default: the cluster's CA and every certificate, made once under <dir>/certs
  // (and renewed when they near expiry); the CLI uses the root user's (cluster.json says where).
  const certs = new CertDir(join(dir, 'certs'));
  let clientTls: CredentialFiles | undefined;
  if (flags.insecure !== true) {
    try {
      const made = await certs.ensure({
        clusterId: plan.clusterId,
        nodes: plan.nodes.map((n) => n.id),
        users: ['root'],
      });
      if (made.createdCa) {
        process.stdout.write(`cohort: made a CA for cluster ${plan.clusterId} in ${certs.dir}\n`);
      }
      if (made.issued.length > 0) {
        const names = made.issued.map((x) => (x.kind === 'node' ? x.id : `user ${x.name}`));
        process.stdout.write(`cohort: issued certificates for ${names.join(', ')}\n`);
      }
    } catch (e) {
      fail(`cannot make the cluster's certificates: ${(e as Error).message}`);
      return;
    }
    clientTls = certs.files({ kind: 'user', name: 'root' });
  } else {
    process.stdout.write(
      'cohort: WARNING: --insecure: the nodes run without TLS; nobody is authenticated and anyone who can reach their ports can do anything\n',
    );
  }

  const entry = process.argv[1];
  if (entry === undefined) {
    fail('cannot tell which script to run the nodes with', 'INTERNAL');
    return;
  }
  // The children run like this process (same loader flags), minus debugger flags whose port would clash.
  const nodeFlags = process.execArgv.filter((a) => !a.startsWith('--inspect'));
  const peerList = (self: string): string =>
    plan.nodes
      .filter((n) => n.id !== self)
      // Raft address, then the RPC port: followers redirect KV clients to the leader's.
      .map((n) => `${n.id}=${addr(n.listen)}/${n.rpc.port}`)
      .join(',');
  const children = new Map<string, ChildProcess>();
  const exited = new Map<string, string>();
  const nodes: ClusterNode[] = [];
  for (const n of plan.nodes) {
    const logPath = join(n.dataDir, 'node.log');
    const fd = openSync(logPath, 'a');
    const args = [
      ...nodeFlags,
      entry,
      'node',
      '--id',
      n.id,
      '--data-dir',
      n.dataDir,
      '--listen',
      addr(n.listen),
      '--rpc',
      addr(n.rpc),
      '--cluster-id',
      plan.clusterId,
    ];
    const peers = peerList(n.id);
    if (peers !== '') args.push('--peers', peers);
    if (flags.insecure === true) {
      args.push('--insecure');
    } else {
      const f = certs.files({ kind: 'node', id: n.id });
      args.push('--tls-ca', f.ca, '--tls-cert', f.cert, '--tls-key', f.key);
    }
    if (flags.workers !== undefined) args.push('--workers', `${flags.workers}`);
    if (flags.walSync !== undefined) args.push('--wal-sync', flags.walSync);
    if (flags.kvQuotaBytes !== undefined) args.push('--kv-quota-bytes', `${flags.kvQuotaBytes}`);
    if (flags.mrModuleDirs !== undefined) args.push('--mr-module-dirs', flags.mrModuleDirs);
    const child = spawn(process.execPath, args, {
      stdio: ['ignore', fd, fd],
      detached: flags.detach === true,
    });
    closeSync(fd);
    child.once('exit', (code, signal) => {
      exited.set(n.id, signal ?? `exit code ${String(code)}`);
    });
    children.set(n.id, child);
    nodes.push({ ...n, ...processOf(child.pid), args });
  }
  const supervisorStartTime = processStartTime(process.pid);
  const file: ClusterFile = {
    clusterId: plan.clusterId,
    supervisor: flags.detach === true ? null : process.pid,
    ...(flags.detach === true || supervisorStartTime === undefined ? {} : { supervisorStartTime }),
    startedAt: new Date().toISOString(),
    nodes,
    ...(clientTls === undefined ? { insecure: true } : { tls: clientTls }),
  };
  writeFileSync(filePath, `${JSON.stringify(file, null, 2)}\n`);

  const out = process.stdout;
  out.write(`cohort: starting ${nodes.length} nodes (cluster ${plan.clusterId}, dir ${dir})\n`);
  for (const n of nodes) {
    out.write(
      `  ${n.id}  raft ${addr(n.listen)}  rpc ${addr(n.rpc)}  pid ${String(n.pid)}  log ${join(n.dataDir, 'node.log')}\n`,
    );
  }

  // A node counts as up only if the process answering is the one started here (pid), in this cluster (handshake).
  const poller = await StatusPoller.connect(nodes, plan.clusterId, 'pid', clientTls);
  let stopping = false;
  const stopAll = async (why: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    if (out.isTTY) out.write('\n');
    const pids = [...children.values()].flatMap((c) =>
      c.pid !== undefined && c.exitCode === null && c.signalCode === null ? [c.pid] : [],
    );
    // And nodes restarted since (cohort up --restart, or by hand), as cluster.json and their RPC find them.
    try {
      for (const f of await clusterProcesses(readClusterFile(dir))) {
        if (f.pid !== undefined && f.pid !== process.pid && !pids.includes(f.pid)) pids.push(f.pid);
      }
    } catch {
      // no cluster file: only the children
    }
    out.write(`cohort: ${why}; stopping ${pids.length} running nodes\n`);
    await poller.close();
    const killed = await stopPids(pids);
    rmSync(filePath, { force: true });
    out.write(
      killed.length === 0
        ? 'cohort: all nodes stopped\n'
        : `cohort: nodes stopped (${killed.length} needed SIGKILL: pids ${killed.join(', ')})\n`,
    );
  };

  // Wait for the first leader, or a node that died at start.
  const deadline = Date.now() + leaderWaitMs;
  let last = await poller.poll(refreshMs);
  let summary = summarize(last);
  // Every node answering as well, unless a leader exists and time is up.
  while (summary.leader === null || summary.up < summary.total) {
    if (exited.size > 0) {
      const [id, how] = [...exited][0] ?? ['?', '?'];
      const node = nodes.find((n) => n.id === id);
      const reason = node === undefined ? '' : exitReason(join(node.dataDir, 'node.log'));
      await stopAll(`node ${id} exited at start (${how})`);
      fail(
        `node ${id} could not start: ${reason} (its log: ${node === undefined ? '?' : join(node.dataDir, 'node.log')})`,
      );
      return;
    }
    if (Date.now() >= deadline) {
      if (summary.leader !== null) break;
      const wrong = last.flatMap((r) =>
        !r.ok && r.error === 'WRONG_NODE' ? [r.message ?? r.id] : [],
      );
      await stopAll('no leader was elected');
      fail(
        wrong.length > 0
          ? `the nodes started here do not answer: ${wrong.join('; ')}`
          : `no leader after ${leaderWaitMs} ms; see the node logs under ${dir}`,
      );
      return;
    }
    await sleep(100);
    last = await poller.poll(refreshMs);
    summary = summarize(last);
  }

  if (exited.size > 0) {
    // Died after answering (e.g. a late storage failure): not a cluster to leave running.
    const [id, how] = [...exited][0] ?? ['?', '?'];
    const node = nodes.find((n) => n.id === id);
    await stopAll(`node ${id} exited (${how})`);
    fail(
      `node ${id} exited: ${node === undefined ? how : exitReason(join(node.dataDir, 'node.log'))}`,
    );
    return;
  }

  if (flags.detach === true) {
    await poller.close();
    for (const c of children.values()) c.unref();
    out.write(`${summaryLine(summary)}\n`);
    out.write(
      `cohort: detached; \`cohort status --dir ${flags.dir}\` to check, \`cohort down --dir ${flags.dir}\` to stop\n`,
    );
    return;
  }

  out.write('cohort: up; Ctrl-C stops every node\n');
  const reported = new Set<string>();
  const signal = await new Promise<NodeJS.Signals>((resolveDone) => {
    const onSignal = (s: NodeJS.Signals): void => {
      void stopAll(s).then(() => resolveDone(s));
    };
    process.once('SIGINT', () => onSignal('SIGINT'));
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    let lastLine = '';
    const refresh = async (): Promise<void> => {
      while (!stopping) {
        const line = summaryLine(summarize(await poller.poll(refreshMs)));
        if (stopping) break;
        for (const [id, how] of exited) {
          if (reported.has(id)) continue;
          reported.add(id);
          const node = nodes.find((n) => n.id === id);
          const why = node === undefined ? '' : `: ${exitReason(join(node.dataDir, 'node.log'))}`;
          if (out.isTTY === true) out.write('\n');
          process.stderr.write(`cohort: node ${id} exited (${how})${why}\n`);
        }
        if (out.isTTY === true) {
          out.write(`\r\x1b[2K${line}`);
        } else if (line !== lastLine) {
          out.write(`${line}\n`);
        }
        lastLine = line;
        await sleep(refreshMs);
      }
    };
    void refresh();
  });
  process.exitCode = signalCode(signal);
}

/** The pid and start time of a child just spawned, for cluster.json. */
function processOf(pid: number | undefined): { pid?: number; startTime?: number } {
  if (pid === undefined) return {};
  const startTime = processStartTime(pid);
  return startTime === undefined ? { pid } : { pid, startTime };
}

/** `cohort down`: stops the cluster described in `<dir>/cluster.json` (default: the nearest .cohort/). */
async function down(flags: { dir?: string }): Promise<void> {
  const dir = resolve(flags.dir ?? findClusterDir(process.cwd()) ?? '.cohort');
  let file: ClusterFile;
  try {
    file = readClusterFile(dir);
  } catch (e) {
    process.stderr.write(
      `error: ${isCohortError(e) ? e.code : 'INTERNAL'}: cohort down: ${(e as Error).message}\n`,
    );
    process.exitCode = exitCodes.failed;
    return;
  }
  // A supervising `cohort up` stops its own nodes; stop the nodes too in case it cannot.
  const found = await clusterProcesses(file);
  for (const f of found) {
    if (f.skipped !== undefined) process.stdout.write(`cohort down: ${f.what}: ${f.skipped}\n`);
  }
  const pids = [...new Set(found.flatMap((f) => (f.pid === undefined ? [] : [f.pid])))];
  const killed = await stopPids(pids);
  rmSync(clusterFilePath(dir), { force: true });
  process.stdout.write(
    pids.length === 0
      ? 'cohort down: nothing was running\n'
      : `cohort down: stopped ${pids.length} processes${killed.length > 0 ? ` (${killed.length} with SIGKILL)` : ''}\n`,
  );
}

/**
 * `cohort up --restart <id>`: stops node `id` of the cluster in `<dir>` if it
 * runs (found as `down` finds it), starts it again, detached, with the
 * arguments `cohort up` started it with, records its new pid in
 * cluster.json, and waits until it answers.
 */
async function restart(id: string, flags: UpFlags): Promise<void> {
  const dir = resolve(flags.dir);
  let file: ClusterFile;
  try {
    file = readClusterFile(dir);
  } catch (e) {
    fail((e as Error).message);
    return;
  }
  const node = file.nodes.find((n) => n.id === id);
  if (node === undefined) {
    fail(
      `the cluster in ${dir} has no node ${id} (it has ${file.nodes.map((n) => n.id).join(', ')})`,
    );
    return;
  }
  if (node.args === undefined) {
    fail(
      `${clusterFilePath(dir)} does not say how ${id} was started (an older cohort up wrote it); restart the whole cluster`,
    );
    return;
  }
  const running = (await clusterProcesses(file)).find((f) => f.what === id && f.pid !== undefined);
  if (running?.pid !== undefined) {
    process.stdout.write(`cohort up: stopping ${id} (pid ${running.pid})\n`);
    await stopPids([running.pid]);
  }
  const logPath = join(node.dataDir, 'node.log');
  const fd = openSync(logPath, 'a');
  const child = spawn(process.execPath, [...node.args], {
    stdio: ['ignore', fd, fd],
    detached: true,
  });
  closeSync(fd);
  let exited: string | undefined;
  child.once('exit', (code, signal) => (exited = signal ?? `exit code ${String(code)}`));
  const updated: ClusterFile = {
    ...file,
    nodes: file.nodes.map((n) => (n.id === id ? { ...n, ...processOf(child.pid) } : n)),
  };
  writeFileSync(clusterFilePath(dir), `${JSON.stringify(updated, null, 2)}\n`);
  // Up once the process answering is the one just started (its pid), over the cluster's TLS.
  const started = updated.nodes.find((n) => n.id === id) ?? node;
  const poller = await StatusPoller.connect([started], file.clusterId, 'pid', file.tls);
  try {
    const deadline = Date.now() + leaderWaitMs;
    for (;;) {
      const [r] = await poller.poll(refreshMs);
      if (r?.ok === true) break;
      if (exited !== undefined) {
        fail(`node ${id} exited at start (${exited}):\n${tail(logPath, 5)}`);
        return;
      }
      if (Date.now() >= deadline) {
        fail(
          `node ${id} (pid ${String(child.pid)}) did not answer within ${leaderWaitMs} ms; see ${logPath}`,
        );
        return;
      }
      await sleep(100);
    }
  } finally {
    await poller.close();
    child.unref();
  }
  process.stdout.write(`cohort up: ${id} restarted (pid ${String(child.pid)}, log ${logPath})\n`);
}

/** Adds `cohort up` and `cohort down` to `program`. */
export function registerUpCommands(program: Command): void {
  program
    .command('up')
    .description('start a local cluster of node processes on 127.0.0.1 and show its status')
    .option('--nodes <n>', 'how many nodes', int, 3)
    .option('--base-port <port>', 'raft on base+i, rpc on base+100+i', int, 7100)
    .option('--dir <dir>', 'data dirs, logs and cluster.json go here', '.cohort')
    .option('--cluster-id <id>', 'cluster id', 'cohort-local')
    .option('--detach', 'leave the nodes running and exit')
    .option(
      '--restart <id>',
      'restart one node of the cluster in --dir (stopping it first if it runs) and exit',
    )
    .option('--workers <n>', 'MapReduce worker threads per node (default one per core)', int)
    .option(
      '--wal-sync <mode>',
      "where each node's WAL fdatasync runs: auto (default: inline while the disk is fast), thread or inline",
      walSyncMode,
    )
    .option(
      '--kv-quota-bytes <n>',
      "each node's KV storage quota: past it writes fail with NO_SPACE (default 512 MiB, 0 none)",
      int,
    )
    .option(
      '--mr-module-dirs <dirs>',
      'comma-separated directories MapReduce job modules may load from (default: the working directory)',
    )
    .option(
      '--insecure',
      'run every node without TLS: nobody is authenticated, anyone who reaches the ports can do anything',
    )
    .action(async (flags: UpFlags) => {
      if (flags.restart !== undefined) await restart(flags.restart, flags);
      else await up(flags);
    });
  program
    .command('down')
    .description('stop the local cluster started by cohort up (--detach or not)')
    .option(
      '--dir <dir>',
      'where cohort up put cluster.json (default: the nearest .cohort/ at or above here)',
    )
    .action(async (flags: { dir?: string }) => {
      await down(flags);
    });
}
