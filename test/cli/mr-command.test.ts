/**
 * `cohort mr` as a user runs it (a child process from the sources): with no
 * cluster running, `run` starts a one-node cluster in its own process and
 * its output equals the sequential run's; `status` with no cluster says so
 * and exits 1; bad arguments are refused by the parser.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { statusTable } from '../../src/cli/mr-command.js';
import type { JobStatus } from '../../src/mapreduce/core/types.js';
import { loadJob } from '../../src/mapreduce/job.js';
import { runSequential } from '../../src/mapreduce/sequential.js';
import { repoDir as repo, runCli as run } from '../harness/cli.js';

const wordcount = join(repo, 'examples/mapreduce/wordcount.ts');
const behaveJob = fileURLToPath(new URL('../mapreduce/fixtures/behave-job.ts', import.meta.url));
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
      '--local',
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
      '--local',
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

  it('run outside a cluster directory refuses to run without --local, and creates nothing', async () => {
    const input = join(dir, 'in-nolocal.txt');
    writeFileSync(input, 'a b\n');
    const out = join(dir, 'out-nolocal');
    const r = await run([
      'mr',
      'run',
      wordcount,
      '--input',
      input,
      '--output',
      out,
      '--dir',
      join(dir, 'none'),
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no cluster to run the job on');
    expect(r.stderr).toContain('--local');
    expect(existsSync(out)).toBe(false);
  });

  it('--set checks job options before anything runs', async () => {
    const base = [
      'mr',
      'run',
      wordcount,
      '--input',
      'x',
      '--output',
      join(dir, 'never'),
      '--local',
    ];
    const unknown = await run([...base, '--set', 'maxTaskFailure=3']);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('unknown job option "maxTaskFailure"; known: maxTaskFailures');
    const badInt = await run([...base, '--set', 'maxTaskFailures=0']);
    expect(badInt.code).not.toBe(0);
    expect(badInt.stderr).toContain('maxTaskFailures must be an integer in 1..');
    const badBool = await run([...base, '--set', 'skipBadRecords=maybe']);
    expect(badBool.code).not.toBe(0);
    expect(badBool.stderr).toContain('skipBadRecords must be true or false');
    expect(existsSync(join(dir, 'never'))).toBe(false);
  });

  it('with skipBadRecords set from the CLI, every record whose map threw is listed with its error and counted in the last line', async () => {
    const input = join(dir, 'in-bad');
    mkdirSync(input);
    for (let f = 0; f < 2; f++) {
      const lines = Array.from({ length: 200 }, (_, i) => (i % 10 === 3 ? 'bad' : `w${i % 7}`));
      writeFileSync(join(input, `f${f}.txt`), `${lines.join('\n')}\n`);
    }
    const args = (out: string, json: boolean): string[] => [
      'mr',
      'run',
      behaveJob,
      '--input',
      join(input, '*.txt'),
      '--output',
      join(dir, out),
      '--param',
      'behave=throw',
      '--set',
      'skipBadRecords=true',
      '--set',
      'splitBytes=300',
      '--local',
      '--workers',
      '2',
      ...(json ? ['--json'] : []),
    ];
    const r = await run(args('out-bad', true));
    expect(r.code).toBe(0);
    const final = JSON.parse(r.stdout) as JobStatus;
    expect(final.status).toBe('done');
    expect(final.options.skipBadRecords).toBe(true);
    expect(final.counters.skippedRecords).toBe(40);
    expect(final.skipped).toHaveLength(40);
    for (const s of final.skipped) expect(s.error).toBe('bad record');
    const offsets = final.skipped.map((s) => `${s.file.slice(-6)}:${s.offset}`).sort();
    expect(new Set(offsets).size).toBe(40);
    const text = await run(args('out-bad-2', false));
    expect(text.code).toBe(0);
    expect(text.stderr.trimEnd().split('\n').pop()).toBe(
      `output: ${join(dir, 'out-bad-2')}; 40 records skipped`,
    );
  });

  it('status shows each job’s skipped records, elapsed time and why it failed', () => {
    const job = (over: Partial<JobStatus>): JobStatus =>
      ({
        jobId: 'j-1',
        name: 'wc',
        module: '/m.ts',
        output: '/out',
        params: {},
        status: 'done',
        submittedAt: 1_000,
        finishedAt: 4_500,
        outputCreated: false,
        progress: {
          maps: 2,
          mapsDone: 2,
          mapsRunning: 0,
          reduces: 1,
          reducesDone: 1,
          reducesRunning: 0,
        },
        counters: { reExecutions: 1, skippedRecords: 3 },
        inputBytes: 10,
        skipped: [{ map: 0, file: '/in/a.txt', offset: 17, error: 'bad record' }],
        userCounters: {},
        ...over,
      }) as unknown as JobStatus;
    const table = statusTable(
      [
        job({}),
        job({
          jobId: 'j-2',
          status: 'failed',
          error: 'reduce task 0 failed 4 times; last error: boom',
        }),
      ],
      10_000,
      true,
    );
    expect(table).toMatch(
      /^JOB\s+NAME\s+STATUS\s+MAPS\s+REDUCES\s+RE-EXEC\s+SKIPPED\s+ELAPSED\s+OUTPUT$/m,
    );
    expect(table).toMatch(/^j-1\s+wc\s+done\s+2\/2\s+1\/1\s+1\s+3\s+3\.5 s\s+\/out$/m);
    expect(table).toContain('j-2 failed: reduce task 0 failed 4 times; last error: boom');
    expect(table).toContain('  skipped /in/a.txt:17 (map 0): bad record');
    expect(table).toContain('  ... 2 more skipped records not listed');
  });
});
