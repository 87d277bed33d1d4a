/**
 * The two task functions a MapReduce worker runs, and the merge they share.
 * They touch only local files (and run bytes handed to them), so the runtime
 * can call them in a worker thread, a test, or the benchmark alike.
 *
 * ```ts
 * const job = await loadJob('examples/mapreduce/wordcount.ts');
 * const [split] = await planSplits(await expandInputs(['in/*.txt']), 32 << 20);
 * const m = await runMapTask({ job, split, reducers: 2, dir: '/tmp/mr/maps', taskId: 'm-0', attempt: 1 });
 * // m.runs[r] = { partition: r, path, bytes, keys, values }: reducer r fetches m.runs[r].path
 * const r = await runReduceTask({
 *   job, partition: 0, taskId: 'r-0', attempt: 1,
 *   runs: [m.runs[0].path],                 // or byte streams fetched by the shuffle
 *   output: '/out/part-r-00000',            // written via temp file, fsync, rename
 * });
 * ```
 *
 * **Map task.** Reads its split in big chunks, calls `map` once per line (or
 * the job's `mapBlock` once per block of lines, or its `mapBytes` once per
 * chunk's bytes, when it has one and no record needs handling on its own: no
 * `skipBadRecords`, no records to skip), and collects what it emits in
 * memory, grouped by key (a {@link PackedKeyTable} numbering the keys, and an
 * array of their values; `mapBytes` keys are found by their bytes in the
 * thread's byte dictionary, a {@link ByteKeyIndex} kept from task to task,
 * by the hash the job's scan passes if it does). With `fold`, each key
 * holds one value, folded as values are emitted; with `combine`, a key's
 * new values are combined as soon as {@link COMBINE_AT} of them pile up (the
 * combiner never sees its own output again there), and once more at the end,
 * so a word count keeps one number per distinct word. A combiner seen to
 * only regroup what it is given (as many scalars out as in: a concatenation,
 * postings' lists of ids) is not run after its first combines: from then on
 * values are encoded as they are emitted and written to the runs as they
 * are, as without a combiner (decoding them again to run a combiner that
 * gives back what it is given cost the map task more than the reducer
 * spends on the uncombined values). Without a combiner, values
 * are encoded as they are emitted (value-arena.ts). Past
 * `limits.mrMapBufferEntriesMax` buffered keys + values, or about
 * `limits.mrMapBufferBytesMax` of them (estimated), the buffer is spilled
 * (after the current read chunk) as sorted runs, merged at the end. The
 * output is one sorted run file per reducer (see format.ts), each written to
 * a temp name and renamed, named `<taskId>.a<attempt>.r<NNNNN>.run`
 * in `dir`; an empty partition still gets a (tiny) run, so every reducer
 * fetches one run from every map task.
 *
 * **Reduce task.** Merges the runs (k-way, by key; equal keys in the order
 * the runs are given, so pass them in map-task order and values reach
 * `reduce` in input order), calls `reduce` once per key, and writes the
 * output lines to a temp file in the output directory, then fsyncs it,
 * renames it to `output` and fsyncs the directory (a job summing numbers,
 * `fold: sumFold`, has its runs added up per key by {@link sumRuns}
 * instead of merged: `reduce` gets one value per key). A failed reducer removes
 * its temp file and leaves nothing; two reducers of the same partition
 * (a backup task) each rename a complete, identical file, so the output is
 * never partial or doubled.
 *
 * **Errors.** A throwing `map` fails the task with `USER_CODE_ERROR` naming
 * the file and byte offset of the record (or, with `skipBadRecords`, skips the
 * record, counts it and lists it in `skipped`). A throwing `reduce`, `combine`
 * or `partition` fails the task with `USER_CODE_ERROR` naming the key. Disk
 * failures are `IO_ERROR` / `PERMISSION_DENIED` / `NOT_FOUND`; a damaged run
 * is `CORRUPTION`. Either way the task leaves no final-named file behind.
 */
import { open, rename, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { AssertionError } from '../lib/assert.js';
import { makeDirs } from '../lib/dirs.js';
import { CohortError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import type { AnyJob, EmitBytes, MapContext, ReduceContext } from './job.js';
import { builtInFold } from './job.js';
import type { RunSource } from './format.js';
import {
  RunWriter,
  defaultPartition,
  RunReader,
  ioError,
  outputLine,
  tempPathFor,
} from './format.js';
import type { Split } from './input.js';
import { readSplitBlocks, readSplitBytes, readSplitLines } from './input.js';
import { BYTE_HASH_SEED, ByteKeyIndex, KeyTable, byteHash, sortKeyIds } from './key-table.js';
import { PackedKeyTable } from './packed-key-table.js';
import { ValueArena } from './value-arena.js';

/** Values of one key buffered before the combiner runs on them (map side). */
export const COMBINE_AT = 64;

/** Estimated bytes of a buffered key besides its characters (Map entry, array). */
const KEY_BYTES = 64;

/**
 * Slices of at least this many characters share their parent's characters
 * in V8 (SlicedString::kMinLength); shorter ones are copies.
 */
const SHARED_SLICE_CHARS = 13;

/**
 * `key` as a string of its own, for the buffer to keep: a line is a slice of
 * a 64 KiB block (input.ts), and so is a long key sliced from it; kept as
 * it is, each distinct key would keep its block alive (a whole split's text
 * for a job with long keys). Concatenating and slicing again makes V8 copy
 * the characters into a fresh string (once per distinct key).
 */
function ownKey(key: string): string {
  return key.length < SHARED_SLICE_CHARS ? key : (' ' + key).slice(1);
}

/** A rough size of a buffered value (strings by length, the rest by kind). */
function sizeOf(v: unknown): number {
  if (typeof v === 'string') return 16 + v.length;
  if (typeof v !== 'object' || v === null) return 8;
  return Array.isArray(v) ? 32 + 8 * v.length : 64;
}

/**
 * Scalars in a value, counting into arrays and plain objects (3 levels): how
 * much data a combiner was given or gave back, whatever its grouping.
 */
function scalars(v: unknown, depth = 0): number {
  if (typeof v !== 'object' || v === null || depth >= 3) return 1;
  let n = 0;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) n += scalars(v[i], depth + 1);
  } else {
    for (const x of Object.values(v)) n += scalars(x, depth + 1);
  }
  return n;
}

/** Eager combines measured before the map task decides whether its combiner only regroups. */
const COMBINES_MEASURED = 256;

/** Eager combines after which a combiner that only regroups is no longer run (see toArena). */
const COMBINES_BEFORE_ARENA = 64;

function sizeOfAll(vs: readonly unknown[]): number {
  let n = 0;
  for (let i = 0; i < vs.length; i++) n += sizeOf(vs[i]);
  return n;
}

/** What a map task is given. */
export interface MapTaskInput {
  /** The job (from loadJob/defineJob). */
  readonly job: AnyJob;
  /** The split to map. */
  readonly split: Split;
  /** Number of reducers R: the task writes R runs. */
  readonly reducers: number;
  /** Directory for the runs (created if missing); local to the worker's node. */
  readonly dir: string;
  /** The task's id, used in file names: letters, digits, `.`, `_`, `-`. */
  readonly taskId: string;
  /** The attempt number (re-executions and backups get new ones), used in file names. */
  readonly attempt: number;
  /** The job's parameters (`ctx.params`). */
  readonly params?: Readonly<Record<string, string>>;
  /** Overrides the job's `defaults.skipBadRecords`. */
  readonly skipBadRecords?: boolean;
  /**
   * Byte offsets of records not to map at all (found bad by earlier
   * attempts, e.g. records whose map crashed its worker): skipped and counted.
   */
  readonly skipOffsets?: readonly number[];
  /**
   * Optional shared progress slots, written before each record: `[0]` = the
   * offset of the record being mapped, `[1]` = records done. Back it with a
   * SharedArrayBuffer and the parent can tell which record a worker thread
   * died on.
   */
  readonly progress?: Float64Array;
  /** Test hook: overrides `limits.mrMapBufferEntriesMax` (to force spills). */
  readonly bufferEntriesMax?: number;
  /** Test hook: overrides `limits.mrReadChunkBytes` (the buffer may spill after every chunk). */
  readonly readChunkBytes?: number;
  /** Test hook: overrides the size of the blocks given to `mapBlock` (`MAP_BLOCK_BYTES`). */
  readonly mapBlockBytes?: number;
  /** Test hook: overrides {@link COMBINE_AT}. */
  readonly combineAt?: number;
  /** Test hook: overrides COMBINES_BEFORE_ARENA (small inputs reach the switch to encoded values). */
  readonly combinesBeforeArena?: number;
  /** Test hook: overrides `limits.mrKeyDictionaryBytesMax` (the thread's byte dictionary is renewed past it). */
  readonly keyDictionaryBytesMax?: number;
}

/** One map-output run: the part of a map task's output bound for one reducer. */
export interface RunFile {
  /** The reducer it is for. */
  readonly partition: number;
  /** Local path of the run file. */
  readonly path: string;
  /** Size of the file in bytes. */
  readonly bytes: number;
  /** Distinct keys in it. */
  readonly keys: number;
  /** Values in it (after combining). */
  readonly values: number;
}

/** A record a map task skipped. */
export interface SkippedRecord {
  readonly file: string;
  readonly offset: number;
  /** Why: the error's message, or `listed` for a record in `skipOffsets`. */
  readonly reason: string;
}

/** The counters of one map task. */
export interface MapCounters {
  /** Records (lines) read. */
  recordsIn: number;
  /** Bytes of input read. */
  bytesIn: number;
  /** Records skipped (bad or listed). */
  recordsSkipped: number;
  /** Pairs emitted by map. */
  emitted: number;
  /** Combiner calls. */
  combines: number;
  /** Distinct keys written, over all runs. */
  keysOut: number;
  /** Values written, over all runs. */
  valuesOut: number;
  /** Bytes written, over all runs. */
  bytesOut: number;
  /** Times the buffer was spilled to disk before the end. */
  spills: number;
}

/** What a map task returns. */
export interface MapTaskResult {
  readonly taskId: string;
  readonly attempt: number;
  /** One run per reducer, indexed by partition. */
  readonly runs: RunFile[];
  readonly counters: MapCounters;
  /** User counters (`ctx.count`). */
  readonly userCounters: Record<string, number>;
  /** Skipped records (at most `limits.mrSkippedRecordsListedMax`; all are counted). */
  readonly skipped: SkippedRecord[];
}

const TASK_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

function checkTaskId(taskId: string, attempt: number): void {
  if (typeof taskId !== 'string' || !TASK_ID.test(taskId)) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      `task id ${JSON.stringify(taskId)} is not a file-name-safe id`,
    );
  }
  if (!Number.isInteger(attempt) || attempt < 0) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      `attempt must be a non-negative integer, got ${String(attempt)}`,
    );
  }
}

function checkReducers(reducers: number): void {
  if (!Number.isInteger(reducers) || reducers < 1 || reducers > limits.mrReducersMax) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      `reducers must be an integer in 1..${limits.mrReducersMax}, got ${String(reducers)}`,
    );
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function userError(what: string, err: unknown, details: Record<string, unknown>): CohortError {
  if (err instanceof AssertionError) throw err; // our bug, not theirs
  return new CohortError('USER_CODE_ERROR', `${what}: ${message(err)}`, { cause: err, details });
}

function keyText(key: string): string {
  return JSON.stringify(key.length > 80 ? `${key.slice(0, 80)}...` : key);
}

function badKey(phase: string, key: unknown): CohortError {
  return new CohortError(
    'USER_CODE_ERROR',
    `${phase} emitted a key that is not a string: ${typeof key}`,
  );
}

const noParams: Readonly<Record<string, string>> = Object.freeze({});

/** A buffer's value for a key it holds none of (mapBytes with fold: `byNumber`). */
const NONE: unknown = Object.freeze({ none: true });

let dictionary: ByteKeyIndex | undefined;

/**
 * The thread's byte dictionary: every `mapBytes` key seen by this thread's
 * map tasks, found by its bytes, with its string (a {@link ByteKeyIndex} in
 * front of a {@link KeyTable} of its own). A key's bytes decode to the same
 * string whatever the job, so it is kept from task to task: a word count's
 * 32 MiB task no longer decodes and indexes its ~50k words anew (nor grows
 * an index to hold them, and leaves them to the garbage collector) when the
 * thread has seen them in an earlier task. Past
 * `limits.mrKeyDictionaryBytesMax` (estimated), a fresh one is started,
 * taken up from the next buffer on (a buffer keeps the one it started with).
 */
function threadDictionary(bytesMax: number): ByteKeyIndex {
  if (dictionary === undefined || dictionary.bytes > bytesMax) {
    dictionary = new ByteKeyIndex(new KeyTable());
  }
  return dictionary;
}

/**
 * Drops the thread's byte dictionary: the next `mapBytes` buffer starts an
 * empty one. For the engine's warm-up (tasks-warm.ts), whose made-up keys
 * no job needs.
 */
export function dropKeyDictionary(): void {
  dictionary = undefined;
}

/** The thread's byte dictionary: distinct keys and estimated bytes (tests, diagnostics). */
export function keyDictionaryStats(): { keys: number; bytes: number } {
  return { keys: dictionary?.table.size ?? 0, bytes: dictionary?.bytes ?? 0 };
}
/** The block a `mapBytes` emit refers to outside a call: none (any range is out of it). */
const noBytes = new Uint8Array(0);

function badRange(start: unknown, end: unknown, block: Uint8Array): CohortError {
  return new CohortError(
    'USER_CODE_ERROR',
    `mapBytes emitted the range [${String(start)}, ${String(end)}) of a block of ${block.length} bytes; expected integers 0 <= start <= end <= ${block.length}`,
  );
}

function badHash(start: number, end: number, hash: unknown): CohortError {
  return new CohortError(
    'USER_CODE_ERROR',
    `mapBytes emitted the range [${start}, ${end}) with the hash ${String(hash)}, which is not its byte hash (32-bit FNV-1a from ctx.byteHashSeed)`,
  );
}

/**
 * The buffer of a map task whose job has `mapBytes` and `fold`, and the
 * emit its `mapBytes` is given. Each key is a byte range of the block being
 * mapped, found by its bytes in the thread's byte dictionary
 * ({@link threadDictionary}), which keeps every key's string from one task
 * to the next (a key seen before costs no string); the buffer holds each
 * key's folded value at the key's number in the dictionary (`byNumber`,
 * {@link NONE} where it holds none), and the numbers in the order they were
 * first emitted (`touched`).
 *
 * One per thread, kept from task to task ({@link takeBytesFoldBuffer}), so
 * a job's emit ({@link emitSum} or {@link emitFold}, by its fold) is the
 * same function in every task: the job's scan calls it once per key, and V8
 * inlines it (with the dictionary's probe) into the scan while that call
 * site sees one function. With a new closure per task (and
 * the buffer's state in the task's context) a 32 MiB word-count map task
 * took 227-236 CPU ms (min of 12), against 200-226 this way (see
 * src/mapreduce/RUNTIME.md). Its `byNumber` and `touched` arrays are kept
 * too (emptied after each buffer) instead of grown anew each task to the
 * dictionary's ~50k words.
 */
class BytesFoldBuffer {
  /** The block being mapped: {@link noBytes} outside a `mapBytes` call. */
  block: Uint8Array = noBytes;
  /** The dictionary this buffer's numbers are in (taken at its first emit). */
  dict: ByteKeyIndex | undefined = undefined;
  /** Each key's folded value by dictionary number, NONE where the buffer has none. */
  readonly byNumber: unknown[] = [];
  /** The buffer's key numbers, in the order first emitted. */
  readonly touched: number[] = [];
  /** Pairs emitted in this task. */
  emitted = 0;
  /** Keys + values buffered (the spill bound), and their estimated bytes. */
  entries = 0;
  bytes = 0;
  /** The fold is the built-in sum (added in place). */
  foldSum = false;
  /** The job's fold (`fold(a, b, key)`). */
  fold: (a: unknown, b: unknown, key: string) => unknown = () => undefined;
  /** The thread's dictionary is renewed past this estimated size (limits.mrKeyDictionaryBytesMax). */
  dictionaryBytesMax = 0;

  /**
   * The `emit` of `mapBytes` for the built-in sum fold (see {@link emitFold}).
   * Each fold kind has an emit of its own, so V8's feedback for one (which
   * calls it inlines into the job's scan, with what budget) is not made by
   * the other kind's jobs run earlier in the thread (the engine's warm-up
   * runs both).
   */
  readonly emitSum = (start: number, end: number, value: unknown, hash?: number): void => {
    const g = this.number(start, end, hash === undefined ? this.hashOf(start, end) : hash);
    this.emitted++;
    const byNumber = this.byNumber;
    const held = g < byNumber.length ? byNumber[g] : NONE;
    if (held === NONE) this.add(g, value, end - start);
    else byNumber[g] = (held as number) + (value as number);
  };

  /** The `emit` of `mapBytes` for any other fold: the hot path stays small; the rest is in methods. */
  readonly emitFold = (start: number, end: number, value: unknown, hash?: number): void => {
    const g = this.number(start, end, hash === undefined ? this.hashOf(start, end) : hash);
    this.emitted++;
    const byNumber = this.byNumber;
    const held = g < byNumber.length ? byNumber[g] : NONE;
    if (held === NONE) this.add(g, value, end - start);
    else byNumber[g] = this.folded(g, held, value);
  };

  /**
   * The dictionary number of the block's bytes [start, end), checked;
   * `hash` as the scan gave it (a wrong one is refused, {@link badHash}).
   */
  private number(start: number, end: number, hash: number): number {
    const block = this.block;
    if (!((start | 0) === start && (end | 0) === end && start >= 0 && start <= end)) {
      throw badRange(start, end, block);
    }
    if (end > block.length) throw badRange(start, end, block);
    const d = this.dict ?? this.takeDictionary();
    const g = d.internHashed(block, start, end, hash);
    if (g < 0) throw badHash(start, end, hash);
    return g;
  }

  /**
   * The byte hash of [start, end) of the block, for a scan that passed none
   * (0 if the range is not in the block: {@link number} refuses it).
   */
  private hashOf(start: number, end: number): number {
    const block = this.block;
    return start >= 0 && end <= block.length ? byteHash(BYTE_HASH_SEED, block, start, end) : 0;
  }

  private takeDictionary(): ByteKeyIndex {
    const d = threadDictionary(this.dictionaryBytesMax);
    this.dict = d;
    return d;
  }

  /** The first value of key number `g` (whose bytes are `len` long) in this buffer. */
  private add(g: number, value: unknown, len: number): void {
    const byNumber = this.byNumber;
    while (byNumber.length <= g) byNumber.push(NONE);
    byNumber[g] = value;
    this.touched.push(g);
    this.entries += 2;
    this.bytes += KEY_BYTES + 2 * len + sizeOf(value); // the key's string and its bytes
  }

  private folded(g: number, held: unknown, value: unknown): unknown {
    const key = (this.dict as ByteKeyIndex).table.keys[g] as string;
    try {
      return this.fold(held, value, key);
    } catch (err) {
      throw userError(`fold threw on key ${keyText(key)}`, err, { key, phase: 'fold' });
    }
  }

  /** Empties the buffer once written (its next emit takes up the thread's dictionary again). */
  clear(): void {
    const byNumber = this.byNumber;
    const touched = this.touched;
    for (let i = 0; i < touched.length; i++) byNumber[touched[i] as number] = NONE;
    touched.length = 0;
    this.dict = undefined;
    this.entries = 0;
    this.bytes = 0;
  }
}

/** The thread's {@link BytesFoldBuffer} when no map task holds it. */
let spareBytesFoldBuffer: BytesFoldBuffer | undefined = new BytesFoldBuffer();

/**
 * The thread's {@link BytesFoldBuffer}, empty, for a map task to hold until
 * it gives it back ({@link releaseBytesFoldBuffer}); a fresh one while
 * another task in the thread holds it (tasks run one at a time in a worker
 * thread, but a test or a program may overlap them).
 */
function takeBytesFoldBuffer(
  fold: (a: unknown, b: unknown, key: string) => unknown,
  dictionaryBytesMax: number,
): BytesFoldBuffer {
  const b = spareBytesFoldBuffer ?? new BytesFoldBuffer();
  spareBytesFoldBuffer = undefined;
  b.emitted = 0;
  b.foldSum = builtInFold(fold) === 'sum';
  b.fold = fold;
  b.dictionaryBytesMax = dictionaryBytesMax;
  return b;
}

/** Gives back a buffer from {@link takeBytesFoldBuffer}, emptied. */
function releaseBytesFoldBuffer(b: BytesFoldBuffer): void {
  b.clear();
  b.block = noBytes;
  b.fold = () => undefined;
  spareBytesFoldBuffer ??= b;
}

class Counters {
  readonly values = new Map<string, number>();
  count = (name: string, by = 1): void => {
    this.values.set(name, (this.values.get(name) ?? 0) + by);
  };
  toObject(): Record<string, number> {
    return Object.fromEntries(this.values);
  }
}

/** Picks each key's partition, checking a custom partitioner's answers. */
function partitioner(
  job: AnyJob,
  reducers: number,
  params: Readonly<Record<string, string>>,
): (key: string) => number {
  const custom = job.partition;
  if (custom === undefined) return (key) => defaultPartition(key, reducers);
  const ctx = { params };
  return (key) => {
    let p: number;
    try {
      p = custom(key, reducers, ctx);
    } catch (err) {
      throw userError(`partition threw on key ${keyText(key)}`, err, { key, phase: 'partition' });
    }
    if (!Number.isInteger(p) || p < 0 || p >= reducers) {
      throw new CohortError(
        'USER_CODE_ERROR',
        `partition returned ${String(p)} for key ${keyText(key)}; expected an integer in [0, ${reducers})`,
        { details: { key, phase: 'partition' } },
      );
    }
    return p;
  };
}

/** Runs the job's combiner over one key's values; returns the combined values. */
function combiner(job: AnyJob, params: Readonly<Record<string, string>>, counters: Counters) {
  const combine = job.combine;
  if (combine === undefined) return undefined;
  const ctx: ReduceContext = { partition: -1, params, count: counters.count };
  let current = '';
  let out: unknown[] = [];
  const emit = (key: string, value: unknown): void => {
    if (key !== current) {
      throw new CohortError(
        'USER_CODE_ERROR',
        `combine for key ${keyText(current)} emitted another key ${keyText(String(key))}; a combiner keeps its key`,
      );
    }
    out.push(value);
  };
  return (key: string, values: unknown[]): unknown[] => {
    current = key;
    out = [];
    try {
      combine(key, values, emit, ctx);
    } catch (err) {
      throw userError(`combine threw on key ${keyText(key)}`, err, { key, phase: 'combine' });
    }
    return out;
  };
}

/**
 * A map task's buffer: its distinct keys, numbered, and each key's buffered
 * values at its number: one folded value (fold mode) or a list.
 */
interface Buffered {
  readonly table: PackedKeyTable;
  readonly vals: unknown[];
  /**
   * List mode with a combiner: how many of the key's buffered values, from
   * the start, are the combiner's output. Only the values after them are
   * combined when {@link COMBINE_AT} more pile up, so a combiner that
   * concatenates (a list of ids) is not handed its growing output again and
   * again (that made a postings job quadratic in a frequent word's values).
   */
  readonly combined: number[];
  /**
   * List mode without a combiner: the values, encoded as they are emitted
   * (`vals` stays empty). See value-arena.ts.
   */
  readonly arena: ValueArena | undefined;
}

/** What a buffer writes: its keys by number, and each key's buffered entry or encoded values. */
interface BufferContents {
  readonly keys: readonly string[];
  readonly vals: readonly unknown[];
  readonly arena: ValueArena | undefined;
  /**
   * The numbers of the keys to write, in ascending key order (no sort
   * needed), each with its one folded value in `vals`: written as they are,
   * no arena. Without it, every number of `keys`, in any order.
   */
  readonly sorted?: Int32Array;
  /**
   * The default partition + 1 of each key of `keys` by number, 0 where not
   * yet known ({@link defaultPartitions}): given when `keys` are a thread
   * dictionary's and the job partitions by {@link defaultPartition}.
   */
  readonly partitions?: Uint16Array;
}

/** A thread dictionary's keys' default partitions, for one number of reducers. */
interface PartitionMemo {
  readonly reducers: number;
  parts: Uint16Array;
}

/** By a thread dictionary's key list (its numbering never changes; a renewed dictionary has a new list). */
const partitionMemos = new WeakMap<readonly string[], PartitionMemo>();

/**
 * The memo of `keys`' default partitions for `reducers` (partition + 1 by
 * key number, 0 where not yet known), at least `keys.length` long. A word
 * count's map task writes ~50k keys it mostly shares with the thread's
 * earlier tasks: hashing each key's string again for its partition was ~2 %
 * of the task.
 */
function defaultPartitions(keys: readonly string[], reducers: number): Uint16Array {
  let memo = partitionMemos.get(keys);
  if (memo === undefined || memo.reducers !== reducers) {
    memo = { reducers, parts: new Uint16Array(0) };
    partitionMemos.set(keys, memo);
  }
  if (memo.parts.length < keys.length) {
    const parts = new Uint16Array(Math.max(keys.length, 2 * memo.parts.length));
    parts.set(memo.parts);
    memo.parts = parts;
  }
  return memo.parts;
}

function newBuffer(encoded: boolean): Buffered {
  return {
    table: new PackedKeyTable(),
    vals: [],
    combined: [],
    arena: encoded ? new ValueArena() : undefined,
  };
}

/**
 * Writes `buckets` as one sorted run per partition (paths from `pathFor`).
 * `valuesOf` turns a buffered entry into the key's values (combining them
 * once more first if there is a combiner).
 *
 * Values held as objects (fold mode, lists for a combiner) are first encoded
 * into a {@link ValueArena} key by key in the order the keys were first
 * seen, which is about the order their objects lie in memory, and the runs
 * are then written from it in key order. Encoding them straight in key
 * order visited the objects in random order, a cache miss or more per
 * object, array and string: for csv's 49k per-station objects (400k sensor
 * strings) a 32 MiB map task spent 72-90 ms there, against 27-43 in first-seen
 * order (bench/mapreduce.ts's input).
 */
async function writeRuns(
  buffered: BufferContents,
  reducers: number,
  partitionOf: (key: string) => number,
  valuesOf: (key: string, buffered: unknown) => unknown[],
  pathFor: (partition: number) => string,
  writers: RunWriter[],
): Promise<RunFile[]> {
  const { keys, vals } = buffered;
  let arena = buffered.arena;
  // Values encoded as emitted sit in emit order: laid out again key by key below.
  const emitOrder = arena !== undefined;
  // Folded values already in key order (a sum fold's numbers): written as
  // they are, no arena (their order is the order they are written in).
  const sorted = arena === undefined ? buffered.sorted : undefined;
  if (arena === undefined && sorted === undefined) arena = encodeAll(keys, vals, valuesOf);
  // Each partition's key numbers, sorted by key: the runs are written from them.
  const byPartition = partitionIds(keys, sorted, reducers, partitionOf, buffered.partitions);
  if (sorted === undefined) for (const ids of byPartition) sortKeyIds(keys, ids);
  if (emitOrder && arena !== undefined) {
    // The values key by key in the order they are written (see ValueArena.compact).
    const order = new Int32Array(keys.length);
    let i = 0;
    for (const ids of byPartition) {
      order.set(ids, i);
      i += ids.length;
    }
    arena.compact(order);
  }
  const runs: RunFile[] = [];
  for (let p = 0; p < reducers; p++) {
    const ids = byPartition[p] as Int32Array;
    const w = await RunWriter.create(pathFor(p));
    writers.push(w);
    let i = 0;
    while (i < ids.length) {
      i =
        arena === undefined
          ? addFolded(w, ids, i, keys, vals, valuesOf)
          : addFromArena(w, ids, i, keys, arena);
      await w.flush();
    }
    runs.push({ partition: p, ...(await w.finish()) });
  }
  // Its values are in the runs: its buffers go to the thread's next arena.
  arena?.release();
  return runs;
}

// writeRuns' loops are functions of their own: small, so V8 compiles them
// once and keeps them. As one async function, writeRuns was compiled again
// (~35 CPU ms) in every word-count map task, and deoptimised again.

/** Encodes every key's values (`valuesOf` its buffered entry) into a new arena, key by key. */
function encodeAll(
  keys: readonly string[],
  vals: readonly unknown[],
  valuesOf: (key: string, buffered: unknown) => unknown[],
): ValueArena {
  const arena = new ValueArena();
  for (let e = 0; e < keys.length; e++) {
    const values = valuesOf(keys[e] as string, vals[e]);
    for (let i = 0; i < values.length; i++) arena.add(e, values[i]);
  }
  return arena;
}

/**
 * Each partition's key numbers: of `ids` in their order, or of every key
 * of `keys` in ascending number order. With `memo` (a key's partition + 1
 * by number, 0 where unknown: {@link defaultPartitions}), a key's partition
 * is looked up there, and found once by `partitionOf` and kept if unknown.
 */
function partitionIds(
  keys: readonly string[],
  ids: Int32Array | undefined,
  reducers: number,
  partitionOf: (key: string) => number,
  memo?: Uint16Array,
): Int32Array[] {
  let all = ids;
  if (all === undefined) {
    all = new Int32Array(keys.length);
    for (let e = 0; e < all.length; e++) all[e] = e;
  }
  if (reducers === 1) return [all];
  const n = all.length;
  const partOf = new Int32Array(n);
  const sizes = new Int32Array(reducers);
  for (let i = 0; i < n; i++) {
    const g = all[i] as number;
    let p: number;
    if (memo === undefined) p = partitionOf(keys[g] as string);
    else {
      p = (memo[g] as number) - 1;
      if (p < 0) {
        p = partitionOf(keys[g] as string);
        memo[g] = p + 1;
      }
    }
    partOf[i] = p;
    sizes[p] = (sizes[p] as number) + 1;
  }
  const byPartition: Int32Array[] = [];
  for (let p = 0; p < reducers; p++) byPartition.push(new Int32Array(sizes[p] as number));
  sizes.fill(0);
  for (let i = 0; i < n; i++) {
    const p = partOf[i] as number;
    (byPartition[p] as Int32Array)[sizes[p] as number] = all[i] as number;
    sizes[p] = (sizes[p] as number) + 1;
  }
  return byPartition;
}

/**
 * Adds the keys `ids[from...]` with their one folded value each (`vals`,
 * by key number) to `w` until it asks for a flush; returns where to go on.
 */
function addFolded(
  w: RunWriter,
  ids: Int32Array,
  from: number,
  keys: readonly string[],
  vals: readonly unknown[],
  valuesOf: (key: string, buffered: unknown) => unknown[],
): number {
  for (let i = from; i < ids.length; i++) {
    const e = ids[i] as number;
    const key = keys[e] as string;
    const v = vals[e];
    if (typeof v === 'number' ? w.addNumber(key, v) : w.add(key, valuesOf(key, v))) return i + 1;
  }
  return ids.length;
}

/** {@link addFolded} for values in an arena (by key number). */
function addFromArena(
  w: RunWriter,
  ids: Int32Array,
  from: number,
  keys: readonly string[],
  arena: ValueArena,
): number {
  for (let i = from; i < ids.length; i++) {
    const e = ids[i] as number;
    if (w.addEncoded(keys[e] as string, arena, e)) return i + 1;
  }
  return ids.length;
}

/** Runs one map task; see the file header. */
export async function runMapTask(input: MapTaskInput): Promise<MapTaskResult> {
  const { job, split, reducers, dir, taskId, attempt } = input;
  checkTaskId(taskId, attempt);
  checkReducers(reducers);
  const params = input.params ?? noParams;
  const skipBad = input.skipBadRecords ?? job.defaults.skipBadRecords;
  const skipSet =
    input.skipOffsets !== undefined && input.skipOffsets.length > 0
      ? new Set(input.skipOffsets)
      : undefined;
  const progress = input.progress;
  const entriesMax = input.bufferEntriesMax ?? limits.mrMapBufferEntriesMax;
  const bytesMax = limits.mrMapBufferBytesMax;
  const combineAt = input.combineAt ?? COMBINE_AT;
  const combinesBeforeArena = input.combinesBeforeArena ?? COMBINES_BEFORE_ARENA;
  const userCounters = new Counters();
  const counters: MapCounters = {
    recordsIn: 0,
    bytesIn: 0,
    recordsSkipped: 0,
    emitted: 0,
    combines: 0,
    keysOut: 0,
    valuesOut: 0,
    bytesOut: 0,
    spills: 0,
  };
  const skipped: SkippedRecord[] = [];
  const partitionOf = partitioner(job, reducers, params);
  const combineValues = combiner(job, params, userCounters);
  const fold = job.fold;
  // The built-in sum fold is applied in place (job.ts sumFold): no call per value.
  const foldSum = builtInFold(fold) === 'sum';
  const map = job.map;
  // Blocks of lines at once (as bytes if the job can), unless records must be handled one by one.
  const mapBytes = !skipBad && skipSet === undefined ? job.mapBytes : undefined;
  const mapBlock =
    !skipBad && skipSet === undefined && mapBytes === undefined ? job.mapBlock : undefined;
  const ctx: MapContext = {
    file: split.file,
    params,
    count: userCounters.count,
    byteHashSeed: BYTE_HASH_SEED,
  };

  try {
    makeDirs(dir);
  } catch (err) {
    throw ioError(`map output directory ${dir}`, err);
  }
  const writers: RunWriter[] = [];
  const spillPaths: string[][] = []; // [spill][partition]
  const base = join(dir, taskId);

  // Each key's values (list mode), or its folded value (fold mode).
  // No combiner: values are encoded as they are emitted (see value-arena.ts).
  // So are they once the combiner turns out only to regroup them (see toArena).
  let encoded = fold === undefined && combineValues === undefined;
  let buckets = newBuffer(encoded);
  let entries = 0; // keys + buffered values: what the spill bound counts
  let bytes = 0; // a rough estimate of the buffer's memory: the other spill bound
  let emitted = 0;

  const foldInto = (key: string, a: unknown, b: unknown): unknown => {
    try {
      return (fold as (a: unknown, b: unknown, key: string) => unknown)(a, b, key);
    } catch (err) {
      throw userError(`fold threw on key ${keyText(key)}`, err, { key, phase: 'fold' });
    }
  };
  // The emits of the hot path: one table lookup, then a fold or a push.
  const emitFold = (key: string, value: unknown): void => {
    if (typeof key !== 'string') throw badKey('map', key);
    emitted++;
    const { table, vals } = buckets;
    const e = table.find(key);
    if (e < 0) {
      table.add(ownKey(key));
      vals.push(value);
      entries += 2;
      bytes += KEY_BYTES + key.length + sizeOf(value);
    } else {
      vals[e] = foldSum ? (vals[e] as number) + (value as number) : foldInto(key, vals[e], value);
    }
  };
  const emitList = (key: string, value: unknown): void => {
    // The rest of a record whose map switched the buffer to the arena.
    if (encoded) return emitEncoded(key, value);
    if (typeof key !== 'string') throw badKey('map', key);
    emitted++;
    const { table, vals, combined } = buckets;
    const e = table.find(key);
    if (e < 0) {
      table.add(ownKey(key));
      vals.push([value]);
      combined.push(0);
      entries += 2;
      bytes += KEY_BYTES + key.length + sizeOf(value);
    } else {
      const values = vals[e] as unknown[];
      values.push(value);
      entries++;
      bytes += sizeOf(value);
      if (combineValues !== undefined) {
        const c = combined[e] as number;
        if (values.length - c >= combineAt) {
          // Combine the values since the last combiner output only (see Buffered.combined).
          const fresh = c === 0 ? values : values.slice(c);
          const out = combineValues(key, fresh);
          counters.combines++;
          if (measured < COMBINES_MEASURED) {
            measured++;
            scalarsIn += scalars(fresh);
            scalarsOut += scalars(out);
          }
          values.length = c;
          for (let i = 0; i < out.length; i++) values.push(out[i]);
          combined[e] = values.length;
          entries -= fresh.length - out.length;
          bytes += sizeOfAll(out) - sizeOfAll(fresh);
          if (measured === combinesBeforeArena && regroupsOnly()) toArena();
        }
      }
    }
  };
  const emitEncoded = (key: string, value: unknown): void => {
    if (typeof key !== 'string') throw badKey('map', key);
    emitted++;
    const { table, arena } = buckets;
    let e = table.find(key);
    if (e < 0) {
      e = table.add(ownKey(key));
      entries++;
      bytes += KEY_BYTES + key.length;
    }
    (arena as ValueArena).add(e, value);
    entries++;
  };
  let emitDirect = fold !== undefined ? emitFold : encoded ? emitEncoded : emitList;
  // What the eager combines were given and gave back, in scalars: a combiner
  // that gives back as much as it was given (a concatenation: postings'
  // lists of ids) only regroups values, and running it once more on a
  // key's combined lists before writing them would copy everything again
  // for nothing; one that shrinks them (a sum) runs once more.
  let measured = 0;
  let scalarsIn = 0;
  let scalarsOut = 0;
  const regroupsOnly = (): boolean => measured >= 8 && scalarsOut * 5 > scalarsIn * 4;
  // Once the combiner has been measured (combinesBeforeArena eager combines) to
  // give back as much as it is given, running it on the map side only
  // copies: postings' lists of ids were decoded, concatenated and held as
  // objects, which then outlived the young generation (GC was the largest
  // cost of its map task). From then on the buffer holds values as a job
  // without a combiner does: encoded as emitted (the lists held so far are
  // encoded in order first), written to the runs as they are; the reducer
  // gets them all, as it would from a map task that never combined. The
  // combiner stays optional, as it always is: only the amount of data
  // shipped changes, not the output.
  const toArena = (): void => {
    const { table, vals } = buckets;
    const arena = new ValueArena();
    for (let e = 0; e < table.size; e++) {
      const values = vals[e] as unknown[];
      for (let i = 0; i < values.length; i++) arena.add(e, values[i]);
    }
    buckets = { table, vals: [], combined: [], arena };
    encoded = true;
    emitDirect = emitEncoded;
    if (!skipBad) emit = emitEncoded;
  };
  // With skipBadRecords, a record's pairs are staged and kept only if map returns.
  const stagedKeys: string[] = [];
  const stagedValues: unknown[] = [];
  const emitStaged = (key: string, value: unknown): void => {
    if (typeof key !== 'string') throw badKey('map', key);
    stagedKeys.push(key);
    stagedValues.push(value);
  };
  let emit = skipBad ? emitStaged : emitDirect;

  const visit = (offset: number, line: string): void => {
    if (progress !== undefined) progress[0] = offset;
    if (skipSet !== undefined && skipSet.has(offset)) {
      counters.recordsSkipped++;
      if (skipped.length < limits.mrSkippedRecordsListedMax) {
        skipped.push({ file: split.file, offset, reason: 'listed' });
      }
      return;
    }
    try {
      map(offset, line, emit, ctx);
    } catch (err) {
      if (!skipBad || err instanceof AssertionError) {
        throw userError(`map threw on the record at ${split.file}:${offset}`, err, {
          file: split.file,
          offset,
          phase: 'map',
        });
      }
      stagedKeys.length = 0;
      stagedValues.length = 0;
      counters.recordsSkipped++;
      if (skipped.length < limits.mrSkippedRecordsListedMax) {
        skipped.push({ file: split.file, offset, reason: message(err) });
      }
      return;
    }
    if (skipBad) {
      for (let i = 0; i < stagedKeys.length; i++) {
        emitDirect(stagedKeys[i] as string, stagedValues[i]);
      }
      stagedKeys.length = 0;
      stagedValues.length = 0;
    }
    if (progress !== undefined) progress[1] = (progress[1] ?? 0) + 1;
  };

  const visitBlock = (offset: number, block: string, lines: number): void => {
    if (progress !== undefined) progress[0] = offset;
    try {
      (mapBlock as NonNullable<typeof mapBlock>)(offset, block, emit, ctx);
    } catch (err) {
      throw userError(
        `mapBlock threw on the block of ${lines} lines at ${split.file}:${offset}`,
        err,
        { file: split.file, blockOffset: offset, phase: 'map' },
      );
    }
    if (progress !== undefined) progress[1] = (progress[1] ?? 0) + lines;
  };

  // mapBytes: a key is a byte range of the block being mapped, found by its
  // bytes in the thread's byte dictionary (threadDictionary), which keeps
  // every key's string from one task to the next, so a key seen before
  // costs no string, in this task or an earlier one. With fold, the buffer
  // is the thread's BytesFoldBuffer (its emit folds each value in at the
  // key's number in the dictionary); otherwise the key's string goes
  // through the string emit.
  let block: Uint8Array = noBytes;
  const dictionaryBytesMax = input.keyDictionaryBytesMax ?? limits.mrKeyDictionaryBytesMax;
  let dict: ByteKeyIndex | undefined; // the dictionary of the current buffer (by key)
  const emitBytesByKey = (start: number, end: number, value: unknown, hash?: number): void => {
    if (!((start | 0) === start && (end | 0) === end && start >= 0 && start <= end)) {
      throw badRange(start, end, block);
    }
    if (end > block.length) throw badRange(start, end, block);
    const d = (dict ??= threadDictionary(dictionaryBytesMax));
    const g =
      hash === undefined ? d.intern(block, start, end) : d.internHashed(block, start, end, hash);
    if (g < 0) throw badHash(start, end, hash);
    emitDirect(d.table.keys[g] as string, value);
  };
  const bytesFold =
    mapBytes !== undefined && fold !== undefined
      ? takeBytesFoldBuffer(
          fold as (a: unknown, b: unknown, key: string) => unknown,
          dictionaryBytesMax,
        )
      : undefined;
  /** What the buffer holds, to write. */
  const contents = (): BufferContents => {
    if (bytesFold === undefined) {
      return { keys: buckets.table.keys, vals: buckets.vals, arena: buckets.arena };
    }
    const { dict: d, byNumber, touched } = bytesFold;
    if (d === undefined) return { keys: [], vals: [], arena: undefined }; // nothing emitted
    const names = d.table.keys;
    if (foldSum) {
      // Numbers: no objects to visit in the order they were made (see writeRuns),
      // so the keys go in sorted, by the ranks the dictionary keeps.
      // Written from the dictionary's keys and the buffer's values by number.
      const sorted = d.sortedSubset(touched);
      return job.partition === undefined
        ? {
            keys: names,
            vals: byNumber,
            arena: undefined,
            sorted,
            partitions: defaultPartitions(names, reducers),
          }
        : { keys: names, vals: byNumber, arena: undefined, sorted };
    }
    const keys = touched.map((g) => names[g] as string);
    const vals = touched.map((g) => byNumber[g]);
    return { keys, vals, arena: undefined };
  };
  /** Empties the buffer once written (the next emit takes up the thread's dictionary again). */
  const clearBuffer = (): void => {
    buckets = newBuffer(encoded);
    bytesFold?.clear();
    dict = undefined;
  };
  const buffered = (): boolean =>
    (bytesFold !== undefined ? bytesFold.touched.length : buckets.table.size) > 0;
  const emitBytes: EmitBytes<unknown> =
    bytesFold === undefined
      ? emitBytesByKey
      : bytesFold.foldSum
        ? bytesFold.emitSum
        : bytesFold.emitFold;

  const visitBytes = (offset: number, chunk: Buffer, lines: number): void => {
    if (progress !== undefined) progress[0] = offset;
    block = chunk;
    if (bytesFold !== undefined) bytesFold.block = chunk;
    try {
      (mapBytes as NonNullable<typeof mapBytes>)(offset, chunk, emitBytes, ctx);
    } catch (err) {
      throw userError(
        `mapBytes threw on the block of ${lines} lines at ${split.file}:${offset}`,
        err,
        { file: split.file, blockOffset: offset, phase: 'map' },
      );
    } finally {
      block = noBytes;
      if (bytesFold !== undefined) bytesFold.block = noBytes;
    }
    if (progress !== undefined) progress[1] = (progress[1] ?? 0) + lines;
  };

  // What a buffered entry becomes in a run: fold mode holds one value; list
  // mode a list, combined once more when it can still shrink.
  const finalValues = (key: string, buffered: unknown): unknown[] => {
    if (fold !== undefined) return [buffered];
    const values = buffered as unknown[];
    if (combineValues !== undefined && values.length > 1 && !regroupsOnly()) {
      counters.combines++;
      return combineValues(key, values);
    }
    return values;
  };
  // Spills keep lists as they are (they are combined when merged at the end).
  const spillValues = (_key: string, buffered: unknown): unknown[] =>
    fold !== undefined ? [buffered] : (buffered as unknown[]);

  const spill = async (force: boolean): Promise<void> => {
    if (!force && combineValues !== undefined && !encoded) {
      // Compact first: often the combiner alone brings the buffer back under the bound.
      entries = 0;
      bytes = 0;
      const { table, vals, combined } = buckets;
      for (let e = 0; e < table.size; e++) {
        const key = table.keys[e] as string;
        const values = vals[e] as unknown[];
        let vs = values;
        if (values.length > 1) {
          vs = combineValues(key, values);
          counters.combines++;
          vals[e] = vs;
          combined[e] = vs.length;
        }
        entries += 1 + vs.length;
        bytes += KEY_BYTES + key.length + sizeOfAll(vs);
      }
      if (entries <= entriesMax / 2 && bytes <= bytesMax / 2) return;
    }
    const s = spillPaths.length;
    const paths = Array.from(
      { length: reducers },
      (_, p) => `${base}.a${attempt}.s${s}.r${pad(p)}.spill`,
    );
    spillPaths.push(paths);
    await writeRuns(
      contents(),
      reducers,
      partitionOf,
      spillValues,
      (p) => paths[p] as string,
      writers,
    );
    counters.spills++;
    clearBuffer();
    entries = 0;
    bytes = 0;
  };

  const finalPath = (p: number): string => `${base}.a${attempt}.r${pad(p)}.run`;
  try {
    const chunk = input.readChunkBytes ?? limits.mrReadChunkBytes;
    const afterChunk = (): Promise<void> | undefined =>
      entries + (bytesFold?.entries ?? 0) > entriesMax ||
      bytes + (bytesFold?.bytes ?? 0) + (buckets.arena?.bytes ?? 0) > bytesMax
        ? spill(false)
        : undefined;
    const stats =
      mapBytes !== undefined
        ? await readSplitBytes(split, visitBytes, chunk, afterChunk)
        : mapBlock !== undefined
          ? await readSplitBlocks(split, visitBlock, chunk, afterChunk, input.mapBlockBytes)
          : await readSplitLines(split, visit, chunk, afterChunk);
    counters.recordsIn = stats.records;
    counters.bytesIn = stats.bytes;
    counters.emitted = emitted + (bytesFold?.emitted ?? 0);
    let runs: RunFile[];
    if (spillPaths.length === 0) {
      runs = await writeRuns(contents(), reducers, partitionOf, finalValues, finalPath, writers);
    } else {
      if (buffered()) await spill(true);
      clearBuffer();
      runs = [];
      for (let p = 0; p < reducers; p++) {
        const w = await RunWriter.create(finalPath(p));
        writers.push(w);
        await mergeRuns(
          spillPaths.map((paths) => paths[p] as string),
          (key, values) => {
            let vs = values;
            if (values.length > 1) {
              if (fold !== undefined) {
                let acc = values[0];
                for (let i = 1; i < values.length; i++) acc = foldInto(key, acc, values[i]);
                vs = [acc];
              } else if (combineValues !== undefined && !regroupsOnly()) {
                counters.combines++;
                vs = combineValues(key, values);
              }
            }
            return w.add(key, vs) ? w.flush() : undefined;
          },
        );
        runs.push({ partition: p, ...(await w.finish()) });
      }
      await Promise.all(spillPaths.flat().map((f) => unlink(f).catch(() => undefined)));
    }
    for (const r of runs) {
      counters.keysOut += r.keys;
      counters.valuesOut += r.values;
      counters.bytesOut += r.bytes;
    }
    return { taskId, attempt, runs, counters, userCounters: userCounters.toObject(), skipped };
  } catch (err) {
    // Leave nothing behind: temp files, spills, and runs already renamed into place.
    await Promise.all(writers.map((w) => w.abort()));
    const done = Array.from({ length: reducers }, (_, p) => finalPath(p));
    await Promise.all([...spillPaths.flat(), ...done].map((f) => unlink(f).catch(() => undefined)));
    throw err;
  } finally {
    if (bytesFold !== undefined) releaseBytesFoldBuffer(bytesFold);
  }
}

function pad(p: number): string {
  return String(p).padStart(5, '0');
}

/** Moves `r` to its next record, loading blocks as needed; false at the end of its run. */
async function advance(r: RunReader): Promise<boolean> {
  if (r.nextRecord()) return true;
  while (await r.nextBlock()) if (r.nextRecord()) return true;
  return false;
}

/**
 * Merges sorted runs by key and calls `visit(key, values)` once per distinct
 * key, in ascending key order; a key's values are concatenated in the order
 * of `sources`. `visit` may return a promise (e.g. to flush output), which is
 * awaited before the next key. Awaits otherwise only when a run's next block
 * is needed. Returns the number of keys and values visited.
 */
export async function mergeRuns(
  sources: readonly RunSource[],
  visit: (key: string, values: unknown[]) => void | Promise<void>,
): Promise<{ keys: number; values: number }> {
  const readers = sources.map((s, i) => new RunReader(s, i));
  let keys = 0;
  let values = 0;
  try {
    // A loser tree over the runs (Knuth, TAOCP vol. 3, §5.4.1): the winner is
    // the run whose current record comes first by (key, run index); replacing
    // it costs one comparison per level (log2 of the runs), where a binary
    // heap's sift-down costs up to two. Leaf i is run i; a run with no record
    // left (or a padding leaf) loses to every live one.
    const n = readers.length;
    let size = 1;
    while (size < n) size <<= 1;
    const live: boolean[] = new Array<boolean>(size).fill(false);
    const loser: number[] = new Array<number>(size).fill(0);
    // Every run's first block at once, so their reads overlap (one trip
    // through libuv's thread pool, not one per run); fails as the first run
    // that fails, in run order.
    const started = await Promise.allSettled(readers.map(advance));
    for (let i = 0; i < n; i++) {
      const s = started[i] as PromiseSettledResult<boolean>;
      if (s.status === 'rejected') throw s.reason;
      live[i] = s.value;
    }
    // a comes before b: live first, then by key, then by run index.
    const first = (a: number, b: number): boolean => {
      if (!(live[a] as boolean)) return false;
      if (!(live[b] as boolean)) return true;
      const ka = (readers[a] as RunReader).key;
      const kb = (readers[b] as RunReader).key;
      return ka === kb ? a < b : ka < kb;
    };
    // Build: winners bottom-up; each inner node keeps its match's loser.
    const win: number[] = new Array<number>(2 * size).fill(0);
    for (let i = 0; i < size; i++) win[size + i] = i;
    for (let node = size - 1; node >= 1; node--) {
      const a = win[2 * node] as number;
      const b = win[2 * node + 1] as number;
      if (first(a, b)) {
        win[node] = a;
        loser[node] = b;
      } else {
        win[node] = b;
        loser[node] = a;
      }
    }
    let w = size > 1 ? (win[1] as number) : 0;
    while (live[w] as boolean) {
      const key = (readers[w] as RunReader).key;
      const vs: unknown[] = [];
      // Take this key from every run that has it, in run order.
      for (;;) {
        const r = readers[w] as RunReader;
        r.takeValues(vs);
        live[w] = r.nextRecord() || (await advance(r));
        // Replay run w's matches from its leaf up to the root.
        for (let node = (w + size) >> 1; node >= 1; node >>= 1) {
          const l = loser[node] as number;
          if (first(l, w)) {
            loser[node] = w;
            w = l;
          }
        }
        if (!(live[w] as boolean) || (readers[w] as RunReader).key !== key) break;
      }
      keys++;
      values += vs.length;
      const v = visit(key, vs);
      if (v !== undefined) await v;
    }
    return { keys, values };
  } finally {
    await Promise.all(readers.map((r) => r.close()));
  }
}

/**
 * The reduce of a job whose values are numbers summed (`fold: sumFold`,
 * job.ts), without a k-way merge: the runs (files, or arrays of chunks:
 * read again if this path gives up) are read one after the other, in order, each record's key found
 * by its bytes in the thread's byte dictionary ({@link threadDictionary}:
 * no string per record; a key this thread's map tasks wrote is decoded and
 * ranked already, any other is decoded once and joins it) and its values
 * added to the key's sum; then the keys are picked out of the dictionary's
 * kept order and `visit`ed in it, each with its sum as its one value. That is the fold applied on
 * the reduce side too (`reduce` gets at most one value per map task and
 * spill: here one, the sum of them in input order), and the keys' order is
 * checked per run as the merge checks it. Word count, a partition of 16
 * runs (~400k records, ~25k keys): see RUNTIME.md.
 *
 * Returns undefined, having visited nothing, when the runs do not suit it:
 * a value that is not a number, a block of types not decoded by hand, or
 * more distinct keys than `tableBytesMax` (estimated) holds; the caller
 * then merges them. It reads `fanIn` runs at a time: a run's file is open
 * from its first read to its end.
 */
export async function sumRuns(
  paths: readonly (string | readonly Uint8Array[])[],
  visit: (key: string, values: unknown[]) => void | Promise<void>,
  tableBytesMax = limits.mrReduceSumTableBytesMax,
  fanIn: number = limits.mrReduceFanInMax,
): Promise<{ keys: number; values: number } | undefined> {
  const readers = paths.map((p, i) => new RunReader(p, i));
  // The thread's byte dictionary: the keys this thread's map tasks wrote are
  // in it already, decoded and in order (no string and no sort for them).
  const index = threadDictionary(limits.mrKeyDictionaryBytesMax);
  const bytesBefore = index.bytes;
  const table = new SumTable(index);
  try {
    // `fanIn` runs at a time (a run's file is opened at its first read and
    // closed at its end), their first blocks at once, so their reads overlap
    // (as mergeRuns).
    const step = Math.max(1, fanIn);
    for (let from = 0; from < readers.length; from += step) {
      const group = readers.slice(from, from + step);
      const started = await Promise.allSettled(group.map((r) => r.nextBlock()));
      for (let i = 0; i < group.length; i++) {
        const r = group[i] as RunReader;
        const s = started[i] as PromiseSettledResult<boolean>;
        if (s.status === 'rejected') throw s.reason;
        for (let more = s.value; more; more = await r.nextBlock()) {
          if (!r.blockByHand || !table.addBlock(r)) return undefined;
          // The bound, after each block: what this reduce added to the dictionary, and its sums.
          if (index.bytes - bytesBefore + 9 * table.sums.length > tableBytesMax) return undefined;
        }
      }
    }
  } finally {
    await Promise.all(readers.map((r) => r.close()));
  }
  const keys = index.table.keys;
  const ids = index.sortedSubset(table.touched);
  const { sums, state } = table;
  for (let k = 0; k < ids.length; k++) {
    const e = ids[k] as number;
    const v = visit(keys[e] as string, state[e] === 2 ? [sums[e]] : []);
    if (v !== undefined) await v;
  }
  return { keys: ids.length, values: table.values };
}

/**
 * {@link sumRuns}'s sums, by key number in the thread's byte dictionary, and
 * its per-record loop ({@link addBlock}): a method of its own, synchronous
 * and called with objects of the same shapes in every reduce, so that V8
 * keeps its optimised code from one reduce to the next (in the async
 * sumRuns, code specialised to one reduce's objects was thrown away after
 * it and compiled again in the next, while the reduce ran unoptimised).
 */
class SumTable {
  /** Sums by key number. */
  sums: Float64Array;
  /** By key number: 0 not in this reduce, 1 in it without a value yet, 2 summed into sums. */
  state: Uint8Array;
  /** This reduce's key numbers. */
  readonly touched: number[] = [];
  /** Values added. */
  values = 0;

  constructor(private readonly index: ByteKeyIndex) {
    this.sums = new Float64Array(Math.max(1024, index.table.size));
    this.state = new Uint8Array(this.sums.length);
  }

  /**
   * Adds up the records of `r`'s current block (decoded by hand); false,
   * the sums then unusable, if a value is not a number.
   */
  addBlock(r: RunReader): boolean {
    const index = this.index;
    const bytes = r.blockBytes;
    let sums = this.sums;
    let state = this.state;
    while (r.nextKey()) {
      const e = index.intern(bytes, r.keyStart, r.keyEnd);
      if (e >= sums.length) {
        const size = Math.max(2 * sums.length, e + 1);
        const bigger = new Float64Array(size);
        bigger.set(sums);
        this.sums = sums = bigger;
        const marks = new Uint8Array(size);
        marks.set(state);
        this.state = state = marks;
      }
      let st = state[e] as number;
      if (st === 0) {
        this.touched.push(e);
        state[e] = st = 1;
      }
      const n = r.valuesLeft;
      if (n === 0) continue;
      let sum: number;
      let j = 0;
      if (st === 1) {
        // Its first value: the sum starts there (a + b for the rest, as sumFold).
        const v = r.takeNumber();
        if (v === undefined) return false;
        sum = v;
        state[e] = 2;
        j = 1;
      } else {
        sum = sums[e] as number;
      }
      for (; j < n; j++) {
        const v = r.takeNumber();
        if (v === undefined) return false;
        sum += v;
      }
      sums[e] = sum;
      this.values += n;
    }
    return true;
  }
}

/** What a reduce task is given. */
export interface ReduceTaskInput {
  /** The job (from loadJob/defineJob). */
  readonly job: AnyJob;
  /** Which reducer this is. */
  readonly partition: number;
  /**
   * The runs of this partition, one per map task, IN MAP-TASK (SPLIT) ORDER:
   * local paths, or byte streams (the shuffle fetching them over RPC).
   */
  readonly runs: readonly RunSource[];
  /** The final output path, e.g. `join(outDir, partFileName(partition))`. */
  readonly output: string;
  /** The task's id (for messages). */
  readonly taskId: string;
  /** The attempt number (for messages). */
  readonly attempt: number;
  /** The job's parameters (`ctx.params`). */
  readonly params?: Readonly<Record<string, string>>;
  /** Runs read at once (default `limits.mrReduceFanInMax`; tests set less). */
  readonly fanInMax?: number;
}

/** The counters of one reduce task. */
export interface ReduceCounters {
  /** Distinct keys reduced. */
  keysIn: number;
  /** Values reduced. */
  valuesIn: number;
  /** Output lines written. */
  recordsOut: number;
  /** Output bytes written. */
  bytesOut: number;
}

/** What a reduce task returns. */
export interface ReduceTaskResult {
  readonly taskId: string;
  readonly attempt: number;
  readonly partition: number;
  /** The final output path (now in place). */
  readonly output: string;
  readonly counters: ReduceCounters;
  /** User counters (`ctx.count`). */
  readonly userCounters: Record<string, number>;
}

/** Output text gathered before it is written. */
const OUTPUT_WRITE_CHARS = 1024 * 1024;

/** Runs one reduce task; see the file header. */
export async function runReduceTask(input: ReduceTaskInput): Promise<ReduceTaskResult> {
  const { job, partition, runs, output, taskId, attempt } = input;
  checkTaskId(taskId, attempt);
  if (!Number.isInteger(partition) || partition < 0 || partition >= limits.mrReducersMax) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      `partition must be an integer in 0..${limits.mrReducersMax - 1}`,
    );
  }
  const params = input.params ?? noParams;
  const userCounters = new Counters();
  const ctx: ReduceContext = { partition, params, count: userCounters.count };
  const counters: ReduceCounters = { keysIn: 0, valuesIn: 0, recordsOut: 0, bytesOut: 0 };
  const temp = tempPathFor(output);
  const fanIn = Math.max(2, input.fanInMax ?? limits.mrReduceFanInMax);
  /** The temp runs of merge passes (see mergePasses), deleted at the end. */
  const passRuns: string[] = [];
  let fh: FileHandle;
  try {
    fh = await open(temp, 'w');
  } catch (err) {
    throw ioError(`output ${dirname(output)} (reducer ${partition})`, err);
  }
  let text = '';
  const emit = (key: string, value: unknown): void => {
    if (typeof key !== 'string') throw badKey('reduce', key);
    text += outputLine(key, value);
    counters.recordsOut++;
  };
  const reduce = job.reduce;
  let closed = false;
  try {
    const visit = (key: string, values: unknown[]): Promise<void> | undefined => {
      try {
        reduce(key, values, emit, ctx);
      } catch (err) {
        throw userError(`reduce threw on key ${keyText(key)} (reducer ${partition})`, err, {
          key,
          partition,
          phase: 'reduce',
        });
      }
      if (text.length >= OUTPUT_WRITE_CHARS) {
        // Encoded once (fh.write of a string encodes it too, after byteLength has read it).
        const b = Buffer.from(text);
        text = '';
        counters.bytesOut += b.length;
        return fh.write(b).then(() => undefined);
      }
      return undefined;
    };
    // Numbers summed: added up per key without merging (when the runs can be read again if
    // need be: files, and runs in memory given as arrays of chunks).
    const paths = runs.filter(
      (r): r is string | readonly Uint8Array[] => typeof r === 'string' || Array.isArray(r),
    );
    const summed =
      builtInFold(job.fold) === 'sum' && paths.length === runs.length
        ? await sumRuns(paths, visit, limits.mrReduceSumTableBytesMax, fanIn)
        : undefined;
    const merged =
      summed ?? (await mergeRuns(await mergePasses(runs, fanIn, temp, passRuns), visit));
    counters.keysIn = merged.keys;
    counters.valuesIn = merged.values;
    if (text.length > 0) {
      const b = Buffer.from(text);
      counters.bytesOut += b.length;
      await fh.write(b);
    }
    await fh.sync();
    closed = true;
    await fh.close();
    await rename(temp, output);
    await syncDir(dirname(output));
  } catch (err) {
    if (!closed) await fh.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    if (err instanceof CohortError || err instanceof AssertionError) throw err;
    throw ioError(`writing ${basename(output)} (reducer ${partition})`, err);
  } finally {
    await Promise.all(passRuns.map((p) => unlink(p).catch(() => undefined)));
  }
  return { taskId, attempt, partition, output, counters, userCounters: userCounters.toObject() };
}

/**
 * `sources` as at most `fanIn` runs: while there are more, consecutive
 * groups of `fanIn` are merged into temp runs (`${base}.m<n>.run`, their
 * paths pushed to `made` for the caller to delete), a pass at a time, so a
 * reduce never reads more than `fanIn` runs at once (each an open file and
 * its read buffers; a job of thousands of map tasks had a reducer open
 * them all). A merge keeps a key's values in run order and the groups stay
 * in order, so the last merge gives `reduce` its values in map-task order,
 * as a merge of all the runs at once would.
 */
async function mergePasses(
  sources: readonly RunSource[],
  fanIn: number,
  base: string,
  made: string[],
): Promise<readonly RunSource[]> {
  let level = sources;
  while (level.length > fanIn) {
    const next: RunSource[] = [];
    for (let i = 0; i < level.length; i += fanIn) {
      const group = level.slice(i, i + fanIn);
      if (group.length === 1) {
        next.push(group[0] as RunSource);
        continue;
      }
      const path = `${base}.m${made.length}.run`;
      made.push(path);
      const w = await RunWriter.create(path);
      try {
        await mergeRuns(group, async (key, values) => {
          if (w.add(key, values)) await w.flush();
        });
        await w.finish();
      } catch (err) {
        await w.abort();
        throw err;
      }
      next.push(path);
    }
    level = next;
  }
  return level;
}

/** fsyncs a directory so a rename in it is durable (DESIGN.md, Durability). */
export async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
