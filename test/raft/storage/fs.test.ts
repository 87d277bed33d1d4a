/**
 * nodeFs's directory creation: it returns what it created (so the caller can
 * sync the parents, issue 14 item 12) and fails fast where a parent exists but
 * refuses children, such as procfs, where Node's recursive mkdir spins forever
 * (issue 14 item 11). The procfs case runs in a child process, so that a
 * regression fails this test instead of hanging the test worker.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeDirs } from '../../../src/lib/dirs.js';
import { nodeFs } from '../../../src/raft/storage/fs.js';
import { repoDir } from '../../harness/cli.js';
import { tempDir } from '../../harness/tmp.js';
import { conditionWaitMs } from '../../harness/wait.js';

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

  it('refuses a path through a file with ENOTDIR', () => {
    const root = tempDir('cohort-mkdirs-');
    writeFileSync(join(root, 'f'), '');
    expect(() => makeDirs(join(root, 'f', 'sub'))).toThrow(/ENOTDIR/);
  });

  it.runIf(existsSync('/proc/self'))(
    'fails at once under /proc instead of spinning (a child process bounds a regression)',
    () => {
      const script = [
        "import { makeDirs } from './src/lib/dirs.ts';",
        "try { makeDirs('/proc/1/cohort-nope/x'); console.log('created'); }",
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
    },
  );
});
