/**
 * `cohort node`: runs one node process (Raft over TCP, durable WAL, the
 * Node status/health RPC service) until SIGINT or SIGTERM.
 *
 * ```sh
 * cohort node --id n1 --data-dir .cohort/n1 --listen 127.0.0.1:7101 --rpc 127.0.0.1:7201 \
 *   --peers n2=127.0.0.1:7102,n3=127.0.0.1:7103 [--cluster-id cohort-local] [--config node.json]
 * ```
 *
 * Settings come from flags, then COHORT_* variables, then the config file,
 * then defaults; the flags and their help are src/node/config.ts's nodeOptions.
 * Exit codes: 0 after a clean shutdown, 2 for a bad configuration, 1 when the
 * node could not start or failed. With `--repair`, a WAL damaged in the middle
 * is cut at the damage instead of refused, and what was dropped (file, offset,
 * bytes, records, entries) is printed on stderr before the node serves.
 *
 * With `--gateway <file>`, the node also runs the load-balancing gateway
 * (src/gateway/, as `cohort gateway --config <file>` would) in the same
 * process: a bad gateway file is a bad configuration (exit 2), the gateway
 * stops before the node does, and SIGHUP reloads its backend lists.
 */
import type { Command } from 'commander';
import { Gateway } from '../gateway/gateway.js';
import type { GatewayOptions } from '../gateway/gateway.js';
import { isCohortError } from '../lib/errors.js';
import { configFileFlag, nodeOptionFlags, resolveNodeConfig } from '../node/config.js';
import type { RawConfig } from '../node/config.js';
import { startNode } from '../node/node.js';
import { describeRecovery } from '../raft/storage/file-storage.js';
import { reloadBackends, resolveGatewayOptions } from './gateway-command.js';

/** Flags of `cohort node` as commander hands them over (all strings). */
type NodeFlags = RawConfig & { config?: string };

/** Runs the node until a signal; resolves once it has shut down. */
async function runNode(flags: NodeFlags): Promise<void> {
  let config;
  let gatewayOptions: GatewayOptions | undefined;
  try {
    config = resolveNodeConfig({ flags, env: process.env });
    // The gateway reads its file alone: the node's COHORT_* variables (COHORT_LISTEN...) are not its.
    if (config.gateway !== '')
      gatewayOptions = resolveGatewayOptions({ config: config.gateway }, {});
  } catch (e) {
    if (isCohortError(e)) {
      process.stderr.write(`cohort node: bad configuration: ${e.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw e;
  }
  let stopping = false;
  const node = await startNode(config, {
    onFatal: (err) => {
      process.stderr.write(
        `cohort node ${config.id}: stopped by a storage failure: ${String(err)}\n`,
      );
      process.exit(1);
    },
  }).catch((e: unknown) => {
    process.stderr.write(
      `cohort node ${config.id}: cannot start: ${e instanceof Error ? e.message : String(e)}\n`,
    );
    process.exitCode = 1;
    return undefined;
  });
  if (node === undefined) return;
  let gateway: Gateway | undefined;
  if (gatewayOptions !== undefined) {
    try {
      gateway = await Gateway.start(gatewayOptions);
    } catch (e) {
      process.stderr.write(
        `cohort node ${config.id}: cannot start the gateway: ${e instanceof Error ? e.message : String(e)}\n`,
      );
      process.exitCode = 1;
      await node.close();
      return;
    }
    const parts: string[] = [];
    if (gateway.http !== undefined) parts.push(`HTTP on ${gateway.http.address.port}`);
    if (gateway.rpc !== undefined) parts.push(`RPC on ${gateway.rpc.address.port}`);
    const a = gateway.adminAddress;
    if (a !== undefined) parts.push(`admin on ${a.port}`);
    process.stderr.write(`cohort node ${config.id}: gateway ${parts.join(', ')}\n`);
  }
  if (config.repair) {
    const lines = describeRecovery(node.recovery);
    if (lines.length === 0) lines.push('repair: the log was whole; nothing dropped');
    for (const line of lines) process.stderr.write(`cohort node ${config.id}: ${line}\n`);
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      process.stderr.write(`cohort node ${config.id}: ${signal}, shutting down\n`);
      (gateway?.close() ?? Promise.resolve())
        .then(() => node.close())
        .then(
          () => resolve(),
          (e: unknown) => {
            process.stderr.write(`cohort node ${config.id}: shutdown failed: ${String(e)}\n`);
            process.exitCode = 1;
            resolve();
          },
        );
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
    if (gatewayOptions !== undefined) {
      const running = gatewayOptions;
      process.on('SIGHUP', () => {
        if (stopping) return;
        try {
          const now = reloadBackends(running, { config: config.gateway }, {});
          process.stderr.write(`cohort node ${config.id}: SIGHUP, gateway reloaded: ${now}\n`);
        } catch (e) {
          if (!isCohortError(e)) throw e;
          process.stderr.write(
            `cohort node ${config.id}: SIGHUP, gateway reload refused, backends unchanged: ${e.message}\n`,
          );
        }
      });
    }
  });
}

/** Adds `cohort node` to `program`; its flags and their help come from nodeOptions (src/node/config.ts). */
export function registerNodeCommand(program: Command): void {
  const command = program
    .command('node')
    .description('run one cohort node (Raft over TCP, durable log, status RPC)');
  for (const { flags, help } of nodeOptionFlags()) command.option(flags, help);
  command.option(configFileFlag.flags, configFileFlag.help).action(async (flags: NodeFlags) => {
    await runNode(flags);
  });
}
