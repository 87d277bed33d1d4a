/**
 * CPU cost of the pure Raft core: entries committed per second by a 3-node
 * cluster in one process, messages handed over in memory (no encoding, no
 * disk, no timers). Proposals are made `batch` at a time before the cluster
 * runs its Ready cycles, so batch 64 shows what batching and pipelining buy.
 *
 * ```
 * npm run bench:raft-core               # 2 s per batch size
 * npm run bench:raft-core -- --seconds 5
 * ```
 *
 * Prints the load average at the start and end (with the warning of
 * bench/common.ts when it was above the cores), one line per batch size,
 * then the ratio batch 64 / batch 1.
 */
import type { NodeId } from '../src/lib/ids.js';
import { seededRandom } from '../src/lib/random.js';
import type { RaftMessage } from '../src/raft/core/messages.js';
import { RaftCore } from '../src/raft/core/raft-core.js';
import { emptyInitialState } from '../src/raft/core/types.js';
import { startBench } from './common.js';

const ids = ['n1', 'n2', 'n3'] as NodeId[];

interface Run {
  readonly entries: number;
  readonly seconds: number;
}

function runFor(batch: number, seconds: number): Run {
  const rng = seededRandom(42);
  const cores = new Map<NodeId, RaftCore>();
  for (const id of ids) {
    cores.set(
      id,
      new RaftCore(
        {
          id,
          random: rng.fork(id),
          electionTicks: 10,
          heartbeatTicks: 1,
          preVote: false,
          checkQuorum: false,
        },
        emptyInitialState,
        { voters: ids, learners: [] },
      ),
    );
  }
  const leader = cores.get('n1' as NodeId) as RaftCore;
  let queue: RaftMessage[] = [];
  const pump = (): void => {
    for (;;) {
      for (const core of cores.values()) {
        while (core.hasReady()) {
          const rd = core.ready();
          for (const m of rd.messages) queue.push(m);
          core.advance(rd);
        }
      }
      if (queue.length === 0) return;
      const now = queue;
      queue = [];
      for (const m of now) (cores.get(m.to) as RaftCore).step(m);
    }
  };
  leader.campaign();
  pump();
  const payload = new Uint8Array(64);
  const start = performance.now();
  const deadline = start + seconds * 1000;
  const startCommit = leader.status().commit;
  let rounds = 0;
  while ((rounds & 15) !== 0 || performance.now() < deadline) {
    for (let i = 0; i < batch; i++) leader.propose(payload);
    pump();
    rounds++;
  }
  const elapsed = (performance.now() - start) / 1000;
  const committed = leader.status().commit - startCommit;
  if (committed !== rounds * batch)
    throw new Error(`expected ${rounds * batch} commits, got ${committed}`);
  return { entries: committed, seconds: elapsed };
}

function main(): void {
  const at = process.argv.indexOf('--seconds');
  const seconds = at >= 0 ? Number(process.argv[at + 1]) : 2;
  if (!(seconds > 0)) throw new Error('--seconds must be positive');
  const bench = startBench('raft-core', `3 Raft cores in one process, ${seconds} s per batch size`);
  runFor(1, Math.min(0.3, seconds)); // warm up the JIT
  const rates: number[] = [];
  for (const batch of [1, 64]) {
    const r = runFor(batch, seconds);
    const rate = r.entries / r.seconds;
    rates.push(rate);
    console.log(
      `raft-core 3 nodes batch=${batch}: ${(rate / 1000).toFixed(1)}k entries/s (${r.entries} in ${r.seconds.toFixed(2)} s)`,
    );
    bench.sample();
  }
  bench.finish();
  console.log(
    `raft-core batch 64 / batch 1: ratio ${((rates[1] as number) / (rates[0] as number)).toFixed(2)}`,
  );
}

main();
