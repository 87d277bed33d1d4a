import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (path: string): string => fileURLToPath(new URL(`./src/${path}`, import.meta.url));

/**
 * Seeded simulations: deterministic CPU-bound work, bounded by virtual time and
 * seed counts, so a busy machine makes them slower, never wrong. They run with
 * no wall-clock limit (a simulation has no reason to fail on time).
 */
const simulations = ['test/sim/**/*.test.ts', 'test/raft/storage/sim-durability.test.ts'];

/**
 * Everything else: real sockets, processes and timers. These tests wait for
 * conditions with their own generous bounds (and fail naming what they waited
 * for); vitest's limit is only a guard against a hang, far above what a test
 * needs on a loaded 2-core machine.
 */
const hangGuardMs = 600_000;

export default defineConfig({
  resolve: {
    // The package's own name resolves to the sources, as in tsconfig.json's `paths`
    // (package.json `exports` names the same entries in dist/).
    alias: [
      { find: /^cohort$/, replacement: src('index.ts') },
      { find: /^cohort\/(kv|rpc|mapreduce|gateway|naming)$/, replacement: src('$1/index.ts') },
    ],
  },
  test: {
    pool: 'forks',
    // Removes the temp dirs a test file made with test/harness/tmp.ts's tempDir().
    setupFiles: ['test/harness/setup.ts'],
    testTimeout: hangGuardMs,
    hookTimeout: hangGuardMs,
    projects: [
      {
        extends: true,
        test: { name: 'sim', include: simulations, testTimeout: 0 },
      },
      {
        extends: true,
        test: {
          name: 'main',
          include: ['test/**/*.test.ts', 'examples/**/*.test.ts'],
          exclude: [...simulations, '**/node_modules/**'],
        },
      },
    ],
  },
});
