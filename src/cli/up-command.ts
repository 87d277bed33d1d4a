/**
 * `cohort up` starts a local cluster of separate `cohort node` processes on
 * 127.0.0.1 and shows a live status line until Ctrl-C; `cohort down` stops a
 * detached one.
 *
 * ```sh
 * cohort up [--nodes 3] [--base-port 7100] [--dir .cohort] [--detach] [--workers 2] [--wal-sync inline] [--kv-quota-bytes n]
 * cohort status            # in another terminal
 * cohort down [--dir .cohort]
 * ```
 *
 * Node i listens for Raft on base+i and serves the Node RPC on base+100+i;
 * its data dir is `<dir>/n<i>` and its log `<dir>/n<i>/node.log`. The
 * cluster is described in `<dir>/cluster.json` (pids and endpoints), which is
 * how `cohort status`, `cohort down` and a second `cohort up` find it.
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
  readClusterFile,
  StatusPoller,
  summarize,
  summaryLine,
} from '../node/cluster.js';
import { isCohortError } from '../lib/errors.js';
import type { ClusterFile, ClusterNode } from '../node/cluster.js';
import { makeDirs } from '../raft/storage/fs.js';
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

/** The pids of a cluster file still alive (supervisor first). */
function livePids(f: ClusterFile): number[] {
  const pids = [f.supervisor, ...f.nodes.map((n) => n.pid)];
  return pids.filter((p): p is number => typeof p === 'number' && pidAlive(p));
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
      running = livePids(readClusterFile(dir));
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
    if (flags.workers !== undefined) args.push('--workers', `${flags.workers}`);
    if (flags.walSync !== undefined) args.push('--wal-sync', flags.walSync);
    if (flags.kvQuotaBytes !== undefined) args.push('--kv-quota-bytes', `${flags.kvQuotaBytes}`);
    const child = spawn(process.execPath, args, {
      stdio: ['ignore', fd, fd],
      detached: flags.detach === true,
    });
    closeSync(fd);
    child.once('exit', (code, signal) => {
      exited.set(n.id, signal ?? `exit code ${String(code)}`);
    });
    children.set(n.id, child);
    nodes.push({ ...n, ...(child.pid === undefined ? {} : { pid: child.pid }) });
  }
  const file: ClusterFile = {
    clusterId: plan.clusterId,
    supervisor: flags.detach === true ? null : process.pid,
    startedAt: new Date().toISOString(),
    nodes,
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
  const poller = await StatusPoller.connect(nodes, plan.clusterId, 'pid');
  let stopping = false;
  const stopAll = async (why: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    if (out.isTTY) out.write('\n');
    const pids = [...children.values()].flatMap((c) =>
      c.pid !== undefined && c.exitCode === null && c.signalCode === null ? [c.pid] : [],
    );
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
  const pids = livePids(file);
  const killed = await stopPids(pids);
  rmSync(clusterFilePath(dir), { force: true });
  process.stdout.write(
    pids.length === 0
      ? 'cohort down: nothing was running\n'
      : `cohort down: stopped ${pids.length} processes${killed.length > 0 ? ` (${killed.length} with SIGKILL)` : ''}\n`,
  );
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
    .action(async (flags: UpFlags) => {
      await up(flags);
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
