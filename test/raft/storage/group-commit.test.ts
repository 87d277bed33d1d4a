/**
 * Group commit: concurrent saves share one write and one fdatasync; saves that
 * arrive while a sync is in flight wait for it and form the next batch; nothing
 * resolves before its sync completes; the queue behind a slow disk is bounded.
 */
import { describe, expect, it, vi } from 'vitest';
import { CohortError } from '../../../src/lib/errors.js';
import { clusterId, nodeId } from '../../../src/lib/ids.js';
import type { LogIndex, Term } from '../../../src/lib/ids.js';
import { limits } from '../../../src/lib/limits.js';
import { seededRandom } from '../../../src/lib/random.js';
import { FileStorage } from '../../../src/raft/storage/file-storage.js';
import type { FileStorageOptions } from '../../../src/raft/storage/file-storage.js';
import { decodeEntries, decodeRecordAt, RecordType } from '../../../src/raft/storage/records.js';
import type { StorageFs } from '../../../src/raft/storage/fs.js';
import { SimDisk } from '../../../src/sim/disk.js';
import { entries, entry } from './helpers.js';

const quiet = { info: () => {}, warn: () => {}, error: () => {} };

/** The simulated disk's fs, counting writes, with each fdatasyncAsync held until released. */
function gated(disk: SimDisk): {
  fs: StorageFs;
  writes: () => number;
  release: () => void;
  held: () => number;
} {
  let writes = 0;
  const gates: (() => void)[] = [];
  const inner = disk.fs;
  const fs: StorageFs = {
    ...inner,
    write: (fd, bytes, position) => {
      writes++;
      inner.write(fd, bytes, position);
    },
    fdatasyncAsync: (fd) => {
      inner.fdatasync(fd);
      return new Promise<void>((resolve) => gates.push(resolve));
    },
  };
  return {
    fs,
    writes: () => writes,
    held: () => gates.length,
    release: () => (gates.shift() as () => void)(),
  };
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A loaded FileStorage at /n1 on `fs`: growing segments, syncs on the thread pool, unless `extra` says otherwise. */
async function open(fs: StorageFs, extra: Partial<FileStorageOptions> = {}): Promise<FileStorage> {
  const s = new FileStorage({
    dir: '/n1',
    fs,
    clusterId: clusterId('c1'),
    nodeId: nodeId('n1'),
    logger: quiet,
    preallocate: false,
    syncMode: 'thread',
    ...extra,
  });
  await s.load();
  return s;
}

describe('group commit', () => {
  it('writes concurrent saves once, syncs once, and resolves them in order only after the sync', async () => {
    const disk = new SimDisk(seededRandom(1));
    const g = gated(disk);
    const s = await open(g.fs);
    const before = g.writes();
    const order: number[] = [];
    const saves = Array.from({ length: 10 }, (_, i) =>
      s.save({ entries: [entry(i + 1, 1)] }).then(() => void order.push(i)),
    );
    await settle();
    expect(g.writes() - before).toBe(1);
    expect(g.held()).toBe(1);
    expect(order).toEqual([]);
    g.release();
    await Promise.all(saves);
    expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await s.close();
  });

  it('queues saves behind a sync in flight and flushes them as one batch when it completes', async () => {
    const disk = new SimDisk(seededRandom(2));
    const g = gated(disk);
    const s = await open(g.fs);
    const first = s.save({ entries: [entry(1, 1)] });
    await settle();
    const writesAfterFirst = g.writes();
    let laterDone = 0;
    const later = Array.from({ length: 5 }, (_, i) =>
      s.save({ entries: [entry(i + 2, 1)] }).then(() => void laterDone++),
    );
    await settle();
    expect(g.writes()).toBe(writesAfterFirst); // nothing written while the sync is in flight
    g.release();
    await first;
    await settle();
    expect(g.writes()).toBe(writesAfterFirst + 1); // the five as one write
    expect(g.held()).toBe(1);
    expect(laterDone).toBe(0);
    g.release();
    await Promise.all(later);
    const closing = s.close();
    await closing;
    const again = new FileStorage({
      dir: '/n1',
      fs: disk.fs,
      clusterId: clusterId('c1'),
      nodeId: nodeId('n1'),
      logger: quiet,
    });
    expect((await again.load()).entries.map((e) => e.index)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('answers OVERLOADED once walQueueBytesMax waits behind a slow sync, changing nothing', async () => {
    const disk = new SimDisk(seededRandom(3));
    const g = gated(disk);
    const s = await open(g.fs);
    const first = s.save({ entries: [entry(1, 1)] });
    await settle();
    const big = new Uint8Array(limits.raftEntryBytesMax);
    const queued: Promise<void>[] = [];
    let index = 2;
    let refused: unknown = null;
    for (let i = 0; i < 2 + limits.walQueueBytesMax / limits.raftEntryBytesMax; i++) {
      const p = s.save({ entries: [{ ...entry(index, 1), data: big }] });
      const outcome = await Promise.race([
        p.then(
          () => 'ok',
          (e: unknown) => e,
        ),
        settle().then(() => 'pending'),
      ]);
      if (outcome !== 'pending') {
        refused = outcome;
        break;
      }
      queued.push(p);
      index++;
    }
    expect(refused).toBeInstanceOf(CohortError);
    expect((refused as CohortError).code).toBe('OVERLOADED');
    expect((refused as CohortError).definite).toBe(true);
    g.release();
    await first;
    await settle();
    // The refused entry was not taken: the one after it would leave a gap.
    await expect(s.save({ entries: [entry(index + 1, 1)] })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    g.release();
    await Promise.all(queued);
    const last = s.save({ entries: [entry(index, 1)] });
    await settle();
    expect(g.held()).toBe(1);
    g.release();
    await last;
    await s.close();
  });

  it('close() waits for the sync in flight and the saves queued behind it', async () => {
    const disk = new SimDisk(seededRandom(4));
    const g = gated(disk);
    const s = await open(g.fs);
    const a = s.save({ entries: entries(1, 3, 1) });
    await settle();
    const b = s.save({ entries: entries(4, 5, 1) });
    let closed = false;
    const c = s.close().then(() => void (closed = true));
    await expect(s.save({ entries: [entry(6, 1)] })).rejects.toMatchObject({ code: 'CLOSED' });
    await settle();
    expect(closed).toBe(false);
    g.release();
    await a;
    await settle();
    expect(closed).toBe(false);
    g.release();
    await Promise.all([b, c]);
    expect(closed).toBe(true);
  });

  it('packs a batch of entries-only saves into one ENTRIES record, in order with other records', async () => {
    const disk = new SimDisk(seededRandom(5));
    const g = gated(disk);
    // Small segments, so the batch also has to roll to a new one part way.
    const s = await open(g.fs, { segmentBytes: 4096 });
    const saves: Promise<void>[] = [];
    for (let i = 1; i <= 40; i++) saves.push(s.save({ entries: [entry(i, 1, 100)] }));
    saves.push(s.save({ hardState: { term: 1 as Term, vote: null, commit: 40 as LogIndex } }));
    for (let i = 41; i <= 45; i++) saves.push(s.save({ entries: [entry(i, 1, 8)] }));
    // A conflicting suffix: truncate from 44 and write 44 again at term 2.
    saves.push(s.save({ entries: [entry(44, 2, 8)] }));
    await settle();
    g.release();
    await Promise.all(saves);
    await s.close();

    // Every record in the segments, in order: few ENTRIES records, each valid.
    const types: number[] = [];
    const indexes: number[] = [];
    for (const name of disk.fs.readdir('/n1/wal').sort()) {
      const fd = disk.fs.open(`/n1/wal/${name}`, 'read');
      const buf = Buffer.from(disk.fs.read(fd, 0, disk.fs.size(fd)));
      disk.fs.close(fd);
      for (let o = 4; o < buf.length;) {
        const r = decodeRecordAt(buf, o);
        if (typeof r === 'string') throw new Error(`${name}@${o}: ${r}`);
        types.push(r.type);
        if (r.type === RecordType.Entries) {
          indexes.push(...(decodeEntries(r.payload) ?? []).map((e) => e.index));
        }
        o = r.end;
      }
    }
    const entryRecords = types.filter((t) => t === RecordType.Entries).length;
    expect(entryRecords).toBeGreaterThan(1); // the roll and the hard state split them
    expect(entryRecords).toBeLessThan(10); // ...but 46 saves did not make 46 records
    expect(indexes).toEqual([...Array.from({ length: 45 }, (_, i) => i + 1), 44]);
    const again = new FileStorage({
      dir: '/n1',
      fs: disk.fs,
      clusterId: clusterId('c1'),
      nodeId: nodeId('n1'),
      logger: quiet,
    });
    const state = await again.load();
    expect(state.entries.map((e) => `${e.index}/${e.term}`).slice(-3)).toEqual([
      '42/1',
      '43/1',
      '44/2',
    ]);
    expect(state.hardState.commit).toBe(40);
  });

  it("'auto' syncs inline while syncs are fast and moves them to the thread pool once they are slow", async () => {
    const disk = new SimDisk(seededRandom(9));
    // 'auto' times syncs with performance.now(): here it reads a clock that only a
    // sync moves (by slowMs), so a busy machine (a preempted sync, a slow hop to the
    // thread pool) cannot change what the test sees.
    let nowMs = 0;
    const clock = vi.spyOn(performance, 'now').mockImplementation(() => nowMs);
    let slowMs = 0;
    const calls: string[] = [];
    const fs: StorageFs = {
      ...disk.fs,
      fdatasync: (fd) => {
        calls.push('inline');
        nowMs += slowMs;
        disk.fs.fdatasync(fd);
      },
      fdatasyncAsync: async (fd) => {
        calls.push('thread');
        nowMs += slowMs;
        return disk.fs.fdatasyncAsync(fd);
      },
    };
    try {
      const s = await open(fs, { syncMode: 'auto' });
      let index = 0;
      calls.length = 0;
      for (let i = 0; i < 20; i++) await s.save({ entries: [entry(++index, 1)] });
      expect(calls).toEqual(Array.from({ length: 20 }, () => 'inline'));
      // 4 ms syncs: the average passes 1 ms within a few, then syncs go to the pool.
      slowMs = 4;
      calls.length = 0;
      for (let i = 0; i < 20; i++) await s.save({ entries: [entry(++index, 1)] });
      const firstThread = calls.indexOf('thread');
      expect(firstThread).toBeGreaterThan(0);
      expect(firstThread).toBeLessThan(6);
      expect(calls.slice(firstThread).every((c) => c === 'thread')).toBe(true);
      // Fast again: the pool's times bring the average back down, and syncs inline again.
      slowMs = 0;
      calls.length = 0;
      for (let i = 0; i < 60; i++) await s.save({ entries: [entry(++index, 1)] });
      expect(calls.at(-1)).toBe('inline');
      await s.close();
    } finally {
      clock.mockRestore();
    }
  });
});
