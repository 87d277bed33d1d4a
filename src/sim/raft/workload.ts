/**
 * The client workload of the Raft simulator: a few clients, each with at most
 * one operation outstanding, issuing puts, compare-and-sets (log entries) and
 * ReadIndex reads on a handful of keys against whichever node they believe
 * leads (mostly the actual leader, through an oracle, so the leader is busy;
 * otherwise the last hint or a random node, so stale leaders get requests too). Every operation is recorded in a {@link HistoryRecorder} (ok with its
 * output, fail when it definitely did not happen, unknown when it may have),
 * for the linearizability checker at the end of the run.
 *
 * ```ts
 * const w = new Workload({ scheduler, random: rng.fork('workload'), nodes, clients: 3, keys: 2 });
 * w.start(untilMs);
 * ...
 * checkLinearizability(w.recorder.history(), kvModel());
 * ```
 */
import type { Random } from '../../lib/random.js';
import { HistoryRecorder } from '../checkers/history.js';
import type { KvInput, KvOutput } from '../checkers/models.js';
import type { Scheduler } from '../scheduler.js';
import type { RequestOutcome, SimRaftNode } from './node.js';
import type { KvCommand } from './state-machine.js';

/** Options for {@link Workload}. */
export interface WorkloadOptions {
  readonly scheduler: Scheduler;
  readonly random: Random;
  readonly nodes: readonly SimRaftNode[];
  readonly clients: number;
  readonly keys: number;
  /** Longest pause between a client's operations (ms). */
  readonly thinkMsMax: number;
  /** A client gives up on an operation after this long and records it unknown. */
  readonly timeoutMs: number;
  /** Share of reads among operations. */
  readonly readShare: number;
  /** Share of operations sent to the actual leader (an oracle; the rest go to the client's guess). */
  readonly leaderShare: number;
  /** The current leader, if any. */
  readonly leader: () => SimRaftNode | undefined;
  readonly counts: Record<string, number>;
}

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

/** Clients driving the cluster and recording their history (see the file header). */
export class Workload {
  /** Every client operation with its outcome. */
  readonly recorder: HistoryRecorder<KvInput, KvOutput>;
  private untilMs = 0;
  private readonly keys: string[];

  constructor(private readonly o: WorkloadOptions) {
    this.recorder = new HistoryRecorder(() => o.scheduler.now());
    this.keys = Array.from({ length: o.keys }, (_, i) => `k${i}`);
  }

  /** Starts every client; no operation is invoked after `untilMs`. */
  start(untilMs: number): void {
    this.untilMs = untilMs;
    for (let c = 0; c < this.o.clients; c++) {
      const client = { id: c, generation: 0, seq: 0, hint: this.o.random.pick(this.o.nodes) };
      this.o.scheduler.after(this.o.random.intBetween(1, this.o.thinkMsMax), `client ${c}`, () =>
        this.next(client),
      );
    }
  }

  /** Stops issuing operations (those in flight still end normally). */
  stop(): void {
    this.untilMs = Math.min(this.untilMs, this.o.scheduler.now());
  }

  private next(client: { id: number; generation: number; seq: number; hint: SimRaftNode }): void {
    const sched = this.o.scheduler;
    if (sched.now() > this.untilMs) return;
    const r = this.o.random;
    const key = r.pick(this.keys);
    const seq = ++client.seq;
    const value = `${client.id}.${seq}`;
    let input: KvInput;
    let command: KvCommand | undefined;
    const x = r.next();
    if (x < this.o.readShare) {
      input = { f: 'get', key };
    } else if (x < this.o.readShare + (1 - this.o.readShare) / 2) {
      command = { f: 'put', key, value, client: client.id, seq };
      input = { f: 'put', key, value };
    } else {
      // Compare against a recent value so some CAS succeed.
      const expected = r.chance(0.2)
        ? null
        : `${r.int(this.o.clients)}.${Math.max(1, seq - r.int(4))}`;
      command = { f: 'cas', key, expected, value, client: client.id, seq };
      input = { f: 'cas', key, expected, value };
    }
    const oracle = r.chance(this.o.leaderShare) ? this.o.leader() : undefined;
    const node = oracle ?? (client.hint.up ? client.hint : r.pick(this.o.nodes));
    const process = `${client.id}.${client.generation}`;
    const h = this.recorder.invoke(process, input);
    let ended = false;
    const timer = sched.after(this.o.timeoutMs, `client ${client.id} timeout`, () => {
      if (ended) return;
      ended = true;
      this.recorder.unknown(h);
      bump(this.o.counts, `op ${input.f} unknown`);
      client.generation++; // a process with an operation of unknown outcome never issues another
      client.hint = r.pick(this.o.nodes);
      sched.after(r.intBetween(1, this.o.thinkMsMax), `client ${client.id}`, () =>
        this.next(client),
      );
    });
    const done = (outcome: RequestOutcome, output?: KvOutput): void => {
      if (ended) return;
      ended = true;
      sched.cancel(timer);
      bump(this.o.counts, `op ${input.f} ${outcome}`);
      if (outcome === 'ok' && output !== undefined) {
        this.recorder.complete(h, output);
      } else if (outcome === 'fail') {
        this.recorder.fail(h);
        // Try a leader next time: the one this node knows, else any node.
        const leader = node.status()?.leader;
        client.hint = this.o.nodes.find((n) => n.id === leader) ?? r.pick(this.o.nodes);
      } else {
        this.recorder.unknown(h);
        client.generation++;
        client.hint = r.pick(this.o.nodes);
      }
      sched.after(r.intBetween(1, this.o.thinkMsMax), `client ${client.id}`, () =>
        this.next(client),
      );
    };
    if (command === undefined) node.read(key, done);
    else node.propose(command, done);
  }
}
