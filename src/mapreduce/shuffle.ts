/**
 * The shuffle: where a node keeps its map outputs, how it serves one
 * partition of one map attempt's output as a stream of byte chunks
 * (`MapReduce.fetchPartition`), and how a reducer's node fetches such a
 * stream into a local file (temp name, then rename, so a half-fetched run is
 * never read; the run format's end frame catches a truncated one anyway).
 *
 * ```ts
 * const path = mapRunPath(mrDir, 'wc-1', 3, 17, 0);  // <mrDir>/wc-1/maps/m-3.a17.r00000.run
 * node.serve(MapReduceService, { ..., fetchPartition: (req, call) => serveShuffle(mrDir, req, call) });
 * await fetchRun(peer.fetchPartition({ jobId: 'wc-1', map: 3, attemptId: 17, partition: 0 }), dest);
 * ```
 *
 * Layout under the node's data dir: `mr/<jobId>/maps/` holds map runs (named
 * by tasks.ts: `m-<map>.a<attemptId>.r<NNNNN>.run`), `mr/<jobId>/fetch-<attemptId>/`
 * the runs a reduce attempt fetched.
 */
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CohortError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import type { CallContext, ServerStream } from '../rpc/service.js';
import { tempPathFor } from './format.js';

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
  await mkdir(dirname(dest), { recursive: true });
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
