import fc from 'fast-check';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readRun, roundTrip, RunWriter } from '../../src/mapreduce/format.js';
import { AssertionError } from '../../src/lib/assert.js';
import { ValueArena, keptArenaBytes } from '../../src/mapreduce/value-arena.js';
import { tempDir } from '../harness/tmp.js';

const value = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true }).filter((d) => !Object.is(d, -0)),
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'grapheme', maxLength: 4 }),
  fc.constantFrom(null, true, false),
  fc.tuple(fc.constantFrom('u', 'o'), fc.string({ maxLength: 8 }), fc.integer()),
  fc.record({ count: fc.nat(), sensors: fc.array(fc.string({ maxLength: 3 }), { maxLength: 3 }) }),
  fc.constant(new Uint8Array([7, 8])),
  fc.constant({ big: 10n }),
);

async function readBack(path: string): Promise<[string, unknown[]][]> {
  const out: [string, unknown[]][] = [];
  for await (const block of readRun(path)) {
    for (let i = 0; i < block.length; i += 2) {
      const k = block[i] as string;
      const vs = block[i + 1] as unknown[];
      const last = out[out.length - 1];
      if (last !== undefined && last[0] === k) last[1].push(...vs);
      else out.push([k, [...vs]]);
    }
  }
  return out;
}

describe('value arena', () => {
  it('keeps each key’s values in emit order (laid out key by key or not), decodes them and writes them as the run writer would', async () => {
    const dir = tempDir('cohort-arena-');
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.constantFrom('a', 'b', 'é', 'zz'), value), { maxLength: 60 }),
        fc.boolean(),
        async (emits, compact) => {
          const arena = new ValueArena();
          const keys: string[] = [];
          const want = new Map<string, unknown[]>();
          for (const [k, v] of emits) {
            let e = keys.indexOf(k);
            if (e < 0) e = keys.push(k) - 1;
            arena.add(e, v);
            want.set(k, [...(want.get(k) ?? []), roundTrip(v)]);
          }
          for (const [e, k] of keys.entries()) {
            expect(arena.chain(e).map((v) => arena.decode(v))).toEqual(want.get(k));
          }
          if (compact) {
            // Laid out again key by key (as writeRuns does): same chains, same values.
            arena.compact([...keys].sort().map((k) => keys.indexOf(k)));
            for (const [e, k] of keys.entries()) {
              expect(arena.chain(e).map((v) => arena.decode(v))).toEqual(want.get(k));
              expect(arena.decodeValues(e, [])).toEqual(want.get(k));
              const chain = arena.chain(e);
              expect(chain).toEqual(chain.map((_, i) => (chain[0] as number) + i));
            }
          } else {
            for (const [e, k] of keys.entries()) {
              expect(arena.decodeValues(e, [])).toEqual(want.get(k));
            }
          }
          const w = await RunWriter.create(join(dir, `r${n++}.run`));
          for (const k of [...keys].sort()) w.addEncoded(k, arena, keys.indexOf(k));
          const { path } = await w.finish();
          expect(await readBack(path)).toEqual([...want].sort(([a], [b]) => (a < b ? -1 : 1)));
          // The next run's arena takes these buffers as they are (old values in them).
          arena.release();
        },
      ),
      { numRuns: 100 },
    );
  });

  it('finds a key’s values whether they were added key by key or interleaved, before and after more adds', async () => {
    const arena = new ValueArena();
    arena.add(0, 'a');
    arena.add(0, 'b');
    arena.add(1, 'c');
    // Key by key so far: each key's values are consecutive.
    expect(arena.chain(0)).toEqual([0, 1]);
    expect(arena.chain(1)).toEqual([2]);
    arena.add(0, 'd'); // key 0 again after key 1: interleaved from now on
    arena.add(1, 'e');
    expect(arena.chain(0)).toEqual([0, 1, 3]);
    expect(arena.chain(1)).toEqual([2, 4]);
    arena.add(2, 'f');
    arena.add(0, 'g'); // linked again after more adds
    expect(arena.chain(0)).toEqual([0, 1, 3, 6]);
    expect(arena.chain(2)).toEqual([5]);
    expect(arena.decodeValues(0, [])).toEqual(['a', 'b', 'd', 'g']);
    const dir = tempDir('cohort-arena-');
    const w = await RunWriter.create(join(dir, 'mixed.run'));
    w.addEncoded('x', arena, 0);
    w.addEncoded('y', arena, 1);
    w.addEncoded('z', arena, 2);
    expect(await readBack((await w.finish()).path)).toEqual([
      ['x', ['a', 'b', 'd', 'g']],
      ['y', ['c', 'e']],
      ['z', ['f']],
    ]);
  });

  it('a released arena’s buffers go to the next arena, and the released one can no longer be used', () => {
    const a = new ValueArena();
    for (let i = 0; i < 50_000; i++) a.add(i % 7, [i]);
    a.compact([0, 1, 2, 3, 4, 5, 6]);
    const before = keptArenaBytes();
    a.release();
    const released = keptArenaBytes();
    expect(released).toBeGreaterThan(before);
    expect(() => a.add(0, 1)).toThrow(AssertionError);
    expect(() => a.decodeValues(0, [])).toThrow(AssertionError);
    const b = new ValueArena(); // takes the values' buffer and index
    expect(keptArenaBytes()).toBeLessThan(released);
    b.add(3, 'x');
    b.add(1, [2]);
    b.add(3, 'y');
    expect(b.decodeValues(3, [])).toEqual(['x', 'y']);
    expect(b.decodeValues(1, [])).toEqual([[2]]);
    expect(b.count(0)).toBe(0);
  });

  it('a key whose values exceed a record is cut into consecutive records, read back in order', async () => {
    const dir = tempDir('cohort-arena-');
    const arena = new ValueArena();
    const big = 'x'.repeat(100_000);
    const values = Array.from({ length: 120 }, (_, i) => `${i}:${big}`); // ~12 MB
    for (const v of values) arena.add(0, v);
    arena.add(1, 'small');
    const w = await RunWriter.create(join(dir, 'big.run'));
    w.addEncoded('k', arena, 0);
    w.addEncoded('m', arena, 1);
    const r = await w.finish();
    expect(r.keys).toBeGreaterThan(2); // 'k' took several records
    expect(r.values).toBe(121);
    expect(await readBack(r.path)).toEqual([
      ['k', values],
      ['m', ['small']],
    ]);
  });
});
