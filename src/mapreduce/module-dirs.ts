/**
 * Where a node lets MapReduce job modules load from: a job names its module
 * by path and every node imports it, so a node runs only modules inside the
 * directories its configuration allows (`--mr-module-dirs`; default the
 * node's working directory). Checked by the leader before a job is proposed
 * and again by every worker before it loads the module (each node by its
 * own configuration). Symbolic links are resolved first, so a link inside an
 * allowed directory to a file outside it is refused.
 *
 * ```ts
 * checkModuleDir('/srv/jobs/wc.js', ['/srv/jobs']);   // ok
 * checkModuleDir('/tmp/evil.js', ['/srv/jobs']);      // throws PERMISSION_DENIED
 * ```
 */
import { realpathSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { CohortError } from '../lib/errors.js';

function real(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    // A missing file: judge its (resolved) directory; loading it fails NOT_FOUND later.
    try {
      return resolve(realpathSync(dirname(path)), path.slice(dirname(path).length + 1));
    } catch {
      return resolve(path);
    }
  }
}

/** True if `path` is `dir` or inside it. */
function inside(path: string, dir: string): boolean {
  const r = relative(dir, path);
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
}

/**
 * Throws a definite PERMISSION_DENIED unless the module at `path` lies in
 * one of `dirs` (undefined: no restriction, for a program embedding the
 * runtime with its own modules).
 */
export function checkModuleDir(path: string, dirs: readonly string[] | undefined): void {
  if (dirs === undefined) return;
  const file = real(path);
  if (dirs.some((d) => inside(file, real(d)))) return;
  throw new CohortError(
    'PERMISSION_DENIED',
    `job module ${path} is outside the directories this node loads job modules from (${dirs.join(', ')}); start the nodes with --mr-module-dirs naming its directory`,
    { details: { module: path, allowed: dirs.join(',') } },
  );
}
