/**
 * The failure detector in real node processes (issue 15): three `cohort node`
 * processes with mutual TLS; every node's detector sees the other two alive
 * (`Node.status`'s `detector` field, what `cohort status --json` prints);
 * after `kill -9` of one, the two others declare it failed.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ProcessCluster } from '../harness/process-cluster.js';
import { waitUntil } from '../harness/wait.js';

let cluster: ProcessCluster | undefined;
afterAll(async () => {
  await cluster?.close();
});

describe('failure detector in node processes', () => {
  it('a killed node is declared failed by the others', async () => {
    cluster = await ProcessCluster.start({ nodes: 3, tls: true });
    const c = cluster;
    await c.waitForLeader();
    const view = async (id: string, of: string): Promise<string | undefined> =>
      (await c.status(id, 2_000))?.detector?.find((m) => m.id === of)?.state;
    for (const id of ['n1', 'n2', 'n3']) {
      for (const of of ['n1', 'n2', 'n3']) {
        if (of === id) continue;
        await waitUntil(`${id} sees ${of} alive`, async () => (await view(id, of)) === 'alive');
      }
    }
    await c.kill('n3');
    for (const id of ['n1', 'n2']) {
      await waitUntil(`${id} sees n3 failed`, async () => (await view(id, 'n3')) === 'failed');
    }
    expect(await view('n1', 'n2')).toBe('alive');
    expect(await view('n2', 'n1')).toBe('alive');
  });
});
