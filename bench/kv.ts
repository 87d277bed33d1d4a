/**
 * bench/kv.ts — the replicated KV store against etcd 3.4 (Debian's
 * etcd-server), 3 members each on 127.0.0.1, side by side in one run:
 * closed-loop puts of 256-byte values to random keys at concurrency 1, 16,
 * 64 and 256, and linearizable gets of prefilled keys at concurrency 64;
 * 1 s warm-up then 10 s measured per run; ops/s, p50, p99, CPU per process,
 * and the ratios cohort/etcd, then cohort TLS / plaintext last (cohort runs over
 * mutual TLS, its default; `cohort-plain` is the same cluster with --insecure). With `--failover`: the time from kill -9
 * of the leader to the first successful write, over 20 trials, p50/p99.
 *
 * ```sh
 * npm run bench:kv                                  # everything, ~5 min
 * npm run bench:kv -- --seconds 3 --warmup 0.5 --conc 64 --only cohort   # a quick look
 * npm run bench:kv -- --conc 64 --gets '' --only cohort,cohort-plain      # what TLS costs
 * npm run bench:kv -- --failover --trials 20        # failover only (add --puts to run both)
 * npm run bench:kv -- --reps 3                      # medians of 3 alternating runs
 * ```
 *
 * Method (as ../shared/peers measured etcd): each worker issues the next
 * request when its previous one returns; requests started during the
 * warm-up are not recorded; p50/p99 are nearest-rank over every request
 * completed in the measured window. Puts write `k/<random 0..999999>`; gets
 * read `g/<random 0..9999>` after 10 000 keys were written. Every (system,
 * workload) gets a fresh cluster (empty data dirs) and a fresh client
 * process holding one client: cohort's KvClient given the leader's endpoint
 * first, etcd's `etcd3` client given only the leader's URL (the "leader
 * only" baseline). Both stores fsync their logs (cohort: fdatasync per group
 * commit, always on; etcd: its default). Nodes run from the sources under tsx
 * (`--runtime dist` runs bin/cohort.js, after `npm run build`).
 *
 * The machine has 2 cores shared by the client and all three servers (and
 * anything else running): the load average is printed at the start and end.
 *
 * Measured on a quiet machine (load average ~1.3), 2026-11-21 10:40 UTC,
 * `--runtime dist`, one run, cohort / etcd: puts c=1 1,108 / 932 ops/s (p50
 * 0.80 / 1.00 ms, p99 3.5 / 2.7 ms), c=16 7.6k / 3.4k (ratio 2.22), c=64
 * 11.9k / 5.4k (2.21; p99 14.6 / 25.4 ms), c=256 13.8k / 5.5k (2.51; p99
 * 42.5 / 84.1 ms); linearizable gets c=64 26.7k / 5.4k (4.97). etcd's figures
 * match ../shared/peers/RESULTS.md. CPU: cohort's client ~11-19 % where etcd3
 * uses 36-94 % (etcd3 is client-bound at c>=64).
 * Failover, 40 trials (after election timeouts moved one tick past the lease):
 * p50 269 ms, p99 = max 535 ms, the only trial above 374 ms a split vote (an
 * extra term); before that change 3 in 40 trials took ~620 ms (a pre-vote
 * refused by a voter still in its lease). etcd: p50 ~1.3 s (1 s timeout).
 * Under the load of other work (load average 9-21, earlier the same day) the
 * put ratios fell to 0.8-1.8 and p50 at c=1 rose to 1.7-2.7 ms: compare
 * ratios from one run on a quiet box only. The default --snapshot-entries
 * (now 100 000, etcd's) matters: at 10 000 the synchronous KV snapshot put
 * c=256 p99 at 1.23 s vs 0.25 s with snapshots off.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ProcessCluster, sleep } from '../test/harness/process-cluster.js';
import type { ProcessClusterOptions } from '../test/harness/process-cluster.js';
import type { CredentialFiles } from '../src/trust/credentials.js';
import { cohortDriver, cohortFailoverProbe } from './kv-cohort.js';
import { EtcdCluster, ensureEtcd, etcdClient, etcdVersion } from './kv-etcd.js';

const SELF = fileURLToPath(import.meta.url);

/** The systems compared: cohort over mutual TLS (its default), cohort with --insecure, etcd. */
type System = 'cohort' | 'cohort-plain' | 'etcd';
/** The workloads: puts to random keys, or linearizable gets of prefilled keys. */
type Mode = 'put' | 'get';

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
  /** cohort over TLS: the root user's credential files. */
  tls?: CredentialFiles;
}

/** One run's figures. */
interface Result {
  system: System;
  mode: Mode;
  concurrency: number;
  ops: number;
  errors: number;
  opsPerSec: number;
  p50Us: number;
  p99Us: number;
  firstError?: string;
  /** CPU of the client process and of the servers together, in % of one core. */
  clientCpu?: number;
  serverCpu?: number;
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

// ---------------------------------------------------------------- load (child process)

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] as number;
}

/** Closed loop: `concurrency` workers issuing `op` back to back; latencies in µs. */
async function closedLoop(
  concurrency: number,
  warmupMs: number,
  durationMs: number,
  op: () => Promise<void>,
  onWarm: () => void,
): Promise<Pick<Result, 'ops' | 'errors' | 'opsPerSec' | 'p50Us' | 'p99Us' | 'firstError'>> {
  let lat = new Float64Array(1 << 20);
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
  await Promise.all(Array.from({ length: concurrency }, () => worker()));
  clearTimeout(warmTimer);
  const sorted = lat.subarray(0, n).sort();
  return {
    ops: n,
    errors,
    opsPerSec: Math.round(n / (durationMs / 1000)),
    p50Us: Math.round(percentile(sorted, 0.5)),
    p99Us: Math.round(percentile(sorted, 0.99)),
    ...(firstError === undefined ? {} : { firstError }),
  };
}

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

async function runChild(spec: ChildSpec): Promise<void> {
  const driver =
    spec.system === 'etcd'
      ? etcdDriver(spec.endpoints as string[])
      : await cohortDriver(spec.endpoints, spec.clusterId ?? 'cohort-local', spec.tls);
  const value = new Uint8Array(VALUE_BYTES);
  for (let i = 0; i < value.length; i++) value[i] = (i * 131 + 7) & 0xff;
  let op: () => Promise<void>;
  if (spec.mode === 'put') {
    op = () => driver.put(`k/${Math.floor(Math.random() * PUT_KEYSPACE)}`, value);
  } else {
    let next = 0;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (next < GET_KEYS) await driver.put(`g/${next++}`, value);
      }),
    );
    op = async () => {
      const v = await driver.get(`g/${Math.floor(Math.random() * GET_KEYS)}`);
      if (v === null || v.length !== VALUE_BYTES) throw new Error('bad get result');
    };
  }
  for (let i = 0; i < 10; i++) await op();
  process.stdout.write('READY\n');
  const cpu0 = process.cpuUsage();
  let cpuWarm = cpu0;
  const r = await closedLoop(spec.concurrency, spec.warmupMs, spec.durationMs, op, () => {
    cpuWarm = process.cpuUsage();
    process.stdout.write('WARM\n');
  });
  const cpu = process.cpuUsage(cpuWarm);
  const result: Result = {
    system: spec.system,
    mode: spec.mode,
    concurrency: spec.concurrency,
    ...r,
    clientCpu: Math.round(((cpu.user + cpu.system) / 1000 / spec.durationMs) * 100),
  };
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  await driver.close();
  process.exit(0);
}

// ---------------------------------------------------------------- orchestration

/** CPU ticks (user + system) a process has used, from /proc; 0 if it is gone. */
function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}
const TICKS_PER_SECOND = 100;

function loadChild(spec: ChildSpec): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', SELF, '--child', JSON.stringify(spec)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

/** Runs one load child; samples the servers' CPU over its measured window. */
function runLoad(spec: ChildSpec, serverPids: () => number[]): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = loadChild(spec);
    let buf = '';
    let warm: { at: number; ticks: number } | undefined;
    const ticks = (): number => serverPids().reduce((a, p) => a + cpuTicks(p), 0);
    child.stdout?.on('data', (chunk: Buffer) => {
      buf += chunk.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line === 'WARM') warm = { at: performance.now(), ticks: ticks() };
        else if (line.startsWith('RESULT ')) {
          const r = JSON.parse(line.slice(7)) as Result;
          if (warm !== undefined) {
            const secs = (performance.now() - warm.at) / 1000;
            r.serverCpu = Math.round(((ticks() - warm.ticks) / TICKS_PER_SECOND / secs) * 100);
          }
          resolve(r);
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`load child exited (${code}) without a result`)));
  });
}

function ms(us: number): string {
  return `${(us / 1000).toFixed(us < 10_000 ? 2 : 1)} ms`;
}

function kops(n: number): string {
  return n >= 1000 ? `${(n / 1000).toFixed(1)}k` : `${n}`;
}

function line(r: Result): string {
  return (
    `kv-${r.mode} c=${String(r.concurrency).padEnd(3)} ${r.system.padEnd(6)} ` +
    `${String(r.opsPerSec).padStart(6)} ops/s  p50 ${ms(r.p50Us).padStart(8)}  p99 ${ms(r.p99Us).padStart(8)}` +
    `  cpu client ${r.clientCpu ?? '?'}% servers ${r.serverCpu ?? '?'}%` +
    (r.errors > 0 ? `  errors ${r.errors} (${r.firstError ?? ''})` : '')
  );
}

interface Workload {
  mode: Mode;
  concurrency: number;
}

interface Flags {
  seconds: number;
  warmup: number;
  systems: System[];
  workloads: Workload[];
  reps: number;
  failover: boolean;
  puts: boolean;
  trials: number;
  runtime: 'source' | 'dist';
  /** cohort's --snapshot-entries (undefined: the node's default). */
  snapshotEntries: number | undefined;
}

function clusterOptions(flags: Flags, tls = true): ProcessClusterOptions {
  return {
    runtime: flags.runtime,
    tls,
    ...(flags.snapshotEntries === undefined ? {} : { snapshotEntries: flags.snapshotEntries }),
  };
}

/** A fresh cluster of `system`, with what a load child needs to reach its leader. */
async function freshCluster(
  system: System,
  flags: Flags,
): Promise<{
  endpoints: unknown;
  tls?: CredentialFiles;
  pids: () => number[];
  close: () => Promise<void>;
}> {
  if (system === 'etcd') {
    const etcd = await EtcdCluster.start();
    const leader = await etcd.leader();
    return { endpoints: [leader.url], pids: () => etcd.pids(), close: () => etcd.close() };
  }
  const cluster = await ProcessCluster.start(clusterOptions(flags, system === 'cohort'));
  const leader = await cluster.waitForLeader({ timeoutMs: 30_000 });
  const eps = cluster.endpoints();
  const endpoints = [
    ...eps.filter((e) => e.id === leader.id),
    ...eps.filter((e) => e.id !== leader.id),
  ];
  const tls = cluster.clientTls;
  return {
    endpoints,
    ...(tls === undefined ? {} : { tls }),
    pids: () => cluster.nodes.flatMap((n) => cluster.pid(n.id) ?? []),
    close: () => cluster.close(),
  };
}

async function throughput(flags: Flags): Promise<Result[]> {
  const results: Result[] = [];
  for (let rep = 0; rep < flags.reps; rep++) {
    for (const w of flags.workloads) {
      // Systems alternate within a workload, so background noise spreads evenly.
      for (const system of flags.systems) {
        const c = await freshCluster(system, flags);
        try {
          const r = await runLoad(
            {
              system,
              mode: w.mode,
              concurrency: w.concurrency,
              warmupMs: flags.warmup * 1000,
              durationMs: flags.seconds * 1000,
              endpoints: c.endpoints,
              ...(c.tls === undefined ? {} : { tls: c.tls }),
            },
            c.pids,
          );
          results.push(r);
          console.log(`${line(r)}${flags.reps > 1 ? `  (rep ${rep + 1})` : ''}`);
        } finally {
          await c.close();
        }
      }
    }
  }
  return results;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)] as number;
}

function summarize(results: readonly Result[], flags: Flags): void {
  const pick = (system: System, w: Workload): Result | undefined => {
    const rs = results.filter(
      (r) => r.system === system && r.mode === w.mode && r.concurrency === w.concurrency,
    );
    if (rs.length === 0) return undefined;
    return {
      system,
      mode: w.mode,
      concurrency: w.concurrency,
      ops: median(rs.map((r) => r.ops)),
      errors: rs.reduce((a, r) => a + r.errors, 0),
      opsPerSec: median(rs.map((r) => r.opsPerSec)),
      p50Us: median(rs.map((r) => r.p50Us)),
      p99Us: median(rs.map((r) => r.p99Us)),
      clientCpu: median(rs.map((r) => r.clientCpu ?? NaN)),
      serverCpu: median(rs.map((r) => r.serverCpu ?? NaN)),
    };
  };
  if (flags.reps > 1) {
    console.log('\nmedians:');
    for (const w of flags.workloads) {
      for (const s of flags.systems) {
        const r = pick(s, w);
        if (r !== undefined) console.log(line(r));
      }
    }
  }
  if (flags.systems.includes('cohort') && flags.systems.includes('etcd')) {
    console.log('\nratios (cohort / etcd):');
    for (const w of flags.workloads) {
      const a = pick('cohort', w);
      const b = pick('etcd', w);
      if (a === undefined || b === undefined) continue;
      console.log(
        `kv-${w.mode} c=${w.concurrency}: cohort ${kops(a.opsPerSec)}/s p50 ${ms(a.p50Us)} p99 ${ms(a.p99Us)}, ` +
          `etcd ${kops(b.opsPerSec)}/s p50 ${ms(b.p50Us)} p99 ${ms(b.p99Us)}; ` +
          `throughput ratio ${(a.opsPerSec / b.opsPerSec).toFixed(2)}, p50 ratio ${(a.p50Us / b.p50Us).toFixed(2)}, p99 ratio ${(a.p99Us / b.p99Us).toFixed(2)}`,
      );
    }
  }
  // Last: what TLS costs (the issue's goal: >= 0.85 at c=64).
  if (!flags.systems.includes('cohort') || !flags.systems.includes('cohort-plain')) return;
  console.log('\nratios (cohort TLS / cohort plaintext):');
  for (const w of flags.workloads) {
    const a = pick('cohort', w);
    const b = pick('cohort-plain', w);
    if (a === undefined || b === undefined) continue;
    console.log(
      `kv-${w.mode} c=${w.concurrency}: TLS ${kops(a.opsPerSec)}/s p50 ${ms(a.p50Us)} p99 ${ms(a.p99Us)}, ` +
        `plaintext ${kops(b.opsPerSec)}/s p50 ${ms(b.p50Us)} p99 ${ms(b.p99Us)}; ` +
        `throughput ratio ${(a.opsPerSec / b.opsPerSec).toFixed(2)}`,
    );
  }
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

async function failoverCohort(flags: Flags): Promise<FailoverTrial[]> {
  const cluster = await ProcessCluster.start(clusterOptions(flags));
  const probe = await cohortFailoverProbe(
    cluster.endpoints(),
    cluster.clusterId,
    cluster.clientTls,
  );
  const trials: FailoverTrial[] = [];
  try {
    for (let t = 0; t < flags.trials; t++) {
      const leader = await cluster.waitForLeader({ timeoutMs: 30_000 });
      for (let i = 0; i < 20; i++) await probe.put(`warm/${i}`);
      const t0 = performance.now();
      await cluster.kill(leader.id);
      const r = await timeToFirstWrite((i) => probe.put(`failover/${t}/${i}`), t0);
      trials.push(r);
      console.log(
        `failover cohort trial ${t + 1}: leader ${leader.id} (term ${leader.term}) killed, first write after ${r.ms.toFixed(0)} ms (${r.attempts} probes, ${r.failures} failed)`,
      );
      await cluster.restart(leader.id);
      // Back to three caught-up voters before the next trial.
      const next = await cluster.waitForLeader({ minTerm: leader.term + 1, timeoutMs: 30_000 });
      await cluster.waitForApplied(leader.id, next.commitIndex);
    }
  } finally {
    await probe.close();
    await cluster.close();
  }
  return trials;
}

async function failoverEtcd(flags: Flags): Promise<FailoverTrial[]> {
  const etcd = await EtcdCluster.start();
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
        `failover etcd trial ${t + 1}: leader ${leader.name} killed, first write after ${r.ms.toFixed(0)} ms (${r.attempts} probes, ${r.failures} failed)`,
      );
      etcd.restart(leader.name);
      await sleep(500);
      await etcd.leader(30_000);
    }
  } finally {
    client.close();
    await etcd.close();
  }
  return trials;
}

function nearestRank(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] as number;
}

function failoverLine(system: System, trials: readonly FailoverTrial[]): string {
  const ok = trials.map((t) => t.ms).filter((x) => Number.isFinite(x));
  return (
    `failover ${system}: kill -9 of the leader → first successful write, ${trials.length} trials` +
    (ok.length < trials.length ? ` (${trials.length - ok.length} timed out)` : '') +
    `: p50 ${nearestRank(ok, 0.5).toFixed(0)} ms, p99 ${nearestRank(ok, 0.99).toFixed(0)} ms, max ${Math.max(...ok).toFixed(0)} ms`
  );
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
      reps: { type: 'string', default: '1' },
      failover: { type: 'boolean', default: false },
      puts: { type: 'boolean', default: false },
      trials: { type: 'string', default: '20' },
      runtime: { type: 'string', default: 'source' },
      'snapshot-entries': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(
      'usage: npm run bench:kv -- [--seconds 10] [--warmup 1] [--only cohort|etcd] [--conc 1,16,64,256]\n' +
        '         [--gets 64 (concurrencies of the get runs; "" for none)] [--reps 1] [--runtime source|dist]\n' +
        '         [--snapshot-entries N (cohort nodes; default: theirs)]\n' +
        '         [--failover [--trials 20] [--puts: also the throughput runs]]',
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
  const systems: System[] =
    only === undefined ? ['cohort', 'cohort-plain', 'etcd'] : (only.split(',') as System[]);
  if (!systems.every((x) => x === 'cohort' || x === 'cohort-plain' || x === 'etcd')) {
    throw new Error('--only takes cohort, cohort-plain and/or etcd (comma-separated)');
  }
  if (values.runtime !== 'source' && values.runtime !== 'dist') {
    throw new Error('--runtime must be source or dist');
  }
  return {
    seconds: Number(values.seconds),
    warmup: Number(values.warmup),
    systems,
    workloads: [
      ...list(values.conc).map((c) => ({ mode: 'put' as const, concurrency: c })),
      ...list(values.gets).map((c) => ({ mode: 'get' as const, concurrency: c })),
    ],
    reps: Math.max(1, Number(values.reps)),
    failover: values.failover,
    puts: values.puts,
    trials: Math.max(1, Number(values.trials)),
    runtime: values.runtime,
    snapshotEntries:
      values['snapshot-entries'] === undefined ? undefined : Number(values['snapshot-entries']),
  };
}

async function orchestrate(flags: Flags): Promise<void> {
  if (flags.systems.includes('etcd')) ensureEtcd();
  const load = (): string =>
    loadavg()
      .map((x) => x.toFixed(2))
      .join(' ');
  console.log(
    `kv bench: 3 nodes each on 127.0.0.1, fsync on; ${flags.warmup} s warm-up + ${flags.seconds} s per run; ` +
      `${flags.systems.includes('etcd') ? etcdVersion() : 'etcd skipped'}; nodes from ${flags.runtime}; load average ${load()}`,
  );
  if (!flags.failover || flags.puts) summarize(await throughput(flags), flags);
  if (flags.failover) {
    const lines: string[] = [];
    for (const s of flags.systems) {
      if (s === 'cohort-plain') continue; // failover is not about TLS
      const trials = s === 'cohort' ? await failoverCohort(flags) : await failoverEtcd(flags);
      lines.push(failoverLine(s, trials));
    }
    console.log('');
    for (const l of lines) console.log(l);
  }
  console.log(`load average at the end: ${load()}`);
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
