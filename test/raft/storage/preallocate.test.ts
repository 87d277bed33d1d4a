/**
 * Preallocated WAL segments on the real file system: the spare is zero-filled
 * in the background, a fresh log rolls into it early, a finished segment is
 * trimmed, and recovery treats a segment's trailing zeros as its end. Torn
 * writes into the zeros recover exactly the longest prefix of whole records;
 * garbage in the zeros of a segment that is not the last is corruption.
 */
import {
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
  cpSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CohortError } from '../../../src/lib/errors.js';
import { clusterId, nodeId } from '../../../src/lib/ids.js';
import { limits } from '../../../src/lib/limits.js';
import { FileStorage } from '../../../src/raft/storage/file-storage.js';
import type { FileStorageOptions, StorageLogger } from '../../../src/raft/storage/file-storage.js';
import { MemoryStorage } from '../../../src/raft/storage/memory.js';
import { decodeRecordAt } from '../../../src/raft/storage/records.js';
import type { StorageWrite } from '../../../src/raft/storage/storage.js';
import { conditionWaitMs } from '../../harness/wait.js';
import { entry, hs, plain } from './helpers.js';

const quiet: StorageLogger = { info: () => {}, warn: () => {}, error: () => {} };
const ids = { clusterId: clusterId('c1'), nodeId: nodeId('n1') };
const SEGMENT = 64 * 1024;

function open(dir: string, extra: Partial<FileStorageOptions> = {}): FileStorage {
  return new FileStorage({ dir, ...ids, logger: quiet, segmentBytes: SEGMENT, ...extra });
}

const walFiles = (dir: string): string[] =>
  readdirSync(join(dir, 'wal'))
    .filter((n) => n.endsWith('.wal'))
    .sort();

async function until(what: string, cond: () => boolean): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > conditionWaitMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Offsets where the records of a segment end, up to its zeros. */
function recordEnds(bytes: Buffer): number[] {
  const ends: number[] = [];
  let o = 4;
  for (;;) {
    const r = decodeRecordAt(bytes, o);
    if (typeof r === 'string') break;
    o = r.end;
    ends.push(o);
  }
  return ends;
}

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'cohort-prealloc-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('preallocated segments', () => {
  it('rolls a fresh log into the zero-filled spare, trims finished segments, and reopens with the spare kept', async () => {
    const dir = join(root, 'roll');
    const s = open(dir);
    await s.load();
    const spare = join(dir, 'wal', 'spare.seg');
    await until('the spare', () => readdirSync(join(dir, 'wal')).includes('spare.seg'));
    expect(statSync(spare).size).toBe(SEGMENT);
    expect(readFileSync(spare).every((b) => b === 0)).toBe(true);

    let index = 0;
    // The first write after the spare is ready rolls to it (segment 1 grew as written).
    await s.save({ entries: [entry(++index, 1, 100)] });
    await s.save({ entries: [entry(++index, 1, 100)] });
    let names = walFiles(dir);
    expect(names).toHaveLength(2);
    const [first, second] = names.map((n) => join(dir, 'wal', n)) as [string, string];
    expect(statSync(first).size).toBeLessThan(SEGMENT);
    expect(statSync(second).size).toBe(SEGMENT);

    // Fill segment 2 until it rolls again: it is trimmed to its records, segment 3 is the next spare.
    await until('the next spare', () => readdirSync(join(dir, 'wal')).includes('spare.seg'));
    while (walFiles(dir).length < 3) await s.save({ entries: [entry(++index, 1, 1000)] });
    names = walFiles(dir);
    const secondBytes = readFileSync(second);
    expect(secondBytes.length).toBeLessThan(SEGMENT);
    expect(recordEnds(secondBytes).pop()).toBe(secondBytes.length);
    expect(statSync(join(dir, 'wal', names[2] as string)).size).toBe(SEGMENT);
    await until('a third spare', () => readdirSync(join(dir, 'wal')).includes('spare.seg'));
    await s.close();

    const again = open(dir);
    const state = await again.load();
    expect(state.entries.map((e) => e.index)).toEqual(
      Array.from({ length: index }, (_, i) => i + 1),
    );
    expect(again.recovery.tornTail).toBeNull();
    expect(again.recovery.removedFiles).toEqual([]);
    expect(readdirSync(join(dir, 'wal'))).toContain('spare.seg');
    // Appends go on after the last record, inside the preallocated file.
    await again.save({ entries: [entry(++index, 1, 10)] });
    await again.close();
    expect(statSync(join(dir, 'wal', names[2] as string)).size).toBe(SEGMENT);
    const third = open(dir);
    expect((await third.load()).entries.at(-1)?.index).toBe(index);
    await third.close();
  });

  it('close() stops a spare being filled and removes it', async () => {
    const dir = join(root, 'abort');
    // Full-size segments: filling the spare takes long enough to be cut short.
    const s = open(dir, { segmentBytes: limits.walSegmentBytesMax });
    await s.load();
    await s.save({ entries: [entry(1, 1)] });
    await s.close();
    expect(readdirSync(join(dir, 'wal')).filter((n) => n.startsWith('spare'))).toEqual([]);
    const again = open(dir, { segmentBytes: limits.walSegmentBytesMax, preallocate: false });
    expect((await again.load()).entries).toHaveLength(1);
    expect(again.recovery.removedFiles).toEqual([]);
    await again.close();
  });

  it('removes a half-filled spare, and a spare that is not all zeros or not whole', async () => {
    for (const [name, bytes] of [
      ['spare.tmp', Buffer.alloc(100)],
      ['spare.seg', Buffer.alloc(SEGMENT - 1)],
      ['spare.seg', Buffer.concat([Buffer.alloc(SEGMENT - 1), Buffer.from([1])])],
    ] as const) {
      const dir = join(root, `spare-${name}-${bytes.length}-${bytes.at(-1)}`);
      const s = open(dir, { preallocate: false });
      await s.load();
      await s.save({ entries: [entry(1, 1)] });
      await s.close();
      writeFileSync(join(dir, 'wal', name), bytes);
      const again = open(dir, { preallocate: false });
      expect((await again.load()).entries).toHaveLength(1);
      expect(again.recovery.removedFiles).toEqual([`wal/${name}`]);
      await again.close();
      expect(readdirSync(join(dir, 'wal'))).toEqual(['0000000000000001.wal']);
    }
  });

  describe('recovery in a preallocated segment', () => {
    let dir: string;
    let segment: string;
    /** ends[k]: where the record of write k ends; states[k]: the state after writes 0..k-1. */
    let ends: number[] = [];
    const states: unknown[] = [];

    beforeAll(async () => {
      dir = join(root, 'torn');
      const s = open(dir);
      await s.load();
      await until('the spare', () => readdirSync(join(dir, 'wal')).includes('spare.seg'));
      const ref = new MemoryStorage();
      await ref.load();
      const writes: StorageWrite[] = [];
      let last = 0;
      for (let i = 0; i < 30; i++) {
        if (i % 5 === 3) writes.push({ hardState: hs(1 + (i >> 3), null, last) });
        else writes.push({ entries: [entry(++last, 1 + (i >> 3), (i * 37) % 120)] });
      }
      // The second write rolls to the preallocated segment 2; each write is one record.
      for (const w of writes) {
        await s.save(w);
        await ref.save(w);
        states.push(plain(ref.current()));
      }
      await s.close();
      const names = walFiles(dir);
      expect(names).toHaveLength(2);
      segment = names[1] as string;
      const bytes = readFileSync(join(dir, 'wal', segment));
      expect(bytes.length).toBe(SEGMENT);
      // Segment 2: header, checkpoint (the state after write 0: the log rolls at
      // its first write once it holds a record), then one record per later write.
      // So ends[k] is where the state after writes 0..k ends, states[k].
      ends = recordEnds(bytes).slice(1);
      expect(ends).toHaveLength(writes.length);
    });

    function copyWith(name: string, bytes: Uint8Array): string {
      const copy = join(root, name);
      rmSync(copy, { recursive: true, force: true });
      cpSync(dir, copy, { recursive: true });
      writeFileSync(join(copy, 'wal', segment), bytes);
      return copy;
    }

    it('recovers the longest prefix of whole records when a write into the zeros was torn at any byte', async () => {
      const original = readFileSync(join(dir, 'wal', segment));
      const from = ends[ends.length - 4] as number;
      const end = ends[ends.length - 1] as number;
      for (let cut = from; cut <= end; cut++) {
        const torn = Buffer.from(original);
        torn.fill(0, cut, end);
        const copy = copyWith('torn-copy', torn);
        const s = open(copy, { preallocate: false });
        const state = plain(await s.load());
        let k = 0;
        while (k + 1 < ends.length && (ends[k + 1] as number) <= cut) k++;
        expect(state, `cut at ${cut}`).toEqual(states[k]);
        const whole = ends.includes(cut);
        expect(s.recovery.tornTail === null, `cut at ${cut}`).toBe(whole);
        if (!whole) expect(s.recovery.tornTail?.offset).toBe(ends[k]);
        if (cut % 13 === 0) {
          const next = entry((states[k] as { entries: string[] }).entries.length + 1, 9, 10);
          await s.save({ entries: [next] });
          await s.close();
          const again = open(copy, { preallocate: false });
          const st = await again.load();
          expect(st.entries.at(-1)?.index).toBe(next.index);
          expect(again.recovery.tornTail).toBeNull();
          await again.close();
        } else {
          await s.close();
        }
      }
    });

    it('cuts garbage in the zeros of the last segment as a torn tail, keeping every record', async () => {
      const bytes = readFileSync(join(dir, 'wal', segment));
      const end = ends[ends.length - 1] as number;
      bytes[end + 5000] = 0x5a;
      const copy = copyWith('rot-last', bytes);
      const s = open(copy, { preallocate: false });
      expect(plain(await s.load())).toEqual(states[states.length - 1]);
      expect(s.recovery.tornTail).toEqual({
        file: `wal/${segment}`,
        offset: end,
        bytesDropped: SEGMENT - end,
      });
      await s.close();
    });

    it('accepts zeros after the records of an earlier segment, and refuses garbage there', async () => {
      const first = join(dir, 'wal', walFiles(dir)[0] as string);
      const records = readFileSync(first);
      const zeros = Buffer.concat([records, Buffer.alloc(3000)]);
      let copy = join(root, 'early-zeros');
      rmSync(copy, { recursive: true, force: true });
      cpSync(dir, copy, { recursive: true });
      writeFileSync(join(copy, 'wal', walFiles(dir)[0] as string), zeros);
      const s = open(copy, { preallocate: false });
      expect(plain(await s.load())).toEqual(states[states.length - 1]);
      await s.close();

      zeros[records.length + 2000] = 1;
      copy = join(root, 'early-garbage');
      rmSync(copy, { recursive: true, force: true });
      cpSync(dir, copy, { recursive: true });
      writeFileSync(join(copy, 'wal', walFiles(dir)[0] as string), zeros);
      const err = await open(copy, { preallocate: false })
        .load()
        .then(
          () => null,
          (e: unknown) => e,
        );
      expect(err).toBeInstanceOf(CohortError);
      expect((err as CohortError).code).toBe('CORRUPTION');
      expect((err as CohortError).details).toMatchObject({
        file: `wal/${walFiles(dir)[0]}`,
        offset: records.length,
      });
    });
  });
});
