/**
 * The exit codes are documented where a user looks: the table in
 * `cohort --help`, a line in every command's `--help`; a usage error is one
 * line naming the help to read, exit 2.
 */
import { describe, expect, it } from 'vitest';
import { exitCodeTable } from '../../src/cli/exit-codes.js';
import { runCli } from '../harness/cli.js';

describe('cohort --help and usage errors', () => {
  it('the root help has the exit-code table; a command help has the one-line summary', async () => {
    const root = await runCli(['--help']);
    expect(root.code).toBe(0);
    for (const [code, text] of exitCodeTable) {
      expect(root.stdout).toContain(`${String(code).padStart(3)}  ${text}`);
    }
    const get = await runCli(['kv', 'get', '--help']);
    expect(get.code).toBe(0);
    expect(get.stdout).toMatch(/\nExit codes: 0 done, 1 failed .* 130 Ctrl-C, 143 SIGTERM/);
  });

  it('a usage error is one line, exit 2', async () => {
    const r = await runCli(['kv', 'get']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("error: USAGE: missing required argument 'key' (cohort kv get --help)\n");
    const unknown = await runCli(['kv', 'gte', 'a']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^error: USAGE: unknown command 'gte'.*\n$/);
  });
});
