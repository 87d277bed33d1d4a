/** Local cluster helpers: the port plan, --endpoints parsing, and the summary of a poll. */
import { describe, expect, it } from 'vitest';
import { parseEndpoints, planCluster, summarize, summaryLine } from '../../src/node/cluster.js';
import type { PollResult } from '../../src/node/cluster.js';
import type { NodeStatus } from '../../src/node/node-service.js';

function st(id: string, role: string, term: number, commitIndex: number): PollResult {
  const status: NodeStatus = {
    id,
    clusterId: 'c',
    role,
    term,
    leader: role === 'leader' ? id : null,
    commitIndex,
    appliedIndex: commitIndex,
    lastIndex: commitIndex,
    snapshotIndex: 0,
    members: ['n1', 'n2', 'n3'],
    learners: [],
    revision: 0,
    state: 'running',
    pid: 1,
    uptimeMs: 0,
  };
  return { id, ok: true, status };
}

describe('planCluster', () => {
  it('puts raft on base+i and RPC on base+100+i, data under dir/n<i>', () => {
    const plan = planCluster({ nodes: 3, basePort: 7100, dir: '/x' });
    expect(plan.nodes.map((n) => [n.id, n.listen.port, n.rpc.port, n.dataDir])).toEqual([
      ['n1', 7101, 7201, '/x/n1'],
      ['n2', 7102, 7202, '/x/n2'],
      ['n3', 7103, 7203, '/x/n3'],
    ]);
  });

  it.each([
    [{ nodes: 0, basePort: 7100 }, /--nodes/],
    [{ nodes: 10, basePort: 7100 }, /--nodes/],
    [{ nodes: 3, basePort: 65500 }, /--base-port/],
  ])('refuses %o', (o, message) => {
    expect(() => planCluster({ ...o, dir: '/x' })).toThrow(message);
  });
});

describe('parseEndpoints', () => {
  it('parses id=host:port pairs', () => {
    expect(parseEndpoints('n1=127.0.0.1:7201, n2=10.0.0.2:7202').map((n) => [n.id, n.rpc])).toEqual(
      [
        ['n1', { host: '127.0.0.1', port: 7201 }],
        ['n2', { host: '10.0.0.2', port: 7202 }],
      ],
    );
  });

  it.each(['', 'n1', '=127.0.0.1:1', 'n1=127.0.0.1', 'n1=127.0.0.1:70000'])(
    'refuses %j',
    (text) => {
      expect(() => parseEndpoints(text)).toThrow(/endpoints/);
    },
  );
});

describe('summarize', () => {
  it('takes the leader of the highest term and its commit index', () => {
    const s = summarize([
      st('n1', 'leader', 2, 5), // a deposed leader that has not heard of term 3 yet
      st('n2', 'leader', 3, 7),
      { id: 'n3', ok: false, error: 'TIMEOUT' },
    ]);
    expect(s).toEqual({ leader: 'n2', term: 3, commitIndex: 7, revision: 0, up: 2, total: 3 });
    expect(summaryLine(s)).toBe('leader n2 · term 3 · commit 7 · revision 0 · 2/3 up');
  });

  it('reports no leader when the highest term has none', () => {
    const s = summarize([st('n1', 'leader', 2, 5), st('n2', 'candidate', 3, 4)]);
    expect([s.leader, s.term, s.commitIndex]).toEqual([null, 3, 5]);
  });

  it('handles nobody answering', () => {
    const s = summarize([{ id: 'n1', ok: false, error: 'UNAVAILABLE' }]);
    expect(s).toMatchObject({ leader: null, term: 0, commitIndex: 0, up: 0, total: 1 });
  });
});
