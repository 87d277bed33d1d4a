/**
 * Golden interaction scripts (test/raft/testdata/*.txt), run by the
 * interpreter in test/raft/golden/interpreter.ts. Each command's output must
 * match the file. After an intended behaviour change, regenerate with
 * `REGENERATE=1 npx vitest run test/raft/golden.test.ts` and review the diff.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { renderScript, runScript } from './golden/interpreter.js';

const dir = join(fileURLToPath(new URL('.', import.meta.url)), 'testdata');
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.txt'))
  .sort();

describe('raft golden scripts', () => {
  it('finds the scripts', () => {
    expect(files.length).toBeGreaterThanOrEqual(7);
  });

  for (const file of files) {
    it(file, () => {
      const path = join(dir, file);
      const source = readFileSync(path, 'utf8');
      const { items, outputs } = runScript(source);
      const actual = renderScript(items, outputs);
      if (process.env['REGENERATE'] === '1') {
        if (actual !== source) writeFileSync(path, actual);
        return;
      }
      expect(actual).toBe(source);
      expect(actual).not.toMatch(/^error: /m);
    });
  }

  it('a wrong expectation is detected (the runner can fail)', () => {
    const source = 'add-nodes a b\n----\nok\n\ncampaign a\n----\nsomething else\n';
    const { items, outputs } = runScript(source);
    expect(renderScript(items, outputs)).not.toBe(source);
    expect(outputs[1]?.[0]).toMatch(/^a is /);
  });
});
