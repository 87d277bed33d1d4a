/**
 * Snapshot files are written off the event loop, and the SNAPSHOT record enters
 * the WAL only once the file is durable (issue 14 item 16); a crash at any step
 * of the write loses nothing acknowledged and leaves nothing behind.
 */
import { describe, expect, it } from 'vitest';
import { clusterId, nodeId } from '../../../src/lib/ids.js';
import { seededRandom } from '../../../src/lib/random.js';
import { FileStorage } from '../../../src/raft/storage/file-storage.js';
import type { StorageFs } from '../../../src/raft/storage/fs.js';
import { applyWrite, MemoryStorage } from '../../../src/raft/storage/memory.js';
import { decodeRecordAt, RecordType } from '../../../src/raft/storage/records.js';
import type { PersistentState, StorageWrite } from '../../../src/raft/storage/storage.js';
import { SimDisk } from '../../../src/sim/disk.js';
import { entries, entry, plain, snapshot } from './helpers.js';

const quiet = { info: () => {}, warn: () => {}, error: () => {} };

/** A disk whose asynchronous steps and the storage's flushes wait in one queue the test runs. */
function setup(seed: number, fs?: (raw: StorageFs) => StorageFs) {
  const queue: (() => void)[] = [];
  const disk = new SimDisk(seededRandom(seed), { defer: (step) => void queue.push(step) });
  const open = (): FileStorage =>
    new FileStorage({
      dir: '/data/n1',
      fs: fs === undefined ? disk.fs : fs(disk.fs),
      clusterId: clusterId('c1'),
      nodeId: nodeId('n1'),
      logger: quiet,
      segmentBytes: 4096,
      syncMode: 'thread',
      schedule: (fn) => void queue.push(fn),
    });
  /** Runs queued work (and what it queues) until none is left. */
  const drain = async (): Promise<void> => {
    for (let i = 0; i < 10_000; i++) {
      const next = queue.shift();
      if (next === undefined) {
        await Promise.resolve();
        await Promise.resolve();
        if (queue.length === 0) return;
        continue;
      }
      next();
      await Promise.resolve();
    }
    throw new Error('the queue never drained');
  };
  return { disk, queue, open, drain };
}

/** Types of the records in the WAL segment files as they are now. */
function walRecords(disk: SimDisk): number[] {
  const types: number[] = [];
  for (const f of disk.allFiles().filter((p) => /\/wal\/[0-9a-f]{16}\.wal$/.test(p))) {
    const bytes = Buffer.from(disk.readFile(f));
    for (let o = 4; ;) {
      const r = decodeRecordAt(bytes, o);
      if (typeof r === 'string') break;
      types.push(r.type);
      o = r.end;
    }
  }
  return types;
}

describe('FileStorage snapshot files', () => {
  it('are written off the event loop, and logged only once durable', async () => {
    const log: string[] = [];
    const { disk, open, drain } = setup(1, (raw) => ({
      ...raw,
      writeFileAsync: (path, chunks) => {
        log.push(`writeFileAsync ${path}`);
        return raw.writeFileAsync(path, chunks).then(() => void log.push('file synced'));
      },
      rename: (from, to) => {
        log.push(`rename ${to}`);
        raw.rename(from, to);
      },
      syncDirAsync: (dir) => {
        log.push(`syncDirAsync ${dir}`);
        return raw.syncDirAsync(dir).then(() => void log.push('dir synced'));
      },
      write: (fd, bytes, position) => {
        log.push('wal write');
        raw.write(fd, bytes, position);
      },
    }));
    const s = open();
    const loading = s.load();
    await drain();
    await loading;
    const before = s.save({ entries: entries(1, 40, 1, 50) });
    await drain();
    await before;
    log.length = 0;
    let acked = false;
    const p = s.save({ snapshot: snapshot(30, 1, 20_000) }).then(() => {
      acked = true;
    });
    // save() returned without writing the file: that happens in steps, off this turn.
    expect(disk.allFiles().filter((f) => f.includes('/snap/'))).toEqual([]);
    expect(walRecords(disk)).not.toContain(RecordType.Snapshot);
    await drain();
    await p;
    expect(acked).toBe(true);
    // Up to the first WAL write, leaving out the segment roll's rename of the spare.
    const upToWal = log.slice(0, log.indexOf('wal write') + 1);
    const snapOnly = upToWal.filter((l) => !l.startsWith('rename') || l.includes('/snap/'));
    expect(snapOnly.map((l) => l.replace(/ \/.*/, ''))).toEqual([
      'writeFileAsync',
      'file synced',
      'rename',
      'syncDirAsync',
      'dir synced',
      'wal write',
    ]);
    expect(walRecords(disk)).toContain(RecordType.Snapshot);
    const closing = s.close();
    await drain();
    await closing;
  });

  it('prepared ahead (prepareSnapshot), are not written again: the save that logs one waits for no file', async () => {
    let fileWrites = 0;
    let holdFiles = false;
    const heldFiles: (() => void)[] = [];
    const { disk, open, drain } = setup(3, (raw) => ({
      ...raw,
      writeFileAsync: (path, chunks) => {
        const go = (): Promise<void> => raw.writeFileAsync(path, chunks);
        if (!path.includes('/snap/')) return go(); // the manifest
        fileWrites++;
        if (!holdFiles) return go();
        return new Promise<void>((resolve) => heldFiles.push(resolve)).then(go);
      },
    }));
    const s = open();
    const loading = s.load();
    await drain();
    await loading;
    const first = s.save({ entries: entries(1, 40, 1, 50) });
    await drain();
    await first;
    const snap = snapshot(30, 1, 20_000);
    const prepared = s.prepareSnapshot(snap);
    await drain();
    await prepared;
    expect(fileWrites).toBe(1);
    // Not logged yet: a restart now would not use it (and removes the file).
    expect(walRecords(disk)).not.toContain(RecordType.Snapshot);
    // From here a snapshot file write would wait forever: the save must not need one.
    holdFiles = true;
    let acked = 0;
    const saves = [
      s.save({ snapshot: snap }).then(() => void acked++),
      s.save({ entries: [entry(41, 1, 30)] }).then(() => void acked++),
    ];
    await drain();
    await Promise.all(saves);
    expect(acked).toBe(2);
    expect(fileWrites).toBe(1);
    expect(walRecords(disk)).toContain(RecordType.Snapshot);
    const closing = s.close();
    await drain();
    await closing;
    const again = open();
    const loaded = again.load();
    await drain();
    const state = await loaded;
    expect(state.snapshot?.meta.index).toBe(30);
    expect(Buffer.from(state.snapshot?.data ?? []).equals(Buffer.from(snap.data))).toBe(true);
    expect(state.entries.map((e) => e.index)).toEqual(entries(31, 41, 1).map((e) => e.index));
    await again.close();
  });

  it('prepared but never logged, are removed on the next load', async () => {
    const { disk, open, drain } = setup(4);
    const s = open();
    const loading = s.load();
    await drain();
    await loading;
    const first = s.save({ entries: entries(1, 20, 1, 50) });
    await drain();
    await first;
    const prepared = s.prepareSnapshot(snapshot(10, 1, 5000));
    await drain();
    await prepared;
    expect(disk.allFiles().filter((f) => f.endsWith('.snap'))).toHaveLength(1);
    const closing = s.close();
    await drain();
    await closing;
    const again = open();
    const loaded = again.load();
    await drain();
    const state = await loaded;
    expect(state.snapshot).toBeNull();
    expect(state.entries).toHaveLength(20);
    expect(disk.allFiles().filter((f) => f.includes('/snap/'))).toEqual([]);
    await again.close();
  });

  it('survive a crash at any step of the write: nothing acknowledged is lost, nothing is left behind (300 seeds)', async () => {
    const seen = new Set<string>();
    for (let seed = 1; seed <= 300; seed++) {
      const rng = seededRandom(seed);
      const { disk, queue, open, drain } = setup(seed);
      const s = open();
      const loading = s.load();
      await drain();
      await loading;
      const n = rng.intBetween(5, 60);
      const first: StorageWrite = { entries: entries(1, n, 1, rng.intBetween(0, 200)) };
      const ref = new MemoryStorage();
      await ref.load();
      await ref.save(first);
      const saved = s.save(first);
      await drain();
      await saved;
      const base: PersistentState = ref.current();
      const snap: StorageWrite = {
        snapshot: snapshot(rng.intBetween(1, n), 1, rng.intBetween(0, 5000)),
      };
      const next: StorageWrite = { entries: [entry(n + 1, 1, 30)] };
      let acked = 0;
      void s.save(snap).then(
        () => void (acked = Math.max(acked, 1)),
        () => {},
      );
      void s.save(next).then(
        () => void (acked = 2),
        () => {},
      );
      // Run a random number of queued steps, then the power fails.
      const steps = rng.int(14);
      for (let i = 0; i < steps && queue.length > 0; i++) {
        (queue.shift() as () => void)();
        for (let k = 0; k < 6; k++) await Promise.resolve();
      }
      const snapFiles = disk.allFiles().filter((f) => f.includes('/snap/'));
      const stage =
        acked > 0
          ? 'acknowledged'
          : snapFiles.some((f) => f.endsWith('.snap'))
            ? 'renamed'
            : snapFiles.some((f) => f.endsWith('.tmp'))
              ? 'writing'
              : 'not started';
      seen.add(stage);
      disk.crash();
      const again = open();
      const loaded = again.load();
      await drain();
      const got = JSON.stringify(plain(await loaded));
      const afterSnap = applyWrite(base, snap);
      const allowed = [base, afterSnap, applyWrite(afterSnap, next)]
        .slice(acked)
        .map((x) => JSON.stringify(plain(x)));
      expect(allowed, `seed ${seed} (${stage}, acked ${acked})`).toContain(got);
      // Only snapshot files the log names remain: no temp file, no unnamed snapshot.
      const left = disk.allFiles().filter((f) => f.includes('/snap/'));
      const state = JSON.parse(got) as { snapshot: unknown };
      expect(left.length, `seed ${seed}: ${left.join(', ')}`).toBe(state.snapshot === null ? 0 : 1);
      await again.close();
    }
    expect([...seen].sort()).toEqual(['acknowledged', 'not started', 'renamed', 'writing']);
  });
});
