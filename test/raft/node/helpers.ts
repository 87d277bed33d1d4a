/**
 * Helpers for RaftNode tests: a small deterministic state machine (an
 * append-only list of strings), a transport wrapper that can cut links, and
 * an in-process cluster over MemoryNetwork + MemoryStorage that can stop and
 * restart nodes from what they saved.
 *
 * ```ts
 * const c = new MemoryCluster(['n1', 'n2', 'n3']);
 * await c.startAll();
 * const leader = await c.waitForLeader();
 * await leader.propose(text('x'));      // → { index, size }
 * await c.closeAll();
 * ```
 */
import { vi } from 'vitest';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { CohortError } from '../../../src/lib/errors.js';
import { nodeId } from '../../../src/lib/ids.js';
import type { NodeId } from '../../../src/lib/ids.js';
import { seededRandom } from '../../../src/lib/random.js';
import type { RaftMessage } from '../../../src/raft/core/messages.js';
import type { Entry, Snapshot } from '../../../src/raft/core/types.js';
import { raftMessagesCodec } from '../../../src/raft/raft-messages-codec.js';
import { RaftNode } from '../../../src/raft/raft-node.js';
import type {
  RaftNodeOptions,
  RaftStateMachine,
  SnapshotEncoder,
} from '../../../src/raft/raft-node.js';
import { MemoryStorage } from '../../../src/raft/storage/memory.js';
import type { PersistentState, Storage, StorageWrite } from '../../../src/raft/storage/storage.js';
import { MemoryNetwork } from '../../../src/transport/memory-transport.js';
import { conditionWaitMs } from '../../harness/wait.js';
import type {
  MessageHandler,
  PeerStatusHandler,
  Transport,
  TransportCounters,
} from '../../../src/transport/transport.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** UTF-8 bytes of `s` (a command for {@link ListMachine}). */
export function text(s: string): Uint8Array {
  return encoder.encode(s);
}

/** What {@link ListMachine.apply} returns: the entry's log index and the list size after it. */
export interface ListResult {
  readonly index: number;
  readonly size: number;
}

/** A deterministic state machine: appends each command (a string) to a list. */
export class ListMachine implements RaftStateMachine<ListResult> {
  items: string[] = [];
  /** How many times restore() ran with a non-empty snapshot (to tell InstallSnapshot happened). */
  restores = 0;

  apply(entry: Entry): ListResult {
    this.items.push(decoder.decode(entry.data));
    return { index: entry.index, size: this.items.length };
  }

  snapshot(): Uint8Array {
    return encoder.encode(JSON.stringify(this.items));
  }

  restore(bytes: Uint8Array): void {
    this.items = JSON.parse(decoder.decode(bytes)) as string[];
    this.restores++;
  }
}

/**
 * A {@link ListMachine} that can also encode its snapshots in steps
 * (RaftStateMachine.beginSnapshot): it copies the list when the snapshot
 * begins and takes many steps (one item per 5000 of budget) to finish, so
 * entries are applied while a snapshot is being encoded.
 */
export class SteppedListMachine extends ListMachine {
  /** Steps taken by all encoders so far. */
  steps = 0;
  /** Encoders begun so far. */
  begun = 0;

  beginSnapshot(): SnapshotEncoder {
    const items = this.items.slice();
    this.begun++;
    let at = 0;
    let out: Uint8Array | null = null;
    return {
      step: (budget) => {
        this.steps++;
        at = Math.min(items.length, at + Math.max(1, Math.floor(budget / 5000)));
        if (at < items.length) return false;
        out = encoder.encode(JSON.stringify(items));
        return true;
      },
      bytes: () => {
        if (out === null) throw new Error('bytes() before the last step');
        return out;
      },
    };
  }
}

/** A logger for tests: silent unless COHORT_TEST_LOG is set (e.g. to 'info'). */
export function testLogger(): Logger {
  return pino({ level: process.env.COHORT_TEST_LOG ?? 'silent' }, pino.destination(2));
}

/**
 * Wraps a transport so links can be cut: messages to or from a blocked peer
 * are dropped silently (like a partition), in both directions.
 */
export class CuttableTransport implements Transport<RaftMessage> {
  readonly blocked = new Set<NodeId>();
  private handler: MessageHandler<RaftMessage> = () => {};

  constructor(readonly inner: Transport<RaftMessage>) {
    inner.onMessage((from, m) => {
      if (!this.blocked.has(from)) this.handler(from, m);
    });
  }

  get self(): NodeId {
    return this.inner.self;
  }

  get counters(): Readonly<TransportCounters> {
    return this.inner.counters;
  }

  send(to: NodeId, message: RaftMessage): void {
    if (this.blocked.has(to)) return;
    this.inner.send(to, message);
  }

  onMessage(handler: MessageHandler<RaftMessage>): void {
    this.handler = handler;
  }

  onPeerStatus(handler: PeerStatusHandler): void {
    this.inner.onPeerStatus(handler);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Extra options for one node of a {@link MemoryCluster}. */
export type NodeOverrides = Partial<
  Omit<RaftNodeOptions<ListMachine>, 'id' | 'transport' | 'storage' | 'stateMachine'>
>;

/** Three (or more) RaftNodes in one process over a MemoryNetwork. */
export class MemoryCluster {
  readonly net = new MemoryNetwork();
  readonly ids: NodeId[];
  readonly nodes = new Map<NodeId, RaftNode<ListMachine>>();
  readonly transports = new Map<NodeId, CuttableTransport>();
  private readonly saved = new Map<NodeId, PersistentState>();
  private readonly storages = new Map<NodeId, MemoryStorage>();
  private seed = 1;

  constructor(
    ids: readonly string[],
    readonly defaults: NodeOverrides = {},
    /** Makes each node's state machine (a fresh one per start). */
    private readonly machine: () => ListMachine = () => new ListMachine(),
  ) {
    this.ids = ids.map(nodeId);
  }

  /** Starts (or restarts, from what it saved) node `id`; `wrap` may interpose on its storage. */
  async start(
    id: NodeId,
    overrides: NodeOverrides = {},
    wrap: (s: MemoryStorage) => Storage = (s) => s,
  ): Promise<RaftNode<ListMachine>> {
    const storage = new MemoryStorage(this.saved.get(id));
    const transport = new CuttableTransport(this.net.transport(id, raftMessagesCodec()));
    const node = await RaftNode.start({
      id,
      peers: this.ids.filter((p) => p !== id),
      transport,
      storage: wrap(storage),
      stateMachine: this.machine(),
      random: seededRandom(this.seed++),
      tickMs: 10,
      raft: { electionTicks: 10 },
      logger: testLogger(),
      ...this.defaults,
      ...overrides,
    });
    this.nodes.set(id, node);
    this.transports.set(id, transport);
    this.storages.set(id, storage);
    return node;
  }

  /** Starts every node of the initial configuration. */
  async startAll(): Promise<void> {
    for (const id of this.ids) await this.start(id);
  }

  /** Closes node `id`, keeping what it saved for a restart. */
  async stop(id: NodeId): Promise<void> {
    const node = this.node(id);
    this.nodes.delete(id);
    await node.close();
    this.saved.set(id, (this.storages.get(id) as MemoryStorage).current());
  }

  /** What node `id` has saved so far (its storage's durable state). */
  durable(id: NodeId): PersistentState {
    return (this.storages.get(id) as MemoryStorage).current();
  }

  /** The running node `id` (throws if it is not running). */
  node(id: NodeId): RaftNode<ListMachine> {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`node ${id} is not running`);
    return n;
  }

  /** Cuts (or with `heal`, restores) every link between `id` and the other nodes. */
  isolate(id: NodeId, heal = false): void {
    for (const [other, t] of this.transports) {
      if (other === id) continue;
      const mine = this.transports.get(id) as CuttableTransport;
      if (heal) {
        mine.blocked.delete(other);
        t.blocked.delete(id);
      } else {
        mine.blocked.add(other);
        t.blocked.add(id);
      }
    }
  }

  /** Waits until one running node leads and every running node (among `among`) agrees. */
  async waitForLeader(
    among: readonly NodeId[] = [...this.nodes.keys()],
  ): Promise<RaftNode<ListMachine>> {
    return vi.waitFor(
      () => {
        const leaders = among.filter((id) => this.nodes.get(id)?.isLeader() === true);
        if (leaders.length !== 1) throw new Error(`leaders: ${leaders.join(',') || 'none'}`);
        const leader = leaders[0] as NodeId;
        for (const id of among) {
          if (this.nodes.get(id)?.leaderId() !== leader) throw new Error(`${id} disagrees`);
        }
        return this.node(leader);
      },
      { timeout: conditionWaitMs, interval: 10 },
    );
  }

  /** Waits until every running node in `among` applied at least `index`. */
  async waitForApplied(
    index: number,
    among: readonly NodeId[] = [...this.nodes.keys()],
  ): Promise<void> {
    await vi.waitFor(
      () => {
        for (const id of among) {
          const applied = this.node(id).status().applied;
          if (applied < index) throw new Error(`${id} applied ${applied} < ${index}`);
        }
      },
      { timeout: conditionWaitMs, interval: 10 },
    );
  }

  /** Closes every running node. */
  async closeAll(): Promise<void> {
    await Promise.all([...this.nodes.keys()].map((id) => this.stop(id)));
  }
}

/** Proposes until it succeeds on whichever node leads (retrying definite refusals). */
export async function proposeOnLeader(
  cluster: MemoryCluster,
  data: Uint8Array,
): Promise<ListResult> {
  for (let attempt = 0; ; attempt++) {
    const leader = await cluster.waitForLeader();
    try {
      return await leader.propose(data);
    } catch (err) {
      if (!(err instanceof CohortError) || !err.definite || attempt > 20) throw err;
    }
  }
}

/**
 * A storage wrapper for fault and ordering tests: saves can be held back
 * (`hold()` … `release()`), made to fail, and are recorded.
 */
export class ControlledStorage implements Storage {
  readonly writes: StorageWrite[] = [];
  /** Snapshots passed to prepareSnapshot, in order. */
  readonly prepared: Snapshot[] = [];
  private held: (() => void)[] | null = null;
  private heldSnapshots: (() => void)[] | null = null;
  private failure: Error | null = null;

  constructor(private readonly inner: Storage) {}

  /** Later saves wait until {@link release}. */
  hold(): void {
    this.held ??= [];
  }

  /** Lets held saves proceed, in order. */
  release(): void {
    const held = this.held ?? [];
    this.held = null;
    for (const go of held) go();
  }

  /**
   * Later snapshot writes (prepareSnapshot, and saves carrying a snapshot)
   * wait until {@link releaseSnapshots}; other saves go on (a disk slow to
   * write a big snapshot file).
   */
  holdSnapshots(): void {
    this.heldSnapshots ??= [];
  }

  /** Snapshot writes waiting for {@link releaseSnapshots}. */
  get snapshotsHeld(): number {
    return this.heldSnapshots?.length ?? 0;
  }

  /** Lets held snapshot writes proceed, in order. */
  releaseSnapshots(): void {
    const held = this.heldSnapshots ?? [];
    this.heldSnapshots = null;
    for (const go of held) go();
  }

  /** Every later save rejects with `err` (like a failed fdatasync). */
  failWith(err: Error): void {
    this.failure = err;
  }

  load(): Promise<PersistentState> {
    return this.inner.load();
  }

  async save(write: StorageWrite): Promise<void> {
    this.writes.push(write);
    if (this.held !== null) await new Promise<void>((go) => this.held?.push(go));
    if (write.snapshot !== undefined && this.heldSnapshots !== null) {
      await new Promise<void>((go) => this.heldSnapshots?.push(go));
    }
    if (this.failure !== null) throw this.failure;
    await this.inner.save(write);
  }

  async prepareSnapshot(snapshot: Snapshot): Promise<void> {
    this.prepared.push(snapshot);
    if (this.held !== null) await new Promise<void>((go) => this.held?.push(go));
    if (this.heldSnapshots !== null) {
      await new Promise<void>((go) => this.heldSnapshots?.push(go));
    }
    if (this.failure !== null) throw this.failure;
    await this.inner.prepareSnapshot(snapshot);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
