import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TermRuns } from '../../../src/raft/storage/term-runs.js';

type Op =
  | { kind: 'append'; term: number }
  | { kind: 'truncate'; back: number }
  | { kind: 'drop'; ahead: number };

describe('TermRuns', () => {
  it('answers termAt like a plain array of terms under appends, truncations and compactions (property)', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('append' as const), term: fc.integer({ min: 0, max: 3 }) }),
      fc.record({ kind: fc.constant('truncate' as const), back: fc.integer({ min: 0, max: 5 }) }),
      fc.record({ kind: fc.constant('drop' as const), ahead: fc.integer({ min: 0, max: 5 }) }),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 100 }),
        fc.array(op, { maxLength: 80 }),
        (base, ops: Op[]) => {
          const runs = new TermRuns(base);
          let first = base + 1;
          const terms: number[] = []; // terms[i] is the term of entry first + i
          let term = 1;
          for (const o of ops) {
            const last = first + terms.length - 1;
            if (o.kind === 'append') {
              term += o.term;
              runs.append(last + 1, term);
              terms.push(term);
            } else if (o.kind === 'truncate') {
              const from = Math.max(first, last + 1 - o.back);
              runs.truncateFrom(from);
              terms.length = from - first;
            } else {
              const through = Math.min(last, first - 1 + o.ahead);
              runs.dropThrough(through);
              terms.splice(0, through - first + 1);
              first = through + 1;
            }
            expect(runs.lastIndex).toBe(first + terms.length - 1);
            if (terms.length > 0) expect(runs.firstIndex).toBe(first);
            terms.forEach((t, i) => expect(runs.termAt(first + i)).toBe(t));
          }
        },
      ),
    );
  });
});
