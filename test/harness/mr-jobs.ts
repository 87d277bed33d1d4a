/**
 * Small MapReduce jobs for the tests that need one to exist (status, cancel),
 * not to compute anything in particular.
 *
 * ```ts
 * const { jobId } = await client.submit((await tinyWordCount('cohort-mrcancel-')).request);
 * ```
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { prepareJob } from '../../src/mapreduce/client.js';
import type { PreparedJob } from '../../src/mapreduce/client.js';
import { repoDir } from './cli.js';
import { tempDir } from './tmp.js';

/** examples/mapreduce/wordcount.ts over one file of `a b c`, its input and output in a new temp dir named from `prefix`. */
export function tinyWordCount(prefix: string): Promise<PreparedJob> {
  const dir = tempDir(prefix);
  mkdirSync(join(dir, 'in'));
  writeFileSync(join(dir, 'in', 'a.txt'), 'a b c\n');
  return prepareJob({
    module: join(repoDir, 'examples/mapreduce/wordcount.ts'),
    inputs: [join(dir, 'in')],
    output: join(dir, 'out'),
  });
}
