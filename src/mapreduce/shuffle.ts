/**
 * The shuffle: where a node keeps its map outputs, how it serves one
 * partition of one map attempt's output as a stream of byte chunks
 * (`MapReduce.fetchPartition`), and how a reduce attempt gets its partition
 * of every map's output ({@link fetchPartitionRuns}): a run on this node is
 * read where it lies; a run on another node is fetched into memory while
 * the attempt's runs fit `limits.mrShuffleMemoryBytesMax` (its bytes go to
 * the worker thread as they are, moved, not copied), else into a local file
 * (temp name, then rename, so a half-fetched run is never read; the run
 * format's end frame catches a truncated one anyway). A run fetched into
 * memory must have exactly the size its map reported; its frames' CRC32Cs,
 * structure and key order are checked as a file's are, by the reader.
 *
 * ```ts
 * const path = mapRunPath(mrDir, 'wc-1', 3, 17, 0);  // <mrDir>/wc-1/maps/m-3.a17.r00000.run
 * node.serve(MapReduceService, { ..., fetchPartition: (req, call) => serveShuffle(mrDir, req, call) });
 * await fetchRun(peer.fetchPartition({ jobId: 'wc-1', map: 3, attemptId: 17, partition: 0 }), dest);
 * const runs = await fetchPartitionRuns(host, reduceAssignment, fetchDir(mrDir, 'wc-1', 40), signal);
 * ```
 *
 * Layout under the node's data dir: `mr/<jobId>/maps/` holds map runs (named
 * by tasks.ts: `m-<map>.a<attemptId>.r<NNNNN>.run`), `mr/<jobId>/fetch-<attemptId>/`
 * the runs a reduce attempt fetched into files.
 */
import { open, rename, stat, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { makeDirs } from '../lib/dirs.js';
import { CohortError, isCohortError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import type { CallContext, Client, ServerStream } from '../rpc/service.js';
import type { ReduceAssignment } from './core/types.js';
import { tempPathFor } from './format.js';
import type { MapReduceService } from './service.js';

const JOB_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/** The task id a map task's files are named with. */
export function mapTaskId(map: number): string {
  return `m-${map}`;
}

/** The task id of a reduce task (for messages). */
export function reduceTaskId(partition: number): string {
  return `r-${partition}`;
}

/** Directory of a job's map outputs on a node. */
export function mapDir(mrDir: string, jobId: string): string {
  return join(mrDir, jobId, 'maps');
}

/** Directory where reduce attempt `attemptId` puts the runs it fetched. */
export function fetchDir(mrDir: string, jobId: string, attemptId: number): string {
  return join(mrDir, jobId, `fetch-${attemptId}`);
}

/** Path of partition `partition` of map `map`'s attempt `attemptId` (as tasks.ts names it). */
export function mapRunPath(
  mrDir: string,
  jobId: string,
  map: number,
  attemptId: number,
  partition: number,
): string {
  return join(
    mapDir(mrDir, jobId),
    `${mapTaskId(map)}.a${attemptId}.r${String(partition).padStart(5, '0')}.run`,
  );
}

/** Request of fetchPartition. */
export interface FetchRequest {
  readonly jobId: string;
  readonly map: number;
  readonly attemptId: number;
  readonly partition: number;
}

/**
 * Serves one map run as chunks of at most `limits.mrShuffleChunkBytes`;
 * NOT_FOUND if this node does not hold it (lost, cleaned up). The file is
 * read `limits.mrShuffleReadBytes` at a time into a fresh block and the
 * chunks are views of that block: one read on libuv's pool per block rather
 * than one per chunk (a read stream's), and no block is ever reused, so a
 * chunk stays valid however long the transport holds it.
 */
export async function* serveShuffle(
  mrDir: string,
  req: FetchRequest,
  call: CallContext,
): AsyncGenerator<{ data: Uint8Array }, void, undefined> {
  if (!JOB_ID.test(req.jobId)) {
    throw new CohortError('INVALID_ARGUMENT', `bad job id ${JSON.stringify(req.jobId)}`);
  }
  const path = mapRunPath(mrDir, req.jobId, req.map, req.attemptId, req.partition);
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch {
    throw new CohortError(
      'NOT_FOUND',
      `map ${req.map} attempt ${req.attemptId} of job ${req.jobId} has no partition ${req.partition} here`,
      { details: { ...req } },
    );
  }
  try {
    for (;;) {
      if (call.signal.aborted) return;
      const block = Buffer.allocUnsafe(limits.mrShuffleReadBytes);
      const { bytesRead } = await fh.read(block, 0, block.length, null);
      for (let at = 0; at < bytesRead; at += limits.mrShuffleChunkBytes) {
        if (call.signal.aborted) return;
        yield { data: block.subarray(at, Math.min(bytesRead, at + limits.mrShuffleChunkBytes)) };
      }
      if (bytesRead < block.length) return;
    }
  } finally {
    await fh.close();
  }
}

/** Writes a fetched run to `dest` (via a temp file and a rename); returns its bytes. */
export async function fetchRun(
  items: ServerStream<{ data: Uint8Array }>,
  dest: string,
): Promise<number> {
  makeDirs(dirname(dest));
  const temp = tempPathFor(dest);
  const fh = await open(temp, 'w');
  let bytes = 0;
  let ok = false;
  try {
    for await (const { data } of items) {
      await fh.write(data);
      bytes += data.length;
    }
    await fh.close();
    await rename(temp, dest);
    ok = true;
    return bytes;
  } finally {
    if (!ok) {
      items.cancel();
      await fh.close().catch(() => undefined);
      await unlink(temp).catch(() => undefined);
    }
  }
}

/**
 * Fetches a run into memory: `bytes` long, exactly (the size its map
 * reported). More or fewer bytes fail with CORRUPTION (and cancel the
 * stream) before anything reads them. The result owns its whole
 * ArrayBuffer (not a slice of a pool), so it can be moved to a worker
 * thread.
 */
export async function fetchRunToMemory(
  items: ServerStream<{ data: Uint8Array }>,
  bytes: number,
): Promise<Uint8Array> {
  const out = new Uint8Array(Buffer.allocUnsafeSlow(bytes).buffer, 0, bytes);
  let at = 0;
  let ok = false;
  try {
    for await (const { data } of items) {
      if (data.length > bytes - at) {
        throw new CohortError('CORRUPTION', `fetched run is longer than its ${bytes} bytes`, {
          details: { bytes },
        });
      }
      out.set(data, at);
      at += data.length;
    }
    if (at !== bytes) {
      throw new CohortError('CORRUPTION', `fetched run has ${at} of its ${bytes} bytes`, {
        details: { bytes, received: at },
      });
    }
    ok = true;
    return out;
  } finally {
    if (!ok) items.cancel();
  }
}

/** A run of a reduce's partition: a local file's path, or its bytes (fetched into memory). */
export type FetchedRun = string | Uint8Array;

/** What {@link fetchPartitionRuns} needs of the node it runs on (worker.ts's runtime). */
export interface ShuffleHost {
  /** This node's id. */
  readonly self: string;
  /** Where this node keeps map outputs. */
  readonly mrDir: string;
  /** How long a fetch may wait for its first chunk before it counts as failed (ms). */
  readonly firstChunkMs: number;
  /** A client stub for the MapReduce service on `node`. */
  peer(node: string): Pick<Client<typeof MapReduceService>, 'fetchPartition'>;
  /** The attempt whose output of map `map` the job uses now (the replicated state), if any. */
  mapOutputAttempt(jobId: string, map: number): number | undefined;
}

/** Raised when a map output cannot be fetched (the caller reports it: `fetchFailed`). */
export class FetchFailure extends Error {
  constructor(
    readonly map: number,
    readonly node: string,
    cause: unknown,
  ) {
    super(
      `cannot fetch map ${map}'s output from node ${node}: ${cause instanceof Error ? cause.message : String(cause)}`,
    );
  }
}

/** Tries per map output before a reduce attempt reports the fetch as failed. */
const FETCH_TRIES = 3;
/** Map outputs a reduce attempt fetches at once. */
const FETCH_PARALLEL = 4;
/** Deadline of one whole fetch of a map run. */
const FETCH_DEADLINE_MS = 10 * 60_000;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

/**
 * Opens a stream and cancels it if its first item does not come within
 * `firstItemMs`: a call to a node that is down and was never connected waits
 * for its deadline otherwise (the transport reports 'down' only for a link
 * that was up), and a reducer should report a dead map holder quickly.
 */
function firstItemWithin<T>(
  open: (signal: AbortSignal) => ServerStream<T>,
  outer: AbortSignal,
  firstItemMs: number,
): ServerStream<T> {
  const ctrl = new AbortController();
  const onOuter = (): void => ctrl.abort();
  outer.addEventListener('abort', onOuter, { once: true });
  const stream = open(ctrl.signal);
  let started = false;
  const timer = setTimeout(() => {
    if (!started) ctrl.abort();
  }, firstItemMs);
  timer.unref();
  return {
    cancel: () => stream.cancel(),
    async *[Symbol.asyncIterator]() {
      try {
        for await (const item of stream) {
          started = true;
          yield item;
        }
      } finally {
        clearTimeout(timer);
        outer.removeEventListener('abort', onOuter);
      }
    },
  };
}

/**
 * Gets reduce attempt `a`'s partition of every map output, in map order
 * (see the file comment): local runs by path (checked to exist), remote ones
 * fetched, a few at a time (FETCH_PARALLEL), each tried a few
 * times. Runs from other nodes go to memory while their reported sizes fit
 * `memoryBytesMax` (reserved in map order before each fetch starts), the
 * rest to files in `dir`. Throws {@link FetchFailure} for a map output that
 * cannot be had (its holder is gone, or the map was redone meanwhile), and
 * CANCELLED once `signal` aborts.
 */
export async function fetchPartitionRuns(
  host: ShuffleHost,
  a: Pick<ReduceAssignment, 'jobId' | 'index' | 'mapOutputs'>,
  dir: string,
  signal: AbortSignal,
  memoryBytesMax = limits.mrShuffleMemoryBytesMax,
): Promise<FetchedRun[]> {
  const runs: FetchedRun[] = new Array<FetchedRun>(a.mapOutputs.length);
  let memoryLeft = memoryBytesMax;
  let next = 0;
  const one = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      const loc = a.mapOutputs[i];
      if (loc === undefined) return;
      const local = mapRunPath(host.mrDir, a.jobId, loc.map, loc.attemptId, a.index);
      if (loc.node === host.self) {
        try {
          await stat(local);
        } catch (e) {
          throw new FetchFailure(loc.map, loc.node, e);
        }
        runs[i] = local;
        continue;
      }
      // A size of 0 is unknown (every run has at least a header and an end frame).
      const inMemory = loc.bytes > 0 && loc.bytes <= memoryLeft;
      if (inMemory) memoryLeft -= loc.bytes;
      const dest = join(dir, `m-${loc.map}.run`);
      let lastError: unknown;
      let run: FetchedRun | undefined;
      for (let t = 0; t < FETCH_TRIES; t++) {
        if (signal.aborted) throw new CohortError('CANCELLED', 'reduce attempt stopped');
        // The map was redone elsewhere meanwhile (another reducer reported its node):
        // give the task back at once; it comes back with the new location.
        if (t > 0 && host.mapOutputAttempt(a.jobId, loc.map) !== loc.attemptId) break;
        try {
          const peer = host.peer(loc.node);
          const items = firstItemWithin(
            (s) =>
              peer.fetchPartition(
                { jobId: a.jobId, map: loc.map, attemptId: loc.attemptId, partition: a.index },
                { timeoutMs: FETCH_DEADLINE_MS, signal: s },
              ),
            signal,
            host.firstChunkMs,
          );
          if (inMemory) {
            run = await fetchRunToMemory(items, loc.bytes);
          } else {
            await fetchRun(items, dest);
            run = dest;
          }
          lastError = undefined;
          break;
        } catch (e) {
          lastError = e;
          if (isCohortError(e) && e.code === 'NOT_FOUND') break;
          await sleep(100 * (t + 1));
        }
      }
      if (run === undefined) throw new FetchFailure(loc.map, loc.node, lastError);
      runs[i] = run;
    }
  };
  await Promise.all(Array.from({ length: FETCH_PARALLEL }, () => one()));
  return runs;
}
