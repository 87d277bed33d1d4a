/**
 * MapReduce on real node processes, modelled on the classic MapReduce lab's
 * tests: three `cohort node` processes (2 worker threads each, 3 s leases)
 * run jobs submitted over RPC (and through the `cohort mr` CLI); outputs are
 * compared byte for byte with the sequential reference runner. Then the
 * faults: worker threads that crash or stall, the Raft leader killed with
 * `kill -9` mid-map and again mid-reduce, and a worker node killed after its
 * maps finished but before the reducers fetched their output.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobOptions, JobStatus, TaskInfo } from '../../src/mapreduce/core/types.js';
import { MapReduceClient, prepareJob } from '../../src/mapreduce/client.js';
import { loadJob } from '../../src/mapreduce/job.js';
import { runSequential } from '../../src/mapreduce/sequential.js';
import { repoDir as repo, runCli, startCli } from '../harness/cli.js';
import { ProcessCluster } from '../harness/process-cluster.js';

const labJob = fileURLToPath(new URL('./fixtures/lab-job.ts', import.meta.url));
const noReduceJob = fileURLToPath(new URL('./fixtures/no-reduce-job.ts', import.meta.url));
const wordcount = join(repo, 'examples/mapreduce/wordcount.ts');
const invertedIndex = join(repo, 'examples/mapreduce/inverted-index.ts');
const dir = mkdtempSync(join(tmpdir(), 'cohort-mr-proc-'));

const WORDS = (
  'alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november ' +
  'oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu the of and a'
).split(' ');

/** Writes `files` deterministic text files of `lines` lines into a fresh directory. */
function makeInput(name: string, files: number, lines: number, seed = 1): string {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  let x = seed;
  for (let f = 0; f < files; f++) {
    const out: string[] = [];
    for (let l = 0; l < lines; l++) {
      const n = 1 + (l % 9);
      const ws: string[] = [];
      for (let i = 0; i < n; i++) {
        x = (x * 1103515245 + 12345) % 2 ** 31;
        ws.push(WORDS[(x >>> 12) % WORDS.length] ?? 'x');
      }
      out.push(ws.join(' '));
    }
    writeFileSync(join(d, `doc-${String(f).padStart(2, '0')}.txt`), `${out.join('\n')}\n`);
  }
  return d;
}

/** The sequential runner's output files, read back. */
async function reference(
  module: string,
  input: string,
  reducers: number,
  params: Record<string, string> = {},
): Promise<Map<string, string>> {
  const out = join(dir, `ref-${Math.random().toString(36).slice(2)}`);
  const job = await loadJob(module);
  await runSequential(job, [join(input, '*.txt')], { outputDir: out, reducers, params });
  return readOutput(out);
}

function readOutput(out: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const f of readdirSync(out).sort()) {
    if (f.startsWith('part-r-')) files.set(f, readFileSync(join(out, f), 'utf8'));
  }
  return files;
}

interface LogLine {
  kind: string;
  what: string;
  pid: number;
  thread: number;
  start: number;
  end: number;
}

function readLog(path: string): LogLine[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as LogLine);
}

/** True if two entries of `kind` from different workers overlap in time. */
function overlapped(lines: readonly LogLine[], kind: string): boolean {
  const ls = lines.filter((l) => l.kind === kind);
  return ls.some((a) =>
    ls.some(
      (b) => (a.pid !== b.pid || a.thread !== b.thread) && a.start < b.end && b.start < a.end,
    ),
  );
}

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Follows a job's tasks while it runs (a finished job keeps only its status):
 * the latest view of each task, polled every 50 ms (or as soon as the last
 * poll answered); a re-run of a task takes far longer than that, so none is missed.
 */
function watchTasks(jobId: string): { stop(): Promise<TaskInfo[]> } {
  const latest = new Map<string, TaskInfo>();
  let stopped = false;
  const loop = (async () => {
    // Its own client: the test's is closed and replaced around kills.
    const own = await MapReduceClient.connect(cluster.nodes, cluster.clusterId);
    try {
      while (!stopped) {
        const ts = await own
          // Generous: a poll that gave up on a starved node could miss a whole re-run.
          .call((stub) => stub.tasks({ jobId }, { timeoutMs: 5_000 }), 10_000)
          .then((r) => r.tasks)
          .catch(() => [] as TaskInfo[]);
        for (const t of ts) {
          const key = `${t.task.kind}-${t.task.index}`;
          const old = latest.get(key);
          if (old === undefined || t.attempts >= old.attempts) latest.set(key, t);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      await own.close();
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      return [...latest.values()];
    },
  };
}

let cluster: ProcessCluster;
let client: MapReduceClient;

async function reconnect(): Promise<void> {
  await client?.close();
  client = await MapReduceClient.connect(cluster.nodes, cluster.clusterId);
}

/** Prepares and submits a job; returns its id and output directory. */
async function submit(
  module: string,
  input: string,
  reducers: number,
  params: Record<string, string> = {},
  options: JobOptions = {},
): Promise<{ jobId: string; output: string }> {
  const output = join(dir, `out-${Math.random().toString(36).slice(2)}`);
  const prepared = await prepareJob({
    module,
    inputs: [join(input, '*.txt')],
    output,
    reducers,
    params,
    options,
  });
  const r = await client.submit(prepared.request);
  return { jobId: r.jobId, output };
}

function endpoints(): string {
  return cluster
    .endpoints()
    .filter((e) => cluster.running(e.id))
    .map((e) => `${e.id}=${e.host}:${e.port}`)
    .join(',');
}

beforeAll(async () => {
  process.env['COHORT_WORKERS'] = '2';
  // Short leases keep fault tests quick; 3 s leaves room for a starved CI machine's renewals.
  process.env['COHORT_MR_LEASE_MS'] = '3000';
  cluster = await ProcessCluster.start({ nodes: 3, dir: join(dir, 'cluster'), tickMs: 20 });
  await cluster.waitForLeader();
  await reconnect();
});

afterAll(async () => {
  await client?.close();
  await cluster?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('MapReduce on three node processes', () => {
  it('word count through the CLI equals the sequential run byte for byte, complete when the CLI exits', async () => {
    const input = makeInput('wc', 8, 400);
    const expected = await reference(wordcount, input, 3);
    const output = join(dir, 'wc-out');
    const r = await runCli([
      'mr',
      'run',
      wordcount,
      '--input',
      join(input, '*.txt'),
      '--output',
      output,
      '--reducers',
      '3',
      '--endpoints',
      endpoints(),
      '--cluster-id',
      cluster.clusterId,
    ]);
    expect(r.stderr).toContain('done · maps 8/8 · reduces 3/3');
    expect(r.code).toBe(0);
    // Early exit: when the CLI has exited, every output file is there, complete.
    expect(readOutput(output)).toEqual(expected);
    for (const n of cluster.nodes) expect(cluster.running(n.id)).toBe(true);
    const list = await runCli([
      'mr',
      'status',
      '--endpoints',
      endpoints(),
      '--cluster-id',
      cluster.clusterId,
    ]);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/wordcount-\S+\s+wordcount\s+done\s+8\/8\s+3\/3/);
  });

  it('inverted index equals the sequential run byte for byte', async () => {
    const input = makeInput('ii', 6, 300, 7);
    const expected = await reference(invertedIndex, input, 2);
    const { jobId, output } = await submit(invertedIndex, input, 2);
    const s = await client.wait(jobId);
    expect(s.status).toBe('done');
    expect(readOutput(output)).toEqual(expected);
  });

  it('map parallelism and reduce parallelism: workers run tasks at the same time', async () => {
    const input = makeInput('par', 6, 50, 3);
    const log = join(dir, 'par.log');
    const params = { log, mapSleepMs: '600', reduceSleepMs: '600' };
    const { jobId, output } = await submit(labJob, input, 4, params, { backupTasks: false });
    expect((await client.wait(jobId)).status).toBe('done');
    const lines = readLog(log);
    expect(overlapped(lines, 'map')).toBe(true);
    expect(overlapped(lines, 'reduce')).toBe(true);
    expect(readOutput(output)).toEqual(await reference(labJob, input, 4));
  });

  it('job count: without failures every map task runs exactly once', async () => {
    const input = makeInput('count', 8, 40, 5);
    const log = join(dir, 'count.log');
    const { jobId } = await submit(labJob, input, 2, { log }, { backupTasks: false });
    const s = await client.wait(jobId);
    expect(s.status).toBe('done');
    const maps = readLog(log).filter((l) => l.kind === 'map');
    expect(maps.map((l) => l.what).sort()).toEqual(
      readdirSync(input)
        .filter((f) => f.endsWith('.txt'))
        .sort(),
    );
    expect(s.counters.mapAttempts).toBe(8);
    expect(s.counters.reExecutions).toBe(0);
  });

  it('crash test: a third of the map and reduce tasks exit their thread or stall it for seconds; output still equals the sequential run', async () => {
    const input = makeInput('crash', 6, 60, 11);
    const { jobId, output } = await submit(
      labJob,
      input,
      3,
      { crash: '1', stallMs: '6000', markers: join(dir, 'crash-marker') },
      { maxTaskFailures: 30 },
    );
    const s = await client.wait(jobId);
    expect(s.error).toBeUndefined();
    expect(s.status).toBe('done');
    // At least the sure ones: a map exit, a map stall, a reduce exit, a reduce stall.
    expect(s.counters.failedAttempts).toBeGreaterThanOrEqual(4);
    expect(readOutput(output)).toEqual(await reference(labJob, input, 3));
  });

  it('a straggling map gets a backup copy near the end of the map phase; the first to finish wins', async () => {
    const input = makeInput('straggler', 6, 40, 23);
    // Slow (60 ms a line, a minute in all) until its backup copy starts, then fast.
    writeFileSync(join(input, 'doc-zz-slow.txt'), 'slow file line\n'.repeat(1000));
    const params = {
      recordSleepMs: '60',
      slowFile: 'slow',
      slowOnce: join(dir, 'straggler-marker'),
    };
    const { jobId, output } = await submit(labJob, input, 2, params, {
      backupTasks: true,
      backupAfterMs: 1_000,
    });
    const s = await client.wait(jobId);
    expect(s.status).toBe('done');
    expect(s.counters.backupAttempts).toBeGreaterThanOrEqual(1);
    expect(readOutput(output)).toEqual(await reference(labJob, input, 2));
  });

  it('bad input: a reducer throwing on one key fails the job with a clear message and leaves no output', async () => {
    const input = makeInput('bad', 3, 50, 13);
    const output = join(dir, 'bad-out');
    const r = await runCli([
      'mr',
      'run',
      labJob,
      '--input',
      join(input, '*.txt'),
      '--output',
      output,
      '--reducers',
      '3',
      '--param',
      'failKey=tango',
      '--endpoints',
      endpoints(),
      '--cluster-id',
      cluster.clusterId,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('reduce threw on key "tango"');
    expect(r.stderr).toContain('refusing key tango');
    expect(existsSync(output)).toBe(false);
  });

  it('the cluster removes a failed job’s output even when the submitting client is killed mid-reduce', async () => {
    const input = makeInput('orphan', 4, 60, 29);
    const output = join(dir, 'orphan-out');
    const cli = startCli([
      'mr',
      'run',
      labJob,
      '--input',
      join(input, '*.txt'),
      '--output',
      output,
      '--reducers',
      '4',
      '--param',
      'failKey=tango',
      // The failing reduce is slow to fail, so the other reduces write their part files first.
      '--param',
      'failSleepMs=700',
      '--set',
      'maxTaskFailures=3',
      '--endpoints',
      endpoints(),
      '--cluster-id',
      cluster.clusterId,
    ]);
    const job = await until('the job reducing', async () => {
      const j = (await client.list()).find((x) => x.output === output);
      return j?.status === 'reducing' ? j : undefined;
    });
    cli.child.kill('SIGKILL');
    await cli.exit;
    const s = await client.wait(job.jobId);
    expect(s.status).toBe('failed');
    expect(s.error).toContain('refusing key tango');
    // Part files were written before the job failed: there was output to remove.
    expect(s.progress.reducesDone).toBeGreaterThan(0);
    // The leader removes the files first, then commits outputRemoved: wait for both.
    await until(
      'the output removed and recorded',
      async () =>
        !existsSync(output) && (await client.status(job.jobId)).outputRemoved === true
          ? true
          : undefined,
      30_000,
    );
    // mr status shows why it failed, without --json.
    const st = await runCli([
      'mr',
      'status',
      job.jobId,
      '--endpoints',
      endpoints(),
      '--cluster-id',
      cluster.clusterId,
    ]);
    expect(st.code).toBe(0);
    expect(st.stdout).toMatch(new RegExp(`^${job.jobId}\\s+lab-job\\s+failed\\s`, 'm'));
    expect(st.stdout).toContain(`${job.jobId} failed: reduce task`);
    expect(st.stdout).toContain('refusing key tango');
  });

  it('cohort mr cancel stops a running job, and the cluster removes its output', async () => {
    // About 3 s per map, 12 maps on 6 threads: it is still running when cancelled.
    const input = makeInput('cancel', 12, 60, 31);
    const { jobId, output } = await submit(labJob, input, 2, { recordSleepMs: '50' });
    await until('maps under way', async () => {
      const s = await client.status(jobId);
      return s.progress.mapsRunning >= 1 ? s : undefined;
    });
    const r = await runCli([
      'mr',
      'cancel',
      jobId,
      '--endpoints',
      endpoints(),
      '--cluster-id',
      cluster.clusterId,
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`job ${jobId} cancelled`);
    const s = await client.status(jobId);
    expect(s.status).toBe('cancelled');
    await until(
      'the output removed',
      () => Promise.resolve(existsSync(output) ? undefined : true),
      30_000,
    );
    // Cancelling it again: refused (it is over), exit 1 (the CLI's exit-code table: 2 is bad usage).
    const again = await runCli([
      'mr',
      'cancel',
      jobId,
      '--endpoints',
      endpoints(),
      '--cluster-id',
      cluster.clusterId,
    ]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('already cancelled');
  });

  it('bad input: missing reduce export, missing input and an unwritable output dir are refused before submitting', async () => {
    const input = makeInput('refused', 1, 5);
    const target = ['--endpoints', endpoints(), '--cluster-id', cluster.clusterId];
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    const run = (module: string, inputGlob: string, output: string): ReturnType<typeof runCli> =>
      runCli(['mr', 'run', module, '--input', inputGlob, '--output', output, ...target]);
    const [noReduce, noInput, unwritable] = await Promise.all([
      run(noReduceJob, join(input, '*.txt'), join(dir, 'r1')),
      run(wordcount, join(dir, 'nowhere', '*.txt'), join(dir, 'r2')),
      run(wordcount, join(input, '*.txt'), join(file, 'out')),
    ]);
    expect(noReduce.code).toBe(2);
    expect(noReduce.stderr).toContain('does not export a reduce function');
    expect(noInput.code).toBe(2);
    expect(noInput.stderr).toMatch(/nowhere/);
    expect(unwritable.code).toBe(2);
    expect(unwritable.stderr).toContain('cannot be created');
    // Over RPC, a job naming a relative path is refused (each node would resolve it its own way).
    const prepared = await prepareJob({
      module: wordcount,
      inputs: [input],
      output: join(dir, 'r3'),
    });
    await expect(
      client.submit({ ...prepared.request, module: 'examples/mapreduce/wordcount.ts' }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    for (const d of ['r1', 'r2']) expect(existsSync(join(dir, d))).toBe(false);
  });

  it('coordinator failover: kill -9 of the leader mid-map and again mid-reduce; correct output, completed tasks not re-run', async () => {
    const input = makeInput('failover', 10, 25, 17);
    // One slow file holds the map phase open until the first kill is done (1000
    // lines x 30 ms at most), however busy the machine; reduces sleep on their first key.
    writeFileSync(join(input, 'doc-zz-slow.txt'), 'slow file line\n'.repeat(1000));
    const mapsHeld = join(dir, 'failover-release');
    const params = {
      recordSleepMs: '30',
      slowFile: 'slow',
      slowUntil: mapsHeld,
      reduceSleepMs: '1000',
    };
    const { jobId, output } = await submit(labJob, input, 4, params, { backupTasks: false });
    const status = (): Promise<JobStatus> => client.status(jobId);
    const watch = watchTasks(jobId);

    // Mid-map: some maps done, some not.
    await until('maps under way', async () => {
      const s = await status();
      return s.progress.mapsDone >= 2 && s.progress.mapsDone < s.progress.maps ? s : undefined;
    });
    const first = await cluster.waitForLeader();
    const before1 = await client.tasks(jobId);
    await cluster.kill(first.id);
    await cluster.restart(first.id);
    const second = await cluster.waitForLeader({ notId: first.id, minTerm: first.term + 1 });
    writeFileSync(mapsHeld, '');
    await reconnect();

    // Mid-reduce: some reduces done or running, not all.
    await until('reduces under way', async () => {
      const s = await status();
      return s.status === 'reducing' &&
        s.progress.reducesRunning > 0 &&
        s.progress.reducesDone < s.progress.reduces
        ? s
        : undefined;
    });
    const leader2 = await cluster.waitForLeader();
    const before2 = await client.tasks(jobId);
    await cluster.kill(leader2.id);
    await cluster.restart(leader2.id);
    await cluster.waitForLeader({
      notId: leader2.id,
      minTerm: Math.max(second.term, leader2.term) + 1,
    });
    await reconnect();

    const s = await client.wait(jobId);
    const after = await watch.stop();
    expect(s.status).toBe('done');
    expect(readOutput(output)).toEqual(await reference(labJob, input, 4));
    const attempts = (ts: readonly TaskInfo[], t: TaskInfo): number | undefined =>
      ts.find((x) => x.task.kind === t.task.kind && x.task.index === t.task.index)?.attempts;
    // A task committed before a kill is not run again, unless its output lived on a killed node.
    const killed = new Set([first.id, leader2.id]);
    const doneBefore = [...before1, ...before2].filter(
      (t) => t.state === 'done' && (t.task.kind === 'reduce' || !killed.has(t.node ?? '')),
    );
    expect(doneBefore.length).toBeGreaterThan(0);
    for (const t of doneBefore) expect(attempts(after, t)).toBe(t.attempts);
  });

  it('a worker node killed after its maps finished, before the reducers fetched them: those maps are re-run', async () => {
    const input = makeInput('lost', 6, 40, 19);
    // One slow file keeps the map phase open after the others are done: until
    // the test releases it (1000 lines x 40 ms at most), however busy the machine.
    writeFileSync(join(input, 'doc-zz-slow.txt'), 'slow file line\n'.repeat(1000));
    const release = join(dir, 'lost-release');
    // Every map takes a moment (so maps spread over the nodes); the slow one takes seconds.
    const params = {
      recordSleepMs: '40',
      slowFile: 'slow',
      slowUntil: release,
      mapSleepMs: '400',
    };
    const { jobId, output } = await submit(labJob, input, 2, params, { backupTasks: false });
    const watch = watchTasks(jobId);
    const leader = await cluster.waitForLeader();
    const tasks = await until('all maps but the slow one done', async () => {
      const ts = await client.tasks(jobId);
      const maps = ts.filter((t) => t.task.kind === 'map');
      const done = maps.filter((t) => t.state === 'done');
      return done.length === maps.length - 1 ? ts : undefined;
    });
    const holders = new Map<string, TaskInfo[]>();
    for (const t of tasks) {
      if (
        t.task.kind === 'map' &&
        t.state === 'done' &&
        t.node !== undefined &&
        t.node !== leader.id
      ) {
        holders.set(t.node, [...(holders.get(t.node) ?? []), t]);
      }
    }
    const [victim, lost] = [...holders].sort((a, b) => b[1].length - a[1].length)[0] ?? [];
    expect(victim).toBeDefined();
    await cluster.kill(victim as string);
    writeFileSync(release, '');
    await reconnect();
    const s = await client.wait(jobId);
    const after = await watch.stop();
    expect(s.status).toBe('done');
    expect(readOutput(output)).toEqual(await reference(labJob, input, 2));
    for (const t of lost ?? []) {
      const now = after.find((x) => x.task.kind === 'map' && x.task.index === t.task.index);
      expect(now?.attempts).toBeGreaterThan(t.attempts);
      expect(now?.node).not.toBe(victim);
    }
    expect(s.counters.reExecutions).toBeGreaterThanOrEqual(lost?.length ?? 1);
  });
});
