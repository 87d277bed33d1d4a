/**
 * A probe, not a benchmark: the CPU of a postings job's map and reduce tasks
 * run one after the other in one thread (as a worker thread runs them:
 * engine warmed first), per task and per GiB of input. CPU is
 * `process.cpuUsage()` (every thread of the process: V8's compiler and GC
 * threads included). For deciding what to change in the engine's
 * per-record path; bench/mapreduce.ts gives the figures.
 *
 * ```sh
 * npx tsx bench/postings-probe.ts [rounds=2] [mib=64] [splitMib=8] [reducers=3]   # WARM=0: no warmEngine()
 * node --cpu-prof --import tsx bench/postings-probe.ts 2 64 8 3
 * ```
 *
 * Input: bench/mapreduce.ts's postings input (`$COHORT_MR_BENCH_DIR`,
 * default `$TMPDIR/cohort-mr-bench`, generated if missing, seed 42).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isMainThread, Worker } from 'node:worker_threads';
import { planSplits } from '../src/mapreduce/input.js';
import job from '../examples/mapreduce/postings.js';
import { runMapTask, runReduceTask } from '../src/mapreduce/tasks.js';
import { warmEngine } from '../src/mapreduce/tasks-warm.js';
import { generate } from './mapreduce-data.js';

if (isMainThread && process.env['THREAD'] !== '0') {
  // In a worker thread with a worker's young generation, as the engine runs tasks
  // (worker-pool.ts: 64 MiB); tsx's API loads this file in it, as worker-pool.ts does.
  // (Bundled into plain JavaScript, e.g. by esbuild for readable profiles, it starts itself.)
  const self = import.meta.url;
  const options = {
    argv: process.argv.slice(2),
    // V8 flags are the process's (a worker refuses some, e.g. --trace-gc, which apply to it anyway).
    execArgv: process.execArgv.filter((a) => !a.startsWith('--trace')),
    resourceLimits: { maxYoungGenerationSizeMb: 64 },
  };
  let w: Worker;
  if (self.endsWith('.ts')) {
    const tsxDir = dirname(createRequire(self).resolve('tsx/package.json'));
    const api = pathToFileURL(join(tsxDir, 'dist/esm/api/index.mjs')).href;
    const code = `import(${JSON.stringify(api)}).then((m) => m.tsImport(${JSON.stringify(self)}, ${JSON.stringify(self)}))`;
    w = new Worker(code, { ...options, eval: true });
  } else {
    w = new Worker(new URL(self), options);
  }
  await new Promise((resolve, reject) => w.on('exit', resolve).on('error', reject));
  process.exit(0);
}
const rounds = Number(process.argv[2] ?? 2);
const mib = Number(process.argv[3] ?? 64);
const splitMib = Number(process.argv[4] ?? 8);
const reducers = Number(process.argv[5] ?? 3);
const root = process.env['COHORT_MR_BENCH_DIR'] ?? join(tmpdir(), 'cohort-mr-bench');
const files = generate('postings', join(root, 'input', `postings-${mib}`), mib << 20, 42);
for (const f of files) readFileSync(f); // page cache warm
const splits = await planSplits(files, splitMib << 20);
if (process.env['WARM'] !== '0') await warmEngine();
const dir = mkdtempSync(join(tmpdir(), 'postings-probe-'));
const ms = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1000;
const sum = (a: number[]): number => a.reduce((x, y) => x + y, 0);
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[a.length >> 1] ?? NaN;
const mapSums: number[] = [];
const reduceSums: number[] = [];
let id = 0;
try {
  for (let r = 0; r < rounds; r++) {
    const maps: number[] = [];
    const reduces: number[] = [];
    let spills = 0;
    const runs: string[][] = Array.from({ length: reducers }, () => []);
    const t0 = process.hrtime.bigint() / 1000n;
    for (const split of splits) {
      const c = process.cpuUsage();
      const m = await runMapTask({ job, split, reducers, dir, taskId: `m-${id++}`, attempt: 0 });
      maps.push(ms(process.cpuUsage(c)));
      spills += m.counters.spills;
      for (const run of m.runs) (runs[run.partition] as string[]).push(run.path);
    }
    const t1 = process.hrtime.bigint() / 1000n;
    if (process.env['REDUCE'] !== '0') {
      for (let p = 0; p < reducers; p++) {
        const c = process.cpuUsage();
        await runReduceTask({
          job,
          partition: p,
          runs: runs[p] as string[],
          output: join(dir, `part-r-${r}-${p}`),
          taskId: `r-${id++}`,
          attempt: 0,
        });
        reduces.push(ms(process.cpuUsage(c)));
      }
    }
    const t2 = process.hrtime.bigint() / 1000n;
    // The phases on the monotonic clock in µs, as a --cpu-prof profile's timestamps.
    if (process.env['PHASES'] === '1') console.log(`phases ${t0} ${t1} ${t2}`);
    for (const paths of runs) for (const f of paths) rmSync(f);
    mapSums.push(sum(maps));
    reduceSums.push(sum(reduces));
    if (process.env['QUIET'] !== '1') {
      console.log(
        `round ${r + 1}: map CPU ms ${maps.map((x) => x.toFixed(0)).join(' ')} (sum ${sum(maps).toFixed(0)}); ` +
          `reduce ${reduces.map((x) => x.toFixed(0)).join(' ')} (sum ${sum(reduces).toFixed(0)})` +
          `${spills > 0 ? `; ${spills} spills` : ''}`,
      );
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
// After the first round (the thread warm): CPU ms per round of the map tasks and of the reduces.
const later = (a: number[]): number[] => (a.length > 1 ? a.slice(1) : a);
const m = later(mapSums);
const rd = later(reduceSums);
const total = m.map((x, i) => x + (rd[i] as number));
console.log(
  `map min ${Math.min(...m).toFixed(0)} median ${median(m).toFixed(0)}; ` +
    `reduce min ${Math.min(...rd).toFixed(0)} median ${median(rd).toFixed(0)}; ` +
    `CPU s/GiB min ${((Math.min(...total) * 1.024) / mib).toFixed(1)} median ${((median(total) * 1.024) / mib).toFixed(1)}`,
);
