import { describe } from 'vitest';
import { kvSeedSlice } from './seeds.js';

// One of four slices (split so vitest runs them in parallel); 1,060 seeds in all.
describe('kv simulation', () => {
  kvSeedSlice(531, 265);
});
