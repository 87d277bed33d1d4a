/** `cohort example ...`: the commands exist, validate their arguments, and load and run the examples. */
import { PassThrough } from 'node:stream';
import type { Command } from 'commander';
import { describe, expect, it, vi } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import { serve } from '../../examples/list-max/cli.js';

describe('cohort example', () => {
  it('lists the examples in --help', () => {
    const example = buildProgram().commands.find((c) => c.name() === 'example');
    expect(example?.commands.map((c) => c.name())).toEqual(['tictactoe', 'list-max']);
    const ttt = example?.commands.find((c) => c.name() === 'tictactoe');
    expect(ttt?.commands.map((c) => c.name())).toEqual(['serve', 'play']);
  });

  it('refuses a player other than X or O', async () => {
    const program = buildProgram();
    const quiet = (c: Command): void => {
      c.exitOverride().configureOutput({ writeErr: () => undefined, outputError: () => undefined });
      c.commands.forEach(quiet);
    };
    quiet(program);
    await expect(
      program.parseAsync(['node', 'cohort', 'example', 'tictactoe', 'play', 'Z']),
    ).rejects.toThrow(/X or O/);
  });

  it('list-max call loads the example and prints the answer', async () => {
    const srv = await serve({ host: '127.0.0.1', port: 0 }, new PassThrough().resume());
    const writes: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      writes.push(String(chunk));
      return true;
    });
    try {
      await buildProgram().parseAsync([
        'node',
        'cohort',
        'example',
        'list-max',
        'call',
        '3',
        '9',
        '4',
        '--server',
        `127.0.0.1:${srv.port}`,
      ]);
    } finally {
      spy.mockRestore();
      await srv.close();
    }
    expect(writes.join('')).toContain('max 9 at index 1');
  });
});
