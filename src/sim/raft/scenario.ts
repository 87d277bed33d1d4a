/**
 * The Raft simulation scenario: a cluster of 3, 5 or 7 real {@link RaftCore}s
 * (plus spare nodes to add) over the simulated network and disk, a seeded
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
 * Registered variants (src/sim/scenarios.ts): `raft` (3 or 5 voters, the
 * simulator's shell), `raft-7` (7 voters) and `raft-production` (the
 * production RaftNode shell). `npm run sim -- --scenario raft --seeds 100000`
 * runs many seeds and prints counts by outcome; a failure prints the seed, the
 * drawn parameters, the last events and the replay command.
 *
 * The cluster harness ({@link runRaftCluster}) is shared: the KV scenario
 * (src/sim/kv) plugs in its own nodes (the real KV state machine on either
 * shell), liveness probe and workload through a {@link RaftClusterPlugin},
 * and gets the same draws, nemesis, invariants and liveness check.
 */
import { nodeId } from '../../lib/ids.js';
import type { NodeId } from '../../lib/ids.js';
import { members } from '../../raft/core/config.js';
import type { RaftMessage } from '../../raft/core/messages.js';
import type { RaftBugs, RaftOptions } from '../../raft/core/raft-core.js';
import { raftMessagesCodec } from '../../raft/raft-messages-codec.js';
import type { ClusterConfig } from '../../raft/core/types.js';
import { checkLinearizability, formatCheckResult } from '../checkers/linearizability.js';
import { kvModel } from '../checkers/models.js';
import { SimNetwork } from '../network.js';
import { CheckFailure } from '../scenario.js';
import type { Scenario, ScenarioContext } from '../scenario.js';
import { RaftInvariants } from './invariants.js';
import { RaftNemesis, drawNemesisWeights } from './nemesis.js';
import { RaftSimNode } from './node.js';
import type { RaftSimNodeOptions, RequestOutcome, SimRaftNode, SimRaftNodeBase } from './node.js';
import { ProductionSimNode, settle } from './production-node.js';
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
  /** TEST-ONLY: the shell sends a Ready's messages before its write is synced. */
  readonly sendBeforePersist?: boolean;
  /**
   * Which shell runs each core: the simulator's own (`sim`, default: synchronous, fast) or
   * the production RaftNode (`production`: the shell that ships, driven by an async loop).
   * The production shell takes no core bug switches.
   */
  readonly shell?: 'sim' | 'production';
  /**
   * With the production shell: `model` (default) stores through the RaftDisk model; `file`
   * through the real FileStorage (WAL + snapshot files, recovery) on a simulated disk that
   * loses or tears what was not synced.
   */
  readonly storage?: 'model' | 'file';
  /** Overrides of the drawn core options (to explore one corner; the draws are unchanged). */
  readonly raft?: Partial<Omit<RaftOptions, 'id' | 'random' | 'bugs'>>;
  /** Override of the drawn compaction interval (entries applied between snapshots; 0: never). */
  readonly snapshotEvery?: number;
  /** Record every network send and delivery in the trace (default true; off is faster). */
  readonly traceMessages?: boolean;
}

/** Simulated time per tick. */
const tickMs = 10;

/** The Raft scenario (see the file header). */
export function raftScenario(options: RaftScenarioOptions = {}): Scenario {
  const name = options.name ?? 'raft';
  return {
    name,
    description:
      'Raft cores over a faulty network and disk: nemesis, invariants after every event, liveness after heal, linearizable KV history',
    run: (ctx) => runRaft(ctx, options),
  };
}

/** What the Raft scenario plugs into the cluster harness: its nodes, its workload and its history check. */
function raftPlugin(options: RaftScenarioOptions): RaftClusterPlugin<SimRaftNode> {
  const production = options.shell === 'production';
  return {
    async: production,
    makeNode(nodeOptions, env) {
      if (!production) return new RaftSimNode(nodeOptions);
      const { bootstrap } = nodeOptions;
      const peers = bootstrap.voters.includes(nodeOptions.id)
        ? bootstrap.voters.filter((v) => v !== nodeOptions.id)
        : [];
      return new ProductionSimNode({
        ...nodeOptions,
        peers,
        tickMs: env.tickMs,
        storage: options.storage ?? 'model',
      });
    },
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
  /** True when nodes run on promises (the production shell): the run steps the event loop after every event. */
  readonly async?: boolean;
  makeNode(options: RaftSimNodeOptions, env: { readonly tickMs: number }): N;
  /** Proposes a fresh entry through `leader` for the liveness check; `done` when it ends there. */
  probe(leader: N, seq: number, done: (outcome: RequestOutcome) => void): void;
  workload(env: RaftClusterEnv<N>): RaftClusterWorkload;
}

async function runRaft(ctx: ScenarioContext, options: RaftScenarioOptions): Promise<void> {
  await runRaftCluster(ctx, options, raftPlugin(options));
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
  const spares = p.intBetween(0, 2);
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
    ...(options.bugs === undefined ? {} : { bugs: options.bugs }),
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
  });

  const invariants = new RaftInvariants({
    durability: options.durabilityChecks ?? true,
    commitRule: options.commitRuleCheck ?? true,
  });
  const net = new SimNetwork<RaftMessage>({
    scheduler,
    random: ctx.random.fork('net'),
    // The production wire codec (schemas + the core's checks), validating on encode too.
    codec: raftMessagesCodec({ validateOnEncode: true }),
    ...(options.traceMessages === false ? {} : { trace }),
    faults: { dropProbability: 0, duplicateProbability: 0, delay: { minMs: 1, maxMs: 5 } },
  });
  const ids: NodeId[] = Array.from({ length: voters + spares }, (_, i) => nodeId(`n${i + 1}`));
  const bootstrap: ClusterConfig = { voters: ids.slice(0, voters), learners: [] };
  const empty: ClusterConfig = { voters: [], learners: [] };
  const production = plugin.async === true;
  const nodes: N[] = ids.map((id, i) => {
    const nodeOptions: RaftSimNodeOptions = {
      id,
      bootstrap: i < voters ? bootstrap : empty,
      raft,
      random: ctx.random.fork(`node:${id}`),
      invariants,
      diskDelayMs: { minMs: 0, maxMs: diskMaxMs },
      snapshotEvery,
      counts,
      ...(options.unsafeLocalReads === true ? { unsafeLocalReads: true } : {}),
      ...(options.sendBeforePersist === true ? { sendBeforePersist: true } : {}),
      leaderSendsBeforePersist,
    };
    return plugin.makeNode(nodeOptions, { tickMs });
  });
  const byId = new Map(nodes.map((n) => [n.id, n]));
  net.observe((e) => {
    if (e.kind === 'send') invariants.onSend(e.from, e.message, (byId.get(e.from) as N).disk);
  });
  // The production shell ticks on its own clock; the simulator's shell on the network's ticker.
  for (const n of nodes) net.addNode(n.id, n, production ? {} : { tickMs });

  /** Runs events due by `untilMs`; with the production shell, the event loop turns after each. */
  const runUntil = async (untilMs: number): Promise<void> => {
    if (!production) {
      scheduler.run({ untilMs });
      return;
    }
    for (;;) {
      const next = scheduler.peekTime();
      if (next === undefined || next > untilMs) break;
      await stepProduction();
    }
    scheduler.run({ untilMs }); // nothing is due by then: just moves the clock
  };
  const stepProduction = async (): Promise<boolean> => {
    const stepped = scheduler.step();
    await settle();
    for (const n of nodes) n.check();
    return stepped;
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
  });
  const workload = plugin.workload({ ctx, nodes, nemesis, invariants, clients, keys, tickMs });

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
  while (!live.done()) {
    const stepped = production ? await stepProduction() : scheduler.step();
    if (scheduler.now() > deadline || !stepped) {
      throw new CheckFailure(
        `liveness: ${live.why()} within ${livenessTicks} ticks after the faults healed ` +
          `(at ${healedAt} ms); nodes: ${statusLine(nodes)}`,
      );
    }
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
      const s = n.core?.status();
      if (s === undefined) return `${n.id}:down`;
      return `${n.id}:${s.role}/t${s.term}/c${s.commit}/a${n.sm.index}/last${s.lastIndex}/voters[${s.config.voters.join(',')}]learners[${s.config.learners.join(',')}]`;
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
        const s = target.leader.core?.status();
        if (s === undefined) {
          target = undefined;
          return false;
        }
        const behind = members(s.config).filter((id) => {
          const n = nodes.find((x) => x.id === id);
          return n === undefined || n.sm.index < (target as { index: number }).index;
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
        if (outcome === 'ok') target = { index: leader.sm.index, leader };
      });
      return false;
    },
  };
}
