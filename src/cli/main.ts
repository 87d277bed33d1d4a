/**
 * The `cohort` command. Subcommands are added by the layers that implement
 * them (`up`, `node`, `kv`, `mr`, `status`); this file wires them together.
 *
 * ```sh
 * cohort --help
 * cohort version
 * ```
 */
import { Command } from 'commander';
import { version } from '../version.js';
import { registerExampleCommands } from './example-command.js';
import { registerGatewayCommand } from './gateway-command.js';
import { registerKvCommand } from './kv-command.js';
import { registerMrCommands } from './mr-command.js';
import { registerNodeCommand } from './node-command.js';
import { registerStatusCommand } from './status-command.js';
import { registerUpCommands } from './up-command.js';

/** Builds the root command (exported for tests). */
export function buildProgram(): Command {
  const program = new Command();
  program
    .name('cohort')
    .description('cohort: a group of machines that looks like one coherent system')
    .version(version, '-V, --version', 'print the version')
    .showHelpAfterError()
    .configureOutput({ outputError: (str, write) => write(str) });

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
  registerKvCommand(program);
  registerMrCommands(program);
  registerGatewayCommand(program);
  return program;
}

/** Parses `argv` and runs the chosen subcommand. */
export async function main(argv: readonly string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}
