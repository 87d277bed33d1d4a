/**
 * `cohort status`: asks every node of a cluster for its status (Node.status
 * RPC) and prints members, roles, terms and indexes.
 *
 * ```sh
 * cohort status                         # the cluster in .cohort/cluster.json (cohort up)
 * cohort status --json                  # for scripts
 * cohort status --endpoints n1=127.0.0.1:7201,n2=127.0.0.1:7202 --cluster-id cohort-local
 * ```
 *
 * Exit codes: 0 a leader and every node answered; 2 a leader but some node
 * did not answer; 1 no leader, or no cluster to ask.
 */
import type { Command } from 'commander';
import { StatusPoller, summarize, summaryLine } from '../node/cluster.js';
import type { ClusterNode, PollResult } from '../node/cluster.js';
import type { ClientTlsOptions } from '../trust/client-tls.js';
import { addTargetOptions, resolveTarget } from './target.js';
import type { TargetFlags } from './target.js';

interface StatusFlags extends TargetFlags {
  json?: boolean;
  timeoutMs: string;
}

function pad(cells: readonly string[][]): string {
  const widths = cells[0]?.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length))) ?? [];
  return cells
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** The table `cohort status` prints. */
export function statusTable(nodes: readonly ClusterNode[], results: readonly PollResult[]): string {
  const rows = [
    ['ID', 'ROLE', 'TERM', 'LEADER', 'COMMIT', 'APPLIED', 'LAST', 'MEMBERS', 'RPC', 'PID'],
  ];
  results.forEach((r, i) => {
    const rpc = nodes[i] === undefined ? '' : `${nodes[i].rpc.host}:${nodes[i].rpc.port}`;
    if (r.ok) {
      const s = r.status;
      rows.push([
        s.id,
        s.role,
        String(s.term),
        s.leader ?? '-',
        String(s.commitIndex),
        String(s.appliedIndex),
        String(s.lastIndex),
        s.members.join(','),
        rpc,
        String(s.pid),
      ]);
    } else {
      const why =
        r.error === 'HANDSHAKE_FAILED' || r.error === 'PERMISSION_DENIED'
          ? `${r.error}: ${r.message ?? ''}`
          : r.error;
      rows.push([r.id, `unreachable (${why})`, '', '', '', '', '', '', rpc, '']);
    }
  });
  return pad(rows);
}

async function status(flags: StatusFlags): Promise<void> {
  let nodes: ClusterNode[];
  let clusterId: string;
  let tls: ClientTlsOptions | undefined;
  try {
    ({ nodes, clusterId, tls } = resolveTarget(flags));
  } catch (e) {
    process.stderr.write(`cohort status: ${(e as Error).message}\n`);
    process.exitCode = 1;
    return;
  }
  const timeoutMs = Number(flags.timeoutMs);
  // The RPC layer's deadline timers do not hold the process open: this does, until the answers are in.
  const keepAlive = setInterval(() => undefined, 1000);
  let poller: StatusPoller;
  try {
    poller = await StatusPoller.connect(nodes, clusterId, tls);
  } catch (e) {
    clearInterval(keepAlive);
    process.stderr.write(`cohort status: ${(e as Error).message}\n`);
    process.exitCode = 1;
    return;
  }
  let results: PollResult[];
  try {
    results = await poller.poll(Number.isFinite(timeoutMs) && timeoutMs > 0 ? timeoutMs : 1000);
  } finally {
    clearInterval(keepAlive);
    await poller.close();
  }
  const summary = summarize(results);
  if (flags.json === true) {
    process.stdout.write(
      `${JSON.stringify({
        clusterId,
        ...summary,
        nodes: results.map((r) => (r.ok ? { ok: true, ...r.status } : r)),
      })}\n`,
    );
  } else {
    process.stdout.write(`cluster ${clusterId} · ${summaryLine(summary)}\n`);
    process.stdout.write(`${statusTable(nodes, results)}\n`);
    for (const r of results) {
      const alarms = r.ok ? (r.status.alarms ?? []) : [];
      if (!r.ok || alarms.length === 0) continue;
      process.stdout.write(
        `alarm on ${r.id}: ${alarms.join(', ')} (KV store ${String(r.status.kvBytes ?? '?')} bytes; writes fail with NO_SPACE until deletes and compaction free space)\n`,
      );
    }
  }
  process.exitCode = summary.leader === null ? 1 : summary.up < summary.total ? 2 : 0;
}

/** Adds `cohort status` to `program`. */
export function registerStatusCommand(program: Command): void {
  addTargetOptions(
    program.command('status').description('members, roles, terms and indexes of a running cluster'),
  )
    .option('--json', 'print as JSON')
    .option('--timeout-ms <ms>', 'how long to wait for each node', '1000')
    .action(async (flags: StatusFlags) => {
      await status(flags);
    });
}
