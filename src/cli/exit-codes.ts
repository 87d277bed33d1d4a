/**
 * What `cohort`'s exit codes mean — one table, printed by `cohort --help`
 * and copied in the README — and the one-line error every command prints:
 * `error: CODE: message (hint)`.
 *
 * ```ts
 * process.exitCode = exitCodes.no;                       // kv get: no such key
 * const { line, exitCode } = describeError(err, { readOnly: false });
 * process.stderr.write(`${line}\n`);                     // error: UNAVAILABLE: ... (is the cluster running? ...)
 * ```
 */
import { isCohortError } from '../lib/errors.js';
import type { CohortError } from '../lib/errors.js';

/** The exit codes (see {@link exitCodeTable}). */
export const exitCodes = {
  /** It was done. */
  done: 0,
  /** It failed and certainly did not happen. */
  failed: 1,
  /** A bad command line or input; nothing was done. */
  usage: 2,
  /** Gave up waiting for a lock (`kv lock --wait-ms`). */
  waitTimeout: 3,
  /** A write was sent and no answer came: it may or may not have happened. */
  unknown: 4,
  /** Done, and the answer is no (a missing key, a txn's else branch, a node down). */
  no: 5,
  /** `kv lock -- cmd`: the lock was lost while the command ran; the command was stopped. */
  lockLost: 6,
  /** Interrupted by Ctrl-C (SIGINT). */
  interrupted: 130,
  /** Stopped by SIGTERM. */
  terminated: 143,
} as const;

/** Every exit code with what it means, for `--help` and the README. */
export const exitCodeTable: readonly (readonly [number, string])[] = [
  [exitCodes.done, 'done'],
  [
    exitCodes.failed,
    'failed, and it did not happen: no cluster reachable, another cluster, refused, not found',
  ],
  [exitCodes.usage, 'usage: a bad command, flag, argument or input; nothing was done'],
  [exitCodes.waitTimeout, 'gave up waiting: kv lock --wait-ms passed without the lock'],
  [
    exitCodes.unknown,
    'outcome unknown: a write was sent and no answer came; read before you retry',
  ],
  [
    exitCodes.no,
    'done, and the answer is no: kv get found no key, kv txn ran its else branch, status or endpoint health found a node down',
  ],
  [exitCodes.lockLost, 'kv lock: the lock was lost while the command ran; it was stopped'],
  [exitCodes.interrupted, 'interrupted by Ctrl-C (SIGINT); 143: by SIGTERM'],
];

/** The table as `--help` prints it. */
export function exitCodeHelp(): string {
  const rows = exitCodeTable.map(([code, text]) => `  ${String(code).padStart(3)}  ${text}`);
  return [
    '',
    'Exit codes (every command):',
    ...rows,
    '',
    'Errors go to stderr as one line: error: CODE: message (hint).',
    "kv lock -- <command> exits with the command's own code once it ran.",
  ].join('\n');
}

/** The codes in one line, for a subcommand's `--help` (the root's help has the table). */
export function exitCodeSummary(): string {
  return [
    '',
    `Exit codes: ${exitCodes.done} done, ${exitCodes.failed} failed (did not happen), ${exitCodes.usage} usage, ${exitCodes.waitTimeout} gave up waiting, ${exitCodes.unknown} outcome unknown, ${exitCodes.no} the answer is no, ${exitCodes.lockLost} lock lost, ${exitCodes.interrupted} Ctrl-C, ${exitCodes.terminated} SIGTERM (cohort --help explains them).`,
    'Errors: one line on stderr, error: CODE: message (hint).',
  ].join('\n');
}

/** Options of {@link describeError}. */
export interface DescribeErrorOptions {
  /** The command only reads: any failure is definite (exit 1), nothing can have changed. */
  readonly readOnly?: boolean;
  /** Where the endpoints came from, for the hint of an unreachable cluster. */
  readonly source?: string;
}

/** The one line and exit code for an error a command ended with. */
export function describeError(
  err: unknown,
  o: DescribeErrorOptions = {},
): { line: string; exitCode: number; code: string } {
  if (!isCohortError(err) && !looksLikeCohortError(err)) {
    const message = err instanceof Error ? err.message : String(err);
    return {
      line: `error: INTERNAL: ${oneLine(message)} (a bug in cohort; COHORT_DEBUG=1 prints the stack)`,
      exitCode: o.readOnly === true ? exitCodes.failed : exitCodes.unknown,
      code: 'INTERNAL',
    };
  }
  const unknown = !err.definite && o.readOnly !== true;
  const exitCode =
    err.code === 'INVALID_ARGUMENT'
      ? exitCodes.usage
      : unknown
        ? exitCodes.unknown
        : exitCodes.failed;
  const hint = hintFor(err.code, unknown, o.source);
  return {
    line: `error: ${err.code}: ${oneLine(err.message)}${hint === undefined ? '' : ` (${hint})`}`,
    exitCode,
    code: err.code,
  };
}

/** A CohortError from another copy of cohort (a job or an example loading the package's dist). */
function looksLikeCohortError(e: unknown): e is CohortError {
  return (
    e instanceof Error &&
    e.name === 'CohortError' &&
    typeof (e as { code?: unknown }).code === 'string' &&
    typeof (e as { definite?: unknown }).definite === 'boolean'
  );
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, '; ');
}

function hintFor(code: string, unknown: boolean, source: string | undefined): string | undefined {
  const from = source === undefined ? '' : `; endpoints from ${source}`;
  switch (code) {
    case 'UNAVAILABLE':
      return source === undefined ? undefined : `is the cluster running? cohort status${from}`;
    case 'HANDSHAKE_FAILED':
      return `the nodes there are another cluster: check --cluster-id (COHORT_CLUSTER_ID) and the endpoints${from}`;
    case 'TIMEOUT':
    case 'CONNECTION_LOST':
      return unknown
        ? 'the write may or may not have happened: read it back before retrying'
        : 'the cluster did not answer in time; --timeout-ms waits longer';
    case 'NOT_LEADER':
      return unknown
        ? 'a leader took it and lost its leadership: it may or may not have happened'
        : 'no leader answered: is a majority of the nodes up? cohort status';
    case 'NO_SPACE':
      return 'the store is full: delete keys, then cohort kv compact';
    case 'COMPACTED':
      return 'that history was compacted: read or watch from a later revision';
    case 'SESSION_EXPIRED':
      return unknown ? 'the write may or may not have happened: read it back' : undefined;
    case 'CANCELLED':
      return unknown ? 'the write may or may not have happened: read it back' : undefined;
    default:
      return undefined;
  }
}
