import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'examples/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Removes the temp dirs a test file made with test/harness/tmp.ts's tempDir().
    setupFiles: ['test/harness/setup.ts'],
  },
});
