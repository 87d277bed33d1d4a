/**
 * A deterministic in-memory cluster of {@link RaftCore}s for unit tests, the
 * golden interpreter and the core benchmark. Each node has a memory "disk"
 * (what it persisted, following the Storage write rules) and a toy state
 * machine (the list of applied commands). Messages wait in one network queue
 * until a test delivers, drops or filters them; nothing happens by itself.
 *
 * ```ts
 * const c = new Cluster(['a', 'b', 'c']);
 * c.campaign('a');
 * c.stabilize();
 * c.propose('a', 'x=1');
 * c.stabilize();
 * expect(c.applied('b')).toEqual(['x=1']);
 * ```
 */
import { assert } from '../../../src/lib/assert.js';
import type { LogIndex, NodeId, Term } from '../../../src/lib/ids.js';
import { seededRandom } from '../../../src/lib/random.js';
import type { Random } from '../../../src/lib/random.js';
import type { RaftMessage } from '../../../src/raft/core/messages.js';
import { RaftCore } from '../../../src/raft/core/raft-core.js';
import type {
  ProposeResult,
  RaftOptions,
  Ready,
  ReadState,
} from '../../../src/raft/core/raft-core.js';
import type {
  ClusterConfig,
  Entry,
  HardState,
  RaftInitialState,
  Snapshot,
} from '../../../src/raft/core/types.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Encodes a command string as entry data. */
export function cmd(text: string): Uint8Array {
  return enc.encode(text);
}

/** Decodes entry data as a command string. */
export function text(data: Uint8Array): string {
  return dec.decode(data);
}

/** What one node persisted, following the rules of Storage.save (snapshot, then entries, then hard state). */
export class MemDisk {
  hardState: HardState = { term: 0 as Term, vote: null, commit: 0 as LogIndex };
  snapshot: Snapshot | null = null;
  entries: Entry[] = [];

  save(rd: Ready): void {
    if (rd.snapshot !== undefined) {
      const meta = rd.snapshot.snapshot.meta;
      const at = this.entries.find((e) => e.index === meta.index);
      this.entries =
        at !== undefined && at.term === meta.term
          ? this.entries.filter((e) => e.index > meta.index)
          : [];
      this.snapshot = rd.snapshot.snapshot;
    }
    const first = rd.entries[0];
    if (first !== undefined) {
      this.entries = this.entries.filter((e) => e.index < first.index);
      const base = this.entries[this.entries.length - 1]?.index ?? this.snapshot?.meta.index ?? 0;
      assert(
        first.index === base + 1,
        `disk: entries at ${first.index} after ${base} (snapshot ${this.snapshot?.meta.index}, ready snapshot ${rd.snapshot?.snapshot.meta.index} restore ${rd.snapshot?.restore})`,
      );
      this.entries.push(...rd.entries);
    }
    if (rd.hardState !== undefined) this.hardState = rd.hardState;
  }

  load(): RaftInitialState {
    return { hardState: this.hardState, snapshot: this.snapshot, entries: [...this.entries] };
  }
}

/** A node of the test cluster: its core, disk and state machine. */
export interface TestNode {
  readonly id: NodeId;
  core: RaftCore;
  readonly disk: MemDisk;
  /** Applied commands (normal entries), in order, with their index. */
  applied: { index: number; term: number; command: string }[];
  /** Highest index applied (all kinds). */
  appliedIndex: number;
  readStates: ReadState[];
  up: boolean;
  /** Async mode: the Ready taken but not yet performed (lost on a crash: never synced). */
  pending: Ready | null;
}

/** Options for {@link Cluster}. */
export interface ClusterOptions {
  readonly seed?: number;
  /** Options for every core (id and random are filled in). */
  readonly raft?: Omit<RaftOptions, 'id' | 'random'>;
  /** Per-node option overrides. */
  readonly perNode?: Readonly<Record<string, Omit<RaftOptions, 'id' | 'random'>>>;
  /** Bootstrap configuration (default: all given ids are voters). */
  readonly config?: ClusterConfig;
  /** Take each Ready at once but perform it only on completeReady()/stabilize() (a slow disk). */
  readonly asyncReady?: boolean;
  /** What some nodes start from (as if recovered from disk). */
  readonly initial?: Readonly<Record<string, RaftInitialState>>;
}

/** Entries with the given terms at indexes 1, 2, ... (commands "t<term>i<index>"). */
export function entriesWithTerms(terms: readonly number[], from = 1): Entry[] {
  return terms.map((t, i) => ({
    index: (from + i) as LogIndex,
    term: t as Term,
    kind: 'normal' as const,
    data: cmd(`t${t}i${from + i}`),
  }));
}

/** An initial state holding `terms` as its log, at hard-state term `term` (default: the last entry's). */
export function logState(terms: readonly number[], term?: number): RaftInitialState {
  return {
    hardState: {
      term: (term ?? terms[terms.length - 1] ?? 0) as Term,
      vote: null,
      commit: 0 as LogIndex,
    },
    snapshot: null,
    entries: entriesWithTerms(terms),
  };
}

/** Decides whether a message in flight may be delivered. */
export type LinkFilter = (m: RaftMessage) => boolean;

/** Encodes the applied commands as snapshot data. */
function encodeApplied(node: TestNode): Uint8Array {
  return enc.encode(JSON.stringify(node.applied));
}

/** Hooks to watch a cluster (the golden interpreter prints what they see). */
export interface ClusterObserver {
  /** A message is about to be stepped into its destination. */
  delivered?: (m: RaftMessage) => void;
  /** A node produced a Ready (called before the harness performs it). */
  ready?: (node: TestNode, rd: Ready) => void;
}

/** The deterministic in-memory cluster (see the file header). */
export class Cluster {
  /** Optional hooks; see {@link ClusterObserver}. */
  observer: ClusterObserver = {};
  readonly nodes = new Map<NodeId, TestNode>();
  /** Messages sent and not yet delivered, in send order. */
  network: RaftMessage[] = [];
  /** Directed links that drop everything: "from->to". */
  readonly cut = new Set<string>();
  private readonly rng: Random;
  private readonly options: ClusterOptions;
  readonly bootstrap: ClusterConfig;

  constructor(ids: readonly string[], options: ClusterOptions = {}) {
    this.options = options;
    this.rng = seededRandom(options.seed ?? 1);
    this.bootstrap = options.config ?? { voters: ids as NodeId[], learners: [] };
    for (const id of ids) this.addNode(id, this.bootstrap);
  }

  /** Adds a node with an empty disk (pass an empty config for a node that joins later). */
  addNode(id: string, bootstrap: ClusterConfig): TestNode {
    const nid = id as NodeId;
    assert(!this.nodes.has(nid), `node ${id} exists`);
    const disk = new MemDisk();
    const initial = this.options.initial?.[id];
    if (initial !== undefined) {
      disk.hardState = initial.hardState;
      disk.snapshot = initial.snapshot;
      disk.entries = [...initial.entries];
    }
    const node: TestNode = {
      id: nid,
      core: this.makeCore(nid, disk.load(), bootstrap),
      disk,
      applied:
        disk.snapshot === null ? [] : (JSON.parse(text(disk.snapshot.data)) as TestNode['applied']),
      appliedIndex: disk.snapshot?.meta.index ?? 0,
      readStates: [],
      up: true,
      pending: null,
    };
    this.nodes.set(nid, node);
    return node;
  }

  private makeCore(id: NodeId, initial: RaftInitialState, bootstrap: ClusterConfig): RaftCore {
    const opts: RaftOptions = {
      ...this.options.raft,
      ...this.options.perNode?.[id],
      id,
      random: this.rng.fork(`raft:${id}:${this.rng.uint32()}`),
    };
    return new RaftCore(opts, initial, bootstrap);
  }

  /** The node named `id`. */
  node(id: string): TestNode {
    const n = this.nodes.get(id as NodeId);
    assert(n !== undefined, `no node ${id}`);
    return n;
  }

  /** The core of node `id`. */
  core(id: string): RaftCore {
    return this.node(id).core;
  }

  /** Terms of the entries `id` holds in memory, in index order. */
  terms(id: string): number[] {
    return this.core(id)
      .entries()
      .map((e) => e.term);
  }

  /** Messages in flight, optionally only those of `type`. */
  inFlight(type?: RaftMessage['type']): RaftMessage[] {
    return type === undefined ? [...this.network] : this.network.filter((m) => m.type === type);
  }

  /** Commands applied by `id`. */
  applied(id: string): string[] {
    return this.node(id).applied.map((a) => a.command);
  }

  /** The current leader among running nodes (the one with the highest term), or null. */
  leader(): NodeId | null {
    let best: RaftCore | null = null;
    for (const n of this.nodes.values()) {
      if (!n.up) continue;
      const s = n.core.status();
      if (s.role === 'leader' && (best === null || s.term > best.status().term)) best = n.core;
    }
    return best === null ? null : best.id;
  }

  /** Ticks `id` (or every running node) `times` times, processing Ready after each tick. */
  tick(id?: string, times = 1): void {
    for (let i = 0; i < times; i++) {
      for (const n of this.nodes.values()) {
        if (!n.up || (id !== undefined && n.id !== id)) continue;
        n.core.tick();
        this.processReady(n);
      }
    }
  }

  /** Starts an election at `id`. */
  campaign(id: string): void {
    const n = this.node(id);
    n.core.campaign();
    this.processReady(n);
  }

  /** Proposes a command at `id`. */
  propose(id: string, command: string): ProposeResult {
    const n = this.node(id);
    const r = n.core.propose(cmd(command));
    this.processReady(n);
    return r;
  }

  /** Runs every pending Ready of a running node: persist, send, apply, advance. */
  processReady(n: TestNode): void {
    if (this.options.asyncReady === true) {
      // Take the Ready now; perform it later (completeReady), as a shell with a slow disk would.
      if (n.up && n.pending === null && n.core.hasReady()) {
        n.pending = n.core.ready();
        this.observer.ready?.(n, n.pending);
      }
      return;
    }
    while (n.up && n.core.hasReady()) {
      const rd = n.core.ready();
      this.observer.ready?.(n, rd);
      this.perform(n, rd);
    }
  }

  /** Async mode: performs `id`'s outstanding Ready (persist, send, apply, advance), then takes the next. */
  completeReady(id: string): boolean {
    const n = this.node(id);
    const rd = n.pending;
    if (!n.up || rd === null) return false;
    n.pending = null;
    this.perform(n, rd);
    this.processReady(n);
    return true;
  }

  private perform(n: TestNode, rd: Ready): void {
    n.disk.save(rd);
    for (const m of rd.messages) this.network.push(m);
    if (rd.snapshot?.restore === true) {
      const data = rd.snapshot.snapshot.data;
      n.applied = JSON.parse(text(data)) as TestNode['applied'];
      n.appliedIndex = rd.snapshot.snapshot.meta.index;
    }
    for (const e of rd.committedEntries) {
      assert(e.index === n.appliedIndex + 1, `${n.id} applies ${e.index} after ${n.appliedIndex}`);
      n.appliedIndex = e.index;
      if (e.kind === 'normal')
        n.applied.push({ index: e.index, term: e.term, command: text(e.data) });
    }
    n.readStates.push(...rd.readStates);
    n.core.advance(rd);
  }

  /** Processes pending Ready of every running node. */
  processAll(): void {
    for (const n of this.nodes.values()) this.processReady(n);
  }

  /** True if the message may pass (both ends up, link not cut). */
  private passes(m: RaftMessage): boolean {
    const from = this.nodes.get(m.from);
    const to = this.nodes.get(m.to);
    return (
      from !== undefined &&
      to !== undefined &&
      from.up &&
      to.up &&
      !this.cut.has(`${m.from}->${m.to}`)
    );
  }

  /**
   * Delivers the messages now in flight that match `filter` (all by default),
   * in send order; returns how many were delivered. Messages that cannot pass
   * (cut link, node down) are dropped.
   */
  deliver(filter: LinkFilter = () => true): number {
    const now = this.network;
    this.network = [];
    let n = 0;
    const keep: RaftMessage[] = [];
    for (const m of now) {
      if (!filter(m)) {
        keep.push(m);
        continue;
      }
      if (!this.passes(m)) continue;
      const to = this.node(m.to);
      this.observer.delivered?.(m);
      to.core.step(m);
      n++;
      this.processReady(to);
    }
    this.network = [...keep, ...this.network];
    return n;
  }

  /** Drops the in-flight messages matching `filter`; returns how many. */
  drop(filter: LinkFilter = () => true): number {
    const before = this.network.length;
    this.network = this.network.filter((m) => !filter(m));
    return before - this.network.length;
  }

  /** Delivers until no message is in flight (bounded); returns the number of rounds. */
  stabilize(maxRounds = 1000): number {
    this.processAll();
    this.completeAll();
    let rounds = 0;
    while (this.network.length > 0) {
      assert(++rounds <= maxRounds, 'stabilize did not converge');
      this.deliver();
      this.processAll();
      this.completeAll();
    }
    return rounds;
  }

  /** Async mode: completes every outstanding Ready until none is left. */
  completeAll(): void {
    let more = true;
    while (more) {
      more = false;
      for (const n of this.nodes.values()) if (this.completeReady(n.id)) more = true;
    }
  }

  /** Cuts both directions between every node of `a` and every node of `b`. */
  partition(a: readonly string[], b: readonly string[]): void {
    for (const x of a) {
      for (const y of b) {
        this.cut.add(`${x}->${y}`);
        this.cut.add(`${y}->${x}`);
      }
    }
  }

  /** Isolates `id` from every other node. */
  isolate(id: string): void {
    this.partition(
      [id],
      [...this.nodes.keys()].filter((x) => x !== id),
    );
  }

  /** Restores every link. */
  heal(): void {
    this.cut.clear();
  }

  /** Crashes `id`: its volatile state is lost, its disk keeps what was persisted; in-flight messages to it vanish. */
  crash(id: string): void {
    const n = this.node(id);
    n.up = false;
    n.pending = null; // its writes were never synced
    this.network = this.network.filter((m) => m.to !== n.id);
  }

  /** Restarts a crashed node from its disk; its state machine restarts from the disk's snapshot. */
  restart(id: string): void {
    const n = this.node(id);
    assert(!n.up, `${id} is running`);
    const initial = n.disk.load();
    n.core = this.makeCore(n.id, initial, this.bootstrap);
    n.up = true;
    const snap = initial.snapshot;
    n.applied = snap === null ? [] : (JSON.parse(text(snap.data)) as TestNode['applied']);
    n.appliedIndex = snap === null ? 0 : snap.meta.index;
    n.readStates = [];
    this.processReady(n);
  }

  /** Takes a snapshot of `id`'s state machine at its applied index and compacts its log. */
  compact(id: string): boolean {
    const n = this.node(id);
    return n.core.compact(n.appliedIndex as LogIndex, encodeApplied(n));
  }

  /** Elects `id` (pre-vote and vote, delivered to completion). */
  elect(id: string): void {
    this.campaign(id);
    this.stabilize();
    assert(this.core(id).status().role === 'leader', `${id} did not win`);
  }
}

/** Ids used by single-core tests. */
export const A = 'a' as NodeId;
/** Second test node. */
export const B = 'b' as NodeId;
/** Third test node. */
export const C = 'c' as NodeId;

/** A lone core `id` (default A) in a cluster of `voters` (default a, b, c), for tests that hand-craft messages. */
export function soloCore(
  initial: RaftInitialState = logState([]),
  options: Omit<RaftOptions, 'id' | 'random'> = {},
  config: ClusterConfig = { voters: [A, B, C], learners: [] },
  id: NodeId = A,
): RaftCore {
  return new RaftCore({ ...options, id, random: seededRandom(7).fork(id) }, initial, config);
}

/** Steps `m` (if given) into `core` and returns the resulting Ready (already advanced), or null if none. */
export function stepReady(core: RaftCore, m?: RaftMessage): Ready | null {
  if (m !== undefined) core.step(m);
  if (!core.hasReady()) return null;
  const rd = core.ready();
  core.advance(rd);
  return rd;
}

/** Drains all Ready of `core`, returning every message produced. */
export function drain(core: RaftCore): RaftMessage[] {
  const out: RaftMessage[] = [];
  for (let rd = stepReady(core); rd !== null; rd = stepReady(core)) out.push(...rd.messages);
  return out;
}
