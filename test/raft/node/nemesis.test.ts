/**
 * A small nemesis run for the shell: clients propose unique values to
 * whichever node leads while links are cut and healed, nodes are stopped and
 * restarted from their storage, and leadership is transferred. At the end
 * every node must hold the same list; every acknowledged value must be in it
 * exactly once, at the position its result reported; no value refused
 * definitely may be in it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CohortError } from '../../../src/lib/errors.js';
import type { NodeId } from '../../../src/lib/ids.js';
import { seededRandom } from '../../../src/lib/random.js';
import type { RaftNode } from '../../../src/raft/raft-node.js';
import type { ListMachine, ListResult } from './helpers.js';
import { waitUntil } from '../../harness/wait.js';
import { MemoryCluster, proposeOnLeader, text } from './helpers.js';

let cluster: MemoryCluster | undefined;

afterEach(async () => {
  await cluster?.closeAll();
  cluster = undefined;
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('RaftNode under a nemesis', () => {
  it('keeps acknowledged values, in the reported positions, through cuts, restarts and transfers', async () => {
    const c = new MemoryCluster(['n1', 'n2', 'n3'], {
      snapshotEntries: 40,
      // Wait long after a lost leadership, so most outcomes become definite (REPLACED).
      lostLeadershipWaitTicks: 1_000,
    });
    cluster = c;
    await c.startAll();
    await c.waitForLeader();
    const rng = seededRandom(7);
    const acked = new Map<string, ListResult>();
    const definite = new Set<string>();
    const unknown = new Set<string>();
    let running = true;
    let next = 0;
    let replaced = 0;

    /** Proposes a fresh value to `node` and records the outcome; false if it failed. */
    const tracked = async (node: RaftNode<ListMachine>): Promise<boolean> => {
      const v = `v${next++}`;
      try {
        acked.set(v, await node.propose(text(v)));
        return true;
      } catch (err) {
        if (!(err instanceof CohortError)) throw err;
        (err.definite ? definite : unknown).add(v);
        if (err.details['reason'] === 'REPLACED') replaced++;
        return false;
      }
    };
    const extra: Promise<boolean>[] = [];
    const client = async (): Promise<void> => {
      while (running) {
        const leader = c.ids.map((id) => c.nodes.get(id)).find((n) => n?.isLeader() === true);
        if (leader === undefined) {
          await sleep(5);
          continue;
        }
        if (!(await tracked(leader))) await sleep(2);
      }
    };
    const clients = Array.from({ length: 4 }, () => client());

    const leaderNow = (): NodeId | undefined => [...c.nodes.values()].find((n) => n.isLeader())?.id;
    // Each kind of fault three times, in an order drawn from the seed; each heals before the next.
    const kinds = rng.shuffle(
      ['cutLeader', 'cutFollower', 'restart', 'transfer'].flatMap((k) => [k, k, k]),
    );
    for (const kind of kinds) {
      const leader = leaderNow();
      const follower = rng.pick(c.ids.filter((id) => id !== leader));
      switch (kind) {
        case 'cutLeader': {
          // Its pending proposals lose to the next leader's entries (REPLACED) once it is back.
          const victim = leader ?? follower;
          // A leader of the others' own: of a later term than the victim led.
          const minTerm = c.node(victim).status().term + (leader === undefined ? 0 : 1);
          c.isolate(victim);
          // Proposals it accepts now reach nobody.
          for (let k = 0; k < 3; k++) extra.push(tracked(c.node(victim)));
          // Heal only once the others have elected a leader (not after a fixed time: a
          // busy machine elects later, and then nothing would be replaced).
          await waitUntil('a leader elected while the old one is cut off', () =>
            c.ids.some(
              (id) =>
                id !== victim &&
                c.nodes.get(id)?.isLeader() === true &&
                c.node(id).status().term >= minTerm,
            ),
          );
          c.isolate(victim, true);
          break;
        }
        case 'cutFollower':
          c.isolate(follower);
          await sleep(150);
          c.isolate(follower, true);
          break;
        case 'restart': {
          const victim = rng.pick(c.ids);
          await c.stop(victim);
          await sleep(150);
          await c.start(victim);
          break;
        }
        default:
          if (leader !== undefined) {
            await c
              .node(leader)
              .transferLeadership(follower)
              .catch(() => {});
          }
      }
      await sleep(100);
    }
    // Heal everything and let the clients make progress once more (as much as a
    // quiet machine makes during the faults: a busy one takes longer, that is all).
    await proposeOnLeader(c, text('healed'));
    await waitUntil('more than 20 acknowledged values', () => acked.size > 20);
    running = false;
    await Promise.all([...clients, ...extra]);
    // Nothing is proposed any more: once the marker is everywhere, so is everything before it.
    const marker = await proposeOnLeader(c, text('final'));
    await c.waitForApplied(marker.index);

    const lists = c.ids.map((id) => c.node(id).stateMachine.items);
    for (const l of lists) expect(l).toEqual(lists[0]);
    const final = lists[0] as string[];
    expect(new Set(final).size).toBe(final.length);
    expect(acked.size).toBeGreaterThan(20);
    expect(replaced).toBeGreaterThan(0);
    // Leadership moved around.
    expect(c.node(c.ids[0] as NodeId).status().term).toBeGreaterThan(2);
    for (const [v, r] of acked) expect(final[r.size - 1]).toBe(v);
    for (const v of definite) expect(final).not.toContain(v);
    // Everything in the list was proposed: acknowledged, unknown, or the marker.
    const markers = new Set(['healed', 'final']);
    for (const v of final) expect(acked.has(v) || unknown.has(v) || markers.has(v)).toBe(true);
  });
});
