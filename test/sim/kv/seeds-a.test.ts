import { describe } from 'vitest';
import { kvSeedSlice } from './seeds.js';

// One of two slices (split so vitest runs them in parallel).
describe('kv simulation', () => {
  kvSeedSlice(1, 500);
});
