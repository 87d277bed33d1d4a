/**
 * A job module named by its content: the sha256 of its file's bytes, taken
 * when the job is submitted and recorded in the job (the replicated
 * coordinator state), so every node can check that the module it is about to
 * load is the one the job was submitted with.
 *
 * ```ts
 * const sha = await moduleSha256('/srv/jobs/wc.js');        // 64 hex digits
 * checkModuleSha256('/srv/jobs/wc.js', sha, other, 'n2');   // throws MODULE_MISMATCH if they differ
 * ```
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { CohortError } from '../lib/errors.js';

/** The shape of a module hash: sha256, lowercase hex. */
export const MODULE_SHA256_PATTERN = '^[0-9a-f]{64}$';

/** The sha256 of `bytes`, lowercase hex. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Reads the module file at `path`: NOT_FOUND if it cannot be read. */
export async function readModule(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new CohortError(
      'NOT_FOUND',
      `job module ${path} cannot be read: ${(err as Error).message}`,
      {
        cause: err,
        details: { module: path },
      },
    );
  }
}

/** The sha256 of the module file at `path` (NOT_FOUND if it cannot be read). */
export async function moduleSha256(path: string): Promise<string> {
  return sha256Hex(await readModule(path));
}

/**
 * Throws a definite MODULE_MISMATCH unless `actual` (the bytes found at
 * `path` by `where`) is `expected` (the job's record). The message names
 * both hashes and says what likely happened.
 */
export function checkModuleSha256(
  path: string,
  expected: string,
  actual: string,
  where: string,
  jobId?: string,
): void {
  if (actual === expected) return;
  throw new CohortError(
    'MODULE_MISMATCH',
    `MODULE_MISMATCH: job module ${path} ${where} has sha256 ${actual}, but ${
      jobId === undefined ? 'the job' : `job ${jobId}`
    } was submitted with ${expected}: the file changed after the submit (or differs on this machine); ` +
      'nothing of it ran — submit the job again to run the new file',
    {
      details: {
        module: path,
        expectedSha256: expected,
        actualSha256: actual,
        ...(jobId === undefined ? {} : { jobId }),
      },
    },
  );
}

/**
 * What a worker on node `self` checks before loading an assignment's module:
 * the sha256 its job recorded (undefined for a job submitted before modules
 * were hashed).
 */
export function moduleCheckOf(
  a: { readonly jobId: string; readonly moduleSha256?: string | undefined },
  self: string,
): { sha256: string; where: string; jobId: string } | undefined {
  return a.moduleSha256 === undefined
    ? undefined
    : { sha256: a.moduleSha256, where: `on node ${self}`, jobId: a.jobId };
}
