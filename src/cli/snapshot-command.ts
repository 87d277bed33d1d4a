/**
 * `cohort snapshot save|restore|status`: back up the KV store and make a new
 * cluster from the backup, like `etcdctl snapshot save` and `etcdutl
 * snapshot restore`.
 *
 * ```sh
 * cohort snapshot save backup.snap                 # from the leader, as of a linearizable read
 * cohort snapshot status backup.snap               # revision, index, size, checksum (checked)
 * cohort snapshot restore backup.snap --dir new --nodes 3     # new/n1..n3 for cohort up --dir new
 * cohort up --dir new --base-port 7300              # the restored cluster
 * cohort snapshot restore backup.snap --data-dir /var/lib/cohort --id n2 --members n1,n2,n3 --cluster-id prod2
 * ```
 *
 * The file is written to `FILE.part` and renamed into place once complete and
 * checked (the node's SHA-256 of the data), so `FILE` is never a partial
 * snapshot. Restore writes only empty data dirs, and only the store is in a
 * snapshot (MapReduce jobs are not).
 */
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { CohortError } from '../lib/errors.js';
import { isValidId } from '../lib/ids.js';
import { KvClient } from '../kv/client.js';
import { upNodesMax } from '../node/cluster.js';
import { readSnapshotFile, restoreDataDir, SnapshotFileWriter } from '../node/snapshot-file.js';
import { exitCodes } from './exit-codes.js';
import { outputOf, outputOptions, printRecord } from './output.js';
import type { OutputFlags } from './output.js';
import { int, targetOptions } from './kv-command.js';
import { out, runAction } from './run.js';
import { kvClientOptions, resolveTarget } from './target.js';
import type { TargetFlags } from './target.js';

/** Adds `cohort snapshot` to `program`. */
export function registerSnapshotCommands(program: Command): void {
  const snap = program
    .command('snapshot')
    .description('save the KV store to a file, and restore a new cluster from one');

  // A big store takes longer than a request: ten minutes unless told otherwise.
  outputOptions(targetOptions(snap.command('save <file>'), 600_000), false)
    .description(
      'stream a consistent snapshot of the KV store from a node (the leader, as of a linearizable read) into <file>, checksummed',
    )
    .option(
      '--serializable',
      'take the state of whichever node answers (no leader needed; maybe stale)',
    )
    .action(
      async (
        file: string,
        flags: TargetFlags & OutputFlags & { timeoutMs: number; serializable?: boolean },
      ) => {
        await runAction({ readOnly: true }, async (ctx) => {
          const o = outputOf(flags);
          const target = resolveTarget(flags);
          ctx.report.source = target.source;
          const kv = await KvClient.connect({
            ...kvClientOptions(target, { timeoutMs: flags.timeoutMs }),
            lazy: true,
          });
          const path = resolve(file);
          const w = SnapshotFileWriter.create(path);
          try {
            const info = await kv.snapshot(
              { start: () => w.reset(), write: (c) => w.write(c) },
              {
                signal: ctx.signal,
                ...(flags.serializable === true ? { serializable: true } : {}),
              },
            );
            const meta = w.finish({ ...info, clusterId: target.clusterId });
            if (o.format === 'simple') {
              out(
                `saved ${path}: revision ${meta.revision}, ${meta.bytes} bytes from ${meta.nodeId} (index ${meta.index}, sha256 ${meta.sha256.slice(0, 16)}…)`,
              );
            } else {
              printRecord(o.format, { path, ...meta });
            }
          } catch (e) {
            w.abort();
            throw e;
          } finally {
            await kv.close();
          }
        });
      },
    );

  outputOptions(snap.command('status <file>'), false)
    .description('check a snapshot file and print what it holds')
    .action(async (file: string, flags: OutputFlags) => {
      await runAction({ readOnly: true }, () => {
        const o = outputOf(flags);
        const { meta } = readSnapshotFile(resolve(file));
        if (o.format === 'simple') {
          out(
            `${resolve(file)}: revision ${meta.revision}, ${meta.bytes} bytes, index ${meta.index}, cluster ${meta.clusterId}, node ${meta.nodeId}, saved ${meta.savedAt}, sha256 ${meta.sha256} (checked)`,
          );
        } else {
          printRecord(o.format, { ...meta });
        }
      });
    });

  snap
    .command('restore <file>')
    .description(
      'make a new cluster from a snapshot: --dir D [--nodes N] writes D/n1..nN for cohort up --dir D; --data-dir with --id and --members writes one node of a cluster elsewhere. Data dirs must be empty',
    )
    .option('--dir <dir>', 'write the data dirs of a local cluster (cohort up --dir <dir>) here')
    .option('--nodes <n>', 'how many nodes for --dir (as cohort up --nodes)', int, 3)
    .option('--data-dir <dir>', "write one node's data dir")
    .option('--id <id>', 'that node id (with --data-dir)')
    .option('--members <ids>', 'every voter of the new cluster, comma-separated (with --data-dir)')
    .option('--cluster-id <id>', 'the new cluster id (default cohort-local)')
    .action(
      async (
        file: string,
        flags: {
          dir?: string;
          nodes: number;
          dataDir?: string;
          id?: string;
          members?: string;
          clusterId?: string;
        },
      ) => {
        await runAction({}, async () => {
          const clusterId = flags.clusterId ?? 'cohort-local';
          if (!isValidId(clusterId)) {
            throw new CohortError(
              'INVALID_ARGUMENT',
              `--cluster-id ${JSON.stringify(clusterId)} is not a valid id`,
            );
          }
          let plan: { dataDir: string; id: string }[];
          let members: string[];
          if (flags.dir !== undefined && flags.dataDir === undefined) {
            if (!Number.isInteger(flags.nodes) || flags.nodes < 1 || flags.nodes > upNodesMax) {
              throw new CohortError('INVALID_ARGUMENT', `--nodes must be 1..${upNodesMax}`);
            }
            members = Array.from({ length: flags.nodes }, (_, i) => `n${i + 1}`);
            plan = members.map((id) => ({ id, dataDir: join(resolve(flags.dir ?? '.'), id) }));
          } else if (flags.dataDir !== undefined && flags.dir === undefined) {
            if (flags.id === undefined || flags.members === undefined) {
              throw new CohortError('INVALID_ARGUMENT', '--data-dir needs --id and --members');
            }
            members = flags.members
              .split(',')
              .map((m) => m.trim())
              .filter((m) => m !== '');
            plan = [{ id: flags.id, dataDir: resolve(flags.dataDir) }];
          } else {
            throw new CohortError(
              'INVALID_ARGUMENT',
              'give --dir (a local cluster for cohort up) or --data-dir with --id and --members',
            );
          }
          const snapshot = readSnapshotFile(resolve(file));
          for (const p of plan) {
            await restoreDataDir({
              snapshot,
              dataDir: p.dataDir,
              nodeId: p.id,
              members,
              clusterId,
            });
          }
          out(
            `restored revision ${snapshot.meta.revision} (${snapshot.meta.bytes} bytes) into ${plan.map((p) => p.dataDir).join(', ')} (cluster ${clusterId}, members ${members.join(',')})`,
          );
          if (flags.dir !== undefined) {
            out(
              `start it with: cohort up --dir ${flags.dir} --nodes ${flags.nodes}${clusterId === 'cohort-local' ? '' : ` --cluster-id ${clusterId}`}`,
            );
          }
          return exitCodes.done;
        });
      },
    );
}
