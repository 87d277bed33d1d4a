/**
 * The `cohort` CLI as a user runs it, from the sources under tsx, in a child
 * process whose output is collected: for the tests of commands.
 *
 * ```ts
 * const r = await runCli(['mr', 'status', '--dir', dir]);   // waits for it to end
 * expect(r.code).toBe(1);
 * const up = startCli(['up', '--dir', dir]);                // runs on; up.out fills as it writes
 * up.child.kill('SIGTERM'); expect(await up.exit).toBe(0);
 * ```
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The repository's root (the children's working directory). */
export const repoDir = fileURLToPath(new URL('../../', import.meta.url));
/** The CLI entry the children run (under tsx). */
export const cli = fileURLToPath(new URL('../node/fixtures/cohort-cli.ts', import.meta.url));
/** tsx's loader (the `tsx` package's entry), as a file URL. */
const tsxLoader = new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url).href;

/** A running CLI process. */
export interface CliProcess {
  readonly child: ChildProcess;
  /** Everything written so far. */
  readonly out: { stdout: string; stderr: string; stdoutBytes: Buffer };
  /** Its exit code (null after a signal), once its output streams are closed too. */
  readonly exit: Promise<number | null>;
}

/** What a finished CLI run printed and its exit code. */
export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout as the bytes written (binary values). */
  readonly stdoutBytes: Buffer;
}

/** Options of {@link startCli}. */
export interface StartCliOptions {
  /** Bytes for its stdin (then closed); without it stdin is /dev/null. */
  readonly input?: Uint8Array | string;
  /** Its working directory (default the repository's root). */
  readonly cwd?: string;
}

/** Starts `cohort <args>` with `env` added to this process's environment. */
export function startCli(
  args: readonly string[],
  env: Record<string, string> = {},
  options: StartCliOptions = {},
): CliProcess {
  // tsx by path: a child may run in a directory with no node_modules (a fresh clone's cwd).
  const child = spawn(process.execPath, ['--import', tsxLoader, cli, ...args], {
    cwd: options.cwd ?? repoDir,
    stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  if (options.input !== undefined) child.stdin?.end(options.input);
  const out = { stdout: '', stderr: '', stdoutBytes: Buffer.alloc(0) };
  child.stdout?.on('data', (d: Buffer) => {
    out.stdout += d.toString();
    out.stdoutBytes = Buffer.concat([out.stdoutBytes, d]);
  });
  child.stderr?.on('data', (d: Buffer) => (out.stderr += d.toString()));
  const exit = new Promise<number | null>((r) => child.once('close', r));
  return { child, out, exit };
}

/** Runs `cohort <args>` to its end. */
export async function runCli(
  args: readonly string[],
  env?: Record<string, string>,
  options?: StartCliOptions,
): Promise<CliRun> {
  const p = startCli(args, env, options);
  const code = await p.exit;
  return { code, stdout: p.out.stdout, stderr: p.out.stderr, stdoutBytes: p.out.stdoutBytes };
}
