import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CohortError } from '../../../src/lib/errors.js';
import { seededRandom } from '../../../src/lib/random.js';
import { applyWrite, emptyPersistentState, shapeOf } from '../../../src/raft/storage/memory.js';
import type { PersistentState } from '../../../src/raft/storage/storage.js';
import type { Entry } from '../../../src/raft/core/types.js';
import { checkAppend, planWrite } from '../../../src/raft/storage/write-plan.js';
import { entry, randomWrite } from './helpers.js';

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

describe('checkAppend (the hot path of entries-only appends)', () => {
  it('refuses exactly what planWrite refuses, with the same error, for writes continuing the log (property)', () => {
    // Damage an entry run in one of the ways planWrite checks for, or not at all.
    const damages: ((es: Entry[], at: number) => void)[] = [
      () => {},
      (es, at) => ((es[at] as { term: number }).term = 0),
      (es, at) => ((es[at] as { kind: string }).kind = 'bogus'),
      (es, at) => ((es[at] as { data: unknown }).data = 'text'),
      (es, at) => ((es[at] as { index: number }).index += 2),
      (es, at) => ((es[at] as { index: number }).index = -1),
      (es, at) => ((es[at] as { term: number }).term = Math.max(1, es[at]!.term - 1)),
      (es, at) => (es[at] = null as unknown as Entry),
    ];
    let refused = 0;
    let accepted = 0;
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 }), (seed) => {
        const rng = seededRandom(seed);
        let state: PersistentState = emptyPersistentState();
        let maxTerm = 1;
        for (let step = 0; step < 30; step++) {
          const shape = shapeOf(state);
          const last = shape.lastIndex;
          const lastTerm = last === shape.snapshotIndex ? shape.snapshotTerm : shape.termAt(last);
          const startTerm = Math.max(1, lastTerm) + (rng.chance(0.3) ? 1 : 0);
          const run = Array.from({ length: rng.intBetween(1, 4) }, (_, k) =>
            entry(last + 1 + k, startTerm + (rng.chance(0.2) ? 1 : 0) * Math.min(k, 1), 4),
          );
          for (let k = 1; k < run.length; k++) {
            (run[k] as { term: number }).term = Math.max(run[k]!.term, run[k - 1]!.term);
          }
          damages[rng.int(damages.length)]!(run, rng.int(run.length));
          if ((run[0] as Entry | null)?.index !== last + 1) continue; // not this path's case
          let planned: unknown = null;
          let checked: unknown = null;
          try {
            planWrite(shape, { entries: run });
          } catch (err) {
            planned = err;
          }
          try {
            checkAppend(run, lastTerm);
          } catch (err) {
            checked = err;
          }
          if (planned === null) {
            accepted++;
            expect(checked).toBeNull();
          } else {
            refused++;
            expect(checked).toBeInstanceOf(CohortError);
            expect((checked as CohortError).message).toBe((planned as CohortError).message);
          }
          // Move the log on with a random valid write.
          const w = randomWrite(rng, state, maxTerm);
          try {
            planWrite(shapeOf(state), w);
          } catch {
            continue;
          }
          maxTerm = Math.max(
            maxTerm,
            w.snapshot?.meta.term ?? 0,
            ...(w.entries ?? []).map((e) => e.term),
          );
          state = applyWrite(state, w);
        }
      }),
      { numRuns: 200 },
    );
    // Both outcomes were exercised.
    expect(refused).toBeGreaterThan(100);
    expect(accepted).toBeGreaterThan(100);
  });
});
