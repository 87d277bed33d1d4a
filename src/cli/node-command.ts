/**
 * `cohort node`: runs one node process (Raft over TCP, durable WAL, the
 * Node status/health RPC service) until SIGINT or SIGTERM.
 *
 * ```sh
 * cohort node --id n1 --data-dir .cohort/n1 --listen 127.0.0.1:7101 --rpc 127.0.0.1:7201 \
 *   --peers n2=127.0.0.1:7102,n3=127.0.0.1:7103 [--cluster-id cohort-local] [--config node.json]
 * ```
 *
 * Settings come from flags, then COHORT_* variables, then the config file
 * (see src/node/config.ts). Exit codes: 0 after a clean shutdown, 2 for a
 * bad configuration, 1 when the node could not start or failed. With
 * `--repair`, a WAL damaged in the middle is cut at the damage instead of
 * refused, and what was dropped (file, offset, bytes, records, entries) is
 * printed on stderr before the node serves.
 */
import type { Command } from 'commander';
import { isCohortError } from '../lib/errors.js';
import { resolveNodeConfig } from '../node/config.js';
import type { RawConfig } from '../node/config.js';
import { startNode } from '../node/node.js';
import { describeRecovery } from '../raft/storage/file-storage.js';

/** Flags of `cohort node` as commander hands them over (all strings). */
type NodeFlags = RawConfig & { config?: string };

/** Runs the node until a signal; resolves once it has shut down. */
async function runNode(flags: NodeFlags): Promise<void> {
  let config;
  try {
    config = resolveNodeConfig({ flags, env: process.env });
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
      node.close().then(
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
  });
}

/** Adds `cohort node` to `program`. */
export function registerNodeCommand(program: Command): void {
  program
    .command('node')
    .description('run one cohort node (Raft over TCP, durable log, status RPC)')
    .option('--id <id>', 'this node id (COHORT_ID)')
    .option('--data-dir <dir>', 'directory of the write-ahead log and snapshots (COHORT_DATA_DIR)')
    .option('--listen <host:port>', 'Raft address peers connect to (COHORT_LISTEN)')
    .option('--rpc <host:port>', 'client RPC address: status, health (COHORT_RPC)')
    .option('--peers <list>', 'the other voters: n2=host:port,n3=host:port (COHORT_PEERS)')
    .option(
      '--cluster-id <id>',
      'cluster id, checked in handshakes and the WAL (default cohort-local)',
    )
    .option('--tick-ms <n>', 'milliseconds per Raft tick (default 20)')
    .option('--election-ticks <n>', 'base election timeout in ticks (default 10)')
    .option('--snapshot-entries <n>', 'snapshot every n applied entries, 0 never (default 100000)')
    .option(
      '--wal-sync <mode>',
      'where the WAL fdatasync runs: auto (default: inline while syncs are fast), thread (libuv pool) or inline (stalls the node per sync)',
    )
    .option('--workers <n>', 'MapReduce worker threads, 0 for none (default one per core)')
    .option('--mr-lease-ms <n>', 'MapReduce task lease in ms (default 10000)')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (default info)')
    .option(
      '--repair',
      'cut the WAL at a corrupt record, dropping everything after it, instead of refusing to start; prints what it drops (COHORT_REPAIR)',
    )
    .option('--config <file>', 'JSON config file with the same fields in camelCase (COHORT_CONFIG)')
    .action(async (flags: NodeFlags) => {
      await runNode(flags);
    });
}
