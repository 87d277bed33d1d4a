/**
 * bench/kv.ts — the replicated KV store against etcd 3.4 (Debian's
 * etcd-server), 3 members each on 127.0.0.1, side by side in one run:
 * closed-loop puts of 256-byte values to random keys at concurrency 1, 16,
 * 64 and 256, and linearizable gets of prefilled keys at concurrency 64;
 * with `--failover`, the time from kill -9 of the leader to the first
 * successful write, with equal election and heartbeat timeouts on both.
 *
 * ```sh
 * npm run bench:kv                                  # puts and gets, 3 reps, ~15 min
 * npm run bench:kv -- --seconds 2 --warmup 0.5 --reps 1 --conc 16 --gets ''   # a smoke run
 * npm run bench:kv -- --failover --trials 20        # failover only, both timings (add --puts to run both)
 * npm run bench:kv -- --procs cohort=1,etcd=3       # fixed client processes instead of --procs auto
 * npm run bench:kv -- --only cohort --conc '' --gets '' --reps 5   # TLS vs plaintext at c=64 only
 * ```
 *
 * Method (as bench/peers measured etcd): each worker issues the next
 * request when its previous one returns; requests started during the
 * warm-up are not recorded; p50/p99 are nearest-rank over every request
 * completed in the measured window, merged across the client processes.
 * Puts write `k/<random 0..999999>`; gets read `g/<random 0..9999>` after
 * 10 000 keys were written (by one process, untimed). Every (system,
 * workload, rep) gets a fresh cluster (empty data dirs). The systems
 * alternate within each repetition (A B, then B A); `--reps` (default 3)
 * repetitions give the medians, min–max, and the ratios (median of the
 * per-rep ratios). Nodes run from the sources under tsx (`--runtime dist`
 * runs bin/cohort.js, after `npm run build`). The machine's load average is
 * printed at the start and end.
 *
 * Equal work, so that the ratio compares the servers:
 * - Clients: the load of each side is spread over as many client processes
 *   as it takes for none to be the bottleneck. `--procs auto` (default)
 *   starts with one process per side (or as many as the previous workload
 *   needed) and, in the first rep, doubles the processes and runs again while
 *   a client process used more than 70 % of a core (up to `--max-procs`, and
 *   at most one per concurrent request); the concurrency is split evenly
 *   among them and they start together. Every process's CPU (clients and
 *   servers) is printed; a run whose client processes still exceed 70 % is
 *   marked CLIENT-BOUND, and so is any ratio it enters. The clients are
 *   cohort's KvClient given the leader's endpoint first, and etcd's `etcd3`
 *   given only the leader's URL (the "leader only" baseline). All clients
 *   and servers share the machine's cores.
 * - Durability: both fsync their logs before answering (cohort: fdatasync
 *   per group commit, always on; etcd: its default).
 * - Snapshots and compaction: both snapshot every 100 000 applied entries
 *   (`--snapshot-entries` on cohort, `--snapshot-count` on etcd; both their
 *   defaults), and both keep the last 10 000 revisions of history
 *   (limits.kvHistoryRevisionsKept): cohort's leader proposes a compaction
 *   every second once 11 000 are kept; for etcd this bench does the same
 *   through the compaction API (etcd's revision auto-compaction runs only
 *   every 5 minutes).
 * - Timeouts for throughput: each system's defaults (cohort: 20 ms ticks,
 *   heartbeat every 2 ticks, election after 10 ticks; etcd: 100 ms heartbeat,
 *   1 s election). For failover they are equal on both, in two settings:
 *   `cohort` timing (heartbeat 20 ms, election 200 ms: cohort's tick and
 *   election timeout with a heartbeat every tick, and etcd's
 *   --heartbeat-interval 20 --election-timeout 200) and `etcd` timing
 *   (100 ms / 1 s: etcd's defaults, and cohort's --tick-ms 100
 *   --heartbeat-ticks 1 --election-ticks 10). Both draw the actual election
 *   timeout at random between one and two base timeouts.
 *
 * TLS against plaintext (issue 13): cohort runs with mutual TLS, its
 * default, in every cohort/etcd run above. To show what TLS costs, the puts
 * at `--tls-conc` (default 64) also run on cohort started with `--insecure`
 * (system `cohort-insecure`), everything else the same (nodes, flags, fresh
 * cluster, client processes probed the same way), the two runs side by side
 * in each repetition and alternating in order (cohort, cohort-insecure, etcd;
 * then etcd, cohort-insecure, cohort). The ratio is TLS puts/s over
 * plaintext puts/s, median of the per-rep ratios; goal ≥ 0.85. It is printed
 * with the servers' CPU per put of each side (µs, all three nodes), which a
 * loaded machine distorts less than puts/s. `--tls-conc ''` skips it.
 *
 * Prints one line per run (each process's CPU, and how much of the window
 * each server's main thread was runnable but waiting for a core: a server
 * with little CPU and much waiting is starved by the machine's load, not slow
 * by itself), the medians (with the servers' CPU per operation), the ratios cohort/etcd and TLS/plaintext, then
 * the closing lines: the failover line (with `--failover`), then
 * `kv-put cohort/etcd ... ratio X`, X the lower of the put ratios cohort/etcd
 * at c=64 and c=256 (the goal is 2 at each), or of every put concurrency
 * measured if neither was, and LAST `kv-put cohort TLS/plaintext ... ratio
 * Y`, Y the TLS/plaintext put ratio at c=64 (the lowest over `--tls-conc`).
 * The TLS line is last because it is the one figure every run of this bench
 * gives (with `--only cohort` too, which has no etcd line) and the one issue
 * 13 asks this bench for; the cohort/etcd ratio (issue 19) is the line just
 * above it. With `--failover` alone the last line is etcd/cohort of the
 * failover p50 (higher: cohort recovers faster), the lower of the two
 * timings. Figures: bench/RESULTS.md.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { limits } from '../src/lib/limits.js';
import { ProcessCluster } from '../test/harness/process-cluster.js';
import type { ProcessClusterOptions } from '../test/harness/process-cluster.js';
import {
  CLIENT_BOUND_PERCENT,
  CpuMeter,
  DEFAULT_REPS,
  alternate,
  closedLoop,
  fmtCpu,
  fmtSpread,
  kilo,
  millis,
  percentile,
  shares,
  spread,
  startBench,
} from './common.js';
import type { BenchRun } from './common.js';
import type { CredentialFiles } from '../src/trust/credentials.js';
import { cohortDriver, cohortFailoverProbe } from './kv-cohort.js';
import { EtcdCluster, ensureEtcd, etcdClient, etcdVersion } from './kv-etcd.js';
import type { EtcdSettings } from './kv-etcd.js';

const SELF = fileURLToPath(import.meta.url);

/**
 * The systems compared: cohort with mutual TLS (its default), etcd, and
 * cohort with `--insecure` (plaintext), the other side of the TLS comparison.
 */
type System = 'cohort' | 'cohort-insecure' | 'etcd';

/** The comparison a system takes part in: cohort/etcd (`cohort`, `etcd`) or TLS/plaintext (`cohort`, `cohort-insecure`). */
function isCohort(s: System): s is 'cohort' | 'cohort-insecure' {
  return s !== 'etcd';
}
/** The workloads: puts to random keys, linearizable gets of prefilled keys (and the untimed prefill). */
type Mode = 'put' | 'get' | 'prefill';

/** What a load child process is asked to run. */
interface ChildSpec {
  system: System;
  mode: Mode;
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  /** cohort: RPC endpoints (leader first); etcd: client URLs (leader only). */
  endpoints: unknown;
  clusterId?: string;
  /** cohort: the root user's credential files (its nodes run over mutual TLS, the default). */
  tls?: CredentialFiles;
  /** Where the child writes its latencies (Float64Array, µs). */
  latFile: string;
}

/** What a load child reports. */
interface ChildResult {
  ops: number;
  errors: number;
  firstError?: string;
  /** CPU over the measured window, % of one core. */
  cpu: number;
}

/** One run's figures (all client processes together). */
interface Result {
  system: System;
  mode: Mode;
  concurrency: number;
  rep: number;
  ops: number;
  errors: number;
  opsPerSec: number;
  p50Us: number;
  p99Us: number;
  firstError?: string;
  /** CPU of each client process, % of one core. */
  clientCpu: number[];
  /** CPU of each server process by name, % of one core. */
  serverCpu: Map<string, number>;
  /**
   * Per server: % of the window its main thread was runnable but waiting for
   * a core (/proc/<pid>/schedstat); high when the machine is overloaded.
   */
  serverWait: Map<string, number>;
}

/**
 * Run-queue wait of a set of processes' main threads over a window, from
 * /proc/<pid>/schedstat (its second field: ns spent runnable, waiting for a
 * core). A node that uses little CPU while waiting a lot is starved by other
 * work on the machine, not idle: that tells a loaded machine from a server
 * that waits on itself (a lock, a timer, the disk).
 */
class WaitMeter {
  private at = 0;
  private readonly before = new Map<string, number>();

  constructor(private readonly pids: () => ReadonlyMap<string, number>) {}

  private static waitedNs(pid: number): number {
    try {
      return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]);
    } catch {
      return NaN;
    }
  }

  start(): void {
    this.at = performance.now();
    this.before.clear();
    for (const [name, pid] of this.pids()) this.before.set(name, WaitMeter.waitedNs(pid));
  }

  stop(): Map<string, number> {
    const ns = (performance.now() - this.at) * 1e6;
    const out = new Map<string, number>();
    for (const [name, pid] of this.pids()) {
      const b = this.before.get(name);
      out.set(name, b === undefined ? NaN : ((WaitMeter.waitedNs(pid) - b) / ns) * 100);
    }
    return out;
  }
}

/** The operations a load child runs against one store. */
export interface KvDriver {
  /** Writes `value` at `key`. */
  put(key: string, value: Uint8Array): Promise<void>;
  /** Reads `key` linearizably; null if absent. */
  get(key: string): Promise<Uint8Array | null>;
  /** Closes the client. */
  close(): Promise<void>;
}

const PUT_KEYSPACE = 1_000_000;
const GET_KEYS = 10_000;
const VALUE_BYTES = 256;
/** Revisions of history both sides keep (cohort's default). */
const HISTORY_KEPT = limits.kvHistoryRevisionsKept;

// ---------------------------------------------------------------- load (child process)

function etcdDriver(urls: string[]): KvDriver {
  const client = etcdClient(urls);
  return {
    put: async (key, value) => {
      await client
        .put(key)
        .value(Buffer.from(value.buffer, value.byteOffset, value.length))
        .exec();
    },
    get: (key) => client.get(key).serializable(false).buffer(),
    close: () => {
      client.close();
      return Promise.resolve();
    },
  };
}

/** Resolves at the first line `line` on stdin. */
function stdinLine(line: string): Promise<void> {
  return new Promise((resolve) => {
    let buf = '';
    process.stdin.on('data', (chunk: Buffer) => {
      buf += chunk.toString();
      if (buf.split('\n').includes(line)) resolve();
    });
  });
}

async function runChild(spec: ChildSpec): Promise<void> {
  const driver = !isCohort(spec.system)
    ? etcdDriver(spec.endpoints as string[])
    : await cohortDriver(spec.endpoints, spec.clusterId ?? 'cohort-local', spec.tls);
  const value = new Uint8Array(VALUE_BYTES);
  for (let i = 0; i < value.length; i++) value[i] = (i * 131 + 7) & 0xff;
  if (spec.mode === 'prefill') {
    let next = 0;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (next < GET_KEYS) await driver.put(`g/${next++}`, value);
      }),
    );
    process.stdout.write(`RESULT ${JSON.stringify({ ops: GET_KEYS, errors: 0, cpu: 0 })}\n`);
    await driver.close();
    process.exit(0);
  }
  const op =
    spec.mode === 'put'
      ? () => driver.put(`k/${Math.floor(Math.random() * PUT_KEYSPACE)}`, value)
      : async () => {
          const v = await driver.get(`g/${Math.floor(Math.random() * GET_KEYS)}`);
          if (v === null || v.length !== VALUE_BYTES) throw new Error('bad get result');
        };
  for (let i = 0; i < 10; i++) await op();
  const go = stdinLine('GO');
  process.stdout.write('READY\n');
  await go;
  let cpuWarm = process.cpuUsage();
  const r = await closedLoop(spec.concurrency, spec.warmupMs, spec.durationMs, op, () => {
    cpuWarm = process.cpuUsage();
    process.stdout.write('WARM\n');
  });
  const cpu = process.cpuUsage(cpuWarm);
  writeFileSync(spec.latFile, r.latenciesUs);
  const result: ChildResult = {
    ops: r.ops,
    errors: r.errors,
    ...(r.firstError === undefined ? {} : { firstError: r.firstError }),
    cpu: ((cpu.user + cpu.system) / 1000 / spec.durationMs) * 100,
  };
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  await driver.close();
  process.exit(0);
}

// ---------------------------------------------------------------- orchestration

/** A started load child: its READY, WARM and RESULT lines as promises. */
interface Child {
  proc: ChildProcess;
  ready: Promise<void>;
  warm: Promise<void>;
  result: Promise<ChildResult>;
}

function loadChild(spec: ChildSpec): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', SELF, '--child', JSON.stringify(spec)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let onReady: () => void = () => {};
  let onWarm: () => void = () => {};
  let onResult: (r: ChildResult) => void = () => {};
  let onFail: (e: Error) => void = () => {};
  const ready = new Promise<void>((r) => (onReady = r));
  const warm = new Promise<void>((r) => (onWarm = r));
  const result = new Promise<ChildResult>((res, rej) => {
    onResult = res;
    onFail = rej;
  });
  let buf = '';
  proc.stdout?.on('data', (chunk: Buffer) => {
    buf += chunk.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line === 'READY') onReady();
      else if (line === 'WARM') onWarm();
      else if (line.startsWith('RESULT ')) onResult(JSON.parse(line.slice(7)) as ChildResult);
    }
  });
  proc.once('exit', (code) => onFail(new Error(`load child exited (${code}) without a result`)));
  // A child that dies before READY must not leave the orchestrator waiting.
  const readyOrFail = Promise.race([ready, result.then(() => undefined)]);
  return { proc, ready: readyOrFail, warm, result };
}

/** A running cluster of either system, as the load runs need it. */
interface Running {
  endpoints: unknown;
  clusterId?: string;
  tls?: CredentialFiles;
  /** Server process ids by name. */
  pids: () => Map<string, number>;
  close: () => Promise<void>;
}

interface Workload {
  mode: 'put' | 'get';
  concurrency: number;
}

/**
 * One measured run on a running cluster with `procs` client processes: the
 * concurrency split among them, all started together; servers' CPU sampled
 * from the first process's warm-up end to the last result.
 */
async function runLoad(
  system: System,
  w: Workload,
  procs: number,
  c: Running,
  flags: Flags,
  rep: number,
): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-bench-kv-'));
  try {
    const base = {
      system,
      warmupMs: flags.warmup * 1000,
      durationMs: flags.seconds * 1000,
      endpoints: c.endpoints,
      ...(c.clusterId === undefined ? {} : { clusterId: c.clusterId }),
      ...(c.tls === undefined ? {} : { tls: c.tls }),
    };
    if (w.mode === 'get') {
      const pre = loadChild({ ...base, mode: 'prefill', concurrency: 64, latFile: '' });
      await pre.result;
    }
    const children = shares(w.concurrency, procs).map((share, i) =>
      loadChild({ ...base, mode: w.mode, concurrency: share, latFile: join(dir, `lat-${i}`) }),
    );
    await Promise.all(children.map((ch) => ch.ready));
    const meter = new CpuMeter(c.pids);
    const waits = new WaitMeter(c.pids);
    void Promise.race(children.map((ch) => ch.warm)).then(() => {
      meter.start();
      waits.start();
    });
    for (const ch of children) ch.proc.stdin?.write('GO\n');
    const results = await Promise.all(children.map((ch) => ch.result));
    const serverCpu = meter.stop();
    const serverWait = waits.stop();
    const lat = children.map((_, i) => {
      const b = readFileSync(join(dir, `lat-${i}`));
      return new Float64Array(b.buffer, b.byteOffset, b.byteLength / 8);
    });
    const all = new Float64Array(lat.reduce((a, l) => a + l.length, 0));
    let at = 0;
    for (const l of lat) {
      all.set(l, at);
      at += l.length;
    }
    all.sort();
    const ops = results.reduce((a, r) => a + r.ops, 0);
    const firstError = results.find((r) => r.firstError !== undefined)?.firstError;
    return {
      system,
      mode: w.mode,
      concurrency: w.concurrency,
      rep,
      ops,
      errors: results.reduce((a, r) => a + r.errors, 0),
      opsPerSec: ops / flags.seconds,
      p50Us: percentile(all, 0.5),
      p99Us: percentile(all, 0.99),
      ...(firstError === undefined ? {} : { firstError }),
      clientCpu: results.map((r) => r.cpu),
      serverCpu,
      serverWait,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Width of the system column. */
const SYSTEM_WIDTH = 15;

function ms(us: number): string {
  return millis(us / 1000);
}

function clientBound(r: Result): boolean {
  return r.clientCpu.some((x) => x > CLIENT_BOUND_PERCENT);
}

function line(r: Result): string {
  const servers = [...r.serverCpu.values()].reduce((a, x) => a + x, 0);
  return (
    `kv-${r.mode} c=${String(r.concurrency).padEnd(3)} ${r.system.padEnd(SYSTEM_WIDTH)} ` +
    `${kilo(r.opsPerSec).padStart(6)} ops/s  p50 ${ms(r.p50Us).padStart(8)}  p99 ${ms(r.p99Us).padStart(8)}` +
    `  cpu: ${r.clientCpu.length} client(s) ${r.clientCpu.map((x) => `${x.toFixed(0)}%`).join(' ')}` +
    `; servers ${servers.toFixed(0)}% (${fmtCpu(r.serverCpu)})` +
    `, waiting for a core ${fmtCpu(r.serverWait)}` +
    (clientBound(r) ? '  CLIENT-BOUND' : '') +
    (r.errors > 0 ? `  errors ${r.errors} (${r.firstError ?? ''})` : '')
  );
}

interface Flags {
  seconds: number;
  warmup: number;
  /** cohort and/or etcd (the cohort/etcd comparison; `cohort-insecure` runs only in the TLS one). */
  systems: ('cohort' | 'etcd')[];
  /** Put concurrencies of the TLS/plaintext comparison (cohort with TLS vs `--insecure`); empty: none. */
  tlsConc: number[];
  workloads: Workload[];
  reps: number;
  /** Client processes per system; undefined: auto. */
  procs: Partial<Record<System, number>> | undefined;
  maxProcs: number;
  failover: boolean;
  puts: boolean;
  trials: number;
  timings: Timing[];
  runtime: 'source' | 'dist';
  snapshotEntries: number;
}

/** Failover timeout settings (see the file header). */
type Timing = 'cohort' | 'etcd';

/** Heartbeat and election timeouts in ms of a timing setting. */
const TIMINGS: Record<Timing, { heartbeatMs: number; electionMs: number }> = {
  cohort: { heartbeatMs: 20, electionMs: 200 },
  etcd: { heartbeatMs: 100, electionMs: 1000 },
};

/**
 * cohort options for a timing, as etcd's raft runs it: a tick per heartbeat
 * interval, a heartbeat every tick (the node's default is every 2 ticks, so
 * it is set here), election after electionMs / heartbeatMs ticks (10).
 */
function cohortTiming(t: { heartbeatMs: number; electionMs: number } | undefined): {
  tickMs?: number;
  electionTicks?: number;
  heartbeatTicks?: number;
} {
  if (t === undefined) return {};
  return {
    tickMs: t.heartbeatMs,
    heartbeatTicks: 1,
    electionTicks: Math.round(t.electionMs / t.heartbeatMs),
  };
}

/**
 * Starts a cohort cluster for this bench: the one place its nodes' options
 * are chosen (timing as given, else the node's defaults). Does not wait for
 * a leader.
 */
function startCohortCluster(
  flags: Flags,
  timing?: { heartbeatMs: number; electionMs: number },
  insecure = false,
): Promise<ProcessCluster> {
  const options: ProcessClusterOptions = {
    runtime: flags.runtime,
    // cohort's default: every link mutual TLS (--insecure only for the plaintext side of the TLS comparison).
    tls: !insecure,
    snapshotEntries: flags.snapshotEntries,
    ...cohortTiming(timing),
  };
  return ProcessCluster.start(options);
}

/** Starts an etcd cluster for this bench (timing as given, else etcd's defaults). */
function startEtcdCluster(
  flags: Flags,
  timing?: { heartbeatMs: number; electionMs: number },
): Promise<EtcdCluster> {
  const settings: EtcdSettings = { snapshotCount: flags.snapshotEntries, ...(timing ?? {}) };
  return EtcdCluster.start(3, settings);
}

/** A fresh cluster of `system` with defaults, with what a load child needs to reach its leader. */
async function freshCluster(system: System, flags: Flags): Promise<Running> {
  if (system === 'etcd') {
    const etcd = await startEtcdCluster(flags);
    const stopCompactor = etcd.startCompactor(HISTORY_KEPT, limits.kvCompactCheckMs);
    const leader = await etcd.leader();
    return {
      endpoints: [leader.url],
      pids: () => etcd.pidsByName(),
      close: async () => {
        stopCompactor();
        await etcd.close();
      },
    };
  }
  const cluster = await startCohortCluster(flags, undefined, system === 'cohort-insecure');
  const leader = await cluster.waitForLeader({ timeoutMs: 30_000 });
  const eps = cluster.endpoints();
  const endpoints = [
    ...eps.filter((e) => e.id === leader.id),
    ...eps.filter((e) => e.id !== leader.id),
  ];
  const tls = cluster.clientTls;
  return {
    endpoints,
    clusterId: cluster.clusterId,
    ...(tls === undefined ? {} : { tls }),
    pids: () =>
      new Map(
        cluster.nodes.flatMap((n) => {
          const pid = cluster.pid(n.id);
          return pid === undefined ? [] : [[n.id, pid] as [string, number]];
        }),
      ),
    close: () => cluster.close(),
  };
}

/** The systems that run workload `w`: etcd and TLS cohort the cohort/etcd workloads, both cohorts the TLS comparison's. */
function runsOf(w: Workload, flags: Flags): System[] {
  const compared = flags.workloads.some(
    (x) => x.mode === w.mode && x.concurrency === w.concurrency,
  );
  const tls = w.mode === 'put' && flags.tlsConc.includes(w.concurrency);
  const out: System[] = [];
  if (flags.systems.includes('cohort') && (compared || tls)) out.push('cohort');
  if (flags.systems.includes('cohort') && tls) out.push('cohort-insecure');
  if (flags.systems.includes('etcd') && compared) out.push('etcd');
  return out;
}

/** Every workload to run: the cohort/etcd ones, then the TLS comparison's not among them. */
function allWorkloads(flags: Flags): Workload[] {
  const extra = flags.tlsConc
    .filter((c) => !flags.workloads.some((w) => w.mode === 'put' && w.concurrency === c))
    .map((c) => ({ mode: 'put' as const, concurrency: c }));
  return [...flags.workloads, ...extra];
}

async function throughput(flags: Flags, bench: BenchRun): Promise<Result[]> {
  const results: Result[] = [];
  /** Client processes per (system, workload) once settled; carried to the next workload. */
  const settled = new Map<string, number>();
  const carried = new Map<System, number>();
  const key = (s: System, w: Workload): string => `${s} ${w.mode} ${w.concurrency}`;
  for (let rep = 0; rep < flags.reps; rep++) {
    for (const w of allWorkloads(flags)) {
      // The systems alternate: A B in even reps, B A in odd ones (cohort's TLS
      // and plaintext runs side by side: cohort, cohort-insecure, etcd, then
      // etcd, cohort-insecure, cohort).
      const all = runsOf(w, flags);
      const order = rep % 2 === 0 ? all : [...all].reverse();
      for (const system of order) {
        const fixed =
          flags.procs?.[system] ?? (system === 'cohort-insecure' ? flags.procs?.cohort : undefined);
        let procs =
          fixed ?? settled.get(key(system, w)) ?? Math.min(w.concurrency, carried.get(system) ?? 1);
        for (;;) {
          const c = await freshCluster(system, flags);
          let r: Result;
          try {
            r = await runLoad(system, w, procs, c, flags, rep);
          } finally {
            await c.close();
          }
          bench.sample();
          const limit = Math.min(flags.maxProcs, w.concurrency);
          const probing = fixed === undefined && !settled.has(key(system, w));
          if (probing && clientBound(r) && procs < limit) {
            const more = Math.min(limit, procs * 2);
            console.log(`${line(r)}  → again with ${more} client processes`);
            procs = more;
            continue;
          }
          settled.set(key(system, w), procs);
          carried.set(system, procs);
          results.push(r);
          console.log(`${line(r)}${flags.reps > 1 ? `  (rep ${rep + 1})` : ''}`);
          break;
        }
      }
    }
  }
  return results;
}

/** The closing lines of the throughput runs: cohort/etcd, and TLS/plaintext (each undefined if not measured). */
interface Summary {
  etcd?: string;
  tls?: string;
}

/** Server CPU per operation in µs (all three nodes' CPU over the window, per completed op). */
function cpuPerOpUs(r: Result, seconds: number): number {
  const servers = [...r.serverCpu.values()].reduce((a, x) => a + x, 0) / 100;
  return (servers * seconds * 1e6) / Math.max(1, r.ops);
}

/** Prints the medians and the ratios; returns the closing lines. */
function summarize(results: readonly Result[], flags: Flags, overloaded: boolean): Summary {
  const of = (system: System, w: Workload): Result[] =>
    results.filter(
      (r) => r.system === system && r.mode === w.mode && r.concurrency === w.concurrency,
    );
  const med = (rs: Result[], f: (r: Result) => number): number => spread(rs.map(f)).median;
  /** Median of the per-rep ratios a/b of `f` (both sides of a rep ran moments apart). */
  const perRep = (a: Result[], b: Result[], f: (r: Result) => number): ReturnType<typeof spread> =>
    spread(
      a.flatMap((x) => {
        const y = b.find((r) => r.rep === x.rep);
        return y === undefined ? [] : [f(x) / f(y)];
      }),
    );
  const boundText = (bound: boolean): string =>
    bound
      ? 'CLIENT-BOUND runs included'
      : overloaded
        ? // A starved client uses little CPU however much it is the bottleneck.
          'no client above 70 % CPU, but other work competed for the cores, so that proves nothing'
        : 'neither side client-bound';
  console.log(`\nmedians of ${flags.reps} (min–max):`);
  for (const w of allWorkloads(flags)) {
    for (const s of ['cohort', 'cohort-insecure', 'etcd'] as const) {
      const rs = of(s, w);
      if (rs.length === 0) continue;
      const bound = rs.filter(clientBound).length;
      const clientMax = spread(rs.map((r) => Math.max(...r.clientCpu))).median;
      const servers = spread(rs.map((r) => [...r.serverCpu.values()].reduce((a, x) => a + x, 0)));
      console.log(
        `kv-${w.mode} c=${String(w.concurrency).padEnd(3)} ${s.padEnd(SYSTEM_WIDTH)} ` +
          `${fmtSpread(spread(rs.map((r) => r.opsPerSec)), kilo)} ops/s` +
          `  p50 ${ms(spread(rs.map((r) => r.p50Us)).median)}  p99 ${ms(spread(rs.map((r) => r.p99Us)).median)}` +
          `  ${rs[0]?.clientCpu.length ?? '?'} client process(es), busiest ${clientMax.toFixed(0)}%, servers ${servers.median.toFixed(0)}%` +
          `, server CPU ${med(rs, (r) => cpuPerOpUs(r, flags.seconds)).toFixed(0)} µs/op` +
          (bound > 0 ? `  CLIENT-BOUND in ${bound} of ${rs.length}` : ''),
      );
    }
  }
  const out: Summary = {};
  if (flags.systems.includes('cohort') && flags.systems.includes('etcd')) {
    console.log('\nratios cohort/etcd (median of the per-rep ratios, min–max):');
    const puts = new Map<number, { ratio: number; bound: boolean }>();
    for (const w of flags.workloads) {
      const a = of('cohort', w);
      const b = of('etcd', w);
      if (a.length === 0 || b.length === 0) continue;
      const r = perRep(a, b, (x) => x.opsPerSec);
      const bound = [...a, ...b].filter(clientBound).map((x) => x.system);
      console.log(
        `kv-${w.mode} c=${w.concurrency}: cohort ${kilo(med(a, (x) => x.opsPerSec))}/s p50 ${ms(med(a, (x) => x.p50Us))} p99 ${ms(med(a, (x) => x.p99Us))}, ` +
          `etcd ${kilo(med(b, (x) => x.opsPerSec))}/s p50 ${ms(med(b, (x) => x.p50Us))} p99 ${ms(med(b, (x) => x.p99Us))}; ` +
          `throughput ratio ${fmtSpread(r)}, p50 ratio ${(med(a, (x) => x.p50Us) / med(b, (x) => x.p50Us)).toFixed(2)}, ` +
          `p99 ratio ${(med(a, (x) => x.p99Us) / med(b, (x) => x.p99Us)).toFixed(2)}` +
          (bound.length > 0 ? ` (CLIENT-BOUND: ${[...new Set(bound)].join(', ')})` : ''),
      );
      if (w.mode === 'put') puts.set(w.concurrency, { ratio: r.median, bound: bound.length > 0 });
    }
    const goal = [64, 256].filter((c) => puts.has(c));
    const pick = goal.length > 0 ? goal : [...puts.keys()];
    if (pick.length > 0) {
      const picked = pick.map((c) => ({
        c,
        ...(puts.get(c) as { ratio: number; bound: boolean }),
      }));
      out.etcd =
        `kv-put cohort/etcd (3 nodes each, fsync, same snapshots and compaction; median of ${flags.reps}; ` +
        `${boundText(picked.some((p) => p.bound))}): ` +
        `${picked.map((p) => `c=${p.c} ${p.ratio.toFixed(2)}`).join(', ')}; ` +
        `ratio ${Math.min(...picked.map((p) => p.ratio)).toFixed(2)}`;
    }
  }
  const tls: { c: number; ratio: number; bound: boolean }[] = [];
  let cpuText = '';
  for (const c of flags.tlsConc) {
    const w: Workload = { mode: 'put', concurrency: c };
    const a = of('cohort', w);
    const b = of('cohort-insecure', w);
    if (a.length === 0 || b.length === 0) continue;
    if (tls.length === 0)
      console.log('\nratios cohort TLS/plaintext (median of the per-rep ratios, min–max):');
    const r = perRep(a, b, (x) => x.opsPerSec);
    const cpu = perRep(a, b, (x) => cpuPerOpUs(x, flags.seconds));
    const bound = [...a, ...b].some(clientBound);
    const cpuA = med(a, (x) => cpuPerOpUs(x, flags.seconds));
    const cpuB = med(b, (x) => cpuPerOpUs(x, flags.seconds));
    console.log(
      `kv-put c=${c}: TLS ${kilo(med(a, (x) => x.opsPerSec))}/s p50 ${ms(med(a, (x) => x.p50Us))}, ` +
        `plaintext ${kilo(med(b, (x) => x.opsPerSec))}/s p50 ${ms(med(b, (x) => x.p50Us))}; ` +
        `throughput ratio ${fmtSpread(r)}; server CPU per put ${cpuA.toFixed(0)} vs ${cpuB.toFixed(0)} µs ` +
        `(ratio ${fmtSpread(cpu)})` +
        (bound ? ' (CLIENT-BOUND)' : ''),
    );
    tls.push({ c, ratio: r.median, bound });
    cpuText += `${cpuText === '' ? '' : ', '}c=${c} ${cpuA.toFixed(0)}/${cpuB.toFixed(0)} µs`;
  }
  if (tls.length > 0) {
    out.tls =
      `kv-put cohort TLS/plaintext (mutual TLS, the default, vs --insecure; same nodes, alternating runs; ` +
      `median of ${flags.reps}; ${boundText(tls.some((t) => t.bound))}; server CPU per put ${cpuText}): ` +
      `${tls.map((t) => `c=${t.c} ${t.ratio.toFixed(2)}`).join(', ')}; ` +
      `ratio ${Math.min(...tls.map((t) => t.ratio)).toFixed(2)}`;
  }
  return out;
}

// ---------------------------------------------------------------- failover

/**
 * From `t0` (just before the kill), starts a write every `everyMs` until one
 * succeeds; returns the milliseconds from `t0` to that first success (NaN
 * after `timeoutMs`). A write still pending after `abandonMs` stops counting
 * against `inflightMax` (a client would give up on it and try again), but
 * if it succeeds later its success still counts.
 */
export function timeToFirstWrite(
  put: (i: number) => Promise<void>,
  t0: number,
  o: { everyMs?: number; inflightMax?: number; abandonMs?: number; timeoutMs?: number } = {},
): Promise<{ ms: number; attempts: number; failures: number }> {
  const everyMs = o.everyMs ?? 5;
  const inflightMax = o.inflightMax ?? 64;
  const abandonMs = o.abandonMs ?? 500;
  const timeoutMs = o.timeoutMs ?? 15_000;
  return new Promise((resolve) => {
    let done = false;
    let attempts = 0;
    let failures = 0;
    let inflight = 0;
    const finish = (ms: number): void => {
      if (done) return;
      done = true;
      resolve({ ms, attempts, failures });
    };
    const fire = (): void => {
      if (done) return;
      if (performance.now() - t0 > timeoutMs) return finish(NaN);
      if (inflight < inflightMax) {
        inflight++;
        attempts++;
        let counted = true;
        const release = (): void => {
          if (counted) inflight--;
          counted = false;
        };
        const abandon = setTimeout(release, abandonMs);
        put(attempts)
          .then(
            () => finish(performance.now() - t0),
            () => failures++,
          )
          .finally(() => {
            clearTimeout(abandon);
            release();
          });
      }
      setTimeout(fire, everyMs);
    };
    fire();
  });
}

interface FailoverTrial {
  ms: number;
  attempts: number;
  failures: number;
}

async function failoverCohort(flags: Flags, timing: Timing): Promise<FailoverTrial[]> {
  const cluster = await startCohortCluster(flags, TIMINGS[timing]);
  const trials: FailoverTrial[] = [];
  try {
    await cluster.waitForLeader({ timeoutMs: 30_000 });
    const probe = await cohortFailoverProbe(
      cluster.endpoints(),
      cluster.clusterId,
      cluster.clientTls,
    );
    try {
      for (let t = 0; t < flags.trials; t++) {
        const leader = await cluster.waitForLeader({ timeoutMs: 30_000 });
        for (let i = 0; i < 20; i++) await probe.put(`warm/${i}`);
        const t0 = performance.now();
        await cluster.kill(leader.id);
        const r = await timeToFirstWrite((i) => probe.put(`failover/${t}/${i}`), t0);
        trials.push(r);
        console.log(
          `failover cohort (${timing} timing) trial ${t + 1}: leader ${leader.id} (term ${leader.term}) killed, first write after ${r.ms.toFixed(0)} ms (${r.attempts} probes, ${r.failures} failed)`,
        );
        await cluster.restart(leader.id);
        // Back to three caught-up voters before the next trial.
        const next = await cluster.waitForLeader({ minTerm: leader.term + 1, timeoutMs: 30_000 });
        await cluster.waitForApplied(leader.id, next.commitIndex);
      }
    } finally {
      await probe.close();
    }
  } finally {
    await cluster.close();
  }
  return trials;
}

async function failoverEtcd(flags: Flags, timing: Timing): Promise<FailoverTrial[]> {
  const etcd = await startEtcdCluster(flags, TIMINGS[timing]);
  // No client-side retries or circuit breakers: the probe retries by itself
  // (with etcd3's defaults the dead leader's host is shunned for 5 s and
  // calls that land on it fail, which measures the client, not etcd).
  const client = etcdClient(etcd.urls(), { faultHandling: false });
  const value = Buffer.alloc(VALUE_BYTES, 7);
  const put = async (key: string): Promise<void> => {
    await client.put(key).value(value).exec();
  };
  const trials: FailoverTrial[] = [];
  try {
    for (let t = 0; t < flags.trials; t++) {
      const leader = await etcd.leader(30_000);
      for (let i = 0; i < 20; i++) await put(`warm/${i}`);
      const t0 = performance.now();
      await etcd.kill(leader.name);
      const r = await timeToFirstWrite((i) => put(`failover/${t}/${i}`), t0);
      trials.push(r);
      console.log(
        `failover etcd (${timing} timing) trial ${t + 1}: leader ${leader.name} killed, first write after ${r.ms.toFixed(0)} ms (${r.attempts} probes, ${r.failures} failed)`,
      );
      etcd.restart(leader.name);
      await new Promise((res) => setTimeout(res, 500));
      await etcd.leader(30_000);
    }
  } finally {
    client.close();
    await etcd.close();
  }
  return trials;
}

function failoverFigures(trials: readonly FailoverTrial[]): {
  p50: number;
  p99: number;
  max: number;
  timedOut: number;
} {
  const ok = trials
    .map((t) => t.ms)
    .filter((x) => Number.isFinite(x))
    .sort((a, b) => a - b);
  return {
    p50: percentile(ok, 0.5),
    p99: percentile(ok, 0.99),
    max: ok.length === 0 ? NaN : (ok[ok.length - 1] as number),
    timedOut: trials.length - ok.length,
  };
}

/** Runs the failover trials of every system and timing; returns the final line's text. */
async function failover(flags: Flags): Promise<string | undefined> {
  const lines: string[] = [];
  const speedups: string[] = [];
  const values: number[] = [];
  for (const [k, timing] of flags.timings.entries()) {
    const p50 = new Map<'cohort' | 'etcd', number>();
    // The systems alternate: A B for the first timing, B A for the second.
    await alternate(1, k % 2 === 0 ? flags.systems : [...flags.systems].reverse(), async (s) => {
      const trials =
        s === 'cohort' ? await failoverCohort(flags, timing) : await failoverEtcd(flags, timing);
      const f = failoverFigures(trials);
      p50.set(s, f.p50);
      const t = TIMINGS[timing];
      lines.push(
        `failover ${s} (${timing} timing: heartbeat ${t.heartbeatMs} ms, election ${t.electionMs} ms): ` +
          `kill -9 of the leader → first successful write, ${trials.length} trials` +
          (f.timedOut > 0 ? ` (${f.timedOut} timed out)` : '') +
          `: p50 ${f.p50.toFixed(0)} ms, p99 ${f.p99.toFixed(0)} ms, max ${f.max.toFixed(0)} ms`,
      );
    });
    const a = p50.get('cohort');
    const b = p50.get('etcd');
    if (a !== undefined && b !== undefined) {
      speedups.push(`${timing} timing ${(b / a).toFixed(2)}`);
      values.push(b / a);
    }
  }
  console.log('');
  for (const l of lines) console.log(l);
  if (values.length === 0) return undefined;
  return `kv failover p50 etcd/cohort (equal timeouts; higher: cohort recovers faster): ${speedups.join(', ')}; ratio ${Math.min(...values).toFixed(2)}`;
}

// ---------------------------------------------------------------- main

function parseFlags(argv: string[]): Flags {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '1' },
      only: { type: 'string' },
      conc: { type: 'string', default: '1,16,64,256' },
      gets: { type: 'string', default: '64' },
      'tls-conc': { type: 'string', default: '64' },
      reps: { type: 'string', default: String(DEFAULT_REPS) },
      procs: { type: 'string', default: 'auto' },
      'max-procs': { type: 'string', default: '8' },
      failover: { type: 'boolean', default: false },
      puts: { type: 'boolean', default: false },
      trials: { type: 'string', default: '20' },
      timing: { type: 'string', default: 'cohort,etcd' },
      runtime: { type: 'string', default: 'source' },
      'snapshot-entries': { type: 'string', default: '100000' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(
      'usage: npm run bench:kv -- [--seconds 10] [--warmup 1] [--only cohort|etcd] [--conc 1,16,64,256]\n' +
        '         [--gets 64 (concurrencies of the get runs; "" for none)] [--reps 3] [--runtime source|dist]\n' +
        '         [--tls-conc 64 (put concurrencies of cohort TLS vs --insecure; "" for none)]\n' +
        '         [--procs auto|N|cohort=N,etcd=M (client processes)] [--max-procs 8]\n' +
        '         [--snapshot-entries 100000 (both sides)]\n' +
        '         [--failover [--trials 20] [--timing cohort,etcd] [--puts: also the throughput runs]]',
    );
    process.exit(0);
  }
  const list = (s: string): number[] =>
    s
      .split(',')
      .filter((x) => x.trim() !== '')
      .map((x) => {
        const n = Number(x);
        if (!Number.isInteger(n) || n < 1) throw new Error(`bad concurrency ${x}`);
        return n;
      });
  const only = values.only;
  if (only !== undefined && only !== 'cohort' && only !== 'etcd') {
    throw new Error('--only must be cohort or etcd');
  }
  if (values.runtime !== 'source' && values.runtime !== 'dist') {
    throw new Error('--runtime must be source or dist');
  }
  let procs: Partial<Record<System, number>> | undefined;
  if (values.procs !== 'auto') {
    const n = Number(values.procs);
    if (Number.isInteger(n) && n >= 1) procs = { cohort: n, etcd: n };
    else {
      procs = {};
      for (const part of values.procs.split(',')) {
        const [s, v] = part.split('=');
        const k = Number(v);
        if ((s !== 'cohort' && s !== 'etcd') || !Number.isInteger(k) || k < 1) {
          throw new Error(`--procs: auto, N or cohort=N,etcd=M; got ${values.procs}`);
        }
        procs[s] = k;
      }
    }
  }
  const timings = values.timing.split(',').map((t) => {
    if (t !== 'cohort' && t !== 'etcd') throw new Error(`--timing: cohort and/or etcd, got ${t}`);
    return t;
  });
  return {
    seconds: Number(values.seconds),
    warmup: Number(values.warmup),
    systems: only === undefined ? ['cohort', 'etcd'] : [only],
    tlsConc: list(values['tls-conc']),
    workloads: [
      ...list(values.conc).map((c) => ({ mode: 'put' as const, concurrency: c })),
      ...list(values.gets).map((c) => ({ mode: 'get' as const, concurrency: c })),
    ],
    reps: Math.max(1, Number(values.reps)),
    procs,
    maxProcs: Math.max(1, Number(values['max-procs'])),
    failover: values.failover,
    puts: values.puts,
    trials: Math.max(1, Number(values.trials)),
    timings,
    runtime: values.runtime,
    snapshotEntries: Number(values['snapshot-entries']),
  };
}

async function orchestrate(flags: Flags): Promise<void> {
  if (flags.systems.includes('etcd')) ensureEtcd();
  const bench = startBench(
    'kv',
    `3 nodes each on 127.0.0.1, fsync on; ` +
      (!flags.failover || flags.puts
        ? `${flags.warmup} s warm-up + ${flags.seconds} s per run, ${flags.reps} rep(s); `
        : '') +
      (flags.failover
        ? `failover: ${flags.trials} trial(s) per system and timing (${flags.timings.join(', ')}); `
        : '') +
      `${flags.systems.includes('etcd') ? etcdVersion() : 'etcd skipped'}; nodes from ${flags.runtime}; ` +
      `client processes ${flags.procs === undefined ? 'auto' : JSON.stringify(flags.procs)}`,
  );
  let summary: Summary = {};
  let failoverLine: string | undefined;
  if (!flags.failover || flags.puts) {
    const results = await throughput(flags, bench);
    summary = summarize(results, flags, bench.overloaded);
  }
  if (flags.failover) failoverLine = await failover(flags);
  bench.finish();
  // The closing lines, the TLS/plaintext ratio last (see the file header).
  const closing = [failoverLine, summary.etcd, summary.tls].filter(
    (l): l is string => l !== undefined,
  );
  for (const l of closing) console.log(l);
  if (closing.length === 0) console.log('kv: no two sides were both measured, no ratio');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child') {
    await runChild(JSON.parse(argv[1] ?? '{}') as ChildSpec);
    return;
  }
  await orchestrate(parseFlags(argv));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
