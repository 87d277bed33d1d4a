/**
 * The single-process baselines of bench/wordcount.ts: word count (maximal
 * `[A-Za-z]+` runs, case-sensitive) written as well as I could for this
 * corpus, with no engine around it. Each thread pulls whole files from a
 * shared counter, counts into its own table and hands the table back; the
 * main thread merges the tables and writes the output the way the engine's
 * reducers do (see {@link writeCounts}).
 *
 * Two counting loops:
 * - `bytes` (the bench's "loop", the best one): scans the file's bytes as
 *   read (no string made of the file), computes each word's 32-bit FNV-1a
 *   hash while scanning it, and looks the word up in an open-addressing
 *   table that compares the bytes in place against a byte arena of the
 *   distinct words. No string is made per word occurrence, only one per
 *   distinct word at the end. In single-thread trials on two corpus files
 *   it took about 0.7x the CPU of the `keytable` loop.
 * - `keytable`: the engine's own key table (src/mapreduce/key-table.ts, the
 *   same class the map task uses) fed the word strings the job's scan makes
 *   (latin1 string of the file, `charCodeAt` scan, `slice` per word): the
 *   engine's counting with no engine around it.
 *
 * Run as a worker thread (started by the bench through tsx's API): it loads,
 * answers `{ ready: true }`, waits for a message, counts, and posts a
 * {@link Counted}. So thread start-up and module loading are not timed, as
 * for the engine's worker threads.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { KeyTable } from '../src/mapreduce/key-table.js';

/** A thread's table: distinct words and their counts, index for index. */
export interface Counted {
  keys: string[];
  counts: Float64Array;
}

/** The counting loops (see the file header). */
export type LoopKind = 'bytes' | 'keytable';

const FNV_PRIME = 0x01000193;
/** 2^32 / φ, odd: Fibonacci hashing of the home slot (as the engine's table). */
const FIBONACCI = 0x9e3779b9 | 0;
/** A random FNV offset basis per process, as the engine's table (no crafted collisions). */
const SEED = (Math.random() * 0x100000000) | 0;

/** An open-addressing table of byte strings kept in an arena; see the file header. */
class ByteTable {
  size = 0;
  private slots = new Int32Array(1 << 16);
  private hashes = new Int32Array(1 << 16);
  private shift = 32 - 16;
  private mask = (1 << 16) - 1;
  private starts = new Int32Array(1 << 15);
  private lens = new Int32Array(1 << 15);
  counts = new Float64Array(1 << 15);
  private arena = Buffer.alloc(1 << 20);
  private arenaLen = 0;

  /** Counts the words of `b`. */
  countBuffer(b: Buffer): void {
    const n = b.length;
    let i = 0;
    while (i < n) {
      // Skip to the next letter, then hash the word while reading it.
      let c = b[i] as number;
      while (((c | 32) - 97) >>> 0 >= 26) {
        if (++i >= n) return;
        c = b[i] as number;
      }
      const start = i;
      let h = SEED;
      do {
        h = Math.imul(h ^ c, FNV_PRIME);
        if (++i >= n) break;
        c = b[i] as number;
      } while (((c | 32) - 97) >>> 0 < 26);
      this.bump(b, start, i, h);
    }
  }

  private bump(b: Buffer, from: number, to: number, h: number): void {
    const len = to - from;
    const slots = this.slots;
    const hashes = this.hashes;
    let j = Math.imul(h, FIBONACCI) >>> this.shift;
    for (;;) {
      const e = slots[j] as number;
      if (e === 0) break;
      if (hashes[j] === h && this.lens[e - 1] === len) {
        const s = this.starts[e - 1] as number;
        const arena = this.arena;
        let k = 0;
        while (k < len && arena[s + k] === b[from + k]) k++;
        if (k === len) {
          this.counts[e - 1] = (this.counts[e - 1] as number) + 1;
          return;
        }
      }
      j = (j + 1) & this.mask;
    }
    // A new word.
    const e = this.size++;
    if (e === this.starts.length) this.growEntries();
    if (this.arenaLen + len > this.arena.length) {
      const bigger = Buffer.alloc(Math.max(this.arena.length * 2, this.arenaLen + len));
      this.arena.copy(bigger, 0, 0, this.arenaLen);
      this.arena = bigger;
    }
    b.copy(this.arena, this.arenaLen, from, to);
    this.starts[e] = this.arenaLen;
    this.lens[e] = len;
    this.counts[e] = 1;
    this.arenaLen += len;
    slots[j] = e + 1;
    hashes[j] = h;
    if (2 * this.size > slots.length) this.growSlots();
  }

  private growEntries(): void {
    const n = this.starts.length * 2;
    const grow = <T extends Int32Array | Float64Array>(a: T, make: (n: number) => T): T => {
      const b = make(n);
      b.set(a);
      return b;
    };
    this.starts = grow(this.starts, (k) => new Int32Array(k));
    this.lens = grow(this.lens, (k) => new Int32Array(k));
    this.counts = grow(this.counts, (k) => new Float64Array(k));
  }

  private growSlots(): void {
    const size = this.slots.length * 2;
    const slots = new Int32Array(size);
    const hashes = new Int32Array(size);
    const mask = size - 1;
    const shift = this.shift - 1;
    for (let i = 0; i < this.slots.length; i++) {
      const e = this.slots[i] as number;
      if (e === 0) continue;
      const h = this.hashes[i] as number;
      let j = Math.imul(h, FIBONACCI) >>> shift;
      while (slots[j] !== 0) j = (j + 1) & mask;
      slots[j] = e;
      hashes[j] = h;
    }
    this.slots = slots;
    this.hashes = hashes;
    this.mask = mask;
    this.shift = shift;
  }

  /** The words (one string each, made now) and their counts. */
  result(): Counted {
    const keys: string[] = new Array<string>(this.size);
    for (let e = 0; e < this.size; e++) {
      const s = this.starts[e] as number;
      keys[e] = this.arena.toString('latin1', s, s + (this.lens[e] as number));
    }
    return { keys, counts: this.counts.slice(0, this.size) };
  }
}

/** The engine's scan (examples/mapreduce/wordcount.ts) into the engine's KeyTable. */
function countKeyTable(text: string, t: KeyTable, counts: number[]): void {
  const n = text.length;
  let start = -1;
  const bump = (w: string): void => {
    const e = t.find(w);
    if (e < 0) counts[t.add(w)] = 1;
    else counts[e] = (counts[e] as number) + 1;
  };
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (((c | 32) - 97) >>> 0 < 26) {
      if (start < 0) start = i;
    } else if (start >= 0) {
      bump(text.slice(start, i));
      start = -1;
    }
  }
  if (start >= 0) bump(text.slice(start));
}

/** Counts files[next[0]++] until none are left, with the loop `kind`. */
export function countFiles(kind: LoopKind, files: readonly string[], next: Int32Array): Counted {
  if (kind === 'bytes') {
    const t = new ByteTable();
    for (;;) {
      const i = Atomics.add(next, 0, 1);
      const f = files[i];
      if (f === undefined) break;
      t.countBuffer(readFileSync(f));
    }
    return t.result();
  }
  const t = new KeyTable();
  const counts: number[] = [];
  for (;;) {
    const i = Atomics.add(next, 0, 1);
    const f = files[i];
    if (f === undefined) break;
    const b = readFileSync(f);
    countKeyTable(b.toString('latin1'), t, counts);
  }
  return { keys: t.keys, counts: Float64Array.from(counts) };
}

/** Adds the threads' tables into one map. */
export function merge(parts: readonly Counted[]): Map<string, number> {
  const total = new Map<string, number>();
  for (const p of parts) {
    for (let e = 0; e < p.keys.length; e++) {
      const k = p.keys[e] as string;
      total.set(k, (total.get(k) ?? 0) + (p.counts[e] as number));
    }
  }
  return total;
}

/**
 * Writes the counts as the engine's reducers write their output (the same
 * format, src/mapreduce/format.ts: `word TAB count` lines sorted by word in
 * JavaScript string order; words are letters, so nothing to escape): to a
 * temp file, fsync, rename to `part-r-00000`, fsync of the directory.
 */
export function writeCounts(dir: string, counts: ReadonlyMap<string, number>): void {
  const keys = [...counts.keys()].sort();
  let text = '';
  for (const k of keys) text += `${k}\t${counts.get(k)}\n`;
  const temp = join(dir, '.part-r-00000.tmp');
  const fd = openSync(temp, 'w');
  try {
    writeSync(fd, text, 0, 'latin1');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, join(dir, 'part-r-00000'));
  const d = openSync(dir, 'r');
  try {
    fsyncSync(d);
  } finally {
    closeSync(d);
  }
}

/** What the bench passes to a loop thread. */
export interface LoopWorkerData {
  loop: LoopKind;
  files: string[];
  /** [0] = the next file. */
  shared: SharedArrayBuffer;
}

if (!isMainThread && parentPort !== null) {
  const data = workerData as Partial<LoopWorkerData>;
  if (data.loop !== undefined) {
    const port = parentPort;
    const { loop, files, shared } = data as LoopWorkerData;
    port.once('message', () => {
      port.postMessage(countFiles(loop, files, new Int32Array(shared)));
    });
    port.postMessage({ ready: true });
  }
}
