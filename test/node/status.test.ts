/**
 * The public status lookup (`clusterStatus`, `findLeader` from 'cohort'): a
 * one-node cluster in this process plus an endpoint where nothing listens.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterStatus, findLeader } from '../../src/index.js';
import { isCohortError } from '../../src/lib/errors.js';
import { resolveNodeConfig } from '../../src/node/config.js';
import { startNode } from '../../src/node/node.js';
import type { CohortNode } from '../../src/node/node.js';
import { tempDir } from '../harness/tmp.js';
import { waitUntil } from '../harness/wait.js';
import { freePort } from '../transport/tcp-harness.js';

let node: CohortNode;
let live: string;
let dead: string;

beforeAll(async () => {
  const rpc = await freePort();
  node = await startNode(
    resolveNodeConfig({
      flags: {
        id: 'n1',
        dataDir: tempDir('cohort-status-'),
        listen: `127.0.0.1:${await freePort()}`,
        rpc: `127.0.0.1:${rpc}`,
        tickMs: '5',
        insecure: true,
      },
      env: {},
    }),
    { logger: pino({ level: 'silent' }) },
  );
  live = `n1=127.0.0.1:${rpc}`;
  dead = `n2=127.0.0.1:${await freePort()}`;
  await waitUntil('the node to lead', () => node.raft.isLeader());
});

afterAll(async () => {
  await node.close();
});

describe('clusterStatus and findLeader', () => {
  it('report each endpoint in order, the leader, and a node that does not answer', async () => {
    // Generous deadlines (the node may be slow under load); a dead endpoint waits them out.
    const [s, leader] = await Promise.all([
      clusterStatus({ endpoints: [live, dead], timeoutMs: 10_000 }),
      findLeader({ endpoints: [dead, live], timeoutMs: 10_000 }),
    ]);
    expect(s.nodes.map((n) => [n.id, n.ok])).toEqual([
      ['n1', true],
      ['n2', false],
    ]);
    const [first] = s.nodes;
    expect(first?.ok === true && first.status.role).toBe('leader');
    expect(s.summary).toMatchObject({ leader: 'n1', up: 1, total: 2 });
    expect(s.summary.term).toBeGreaterThan(0);

    expect(leader).toEqual({
      id: 'n1',
      term: s.summary.term,
      host: '127.0.0.1',
      port: Number(live.split(':')[1]),
    });
  });

  it('find no leader when no node answers', async () => {
    expect(await findLeader({ endpoints: [dead], timeoutMs: 500 })).toBeNull();
  });

  it('refuse an endpoint that does not parse', async () => {
    const err = await clusterStatus({ endpoints: ['127.0.0.1:7201'] }).catch((e: unknown) => e);
    expect(isCohortError(err) && err.code).toBe('INVALID_ARGUMENT');
  });
});
