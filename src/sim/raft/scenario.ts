/**
 * The Raft simulation scenario: a cluster of 3, 5 or 7 production
 * {@link RaftNode}s (plus spare nodes to add) over the simulated network and
 * disk (node.ts hosts one per node), a seeded
 * nemesis, a client workload, Raft's invariants checked after every event,
 * a liveness check once the faults heal, and a linearizability check of the
 * client history at the end. Every parameter — cluster size, timeouts, batch
 * and snapshot sizes, fault kinds and intensities, disk delays — is drawn from
 * the seed and printed with any failure.
 *
 * ```ts
 * registerScenario(raftScenario());                              // `npm run sim -- --scenario raft`
 * const r = await runScenario(raftScenario({ nodes: [5] }), { seed: 42 });
 * const buggy = raftScenario({ name: 'raft-bug', bugs: { countOldTermEntriesForCommit: true } });
 * ```
 *
 * A run: faults for a drawn time; then heal (links healed and calm, every
 * node restarted, normal speed); then liveness: within a bound of ticks a
 * leader must commit a fresh proposal and every member of its configuration
 * must apply it; then the clients stop, in-flight operations settle, and the
 * history must be linearizable (writes through the log, reads through
 * ReadIndex).
 *
 * Registered variants (src/sim/scenarios.ts): `raft` (3 or 5 voters),
 * `raft-7` (7 voters), `raft-file` (the real FileStorage on a simulated
 * disk that loses and tears unsynced writes) and `raft-members` (nodes
 * replaced under the faults as well, see RaftNemesis.replace); `raft-production` and
 * `raft-production-file` are older names of `raft` and `raft-file`.
 * `npm run sim -- --scenario raft --seeds 100000` runs many seeds and prints
 * counts by outcome; a failure prints the seed, the drawn parameters, the
 * last events and the replay command.
 *
 * How a run is driven ({@link drive}): the scheduler runs one event at a
 * time; after each, the promise callbacks it started run to completion
 * (RaftNode, the KV server and the KV client answer through promises), then
 * the invariants check every node the event touched. Every timer and
 * deferred step of the shells is a scheduler event, so nothing else runs in
 * between and a seed replays.
 *
 * The cluster harness ({@link runRaftCluster}) is shared: the KV scenario
 * (src/sim/kv) plugs in its own nodes, liveness probe and workload through a
 * {@link RaftClusterPlugin}, and gets the same draws, nemesis, invariants and
 * liveness check.
 */
import { nodeId } from '../../lib/ids.js';
import type { NodeId } from '../../lib/ids.js';
import { members } from '../../raft/core/config.js';
import type { RaftBugs } from '../../raft/core/raft-core.js';
import type { RaftNodeCoreOptions } from '../../raft/raft-node.js';
import type { ClusterConfig } from '../../raft/core/types.js';
import { checkLinearizability, formatCheckResult } from '../checkers/linearizability.js';
import { kvModel } from '../checkers/models.js';
import { drive } from '../drive.js';
import { SimNetwork } from '../network.js';
import { isRpcMessage, simWireCodec } from '../wire.js';
import type { SimWire } from '../wire.js';
import { CheckFailure } from '../scenario.js';
import type { Scenario, ScenarioContext } from '../scenario.js';
import { RaftInvariants } from './invariants.js';
import { RaftNemesis, drawNemesisWeights } from './nemesis.js';
import { RaftScenarioNode } from './node.js';
import type { RequestOutcome, SimRaftNode, SimRaftNodeBase, SimRaftNodeOptions } from './node.js';
import { Workload } from './workload.js';

/** Options for {@link raftScenario}. */
export interface RaftScenarioOptions {
  /** Scenario name (default `raft`). */
  readonly name?: string;
  /** Cluster sizes to draw from (default 3 and 5). */
  readonly nodes?: readonly (3 | 5 | 7)[];
  /** TEST-ONLY: deliberate core bugs, to show the checks catch them. */
  readonly bugs?: RaftBugs;
  /** Run the persist-before-send and durable-vote checks (default true). */
  readonly durabilityChecks?: boolean;
  /** Run the §5.4.2 commit-rule check (default true). */
  readonly commitRuleCheck?: boolean;
  /** TEST-ONLY: nodes answer reads locally without ReadIndex (the history check must fail). */
  readonly unsafeLocalReads?: boolean;
  /** Override the drawn choice of whether a leader sends while its own write is in flight (§10.2.1). */
  readonly leaderSendsBeforePersist?: boolean;
  /**
   * TEST-ONLY: the storage acknowledges a save before it is synced, so the shell sends (and
   * applies) what the save promises before it is durable.
   */
  readonly sendBeforePersist?: boolean;
  /**
   * `model` (default): RaftNode stores through the RaftDisk model; `file`: through the real
   * FileStorage (WAL + snapshot files, recovery) on a simulated disk that loses or tears what
   * was not synced.
   */
  readonly storage?: 'model' | 'file';
  /** Overrides of the drawn core options (to explore one corner; the draws are unchanged). */
  readonly raft?: Partial<RaftNodeCoreOptions>;
  /** Override of the drawn compaction interval (entries applied between snapshots; 0: never). */
  readonly snapshotEvery?: number;
  /** Record every network send and delivery in the trace (default true; off is faster). */
  readonly traceMessages?: boolean;
  /**
   * The nemesis also replaces nodes (RaftNemesis.replace: a voter, often the leader, swapped
   * for a node outside the configuration through single-server changes, under the faults);
   * at least one spare node then. Default false: existing seeds keep their schedules.
   */
  readonly replace?: boolean;
}

/** Simulated time per tick. */
const tickMs = 10;

/** The Raft scenario (see the file header). */
export function raftScenario(options: RaftScenarioOptions = {}): Scenario {
  const name = options.name ?? 'raft';
  return {
    name,
    description:
      'The production RaftNode over a faulty network and disk: nemesis, invariants after every event, liveness after heal, linearizable KV history',
    run: (ctx) => runRaft(ctx, options),
  };
}

/** What the Raft scenario plugs into the cluster harness: its nodes, its workload and its history check. */
function raftPlugin(): RaftClusterPlugin<SimRaftNode> {
  return {
    makeNode: (nodeOptions) => new RaftScenarioNode(nodeOptions),
    probe(leader, seq, done) {
      leader.propose({ f: 'put', key: '_probe', value: `${seq}`, client: -1, seq }, done);
    },
    workload(env) {
      const workload = new Workload({
        scheduler: env.ctx.scheduler,
        random: env.ctx.random.fork('workload'),
        nodes: env.nodes,
        clients: env.clients,
        keys: env.keys,
        thinkMsMax: 40,
        timeoutMs: 400,
        readShare: 0.3,
        leaderShare: 0.7,
        leader: () => env.nemesis.leader(),
        counts: env.ctx.counts,
      });
      return {
        start: () => workload.start(Number.MAX_SAFE_INTEGER),
        stop: () => workload.stop(),
        check() {
          const history = workload.recorder.history();
          const result = checkLinearizability(history, kvModel(), { maxSteps: 200_000 });
          env.ctx.counts[`linearizability ${result.verdict}`] = 1;
          if (result.verdict === 'not-linearizable') {
            throw new CheckFailure(`client history not linearizable: ${formatCheckResult(result)}`);
          }
        },
      };
    },
  };
}

/** What a workload sees of the cluster the harness built. */
export interface RaftClusterEnv<N extends SimRaftNodeBase> {
  readonly ctx: ScenarioContext;
  /** The network (a workload may add client nodes to it). */
  readonly network: SimNetwork<SimWire>;
  readonly nodes: readonly N[];
  readonly nemesis: RaftNemesis<N>;
  readonly invariants: RaftInvariants;
  /** Clients and keys drawn from the seed (a workload may use them or draw its own). */
  readonly clients: number;
  readonly keys: number;
  /** Simulated time per tick. */
  readonly tickMs: number;
}

/** A workload the harness starts with the faults, stops after liveness, and checks at the end. */
export interface RaftClusterWorkload {
  start(): void;
  /** Stop invoking operations (those in flight end normally). */
  stop(): void;
  /** The end-of-run checks (history, ...); throws CheckFailure on a violation. */
  check(): void;
}

/**
 * What a scenario plugs into {@link runRaftCluster}: how to build each node
 * (its shell and state machine), the liveness probe's proposal, and the
 * client workload with its checks.
 */
export interface RaftClusterPlugin<N extends SimRaftNodeBase> {
  /** Builds one node (a RaftNodeHost with the scenario's state machine) from the drawn options. */
  makeNode(options: SimRaftNodeOptions): N;
  /** Proposes a fresh entry through `leader` for the liveness check; `done` when it ends there. */
  probe(leader: N, seq: number, done: (outcome: RequestOutcome) => void): void;
  workload(env: RaftClusterEnv<N>): RaftClusterWorkload;
}

async function runRaft(ctx: ScenarioContext, options: RaftScenarioOptions): Promise<void> {
  await runRaftCluster(ctx, options, raftPlugin());
}

/**
 * The Raft cluster harness shared by the Raft and KV scenarios: draws the
 * cluster, core, disk and fault parameters from the seed, builds the nodes
 * with `plugin`, runs faults, heal, liveness, then the workload's checks (see
 * the file header). `options` supplies the overrides and test-only switches.
 */
export async function runRaftCluster<N extends SimRaftNodeBase>(
  ctx: ScenarioContext,
  options: RaftScenarioOptions,
  plugin: RaftClusterPlugin<N>,
): Promise<void> {
  const { scheduler, trace, params, counts } = ctx;
  const p = ctx.random.fork('params');
  const sizes = options.nodes ?? [3, 5];
  const voters = p.pick(sizes);
  const drawnSpares = p.intBetween(0, 2);
  const spares = options.replace === true ? Math.max(1, drawnSpares) : drawnSpares;
  const electionTicks = p.intBetween(8, 15);
  const heartbeatTicks = p.intBetween(1, 3);
  // A quarter of the seeds churn leaders hard: frequent leader crashes and isolations, one entry
  // per append. That is where old-term entries meet new leaders (Raft §5.4.2, Figure 8).
  const churn = p.chance(0.25);
  const raft = {
    electionTicks,
    heartbeatTicks,
    maxAppendEntries: churn ? 1 : p.pick([1, 3, 16, 512]),
    maxInflightAppends: p.pick([1, 2, 8, 256]),
    snapshotChunkBytes: p.pick([16, 64, 1024]),
    // Off in some seeds: more disruptive elections and leaders that linger in a minority.
    preVote: p.chance(0.7),
    checkQuorum: p.chance(0.7),
    ...options.raft,
  };
  const drawnSnapshotEvery = p.chance(0.2) ? 0 : p.intBetween(3, 40);
  const snapshotEvery = options.snapshotEvery ?? drawnSnapshotEvery;
  const diskMaxMs = p.pick([0, 2, 10, 30]);
  // Drawn from its own stream so adding it did not change the other draws of existing seeds.
  const leaderSendsBeforePersist =
    options.leaderSendsBeforePersist ?? ctx.random.fork('params:shell').chance(0.5);
  const faultMs = p.intBetween(800, 3000);
  const everyMs = churn ? p.intBetween(10, 60) : p.intBetween(20, 250);
  const linkFaultsMax = {
    drop: p.pick([0, 0.05, 0.2, 0.4]),
    duplicate: p.pick([0, 0.05, 0.2]),
    delayMs: p.pick([2, 10, 40]),
  };
  const weights = drawNemesisWeights(p.fork('weights'), churn);
  // Its own stream: the other draws of a seed are the same with and without replacements.
  const replaceWeight =
    options.replace === true ? ctx.random.fork('params:replace').intBetween(2, 6) : 0;
  const livenessTicks = 40 * electionTicks;
  const clients = p.intBetween(2, 4);
  const keys = p.intBetween(1, 3);
  Object.assign(params, {
    churn,
    voters,
    spares,
    raft: { ...raft, bugs: options.bugs ?? {} },
    snapshotEvery,
    diskMaxMs,
    leaderSendsBeforePersist,
    faultMs,
    nemesisEveryMs: everyMs,
    linkFaultsMax,
    weights,
    livenessTicks,
    clients,
    keys,
    ...(replaceWeight > 0 ? { replaceWeight } : {}),
  });

  const invariants = new RaftInvariants({
    durability: options.durabilityChecks ?? true,
    commitRule: options.commitRuleCheck ?? true,
  });
  const net = new SimNetwork<SimWire>({
    scheduler,
    random: ctx.random.fork('net'),
    // The production wire codecs (Raft's validating on encode too; wire.ts).
    codec: simWireCodec(),
    // RPC (KV clients and servers) runs over TCP in production: in order, never duplicated.
    ordered: isRpcMessage,
    ...(options.traceMessages === false ? {} : { trace }),
    faults: { dropProbability: 0, duplicateProbability: 0, delay: { minMs: 1, maxMs: 5 } },
  });
  const ids: NodeId[] = Array.from({ length: voters + spares }, (_, i) => nodeId(`n${i + 1}`));
  const bootstrap: ClusterConfig = { voters: ids.slice(0, voters), learners: [] };
  const empty: ClusterConfig = { voters: [], learners: [] };
  const nodes: N[] = ids.map((id, i) =>
    plugin.makeNode({
      id,
      bootstrap: i < voters ? bootstrap : empty,
      raft,
      ...(options.bugs === undefined ? {} : { bugs: options.bugs }),
      random: ctx.random.fork(`node:${id}`),
      invariants,
      trap: ctx.trap,
      diskDelayMs: { minMs: 0, maxMs: diskMaxMs },
      snapshotEvery,
      tickMs,
      storage: options.storage ?? 'model',
      counts,
      ...(options.unsafeLocalReads === true ? { unsafeLocalReads: true } : {}),
      ...(options.sendBeforePersist === true ? { sendBeforePersist: true } : {}),
      leaderSendsBeforePersist,
    }),
  );
  const byId = new Map(nodes.map((n) => [n.id, n]));
  net.observe((e) => {
    // Sends happen inside RaftNode's promise callbacks too: failures go through the trap.
    if (e.kind === 'send' && !isRpcMessage(e.message)) {
      const disk = byId.get(e.from)?.disk;
      const m = e.message;
      if (disk !== undefined) ctx.trap.guard(() => invariants.onSend(e.from, m, disk));
    }
  });
  // RaftNode ticks on its own (virtual) clock: no network ticker.
  for (const n of nodes) net.addNode(n.id, n);

  /** After each event and its callbacks: failures raised in callbacks, then the invariants. */
  const afterEach = (): void => {
    ctx.trap.throwIfFailed();
    // A node's state changes only in its own events: check() skips the nodes not touched.
    for (const n of nodes) n.check();
  };
  /** Runs the events due by `untilMs`, then moves the clock there. */
  const runUntil = async (untilMs: number): Promise<void> => {
    await drive(scheduler, {
      until: () => (scheduler.peekTime() ?? Infinity) > untilMs,
      afterEach,
    });
    scheduler.run({ untilMs }); // nothing is due by then: just moves the clock
  };

  const nemesis = new RaftNemesis({
    network: net,
    scheduler,
    random: ctx.random.fork('nemesis'),
    trace,
    nodes,
    weights,
    everyMs,
    maxDown: p.intBetween(1, voters + spares),
    minVoters: 2,
    faultMsMax: 500,
    linkFaultsMax,
    counts,
    replaceWeight,
  });
  const workload = plugin.workload({
    ctx,
    network: net,
    nodes,
    nemesis,
    invariants,
    clients,
    keys,
    tickMs,
  });

  // Phase 1: faults.
  workload.start();
  nemesis.start(faultMs);
  await runUntil(faultMs);

  // Phase 2: heal, then liveness within a bound of ticks.
  nemesis.healAll();
  trace.record(scheduler.now(), 'heal-all');
  const healedAt = scheduler.now();
  const deadline = healedAt + livenessTicks * tickMs;
  const live = livenessProbe(nodes, nemesis, scheduler.now.bind(scheduler), (l, s, d) =>
    plugin.probe(l, s, d),
  );
  let alive = false;
  await drive(scheduler, {
    until: () => scheduler.now() > deadline || (alive = live.done()),
    afterEach,
  });
  if (!alive || scheduler.now() > deadline) {
    throw new CheckFailure(
      `liveness: ${live.why()} within ${livenessTicks} ticks after the faults healed ` +
        `(at ${healedAt} ms); nodes: ${statusLine(nodes)}`,
    );
  }
  counts['liveness ms after heal'] = scheduler.now() - healedAt;

  // Phase 3: stop the clients, let in-flight operations settle, check the history.
  workload.stop();
  await runUntil(scheduler.now() + 500);
  counts['max committed index'] = invariants.maxCommitted();
  counts['terms with a leader'] = invariants.leadersByTerm().size;
  for (const [k, v] of Object.entries(invariants.counts)) counts[`checks ${k}`] = v;
  workload.check();
}

/** One line per node: role, term, commit, applied, config. */
function statusLine(nodes: readonly SimRaftNodeBase[]): string {
  return nodes
    .map((n) => {
      const s = n.status();
      if (s === undefined) return `${n.id}:down`;
      return `${n.id}:${s.role}/t${s.term}/c${s.commit}/a${s.applied}/last${s.lastIndex}/voters[${s.config.voters.join(',')}]learners[${s.config.learners.join(',')}]`;
    })
    .join(' ');
}

/**
 * Liveness after heal: a leader accepts a fresh proposal, applies it, and every
 * member of its configuration applies up to it. Polled after every event.
 */
function livenessProbe<N extends SimRaftNodeBase>(
  nodes: readonly N[],
  nemesis: RaftNemesis<N>,
  now: () => number,
  probe: RaftClusterPlugin<N>['probe'],
): { done(): boolean; why(): string } {
  let seq = 0;
  let inFlight = false;
  let target: { index: number; leader: N } | undefined;
  let lastTry = -Infinity;
  let stage = 'no leader was elected';
  return {
    why: () => stage,
    done(): boolean {
      if (target !== undefined) {
        const s = target.leader.status();
        if (s === undefined) {
          target = undefined;
          return false;
        }
        const behind = members(s.config).filter((id) => {
          const applied = nodes.find((x) => x.id === id)?.status()?.applied ?? -1;
          return applied < (target as { index: number }).index;
        });
        if (behind.length === 0) return true;
        stage = `members ${behind.join(',')} did not apply index ${target.index}`;
        return false;
      }
      // A proposal the leader lost track of (it stepped down) is retried after a while.
      if (inFlight && now() - lastTry > 30 * tickMs) inFlight = false;
      if (inFlight || now() - lastTry < tickMs) return false;
      const leader = nemesis.leader();
      if (leader === undefined) return false;
      lastTry = now();
      inFlight = true;
      stage = `leader ${leader.id} did not commit a fresh proposal`;
      const mine = ++seq;
      probe(leader, mine, (outcome) => {
        if (mine !== seq) return;
        inFlight = false;
        const applied = leader.status()?.applied;
        if (outcome === 'ok' && applied !== undefined) target = { index: applied, leader };
      });
      return false;
    },
  };
}
