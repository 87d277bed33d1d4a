/** Options from one entry each: a new option (a boolean flag, a number) gets its flag, env, file field, default and errors. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { isCohortError } from '../../src/lib/errors.js';
import { nodeOptions } from '../../src/node/config.js';
import { option, optionFlags, resolveOptions } from '../../src/node/options.js';
import type { ConfigSources } from '../../src/node/options.js';
import { tempDir } from '../harness/tmp.js';

const base = { id: 'n1', dataDir: 'data/n1', listen: '127.0.0.1:7101', rpc: '127.0.0.1:7201' };

function tempFile(content: string): string {
  const path = join(tempDir('cohort-options-'), 'node.json');
  writeFileSync(path, content);
  return path;
}

function refusal(run: () => unknown): string {
  try {
    run();
  } catch (e) {
    if (!isCohortError(e)) throw e;
    expect(e.code).toBe('INVALID_ARGUMENT');
    return e.message;
  }
  throw new Error('the configuration was accepted');
}

describe('options', () => {
  it('takes a new option, a boolean flag, from one entry: flag, env, file, default, errors', () => {
    const table = {
      ...nodeOptions,
      repair: option({ arg: '', help: 'repair the log', schema: Type.Boolean(), default: false }),
      quotaBytes: option({
        arg: '<n>',
        help: 'quota',
        schema: Type.Integer({ minimum: 1, maximum: 2 ** 40 }),
        default: 2 ** 31,
      }),
    };
    const values = (s: ConfigSources<keyof typeof table>) => resolveOptions(table, s).values;
    expect(values({ flags: base, env: {} })).toMatchObject({ repair: false, quotaBytes: 2 ** 31 });
    expect(values({ flags: { ...base, repair: true }, env: {} }).repair).toBe(true);
    expect(values({ flags: base, env: { COHORT_REPAIR: 'true' } }).repair).toBe(true);
    expect(values({ flags: base, env: { COHORT_QUOTA_BYTES: '4096' } }).quotaBytes).toBe(4096);
    const file = tempFile(JSON.stringify({ repair: true, quotaBytes: 8192 }));
    expect(values({ flags: { ...base, config: file }, env: {} })).toMatchObject({
      repair: true,
      quotaBytes: 8192,
    });
    expect(refusal(() => values({ flags: base, env: { COHORT_REPAIR: 'maybe' } }))).toBe(
      'repair (COHORT_REPAIR): expected true or false, got "maybe"',
    );
    const [repair] = optionFlags(table).filter((f) => f.field === 'repair');
    expect(repair).toEqual({
      field: 'repair',
      flags: '--repair',
      help: 'repair the log (COHORT_REPAIR; default false)',
    });
    const cmd = new Command().exitOverride();
    for (const f of optionFlags(table)) cmd.option(f.flags, f.help);
    cmd.parse(['--repair', '--quota-bytes', '100', '--id', 'n9'], { from: 'user' });
    expect(cmd.opts()).toEqual({ repair: true, quotaBytes: '100', id: 'n9' });
  });
});
