/**
 * `cohort completion bash|zsh`: the script completes commands, subcommands
 * and flags of the real command tree (run in bash here).
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { bashCompletion, zshCompletion } from '../../src/cli/completion-command.js';
import { buildProgram } from '../../src/cli/main.js';

/** What bash completes for the words typed so far (the last one being completed). */
function complete(...typed: string[]): string[] {
  const words = ['cohort', ...typed].map((w) => `'${w}'`).join(' ');
  const script = `${bashCompletion(buildProgram())}
COMP_WORDS=(${words}); COMP_CWORD=${typed.length}; _cohort; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = spawnSync('bash', ['-c', script], { encoding: 'utf8' });
  expect(r.stderr).toBe('');
  return r.stdout.split('\n').filter((l) => l !== '');
}

describe('cohort completion', () => {
  it('bash completes commands, subcommands and flags', () => {
    expect(complete('k')).toEqual(['kv']);
    expect(complete('kv', 'pu')).toEqual(['put']);
    expect(complete('kv', 'lease', 'g')).toEqual(['grant']);
    expect(complete('kv', 'get', 'a', '--pre')).toEqual(['--prefix']);
    expect(complete('snapshot', '')).toEqual(expect.arrayContaining(['save', 'restore', 'status']));
    expect(complete('kv', 'put', '--file', '')).toEqual([]); // a file name: bash's default
  });

  it('zsh gets a compdef script over the same tree', () => {
    const z = zshCompletion(buildProgram());
    expect(z).toMatch(/^#compdef cohort\n/);
    expect(z).toContain('"kv lease") choices=(grant revoke keep-alive ttl list');
  });
});
