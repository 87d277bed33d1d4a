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
 * then defaults; the flags and their help are src/node/config.ts's
 * nodeOptions. Everything the node says once its configuration is read —
 * a refused start (a port in use), its shutdown on a signal, a storage
 * failure — is a line of its log (`--log-format`: JSON lines, or pretty on
 * a terminal; why it stopped goes to stderr, the rest to stdout), so a log
 * file holds nothing but JSON. Exit codes: 0 after a
 * clean shutdown (SIGINT or SIGTERM: a server stopping when asked; or the
 * node learned that it was removed from the cluster), 2 for a
 * bad configuration (one `error:` line on stderr, before any logging), 1
 * when the node could not start, its `--join` was refused, or it failed. With `--repair`, a WAL damaged in
 * the middle is cut at the damage instead of refused, and what was dropped
 * (file, offset, bytes, records, entries) is printed on stderr before the
 * node serves.
 *
 * With `--gateway <file>`, the node also runs the load-balancing gateway
 * (src/gateway/, as `cohort gateway --config <file>` would) in the same
 * process: a bad gateway file is a bad configuration (exit 2), the gateway
 * stops before the node does, and SIGHUP reloads its backend lists. Its
 * `service`/`rpcService` fields follow names in a cluster's naming registry
 * (`registryDir`/`registryEndpoints` in the file say which cluster; its
 * backends stay empty until the first listing).
 *
 * SIGHUP also reloads the TLS certificate, key and CA files (rotation): new
 * connections use them; if they do not check out the node says why on
 * stderr and keeps the ones it has.
 */
import type { Command } from 'commander';
import { Gateway } from '../gateway/gateway.js';
import type { GatewayOptions } from '../gateway/gateway.js';
import { isCohortError } from '../lib/errors.js';
import { configFileFlag, nodeOptionFlags, resolveNodeConfig } from '../node/config.js';
import type { RawConfig } from '../node/config.js';
import { nodeLogger } from '../node/logger.js';
import { startNode } from '../node/node.js';
import { describeRecovery } from '../raft/storage/file-storage.js';
import { followServices, reloadBackends, resolveGatewayOptions } from './gateway-command.js';
import { exitCodes } from './exit-codes.js';

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
      process.stderr.write(`error: ${e.code}: bad configuration: ${e.message}\n`);
      process.exitCode = exitCodes.usage;
      return;
    }
    throw e;
  }
  const root = nodeLogger({ level: config.logLevel, format: config.logFormat });
  const log = root.child({ node: config.id });
  // Why the node stops (a refused start, a storage failure) goes to stderr, still a log line:
  // on a terminal it is seen apart from the stream of stdout; under `cohort up` both are node.log.
  const fatal = nodeLogger({
    level: config.logLevel,
    format: config.logFormat,
    destination: process.stderr,
  }).child({ node: config.id });
  let stopping = false;
  const node = await startNode(config, {
    logger: root,
    onFatal: (err) => {
      fatal.fatal({ err }, 'stopped by a storage failure');
      process.exit(exitCodes.failed);
    },
  }).catch((e: unknown) => {
    fatal.fatal(
      {
        err: e,
        ...(isCohortError(e) ? { code: e.code, details: e.details } : {}),
      },
      `cannot start: ${e instanceof Error ? e.message : String(e)}`,
    );
    process.exitCode = exitCodes.failed;
    return undefined;
  });
  if (node === undefined) return;
  let gateway: Gateway | undefined;
  let unfollow: () => Promise<void> = () => Promise.resolve();
  if (gatewayOptions !== undefined) {
    try {
      // Backends by name (`service`/`rpcService` in the file): the registry is this cluster's.
      unfollow = await followServices(
        gatewayOptions,
        { config: config.gateway },
        {},
        process.cwd(),
        false,
      );
      gateway = await Gateway.start(gatewayOptions);
    } catch (e) {
      fatal.fatal(
        { err: e, ...(isCohortError(e) ? { code: e.code } : {}) },
        `cannot start the gateway: ${e instanceof Error ? e.message : String(e)}`,
      );
      process.exitCode = exitCodes.failed;
      await unfollow();
      await node.close();
      return;
    }
    const parts: string[] = [];
    if (gateway.http !== undefined) parts.push(`HTTP on ${gateway.http.address.port}`);
    if (gateway.rpc !== undefined) parts.push(`RPC on ${gateway.rpc.address.port}`);
    const a = gateway.adminAddress;
    if (a !== undefined) parts.push(`admin on ${a.port}`);
    log.info(`gateway ${parts.join(', ')}`);
  }
  if (config.repair) {
    const lines = describeRecovery(node.recovery);
    if (lines.length === 0) lines.push('repair: the log was whole; nothing dropped');
    // On stderr, beside why a node stops: what a repair dropped is for the operator to read.
    for (const line of lines) fatal.warn(line);
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info({ signal, term: node.raft.status().term }, 'shutting down');
      // A leader hands over first, so a rolling restart costs no election timeout.
      (gateway?.close() ?? Promise.resolve())
        .then(unfollow)
        .then(() => node.close({ handOff: true }))
        .then(
          () => resolve(),
          (e: unknown) => {
            log.error({ err: e }, 'shutdown failed');
            process.exitCode = exitCodes.failed;
            resolve();
          },
        );
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
    // Removed from the cluster: its service is over, as asked (an operator ran
    // `cohort member remove`), so it stops with 0 and a supervisor that restarts
    // failed processes leaves it stopped.
    void node.removed.then(() => stop('removed from the cluster'));
    // --join refused for good (e.g. a removed node's own certificate, or an empty data dir in
    // a voter's place): the node did not do its work, so it stops and exits 1.
    node.joined?.catch((e: unknown) => {
      if (stopping) return;
      fatal.error(
        { err: e, ...(isCohortError(e) ? { code: e.code } : {}) },
        `could not join the cluster: ${e instanceof Error ? e.message : String(e)}`,
      );
      process.exitCode = exitCodes.failed;
      stop('join refused');
    });
    // Certificate rotation: new connections use the files as they are now.
    const reload = (): void => {
      try {
        node.reloadTls();
      } catch (e) {
        fatal.error(
          { err: e },
          `SIGHUP: certificate not reloaded, keeping the current one: ${e instanceof Error ? e.message : String(e)}`,
        );
      }
    };
    process.on('SIGHUP', reload);
    if (gatewayOptions !== undefined) {
      const running = gatewayOptions;
      process.on('SIGHUP', () => {
        if (stopping) return;
        try {
          const now = reloadBackends(running, { config: config.gateway }, {});
          log.info(`SIGHUP, gateway reloaded: ${now}`);
        } catch (e) {
          if (!isCohortError(e)) throw e;
          fatal.error(`SIGHUP, gateway reload refused, backends unchanged: ${e.message}`);
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
