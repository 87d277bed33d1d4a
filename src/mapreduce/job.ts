/**
 * The MapReduce job API: what a user writes, and how cohort loads it.
 *
 * A job is a module (TypeScript or JavaScript) whose default export is made by
 * {@link defineJob} (a plain object with `map` and `reduce`, or named exports
 * `map`/`mapBlock`/`mapBytes`/`reduce`/`combine`/`fold`/`partition`/`defaults`, are accepted too):
 *
 * ```ts
 * // wordcount.ts
 * import { defineJob } from 'cohort/mapreduce';
 *
 * export default defineJob<number, number>({
 *   map(_offset, line, emit) {
 *     for (const w of line.split(/[^A-Za-z]+/)) if (w !== '') emit(w, 1);
 *   },
 *   fold: (a, b) => a + b, // the combiner, as a merge of two values (fast path)
 *   reduce(word, counts, emit) {
 *     let n = 0;
 *     for (const c of counts) n += c;
 *     emit(word, n);
 *   },
 *   defaults: { reducers: 4 },
 * });
 *
 * // whoever runs it (a worker thread, the sequential runner, a test):
 * const job = await loadJob('examples/mapreduce/wordcount.ts');
 * ```
 *
 * Semantics (the engine guarantees them on every path; the sequential runner is the reference):
 * - Input records are the lines of the input files: `map(offset, line, emit, ctx)`
 *   gets the byte offset of the line in its file and the line without its `\n`
 *   (and without a `\r` before it), decoded as UTF-8. `ctx.file` names the file.
 * - Intermediate keys are strings; values are anything MessagePack carries
 *   (numbers, strings, booleans, null, arrays, plain objects, Uint8Array).
 * - `reduce(key, values, emit, ctx)` runs once per distinct key, keys in
 *   ascending JavaScript string order within each partition. `values` arrive in
 *   input order (file order, then line order) when there is no combiner.
 * - `combine` is an optimisation: it may run zero, one or many times on any
 *   subset of a key's values, on the map side. It must emit only for the key
 *   it was given, and the job's output must not depend on whether it ran.
 * - `fold(a, b, key)` is the combiner written as an associative merge of two
 *   values of one key (a sum, a max, a set union). Give it instead of
 *   `combine` when you can: the map side then keeps a single value per key and
 *   folds each emitted value into it at once, with no per-value buffering —
 *   as fast as a hand-written counting loop. `reduce` then receives the folded
 *   partial values (at most one per map task and spill), in input order.
 *   For numbers summed, give the built-in `sumFold` ({@link sumFold}): the
 *   map task then adds in place, with no call per value, and the reduce task
 *   adds up each key's values over all its runs by the keys' bytes instead
 *   of merging the runs, so `reduce` receives one value per key, the sum of
 *   the partial ones in input order.
 * - `mapBlock(offset, block, emit, ctx)` is an optional fast form of `map`
 *   over many records at once: `block` is the text of one or more consecutive
 *   whole lines of a split, each with its line ending as in the file (`\n` or
 *   `\r\n`; the split's last line may have none, or a lone `\r`), and
 *   `offset` the byte offset of its first line. It must emit exactly the
 *   pairs that `map` would emit for those lines, one after the other, in the
 *   same order: typically both call one scanning function, when no record
 *   spans a line break and a line ending separates like any other separator
 *   (word count). The map task calls it on blocks of about
 *   {@link import('./input.js').MAP_BLOCK_BYTES} instead of calling `map` per
 *   line (one call per line is a sizeable part of a cheap map's cost), except
 *   when it must know records one by one (`skipBadRecords`, or records to
 *   skip); the sequential runner always uses `map`. Like `combine`, it is an
 *   optimisation: the output must not depend on which of the two ran. A
 *   throwing `mapBlock` fails the task naming the block's first offset.
 * - `mapBytes(offset, bytes, emit, ctx)` is the byte-level fast form, for a
 *   map whose keys are pieces of its input (words, fields, tokens): `bytes`
 *   holds one or more whole lines of a split as they are in the file (not
 *   decoded; line endings included), `offset` is the file offset of
 *   `bytes[0]`, and `emit(start, end, value)` emits the pair whose key is
 *   `bytes[start, end)` decoded as UTF-8 ({@link EmitBytes}). The map task
 *   looks the key up by its bytes in place (key-table.ts's `ByteKeyIndex`):
 *   a key seen before makes no string at all, so a word count spends about
 *   what a hand-written byte loop does. Contract as for `mapBlock`: it must
 *   emit exactly the pairs `map` would emit for those lines, in the same
 *   order, where a key is the text its range decodes to; so cut ranges at
 *   character boundaries (a range that starts or ends next to an ASCII byte,
 *   e.g. a separator or the line's end, always does; a range that cuts a
 *   multi-byte character decodes with U+FFFD in its place). Byte sequences
 *   that decode to the same text (invalid UTF-8 decodes to U+FFFD) are one
 *   key. `bytes` is the engine's read buffer: valid during the call only,
 *   not to be kept or written. When a job has both, `mapBytes` is used
 *   rather than `mapBlock`, under the same conditions (records needing no
 *   handling of their own); a throwing one fails the task naming its first
 *   offset, and an emit whose range is not integers within `bytes` fails it
 *   with `USER_CODE_ERROR`. A scan that reads each key's bytes anyway can
 *   hash them as it goes and pass the hash (`emit(start, end, value, hash)`,
 *   see {@link EmitBytes}): the map task then does not read them again to
 *   hash them.
 * - `partition(key, reducers, ctx)` picks the reducer of a key (`ctx.params`
 *   holds the job's parameters); the default is a stable hash ({@link import('./format.js').defaultPartition}), the same on
 *   every node.
 * - All four functions are synchronous and deterministic. A function that
 *   throws fails its task with `USER_CODE_ERROR` naming the record or key; with
 *   `skipBadRecords`, a record whose `map` throws is skipped and counted
 *   instead (what it emitted before throwing is dropped too).
 * - `ctx.params` holds the job's parameters (strings given at submit time,
 *   e.g. the pattern of a grep), the same on every worker.
 */
import { isAbsolute, resolve } from 'node:path';
import { stat } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { CohortError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import { checkModuleSha256, readModule, sha256Hex } from './module-hash.js';

/** Emits one intermediate (map, combine) or output (reduce) pair. Keys are strings. */
export type Emit<V> = (key: string, value: V) => void;

/**
 * Emits one intermediate pair from a `mapBytes`: the key is the text of
 * `bytes[start, end)` (the block the job was given) decoded as UTF-8;
 * `start` and `end` are integers with 0 <= start <= end <= bytes.length.
 *
 * `hash`, optional, is the range's byte hash, when the scan computed it as
 * it read the bytes: 32-bit FNV-1a from `ctx.byteHashSeed`, one step per
 * byte, `h = Math.imul(h ^ byte, 0x01000193)` (key-table.ts `byteHash`).
 * The map task then looks the key up without reading its bytes a second
 * time. A hash that is not the range's fails the task (`USER_CODE_ERROR`);
 * it never picks another key.
 */
export type EmitBytes<V> = (start: number, end: number, value: V, hash?: number) => void;

/** What a map function knows about the record it is given, besides the record. */
export interface MapContext {
  /** The input file the record comes from, as planned (an absolute path). */
  readonly file: string;
  /** The job's parameters (strings given at submit time). */
  readonly params: Readonly<Record<string, string>>;
  /** Adds `by` (default 1) to the user counter `name`, reported in the task result. */
  count(name: string, by?: number): void;
  /**
   * The seed of the byte hash a `mapBytes` may pass with each range it emits
   * ({@link EmitBytes}); the same for every call in a thread, random per process.
   */
  readonly byteHashSeed: number;
}

/** What a reduce (or combine) function knows besides the key and its values. */
export interface ReduceContext {
  /** The partition (reducer number) being reduced; -1 for a map-side combine. */
  readonly partition: number;
  /** The job's parameters (strings given at submit time). */
  readonly params: Readonly<Record<string, string>>;
  /** Adds `by` (default 1) to the user counter `name`, reported in the task result. */
  count(name: string, by?: number): void;
}

/** What a partitioner knows besides the key and the number of reducers. */
export interface PartitionContext {
  /** The job's parameters (strings given at submit time). */
  readonly params: Readonly<Record<string, string>>;
}

/** Per-job defaults a job module may declare; the submitter may override them. */
export interface JobDefaults {
  /** Number of reducers (output files `part-r-NNNNN`); default 1. */
  readonly reducers?: number;
  /** Target input split size in bytes (one split = one map task); default `limits.mrSplitBytesDefault`. */
  readonly splitBytes?: number;
  /** Skip (and count) records whose map throws instead of failing the task; default false. */
  readonly skipBadRecords?: boolean;
}

/**
 * What a job module provides. `V` is the type of intermediate values (what
 * map emits and reduce receives); `O` the type of output values.
 */
export interface JobSpec<V = unknown, O = unknown> {
  /** Called once per input line: `offset` is its byte offset in `ctx.file`. */
  map: (offset: number, line: string, emit: Emit<V>, ctx: MapContext) => void;
  /**
   * Optional fast form of `map` over a block of whole lines (with their line
   * endings), `offset` being the first line's; must emit what `map` would for
   * each line in turn. See the file header.
   */
  mapBlock?: (offset: number, block: string, emit: Emit<V>, ctx: MapContext) => void;
  /**
   * Optional byte-level fast form of `map` over a block of whole lines as
   * they are in the file (`offset`: the file offset of `bytes[0]`), emitting
   * keys as byte ranges of `bytes`; must emit what `map` would for each line
   * in turn. Used instead of `mapBlock` when both are given. See the file header.
   */
  mapBytes?: (offset: number, bytes: Uint8Array, emit: EmitBytes<V>, ctx: MapContext) => void;
  /** Called once per distinct key with every value emitted for it. */
  reduce: (key: string, values: V[], emit: Emit<O>, ctx: ReduceContext) => void;
  /** Optional map-side pre-reduction; see the file header for its contract. */
  combine?: (key: string, values: V[], emit: Emit<V>, ctx: ReduceContext) => void;
  /** Optional combiner as an associative merge of two values (fast path); exclusive with `combine`. */
  fold?: (a: V, b: V, key: string) => V;
  /**
   * Optional partitioner: an integer in [0, reducers). `ctx.params` holds the
   * job's parameters (e.g. the cut points of a range partitioner).
   */
  partition?: (key: string, reducers: number, ctx: PartitionContext) => number;
  /** Optional defaults (reducers, split size, skipping bad records). */
  defaults?: JobDefaults;
}

/** A validated job, as returned by {@link defineJob} and {@link loadJob}. */
export interface Job<V = unknown, O = unknown> extends JobSpec<V, O> {
  /** Where the job came from (a module path, or `inline`), for error messages. */
  readonly source: string;
  /** The defaults, filled in. */
  readonly defaults: Required<JobDefaults>;
}

/** The type-erased job the engine passes around. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyJob = Job<any, any>;

const JOB_BRAND = Symbol.for('cohort.mapreduce.job');

/**
 * Declares a job. Checks its shape at once (a missing `map` or `reduce` is an
 * `INVALID_ARGUMENT`) and fills in the defaults, so a bad job fails when it is
 * loaded, not halfway through its first task.
 */
export function defineJob<V = unknown, O = unknown>(spec: JobSpec<V, O>): Job<V, O> {
  return validateJob(spec, 'inline') as Job<V, O>;
}

/** Marks a built-in fold (a Symbol.for key: a job may load its own copy of this module). */
const BUILT_IN_FOLD = Symbol.for('cohort.mapreduce.builtInFold');

/**
 * The built-in numeric sum fold, `(a, b) => a + b`: give it as a job's
 * `fold` (`fold: sumFold`) when the values are numbers summed, and the map
 * task adds each emitted value in place instead of calling a function per
 * value. Elsewhere (the sequential runner, merging spills) it is called as
 * the function it is, so the result is the same either way. A per-value
 * call cost more than the addition it makes: the map task's one fold call
 * site sees every job's fold a thread runs (the engine's warm-up jobs too),
 * and V8 stops inlining a call site that has seen several functions.
 */
export const sumFold: (a: number, b: number) => number = Object.assign(
  (a: number, b: number): number => a + b,
  { [BUILT_IN_FOLD]: 'sum' },
);

/** Which built-in fold `fold` is (`sum` for {@link sumFold}, by its mark), or undefined. */
export function builtInFold(fold: unknown): 'sum' | undefined {
  return typeof fold === 'function' &&
    (fold as { [BUILT_IN_FOLD]?: unknown })[BUILT_IN_FOLD] === 'sum'
    ? 'sum'
    : undefined;
}

/** True if `value` came out of {@link defineJob} or {@link loadJob}. */
export function isJob(value: unknown): value is AnyJob {
  return typeof value === 'object' && value !== null && JOB_BRAND in value;
}

function invalid(source: string, what: string): CohortError {
  return new CohortError('INVALID_ARGUMENT', `job ${source}: ${what}`, { details: { source } });
}

function positiveInt(source: string, name: string, v: unknown, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) {
    throw invalid(source, `defaults.${name} must be an integer in 1..${max}, got ${describe(v)}`);
  }
  return v;
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  if (v === null || typeof v !== 'object') return String(v);
  return Array.isArray(v) ? 'an array' : 'an object';
}

/**
 * Checks that `spec` has the shape of a job and returns it frozen with its
 * defaults filled in. `source` names the module in error messages.
 */
export function validateJob(spec: unknown, source: string): AnyJob {
  if (isJob(spec)) return spec;
  if (typeof spec !== 'object' || spec === null) {
    throw invalid(
      source,
      `expected an object with map and reduce functions, got ${describe(spec)}`,
    );
  }
  const s = spec as Record<string, unknown>;
  const missing = ['map', 'reduce'].filter((k) => typeof s[k] !== 'function');
  if (missing.length > 0) {
    throw invalid(
      source,
      `does not export ${missing.map((m) => `a ${m} function`).join(' or ')} ` +
        '(export default defineJob({ map, reduce }), or export function map/reduce)',
    );
  }
  for (const k of ['mapBlock', 'mapBytes', 'combine', 'fold', 'partition'] as const) {
    if (s[k] !== undefined && typeof s[k] !== 'function') {
      throw invalid(source, `${k} must be a function, got ${describe(s[k])}`);
    }
  }
  if (s['combine'] !== undefined && s['fold'] !== undefined) {
    throw invalid(
      source,
      'give either combine or fold, not both (fold is the faster form of a combiner)',
    );
  }
  const d = s['defaults'];
  if (d !== undefined && (typeof d !== 'object' || d === null)) {
    throw invalid(source, `defaults must be an object, got ${describe(d)}`);
  }
  const dd = (d ?? {}) as Record<string, unknown>;
  const defaults: Required<JobDefaults> = {
    reducers:
      dd['reducers'] === undefined
        ? 1
        : positiveInt(source, 'reducers', dd['reducers'], limits.mrReducersMax),
    splitBytes:
      dd['splitBytes'] === undefined
        ? limits.mrSplitBytesDefault
        : positiveInt(source, 'splitBytes', dd['splitBytes'], Number.MAX_SAFE_INTEGER),
    skipBadRecords: dd['skipBadRecords'] === undefined ? false : Boolean(dd['skipBadRecords']),
  };
  if (dd['skipBadRecords'] !== undefined && typeof dd['skipBadRecords'] !== 'boolean') {
    throw invalid(source, `defaults.skipBadRecords must be a boolean`);
  }
  const job: Record<string | symbol, unknown> = {
    map: s['map'],
    reduce: s['reduce'],
    source,
    defaults: Object.freeze(defaults),
    [JOB_BRAND]: true,
  };
  if (s['mapBlock'] !== undefined) job['mapBlock'] = s['mapBlock'];
  if (s['mapBytes'] !== undefined) job['mapBytes'] = s['mapBytes'];
  if (s['combine'] !== undefined) job['combine'] = s['combine'];
  if (s['fold'] !== undefined) job['fold'] = s['fold'];
  if (s['partition'] !== undefined) job['partition'] = s['partition'];
  return Object.freeze(job) as unknown as AnyJob;
}

const loaded = new Map<string, Promise<AnyJob>>();
/** Job module versions kept loaded per thread (a long-lived worker sees many jobs). */
const LOADED_MAX = 16;

/** What the loaded module must be: the job's record names it by content (module-hash.ts). */
export interface ModuleExpectation {
  /** The sha256 (hex) of the module's bytes when the job was submitted. */
  readonly sha256: string;
  /** Where it is loaded, for the error (e.g. `on node n2`). */
  readonly where?: string;
  /** The job, for the error. */
  readonly jobId?: string;
}

/** Distinguishes the imports of one verified hash after a failed load (a fresh module instance). */
let verifiedLoads = 0;

/**
 * Imports the job module at `path` (relative to the working directory) and
 * validates it. `.js`/`.mjs` modules load through plain `import()`; `.ts`
 * modules through tsx, an optional peer dependency of the package (a dev
 * dependency in a checkout): without it, a TypeScript job fails with
 * `FAILED_PRECONDITION` saying to install tsx or compile the job. Cached per path
 * and file version (mtime and size), so every task in a worker thread reuses
 * one instance, while an edited module is loaded afresh by a long-lived
 * worker.
 *
 * With `expect` (a job's recorded sha256, as a node's workers load it), the
 * file's bytes are hashed before the import and again after it, and a
 * difference either time is a definite `MODULE_MISMATCH` naming both hashes:
 * a file that changed after the submit is never imported, and one that
 * changed while it was being imported is refused (and its instance dropped).
 * Such a module is cached per path and hash: a worker keeps running the bytes
 * the job was submitted with. (A file swapped and swapped back within the
 * import itself is not detected: the check is for consistency across nodes
 * and edits, not against a writer of the module directory, which
 * `--mr-module-dirs` trusts.)
 *
 * Errors: `NOT_FOUND` (no such file), `INVALID_ARGUMENT` (not a file, no
 * map/reduce, bad defaults; the message names the module and what is
 * missing), `USER_CODE_ERROR` (the module threw while loading),
 * `MODULE_MISMATCH` (see above).
 */
export async function loadJob(path: string, expect?: ModuleExpectation): Promise<AnyJob> {
  const abs = isAbsolute(path) ? path : resolve(path);
  if (expect !== undefined) return loadVerified(abs, expect);
  let version: string;
  try {
    const st = await stat(abs);
    if (!st.isFile()) throw new CohortError('INVALID_ARGUMENT', `job module ${abs} is not a file`);
    version = `${st.mtimeMs}-${st.size}`;
  } catch (err) {
    if (err instanceof CohortError) throw err;
    throw new CohortError('NOT_FOUND', `job module ${abs} does not exist`, { cause: err });
  }
  const key = `${abs}?v=${version}`;
  let p = loaded.get(key);
  if (p === undefined) {
    p = importJob(abs, version);
    remember(key, p);
  }
  return p;
}

function remember(key: string, p: Promise<AnyJob>): void {
  loaded.set(key, p);
  p.catch(() => loaded.delete(key));
  if (loaded.size > LOADED_MAX) loaded.delete(loaded.keys().next().value as string);
}

async function loadVerified(abs: string, expect: ModuleExpectation): Promise<AnyJob> {
  const where = expect.where ?? 'here';
  const check = async (when: string): Promise<void> =>
    checkModuleSha256(
      abs,
      expect.sha256,
      sha256Hex(await readModule(abs)),
      when === '' ? where : `${where} ${when}`,
      expect.jobId,
    );
  // Before every use, cached or not: the file on disk is what the job names.
  await check('');
  const key = `${abs}#sha256=${expect.sha256}`;
  let p = loaded.get(key);
  if (p === undefined) {
    const version = `sha256-${expect.sha256}-${verifiedLoads++}`;
    p = importJob(abs, version).then(async (job) => {
      await check('(it changed while it was being loaded)');
      return job;
    });
    remember(key, p);
  }
  return p;
}

async function importJob(abs: string, version: string): Promise<AnyJob> {
  // The version in the URL makes the module loader evaluate an edited file again.
  const url = `${pathToFileURL(abs).href}?v=${version}`;
  let mod: Record<string, unknown>;
  try {
    if (/\.[cm]?tsx?$/.test(abs)) {
      let tsImport: (specifier: string, parent: string) => Promise<unknown>;
      try {
        ({ tsImport } = await import('tsx/esm/api'));
      } catch (err) {
        throw new CohortError(
          'FAILED_PRECONDITION',
          `job module ${abs} is TypeScript, which needs tsx (an optional peer dependency of cohort): ` +
            'install it next to cohort (npm install --save-dev tsx), or compile the job to .js',
          { cause: err },
        );
      }
      mod = (await tsImport(url, import.meta.url)) as Record<string, unknown>;
    } else {
      mod = (await import(url)) as Record<string, unknown>;
    }
  } catch (err) {
    if (err instanceof CohortError) throw err;
    throw new CohortError(
      'USER_CODE_ERROR',
      `job module ${abs} failed to load: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err, details: { source: abs } },
    );
  }
  const def = mod['default'];
  // tsx may wrap a CommonJS-looking module's exports in a second `default`.
  const candidates = [def, (def as Record<string, unknown> | undefined)?.['default'], mod];
  for (const c of candidates) {
    if (isJob(c)) return rebrand(c, abs);
  }
  for (const c of candidates) {
    if (typeof c === 'object' && c !== null && ('map' in c || 'reduce' in c)) {
      return validateJob(c, abs);
    }
  }
  return validateJob(mod, abs);
}

function rebrand(job: AnyJob, source: string): AnyJob {
  if (job.source === source) return job;
  const { map, mapBlock, mapBytes, reduce, combine, fold, partition, defaults } = job;
  return validateJob(
    { map, mapBlock, mapBytes, reduce, combine, fold, partition, defaults },
    source,
  );
}
