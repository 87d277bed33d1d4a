/**
 * Removing a failed or cancelled job's output: its reducers' `part-r-NNNNN`
 * files and their temp files (`.part-r-NNNNN.tmp-...`), and the directory
 * itself when the submitter created it and nothing else is left in it. The
 * leader's driver does this for the coordinator (runtime.ts), then proposes
 * `outputRemoved`; doing it twice is harmless.
 *
 * ```ts
 * await removeJobOutput('/data/out/wc', true);
 * ```
 */
import { readdir, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';

/** True for the files a job's reducers write in its output directory. */
export function isJobOutputFile(name: string): boolean {
  return name.startsWith('part-r-') || name.startsWith('.part-r-');
}

/**
 * Removes the job output files in `dir` (and `dir` if `createdDir` and it is
 * then empty). A missing directory is already clean. Throws the file
 * system's error otherwise (the caller retries later).
 */
export async function removeJobOutput(dir: string, createdDir: boolean): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  await Promise.all(names.filter(isJobOutputFile).map((f) => rm(join(dir, f), { force: true })));
  if (createdDir && (await readdir(dir)).length === 0) {
    await rmdir(dir).catch((e: unknown) => {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    });
  }
}
