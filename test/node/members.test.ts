/**
 * Cluster membership on real nodes in one process (issue 15): a node joins
 * with --join and is promoted once caught up; --learner stays a learner
 * until `promote`; removing the leader hands leadership over first; a joined
 * node restarts with neither --join nor --peers; SIGTERM's hand-over
 * (close({ handOff })) leaves a leader elected without an election timeout.
 * And the address book's replicated state: bad commands change nothing,
 * snapshots round-trip and report what changed.
 */
import { Packr } from 'msgpackr';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeKvEntry, encodeModuleEntry } from '../../src/host/kv-state-machine.js';
import { kvKey } from '../../src/kv/core/bytes.js';
import { isCohortError } from '../../src/lib/errors.js';
import { nodeId } from '../../src/lib/ids.js';
import { limits } from '../../src/lib/limits.js';
import { resolveNodeConfig } from '../../src/node/config.js';
import type { NodeConfig } from '../../src/node/config.js';
import { memberTable } from '../../src/cli/member-command.js';
import { AddressBook, callLeader, MEMBERS_MODULE } from '../../src/node/members.js';
import type { MemberList, MemberRecord } from '../../src/node/members.js';
import { startNode } from '../../src/node/node.js';
import type { CohortNode } from '../../src/node/node.js';
import { freePort } from '../transport/tcp-harness.js';
import { tempDir } from '../harness/tmp.js';

const silent = pino({ level: 'silent' });
const open = new Set<CohortNode>();
afterEach(async () => {
  await Promise.allSettled([...open].map((c) => c.close()));
  open.clear();
});

async function config(
  id: string,
  o: {
    join?: NodeConfig;
    learner?: boolean;
    dataDir?: string;
    listen?: string;
    rpc?: string;
    electionTicks?: number;
  } = {},
): Promise<NodeConfig> {
  return resolveNodeConfig({
    flags: {
      id,
      dataDir: o.dataDir ?? tempDir('cohort-members-'),
      listen: o.listen ?? `127.0.0.1:${await freePort()}`,
      rpc: o.rpc ?? `127.0.0.1:${await freePort()}`,
      tickMs: '10',
      workers: '0',
      insecure: 'true',
      ...(o.electionTicks === undefined ? {} : { electionTicks: `${o.electionTicks}` }),
      ...(o.join === undefined
        ? {}
        : { join: `${o.join.id}=${o.join.rpc.host}:${o.join.rpc.port}` }),
      ...(o.learner === true ? { learner: 'true' } : {}),
    },
    env: {},
  });
}

async function start(c: NodeConfig): Promise<CohortNode> {
  const node = await startNode(c, { logger: silent });
  open.add(node);
  return node;
}

async function stop(node: CohortNode, handOff = false): Promise<void> {
  await node.close({ handOff });
  open.delete(node);
}

async function until<T>(what: string, f: () => T | undefined | false): Promise<T> {
  for (let i = 0; i < 1000; i++) {
    const v = f();
    if (v !== undefined && v !== false) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`not reached: ${what}`);
}

const roles = (n: CohortNode): { voters: string[]; learners: string[] } => {
  const c = n.raft.status().config;
  return { voters: [...c.voters].sort(), learners: [...c.learners].sort() };
};

const endpoint = (n: CohortNode): { id: string; rpc: NodeConfig['rpc'] } => ({
  id: n.config.id,
  rpc: n.config.rpc,
});

describe('membership on running nodes', () => {
  it('joins, promotes, keeps a learner, removes the leader after handing over, restarts without --peers', async () => {
    const n1 = await start(await config('n1'));
    await until('n1 leads', () => n1.raft.isLeader());
    // Writes before the others join: they must reach the newcomers (by log or snapshot).
    for (let i = 0; i < 20; i++) {
      await n1.raft.propose(
        encodeKvEntry({ command: { type: 'put', key: kvKey(`k${i}`), value: kvKey(`v${i}`) } }),
      );
    }
    expect(await n1.raft.compactNow()).toBe(true); // n2 and n3 catch up from a snapshot

    const c2 = await config('n2', { join: n1.config });
    const n2 = await start(c2);
    const joined = await (n2.joined as Promise<MemberList>);
    expect(joined.members.map((m) => m.id)).toContain('n2');
    // Promoted by the leader once caught up.
    await until('n2 voter', () => roles(n1).voters.includes('n2'));

    const n3 = await start(await config('n3', { join: n2.config, learner: true }));
    await n3.joined;
    await until('n3 learner everywhere', () =>
      [n1, n2, n3].every((n) => roles(n).learners.includes('n3')),
    );
    // --learner: still a learner several duty periods later.
    await new Promise((r) => setTimeout(r, 600));
    expect(roles(n1)).toEqual({ voters: ['n1', 'n2'], learners: ['n3'] });

    const eps = [endpoint(n3)];
    const promoted = await callLeader(eps, 'cohort-local', (m, timeoutMs) =>
      m.promote({ id: 'n3' }, { timeoutMs }),
    );
    expect(promoted.members.filter((m) => m.role === 'voter').map((m) => m.id)).toEqual([
      'n1',
      'n2',
      'n3',
    ]);

    // Removing the leader: it hands over first, and the new leader removes it.
    const leaderId = n1.raft.leaderId();
    expect(leaderId).toBe('n1');
    const removed = await callLeader(eps, 'cohort-local', (m, timeoutMs) =>
      m.remove({ id: 'n1' }, { timeoutMs }),
    );
    expect(removed.node).not.toBe('n1');
    expect(removed.members.map((m) => m.id)).toEqual(['n2', 'n3']);
    await until('n1 gone everywhere', () =>
      [n2, n3].every(
        (n) => roles(n).voters.join() === 'n2,n3' && n.book.get(nodeId('n1')) === undefined,
      ),
    );
    // n1 learns it was removed (the leader lists it no more) without being told.
    let told: MemberList | undefined;
    void n1.removed.then((l) => (told = l));
    const list1 = await until('n1 learns it was removed', () => told);
    expect(list1.members.map((m) => m.id)).toEqual(['n2', 'n3']);
    await stop(n1);

    // n2 restarts with neither --join nor --peers: its log has the members and their addresses.
    await stop(n2);
    const n2b = await start(
      resolveNodeConfig({
        flags: {
          id: 'n2',
          dataDir: c2.dataDir,
          listen: `${c2.listen.host}:${c2.listen.port}`,
          rpc: `${c2.rpc.host}:${c2.rpc.port}`,
          tickMs: '10',
          workers: '0',
          insecure: 'true',
        },
        env: {},
      }),
    );
    expect(n2b.joined).toBeNull();
    await until('a leader after the restart', () =>
      [n2b, n3].some((n) => n.raft.isLeader()) ? true : undefined,
    );
    const list = await callLeader([endpoint(n2b)], 'cohort-local', (m, timeoutMs) =>
      m.list({}, { timeoutMs }),
    );
    expect(n2b.status().revision).toBe(20);
    expect(list.members.map((m) => [m.id, m.role])).toEqual([
      ['n2', 'voter'],
      ['n3', 'voter'],
    ]);
  });

  it('a leader closed with handOff hands leadership to another voter before it stops', async () => {
    // Election timeouts of 1 s: the transfer (bounded by two of them) must not lose to a busy machine.
    const slow = { electionTicks: 100 };
    const lines: string[] = [];
    const logged = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
    const n1 = await startNode(await config('n1', slow), { logger: logged });
    open.add(n1);
    await until('n1 leads', () => n1.raft.isLeader());
    const n2 = await start(await config('n2', { join: n1.config, ...slow }));
    const n3 = await start(await config('n3', { join: n1.config, ...slow }));
    await Promise.all([n2.joined, n3.joined]);
    await until('3 voters', () => roles(n1).voters.length === 3);
    const term = n1.raft.status().term;
    await stop(n1, true);
    // The transfer resolved only once n1 saw the transferee lead (dissertation §3.10: TimeoutNow).
    const handed = lines
      .map((l) => JSON.parse(l) as { msg: string; to?: string })
      .find((l) => l.msg === 'leadership handed over before stopping');
    expect(handed?.to).toMatch(/^n[23]$/);
    const leader = await until('a new leader', () => [n2, n3].find((n) => n.raft.isLeader()));
    expect(leader.config.id).toBe(handed?.to);
    expect(leader.raft.status().term).toBe(term + 1);
  });

  it('a membership call waits out an election instead of failing on it', async () => {
    const n1 = await start(await config('n1'));
    await until('n1 leads', () => n1.raft.isLeader());
    const n2 = await start(await config('n2', { join: n1.config }));
    const n3 = await start(await config('n3', { join: n1.config }));
    await Promise.all([n2.joined, n3.joined]);
    await until('3 voters', () => roles(n1).voters.length === 3);
    // The leader crashes (no hand-over): n2 and n3 answer NOT_LEADER until one of them leads.
    await stop(n1);
    const list = await callLeader([endpoint(n2), endpoint(n3)], 'cohort-local', (m, t) =>
      m.list({ leader: true }, { timeoutMs: t }),
    );
    expect(['n2', 'n3']).toContain(list.leader);
  });

  it('refuses an empty data dir joining under the id of a voter (it could vote twice)', async () => {
    const n1 = await start(await config('n1'));
    await until('n1 leads', () => n1.raft.isLeader());
    const c2 = await config('n2', { join: n1.config });
    const n2 = await start(c2);
    await n2.joined;
    await until('n2 voter', () => roles(n1).voters.includes('n2'));
    await stop(n2);
    const again = await start(
      await config('n2', {
        join: n1.config,
        listen: `${c2.listen.host}:${c2.listen.port}`,
        rpc: `${c2.rpc.host}:${c2.rpc.port}`,
      }),
    );
    const err = await (again.joined as Promise<MemberList>).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isCohortError(err) ? err.code : err).toBe('FAILED_PRECONDITION');
    expect(roles(n1)).toEqual({ voters: ['n1', 'n2'], learners: [] });
    expect(roles(again)).toEqual({ voters: [], learners: [] });
  });

  it('the same add asked twice at once succeeds both times (a join retried while its first try runs)', async () => {
    const n1 = await start(await config('n1'));
    await until('n1 leads', () => n1.raft.isLeader());
    const eps = [endpoint(n1)];
    const add = (): Promise<MemberList> =>
      callLeader(eps, 'cohort-local', (m, t) =>
        m.add({ id: 'n7', raft: '127.0.0.1:1', rpc: '127.0.0.1:2' }, { timeoutMs: t }),
      );
    const both = await Promise.all([add(), add()]);
    for (const l of both) expect(l.members.map((m) => m.id)).toContain('n7');
    expect(roles(n1)).toEqual({ voters: ['n1'], learners: ['n7'] });
  });

  it('the leader deletes a book entry left by a change that crashed between its two steps', async () => {
    const n1 = await start(await config('n1'));
    await until('n1 leads', () => n1.raft.isLeader());
    // What a leader that crashed after an add's book write (before the learner joined), or after
    // a removal committed (before the book delete), leaves: an entry of a node that is no member.
    await n1.raft.propose(
      encodeModuleEntry(MEMBERS_MODULE, {
        type: 'set',
        id: 'n8',
        raft: '127.0.0.1:1',
        rpc: '127.0.0.1:2',
        learner: false,
      }),
    );
    expect(n1.book.get(nodeId('n8'))).toBeDefined();
    await until('the stale entry is deleted', () => n1.book.get(nodeId('n8')) === undefined);
    // A member's entry stays.
    expect(n1.book.get(nodeId('n1'))).toBeDefined();
    expect(roles(n1)).toEqual({ voters: ['n1'], learners: [] });
  });

  it('refuses bad requests with clear errors and changes nothing', async () => {
    const n1 = await start(await config('n1'));
    await until('n1 leads', () => n1.raft.isLeader());
    const eps = [endpoint(n1)];
    const code = async (p: Promise<unknown>): Promise<string> => {
      try {
        await p;
      } catch (e) {
        return isCohortError(e) ? e.code : String(e);
      }
      return 'ok';
    };
    expect(
      await code(
        callLeader(eps, 'cohort-local', (m, t) => m.remove({ id: 'n9' }, { timeoutMs: t })),
      ),
    ).toBe('NOT_FOUND');
    expect(
      await code(
        callLeader(eps, 'cohort-local', (m, t) => m.remove({ id: 'n1' }, { timeoutMs: t })),
      ),
    ).toBe('FAILED_PRECONDITION');
    expect(
      await code(
        callLeader(eps, 'cohort-local', (m, t) =>
          m.add({ id: 'n2', raft: 'nohost', rpc: '127.0.0.1:1' }, { timeoutMs: t }),
        ),
      ),
    ).toBe('INVALID_ARGUMENT');
    expect(
      await code(
        callLeader(eps, 'cohort-local', (m, t) =>
          m.add({ id: 'bad id!', raft: '127.0.0.1:1', rpc: '127.0.0.1:2' }, { timeoutMs: t }),
        ),
      ),
    ).toBe('INVALID_ARGUMENT');
    expect(roles(n1)).toEqual({ voters: ['n1'], learners: [] });
  });
});

describe('AddressBook', () => {
  const set = (id: string, raft: string, learner = false): unknown => ({
    type: 'set',
    id,
    raft,
    rpc: null,
    learner,
  });

  it('applies sets and deletes and reports each change once', () => {
    const seen: [string, MemberRecord | undefined][] = [];
    const book = new AddressBook((id, rec) => seen.push([id, rec]));
    expect(book.apply(set('n1', '127.0.0.1:7101'))).toEqual({ ok: true });
    expect(book.apply(set('n1', '127.0.0.1:7101'))).toEqual({ ok: true }); // unchanged: not reported
    expect(book.apply({ type: 'delete', id: 'n1' })).toEqual({ ok: true });
    expect(seen.map(([id, rec]) => [id, rec?.raft.port])).toEqual([
      ['n1', 7101],
      ['n1', undefined],
    ]);
  });

  it.each([
    null,
    42,
    { type: 'grow' },
    { type: 'set', id: 'n1', raft: 'x', rpc: null, learner: false },
    { type: 'set', id: '', raft: '127.0.0.1:1', rpc: null, learner: false },
    { type: 'set', id: 'n1', raft: '127.0.0.1:1', rpc: 5, learner: false },
    { type: 'set', id: 'n1', raft: '127.0.0.1:1', rpc: null, learner: 'yes' },
    { type: 'delete', id: 7 },
    { type: 'delete', id: 'n2', retire: 'yes' },
  ])('refuses %j and changes nothing', (cmd) => {
    const book = new AddressBook();
    book.apply(set('n2', '127.0.0.1:2'));
    const before = book.snapshot();
    const r = book.apply(cmd);
    expect(r.ok).toBe(false);
    expect(book.snapshot()).toEqual(before);
  });

  it('restores a snapshot, reporting entries that went and came', () => {
    const a = new AddressBook();
    a.apply(set('n1', '127.0.0.1:1'));
    a.apply(set('n2', '127.0.0.1:2', true));
    const seen: string[] = [];
    const b = new AddressBook((id, rec) => seen.push(`${id}:${rec === undefined ? '-' : '+'}`));
    b.apply(set('n3', '127.0.0.1:3'));
    seen.length = 0;
    b.restore(a.snapshot());
    expect(b.snapshot()).toEqual(a.snapshot());
    expect(b.get(nodeId('n2'))?.learner).toBe(true);
    expect(seen.sort()).toEqual(['n1:+', 'n2:+', 'n3:-']);
    expect(() => b.restore(new Uint8Array([0xc1]))).toThrow(/address book/);
  });
});

describe('AddressBook: removed nodes', () => {
  const set = (id: string): unknown => ({
    type: 'set',
    id,
    raft: '127.0.0.1:1',
    rpc: null,
    learner: false,
  });

  it('remembers a removal until the id is written again, and through snapshots', () => {
    const book = new AddressBook();
    book.apply(set('n1'));
    book.apply(set('n4'));
    const v1 = book.snapshot();
    expect(book.apply({ type: 'delete', id: 'n4', retire: true })).toEqual({ ok: true });
    expect(book.isRetired(nodeId('n4'))).toBe(true);
    // A plain delete (a stale entry) is no removal.
    book.apply(set('n5'));
    book.apply({ type: 'delete', id: 'n5' });
    expect(book.isRetired(nodeId('n5'))).toBe(false);
    // Through a snapshot and back.
    const copy = new AddressBook();
    copy.restore(book.snapshot());
    expect(copy.isRetired(nodeId('n4'))).toBe(true);
    expect(Array.from(copy.snapshot())).toEqual(Array.from(book.snapshot()));
    // A snapshot of the first version (a bare array) still restores, and clears removals.
    copy.restore(v1);
    expect(copy.isRetired(nodeId('n4'))).toBe(false);
    expect(copy.get(nodeId('n4'))).toBeDefined();
    // Written again (a user's add): no longer removed; with nothing removed the snapshot is v1.
    book.apply(set('n4'));
    expect(book.isRetired(nodeId('n4'))).toBe(false);
    expect(Array.from(book.snapshot())).toEqual(Array.from(v1));
    book.reset();
    expect(book.entries().size).toBe(0);
  });

  it('keeps only the newest removals past the bound', () => {
    const book = new AddressBook();
    for (let i = 0; i <= limits.memberRetiredMax; i++) {
      book.apply({ type: 'delete', id: `x${i}`, retire: true });
    }
    expect(book.isRetired(nodeId('x0'))).toBe(false);
    expect(book.isRetired(nodeId(`x${limits.memberRetiredMax}`))).toBe(true);
  });

  it('refuses a damaged snapshot of the second version', () => {
    const bad = [
      { rows: [], retired: ['bad id!'] },
      { rows: 'no', retired: [] },
      { rows: [], retired: 'n4' },
    ];
    for (const b of bad) {
      expect(() => new AddressBook().restore(new Uint8Array(new Packr().pack(b)))).toThrow(
        /address book snapshot/,
      );
    }
  });
});

describe('--join and --learner', () => {
  const flags = {
    id: 'n4',
    dataDir: '/tmp/x',
    listen: '127.0.0.1:7104',
    rpc: '127.0.0.1:7204',
    insecure: 'true',
  };
  it('parses the members endpoints', () => {
    const c = resolveNodeConfig({
      flags: { ...flags, join: 'n1=127.0.0.1:7201, n2=127.0.0.1:7202', learner: 'true' },
      env: {},
    });
    expect(c.join).toEqual([
      { id: 'n1', rpc: { host: '127.0.0.1', port: 7201 } },
      { id: 'n2', rpc: { host: '127.0.0.1', port: 7202 } },
    ]);
    expect(c.learner).toBe(true);
  });

  it.each([
    [{ join: 'n1=127.0.0.1:7201', peers: 'n1=127.0.0.1:7101' }, /join.*drop --peers/],
    [{ learner: 'true' }, /learner.*only means something with --join/],
    [{ join: '127.0.0.1:7201' }, /join.*id=host:port/],
    [{ join: 'n1=127.0.0.1' }, /join\.n1/],
  ])('refuses %j', (extra, message) => {
    expect(() => resolveNodeConfig({ flags: { ...flags, ...extra }, env: {} })).toThrow(message);
  });
});

describe('cohort member list table', () => {
  it('stars the leader and marks learners that stay', () => {
    const table = memberTable({
      node: 'n2',
      leader: 'n1',
      term: 3,
      commitIndex: 9,
      members: [
        { id: 'n1', role: 'voter', raft: 'h:1', rpc: 'h:2', stayLearner: false, match: 9 },
        { id: 'n4', role: 'learner', raft: 'h:3', rpc: null, stayLearner: true, match: null },
      ],
    });
    expect(table.split('\n')).toEqual([
      'ID   ROLE             RAFT  RPC  MATCH',
      'n1*  voter            h:1   h:2  9',
      'n4   learner (stays)  h:3   ?',
    ]);
  });
});
