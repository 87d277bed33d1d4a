/**
 * A worker goes from one task to the next with one call and one log entry:
 * its `complete` asks for its next task (completeTask `next`), so on a node
 * with one worker thread only the job's first task is handed out by an
 * `assignTask` entry, and the output is still the sequential run's.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Unpackr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runJob, startEmbeddedCluster } from '../../src/cli/embedded-cluster.js';
import type { EmbeddedCluster } from '../../src/cli/embedded-cluster.js';
import { partFileName } from '../../src/mapreduce/format.js';
import { repoDir } from '../harness/cli.js';
import { tempDir } from '../harness/tmp.js';

let cluster: EmbeddedCluster;

beforeAll(async () => {
  // A long lease: no renewal or expiry entries while the job runs, whatever the load.
  cluster = await startEmbeddedCluster({ workers: 1, insecure: true, leaseMs: 600_000 });
});
afterAll(async () => {
  await cluster.close();
});

const unpackr = new Unpackr({ useRecords: false });

/** The coordinator commands committed after log index `from`, in log order. */
function commandsSince(from: number): Record<string, unknown>[] {
  const raft = cluster.node.raft.inspect();
  const out: Record<string, unknown>[] = [];
  for (const e of raft.entries(from + 1, raft.status().commit)) {
    let d: unknown;
    try {
      d = unpackr.unpack(e.data.subarray());
    } catch {
      continue; // not a module entry (a configuration change, a no-op)
    }
    const entry = d as { module?: unknown; command?: unknown } | null;
    if (entry?.module === 'mapreduce') out.push(entry.command as Record<string, unknown>);
  }
  return out;
}

describe('task hand-off', () => {
  it('hands a worker its next task with its completion: one assignTask for the whole job', async () => {
    const dir = tempDir('cohort-mr-handoff-');
    const input = join(dir, 'in.txt');
    // Four splits of whole lines (a split ends at a line end past splitBytes).
    const w = ['ant', 'bee', 'cat', 'dog', 'eel', 'fox', 'gnu'];
    const x = ['one', 'two', 'six'];
    const text = Array.from({ length: 40 }, (_, i) => `${w[i % 7]} ${x[i % 3]} yes\n`).join('');
    writeFileSync(input, text);
    const from = cluster.node.raft.inspect().status().commit;
    const output = join(dir, 'out');
    const run = await runJob({
      module: join(repoDir, 'examples/mapreduce/wordcount.ts'),
      inputs: [input],
      output,
      reducers: 2,
      splitBytes: 100,
      cluster,
    });
    expect(run.status.status).toBe('done');
    const maps = run.status.progress.maps;
    expect(maps).toBeGreaterThanOrEqual(4);
    const types = commandsSince(from).map((c) => c['type']);
    const count = (t: string): number => types.filter((x) => x === t).length;
    // Every task but the first came with the completion before it.
    expect(count('assignTask')).toBe(1);
    expect(count('completeTask')).toBe(maps + 2);
    const completions = commandsSince(from).filter((c) => c['type'] === 'completeTask');
    expect(completions.every((c) => c['next'] !== undefined)).toBe(true);
    // The words, counted once each.
    const lines = [0, 1]
      .flatMap((p) => readFileSync(join(output, partFileName(p)), 'utf8').split('\n'))
      .filter((l) => l !== '')
      .sort();
    expect(lines).toEqual(
      [
        ...w.map((word, i) => `${word}\t${i < 40 % 7 ? 6 : 5}`),
        ...x.map((word, i) => `${word}\t${i < 40 % 3 ? 14 : 13}`),
        'yes\t40',
      ].sort(),
    );
  });
});
