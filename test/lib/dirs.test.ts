/**
 * Every place cohort makes a directory from a user's path goes through
 * makeDirs, which fails at once where Node's recursive mkdir spins forever
 * (procfs: `/proc/1/x` answers ENOENT, which Node reads as "make the parent
 * first", over and over). Before this, `cohort mr run --output /proc/1/x`
 * and `cohort certs init --dir /proc/1/x` never returned, at 100 % CPU.
 * Each check of a command runs in a child process, so that a regression
 * fails the test (the wait's bound) instead of hanging the test worker.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeDirs } from '../../src/lib/dirs.js';
import { repoDir, startCli } from '../harness/cli.js';
import { tempDir } from '../harness/tmp.js';
import { conditionWaitMs, waitUntil } from '../harness/wait.js';

const procfs = existsSync('/proc/self');

describe('makeDirs', () => {
  it('gives each directory it creates the mode asked for', () => {
    const root = tempDir('cohort-dirs-');
    const made = makeDirs(join(root, 'a', 'b'), 0o700);
    expect(made).toEqual([join(root, 'a'), join(root, 'a', 'b')]);
    for (const d of made) expect((statSync(d).mode & 0o777).toString(8)).toBe('700');
  });

  it.runIf(procfs)('cohort mr run --local with an output under /proc exits 2 at once', async () => {
    const input = join(repoDir, 'README.md');
    const p = startCli([
      'mr',
      'run',
      join(repoDir, 'examples/mapreduce/wordcount.ts'),
      '--input',
      input,
      '--output',
      '/proc/1/cohort-nope/out',
      '--local',
    ]);
    try {
      let code: number | null | undefined;
      void p.exit.then((c) => (code = c));
      await waitUntil('it to exit', () => code !== undefined);
      expect(code).toBe(2);
    } finally {
      p.child.kill('SIGKILL');
    }
    expect(p.out.stderr).toMatch(
      /output directory \/proc\/1\/cohort-nope\/out cannot be created: ENOENT/,
    );
  });

  it.runIf(procfs)('a certificate directory under /proc is refused at once', () => {
    const script = [
      "import { CertDir } from './src/trust/cert-dir.ts';",
      "try { await new CertDir('/proc/1/cohort-nope/certs').init('c1'); console.log('created'); }",
      'catch (e) { console.log(`refused ${e.code}`); }',
    ].join('\n');
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      {
        cwd: repoDir,
        encoding: 'utf8',
        // Only a bound for a regression (which never returns); normally ~1 s.
        timeout: conditionWaitMs,
        killSignal: 'SIGKILL',
      },
    );
    expect(r.signal, r.stderr).toBeNull();
    expect(r.stdout.trim()).toBe('refused ENOENT');
  });
});
