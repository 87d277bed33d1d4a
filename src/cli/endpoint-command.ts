/**
 * `cohort endpoint status|health`: each node of the cluster on its own, like
 * `etcdctl endpoint status|health`.
 *
 * ```sh
 * cohort endpoint status           # ENDPOINT ID VERSION LEADER TERM INDEX APPLIED DB SIZE LATENCY (-w table by default)
 * cohort endpoint health -w json   # [{"endpoint":"127.0.0.1:7201","id":"n1","health":true,"tookMs":1.3}, ...]
 * ```
 *
 * A node is healthy when it answers its status, its Raft node runs and it
 * knows a leader. Exit codes: 0 every node answered (healthy); 5 some did
 * not; 1 none did.
 */
import type { Command } from 'commander';
import { StatusPoller } from '../node/cluster.js';
import type { PollResult } from '../node/cluster.js';
import { exitCodes } from './exit-codes.js';
import { targetOptions } from './kv-command.js';
import { outputOf, outputOptions, printFields, printJson, printTable } from './output.js';
import type { OutputFlags } from './output.js';
import { out, runAction } from './run.js';
import { resolveTarget } from './target.js';
import type { ClusterTarget, TargetFlags } from './target.js';

interface EndpointFlags extends TargetFlags, OutputFlags {
  timeoutMs: number;
}

async function poll(target: ClusterTarget, timeoutMs: number): Promise<PollResult[]> {
  const poller = await StatusPoller.connect(
    target.nodes,
    target.clusterId,
    target.file === undefined ? 'none' : 'dataDir',
  );
  try {
    return await poller.poll(timeoutMs);
  } finally {
    await poller.close();
  }
}

function sizeText(bytes: number | undefined): string {
  if (bytes === undefined) return '?';
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} kB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** Exit code of a per-node command: all good, some, none. */
function verdict(good: number, total: number): number {
  return good === total ? exitCodes.done : good > 0 ? exitCodes.no : exitCodes.failed;
}

/** Adds `cohort endpoint` to `program`. */
export function registerEndpointCommands(program: Command): void {
  const endpoint = program
    .command('endpoint')
    .description(
      "each node's own view: version, leader, term, indexes, store size, latency; health",
    );

  outputOptions(targetOptions(endpoint.command('status'), 1000), false)
    .description('per node: version, leader, term, raft index, applied index, store size, latency')
    .action(async (flags: EndpointFlags) => {
      await runAction({ readOnly: true }, async (ctx) => {
        const chosen = outputOf(flags);
        // A table unless asked otherwise (as etcdctl's endpoint status reads best).
        const o = chosen.format === 'simple' ? { ...chosen, format: 'table' as const } : chosen;
        const target = resolveTarget(flags);
        ctx.report.source = target.source;
        const results = await poll(target, flags.timeoutMs);
        const rows = results.map((r, i) => {
          const n = target.nodes[i];
          const endpoint = n === undefined ? '' : `${n.rpc.host}:${n.rpc.port}`;
          return r.ok
            ? {
                endpoint,
                id: r.id,
                version: r.status.version ?? '?',
                isLeader: r.status.role === 'leader',
                leader: r.status.leader,
                term: r.status.term,
                raftIndex: r.status.commitIndex,
                appliedIndex: r.status.appliedIndex,
                revision: r.status.revision,
                dbSizeBytes: r.status.kvBytes ?? null,
                latencyMs: r.latencyMs ?? null,
                alarms: r.status.alarms ?? [],
                error: null,
              }
            : { endpoint, id: r.id, error: `${r.error}: ${r.message ?? 'no answer'}` };
        });
        if (o.format === 'json') printJson(rows);
        else if (o.format === 'fields') {
          for (const row of rows) printFields(Object.entries(row));
        } else {
          printTable(
            [
              'ENDPOINT',
              'ID',
              'VERSION',
              'IS LEADER',
              'TERM',
              'RAFT INDEX',
              'APPLIED',
              'DB SIZE',
              'LATENCY',
              'ERRORS',
            ],
            results.map((r, i) => {
              const row = rows[i] as Record<string, unknown>;
              if (!r.ok)
                return [String(row.endpoint), r.id, '', '', '', '', '', '', '', String(row.error)];
              const s = r.status;
              return [
                String(row.endpoint),
                s.id,
                s.version ?? '?',
                String(s.role === 'leader'),
                String(s.term),
                String(s.commitIndex),
                String(s.appliedIndex),
                sizeText(s.kvBytes),
                r.latencyMs === undefined ? '' : `${r.latencyMs} ms`,
                (s.alarms ?? []).join(','),
              ];
            }),
          );
        }
        return verdict(results.filter((r) => r.ok).length, results.length);
      });
    });

  outputOptions(targetOptions(endpoint.command('health'), 1000), false)
    .description('per node: healthy when it answers, its Raft node runs and it knows a leader')
    .action(async (flags: EndpointFlags) => {
      await runAction({ readOnly: true }, async (ctx) => {
        const o = outputOf(flags);
        const target = resolveTarget(flags);
        ctx.report.source = target.source;
        const results = await poll(target, flags.timeoutMs);
        const rows = results.map((r, i) => {
          const n = target.nodes[i];
          const endpoint = n === undefined ? '' : `${n.rpc.host}:${n.rpc.port}`;
          if (!r.ok) {
            return {
              endpoint,
              id: r.id,
              health: false,
              error: `${r.error}: ${r.message ?? 'no answer'}`,
            };
          }
          const why =
            r.status.state !== 'running'
              ? `its Raft node is ${r.status.state}`
              : r.status.leader === null
                ? 'it knows no leader'
                : undefined;
          return {
            endpoint,
            id: r.id,
            health: why === undefined,
            tookMs: r.latencyMs ?? null,
            ...(why === undefined ? {} : { error: why }),
          };
        });
        if (o.format === 'json') printJson(rows);
        else if (o.format === 'table') {
          printTable(
            ['ENDPOINT', 'ID', 'HEALTH', 'TOOK', 'ERROR'],
            rows.map((r) => [
              r.endpoint,
              r.id,
              String(r.health),
              'tookMs' in r && r.tookMs !== null ? `${r.tookMs} ms` : '',
              r.error ?? '',
            ]),
          );
        } else if (o.format === 'fields') {
          for (const r of rows) printFields(Object.entries(r));
        } else {
          for (const r of rows) {
            if (r.health) {
              out(
                `${r.endpoint} (${r.id}) is healthy: took ${'tookMs' in r ? String(r.tookMs) : '?'} ms`,
              );
            } else {
              out(`${r.endpoint} (${r.id}) is unhealthy: ${r.error ?? ''}`);
            }
          }
        }
        return verdict(rows.filter((r) => r.health).length, rows.length);
      });
    });
}
