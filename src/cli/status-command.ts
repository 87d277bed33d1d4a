/**
 * `cohort status`: asks every node of a cluster for its status (Node.status
 * RPC) and prints members, roles, terms and indexes.
 *
 * ```sh
 * cohort status                         # the nearest .cohort/cluster.json (cohort up), from any subdirectory
 * cohort status --json                  # for scripts
 * cohort status --endpoints n1=127.0.0.1:7201,n2=127.0.0.1:7202 --cluster-id cohort-local
 * ```
 *
 * The cluster is found like every client command's (target.ts). A node is
 * only reported as itself: the handshake refuses another cluster id, and
 * for a cluster file the node must report the data dir the file names — a
 * node of another cluster answering on the same port is shown as such, never
 * counted. Exit codes: 0 a leader and every node answered; 5 a leader but
 * some node did not; 1 no leader, or no cluster to ask.
 */
import type { Command } from 'commander';
import { StatusPoller, summarize, summaryLine } from '../node/cluster.js';
import type { ClusterNode, PollResult } from '../node/cluster.js';
import { exitCodes } from './exit-codes.js';
import { targetOptions } from './kv-command.js';
import { outputOf, outputOptions, printJson } from './output.js';
import type { OutputFlags } from './output.js';
import { out, runAction } from './run.js';
import { resolveTarget } from './target.js';
import type { TargetFlags } from './target.js';

interface StatusFlags extends TargetFlags, OutputFlags {
  timeoutMs: number;
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

/** A short reason a node did not answer, for a table cell. */
export function shortReason(r: PollResult & { ok: false }): string {
  const m = r.message ?? '';
  if (r.error === 'WRONG_NODE') return 'another process';
  if (r.error === 'HANDSHAKE_FAILED') {
    return /cluster/i.test(m) && !/certificate|tls/i.test(m)
      ? 'another cluster'
      : 'handshake refused';
  }
  if (r.error === 'PERMISSION_DENIED') return 'permission denied';
  if (/connection refused/.test(m)) return 'refused';
  if (r.error === 'TIMEOUT') return 'no answer';
  if (/no connection within/.test(m)) return 'no connection';
  return r.error;
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
      rows.push([r.id, `unreachable (${shortReason(r)})`, '', '', '', '', '', '', rpc, '']);
    }
  });
  return pad(rows);
}

/** Adds `cohort status` to `program`. */
export function registerStatusCommand(program: Command): void {
  outputOptions(targetOptions(program.command('status'), 1000), false)
    .description(
      'members, roles, terms and indexes of a running cluster; exit 0 all up, 5 a node down, 1 no leader',
    )
    .action(async (flags: StatusFlags) => {
      await runAction({ readOnly: true }, async (ctx) => {
        const o = outputOf(flags);
        const target = resolveTarget(flags);
        ctx.report.source = target.source;
        const poller = await StatusPoller.connect(
          target.nodes,
          target.clusterId,
          target.file === undefined ? 'none' : 'dataDir',
          target.tls,
        );
        let results: PollResult[];
        try {
          results = await poller.poll(flags.timeoutMs);
        } finally {
          await poller.close();
        }
        const summary = summarize(results);
        if (o.format === 'json') {
          printJson({
            clusterId: target.clusterId,
            source: target.source,
            ...summary,
            nodes: results.map((r) =>
              r.ok ? { ok: true, ...r.status, latencyMs: r.latencyMs } : r,
            ),
          });
        } else {
          out(`cluster ${target.clusterId} (${target.source}) · ${summaryLine(summary)}`);
          out(statusTable(target.nodes, results));
          for (const r of results) {
            if (!r.ok) {
              out(`${r.id}: ${r.error}: ${r.message ?? 'no answer'}`);
              continue;
            }
            const alarms = r.status.alarms ?? [];
            if (alarms.length === 0) continue;
            out(
              `alarm on ${r.id}: ${alarms.join(', ')} (KV store ${String(r.status.kvBytes ?? '?')} bytes; writes fail with NO_SPACE until deletes and compaction free space)`,
            );
          }
        }
        if (summary.leader === null) {
          process.stderr.write(
            `error: UNAVAILABLE: no leader: ${summary.up} of ${summary.total} nodes answered (is a majority up? endpoints from ${target.source})\n`,
          );
          return exitCodes.failed;
        }
        return summary.up < summary.total ? exitCodes.no : exitCodes.done;
      });
    });
}
