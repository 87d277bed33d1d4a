// The lint rules that enforce DESIGN.md must actually fire: pure cores cannot
// reach for time, randomness or I/O, and only src/sim/ may import the simulator.
import { describe, expect, it } from 'vitest';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';

const eslint = new ESLint({
  cwd: new URL('../..', import.meta.url).pathname,
  // The design rules are syntactic; type-aware rules need files in the project.
  overrideConfig: [tseslint.configs.disableTypeChecked],
});

async function ruleIds(code: string, filePath: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return (result?.messages ?? []).map((m) => m.ruleId ?? m.message);
}

describe('design lint rules', () => {
  it('forbid time, randomness, timers, process, await and node: imports in core/', async () => {
    const cases: Array<[string, string]> = [
      ['export const t = Date.now();\n', 'no-restricted-globals'],
      ['export const r = Math.random();\n', 'no-restricted-properties'],
      ['setTimeout(() => undefined, 1);\n', 'no-restricted-globals'],
      ['export const p = performance.now();\n', 'no-restricted-globals'],
      ['export const e = process.env;\n', 'no-restricted-globals'],
      [
        "import { readFileSync } from 'node:fs';\nexport const f = readFileSync;\n",
        'no-restricted-imports',
      ],
      ["import net from 'node:net';\nexport const n = net;\n", 'no-restricted-imports'],
      ['export async function f(): Promise<void> {}\n', 'no-restricted-syntax'],
      [
        "import { x } from '../../transport/tcp.js';\nexport const y = x;\n",
        'no-restricted-imports',
      ],
    ];
    for (const [code, rule] of cases) {
      expect(await ruleIds(code, 'src/raft/core/lint-probe.ts'), code).toContain(rule);
    }
  });

  it('allow the same code outside core/', async () => {
    expect(
      await ruleIds('export const t = Date.now();\n', 'src/transport/lint-probe.ts'),
    ).not.toContain('no-restricted-globals');
  });

  it('forbid importing src/sim/ from the rest of src/, but not from sim/ itself', async () => {
    const code = "import { s } from '../sim/scheduler.js';\nexport const t = s;\n";
    expect(await ruleIds(code, 'src/raft/lint-probe.ts')).toContain('no-restricted-imports');
    expect(
      await ruleIds(
        "import { s } from './scheduler.js';\nexport const t = s;\n",
        'src/sim/lint-probe.ts',
      ),
    ).not.toContain('no-restricted-imports');
  });
});
