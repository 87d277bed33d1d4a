/**
 * The compliance suite for {@link Storage}: every implementation must pass it
 * (test/raft/storage/*.test.ts run it against MemoryStorage, FileStorage on the
 * real file system and FileStorage on the simulated disk). MemoryStorage is
 * the reference: random write sequences are applied to both and compared.
 *
 * ```ts
 * describeStorageCompliance('MemoryStorage', () => memoryHarness());
 * ```
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CohortError } from '../../../src/lib/errors.js';
import { seededRandom } from '../../../src/lib/random.js';
import { MemoryStorage } from '../../../src/raft/storage/memory.js';
import type { Storage, StorageWrite } from '../../../src/raft/storage/storage.js';
import { entries, entry, hs, plain, randomWrite, snapshot } from './helpers.js';

/** One durable medium; `open()` makes a fresh Storage over it (a restart). */
export interface StorageHarness {
  open(): Storage;
  /** Releases the medium (temp dirs). */
  dispose(): void;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    if (err instanceof CohortError) return err.code;
    throw err;
  }
}

async function reopen(
  h: StorageHarness,
  s: Storage,
): Promise<{ storage: Storage; state: unknown }> {
  await s.close();
  const storage = h.open();
  return { storage, state: plain(await storage.load()) };
}

/** Registers the compliance tests for the implementation `makeHarness` builds. */
export function describeStorageCompliance(name: string, makeHarness: () => StorageHarness): void {
  describe(`Storage compliance: ${name}`, () => {
    const withHarness = async (fn: (h: StorageHarness) => Promise<void>): Promise<void> => {
      const h = makeHarness();
      try {
        await fn(h);
      } finally {
        h.dispose();
      }
    };

    it('starts empty', () =>
      withHarness(async (h) => {
        const s = h.open();
        expect(plain(await s.load())).toEqual(plain(new MemoryStorage().current()));
        await s.close();
      }));

    it('keeps entries and hard state across a restart', () =>
      withHarness(async (h) => {
        const s = h.open();
        await s.load();
        await s.save({ entries: entries(1, 5, 1), hardState: hs(1, 'n1', 3) });
        await s.save({ entries: entries(6, 7, 2), hardState: hs(2, null, 5) });
        const { storage, state } = await reopen(h, s);
        expect(state).toEqual(
          plain({
            hardState: hs(2, null, 5),
            snapshot: null,
            entries: [...entries(1, 5, 1), ...entries(6, 7, 2)],
          }),
        );
        await storage.close();
      }));

    it('discards a conflicting suffix before appending (Raft §5.3), durably', () =>
      withHarness(async (h) => {
        const s = h.open();
        await s.load();
        await s.save({ entries: entries(1, 6, 1) });
        await s.save({ entries: entries(4, 5, 2) });
        const { storage, state } = await reopen(h, s);
        expect(state).toEqual(
          plain({
            hardState: hs(0, null, 0),
            snapshot: null,
            entries: [...entries(1, 3, 1), ...entries(4, 5, 2)],
          }),
        );
        await storage.close();
      }));

    it('keeps the log after a snapshot whose term matches, drops it otherwise (Raft §7)', () =>
      withHarness(async (h) => {
        const s = h.open();
        await s.load();
        await s.save({ entries: [...entries(1, 4, 1), ...entries(5, 8, 2)] });
        await s.save({ snapshot: snapshot(6, 2) });
        let r = await reopen(h, s);
        expect(r.state).toEqual(
          plain({ hardState: hs(0, null, 0), snapshot: snapshot(6, 2), entries: entries(7, 8, 2) }),
        );
        await r.storage.save({ snapshot: snapshot(8, 3) });
        r = await reopen(h, r.storage);
        expect(r.state).toEqual(
          plain({ hardState: hs(0, null, 0), snapshot: snapshot(8, 3), entries: [] }),
        );
        await r.storage.save({ snapshot: snapshot(20, 4), entries: entries(21, 22, 4) });
        r = await reopen(h, r.storage);
        expect(r.state).toEqual(
          plain({
            hardState: hs(0, null, 0),
            snapshot: snapshot(20, 4),
            entries: entries(21, 22, 4),
          }),
        );
        await r.storage.close();
      }));

    it('keeps the log for a snapshot at index 0 and when the stored snapshot is saved again', () =>
      withHarness(async (h) => {
        const s = h.open();
        await s.load();
        await s.save({ entries: entries(1, 6, 1) });
        // Index 0 has term 0 by convention (Raft §5.3): an empty snapshot there keeps everything.
        await s.save({ snapshot: snapshot(0, 0, 0) });
        await s.save({ snapshot: snapshot(3, 1, 8) });
        await s.save({ snapshot: snapshot(3, 1, 40) });
        const { storage, state } = await reopen(h, s);
        expect(state).toEqual(
          plain({
            hardState: hs(0, null, 0),
            snapshot: snapshot(3, 1, 40),
            entries: entries(4, 6, 1),
          }),
        );
        await storage.close();
      }));

    it('prepareSnapshot changes nothing load() returns; the save of that snapshot then compacts as any', () =>
      withHarness(async (h) => {
        const s = h.open();
        await s.load();
        await s.save({ entries: entries(1, 8, 1), hardState: hs(1, 'n1', 8) });
        const snap = snapshot(5, 1, 300);
        await s.prepareSnapshot(snap);
        const before = await reopen(h, s);
        expect(before.state).toEqual(
          plain({ hardState: hs(1, 'n1', 8), snapshot: null, entries: entries(1, 8, 1) }),
        );
        await before.storage.prepareSnapshot(snap);
        await before.storage.save({ snapshot: snap });
        await before.storage.save({ entries: entries(9, 9, 1) });
        const after = await reopen(h, before.storage);
        expect(after.state).toEqual(
          plain({ hardState: hs(1, 'n1', 8), snapshot: snap, entries: entries(6, 9, 1) }),
        );
        await after.storage.close();
      }));

    it('refuses invalid writes with INVALID_ARGUMENT and changes nothing', () =>
      withHarness(async (h) => {
        const s = h.open();
        await s.load();
        await s.save({
          snapshot: snapshot(3, 1),
          entries: entries(4, 6, 2),
          hardState: hs(2, 'n1', 4),
        });
        const bad: StorageWrite[] = [
          { entries: [entry(8, 2)] }, // gap
          { entries: [entry(3, 2)] }, // at the snapshot index
          { entries: [entry(7, 2), entry(9, 2)] }, // not contiguous
          { entries: [entry(7, 3), entry(8, 2)] }, // terms decrease
          { entries: [entry(7, 1)] }, // lower term than its predecessor
          { snapshot: snapshot(2, 1) }, // older snapshot
          { hardState: hs(-1, null, 0) },
          { hardState: { term: 3, vote: 'not valid!', commit: 0 } as never },
          { entries: [{ ...entry(7, 2), kind: 'weird' } as never] },
          { entries: [{ ...entry(7, 2), data: 'text' } as never] },
          { hardState: hs(5, null, 0), entries: [entry(9, 2)] }, // whole write refused
        ];
        for (const w of bad) expect(await codeOf(s.save(w))).toBe('INVALID_ARGUMENT');
        await s.save({ entries: [entry(7, 2)] });
        const { storage, state } = await reopen(h, s);
        expect(state).toEqual(
          plain({ hardState: hs(2, 'n1', 4), snapshot: snapshot(3, 1), entries: entries(4, 7, 2) }),
        );
        await storage.close();
      }));

    it('applies concurrent saves in call order and resolves every one', () =>
      withHarness(async (h) => {
        const s = h.open();
        await s.load();
        const pending: Promise<void>[] = [];
        for (let i = 1; i <= 200; i++) {
          pending.push(
            s.save({
              entries: [entry(i, 1 + (i >> 6), 100)],
              hardState: hs(1 + (i >> 6), null, i - 1),
            }),
          );
          if (i % 50 === 0) pending.push(s.save({ entries: [entry(i - 2, 1 + (i >> 6), 100)] }));
          if (i % 50 === 0) pending.push(s.save({ entries: entries(i - 1, i, 1 + (i >> 6), 100) }));
        }
        await Promise.all(pending);
        const { storage, state } = await reopen(h, s);
        const ref = new MemoryStorage();
        await ref.load();
        for (let i = 1; i <= 200; i++) {
          await ref.save({
            entries: [entry(i, 1 + (i >> 6), 100)],
            hardState: hs(1 + (i >> 6), null, i - 1),
          });
          if (i % 50 === 0) await ref.save({ entries: [entry(i - 2, 1 + (i >> 6), 100)] });
          if (i % 50 === 0) await ref.save({ entries: entries(i - 1, i, 1 + (i >> 6), 100) });
        }
        expect(state).toEqual(plain(ref.current()));
        await storage.close();
      }));

    it('refuses save before load (FAILED_PRECONDITION) and anything after close (CLOSED)', () =>
      withHarness(async (h) => {
        const s = h.open();
        expect(await codeOf(s.save({ hardState: hs(1, null, 0) }))).toBe('FAILED_PRECONDITION');
        await s.load();
        await s.close();
        expect(await codeOf(s.save({ hardState: hs(1, null, 0) }))).toBe('CLOSED');
      }));

    it('matches MemoryStorage on random write sequences with restarts (property)', () =>
      withHarness(async (h) => {
        let storage = h.open();
        await storage.load();
        const ref = new MemoryStorage();
        await ref.load();
        await fc.assert(
          fc.asyncProperty(fc.integer({ min: 0, max: 2 ** 31 }), async (seed) => {
            const rng = seededRandom(seed);
            let maxTerm = Math.max(1, ref.current().hardState.term);
            for (let step = 0; step < 40; step++) {
              const w = randomWrite(rng, ref.current(), maxTerm);
              maxTerm = Math.max(
                maxTerm,
                w.snapshot?.meta.term ?? 0,
                ...(w.entries ?? []).map((e) => e.term),
              );
              const [a, b] = await Promise.all([codeOf(ref.save(w)), codeOf(storage.save(w))]);
              expect(b).toBe(a);
            }
            const r = await reopen(h, storage);
            storage = r.storage;
            expect(r.state).toEqual(plain(ref.current()));
          }),
          { numRuns: 25 },
        );
        await storage.close();
      }));
  });
}
