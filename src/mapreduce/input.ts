/**
 * MapReduce input: globs to files, files to splits, splits to (offset, line) records.
 *
 * ```ts
 * const files = await expandInputs(['corpus/*.txt', 'extra.txt']); // absolute paths; NOT_FOUND if none
 * const splits = await planSplits(files, 32 * 1024 * 1024);       // one map task each
 * await readSplitLines(splits[0], (offset, line) => { ... });      // every line of the split
 * for await (const [offset, line] of readSplit(splits[0])) { ... } // the same, as an iterator
 * await readSplitBlocks(splits[0], (offset, block, lines) => { ... }); // whole lines, many at a time
 * await readSplitBytes(splits[0], (offset, bytes, lines) => { ... });  // the same, as bytes
 * ```
 *
 * A split is a byte range `[start, end)` of one file whose ends lie on line
 * boundaries: `start` is 0 or just after a `\n`, `end` is the file size or
 * just after a `\n`. {@link planSplits} cuts each file every `splitBytes` and
 * moves each cut forward to the next line start (reading a little of the file
 * to find it), so every line belongs to exactly one split, a line longer than
 * a split gives a split of its own, and empty files give no split. The
 * records of a split are its lines: the byte offset of the line's start in
 * the file, and its text without the `\n` (nor a `\r` before it), decoded as
 * UTF-8. A last line without `\n` is a record too. {@link readSplitBlocks}
 * gives the same text in blocks of whole lines with their line endings (for a
 * job's `mapBlock`), {@link readSplitBytes} the same blocks' bytes (for `mapBytes`).
 */
import { isAscii } from 'node:buffer';
import { readSync } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { glob, isDynamicPattern } from 'tinyglobby';
import { CohortError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import { ioError } from './format.js';

/** A byte range of one input file, cut on line boundaries; one map task. */
export interface Split {
  /** Absolute path of the file. */
  readonly file: string;
  /** First byte (0, or just after a `\n`). */
  readonly start: number;
  /** One past the last byte (the file size, or just after a `\n`). */
  readonly end: number;
}

/**
 * Expands input patterns into a list of absolute file paths: a glob (as
 * tinyglobby/picomatch understand it) gives its matching files in sorted
 * order; a plain path gives that file, or the files directly inside it if it
 * is a directory (sorted, hidden ones skipped). Duplicates are dropped, first
 * occurrence wins. A path that does not exist, or a glob that matches no
 * file, is a `NOT_FOUND` naming the pattern; no pattern at all is an
 * `INVALID_ARGUMENT`.
 */
export async function expandInputs(
  patterns: readonly string[],
  cwd = process.cwd(),
): Promise<string[]> {
  if (patterns.length === 0) throw new CohortError('INVALID_ARGUMENT', 'no input given');
  const out: string[] = [];
  const seen = new Set<string>();
  const add = (f: string): void => {
    if (!seen.has(f)) {
      seen.add(f);
      out.push(f);
    }
  };
  for (const pattern of patterns) {
    if (typeof pattern !== 'string' || pattern === '') {
      throw new CohortError('INVALID_ARGUMENT', 'an input pattern is empty');
    }
    if (isDynamicPattern(pattern)) {
      const found = await glob(pattern, {
        cwd,
        absolute: true,
        onlyFiles: true,
        dot: false,
        expandDirectories: false,
      });
      if (found.length === 0) {
        throw new CohortError('NOT_FOUND', `input ${pattern} matches no file`, {
          details: { input: pattern },
        });
      }
      for (const f of found.sort()) add(resolve(f));
      continue;
    }
    const abs = resolve(cwd, pattern);
    let st;
    try {
      st = await stat(abs);
    } catch (err) {
      throw new CohortError('NOT_FOUND', `input ${pattern} does not exist`, {
        cause: err,
        details: { input: pattern },
      });
    }
    if (st.isDirectory()) {
      const names = (await readdir(abs, { withFileTypes: true }))
        .filter((d) => d.isFile() && !d.name.startsWith('.'))
        .map((d) => d.name)
        .sort();
      if (names.length === 0) {
        throw new CohortError('NOT_FOUND', `input directory ${pattern} holds no file`, {
          details: { input: pattern },
        });
      }
      for (const n of names) add(join(abs, n));
    } else {
      add(abs);
    }
  }
  return out;
}

/** Bytes read at a time while looking for the line start after a cut. */
const PROBE_BYTES = 64 * 1024;

/**
 * Cuts `files` into splits of about `splitBytes` each, every cut moved forward
 * to the next line start (see the file header). Splits come in file order,
 * then offset order; that order is the job's input order.
 */
export async function planSplits(files: readonly string[], splitBytes: number): Promise<Split[]> {
  if (!Number.isInteger(splitBytes) || splitBytes < 1) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      `splitBytes must be a positive integer, got ${String(splitBytes)}`,
    );
  }
  const splits: Split[] = [];
  const probe = Buffer.allocUnsafe(PROBE_BYTES);
  for (const file of files) {
    let fh: FileHandle;
    try {
      fh = await open(file, 'r');
    } catch (err) {
      throw ioError(`input ${file}`, err);
    }
    try {
      const size = (await fh.stat()).size;
      let start = 0;
      while (start < size) {
        let end = start + splitBytes;
        if (end >= size) {
          end = size;
        } else {
          // Move the cut forward to just after the next '\n' at or after end - 1.
          let pos = end - 1;
          end = size;
          scan: while (pos < size) {
            const { bytesRead } = await fh.read(probe, 0, Math.min(PROBE_BYTES, size - pos), pos);
            if (bytesRead === 0) break;
            const nl = probe.subarray(0, bytesRead).indexOf(10);
            if (nl >= 0) {
              end = pos + nl + 1;
              break scan;
            }
            pos += bytesRead;
          }
        }
        splits.push({ file, start, end });
        start = end;
      }
    } finally {
      await fh.close();
    }
  }
  return splits;
}

/** Counts of one pass over a split. */
export interface SplitReadStats {
  /** Records (lines) visited. */
  records: number;
  /** Bytes read. */
  bytes: number;
}

/**
 * Calls `visit(offset, line)` for every record of `split`, in order, reading
 * the file in large chunks (`limits.mrReadChunkBytes`). Synchronous visits, no
 * allocation per record beyond the line string itself: the map task's hot path.
 * A line longer than `limits.mrLineBytesMax` is an `INVALID_ARGUMENT`; a file
 * that shrank under us is a `FAILED_PRECONDITION`. `afterChunk`, if given,
 * runs after each chunk's lines (the map task spills there) and is awaited if
 * it returns a promise. `blockBytes` (a test hook) sets how much ASCII text is
 * decoded at once before it is cut into lines (see visitLines).
 */
export async function readSplitLines(
  split: Split,
  visit: (offset: number, line: string) => void,
  chunkBytes: number = limits.mrReadChunkBytes,
  afterChunk?: () => Promise<void> | undefined,
  blockBytes: number = MAP_BLOCK_BYTES,
): Promise<SplitReadStats> {
  return readSplitChunks(
    split,
    (buf, end, base) => visitLines(buf, end, base, blockBytes, visit),
    chunkBytes,
    afterChunk,
  );
}

/**
 * Bytes of input (about) that {@link readSplitBlocks} hands over per block.
 * Small enough that a block's string is an ordinary young object that dies
 * young: with 1 MiB blocks (large objects, old space) a word-count map task
 * ran about four times as many full GCs, and two map threads spent about
 * 0.8 CPU s per 512 MiB in GC helper threads instead of 0.35.
 */
export const MAP_BLOCK_BYTES = 64 * 1024;

/**
 * Calls `visit(offset, block, lines)` for consecutive blocks of whole lines of
 * `split`, in order: `block` is their text (decoded as UTF-8) WITH their line
 * endings (`\n` or `\r\n`; the split's last line may have none, or a lone
 * `\r`), `offset` the byte offset of its first line, `lines` how many records
 * it holds. A block is about `blockBytes` long, or one line if that line is
 * longer. Read like {@link readSplitLines}, with the same errors;
 * concatenating the blocks gives the split's text.
 */
export async function readSplitBlocks(
  split: Split,
  visit: (offset: number, block: string, lines: number) => void,
  chunkBytes: number = limits.mrReadChunkBytes,
  afterChunk?: () => Promise<void> | undefined,
  blockBytes: number = MAP_BLOCK_BYTES,
): Promise<SplitReadStats> {
  return readSplitChunks(
    split,
    (buf, end, base) => visitBlocks(buf, end, base, blockBytes, visit),
    chunkBytes,
    afterChunk,
  );
}

/**
 * Calls `visit(offset, bytes, lines)` for consecutive blocks of whole lines
 * of `split`, in order, as bytes (for a job's `mapBytes`): `bytes` is a view
 * of the read buffer holding one read chunk's whole lines with their line
 * endings (the split's last line may have none), valid during the call only;
 * `offset` is the file offset of `bytes[0]`, `lines` how many records it
 * holds. Read like {@link readSplitLines}, with the same errors;
 * concatenating the blocks gives the split's bytes.
 */
export async function readSplitBytes(
  split: Split,
  visit: (offset: number, bytes: Buffer, lines: number) => void,
  chunkBytes: number = limits.mrReadChunkBytes,
  afterChunk?: () => Promise<void> | undefined,
): Promise<SplitReadStats> {
  return readSplitChunks(
    split,
    (buf, end, base) => {
      const lines = countLines(buf, 0, end);
      visit(base, buf.subarray(0, end), lines);
      return lines;
    },
    chunkBytes,
    afterChunk,
  );
}

/** The lines of `buf[p, q)`, which ends just after a `\n` or at the end of its split. */
function countLines(buf: Buffer, p: number, q: number): number {
  if (q <= p) return 0;
  let lines = buf[q - 1] === 10 ? 0 : 1; // a last line without '\n' (end of split)
  for (let i = buf.indexOf(10, p); i >= 0 && i < q; i = buf.indexOf(10, i + 1)) lines++;
  return lines;
}

/**
 * The thread's spare read buffer (see {@link takeReadBuffer}): none while a
 * read holds it.
 */
let spareReadBuffer: Buffer | undefined;

/** Lets go of the thread's spare read buffer (an idle thread's memory); returns its bytes. */
export function dropReadBuffer(): number {
  const bytes = spareReadBuffer?.length ?? 0;
  spareReadBuffer = undefined;
  return bytes;
}

/**
 * A read buffer of `size` bytes for {@link readSplitChunks}: a view of the
 * thread's spare buffer when it is free and large enough, else a fresh one.
 * Give it back with {@link releaseReadBuffer}. A map task reads its split
 * through one 8 MiB buffer (`limits.mrReadChunkBytes`); allocating it anew
 * for every task gave V8 8 MiB of external memory to account for (and the
 * kernel 2048 fresh pages to fault in) per task, so each thread keeps one
 * (at most `limits.mrReadChunkBytes`) from read to read. Reads that overlap
 * (several in one thread at once) get their own.
 */
function takeReadBuffer(size: number): Buffer {
  const spare = spareReadBuffer;
  if (spare !== undefined && spare.length >= size) {
    spareReadBuffer = undefined;
    return spare.subarray(0, size);
  }
  return Buffer.allocUnsafeSlow(size);
}

/**
 * Gives back a buffer from {@link takeReadBuffer} (the read is over: nothing
 * refers to its bytes any more). The larger of it and the spare is kept if it
 * is at most `limits.mrReadChunkBytes`.
 */
function releaseReadBuffer(buf: Buffer): void {
  const whole = Buffer.from(buf.buffer, buf.byteOffset, buf.buffer.byteLength - buf.byteOffset);
  if (whole.length > limits.mrReadChunkBytes) return;
  if (spareReadBuffer === undefined || spareReadBuffer.length < whole.length) {
    spareReadBuffer = whole;
  }
}

/**
 * Whether {@link readSplitChunks} reads synchronously: in a worker thread, a
 * map task's own (src/mapreduce/worker-thread.ts), which has nothing else to
 * do while its task runs. An asynchronous read there left the thread idle
 * while a libuv thread copied the chunk, on the other core, in the time the
 * other map thread could have used (bench:wordcount's tasks2, five
 * alternating pairs: 254.8 -> 263.3 MB/s). On the main thread (a node's
 * event loop, a test) reads stay asynchronous.
 */
const SYNC_READS = !isMainThread;

/**
 * Reads `split` in chunks of whole lines (the last one of the split may lack
 * its `\n`) and calls `onChunk(buf, end, base)` for the bytes `buf[0, end)`,
 * whose first byte is at file offset `base`; `onChunk` returns the number of
 * records it saw. See {@link readSplitLines} for the errors.
 */
async function readSplitChunks(
  split: Split,
  onChunk: (buf: Buffer, end: number, base: number) => number,
  chunkBytes: number,
  afterChunk: (() => Promise<void> | undefined) | undefined,
): Promise<SplitReadStats> {
  let fh: FileHandle;
  try {
    fh = await open(split.file, 'r');
  } catch (err) {
    throw ioError(`input ${split.file}`, err);
  }
  let records = 0;
  let taken: Buffer | undefined;
  try {
    const total = split.end - split.start;
    taken = takeReadBuffer(Math.max(1, Math.min(chunkBytes, total)));
    let buf = taken;
    let have = 0; // bytes of buf in use, from 0
    let base = split.start; // file offset of buf[0]
    let pos = split.start; // next file offset to read
    while (pos < split.end || have > 0) {
      if (pos < split.end) {
        if (have === buf.length) {
          // A line longer than the buffer: grow it.
          if (buf.length >= limits.mrLineBytesMax) {
            throw new CohortError(
              'INVALID_ARGUMENT',
              `input ${split.file}: the line at offset ${base} is longer than mrLineBytesMax (${limits.mrLineBytesMax} bytes)`,
            );
          }
          const bigger = Buffer.allocUnsafe(Math.min(buf.length * 2, limits.mrLineBytesMax, total));
          buf.copy(bigger, 0, 0, have);
          buf = bigger;
        }
        const want = Math.min(buf.length - have, split.end - pos);
        const bytesRead = SYNC_READS
          ? readSync(fh.fd, buf, have, want, pos)
          : (await fh.read(buf, have, want, pos)).bytesRead;
        if (bytesRead === 0) {
          throw new CohortError(
            'FAILED_PRECONDITION',
            `input ${split.file} shrank while it was read (at offset ${pos})`,
          );
        }
        have += bytesRead;
        pos += bytesRead;
      }
      const atEnd = pos >= split.end;
      const cut = atEnd ? have : buf.lastIndexOf(10, have - 1) + 1;
      if (cut === 0) continue; // no complete line yet: read more
      records += onChunk(buf, cut, base);
      if (afterChunk !== undefined) {
        const r = afterChunk();
        if (r !== undefined) await r;
      }
      if (cut < have) buf.copy(buf, 0, cut, have);
      have -= cut;
      base += cut;
    }
    return { records, bytes: total };
  } finally {
    if (taken !== undefined) releaseReadBuffer(taken);
    await fh.close();
  }
}

/**
 * Visits the lines of `buf[0, end)`, whose first byte is at file offset
 * `base`, ASCII text decoded in blocks of about `blockBytes`. The last line
 * may lack its `\n` (end of split). Returns the count.
 */
function visitLines(
  buf: Buffer,
  end: number,
  base: number,
  blockBytes: number,
  visit: (offset: number, line: string) => void,
): number {
  let n = 0;
  const ascii = isAscii(buf.subarray(0, end));
  if (!ascii) {
    const s = buf.toString('utf8', 0, end);
    if (s.length === end) {
      // Every character came from exactly one byte (single invalid bytes
      // decoded as U+FFFD), so string indexes are byte offsets.
      let p = 0;
      while (p < end) {
        let nl = s.indexOf('\n', p);
        if (nl < 0) nl = end;
        const e = nl > p && s.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
        visit(base + p, s.slice(p, e));
        n++;
        p = nl + 1;
      }
      return n;
    }
  }
  if (ascii) {
    // ASCII: string indexes are byte offsets. Decode blocks of lines (latin1,
    // the fast way) and cut them into lines with String.prototype.indexOf and
    // slice, which stay in compiled code: a Buffer.indexOf and a
    // Buffer.toString per line (two calls into C++) cost ~75 ns a line
    // against ~35 (csv: ~50 ms of a 32 MiB map task's ~800). A line is then
    // a slice of its block (V8 shares the block's characters for slices of 13
    // characters or more): a map task that keeps such a slice keeps the
    // 64 KiB block alive (tasks.ts copies the keys it keeps).
    let b = 0;
    while (b < end) {
      const q = blockEnd(buf, b, end, blockBytes);
      const s = buf.toString('latin1', b, q);
      const m = s.length;
      let p = 0;
      while (p < m) {
        let nl = s.indexOf('\n', p);
        if (nl < 0) nl = m;
        const e = nl > p && s.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
        visit(base + b + p, s.slice(p, e));
        n++;
        p = nl + 1;
      }
      b = q;
    }
    return n;
  }
  // Find lines in the bytes and decode each on its own as UTF-8.
  let p = 0;
  while (p < end) {
    let nl = buf.indexOf(10, p);
    if (nl < 0 || nl >= end) nl = end;
    const e = nl > p && buf[nl - 1] === 13 ? nl - 1 : nl;
    visit(base + p, buf.toString('utf8', p, e));
    n++;
    p = nl + 1;
  }
  return n;
}

/**
 * The end of the block of whole lines that starts at `p` in `buf[0, end)`:
 * just after the last `\n` within `blockBytes`, or after the first one past
 * it (a longer line is a block of its own), or `end`.
 */
function blockEnd(buf: Buffer, p: number, end: number, blockBytes: number): number {
  if (p + blockBytes >= end) return end;
  const q = buf.lastIndexOf(10, p + blockBytes - 1) + 1;
  if (q > p) return q;
  const nl = buf.indexOf(10, p + blockBytes);
  return nl < 0 || nl >= end ? end : nl + 1;
}

/**
 * Visits `buf[0, end)` (whole lines, first byte at file offset `base`) in
 * blocks of about `blockBytes`, each cut just after a `\n` (or at `end`).
 * Returns the number of lines.
 */
function visitBlocks(
  buf: Buffer,
  end: number,
  base: number,
  blockBytes: number,
  visit: (offset: number, block: string, lines: number) => void,
): number {
  let n = 0;
  let p = 0;
  while (p < end) {
    const q = blockEnd(buf, p, end, blockBytes);
    let lines = buf[q - 1] === 10 ? 0 : 1; // a last line without '\n' (end of split)
    for (let i = buf.indexOf(10, p); i >= 0 && i < q; i = buf.indexOf(10, i + 1)) lines++;
    const block = buf.subarray(p, q);
    // ASCII decodes byte for byte (latin1, the fast way); anything else as UTF-8.
    visit(base + p, buf.toString(isAscii(block) ? 'latin1' : 'utf8', p, q), lines);
    n += lines;
    p = q;
  }
  return n;
}

/**
 * The records of `split` as an async iterator of `[offset, line]`. Holds the
 * split's records in memory: for tests and tools (the map task uses
 * {@link readSplitLines}).
 */
export async function* readSplit(split: Split): AsyncGenerator<[number, string], void, undefined> {
  const records: [number, string][] = [];
  await readSplitLines(split, (offset, line) => {
    records.push([offset, line]);
  });
  yield* records;
}
