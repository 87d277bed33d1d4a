/**
 * A small randomized stress test of the core over the in-memory harness:
 * random ticks, drops, duplicates, reordering, partitions, crashes, snapshots,
 * membership changes and transfers, with Raft's safety properties checked
 * after every step. The full fault simulator lives in src/sim/; this one keeps
 * the core honest on its own and runs in a second or two.
 */
import type { NodeId } from '../../../src/lib/ids.js';
import { seededRandom } from '../../../src/lib/random.js';
import type { Random } from '../../../src/lib/random.js';
import type { RaftBugs } from '../../../src/raft/core/raft-core.js';
import { Cluster } from './harness.js';

/** Outcome of one randomized run: the first violation found (or null) and how many indexes were applied. */
export interface FuzzResult {
  readonly violation: string | null;
  readonly committed: number;
}

/** Checks the Raft safety properties over the cluster; returns a violation or null. */
function check(
  c: Cluster,
  leaders: Map<number, string>,
  applied: Map<number, string>,
  commits: Map<string, number>,
): string | null {
  for (const n of c.nodes.values()) {
    const s = n.core.status();
    // Election safety (Raft Figure 3): at most one leader per term.
    if (n.up && s.role === 'leader') {
      const other = leaders.get(s.term);
      if (other !== undefined && other !== n.id)
        return `two leaders in term ${s.term}: ${other}, ${n.id}`;
      leaders.set(s.term, n.id);
    }
    // State machine safety: no two nodes apply different commands at one index.
    for (const a of n.applied) {
      const key = `${a.term}:${a.command}`;
      const prev = applied.get(a.index);
      if (prev !== undefined && prev !== key)
        return `index ${a.index} applied as ${prev} and ${key}`;
      applied.set(a.index, key);
    }
    // Commit index never decreases (while the node runs).
    if (n.up) {
      const before = commits.get(n.id) ?? 0;
      if (s.commit < before) return `${n.id} commit went back from ${before} to ${s.commit}`;
      commits.set(n.id, s.commit);
    }
  }
  // Log matching (Raft §5.3): same index and term implies same entries up to there.
  const ups = [...c.nodes.values()].filter((n) => n.up);
  for (let i = 0; i < ups.length; i++) {
    for (let j = i + 1; j < ups.length; j++) {
      const a = (ups[i] as (typeof ups)[number]).core;
      const b = (ups[j] as (typeof ups)[number]).core;
      const lo = Math.max(a.status().firstIndex, b.status().firstIndex);
      const hi = Math.min(a.status().lastIndex, b.status().lastIndex);
      let agreeFrom = -1;
      for (let k = hi; k >= lo; k--) {
        if (a.termAt(k) === b.termAt(k)) {
          agreeFrom = k;
          break;
        }
      }
      for (let k = lo; k <= agreeFrom; k++) {
        if (a.termAt(k) !== b.termAt(k))
          return `log matching broken at ${k} between ${a.id} and ${b.id}`;
      }
    }
  }
  return null;
}

/** The highest commit index any node has reached so far (committed is a global fact); kept under key '*'. */
function maxCommit(c: Cluster, commits: Map<string, number>): number {
  let m = commits.get('*') ?? 0;
  for (const n of c.nodes.values()) {
    if (n.up) m = Math.max(m, n.core.status().commit);
  }
  commits.set('*', m);
  return m;
}

/**
 * ReadIndex linearizability (dissertation §6.4): a read answered at index i
 * must see every entry committed before it was requested.
 */
/** Reads answered so far (to show the check is not vacuous). */
export const readsServed = { count: 0 };

function checkReads(c: Cluster, reads: Map<number, number>): string | null {
  for (const n of c.nodes.values()) {
    for (const r of n.readStates) {
      const floor = reads.get(r.ctx as number);
      if (r.ok) readsServed.count++;
      if (r.ok && floor !== undefined && r.index < floor) {
        return `${n.id} served read ${r.ctx} at ${r.index} but ${floor} was committed before it`;
      }
    }
    n.readStates = [];
  }
  return null;
}

/**
 * One randomized run of `steps` random actions on a `size`-node cluster from
 * `seed`, then a heal-and-settle liveness phase. `asyncReady` forces the
 * harness's deferred-Ready mode on or off (default: drawn from the seed).
 */
export function fuzz(
  seed: number,
  size: number,
  steps: number,
  bugs: RaftBugs = {},
  asyncReady?: boolean,
): FuzzResult {
  const rng: Random = seededRandom(seed);
  const ids = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7'].slice(0, size);
  const c = new Cluster(ids, {
    seed,
    asyncReady: rng.chance(0.5) ? (asyncReady ?? true) : (asyncReady ?? false),
    raft: {
      electionTicks: 6,
      heartbeatTicks: 1,
      preVote: rng.chance(0.5),
      checkQuorum: rng.chance(0.5),
      maxInflightAppends: rng.intBetween(1, 8),
      maxAppendEntries: rng.intBetween(1, 8),
      snapshotChunkBytes: rng.intBetween(32, 512),
      bugs,
    },
  });
  const leaders = new Map<number, string>();
  const applied = new Map<number, string>();
  const commits = new Map<string, number>();
  let proposals = 0;
  /** Read ctx -> highest index known committed anywhere when the read was requested. */
  const reads = new Map<number, number>();
  const spare = 'n9';
  let spareAdded = false;
  for (let step = 0; step < steps; step++) {
    const r = rng.next();
    const nodes = [...c.nodes.values()];
    if (r < 0.3) {
      c.tick(rng.pick(nodes).id);
    } else if (r < 0.55) {
      // Deliver a random subset in random order, sometimes duplicating.
      const batch = rng.shuffle(c.network);
      c.network = [];
      for (const m of batch) {
        if (rng.chance(0.1)) continue; // drop
        if (rng.chance(0.05)) c.network.push(m); // duplicate later
        c.network.push(m);
      }
      const k = rng.intBetween(1, Math.max(1, c.network.length));
      const chosen = new Set(c.network.slice(0, k));
      c.deliver((m) => chosen.has(m));
    } else if (r < 0.7) {
      const leader = c.leader();
      if (leader !== null) {
        const res = c.propose(leader, `v${proposals++}`);
        if (res.kind === 'rejected') proposals--;
      }
    } else if (r < 0.74) {
      const n = rng.pick(nodes);
      if (n.up && rng.chance(0.5)) {
        c.crash(n.id);
        commits.delete(n.id); // a restart may come back with the last persisted commit only
      } else if (!n.up) c.restart(n.id);
    } else if (r < 0.77) {
      c.heal();
      if (rng.chance(0.6)) {
        const shuffled = rng.shuffle(ids);
        const cutAt = rng.intBetween(1, ids.length - 1);
        c.partition(shuffled.slice(0, cutAt), shuffled.slice(cutAt));
      }
    } else if (r < 0.8) {
      const n = rng.pick(nodes);
      if (n.up && n.appliedIndex > n.core.status().snapshotIndex) c.compact(n.id);
    } else if (r < 0.82) {
      const leader = c.leader();
      if (leader !== null) {
        const lc = c.core(leader);
        const cfg = lc.status().config;
        const pick = rng.next();
        if (!spareAdded && pick < 0.4) {
          if (!c.nodes.has(spare as NodeId)) c.addNode(spare, { voters: [], learners: [] });
          if (
            lc.proposeConfigChange({ type: 'addLearner', node: spare as NodeId }).kind ===
            'accepted'
          ) {
            spareAdded = true;
          }
        } else if (cfg.learners.length > 0 && pick < 0.7) {
          lc.proposeConfigChange({ type: 'promoteLearner', node: cfg.learners[0] as NodeId });
        } else if (cfg.voters.length > 3) {
          const victim = rng.pick(cfg.voters);
          const res = lc.proposeConfigChange({ type: 'removeNode', node: victim });
          if (res.kind === 'accepted' && victim === spare) spareAdded = false;
        }
        c.processReady(c.node(leader));
      }
    } else if (r < 0.84) {
      const leader = c.leader();
      if (leader !== null) {
        const voters = c
          .core(leader)
          .status()
          .config.voters.filter((v) => v !== leader);
        if (voters.length > 0) c.core(leader).transferLeadership(rng.pick(voters));
        c.processReady(c.node(leader));
      }
    } else if (r < 0.87) {
      // A linearizable read at any node that believes it leads (possibly a deposed one).
      const leaders = nodes.filter((x) => x.up && x.core.status().role === 'leader');
      const n = leaders.length > 0 ? rng.pick(leaders) : null;
      if (n !== null) {
        const ctx = reads.size;
        if (n.core.readIndex(ctx).kind === 'accepted') reads.set(ctx, maxCommit(c, commits));
        c.processReady(n);
      }
    } else if (r < 0.92) {
      // Async mode: one node's disk write completes (then it sends and applies).
      c.completeReady(rng.pick(nodes).id);
    } else {
      c.tick();
    }
    maxCommit(c, commits);
    const v = check(c, leaders, applied, commits) ?? checkReads(c, reads);
    if (v !== null)
      return { violation: `seed ${seed} step ${step}: ${v}`, committed: applied.size };
  }
  // Liveness: heal everything, restart everyone and let the cluster settle.
  c.heal();
  for (const n of c.nodes.values()) if (!n.up) c.restart(n.id);
  for (let i = 0; i < 400; i++) {
    c.tick();
    c.stabilize();
    if (c.leader() !== null && i > 40) break;
  }
  const leader = c.leader();
  if (leader === null)
    return { violation: `seed ${seed}: no leader after healing`, committed: applied.size };
  c.propose(leader, 'final');
  for (let i = 0; i < 30; i++) {
    c.tick();
    c.stabilize();
  }
  const v = check(c, leaders, applied, commits);
  if (v !== null) return { violation: `seed ${seed} end: ${v}`, committed: applied.size };
  const members = c.core(leader).status().config;
  for (const id of [...members.voters, ...members.learners]) {
    const got = c.applied(id);
    if (got[got.length - 1] !== 'final') {
      return {
        violation: `seed ${seed}: ${id} did not apply the final command`,
        committed: applied.size,
      };
    }
  }
  return { violation: null, committed: applied.size };
}
