/**
 * `cohort kv`: the KV store from the command line, against the local cluster
 * `cohort up` started (found through `.cohort/cluster.json`, like
 * `cohort status`) or the nodes named with `--endpoints`.
 *
 * ```sh
 * cohort kv put a 1                      # OK (revision 5)
 * cohort kv get a                        # 1
 * cohort kv get app/ --prefix --json     # {"revision":7,"count":2,"kvs":[{"key":"app/x","value":"..."},...]}
 * cohort kv del app/ --prefix            # 2
 * cohort kv compact                      # compacted up to revision 9 (frees space; NO_SPACE alarm)
 * cohort kv txn --if 'value(a) = 1' --then 'put a 2' --else 'get a'
 * cohort kv watch app/ --prefix --rev 1  # PUT app/x 1 (revision 5) ... until Ctrl-C
 * cohort kv lease grant 10               # lease 7 granted (ttl 10 s)
 * cohort kv put svc/a up --lease 7
 * cohort kv lease keep-alive 7           # renews until Ctrl-C
 * cohort kv lease ttl 7 --keys
 * cohort kv lock jobs -- ./run-job.sh    # holds the lock while the command runs
 * ```
 *
 * Keys and values are UTF-8 text. Exit codes: 0 done; 1 an error (no cluster,
 * bad input, the cluster refused); 2 `get` of a missing key, or a txn whose
 * comparisons failed; 3 a lock wait that timed out.
 */
import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { CohortError, isCohortError } from '../lib/errors.js';
import { KvClient } from '../kv/client.js';
import { kvKey, kvText } from '../kv/core/bytes.js';
import type {
  Compare,
  CompareOp,
  KeyValue,
  KvEvent,
  TxnOp,
  TxnOpResult,
} from '../kv/core/types.js';
import { Lock } from '../kv/recipes/lock.js';
import { addTargetOptions, resolveTarget } from './target.js';
import type { TargetFlags } from './target.js';

interface CommonFlags extends TargetFlags {
  json?: boolean;
  timeoutMs: string;
}

function int(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError('expected a non-negative integer');
  }
  return n;
}

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** A KeyValue as JSON-friendly text. */
function kvJson(kv: KeyValue): Record<string, unknown> {
  return {
    key: kvText(kv.key),
    value: kvText(kv.value),
    createRevision: kv.createRevision,
    modRevision: kv.modRevision,
    version: kv.version,
    lease: kv.lease,
  };
}

function eventJson(ev: KvEvent): Record<string, unknown> {
  return {
    type: ev.type,
    ...kvJson(ev.kv),
    ...(ev.prevKv === undefined ? {} : { prev: kvJson(ev.prevKv) }),
  };
}

/** The client for the flags' cluster: --endpoints, else `<dir>/cluster.json`. */
async function connect(flags: CommonFlags): Promise<KvClient> {
  const { endpoints, clusterId, tls } = resolveTarget(flags);
  const timeoutMs = Number(flags.timeoutMs);
  return KvClient.connect({
    endpoints,
    clusterId,
    ...(tls === undefined ? {} : { tls }),
    ...(Number.isFinite(timeoutMs) && timeoutMs > 0 ? { retryMs: timeoutMs } : {}),
  });
}

/** Runs `fn` with a client; reports errors as `cohort kv <what>: <message>` with exit code 1. */
async function withClient(
  what: string,
  flags: CommonFlags,
  fn: (kv: KvClient) => Promise<number | undefined>,
): Promise<void> {
  let kv: KvClient | undefined;
  // The RPC layer's timers do not hold the process open: this does, until the answer is in
  // (without it, a call waiting on retries ended the process with exit code 0 and no output).
  const keepAlive = setInterval(() => undefined, 1000);
  try {
    kv = await connect(flags);
    const code = await fn(kv);
    process.exitCode = code ?? 0;
  } catch (e) {
    const text =
      isCohortError(e) && e.code !== 'NOT_FOUND' && !e.message.includes(e.code)
        ? `${e.code}: ${e.message}`
        : (e as Error).message;
    process.stderr.write(`cohort kv ${what}: ${text}\n`);
    process.exitCode = 1;
  } finally {
    clearInterval(keepAlive);
    await kv?.close();
  }
}

const compareTargets: Record<string, Compare['target']> = {
  value: 'value',
  version: 'version',
  create: 'createRevision',
  createRevision: 'createRevision',
  mod: 'modRevision',
  modRevision: 'modRevision',
  lease: 'lease',
};

/** Parses `value(a) = 1`, `version(a) > 0`, `mod(a) < 9`, `create(a) = 0`, `lease(a) = 7`. */
export function parseCompare(text: string): Compare {
  const m = /^\s*(\w+)\(\s*("(?:[^"\\]|\\.)*"|[^)]*?)\s*\)\s*(=|!=|<|>)\s*(.*?)\s*$/.exec(text);
  const target = m?.[1] === undefined ? undefined : compareTargets[m[1]];
  if (m === null || target === undefined) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      `--if ${JSON.stringify(text)}: expected target(key) op value, target one of value, version, create, mod, lease; op one of = != < >`,
      { details: { field: 'if' } },
    );
  }
  const key = kvKey(unquote(m[2] ?? ''));
  const op = m[3] as CompareOp;
  const raw = unquote(m[4] ?? '');
  if (target === 'value') return { target, key, op, value: kvKey(raw) };
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n)) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      `--if ${JSON.stringify(text)}: ${m[1]} compares with an integer`,
      {
        details: { field: 'if' },
      },
    );
  }
  return { target, key, op, value: n };
}

function unquote(s: string): string {
  if (s.length >= 2 && s.startsWith('"') && s.endsWith('"')) return JSON.parse(s) as string;
  return s;
}

/** Parses `put k v`, `get k`, `del k` (a txn op). */
export function parseTxnOp(text: string, flag: string): TxnOp {
  const parts = text.trim().split(/\s+/);
  const [verb, key, ...rest] = parts;
  if (verb === 'put' && key !== undefined && rest.length > 0) {
    return { type: 'put', key: kvKey(key), value: kvKey(rest.join(' ')) };
  }
  if (verb === 'get' && key !== undefined && rest.length === 0)
    return { type: 'range', key: kvKey(key) };
  if ((verb === 'del' || verb === 'delete') && key !== undefined && rest.length === 0) {
    return { type: 'deleteRange', key: kvKey(key) };
  }
  throw new CohortError(
    'INVALID_ARGUMENT',
    `${flag} ${JSON.stringify(text)}: expected "put <key> <value>", "get <key>" or "del <key>"`,
    { details: { field: flag.replace(/^--/, '') } },
  );
}

function describeOpResult(r: TxnOpResult): string {
  switch (r.type) {
    case 'put':
      return `OK (revision ${r.revision})`;
    case 'deleteRange':
      return String(r.deleted);
    case 'range':
      return r.kvs.length === 0
        ? '(not found)'
        : r.kvs.map((kv) => `${kvText(kv.key)}\n${kvText(kv.value)}`).join('\n');
    case 'txn':
      return r.succeeded ? 'SUCCESS' : 'FAILURE';
  }
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Waits for Ctrl-C / SIGTERM (or the signal). */
function untilInterrupted(): { signal: AbortSignal; dispose: () => void } {
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return {
    signal: ac.signal,
    dispose: () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    },
  };
}

function common(cmd: Command): Command {
  return addTargetOptions(cmd)
    .option('--json', 'print as JSON')
    .option(
      '--timeout-ms <ms>',
      'how long to keep trying (leader changes, unreachable nodes)',
      '10000',
    );
}

/** Adds `cohort kv` to `program`. */
export function registerKvCommand(program: Command): void {
  const kv = program
    .command('kv')
    .description('read and write the replicated key-value store of a running cluster');

  common(kv.command('put <key> <value>'))
    .description('write a key')
    .option('--lease <id>', 'attach a lease', int)
    .option('--prev', 'print the previous value')
    .action(
      async (
        key: string,
        value: string,
        flags: CommonFlags & { lease?: number; prev?: boolean },
      ) => {
        await withClient('put', flags, async (c) => {
          const r = await c.put(key, value, {
            ...(flags.lease === undefined ? {} : { lease: flags.lease }),
            ...(flags.prev === true ? { prevKv: true } : {}),
          });
          if (flags.json === true) {
            out(
              JSON.stringify({
                revision: r.revision,
                ...(r.prevKv === undefined ? {} : { prev: kvJson(r.prevKv) }),
              }),
            );
          } else {
            out(`OK (revision ${r.revision})`);
            if (r.prevKv !== undefined) out(`previous: ${kvText(r.prevKv.value)}`);
          }
          return 0;
        });
      },
    );

  common(kv.command('get <key>'))
    .description('read a key (or every key under a prefix with --prefix)')
    .option('--prefix', 'every key starting with <key>')
    .option('--limit <n>', 'at most n keys', int)
    .option('--rev <revision>', 'read as of a past revision', int)
    .option('--serializable', 'read the local state of any node (maybe stale)')
    .option('--keys-only', 'print only keys')
    .option('--count-only', 'print only the number of keys')
    .action(
      async (
        key: string,
        flags: CommonFlags & {
          prefix?: boolean;
          limit?: number;
          rev?: number;
          serializable?: boolean;
          keysOnly?: boolean;
          countOnly?: boolean;
        },
      ) => {
        await withClient('get', flags, async (c) => {
          const r = await c.range(key, {
            ...(flags.prefix === true ? { prefix: true } : {}),
            ...(flags.limit === undefined ? {} : { limit: flags.limit }),
            ...(flags.rev === undefined ? {} : { revision: flags.rev }),
            ...(flags.serializable === true ? { serializable: true } : {}),
            ...(flags.keysOnly === true ? { keysOnly: true } : {}),
            ...(flags.countOnly === true ? { countOnly: true } : {}),
          });
          if (flags.json === true) {
            out(
              JSON.stringify({
                revision: r.revision,
                count: r.count,
                more: r.more,
                kvs: r.kvs.map(kvJson),
              }),
            );
          } else if (flags.countOnly === true) {
            out(String(r.count));
          } else if (flags.prefix !== true) {
            const first = r.kvs[0];
            if (first === undefined) {
              process.stderr.write(`cohort kv get: ${key}: not found\n`);
              return 2;
            }
            out(flags.keysOnly === true ? kvText(first.key) : kvText(first.value));
          } else {
            for (const item of r.kvs) {
              out(kvText(item.key));
              if (flags.keysOnly !== true) out(kvText(item.value));
            }
            if (r.more) process.stderr.write(`(more keys: ${r.count} in all)\n`);
          }
          return 0;
        });
      },
    );

  common(kv.command('del <key>'))
    .alias('delete')
    .description('delete a key (or every key under a prefix with --prefix); prints how many')
    .option('--prefix', 'every key starting with <key>')
    .option('--prev', 'print the deleted key-values')
    .action(async (key: string, flags: CommonFlags & { prefix?: boolean; prev?: boolean }) => {
      await withClient('del', flags, async (c) => {
        const r = await c.delete(key, {
          ...(flags.prefix === true ? { prefix: true } : {}),
          ...(flags.prev === true ? { prevKv: true } : {}),
        });
        if (flags.json === true) {
          out(
            JSON.stringify({
              revision: r.revision,
              deleted: r.deleted,
              prev: (r.prevKvs ?? []).map(kvJson),
            }),
          );
        } else {
          out(String(r.deleted));
          for (const p of r.prevKvs ?? []) out(`${kvText(p.key)}\n${kvText(p.value)}`);
        }
        return 0;
      });
    });

  common(kv.command('compact [revision]'))
    .description(
      'drop the history below a revision (default: the current one), freeing the space deleted and overwritten values hold (this is what disarms a NOSPACE alarm); reads and watches below it then get COMPACTED',
    )
    .action(async (revision: string | undefined, flags: CommonFlags) => {
      await withClient('compact', flags, async (c) => {
        const rev =
          revision === undefined
            ? (await c.range(Uint8Array.of(0), { countOnly: true })).revision
            : int(revision);
        const r = await c.compact(rev);
        if (flags.json === true) {
          out(JSON.stringify({ revision: r.revision, compactedRevision: r.compactedRevision }));
        } else {
          out(`compacted up to revision ${r.compactedRevision}`);
        }
        return 0;
      });
    });

  common(kv.command('txn'))
    .description('if every --if holds run the --then ops, else the --else ops, atomically')
    .option(
      '--if <compare>',
      'e.g. "value(a) = 1", "version(a) > 0", "mod(a) < 9" (repeatable)',
      collect,
      [],
    )
    .option(
      '--then <op>',
      '"put <key> <value>", "get <key>" or "del <key>" (repeatable)',
      collect,
      [],
    )
    .option('--else <op>', 'same, run when a comparison fails (repeatable)', collect, [])
    .action(async (flags: CommonFlags & { if: string[]; then: string[]; else: string[] }) => {
      await withClient('txn', flags, async (c) => {
        const compare = flags.if.map(parseCompare);
        const success = flags.then.map((t) => parseTxnOp(t, '--then'));
        const failure = flags.else.map((t) => parseTxnOp(t, '--else'));
        const r = await c.txn({ compare, success, failure });
        if (flags.json === true) {
          out(
            JSON.stringify({
              succeeded: r.succeeded,
              revision: r.revision,
              responses: r.responses.map((x) =>
                x.type === 'range' ? { type: 'range', kvs: x.kvs.map(kvJson) } : x,
              ),
            }),
          );
        } else {
          out(r.succeeded ? 'SUCCESS' : 'FAILURE');
          for (const x of r.responses) out(describeOpResult(x));
        }
        return r.succeeded ? 0 : 2;
      });
    });

  common(kv.command('watch <key>'))
    .description('print changes to a key (or a prefix) until Ctrl-C')
    .option('--prefix', 'every key starting with <key>')
    .option('--rev <revision>', 'start from this revision (replays history)', int)
    .option('--prev', 'include previous values')
    .action(
      async (
        key: string,
        flags: CommonFlags & { prefix?: boolean; rev?: number; prev?: boolean },
      ) => {
        await withClient('watch', flags, async (c) => {
          const stop = untilInterrupted();
          try {
            for await (const batch of c.watch(key, {
              ...(flags.prefix === true ? { prefix: true } : {}),
              ...(flags.rev === undefined ? {} : { startRevision: flags.rev }),
              ...(flags.prev === true ? { prevKv: true } : {}),
              signal: stop.signal,
            })) {
              for (const ev of batch.events) {
                if (flags.json === true) out(JSON.stringify(eventJson(ev)));
                else {
                  const prev = ev.prevKv === undefined ? '' : ` (was ${kvText(ev.prevKv.value)})`;
                  out(
                    `${ev.type} ${kvText(ev.kv.key)}${ev.type === 'PUT' ? ` ${kvText(ev.kv.value)}` : ''}${prev} (revision ${ev.kv.modRevision})`,
                  );
                }
              }
            }
          } finally {
            stop.dispose();
          }
          return 0;
        });
      },
    );

  const lease = kv.command('lease').description('grant, renew, inspect and revoke leases');
  common(lease.command('grant <ttlSeconds>'))
    .description('create a lease; prints its id')
    .action(async (ttl: string, flags: CommonFlags) => {
      await withClient('lease grant', flags, async (c) => {
        const seconds = Number(ttl);
        if (!Number.isFinite(seconds) || seconds <= 0) {
          throw new CohortError(
            'INVALID_ARGUMENT',
            `ttl ${JSON.stringify(ttl)} must be a positive number of seconds`,
          );
        }
        const r = await c.leaseGrant(Math.round(seconds * 1000));
        if (flags.json === true) out(JSON.stringify({ id: r.id, ttlMs: r.ttlMs }));
        else out(`lease ${r.id} granted (ttl ${r.ttlMs / 1000} s)`);
        return 0;
      });
    });
  common(lease.command('revoke <id>'))
    .description('end a lease and delete its keys')
    .action(async (id: string, flags: CommonFlags) => {
      await withClient('lease revoke', flags, async (c) => {
        const r = await c.leaseRevoke(int(id));
        if (flags.json === true) out(JSON.stringify({ id: int(id), deleted: r.deleted }));
        else out(`lease ${id} revoked (${r.deleted} keys deleted)`);
        return 0;
      });
    });
  common(lease.command('keep-alive <id>'))
    .description('renew a lease until Ctrl-C (or once with --once)')
    .option('--once', 'renew once and exit')
    .action(async (id: string, flags: CommonFlags & { once?: boolean }) => {
      await withClient('lease keep-alive', flags, async (c) => {
        const r = await c.leaseKeepAlive(int(id));
        out(`lease ${id} renewed (ttl ${r.ttlMs / 1000} s)`);
        if (flags.once === true) return 0;
        const stop = untilInterrupted();
        const keeper = c.keepAlive(int(id), {
          onLost: () => process.stderr.write(`lease ${id} is gone\n`),
        });
        stop.signal.addEventListener('abort', () => keeper.stop(), { once: true });
        const why = await keeper.done;
        stop.dispose();
        return why === 'lost' ? 1 : 0;
      });
    });
  common(lease.command('ttl <id>'))
    .description("a lease's remaining time")
    .option('--keys', 'also list its keys')
    .action(async (id: string, flags: CommonFlags & { keys?: boolean }) => {
      await withClient('lease ttl', flags, async (c) => {
        const r = await c.leaseTimeToLive(int(id), { keys: flags.keys === true });
        const keys = (r.keys ?? []).map(kvText);
        if (flags.json === true) out(JSON.stringify({ ...r, keys }));
        else {
          out(`lease ${r.id}: ${(r.remainingMs / 1000).toFixed(1)} s left of ${r.ttlMs / 1000} s`);
          for (const k of keys) out(k);
        }
        return 0;
      });
    });
  common(lease.command('list'))
    .description('every live lease')
    .action(async (flags: CommonFlags) => {
      await withClient('lease list', flags, async (c) => {
        const r = await c.leases();
        if (flags.json === true) out(JSON.stringify(r.leases));
        else
          for (const l of r.leases)
            out(`${l.id}  ttl ${l.ttlMs / 1000} s  left ${(l.remainingMs / 1000).toFixed(1)} s`);
        return 0;
      });
    });

  common(kv.command('lock <name> [command...]'))
    .description('acquire a distributed lock; run a command while holding it, or hold until Ctrl-C')
    .option('--ttl <seconds>', 'lease TTL of the holder (released if this process dies)', '10')
    .option('--wait-ms <ms>', 'give up waiting after this long (exit 3)', int)
    .action(
      async (
        name: string,
        command: string[],
        flags: CommonFlags & { ttl: string; waitMs?: number },
      ) => {
        await withClient('lock', flags, async (c) => {
          const stop = untilInterrupted();
          const lock = new Lock(c, name, {
            ttlMs: Math.max(1000, Math.round(Number(flags.ttl) * 1000)),
          });
          try {
            const signal =
              flags.waitMs === undefined
                ? stop.signal
                : AbortSignal.any([stop.signal, AbortSignal.timeout(flags.waitMs)]);
            let held;
            try {
              held = await lock.acquire({ signal });
            } catch (e) {
              if (isCohortError(e) && e.code === 'CANCELLED' && !stop.signal.aborted) {
                process.stderr.write(
                  `cohort kv lock: ${name}: not acquired within ${flags.waitMs} ms\n`,
                );
                return 3;
              }
              throw e;
            }
            if (flags.json === true)
              out(JSON.stringify({ key: kvText(held.key), fencingToken: held.fencingToken }));
            else out(`${kvText(held.key)} (fencing token ${held.fencingToken})`);
            let code = 0;
            if (command.length > 0) {
              const [file, ...args] = command;
              code = await new Promise<number>((resolve) => {
                const child = spawn(file ?? '', args, {
                  stdio: 'inherit',
                  env: {
                    ...process.env,
                    COHORT_LOCK_KEY: kvText(held.key),
                    COHORT_FENCING_TOKEN: String(held.fencingToken),
                  },
                });
                child.once('error', (e) => {
                  process.stderr.write(`cohort kv lock: ${e.message}\n`);
                  resolve(1);
                });
                child.once('exit', (c2) => resolve(c2 ?? 1));
              });
            } else {
              await new Promise<void>((resolve) => {
                if (stop.signal.aborted) resolve();
                stop.signal.addEventListener('abort', () => resolve(), { once: true });
              });
            }
            await held.release();
            return code;
          } finally {
            stop.dispose();
          }
        });
      },
    );
}
