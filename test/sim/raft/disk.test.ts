import { describe, expect, it } from 'vitest';
import type { LogIndex, Term } from '../../../src/lib/ids.js';
import { seededRandom } from '../../../src/lib/random.js';
import type { Entry } from '../../../src/raft/core/types.js';
import { RaftDisk } from '../../../src/sim/raft/disk.js';

function entry(index: number, term: number): Entry {
  return {
    index: index as LogIndex,
    term: term as Term,
    kind: 'normal',
    data: new Uint8Array([index]),
  };
}

function entries(from: number, to: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, term));
  return out;
}

const hs = (term: number, commit: number) => ({
  term: term as Term,
  vote: null,
  commit: commit as LogIndex,
});

describe('RaftDisk (the simulator storage model)', () => {
  it('keeps what was synced across a crash, whatever the crash draws', () => {
    for (let seed = 1; seed <= 50; seed++) {
      const disk = new RaftDisk();
      disk.write({ entries: entries(1, 3, 1), hardState: hs(1, 2) });
      disk.sync();
      disk.write({ entries: entries(4, 6, 1), hardState: hs(1, 5) });
      disk.crash(seededRandom(seed));
      expect(disk.lastIndex()).toBeGreaterThanOrEqual(3);
      expect(disk.hardState.commit).toBeGreaterThanOrEqual(2);
      expect(disk.unsynced).toBe(0);
    }
  });

  it('a crash keeps, tears or loses unsynced writes — every outcome occurs', () => {
    const seen = new Set<string>();
    for (let seed = 1; seed <= 200; seed++) {
      const disk = new RaftDisk();
      disk.write({ entries: entries(1, 2, 1), hardState: hs(1, 1) });
      disk.sync();
      disk.write({ entries: entries(3, 6, 2), hardState: hs(2, 4) });
      const r = disk.crash(seededRandom(seed));
      const last = disk.lastIndex();
      if (r.kept === 1) {
        expect(last).toBe(6);
        expect(disk.hardState.commit).toBe(4);
        seen.add('kept');
      } else if (r.torn === 1) {
        // A torn write leaves a prefix of its entries and never its hard state.
        expect(last).toBeGreaterThanOrEqual(2);
        expect(last).toBeLessThanOrEqual(6);
        expect(disk.hardState.commit).toBe(1);
        seen.add('torn');
      } else {
        expect(r.lost).toBe(1);
        expect(last).toBe(2);
        seen.add('lost');
      }
    }
    expect([...seen].sort()).toEqual(['kept', 'lost', 'torn']);
  });

  it('refuses an invalid write (a gap in the log) and changes nothing', () => {
    const disk = new RaftDisk();
    disk.write({ entries: entries(1, 2, 1) });
    expect(() => disk.write({ entries: entries(5, 6, 1) })).toThrow(/gap/);
    disk.sync();
    expect(disk.lastIndex()).toBe(2);
  });

  it('replaces a conflicting suffix (log repair) and compacts under a snapshot', () => {
    const disk = new RaftDisk();
    disk.write({ entries: entries(1, 5, 1) });
    disk.write({ entries: entries(4, 4, 2) });
    disk.sync();
    expect(disk.lastIndex()).toBe(4);
    expect(disk.termAt(4)).toBe(2);
    disk.write({
      snapshot: {
        meta: { index: 3 as LogIndex, term: 1 as Term, config: { voters: [], learners: [] } },
        data: new Uint8Array(),
      },
    });
    disk.sync();
    expect(disk.durable.entries.map((e) => e.index)).toEqual([4]);
    expect(disk.termAt(3)).toBe(1);
    expect(disk.termAt(2)).toBeUndefined();
  });

  it('syncOldest makes writes durable one at a time, in order; reset reports recovery as a durable change', () => {
    const changes: number[] = [];
    const disk = new RaftDisk((_before, after) => changes.push(after.hardState.commit));
    disk.write({ entries: entries(1, 2, 1), hardState: hs(1, 1) });
    disk.write({ entries: entries(3, 3, 1), hardState: hs(1, 3) });
    disk.syncOldest();
    expect(disk.lastIndex()).toBe(2);
    expect(disk.unsynced).toBe(1);
    disk.syncOldest();
    expect(disk.lastIndex()).toBe(3);
    disk.reset({ hardState: hs(1, 2), snapshot: null, entries: entries(1, 2, 1) });
    expect(disk.lastIndex()).toBe(2);
    expect(changes).toEqual([1, 3, 2]);
  });
});
