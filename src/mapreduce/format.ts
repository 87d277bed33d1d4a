/**
 * MapReduce file formats: the job's output files, the map-output runs that the
 * shuffle moves, and the default partitioner. Every node uses these, so they
 * are deterministic and documented here.
 *
 * ```ts
 * const name = partFileName(3);                    // 'part-r-00003'
 * const r = defaultPartition('hello', 4);          // same number on every node
 * const line = outputLine('hello', 3);             // 'hello\t3\n'
 *
 * const w = await RunWriter.create('/tmp/t/m-0.r3.run');   // temp file until finish()
 * w.add('apple', [1, 1]); w.add('pear', [2]);      // keys strictly ascending
 * const { bytes } = await w.finish();              // renamed into place
 * for await (const block of readRun('/tmp/t/m-0.r3.run')) { ... } // [k, vs, k, vs, ...]
 * ```
 *
 * **Output files.** Reducer `r` writes `part-r-NNNNN` (5 digits, zero padded)
 * in the output directory: one line per emitted pair, `key TAB value LF`, in
 * the order reduce emitted them; reduce runs over keys in ascending
 * JavaScript string order (UTF-16 code units), so with one emit per key a part
 * file is sorted by key. Keys and string values are written as they are, except
 * that `\`, TAB, LF and CR are escaped as `\\`, `\t`, `\n`, `\r` (so every
 * line splits back unambiguously). Numbers, booleans and bigints are written
 * with `String()`; `null`/`undefined` as the empty string; anything else as
 * JSON. The sequential runner writes the same files, byte for byte.
 *
 * **Run files** (map output, one per map task and reducer) are a sequence of
 * frames as on the wire ({@link import('../wire/frame.js')}): `u32 BE length |
 * u32 BE CRC32C(payload) | payload`. The payload's first byte is a tag: `H`
 * (header, first frame: MessagePack `['cohort-mr-run', 1]`), `D` (data:
 * MessagePack array `[key0, values0, key1, values1, ...]`, keys ascending
 * across the whole run; a key with very many values may fill several
 * consecutive records, read back in order), `E` (end, last frame: MessagePack
 * `[records, values]` counts). A run without its end frame is truncated, and
 * reading it fails with `CORRUPTION`, so a half-fetched run is never merged.
 * Run files are written to a temp name and renamed, so a reader never sees a
 * partial one; they are not fsynced (a lost run is recomputed by re-running
 * its map task, as in the MapReduce paper §3.3).
 */
import { open, rename, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { Packr, Unpackr } from 'msgpackr';
import { CohortError, isCohortError } from '../lib/errors.js';
import { crc32c } from '../lib/crc32c.js';
import { limits } from '../lib/limits.js';
import { FrameDecoder } from '../wire/frame.js';
import { BadBlock, BlockDecoder, BlockEncoder } from './run-block.js';
import type { ValueArena } from './value-arena.js';

/** The file name of reducer `partition`'s output: `part-r-00000`, `part-r-00001`, ... */
export function partFileName(partition: number): string {
  return `part-r-${String(partition).padStart(5, '0')}`;
}

/**
 * The default partitioner: 32-bit FNV-1a over the key's UTF-16 code units,
 * modulo `reducers`. Pure arithmetic on the key, so every node, thread and
 * run agrees (FNV: Fowler/Noll/Vo, http://www.isthe.com/chongo/tech/comp/fnv/).
 */
export function defaultPartition(key: string, reducers: number): number {
  if (reducers === 1) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % reducers;
}

const NEEDS_ESCAPE = /[\\\t\n\r]/;

function escapeText(s: string): string {
  if (!NEEDS_ESCAPE.test(s)) return s;
  return s.replace(/[\\\t\n\r]/g, (c) =>
    c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r',
  );
}

/** How an output value is written (see the file header). */
export function formatValue(value: unknown): string {
  const t = typeof value;
  if (t === 'string') return escapeText(value as string);
  if (t === 'number' || t === 'boolean' || t === 'bigint') return String(value);
  if (value === undefined || value === null) return '';
  const json = JSON.stringify(value, (_k, v: unknown) =>
    typeof v === 'bigint' ? String(v) : v,
  ) as string | undefined;
  return escapeText(json ?? '');
}

/** One output line: `key TAB value LF`, escaped as the file header says. */
export function outputLine(key: string, value: unknown): string {
  return `${escapeText(key)}\t${formatValue(value)}\n`;
}

/** Splits an output line (without its LF) back into key and value text, undoing the escapes. */
export function parseOutputLine(line: string): [key: string, value: string] {
  const tab = line.indexOf('\t');
  if (tab < 0) throw new CohortError('DECODE_ERROR', 'an output line has no TAB');
  return [unescapeText(line.slice(0, tab)), unescapeText(line.slice(tab + 1))];
}

function unescapeText(s: string): string {
  if (!s.includes('\\')) return s;
  return s.replace(/\\(.)/g, (_m, c: string) =>
    c === 't' ? '\t' : c === 'n' ? '\n' : c === 'r' ? '\r' : c,
  );
}

// MessagePack as in the wire codec: standard types, no records extension, so
// a run is readable by any MessagePack decoder.
const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false });

/** Encodes a value as MessagePack, as it travels between map and reduce. */
export function packValue(value: unknown): Buffer {
  return packr.pack(value);
}

/** Decodes what {@link packValue} produced. */
export function unpackValue(bytes: Uint8Array): unknown {
  return unpackr.unpack(bytes);
}

/** What a value looks like after the trip through a run file (a Map becomes a plain object, a Set an array). */
export function roundTrip<V>(value: V): V {
  return unpackr.unpack(packr.pack(value)) as V;
}

const TAG_HEADER = 0x48; // 'H'
const TAG_DATA = 0x44; // 'D'
const TAG_END = 0x45; // 'E'
const RUN_MAGIC = 'cohort-mr-run';
const RUN_VERSION = 1;
/**
 * Encoded bytes (or, for scalar records, an upper bound of them) gathered into
 * one data frame before it is cut. A reducer holds one decoded block per run
 * it merges, so small blocks keep its live heap small: with 1 MiB, a word
 * count's reducer (16 runs of 25k keys) spent about 30% of its time in GC, and
 * 128 KiB took its CPU from about 145 ms to 115.
 */
const BLOCK_BYTES_TARGET = 128 * 1024;
/** Encoded values past which one key's values are cut into several records (and a block is cut before a record that would overflow it). */
const RECORD_BYTES_MAX = 4 * 1024 * 1024;
/** Bytes of frames buffered before they are written to the file. */
const WRITE_BYTES_TARGET = 4 * 1024 * 1024;

function frame(tag: number, body: Uint8Array): [Buffer, Uint8Array] {
  const head = Buffer.allocUnsafe(9);
  const len = body.length + 1;
  if (len > limits.mrRunBlockBytesMax) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      `a run block of ${len} bytes exceeds mrRunBlockBytesMax ${limits.mrRunBlockBytesMax} (one key has too many values, or one value is too big)`,
    );
  }
  head.writeUInt32BE(len, 0);
  head[8] = tag;
  head.writeUInt32BE(crc32c(body, crc32c(head.subarray(8, 9))), 4);
  return [head, body];
}

/** A unique temp name next to `path` (same directory, so rename is atomic). */
export function tempPathFor(path: string): string {
  const slash = path.lastIndexOf('/');
  return `${path.slice(0, slash + 1)}.${path.slice(slash + 1)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
}

/**
 * Writes one sorted run: `add(key, values)` with strictly ascending keys, then
 * `finish()`. The file lives under a temp name until `finish()` renames it to
 * `path`; `abort()` deletes it.
 *
 * Records are encoded into the data block being built as they are added
 * (run-block.ts: scalars by hand, other records by msgpackr), and a block is
 * cut once it reaches {@link BLOCK_BYTES_TARGET}, or before a record that
 * would take it past {@link RECORD_BYTES_MAX}.
 */
export class RunWriter {
  /** Records written so far: one per key, more for a key with very many values. */
  keys = 0;
  /** Values written so far. */
  values = 0;
  private bytes = 0;
  private readonly block = new BlockEncoder();
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private lastKey: string | undefined;

  private constructor(
    readonly path: string,
    private readonly temp: string,
    private readonly fh: FileHandle,
  ) {
    this.push(frame(TAG_HEADER, packr.pack([RUN_MAGIC, RUN_VERSION])));
  }

  /** Opens the temp file for a run that will be renamed to `path`. */
  static async create(path: string): Promise<RunWriter> {
    const temp = tempPathFor(path);
    const fh = await open(temp, 'w');
    return new RunWriter(path, temp, fh);
  }

  private push([head, body]: [Uint8Array, Uint8Array]): void {
    this.pending.push(head, body);
    this.pendingBytes += head.length + body.length;
    this.bytes += head.length + body.length;
  }

  /**
   * Appends a key and its values. Keys must be strictly ascending (a bug
   * otherwise). Returns true when buffered bytes should be written with
   * {@link flush} before adding more (the caller decides when to await).
   */
  add(key: string, values: readonly unknown[]): boolean {
    this.inOrder(key);
    this.addRecord(key, values);
    return this.pendingBytes >= WRITE_BYTES_TARGET;
  }

  /** Checks that `key` comes after the last key added, and keeps it as the last. */
  private inOrder(key: string): void {
    if (this.lastKey !== undefined && !(this.lastKey < key)) {
      throw new CohortError(
        'INVALID_ARGUMENT',
        `run keys out of order: ${JSON.stringify(key)} after ${JSON.stringify(this.lastKey)}`,
      );
    }
    this.lastKey = key;
  }

  /**
   * Appends a key and its one value, a number: {@link add} of `[value]`,
   * encoded straight into the block (no array made, no arena to copy from:
   * a map task's folded counts). Same contract as {@link add}.
   */
  addNumber(key: string, value: number): boolean {
    this.inOrder(key);
    const block = this.block;
    if (block.records > 0 && block.bytes + 9 + key.length + 16 > RECORD_BYTES_MAX) {
      this.cutBlock();
    }
    block.beginRecord(key, 1);
    block.appendValue(value);
    this.keys++;
    this.values++;
    if (block.bytes >= BLOCK_BYTES_TARGET) this.cutBlock();
    return this.pendingBytes >= WRITE_BYTES_TARGET;
  }

  /**
   * Appends a key and its values as a {@link ValueArena} holds them (encoded
   * when they were emitted; copied, not encoded again). Same contract as
   * {@link add}.
   */
  addEncoded(key: string, arena: ValueArena, e: number): boolean {
    this.inOrder(key);
    const count = arena.count(e);
    const total = arena.bytesOf(e);
    let v = arena.first(e);
    if (total <= RECORD_BYTES_MAX) {
      this.encodedRecord(key, arena, v, count, total);
    } else {
      // Very many values: consecutive records of at most RECORD_BYTES_MAX (one value at least).
      let left = count;
      while (left > 0) {
        let n = 0;
        let bytes = 0;
        let u = v;
        while (u >= 0 && (n === 0 || bytes + arena.valueBytes(u) <= RECORD_BYTES_MAX)) {
          bytes += arena.valueBytes(u);
          n++;
          u = arena.next(u);
        }
        this.encodedRecord(key, arena, v, n, bytes);
        v = u;
        left -= n;
      }
    }
    return this.pendingBytes >= WRITE_BYTES_TARGET;
  }

  /** One record of `n` values from the arena, starting at value `v` (`bytes` encoded bytes). */
  private encodedRecord(key: string, arena: ValueArena, v: number, n: number, bytes: number): void {
    const block = this.block;
    if (block.records > 0 && block.bytes + bytes + key.length + 16 > RECORD_BYTES_MAX) {
      this.cutBlock();
    }
    block.beginRecord(key, n);
    arena.copyValues(v, n, block);
    this.keys++;
    this.values += n;
    if (block.bytes >= BLOCK_BYTES_TARGET) this.cutBlock();
  }

  /** Encodes one record; a key with very many values takes several records, in order. */
  private addRecord(key: string, values: readonly unknown[]): void {
    const block = this.block;
    const before = block.bytes;
    if (block.add(key, values)) {
      const size = block.bytes - before;
      if (size > RECORD_BYTES_MAX && values.length > 1) {
        block.dropLast(before);
        this.addHalves(key, values);
        return;
      }
      if (block.records > 1 && block.bytes > RECORD_BYTES_MAX) {
        block.dropLast(before);
        this.cutBlock();
        block.add(key, values);
      }
    } else {
      const vb = packr.pack(values);
      if (vb.length > RECORD_BYTES_MAX && values.length > 1) {
        this.addHalves(key, values);
        return;
      }
      const kb = packr.pack(key);
      if (block.records > 0 && block.bytes + kb.length + vb.length > RECORD_BYTES_MAX) {
        this.cutBlock();
      }
      block.addPacked(kb, vb);
    }
    this.keys++;
    this.values += values.length;
    if (block.bytes >= BLOCK_BYTES_TARGET) this.cutBlock();
  }

  private addHalves(key: string, values: readonly unknown[]): void {
    const mid = values.length >> 1;
    this.addRecord(key, values.slice(0, mid));
    this.addRecord(key, values.slice(mid));
  }

  /** Ends the block being built with a data frame. */
  private cutBlock(): void {
    if (this.block.records > 0) this.push(frame(TAG_DATA, this.block.take()));
  }

  /** Writes the buffered frames to the temp file. */
  async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const chunks = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    await this.fh.writev(chunks);
  }

  /** Writes the end frame, closes the file and renames it to its final path. */
  async finish(): Promise<{ path: string; bytes: number; keys: number; values: number }> {
    this.cutBlock();
    this.push(frame(TAG_END, packr.pack([this.keys, this.values])));
    try {
      await this.flush();
      await this.fh.close();
      await rename(this.temp, this.path);
    } catch (err) {
      await this.abort();
      throw ioError(`writing run ${this.path}`, err);
    }
    return { path: this.path, bytes: this.bytes, keys: this.keys, values: this.values };
  }

  /** Closes and deletes the temp file (after a failure). Never throws. */
  async abort(): Promise<void> {
    await this.fh.close().catch(() => undefined);
    await unlink(this.temp).catch(() => undefined);
  }
}

/** Turns a file-system error into a CohortError naming what was being done. */
export function ioError(what: string, err: unknown): CohortError {
  if (isCohortError(err)) return err;
  const code = (err as { code?: string } | undefined)?.code;
  const msg = err instanceof Error ? err.message : String(err);
  if (code === 'ENOENT') return new CohortError('NOT_FOUND', `${what}: ${msg}`, { cause: err });
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new CohortError('PERMISSION_DENIED', `${what}: ${msg}`, { cause: err });
  }
  return new CohortError('IO_ERROR', `${what}: ${msg}`, { cause: err });
}

/**
 * Where a run comes from: a local file path, or its bytes as a stream of
 * chunks of any size (the shuffle fetching it over RPC).
 */
export type RunSource = string | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/** Bytes a run reader reads from its file at once (at most). */
const RUN_READ_BYTES = 1024 * 1024;
/** Bytes read past a run file's size at its open, to see its end (or what was appended since). */
const RUN_TAIL_READ_BYTES = 4 * 1024;

/**
 * A run file's bytes in chunks of at most {@link RUN_READ_BYTES}, each
 * buffer no bigger than what is left of the file as it was opened: a
 * word-count run is ~200 KiB, and a stream's 1 MiB buffers (two per run
 * with its end-of-file read) made a reduce of 16 runs allocate ~32 MiB,
 * each an external allocation that brought the next full collection
 * closer. The end is where a read returns nothing (a file that grew after
 * the open is read on; one cut short ends early and reads as truncated).
 */
async function* fileChunks(path: string): AsyncGenerator<Uint8Array, void, undefined> {
  const fh = await open(path, 'r');
  try {
    let left = (await fh.stat()).size;
    let pos = 0;
    for (;;) {
      const want = left > 0 ? Math.min(left, RUN_READ_BYTES) : RUN_TAIL_READ_BYTES;
      const buf = Buffer.allocUnsafe(want);
      const { bytesRead } = await fh.read(buf, 0, want, pos);
      if (bytesRead === 0) return;
      pos += bytesRead;
      left = Math.max(0, left - bytesRead);
      yield bytesRead === want ? buf : buf.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}

function describeSource(source: RunSource, index: number): string {
  return typeof source === 'string' ? `run ${source}` : `run #${index} (stream)`;
}

function corruption(where: string, what: string, cause?: unknown): CohortError {
  return new CohortError('CORRUPTION', `${where}: ${what}`, { cause, details: { run: where } });
}

/**
 * Reads a run block by block, and each block record by record (decoding a
 * record only when it is reached), checking every frame's checksum, the
 * header, each block's structure, the key order and the end frame. A damaged
 * or truncated run fails with `CORRUPTION`; a missing file with `NOT_FOUND`.
 *
 * ```ts
 * const r = new RunReader('/tmp/t/m-0.r3.run');
 * while (await r.nextBlock()) while (r.nextRecord()) use(r.key, r.takeValues([]));
 * await r.close();
 * ```
 */
export class RunReader {
  /** The current record's key. */
  key = '';
  private readonly where: string;
  private readonly chunks: AsyncIterator<Uint8Array> | Iterator<Uint8Array>;
  /** Whether to ask for the next chunk as soon as a block is loaded (our own file stream). */
  private readonly readAhead: boolean;
  /** The next chunk, asked for ahead of need (readAhead). */
  private ahead: Promise<IteratorResult<Uint8Array>> | undefined;
  private readonly decoder = new FrameDecoder({ frameBytesMax: limits.mrRunBlockBytesMax });
  private state: 'header' | 'data' | 'done' = 'header';
  private keys = 0;
  private values = 0;
  private lastKey: string | undefined;
  /** The bytes of the last key {@link nextKey} read: prevKey[prevStart, prevEnd). */
  private prevKey: Uint8Array | undefined;
  private prevStart = 0;
  private prevEnd = 0;
  private block: BlockDecoder | undefined;

  /**
   * `readAhead` (default: for a file path, whose stream is the reader's own)
   * asks for the next chunk as soon as a block is loaded; see readNextChunk.
   */
  constructor(source: RunSource, index = 0, readAhead = typeof source === 'string') {
    this.where = describeSource(source, index);
    const iterable: AsyncIterable<Uint8Array> | Iterable<Uint8Array> =
      typeof source === 'string' ? fileChunks(source) : source;
    this.readAhead = readAhead;
    this.chunks =
      Symbol.asyncIterator in iterable
        ? iterable[Symbol.asyncIterator]()
        : iterable[Symbol.iterator]();
  }

  /** Loads the next data block; false at the end of the run (after checking its end). */
  async nextBlock(): Promise<boolean> {
    const where = this.where;
    this.block = undefined;
    try {
      for (;;) {
        const p = this.decoder.next();
        if (p === undefined) {
          const ahead = this.ahead;
          this.ahead = undefined;
          const r = await (ahead ?? this.chunks.next());
          if (r.done === true) {
            if (this.decoder.bufferedBytes > 0) throw corruption(where, 'truncated inside a frame');
            if (this.state !== 'done') throw corruption(where, 'truncated (no end frame)');
            return false;
          }
          this.decoder.push(r.value);
          continue;
        }
        if (p.length < 1) throw corruption(where, 'empty frame');
        const tag = p[0];
        if (this.state === 'done') throw corruption(where, 'bytes after the end frame');
        if (this.state === 'data' && tag === TAG_DATA) {
          let block: BlockDecoder;
          try {
            block = new BlockDecoder(p.subarray(1));
          } catch (err) {
            if (err instanceof BadBlock) throw corruption(where, err.message);
            throw err;
          }
          this.keys += block.records;
          this.values += block.values;
          this.block = block;
          if (this.readAhead && this.ahead === undefined) this.readNextChunk();
          return true;
        }
        let body: unknown;
        try {
          body = unpackr.unpack(p.subarray(1));
        } catch (err) {
          throw corruption(where, 'a frame is not MessagePack', err);
        }
        if (this.state === 'header') {
          if (tag !== TAG_HEADER || !Array.isArray(body) || body[0] !== RUN_MAGIC) {
            throw corruption(where, 'not a cohort run file (no header)');
          }
          if (body[1] !== RUN_VERSION)
            throw corruption(where, `unknown run version ${String(body[1])}`);
          this.state = 'data';
        } else if (tag === TAG_END) {
          if (!Array.isArray(body) || body[0] !== this.keys || body[1] !== this.values) {
            throw corruption(where, 'end frame counts do not match the data');
          }
          this.state = 'done';
        } else {
          throw corruption(where, `unknown frame tag ${String(tag)}`);
        }
      }
    } catch (err) {
      throw readError(where, err);
    }
  }

  /** The current block's bytes (after nextBlock() returned true), which {@link keyStart} and {@link keyEnd} index. */
  get blockBytes(): Uint8Array {
    return (this.block as BlockDecoder).bytes;
  }

  /**
   * True if the current block is decoded by hand (run-block.ts), so that
   * {@link nextKey} may be used on it.
   */
  get blockByHand(): boolean {
    return this.block?.byHand ?? false;
  }

  /** Values of the current record not taken yet. */
  get valuesLeft(): number {
    return (this.block as BlockDecoder).valuesLeft;
  }

  /**
   * Takes the current record's next value and returns it when it is a
   * number; undefined, taking nothing, when it is not one (or none is left).
   * After nextKey() only.
   */
  takeNumber(): number | undefined {
    return (this.block as BlockDecoder).takeNumber();
  }

  /** Start of the current key's UTF-8 bytes in {@link blockBytes} (after nextKey()). */
  get keyStart(): number {
    return (this.block as BlockDecoder).keyStart;
  }

  /** End of the current key's UTF-8 bytes in {@link blockBytes} (after nextKey()). */
  get keyEnd(): number {
    return (this.block as BlockDecoder).keyEnd;
  }

  /**
   * As {@link nextRecord}, but leaves the key as its bytes
   * (`blockBytes[keyStart, keyEnd)`) without making its string; the key
   * order is checked all the same. Only on a block decoded by hand
   * ({@link blockByHand}); a reader uses either this or nextRecord.
   */
  nextKey(): boolean {
    const b = this.block;
    if (b === undefined || !b.nextKey()) return false;
    const bytes = b.bytes;
    const s = b.keyStart;
    const e = b.keyEnd;
    const prev = this.prevKey;
    if (prev !== undefined && keyAfter(prev, this.prevStart, this.prevEnd, bytes, s, e)) {
      throw corruption(this.where, 'keys out of order');
    }
    this.prevKey = bytes;
    this.prevStart = s;
    this.prevEnd = e;
    return true;
  }

  /** Moves to the next record of the current block and decodes its key; false after its last. */
  nextRecord(): boolean {
    const b = this.block;
    if (b === undefined || !b.nextRecord()) return false;
    const k = b.key;
    if (this.lastKey !== undefined && this.lastKey > k) {
      throw corruption(this.where, 'keys out of order');
    }
    this.lastKey = k;
    this.key = k;
    return true;
  }

  /** Appends the current record's values to `out` (once per record) and returns it. */
  takeValues(out: unknown[]): unknown[] {
    return (this.block as BlockDecoder).takeValues(out);
  }

  /**
   * Asks the file for its next chunk while the current block is merged, so
   * that the read (a trip through libuv's thread pool, which waits its turn
   * when the cores are busy) is done by the time the block is used up: a
   * reducer's merge otherwise waited for one read each time a run's block
   * ran out. Holds at most one chunk more per run (1 MiB).
   */
  private readNextChunk(): void {
    // (A sync source's next() that throws rejects p.)
    const p = new Promise<IteratorResult<Uint8Array>>((resolve) => resolve(this.chunks.next()));
    // Handled where it is awaited (nextBlock); this only keeps a read that
    // fails after the merge stopped (close) from being an unhandled rejection.
    p.catch(() => undefined);
    this.ahead = p;
  }

  /** Stops reading (closes the file). Never throws. */
  async close(): Promise<void> {
    this.block = undefined;
    this.ahead = undefined;
    try {
      await this.chunks.return?.();
    } catch {
      // closing only
    }
  }
}

/**
 * True if the key whose UTF-8 bytes are `a[as, ae)` comes after the one in
 * `b[bs, be)` in JavaScript string order (UTF-16 code units, the order of
 * a run's keys). Byte order is that order where the keys first differ in
 * ASCII bytes, or where one is the other plus whole characters; anywhere
 * else (UTF-8 orders a character above U+FFFF after U+E000-U+FFFF, UTF-16
 * before it) both keys are decoded and compared as strings.
 */
export function keyAfter(
  a: Uint8Array,
  as: number,
  ae: number,
  b: Uint8Array,
  bs: number,
  be: number,
): boolean {
  const la = ae - as;
  const lb = be - bs;
  const n = la < lb ? la : lb;
  let i = 0;
  while (i < n && a[as + i] === b[bs + i]) i++;
  if (i < n) {
    const x = a[as + i] as number;
    const y = b[bs + i] as number;
    if (x < 0x80 && y < 0x80) return x > y;
  } else {
    if (la === lb) return false;
    // The longer one goes on with a new character (not a continuation byte): it comes after.
    const next = (la > lb ? a[as + n] : b[bs + n]) as number;
    if (next < 0x80 || next >= 0xc0) return la > lb;
  }
  const text = (u: Uint8Array, s: number, e: number): string =>
    Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('utf8', s, e);
  return text(a, as, ae) > text(b, bs, be);
}

/** Maps what reading a run threw to the documented codes. */
function readError(where: string, err: unknown): unknown {
  if (isCohortError(err)) {
    if (err.code === 'CORRUPTION' || err.code === 'NOT_FOUND' || err.code === 'PERMISSION_DENIED')
      return err;
    if (
      err.code === 'CHECKSUM_MISMATCH' ||
      err.code === 'FRAME_TOO_LARGE' ||
      err.code === 'DECODE_ERROR'
    ) {
      return corruption(where, err.message, err);
    }
    return err;
  }
  if (typeof (err as { code?: unknown } | undefined)?.code === 'string')
    return ioError(`reading ${where}`, err);
  return err;
}

/**
 * Reads a run, yielding its data blocks as arrays (`[key0, values0, key1,
 * values1, ...]`), checked as {@link RunReader} checks them. For tests and
 * tools; the reduce merges through {@link RunReader}.
 */
export async function* readRun(
  source: RunSource,
  index = 0,
): AsyncGenerator<unknown[], void, undefined> {
  const r = new RunReader(source, index);
  try {
    while (await r.nextBlock()) {
      const block: unknown[] = [];
      while (r.nextRecord()) block.push(r.key, r.takeValues([]));
      yield block;
    }
  } finally {
    await r.close();
  }
}
