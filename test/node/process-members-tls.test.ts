/**
 * Membership on a secure cluster (the default `cohort up` makes): a node
 * started with `--join` and its own node certificate is added and promoted,
 * `cohort member list/remove` work with the root user's certificate, and a
 * caller without a certificate is refused. Before `cohort member` and
 * `--join` spoke TLS, both failed against every TLS cluster.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MemberList } from '../../src/node/members.js';
import { runCli } from '../harness/cli.js';
import { ProcessCluster, until } from '../harness/process-cluster.js';

const cohort = runCli;

let cluster: ProcessCluster;

beforeAll(async () => {
  cluster = await ProcessCluster.start({ nodes: 3, tls: true });
});

afterAll(async () => {
  await cluster.close();
});

describe('membership on a TLS cluster', () => {
  it('joins with a node certificate, lists and removes with a user certificate, refuses plaintext', async () => {
    await cluster.waitForLeader();
    await cluster.plan('n4');
    const tls = cluster.clientTls;
    expect(tls).toBeDefined();
    const endpoints = cluster
      .endpoints()
      .map((e) => `${e.id}=${e.host}:${e.port}`)
      .join(',');
    const target = [
      '--endpoints',
      endpoints,
      '--cluster-id',
      cluster.clusterId,
      '--ca',
      tls?.ca ?? '',
      '--cert',
      tls?.cert ?? '',
      '--key',
      tls?.key ?? '',
    ];
    cluster.join('n4');
    const list = async (): Promise<MemberList | undefined> => {
      const r = await cohort(['member', 'list', '--json', ...target]);
      return r.code === 0 ? (JSON.parse(r.stdout) as MemberList) : undefined;
    };
    await until('n4 promoted to voter', async () => {
      const l = await list();
      return l?.members.some((m) => m.id === 'n4' && m.role === 'voter') === true ? l : undefined;
    });

    const removed = await cohort(['member', 'remove', 'n4', '--json', ...target]);
    expect(removed.stderr).toBe('');
    expect(removed.code).toBe(0);
    const after = await list();
    expect(after?.members.map((m) => m.id).sort()).toEqual(['n1', 'n2', 'n3']);
    // n4 asks the leader over mTLS with its node certificate, learns it was removed, stops with 0.
    expect(
      await until('n4 stopped after its removal', () => Promise.resolve(cluster.ended('n4'))),
    ).toBe(0);
    expect(cluster.output('n4')).toContain('this node was removed from the cluster');

    // Plaintext against the TLS cluster: refused, and says so.
    const plain = await cohort([
      'member',
      'list',
      '--endpoints',
      endpoints,
      '--cluster-id',
      cluster.clusterId,
      '--insecure',
      '--timeout-ms',
      '2000',
    ]);
    expect(plain.code).not.toBe(0);
    expect(plain.stderr).toMatch(/cohort member list/);
  });
});
