/**
 * Recovery at every truncation point of a real log, and refusal (or repair) of
 * corruption in the middle: the "done when" tests of issue 5.
 */
import {
  copyFileSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CohortError } from '../../../src/lib/errors.js';
import { clusterId, nodeId } from '../../../src/lib/ids.js';
import { FileStorage } from '../../../src/raft/storage/file-storage.js';
import type { FileStorageOptions, StorageLogger } from '../../../src/raft/storage/file-storage.js';
import { MemoryStorage } from '../../../src/raft/storage/memory.js';
import {
  decodeRecordAt,
  encodeRecord,
  packer,
  RecordType,
} from '../../../src/raft/storage/records.js';
import type { StorageWrite } from '../../../src/raft/storage/storage.js';
import { entry, hs, plain, snapshot } from './helpers.js';

const quiet: StorageLogger = { info: () => {}, warn: () => {}, error: () => {} };

// Several tests here recover a real log hundreds of times (every cut, every flipped bit),
// each recovery syncing what it read: ~20 s on a quiet machine, minutes on a loaded one.
vi.setConfig({ testTimeout: 600_000 });
const ids = { clusterId: clusterId('c1'), nodeId: nodeId('n1') };

/** Growing segments unless asked (these tests cut and flip the bytes of segments as written; preallocate.test.ts covers the zeros). */
function open(dir: string, extra: Partial<FileStorageOptions> = {}): FileStorage {
  return new FileStorage({ dir, ...ids, logger: quiet, preallocate: false, ...extra });
}

async function loadError(storage: FileStorage): Promise<CohortError> {
  try {
    await storage.load();
  } catch (err) {
    expect(err).toBeInstanceOf(CohortError);
    return err as CohortError;
  }
  throw new Error('load() succeeded on a damaged log');
}

/** One record per write: an entry append (sizes vary), an overwrite, or a hard state. */
function writesFor(n: number): StorageWrite[] {
  const out: StorageWrite[] = [];
  let last = 0;
  for (let i = 0; i < n; i++) {
    if (i % 5 === 3) out.push({ hardState: hs(1 + (i >> 3), i % 2 === 0 ? 'n2' : null, last) });
    else {
      last++;
      out.push({ entries: [entry(last, 1 + (i >> 3), (i * 37) % 120)] });
    }
  }
  return out;
}

describe('recovery of a real log', () => {
  let root: string;
  let walFile: string;
  /** ends[k]: file size after write k (ends[-1] is the size before any write). */
  const ends: number[] = [];
  /** states[k]: the reference state after writes 0..k-1. */
  const states: unknown[] = [];
  const writes = writesFor(24);

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'cohort-recovery-'));
    const dir = join(root, 'orig');
    const s = open(dir);
    await s.load();
    const ref = new MemoryStorage();
    await ref.load();
    walFile = join(dir, 'wal', readdirSync(join(dir, 'wal'))[0] as string);
    ends.push(statSync(walFile).size);
    states.push(plain(ref.current()));
    for (const w of writes) {
      await s.save(w);
      await ref.save(w);
      ends.push(statSync(walFile).size);
      states.push(plain(ref.current()));
    }
    await s.close();
  });

  afterAll(() => rmSync(root, { recursive: true, force: true }));

  /** A copy of the original node directory whose segment is replaced by `bytes`. */
  let copies = 0;
  function copyWith(bytes: Uint8Array): string {
    const dir = join(root, `copy${copies++}`);
    mkdirSync(join(dir, 'wal'), { recursive: true });
    writeFileSync(join(dir, 'wal', walFile.split('/').pop() as string), bytes);
    return dir;
  }

  it('recovers exactly the longest prefix of whole records at every truncation point of the last records', async () => {
    const original = readFileSync(walFile);
    const from = ends[writes.length - 5] as number;
    expect(from).toBeLessThan(original.length);
    for (let cut = from; cut <= original.length; cut++) {
      const dir = copyWith(original.subarray(0, cut));
      const s = open(dir);
      const state = plain(await s.load());
      let k = 0;
      while (k + 1 < ends.length && (ends[k + 1] as number) <= cut) k++;
      expect(state, `cut at ${cut}`).toEqual(states[k]);
      const whole = ends.includes(cut);
      expect(s.recovery.tornTail === null, `cut at ${cut}`).toBe(whole);
      if (!whole) expect(s.recovery.tornTail?.offset).toBe(ends[k]);
      if (cut % 17 === 0) {
        // The log stays appendable after the cut, and the cut is durable.
        const next = entry((states[k] as { entries: string[] }).entries.length + 1, 9, 10);
        await s.save({ entries: [next] });
        await s.close();
        const again = open(dir);
        const st = (await again.load()) as { entries: readonly { index: number }[] };
        expect(st.entries[st.entries.length - 1]?.index).toBe(next.index);
        expect(again.recovery.tornTail).toBeNull();
        await again.close();
      } else {
        await s.close();
      }
      rmSync(dir, { recursive: true });
    }
  });

  it('refuses a single-bit flip in any byte of a middle record, naming the file and offset, and repairs it on request', async () => {
    const original = readFileSync(walFile);
    for (const k of [2, 9, 15]) {
      const start = ends[k] as number;
      const end = ends[k + 1] as number;
      for (let at = start; at < end; at++) {
        const bytes = Buffer.from(original);
        bytes[at] = (bytes[at] as number) ^ (1 << (at % 8));
        const dir = copyWith(bytes);
        const err = await loadError(open(dir));
        expect(err.code).toBe('CORRUPTION');
        expect(err.details.offset, `flip at ${at}`).toBe(start);
        expect(String(err.details.file)).toMatch(/^wal\/0+1\.wal$/);
        expect(err.message).toContain(`offset ${start}`);

        if (at % 7 === 0 || at === start) {
          const repaired = open(dir, { repair: true });
          expect(plain(await repaired.load())).toEqual(states[k]);
          expect(repaired.recovery.repaired).toMatchObject({
            offset: start,
            bytesDropped: original.length - start,
          });
          await repaired.close();
          const again = open(dir);
          expect(plain(await again.load())).toEqual(states[k]);
          await again.close();
        }
        rmSync(dir, { recursive: true });
      }
    }
  });

  it('refuses a single-bit flip anywhere in the last record (bit rot, not a torn write), unless it lies in zeros that end the record', async () => {
    const original = readFileSync(walFile);
    const start = ends[writes.length - 1] as number;
    const end = ends[writes.length] as number;
    expect(end).toBe(original.length);
    let refused = 0;
    let cut = 0;
    for (let at = start; at < end; at++) {
      for (let bit = 0; bit < 8; bit += at % 2 === 0 ? 1 : 3) {
        const bytes = Buffer.from(original);
        bytes[at] = (bytes[at] as number) ^ (1 << bit);
        const dir = copyWith(bytes);
        const s = open(dir);
        // A tear that lost the record's trailing zeros looks the same: a missing 0x04 is one bit from 0x00.
        if (original.subarray(at, end).every((b) => b === 0)) {
          expect(plain(await s.load()), `flip at ${at}`).toEqual(states[writes.length - 1]);
          expect(s.recovery.tornTail?.offset).toBe(start);
          await s.close();
          cut++;
        } else {
          const err = await loadError(s);
          expect(err.code, `flip at ${at} bit ${bit}`).toBe('CORRUPTION');
          expect(err.details.offset).toBe(start);
          expect(err.message).toContain('not a torn write');
          expect(err.message).toContain('--repair');
          refused++;
        }
        rmSync(dir, { recursive: true });
      }
    }
    expect(refused).toBeGreaterThan(50);
    expect(cut).toBeLessThan(refused / 4);
  });

  it('refuses a flipped bit in the segment header', async () => {
    const original = readFileSync(walFile);
    for (const at of [0, 5, 12]) {
      const bytes = Buffer.from(original);
      bytes[at] = (bytes[at] as number) ^ 0x10;
      const err = await loadError(open(copyWith(bytes)));
      expect(err.code).toBe('CORRUPTION');
    }
  });

  it('refuses a segment of another format version', async () => {
    const original = readFileSync(walFile);
    const header = decodeRecordAt(original, 4);
    if (typeof header === 'string') throw new Error(header);
    const fields = packer.unpack(header.payload) as Record<string, unknown>;
    const newer = encodeRecord(RecordType.Header, packer.pack({ ...fields, v: 2 }));
    const bytes = Buffer.concat([original.subarray(0, 4), newer, original.subarray(header.end)]);
    const err = await loadError(open(copyWith(bytes)));
    expect(err.code).toBe('FAILED_PRECONDITION');
    expect(err.message).toContain('format version 2');
  });

  it('refuses a log of another cluster or node', async () => {
    const dir = join(root, 'orig');
    for (const other of [
      { clusterId: clusterId('c2'), nodeId: nodeId('n1') },
      { clusterId: clusterId('c1'), nodeId: nodeId('n9') },
    ]) {
      const err = await loadError(new FileStorage({ dir, ...other, logger: quiet }));
      expect(err.code).toBe('FAILED_PRECONDITION');
      expect(err.message).toContain('belongs to cluster c1 node n1');
    }
  });
});

describe('segments and snapshots', () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'cohort-segments-'));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('rolls segments, deletes those covered by the oldest retained snapshot, and keeps two snapshots', async () => {
    const dir = join(root, 'roll');
    const s = open(dir, { segmentBytes: 2048 });
    await s.load();
    const ref = new MemoryStorage();
    await ref.load();
    const apply = async (w: StorageWrite): Promise<void> => {
      await s.save(w);
      await ref.save(w);
    };
    for (let i = 1; i <= 200; i++) await apply({ entries: [entry(i, 1, 100)] });
    const before = readdirSync(join(dir, 'wal')).length;
    expect(before).toBeGreaterThan(8);
    await apply({ snapshot: snapshot(100, 1) });
    // One snapshot retained: segments wholly at or below 100 go.
    const afterFirst = readdirSync(join(dir, 'wal')).length;
    expect(afterFirst).toBeLessThan(before);
    await apply({ snapshot: snapshot(150, 1) });
    await apply({ snapshot: snapshot(190, 1) });
    const snapPrefixes = readdirSync(join(dir, 'snap'))
      .map((n) => n.slice(0, 33))
      .sort();
    expect(snapPrefixes).toEqual([
      '0000000000000096-0000000000000001',
      '00000000000000be-0000000000000001',
    ]);
    await s.close();
    const again = open(dir, { segmentBytes: 2048 });
    expect(plain(await again.load())).toEqual(plain(ref.current()));
    await again.close();
  });

  it('falls back to the previous snapshot when the newest is unreadable, and reports it', async () => {
    const dir = join(root, 'fallback');
    const s = open(dir, { segmentBytes: 2048 });
    await s.load();
    for (let i = 1; i <= 60; i++) await s.save({ entries: [entry(i, 2, 50)] });
    await s.save({ snapshot: snapshot(20, 2), hardState: hs(2, 'n1', 55) });
    await s.save({ snapshot: snapshot(50, 2) });
    await s.close();
    const newestName = readdirSync(join(dir, 'snap')).find((n) =>
      n.startsWith('0000000000000032-0000000000000002-'),
    ) as string;
    const newest = join(dir, 'snap', newestName);
    const bytes = readFileSync(newest);
    bytes[bytes.length - 3] = (bytes[bytes.length - 3] as number) ^ 1;
    writeFileSync(newest, bytes);
    const told: object[] = [];
    const logger: StorageLogger = { ...quiet, error: (o) => void told.push(o) };
    const again = open(dir, { segmentBytes: 2048, logger });
    const state = await again.load();
    expect(state.snapshot?.meta.index).toBe(20);
    expect(state.entries.map((e) => e.index)).toEqual(Array.from({ length: 40 }, (_, i) => 21 + i));
    expect(state.hardState.commit).toBe(55);
    expect(again.recovery.unreadableSnapshots).toEqual([
      { file: `snap/${newestName}`, reason: 'data checksum mismatch' },
    ]);
    expect(told).toEqual([{ file: `snap/${newestName}`, reason: 'data checksum mismatch' }]);
    await again.close();
  });

  it('refuses to start when the only snapshot is unreadable and the log no longer reaches back', async () => {
    const dir = join(root, 'lost');
    const s = open(dir, { segmentBytes: 2048 });
    await s.load();
    for (let i = 1; i <= 80; i++) await s.save({ entries: [entry(i, 1, 100)] });
    await s.save({ snapshot: snapshot(70, 1) });
    await s.close();
    const name = readdirSync(join(dir, 'snap'))[0] as string;
    const bytes = readFileSync(join(dir, 'snap', name));
    bytes[10] = (bytes[10] as number) ^ 2;
    writeFileSync(join(dir, 'snap', name), bytes);
    const err = await loadError(open(dir, { segmentBytes: 2048 }));
    expect(err.code).toBe('CORRUPTION');
    expect(err.message).toContain('no usable snapshot');
    expect(err.message).toContain(name);
  });

  it('removes a snapshot file the log does not name (a save interrupted before its record)', async () => {
    const dir = join(root, 'orphan');
    const s = open(dir);
    await s.load();
    await s.save({ entries: [entry(1, 1)] });
    await s.save({ snapshot: snapshot(1, 1) });
    await s.close();
    const namedFile = readdirSync(join(dir, 'snap'))[0] as string;
    const named = join(dir, 'snap', namedFile);
    copyFileSync(named, join(dir, 'snap', '0000000000000009-0000000000000001-00000000.snap'));
    writeFileSync(
      join(dir, 'snap', '0000000000000009-0000000000000001-00000000.snap.tmp'),
      'partial',
    );
    const again = open(dir);
    const state = await again.load();
    expect(state.snapshot?.meta.index).toBe(1);
    expect(again.recovery.removedFiles.sort()).toEqual([
      'snap/0000000000000009-0000000000000001-00000000.snap',
      'snap/0000000000000009-0000000000000001-00000000.snap.tmp',
    ]);
    expect(readdirSync(join(dir, 'snap'))).toEqual([namedFile]);
    await again.close();
  });

  it('refuses a missing middle segment, and corruption in a segment that is not the last', async () => {
    const dir = join(root, 'gap');
    const s = open(dir, { segmentBytes: 2048 });
    await s.load();
    for (let i = 1; i <= 100; i++) await s.save({ entries: [entry(i, 1, 100)] });
    await s.close();
    const names = readdirSync(join(dir, 'wal')).sort();
    expect(names.length).toBeGreaterThan(3);
    // Corrupt the last record of the first segment: not a torn tail, since later segments exist.
    const first = join(dir, 'wal', names[0] as string);
    const bytes = readFileSync(first);
    bytes[bytes.length - 2] = (bytes[bytes.length - 2] as number) ^ 4;
    writeFileSync(first, bytes);
    let err = await loadError(open(dir, { segmentBytes: 2048 }));
    expect(err.code).toBe('CORRUPTION');
    expect(err.details.file).toBe(`wal/${names[0]}`);
    // With repair, the log is cut there and every later segment goes; what remains loads cleanly.
    const copy = join(root, 'gap-repair');
    cpSync(dir, copy, { recursive: true });
    const repaired = open(copy, { segmentBytes: 2048, repair: true });
    const state = await repaired.load();
    expect(repaired.recovery.repaired?.file).toBe(`wal/${names[0]}`);
    expect(repaired.recovery.repaired?.segmentsRemoved).toEqual(names.slice(1));
    expect(state.entries.length).toBeGreaterThan(0);
    state.entries.forEach((e, k) => expect(e.index).toBe(k + 1));
    await repaired.close();
    expect(readdirSync(join(copy, 'wal'))).toEqual([names[0]]);
    bytes[bytes.length - 2] = (bytes[bytes.length - 2] as number) ^ 4;
    writeFileSync(first, bytes);
    rmSync(join(dir, 'wal', names[1] as string));
    err = await loadError(open(dir, { segmentBytes: 2048 }));
    expect(err.code).toBe('CORRUPTION');
    expect(err.message).toContain(`${names[1]} is missing`);
  });

  it('refuses to start when the newest segments, the only segment, or all of wal/ are gone (the manifest names the newest)', async () => {
    const dir = join(root, 'newest');
    const s = open(dir, { segmentBytes: 2048 });
    await s.load();
    for (let i = 1; i <= 60; i++) await s.save({ entries: [entry(i, 3, 100)] });
    await s.save({ hardState: hs(3, 'n2', 60) });
    await s.close();
    const names = readdirSync(join(dir, 'wal')).sort();
    expect(names.length).toBeGreaterThan(3);
    const newest = names[names.length - 1] as string;
    const cases: [string, (d: string) => void][] = [
      ['the newest segment', (d) => rmSync(join(d, 'wal', newest))],
      ['the two newest', (d) => names.slice(-2).forEach((n) => rmSync(join(d, 'wal', n)))],
      ['every segment', (d) => names.forEach((n) => rmSync(join(d, 'wal', n)))],
      ['wal/', (d) => rmSync(join(d, 'wal'), { recursive: true })],
    ];
    for (const [what, damage] of cases) {
      const copy = join(root, `newest-${what.replace(/\W/g, '')}`);
      cpSync(dir, copy, { recursive: true });
      damage(copy);
      const err = await loadError(open(copy, { segmentBytes: 2048 }));
      expect(err.code, what).toBe('CORRUPTION');
      expect(err.message, what).toContain(`wal/${newest} is missing`);
      expect(err.message, what).toContain('term and vote');
      // Nothing was touched: the same refusal again.
      expect((await loadError(open(copy, { segmentBytes: 2048 }))).message).toBe(err.message);
    }
    // Repair goes on from what is left, says so, and the next start is clean.
    const copy = join(root, 'newest-repair');
    cpSync(dir, copy, { recursive: true });
    rmSync(join(copy, 'wal', newest));
    const repaired = open(copy, { segmentBytes: 2048, repair: true });
    const state = await repaired.load();
    expect(repaired.recovery.repaired?.file).toBe(`wal/${newest}`);
    expect(state.entries.length).toBeLessThan(60);
    await repaired.close();
    const again = open(copy, { segmentBytes: 2048 });
    expect(plain(await again.load())).toEqual(plain(state));
    await again.close();
  });

  it('refuses to start with snapshots but no WAL at all', async () => {
    const dir = join(root, 'snaps-only');
    const s = open(dir);
    await s.load();
    await s.save({ entries: [entry(1, 1), entry(2, 1)] });
    await s.save({ snapshot: snapshot(2, 1) });
    await s.close();
    rmSync(join(dir, 'wal'), { recursive: true });
    rmSync(join(dir, 'manifest'));
    const err = await loadError(open(dir));
    expect(err.code).toBe('CORRUPTION');
    expect(err.message).toContain('the WAL is gone but snapshot files remain');
  });
});
