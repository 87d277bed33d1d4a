/**
 * RaftNode over MemoryNetwork + MemoryStorage: three (or four) nodes in one
 * process, real timers (10 ms ticks). Each test checks an outcome of the shell:
 * election, replication, refusals with hints, failover, ReadIndex reads,
 * snapshots and catch-up, membership, transfer, bad input, backpressure.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CohortError } from '../../../src/lib/errors.js';
import { nodeId } from '../../../src/lib/ids.js';
import type { NodeId } from '../../../src/lib/ids.js';
import type { RaftMessage } from '../../../src/raft/core/messages.js';
import { raftMessagesCodec } from '../../../src/raft/raft-messages-codec.js';
import { seededRandom } from '../../../src/lib/random.js';
import { RaftNode } from '../../../src/raft/raft-node.js';
import type { RaftNodeOptions } from '../../../src/raft/raft-node.js';
import { MemoryStorage } from '../../../src/raft/storage/memory.js';
import { MemoryNetwork } from '../../../src/transport/memory-transport.js';
import { conditionWaitMs } from '../../harness/wait.js';
import {
  ListMachine,
  MemoryCluster,
  proposeOnLeader,
  SteppedListMachine,
  testLogger,
  text,
} from './helpers.js';

let cluster: MemoryCluster | undefined;

/**
 * Starts `lagging` (stopped and cut off while s0..s99 were committed up to
 * `last` and the log compacted): its state must come from the leader's
 * snapshot, and a restart must recover it from its own snapshot plus log.
 */
async function expectCaughtUpFromSnapshot(
  c: MemoryCluster,
  lagging: NodeId,
  last: number,
): Promise<void> {
  const back = await c.start(lagging);
  c.isolate(lagging, true);
  await c.waitForApplied(last);
  expect(back.stateMachine.restores).toBe(1);
  expect(back.stateMachine.items).toEqual(Array.from({ length: 100 }, (_, i) => `s${i}`));
  await c.stop(lagging);
  const again = await c.start(lagging);
  await c.waitForApplied(last);
  expect(again.stateMachine.items).toEqual(back.stateMachine.items);
}

afterEach(async () => {
  await cluster?.closeAll();
  cluster = undefined;
});

function newCluster(...args: ConstructorParameters<typeof MemoryCluster>): MemoryCluster {
  cluster = new MemoryCluster(...args);
  return cluster;
}

async function rejection(p: Promise<unknown>): Promise<CohortError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(CohortError);
    return err as CohortError;
  }
  throw new Error('expected a rejection');
}

const [n1, n2, n3, n4] = ['n1', 'n2', 'n3', 'n4'].map(nodeId) as [NodeId, NodeId, NodeId, NodeId];

describe('RaftNode (memory network)', () => {
  it('elects one leader and replicates proposals to every state machine in order', async () => {
    const c = newCluster(['n1', 'n2', 'n3']);
    await c.startAll();
    const leader = await c.waitForLeader();
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => leader.propose(text(`v${i}`))),
    );
    // Each proposal resolves with what apply returned for its own entry.
    expect(results.map((r) => r.size)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    const last = Math.max(...results.map((r) => r.index));
    await c.waitForApplied(last);
    const want = Array.from({ length: 50 }, (_, i) => `v${i}`);
    for (const id of c.ids) expect(c.node(id).stateMachine.items).toEqual(want);
  });

  it('refuses proposals and linearizable reads on a follower with NOT_LEADER and the leader hint', async () => {
    const c = newCluster(['n1', 'n2', 'n3']);
    await c.startAll();
    const leader = await c.waitForLeader();
    const follower = c.node(c.ids.find((id) => id !== leader.id) as NodeId);
    const e = await rejection(follower.propose(text('x')));
    expect(e.code).toBe('NOT_LEADER');
    expect(e.definite).toBe(true);
    expect(e.details['leaderHint']).toBe(leader.id);
    const r = await rejection(follower.read((sm) => sm.items.length));
    expect(r.code).toBe('NOT_LEADER');
    expect(r.details['leaderHint']).toBe(leader.id);
    expect(follower.stateMachine.items).toEqual([]);
  });

  it('elects a new leader after the leader closes, and keeps every acknowledged write', async () => {
    const c = newCluster(['n1', 'n2', 'n3']);
    await c.startAll();
    const first = await c.waitForLeader();
    for (let i = 0; i < 10; i++) await first.propose(text(`a${i}`));
    await c.stop(first.id);
    const survivors = c.ids.filter((id) => id !== first.id);
    const second = await c.waitForLeader(survivors);
    expect(second.id).not.toBe(first.id);
    expect(second.status().term).toBeGreaterThan(0);
    const r = await second.propose(text('b'));
    await c.waitForApplied(r.index, survivors);
    const want = [...Array.from({ length: 10 }, (_, i) => `a${i}`), 'b'];
    for (const id of survivors) expect(c.node(id).stateMachine.items).toEqual(want);
    // The old leader rejoins from its storage and catches up.
    await c.start(first.id);
    await c.waitForApplied(r.index);
    expect(c.node(first.id).stateMachine.items).toEqual(want);
  });

  it('serves linearizable reads on the leader after the writes it acknowledged', async () => {
    const c = newCluster(['n1', 'n2', 'n3']);
    await c.startAll();
    const leader = await c.waitForLeader();
    for (let i = 0; i < 5; i++) {
      await leader.propose(text(`w${i}`));
      const seen = await leader.read((sm) => sm.items.slice());
      expect(seen[seen.length - 1]).toBe(`w${i}`);
    }
    // Serializable reads run at once on any node (possibly stale, never ahead of the leader);
    // waiting for the write's index first makes a follower's read see it.
    const follower = c.node(c.ids.find((id) => id !== leader.id) as NodeId);
    const local = await follower.read((sm) => sm.items.length, { consistency: 'serializable' });
    expect(local).toBeLessThanOrEqual(5);
    const w = await leader.propose(text('w5'));
    await follower.waitForApplied(w.index);
    expect(await follower.read((sm) => sm.items.at(-1), { consistency: 'serializable' })).toBe(
      'w5',
    );
    // An exception in the read function rejects that read only.
    await expect(
      leader.read(() => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
  });

  it('does not serve a linearizable read on a leader cut off from the majority', async () => {
    const c = newCluster(['n1', 'n2', 'n3']);
    await c.startAll();
    const leader = await c.waitForLeader();
    await leader.propose(text('x'));
    c.isolate(leader.id);
    // ReadIndex needs a quorum's heartbeat acks; the leader steps down (check-quorum) instead.
    const e = await rejection(leader.read((sm) => sm.items.length));
    expect(e.code).toBe('NOT_LEADER');
    c.isolate(leader.id, true);
  });

  it('takes snapshots and brings a lagging node up to date with InstallSnapshot', async () => {
    const c = newCluster(['n1', 'n2', 'n3'], { snapshotEntries: 20 });
    await c.startAll();
    const leader = await c.waitForLeader();
    const lagging = c.ids.find((id) => id !== leader.id) as NodeId;
    // Cut it off first, so nothing for it waits in the network's queues.
    c.isolate(lagging);
    await c.stop(lagging);
    let last = 0;
    for (let i = 0; i < 100; i++) last = (await leader.propose(text(`s${i}`))).index;
    await c.waitForApplied(last);
    expect(leader.status().snapshotIndex).toBeGreaterThanOrEqual(80);
    expect(leader.status().firstIndex).toBeGreaterThan(2);
    await expectCaughtUpFromSnapshot(c, lagging, last);
  });

  it('encodes periodic snapshots in steps while applying, and catches a lagging node up from one', async () => {
    const c = newCluster(
      ['n1', 'n2', 'n3'],
      { snapshotEntries: 20 },
      () => new SteppedListMachine(),
    );
    await c.startAll();
    const leader = await c.waitForLeader();
    const lagging = c.ids.find((id) => id !== leader.id) as NodeId;
    c.isolate(lagging);
    await c.stop(lagging);
    let last = 0;
    // Batches of concurrent proposals: entries keep being applied while a snapshot is encoded.
    for (let b = 0; b < 10; b++) {
      const done = await Promise.all(
        Array.from({ length: 10 }, (_, i) => leader.propose(text(`s${b * 10 + i}`))),
      );
      last = Math.max(last, ...done.map((r) => r.index));
    }
    await c.waitForApplied(last);
    const machine = leader.stateMachine as SteppedListMachine;
    expect(machine.begun).toBeGreaterThan(1);
    expect(machine.steps).toBeGreaterThan(2 * machine.begun); // several turns per snapshot
    await vi.waitFor(() => expect(leader.status().snapshotIndex).toBeGreaterThanOrEqual(60), {
      timeout: conditionWaitMs,
    });
    expect(leader.status().firstIndex).toBeGreaterThan(2);
    await expectCaughtUpFromSnapshot(c, lagging, last);
  });

  it('snapshots by log bytes as well as by entries, so a restart replays a bounded log', async () => {
    // No entry-count trigger: only the bytes applied since the last snapshot start one.
    const c = newCluster(['n1'], { snapshotEntries: 0, snapshotLogBytes: 8 * 1024 });
    await c.startAll();
    const leader = await c.waitForLeader();
    let last = 0;
    for (let i = 0; i < 60; i++) last = (await leader.propose(text('x'.repeat(1024)))).index;
    await c.waitForApplied(last);
    const s = leader.status();
    expect(s.snapshotIndex).toBeGreaterThan(0);
    // The list's snapshot grows with it, so the log kept is up to the snapshot's size (~60 KiB here).
    expect(s.lastIndex - s.snapshotIndex).toBeLessThan(40);
    await c.stop(nodeId('n1'));
    // A restart starts from the snapshot and replays only the entries after it.
    expect(c.durable(nodeId('n1')).entries.length).toBeLessThan(40);
    const again = await c.start(nodeId('n1'));
    await c.waitForApplied(last);
    expect(again.stateMachine.items).toHaveLength(60);
  });

  it('does not snapshot by bytes more often than the log grows past the last snapshot', async () => {
    // A state whose snapshot is 64 KiB: snapshotting after every ~1 KiB would rewrite it per entry.
    class BigSnapshot extends ListMachine {
      taken = 0;
      override snapshot(): Uint8Array {
        this.taken++;
        return new Uint8Array(64 * 1024);
      }
      override restore(): void {}
    }
    const c = newCluster(
      ['n1'],
      { snapshotEntries: 0, snapshotLogBytes: 1024 },
      () => new BigSnapshot(),
    );
    await c.startAll();
    const leader = await c.waitForLeader();
    let last = 0;
    for (let i = 0; i < 100; i++) last = (await leader.propose(text('y'.repeat(1024)))).index;
    await c.waitForApplied(last);
    // One past the first KiB (no snapshot yet), one past the first snapshot's 64 KiB; not ~100.
    expect((leader.stateMachine as BigSnapshot).taken).toBe(2);
  });

  it('adds a learner, catches it up and promotes it to voter', async () => {
    const c = newCluster(['n1', 'n2', 'n3']);
    await c.startAll();
    const leader = await c.waitForLeader();
    let last = 0;
    for (let i = 0; i < 20; i++) last = (await leader.propose(text(`m${i}`))).index;
    const joiner = await c.start(n4, { join: true, peers: [] });
    await leader.addLearner(n4);
    expect(leader.status().config.learners).toEqual([n4]);
    await c.waitForApplied(last, [n4]);
    expect(joiner.stateMachine.items).toHaveLength(20);
    // A learner cut off while the log grows is not caught up: refused, or waited for.
    c.isolate(n4);
    await leader.propose(text('while-cut'));
    const lagging = await rejection(leader.promoteLearner(n4));
    expect(lagging.code).toBe('FAILED_PRECONDITION');
    expect(lagging.details['reason']).toBe('LEARNER_NOT_CAUGHT_UP');
    const late = await rejection(
      leader.promoteLearner(n4, { waitForCatchUp: true, catchUpTicks: 5 }),
    );
    expect(late.code).toBe('TIMEOUT');
    expect(late.definite).toBe(true);
    expect(leader.status().config.learners).toEqual([n4]);
    c.isolate(n4, true);
    await leader.promoteLearner(n4, { waitForCatchUp: true });
    const config = leader.status().config;
    expect([...config.voters].sort()).toEqual([n1, n2, n3, n4]);
    expect(config.learners).toEqual([]);
    // A bad change is refused definitely and changes nothing.
    const e = await rejection(leader.promoteLearner(n4));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.details['reason']).toBe('INVALID_CHANGE');
    // The four-node cluster still commits, with n4 in the log.
    const r = await leader.propose(text('after'));
    await c.waitForApplied(r.index, [n4]);
    expect(joiner.stateMachine.items.at(-1)).toBe('after');
    expect(joiner.stateMachine.items).toHaveLength(22);
  });

  it('removes a node from the cluster', async () => {
    const c = newCluster(['n1', 'n2', 'n3']);
    await c.startAll();
    const leader = await c.waitForLeader();
    await proposeOnLeader(c, text('x')); // the leader has committed in its term
    const victim = c.ids.find((id) => id !== leader.id) as NodeId;
    await leader.removeNode(victim);
    expect(leader.status().config.voters).not.toContain(victim);
    await c.stop(victim);
    // Two voters remain: both are needed, and both are up.
    const r = await leader.propose(text('y'));
    expect(r.size).toBe(2);
  });

  it('transfers leadership to a chosen follower', async () => {
    const c = newCluster(['n1', 'n2', 'n3']);
    await c.startAll();
    const leader = await c.waitForLeader();
    await leader.propose(text('x'));
    const target = c.ids.find((id) => id !== leader.id) as NodeId;
    await leader.transferLeadership(target);
    const now = await c.waitForLeader();
    expect(now.id).toBe(target);
    await now.propose(text('y'));
    // A follower cannot transfer.
    const e = await rejection(leader.transferLeadership(target));
    expect(e.code).toBe('NOT_LEADER');
  });

  it('drops malformed, misaddressed and forged messages without crashing', async () => {
    const c = newCluster(['n1', 'n2', 'n3']);
    await c.startAll();
    const leader = await c.waitForLeader();
    const follower = c.ids.find((id) => id !== leader.id) as NodeId;
    const other = c.ids.find((id) => id !== leader.id && id !== follower) as NodeId;
    const intruder = c.net.transport<RaftMessage>(nodeId('x9'), raftMessagesCodec());
    // Forged sender: claims to be the leader.
    intruder.send(follower, {
      type: 'Heartbeat',
      from: leader.id,
      to: follower,
      term: 999 as never,
      commit: 0 as never,
      seq: 1,
    });
    // Misaddressed: the core refuses a message meant for another node.
    intruder.send(follower, {
      type: 'TimeoutNow',
      from: nodeId('x9'),
      to: other,
      term: 999 as never,
    });
    await c.waitForApplied(0);
    const node = c.node(follower);
    await expect.poll(() => node.status().droppedMessages, { timeout: conditionWaitMs }).toBe(2);
    expect(node.status().term).toBeLessThan(999);
    await intruder.close();
    const r = await leader.propose(text('still fine'));
    await c.waitForApplied(r.index);
  });

  it('answers OVERLOADED when the core holds too many uncommitted entries, and gives up on the rest as indefinite', async () => {
    const c = newCluster(['n1', 'n2', 'n3'], {
      raft: { electionTicks: 10, maxUncommittedEntries: 4 },
    });
    await c.startAll();
    const leader = await c.waitForLeader();
    await leader.propose(text('ok'));
    c.isolate(leader.id);
    const pending = Array.from({ length: 4 }, (_, i) => leader.propose(text(`p${i}`)));
    const e = await rejection(leader.propose(text('one too many')));
    expect(e.code).toBe('OVERLOADED');
    expect(e.definite).toBe(true);
    // Cut off, the leader steps down; after the wait its proposals end as indefinite.
    for (const p of pending) {
      const lost = await rejection(p);
      expect(lost.code).toBe('NOT_LEADER');
      expect(lost.definite).toBe(false);
      expect(lost.details['reason']).toBe('LEADERSHIP_LOST');
    }
    c.isolate(leader.id, true);
  });

  it('rejects a proposal definitely when another term wins its index (REPLACED)', async () => {
    const c = newCluster(['n1', 'n2', 'n3'], { lostLeadershipWaitTicks: 10_000 });
    await c.startAll();
    const old = await c.waitForLeader();
    await old.propose(text('base'));
    c.isolate(old.id);
    const doomed = old.propose(text('doomed'));
    const majority = c.ids.filter((id) => id !== old.id);
    const fresh = await c.waitForLeader(majority);
    const r = await fresh.propose(text('winner'));
    c.isolate(old.id, true);
    const e = await rejection(doomed);
    expect(e.code).toBe('NOT_LEADER');
    expect(e.definite).toBe(true);
    expect(e.details['reason']).toBe('REPLACED');
    await c.waitForApplied(r.index);
    for (const id of c.ids) expect(c.node(id).stateMachine.items).toEqual(['base', 'winner']);
  });

  it('cancels a waiting proposal through its signal (indefinite) and refuses an aborted one (definite)', async () => {
    const c = newCluster(['n1', 'n2', 'n3']);
    await c.startAll();
    const leader = await c.waitForLeader();
    await leader.propose(text('x'));
    const aborted = AbortSignal.abort();
    const before = await rejection(leader.propose(text('never'), { signal: aborted }));
    expect(before.code).toBe('CANCELLED');
    expect(before.definite).toBe(true);
    c.isolate(leader.id);
    const ctl = new AbortController();
    const p = leader.propose(text('maybe'), { signal: ctl.signal });
    ctl.abort();
    const after = await rejection(p);
    expect(after.code).toBe('CANCELLED');
    expect(after.definite).toBe(false);
    expect(leader.status().pendingProposals).toBe(0);
    c.isolate(leader.id, true);
  });

  it('closes gracefully: later calls get CLOSED, waiting ones are rejected', async () => {
    const c = newCluster(['n1', 'n2', 'n3']);
    await c.startAll();
    const leader = await c.waitForLeader();
    c.isolate(leader.id);
    const waiting = leader.propose(text('w'));
    await c.stop(leader.id);
    const e = await rejection(waiting);
    expect(e.code).toBe('CLOSED');
    expect(e.definite).toBe(false);
    const later = await rejection(leader.propose(text('z')));
    expect(later.code).toBe('CLOSED');
    expect(later.definite).toBe(true);
    expect(leader.status().state).toBe('closed');
    await leader.close(); // idempotent
  });

  it('refuses bad options with INVALID_ARGUMENT', async () => {
    const net = new MemoryNetwork();
    const base = {
      id: n1,
      peers: [n2, n3],
      stateMachine: new ListMachine(),
      random: seededRandom(1),
      logger: testLogger(),
    };
    const cases: Partial<RaftNodeOptions<ListMachine>>[] = [
      { peers: [n1, n2] },
      { tickMs: 0 },
      { snapshotEntries: -1 },
      { lostLeadershipWaitTicks: 1.5 },
      { raft: { electionTicks: 2, heartbeatTicks: 2 } },
    ];
    for (const bad of cases) {
      const storage = new MemoryStorage();
      const transport = net.transport<RaftMessage>(n1, raftMessagesCodec());
      const e = await rejection(RaftNode.start({ ...base, transport, storage, ...bad }));
      expect(e.code).toBe('INVALID_ARGUMENT');
      await transport.close();
    }
  });

  it('gives up a transfer to an unreachable node with TIMEOUT, refusing proposals meanwhile', async () => {
    const c = newCluster(['n1', 'n2', 'n3']);
    await c.startAll();
    const leader = await c.waitForLeader();
    await leader.propose(text('x'));
    const target = c.ids.find((id) => id !== leader.id) as NodeId;
    c.isolate(target);
    const transfer = leader.transferLeadership(target);
    const refused = await rejection(leader.propose(text('during')));
    expect(refused.code).toBe('NOT_LEADER');
    expect(refused.details['reason']).toBe('TRANSFERRING');
    const e = await rejection(transfer);
    expect(e.code).toBe('TIMEOUT');
    expect(leader.isLeader()).toBe(true);
    await leader.propose(text('after')); // the abandoned transfer no longer blocks writes
    c.isolate(target, true);
  });

  it('cancels a waiting linearizable read through its signal', async () => {
    const c = newCluster(['n1', 'n2', 'n3']);
    await c.startAll();
    const leader = await c.waitForLeader();
    await leader.propose(text('x'));
    c.isolate(leader.id);
    const ctl = new AbortController();
    const read = leader.read((sm) => sm.items.length, { signal: ctl.signal });
    ctl.abort();
    const e = await rejection(read);
    expect(e.code).toBe('CANCELLED');
    expect(leader.status().pendingReads).toBe(0);
    c.isolate(leader.id, true);
  });

  it('reports role changes to listeners and compacts on demand', async () => {
    const c = newCluster(['n1', 'n2', 'n3']);
    const seen: string[] = [];
    await c.start(n1);
    c.node(n1).onStateChange((s) => seen.push(`${s.role}:${s.leader ?? '-'}`));
    await c.start(n2);
    await c.start(n3);
    const leader = await c.waitForLeader();
    expect(seen.at(-1)).toBe(leader.id === n1 ? `leader:${n1}` : `follower:${leader.id}`);
    const r = await leader.propose(text('x'));
    await c.waitForApplied(r.index);
    const node = c.node(n1);
    expect(await node.compactNow()).toBe(true);
    expect(node.status().snapshotIndex).toBe(r.index);
    expect(await node.compactNow()).toBe(false); // already covered
  });
});
