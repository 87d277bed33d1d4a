import { describe } from 'vitest';
import { seedSlice } from './seeds.js';

// One of five slices (split so vitest runs them in parallel); 2,150 seeds in all.
describe('raft simulation', () => {
  seedSlice(1, 500);
});
