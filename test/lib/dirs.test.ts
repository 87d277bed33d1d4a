/**
 * makeDirs, and every place cohort makes a directory from a user's path
 * through it. It returns what it created (so the caller can sync the
 * parents, issue 14 item 12) and fails at once where Node's recursive mkdir
 * spins forever: procfs, where `/proc/1/x` answers ENOENT, which Node reads
 * as "make the parent first", over and over (issue 14 item 11 for the data
 * dir). Before makeDirs was used everywhere, `cohort mr run --output
 * /proc/1/x` and `cohort certs init --dir /proc/1/x` never returned, at 100 %
 * CPU. Each procfs check runs in a child process, so that a regression fails
 * the test (the wait's bound) instead of hanging the test worker.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeDirs } from '../../src/lib/dirs.js';
import { nodeFs } from '../../src/raft/storage/fs.js';
import { repoDir, startCli } from '../harness/cli.js';
import { tempDir } from '../harness/tmp.js';
import { conditionWaitMs, waitUntil } from '../harness/wait.js';

const procfs = existsSync('/proc/self');

/** Runs `lines` (an ES module, from the repository, under tsx) in a child process; its stdout, trimmed. */
function inChild(lines: readonly string[]): string {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', lines.join('\n')],
    {
      cwd: repoDir,
      encoding: 'utf8',
      // Only a bound for a regression (which never returns); normally ~1 s.
      timeout: conditionWaitMs,
      killSignal: 'SIGKILL',
    },
  );
  expect(r.signal, r.stderr).toBeNull();
  return r.stdout.trim();
}

describe('makeDirs', () => {
  it('creates the missing directories, outermost first, and returns them', () => {
    const root = tempDir('cohort-mkdirs-');
    expect(makeDirs(join(root, 'a', 'b', 'c'))).toEqual([
      join(root, 'a'),
      join(root, 'a', 'b'),
      join(root, 'a', 'b', 'c'),
    ]);
    expect(statSync(join(root, 'a', 'b', 'c')).isDirectory()).toBe(true);
    expect(makeDirs(join(root, 'a', 'b'))).toEqual([]);
    expect(nodeFs.mkdirp(join(root, 'a', 'x'))).toEqual([join(root, 'a', 'x')]);
  });

  it('gives each directory it creates the mode asked for', () => {
    const root = tempDir('cohort-dirs-');
    const made = makeDirs(join(root, 'a', 'b'), 0o700);
    expect(made).toEqual([join(root, 'a'), join(root, 'a', 'b')]);
    for (const d of made) expect((statSync(d).mode & 0o777).toString(8)).toBe('700');
  });

  it('refuses a path through a file with ENOTDIR', () => {
    const root = tempDir('cohort-mkdirs-');
    writeFileSync(join(root, 'f'), '');
    expect(() => makeDirs(join(root, 'f', 'sub'))).toThrow(/ENOTDIR/);
  });

  it.runIf(procfs)('fails at once under /proc instead of spinning', () => {
    const out = inChild([
      "import { makeDirs } from './src/lib/dirs.ts';",
      "try { makeDirs('/proc/1/cohort-nope/x'); console.log('created'); }",
      'catch (e) { console.log(`refused ${e.code}`); }',
    ]);
    expect(out).toBe('refused ENOENT');
  });

  it.runIf(procfs)('a certificate directory under /proc is refused at once', () => {
    const out = inChild([
      "import { CertDir } from './src/trust/cert-dir.ts';",
      "try { await new CertDir('/proc/1/cohort-nope/certs').init('c1'); console.log('created'); }",
      'catch (e) { console.log(`refused ${e.code}`); }',
    ]);
    expect(out).toBe('refused ENOENT');
  });

  it.runIf(procfs)('cohort mr run --local with an output under /proc exits 2 at once', async () => {
    const p = startCli([
      'mr',
      'run',
      join(repoDir, 'examples/mapreduce/wordcount.ts'),
      '--input',
      join(repoDir, 'README.md'),
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
});
