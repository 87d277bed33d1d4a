import { describe } from 'vitest';
import { seedSlice } from './seeds.js';

// The fifth slice: with a-d, 2,150 seeds of the raft scenario per CI run.
describe('raft simulation', () => {
  seedSlice(2001, 150);
});
