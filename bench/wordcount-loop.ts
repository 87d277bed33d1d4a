/**
 * The single-process baselines of bench/wordcount.ts: word count (maximal
 * `[A-Za-z]+` runs, case-sensitive) written as well as I could for this
 * corpus, with no engine around it. Each thread pulls whole files from a
 * shared counter, counts into its own table and hands the table back; the
 * main thread merges the tables and writes the output the way the engine's
 * reducers do (see {@link writeCounts}).
 *
 * Two counting loops:
 * - `bytes` (the bench's "loop", the best one): reads each file into one
 *   buffer kept for all of them, scans its bytes (no string made of the
 *   file), computes each word's 32-bit FNV-1a hash while scanning it, and
 *   looks the word up in an open-addressing table whose slots hold the
 *   hash, the word's place in a byte arena, its length and its count side
 *   by side (one cache line per probe), comparing the bytes in place. No
 *   string is made per word occurrence, only one per distinct word at the
 *   end. In single-thread trials on two corpus files it took about 0.7x the
 *   CPU of the `keytable` loop; the slot layout and the kept read buffer
 *   (2026-12-07) took it from 254 to 215 CPU ms per 32 MiB file (median
 *   of 4, nearly quiet).
 * - `keytable`: the engine's own key table for keys emitted by `map`
 *   (src/mapreduce/packed-key-table.ts, the class a map task's buffer
 *   uses) fed the word strings the job's scan makes
 *   (latin1 string of the file, `charCodeAt` scan, `slice` per word): the
 *   engine's counting with no engine around it.
 *
 * Run as a worker thread (started by the bench through tsx's API): it loads,
 * answers `{ ready: true }`, waits for a message, counts, and posts a
 * {@link Counted}. So thread start-up and module loading are not timed, as
 * for the engine's worker threads.
 */
import {
  closeSync,
  fstatSync,
  fsyncSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { PackedKeyTable } from '../src/mapreduce/packed-key-table.js';

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

/**
 * The `bytes` loop's table: open addressing over a byte arena, each slot 4
 * ints side by side (hash, arena start, length, count; length 0 = empty),
 * so a probe reads one cache line, then the arena for the compare. Counts
 * are 32-bit: a word of this corpus occurs fewer than 2^31 times (2^29
 * words per GiB at most).
 */
class ByteTable {
  size = 0;
  private slots = new Int32Array(4 << 16);
  private shift = 32 - 16;
  private mask = (1 << 16) - 1;
  private arena = Buffer.alloc(1 << 20);
  private arenaLen = 0;

  /** Counts the words of `b[0, n)`. */
  countBuffer(b: Buffer, n: number): void {
    let i = 0;
    while (i < n) {
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
    let j = Math.imul(h, FIBONACCI) >>> this.shift;
    for (;;) {
      const at = j << 2;
      const l = slots[at + 2] as number;
      if (l === 0) break;
      if (l === len && slots[at] === h) {
        const arena = this.arena;
        let s = slots[at + 1] as number;
        let k = from;
        while (k < to && arena[s] === b[k]) {
          s++;
          k++;
        }
        if (k === to) {
          slots[at + 3] = (slots[at + 3] as number) + 1;
          return;
        }
      }
      j = (j + 1) & this.mask;
    }
    this.insert(b, from, to, h, j);
  }

  private insert(b: Buffer, from: number, to: number, h: number, j: number): void {
    const len = to - from;
    if (this.arenaLen + len > this.arena.length) {
      const bigger = Buffer.alloc(Math.max(this.arena.length * 2, this.arenaLen + len));
      this.arena.copy(bigger, 0, 0, this.arenaLen);
      this.arena = bigger;
    }
    b.copy(this.arena, this.arenaLen, from, to);
    const at = j << 2;
    this.slots[at] = h;
    this.slots[at + 1] = this.arenaLen;
    this.slots[at + 2] = len;
    this.slots[at + 3] = 1;
    this.arenaLen += len;
    if (2 * ++this.size > this.mask + 1) this.grow();
  }

  private grow(): void {
    const old = this.slots;
    const size = (this.mask + 1) * 2;
    const slots = new Int32Array(size * 4);
    const mask = size - 1;
    const shift = this.shift - 1;
    for (let i = 0; i < old.length; i += 4) {
      if (old[i + 2] === 0) continue;
      let j = Math.imul(old[i] as number, FIBONACCI) >>> shift;
      while (slots[(j << 2) + 2] !== 0) j = (j + 1) & mask;
      slots.set(old.subarray(i, i + 4), j << 2);
    }
    this.slots = slots;
    this.mask = mask;
    this.shift = shift;
  }

  /** Sets every word's count to 0, keeping the words (a kept table's next pass). */
  zeroCounts(): void {
    const slots = this.slots;
    for (let at = 3; at < slots.length; at += 4) slots[at] = 0;
  }

  /** The words counted (one string each, made now) and their counts. */
  result(): Counted {
    const keys: string[] = [];
    const counts = new Float64Array(this.size);
    const slots = this.slots;
    for (let at = 0; at < slots.length; at += 4) {
      const len = slots[at + 2] as number;
      if (len === 0 || slots[at + 3] === 0) continue;
      const s = slots[at + 1] as number;
      counts[keys.length] = slots[at + 3] as number;
      keys.push(this.arena.toString('latin1', s, s + len));
    }
    return { keys, counts: counts.subarray(0, keys.length) };
  }
}

/** The engine's scan (examples/mapreduce/wordcount.ts) into the engine's PackedKeyTable. */
function countKeyTable(text: string, t: PackedKeyTable, counts: number[]): void {
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

/** A `bytes` loop thread's table, kept from one pass to the next when the bench asks (`keep`). */
let keptTable: ByteTable | undefined;

/**
 * Counts files[next[0]++] until none are left, with the loop `kind`; with
 * `keep` (the `bytes` loop), in the thread's table from its previous pass,
 * its words kept and its counts zeroed, as the engine's threads keep their
 * byte dictionaries from one job to the next.
 */
export function countFiles(
  kind: LoopKind,
  files: readonly string[],
  next: Int32Array,
  keep = false,
): Counted {
  if (kind === 'bytes') {
    const t = keep && keptTable !== undefined ? keptTable : new ByteTable();
    if (keep) {
      t.zeroCounts();
      keptTable = t;
    }
    // One read buffer for all the files (a file read into a new buffer each
    // time cost ~10 % more: the kernel faults in fresh pages as it copies).
    let buf = Buffer.allocUnsafe(0);
    for (;;) {
      const i = Atomics.add(next, 0, 1);
      const f = files[i];
      if (f === undefined) break;
      const fd = openSync(f, 'r');
      try {
        const size = fstatSync(fd).size;
        if (buf.length < size) buf = Buffer.allocUnsafe(size);
        let n = 0;
        while (n < size) {
          const r = readSync(fd, buf, n, size - n, n);
          if (r === 0) break;
          n += r;
        }
        t.countBuffer(buf, n);
      } finally {
        closeSync(fd);
      }
    }
    return t.result();
  }
  const t = new PackedKeyTable();
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
  /** Keep the table from one pass to the next (see {@link countFiles}). */
  keep?: boolean;
}

if (!isMainThread && parentPort !== null) {
  const data = workerData as Partial<LoopWorkerData>;
  if (data.loop !== undefined) {
    const port = parentPort;
    const { loop, files, shared, keep } = data as LoopWorkerData;
    // One pass per message: the bench may run an untimed pass first.
    port.on('message', () => {
      port.postMessage(countFiles(loop, files, new Int32Array(shared), keep === true));
    });
    port.postMessage({ ready: true });
  }
}
