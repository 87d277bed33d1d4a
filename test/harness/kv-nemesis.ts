/**
 * A Jepsen-style fault test of the KV store on real processes: concurrent
 * clients doing get / put / cas on a few keys through {@link KvClient} while
 * a nemesis breaks a {@link ProcessCluster}, every operation recorded in a
 * {@link HistoryRecorder} history (invoke and complete times, ok / fail /
 * unknown) for the linearizability checker (src/sim/checkers).
 *
 * ```ts
 * const cluster = await ProcessCluster.start({ snapshotEntries: 100 });
 * const workload = await KvWorkload.start({ endpoints: cluster.endpoints(), clients: 5, keys: 6 });
 * const nemesis = new Nemesis(cluster, (s) => console.log(s));
 * await nemesis.cycle();            // kill -9 leader, kill -9 follower, SIGSTOP leader, wipe a node
 * await workload.stop();
 * await workload.finalReads();      // one linearizable get per key, after the faults
 * const history = workload.recorder.history();
 * checkLinearizability(history, kvModel());   // and lostWrites(history) is empty
 * ```
 *
 * Values are unique (`w<client>-<n>`), so a read names the write it saw. A
 * write that ends in an error is `fail` only when the error is definite and
 * not about routing: a definite NOT_LEADER / UNAVAILABLE after retries says
 * nothing about an earlier attempt that timed out (and may have been
 * applied) unless the client took care to say so — it did not at first
 * (see test/kv/process-nemesis-client.test.ts) — so those are recorded
 * `unknown`: sound, if a little weaker. The workload's `classify: 'client'`
 * trusts the client's definite flag instead.
 */
import { isCohortError } from '../../src/lib/errors.js';
import { KvClient } from '../../src/kv/client.js';
import type { KvEndpoint } from '../../src/kv/client.js';
import { kvKey, kvText } from '../../src/kv/core/bytes.js';
import { HistoryRecorder } from '../../src/sim/checkers/history.js';
import type { History, Operation } from '../../src/sim/checkers/history.js';
import type { KvInput, KvOutput } from '../../src/sim/checkers/models.js';
import type { NodeStatus } from '../../src/node/node-service.js';
import type { ProcessCluster } from './process-cluster.js';
import { sleep, until } from './process-cluster.js';
import { conditionWaitMs } from './wait.js';

/** The history of a KV workload. */
export type KvHistory = History<KvInput, KvOutput>;

/** Error codes that say where a call went, not what it did (see the file comment). */
const routingCodes = new Set([
  'NOT_LEADER',
  'UNAVAILABLE',
  'CLOSED',
  'CIRCUIT_OPEN',
  'OVERLOADED',
  'CANCELLED',
]);

/** How a failed operation is recorded (see the file comment). */
export function classifyKvError(err: unknown): 'fail' | 'unknown' {
  return isCohortError(err) && err.definite && !routingCodes.has(err.code) ? 'fail' : 'unknown';
}

/** Options of {@link KvWorkload.start}. */
export interface KvWorkloadOptions {
  readonly endpoints: readonly KvEndpoint[];
  readonly clusterId?: string;
  /** Concurrent clients, each with its own KvClient and one operation at a time (default 5). */
  readonly clients?: number;
  /** Keys `k0`..`k<keys-1>` (default 6). */
  readonly keys?: number;
  /** Pause between one client's operations, in ms (default 2): leaves CPU to the nodes. */
  readonly thinkMs?: number;
  /** Per-attempt deadline and retry budget of the clients (default 1000 / 5000 ms). */
  readonly timeoutMs?: number;
  readonly retryMs?: number;
  /** Seed of the operation mix (default 1). */
  readonly seed?: number;
  /**
   * How an error is recorded: {@link classifyKvError} (default), or 'client'
   * to trust the client's own definite flag (a stricter test of the client).
   */
  readonly classify?: 'conservative' | 'client';
}

/** The client's word: a definite CohortError did not happen, anything else may have. */
function trustClient(err: unknown): 'fail' | 'unknown' {
  return isCohortError(err) && err.definite ? 'fail' : 'unknown';
}

/** A small deterministic PRNG (mulberry32) for the operation mix. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Runs one KV operation through a client, as the model describes it. */
export async function runKvOp(kv: KvClient, input: KvInput): Promise<KvOutput> {
  switch (input.f) {
    case 'get': {
      const v = await kv.get(input.key);
      return { f: 'get', value: v === undefined ? null : kvText(v.value) };
    }
    case 'put':
      await kv.put(input.key, input.value);
      return { f: 'put' };
    case 'cas': {
      const key = kvKey(input.key);
      const r = await kv.txn({
        // A value compare on a missing key is false (etcd's rule): "absent" is version = 0.
        compare:
          input.expected === null
            ? [{ target: 'version', key, op: '=', value: 0 }]
            : [{ target: 'value', key, op: '=', value: kvKey(input.expected) }],
        success: [{ type: 'put', key, value: kvKey(input.value) }],
      });
      return { f: 'cas', ok: r.succeeded };
    }
    case 'delete': {
      const r = await kv.delete(input.key);
      return { f: 'delete', deleted: r.deleted > 0 };
    }
    case 'append':
      throw new Error('append is not a KV store operation');
  }
}

/** Concurrent clients recording a history (see the file comment). */
export class KvWorkload {
  /** The history being recorded (times from performance.now()). */
  readonly recorder = new HistoryRecorder<KvInput, KvOutput>(() => performance.now());
  /** Errors the clients threw, by operation, code and definiteness: counts. */
  readonly errors = new Map<string, number>();
  /** Operations that completed ok so far (what the nemesis waits for between faults). */
  completedOk = 0;
  private stopping = false;
  private runners: Promise<void>[] = [];

  private constructor(
    private readonly clients: KvClient[],
    private readonly keys: readonly string[],
    private readonly thinkMs: number,
    private readonly seed: number,
    private readonly classify: (err: unknown) => 'fail' | 'unknown',
  ) {}

  /** Connects the clients and starts them. */
  static async start(o: KvWorkloadOptions): Promise<KvWorkload> {
    const n = o.clients ?? 5;
    const clients: KvClient[] = [];
    for (let i = 0; i < n; i++) {
      clients.push(
        await KvClient.connect({
          endpoints: o.endpoints,
          clusterId: o.clusterId ?? 'cohort-local',
          clientId: `nemesis-${process.pid}-${i}`,
          timeoutMs: o.timeoutMs ?? 1000,
          retryMs: o.retryMs ?? 5000,
        }),
      );
    }
    const keys = Array.from({ length: o.keys ?? 6 }, (_, i) => `k${i}`);
    const w = new KvWorkload(
      clients,
      keys,
      o.thinkMs ?? 2,
      o.seed ?? 1,
      o.classify === 'client' ? trustClient : classifyKvError,
    );
    w.runners = clients.map((c, i) => w.run(c, i));
    return w;
  }

  /** Operations recorded so far. */
  get operations(): number {
    return this.recorder.history().length;
  }

  /** Stops issuing operations and waits for the ones in flight. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.runners);
  }

  /**
   * One linearizable get per key by a separate final client (process
   * `final`), retried until it answers: what the store holds after the faults.
   */
  async finalReads(): Promise<Map<string, string | null>> {
    const kv = this.clients[0];
    if (kv === undefined) throw new Error('no clients');
    const out = new Map<string, string | null>();
    for (const key of this.keys) {
      for (let attempt = 0; ; attempt++) {
        try {
          const r = await this.recorder.track(
            'final',
            { f: 'get', key },
            () => runKvOp(kv, { f: 'get', key }),
            this.classify,
          );
          out.set(key, (r as { value: string | null }).value);
          break;
        } catch (e) {
          if (attempt >= 10) throw e;
          await sleep(200);
        }
      }
    }
    return out;
  }

  /** Closes the clients. */
  async close(): Promise<void> {
    this.stopping = true;
    await Promise.allSettled(this.clients.map((c) => c.close()));
  }

  private async run(kv: KvClient, index: number): Promise<void> {
    const random = mulberry32(this.seed * 1000 + index);
    const seen = new Map<string, string | null>();
    let n = 0;
    while (!this.stopping) {
      const key = this.keys[Math.floor(random() * this.keys.length)] as string;
      const r = random();
      const value = `w${index}-${n++}`;
      const input: KvInput =
        r < 0.5
          ? { f: 'get', key }
          : r < 0.75
            ? { f: 'put', key, value }
            : { f: 'cas', key, expected: seen.get(key) ?? null, value };
      try {
        const out = await this.recorder.track(
          index,
          input,
          () => runKvOp(kv, input),
          this.classify,
        );
        this.completedOk++;
        if (out.f === 'get') seen.set(key, out.value);
        else if (input.f === 'put' || (out.f === 'cas' && out.ok)) seen.set(key, value);
      } catch (e) {
        // Recorded as fail or unknown; carry on (the client retried already).
        const what = isCohortError(e)
          ? `${input.f} ${e.code}${e.definite ? ' (definite)' : ''}`
          : `${input.f} ${String(e)}`;
        this.errors.set(what, (this.errors.get(what) ?? 0) + 1);
      }
      if (this.thinkMs > 0) await sleep(this.thinkMs);
    }
  }
}

/**
 * Acknowledged writes lost at the end: for each key, the value the final read
 * saw was written by some operation x (or is absent); an acknowledged write
 * w invoked after x completed must have come after x, so the final value
 * could only be x's if w was overwritten by x — impossible. Returns one line
 * per such w. Needs unique values and `final` reads (see {@link KvWorkload.finalReads}).
 */
export function lostWrites(history: KvHistory): string[] {
  const writes: Operation<KvInput, KvOutput>[] = history.filter(
    (op) => op.input.f === 'put' || op.input.f === 'cas',
  );
  const acknowledged = writes.filter(
    (op) =>
      op.outcome === 'ok' && (op.input.f === 'put' || (op.output.f === 'cas' && op.output.ok)),
  );
  const lost: string[] = [];
  for (const final of history) {
    if (final.process !== 'final' || final.outcome !== 'ok' || final.output.f !== 'get') continue;
    const key = final.input.key;
    const v = final.output.value;
    const writer = writes.find(
      (op) => op.input.key === key && 'value' in op.input && op.input.value === v,
    );
    for (const w of acknowledged) {
      if (w.input.key !== key || w === writer) continue;
      // The final value's writer completed before w was invoked (or nothing wrote it).
      const writerDone =
        writer === undefined
          ? Number.NEGATIVE_INFINITY
          : writer.outcome === 'unknown'
            ? Number.POSITIVE_INFINITY
            : writer.completeTime;
      if (v === null || writerDone < w.invokeTime) {
        lost.push(
          `${key}: acknowledged write ${JSON.stringify((w.input as { value: string }).value)} (op ${w.id}) is lost: the final read saw ${JSON.stringify(v)}`,
        );
      }
    }
  }
  return lost;
}

/** Counts of a history, for reports. */
export function historyFigures(history: KvHistory): {
  ops: number;
  ok: number;
  fail: number;
  unknown: number;
  unknownWrites: number;
} {
  let ok = 0;
  let fail = 0;
  let unknown = 0;
  let unknownWrites = 0;
  for (const op of history) {
    if (op.outcome === 'ok') ok++;
    else if (op.outcome === 'fail') fail++;
    else {
      unknown++;
      if (op.input.f !== 'get') unknownWrites++;
    }
  }
  return { ops: history.length, ok, fail, unknown, unknownWrites };
}

/** What one nemesis step did, for the test's log. */
export type NemesisLog = (line: string) => void;

/** Options of {@link Nemesis}. */
export interface NemesisOptions {
  /** The least time the workload runs between faults, in ms (default 1000). */
  readonly dwellMs?: number;
  /**
   * The workload whose progress a dwell also waits for: `dwellOps` more
   * operations completed ok (default 50; half as many in a half dwell). The
   * faults thus come after as much work as on a quiet machine, however busy
   * this one is, and a test can count on that much work being done.
   */
  readonly workload?: { readonly completedOk: number };
  readonly dwellOps?: number;
}

/**
 * The fault schedule: each {@link cycle} kills the leader, kills a follower,
 * SIGSTOPs the leader until another is elected, then wipes a follower's data
 * dir so it rejoins from a snapshot — each fault healed (restart, SIGCONT)
 * and the node caught up before the next, so a majority always holds every
 * acknowledged write (wiping a node that a majority still needs would lose
 * writes by design, not by a bug). A wiped voter also forgets its vote, so
 * it could vote twice in one term; the wipe waits for a stable leader, so no
 * election is running when it comes back.
 */
export class Nemesis {
  /** Snapshot installs observed on wiped nodes: [node, snapshotIndex]. */
  readonly snapshotInstalls: [string, number][] = [];

  constructor(
    private readonly cluster: ProcessCluster,
    private readonly log: NemesisLog,
    private readonly options: NemesisOptions = {},
  ) {}

  /** Operations the workload completes ok in a whole dwell (see {@link NemesisOptions}). */
  static readonly dwellOpsDefault = 50;

  /** Lets the workload run between faults: `share` of the dwell time, then of its operations. */
  private async dwell(share = 1): Promise<void> {
    const w = this.options.workload;
    const from = w?.completedOk ?? 0;
    await sleep((this.options.dwellMs ?? 1000) * share);
    if (w === undefined) return;
    const ops = Math.ceil((this.options.dwellOps ?? Nemesis.dwellOpsDefault) * share);
    await until(`${ops} more operations completed ok`, () =>
      Promise.resolve(w.completedOk - from >= ops ? true : undefined),
    );
  }

  /** One round of every fault, in order. */
  async cycle(): Promise<void> {
    await this.killLeader();
    await this.killFollower();
    await this.pauseLeader();
    await this.wipeFollower();
  }

  /** kill -9 the leader, wait for a new one, restart the old one and let it catch up. */
  async killLeader(): Promise<void> {
    const l = await this.cluster.waitForLeader();
    await this.dwell();
    await this.cluster.kill(l.id);
    const next = await this.cluster.waitForLeader({ notId: l.id, minTerm: l.term + 1 });
    this.log(`kill -9 leader ${l.id} (term ${l.term}) → ${next.id} leads in term ${next.term}`);
    await this.dwell();
    await this.heal(l.id);
  }

  /** kill -9 a follower, let the other two run on, restart it. */
  async killFollower(): Promise<void> {
    const l = await this.cluster.waitForLeader();
    const f = this.follower(l.id);
    await this.cluster.kill(f);
    this.log(`kill -9 follower ${f} (leader ${l.id}, term ${l.term})`);
    await this.dwell();
    await this.heal(f);
  }

  /** SIGSTOP the leader until another node leads, then SIGCONT it. */
  async pauseLeader(): Promise<void> {
    const l = await this.cluster.waitForLeader();
    await this.dwell(0.5);
    this.cluster.pause(l.id);
    const next = await this.cluster.waitForLeader({ notId: l.id, minTerm: l.term + 1 });
    await this.dwell(0.5);
    this.cluster.resume(l.id);
    this.log(
      `SIGSTOP leader ${l.id} (term ${l.term}) → ${next.id} leads in term ${next.term}; SIGCONT`,
    );
    const caught = await this.catchUp(l.id);
    if (caught.role === 'leader' && caught.term <= l.term) {
      throw new Error(`${l.id} still leads in term ${caught.term} after losing leadership`);
    }
  }

  /**
   * Wipes a follower: kill -9, remove its data dir, restart it empty. Waits
   * first until the leader has compacted its log into a snapshot, so the
   * wiped node can only catch up by installing that snapshot, then checks
   * that it did (its snapshotIndex, and the install in its log).
   */
  async wipeFollower(): Promise<void> {
    const l = await until('the leader to have taken a snapshot', async () => {
      const s = await this.cluster.waitForLeader();
      return s.snapshotIndex > 0 ? s : undefined;
    });
    const f = this.follower(l.id);
    await this.cluster.kill(f);
    await this.dwell(0.5);
    await this.cluster.restart(f, { wipe: true, logLevel: 'info' });
    const s = await this.catchUp(f);
    // Its log line may arrive after its status answer (two pipes): wait for it.
    const installed = await until(
      `${f} to log a snapshot install`,
      () =>
        Promise.resolve(
          this.cluster.output(f).includes('installed a snapshot from the leader')
            ? true
            : undefined,
        ),
      conditionWaitMs,
    ).catch(() => false);
    this.log(
      `wiped ${f} (leader ${l.id} snapshot at ${l.snapshotIndex}) → rejoined, snapshotIndex ${s.snapshotIndex}, applied ${s.appliedIndex}${installed ? ', installed the leader\u2019s snapshot' : ''}`,
    );
    if (s.snapshotIndex === 0 || !installed) {
      throw new Error(`wiped node ${f} caught up without installing a snapshot`);
    }
    this.snapshotInstalls.push([f, s.snapshotIndex]);
  }

  private follower(leader: string): string {
    const others = this.cluster.nodes.map((n) => n.id).filter((id) => id !== leader);
    const f = others[Math.floor(Math.random() * others.length)];
    if (f === undefined) throw new Error('no follower');
    return f;
  }

  /** Restarts a killed node and waits until it has applied what the leader had committed. */
  private async heal(id: string): Promise<void> {
    await this.cluster.restart(id);
    await this.catchUp(id);
  }

  private async catchUp(id: string): Promise<NodeStatus> {
    const l = await this.cluster.waitForLeader();
    return this.cluster.waitForApplied(id, l.commitIndex);
  }
}
