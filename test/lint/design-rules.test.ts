// The lint rules that enforce DESIGN.md must actually fire: pure cores cannot
// reach for time, randomness or I/O, only src/sim/ may import the simulator,
// and imports follow the layer order (test/lint/layers.ts).
import { describe, expect, it } from 'vitest';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { checkLayers, readSourceTree } from './layers.js';

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

describe('layer rule (test/lint/layers.ts)', () => {
  const tree = readSourceTree(new URL('../../src', import.meta.url).pathname);
  const withProbe = (path: string, text: string): string[] =>
    checkLayers([...tree, { path, text }]);

  it('holds for src/: imports run one way, no cycles, cores import only lib and allowed packages', () => {
    expect(tree.length).toBeGreaterThan(100);
    expect(checkLayers(tree)).toEqual([]);
  });

  it('fires on an upward import, a sideways one, and an import of the simulator', () => {
    expect(
      withProbe('lib/layer-probe.ts', "import { startNode } from '../node/node.js';\n"),
    ).toEqual([
      'upward import: lib/layer-probe.ts imports node/node.ts (lib may import only: nothing)',
      expect.stringMatching(/^folder cycle: .*lib.*node/) as string,
    ]);
    expect(
      withProbe(
        'kv/layer-probe.ts',
        "import type { MapReduceModule } from '../mapreduce/module.js';\n",
      ),
    ).toContainEqual(
      expect.stringMatching(/^sideways import: kv\/layer-probe\.ts imports mapreduce/),
    );
    expect(
      withProbe('host/layer-probe.ts', "export const m = await import('../kv/server.js');\n"),
    ).toContainEqual(
      expect.stringMatching(/^upward import: host\/layer-probe\.ts imports kv\/server/),
    );
    expect(
      withProbe('raft/layer-probe.ts', "import { s } from '../sim/scheduler.js';\n"),
    ).toContainEqual(
      expect.stringMatching(/^upward import: raft\/layer-probe\.ts imports sim\/scheduler\.ts/),
    );
  });

  it('keeps a core to lib/, its own files and the allowed npm packages', () => {
    expect(
      withProbe(
        'raft/core/layer-probe.ts',
        "import { Packr } from 'msgpackr';\nimport { assert } from '../../lib/assert.js';\nimport type { Entry } from './types.js';\n",
      ),
    ).toEqual([]);
    expect(
      withProbe(
        'raft/core/layer-probe.ts',
        "import { FrameDecoder } from '../../wire/frame.js';\n",
      ),
    ).toContainEqual(
      expect.stringMatching(/^core import: raft\/core\/layer-probe\.ts imports wire/),
    );
    expect(
      withProbe(
        'kv/core/layer-probe.ts',
        "import type { Entry } from '../../raft/core/types.js';\n",
      ),
    ).toContainEqual(
      expect.stringMatching(/^core import: kv\/core\/layer-probe\.ts imports raft\/core/),
    );
    expect(withProbe('kv/core/layer-probe.ts', "import { pino } from 'pino';\n")).toEqual([
      expect.stringMatching(/^core package: kv\/core\/layer-probe\.ts imports pino/) as string,
    ]);
  });

  it('fires on a folder without a layer, a file cycle, and an import from outside src/', () => {
    expect(withProbe('dashboard/page.ts', 'export const p = 1;\n')).toEqual([
      expect.stringMatching(/^no layer: src\/dashboard/) as string,
    ]);
    expect(
      checkLayers([
        ...tree,
        { path: 'mapreduce/probe-a.ts', text: "import type { B } from './probe-b.js';\n" },
        { path: 'mapreduce/probe-b.ts', text: "import type { A } from './probe-a.js';\n" },
      ]),
    ).toEqual(['file cycle: mapreduce/probe-a.ts ⇄ mapreduce/probe-b.ts']);
    expect(
      withProbe('rpc/layer-probe.ts', "import { h } from '../../test/rpc/harness.js';\n"),
    ).toEqual(['outside src/: rpc/layer-probe.ts imports ../../test/rpc/harness.js']);
  });

  it('reports a cycle between folders even where the order would allow one direction', () => {
    const order = [['a'], ['b']];
    expect(
      checkLayers(
        [
          { path: 'a/x.ts', text: "import { y } from '../b/y.js';\n" },
          { path: 'b/y.ts', text: "import { x } from '../a/x.js';\n" },
        ],
        order,
      ),
    ).toEqual([
      'upward import: a/x.ts imports b/y.ts (a may import only: nothing)',
      'folder cycle: a ⇄ b',
      'file cycle: a/x.ts ⇄ b/y.ts',
    ]);
  });
});
