/**
 * What every comparison bench in bench/ shares: repetitions that alternate
 * the sides, median and min–max over them, nearest-rank percentiles, a
 * closed-loop load generator, CPU per process, and the load-average check
 * that says when a run's figures are not comparable.
 *
 * ```ts
 * const run = startBench('kv');              // prints cores, node, commit, load average
 * await alternate(3, ['cohort', 'etcd'], async (side, rep) => { ... }); // ABBA order
 * const s = spread([41.2, 39.9, 42.0]);      // { median: 41.2, min: 39.9, max: 42.0, n: 3 }
 * fmtSpread(s, kilo);                        // '41.2k (39.9k–42.0k)'
 * run.sample();                              // between runs: remembers the highest load seen
 * run.finish();                              // load and other work at the end; a warning if other work competed
 * console.log(`kv-put c=64: ..., ratio 2.10`); // every bench prints its ratio last
 * ```
 *
 * A ratio's median is the median of the per-repetition ratios (both sides of
 * a repetition ran moments apart, so their ratio cancels slow drifts of the
 * machine), not the ratio of the two medians.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

/** Repetitions of every bench unless told otherwise (the issue's minimum). */
export const DEFAULT_REPS = 3;

/**
 * A client process above this share of one core is the bottleneck of its
 * side (it has no headroom left on a shared machine), and the side is marked
 * client-bound.
 */
export const CLIENT_BOUND_PERCENT = 70;

/** Clock ticks per second of /proc/<pid>/stat's CPU fields (USER_HZ; 100 on Linux). */
export const TICKS_PER_SECOND = 100;

/** The cores this process may use. */
export const CORES = availableParallelism();

const REPO = fileURLToPath(new URL('..', import.meta.url));

/** Median, extremes and count of a set of figures. */
export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly n: number;
}

/** The median (mean of the two middle values for an even count), min and max; NaN for none. */
export function spread(xs: readonly number[]): Spread {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return { median: NaN, min: NaN, max: NaN, n: 0 };
  const mid = n >> 1;
  const median =
    n % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
  return { median, min: s[0] as number, max: s[n - 1] as number, n };
}

/** `median (min–max)` with `fmt` for each figure; just the median for one figure. */
export function fmtSpread(s: Spread, fmt: (x: number) => string = (x) => x.toFixed(2)): string {
  if (s.n <= 1) return fmt(s.median);
  return `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`;
}

/** The nearest-rank percentile `q` (0..1) of ascending `sorted`; NaN for none. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  return sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))] as number;
}

/** A rate for people: `41.2k`, `1.25M`, `812`. */
export function kilo(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return n.toFixed(0);
}

/** Milliseconds for people, from milliseconds: `0.48 ms`, `34.0 ms`. */
export function millis(ms: number): string {
  return `${ms.toFixed(ms < 10 ? 2 : 1)} ms`;
}

/**
 * Runs `run(side, rep)` for `reps` repetitions of every side, alternating:
 * A B, then B A, then A B ... (so neither side always runs first, right after
 * a cluster start or a cold cache).
 */
export async function alternate<S>(
  reps: number,
  sides: readonly S[],
  run: (side: S, rep: number) => Promise<void>,
): Promise<void> {
  for (let rep = 0; rep < reps; rep++) {
    const order = rep % 2 === 0 ? sides : [...sides].reverse();
    for (const side of order) await run(side, rep);
  }
}

/** The 1, 5 and 15 minute load averages as printed. */
export function loadText(): string {
  return loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
}

/** The checked-out commit (short), with `+dirty` if the work tree has changes; `?` outside git. */
export function commitText(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: REPO,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd: REPO,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    return dirty === '' ? head : `${head}+dirty`;
  } catch {
    return '?';
  }
}

/** A running bench: remembers the highest 1-minute load average seen (see {@link startBench}). */
export interface BenchRun {
  /** Reads the load average now (call between runs); returns the 1-minute figure. */
  sample(): number;
  /** Prints the load average and other work at the end and, if other work competed, the warning. */
  finish(): void;
  /**
   * True if other work competed so far: the load average was above the cores
   * at the start, or work outside this bench took more than
   * {@link OTHER_WORK_CORES_MAX} cores on average since.
   */
  readonly overloaded: boolean;
}

/**
 * Prints the bench's first line (name, cores, Node, commit, load average),
 * with a warning when the machine is already busier than its cores. At the
 * end it also prints how much CPU work outside this bench's own processes
 * took meanwhile ({@link OtherWorkMeter}): the load average counts the
 * bench's own servers and clients too, which on 2 cores are above the cores
 * by themselves in the cluster benches.
 */
export function startBench(name: string, what = ''): BenchRun {
  let highest = 0;
  const sample = (): number => {
    const one = loadavg()[0] ?? 0;
    highest = Math.max(highest, one);
    return one;
  };
  const atStart = sample();
  const other = new OtherWorkMeter();
  console.log(
    `${name} bench${what === '' ? '' : `: ${what}`}\n` +
      `  ${CORES} cores, node ${process.version}, commit ${commitText()}, ` +
      `${new Date().toISOString().slice(0, 16)}Z, load average ${loadText()} (1/5/15 min)`,
  );
  if (atStart > CORES) console.log(overloadWarning(atStart, 'at the start'));
  return {
    sample,
    get overloaded() {
      // The load average alone counts this bench's own processes too.
      return atStart > CORES || other.cores() > OTHER_WORK_CORES_MAX;
    },
    finish() {
      const atEnd = sample();
      const cores = other.cores();
      console.log(
        `load average at the end: ${loadText()}; other work (CPU not used by this bench's ` +
          `processes) ${Number.isNaN(cores) ? '?' : cores.toFixed(2)} cores on average`,
      );
      if (highest > CORES) {
        console.log(
          atEnd > CORES
            ? overloadWarning(atEnd, `at the end (highest seen ${highest.toFixed(2)})`, cores)
            : overloadWarning(highest, 'during the run (highest seen)', cores),
        );
      } else if (cores > OTHER_WORK_CORES_MAX) {
        console.log(otherWorkWarning(cores));
      }
    },
  };
}

/** Other work above this many cores on average makes a run's figures not comparable. */
export const OTHER_WORK_CORES_MAX = 0.25;

function overloadWarning(load: number, when: string, otherCores = NaN): string {
  const base = `WARNING: load average ${load.toFixed(2)} ${when} is above the ${CORES} cores`;
  if (Number.isNaN(otherCores) || otherCores > OTHER_WORK_CORES_MAX) {
    return (
      `${base}: other work competed for the CPU` +
      `${Number.isNaN(otherCores) ? '' : ` (${otherCores.toFixed(2)} cores on average)`}, ` +
      `so these figures are not comparable (rerun on a quiet machine)`
    );
  }
  return (
    `${base}, but other work took only ${otherCores.toFixed(2)} cores on average: ` +
    `this bench's own processes were the load (its sides waited for the cores they share)`
  );
}

function otherWorkWarning(cores: number): string {
  return (
    `WARNING: other work took ${cores.toFixed(2)} cores on average (more than ` +
    `${OTHER_WORK_CORES_MAX}): these figures are not comparable (rerun on a quiet machine)`
  );
}

/**
 * CPU the rest of the machine used while a bench ran: the machine's busy
 * time in processes (/proc/stat) minus the CPU of this process and its descendants (each
 * live one's user + system time plus what its reaped children used, so a
 * child that exits keeps counting through its parent). In cores on average
 * since construction; NaN where /proc is not readable.
 */
export class OtherWorkMeter {
  private readonly at = performance.now();
  private readonly busy0 = machineBusyTicks();
  private readonly tree0 = treeTicks();

  /** Cores' worth of other work on average since construction. */
  cores(): number {
    const secs = (performance.now() - this.at) / 1000;
    const other = machineBusyTicks() - this.busy0 - (treeTicks() - this.tree0);
    return Math.max(0, other / TICKS_PER_SECOND / secs);
  }
}

/**
 * Busy ticks of all cores since boot spent in processes (user, nice,
 * system); NaN without /proc. Interrupt and softirq time is left out: it is
 * charged to no process (loopback network traffic is mostly softirq work
 * done for the bench's own sockets), so it would count as other work.
 */
function machineBusyTicks(): number {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    return [0, 1, 2].reduce((a, i) => a + (f[i] ?? 0), 0);
  } catch {
    return NaN;
  }
}

/** CPU ticks of this process and every live descendant, each with its reaped children's. */
function treeTicks(): number {
  const parent = new Map<number, number>();
  const ticks = new Map<number, number>();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return NaN;
  }
  for (const d of pids) {
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parent.set(Number(d), Number(f[1]));
      ticks.set(
        Number(d),
        [11, 12, 13, 14].reduce((a, i) => a + Number(f[i]), 0),
      );
    } catch {
      // gone meanwhile
    }
  }
  const inTree = (pid: number): boolean => {
    for (let p = pid, hops = 0; p > 1 && hops < 64; p = parent.get(p) ?? 0, hops++) {
      if (p === process.pid) return true;
    }
    return false;
  };
  let sum = 0;
  for (const [pid, t] of ticks) if (inTree(pid)) sum += t;
  return sum;
}

// ---------------------------------------------------------------- CPU

/** CPU seconds (user + system) process `pid` has used so far, from /proc; NaN if it is gone. */
export function cpuSecondsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND;
  } catch {
    return NaN;
  }
}

/**
 * CPU seconds this process (all threads) and its reaped children have used,
 * from /proc/self/stat (utime, stime, cutime, cstime).
 */
export function cpuSecondsWithChildren(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return [11, 12, 13, 14].reduce((a, i) => a + Number(f[i]), 0) / TICKS_PER_SECOND;
}

/**
 * Measures the CPU of a set of named processes over a window: `start()` then
 * `stop()` gives each one's CPU in % of one core over the wall time between.
 */
export class CpuMeter {
  private at = 0;
  private readonly before = new Map<string, number>();

  constructor(private readonly pids: () => ReadonlyMap<string, number>) {}

  /** Starts the window. */
  start(): void {
    this.at = performance.now();
    this.before.clear();
    for (const [name, pid] of this.pids()) this.before.set(name, cpuSecondsOf(pid));
  }

  /** Ends the window; % of one core per process (NaN for one that exited meanwhile). */
  stop(): Map<string, number> {
    const secs = (performance.now() - this.at) / 1000;
    const out = new Map<string, number>();
    for (const [name, pid] of this.pids()) {
      const b = this.before.get(name);
      out.set(name, b === undefined ? NaN : ((cpuSecondsOf(pid) - b) / secs) * 100);
    }
    return out;
  }
}

/** `name 45%` per entry, joined. */
export function fmtCpu(cpu: ReadonlyMap<string, number> | Iterable<[string, number]>): string {
  return [...cpu].map(([n, p]) => `${n} ${Number.isNaN(p) ? '?' : p.toFixed(0)}%`).join(', ');
}

// ---------------------------------------------------------------- closed loop

/** What {@link closedLoop} measured. */
export interface LoopResult {
  /** Operations that started after the warm-up and completed inside the window. */
  readonly ops: number;
  readonly errors: number;
  readonly firstError?: string;
  /** Latencies of those operations in microseconds, ascending. */
  readonly latenciesUs: Float64Array;
  /** The measured window's length in seconds. */
  readonly seconds: number;
}

/**
 * A closed loop: `concurrency` workers each issue `op` when their previous
 * one returned. Operations started during the `warmupMs` warm-up are not
 * recorded, nor are those completing after the window; `onWarm` runs when
 * the window opens. Stops after 10 000 errors (rethrows the last).
 */
export async function closedLoop(
  concurrency: number,
  warmupMs: number,
  durationMs: number,
  op: () => Promise<void>,
  onWarm: () => void = () => {},
): Promise<LoopResult> {
  let lat = new Float64Array(1 << 16);
  let n = 0;
  let errors = 0;
  let firstError: string | undefined;
  const t0 = performance.now();
  const warmEnd = t0 + warmupMs;
  const end = warmEnd + durationMs;
  const warmTimer = setTimeout(onWarm, warmupMs);
  async function worker(): Promise<void> {
    for (;;) {
      const s = performance.now();
      if (s >= end) return;
      try {
        await op();
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? `${err.name}: ${err.message}` : String(err);
        if (errors > 10_000) throw err;
        continue;
      }
      if (s < warmEnd) continue;
      const e = performance.now();
      if (e > end) continue;
      if (n === lat.length) {
        const bigger = new Float64Array(lat.length * 2);
        bigger.set(lat);
        lat = bigger;
      }
      lat[n++] = (e - s) * 1000;
    }
  }
  try {
    await Promise.all(Array.from({ length: concurrency }, () => worker()));
  } finally {
    clearTimeout(warmTimer);
  }
  return {
    ops: n,
    errors,
    ...(firstError === undefined ? {} : { firstError }),
    latenciesUs: lat.slice(0, n).sort(),
    seconds: durationMs / 1000,
  };
}

/** Splits `total` into `parts` near-equal positive shares (the first ones one larger). */
export function shares(total: number, parts: number): number[] {
  const base = Math.floor(total / parts);
  return Array.from({ length: parts }, (_, i) => base + (i < total % parts ? 1 : 0)).filter(
    (x) => x > 0,
  );
}

/** The Python that runs the Dask peers (Debian's python3-dask). */
export const PYTHON = '/usr/bin/python3';

/**
 * True if Dask bag and distributed import; as root, installs Debian's
 * python3-dask and python3-distributed first when they are missing.
 */
export function ensureDask(): boolean {
  const probe = (): boolean =>
    spawnSync(PYTHON, ['-c', 'import dask.bag, distributed'], { stdio: 'ignore' }).status === 0;
  if (probe()) return true;
  if (process.getuid?.() !== 0) {
    console.log('dask: python3-dask/python3-distributed missing and not root: skipped');
    return false;
  }
  console.log('dask: installing python3-dask python3-distributed with apt-get ...');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  spawnSync('apt-get', ['install', '-y', '-qq', 'python3-dask', 'python3-distributed'], {
    stdio: 'inherit',
    env,
  });
  return probe();
}
