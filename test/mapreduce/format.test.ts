import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RunReader,
  RunWriter,
  defaultPartition,
  keyAfter,
  formatValue,
  outputLine,
  parseOutputLine,
  partFileName,
  readRun,
  roundTrip,
} from '../../src/mapreduce/format.js';
import type { RunSource } from '../../src/mapreduce/format.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cohort-mr-format-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let n = 0;
async function writeRun(records: [string, unknown[]][]): Promise<string> {
  const path = join(dir, `r-${n++}.run`);
  const w = await RunWriter.create(path);
  for (const [k, vs] of records) if (w.add(k, vs)) await w.flush();
  await w.finish();
  return path;
}

async function readAll(source: RunSource): Promise<[string, unknown[]][]> {
  const out: [string, unknown[]][] = [];
  for await (const block of readRun(source)) {
    for (let i = 0; i < block.length; i += 2)
      out.push([block[i] as string, block[i + 1] as unknown[]]);
  }
  return out;
}

/** A value as map output carries it: scalars (packed a block at a time) or structures (one by one). */
const scalar = fc.oneof(
  fc.integer(),
  fc.integer({ min: -40, max: 140 }),
  fc.double({ noNaN: true }).filter((d) => !Object.is(d, -0)),
  fc.string({ maxLength: 8 }),
  fc.string({ unit: 'grapheme', maxLength: 4 }),
  fc.boolean(),
  fc.constant(null),
);
const value = fc.oneof(
  { weight: 4, arbitrary: scalar },
  { weight: 1, arbitrary: fc.array(scalar, { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.dictionary(fc.string({ maxLength: 4 }), scalar, { maxKeys: 3 }) },
);

/** Sorted, distinct keys with small value lists. */
const records = fc
  .uniqueArray(fc.string({ unit: 'binary', maxLength: 12 }), { maxLength: 60 })
  .chain((keys) =>
    fc.tuple(
      ...[...keys]
        .sort()
        .map((k) => fc.tuple(fc.constant(k), fc.array(value, { minLength: 1, maxLength: 4 }))),
    ),
  );

describe('output format', () => {
  it('names part files with five digits', () => {
    expect(partFileName(0)).toBe('part-r-00000');
    expect(partFileName(12)).toBe('part-r-00012');
  });

  it('the default partitioner is a stable FNV-1a hash (fixed values, the same on every node)', () => {
    // Golden values: changing them changes which reducer owns a key in every deployed job.
    // FNV-1a('hello') = 0x4f9f2cab is a published test vector.
    expect(['', 'a', 'hello', 'the', 'zürich', '日本'].map((k) => defaultPartition(k, 7))).toEqual([
      2, 5, 2, 3, 1, 4,
    ]);
    expect(defaultPartition('hello', 2 ** 32 - 1)).toBe(0x4f9f2cab);
    expect(defaultPartition('anything', 1)).toBe(0);
    fc.assert(
      fc.property(fc.string(), fc.integer({ min: 1, max: 4096 }), (k, r) => {
        const p = defaultPartition(k, r);
        return Number.isInteger(p) && p >= 0 && p < r && p === defaultPartition(k, r);
      }),
    );
  });

  it('lines split back into key and value, whatever characters they hold', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (k, v) => {
        const line = outputLine(k, v);
        expect(line.endsWith('\n')).toBe(true);
        expect(line.slice(0, -1)).not.toMatch(/[\n\r]/);
        expect(parseOutputLine(line.slice(0, -1))).toEqual([k, v]);
      }),
    );
  });

  it('formats values as documented', () => {
    expect(formatValue(3)).toBe('3');
    expect(formatValue(true)).toBe('true');
    expect(formatValue(10n)).toBe('10');
    expect(formatValue(null)).toBe('');
    expect(formatValue(undefined)).toBe('');
    expect(formatValue({ a: [1, 'x\ty'] })).toBe('{"a":[1,"x\\\\ty"]}');
    expect(outputLine('a\tb', 'c\nd')).toBe('a\\tb\tc\\nd\n');
    expect(roundTrip(new Map([['a', 1]]))).toEqual({ a: 1 }); // what reduce sees, as in the engine
  });
});

describe('run files', () => {
  it('read back what was written, from a path or from bytes in chunks of any size', async () => {
    await fc.assert(
      fc.asyncProperty(records, fc.integer({ min: 1, max: 50 }), async (recs, chunk) => {
        const path = await writeRun(recs);
        expect(await readAll(path)).toEqual(recs);
        const bytes = await readFile(path);
        const chunks: Uint8Array[] = [];
        for (let i = 0; i < bytes.length; i += chunk) chunks.push(bytes.subarray(i, i + chunk));
        expect(await readAll(chunks)).toEqual(recs);
      }),
      { numRuns: 60 },
    );
  });

  it('a run cut short at any byte, or with any byte flipped, is CORRUPTION (never silently shorter)', async () => {
    const path = await writeRun([
      ['apple', [1, 2]],
      ['pear', ['x']],
      ['plum', [{ a: 1 }]],
    ]);
    const bytes = await readFile(path);
    for (let cut = 0; cut < bytes.length; cut++) {
      await expect(readAll([bytes.subarray(0, cut)])).rejects.toMatchObject({ code: 'CORRUPTION' });
    }
    for (let i = 0; i < bytes.length; i++) {
      const bad = Buffer.from(bytes);
      bad[i] = (bad[i] as number) ^ 0x01;
      await expect(readAll([bad])).rejects.toMatchObject({ code: 'CORRUPTION' });
    }
    await expect(readAll(join(dir, 'missing.run'))).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('any flipped byte or cut of a random run is CORRUPTION', async () => {
    await fc.assert(
      fc.asyncProperty(
        records,
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        fc.nat(),
        async (recs, at, mask, cutAt) => {
          const bytes = await readFile(await writeRun(recs));
          const bad = Buffer.from(bytes);
          const i = at % bytes.length;
          bad[i] = (bad[i] as number) ^ mask;
          await expect(readAll([bad])).rejects.toMatchObject({ code: 'CORRUPTION' });
          const cut = cutAt % bytes.length;
          await expect(readAll([bytes.subarray(0, cut)])).rejects.toMatchObject({
            code: 'CORRUPTION',
          });
        },
      ),
      { numRuns: 60 },
    );
  });

  it('many records are cut into several data blocks, scalar and structured ones alike', async () => {
    const recs: [string, unknown[]][] = [];
    for (let i = 0; i < 40_000; i++) {
      const k = `key${String(i).padStart(6, '0')}`;
      recs.push([k, i % 1000 === 7 ? [{ at: i, s: 'x'.repeat(200) }] : [i, 'v'.repeat(i % 50)]]);
    }
    const path = await writeRun(recs);
    let blocks = 0;
    for await (const _ of readRun(path)) blocks++;
    expect(blocks).toBeGreaterThan(2);
    expect(await readAll(path)).toEqual(recs);
  });

  it('a block is cut before a record that would take it past 4 MiB, and that record is kept whole', async () => {
    // ~110 KB of small records (under the 128 KiB block target), then one record of ~4.1 MB:
    // together over 4 MiB, so the small ones end their block first.
    const recs: [string, unknown[]][] = [];
    for (let i = 0; i < 1000; i++) recs.push([`a${String(i).padStart(4, '0')}`, ['x'.repeat(100)]]);
    recs.push(['b', Array.from({ length: 40_500 }, () => 'y'.repeat(100))]);
    const path = await writeRun(recs);
    expect(await readAll(path)).toEqual(recs);
    const bytes = await readFile(path);
    const frames: [tag: string, length: number][] = [];
    for (let at = 0; at < bytes.length;) {
      const len = bytes.readUInt32BE(at);
      frames.push([String.fromCharCode(bytes[at + 8] as number), len]);
      at += 8 + len;
    }
    expect(frames.map(([t]) => t).join('')).toBe('HDDE');
    expect(frames[1]![1]).toBeLessThan(128 * 1024);
    expect(frames[2]![1]).toBeGreaterThan(4_000_000);
    expect(frames[2]![1]).toBeLessThanOrEqual(4 * 1024 * 1024);
  });

  it('addNumber(key, n) writes the bytes add(key, [n]) writes, mixed with add, over many blocks; keys out of order are refused', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.string({ unit: 'binary', maxLength: 12 }), { maxLength: 3000 }),
        fc.array(
          fc.oneof(
            fc.integer(),
            fc.integer({ min: -40, max: 70_000 }),
            fc.double({ noNaN: true }).filter((d) => !Object.is(d, -0)),
          ),
          { minLength: 1 },
        ),
        async (keys, numbers) => {
          keys.sort();
          const recs = keys.map((k, i): [string, number] => [k, numbers[i % numbers.length]!]);
          const a = join(dir, `num-a-${n++}.run`);
          const b = join(dir, `num-b-${n++}.run`);
          const wa = await RunWriter.create(a);
          const wb = await RunWriter.create(b);
          for (const [i, [k, v]] of recs.entries()) {
            if (wa.add(k, [v])) await wa.flush();
            if (i % 3 === 0 ? wb.add(k, [v]) : wb.addNumber(k, v)) await wb.flush();
          }
          await wa.finish();
          await wb.finish();
          expect(await readFile(b)).toEqual(await readFile(a));
          expect(await readAll(b)).toEqual(recs.map(([k, v]) => [k, [v]]));
        },
      ),
      { numRuns: 30 },
    );
    const w = await RunWriter.create(join(dir, 'num-order.run'));
    w.addNumber('b', 1);
    expect(() => w.addNumber('a', 1)).toThrow(/out of order/);
    expect(() => w.addNumber('b', 2)).toThrow(/out of order/);
    await w.abort();
  });

  it('refuses keys out of order; abort leaves no file', async () => {
    const path = join(dir, 'order.run');
    const w = await RunWriter.create(path);
    w.add('b', [1]);
    expect(() => w.add('a', [1])).toThrow(/out of order/);
    await w.abort();
    expect((await readdir(dir)).filter((f) => f.includes('order.run'))).toEqual([]);
    await writeFile(join(dir, 'not-a-run'), 'hello world, not a run');
    await expect(readAll(join(dir, 'not-a-run'))).rejects.toMatchObject({ code: 'CORRUPTION' });
  });
});

describe('run files with a hot key', () => {
  it('a key with more values than fit one record is split into consecutive records and merged back in order', async () => {
    const { mergeRuns } = await import('../../src/mapreduce/tasks.js');
    const big = Array.from({ length: 60_000 }, (_, i) => `value number ${i} ${'x'.repeat(100)}`);
    const path = await writeRun([
      ['a', [1]],
      ['hot', big],
      ['z', [2]],
    ]);
    const records = await readAll(path);
    expect(records.filter(([k]) => k === 'hot').length).toBeGreaterThan(1);
    const seen: [string, unknown[]][] = [];
    await mergeRuns([path, await writeRun([['hot', ['last']]])], (k, vs) => {
      seen.push([k, vs]);
    });
    expect(seen.map(([k]) => k)).toEqual(['a', 'hot', 'z']);
    expect(seen[1]![1]).toEqual([...big, 'last']);
  });
});

describe('mergeRuns', () => {
  it('visits each key once, in key order, with its values in run order (any number of runs, empty ones included)', async () => {
    const { mergeRuns } = await import('../../src/mapreduce/tasks.js');
    // Few distinct keys so runs share keys; non-ASCII and prefix keys test the order.
    const key = fc.constantFrom('a', 'ab', 'b', 'é', 'z', '', 'aa', '\u{1F600}');
    const run = fc.uniqueArray(key).map((ks) => [...ks].sort());
    await fc.assert(
      fc.asyncProperty(fc.array(run, { minLength: 0, maxLength: 11 }), async (runs) => {
        const paths = await Promise.all(
          runs.map((ks, r) => writeRun(ks.map((k): [string, unknown[]] => [k, [r, `${k}${r}`]]))),
        );
        const seen: [string, unknown[]][] = [];
        const counts = await mergeRuns(paths, (k, vs) => {
          seen.push([k, vs]);
        });
        const want = [...new Set(runs.flat())]
          .sort()
          .map((k): [string, unknown[]] => [
            k,
            runs.flatMap((ks, r) => (ks.includes(k) ? [r, `${k}${r}`] : [])),
          ]);
        expect(seen).toEqual(want);
        expect(counts).toEqual({ keys: want.length, values: 2 * runs.flat().length });
      }),
      { numRuns: 60 },
    );
  });
});

describe('sumRuns (a summing reduce without a merge)', () => {
  // Few distinct keys so runs share keys; non-ASCII and prefix keys test the order,
  // '\uE000' and '\u{10000}' the one place UTF-8 byte order is not JavaScript's.
  const key = fc.constantFrom(
    'a',
    'ab',
    'b',
    'é',
    'z',
    '',
    'aa',
    '\u{1F600}',
    '\uE000',
    '\u{10000}',
  );
  const number = fc.oneof(
    fc.integer({ min: -40, max: 140 }),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
  );
  const run = fc
    .uniqueArray(key)
    .chain((ks) =>
      fc.tuple(
        ...[...ks]
          .sort()
          .map((k) => fc.tuple(fc.constant(k), fc.array(number, { minLength: 0, maxLength: 3 }))),
      ),
    );

  it('visits each key once, in key order, with the sum of its values in run order (none: no value)', async () => {
    const { sumRuns } = await import('../../src/mapreduce/tasks.js');
    await fc.assert(
      fc.asyncProperty(fc.array(run, { minLength: 0, maxLength: 9 }), async (runs) => {
        const paths = await Promise.all(runs.map((records) => writeRun(records)));
        const seen: [string, unknown[]][] = [];
        const counts = await sumRuns(paths, (k, vs) => {
          seen.push([k, vs]);
        });
        const all = runs.flat();
        const want = [...new Set(all.map(([k]) => k))].sort().map((k): [string, unknown[]] => {
          const vs = all.filter(([x]) => x === k).flatMap(([, v]) => v);
          return [k, vs.length === 0 ? [] : [vs.reduce((a, b) => a + b)]];
        });
        expect(seen).toEqual(want);
        expect(counts).toEqual({
          keys: want.length,
          values: all.reduce((n, [, v]) => n + v.length, 0),
        });
      }),
      { numRuns: 60 },
    );
  });

  it('gives up, visiting nothing, on a value that is not a number (the merge takes those runs)', async () => {
    const { sumRuns } = await import('../../src/mapreduce/tasks.js');
    for (const odd of ['1', null, [1], { n: 1 }, true]) {
      const paths = [
        await writeRun([
          ['a', [1]],
          ['b', [2, 3]],
        ]),
        await writeRun([
          ['a', [4]],
          ['c', [5, odd]],
        ]),
      ];
      const seen: string[] = [];
      expect(await sumRuns(paths, (k) => void seen.push(k))).toBeUndefined();
      expect(seen).toEqual([]);
    }
  });

  it('gives up, visiting nothing, when its table of keys would outgrow its bound', async () => {
    const { sumRuns } = await import('../../src/mapreduce/tasks.js');
    const keys = Array.from({ length: 3000 }, (_, i) => `k${String(i).padStart(5, '0')}`);
    const paths = [await writeRun(keys.map((k): [string, unknown[]] => [k, [1]]))];
    const seen: string[] = [];
    // 3000 keys fit the default bound, not 16 KiB (added to the thread's dictionary they take more).
    expect(await sumRuns(paths, (k) => void seen.push(k), 16 * 1024)).toBeUndefined();
    expect(seen).toEqual([]);
    expect(await sumRuns(paths, (k) => void seen.push(k))).toEqual({ keys: 3000, values: 3000 });
    expect(seen).toEqual(keys);
  });

  it('refuses a run whose keys are out of order as the merge does (CORRUPTION)', async () => {
    const { mergeRuns, sumRuns } = await import('../../src/mapreduce/tasks.js');
    for (const [first, second] of [
      ['b', 'a'],
      ['ab', 'a'],
      ['\uE000', '\u{10000}'],
      ['é', 'e'],
    ] as const) {
      const path = join(dir, `disorder-${n++}.run`);
      const w = await RunWriter.create(path);
      w.add(first, [1]);
      // A writer refuses that; a damaged run (with good checksums) could still hold it.
      (w as unknown as { lastKey: string | undefined }).lastKey = undefined;
      w.add(second, [2]);
      await w.finish();
      const nothing = (): void => undefined;
      await expect(sumRuns([path], nothing)).rejects.toMatchObject({ code: 'CORRUPTION' });
      await expect(mergeRuns([path], nothing)).rejects.toMatchObject({ code: 'CORRUPTION' });
    }
  });

  it('keyAfter orders UTF-8 keys as their strings are ordered (UTF-16 code units)', () => {
    const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');
    const text = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 6 }),
      fc.string({
        unit: fc.constantFrom('a', 'b', 'é', '\uE000', '\uFFFF', '\u{10000}', '\u{1F600}'),
        maxLength: 5,
      }),
    );
    fc.assert(
      fc.property(text, text, fc.nat(3), fc.nat(3), (a, b, pa, pb) => {
        // At offsets in bigger buffers, as keys are in a block.
        const x = Buffer.concat([Buffer.alloc(pa, 0x7a), utf8(a)]);
        const y = Buffer.concat([Buffer.alloc(pb, 0x61), utf8(b)]);
        const da = utf8(a).toString('utf8');
        const db = utf8(b).toString('utf8');
        expect(keyAfter(x, pa, x.length, y, pb, y.length)).toBe(da > db);
      }),
      { numRuns: 2000 },
    );
    const after = (a: string, b: string): boolean =>
      keyAfter(utf8(a), 0, utf8(a).length, utf8(b), 0, utf8(b).length);
    expect(after('\uE000', '\u{10000}')).toBe(true);
    expect(after('\u{10000}', '\uE000')).toBe(false);
    expect(after('ab', 'a')).toBe(true);
    expect(after('a', 'a')).toBe(false);
  });
});

/** An async source of `chunks` that logs each next() call and when it settles (after a macrotask). */
function loggedSource(
  name: string,
  chunks: Uint8Array[],
  log: string[],
): AsyncIterable<Uint8Array> & { calls: () => number } {
  let i = 0;
  let calls = 0;
  const it: AsyncIterator<Uint8Array> = {
    next: () => {
      calls++;
      log.push(`call ${name}`);
      const c = chunks[i++];
      return new Promise((resolve) =>
        setImmediate(() => {
          log.push(`done ${name}`);
          resolve(c === undefined ? { done: true, value: undefined } : { done: false, value: c });
        }),
      );
    },
  };
  return { [Symbol.asyncIterator]: () => it, calls: () => calls };
}

describe('reading runs ahead', () => {
  it('a reader with readAhead asks for the next chunk as soon as a block is loaded, and still reads the run whole', async () => {
    const path = await writeRun([
      ['a', [1]],
      ['b', [2]],
    ]);
    const bytes = new Uint8Array(await readFile(path));
    const log: string[] = [];
    const src = loggedSource('r', [bytes], log);
    const r = new RunReader(src, 0, true);
    expect(await r.nextBlock()).toBe(true);
    // The one chunk held the whole run; the reader already asked for the next.
    expect(src.calls()).toBe(2);
    const seen: [string, unknown[]][] = [];
    while (r.nextRecord()) seen.push([r.key, r.takeValues([])]);
    expect(await r.nextBlock()).toBe(false);
    expect(seen).toEqual([
      ['a', [1]],
      ['b', [2]],
    ]);
    await r.close();
  });

  it('mergeRuns asks every run for its first chunk before waiting for any', async () => {
    const { mergeRuns } = await import('../../src/mapreduce/tasks.js');
    const log: string[] = [];
    const runs = await Promise.all(
      ['x', 'y', 'z'].map(async (k, i) =>
        loggedSource(String(i), [new Uint8Array(await readFile(await writeRun([[k, [i]]])))], log),
      ),
    );
    const seen: string[] = [];
    await mergeRuns(runs, (k) => {
      seen.push(k);
    });
    expect(seen).toEqual(['x', 'y', 'z']);
    expect(log.slice(0, 3)).toEqual(['call 0', 'call 1', 'call 2']);
  });
});
