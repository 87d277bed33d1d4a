/**
 * Temporary directories for tests, removed after each test file (by
 * test/harness/setup.ts, a vitest setup file). A node's data directory holds
 * preallocated WAL segments (up to 128 MiB per node), so a test that left its
 * directories behind would fill the disk over a few runs.
 *
 * ```ts
 * const dir = tempDir('cohort-up-');   // /tmp/cohort-up-XXXXXX, gone after this file's tests
 * ```
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const made: string[] = [];

/** Creates a fresh directory under the OS temp dir, removed once the test file's tests are done. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** Removes every directory {@link tempDir} made (best effort: a failure to remove never fails a test). */
export function removeTempDirs(): void {
  for (const dir of made.splice(0)) {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // Left for the OS to clean; nothing a test depends on.
    }
  }
}
