/**
 * The `cohort` command. Subcommands are added by the layers that implement
 * them (`up`, `node`, `kv`, `mr`, `status`, `certs`, `auth`, `user`, `role`, ...); this file wires them
 * together and owns what is common to all: the exit codes (exit-codes.ts,
 * printed by `--help`), usage errors (exit 2, one line), output to a closed
 * pipe (`cohort kv get ... | head` ends quietly), and keeping the process
 * alive until the command is done (no command can exit 0 because Node ran
 * out of things to wait for while a call was pending).
 *
 * ```sh
 * cohort --help
 * cohort version
 * ```
 */
import { Command, CommanderError } from 'commander';
import { processHold } from '../lib/clock.js';
import { version } from '../version.js';
import { registerAuthCommands } from './auth-command.js';
import { registerCertsCommands } from './certs-command.js';
import { registerCompletionCommand } from './completion-command.js';
import { registerEndpointCommands } from './endpoint-command.js';
import { registerExampleCommands } from './example-command.js';
import { exitCodeHelp, exitCodes, exitCodeSummary } from './exit-codes.js';
import { registerGatewayCommand } from './gateway-command.js';
import { registerKvCommand } from './kv-command.js';
import { registerMemberCommand } from './member-command.js';
import { registerMrCommands } from './mr-command.js';
import { registerNodeCommand } from './node-command.js';
import { registerServicesCommand } from './services-command.js';
import { registerSnapshotCommands } from './snapshot-command.js';
import { registerStatusCommand } from './status-command.js';
import { registerUpCommands } from './up-command.js';

/** The command path of `cmd` (`cohort kv put`). */
function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c !== null; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/**
 * Makes every command report usage errors as one line, `error: USAGE:
 * message (cohort kv put --help)`, and throw instead of exiting (main maps
 * them to exit code 2).
 */
function configureErrors(cmd: Command): void {
  const path = commandPath(cmd);
  cmd.exitOverride();
  cmd.configureOutput({
    outputError: (str, write) => {
      const text = str
        .trim()
        .replace(/^error:\s*/i, '')
        .replace(/\s*\n\s*/g, '; ');
      write(`error: USAGE: ${text} (${path} --help)\n`);
    },
  });
  for (const sub of cmd.commands) configureErrors(sub);
}

/** Adds the exit-code line to the help of every command that runs something (not the root, which has the table). */
function addExitCodeHelp(cmd: Command): void {
  for (const sub of cmd.commands) {
    if (sub.commands.length === 0) sub.addHelpText('after', exitCodeSummary());
    else addExitCodeHelp(sub);
  }
}

/** Builds the root command (exported for tests). */
export function buildProgram(): Command {
  const program = new Command();
  program
    .name('cohort')
    .description('cohort: a group of machines that looks like one coherent system')
    .version(version, '-V, --version', 'print the version')
    .addHelpText('after', exitCodeHelp());

  program
    .command('version')
    .description('print the version of cohort and of Node.js')
    .option('--json', 'print as JSON')
    .action((opts: { json?: boolean }) => {
      if (opts.json === true) {
        process.stdout.write(
          `${JSON.stringify({ cohort: version, node: process.versions.node })}\n`,
        );
      } else {
        process.stdout.write(`cohort ${version} (node ${process.versions.node})\n`);
      }
    });

  registerExampleCommands(program);
  registerNodeCommand(program);
  registerUpCommands(program);
  registerStatusCommand(program);
  registerEndpointCommands(program);
  registerMemberCommand(program);
  registerServicesCommand(program);
  registerKvCommand(program);
  registerSnapshotCommands(program);
  registerMrCommands(program);
  registerCertsCommands(program);
  registerAuthCommands(program);
  registerGatewayCommand(program);
  registerCompletionCommand(program);
  configureErrors(program);
  addExitCodeHelp(program);
  return program;
}

/**
 * Runs a parsed program: usage errors exit 2 (help and --version exit 0).
 * Exported for tests, which call it with their own argv.
 */
export async function run(program: Command, argv: readonly string[]): Promise<void> {
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (!(e instanceof CommanderError)) throw e;
    // --help, --version: exit 0; a command group run without a subcommand: its help, exit 2.
    process.exitCode =
      e.code === 'commander.helpDisplayed' || e.code === 'commander.version'
        ? exitCodes.done
        : exitCodes.usage;
  }
}

/** Parses `argv` and runs the chosen subcommand (see the file comment). */
export async function main(argv: readonly string[]): Promise<void> {
  // A reader that went away (`| head`) is not an error: stop quietly.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE')
      process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
    throw e;
  });
  const release = processHold();
  try {
    await run(buildProgram(), argv);
  } finally {
    release();
  }
}
