/**
 * `cohort mr` as a user runs it (a child process from the sources): with no
 * cluster running, `run` starts a one-node cluster in its own process and
 * its output equals the sequential run's; `status` with no cluster says so
 * and exits 1; bad arguments are refused by the parser.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadJob } from '../../src/mapreduce/job.js';
import { runSequential } from '../../src/mapreduce/sequential.js';
import { repoDir as repo, runCli as run } from '../harness/cli.js';

const wordcount = join(repo, 'examples/mapreduce/wordcount.ts');
const dir = mkdtempSync(join(tmpdir(), 'cohort-mr-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function parts(out: string): Record<string, string> {
  return Object.fromEntries(
    readdirSync(out)
      .sort()
      .map((f) => [f, readFileSync(join(out, f), 'utf8')]),
  );
}

describe('cohort mr', () => {
  it('run with no cluster starts an embedded one-node cluster; output equals the sequential run', async () => {
    const input = join(dir, 'in');
    mkdirSync(input);
    for (let f = 0; f < 3; f++) {
      const lines = Array.from({ length: 300 }, (_, i) => `w${(i * (f + 3)) % 37} and w${i % 11}`);
      writeFileSync(join(input, `f${f}.txt`), `${lines.join('\n')}\n`);
    }
    const r = await run([
      'mr',
      'run',
      wordcount,
      '--input',
      join(input, '*.txt'),
      '--output',
      join(dir, 'out'),
      '--reducers',
      '2',
      '--split-bytes',
      '2000',
      '--workers',
      '2',
      '--dir',
      join(dir, 'no-cluster'),
      '--json',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const final = JSON.parse(r.stdout) as { status: string; progress: { maps: number } };
    expect(final.status).toBe('done');
    expect(final.progress.maps).toBeGreaterThan(3);
    await runSequential(await loadJob(wordcount), [join(input, '*.txt')], {
      outputDir: join(dir, 'ref'),
      reducers: 2,
    });
    expect(parts(join(dir, 'out'))).toEqual(parts(join(dir, 'ref')));

    // The same output directory again: refused, nothing overwritten.
    const again = await run([
      'mr',
      'run',
      wordcount,
      '--input',
      join(input, '*.txt'),
      '--output',
      join(dir, 'out'),
      '--embedded',
    ]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('already holds job output');
    expect(parts(join(dir, 'out'))).toEqual(parts(join(dir, 'ref')));
  });

  it('status with no cluster exits 1 and says how to start one; bad flags are refused', async () => {
    const s = await run(['mr', 'status', '--dir', join(dir, 'nothing')]);
    expect(s.code).toBe(1);
    expect(s.stderr).toContain('no running cluster found');
    const bad = await run([
      'mr',
      'run',
      wordcount,
      '--input',
      'x',
      '--output',
      'y',
      '--reducers',
      '0',
    ]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('expected a positive integer');
  });
});
