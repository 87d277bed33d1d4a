/**
 * RaftNode and its storage: what waits for a save and what does not, the
 * commit index reaching disk without a save of its own, and fail-stop on a
 * storage error. Storage is a MemoryStorage behind a {@link ControlledStorage}
 * that can hold saves back or fail them.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CohortError } from '../../../src/lib/errors.js';
import type { NodeId } from '../../../src/lib/ids.js';
import { conditionWaitMs } from '../../harness/wait.js';
import { ControlledStorage, MemoryCluster, text } from './helpers.js';
import type { NodeOverrides, CuttableTransport } from './helpers.js';

let cluster: MemoryCluster | undefined;

const cleanups: (() => void)[] = [];

afterEach(async () => {
  for (const f of cleanups.splice(0)) f();
  await cluster?.closeAll();
  cluster = undefined;
});

async function controlledCluster(
  overrides: NodeOverrides = {},
): Promise<{ c: MemoryCluster; storage: Map<NodeId, ControlledStorage> }> {
  const c = new MemoryCluster(['n1', 'n2', 'n3'], overrides);
  cluster = c;
  const storage = new Map<NodeId, ControlledStorage>();
  for (const id of c.ids) {
    await c.start(id, {}, (s) => {
      const cs = new ControlledStorage(s);
      storage.set(id, cs);
      return cs;
    });
  }
  return { c, storage };
}

/** Lets the event loop run `n` turns (the memory network delivers once per turn). */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

function lastDurableIndex(c: MemoryCluster, id: NodeId): number {
  const s = c.durable(id);
  return (s.snapshot?.meta.index ?? 0) + s.entries.length;
}

describe('RaftNode storage ordering', () => {
  it('a leader writing a compaction snapshot keeps committing and heartbeating meanwhile', async () => {
    const { c, storage } = await controlledCluster({ snapshotEntries: 3 });
    const leader = await c.waitForLeader();
    const held = storage.get(leader.id) as ControlledStorage;
    held.holdSnapshots();
    cleanups.push(() => held.releaseSnapshots()); // so closeAll does not wait on it if this fails
    const before = leader.status().snapshotIndex;
    for (let i = 0; i < 3; i++) await leader.propose(text(`fill-${i}`));
    // The snapshot is due: its write has started and is held (a slow disk).
    await expect.poll(() => held.snapshotsHeld, { timeout: conditionWaitMs }).toBe(1);
    const sent = (): number =>
      (c.transports.get(leader.id) as CuttableTransport).counters.messagesSent;
    const sentBefore = sent();
    // Proposals still commit and apply on the leader while the snapshot write waits.
    const more = Promise.all([0, 1, 2].map((i) => leader.propose(text(`more-${i}`))));
    const outcome = await Promise.race([
      more.then(() => 'committed'),
      turns(2000).then(() => 'stuck'),
    ]);
    expect(outcome).toBe('committed');
    expect(held.snapshotsHeld).toBe(1);
    expect(leader.status().snapshotIndex).toBe(before); // not compacted before the snapshot is durable
    // And heartbeats keep going out: the Ready loop is not blocked.
    // (Heartbeats go out every tick; 2 peers × 5 ticks.)
    await expect.poll(sent, { timeout: conditionWaitMs }).toBeGreaterThan(sentBefore + 10);
    expect(leader.status().role).toBe('leader');
    held.releaseSnapshots();
    await expect
      .poll(() => leader.status().snapshotIndex, { timeout: conditionWaitMs })
      .toBeGreaterThan(before);
    expect(c.durable(leader.id).snapshot?.meta.index).toBe(leader.status().snapshotIndex);
  });

  it('a leader replicates while its own write is in flight, and applies only once it is durable', async () => {
    const { c, storage } = await controlledCluster();
    const leader = await c.waitForLeader();
    await leader.propose(text('first'));
    const followers = c.ids.filter((id) => id !== leader.id);
    (storage.get(leader.id) as ControlledStorage).hold();
    let done = false;
    const p = leader.propose(text('second')).then((r) => {
      done = true;
      return r;
    });
    const index = leader.status().lastIndex;
    // Both followers store the entry although the leader's own save is held.
    await expect
      .poll(() => followers.map((id) => lastDurableIndex(c, id)), { timeout: conditionWaitMs })
      .toEqual([index, index]);
    expect(lastDurableIndex(c, leader.id)).toBeLessThan(index);
    expect(done).toBe(false);
    expect(leader.status().applied).toBeLessThan(index);
    (storage.get(leader.id) as ControlledStorage).release();
    expect((await p).index).toBe(index);
    expect(lastDurableIndex(c, leader.id)).toBeGreaterThanOrEqual(index);
  });

  it('with leaderSendsBeforePersist off, nothing leaves the leader before its save is durable', async () => {
    const { c, storage } = await controlledCluster({ leaderSendsBeforePersist: false });
    const leader = await c.waitForLeader();
    await leader.propose(text('first'));
    const followers = c.ids.filter((id) => id !== leader.id);
    const held = storage.get(leader.id) as ControlledStorage;
    held.hold();
    const p = leader.propose(text('second'));
    const index = leader.status().lastIndex;
    await turns(30);
    for (const id of followers) expect(lastDurableIndex(c, id)).toBeLessThan(index);
    held.release();
    await p;
    await c.waitForApplied(index);
  });

  it('never saves a commit-only hard state on its own while entries flow, yet the commit index reaches storage when idle and at close', async () => {
    const { c, storage } = await controlledCluster();
    const leader = await c.waitForLeader();
    let last = 0;
    for (let i = 0; i < 20; i++) last = (await leader.propose(text(`v${i}`))).index;
    await c.waitForApplied(last);
    // Idle ticks flush what only raised the commit index.
    await expect
      .poll(() => c.ids.map((id) => c.durable(id).hardState.commit >= last), {
        timeout: conditionWaitMs,
      })
      .toEqual([true, true, true]);
    const writes = storage.get(leader.id)?.writes ?? [];
    const commitOnly = writes.filter((w) => w.entries === undefined && w.snapshot === undefined);
    // Each commit-only write was an idle flush: far fewer than the proposals.
    expect(commitOnly.length).toBeLessThan(20);
    await c.closeAll();
    for (const id of c.ids) expect(c.durable(id).hardState.commit).toBeGreaterThanOrEqual(last);
  });

  it('stops the node (fail-stop) when storage fails, and the others carry on', async () => {
    const fatal: unknown[] = [];
    const { c, storage } = await controlledCluster({ onFatal: (err) => fatal.push(err) });
    const leader = await c.waitForLeader();
    await leader.propose(text('ok'));
    const ioError = new CohortError('IO_ERROR', 'fdatasync failed: EIO');
    (storage.get(leader.id) as ControlledStorage).failWith(ioError);
    const e = await leader.propose(text('lost?')).then(
      () => null,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(CohortError);
    expect((e as CohortError).code).toBe('IO_ERROR');
    expect((e as CohortError).definite).toBe(false);
    expect(leader.status().state).toBe('failed');
    expect(fatal).toEqual([ioError]);
    const later = await leader.propose(text('z')).then(
      () => null,
      (err: unknown) => err as CohortError,
    );
    expect(later?.code).toBe('IO_ERROR');
    const survivors = c.ids.filter((id) => id !== leader.id);
    const next = await c.waitForLeader(survivors);
    const r = await next.propose(text('after'));
    await c.waitForApplied(r.index, survivors);
  });
});
