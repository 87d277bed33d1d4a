/**
 * Word count: cohort MapReduce against the best single-process loop, Dask
 * and a coreutils pipeline, on the same corpus.
 *
 * ```sh
 * npm run bench:wordcount                              # 512 MiB, 3 reps, every default implementation
 * npm run bench:wordcount -- --sizes 32 --reps 1       # a smoke run (one 32 MiB file)
 * npm run bench:wordcount -- --sizes 64,128,256,512    # how the time grows with the input
 * npm run bench:wordcount -- --only loop2,tasks2,cohort2
 * npm run bench:wordcount -- --only loop2,cohort2,loop2again,cohort2again   # second runs too
 * ```
 *
 * Corpus: bench/peers/wc-gen-corpus.js (16 × 32 MiB, deterministic; run
 * as is, with PEERS pointing at `$COHORT_WC_DIR`, default
 * `$TMPDIR/cohort-wordcount`), generated on the first run. A size of N MiB
 * uses the first N/32 files. Files are read once before timing (page cache
 * warm, as the peers were measured: bench/peers/RESULTS.md).
 *
 * Implementations (all count maximal `[A-Za-z]+` runs, case-sensitive):
 * - `loop1`, `loop2`: the best single-process program I could write
 *   (bench/wordcount-loop.ts, `bytes`: each file read into one kept buffer,
 *   a byte scan hashing each word as it goes, looked up in place in an
 *   open-addressing table over a byte arena whose slots hold hash, place,
 *   length and count side by side; no string per word) on 1 or 2 worker
 *   threads pulling files from a shared counter; the main thread merges
 *   their tables and writes the output.
 * - `keytable1`, `keytable2` (`keytable2` by default): the same program
 *   counting with the engine's own key table for `map`'s keys
 *   (src/mapreduce/packed-key-table.ts) fed the strings the job's scan makes: the engine's counting with no
 *   engine around it.
 * - `tasks1`, `tasks2`: cohort's task functions (src/mapreduce/tasks.ts:
 *   split reading, the job's `mapBytes` — a byte scan emitting each word as
 *   a byte range with the hash it computed while reading it, which the map
 *   task looks up by its bytes in the thread's byte dictionary
 *   (src/mapreduce/key-table.ts `ByteKeyIndex`, kept from task to task; no
 *   string per word), adding the count in place (the built-in `sumFold`) —
 *   sorted runs on disk, k-way
 *   merge, reduce, atomic output) driven by 1 or 2 worker threads from
 *   shared counters: no coordinator, Raft, RPC or shuffle.
 * - `cohort1`, `cohort2`: the real engine: a one-node embedded cluster with 1
 *   or 2 worker threads (src/cli/embedded-cluster.ts, started as runJob
 *   starts one for a job: threads up, engine warmed, job loaded) running
 *   examples/mapreduce/wordcount.ts (`map`, `mapBytes`, `fold: sumFold`) with 2
 *   reducers, submitted with runJob.
 * - `dask`: bench/peers/wc-dask.py (Dask bag, LocalCluster of 2 worker
 *   processes × 1 thread) on Debian's /usr/bin/python3. python3-dask and
 *   python3-distributed are installed with apt-get when missing (root only).
 * - `coreutils`: `cat | tr -cs 'A-Za-z' '\n' | sort | uniq -c`, LC_ALL=C,
 *   default sort settings (bench/peers/wc-coreutils.sh's pipeline).
 * - `loop2again`, `cohort2again` (not run by default: only with `--only`):
 *   the second run on the same threads, timed as the first is: the loop's
 *   threads count the files once untimed and again timed, keeping their
 *   tables (counts zeroed, the words kept); the engine's cluster runs the
 *   job once untimed and again timed (its threads keep their byte
 *   dictionaries, and the job's code is compiled). What a running cluster
 *   does for a job it has run before, against the loop given the same
 *   start. `cohort2/loop2` stays the ratio that counts: a fresh cluster
 *   for each run, the job's code and keys new to its threads, as for the
 *   loop's threads.
 *
 * Timing boundaries. The loops, tasks and the engine are all timed from
 * their first byte read to their last byte written, with their threads
 * started and their code loaded beforehand (untimed, as a running cluster's
 * are): the loops from the message that starts the threads to the output
 * written, fsynced and renamed; tasks from the map phase's start to the last
 * output's rename; the engine from the job's submit (just before its first
 * read) to its status `done` (just after its last rename; the client waits
 * for it with the status long poll, answered when the job changes), its coordinator, Raft and scheduling included (the whole-job figure; `tasks` is the same
 * engine's tasks-only figure). Output everywhere: `word TAB count` lines
 * sorted by word, written through a temp file, fsync and rename. The peers
 * keep their own boundaries: Dask from a started LocalCluster to the counts
 * in memory (its script's timing; import and cluster start excluded, its
 * output written after), coreutils from the pipeline's start to its output
 * written.
 *
 * Equal work: the same files, the same word definition, the same result
 * (every implementation's counts are checked identical by a digest of the
 * sorted `word count` list; a mismatch exits 1), the same output written,
 * the same boundaries, and the same threads: the "2" lines use 2 threads,
 * Dask 2 worker processes.
 *
 * Method: `--reps` (default 3) repetitions, the implementations alternating
 * within each (A B C ..., then ... C B A). Prints every run, then for the
 * largest size the median MB/s (MiB/s) with min–max and CPU seconds per GiB
 * (all threads and child processes over the timed part: for the engine
 * from just before runJob — job preparation, client connection, submit — to
 * the status `done`, its coordinator, Raft, client and idle cluster
 * included; its cluster start is printed apart; Dask's includes its cluster
 * start),
 * the ratios (median of the per-rep ratios), and last `word count ... ratio
 * X`: X = cohort on 2 workers / the loop on 2 threads (goal 0.85; cohort /
 * Dask's goal 3 is on the same line). Figures: bench/RESULTS.md.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { makeDirs } from '../src/lib/dirs.js';
import { planSplits } from '../src/mapreduce/input.js';
import { parseOutputLine } from '../src/mapreduce/format.js';
import type { MapTaskResult } from '../src/mapreduce/tasks.js';
import {
  DEFAULT_REPS,
  alternate,
  cpuSecondsWithChildren,
  ensureDask,
  PYTHON,
  fmtSpread,
  spread,
  startBench,
} from './common.js';
import { merge, writeCounts } from './wordcount-loop.js';
import type { Counted, LoopKind, LoopWorkerData } from './wordcount-loop.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const PEERS_DIR = resolve(REPO, 'bench/peers');
const GEN = join(PEERS_DIR, 'wc-gen-corpus.js');
const DASK = join(PEERS_DIR, 'wc-dask.py');
const WORDCOUNT_JOB = join(REPO, 'examples/mapreduce/wordcount.ts');
const FILE_MIB = 32;

const ALL = [
  'loop1',
  'loop2',
  'keytable1',
  'keytable2',
  'tasks1',
  'tasks2',
  'cohort1',
  'cohort2',
  'dask',
  'coreutils',
  'loop2again',
  'cohort2again',
] as const;
type Impl = (typeof ALL)[number];
const DEFAULT: readonly Impl[] = ALL.filter(
  (i) => i !== 'keytable1' && i !== 'loop2again' && i !== 'cohort2again',
);
const LABEL: Record<Impl, string> = {
  loop1: 'best loop, 1 thread',
  loop2: 'best loop, 2 threads',
  keytable1: "loop on the engine's key table, 1 thread",
  keytable2: "loop on the engine's key table, 2 threads",
  tasks1: 'cohort tasks only, 1 thread',
  tasks2: 'cohort tasks only, 2 threads',
  cohort1: 'cohort whole job, 1 node, 1 worker',
  cohort2: 'cohort whole job, 1 node, 2 workers',
  dask: 'Dask bag, 2 worker processes',
  coreutils: 'coreutils cat|tr|sort|uniq -c',
  loop2again: "best loop, 2 threads, threads' 2nd pass",
  cohort2again: "cohort whole job, 2 workers, cluster's 2nd run",
};

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const DIR = process.env['COHORT_WC_DIR'] ?? join(tmpdir(), 'cohort-wordcount');
const SIZES = (arg('sizes') ?? process.env['WC_SIZES'] ?? '512')
  .split(',')
  .map(Number)
  .sort((a, b) => a - b);
const REPS = Number(arg('reps') ?? process.env['WC_REPS'] ?? DEFAULT_REPS);
const ONLY = (arg('only') ?? process.env['WC_ONLY'] ?? DEFAULT.join(',')).split(',') as Impl[];

/** A bad flag: one line on stderr, exit 2, nothing run. */
function usage(message: string): never {
  process.stderr.write(`bench:wordcount: ${message}\n`);
  process.exit(2);
}

for (const s of SIZES) {
  if (!Number.isInteger(s) || s < FILE_MIB || s > 16 * FILE_MIB || s % FILE_MIB !== 0) {
    usage(`--sizes: each size is a multiple of ${FILE_MIB} MiB up to 512, got ${s}`);
  }
}
if (!Number.isInteger(REPS) || REPS < 1) usage(`--reps: a positive integer, got ${REPS}`);
for (const i of ONLY)
  if (!ALL.includes(i)) usage(`--only: unknown ${i} (one of ${ALL.join(', ')})`);

type Counts = Map<string, number>;

/** One run: wall seconds of its timed part, counts, and CPU seconds of the timed part if it measured them. */
interface Result {
  secs: number;
  counts: Counts;
  cpu?: number;
}

function digest(counts: Counts): string {
  const h = createHash('sha256');
  for (const k of [...counts.keys()].sort()) h.update(`${k} ${counts.get(k)}\n`);
  return h.digest('hex').slice(0, 16);
}

function corpus(): string[] {
  // The generator (a peer script, run as is) makes $COHORT_WC_DIR with Node's
  // recursive mkdir, which spins forever where a directory cannot be made
  // under procfs; made here first, such a path fails at once.
  makeDirs(DIR);
  const r = spawnSync(process.execPath, [GEN], {
    env: { ...process.env, PEERS: DIR },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (r.status !== 0) throw new Error(`${GEN} failed (exit ${r.status})`);
  const dir = join(DIR, 'corpus');
  return readdirSync(dir)
    .filter((f) => /^part-\d+\.txt$/.test(f))
    .sort()
    .map((f) => join(dir, f));
}

function readOutput(dir: string): Counts {
  const counts: Counts = new Map();
  for (const f of readdirSync(dir).filter((n) => n.startsWith('part-r-'))) {
    for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
      if (line === '') continue;
      const [k, v] = parseOutputLine(line);
      counts.set(k, Number(v));
    }
  }
  return counts;
}

/** Starts a .ts worker through tsx's API (Node 20 does not apply --import tsx to a worker's entry). */
function startTsWorker(entry: URL, workerData: unknown): Worker {
  const tsxDir = dirname(createRequire(import.meta.url).resolve('tsx/package.json'));
  const api = pathToFileURL(join(tsxDir, 'dist/esm/api/index.mjs')).href;
  const code = `import(${JSON.stringify(api)}).then((m) => m.tsImport(${JSON.stringify(entry.href)}, ${JSON.stringify(entry.href)}))`;
  return new Worker(code, { eval: true, workerData });
}

/** The next message of `w` (rejects on an error message or a thread error). */
function nextMessage<T extends { error?: string }>(w: Worker): Promise<T> {
  return new Promise((res, rej) => {
    w.once('message', (m: T) => (m.error === undefined ? res(m) : rej(new Error(m.error))));
    w.once('error', rej);
  });
}

// ---------------------------------------------------------------- the loops

/** A loop on `threads` threads; `again`: timed on the threads' second pass (code warm, tables kept). */
async function loop(
  files: string[],
  kind: LoopKind,
  threads: number,
  again = false,
): Promise<Result> {
  const work = mkdtempSync(join(DIR, 'loop-'));
  const shared = new SharedArrayBuffer(4);
  const data: LoopWorkerData = { loop: kind, files, shared, keep: again };
  const workers = Array.from({ length: threads }, () =>
    startTsWorker(new URL('./wordcount-loop.ts', import.meta.url), data),
  );
  try {
    await Promise.all(workers.map((w) => nextMessage(w))); // loaded: { ready }
    if (again) {
      const first = workers.map((w) => nextMessage<Counted & { error?: string }>(w));
      for (const w of workers) w.postMessage('go');
      await Promise.all(first);
      Atomics.store(new Int32Array(shared), 0, 0);
    }
    const t0 = performance.now();
    const cpu0 = cpuSecondsWithChildren();
    const done = workers.map((w) => nextMessage<Counted & { error?: string }>(w));
    for (const w of workers) w.postMessage('go');
    const total = merge(await Promise.all(done));
    writeCounts(work, total);
    const secs = (performance.now() - t0) / 1000;
    return { secs, cpu: cpuSecondsWithChildren() - cpu0, counts: readOutput(work) };
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
    rmSync(work, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------- dask

/** A directory of symlinks to the first files, laid out as the peers' scripts expect (`$PEERS/corpus`). */
function peersDir(files: string[]): string {
  const peers = join(DIR, 'subsets', String(files.length));
  const sub = join(peers, 'corpus');
  makeDirs(sub);
  for (const f of files) {
    const link = join(sub, f.slice(f.lastIndexOf('/') + 1));
    if (!existsSync(link)) symlinkSync(f, link);
  }
  return peers;
}

/** Runs the peers' wc-dask.py on the first files only. */
function dask(files: string[]): Result {
  const peers = peersDir(files);
  const r = spawnSync(PYTHON, [DASK], {
    env: { ...process.env, PEERS: peers },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0) throw new Error(`wc-dask.py failed: ${r.stderr.slice(-2000)}`);
  const res = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { seconds: number };
  const counts: Counts = new Map();
  for (const line of readFileSync(join(peers, 'wc', 'out-dask.txt'), 'utf8').split('\n')) {
    if (line === '') continue;
    const sp = line.lastIndexOf(' ');
    counts.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return { secs: res.seconds, counts };
}

/** The coreutils pipeline of bench/peers/wc-coreutils.sh, timed from its start to its output written. */
function coreutils(files: string[]): Result {
  const work = mkdtempSync(join(DIR, 'coreutils-'));
  try {
    const out = join(work, 'out.txt');
    const t0 = performance.now();
    const r = spawnSync(
      'sh',
      ['-c', `cat "$@" | tr -cs 'A-Za-z' '\\n' | sort | uniq -c > '${out}'`, 'sh', ...files],
      { env: { ...process.env, LC_ALL: 'C' }, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const secs = (performance.now() - t0) / 1000;
    if (r.status !== 0) throw new Error(`coreutils pipeline failed: ${r.stderr.toString()}`);
    const counts: Counts = new Map();
    for (const line of readFileSync(out, 'latin1').split('\n')) {
      const m = /^\s*(\d+) ([A-Za-z]+)$/.exec(line);
      if (m !== null) counts.set(m[2] as string, Number(m[1]));
    }
    return { secs, counts };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

// -------------------------------------------------------------------- cohort

async function tasksOnly(files: string[], threads: number): Promise<Result> {
  const reducers = 2;
  const work = mkdtempSync(join(DIR, 'tasks-'));
  const outDir = join(work, 'out');
  mkdirSync(outDir);
  const splits = await planSplits(files, 32 * 1024 * 1024);
  const counters = new SharedArrayBuffer(8);
  const workers = Array.from({ length: threads }, () =>
    startTsWorker(new URL('./wordcount-worker.ts', import.meta.url), {
      jobPath: WORDCOUNT_JOB,
      splits,
      reducers,
      workDir: join(work, 'runs'),
      outDir,
      counters,
    }),
  );
  type Msg = { ready?: true; done?: string; results?: MapTaskResult[]; error?: string };
  try {
    await Promise.all(workers.map((w) => nextMessage<Msg>(w)));
    const t0 = performance.now();
    const cpu0 = cpuSecondsWithChildren();
    const mapped = workers.map((w) => nextMessage<Msg>(w));
    for (const w of workers) w.postMessage({ phase: 'map' });
    const results = (await Promise.all(mapped)).flatMap((m) => m.results ?? []);
    results.sort((a, b) => Number(a.taskId.slice(2)) - Number(b.taskId.slice(2)));
    const runs = Array.from({ length: reducers }, (_, p) =>
      results.map((r) => (r.runs[p] as { path: string }).path),
    );
    const reduced = workers.map((w) => nextMessage<Msg>(w));
    for (const w of workers) w.postMessage({ phase: 'reduce', runs });
    await Promise.all(reduced);
    const secs = (performance.now() - t0) / 1000;
    return { secs, cpu: cpuSecondsWithChildren() - cpu0, counts: readOutput(outDir) };
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
    rmSync(work, { recursive: true, force: true });
  }
}

interface Embedded {
  readonly nodes: unknown[];
  readonly clusterId: string;
  readonly tls?: unknown;
  close(): Promise<void>;
}

interface RunJob {
  startEmbeddedCluster: (o: {
    workers: number;
    prewarm: boolean;
    preload: string[];
  }) => Promise<Embedded>;
  runJob: (o: {
    module: string;
    inputs: string[];
    output: string;
    reducers: number;
    cluster: Embedded;
  }) => Promise<{ elapsedMs: number }>;
}

/** CPU seconds of each cohort run's cluster start (threads, engine warm-up, job load), not timed. */
const clusterStartCpu: number[] = [];

/** The engine on `workers` threads; `again`: timed on the cluster's second run of the job. */
async function cohort(files: string[], workers: number, again = false): Promise<Result> {
  const { runJob, startEmbeddedCluster } =
    (await import('../src/cli/embedded-cluster.js')) as unknown as RunJob;
  const work = mkdtempSync(join(DIR, 'cohort-'));
  // The cluster runJob would start for a job of its own (threads up, engine
  // warmed, the job module loaded before the submit), started here so that
  // the job's CPU can be told from the cluster start's.
  const cpuStart = cpuSecondsWithChildren();
  const cluster = await startEmbeddedCluster({ workers, prewarm: true, preload: [WORDCOUNT_JOB] });
  try {
    const out = join(work, 'out');
    if (again) {
      const first = join(work, 'first');
      await runJob({ module: WORDCOUNT_JOB, inputs: files, output: first, reducers: 2, cluster });
      rmSync(first, { recursive: true, force: true });
    }
    const cpu0 = cpuSecondsWithChildren();
    if (!again) clusterStartCpu.push(cpu0 - cpuStart);
    const r = await runJob({
      module: WORDCOUNT_JOB,
      inputs: files,
      output: out,
      reducers: 2,
      cluster,
    });
    const cpu = cpuSecondsWithChildren() - cpu0;
    return { secs: r.elapsedMs / 1000, cpu, counts: readOutput(out) };
  } finally {
    await cluster.close();
    rmSync(work, { recursive: true, force: true });
  }
}

function runImpl(impl: Impl, files: string[]): Promise<Result> | Result {
  switch (impl) {
    case 'loop1':
      return loop(files, 'bytes', 1);
    case 'loop2':
      return loop(files, 'bytes', 2);
    case 'keytable1':
      return loop(files, 'keytable', 1);
    case 'keytable2':
      return loop(files, 'keytable', 2);
    case 'tasks1':
      return tasksOnly(files, 1);
    case 'tasks2':
      return tasksOnly(files, 2);
    case 'cohort1':
      return cohort(files, 1);
    case 'cohort2':
      return cohort(files, 2);
    case 'dask':
      return dask(files);
    case 'coreutils':
      return coreutils(files);
    case 'loop2again':
      return loop(files, 'bytes', 2, true);
    case 'cohort2again':
      return cohort(files, 2, true);
  }
}

// ---------------------------------------------------------------------- main

async function main(): Promise<void> {
  const bench = startBench(
    'word count',
    `sizes ${SIZES.join(', ')} MiB, ${REPS} rep(s), ${ONLY.join(', ')}`,
  );
  const all = corpus();
  for (const f of all) readFileSync(f); // warm the page cache
  const run: Impl[] = ONLY.filter((i) => i !== 'dask' || ensureDask());
  const secs = new Map<string, number[]>(); // `${impl}@${size}` -> seconds per rep (NaN: failed)
  const cpu = new Map<string, number[]>(); // `${impl}@${size}` -> CPU seconds per rep
  const digests = new Map<string, string>();
  const failed = new Set<Impl>();
  for (const size of SIZES) {
    const files = all.slice(0, size / FILE_MIB);
    await alternate(REPS, run, async (impl, rep) => {
      const key = `${impl}@${size}`;
      const push = (m: Map<string, number[]>, x: number): void => {
        const xs = m.get(key) ?? Array<number>(REPS).fill(NaN);
        xs[rep] = x;
        m.set(key, xs);
      };
      if (failed.has(impl)) return;
      let r: Result;
      const cpu0 = cpuSecondsWithChildren();
      try {
        r = await runImpl(impl, files);
      } catch (err) {
        console.log(`${LABEL[impl]}: failed: ${err instanceof Error ? err.message : String(err)}`);
        failed.add(impl);
        process.exitCode = 1; // its figures are missing: the bench did not do its work
        return;
      }
      bench.sample();
      push(secs, r.secs);
      push(cpu, r.cpu ?? cpuSecondsWithChildren() - cpu0);
      const d = digest(r.counts);
      digests.set(key, d);
      const refImpl = run.find((i) => digests.has(`${i}@${size}`));
      const ref = digests.get(`${refImpl}@${size}`);
      if (ref !== undefined && ref !== d) {
        console.log(`COUNTS DIFFER at ${size} MiB: ${impl} ${d} vs ${refImpl} ${ref}`);
        process.exitCode = 1;
      }
      console.log(
        `${String(size).padStart(3)} MiB rep ${rep + 1} ${impl.padEnd(9)} ${r.secs.toFixed(2)} s  ${(size / r.secs).toFixed(1)} MB/s  (${LABEL[impl]})`,
      );
    });
  }

  const top = SIZES[SIZES.length - 1] as number;
  const okImpls = run.filter((i) => !failed.has(i) && secs.has(`${i}@${top}`));
  const sameCounts = new Set(okImpls.map((i) => digests.get(`${i}@${top}`))).size === 1;
  console.log(
    `\ncounts at ${top} MiB: ${sameCounts ? 'identical' : 'DIFFERENT'} across ${okImpls.join(', ')} (digest ${digests.get(`${okImpls[0]}@${top}`)})`,
  );
  if (SIZES.length > 1) {
    for (const impl of okImpls) {
      const perGiB = SIZES.map(
        (s) =>
          `${s} MiB ${((spread(secs.get(`${impl}@${s}`) ?? []).median / s) * 1024).toFixed(2)}`,
      );
      console.log(`${impl} seconds per GiB by size (median): ${perGiB.join(', ')}`);
    }
  }
  /** MB/s (MiB/s) of every rep of `i` at the top size. */
  const mbps = (i: Impl): number[] => (secs.get(`${i}@${top}`) ?? []).map((s) => top / s);
  // CPU per input byte does not depend on how many cores the other tenants of
  // the machine leave us; wall-clock MB/s does. Both are printed.
  const cpuPerGiB = (i: Impl): number => (spread(cpu.get(`${i}@${top}`) ?? []).median / top) * 1024;
  console.log(
    `MB/s (MiB/s) at ${top} MiB, median of ${REPS} (min–max); CPU seconds per GiB (all threads and child processes, over each one's timed part; for dask the cluster start too):`,
  );
  for (const i of okImpls) {
    console.log(
      `  ${LABEL[i].padEnd(44)} ${fmtSpread(spread(mbps(i)), (x) => x.toFixed(1)).padStart(22)} MB/s ${cpuPerGiB(i).toFixed(1).padStart(7)} CPU s/GiB`,
    );
  }
  if (clusterStartCpu.length > 0) {
    console.log(
      `  cohort's cluster start (not timed: threads, engine warm-up, job load), CPU s per run: ${fmtSpread(spread(clusterStartCpu))}`,
    );
  }
  /** Median (min–max) over the reps of a's MB/s over b's, or undefined if either is missing. */
  const ratio = (a: Impl, b: Impl): ReturnType<typeof spread> | undefined => {
    if (!okImpls.includes(a) || !okImpls.includes(b)) return undefined;
    const x = mbps(a);
    const y = mbps(b);
    return spread(x.map((v, k) => v / (y[k] ?? NaN)));
  };
  console.log('ratios (median of the per-rep ratios, min–max):');
  const pairs: [Impl, Impl, string][] = [
    ['cohort2', 'loop2', ' (goal 0.85)'],
    ['cohort2', 'dask', ' (goal 3)'],
    ['cohort1', 'loop1', ''],
    ['tasks2', 'loop2', ''],
    ['tasks1', 'loop1', ''],
    ['cohort2', 'keytable2', ''],
    ['keytable2', 'loop2', ''],
    ['cohort2', 'cohort1', ' (2-worker scaling)'],
    ['loop2', 'loop1', ' (2-thread scaling)'],
    ['cohort2', 'coreutils', ''],
    ['cohort2again', 'loop2again', " (second runs: code warm, each side's key table kept)"],
    ['cohort2again', 'cohort2', " (a running cluster's second run of the job)"],
  ];
  for (const [a, b, note] of pairs) {
    const r = ratio(a, b);
    if (r !== undefined) console.log(`  ${a}/${b} ${fmtSpread(r)}${note}`);
  }
  bench.finish();
  const head = ratio('cohort2', 'loop2');
  const vsDask = ratio('cohort2', 'dask');
  if (head === undefined) {
    console.log('word count: cohort2 and loop2 were not both run, no ratio');
    return;
  }
  const med = (i: Impl): string => spread(mbps(i)).median.toFixed(1);
  console.log(
    `word count ${top} MiB (first byte read to last byte written, median of ${REPS}): cohort 2 workers ${med('cohort2')} MB/s, ` +
      `best loop 2 threads ${med('loop2')} MB/s` +
      (vsDask === undefined ? '' : `, cohort/dask ${vsDask.median.toFixed(2)} (goal 3)`) +
      `; cohort/loop (goal 0.85) ratio ${head.median.toFixed(2)}`,
  );
}

await main().catch((err: unknown) => {
  process.stderr.write(`bench:wordcount: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
