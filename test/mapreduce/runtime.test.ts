/**
 * The MapReduce runtime's parts, in one process: the worker-thread pool
 * (a task runs in a thread; a thread that exits, blocks or is aborted fails
 * its task with a stable code and is replaced), the module's replicated state
 * (address registry refusals, snapshots), the shuffle's serving and
 * fetching of one map run, and the node settings that configure it.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { CohortError } from '../../src/lib/errors.js';
import { limits } from '../../src/lib/limits.js';
import { MapReduceModuleState } from '../../src/mapreduce/module.js';
import { runtimeDefaults } from '../../src/mapreduce/runtime.js';
import { resolveNodeConfig } from '../../src/node/config.js';
import type { CallContext, ServerStream } from '../../src/rpc/service.js';
import {
  fetchPartitionRuns,
  FetchFailure,
  fetchRun,
  fetchRunToMemory,
  mapRunPath,
  serveShuffle,
} from '../../src/mapreduce/shuffle.js';
import type { FetchRequest, ShuffleHost } from '../../src/mapreduce/shuffle.js';
import type { MapTaskResult, ReduceTaskResult } from '../../src/mapreduce/tasks.js';
import { WorkerPool } from '../../src/mapreduce/worker-pool.js';
import type { ThreadMapTask, ThreadReduceTask } from '../../src/mapreduce/worker-thread.js';
import { nodeId } from '../../src/lib/ids.js';

const dir = mkdtempSync(join(tmpdir(), 'cohort-mr-rt-'));
const behave = fileURLToPath(new URL('./fixtures/behave-job.ts', import.meta.url));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const input = join(dir, 'in.txt');
writeFileSync(input, 'a\nb\nbad\na\n');

function mapTask(behaveAs: string, attempt: number): ThreadMapTask {
  return {
    kind: 'map',
    module: behave,
    split: { file: input, start: 0, end: 10 },
    reducers: 2,
    dir: join(dir, 'maps'),
    taskId: 'm-0',
    attempt,
    params: { behave: behaveAs },
    skipBadRecords: false,
    skipOffsets: [],
    progress: new Float64Array(new SharedArrayBuffer(16)),
  };
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return e instanceof CohortError ? e.code : String(e);
  }
}

describe('WorkerPool', () => {
  it('runs map tasks in threads and replaces a thread that exits, blocks or is aborted', async () => {
    // Blocked tasks block until killed, so any stall limit works; 2 s keeps a
    // starved but healthy thread from looking stalled.
    const pool = new WorkerPool({ size: 1, stallMs: 2_000 });
    const slot = pool.slot(0);
    try {
      expect(await slot.run({ kind: 'load', module: behave })).toBeNull(); // preload
      const ok = (await slot.run(mapTask('ok', 1))) as MapTaskResult;
      expect(ok.runs.map((r) => r.partition)).toEqual([0, 1]);
      expect(ok.counters.recordsIn).toBe(4);
      expect(slot.started).toBe(1);

      // process.exit in user code ends the thread only: the task fails, the node lives on.
      expect(await code(slot.run(mapTask('exit', 2)))).toBe('USER_CODE_ERROR');
      // A thrown error names the record.
      await expect(slot.run(mapTask('throw', 3))).rejects.toThrow(/in\.txt:4.*bad record/);
      // A blocked thread stops pinging and counting records: killed as stalled.
      const progress = new Float64Array(new SharedArrayBuffer(16));
      const blocked = { ...mapTask('block', 4), progress };
      expect(await code(slot.run(blocked))).toBe('TIMEOUT');
      expect(progress[0]).toBe(4); // the shared slot names the record it blocked on

      const running = slot.run(mapTask('block', 5));
      slot.abort('lease lost');
      expect(await code(running)).toBe('CANCELLED');

      // Each failure that killed the thread was followed by a fresh one.
      expect(await code(slot.run(mapTask('ok', 6)))).toBe('ok');
      expect(slot.started).toBe(4);
    } finally {
      await pool.close();
    }
  });
});

describe('WorkerPool, a reduce given its runs in memory', () => {
  /** A copy of `bytes` that owns its whole ArrayBuffer, as the shuffle's runs in memory do. */
  const owned = (bytes: Uint8Array): Uint8Array => {
    const out = new Uint8Array(Buffer.allocUnsafeSlow(bytes.length).buffer, 0, bytes.length);
    out.set(bytes);
    return out;
  };

  it('reduces them as it reduces the files, moving (not copying) their bytes to the thread; a damaged one is CORRUPTION', async () => {
    const pool = new WorkerPool({ size: 1, stallMs: 2_000 });
    const slot = pool.slot(0);
    const out = join(dir, 'reduce-mem');
    mkdirSync(out, { recursive: true });
    const reduce = (runs: (string | Uint8Array)[], name: string): ThreadReduceTask => ({
      kind: 'reduce',
      module: behave,
      partition: 0,
      runs,
      output: join(out, name),
      taskId: 'r-0',
      attempt: 1,
      params: {},
    });
    try {
      const m1 = (await slot.run({
        ...mapTask('ok', 21),
        dir: join(dir, 'maps-mem'),
      })) as MapTaskResult;
      const m2 = (await slot.run({
        ...mapTask('ok', 22),
        dir: join(dir, 'maps-mem'),
      })) as MapTaskResult;
      const paths = [m1, m2].map((m) => (m.runs[0] as { path: string }).path);
      await slot.run(reduce(paths, 'from-files'));
      const expected = readFileSync(join(out, 'from-files'), 'utf8');
      expect(expected).not.toBe('');

      const inMemory = owned(readFileSync(paths[1] as string));
      const r = (await slot.run(
        reduce([paths[0] as string, inMemory], 'from-memory'),
      )) as ReduceTaskResult;
      expect(readFileSync(join(out, 'from-memory'), 'utf8')).toBe(expected);
      expect(r.counters.valuesIn).toBeGreaterThan(0);
      // Moved to the thread with the task: detached here.
      expect(inMemory.buffer.byteLength).toBe(0);

      const damaged = owned(readFileSync(paths[1] as string));
      const at = damaged.length >> 1;
      damaged[at] = (damaged[at] as number) ^ 0xff;
      await expect(
        slot.run(reduce([paths[0] as string, damaged], 'damaged')),
      ).rejects.toMatchObject({
        code: 'CORRUPTION',
      });
      expect(existsSync(join(out, 'damaged'))).toBe(false);
    } finally {
      await pool.close();
    }
  });
});

describe('WorkerPool.warmEngines', () => {
  it('warms each thread once, before a task given meanwhile; a thread warmed by a preload is not warmed again', async () => {
    const pool = new WorkerPool({ size: 2, stallMs: 10_000 });
    try {
      expect(await pool.slot(1).run({ kind: 'load', module: behave })).toBeNull(); // a preload warms
      const warming = pool.warmEngines();
      // Both slots are taken by the warm-up at once (a node starts its worker loops next).
      expect(pool.slots.map((s) => s.busy)).toEqual([true, true]);
      let waited = false;
      const slot = pool.slot(0);
      const task = (async () => {
        while (slot.busy) {
          waited = true;
          await slot.whenIdle();
        }
        return slot.run(mapTask('ok', 1));
      })();
      expect(await warming).toBe(1); // slot 0 now; slot 1 was warm already
      expect(((await task) as MapTaskResult).counters.recordsIn).toBe(4);
      expect(waited).toBe(true);
      expect(await pool.slot(0).run({ kind: 'warm' })).toBe(false);
      // A fresh thread (the old one aborted) is cold again.
      const blocked = pool.slot(0).run(mapTask('block', 2));
      pool.slot(0).abort('test');
      expect(await code(blocked)).toBe('CANCELLED');
      expect(await pool.warmEngines()).toBe(1);
      expect(pool.threadsStarted).toBe(3);
    } finally {
      await pool.close();
    }
  });
});

describe('MapReduceModuleState', () => {
  it('records node addresses, refuses bad ones without a change, and snapshots both parts', () => {
    const s = new MapReduceModuleState();
    expect(s.apply({ type: 'registerNode', node: 'n1', host: '127.0.0.1', port: 7201 })).toEqual({
      ok: true,
      result: { type: 'registerNode', changed: true },
    });
    expect(s.apply({ type: 'registerNode', node: 'n1', host: '127.0.0.1', port: 7201 })).toEqual({
      ok: true,
      result: { type: 'registerNode', changed: false },
    });
    for (const bad of [
      { type: 'registerNode', node: 'n2', host: '127.0.0.1', port: 0 },
      { type: 'registerNode', node: 'bad id!', host: 'h', port: 1 },
      { type: 'registerNode', node: 'n2', host: '', port: 1 },
      { type: 'registerNode', node: 'n2' },
    ]) {
      expect(s.apply(bad)).toMatchObject({ ok: false, error: { code: 'INVALID_ARGUMENT' } });
    }
    expect([...s.nodes.keys()]).toEqual(['n1']);
    const submitted = s.apply({
      type: 'submitJob',
      jobId: 'j1',
      module: '/m.ts',
      splits: [{ file: '/in', start: 0, end: 10 }],
      reducers: 1,
      output: '/out',
      now: 1,
    });
    expect(submitted).toMatchObject({ ok: true });

    const copy = new MapReduceModuleState();
    copy.restore(s.snapshot());
    expect(copy.nodes.get('n1')).toEqual({ host: '127.0.0.1', port: 7201 });
    expect(copy.core.job('j1')?.progress.maps).toBe(1);
    expect(copy.snapshot()).toEqual(s.snapshot());
    expect(() => copy.restore(new Uint8Array([1, 2, 3]))).toThrow(/mapreduce snapshot/);
    expect(copy.nodes.get('n1')).toEqual({ host: '127.0.0.1', port: 7201 });
  });
});

describe('shuffle', () => {
  const call = (): CallContext => ({
    peer: nodeId('n2'),
    identity: { kind: 'anonymous' },
    service: 'MapReduce',
    method: 'fetchPartition',
    meta: {},
    signal: new AbortController().signal,
    remainingMs: () => 1_000,
    setReplyMeta: () => {},
  });
  const collect = async (items: AsyncIterable<{ data: Uint8Array }>): Promise<Buffer> => {
    const parts: Uint8Array[] = [];
    for await (const { data } of items) parts.push(data);
    return Buffer.concat(parts);
  };

  it('serves a map run in chunks and fetches it into place; refuses bad ids and missing runs', async () => {
    const mrDir = join(dir, 'mr');
    const path = mapRunPath(mrDir, 'job-1', 2, 9, 1);
    mkdirSync(join(mrDir, 'job-1', 'maps'), { recursive: true });
    const bytes = Buffer.alloc(600 * 1024);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) % 251;
    writeFileSync(path, bytes);
    const req = { jobId: 'job-1', map: 2, attemptId: 9, partition: 1 };
    expect((await collect(serveShuffle(mrDir, req, call()))).equals(bytes)).toBe(true);

    const stream = serveShuffle(mrDir, req, call());
    const asServerStream = Object.assign(stream, { cancel: () => undefined }) as ServerStream<{
      data: Uint8Array;
    }>;
    const dest = join(dir, 'fetched', 'm-2.run');
    expect(await fetchRun(asServerStream, dest)).toBe(bytes.length);
    expect(readFileSync(dest).equals(bytes)).toBe(true);

    await expect(
      collect(serveShuffle(mrDir, { ...req, jobId: '../etc' }, call())),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(
      collect(serveShuffle(mrDir, { ...req, attemptId: 10 }, call())),
    ).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('serves a run in items of at most mrShuffleChunkBytes, reading mrShuffleReadBytes at a time', async () => {
    const mrDir = join(dir, 'mr-blocks');
    const path = mapRunPath(mrDir, 'job-2', 0, 1, 0);
    mkdirSync(join(mrDir, 'job-2', 'maps'), { recursive: true });
    const read = limits.mrShuffleReadBytes;
    const chunk = limits.mrShuffleChunkBytes;
    for (const size of [0, 5, chunk, read, 2 * read + chunk + 7]) {
      const bytes = Buffer.alloc(size);
      for (let i = 0; i < size; i++) bytes[i] = (i * 13) % 251;
      writeFileSync(path, bytes);
      const items: Uint8Array[] = [];
      for await (const { data } of serveShuffle(
        mrDir,
        { jobId: 'job-2', map: 0, attemptId: 1, partition: 0 },
        call(),
      )) {
        items.push(data);
      }
      expect(Buffer.concat(items).equals(bytes)).toBe(true);
      expect(items.every((d) => d.length > 0 && d.length <= chunk)).toBe(true);
      let expected = 0;
      for (let at = 0; at < size; at += read)
        expected += Math.ceil(Math.min(read, size - at) / chunk);
      expect(items.length).toBe(expected);
      // One file read per block: the items of a block are views of it, and no block is reused.
      const blocks = new Set(items.map((d) => d.buffer));
      expect(blocks.size).toBe(Math.ceil(size / read));
    }
  });

  const stream = (
    items: AsyncIterable<{ data: Uint8Array }>,
  ): ServerStream<{ data: Uint8Array }> & {
    cancelled: boolean;
  } => {
    const out = {
      cancelled: false,
      cancel: () => {
        out.cancelled = true;
      },
      [Symbol.asyncIterator]: () => items[Symbol.asyncIterator](),
    };
    return out;
  };
  async function* chunks(...parts: Uint8Array[]): AsyncGenerator<{ data: Uint8Array }> {
    for (const data of parts) {
      await Promise.resolve();
      yield { data };
    }
  }

  it('fetches a run into memory of exactly its reported size, owning its ArrayBuffer; more or fewer bytes are CORRUPTION', async () => {
    const a = Buffer.from('first part,');
    const b = Buffer.from('second part');
    const run = await fetchRunToMemory(stream(chunks(a, b)), a.length + b.length);
    expect(Buffer.from(run).equals(Buffer.concat([a, b]))).toBe(true);
    expect(run.byteOffset).toBe(0);
    expect(run.buffer.byteLength).toBe(a.length + b.length);

    const long = stream(chunks(a, b));
    await expect(fetchRunToMemory(long, a.length + 3)).rejects.toMatchObject({
      code: 'CORRUPTION',
    });
    expect(long.cancelled).toBe(true);
    const short = stream(chunks(a));
    await expect(fetchRunToMemory(short, a.length + b.length)).rejects.toMatchObject({
      code: 'CORRUPTION',
    });
  });

  describe('fetchPartitionRuns', () => {
    // Node n1 (this one) holds map 0's run; n2 holds maps 1 and 2.
    const here = join(dir, 'fpr-n1');
    const there = join(dir, 'fpr-n2');
    const runBytes = (map: number, size: number): Buffer => {
      const bytes = Buffer.alloc(size);
      for (let i = 0; i < size; i++) bytes[i] = (i * 31 + map) % 251;
      return bytes;
    };
    const sizes = [1000, 300 * 1024, 200 * 1024];
    for (const [map, size] of sizes.entries()) {
      const root = map === 0 ? here : there;
      mkdirSync(join(root, 'job-3', 'maps'), { recursive: true });
      writeFileSync(mapRunPath(root, 'job-3', map, 10 + map, 0), runBytes(map, size));
    }
    const assignment = (reported: readonly number[] = sizes) => ({
      jobId: 'job-3',
      index: 0,
      mapOutputs: reported.map((bytes, map) => ({
        map,
        node: map === 0 ? 'n1' : 'n2',
        attemptId: 10 + map,
        bytes,
      })),
    });
    const requests: FetchRequest[] = [];
    const host: ShuffleHost = {
      self: 'n1',
      mrDir: here,
      firstChunkMs: 5_000,
      peer: () => ({
        fetchPartition: (req: FetchRequest) => {
          requests.push(req);
          return stream(serveShuffle(there, req, call()));
        },
      }),
      mapOutputAttempt: (_jobId, map) => 10 + map,
    };

    it('keeps remote runs in memory within the bound (nothing written to disk), reads local ones in place', async () => {
      const fetchTo = join(dir, 'fpr-fetch-1');
      const runs = await fetchPartitionRuns(
        host,
        assignment(),
        fetchTo,
        new AbortController().signal,
      );
      expect(runs[0]).toBe(mapRunPath(here, 'job-3', 0, 10, 0));
      for (const map of [1, 2]) {
        const run = runs[map];
        expect(run).toBeInstanceOf(Uint8Array);
        expect(Buffer.from(run as Uint8Array).equals(runBytes(map, sizes[map] as number))).toBe(
          true,
        );
      }
      expect(existsSync(fetchTo)).toBe(false);
      expect(requests.map((r) => r.map).sort()).toEqual([1, 2]);
    });

    it('fetches a run past the bound into a file (runs before it in map order stay in memory)', async () => {
      const fetchTo = join(dir, 'fpr-fetch-2');
      const bound = (sizes[1] as number) + 100;
      const runs = await fetchPartitionRuns(
        host,
        assignment(),
        fetchTo,
        new AbortController().signal,
        bound,
      );
      expect(runs[1]).toBeInstanceOf(Uint8Array);
      expect(runs[2]).toBe(join(fetchTo, 'm-2.run'));
      expect(readFileSync(join(fetchTo, 'm-2.run')).equals(runBytes(2, sizes[2] as number))).toBe(
        true,
      );
    });

    it('a remote run of another size than its map reported fails the fetch (FetchFailure naming the map)', async () => {
      const reported = [...sizes];
      reported[2] = (sizes[2] as number) - 1;
      const fetchTo = join(dir, 'fpr-fetch-3');
      const err = await fetchPartitionRuns(
        host,
        assignment(reported),
        fetchTo,
        new AbortController().signal,
      ).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FetchFailure);
      expect(err).toMatchObject({ map: 2, node: 'n2' });
      expect((err as Error).message).toMatch(/bytes/);
    });

    it('a holder that dies mid-stream fails the fetch after its tries (FetchFailure), each stream cancelled, nothing on disk', async () => {
      let opened = 0;
      const cancelled: boolean[] = [];
      const dying: ShuffleHost = {
        ...host,
        peer: () => ({
          fetchPartition: (req: FetchRequest) => {
            if (req.map !== 1) return stream(serveShuffle(there, req, call()));
            opened++;
            // The first chunk arrives, then the link goes down.
            async function* cut(): AsyncGenerator<{ data: Uint8Array }> {
              yield { data: runBytes(1, 1000) };
              await Promise.resolve();
              throw new CohortError('UNAVAILABLE', 'peer n2 is down');
            }
            const s = stream(cut());
            const i = cancelled.push(false) - 1;
            return Object.assign(s, { cancel: () => void (cancelled[i] = true) });
          },
        }),
      };
      const fetchTo = join(dir, 'fpr-fetch-4');
      const err = await fetchPartitionRuns(
        dying,
        assignment(),
        fetchTo,
        new AbortController().signal,
      ).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FetchFailure);
      expect(err).toMatchObject({ map: 1, node: 'n2' });
      expect((err as Error).message).toMatch(/down/);
      expect(opened).toBe(3);
      expect(cancelled).toEqual([true, true, true]);
      expect(existsSync(fetchTo)).toBe(false);
    });
  });
});

describe('node settings for MapReduce', () => {
  const base = {
    id: 'n1',
    dataDir: dir,
    listen: '127.0.0.1:7101',
    rpc: '127.0.0.1:7201',
    insecure: true,
  };

  it('workers, mrLeaseMs and mrWarm come from flags, then env, with defaults; bad values name the field', () => {
    const d = resolveNodeConfig({ flags: base, env: {} });
    expect(d.workers).toBeGreaterThanOrEqual(1);
    expect(d.mrLeaseMs).toBe(10_000);
    const f = resolveNodeConfig({
      flags: { ...base, workers: '0', mrLeaseMs: '2000' },
      env: { COHORT_WORKERS: '5' },
    });
    expect([f.workers, f.mrLeaseMs]).toEqual([0, 2000]);
    expect(resolveNodeConfig({ flags: base, env: { COHORT_WORKERS: '5' } }).workers).toBe(5);
    expect(() => resolveNodeConfig({ flags: { ...base, workers: 'many' }, env: {} })).toThrow(
      /workers \(--workers\)/,
    );
    expect(() => resolveNodeConfig({ flags: { ...base, mrLeaseMs: '5' }, env: {} })).toThrow(
      /mrLeaseMs/,
    );
    expect(d.mrWarm).toBe(false);
    expect(resolveNodeConfig({ flags: base, env: { COHORT_MR_WARM: '1' } }).mrWarm).toBe(true);
    expect(runtimeDefaults().warm).toBe(false);
    const options = runtimeDefaults({ leaseMs: 2_000, workers: 2 });
    expect(options).toMatchObject({
      leaseMs: 2_000,
      stallMs: 2_000,
      nodeLostMs: 6_000,
      workers: 2,
    });
  });
});
