/**
 * WAL group-commit benchmark (issue 5): appends/s and append-to-durable latency
 * (p50/p99) of FileStorage with 1, 16 and 128 concurrent appenders of 256-byte
 * entries, next to the physical limit on this disk: the same batches written
 * with fs.writeSync + fdatasync, at an equal number of fdatasyncs. The ratio
 * (WAL appends/s over raw appends/s) is printed last on each line.
 *
 * Reading the ratio: the appenders form a closed loop, so each WAL batch costs
 * the sync plus everything serial around it, none of which the raw side pays:
 * the thread-pool hop of the asynchronous fdatasync (measured here at 40-70 µs
 * over fdatasyncSync for a 4 KiB batch) and about 0.9-1 µs of CPU per append
 * (validation, encoding, one promise, this loop's own timing; measured with a
 * no-op sync, after a batch's one-entry saves were made to share one record
 * and one CRC32C). With a raw batch of 0.2-0.3 ms that bounds the ratio near
 * 0.75 at c=16 and 0.65 at c=128; under an open load, new saves are encoded
 * while a sync is in flight, which this loop cannot show.
 *
 * Both sync modes of FileStorage are measured: 'thread' (the default:
 * fdatasync on libuv's thread pool, the event loop keeps running) and 'inline'
 * (fdatasyncSync on the event loop: no hop, but the process stalls during the
 * sync). Measured 2026-11-21 at load average ~2 (ratios c=1 / 16 / 128):
 * thread 0.62 / 0.54 / 0.42 (200.8k appends/s at c=128), inline 0.84 / 0.76 /
 * 0.65 (347.8k appends/s at c=128). The goal is 0.85.
 *
 * Run: npm run bench:wal [-- --quick] [-- --sync=thread|inline]
 */
import * as nfs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterId, nodeId } from '../src/lib/ids.js';
import type { LogIndex, Term } from '../src/lib/ids.js';
import type { Entry } from '../src/raft/core/types.js';
import { FileStorage } from '../src/raft/storage/file-storage.js';
import { nodeFs } from '../src/raft/storage/fs.js';
import type { StorageFs } from '../src/raft/storage/fs.js';

const quick = process.argv.includes('--quick');
const syncArg = process.argv.find((a) => a.startsWith('--sync='))?.slice('--sync='.length);
/** FileStorage sync modes measured (--sync=thread|inline; default both). */
const modes: ('thread' | 'inline')[] =
  syncArg === 'thread' || syncArg === 'inline' ? [syncArg] : ['thread', 'inline'];
const slices = quick ? 10 : 40;
const ENTRY_BYTES = 256;
const quiet = { info: () => {}, warn: () => {}, error: () => {} };
/** Temp directories, removed after all measurements. */
const leftovers: string[] = [];

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;
}

/** node fs that records the byte size of every segment write and counts fdatasyncs. */
function recordingFs(batches: number[], recording: { on: boolean }): StorageFs {
  let pending = 0;
  return {
    ...nodeFs,
    write(fd, bytes, position) {
      nodeFs.write(fd, bytes, position);
      if (recording.on) pending += bytes.byteLength;
    },
    fdatasync(fd) {
      nodeFs.fdatasync(fd);
      if (recording.on && pending > 0) batches.push(pending);
      pending = 0;
    },
    fdatasyncAsync(fd) {
      if (recording.on && pending > 0) batches.push(pending);
      pending = 0;
      return nodeFs.fdatasyncAsync(fd);
    },
  };
}

/** One WAL, kept open across slices; each slice measures `count` appends by `concurrency` appenders. */
class WalSide {
  readonly batches: number[] = [];
  private readonly recording = { on: false };
  private readonly storage: FileStorage;
  private readonly data = new Uint8Array(ENTRY_BYTES).fill(7);
  private next = 1;

  constructor(dir: string, syncMode: 'thread' | 'inline') {
    this.storage = new FileStorage({
      syncMode,
      dir,
      clusterId: clusterId('bench'),
      nodeId: nodeId('n1'),
      fs: recordingFs(this.batches, this.recording),
      logger: quiet,
    });
  }

  private entry(): Entry {
    return { index: this.next++ as LogIndex, term: 1 as Term, kind: 'normal', data: this.data };
  }

  async open(): Promise<void> {
    await this.storage.load();
    // Warm up (JIT, file creation) before measuring.
    for (let i = 0; i < 100; i++) await this.storage.save({ entries: [this.entry()] });
  }

  /** Runs one slice; returns its seconds, appends its latencies and batch sizes. */
  async slice(concurrency: number, count: number, latencies: number[]): Promise<number> {
    this.batches.length = 0;
    this.recording.on = true;
    let issued = 0;
    const t0 = performance.now();
    const appender = async (): Promise<void> => {
      while (issued < count) {
        issued++;
        const start = performance.now();
        await this.storage.save({ entries: [this.entry()] });
        latencies.push(performance.now() - start);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, appender));
    const seconds = (performance.now() - t0) / 1000;
    this.recording.on = false;
    return seconds;
  }

  close(): Promise<void> {
    return this.storage.close();
  }
}

/** The raw baseline: the same batches with fs.writeSync + fdatasync on one file. */
class RawSide {
  private readonly fd: number;
  private position = 0;
  private buf = Buffer.alloc(64 * 1024, 7);

  constructor(dir: string) {
    this.fd = nfs.openSync(join(dir, 'raw.log'), 'wx+');
    // Warm up like the WAL side (its load() and first appends).
    this.slice(
      Array.from({ length: 100 }, () => 290),
      [],
    );
  }

  /** Writes and syncs each batch; returns the seconds taken, appends per-batch latencies. */
  slice(batches: readonly number[], latencies: number[]): number {
    const max = Math.max(...batches);
    if (max > this.buf.length) this.buf = Buffer.alloc(max, 7);
    const t0 = performance.now();
    for (const size of batches) {
      const start = performance.now();
      nfs.writeSync(this.fd, this.buf, 0, size, this.position);
      nfs.fdatasyncSync(this.fd);
      this.position += size;
      latencies.push(performance.now() - start);
    }
    return (performance.now() - t0) / 1000;
  }

  close(): void {
    nfs.closeSync(this.fd);
  }
}

function rate(n: number): string {
  return n >= 1000 ? `${(n / 1000).toFixed(1)}k` : n.toFixed(0);
}

async function main(): Promise<void> {
  console.log(
    `wal bench: ${ENTRY_BYTES}-byte entries; raw = fs.writeSync + fdatasync of the same batches (equal fdatasync counts)`,
  );
  for (const syncMode of modes)
    for (const concurrency of [1, 16, 128]) {
      const total =
        (quick ? 0.25 : 1) * (concurrency === 1 ? 600 : concurrency === 16 ? 6000 : 40_000);
      // The disk's sync time here swings with other processes' I/O, so the two
      // sides alternate in short slices: each raw slice replays the batches the
      // WAL slice just made, moments later, on the same file system.
      const dir = mkdtempSync(join(tmpdir(), 'cohort-bench-wal-'));
      leftovers.push(dir);
      const wal = new WalSide(join(dir, 'wal-node'), syncMode);
      await wal.open();
      const raw = new RawSide(dir);
      let walSeconds = 0;
      let rawSeconds = 0;
      let fsyncs = 0;
      const walLat: number[] = [];
      const rawLat: number[] = [];
      const perSlice = Math.max(concurrency, Math.round(total / slices));
      for (let k = 0; k < slices; k++) {
        walSeconds += await wal.slice(concurrency, perSlice, walLat);
        rawSeconds += raw.slice(wal.batches, rawLat);
        fsyncs += wal.batches.length;
      }
      await wal.close();
      raw.close();
      const appends = perSlice * slices;
      walLat.sort((a, b) => a - b);
      rawLat.sort((a, b) => a - b);
      const walRate = appends / walSeconds;
      const rawRate = appends / rawSeconds;
      console.log(
        `wal c=${concurrency} sync=${syncMode}: cohort ${rate(walRate)} appends/s ` +
          `(p50 ${percentile(walLat, 50).toFixed(2)} ms, p99 ${percentile(walLat, 99).toFixed(2)} ms, ` +
          `${fsyncs} fdatasyncs, ${(appends / fsyncs).toFixed(1)} appends/fdatasync), ` +
          `raw ${rate(rawRate)} appends/s (per batch p50 ${percentile(rawLat, 50).toFixed(2)} ms, p99 ${percentile(rawLat, 99).toFixed(2)} ms), ` +
          `ratio ${(walRate / rawRate).toFixed(2)}`,
      );
    }
}

try {
  await main();
} finally {
  for (const dir of leftovers) rmSync(dir, { recursive: true, force: true });
}
