/**
 * WAL group-commit benchmark (issue 5): appends/s and append-to-durable latency
 * (p50/p99) of FileStorage with 1, 16 and 128 concurrent appenders of 256-byte
 * entries, next to the physical limit on this disk: the same batches written
 * with fs.writeSync + fdatasync, at an equal number of fdatasyncs. The ratio
 * (WAL appends/s over raw appends/s) is printed last on each line.
 *
 * Run: npm run bench:wal [-- --quick]
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
const rounds = quick ? 2 : 5;
const ENTRY_BYTES = 256;
const quiet = { info: () => {}, warn: () => {}, error: () => {} };

interface WalResult {
  appends: number;
  seconds: number;
  latenciesMs: number[];
  /** Bytes of each write that was followed by an fdatasync (the batches). */
  batches: number[];
}

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
  };
}

async function runWal(concurrency: number, total: number): Promise<WalResult> {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-bench-wal-'));
  const batches: number[] = [];
  const recording = { on: false };
  const storage = new FileStorage({
    dir,
    clusterId: clusterId('bench'),
    nodeId: nodeId('n1'),
    fs: recordingFs(batches, recording),
    logger: quiet,
  });
  await storage.load();
  const data = new Uint8Array(ENTRY_BYTES).fill(7);
  let next = 1;
  const entry = (): Entry => ({ index: next++ as LogIndex, term: 1 as Term, kind: 'normal', data });
  // Warm up (JIT, file creation) before measuring.
  for (let i = 0; i < 200; i++) await storage.save({ entries: [entry()] });
  recording.on = true;
  const latencies: number[] = [];
  let issued = 0;
  const t0 = performance.now();
  const appender = async (): Promise<void> => {
    while (issued < total) {
      issued++;
      const start = performance.now();
      await storage.save({ entries: [entry()] });
      latencies.push(performance.now() - start);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, appender));
  const seconds = (performance.now() - t0) / 1000;
  recording.on = false;
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
  return { appends: total, seconds, latenciesMs: latencies.sort((a, b) => a - b), batches };
}

/** The same batches as raw fs.writeSync + fdatasync on a fresh file. */
function runRaw(batches: number[]): { seconds: number; latenciesMs: number[] } {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-bench-raw-'));
  const fd = nfs.openSync(join(dir, 'raw.log'), 'wx+');
  const max = Math.max(...batches);
  const buf = Buffer.alloc(max, 7);
  let position = 0;
  const latencies: number[] = [];
  const t0 = performance.now();
  for (const size of batches) {
    const start = performance.now();
    nfs.writeSync(fd, buf, 0, size, position);
    nfs.fdatasyncSync(fd);
    position += size;
    latencies.push(performance.now() - start);
  }
  const seconds = (performance.now() - t0) / 1000;
  nfs.closeSync(fd);
  rmSync(dir, { recursive: true, force: true });
  return { seconds, latenciesMs: latencies.sort((a, b) => a - b) };
}

function rate(n: number): string {
  return n >= 1000 ? `${(n / 1000).toFixed(1)}k` : n.toFixed(0);
}

async function main(): Promise<void> {
  console.log(
    `wal bench: ${ENTRY_BYTES}-byte entries; raw = fs.writeSync + fdatasync of the same batches (equal fdatasync counts)`,
  );
  for (const concurrency of [1, 16, 128]) {
    const total =
      (quick ? 0.25 : 1) * (concurrency === 1 ? 1000 : concurrency === 16 ? 8000 : 40_000);
    // Rounds alternate the two sides, to spread noise from other processes over both.
    let walSeconds = 0;
    let rawSeconds = 0;
    let appends = 0;
    let fsyncs = 0;
    const walLat: number[] = [];
    const rawLat: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const wal = await runWal(concurrency, total);
      const raw = runRaw(wal.batches);
      walSeconds += wal.seconds;
      rawSeconds += raw.seconds;
      appends += wal.appends;
      fsyncs += wal.batches.length;
      walLat.push(...wal.latenciesMs);
      rawLat.push(...raw.latenciesMs);
    }
    walLat.sort((a, b) => a - b);
    rawLat.sort((a, b) => a - b);
    const walRate = appends / walSeconds;
    const rawRate = appends / rawSeconds;
    console.log(
      `wal c=${concurrency}: cohort ${rate(walRate)} appends/s ` +
        `(p50 ${percentile(walLat, 50).toFixed(2)} ms, p99 ${percentile(walLat, 99).toFixed(2)} ms, ` +
        `${fsyncs} fdatasyncs, ${(appends / fsyncs).toFixed(1)} appends/fdatasync), ` +
        `raw ${rate(rawRate)} appends/s (per batch p50 ${percentile(rawLat, 50).toFixed(2)} ms, p99 ${percentile(rawLat, 99).toFixed(2)} ms), ` +
        `ratio ${(walRate / rawRate).toFixed(2)}`,
    );
  }
}

await main();
