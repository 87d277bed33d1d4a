/**
 * Directory creation that fails fast: {@link makeDirs}, `mkdir -p` without
 * the hang of Node's recursive mkdir on procfs. Every place cohort creates a
 * directory from a path a user gave (data dirs, certificate dirs, a job's
 * output, map output and fetched runs) goes through it.
 *
 * ```ts
 * makeDirs('/data/n1/wal');          // ['/data', '/data/n1', '/data/n1/wal'] if none existed
 * makeDirs('/proc/1/x');             // throws ENOENT at once (Node's recursive mkdir spins)
 * ```
 */
import * as nfs from 'node:fs';
import { dirname, resolve } from 'node:path';

/**
 * Creates `dir` and its missing parents, one mkdir per missing component, and
 * returns the directories it created, outermost first. Unlike
 * `mkdirSync(dir, { recursive: true })` it fails fast where a parent exists
 * but refuses children: Node's recursive mkdir takes ENOENT to mean "the
 * parent is missing", creates the parent (EEXIST), retries the child, and on
 * procfs (`/proc/1/x` answers ENOENT) loops forever (nodejs/node, recursive
 * mkdir). Here each component is tried once and any error but EEXIST of a
 * directory is thrown. `mode` (default 0o777, less the umask) is given to
 * each directory created, as `mkdirSync`'s is.
 */
export function makeDirs(dir: string, mode?: number): string[] {
  const missing: string[] = [];
  for (let cur = resolve(dir); ;) {
    let stat: nfs.Stats | undefined;
    try {
      stat = nfs.statSync(cur);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (stat !== undefined) {
      if (!stat.isDirectory()) {
        throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${cur}'`), {
          code: 'ENOTDIR',
          path: cur,
        });
      }
      break;
    }
    missing.push(cur);
    const parent = dirname(cur);
    if (parent === cur) break;
    cur = parent;
  }
  const created: string[] = [];
  for (const d of missing.reverse()) {
    try {
      nfs.mkdirSync(d, mode);
      created.push(d);
    } catch (e) {
      // Made meanwhile by another process: fine if it is a directory.
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || !nfs.statSync(d).isDirectory()) throw e;
    }
  }
  return created;
}
