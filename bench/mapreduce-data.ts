/**
 * Seeded inputs of bench/mapreduce.ts, one generator per job shape, written
 * in files of at most {@link FILE_MIB} MiB into a directory (reused when it
 * already holds the same size and seed: see `ready`). Every generator draws
 * from its own xorshift stream, so a shape's input depends only on the seed
 * and its size.
 *
 * ```ts
 * const files = generate('csv', '/tmp/mr-bench/csv-256', 256 * 2 ** 20, 42);
 * ```
 */
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { makeDirs } from '../src/lib/dirs.js';
import { join } from 'node:path';

/** The job shapes the bench runs. */
export type Shape = 'wordcount' | 'csv' | 'postings' | 'join' | 'sort';

/** Largest input file (MiB): a size is cut into files of this size. */
export const FILE_MIB = 32;

/** A small, fast, seeded generator (xorshift32); `next()` in [0, 2^32). */
class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = (seed ^ 0x9e3779b9) >>> 0 || 1;
  }
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.next() / 0x100000000) * n);
  }
  /** An index in [0, n) drawn with a Zipf-like skew (rank r with weight about 1/r). */
  zipf(n: number): number {
    // Inverse of the CDF of weights 1/r, approximated by exp(u * ln n).
    const u = this.next() / 0x100000000;
    return Math.min(n - 1, Math.floor(Math.exp(u * Math.log(n + 1))) - 1);
  }
}

const SYLLABLES =
  'ka lo mi ne ru sa ti vo be da fe gi ho ju ly pa qu ro se tu wa xe yo ze an el in on ur'.split(
    ' ',
  );

/** A vocabulary of `n` distinct words made of syllables (some capitalised, as in prose). */
function vocabulary(n: number, rng: Rng): string[] {
  const seen = new Set<string>();
  const words: string[] = [];
  while (words.length < n) {
    const k = 1 + rng.int(4);
    let w = '';
    for (let i = 0; i < k; i++) w += SYLLABLES[rng.int(SYLLABLES.length)] as string;
    if (rng.int(10) === 0) w = w[0]?.toUpperCase() + w.slice(1);
    if (!seen.has(w)) {
      seen.add(w);
      words.push(w);
    }
  }
  return words;
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

const KEY_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/**
 * Writes `bytes` (about) of the shape's input into `dir` and returns the
 * files, sorted. Reuses what a previous call with the same arguments left.
 */
export function generate(shape: Shape, dir: string, bytes: number, seed: number): string[] {
  const stamp = join(dir, '.generated');
  const want = `${shape} ${bytes} ${seed}`;
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === want) return listFiles(dir);
  rmSync(dir, { recursive: true, force: true });
  makeDirs(dir);
  const rng = new Rng(seed + shape.length * 7919);
  const fileBytes = FILE_MIB * 1024 * 1024;
  const lines = lineMaker(shape, rng, bytes);
  let written = 0;
  let index = 0;
  while (written < bytes) {
    // Join: the users end at an eighth of the bytes, where the orders start.
    const usersEnd = Math.ceil(bytes / 8);
    const target =
      shape === 'join' && written < usersEnd
        ? Math.min(fileBytes, usersEnd - written)
        : Math.min(fileBytes, bytes - written);
    const name = fileName(shape, index++, written, bytes);
    const parts: string[] = [];
    let size = 0;
    if (shape === 'csv' && index === 1) {
      parts.push('station,time,temperature,sensor\n');
      size += 32;
    }
    while (size < target) {
      const line = lines(name);
      parts.push(line);
      size += line.length;
    }
    writeFileSync(join(dir, name), parts.join(''));
    written += size;
  }
  writeFileSync(stamp, want);
  return listFiles(dir);
}

function listFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => !f.startsWith('.'))
    .sort()
    .map((f) => join(dir, f));
}

/** Join inputs: the first eighth of the bytes are users, the rest orders. */
function fileName(shape: Shape, index: number, written: number, bytes: number): string {
  if (shape === 'join') {
    return written < Math.ceil(bytes / 8)
      ? `users-${pad(index, 3)}.csv`
      : `orders-${pad(index, 3)}.csv`;
  }
  const ext = shape === 'csv' ? 'csv' : shape === 'postings' ? 'tsv' : 'txt';
  return `part-${pad(index, 3)}.${ext}`;
}

/** A function giving the next line (with its `\n`) of the shape's input. */
function lineMaker(shape: Shape, rng: Rng, bytes: number): (file: string) => string {
  switch (shape) {
    case 'wordcount': {
      const words = vocabulary(60_000, rng);
      return () => {
        const n = 6 + rng.int(12);
        let s = words[rng.zipf(words.length)] as string;
        for (let i = 1; i < n; i++)
          s += (rng.int(12) === 0 ? ', ' : ' ') + words[rng.zipf(words.length)];
        return `${s}.\n`;
      };
    }
    case 'csv': {
      let time = 1_700_000_000;
      return () => {
        time += rng.int(3);
        const station = `st${pad(rng.zipf(50_000), 5)}`;
        const temp = rng.int(900) - 400;
        return `${station},${time},${temp},s${rng.int(48)}\n`;
      };
    }
    case 'postings': {
      const words = vocabulary(60_000, rng);
      let id = 0;
      return () => {
        const n = 40 + rng.int(120);
        let s = `${id++}\t${words[rng.zipf(words.length)]}`;
        for (let i = 1; i < n; i++) s += ` ${words[rng.zipf(words.length)]}`;
        return `${s}\n`;
      };
    }
    case 'join': {
      // Users first (the first eighth of the bytes, ~30 bytes each), then orders of random users.
      const users = Math.max(1, Math.floor(bytes / 8 / 30));
      const countries = 'de fr us uk jp br in ng cn it es se no pl nl'.split(' ');
      let user = 0;
      let order = 0;
      return (file) => {
        if (file.startsWith('users')) {
          const id = user++;
          return `u${pad(id, 8)},name${id % 100_003},${countries[id % countries.length]}\n`;
        }
        // One order in 50 names a user that does not exist (dropped by the inner join).
        const u = rng.int(50) === 0 ? users + rng.int(users) : rng.int(users);
        return `o${pad(order++, 10)},u${pad(u, 8)},${rng.int(100_000)}\n`;
      };
    }
    case 'sort': {
      // TeraSort-like 100-byte records: a 10-character random key, a space, 88 characters, \n.
      return () => {
        let key = '';
        for (let i = 0; i < 10; i++) key += KEY_ALPHABET[rng.int(KEY_ALPHABET.length)];
        let rest = '';
        const base = rng.next().toString(36).padStart(7, '0');
        for (let i = 0; i < 11; i++) rest += `${base}${i % 10}`;
        return `${key} ${rest}\n`;
      };
    }
  }
}
