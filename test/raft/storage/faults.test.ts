/**
 * FileStorage under injected faults on the simulated disk: failed syncs and
 * writes, and bit rot. Damage is refused or cut off, never returned as data.
 */
import { describe, expect, it } from 'vitest';
import { CohortError } from '../../../src/lib/errors.js';
import { clusterId, nodeId } from '../../../src/lib/ids.js';
import { seededRandom } from '../../../src/lib/random.js';
import { FileStorage } from '../../../src/raft/storage/file-storage.js';
import { MemoryStorage } from '../../../src/raft/storage/memory.js';
import type { PersistentState, StorageWrite } from '../../../src/raft/storage/storage.js';
import { SimDisk } from '../../../src/sim/disk.js';
import { entries, entry, hs, plain, randomWrite, snapshot } from './helpers.js';
import { partialStates } from './sim-workload.js';

const quiet = { info: () => {}, warn: () => {}, error: () => {} };

function openOn(disk: SimDisk, segmentBytes = 2048): FileStorage {
  return new FileStorage({
    dir: '/data/n1',
    fs: disk.fs,
    clusterId: clusterId('c1'),
    nodeId: nodeId('n1'),
    logger: quiet,
    segmentBytes,
  });
}

async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    if (err instanceof CohortError) return `${err.code}${err.definite ? '' : ' (indefinite)'}`;
    throw err;
  }
}

describe('FileStorage with failing I/O', () => {
  it('rejects the batch whose fdatasync failed and every later save with indefinite IO_ERROR; a restart recovers', async () => {
    const disk = new SimDisk(seededRandom(5));
    const s = openOn(disk);
    await s.load();
    await s.save({ entries: entries(1, 3, 1) });
    disk.failWhen = (op) => op === 'fdatasync';
    const a = s.save({ entries: [entry(4, 1)] });
    const b = s.save({ hardState: hs(1, 'n1', 3) });
    expect(await outcome(a)).toBe('IO_ERROR (indefinite)');
    expect(await outcome(b)).toBe('IO_ERROR (indefinite)');
    expect(await outcome(s.save({ entries: [entry(5, 1)] }))).toBe('IO_ERROR (indefinite)');
    disk.failWhen = null;
    disk.crash();
    const again = openOn(disk);
    const state = await again.load();
    // Entries 1..3 were acknowledged; 4 may or may not have reached the disk.
    expect(state.entries.slice(0, 3).map((e) => e.index)).toEqual([1, 2, 3]);
    expect(state.entries.length).toBeLessThanOrEqual(4);
    await again.save({ entries: [entry(state.entries.length + 1, 2)] });
    await again.close();
  });

  it('fails the storage when a snapshot file cannot be written (like a failed WAL write), logging nothing of it; a restart recovers without it', async () => {
    const disk = new SimDisk(seededRandom(6));
    const s = openOn(disk);
    await s.load();
    await s.save({ entries: entries(1, 5, 1) });
    disk.failWhen = (op, path) => op === 'rename' && path.includes('/snap/');
    const snap = s.save({ snapshot: snapshot(3, 1), entries: [entry(6, 1)] });
    const after = s.save({ entries: [entry(7, 1)] });
    expect(await outcome(snap)).toBe('IO_ERROR (indefinite)');
    expect(await outcome(after)).toBe('IO_ERROR (indefinite)');
    disk.failWhen = null;
    expect(await outcome(s.save({ entries: [entry(6, 2)] }))).toBe('IO_ERROR (indefinite)');
    await s.close();
    disk.crash();
    const again = openOn(disk);
    const state = await again.load();
    // Nothing of the failed snapshot save (nor what queued behind it) reached the log.
    expect(state.snapshot).toBeNull();
    expect(state.entries.map((e) => `${e.index}/${e.term}`)).toEqual([
      '1/1',
      '2/1',
      '3/1',
      '4/1',
      '5/1',
    ]);
    await again.save({ entries: [entry(6, 2)] });
    await again.close();
  });
});

describe('FileStorage with bit rot in the WAL', () => {
  it('refuses to start on a flipped bit in any record, the last one too; never returns damaged data (400 seeds)', async () => {
    const counts = { refused: 0, cut: 0, intact: 0 };
    for (let seed = 0; seed < 400; seed++) {
      const rng = seededRandom(seed);
      const disk = new SimDisk(rng.fork('disk'));
      const s = openOn(disk, rng.pick([1100, 2048, 8192]));
      await s.load();
      const ref = new MemoryStorage();
      await ref.load();
      let before: PersistentState = ref.current();
      let last: StorageWrite | null = null;
      let maxTerm = 1;
      for (let i = 0; i < rng.intBetween(5, 40); i++) {
        const w = randomWrite(rng, ref.current(), maxTerm);
        maxTerm = Math.max(
          maxTerm,
          w.snapshot?.meta.term ?? 0,
          ...(w.entries ?? []).map((e) => e.term),
        );
        const prev = ref.current();
        if ((await outcome(ref.save(w))) !== 'ok') continue;
        await s.save(w);
        // The last record on disk belongs to the last write that had any.
        if (w.snapshot !== undefined || (w.entries ?? []).length > 0 || w.hardState !== undefined) {
          before = prev;
          last = w;
        }
      }
      await s.close();
      const full = plain(ref.current());
      // The full state, or the state one record earlier: only for a flip in zeros that end
      // the last record, which a torn write that lost them explains as well (checked below).
      const steps = last === null ? [] : [before, ...partialStates(before, last)];
      const allowed = [full, ...steps.slice(-2, -1).map(plain)].map((x) => JSON.stringify(x));
      // Rot one bit of one WAL segment.
      const [where] = disk.rot(1, '/data/n1/wal/');
      if (where === undefined) throw new Error('no rot');
      const rotten = Buffer.from(disk.readFile(where.path));
      const probe = openOn(disk);
      let state: PersistentState;
      try {
        state = await probe.load();
      } catch (err) {
        expect(err, `seed ${seed}`).toBeInstanceOf(CohortError);
        expect((err as CohortError).code, `seed ${seed}: ${String(err)}`).toBe('CORRUPTION');
        counts.refused++;
        continue;
      }
      const got = JSON.stringify(plain(state));
      expect(
        allowed.includes(got),
        `seed ${seed}: rot at ${JSON.stringify(where)} returned a wrong state`,
      ).toBe(true);
      if (got === allowed[0]) counts.intact++;
      else {
        counts.cut++;
        const start = probe.recovery.tornTail?.offset ?? -1;
        const end = start + 8 + rotten.readUInt32LE(start + 4);
        const original = Buffer.from(rotten);
        original[where.offset] = (original[where.offset] as number) ^ (1 << where.bit);
        expect(where.offset, `seed ${seed}`).toBeGreaterThanOrEqual(start);
        expect(
          original.subarray(where.offset, end).every((b) => b === 0),
          `seed ${seed}: a flip at ${where.offset} in the last record [${start}, ${end}) was cut, not refused`,
        ).toBe(true);
      }
      await probe.close();
    }
    // Flips in records are refused; flips in a preallocated segment's zeros are garbage after the log.
    expect(counts.refused).toBeGreaterThan(100);
    expect(counts.intact).toBeGreaterThan(0);
    expect(counts.cut).toBeLessThan(counts.refused / 10);
  });
});
