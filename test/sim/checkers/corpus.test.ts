// Known-answer histories nobody on this project wrote (../shared/histories/README.md):
// 102 Jepsen etcd register histories with VERDICTS.txt, and 6 multi-key kv histories.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  parseJepsenKvLog,
  parseJepsenRegisterLog,
  parseVerdicts,
} from '../../../src/sim/checkers/jepsen-parse.js';
import {
  checkLinearizability,
  formatCheckResult,
} from '../../../src/sim/checkers/linearizability.js';
import { kvModel, registerModel } from '../../../src/sim/checkers/models.js';
import { witnessProblem } from './helpers.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const historiesDir = path.resolve(repoRoot, '../shared/histories');

/** The corpus folder `sub`, or a clear error naming where it was expected (never a silent skip). */
function requireHistories(sub: string, base = historiesDir): string {
  const dir = path.join(base, sub);
  if (!existsSync(dir)) {
    throw new Error(
      `known-answer histories not found at ${dir}: the checker's corpus tests need ` +
        `the shared/histories folder beside the repository clone (see shared/histories/README.md)`,
    );
  }
  return dir;
}

describe('corpus location', () => {
  it('fails with a clear message when the histories are missing', () => {
    expect(() => requireHistories('kv', path.join(repoRoot, 'no-such-dir'))).toThrow(
      /known-answer histories not found at .*no-such-dir\/kv.*shared\/histories folder beside/,
    );
  });
});

/** Generous per-file budget: a file that runs out counts as a disagreement, not a pass. */
const budget = { timeoutMs: 20_000 };

describe('Jepsen etcd register histories', () => {
  it('agrees with every verdict in VERDICTS.txt', () => {
    const dir = requireHistories('jepsen-etcd');
    const verdicts = parseVerdicts(readFileSync(path.join(dir, 'VERDICTS.txt'), 'utf8'));
    const logs = readdirSync(dir).filter((f) => f.endsWith('.log'));
    expect(verdicts.size).toBe(102);
    expect(new Set(logs)).toEqual(new Set(verdicts.keys()));
    expect([...verdicts.values()].filter((v) => v).length).toBe(23);

    const model = registerModel<number>();
    const disagreements: string[] = [];
    for (const [file, linearizable] of verdicts) {
      const history = parseJepsenRegisterLog(readFileSync(path.join(dir, file), 'utf8'));
      const result = checkLinearizability(history, model, budget);
      const want = linearizable ? 'linearizable' : 'not-linearizable';
      if (result.verdict !== want) {
        disagreements.push(`${file}: want ${want}, got ${formatCheckResult(result)}`);
      } else if (result.verdict === 'linearizable') {
        const problem = witnessProblem(history, model, result.witness);
        if (problem !== undefined) disagreements.push(`${file}: bad witness: ${problem}`);
      } else if (result.verdict === 'not-linearizable') {
        // The explanation's prefix is itself a valid partial linearization.
        const e = result.explanation;
        const prefix = [{ partition: e.partition, order: e.prefix.map((p) => p.op.id) }];
        const problem = witnessProblem(history, model, prefix, true);
        if (problem !== undefined)
          disagreements.push(`${file}: bad explanation prefix: ${problem}`);
        if (e.prefix.some((p) => p.op.id === e.stuck.id)) {
          disagreements.push(`${file}: the stuck operation is in the prefix`);
        }
      }
    }
    expect(disagreements).toEqual([]);
  });
});

describe('Jepsen kv histories (get / put / append on many keys)', () => {
  const files: [string, boolean][] = [
    ['c01-ok.txt', true],
    ['c01-bad.txt', false],
    ['c10-ok.txt', true],
    ['c10-bad.txt', false],
    ['c50-ok.txt', true],
    ['c50-bad.txt', false],
  ];
  const model = kvModel({ initialValue: '' });

  it.each(files)('%s: linearizable = %s', (file, linearizable) => {
    const dir = requireHistories('kv');
    const history = parseJepsenKvLog(readFileSync(path.join(dir, file), 'utf8'));
    expect(history.length).toBeGreaterThan(0);
    const result = checkLinearizability(history, model, budget);
    expect(result.verdict, formatCheckResult(result)).toBe(
      linearizable ? 'linearizable' : 'not-linearizable',
    );
    if (result.verdict === 'linearizable') {
      expect(result.stats.partitions).toBeGreaterThan(1);
      expect(witnessProblem(history, model, result.witness)).toBeUndefined();
    }
    if (result.verdict === 'not-linearizable') {
      // The explanation names a key, a get that cannot be placed, and what it read.
      const e = result.explanation;
      expect(e.partition).toBeDefined();
      expect(e.stuck.input.key).toBe(e.partition);
      expect(e.text).toContain(`partition ${JSON.stringify(e.partition)}`);
      const prefix = [{ partition: e.partition, order: e.prefix.map((p) => p.op.id) }];
      expect(witnessProblem(history, model, prefix, true)).toBeUndefined();
    }
  });
});
