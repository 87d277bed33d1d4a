/**
 * bench/gateway.ts — cohort's gateway (`cohort gateway`, its own process)
 * against HAProxy (Debian's `haproxy`, mode http, round robin, keep-alive
 * both sides, default threads) in front of the same two Node backends
 * (bench/gateway-hello.mjs, as bench/peers/http-hello.js: 200 with a
 * 100-byte body), driven by wrk (Debian's `wrk`, `-t1 -c64 -d10s --latency`,
 * as bench/peers/run-haproxy.sh). Runs alternate between the two proxies;
 * each figure is the median of the repetitions with the min–max. Then one
 * run each with a backend killed (kill -9) 3 s into the run, to count the
 * errors each proxy lets through (HAProxy with `check`, its default health
 * checks; cohort with its default checks). The ratio cohort/HAProxy is the
 * last line.
 *
 * ```sh
 * npm run bench:gateway                          # 3 reps × 10 s each, plus the kill runs (~2 min)
 * npm run bench:gateway -- --reps 5 --seconds 10
 * npm run bench:gateway -- --seconds 2 --reps 1  # a smoke run
 * npm run bench:gateway -- --workers 1           # the gateway in one process
 * npm run bench:gateway -- --warmup 5            # seconds of unrecorded load first (default 3)
 * BENCH_SECONDS=5 npm run bench:gateway
 * ```
 *
 * The machine has 2 cores shared by wrk, the proxy and both backends: the
 * load average is printed at the start (with a warning when it is already
 * above the core count) and the end, with the CPU other work took meanwhile
 * (a warning above a quarter of a core: then the figures say little; the
 * load average alone counts this bench's own processes), and the CPU time
 * of every process over each run is printed (100 % = one core). HAProxy
 * and wrk are installed with apt-get when missing. The CPU of a proxy is
 * that of all its processes (the gateway's primary and workers), and is
 * also given per request (µs of CPU per request: far less sensitive to the
 * machine's load than req/s). HAProxy runs its default threads (one per
 * core); the gateway runs `--workers` processes, by default one per core
 * too; the first lines say what each used. The gateway runs from dist/
 * (bin/cohort.js: what `cohort gateway` runs from the installed package),
 * compiled first (`tsc -p tsconfig.build.json`) when a file of src/ is newer
 * than dist/; `--runtime source` runs it from the sources under tsx instead.
 *
 * Goal (issue #16): ≥ 0.8× HAProxy's throughput with p99 ≤ 1.5× HAProxy's.
 * Measured before here: HAProxy 39.1k req/s, p99 3.3 ms
 * (bench/peers/RESULTS.md).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort, sleep, until } from '../test/harness/process-cluster.js';
import { OTHER_WORK_CORES_MAX, OtherWorkMeter } from './common.js';

const repo = fileURLToPath(new URL('../', import.meta.url));
const hello = fileURLToPath(new URL('./gateway-hello.mjs', import.meta.url));

type System = 'cohort' | 'haproxy';

interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
}

interface WrkResult {
  readonly rps: number;
  /** CPU time (user + system) of the proxy's processes per request, µs. */
  readonly proxyUsPerReq: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: string;
  readonly errorCount: number;
  readonly cpu: Record<string, number>;
}

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: process.env.BENCH_SECONDS ?? '10' },
    reps: { type: 'string', default: process.env.BENCH_REPS ?? '3' },
    // Each gateway worker warms its JIT on its own share of the traffic.
    warmup: { type: 'string', default: '3' },
    conc: { type: 'string', default: '64' },
    // dist: bin/cohort.js, as users run it; source: the sources under tsx.
    runtime: { type: 'string', default: 'dist' },
    // HAProxy's default is one thread per core; the gateway's equivalent is one process per core.
    workers: { type: 'string', default: String(availableParallelism()) },
    only: { type: 'string' },
    'no-kill': { type: 'boolean', default: false },
  },
});
if (values.runtime !== 'dist' && values.runtime !== 'source') {
  throw new Error(`--runtime must be dist or source, not ${values.runtime}`);
}
const seconds = Math.max(1, Number(values.seconds));
const reps = Math.max(1, Number(values.reps));
const warmupS = Math.max(1, Number(values.warmup));
const load = (): string =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
const conc = Math.max(1, Number(values.conc));
const workers = Math.max(1, Number(values.workers));
const systems: System[] =
  values.only === 'cohort' || values.only === 'haproxy' ? [values.only] : ['cohort', 'haproxy'];

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

function which(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** Installs Debian's wrk and haproxy when missing (apt-get, as root on these machines). */
function ensureTools(): void {
  const missing = ['wrk', 'haproxy'].filter((c) => !which(c));
  if (missing.length === 0) return;
  console.log(`installing ${missing.join(' ')} with apt-get...`);
  const install = (): number | null =>
    spawnSync('apt-get', ['install', '-y', '--no-install-recommends', ...missing], {
      stdio: 'inherit',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    }).status;
  if (install() !== 0) {
    spawnSync('apt-get', ['update'], { stdio: 'inherit' });
    if (install() !== 0) throw new Error(`apt-get could not install ${missing.join(' ')}`);
  }
  // The package starts a system haproxy service; this bench runs its own.
  spawnSync('sh', ['-c', 'service haproxy stop || true'], { stdio: 'ignore' });
}

/** Newest modification time (ms) of the files under `dir` whose names end with `ext`; 0 for none. */
function newest(dir: string, ext: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith(ext))
      t = Math.max(t, statSync(join(e.parentPath, e.name)).mtimeMs);
  }
  return t;
}

/** Compiles src/ to dist/ when dist/ is missing or older than a source file (the gateway runs from dist/). */
function ensureDist(): void {
  const main = join(repo, 'dist', 'cli', 'main.js');
  const built = existsSync(main) ? statSync(main).mtimeMs : 0;
  if (built >= newest(join(repo, 'src'), '.ts')) return;
  console.log('dist/ is older than src/: compiling it (tsc -p tsconfig.build.json)...');
  const r = spawnSync(
    process.execPath,
    [join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'],
    {
      cwd: repo,
      stdio: 'inherit',
    },
  );
  if (r.status !== 0) throw new Error('tsc could not compile src/ to dist/');
}

function start(name: string, cmd: string, args: readonly string[]): Proc {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: repo });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  child.once('exit', (code, signal) => {
    if (code !== 0 && signal === null && !stopping) {
      process.stderr.write(`${name} exited ${code}: ${err}\n`);
    }
  });
  child.stdout?.resume();
  return { name, child };
}
let stopping = false;

async function stop(p: Proc): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  const gone = new Promise<void>((r) => p.child.once('exit', () => r()));
  p.child.kill('SIGKILL');
  await gone;
}

async function listening(port: number): Promise<void> {
  await until(
    `port ${port} to answer`,
    async () => {
      try {
        const r = await fetch(`http://127.0.0.1:${port}/`);
        await r.arrayBuffer();
        return r.status === 200 ? true : undefined;
      } catch {
        return undefined;
      }
    },
    60_000,
    100,
  );
}

/** CPU ticks (user + system) of a process from /proc; 0 once it is gone. */
function cpuTicks(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

/** Pids of `pid`'s children (the gateway's worker processes), from /proc. */
function childPids(pid: number | undefined): number[] {
  if (pid === undefined) return [];
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** `pid` and all its descendants. */
function tree(pid: number | undefined): number[] {
  if (pid === undefined) return [];
  return [pid, ...childPids(pid).flatMap((c) => tree(c))];
}

/** CPU ticks of a process and its descendants (the gateway with its workers; tsx's idle esbuild). */
function treeTicks(pid: number | undefined): number {
  return tree(pid).reduce<number>((a, p) => a + cpuTicks(p), 0);
}

/** The gateway's worker processes (children running worker-main). */
function gatewayWorkers(pid: number | undefined): number {
  return childPids(pid).filter((c) => {
    try {
      return readFileSync(`/proc/${c}/cmdline`, 'utf8').includes('worker-main');
    } catch {
      return false;
    }
  }).length;
}

/** Threads of a process (HAProxy's nbthread). */
function threadsOf(pid: number | undefined): number {
  try {
    return Number(/^Threads:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  } catch {
    return NaN;
  }
}

/** wrk's latency text (`1.39ms`, `812.00us`, `1.02s`) in ms. */
function ms(text: string | undefined): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text ?? '');
  if (m === null) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

async function runWrk(
  url: string,
  procs: readonly Proc[],
  durationS: number,
  during?: () => Promise<void>,
): Promise<WrkResult> {
  const before = procs.map((p) => treeTicks(p.child.pid));
  const wrk = spawn('wrk', ['-t1', `-c${conc}`, `-d${durationS}s`, '--latency', url], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(wrk);
  let out = '';
  wrk.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const t0 = Date.now();
  let wrkTicks = 0;
  const sampler = setInterval(() => {
    wrkTicks = Math.max(wrkTicks, cpuTicks(wrk.pid));
  }, 200);
  const extra = during?.();
  await new Promise<void>((r) => wrk.once('exit', () => r()));
  clearInterval(sampler);
  children.delete(wrk);
  await extra;
  const elapsedS = (Date.now() - t0) / 1000;
  const cpu: Record<string, number> = { wrk: (wrkTicks / 100 / elapsedS) * 100 };
  procs.forEach((p, i) => {
    cpu[p.name] = ((treeTicks(p.child.pid) - (before[i] ?? 0)) / 100 / elapsedS) * 100;
  });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const proxyCpu = cpu[procs[0]?.name ?? ''] ?? NaN;
  const proxyUsPerReq = ((proxyCpu / 100) * 1e6) / rps;
  const p50Ms = ms(/^\s+50%\s+(\S+)/m.exec(out)?.[1]);
  const p99Ms = ms(/^\s+99%\s+(\S+)/m.exec(out)?.[1]);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const sockCount = sock === null ? 0 : sock.slice(1).reduce((a, b) => a + Number(b), 0);
  const errors = `non-2xx ${non2xx}${sock === null ? '' : `, socket errors ${sock.slice(1).join('/')} (connect/read/write/timeout)`}`;
  if (!Number.isFinite(rps)) throw new Error(`wrk said:\n${out}`);
  return { rps, proxyUsPerReq, p50Ms, p99Ms, errors, errorCount: non2xx + sockCount, cpu };
}

function haproxyConfig(port: number, backends: readonly number[], check: boolean): string {
  return [
    '# As bench/peers/haproxy.cfg: mode http, roundrobin, keep-alive both sides, default threads.',
    'global',
    '    maxconn 4096',
    'defaults',
    '    mode http',
    '    timeout connect 5s',
    '    timeout client 30s',
    '    timeout server 30s',
    'frontend fe',
    `    bind 127.0.0.1:${port}`,
    '    default_backend be',
    'backend be',
    '    balance roundrobin',
    ...backends.map((p, i) => `    server s${i + 1} 127.0.0.1:${p}${check ? ' check' : ''}`),
    '',
  ].join('\n');
}

interface Setup {
  readonly url: string;
  readonly procs: Proc[];
  readonly backends: Proc[];
  close(): Promise<void>;
}

async function setup(system: System, dir: string, check: boolean): Promise<Setup> {
  const ports = [await freePort(), await freePort()];
  const backends = ports.map((p, i) =>
    start(`backend${i + 1}`, process.execPath, [hello, String(p)]),
  );
  for (const p of ports) await listening(p);
  const port = await freePort();
  let proxy: Proc;
  if (system === 'haproxy') {
    const cfg = join(dir, `haproxy-${port}.cfg`);
    writeFileSync(cfg, haproxyConfig(port, ports, check));
    proxy = start('haproxy', 'haproxy', ['-f', cfg, '-db']);
  } else {
    const cli =
      values.runtime === 'dist'
        ? [join(repo, 'bin', 'cohort.js')]
        : ['--import', 'tsx', join(repo, 'test', 'node', 'fixtures', 'cohort-cli.ts')];
    proxy = start('gateway', process.execPath, [
      ...cli,
      'gateway',
      '--backends',
      ports.map((p, i) => `b${i + 1}=127.0.0.1:${p}`).join(','),
      '--listen',
      `127.0.0.1:${port}`,
      '--admin',
      '',
      '--workers',
      String(workers),
    ]);
  }
  await listening(port);
  const procs = [proxy, ...backends];
  return {
    url: `http://127.0.0.1:${port}/`,
    procs,
    backends,
    close: async () => {
      for (const p of procs) await stop(p);
    },
  };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] ?? NaN) : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2;
}

const k = (rps: number): string => `${(rps / 1000).toFixed(1)}k`;
const cpuText = (cpu: Record<string, number>): string =>
  Object.entries(cpu)
    .map(([n, v]) => `${n} ${v.toFixed(0)}%`)
    .join(', ');

async function main(): Promise<void> {
  ensureTools();
  if (values.runtime === 'dist' && systems.includes('cohort')) ensureDist();
  const cores = availableParallelism();
  const warnLoad = (when: string): void => {
    const l1 = loadavg()[0] ?? 0;
    if (l1 > cores) {
      console.log(
        `WARNING: load average ${l1.toFixed(1)} ${when} is above the ${cores} cores: other work competes, the figures say little`,
      );
    }
  };
  // The load average counts wrk, the proxies and the backends too, which are above the
  // cores by themselves: what decides is the CPU work outside this bench's processes.
  const other = new OtherWorkMeter();
  const haproxyVersion =
    systems.includes('haproxy') && which('haproxy')
      ? (execFileSync('haproxy', ['-v']).toString().split('\n')[0] ?? '')
      : 'haproxy skipped';
  console.log(
    `gateway bench: wrk -t1 -c${conc} -d${seconds}s, 2 Node backends, ${reps} reps alternating; ${haproxyVersion}; gateway from ${values.runtime}, --workers ${workers}; load average ${load()} (${cores} cores)`,
  );
  warnLoad('at the start');
  const dir = mkdtempSync(join(tmpdir(), 'cohort-bench-gw-'));
  const results: Record<System, WrkResult[]> = { cohort: [], haproxy: [] };
  try {
    const s: Partial<Record<System, Setup>> = {};
    for (const sys of systems) s[sys] = await setup(sys, dir, false);
    const shape: string[] = [];
    if (s.cohort !== undefined) {
      const pid = s.cohort.procs[0]?.child.pid;
      const n = gatewayWorkers(pid);
      shape.push(`cohort gateway ${n === 0 ? '1 process' : `1 primary + ${n} worker processes`}`);
    }
    if (s.haproxy !== undefined) {
      const t = threadsOf(s.haproxy.procs[0]?.child.pid);
      shape.push(`haproxy 1 process, ${t} threads (default nbthread)`);
    }
    console.log(`proxies: ${shape.join('; ')}; CPU figures are each proxy's processes together`);
    // Warm-up (JIT, connection pools), not recorded.
    for (const sys of systems) await runWrk(s[sys]!.url, s[sys]!.procs, warmupS);
    for (let r = 0; r < reps; r++) {
      const order = r % 2 === 0 ? systems : [...systems].reverse();
      for (const sys of order) {
        const res = await runWrk(s[sys]!.url, s[sys]!.procs, seconds);
        results[sys].push(res);
        console.log(
          `  rep ${r + 1} ${sys.padEnd(7)} ${k(res.rps)} req/s, p50 ${res.p50Ms.toFixed(2)} ms, p99 ${res.p99Ms.toFixed(2)} ms, ${res.errors}; CPU ${cpuText(res.cpu)}; proxy CPU ${res.proxyUsPerReq.toFixed(1)} µs/req; load ${load()}`,
        );
      }
    }
    for (const sys of systems) await s[sys]!.close();

    const summary: Partial<Record<System, { rps: number; p99: number }>> = {};
    console.log('');
    for (const sys of systems) {
      const rs = results[sys];
      const rps = median(rs.map((x) => x.rps));
      const p50 = median(rs.map((x) => x.p50Ms));
      const p99 = median(rs.map((x) => x.p99Ms));
      const us = median(rs.map((x) => x.proxyUsPerReq));
      summary[sys] = { rps, p99 };
      const lo = Math.min(...rs.map((x) => x.rps));
      const hi = Math.max(...rs.map((x) => x.rps));
      console.log(
        `${sys.padEnd(7)} c=${conc}: ${k(rps)} req/s (runs ${k(lo)}–${k(hi)}), p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, proxy CPU ${us.toFixed(1)} µs/req`,
      );
    }

    if (values['no-kill'] !== true) {
      const kills: string[] = [];
      for (const sys of systems) {
        const st = await setup(sys, dir, true);
        const res = await runWrk(st.url, st.procs, Math.max(seconds, 6), async () => {
          await sleep(3_000);
          st.backends[1]!.child.kill('SIGKILL');
        });
        kills.push(
          `${sys} with backend2 killed 3 s in: ${k(res.rps)} req/s, ${res.errorCount} errors (${res.errors}); load ${load()}`,
        );
        await st.close();
      }
      console.log('');
      for (const l of kills) console.log(l);
    }
    console.log('');
    const otherCores = other.cores();
    console.log(
      `load average at the end ${load()}; other work (CPU not used by this bench's processes) ${otherCores.toFixed(2)} cores on average`,
    );
    if (otherCores > OTHER_WORK_CORES_MAX) {
      console.log(
        `WARNING: other work took ${otherCores.toFixed(2)} cores on average: other work competed, the figures say little`,
      );
    }
    const c = summary.cohort;
    const h = summary.haproxy;
    if (c !== undefined && h !== undefined) {
      console.log(
        `gateway c=${conc}: cohort ${k(c.rps)} req/s (p99 ${c.p99.toFixed(2)} ms), haproxy ${k(h.rps)} req/s (p99 ${h.p99.toFixed(2)} ms), ratio ${(c.rps / h.rps).toFixed(2)}, p99 ratio ${(c.p99 / h.p99).toFixed(2)} (goal: ratio >= 0.80, p99 ratio <= 1.50)`,
      );
    }
  } finally {
    stopping = true;
    for (const c of [...children]) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
