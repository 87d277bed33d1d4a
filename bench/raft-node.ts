/**
 * Throughput and latency of the Raft shell end to end: three RaftNodes in one
 * process, each with a TcpTransport on 127.0.0.1 and a FileStorage (fdatasync
 * on) in a temp directory. A closed loop of `c` concurrent clients proposes
 * 256-byte commands to the leader; each waits for its result (committed and
 * applied on the leader) before proposing again.
 *
 * ```
 * npx tsx bench/raft-node.ts                    # 3 s per concurrency, c = 1 and 64
 * npx tsx bench/raft-node.ts --seconds 5 --concurrency 1,16,64,256
 * BENCH_DIR=/some/disk npx tsx bench/raft-node.ts   # where the data dirs go (default: os.tmpdir())
 * BENCH_LEADER_WAITS=1 npx tsx bench/raft-node.ts    # leader sends only after its own fsync
 * ```
 *
 * Prints the load average at the start and end (with the warning of
 * bench/common.ts when it was above the cores), one line per concurrency
 * (proposals/s, p50, p99), then the ratio of the highest concurrency to c=1. All three nodes share this process and its
 * disk, so figures are a floor for separate machines; on a shared 2-core host
 * they are noisy.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { clusterId, nodeId } from '../src/lib/ids.js';
import type { NodeId } from '../src/lib/ids.js';
import { seededRandom } from '../src/lib/random.js';
import type { RaftMessage } from '../src/raft/core/messages.js';
import type { Entry } from '../src/raft/core/types.js';
import { raftMessagesCodec } from '../src/raft/raft-messages-codec.js';
import { RaftNode } from '../src/raft/raft-node.js';
import type { RaftStateMachine } from '../src/raft/raft-node.js';
import { FileStorage } from '../src/raft/storage/file-storage.js';
import { TcpTransport } from '../src/transport/tcp-transport.js';
import type { PeerAddress } from '../src/transport/tcp-transport.js';
import { startBench } from './common.js';

function arg(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? (process.argv[at + 1] ?? fallback) : fallback;
}

const seconds = Number(arg('seconds', '3'));
const concurrencies = arg('concurrency', '1,64').split(',').map(Number);

/** Counts applied bytes; the cheapest deterministic state machine. */
class CountMachine implements RaftStateMachine<number> {
  bytes = 0;
  apply(entry: Entry): number {
    this.bytes += entry.data.length;
    return this.bytes;
  }
  snapshot(): Uint8Array {
    return new TextEncoder().encode(String(this.bytes));
  }
  restore(data: Uint8Array): void {
    this.bytes = Number(new TextDecoder().decode(data));
  }
}

interface Cluster {
  readonly nodes: RaftNode<CountMachine>[];
  readonly dirs: string[];
}

async function startCluster(): Promise<Cluster> {
  const cluster = clusterId('bench-raft-node');
  const ids = ['n1', 'n2', 'n3'].map(nodeId);
  const logger = pino({ level: 'warn' }, pino.destination(2));
  const base = process.env.BENCH_DIR ?? tmpdir();
  const dirs: string[] = [];
  const transports = new Map<NodeId, TcpTransport<RaftMessage>>();
  const addresses = new Map<NodeId, PeerAddress>();
  for (const id of ids) {
    const t = await TcpTransport.start<RaftMessage>({
      self: id,
      clusterId: cluster,
      codec: raftMessagesCodec(),
      listen: { host: '127.0.0.1', port: 0 },
      peers: {},
      logger,
    });
    transports.set(id, t);
    addresses.set(id, t.address as PeerAddress);
  }
  for (const [id, t] of transports) {
    for (const [other, a] of addresses) if (other !== id) t.setPeer(other, a);
  }
  const nodes: RaftNode<CountMachine>[] = [];
  for (const [k, id] of ids.entries()) {
    const dir = await mkdtemp(join(base, `cohort-bench-raft-${id}-`));
    dirs.push(dir);
    nodes.push(
      await RaftNode.start({
        id,
        peers: ids.filter((p) => p !== id),
        transport: transports.get(id) as TcpTransport<RaftMessage>,
        storage: new FileStorage({ dir, clusterId: cluster, nodeId: id, logger }),
        stateMachine: new CountMachine(),
        random: seededRandom(k + 1),
        tickMs: 20,
        raft: { electionTicks: 10 },
        snapshotEntries: 50_000,
        leaderSendsBeforePersist: process.env.BENCH_LEADER_WAITS !== '1',
        logger,
      }),
    );
  }
  return { nodes, dirs };
}

async function leaderOf(nodes: readonly RaftNode<CountMachine>[]): Promise<RaftNode<CountMachine>> {
  for (;;) {
    const leader = nodes.find((n) => n.isLeader());
    if (leader !== undefined) {
      try {
        await leader.propose(new Uint8Array(1)); // committed in its term
        return leader;
      } catch {
        // lost it meanwhile; look again
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

interface Result {
  readonly c: number;
  readonly rate: number;
  readonly p50: number;
  readonly p99: number;
  readonly errors: number;
}

async function run(leader: RaftNode<CountMachine>, c: number, ms: number): Promise<Result> {
  const payload = new Uint8Array(256).fill(7);
  const latencies: number[] = [];
  let errors = 0;
  const start = performance.now();
  const end = start + ms;
  await Promise.all(
    Array.from({ length: c }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        try {
          await leader.propose(payload);
          latencies.push(performance.now() - t0);
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    c,
    rate: latencies.length / elapsed,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    errors,
  };
}

function fmtRate(r: number): string {
  return r >= 1000 ? `${(r / 1000).toFixed(1)}k/s` : `${r.toFixed(0)}/s`;
}

async function main(): Promise<void> {
  const bench = startBench(
    'raft-node',
    `3 RaftNodes in one process, TCP and fsync, ${seconds} s per concurrency (${concurrencies.join(', ')})`,
  );
  const { nodes, dirs } = await startCluster();
  try {
    const leader = await leaderOf(nodes);
    const results: Result[] = [];
    for (const c of concurrencies) {
      await run(leader, c, 300); // warm-up
      const r = await run(leader, c, seconds * 1000);
      results.push(r);
      console.log(
        `raft-node propose c=${c}: ${fmtRate(r.rate)}, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms` +
          (r.errors > 0 ? `, ${r.errors} errors` : ''),
      );
      bench.sample();
    }
    bench.finish();
    const first = results[0];
    const last = results[results.length - 1];
    if (first !== undefined && last !== undefined && results.length > 1) {
      console.log(`ratio c=${last.c} / c=${first.c}: ${(last.rate / first.rate).toFixed(2)}`);
    }
  } finally {
    await Promise.all(nodes.map((n) => n.close()));
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  }
}

await main();
