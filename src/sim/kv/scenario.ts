/**
 * The KV simulation scenario: the replicated key-value store itself — every
 * node's state machine is the real {@link KvStateMachine} behind the
 * production Raft adapter — on the Raft simulator's cluster harness (the same
 * seeded cluster, core, disk and fault draws as the `raft` scenario, the same
 * nemesis with partitions, crashes with torn writes, membership changes and
 * snapshots, Raft's invariants after every event, liveness after heal).
 *
 * ```ts
 * registerScenario(kvScenario());                  // `npm run sim -- --scenario kv --seed 7`
 * const r = await runScenario(kvScenario(), { seed: 7 });
 * const buggy = kvScenario({ name: 'kv-bug', replicaBugs: { dropSessions: true } });
 * ```
 *
 * On top of the harness: clients with registered exactly-once sessions
 * (expiring by log time, TTL drawn per seed) doing get, put,
 * CAS and delete with retries, serializable gets, a compactor proposing MVCC
 * compaction now and then (workload.ts); and at the end the history checks
 * (linearizable; every answer agrees with the revision log), the state checks
 * (checks.ts: equal replica states at equal applied index; exactly-once) and
 * every acknowledged write present on every replica. With `leases` (drawn on
 * most seeds), the leader runs a lease clock and clients hold leases
 * (leases.ts): no lease expires before its TTL has passed since its holder's
 * last acknowledged keep-alive was sent, across leader changes.
 *
 * Registered variants (src/sim/scenarios.ts): `kv` (the simulator's shell,
 * thousands of seeds per CI run), `kv-production` (the production RaftNode
 * shell: its propose, ReadIndex read and snapshot paths) and
 * `kv-production-file` (plus the real FileStorage on a disk that loses and
 * tears unsynced writes). The shell, storage and core bug switches come from
 * the Raft scenario's options; the production shell takes no core bug switch.
 */
import { limits } from '../../lib/limits.js';
import { encodeKvEntry } from '../../host/kv-state-machine.js';
import type { RaftScenarioOptions } from '../raft/scenario.js';
import { runRaftCluster } from '../raft/scenario.js';
import { RaftSimNodeOf } from '../raft/node.js';
import type { Scenario, ScenarioContext } from '../scenario.js';
import { KvStateChecks } from './checks.js';
import { LeaseDriver, LeaseClients } from './leases.js';
import type { LeaseDriverBugs } from './leases.js';
import { ProductionKvReplica, kvReplicaFactory } from './replica.js';
import type { KvReplicaBugs, KvReplicaOptions, SimKvReplica } from './replica.js';
import { ProductionSimNodeOf } from '../raft/production-node.js';
import { KvWorkload } from './workload.js';
import type { KvSimNode } from './requests.js';
import type { KvApplied } from '../../kv/core/types.js';

/** Options for {@link kvScenario}. */
export interface KvScenarioOptions extends Pick<
  RaftScenarioOptions,
  | 'nodes'
  | 'bugs'
  | 'raft'
  | 'snapshotEvery'
  | 'traceMessages'
  | 'unsafeLocalReads'
  | 'shell'
  | 'storage'
> {
  /** Scenario name (default `kv`). */
  readonly name?: string;
  /** TEST-ONLY: deliberate replica bugs (e.g. sessions ignored), to show the checks catch them. */
  readonly replicaBugs?: KvReplicaBugs;
  /** Override the drawn choice of running leases. */
  readonly leases?: boolean;
  /** TEST-ONLY: deliberate bugs of the leader's lease clock driver. */
  readonly leaseBugs?: LeaseDriverBugs;
  /** Override the drawn TTL of the clients' sessions (log time, ms). */
  readonly sessionTtlMs?: number;
}

/** The KV scenario (see the file header). */
export function kvScenario(options: KvScenarioOptions = {}): Scenario {
  return {
    name: options.name ?? 'kv',
    description:
      'The KV store (real KvStateMachine) on the Raft simulator: sessions, CAS, deletes, leases, compaction under the nemesis; linearizable history, revision log, equal replica states',
    run: (ctx) => runKv(ctx, options),
  };
}

async function runKv(ctx: ScenarioContext, options: KvScenarioOptions): Promise<void> {
  // Drawn from the scenario's own stream, so the harness's draws match the raft scenario's.
  const p = ctx.random.fork('params:kv');
  const sampleEvery = p.pick([1, 4, 16]);
  const leases = options.leases ?? p.chance(0.7);
  const mix = {
    get: p.intBetween(1, 4),
    serializable: p.intBetween(0, 2),
    put: p.intBetween(1, 4),
    cas: p.intBetween(1, 4),
    delete: p.intBetween(0, 2),
  };
  const compactEveryMs = p.chance(0.3) ? 0 : p.intBetween(50, 400);
  // Share of requests sent to the actual leader; the rest go where the client believes it is.
  const leaderShare = p.pick([0.2, 0.5, 0.8]);
  const stickyReader = p.chance(0.5);
  // A KV snapshot is kilobytes (the Raft scenario's map is bytes): chunks from 64 bytes up, so
  // transfers are chunked but finish within an election timeout or so. (With 16-byte chunks, a
  // removed server that never learned of its removal, with pre-vote and check-quorum both off,
  // forces an election every timeout and the transfer never completes: raft-core.ts documents
  // that corner, which the Raft scenario explores.)
  const snapshotChunkBytes = p.pick([64, 256, 4096]);
  const leaseDriver = leases
    ? new LeaseDriver(ctx.scheduler, ctx.counts, {
        random: p.fork('lease-driver'),
        bugs: options.leaseBugs ?? {},
      })
    : undefined;
  // Its own stream, so the draws above keep their meaning. Short TTLs make sessions expire
  // under the nemesis (a client stuck retrying, a lease client idling between leases).
  const sessionTtlMs =
    options.sessionTtlMs ??
    ctx.random
      .fork('params:kv-sessions')
      .pick([limits.kvSessionTtlMsMin, 1_500, limits.kvSessionTtlMsDefault]);
  const production = options.shell === 'production';
  const checks = new KvStateChecks({ sampleEvery, counts: ctx.counts });
  ctx.params['kv'] = {
    sampleEvery,
    leases,
    mix,
    compactEveryMs,
    leaderShare,
    stickyReader,
    sessionTtlMs,
    ...(leaseDriver?.params ?? {}),
  };
  await runRaftCluster<KvSimNode>(
    ctx,
    { ...options, raft: { snapshotChunkBytes, ...options.raft } },
    {
      async: production,
      makeNode(nodeOptions, env) {
        const replica: KvReplicaOptions = {
          node: nodeOptions.id,
          checks,
          ...(options.replicaBugs === undefined ? {} : { bugs: options.replicaBugs }),
          ...(leaseDriver === undefined ? {} : { listener: leaseDriver.listener }),
        };
        if (!production) {
          return new RaftSimNodeOf<SimKvReplica, KvApplied>(nodeOptions, kvReplicaFactory(replica));
        }
        const { bootstrap } = nodeOptions;
        const peers = bootstrap.voters.includes(nodeOptions.id)
          ? bootstrap.voters.filter((v) => v !== nodeOptions.id)
          : [];
        return new ProductionSimNodeOf<ProductionKvReplica, KvApplied>(
          { ...nodeOptions, peers, tickMs: env.tickMs, storage: options.storage ?? 'model' },
          (onApplied) => new ProductionKvReplica(replica, onApplied),
        );
      },
      probe(leader, seq, done) {
        const entry = encodeKvEntry({
          command: { type: 'put', key: kvBytes('_probe'), value: kvBytes(`probe.${seq}`) },
        });
        leader.proposeData(entry, done);
      },
      workload(env) {
        const w = ctx.random.fork('kv-workload');
        const attemptMs = w.intBetween(100, 400);
        const deadlineMs = w.intBetween(600, 2000);
        const workload = new KvWorkload({
          scheduler: ctx.scheduler,
          random: w,
          nodes: env.nodes,
          clients: env.clients,
          keys: env.keys,
          mix,
          thinkMsMax: 40,
          attemptMs,
          deadlineMs,
          leaderShare,
          leader: () => env.nemesis.leader(),
          stickyReader,
          checks,
          counts: ctx.counts,
          sessionTtlMs,
        });
        const leaseClients =
          leaseDriver === undefined
            ? undefined
            : new LeaseClients({
                scheduler: ctx.scheduler,
                random: ctx.random.fork('kv-leases'),
                nodes: env.nodes,
                clients: w.intBetween(1, 2),
                leaderShare,
                leader: () => env.nemesis.leader(),
                attemptMs,
                deadlineMs,
                driver: leaseDriver,
                counts: ctx.counts,
                sessionTtlMs,
              });
        let stopped = false;
        const compact = (): void => {
          if (stopped || compactEveryMs === 0) return;
          ctx.scheduler.after(compactEveryMs, 'kv compactor', () => {
            proposeCompaction(env.nemesis.leader(), ctx.counts);
            compact();
          });
        };
        return {
          start() {
            leaseDriver?.start(env.nodes, env.tickMs);
            workload.start();
            leaseClients?.start();
            compact();
          },
          stop() {
            stopped = true;
            workload.stop();
            leaseClients?.stop();
          },
          check() {
            workload.check();
            workload.checkFinal(env.nodes);
            leaseClients?.check();
            // Every up replica's whole state, compared with the others at equal applied index.
            for (const n of env.nodes) {
              if (!n.up) continue;
              checks.onState(n.id, n.sm.index, n.sm.kvSnapshot(), 'end of run');
              checks.checkReplay(n.id, n.sm.kv, 'end of run');
            }
          },
        };
      },
    },
  );
}

const encoder = new TextEncoder();

function kvBytes(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Proposes MVCC compaction through `leader`, keeping the last few revisions (or none). */
function proposeCompaction(leader: KvSimNode | undefined, counts: Record<string, number>): void {
  if (leader === undefined) return;
  const store = leader.sm.kv;
  const keep = store.revision % 3 === 0 ? 0 : 5;
  const revision = store.revision - keep;
  if (revision <= store.compactedRevision) return;
  leader.proposeData(encodeKvEntry({ command: { type: 'compact', revision } }), (outcome, out) => {
    const what = outcome === 'ok' && out !== undefined && !out.ok ? out.error.code : outcome;
    counts[`compaction ${what}`] = (counts[`compaction ${what}`] ?? 0) + 1;
  });
}
