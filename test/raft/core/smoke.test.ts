import { describe, expect, it } from 'vitest';
import { Cluster } from './harness.js';

describe('smoke', () => {
  it('elects and replicates', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    expect(c.propose('a', 'x').kind).toBe('accepted');
    c.stabilize();
    expect(c.applied('b')).toEqual(['x']);
    expect(c.applied('c')).toEqual(['x']);
    expect(c.applied('a')).toEqual(['x']);
  });
  it('elects by ticking', () => {
    const c = new Cluster(['a', 'b', 'c']);
    for (let i = 0; i < 100 && c.leader() === null; i++) {
      c.tick();
      c.stabilize();
    }
    expect(c.leader()).not.toBeNull();
  });
});
