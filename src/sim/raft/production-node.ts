/**
 * The production shell in the simulator: a {@link RaftNode} (src/raft/raft-node.ts)
 * per simulated node, over adapters — a {@link Transport} onto the simulated
 * network, a {@link Storage} onto the crash-semantics {@link RaftDisk} with
 * sampled sync delays, and a {@link Clock} of virtual time (stretched while the
 * node is slow). The same nemesis, workload, invariants and liveness check as
 * the simulator's own shell ({@link RaftSimNode}) then test the shell that
 * ships, not only the core.
 *
 * ```ts
 * const node = new ProductionSimNode({ ...sameOptionsAsRaftSimNode, peers, tickMs: 10 });
 * net.addNode(id, node);                     // no network ticker: RaftNode ticks on its clock
 * // after every scheduler event: await settle(); node.check();
 * ```
 *
 * RaftNode runs its Ready loop on `setImmediate` and reports through promises,
 * so a run with it is driven by an async loop that lets the event loop turn
 * after every scheduler event ({@link settle}). With no real I/O or timers
 * involved, that interleaving is deterministic, so seeds still replay.
 *
 * The invariants read the node's core through a private field (`core`): a
 * checker's privilege, kept to reading.
 */
import pino from 'pino';
import { isCohortError } from '../../lib/errors.js';
import type { Clock, TimerHandle } from '../../lib/clock.js';
import type { NodeId } from '../../lib/ids.js';
import type { RaftMessage } from '../../raft/core/messages.js';
import type { ConfigChange, ProposeResult, RaftCore } from '../../raft/core/raft-core.js';
import type { Entry } from '../../raft/core/types.js';
import { RaftNode } from '../../raft/raft-node.js';
import type { RaftStateMachine } from '../../raft/raft-node.js';
import type { PersistentState, Storage, StorageWrite } from '../../raft/storage/storage.js';
import { newCounters } from '../../transport/transport.js';
import type { MessageHandler, Transport } from '../../transport/transport.js';
import type { KvOutput } from '../checkers/models.js';
import type { NodeContext, SimNode } from '../network.js';
import { CheckFailure } from '../scenario.js';
import { RaftDisk } from './disk.js';
import { SimDisk } from '../disk.js';
import { clusterId } from '../../lib/ids.js';
import { FileStorage } from '../../raft/storage/file-storage.js';
import type { StorageFs } from '../../raft/storage/fs.js';
import type {
  RaftSimNodeOptions,
  RequestCallback,
  RequestCallbackOf,
  SimRaftNode,
  SimRaftNodeBase,
} from './node.js';
import { applyCommand, digestStep, encodeCommand } from './state-machine.js';
import type { KvCommand } from './state-machine.js';

/** Lets the event loop run what the last scheduler event started (setImmediate work, promise callbacks). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Options for {@link ProductionSimNode}: those of the simulator shell plus the initial peers. */
export interface ProductionSimNodeOptions extends RaftSimNodeOptions {
  /** The other initial voters (empty for a spare node, which starts with `join`). */
  readonly peers: readonly NodeId[];
  readonly tickMs: number;
  /**
   * `model` (default): the Storage is the {@link RaftDisk} model. `file`: the real
   * {@link FileStorage} (WAL, snapshots, recovery) over a {@link SimDisk} whose fdatasync
   * completes after the sampled disk delay, so a crash can lose or tear what was written but
   * not yet synced; the RaftDisk then shadows what was acknowledged.
   */
  readonly storage?: 'model' | 'file';
}

/**
 * A StorageFs whose asynchronous operations (fdatasync, snapshot file writes,
 * directory syncs) complete after `delay()` ms of virtual time (never, if the
 * node dies first), so a crash can land in the middle of them.
 */
function delayedSyncFs(
  fs: StorageFs,
  ctx: NodeContext<RaftMessage>,
  delay: () => number,
): StorageFs {
  const later = (op: () => Promise<void>): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      ctx.setTimer(delay(), () => {
        op().then(resolve, reject);
      });
    });
  return {
    ...fs,
    fdatasyncAsync: (fd) => later(() => fs.fdatasyncAsync(fd)),
    writeFileAsync: (path, chunks) => later(() => fs.writeFileAsync(path, chunks)),
    syncDirAsync: (dir) => later(() => fs.syncDirAsync(dir)),
  };
}

/** RaftNode logs nothing in the simulator (the trace is the record). */
const silentLogger = pino({ level: 'silent' });

function bump(counts: Record<string, number>, key: string, by = 1): void {
  counts[key] = (counts[key] ?? 0) + by;
}

/** The KV state machine in RaftNode's shape (it sees `normal` entries only), with the applied digest. */
class ProductionKv implements RaftStateMachine<KvOutput> {
  private kv = new Map<string, string>();
  digest = 0x811c9dc5;
  index = 0;

  constructor(private readonly onApplied: (e: Entry, digest: number) => void) {}

  apply(e: Entry): KvOutput {
    this.index = e.index;
    this.digest = digestStep(this.digest, e);
    this.onApplied(e, this.digest);
    return applyCommand(this.kv, e.data);
  }

  get(key: string): string | null {
    return this.kv.get(key) ?? null;
  }

  snapshot(): Uint8Array {
    const kv = [...this.kv.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return new TextEncoder().encode(JSON.stringify({ index: this.index, digest: this.digest, kv }));
  }

  restore(bytes: Uint8Array): void {
    const body = JSON.parse(new TextDecoder().decode(bytes)) as {
      index: number;
      digest: number;
      kv: [string, string][];
    };
    this.kv = new Map(body.kv);
    this.digest = body.digest;
    this.index = body.index;
  }
}

/**
 * A state machine the production shell drives in the simulator: what RaftNode
 * applies (normal entries only), plus the index of the last entry applied and
 * a digest of those entries, for the invariants' state machine safety check.
 */
export interface ProductionStateMachine<Out> extends RaftStateMachine<Out> {
  readonly index: number;
  readonly digest: number;
}

/** Makes a node's state machine; it must call `onApplied` for every entry it applies, with its digest. */
export type ProductionStateMachineFactory<SM> = (
  onApplied: (e: Entry, digest: number) => void,
) => SM;

/**
 * A simulated node running the production {@link RaftNode} shell over any
 * {@link ProductionStateMachine} (see the file header): the Raft scenario's
 * {@link ProductionSimNode}, and the KV scenario's production variant.
 */
export class ProductionSimNodeOf<SM extends ProductionStateMachine<Out>, Out>
  implements SimNode<RaftMessage>, SimRaftNodeBase
{
  readonly id: NodeId;
  readonly disk: RaftDisk;
  /** Stretches tick timers while the node is slow. */
  slowEvery = 1;
  diskSlowdown = 1;
  crashOnWrite: (() => void) | undefined;
  sm: SM;
  private node: RaftNode<SM> | undefined;
  private ctx: NodeContext<RaftMessage> | undefined;
  private handler: MessageHandler<RaftMessage> | undefined;
  private lastSyncAt = 0;
  private readonly waiting = new Set<RequestCallbackOf<Out>>();
  /** The simulated disk under FileStorage (storage: 'file'). */
  private readonly simDisk: SimDisk | undefined;
  /** Set if the shell failed in a way the scenario must report (checked after every event). */
  failure: string | undefined;

  constructor(
    private readonly options: ProductionSimNodeOptions,
    private readonly machines: ProductionStateMachineFactory<SM>,
  ) {
    this.id = options.id;
    this.disk = new RaftDisk((before, after) =>
      options.invariants.onDurable(this.id, before, after),
    );
    this.sm = this.newKv();
    this.simDisk =
      options.storage === 'file' ? new SimDisk(options.random.fork('simdisk')) : undefined;
  }

  /** The running core (read by the checkers), or undefined while down or starting. */
  get core(): RaftCore | undefined {
    return (this.node as unknown as { core: RaftCore } | undefined)?.core;
  }

  /** True once the RaftNode of this incarnation has started (and until a crash). */
  get up(): boolean {
    return this.node !== undefined;
  }

  onStart(ctx: NodeContext<RaftMessage>): void {
    this.boot(ctx);
  }

  onRestart(ctx: NodeContext<RaftMessage>): void {
    this.boot(ctx);
  }

  onMessage(from: NodeId, message: RaftMessage): void {
    this.handler?.(from, message);
  }

  onCrash(): void {
    const c = this.options.counts;
    if (this.simDisk !== undefined) {
      // The real files lose what was not synced; recovery at restart tells what survived.
      const r = this.simDisk.crash();
      bump(c, 'disk ops lost at crash', r.droppedOps);
      bump(c, 'disk writes torn at crash', r.tornWrites);
    } else {
      const report = this.disk.crash(this.options.random);
      bump(c, 'disk writes kept at crash', report.kept);
      bump(c, 'disk writes torn at crash', report.torn);
      bump(c, 'disk writes lost at crash', report.lost);
    }
    // The old RaftNode is abandoned: its timers died with the incarnation, its sends are dropped.
    this.node = undefined;
    this.ctx = undefined;
    this.handler = undefined;
    this.slowEvery = 1;
    this.diskSlowdown = 1;
    this.crashOnWrite = undefined;
    const waiting = [...this.waiting];
    this.waiting.clear();
    for (const done of waiting) done('unknown');
  }

  /** Runs the invariants on this node's core (and reports a shell failure). */
  check(): void {
    if (this.failure !== undefined) throw new CheckFailure(this.failure);
    const core = this.core;
    if (core !== undefined) this.options.invariants.observeNode(this.id, core);
  }

  /** A client write through RaftNode.propose; definite errors are `fail`, the rest `unknown`. */
  proposeData(data: Uint8Array, done: RequestCallbackOf<Out>): void {
    const node = this.node;
    if (node === undefined) {
      done('fail');
      return;
    }
    this.track(node.propose(data), done);
  }

  /** A linearizable read through RaftNode.read (ReadIndex): `done` gets `query(sm)`. */
  query(query: (sm: SM) => Out, done: RequestCallbackOf<Out>): void {
    const node = this.node;
    if (node === undefined) {
      done('fail');
      return;
    }
    this.track(node.read(query), done);
  }

  /** Membership changes answer later here: returns undefined and counts the outcome when it settles. */
  changeConfig(change: ConfigChange): ProposeResult | undefined {
    const node = this.node;
    if (node === undefined) return undefined;
    const p =
      change.type === 'addLearner'
        ? node.addLearner(change.node)
        : change.type === 'promoteLearner'
          ? node.promoteLearner(change.node)
          : node.removeNode(change.node);
    p.then(
      () => bump(this.options.counts, `membership ${change.type} applied`),
      (err: unknown) =>
        bump(
          this.options.counts,
          `membership ${change.type} refused ${isCohortError(err) ? err.code : 'error'}`,
        ),
    );
    return undefined;
  }

  /** Starts a leadership transfer through RaftNode; the outcome is counted when it settles. */
  transfer(to: NodeId): boolean {
    const node = this.node;
    if (node === undefined) return false;
    node.transferLeadership(to).then(
      () => bump(this.options.counts, 'transfer done'),
      () => bump(this.options.counts, 'transfer refused or timed out'),
    );
    return true;
  }

  private newKv(): SM {
    return this.machines((e, digest) => {
      this.options.invariants.onApply(this.id, e, digest, this.disk);
      bump(this.options.counts, 'entries applied');
    });
  }

  private track(p: Promise<unknown>, done: RequestCallbackOf<Out>): void {
    this.waiting.add(done);
    p.then(
      (out) => {
        if (!this.waiting.delete(done)) return;
        done('ok', out as Out);
      },
      (err: unknown) => {
        if (!this.waiting.delete(done)) return;
        done(isCohortError(err) && err.definite ? 'fail' : 'unknown');
      },
    );
  }

  private boot(ctx: NodeContext<RaftMessage>): void {
    this.ctx = ctx;
    this.sm = this.newKv();
    const o = this.options;
    // RaftNode takes no test-only bug switches: the production shell runs the correct core.
    const { bugs: _bugs, applied: _applied, ...coreOptions } = o.raft;
    const transport: Transport<RaftMessage> = {
      self: o.id,
      send: (to, m) => ctx.send(to, m),
      onMessage: (h) => {
        if (this.ctx === ctx) this.handler = h;
      },
      onPeerStatus: () => {},
      close: () => Promise.resolve(),
      counters: newCounters(),
    };
    const clock: Clock = {
      now: () => ctx.now(),
      setTimer: (delayMs: number, fn: () => void): TimerHandle =>
        ctx.setTimer(delayMs * this.slowEvery, fn),
      clearTimer: (h: TimerHandle) => ctx.clearTimer(h),
    };
    const storage: Storage =
      this.simDisk === undefined
        ? {
            load: (): Promise<PersistentState> => Promise.resolve(this.disk.durable),
            save: (write: StorageWrite): Promise<void> => this.save(ctx, write),
            close: () => Promise.resolve(),
          }
        : this.fileStorage(ctx, this.simDisk);
    const start = RaftNode.start({
      id: o.id,
      peers: o.peers,
      join: o.peers.length === 0,
      transport,
      storage,
      stateMachine: this.sm,
      random: ctx.random.fork('raft-node'),
      clock,
      tickMs: o.tickMs,
      raft: coreOptions,
      snapshotEntries: o.snapshotEvery,
      leaderSendsBeforePersist: o.leaderSendsBeforePersist ?? true,
      logger: silentLogger,
    });
    start.then(
      (node) => {
        if (this.ctx !== ctx || !ctx.alive()) return; // crashed while starting
        this.node = node;
        this.options.invariants.onStart(this.id, this.core as RaftCore, this.disk);
      },
      (err: unknown) => {
        this.failure = `${o.id}: RaftNode failed to start: ${String(err)}`;
      },
    );
  }

  /** FileStorage over the simulated disk, with the RaftDisk shadowing what it acknowledged. */
  private fileStorage(ctx: NodeContext<RaftMessage>, simDisk: SimDisk): Storage {
    const { minMs, maxMs } = this.options.diskDelayMs;
    const files = new FileStorage({
      dir: `/${this.id}`,
      clusterId: clusterId('sim'),
      nodeId: this.id,
      fs: delayedSyncFs(
        simDisk.fs,
        ctx,
        () => this.options.random.intBetween(minMs, maxMs) * this.diskSlowdown,
      ),
      logger: silentLogger,
      // Small preallocated segments: rolls, spares and their zeros happen often
      // enough for crashes to land among them.
      segmentBytes: 64 * 1024,
      // Syncs go through delayedSyncFs's fdatasyncAsync, on virtual time
      // ('auto' would time them on the real clock and sync inline).
      syncMode: 'thread',
    });
    return {
      load: async (): Promise<PersistentState> => {
        const state = await files.load();
        // Recovery must keep everything acknowledged: checked as a durable change.
        this.disk.reset(state);
        return state;
      },
      save: (write: StorageWrite): Promise<void> => {
        this.beforeWrite(ctx, write);
        return files.save(write).then(() => this.disk.syncOldest());
      },
      close: () => files.close(),
    };
  }

  /** Shadow bookkeeping and checks for a write (both storage modes). */
  private beforeWrite(ctx: NodeContext<RaftMessage>, write: StorageWrite): void {
    try {
      this.disk.write(write);
    } catch (err) {
      this.failure = `${this.id}: the shell issued an invalid storage write: ${String(err)}`;
      return;
    }
    const core = this.core;
    if (core !== undefined && write.entries !== undefined) {
      this.options.invariants.onReady(this.id, core, {
        entries: write.entries,
        messages: [],
        committedEntries: [],
        readStates: [],
      });
    }
    const crash = this.crashOnWrite;
    if (crash !== undefined && write.entries !== undefined) {
      // Scheduled before the write's sync, so it runs first even with a zero disk delay.
      this.crashOnWrite = undefined;
      ctx.setTimer(0, crash);
    }
  }

  private save(ctx: NodeContext<RaftMessage>, write: StorageWrite): Promise<void> {
    if (!ctx.alive()) return new Promise(() => {}); // a dead process's write never completes
    this.beforeWrite(ctx, write);
    const { minMs, maxMs } = this.options.diskDelayMs;
    const delay = this.options.random.intBetween(minMs, maxMs) * this.diskSlowdown;
    // Writes complete in the order issued (like FileStorage's group commit).
    const at = Math.max(ctx.now() + delay, this.lastSyncAt);
    this.lastSyncAt = at;
    return new Promise<void>((resolve) => {
      ctx.setTimer(at - ctx.now(), () => {
        this.disk.sync();
        resolve();
      });
    });
  }
}

/** The Raft scenario's node on the production shell, over its small key-value map. */
export class ProductionSimNode
  extends ProductionSimNodeOf<ProductionKv, KvOutput>
  implements SimRaftNode
{
  constructor(options: ProductionSimNodeOptions) {
    super(options, (onApplied) => new ProductionKv(onApplied));
  }

  /** A client write through RaftNode.propose; definite errors are `fail`, the rest `unknown`. */
  propose(command: KvCommand, done: RequestCallback): void {
    this.proposeData(encodeCommand(command), done);
  }

  /** A linearizable read through RaftNode.read (ReadIndex). */
  read(key: string, done: RequestCallback): void {
    this.query((sm): KvOutput => ({ f: 'get', value: sm.get(key) }), done);
  }
}
