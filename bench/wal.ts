/**
 * WAL group-commit benchmark (issue 5): appends/s and append-to-durable latency
 * (p50/p99) of FileStorage with 1, 16 and 128 concurrent appenders of 256-byte
 * entries, each appender awaiting one save() per entry, next to raw baselines
 * of fs.writeSync + fdatasync:
 *
 * - replay: the batches the WAL just wrote (same bytes, same number of
 *   fdatasyncs), written and synced back to back on a file that grows as it is
 *   written, with no JavaScript in between: the issue's raw baseline.
 * - replay-pre: the same on a file zero-filled ahead of time (untimed), the
 *   way FileStorage preallocates its segments. On this machine's ext4 an
 *   fdatasync after overwriting written zeros skips the journal commit that a
 *   growing file needs, so this is the faster disk limit.
 * - group: the same appenders (same loop, same timing, one awaited call per
 *   entry) on a minimal group commit over a preallocated file: copy into one
 *   buffer, then on the next event-loop turn one writeSync + fdatasyncSync and
 *   one promise settled. No validation, framing or checksum. It shows what the
 *   appenders themselves cost on this runtime, which the replays do not pay.
 *
 * The sides alternate in short slices (the disk's sync time swings with other
 * processes' I/O). The WAL side starts once a fresh log has rolled into its
 * first preallocated segment and the next spare is filled; later spares are
 * filled during the run (one per 64 MiB written, at c=128 about once per
 * point), as in production. Each line prints group/replay-pre (the appenders'
 * own cost), cohort/group (what the WAL adds to them), cohort/replay-pre, and
 * last the issue's ratio cohort/replay (goal 0.85 at equal fdatasync counts).
 *
 * The three sync modes of FileStorage are measured: 'auto' (the default:
 * inline while syncs average under a millisecond, else on the thread pool),
 * 'thread' (fdatasync on libuv's thread pool, the event loop keeps serving
 * during the sync; the hop costs 40-75 us here against a 120-300 us sync) and
 * 'inline' (fdatasyncSync on the event loop one turn after the batch is
 * written: no hop, the process stalls for the sync).
 *
 * Figures (2026-11-21, the issue's ratio cohort/replay at c=1 / 16 / 128; the
 * machine shared with other work, load average 2-4):
 * - 15:03, two runs: inline 1.10-1.11 / 1.21-1.48 / 1.16-1.24 (c=128: 409k
 *   and 524k appends/s); thread 0.78-0.83 / 1.12-1.20 / 0.89-0.99.
 * - 15:16, with 'auto' as the default: auto 1.32 / 1.23 / 1.06, thread 0.82 /
 *   1.35 / 0.96, inline 1.12 / 1.57 / 1.25 (c=128: 564k appends/s).
 * - 15:23-15:41, load 1.3-2 (the machine otherwise idle at 15:41): auto 0.99
 *   / 1.34 / 0.99, 0.99 / 1.33 / 1.16 and 0.96 / 1.45 / 0.94 (c=128: 424k-446k
 *   appends/s; 97-99% of batches synced inline, the rest on the pool while a
 *   spare was being filled); thread 0.85 / 1.21 / 0.81 and 0.84 / 1.21 / 0.79;
 *   inline 1.15 / 1.26 / 1.16 and 1.12 / 1.23 / 1.09.
 * - Against the preallocated replay the WAL reaches 0.76-0.82 at c=1 and
 *   0.53-0.56 at c=128 inline; the minimal group commit itself reaches only
 *   0.86-0.92 and 0.65-0.71 of it: with ~0.12 ms syncs the appenders' own
 *   JavaScript (a promise and an await per append) is a large share of each
 *   batch's time.
 * - Before preallocation (growing segments, session 3, load ~1): inline
 *   0.80-0.86 / 0.84-0.88 / 0.70-0.78, thread 0.66 / 0.78 / 0.69.
 *
 * Run: npm run bench:wal [-- --quick] [-- --sync=auto|thread|inline]
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
/** FileStorage sync modes measured (--sync=auto|thread|inline; default all three). */
const modes: ('auto' | 'thread' | 'inline')[] =
  syncArg === 'auto' || syncArg === 'thread' || syncArg === 'inline'
    ? [syncArg]
    : ['auto', 'thread', 'inline'];
const slices = quick ? 10 : 40;
const ENTRY_BYTES = 256;
const quiet = { info: () => {}, warn: () => {}, error: () => {} };
/** Temp directories, removed after all measurements. */
const leftovers: string[] = [];

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;
}

/**
 * The appenders, the same for every side: `concurrency` loops that each await
 * one `append()` at a time until `count` were issued; pushes each call's
 * latency in ms and returns the seconds taken.
 */
async function closedLoop(
  concurrency: number,
  count: number,
  latencies: number[],
  append: () => Promise<void>,
): Promise<number> {
  let issued = 0;
  const t0 = performance.now();
  const appender = async (): Promise<void> => {
    while (issued < count) {
      issued++;
      const start = performance.now();
      await append();
      latencies.push(performance.now() - start);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, appender));
  return (performance.now() - t0) / 1000;
}

/**
 * node fs that records the byte size of every segment write and counts
 * fdatasyncs; `rolled` counts renames of the preallocated spare into a segment.
 */
function recordingFs(
  batches: number[],
  recording: { on: boolean; rolled: number; spares: number; inline: number; thread: number },
): StorageFs {
  let pending = 0;
  return {
    ...nodeFs,
    rename(from, to) {
      nodeFs.rename(from, to);
      if (to.endsWith('.wal')) recording.rolled++;
      if (to.endsWith('spare.seg')) recording.spares++;
    },
    write(fd, bytes, position) {
      nodeFs.write(fd, bytes, position);
      if (recording.on) pending += bytes.byteLength;
    },
    fdatasync(fd) {
      nodeFs.fdatasync(fd);
      if (recording.on && pending > 0) {
        batches.push(pending);
        recording.inline++;
      }
      pending = 0;
    },
    fdatasyncAsync(fd) {
      if (recording.on && pending > 0) {
        batches.push(pending);
        recording.thread++;
      }
      pending = 0;
      return nodeFs.fdatasyncAsync(fd);
    },
  };
}

/** One WAL, kept open across slices; each slice measures `count` appends by `concurrency` appenders. */
class WalSide {
  readonly batches: number[] = [];
  readonly recording = { on: false, rolled: 0, spares: 0, inline: 0, thread: 0 };
  private readonly storage: FileStorage;
  private readonly data = new Uint8Array(ENTRY_BYTES).fill(7);
  private next = 1;

  constructor(dir: string, syncMode: 'auto' | 'thread' | 'inline') {
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

  /**
   * Loads and warms up (JIT): a fresh log rolls into its first preallocated
   * segment once that is ready, and the next spare is then filled; measuring
   * starts after both, as on a node that has run for a while. Later spares
   * are filled during the measurement, one per segment written, as in
   * production.
   */
  async open(): Promise<void> {
    await this.storage.load();
    const t0 = performance.now();
    const warm = (): boolean => this.recording.rolled > 0 && this.recording.spares > 1;
    for (let i = 0; i < 100 || (!warm() && performance.now() - t0 < 10_000); i++) {
      await this.storage.save({ entries: [this.entry()] });
      if (i >= 100) await new Promise((r) => setTimeout(r, 1));
    }
    if (!warm()) console.log('warning: the WAL did not reach a preallocated segment');
  }

  /** Runs one slice; returns its seconds, appends its latencies and batch sizes. */
  async slice(concurrency: number, count: number, latencies: number[]): Promise<number> {
    this.batches.length = 0;
    this.recording.on = true;
    const seconds = await closedLoop(concurrency, count, latencies, () =>
      this.storage.save({ entries: [this.entry()] }),
    );
    this.recording.on = false;
    return seconds;
  }

  close(): Promise<void> {
    return this.storage.close();
  }
}

/**
 * Zero-fills `fd` from `from` to at least `to` and syncs it (untimed, before a
 * slice): the raw sides' version of the WAL's preallocated segments.
 * Returns the new end of the zeros.
 */
function zeroFill(fd: number, from: number, to: number): number {
  const chunk = Buffer.alloc(1 << 20);
  let end = from;
  while (end < to) {
    nfs.writeSync(fd, chunk, 0, chunk.length, end);
    end += chunk.length;
  }
  nfs.fdatasyncSync(fd);
  return end;
}

/**
 * The raw baseline: the same batches with fs.writeSync + fdatasync on one file,
 * either growing as written (the baseline) or zero-filled ahead of the
 * slice like the WAL's segments.
 */
class RawSide {
  private readonly fd: number;
  private position = 0;
  private zeroedTo = 0;
  private buf = Buffer.alloc(64 * 1024, 7);

  constructor(
    dir: string,
    private readonly preallocated: boolean,
  ) {
    this.fd = nfs.openSync(join(dir, preallocated ? 'raw-pre.log' : 'raw.log'), 'wx+');
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
    if (this.preallocated) {
      const need = this.position + batches.reduce((x, y) => x + y, 0);
      if (need > this.zeroedTo) this.zeroedTo = zeroFill(this.fd, this.zeroedTo, need + (8 << 20));
    }
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

/**
 * The raw baseline driven like the WAL: the same appenders (one awaited call
 * per 256-byte entry, timed the same way) feed a minimal group commit that
 * copies each entry into one buffer and, on the next event-loop turn, writes
 * it with fs.writeSync and syncs it with fdatasyncSync, then settles the
 * batch's one promise. No validation, framing or checksum: what is left is the
 * cost of the appenders themselves (an async call, a promise, timing), which
 * any group commit on this runtime pays and the replayed baseline does not.
 */
class RawGroupCommitSide {
  private readonly fd: number;
  private position = 0;
  private buf = Buffer.alloc(1 << 20);
  private len = 0;
  private pending: { promise: Promise<void>; resolve: () => void } | null = null;
  readonly batches: number[] = [];
  private readonly data = new Uint8Array(ENTRY_BYTES).fill(7);

  constructor(
    dir: string,
    /** Bytes one append takes in the WAL (entry plus its share of framing), so both write as much. */
    private readonly bytesPerAppend: number,
  ) {
    this.fd = nfs.openSync(join(dir, 'raw-gc.log'), 'wx+');
  }

  private zeroedTo = 0;

  private append(data: Uint8Array): Promise<void> {
    if (this.len + this.bytesPerAppend > this.buf.length) {
      const grown = Buffer.alloc(this.buf.length * 2);
      this.buf.copy(grown, 0, 0, this.len);
      this.buf = grown;
    }
    this.buf.set(data, this.len);
    this.len += this.bytesPerAppend;
    if (this.pending === null) {
      let resolve: () => void = () => {};
      const promise = new Promise<void>((r) => (resolve = r));
      this.pending = { promise, resolve };
      setImmediate(() => this.flush());
    }
    return this.pending.promise;
  }

  private flush(): void {
    const pending = this.pending;
    this.pending = null;
    nfs.writeSync(this.fd, this.buf, 0, this.len, this.position);
    nfs.fdatasyncSync(this.fd);
    this.position += this.len;
    this.batches.push(this.len);
    this.len = 0;
    pending?.resolve();
  }

  /** Runs one slice like {@link WalSide.slice}; returns its seconds. */
  async slice(concurrency: number, count: number, latencies: number[]): Promise<number> {
    this.batches.length = 0;
    // Preallocated like the WAL's segments (untimed).
    const need = this.position + count * this.bytesPerAppend;
    if (need > this.zeroedTo) this.zeroedTo = zeroFill(this.fd, this.zeroedTo, need + (8 << 20));
    return closedLoop(concurrency, count, latencies, () => this.append(this.data));
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
    `wal bench: ${ENTRY_BYTES}-byte entries. replay = fs.writeSync + fdatasync of the WAL's own batches, back to back ` +
      `(the disk alone); group = the same appenders on a minimal writeSync + fdatasync group commit (the disk plus ` +
      `the appenders' own cost). Equal fdatasync counts with replay; group makes its own batches (count shown).`,
  );
  for (const syncMode of modes)
    for (const concurrency of [1, 16, 128]) {
      const total =
        (quick ? 0.1 : 1) * (concurrency === 1 ? 3000 : concurrency === 16 ? 48_000 : 320_000);
      // The disk's sync time here swings with other processes' I/O, so the
      // sides alternate in short slices: each replay slice writes the batches
      // the WAL slice just made, moments later, on the same file system, and a
      // group-commit slice follows.
      const dir = mkdtempSync(join(tmpdir(), 'cohort-bench-wal-'));
      leftovers.push(dir);
      const wal = new WalSide(join(dir, 'wal-node'), syncMode);
      await wal.open();
      const raw = new RawSide(dir, false);
      const rawPre = new RawSide(dir, true);
      let group: RawGroupCommitSide | null = null;
      let walSeconds = 0;
      let rawSeconds = 0;
      let rawPreSeconds = 0;
      let groupSeconds = 0;
      let fsyncs = 0;
      let groupFsyncs = 0;
      const walLat: number[] = [];
      const rawLat: number[] = [];
      const rawPreLat: number[] = [];
      const groupLat: number[] = [];
      const perSlice = Math.max(concurrency, Math.round(total / slices));
      for (let k = 0; k < slices; k++) {
        walSeconds += await wal.slice(concurrency, perSlice, walLat);
        rawSeconds += raw.slice(wal.batches, rawLat);
        rawPreSeconds += rawPre.slice(wal.batches, rawPreLat);
        fsyncs += wal.batches.length;
        // The group side writes as many bytes per append as the WAL did.
        group ??= new RawGroupCommitSide(
          dir,
          Math.round(wal.batches.reduce((x, y) => x + y, 0) / perSlice),
        );
        groupSeconds += await group.slice(concurrency, perSlice, groupLat);
        groupFsyncs += group.batches.length;
      }
      await wal.close();
      raw.close();
      rawPre.close();
      group?.close();
      const appends = perSlice * slices;
      for (const l of [walLat, rawLat, rawPreLat, groupLat]) l.sort((x, y) => x - y);
      const walRate = appends / walSeconds;
      const rawRate = appends / rawSeconds;
      const rawPreRate = appends / rawPreSeconds;
      const groupRate = appends / groupSeconds;
      const ms = (lat: number[], p: number): string => percentile(lat, p).toFixed(2);
      console.log(
        `wal c=${concurrency} sync=${syncMode}` +
          (syncMode === 'auto'
            ? ` (${wal.recording.inline} batches synced inline, ${wal.recording.thread} on the pool)`
            : '') +
          `: cohort ${rate(walRate)} appends/s ` +
          `(p50 ${ms(walLat, 50)} ms, p99 ${ms(walLat, 99)} ms, ${fsyncs} fdatasyncs, ` +
          `${(appends / fsyncs).toFixed(1)} appends/fdatasync); ` +
          `replay ${rate(rawRate)}/s (per batch p50 ${ms(rawLat, 50)} ms, p99 ${ms(rawLat, 99)} ms); ` +
          `replay-pre ${rate(rawPreRate)}/s (per batch p50 ${ms(rawPreLat, 50)} ms, p99 ${ms(rawPreLat, 99)} ms); ` +
          `group ${rate(groupRate)}/s (p50 ${ms(groupLat, 50)} ms, p99 ${ms(groupLat, 99)} ms, ${groupFsyncs} fdatasyncs); ` +
          `group/replay-pre ${(groupRate / rawPreRate).toFixed(2)}, cohort/group ${(walRate / groupRate).toFixed(2)}, ` +
          `cohort/replay-pre ${(walRate / rawPreRate).toFixed(2)}, ` +
          `ratio cohort/replay ${(walRate / rawRate).toFixed(2)} (goal 0.85)`,
      );
    }
}

try {
  await main();
} finally {
  for (const dir of leftovers) rmSync(dir, { recursive: true, force: true });
}
