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
import { createReadStream } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { Packr, Unpackr } from 'msgpackr';
import { CohortError, isCohortError } from '../lib/errors.js';
import { crc32c } from '../lib/crc32c.js';
import { limits } from '../lib/limits.js';
import { FrameDecoder } from '../wire/frame.js';

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
 * An upper bound of the MessagePack size of `values` (an array) if every
 * value is a number, boolean, null or string; -1 otherwise. The run writer
 * packs such records a whole block per call, sized by these bounds, instead
 * of one record at a time.
 */
function simpleBound(values: readonly unknown[]): number {
  let n = 5; // array header
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    const t = typeof v;
    if (t === 'number') {
      // A small integer is one byte (positive or negative fixint); anything else at most 9.
      n += (v as number) >= -32 && (v as number) < 128 && Number.isInteger(v) ? 1 : 9;
    } else if (t === 'string') {
      n += 5 + 3 * (v as string).length; // UTF-8: at most 3 bytes per UTF-16 code unit
    } else if (t === 'boolean' || v === null) {
      n += 1;
    } else {
      return -1;
    }
  }
  return n;
}

/**
 * Writes one sorted run: `add(key, values)` with strictly ascending keys, then
 * `finish()`. The file lives under a temp name until `finish()` renames it to
 * `path`; `abort()` deletes it.
 *
 * Records whose values are all numbers, booleans, null or strings (a word
 * count's) are gathered as they are and a whole data block is packed with one
 * MessagePack call, cut by an upper bound of its encoded size; other records
 * are packed one by one, so a block of them is cut at its exact size. Either
 * way a data frame holds `[key0, values0, key1, values1, ...]`.
 */
export class RunWriter {
  /** Records written so far: one per key, more for a key with very many values. */
  keys = 0;
  /** Values written so far. */
  values = 0;
  private bytes = 0;
  /** Records of the block being built, not yet encoded (`key, values, ...`): the simple kind. */
  private raw: unknown[] = [];
  /** An upper bound of the encoded size of `raw`. */
  private rawBound = 0;
  /** Encoded keys and value lists of the block being built, in order: the other kind. */
  private parts: Uint8Array[] = [];
  private blockBytes = 0;
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
    if (this.lastKey !== undefined && !(this.lastKey < key)) {
      throw new CohortError(
        'INVALID_ARGUMENT',
        `run keys out of order: ${JSON.stringify(key)} after ${JSON.stringify(this.lastKey)}`,
      );
    }
    this.lastKey = key;
    const bound = simpleBound(values);
    if (bound >= 0) this.addRaw(key, values, bound + 5 + 3 * key.length);
    else this.addRecord(key, values);
    return this.pendingBytes >= WRITE_BYTES_TARGET;
  }

  /** Adds one simple record (its encoded size is at most `bound`); a long one takes several records. */
  private addRaw(key: string, values: readonly unknown[], bound: number): void {
    if (bound > RECORD_BYTES_MAX && values.length > 1) {
      const mid = values.length >> 1;
      const a = values.slice(0, mid);
      const b = values.slice(mid);
      this.addRaw(key, a, simpleBound(a) + 5 + 3 * key.length);
      this.addRaw(key, b, simpleBound(b) + 5 + 3 * key.length);
      return;
    }
    if (this.parts.length > 0 || this.rawBound + bound > RECORD_BYTES_MAX) this.cutBlock();
    this.raw.push(key, values);
    this.rawBound += bound;
    this.keys++;
    this.values += values.length;
    if (this.rawBound >= BLOCK_BYTES_TARGET) this.cutBlock();
  }

  /** Encodes one record; a key with very many values takes several records, in order. */
  private addRecord(key: string, values: readonly unknown[]): void {
    const vb = packr.pack(values);
    if (vb.length > RECORD_BYTES_MAX && values.length > 1) {
      const mid = values.length >> 1;
      this.addRecord(key, values.slice(0, mid));
      this.addRecord(key, values.slice(mid));
      return;
    }
    const kb = packr.pack(key);
    if (this.raw.length > 0 || this.blockBytes + kb.length + vb.length > RECORD_BYTES_MAX) {
      this.cutBlock();
    }
    this.parts.push(kb, vb);
    this.blockBytes += kb.length + vb.length;
    this.keys++;
    this.values += values.length;
    if (this.blockBytes >= BLOCK_BYTES_TARGET) this.cutBlock();
  }

  /** Ends the block being built (of either kind) with a data frame. */
  private cutBlock(): void {
    if (this.raw.length > 0) {
      this.push(frame(TAG_DATA, packr.pack(this.raw)));
      this.raw = [];
      this.rawBound = 0;
    }
    if (this.parts.length === 0) return;
    // A MessagePack array32 header, then the elements already encoded.
    const head = Buffer.allocUnsafe(5);
    head[0] = 0xdd;
    head.writeUInt32BE(this.parts.length, 1);
    this.push(frame(TAG_DATA, Buffer.concat([head, ...this.parts])));
    this.parts = [];
    this.blockBytes = 0;
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

function describeSource(source: RunSource, index: number): string {
  return typeof source === 'string' ? `run ${source}` : `run #${index} (stream)`;
}

function corruption(where: string, what: string, cause?: unknown): CohortError {
  return new CohortError('CORRUPTION', `${where}: ${what}`, { cause, details: { run: where } });
}

/**
 * Reads a run, yielding its data blocks (`[key0, values0, key1, values1, ...]`)
 * after checking every frame's checksum, the header, the key order and the end
 * frame. A damaged or truncated run fails with `CORRUPTION`; a missing file
 * with `NOT_FOUND`.
 */
export async function* readRun(
  source: RunSource,
  index = 0,
): AsyncGenerator<unknown[], void, undefined> {
  const where = describeSource(source, index);
  const chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array> =
    typeof source === 'string' ? createReadStream(source, { highWaterMark: 1024 * 1024 }) : source;
  const decoder = new FrameDecoder({ frameBytesMax: limits.mrRunBlockBytesMax });
  let state: 'header' | 'data' | 'done' = 'header';
  let keys = 0;
  let values = 0;
  let lastKey: string | undefined;
  try {
    for await (const chunk of chunks) {
      decoder.push(chunk);
      for (let p = decoder.next(); p !== undefined; p = decoder.next()) {
        if (p.length < 1) throw corruption(where, 'empty frame');
        const tag = p[0];
        let body: unknown;
        try {
          body = unpackr.unpack(p.subarray(1));
        } catch (err) {
          throw corruption(where, 'a frame is not MessagePack', err);
        }
        if (state === 'header') {
          if (tag !== TAG_HEADER || !Array.isArray(body) || body[0] !== RUN_MAGIC) {
            throw corruption(where, 'not a cohort run file (no header)');
          }
          if (body[1] !== RUN_VERSION)
            throw corruption(where, `unknown run version ${String(body[1])}`);
          state = 'data';
        } else if (state === 'done') {
          throw corruption(where, 'bytes after the end frame');
        } else if (tag === TAG_DATA) {
          if (!Array.isArray(body) || body.length % 2 !== 0)
            throw corruption(where, 'bad data block');
          for (let i = 0; i < body.length; i += 2) {
            const k: unknown = body[i];
            const vs: unknown = body[i + 1];
            if (typeof k !== 'string' || !Array.isArray(vs))
              throw corruption(where, 'bad record in a data block');
            if (lastKey !== undefined && lastKey > k) throw corruption(where, 'keys out of order');
            lastKey = k;
            keys++;
            values += vs.length;
          }
          yield body;
        } else if (tag === TAG_END) {
          if (!Array.isArray(body) || body[0] !== keys || body[1] !== values) {
            throw corruption(where, 'end frame counts do not match the data');
          }
          state = 'done';
        } else {
          throw corruption(where, `unknown frame tag ${String(tag)}`);
        }
      }
    }
    if (decoder.bufferedBytes > 0) throw corruption(where, 'truncated inside a frame');
    if (state !== 'done') throw corruption(where, 'truncated (no end frame)');
  } catch (err) {
    if (isCohortError(err)) {
      if (err.code === 'CORRUPTION' || err.code === 'NOT_FOUND' || err.code === 'PERMISSION_DENIED')
        throw err;
      if (
        err.code === 'CHECKSUM_MISMATCH' ||
        err.code === 'FRAME_TOO_LARGE' ||
        err.code === 'DECODE_ERROR'
      ) {
        throw corruption(where, err.message, err);
      }
      throw err;
    }
    if (typeof (err as { code?: unknown } | undefined)?.code === 'string')
      throw ioError(`reading ${where}`, err);
    throw err;
  }
}
