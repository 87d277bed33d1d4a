/** Job modules load only from the directories a node allows (issue 13, MapReduce trust). */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isCohortError } from '../../src/lib/errors.js';
import { checkModuleDir } from '../../src/mapreduce/module-dirs.js';
import { resolveNodeConfig } from '../../src/node/config.js';
import { tempDir } from '../harness/tmp.js';

function refusal(path: string, dirs: readonly string[] | undefined): string | undefined {
  try {
    checkModuleDir(path, dirs);
    return undefined;
  } catch (e) {
    return isCohortError(e) ? e.code : String(e);
  }
}

describe('job module directories', () => {
  it('allows modules inside an allowed directory, refuses others, links out and ../ escapes', () => {
    const root = tempDir('cohort-moddirs-');
    const jobs = join(root, 'jobs');
    const elsewhere = join(root, 'elsewhere');
    mkdirSync(join(jobs, 'sub'), { recursive: true });
    mkdirSync(elsewhere);
    writeFileSync(join(jobs, 'sub', 'wc.js'), 'export default {}');
    writeFileSync(join(elsewhere, 'evil.js'), 'export default {}');
    symlinkSync(join(elsewhere, 'evil.js'), join(jobs, 'link.js'));
    expect(refusal(join(jobs, 'sub', 'wc.js'), [jobs])).toBeUndefined();
    expect(refusal(join(jobs, 'missing.js'), [jobs])).toBeUndefined();
    expect(refusal(join(elsewhere, 'evil.js'), [jobs])).toBe('PERMISSION_DENIED');
    expect(refusal(join(jobs, '..', 'elsewhere', 'evil.js'), [jobs])).toBe('PERMISSION_DENIED');
    expect(refusal(join(jobs, 'link.js'), [jobs])).toBe('PERMISSION_DENIED');
    expect(refusal(`${jobs}-x/wc.js`, [jobs])).toBe('PERMISSION_DENIED');
    expect(refusal(join(elsewhere, 'evil.js'), [jobs, elsewhere])).toBeUndefined();
    expect(refusal(join(elsewhere, 'evil.js'), undefined)).toBeUndefined();
  });

  it('a node allows its working directory by default, else the --mr-module-dirs it is given', () => {
    const base = {
      id: 'n1',
      dataDir: '/tmp/d',
      listen: '127.0.0.1:7101',
      rpc: '127.0.0.1:7201',
      insecure: true,
    };
    expect(resolveNodeConfig({ flags: base, env: {}, cwd: '/srv/app' }).mrModuleDirs).toEqual([
      '/srv/app',
    ]);
    expect(
      resolveNodeConfig({
        flags: { ...base, mrModuleDirs: 'jobs,/opt/j' },
        env: {},
        cwd: '/srv/app',
      }).mrModuleDirs,
    ).toEqual(['/srv/app/jobs', '/opt/j']);
  });
});
