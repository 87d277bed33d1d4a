/**
 * What a RaftNode takes from outside so a simulator can run it: the schedule
 * of its Ready loop, a read-only view of its core, and (tests only) the
 * core's bug switches. One node on a VirtualClock, its Ready loop run by hand.
 */
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../../src/lib/clock.js';
import { nodeId } from '../../../src/lib/ids.js';
import { seededRandom } from '../../../src/lib/random.js';
import type { RaftMessage } from '../../../src/raft/core/messages.js';
import { RaftNode } from '../../../src/raft/raft-node.js';
import type { RaftNodeOptions } from '../../../src/raft/raft-node.js';
import { MemoryStorage } from '../../../src/raft/storage/memory.js';
import { newCounters } from '../../../src/transport/transport.js';
import type { Transport } from '../../../src/transport/transport.js';
import { ListMachine, testLogger, text } from './helpers.js';

const n1 = nodeId('n1');

/** A transport for a one-node cluster: nothing to send to. */
const alone: Transport<RaftMessage> = {
  self: n1,
  send: () => {},
  onMessage: () => {},
  onPeerStatus: () => {},
  close: () => Promise.resolve(),
  counters: newCounters(),
};

/** Lets promise callbacks run (MemoryStorage resolves its saves at once). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function startAlone(
  overrides: Partial<RaftNodeOptions<ListMachine>> = {},
): Promise<{ node: RaftNode<ListMachine>; clock: VirtualClock; tasks: (() => void)[] }> {
  const clock = new VirtualClock();
  const tasks: (() => void)[] = [];
  const node = await RaftNode.start({
    id: n1,
    peers: [],
    transport: alone,
    storage: new MemoryStorage(),
    stateMachine: new ListMachine(),
    random: seededRandom(1),
    clock,
    tickMs: 10,
    raft: { electionTicks: 3 },
    schedule: (fn) => tasks.push(fn),
    logger: testLogger(),
    ...overrides,
  });
  return { node, clock, tasks };
}

/** Runs the scheduled tasks (and the promise callbacks they start) until none is left. */
async function runTasks(tasks: (() => void)[]): Promise<void> {
  await settle();
  for (let task = tasks.shift(); task !== undefined; task = tasks.shift()) {
    task();
    await settle();
  }
}

describe('RaftNode injection points', () => {
  it('runs its Ready loop only through the injected schedule', async () => {
    const { node, clock, tasks } = await startAlone();
    clock.advance(100); // ticks: the lone voter campaigns and wins in its core
    await settle();
    // Its Ready (the new term, the noop entry) waits in the injected schedule.
    expect(tasks.length).toBeGreaterThan(0);
    expect(node.isLeader()).toBe(false);
    await runTasks(tasks);
    expect(node.isLeader()).toBe(true);
    let result: unknown;
    const p = node.propose(text('a')).then((r) => (result = r));
    await settle();
    expect(result).toBeUndefined();
    await runTasks(tasks);
    await p;
    expect(result).toEqual({ index: 2, size: 1 });
    await node.close();
  });

  it('schedules its Ready loop only when the core has something to hand out (not for idle ticks)', async () => {
    const { node, clock, tasks } = await startAlone();
    clock.advance(100);
    await runTasks(tasks);
    expect(node.isLeader()).toBe(true);
    // A lone leader's ticks produce nothing: no heartbeats, nothing to persist or apply.
    for (let i = 0; i < 10; i++) clock.advance(10);
    await settle();
    expect(tasks).toHaveLength(0);
    const p = node.propose(text('y'));
    expect(tasks).toHaveLength(1);
    await runTasks(tasks);
    await p;
    await node.close();
  });

  it('inspect() reads the core: status, terms and entries', async () => {
    const { node, clock, tasks } = await startAlone();
    clock.advance(100);
    await runTasks(tasks);
    const p = node.propose(text('x'));
    await runTasks(tasks);
    await p;
    const view = node.inspect();
    expect(view).toBe(node.inspect());
    const s = view.status();
    expect(s.role).toBe('leader');
    expect(s.commit).toBe(2);
    expect(s.applied).toBe(2);
    expect(view.termAt(2)).toBe(s.term);
    expect(view.termAt(3)).toBeUndefined();
    const entries = view.entries(1, 2);
    expect(entries.map((e) => e.kind)).toEqual(['noop', 'normal']);
    expect(new TextDecoder().decode(entries[1]?.data)).toBe('x');
    await node.close();
  });

  it('passes the test-only core bug switches through (forgetToPersistVote: no vote saved)', async () => {
    const saved: (string | null)[] = [];
    const storage = new MemoryStorage();
    const save = storage.save.bind(storage);
    storage.save = (write) => {
      if (write.hardState !== undefined) saved.push(write.hardState.vote);
      return save(write);
    };
    const { node, clock, tasks } = await startAlone({
      storage,
      bugs: { forgetToPersistVote: true },
    });
    clock.advance(100);
    await runTasks(tasks);
    expect(node.isLeader()).toBe(true);
    expect(saved.length).toBeGreaterThan(0);
    expect(saved.every((v) => v === null)).toBe(true);
    await node.close();
  });
});
