import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CohortError } from '../../../src/lib/errors.js';
import { seededRandom } from '../../../src/lib/random.js';
import { applyWrite, emptyPersistentState, shapeOf } from '../../../src/raft/storage/memory.js';
import type { PersistentState } from '../../../src/raft/storage/storage.js';
import { planWrite } from '../../../src/raft/storage/write-plan.js';
import { randomWrite } from './helpers.js';

describe('planWrite and applyWrite', () => {
  it('agree on every accepted write: the planned log end, suffix kept or dropped, contiguity (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 }), (seed) => {
        const rng = seededRandom(seed);
        let state: PersistentState = emptyPersistentState();
        let maxTerm = 1;
        for (let step = 0; step < 60; step++) {
          const w = randomWrite(rng, state, maxTerm);
          let plan;
          try {
            plan = planWrite(shapeOf(state), w);
          } catch (err) {
            expect(err).toBeInstanceOf(CohortError);
            expect((err as CohortError).code).toBe('INVALID_ARGUMENT');
            continue;
          }
          maxTerm = Math.max(
            maxTerm,
            w.snapshot?.meta.term ?? 0,
            ...(w.entries ?? []).map((e) => e.term),
          );
          const before = state;
          state = applyWrite(state, w);
          const base = state.snapshot?.meta.index ?? 0;
          expect(base + state.entries.length).toBe(plan.lastIndex);
          state.entries.forEach((e, k) => expect(e.index).toBe(base + 1 + k));
          for (let k = 1; k < state.entries.length; k++) {
            expect(state.entries[k]!.term).toBeGreaterThanOrEqual(state.entries[k - 1]!.term);
          }
          if (w.snapshot !== undefined && (w.entries ?? []).length === 0) {
            const kept = before.entries.filter((e) => e.index > w.snapshot!.meta.index);
            expect(state.entries.length).toBe(plan.snapshotKeepsLog ? kept.length : 0);
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});
