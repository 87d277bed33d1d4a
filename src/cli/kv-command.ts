/**
 * `cohort kv`: the KV store from the command line, against the cluster named
 * by `--endpoints`, `COHORT_ENDPOINTS`, `--dir`, or the nearest
 * `.cohort/cluster.json` (see target.ts).
 *
 * ```sh
 * cohort kv put a 1                      # OK (revision 5)
 * cohort kv put blob - < photo.jpg       # the value from stdin (or --file photo.jpg)
 * cohort kv get a                        # 1 (raw bytes; --hex / --base64 to encode)
 * cohort kv get app/ --prefix -w json    # {"revision":7,"count":2,"more":false,"kvs":[...]}
 * cohort kv del app/ --prefix            # 2
 * cohort kv compact                      # compacted up to revision 9 (frees space; NO_SPACE alarm)
 * cohort kv txn --if 'value(a) == "1"' --then 'put a 2' --else 'get a'
 * cohort kv txn -i                       # compares, blank line, success ops, blank line, failure ops
 * cohort kv watch app/ --prefix --rev 1  # PUT app/x 1 (revision 5) ... until Ctrl-C
 * cohort kv lease grant 10               # lease 7 granted (ttl 10 s)
 * cohort kv put svc/a up --lease 7
 * cohort kv lease keep-alive 7           # renews until Ctrl-C
 * cohort kv lease ttl 7 --keys
 * cohort kv lock jobs -- ./run-job.sh    # holds the lock while the command runs
 * ```
 *
 * Exit codes: the table in exit-codes.ts (`cohort --help`): 0 done; 1
 * failed (it did not happen); 2 usage; 3 `lock --wait-ms` passed; 4 a write's
 * outcome is unknown; 5 the answer is no (`get` found no key, `txn` ran its
 * else branch); 6 `lock`: the lock was lost; 130 Ctrl-C. Errors print one
 * line: `error: CODE: message (hint)`.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { CohortError, isCohortError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import { KvClient } from '../kv/client.js';
import type { KvCallOptions, KvTxn, KvTxnOpResult, LeaseLostReason } from '../kv/client.js';
import { kvText } from '../kv/core/bytes.js';
import type { KeyValue, KvEvent } from '../kv/core/types.js';
import { Lock } from '../kv/recipes/lock.js';
import { exitCodes } from './exit-codes.js';
import {
  bytesText,
  outputOf,
  outputOptions,
  pairFields,
  pairJson,
  printBytes,
  printFields,
  printJson,
  printRecord,
  printTable,
} from './output.js';
import type { ByteEncoding, Output, OutputFlags } from './output.js';
import { out, runAction, signalCode } from './run.js';
import type { ActionContext } from './run.js';
import { addTargetOptions, kvClientOptions, resolveTarget } from './target.js';
import type { TargetFlags } from './target.js';
import { parseCompare, parseTxnOp, parseTxnScript } from './txn-language.js';

/** The flags every `cohort kv` command takes. */
interface CommonFlags extends TargetFlags, OutputFlags {
  timeoutMs: number;
}

/** Parses a non-negative integer flag or argument (usage error otherwise). */
export function int(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError('expected a non-negative integer');
  }
  return n;
}

function positive(text: string): number {
  const n = int(text);
  if (n === 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Adds the flags that name the cluster and bound the call. */
export function targetOptions(cmd: Command, timeoutMs = 10_000): Command {
  return addTargetOptions(cmd).option(
    '--timeout-ms <ms>',
    'give up after this long (leader changes and unreachable nodes are retried until then)',
    positive,
    timeoutMs,
  );
}

function common(cmd: Command, bytes = true): Command {
  return outputOptions(targetOptions(cmd), bytes);
}

/** Runs `body` with a client of the flags' cluster (see run.ts for errors and exit codes). */
function withClient(
  flags: CommonFlags,
  o: { readOnly?: boolean },
  body: (
    kv: KvClient,
    call: KvCallOptions,
    ctx: ActionContext,
    output: Output,
  ) => Promise<number | void>,
): Promise<void> {
  return runAction(o, async (ctx) => {
    const output = outputOf(flags);
    const target = resolveTarget(flags);
    ctx.report.source = target.source;
    const kv = await KvClient.connect({
      ...kvClientOptions(target, { timeoutMs: flags.timeoutMs }),
      lazy: true,
    });
    try {
      return await body(kv, { signal: ctx.signal }, ctx, output);
    } finally {
      await kv.close();
    }
  });
}

/** Reads a stream to its end, refusing more than `max` bytes. */
export async function readAll(stream: Readable, max: number, what: string): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += b.length;
    if (size > max) {
      stream.destroy();
      throw new CohortError(
        'INVALID_ARGUMENT',
        `${what} is larger than ${max} bytes (kvValueBytesMax)`,
        { details: { field: 'value', limit: max } },
      );
    }
    chunks.push(b);
  }
  const all = Buffer.concat(chunks);
  return new Uint8Array(all.buffer, all.byteOffset, all.byteLength);
}

/** The value of `kv put`: the argument, stdin (`-`, or no argument with piped input) or --file. */
async function putValue(
  value: string | undefined,
  file: string | undefined,
): Promise<Uint8Array | string> {
  const max = limits.kvValueBytesMax;
  if (file !== undefined) {
    if (value !== undefined) {
      throw new CohortError(
        'INVALID_ARGUMENT',
        'give the value as an argument or with --file, not both',
      );
    }
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (e) {
      throw new CohortError('INVALID_ARGUMENT', `--file ${file}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    if (bytes.length > max) {
      throw new CohortError(
        'INVALID_ARGUMENT',
        `--file ${file} is larger than ${max} bytes (kvValueBytesMax)`,
      );
    }
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  if (value === '-' || (value === undefined && process.stdin.isTTY !== true)) {
    return readAll(process.stdin, max, 'the value on stdin');
  }
  if (value === undefined) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      'kv put needs a value: an argument, - to read stdin, or --file <path>',
    );
  }
  return value;
}

function opResultJson(r: KvTxnOpResult, enc: ByteEncoding): Record<string, unknown> {
  switch (r.type) {
    case 'range':
      return {
        type: 'range',
        count: r.count,
        more: r.more,
        kvs: r.kvs.map((k) => pairJson(k, enc)),
      };
    case 'put':
      return {
        type: 'put',
        revision: r.revision,
        ...(r.prevKv === undefined ? {} : { prev: pairJson(r.prevKv, enc) }),
      };
    case 'deleteRange':
      return {
        type: 'deleteRange',
        deleted: r.deleted,
        ...(r.prevKvs === undefined ? {} : { prev: r.prevKvs.map((k) => pairJson(k, enc)) }),
      };
    case 'txn':
      return {
        type: 'txn',
        succeeded: r.succeeded,
        responses: r.responses.map((x) => opResultJson(x, enc)),
      };
  }
}

function printOpResult(r: KvTxnOpResult, enc: ByteEncoding): void {
  switch (r.type) {
    case 'put':
      out(`OK (revision ${r.revision})`);
      return;
    case 'deleteRange':
      out(String(r.deleted));
      return;
    case 'range':
      if (r.kvs.length === 0) out('(not found)');
      for (const kv of r.kvs) {
        printBytes(kv.key, enc);
        printBytes(kv.value, enc);
      }
      return;
    case 'txn':
      out(r.succeeded ? 'SUCCESS' : 'FAILURE');
      for (const x of r.responses) printOpResult(x, enc);
      return;
  }
}

function eventJson(ev: KvEvent, enc: ByteEncoding): Record<string, unknown> {
  return {
    type: ev.type,
    ...pairJson(ev.kv, enc),
    ...(ev.prevKv === undefined ? {} : { prev: pairJson(ev.prevKv, enc) }),
  };
}

function pairsTable(kvs: readonly KeyValue[], enc: ByteEncoding): void {
  printTable(
    ['KEY', 'VALUE', 'CREATE', 'MOD', 'VERSION', 'LEASE'],
    kvs.map((k) => [
      bytesText(k.key, enc),
      bytesText(k.value, enc),
      String(k.createRevision),
      String(k.modRevision),
      String(k.version),
      String(k.lease),
    ]),
  );
}

/** The txn of `kv txn`: from the flags, or the three-section form on stdin. */
async function txnInput(flags: {
  if: string[];
  then: string[];
  else: string[];
  interactive?: boolean;
}): Promise<KvTxn> {
  if (flags.if.length + flags.then.length + flags.else.length > 0) {
    if (flags.interactive === true) {
      throw new CohortError(
        'INVALID_ARGUMENT',
        '--interactive reads the txn from stdin: leave out --if, --then and --else',
      );
    }
    return {
      compare: flags.if.map((t) => parseCompare(t)),
      success: flags.then.map((t) => parseTxnOp(t, { what: `--then ${JSON.stringify(t)}` })),
      failure: flags.else.map((t) => parseTxnOp(t, { what: `--else ${JSON.stringify(t)}` })),
    };
  }
  if (process.stdin.isTTY === true && flags.interactive !== true) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      'kv txn needs --if/--then/--else, or the txn on stdin (-i to type it here)',
    );
  }
  const prompts = flags.interactive === true && process.stdin.isTTY === true;
  return readTxnScript(process.stdin, prompts);
}

/** Reads the three sections (prompting for each on a terminal) and parses them. */
async function readTxnScript(input: Readable, prompts: boolean): Promise<KvTxn> {
  const headings = [
    'compares:',
    'success requests (get, put, del):',
    'failure requests (get, put, del):',
  ];
  if (!prompts) {
    const text = kvText(await readAll(input, limits.frameBytesMax, 'the txn on stdin'));
    return parseTxnScript(text);
  }
  const { createInterface } = await import('node:readline');
  const rl = createInterface({ input, terminal: false });
  const lines: string[] = [];
  let section = 0;
  process.stderr.write(`${headings[0]}\n`);
  for await (const line of rl) {
    lines.push(line);
    if (line.trim() === '') {
      section++;
      if (section >= 3) break;
      process.stderr.write(`\n${headings[section] ?? ''}\n`);
    }
  }
  rl.close();
  return parseTxnScript(`${lines.join('\n')}\n`);
}

/** Adds `cohort kv` to `program`. */
export function registerKvCommand(program: Command): void {
  const kv = program
    .command('kv')
    .description('read and write the replicated key-value store of a running cluster');

  common(kv.command('put <key> [value]'))
    .description('write a key; the value is the argument, - for stdin, or --file (up to 1 MiB)')
    .option('--file <path>', 'read the value from this file')
    .option('--lease <id>', 'attach a lease', int)
    .option('--prev', 'print the previous value')
    .action(
      async (
        key: string,
        value: string | undefined,
        flags: CommonFlags & { lease?: number; prev?: boolean; file?: string },
      ) => {
        await withClient(flags, {}, async (c, call, _ctx, o) => {
          const v = await putValue(value, flags.file);
          const r = await c.put(key, v, {
            ...call,
            ...(flags.lease === undefined ? {} : { lease: flags.lease }),
            ...(flags.prev === true ? { prevKv: true } : {}),
          });
          if (o.format === 'simple') {
            out(`OK (revision ${r.revision})`);
            if (r.prevKv !== undefined) {
              process.stdout.write('previous: ');
              printBytes(r.prevKv.value, o.encoding);
            }
          } else if (o.format === 'json') {
            printJson({
              revision: r.revision,
              ...(r.prevKv === undefined ? {} : { prev: pairJson(r.prevKv, o.encoding) }),
            });
          } else {
            printRecord(o.format, {
              revision: r.revision,
              ...(r.prevKv === undefined
                ? {}
                : { prevValue: bytesText(r.prevKv.value, o.encoding) }),
            });
          }
        });
      },
    );

  common(kv.command('get <key>'))
    .description('read a key (or every key under a prefix with --prefix); exit 5 if there is none')
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
        await withClient(flags, { readOnly: true }, async (c, call, _ctx, o) => {
          const r = await c.range(key, {
            ...call,
            ...(flags.prefix === true ? { prefix: true } : {}),
            ...(flags.limit === undefined ? {} : { limit: flags.limit }),
            ...(flags.rev === undefined ? {} : { revision: flags.rev }),
            ...(flags.serializable === true ? { serializable: true } : {}),
            ...(flags.keysOnly === true ? { keysOnly: true } : {}),
            ...(flags.countOnly === true ? { countOnly: true } : {}),
          });
          const enc = o.encoding;
          if (o.format === 'json') {
            printJson({
              revision: r.revision,
              count: r.count,
              more: r.more,
              kvs: r.kvs.map((k) => pairJson(k, enc)),
            });
          } else if (o.format === 'table') {
            pairsTable(r.kvs, enc);
          } else if (o.format === 'fields') {
            printFields([
              ['Revision', r.revision],
              ['Count', r.count],
              ['More', r.more],
            ]);
            for (const k of r.kvs) printFields(pairFields(k, enc));
          } else if (flags.countOnly === true) {
            out(String(r.count));
          } else if (flags.prefix !== true) {
            const first = r.kvs[0];
            if (first !== undefined)
              printBytes(flags.keysOnly === true ? first.key : first.value, enc);
          } else {
            for (const item of r.kvs) {
              printBytes(item.key, enc);
              if (flags.keysOnly !== true) printBytes(item.value, enc);
            }
            if (r.more) process.stderr.write(`(more keys: ${r.count} in all)\n`);
          }
          if (r.count === 0) {
            if (o.format === 'simple' && flags.countOnly !== true) {
              process.stderr.write(
                `not found: ${key}${flags.prefix === true ? ' (prefix)' : ''}\n`,
              );
            }
            return exitCodes.no;
          }
          return exitCodes.done;
        });
      },
    );

  common(kv.command('del <key>'))
    .alias('delete')
    .description('delete a key (or every key under a prefix with --prefix); prints how many')
    .option('--prefix', 'every key starting with <key>')
    .option('--prev', 'print the deleted key-values')
    .action(async (key: string, flags: CommonFlags & { prefix?: boolean; prev?: boolean }) => {
      await withClient(flags, {}, async (c, call, _ctx, o) => {
        const r = await c.delete(key, {
          ...call,
          ...(flags.prefix === true ? { prefix: true } : {}),
          ...(flags.prev === true ? { prevKv: true } : {}),
        });
        const prev = r.prevKvs ?? [];
        if (o.format === 'json') {
          printJson({
            revision: r.revision,
            deleted: r.deleted,
            prev: prev.map((k) => pairJson(k, o.encoding)),
          });
        } else if (o.format === 'simple') {
          out(String(r.deleted));
          for (const p of prev) {
            printBytes(p.key, o.encoding);
            printBytes(p.value, o.encoding);
          }
        } else if (o.format === 'table' && prev.length > 0) {
          pairsTable(prev, o.encoding);
        } else {
          printRecord(o.format, { revision: r.revision, deleted: r.deleted });
        }
      });
    });

  common(kv.command('compact [revision]'), false)
    .description(
      'drop the history below a revision (default: the current one), freeing the space deleted and overwritten values hold (this is what disarms a NOSPACE alarm); reads and watches below it then get COMPACTED',
    )
    .action(async (revision: string | undefined, flags: CommonFlags) => {
      await withClient(flags, {}, async (c, call, _ctx, o) => {
        let rev: number;
        if (revision === undefined) {
          rev = (await c.ready(call)).revision;
        } else {
          const n = Number(revision);
          if (!/^\d+$/.test(revision) || !Number.isSafeInteger(n)) {
            throw new CohortError(
              'INVALID_ARGUMENT',
              `revision ${JSON.stringify(revision)} is not a non-negative integer`,
            );
          }
          rev = n;
        }
        const r = await c.compact(rev, call);
        if (o.format === 'simple') out(`compacted up to revision ${r.compactedRevision}`);
        else
          printRecord(o.format, { revision: r.revision, compactedRevision: r.compactedRevision });
      });
    });

  common(kv.command('txn'))
    .description(
      'if every --if holds run the --then ops, else the --else ops, atomically; exit 5 when the else branch ran. Without flags the txn is read from stdin: compares, a blank line, success ops, a blank line, failure ops (like etcdctl txn -i)',
    )
    .option(
      '--if <compare>',
      'target(key) op value: value, version, create, mod or lease; =, ==, !=, <, >, <=, >=; quote with "..." or \'...\' (repeatable)',
      collect,
      [],
    )
    .option(
      '--then <op>',
      'put <key> <value> [--lease N], get <key> [--prefix], del <key> [--prefix] (repeatable)',
      collect,
      [],
    )
    .option('--else <op>', 'same, run when a comparison fails (repeatable)', collect, [])
    .option('-i, --interactive', 'type the txn section by section (prompts on a terminal)')
    .action(
      async (
        flags: CommonFlags & {
          if: string[];
          then: string[];
          else: string[];
          interactive?: boolean;
        },
      ) => {
        await withClient(flags, {}, async (c, call, _ctx, o) => {
          const txn = await txnInput(flags);
          const r = await c.txn(txn, call);
          if (o.format === 'json') {
            printJson({
              succeeded: r.succeeded,
              revision: r.revision,
              responses: r.responses.map((x) => opResultJson(x, o.encoding)),
            });
          } else if (o.format === 'simple') {
            printOpResult(r, o.encoding);
          } else {
            printRecord(o.format, {
              succeeded: r.succeeded,
              revision: r.revision,
              responses: r.responses.map((x) => opResultJson(x, o.encoding)),
            });
          }
          return r.succeeded ? exitCodes.done : exitCodes.no;
        });
      },
    );

  common(kv.command('watch <key>'))
    .description(
      'print changes to a key (or a prefix) until Ctrl-C (exit 130); exits 1 with an error if the cluster cannot be reached for --timeout-ms',
    )
    .option('--prefix', 'every key starting with <key>')
    .option('--rev <revision>', 'start from this revision (replays history)', positive)
    .option('--prev', 'include previous values')
    .action(
      async (
        key: string,
        flags: CommonFlags & { prefix?: boolean; rev?: number; prev?: boolean },
      ) => {
        await withClient(flags, { readOnly: true }, async (c, _call, ctx, o) => {
          const enc = o.encoding;
          for await (const batch of c.watch(key, {
            ...(flags.prefix === true ? { prefix: true } : {}),
            ...(flags.rev === undefined ? {} : { startRevision: flags.rev }),
            ...(flags.prev === true ? { prevKv: true } : {}),
            timeoutMs: flags.timeoutMs,
            signal: ctx.signal,
          })) {
            for (const ev of batch.events) {
              if (o.format === 'json') printJson(eventJson(ev, enc));
              else if (o.format === 'fields') {
                printFields([['Type', ev.type], ...pairFields(ev.kv, enc)]);
              } else {
                const prev =
                  ev.prevKv === undefined ? '' : ` (was ${bytesText(ev.prevKv.value, enc)})`;
                const value = ev.type === 'PUT' ? ` ${bytesText(ev.kv.value, enc)}` : '';
                out(
                  `${ev.type} ${bytesText(ev.kv.key, enc)}${value}${prev} (revision ${ev.kv.modRevision})`,
                );
              }
            }
          }
          // The loop ends only when interrupted (run.ts turns that into 130) or the client closed.
          if (ctx.signal.aborted) return exitCodes.interrupted;
          throw new CohortError('CLOSED', 'the watch ended');
        });
      },
    );

  const lease = kv.command('lease').description('grant, renew, inspect and revoke leases');
  common(lease.command('grant <ttlSeconds>'), false)
    .description('create a lease; prints its id')
    .action(async (ttl: string, flags: CommonFlags) => {
      await withClient(flags, {}, async (c, call, _ctx, o) => {
        const seconds = Number(ttl);
        if (!Number.isFinite(seconds) || seconds <= 0) {
          throw new CohortError(
            'INVALID_ARGUMENT',
            `ttl ${JSON.stringify(ttl)} must be a positive number of seconds`,
          );
        }
        const r = await c.leaseGrant(Math.round(seconds * 1000), undefined, call);
        if (o.format === 'simple') out(`lease ${r.id} granted (ttl ${r.ttlMs / 1000} s)`);
        else printRecord(o.format, { id: r.id, ttlMs: r.ttlMs });
      });
    });
  common(lease.command('revoke <id>'), false)
    .description('end a lease and delete its keys')
    .action(async (id: string, flags: CommonFlags) => {
      await withClient(flags, {}, async (c, call, _ctx, o) => {
        const r = await c.leaseRevoke(leaseId(id), call);
        if (o.format === 'simple') out(`lease ${id} revoked (${r.deleted} keys deleted)`);
        else printRecord(o.format, { id: leaseId(id), deleted: r.deleted });
      });
    });
  common(lease.command('keep-alive <id>'), false)
    .description('renew a lease until Ctrl-C (or once with --once); exits 1 if the lease is lost')
    .option('--once', 'renew once and exit')
    .action(async (id: string, flags: CommonFlags & { once?: boolean }) => {
      await withClient(flags, {}, async (c, call, ctx, o) => {
        const n = leaseId(id);
        const r = await c.leaseKeepAlive(n, call);
        if (o.format === 'simple') out(`lease ${id} renewed (ttl ${r.ttlMs / 1000} s)`);
        else printRecord(o.format, { id: n, ttlMs: r.ttlMs });
        if (flags.once === true) return exitCodes.done;
        let reason: LeaseLostReason | undefined;
        const keeper = c.keepAlive(n, { ttlMs: r.ttlMs, onLost: (why) => (reason = why) });
        ctx.signal.addEventListener('abort', () => keeper.stop(), { once: true });
        const why = await keeper.done;
        if (why === 'lost') throw leaseLost(n, reason ?? 'expired');
        return exitCodes.interrupted;
      });
    });
  common(lease.command('ttl <id>'), false)
    .description("a lease's remaining time")
    .option('--keys', 'also list its keys')
    .action(async (id: string, flags: CommonFlags & { keys?: boolean }) => {
      await withClient(flags, { readOnly: true }, async (c, call, _ctx, o) => {
        const r = await c.leaseTimeToLive(leaseId(id), { ...call, keys: flags.keys === true });
        const keys = (r.keys ?? []).map(kvText);
        if (o.format === 'simple') {
          out(`lease ${r.id}: ${(r.remainingMs / 1000).toFixed(1)} s left of ${r.ttlMs / 1000} s`);
          for (const k of keys) out(k);
        } else {
          printRecord(o.format, { id: r.id, ttlMs: r.ttlMs, remainingMs: r.remainingMs, keys });
        }
      });
    });
  common(lease.command('list'), false)
    .description('every live lease')
    .action(async (flags: CommonFlags) => {
      await withClient(flags, { readOnly: true }, async (c, call, _ctx, o) => {
        const r = await c.leases(call);
        if (o.format === 'json') printJson(r.leases);
        else if (o.format === 'table') {
          printTable(
            ['ID', 'TTL', 'LEFT'],
            r.leases.map((l) => [
              String(l.id),
              `${l.ttlMs / 1000} s`,
              `${(l.remainingMs / 1000).toFixed(1)} s`,
            ]),
          );
        } else if (o.format === 'fields') {
          for (const l of r.leases)
            printFields([
              ['ID', l.id],
              ['TTL', l.ttlMs],
              ['Remaining', l.remainingMs],
            ]);
        } else {
          for (const l of r.leases)
            out(`${l.id}  ttl ${l.ttlMs / 1000} s  left ${(l.remainingMs / 1000).toFixed(1)} s`);
        }
      });
    });

  common(kv.command('lock <name> [command...]'), false)
    .description(
      'acquire a distributed lock; run a command while holding it (exit with its code), or hold until Ctrl-C. If the lock is lost (the lease expired, or no renewal got through for its TTL) the command is stopped (SIGTERM, then SIGKILL) and kv lock exits 6',
    )
    .option(
      '--ttl <seconds>',
      'lease TTL of the holder (the lock frees itself this long after the holder dies)',
      '10',
    )
    .option('--wait-ms <ms>', 'give up waiting after this long (exit 3)', int)
    .option(
      '--kill-after-ms <ms>',
      'after the lock is lost, SIGKILL the command if SIGTERM has not stopped it by then',
      int,
      5000,
    )
    .action(
      async (
        name: string,
        command: string[],
        flags: CommonFlags & { ttl: string; waitMs?: number; killAfterMs: number },
      ) => {
        await withClient(flags, {}, async (c, _call, ctx, o) =>
          lockCommand(c, name, command, flags, ctx, o),
        );
      },
    );
}

function leaseId(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      `lease id ${JSON.stringify(text)} is not a non-negative integer`,
    );
  }
  return n;
}

function leaseLost(id: number, reason: LeaseLostReason): CohortError {
  return reason === 'expired'
    ? new CohortError('NOT_FOUND', `lease ${id} is gone (it expired or was revoked)`)
    : new CohortError(
        'UNAVAILABLE',
        `lease ${id} could not be renewed for its whole TTL: the cluster may have expired it`,
      );
}

/** Signals `kv lock` passes on to its command (SIGINT too when not on a terminal, where the terminal already sent it to the command). */
function forwardedSignals(): NodeJS.Signals[] {
  const always: NodeJS.Signals[] = ['SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];
  return process.stdin.isTTY === true ? always : ['SIGINT', ...always];
}

/** `cohort kv lock` (see its help). */
async function lockCommand(
  c: KvClient,
  name: string,
  command: string[],
  flags: CommonFlags & { ttl: string; waitMs?: number; killAfterMs: number },
  ctx: ActionContext,
  o: Output,
): Promise<number> {
  const ttlSeconds = Number(flags.ttl);
  if (!Number.isFinite(ttlSeconds) || ttlSeconds <= 0) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      `--ttl ${JSON.stringify(flags.ttl)} must be a positive number of seconds`,
    );
  }
  const lock = new Lock(c, name, { ttlMs: Math.max(1000, Math.round(ttlSeconds * 1000)) });
  const signal =
    flags.waitMs === undefined
      ? ctx.signal
      : AbortSignal.any([ctx.signal, AbortSignal.timeout(flags.waitMs)]);
  let held;
  try {
    held = await lock.acquire({ signal });
  } catch (e) {
    if (isCohortError(e) && e.code === 'CANCELLED' && !ctx.signal.aborted) {
      process.stderr.write(`error: TIMEOUT: lock ${name} not acquired within ${flags.waitMs} ms\n`);
      return exitCodes.waitTimeout;
    }
    throw e;
  }
  let lost: LeaseLostReason | undefined;
  const lostNow = held.lost.then((why) => {
    lost = why;
  });
  if (o.format === 'simple') out(`${kvText(held.key)} (fencing token ${held.fencingToken})`);
  else printRecord(o.format, { key: kvText(held.key), fencingToken: held.fencingToken });
  let code: number;
  try {
    if (command.length > 0) {
      code = await runHolding(command, held, flags.killAfterMs, lostNow);
    } else {
      await Promise.race([
        lostNow,
        new Promise<void>((resolve) => {
          if (ctx.signal.aborted) resolve();
          ctx.signal.addEventListener('abort', () => resolve(), { once: true });
        }),
      ]);
      code = exitCodes.interrupted;
    }
  } finally {
    if (lost === undefined) await held.release();
  }
  if (lost !== undefined) {
    process.stderr.write(
      `error: LOCK_LOST: lock ${name} was lost (${lost === 'expired' ? 'its lease expired' : 'no renewal got through for its TTL'})${command.length > 0 ? '; the command was stopped' : ''}\n`,
    );
    return exitCodes.lockLost;
  }
  return code;
}

/**
 * What the reaper runs: it waits for its stdin to close. A `done` line first
 * means the command ended normally; a close without it means `kv lock`
 * itself died (kill -9) while the command ran, and the lock will pass to
 * another holder — so it stops the command: SIGTERM, then SIGKILL after
 * `killAfterMs`.
 */
const reaperScript = `
const [pid, killAfterMs] = process.argv.slice(-2).map(Number);
let input = '';
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
  if (input.includes('done')) return;
  const alive = () => { try { process.kill(pid, 0); return true; } catch { return false; } };
  try { process.kill(pid, 'SIGTERM'); } catch { return; }
  const until = Date.now() + killAfterMs;
  const check = setInterval(() => {
    if (!alive()) { clearInterval(check); return; }
    if (Date.now() >= until) { try { process.kill(pid, 'SIGKILL'); } catch {} clearInterval(check); }
  }, 100);
});
`;

/**
 * Starts a small watchdog process for the command `pid` (see reaperScript):
 * Node has no way to have the kernel signal a child when its parent dies, so
 * a process that outlives `kv lock` holds the other end of a pipe and
 * notices. It runs detached and does not keep this process alive.
 */
function startReaper(pid: number, killAfterMs: number): ChildProcess | undefined {
  try {
    const r = spawn(process.execPath, ['-e', reaperScript, String(pid), String(killAfterMs)], {
      stdio: ['pipe', 'ignore', 'ignore'],
      detached: true,
    });
    r.on('error', () => undefined); // best effort: the lock still works without it
    r.unref();
    return r;
  } catch {
    return undefined;
  }
}

/** Runs the command while the lock is held; stops it if the lock is lost. Its exit code (128 + signal if killed). */
function runHolding(
  command: string[],
  held: { key: Uint8Array; fencingToken: number },
  killAfterMs: number,
  lost: Promise<void>,
): Promise<number> {
  const [file, ...args] = command;
  return new Promise<number>((resolve) => {
    const child: ChildProcess = spawn(file ?? '', args, {
      stdio: 'inherit',
      env: {
        ...process.env,
        COHORT_LOCK_KEY: kvText(held.key),
        COHORT_FENCING_TOKEN: String(held.fencingToken),
      },
    });
    const reaper = child.pid === undefined ? undefined : startReaper(child.pid, killAfterMs);
    const forward = (s: NodeJS.Signals): void => {
      if (child.exitCode === null && child.signalCode === null) child.kill(s);
    };
    const signals = forwardedSignals();
    for (const s of signals) process.on(s, forward);
    let killTimer: NodeJS.Timeout | undefined;
    void lost.then(() => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    });
    const done = (code: number): void => {
      reaper?.stdin?.end('done\n');
      for (const s of signals) process.off(s, forward);
      if (killTimer !== undefined) clearTimeout(killTimer);
      resolve(code);
    };
    child.once('error', (e) => {
      process.stderr.write(`error: UNAVAILABLE: cannot run ${file ?? ''}: ${e.message}\n`);
      done(127);
    });
    child.once('exit', (c, s) => done(c ?? (s === null ? exitCodes.failed : signalCode(s))));
  });
}
