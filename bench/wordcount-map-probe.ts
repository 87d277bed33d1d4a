/**
 * A probe, not a benchmark: the CPU of word-count map tasks one after the
 * other in one thread (as a worker thread runs them: engine warmed first,
 * the thread's dictionary and buffers kept from task to task), printed per
 * task, and the best loop's CPU per file over the same files
 * (bench/wordcount-loop.ts, `bytes`, one table for all of them, as a loop
 * thread keeps one). CPU is `process.cpuUsage()` (every thread of the
 * process: V8's compiler and GC threads included). For deciding what to
 * change in the map task; bench/wordcount.ts gives the figures.
 *
 * ```sh
 * npx tsx bench/wordcount-map-probe.ts [rounds=4] [files=4]   # LOOP=0: tasks only; WARM=0: no warmEngine()
 * node --cpu-prof --import tsx bench/wordcount-map-probe.ts 4 4
 * ```
 *
 * Input: the word-count corpus (`$COHORT_WC_DIR/corpus`, default
 * `$TMPDIR/cohort-wordcount/corpus`; `npm run bench:wordcount` makes it).
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadJob } from '../src/mapreduce/job.js';
import { runMapTask } from '../src/mapreduce/tasks.js';
import { warmEngine } from '../src/mapreduce/tasks-warm.js';
import { countFiles } from './wordcount-loop.js';

const rounds = Number(process.argv[2] ?? 4);
const nfiles = Number(process.argv[3] ?? 4);
const corpus = join(process.env['COHORT_WC_DIR'] ?? join(tmpdir(), 'cohort-wordcount'), 'corpus');
const files = Array.from({ length: nfiles }, (_, i) =>
  join(corpus, `part-${String(i).padStart(2, '0')}.txt`),
);
for (const f of files) readFileSync(f); // page cache warm
const job = await loadJob(new URL('../examples/mapreduce/wordcount.ts', import.meta.url).pathname);
if (process.env['WARM'] !== '0') await warmEngine();
const dir = mkdtempSync(join(tmpdir(), 'wc-map-probe-'));
const ms = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1000;
const tasks: number[] = [];
const loops: number[] = [];
let id = 0;
try {
  for (let r = 0; r < rounds; r++) {
    for (const f of files) {
      const c = process.cpuUsage();
      await runMapTask({
        job,
        split: { file: f, start: 0, end: statSync(f).size },
        reducers: 2,
        dir,
        taskId: `m-${id++}`,
        attempt: 0,
      });
      tasks.push(ms(process.cpuUsage(c)));
    }
    if (process.env['LOOP'] !== '0') {
      const c = process.cpuUsage();
      countFiles('bytes', files, new Int32Array(1));
      const t = ms(process.cpuUsage(c)) / files.length;
      for (let i = 0; i < files.length; i++) loops.push(t);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[a.length >> 1] ?? NaN;
const line = (name: string, a: number[]): string => {
  const later = a.slice(files.length); // after the first round: the thread warm
  return `${name} CPU ms ${a.map((x) => x.toFixed(0)).join(' ')}; after round 1: median ${median(later).toFixed(1)}, min ${Math.min(...later).toFixed(1)}`;
};
console.log(line('map task', tasks));
if (loops.length > 0) console.log(line('loop/file', loops));
