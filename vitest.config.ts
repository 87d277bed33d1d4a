import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (path: string): string => fileURLToPath(new URL(`./src/${path}`, import.meta.url));

export default defineConfig({
  resolve: {
    // The package's own name resolves to the sources, as in tsconfig.json's `paths`
    // (package.json `exports` names the same entries in dist/).
    alias: [
      { find: /^cohort$/, replacement: src('index.ts') },
      { find: /^cohort\/(kv|rpc|mapreduce)$/, replacement: src('$1/index.ts') },
    ],
  },
  test: {
    include: ['test/**/*.test.ts', 'examples/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Removes the temp dirs a test file made with test/harness/tmp.ts's tempDir().
    setupFiles: ['test/harness/setup.ts'],
  },
});
