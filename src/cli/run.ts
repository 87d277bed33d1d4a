/**
 * How a client command runs: it gets an AbortSignal that Ctrl-C (SIGINT) or
 * SIGTERM fires; its returned number is the exit code; an error it throws is
 * printed as one line (`error: CODE: message (hint)`) and mapped to the exit
 * code of the table in exit-codes.ts. Interrupted, it exits 130 (SIGINT) or
 * 143 (SIGTERM) — printing a line only if a write's outcome is unknown — and
 * a second signal exits at once.
 *
 * ```ts
 * .action(async (key, flags) => runAction({ readOnly: true }, async ({ signal }) => {
 *   const v = await kv.get(key, { signal });
 *   return v === undefined ? exitCodes.no : exitCodes.done;
 * }));
 * ```
 */
import { constants } from 'node:os';
import { exitCodes, describeError } from './exit-codes.js';
import type { DescribeErrorOptions } from './exit-codes.js';

/** What a command's body gets. */
export interface ActionContext {
  /** Fires on Ctrl-C or SIGTERM. */
  readonly signal: AbortSignal;
  /** Options for error reports, which the body may fill in once it knows them (the endpoints' source). */
  readonly report: { source?: string };
}

/** Runs a command body (see the file comment). */
export async function runAction(
  options: DescribeErrorOptions,
  body: (ctx: ActionContext) => Promise<number | void> | number | void,
): Promise<void> {
  const ac = new AbortController();
  let signalled: NodeJS.Signals | undefined;
  const onSignal = (s: NodeJS.Signals): void => {
    if (signalled !== undefined) {
      // A second Ctrl-C: the user does not want to wait for the cleanup.
      process.exit(s === 'SIGTERM' ? exitCodes.terminated : exitCodes.interrupted);
    }
    signalled = s;
    ac.abort(new Error(`interrupted by ${s}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const report: { source?: string } = {};
  if (options.source !== undefined) report.source = options.source;
  try {
    const code = await body({ signal: ac.signal, report });
    process.exitCode = signalled !== undefined ? signalCode(signalled) : (code ?? exitCodes.done);
  } catch (e) {
    const d = describeError(e, { ...options, ...report });
    if (signalled !== undefined) {
      // Interrupted: say so only when a write's outcome is left unknown.
      if (d.exitCode === exitCodes.unknown) process.stderr.write(`${d.line}\n`);
      process.exitCode = signalCode(signalled);
    } else {
      process.stderr.write(`${d.line}\n`);
      if (process.env.COHORT_DEBUG === '1' && e instanceof Error && e.stack !== undefined) {
        process.stderr.write(`${e.stack}\n`);
      }
      process.exitCode = d.exitCode;
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** The exit code for a signal: 128 + its number (130 for SIGINT, 143 for SIGTERM). */
export function signalCode(s: NodeJS.Signals): number {
  return 128 + (constants.signals[s] ?? 0);
}

/** Writes a line to stdout. */
export function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** Writes bytes as they are to stdout, then a newline. */
export function outBytes(bytes: Uint8Array): void {
  process.stdout.write(bytes);
  process.stdout.write('\n');
}
