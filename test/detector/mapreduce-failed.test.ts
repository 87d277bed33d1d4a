/**
 * MapReduce reassigns a dead node's task as soon as the failure detector
 * declares the node failed, not when its lease runs out (issue 15): a
 * one-node cluster whose MapReduce leases last ten minutes hands a map task
 * to a worker on node `n2`; `n2` is a member the detector knows but that
 * answers nothing (nothing listens at its address), so the detector suspects
 * it and declares it failed, the leader proposes `nodeLost` for it, and the
 * task goes back to idle while its lease still has minutes to run.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { MapReduceModule } from '../../src/mapreduce/module.js';
import { resolveNodeConfig } from '../../src/node/config.js';
import { startNode } from '../../src/node/node.js';
import type { CohortNode } from '../../src/node/node.js';
import { tempDir } from '../harness/tmp.js';
import { waitUntil } from '../harness/wait.js';
import { freePort } from '../transport/tcp-harness.js';

const leaseMs = 600_000;
const job = fileURLToPath(new URL('../mapreduce/fixtures/behave-job.ts', import.meta.url));
let node: CohortNode | undefined;
afterAll(async () => {
  await node?.close();
});

describe('MapReduce and the failure detector', () => {
  it("a failed node's task is reassigned before its lease would expire", async () => {
    const dir = tempDir('cohort-mr-detector-');
    const input = join(dir, 'in.txt');
    writeFileSync(input, 'a\nb\na\n');
    const config = resolveNodeConfig({
      flags: {
        id: 'n1',
        dataDir: join(dir, 'n1'),
        listen: `127.0.0.1:${await freePort()}`,
        rpc: `127.0.0.1:${await freePort()}`,
        tickMs: '10',
        insecure: true,
      },
      env: {},
    });
    const mr = new MapReduceModule({ leaseMs, workers: 0 });
    node = await startNode(config, { logger: pino({ level: 'silent' }), modules: [mr] });
    await waitUntil('n1 leads', () => node!.raft.isLeader());
    const rt = mr.running!;
    await waitUntil('the job is accepted', async () => {
      try {
        await rt.submit({
          jobId: 'j1',
          module: job,
          splits: [{ file: input, start: 0, end: 6 }],
          reducers: 1,
          output: join(dir, 'out'),
        });
        return true;
      } catch {
        return false; // the leader driver is not ready yet
      }
    });
    const grant = await rt.requestTask({ worker: 'n2:w0', node: 'n2' });
    expect(grant.result.assignment).not.toBeNull();
    const [attempt] = mr.state.core.runningAttempts();
    expect(attempt).toMatchObject({ node: 'n2' });
    const deadline = attempt!.leaseDeadline;
    // n2 joins the detector's view; nothing answers at its address.
    node.members.introduce({ id: 'n2', address: `127.0.0.1:${await freePort()}` });
    const failed = new Promise<void>((resolve) => node!.members.on('failed', () => resolve()));
    await failed;
    await waitUntil('the task is no longer held by n2', () =>
      mr.state.core.runningAttempts().every((a) => a.node !== 'n2'),
    );
    expect(mr.state.core.runningAttempts()).toEqual([]);
    // Reassigned while the lease still had time left: the detector did it, not expireLeases.
    expect(Date.now()).toBeLessThan(deadline);
    // Another worker now gets the task.
    const again = await rt.requestTask({ worker: 'n1:w0', node: 'n1' });
    expect(again.result.assignment).not.toBeNull();
  });
});
