// Known-answer histories nobody on this project wrote, carried in the repository
// (histories/README.md: source, licence, format): 102 Jepsen etcd register
// histories with VERDICTS.txt, and 6 multi-key kv histories (the large ones gzipped).
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
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

const historiesDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'histories');

/** The bytes of history `name` (relative to histories/), gunzipped when only `name.gz` is stored. */
function historyBytes(name: string): Buffer {
  const file = path.join(historiesDir, name);
  const stored = readdirSync(path.dirname(file));
  const base = path.basename(file);
  if (stored.includes(base)) return readFileSync(file);
  if (stored.includes(`${base}.gz`)) return gunzipSync(readFileSync(`${file}.gz`));
  throw new Error(`history ${name} is not in ${historiesDir} (neither ${base} nor ${base}.gz)`);
}

function historyText(name: string): string {
  return historyBytes(name).toString('utf8');
}

describe('the corpus in the repository', () => {
  it('is byte for byte the upstream data (SHA256SUMS), every file listed and every listed file there', () => {
    const sums = historyText('SHA256SUMS')
      .trim()
      .split('\n')
      .map((line) => {
        const m = /^([0-9a-f]{64}) {2}(\S+)$/.exec(line);
        if (m === null) throw new Error(`bad SHA256SUMS line: ${line}`);
        return [m[2] as string, m[1] as string] as const;
      });
    expect(sums.length).toBe(1 + 102 + 6);
    const wrong = sums.filter(
      ([name, sum]) => createHash('sha256').update(historyBytes(name)).digest('hex') !== sum,
    );
    expect(wrong).toEqual([]);
    const stored = ['jepsen-etcd', 'kv'].flatMap((d) =>
      readdirSync(path.join(historiesDir, d)).map((f) => `${d}/${f.replace(/\.gz$/, '')}`),
    );
    expect(new Set(stored)).toEqual(new Set(sums.map(([name]) => name)));
  });

  it('reads a gzipped history as its text, and names a missing one', () => {
    expect(historyText('kv/c50-ok.txt')).toMatch(/^\{:process \d+, :type :invoke/);
    expect(() => historyText('kv/c99-ok.txt')).toThrow(/c99-ok\.txt is not in .*histories/);
  });
});

/**
 * Per-file search budget in steps, not time, so the verdicts do not depend on
 * how busy the machine is: far above what any file needs (c50-ok, the
 * costliest, takes about 0.75 M steps; an etcd log at most 54 k). A file that
 * runs out counts as a disagreement, not a pass.
 */
const budget = { maxSteps: 20_000_000 };

describe('Jepsen etcd register histories', () => {
  it('agrees with every verdict in VERDICTS.txt', () => {
    const dir = path.join(historiesDir, 'jepsen-etcd');
    const verdicts = parseVerdicts(historyText('jepsen-etcd/VERDICTS.txt'));
    const logs = readdirSync(dir).filter((f) => f.endsWith('.log'));
    expect(verdicts.size).toBe(102);
    expect(new Set(logs)).toEqual(new Set(verdicts.keys()));
    expect([...verdicts.values()].filter((v) => v).length).toBe(23);

    const model = registerModel<number>();
    const disagreements: string[] = [];
    for (const [file, linearizable] of verdicts) {
      const history = parseJepsenRegisterLog(historyText(`jepsen-etcd/${file}`));
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
    const history = parseJepsenKvLog(historyText(`kv/${file}`));
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
