/**
 * WAL group-commit benchmark: appends/s and append-to-durable latency (p50,
 * p99) of FileStorage with 1, 16 and 128 concurrent appenders of 256-byte
 * entries, each appender awaiting one save() per entry, against a raw group
 * commit doing equal work; beside them the node's own write path and two
 * replays of the WAL's batches.
 *
 * ```sh
 * npm run bench:wal                                  # 3 reps, sync mode auto (the node's default)
 * npm run bench:wal -- --quick --reps 1              # a smoke run (a tenth of the appends)
 * npm run bench:wal -- --sync=all                    # auto, thread and inline
 * npm run bench:wal -- --appenders 16 --reps 5
 * ```
 *
 * Sides, for each number of appenders c:
 * - `cohort`: FileStorage.save() of one 256-byte entry per call, c appenders
 *   in a closed loop (each awaits its save, then saves again), on the WAL's
 *   preallocated, zero-filled segments. Measured once a fresh log has rolled
 *   into its first preallocated segment and the next spare is filled; later
 *   spares are filled during the run (one per 64 MiB), as in production.
 * - `group`: the baseline of the ratio printed last: a minimal group commit
 *   with no validation, framing or checksum, driven by the very same appender
 *   loop: each append copies its record into one buffer and, on the next
 *   event-loop turn, the batch is written with fs.writeSync, synced with
 *   fdatasyncSync and its one promise settled. Equal work: its file is
 *   zero-filled ahead (untimed) like the WAL's segments; each append writes as
 *   many bytes as a WAL append did (the entry plus its share of the WAL's
 *   framing, measured); and its batches close after as many appends as the
 *   WAL's did, in the same order (the WAL's batch sizes of the latest slice,
 *   replayed), so both make the same number of fdatasyncs. The fdatasync
 *   counts of both are printed.
 * - `group-z` (information, not in the ratio): `group` that also writes, in
 *   the background of each slice and the WAL's way (nodeFs.allocate), as many
 *   zeros as the WAL began writing into spare segments in its latest slice.
 *   The WAL fills its next segment while it appends, inside its timed
 *   slices (in steady state a zero for every byte of data); `group`'s zeros
 *   are written before its slices, untimed. Where syncs are fast (~0.1 ms)
 *   that background traffic is what separates the two at 128 appenders.
 * - `node`: the node's actual write path: a one-voter RaftNode leader on its
 *   own FileStorage (same sync mode), c concurrent proposers of 256-byte
 *   entries; the node keeps one save in flight and the entries proposed
 *   meanwhile go into the next. Latency is propose → applied (an entry is
 *   applied only once durable). Its own line; not part of the ratio.
 * - `replay-pre`: the batches the WAL just wrote (same bytes, same number of
 *   fdatasyncs) written and synced back to back with fs.writeSync +
 *   fdatasyncSync on a zero-filled file, no JavaScript in between: the disk's
 *   limit for those batches. Latency per batch.
 * - `replay`: the same on a file that grows as it is written (labelled: not
 *   equal work; on ext4 an fdatasync that grows a file also commits the
 *   journal, about 1.8x the cost of one over written zeros here).
 *
 * Method: the sides alternate in short slices (the disk's sync time swings
 * with other processes' I/O): cohort, its replays, group, node, then node,
 * group, cohort, replays, ...; a repetition is one block of slices per c,
 * the reps interleaving the values of c, each side's files kept open across
 * reps. Each rep gives each side's rate and p50/p99; the summary prints
 * their medians and min–max over the reps, and the ratios (median of the
 * per-rep ratios). Each side's CPU per append is process CPU time (all
 * threads: the WAL's background zero-filling included) over its slices, and
 * for `group` also the untimed zero-filling of its file before each slice: on
 * a busy machine, where the rates are not comparable, it is the figure that
 * still says what each side costs. The last line is `wal cohort/group ... ratio X`, X the
 * lowest over the values of c (goal 0.85 at each), for the first sync mode
 * measured. Figures: bench/RESULTS.md.
 *
 * FileStorage's sync modes (--sync): 'auto' (the default: inline while syncs
 * average under a millisecond, else on the thread pool), 'thread' (fdatasync
 * on libuv's thread pool) and 'inline' (fdatasyncSync on the event loop one
 * turn after the batch is written).
 */
import * as nfs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { clusterId, nodeId } from '../src/lib/ids.js';
import type { LogIndex, Term } from '../src/lib/ids.js';
import { seededRandom } from '../src/lib/random.js';
import type { RaftMessage } from '../src/raft/core/messages.js';
import type { Entry } from '../src/raft/core/types.js';
import { raftMessagesCodec } from '../src/raft/raft-messages-codec.js';
import { RaftNode } from '../src/raft/raft-node.js';
import type { RaftStateMachine } from '../src/raft/raft-node.js';
import { FileStorage } from '../src/raft/storage/file-storage.js';
import { nodeFs } from '../src/raft/storage/fs.js';
import type { StorageFs } from '../src/raft/storage/fs.js';
import { MemoryNetwork } from '../src/transport/memory-transport.js';
import { DEFAULT_REPS, fmtSpread, kilo, percentile, spread, startBench } from './common.js';
import type { Spread } from './common.js';

type SyncMode = 'auto' | 'thread' | 'inline';

function arg(name: string): string | undefined {
  const eq = process.argv.find((a) => a.startsWith(`--${name}=`));
  if (eq !== undefined) return eq.slice(name.length + 3);
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const quick = process.argv.includes('--quick');
const syncArg = arg('sync') ?? 'auto';
/** FileStorage sync modes measured (--sync=auto|thread|inline|all; default auto). */
const modes: SyncMode[] =
  syncArg === 'all'
    ? ['auto', 'thread', 'inline']
    : syncArg === 'auto' || syncArg === 'thread' || syncArg === 'inline'
      ? [syncArg]
      : (() => {
          throw new Error(`--sync: auto, thread, inline or all, got ${syncArg}`);
        })();
const reps = Math.max(1, Number(arg('reps') ?? DEFAULT_REPS));
const concurrencies = (arg('appenders') ?? '1,16,128').split(',').map(Number);
const slices = Number(arg('slices') ?? (quick ? 5 : 20));
/** Appends per (c, rep), split over the slices. */
function appendsPerRep(c: number): number {
  const base = c === 1 ? 1500 : c <= 16 ? 24_000 : 160_000;
  return Math.max(c * slices, Math.round((quick ? 0.1 : 1) * base));
}
const ENTRY_BYTES = 256;
const quiet = { info: () => {}, warn: () => {}, error: () => {} };
/** Temp directories, removed after all measurements. */
const leftovers: string[] = [];

/**
 * The appenders, the same for every side: `concurrency` loops that each await
 * one `append()` at a time until `count` were issued; pushes each call's
 * latency in ms and returns the seconds taken.
 */
async function closedLoop(
  concurrency: number,
  count: number,
  latencies: number[],
  append: () => Promise<unknown>,
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

/** What a recording file system saw while `on`. */
interface Recording {
  on: boolean;
  /** Bytes written per fdatasync (batch), in order. */
  readonly batches: number[];
  /** Saves per fdatasync (batch), in order (see {@link recordingFs}). */
  readonly batchSaves: number[];
  /** save() calls so far (counted by the side). */
  saves: number;
  savesAtWrite: number;
  pendingSaves: number;
  pendingBytes: number;
  rolled: number;
  spares: number;
  inline: number;
  thread: number;
  /** Bytes of spare segments whose zero-filling started while `on` (see {@link recordingFs}). */
  zeroBytes: number;
}

function newRecording(): Recording {
  return {
    on: false,
    batches: [],
    batchSaves: [],
    saves: 0,
    savesAtWrite: 0,
    pendingSaves: 0,
    pendingBytes: 0,
    rolled: 0,
    spares: 0,
    inline: 0,
    thread: 0,
    zeroBytes: 0,
  };
}

/**
 * node fs that records, per fdatasync of a segment, the bytes written and the
 * saves they carried (the saves made since the previous write; a save made
 * after a batch's write belongs to the next batch); `rolled` counts renames
 * of the preallocated spare into a segment.
 */
function recordingFs(r: Recording): StorageFs {
  const synced = (how: 'inline' | 'thread'): void => {
    if (r.on && r.pendingBytes > 0) {
      r.batches.push(r.pendingBytes);
      r.batchSaves.push(r.pendingSaves);
      r[how]++;
    }
    r.pendingBytes = 0;
    r.pendingSaves = 0;
  };
  return {
    ...nodeFs,
    rename(from, to) {
      nodeFs.rename(from, to);
      if (to.endsWith('.wal')) r.rolled++;
      if (to.endsWith('spare.seg')) r.spares++;
    },
    write(fd, bytes, position) {
      nodeFs.write(fd, bytes, position);
      if (r.on) {
        r.pendingBytes += bytes.byteLength;
        r.pendingSaves += r.saves - r.savesAtWrite;
      }
      r.savesAtWrite = r.saves;
    },
    fdatasync(fd) {
      nodeFs.fdatasync(fd);
      synced('inline');
    },
    fdatasyncAsync(fd) {
      synced('thread');
      return nodeFs.fdatasyncAsync(fd);
    },
    allocate(path, bytes, signal) {
      if (r.on) r.zeroBytes += bytes;
      return nodeFs.allocate(path, bytes, signal);
    },
  };
}

/** One slice's figures of a side. */
interface SliceResult {
  seconds: number;
  fsyncs: number;
}

/** Waits (up to 10 s of saving) until a fresh log rolled into a preallocated segment and the next spare is filled. */
async function warmUntilPreallocated(r: Recording, save: () => Promise<unknown>): Promise<void> {
  const t0 = performance.now();
  const warm = (): boolean => r.rolled > 0 && r.spares > 1;
  for (let i = 0; i < 100 || (!warm() && performance.now() - t0 < 10_000); i++) {
    await save();
    if (i >= 100) await new Promise((res) => setTimeout(res, 1));
  }
  if (!warm()) console.log('warning: a WAL did not reach a preallocated segment');
}

/** The WAL, kept open across slices and reps. */
class WalSide {
  readonly rec = newRecording();
  private readonly storage: FileStorage;
  private readonly data = new Uint8Array(ENTRY_BYTES).fill(7);
  private next = 1;

  constructor(dir: string, syncMode: SyncMode) {
    this.storage = new FileStorage({
      syncMode,
      dir,
      clusterId: clusterId('bench'),
      nodeId: nodeId('n1'),
      fs: recordingFs(this.rec),
      logger: quiet,
    });
  }

  private save(): Promise<void> {
    this.rec.saves++;
    const entry: Entry = {
      index: this.next++ as LogIndex,
      term: 1 as Term,
      kind: 'normal',
      data: this.data,
    };
    return this.storage.save({ entries: [entry] });
  }

  /** Loads and warms up (JIT, and the first preallocated segment: see the file header). */
  async open(): Promise<void> {
    await this.storage.load();
    await warmUntilPreallocated(this.rec, () => this.save());
  }

  /** Runs one slice; its batches (bytes and saves per fdatasync) stay in `rec` until the next. */
  async slice(concurrency: number, count: number, latencies: number[]): Promise<SliceResult> {
    this.rec.batches.length = 0;
    this.rec.batchSaves.length = 0;
    this.rec.on = true;
    const seconds = await closedLoop(concurrency, count, latencies, () => this.save());
    this.rec.on = false;
    return { seconds, fsyncs: this.rec.batches.length };
  }

  close(): Promise<void> {
    return this.storage.close();
  }
}

/** Counts applied bytes: the cheapest deterministic state machine. */
class CountMachine implements RaftStateMachine<number> {
  bytes = 0;
  apply(entry: Entry): number {
    this.bytes += entry.data.length;
    return this.bytes;
  }
  snapshot(): Uint8Array {
    return new TextEncoder().encode(String(this.bytes));
  }
  restore(data: Uint8Array): void {
    this.bytes = Number(new TextDecoder().decode(data));
  }
}

/** The node's write path: a one-voter RaftNode leader on FileStorage (see the file header). */
class NodeSide {
  private readonly data = new Uint8Array(ENTRY_BYTES).fill(7);

  private constructor(
    private readonly node: RaftNode<CountMachine>,
    /** What the node's storage recorded. */
    readonly rec: Recording,
  ) {}

  static async start(dir: string, syncMode: SyncMode): Promise<NodeSide> {
    const id = nodeId('n1');
    const cluster = clusterId('bench');
    const rec = newRecording();
    const logger = pino({ level: 'warn' }, pino.destination(2));
    const node = await RaftNode.start({
      id,
      peers: [],
      transport: new MemoryNetwork().transport<RaftMessage>(id, raftMessagesCodec()),
      storage: new FileStorage({
        syncMode,
        dir,
        clusterId: cluster,
        nodeId: id,
        fs: recordingFs(rec),
        logger: quiet,
      }),
      stateMachine: new CountMachine(),
      random: seededRandom(1),
      tickMs: 20,
      raft: { electionTicks: 10 },
      // The node's default (--snapshot-entries).
      snapshotEntries: 100_000,
      logger,
    });
    const side = new NodeSide(node, rec);
    const t0 = performance.now();
    while (!node.isLeader()) {
      if (performance.now() - t0 > 30_000) throw new Error('the one-voter node did not lead');
      await new Promise((r) => setTimeout(r, 10));
    }
    await warmUntilPreallocated(rec, () => side.propose());
    return side;
  }

  private propose(): Promise<number> {
    this.rec.saves++;
    return this.node.propose(this.data);
  }

  async slice(concurrency: number, count: number, latencies: number[]): Promise<SliceResult> {
    this.rec.batches.length = 0;
    this.rec.batchSaves.length = 0;
    this.rec.on = true;
    const seconds = await closedLoop(concurrency, count, latencies, () => this.propose());
    this.rec.on = false;
    return { seconds, fsyncs: this.rec.batches.length };
  }

  close(): Promise<void> {
    return this.node.close();
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
 * A replay: the WAL's batches written with fs.writeSync + fdatasyncSync back
 * to back on one file, growing as written or zero-filled ahead of each slice.
 */
class ReplaySide {
  private readonly fd: number;
  private position = 0;
  private zeroedTo = 0;
  private buf = Buffer.alloc(64 * 1024, 7);

  constructor(
    dir: string,
    private readonly preallocated: boolean,
  ) {
    this.fd = nfs.openSync(join(dir, preallocated ? 'replay-pre.log' : 'replay.log'), 'wx+');
    // Warm up like the WAL side (its load() and first appends).
    this.slice(
      Array.from({ length: 100 }, () => 290),
      [],
    );
  }

  /** Writes and syncs each batch; returns the seconds taken, appends per-batch latencies. */
  slice(batches: readonly number[], latencies: number[]): SliceResult {
    const max = Math.max(0, ...batches);
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
    return { seconds: (performance.now() - t0) / 1000, fsyncs: batches.length };
  }

  close(): void {
    nfs.closeSync(this.fd);
  }
}

/** A batch of the group commit: where its bytes end in the buffer, how many appends it holds and may hold. */
interface Batch {
  end: number;
  count: number;
  readonly cap: number;
  readonly promise: Promise<void>;
  readonly resolve: () => void;
}

/**
 * The equal-work baseline (see the file header): a minimal group commit on a
 * zero-filled file. Its batches close after as many appends as the plan
 * says (the WAL's latest batches, replayed in order; with no plan, whatever
 * is pending at the next turn), and every batch pending at the next turn is
 * written and synced on its own, in order.
 */
class GroupSide {
  private readonly fd: number;
  private position = 0;
  private zeroedTo = 0;
  private buf = Buffer.alloc(1 << 20);
  private len = 0;
  private readonly pending: Batch[] = [];
  private scheduled = false;
  private fsyncs = 0;
  private plan: readonly number[] = [];
  private planAt = 0;
  private readonly data = new Uint8Array(ENTRY_BYTES).fill(7);

  private zeroFills = 0;

  constructor(
    private readonly dir: string,
    /** Bytes one append takes in the WAL (entry plus its share of framing), so both write as much. */
    private readonly bytesPerAppend: number,
    name = 'group',
  ) {
    this.fd = nfs.openSync(join(dir, `${name}.log`), 'wx+');
  }

  private nextCap(): number {
    if (this.plan.length === 0) return Infinity;
    const cap = this.plan[this.planAt % this.plan.length] as number;
    this.planAt++;
    return cap;
  }

  private append(): Promise<void> {
    let open = this.pending[this.pending.length - 1];
    if (open === undefined || open.count >= open.cap) {
      let resolve: () => void = () => {};
      const promise = new Promise<void>((r) => (resolve = r));
      open = { end: this.len, count: 0, cap: this.nextCap(), promise, resolve };
      this.pending.push(open);
    }
    if (this.len + this.bytesPerAppend > this.buf.length) {
      const grown = Buffer.alloc(this.buf.length * 2);
      this.buf.copy(grown, 0, 0, this.len);
      this.buf = grown;
    }
    this.buf.set(this.data, this.len);
    this.len += this.bytesPerAppend;
    open.end = this.len;
    open.count++;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    return open.promise;
  }

  private flush(): void {
    this.scheduled = false;
    let from = 0;
    for (const b of this.pending) {
      nfs.writeSync(this.fd, this.buf, from, b.end - from, this.position);
      nfs.fdatasyncSync(this.fd);
      this.position += b.end - from;
      from = b.end;
      this.fsyncs++;
      b.resolve();
    }
    this.pending.length = 0;
    this.len = 0;
  }

  /** Runs one slice with batch sizes from `plan` (appends per fdatasync; [] for none). */
  async slice(
    concurrency: number,
    count: number,
    latencies: number[],
    plan: readonly number[],
    /** Zeros to write in the background meanwhile, as the WAL fills a spare segment (`group-z`). */
    zeroBytes = 0,
  ): Promise<SliceResult> {
    this.plan = plan.filter((n) => n > 0);
    this.planAt = 0;
    this.fsyncs = 0;
    const need = this.position + count * this.bytesPerAppend;
    if (need > this.zeroedTo) this.zeroedTo = zeroFill(this.fd, this.zeroedTo, need + (8 << 20));
    // The WAL's own way of zero-filling (nodeFs.allocate: 1 MiB writes on the
    // thread pool, then one fdatasync), started with the slice; like the WAL's,
    // what is left of it when the appends end runs on after the timed part.
    const spare = join(this.dir, `zeros-${this.zeroFills++}.seg`);
    const filling =
      zeroBytes > 0 ? nodeFs.allocate(spare, zeroBytes, new AbortController().signal) : undefined;
    const seconds = await closedLoop(concurrency, count, latencies, () => this.append());
    if (filling !== undefined) {
      await filling;
      nfs.rmSync(spare, { force: true });
    }
    return { seconds, fsyncs: this.fsyncs };
  }

  close(): void {
    nfs.closeSync(this.fd);
  }
}

const SIDES = ['cohort', 'group', 'group-z', 'node', 'replay-pre', 'replay'] as const;
type Side = (typeof SIDES)[number];
const LABEL: Record<Side, string> = {
  cohort: 'cohort (FileStorage.save per append)',
  group: 'group  (raw group commit, equal work)',
  'group-z': "group-z (group + the WAL's zero-filling)",
  node: 'node   (RaftNode leader, propose→applied)',
  'replay-pre': 'replay-pre (WAL batches, zero-filled file)',
  replay: 'replay (WAL batches, growing file; unequal)',
};

/** One rep of one side: rate, latency percentiles (ms), fdatasyncs. */
interface RepFigures {
  rate: number;
  p50: number;
  p99: number;
  fsyncs: number;
  appends: number;
  /** Process CPU time per append (µs) over the side's slices. */
  cpuUs: number;
}

/** Everything measured for one (sync mode, c), opened once and run for every rep. */
class Point {
  readonly reps: Map<Side, RepFigures>[] = [];
  readonly ratios: number[] = [];
  private group: GroupSide | null = null;
  private groupZ: GroupSide | null = null;
  private plan: number[] = [];
  /** Zeros the WAL began writing (spare segments) in its latest slice: group-z writes as many. */
  private zeroBytes = 0;
  /** Zeros the WAL began writing in its slices (and group-z wrote in its), over all reps. */
  zeroBytesTotal = 0;

  private constructor(
    readonly syncMode: SyncMode,
    readonly c: number,
    private readonly dir: string,
    private readonly wal: WalSide,
    private readonly node: NodeSide,
    private readonly replay: ReplaySide,
    private readonly replayPre: ReplaySide,
  ) {}

  static async open(syncMode: SyncMode, c: number): Promise<Point> {
    const dir = mkdtempSync(join(tmpdir(), 'cohort-bench-wal-'));
    leftovers.push(dir);
    const wal = new WalSide(join(dir, 'wal'), syncMode);
    await wal.open();
    const node = await NodeSide.start(join(dir, 'node'), syncMode);
    return new Point(
      syncMode,
      c,
      dir,
      wal,
      node,
      new ReplaySide(dir, false),
      new ReplaySide(dir, true),
    );
  }

  /** One rep: `slices` slices of every side, alternating their order. */
  async rep(): Promise<Map<Side, RepFigures>> {
    const perSlice = Math.max(this.c, Math.round(appendsPerRep(this.c) / slices));
    const lat = new Map<Side, number[]>(SIDES.map((s) => [s, []]));
    const secs = new Map<Side, number>(SIDES.map((s) => [s, 0]));
    const fsyncs = new Map<Side, number>(SIDES.map((s) => [s, 0]));
    const appends = new Map<Side, number>(SIDES.map((s) => [s, 0]));
    const cpu = new Map<Side, number>(SIDES.map((s) => [s, 0]));
    /** Runs one side's slice, adding the process CPU time it took to the side's. */
    const cpuOf = async <T>(side: Side, run: () => T | Promise<T>): Promise<T> => {
      const c0 = process.cpuUsage();
      const r = await run();
      const c = process.cpuUsage(c0);
      cpu.set(side, (cpu.get(side) ?? 0) + c.user + c.system);
      return r;
    };
    const add = (side: Side, r: SliceResult, n: number): void => {
      secs.set(side, (secs.get(side) ?? 0) + r.seconds);
      fsyncs.set(side, (fsyncs.get(side) ?? 0) + r.fsyncs);
      appends.set(side, (appends.get(side) ?? 0) + n);
    };
    const runWal = async (): Promise<void> => {
      add(
        'cohort',
        await cpuOf('cohort', () =>
          this.wal.slice(this.c, perSlice, lat.get('cohort') as number[]),
        ),
        perSlice,
      );
      const batches = this.wal.rec.batches;
      this.plan = [...this.wal.rec.batchSaves];
      this.zeroBytes = this.wal.rec.zeroBytes;
      this.wal.rec.zeroBytes = 0;
      add(
        'replay',
        await cpuOf('replay', () => this.replay.slice(batches, lat.get('replay') as number[])),
        perSlice,
      );
      add(
        'replay-pre',
        await cpuOf('replay-pre', () =>
          this.replayPre.slice(batches, lat.get('replay-pre') as number[]),
        ),
        perSlice,
      );
      // The group sides write as many bytes per append as the WAL did.
      const bytesPerAppend = Math.round(batches.reduce((x, y) => x + y, 0) / perSlice);
      this.group ??= new GroupSide(this.dir, bytesPerAppend);
      this.groupZ ??= new GroupSide(this.dir, bytesPerAppend, 'group-z');
    };
    const runGroup = async (): Promise<void> => {
      const g = this.group as GroupSide;
      add(
        'group',
        await cpuOf('group', () =>
          g.slice(this.c, perSlice, lat.get('group') as number[], this.plan),
        ),
        perSlice,
      );
      const z = this.groupZ as GroupSide;
      add(
        'group-z',
        await cpuOf('group-z', () =>
          z.slice(this.c, perSlice, lat.get('group-z') as number[], this.plan, this.zeroBytes),
        ),
        perSlice,
      );
      this.zeroBytesTotal += this.zeroBytes;
    };
    const runNode = async (): Promise<void> => {
      add(
        'node',
        await cpuOf('node', () => this.node.slice(this.c, perSlice, lat.get('node') as number[])),
        perSlice,
      );
    };
    for (let k = 0; k < slices; k++) {
      // The group side needs the WAL's batches: the first slice starts with the WAL.
      const order = k % 2 === 0 ? [runWal, runGroup, runNode] : [runNode, runGroup, runWal];
      for (const run of order) await run();
    }
    const out = new Map<Side, RepFigures>();
    for (const side of SIDES) {
      const l = (lat.get(side) as number[]).sort((a, b) => a - b);
      out.set(side, {
        rate: (appends.get(side) ?? 0) / (secs.get(side) ?? NaN),
        p50: percentile(l, 0.5),
        p99: percentile(l, 0.99),
        fsyncs: fsyncs.get(side) ?? 0,
        appends: appends.get(side) ?? 0,
        cpuUs: (cpu.get(side) ?? 0) / (appends.get(side) ?? NaN),
      });
    }
    this.reps.push(out);
    const cohort = out.get('cohort') as RepFigures;
    const group = out.get('group') as RepFigures;
    this.ratios.push(cohort.rate / group.rate);
    return out;
  }

  async close(): Promise<void> {
    await this.wal.close();
    await this.node.close();
    this.replay.close();
    this.replayPre.close();
    this.group?.close();
    this.groupZ?.close();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The WAL side's fdatasyncs so far, by where they ran (sync mode 'auto' switches). */
  get walSyncs(): { inline: number; thread: number } {
    return { inline: this.wal.rec.inline, thread: this.wal.rec.thread };
  }

  /** Median and min–max over the reps of one figure of one side. */
  figure(side: Side, f: (r: RepFigures) => number): Spread {
    return spread(this.reps.map((r) => f(r.get(side) as RepFigures)));
  }
}

function ms(x: number): string {
  return x.toFixed(2);
}

function repLine(p: Point, rep: number, r: Map<Side, RepFigures>): string {
  const f = (s: Side): RepFigures => r.get(s) as RepFigures;
  const part = (s: Side): string =>
    `${s} ${kilo(f(s).rate)}/s p50 ${ms(f(s).p50)} p99 ${ms(f(s).p99)} ms ${f(s).fsyncs} fsyncs`;
  return (
    `wal c=${p.c} sync=${p.syncMode} rep ${rep + 1}: ${SIDES.map(part).join('; ')}; ` +
    `cohort/group ${(f('cohort').rate / f('group').rate).toFixed(2)}`
  );
}

function summary(p: Point): void {
  console.log(`\nwal c=${p.c} sync=${p.syncMode}, median of ${p.reps.length} rep(s) (min–max):`);
  for (const side of SIDES) {
    const perBatch = side === 'replay' || side === 'replay-pre';
    const fs = p.figure(side, (r) => r.fsyncs);
    const per = p.figure(side, (r) => r.appends / r.fsyncs);
    console.log(
      `  ${LABEL[side].padEnd(44)} ${fmtSpread(
        p.figure(side, (r) => r.rate),
        kilo,
      ).padEnd(24)} appends/s` +
        `  ${perBatch ? 'per batch ' : ''}p50 ${ms(p.figure(side, (r) => r.p50).median)} ms` +
        `  p99 ${ms(p.figure(side, (r) => r.p99).median)} ms` +
        `  ${fs.median.toFixed(0)} fdatasyncs (${per.median.toFixed(1)} appends each)` +
        `  CPU ${p.figure(side, (r) => r.cpuUs).median.toFixed(2)} µs/append`,
    );
  }
  const ws = p.walSyncs;
  console.log(
    `  cohort's fdatasyncs in slices so far: ${ws.inline} on the event loop, ${ws.thread} on the thread pool`,
  );
  const ratio = (a: Side, b: Side): string =>
    fmtSpread(
      spread(p.reps.map((r) => (r.get(a) as RepFigures).rate / (r.get(b) as RepFigures).rate)),
    );
  const walFs = p.figure('cohort', (r) => r.fsyncs).median;
  const groupFs = p.figure('group', (r) => r.fsyncs).median;
  const fsNote =
    Math.abs(walFs - groupFs) > 0.05 * Math.max(walFs, groupFs)
      ? ` (fdatasync counts differ: cohort ${walFs}, group ${groupFs})`
      : '';
  console.log(
    `  ratios: cohort/group ${ratio('cohort', 'group')} (goal 0.85)${fsNote}; ` +
      `node/group ${ratio('node', 'group')}; cohort/replay-pre ${ratio('cohort', 'replay-pre')}; ` +
      `group/replay-pre ${ratio('group', 'replay-pre')}; cohort/replay (growing file) ${ratio('cohort', 'replay')}`,
  );
  const zeros = p.zeroBytesTotal;
  console.log(
    `  the WAL began ${(zeros / (1 << 20)).toFixed(0)} MiB of spare-segment zero-filling in its slices ` +
      `(background, timed); group's file is zero-filled before each slice (untimed), group-z also ` +
      `writes the same zeros in the background of its slices: cohort/group-z ${ratio('cohort', 'group-z')} (information)`,
  );
}

async function main(): Promise<void> {
  const bench = startBench(
    'wal',
    `${ENTRY_BYTES}-byte entries, appenders ${concurrencies.join(', ')}, sync ${modes.join(', ')}, ` +
      `${reps} rep(s) of ${slices} alternating slices`,
  );
  const finals: string[] = [];
  for (const syncMode of modes) {
    const points: Point[] = [];
    try {
      for (const c of concurrencies) points.push(await Point.open(syncMode, c));
      for (let rep = 0; rep < reps; rep++) {
        for (const p of points) {
          const r = await p.rep();
          bench.sample();
          console.log(repLine(p, rep, r));
        }
      }
      for (const p of points) summary(p);
    } finally {
      for (const p of points) await p.close();
    }
    const medians = points.map((p) => spread(p.ratios).median);
    finals.push(
      `wal cohort/group (equal work: zero-filled files, same bytes per append, same fdatasyncs; sync=${syncMode}, ` +
        `median of ${reps}): ${points.map((p, i) => `c=${p.c} ${(medians[i] as number).toFixed(2)}`).join(', ')}; ` +
        `ratio ${Math.min(...medians).toFixed(2)}`,
    );
  }
  console.log('');
  bench.finish();
  // The first sync mode's line is the bench's ratio; the others come before it.
  for (const line of [...finals.slice(1), finals[0]]) if (line !== undefined) console.log(line);
}

try {
  await main();
} finally {
  for (const dir of leftovers) rmSync(dir, { recursive: true, force: true });
}
