/**
 * A map task's thread reads its split synchronously (input.ts SYNC_READS),
 * the main thread asynchronously: both must see the same blocks and lines,
 * chunk boundaries, long lines and a last line without `\n` included.
 */
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { planSplits, readSplitBytes, readSplitLines } from '../../src/mapreduce/input.js';
import type { Split } from '../../src/mapreduce/input.js';

const dir = mkdtempSync(join(tmpdir(), 'cohort-mr-input-thread-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Seen {
  isMainThread: boolean;
  blocks: [number, string, number][];
  lines: [number, string][];
}

/** Reads `split` in a worker thread (the fixture, loaded through tsx's API as worker-pool.ts loads a thread). */
function readInThread(split: Split, chunkBytes: number): Promise<Seen> {
  const tsxDir = dirname(createRequire(import.meta.url).resolve('tsx/package.json'));
  const api = pathToFileURL(join(tsxDir, 'dist/esm/api/index.mjs')).href;
  const entry = new URL('./fixtures/read-split.ts', import.meta.url).href;
  const code = `import(${JSON.stringify(api)}).then((m) => m.tsImport(${JSON.stringify(entry)}, ${JSON.stringify(entry)}))`;
  const w = new Worker(code, { eval: true, workerData: { split, chunkBytes } });
  return new Promise((resolve, reject) => {
    w.once('message', (m: Seen) => {
      resolve(m);
      void w.terminate();
    });
    w.once('error', reject);
  });
}

describe('reading a split in a worker thread', () => {
  it('gives the blocks and lines the main thread reads', async () => {
    // Lines of many lengths (one longer than the chunk: the buffer grows), CRLF, no final newline.
    const parts: string[] = [];
    for (let i = 0; i < 200; i++)
      parts.push('w'.repeat((i * 37) % 90) + (i % 7 === 0 ? '\r\n' : '\n'));
    parts.push('x'.repeat(700) + '\n', 'last line');
    const file = join(dir, 'in.txt');
    writeFileSync(file, parts.join(''));
    const chunkBytes = 256;
    for (const split of await planSplits([file], 4000)) {
      const blocks: [number, string, number][] = [];
      const lines: [number, string][] = [];
      await readSplitBytes(
        split,
        (o, b, n) => blocks.push([o, b.toString('latin1'), n]),
        chunkBytes,
      );
      await readSplitLines(split, (o, l) => lines.push([o, l]), chunkBytes);
      const seen = await readInThread(split, chunkBytes);
      expect(seen.isMainThread).toBe(false);
      expect(seen.blocks).toEqual(blocks);
      expect(seen.lines).toEqual(lines);
      expect(blocks.length).toBeGreaterThan(1);
    }
  });
});
