/**
 * `cohort services [name]`: what is registered in the naming registry
 * (src/naming), and where — every instance of every service, or of one.
 *
 * ```sh
 * cohort services                      # the nearest .cohort/cluster.json, its certificate
 * cohort services ListMax --json       # one JSON object: { revision, services: { ListMax: [...] } }
 * cohort services --endpoints n1=127.0.0.1:7201 --insecure
 * ```
 *
 * The cluster is found like every client command's (target.ts). Exit codes
 * (exit-codes.ts): 0 listed; 5 the named service has no instance; 1 no
 * cluster reachable or refused (a PERMISSION_DENIED names the prefix to
 * grant); 2 bad usage (a malformed service name). Registry entries that are
 * not valid registrations are skipped with one warning line each on stderr.
 */
import type { Command } from 'commander';
import { KvClient } from '../kv/client.js';
import { Naming } from '../naming/naming.js';
import { checkServiceName } from '../naming/core/registry.js';
import type { ServiceInstance } from '../naming/core/registry.js';
import { exitCodes } from './exit-codes.js';
import { targetOptions } from './kv-command.js';
import { printJson } from './output.js';
import { out, runAction } from './run.js';
import { kvClientOptions, resolveTarget } from './target.js';
import type { TargetFlags } from './target.js';

interface ServicesFlags extends TargetFlags {
  json?: boolean;
  timeoutMs: number;
}

/** The table `cohort services` prints: one row per instance. */
export function servicesTable(instances: readonly ServiceInstance[]): string {
  const rows = [['SERVICE', 'INSTANCE', 'ADDRESS', 'NODE', 'WEIGHT', 'METADATA']];
  for (const i of instances) {
    rows.push([
      i.service,
      i.id,
      `${i.address.host}:${i.address.port}`,
      i.node,
      String(i.weight),
      Object.entries(i.metadata)
        .map(([k, v]) => `${k}=${v}`)
        .join(','),
    ]);
  }
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length))) ?? [];
  return rows
    .map((r) =>
      r
        .map((cell, c) => cell.padEnd(widths[c] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** Adds `cohort services` to `program`. */
export function registerServicesCommand(program: Command): void {
  targetOptions(program.command('services [name]'))
    .option('--json', 'print as JSON')
    .description(
      'list the registered service instances and where they serve (exit 5: the named service has none)',
    )
    .action(async (name: string | undefined, flags: ServicesFlags) => {
      await runAction({ readOnly: true }, async (ctx) => {
        // A bad name is a usage error whether or not a cluster answers: refuse it before connecting.
        if (name !== undefined) checkServiceName(name);
        const target = resolveTarget(flags);
        ctx.report.source = target.source;
        const kv = await KvClient.connect(kvClientOptions(target, { timeoutMs: flags.timeoutMs }));
        const naming = new Naming(kv);
        let listing: Awaited<ReturnType<Naming['list']>>;
        try {
          listing = await naming.list(name, { timeoutMs: flags.timeoutMs, signal: ctx.signal });
        } finally {
          await naming.close();
          await kv.close();
        }
        for (const s of listing.skipped) {
          process.stderr.write(`warning: skipped registry entry ${s.key}: ${s.reason}\n`);
        }
        if (flags.json === true) {
          const services: Record<string, ServiceInstance[]> = {};
          for (const i of listing.instances) (services[i.service] ??= []).push(i);
          printJson({ revision: listing.revision, services });
        } else if (listing.instances.length === 0) {
          out(name === undefined ? 'no services registered' : `no instance of ${name} registered`);
        } else {
          out(servicesTable(listing.instances));
        }
        return name !== undefined && listing.instances.length === 0 ? exitCodes.no : exitCodes.done;
      });
    });
}
