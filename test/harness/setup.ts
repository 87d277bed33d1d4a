/**
 * vitest setup file (vitest.config.ts): after each test file, removes the
 * temporary directories its tests made with {@link tempDir}. Registered before
 * the file's own hooks, so it runs after them (once its processes are stopped).
 */
import { afterAll } from 'vitest';
import { removeTempDirs } from './tmp.js';

afterAll(() => {
  removeTempDirs();
});
