/**
 * The KV simulation scenario: the replicated key-value store as it ships, on
 * the Raft simulator's cluster harness (the same seeded cluster, core, disk
 * and fault draws as the `raft` scenario, the same nemesis with partitions,
 * crashes with torn writes, membership changes and snapshots, Raft's
 * invariants after every event, liveness after heal). Every node runs the
 * production shells (server-node.ts): RaftNode over the node's state machine
 * (the real {@link KvStateMachine}), and the KV server on an RPC node over the
 * simulated network, with its leader duties (lease clock and expiry,
 * checkpoints, compaction) on virtual time. The clients are production
 * {@link KvClient}s (client-node.ts) on that network.
 *
 * ```ts
 * registerScenario(kvScenario());                  // `npm run sim -- --scenario kv --seed 7`
 * const r = await runScenario(kvScenario(), { seed: 7 });
 * const buggy = kvScenario({ name: 'kv-bug', replicaBugs: { dropSessions: true } });
 * ```
 *
 * On top of the harness: clients doing get, put, CAS and delete through the
 * KvClient (which finds the leader, follows redirects, registers its
 * exactly-once sessions and retries under them, registering again when one
 * expired), serializable gets (workload.ts); the sessions' TTL of log time
 * is drawn per seed, from the shortest allowed up; with `leases` (drawn on most
 * seeds), lease clients granting, using and keeping alive leases
 * (leases.ts). At the end: the history checks (linearizable; every answer
 * agrees with the revision log; revisions respect real time), the state
 * checks (checks.ts: equal replica states at equal applied index;
 * exactly-once), every acknowledged write present on every replica, and no
 * lease expired before its TTL had passed since its holder's last
 * acknowledged keep-alive was sent, across leader changes.
 *
 * Registered variants (src/sim/scenarios.ts): `kv`, `kv-file` (the real
 * FileStorage on a disk that loses and tears unsynced writes) and
 * `kv-members` (nodes replaced under the faults as well);
 * `kv-production` and `kv-production-file` are older names of the two. The
 * storage and core bug switches come from the Raft scenario's options.
 */
import { limits } from '../../lib/limits.js';
import { encodeKvEntry } from '../../host/kv-state-machine.js';
import type { RaftScenarioOptions } from '../raft/scenario.js';
import { runRaftCluster } from '../raft/scenario.js';
import type { Scenario, ScenarioContext } from '../scenario.js';
import { KvStateChecks } from './checks.js';
import { KvClientNode, clientIds } from './client-node.js';
import { LeaseClients, LeaseExpiries } from './leases.js';
import type { KvReplicaBugs } from './replica.js';
import { KvServerNode } from './server-node.js';
import { KvWorkload } from './workload.js';

/** Options for {@link kvScenario}. */
export interface KvScenarioOptions extends Pick<
  RaftScenarioOptions,
  | 'nodes'
  | 'bugs'
  | 'raft'
  | 'snapshotEvery'
  | 'traceMessages'
  | 'unsafeLocalReads'
  | 'storage'
  | 'replace'
> {
  /** Scenario name (default `kv`). */
  readonly name?: string;
  /** TEST-ONLY: deliberate replica bugs (e.g. sessions ignored), to show the checks catch them. */
  readonly replicaBugs?: KvReplicaBugs;
  /** Override the drawn choice of running leases. */
  readonly leases?: boolean;
  /** Override the drawn TTL (log time, ms) of the sessions the clients register. */
  readonly sessionTtlMs?: number;
}

/** The KV scenario (see the file header). */
export function kvScenario(options: KvScenarioOptions = {}): Scenario {
  return {
    name: options.name ?? 'kv',
    description:
      'The KV store as it ships (RaftNode, KvServer, KvClient) on the Raft simulator: sessions, CAS, deletes, leases, compaction under the nemesis; linearizable history, revision log, equal replica states',
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
  // The KV server's leader duties (kv/server.ts): lease grace (its electionTimeoutMs), lease
  // expiry ticks, checkpoints, and compaction of all but the last few revisions (0: never).
  const server = {
    electionTimeoutMs: p.pick([0, 0, 50, 300]),
    leaseTickMs: p.pick([10, 50, 100]),
    leaseCheckpointMs: p.pick([100, 300, 2000]),
    compactCheckMs: p.intBetween(50, 400),
    historyRevisionsKept: p.pick([0, 1, 5, 20]),
  };
  // A client's attempt deadline and how long it retries a call (KvClient's timeoutMs, retryMs).
  const timeoutMs = p.intBetween(100, 400);
  const retryMs = p.intBetween(600, 2000);
  // A KV snapshot is kilobytes (the Raft scenario's map is bytes): chunks from 64 bytes up, so
  // transfers are chunked but finish within an election timeout or so. (With 16-byte chunks, a
  // removed server that never learned of its removal, with pre-vote and check-quorum both off,
  // forces an election every timeout and the transfer never completes: raft-core.ts documents
  // that corner, which the Raft scenario explores.)
  const snapshotChunkBytes = p.pick([64, 256, 4096]);
  // The TTL of the sessions the clients register (KvClient's sessionTtlMs), from its own
  // stream so the draws above keep their meaning. The short ones make sessions expire under
  // the nemesis and between a lease client's leases, so the KvClient's re-registration runs.
  const sessionTtlMs =
    options.sessionTtlMs ??
    ctx.random
      .fork('params:kv-sessions')
      .pick([limits.kvSessionTtlMsMin, 1_500, limits.kvSessionTtlMsDefault]);
  const checks = new KvStateChecks({ sampleEvery, counts: ctx.counts });
  const expiries = new LeaseExpiries(ctx.scheduler, ctx.counts);
  ctx.params['kv'] = { sampleEvery, leases, mix, server, timeoutMs, retryMs, sessionTtlMs };
  const nodes: KvServerNode[] = [];
  await runRaftCluster<KvServerNode>(
    ctx,
    { ...options, raft: { snapshotChunkBytes, ...options.raft } },
    {
      makeNode(nodeOptions) {
        const node = new KvServerNode(nodeOptions, {
          replica: {
            node: nodeOptions.id,
            checks,
            ...(options.replicaBugs === undefined ? {} : { bugs: options.replicaBugs }),
            listener: (replica, e, out) => {
              if (out.ok && out.duplicate) bump(ctx.counts, 'kv session duplicates applied');
              if (out.ok && !out.duplicate && out.result.type === 'compact') {
                bump(ctx.counts, 'kv compactions applied');
              }
              expiries.listener(replica, e, out);
            },
          },
          server,
          deposed: (id) => {
            const term = nodes.find((n) => n.id === id)?.status()?.term ?? 0;
            return nodes.some((n) => (n.status()?.term ?? 0) > term);
          },
        });
        nodes.push(node);
        return node;
      },
      probe(leader, seq, done) {
        const entry = encodeKvEntry({
          command: { type: 'put', key: kvBytes('_probe'), value: kvBytes(`probe.${seq}`) },
        });
        leader.proposeData(entry, done);
      },
      workload(env) {
        const w = ctx.random.fork('kv-workload');
        const endpoints = env.nodes.map((n) => n.id);
        const addClients = (prefix: string, n: number): KvClientNode[] =>
          clientIds(prefix, n).map((id) => {
            const c = new KvClientNode(id, {
              endpoints,
              timeoutMs,
              retryMs,
              sessionTtlMs,
              trap: ctx.trap,
            });
            env.network.addNode(id, c, { unpartitioned: true });
            return c;
          });
        const workload = new KvWorkload({
          scheduler: ctx.scheduler,
          random: w,
          clients: addClients('c', env.clients),
          keys: env.keys,
          mix,
          thinkMsMax: 40,
          checks,
          trap: ctx.trap,
          counts: ctx.counts,
        });
        const leaseClients = leases
          ? new LeaseClients({
              scheduler: ctx.scheduler,
              random: ctx.random.fork('kv-leases'),
              clients: addClients('l', w.intBetween(1, 2)),
              expiries,
              trap: ctx.trap,
              counts: ctx.counts,
            })
          : undefined;
        return {
          start() {
            workload.start();
            leaseClients?.start();
          },
          stop() {
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

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

const encoder = new TextEncoder();

function kvBytes(text: string): Uint8Array {
  return encoder.encode(text);
}
