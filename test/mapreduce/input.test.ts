import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  expandInputs,
  planSplits,
  readSplit,
  readSplitBlocks,
  readSplitBytes,
  readSplitLines,
} from '../../src/mapreduce/input.js';
import type { Split } from '../../src/mapreduce/input.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cohort-mr-input-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The records of a file, computed the obvious way: [byte offset, line without \n or \r\n]. */
function expectedRecords(bytes: Buffer): [number, string][] {
  const out: [number, string][] = [];
  let p = 0;
  while (p < bytes.length) {
    let nl = bytes.indexOf(10, p);
    if (nl < 0) nl = bytes.length;
    const end = nl > p && bytes[nl - 1] === 13 ? nl - 1 : nl;
    out.push([p, bytes.toString('utf8', p, end)]);
    p = nl + 1;
  }
  return out;
}

async function recordsOf(
  splits: Split[],
  chunkBytes?: number,
  blockBytes?: number,
): Promise<[number, string][]> {
  const out: [number, string][] = [];
  for (const s of splits) {
    await readSplitLines(s, (o, l) => out.push([o, l]), chunkBytes, undefined, blockBytes);
  }
  return out;
}

// Pieces that make lines interesting: newlines, CRs, multi-byte UTF-8, long runs.
const piece = fc.oneof(
  fc.constantFrom('\n', '\r\n', '\r', 'a', 'bc', ' ', 'é', '日本', '😀', '\n\n'),
  fc.string({ maxLength: 40 }),
  fc.nat({ max: 300 }).map((n) => 'x'.repeat(n)),
);

let fileNo = 0;

describe('planSplits + readSplitLines', () => {
  it('every line belongs to exactly one split, with its byte offset, for random contents and split sizes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(piece, { maxLength: 60 }),
        fc.integer({ min: 1, max: 400 }),
        fc.integer({ min: 1, max: 64 }),
        async (pieces, splitBytes, chunkBytes) => {
          const text = pieces.join('');
          const file = join(dir, `p-${fileNo++}.txt`);
          await writeFile(file, text);
          const bytes = Buffer.from(text);
          const splits = await planSplits([file], splitBytes);
          // Contiguous, non-empty, covering the file, cut just after a '\n'.
          let pos = 0;
          for (const s of splits) {
            expect(s.start).toBe(pos);
            expect(s.end).toBeGreaterThan(s.start);
            if (s.end < bytes.length) expect(bytes[s.end - 1]).toBe(10);
            pos = s.end;
          }
          expect(pos).toBe(bytes.length);
          const expected = expectedRecords(bytes);
          expect(await recordsOf(splits)).toEqual(expected);
          // Tiny read chunks: lines longer than the buffer make it grow.
          expect(await recordsOf(splits, chunkBytes)).toEqual(expected);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('ASCII text is cut into the same records whatever the size of the blocks it is decoded in', async () => {
    const ascii = fc.oneof(
      fc.constantFrom('\n', '\r\n', '\r', 'a', 'bc', ' ', '\n\n', ',', '\r\r\n'),
      fc.string({ unit: fc.constantFrom('a', 'Z', '0', ' ', '\t', '\r', '\n'), maxLength: 40 }),
      fc.nat({ max: 300 }).map((n) => 'y'.repeat(n)),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(ascii, { maxLength: 60 }),
        fc.integer({ min: 1, max: 400 }),
        fc.integer({ min: 1, max: 64 }),
        fc.integer({ min: 1, max: 80 }),
        async (pieces, splitBytes, chunkBytes, blockBytes) => {
          const text = pieces.join('');
          const file = join(dir, `a-${fileNo++}.txt`);
          await writeFile(file, text);
          const expected = expectedRecords(Buffer.from(text));
          const splits = await planSplits([file], splitBytes);
          expect(await recordsOf(splits, undefined, blockBytes)).toEqual(expected);
          expect(await recordsOf(splits, chunkBytes, blockBytes)).toEqual(expected);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('readSplitBlocks gives the text of the split in blocks of whole lines, with their record counts and offsets', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(piece, { maxLength: 60 }),
        fc.integer({ min: 1, max: 400 }),
        fc.integer({ min: 1, max: 64 }),
        fc.integer({ min: 1, max: 100 }),
        async (pieces, splitBytes, chunkBytes, blockBytes) => {
          const text = pieces.join('');
          const file = join(dir, `b-${fileNo++}.txt`);
          await writeFile(file, text);
          const bytes = Buffer.from(text);
          const expected = expectedRecords(bytes);
          const blocks: [number, string, number][] = [];
          let records = 0;
          for (const s of await planSplits([file], splitBytes)) {
            const stats = await readSplitBlocks(
              s,
              (o, b, n) => blocks.push([o, b, n]),
              chunkBytes,
              undefined,
              blockBytes,
            );
            records += stats.records;
          }
          // The blocks, in order, are the file's text; each starts where a line starts.
          expect(blocks.map(([, b]) => b).join('')).toBe(bytes.toString('utf8'));
          let pos = 0;
          for (const [o, b, n] of blocks) {
            expect(o).toBe(pos);
            expect(b.length).toBeGreaterThan(0);
            // Whole lines: the lines of a block are the records that start inside it.
            expect(n).toBe(expected.filter(([r]) => r >= o && r < o + Buffer.byteLength(b)).length);
            pos += Buffer.byteLength(b);
          }
          expect(blocks.reduce((a, [, , n]) => a + n, 0)).toBe(expected.length);
          expect(records).toBe(expected.length);
          // Splitting each block into lines gives the records, as readSplitLines does.
          const fromBlocks: [number, string][] = [];
          for (const [o, b] of blocks) {
            let at = o;
            for (const l of b.split(/(?<=\n)/)) {
              fromBlocks.push([at, l.replace(/\r?\n?$/, '')]);
              at += Buffer.byteLength(l);
            }
          }
          expect(fromBlocks).toEqual(expected);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('blocks are about the block size, cut after a newline; a longer line is a block of its own', async () => {
    const file = join(dir, 'blocks.txt');
    await writeFile(file, `ab\ncd\nef\n${'x'.repeat(30)}\r\ngh`);
    const blocks: [number, string, number][] = [];
    await readSplitBlocks(
      { file, start: 0, end: 43 },
      (o, b, n) => blocks.push([o, b, n]),
      1 << 20,
      undefined,
      7,
    );
    expect(blocks).toEqual([
      [0, 'ab\ncd\n', 2],
      [6, 'ef\n', 1],
      [9, `${'x'.repeat(30)}\r\n`, 1],
      [41, 'gh', 1],
    ]);
  });

  it('an empty file gives no split; a file without a final newline keeps its last line', async () => {
    const empty = join(dir, 'empty.txt');
    const tail = join(dir, 'tail.txt');
    await writeFile(empty, '');
    await writeFile(tail, 'one\r\ntwo\nthree');
    expect(await planSplits([empty], 10)).toEqual([]);
    const splits = await planSplits([empty, tail], 4);
    expect(splits).toEqual([
      { file: tail, start: 0, end: 5 },
      { file: tail, start: 5, end: 9 },
      { file: tail, start: 9, end: 14 },
    ]);
    const all: [number, string][] = [];
    for (const s of splits) for await (const r of readSplit(s)) all.push(r);
    expect(all).toEqual([
      [0, 'one'],
      [5, 'two'],
      [9, 'three'],
    ]);
  });

  it('a line longer than the split size gives one split of its own', async () => {
    const file = join(dir, 'long.txt');
    await writeFile(file, `a\n${'y'.repeat(1000)}\nb\n`);
    const splits = await planSplits([file], 10);
    expect(splits.map((s) => [s.start, s.end])).toEqual([
      [0, 1003],
      [1003, 1005],
    ]);
  });

  it('refuses a split size that is not a positive integer', async () => {
    await expect(planSplits([], 0)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(planSplits([], 1.5)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

describe('readSplitBytes', () => {
  it('a thread reads one split after another through the same buffer; overlapping reads get their own', async () => {
    const f = join(dir, 'reuse.txt');
    const text = Array.from({ length: 2000 }, (_, i) => `line ${i} ${'w'.repeat(i % 37)}\n`).join(
      '',
    );
    await writeFile(f, text);
    const [a, b] = await planSplits([f], Math.ceil(text.length / 2));
    if (a === undefined || b === undefined) throw new Error('expected two splits');
    const read = async (s: Split): Promise<{ text: string; buffers: Set<ArrayBufferLike> }> => {
      const parts: string[] = [];
      const buffers = new Set<ArrayBufferLike>();
      await readSplitBytes(
        s,
        (_, bytes) => {
          parts.push(bytes.toString('latin1'));
          buffers.add(bytes.buffer);
        },
        8192, // above Buffer.poolSize: a fresh buffer is its own ArrayBuffer
      );
      return { text: parts.join(''), buffers };
    };
    // One after the other: the second read's chunks lie in the first one's buffer.
    const first = await read(a);
    const second = await read(b);
    expect(first.text + second.text).toBe(text);
    expect(first.buffers.size).toBe(1);
    const [buffer] = first.buffers;
    expect(second.buffers.size).toBe(1);
    expect(second.buffers.has(buffer as ArrayBufferLike)).toBe(true); // the same object
    // At the same time: each its own buffer, the right bytes in both.
    const [x, y] = await Promise.all([read(a), read(b)]);
    expect(x.text + y.text).toBe(text);
    expect([...x.buffers].some((buf) => y.buffers.has(buf))).toBe(false);
  });
});

describe('expandInputs', () => {
  it('expands globs in sorted order, directories to their files, and drops duplicates', async () => {
    const d = join(dir, 'globs');
    await mkdir(join(d, 'sub'), { recursive: true });
    for (const n of ['b.txt', 'a.txt', 'c.log', '.hidden.txt', 'sub/d.txt']) {
      await writeFile(join(d, n), n);
    }
    expect(await expandInputs(['*.txt'], d)).toEqual([join(d, 'a.txt'), join(d, 'b.txt')]);
    expect(await expandInputs(['**/*.txt', 'a.txt'], d)).toEqual([
      join(d, 'a.txt'),
      join(d, 'b.txt'),
      join(d, 'sub/d.txt'),
    ]);
    expect(await expandInputs([d])).toEqual([join(d, 'a.txt'), join(d, 'b.txt'), join(d, 'c.log')]);
  });

  it('a missing input or a glob matching nothing is NOT_FOUND naming it; no input is INVALID_ARGUMENT', async () => {
    await expect(expandInputs([join(dir, 'nope.txt')])).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: expect.stringContaining('nope.txt') as unknown,
    });
    await expect(expandInputs([join(dir, 'nothing-*.zzz')])).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: expect.stringContaining('matches no file') as unknown,
    });
    await expect(expandInputs([])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});
