/**
 * The simulated network and the nodes on it. Nodes are objects with handlers
 * ({@link SimNode}); they send through a {@link NodeContext}. Every message is
 * encoded with the codec when sent and decoded again when delivered, as on the
 * wire, and the network injects faults drawn from its seeded `Random`: per-link
 * loss, duplication and random delay (so reordering), partitions between
 * arbitrary groups, isolated nodes, clogged links, and node crashes/restarts.
 *
 * ```ts
 * const sched = new Scheduler();
 * const trace = new Trace();
 * const net = new SimNetwork<Msg>({ scheduler: sched, random: rng.fork('net'), codec, trace,
 *   faults: { dropProbability: 0.05, duplicateProbability: 0.01, delay: { minMs: 1, maxMs: 20 } } });
 * net.addNode(nodeId('n1'), {
 *   onStart: (ctx) => ctx.send(nodeId('n2'), { type: 'Ping', seq: 1 }),
 *   onMessage: (from, msg, ctx) => { ... },
 *   onTick: (ctx) => core.tick(),       // every tickMs while up
 *   onCrash: () => { ... },             // forget volatile state
 *   onRestart: (ctx) => { ... },        // rebuild from durable state
 * }, { tickMs: 10 });
 * net.partition([[n1], [n2, n3]]);  net.heal();
 * net.crash(n1);  net.restart(n1);  net.clog(n1, n2, sched.now() + 100);
 * sched.run({ untilMs: 10_000 });
 * ```
 *
 * What the network promises (and {@link ../sim/scenarios/echo.ts} checks):
 * - every delivered message was sent, from that sender to that receiver, and
 *   decodes to what was sent (no corruption, no misrouting);
 * - a message is delivered at most once, unless duplication is on for its link;
 * - nothing is delivered to or from a node while it is down, and a message sent
 *   to one incarnation of a node is never delivered to a later one (a crash
 *   loses everything in flight to it); a stale context of a crashed node
 *   cannot send;
 * - nothing is sent across a cut link, and nothing is delivered while the link
 *   is cut (a partition also loses what is in flight across it);
 * - nothing is delivered over a clogged link before the clog ends (messages
 *   wait, they are not lost);
 * - with `fifo: true`, messages on each directed link are delivered in the
 *   order sent (a duplicate right after its original). Without it, no order;
 * - messages for which `ordered` holds travel like on one TCP connection per
 *   directed link: delivered in the order sent among themselves, never
 *   duplicated (they may still be lost or delayed, or cut by a partition);
 * - a node added `unpartitioned` (a client, say) is never cut off by a
 *   partition or an isolation (its links still lose, delay and clog).
 * Nothing is promised about delivery itself: any message may be lost.
 */
import { assert } from '../lib/assert.js';
import type { Clock, TimerHandle } from '../lib/clock.js';
import type { NodeId } from '../lib/ids.js';
import type { Random } from '../lib/random.js';
import type { EventHandle, Scheduler } from './scheduler.js';
import type { Trace } from './trace.js';
import type { Codec } from '../wire/codec.js';

/** The wire codec every simulated message goes through (re-exported for scenario authors). */
export type { Codec };

/**
 * How long a message spends in flight: uniform in [minMs, maxMs], except that
 * with `tailProbability` it is uniform in [maxMs, tailMaxMs] (a long tail).
 */
export interface DelayModel {
  readonly minMs: number;
  readonly maxMs: number;
  readonly tailProbability?: number;
  readonly tailMaxMs?: number;
}

/** The faults of one directed link. */
export interface LinkFaults {
  /** Chance that a message is lost. */
  readonly dropProbability: number;
  /** Chance that a message is delivered twice. */
  readonly duplicateProbability: number;
  /** Time in flight. */
  readonly delay: DelayModel;
}

/** The fault-free default: nothing lost or duplicated, 1 ms in flight. */
export const noFaults: LinkFaults = {
  dropProbability: 0,
  duplicateProbability: 0,
  delay: { minMs: 1, maxMs: 1 },
};

/** What a node may do; a fresh context is handed out at each (re)start. */
export interface NodeContext<M> {
  /** The node this context belongs to. */
  readonly id: NodeId;
  /** 1 at the first start, +1 at each restart. */
  readonly incarnation: number;
  /** A random stream for this node and incarnation (forked from the network's). */
  readonly random: Random;
  /** A lib Clock: virtual time, and timers that die with this incarnation. */
  readonly clock: Clock;
  /** The current virtual time in ms. */
  now(): number;
  /** True while this incarnation is up (false once the node has crashed). */
  alive(): boolean;
  /** Sends `message` to `to`. Silently dropped if this incarnation is dead (a crashed node sends nothing). */
  send(to: NodeId, message: M): void;
  /** Runs `fn` after `delayMs` unless this incarnation crashes first. */
  setTimer(delayMs: number, fn: () => void): TimerHandle;
  /** Cancels a timer set through this context. */
  clearTimer(handle: TimerHandle): void;
  /** Appends a node-level event to the trace (e.g. "became leader"). */
  note(kind: string, detail?: unknown): void;
}

/**
 * A simulated node. Only `onMessage` is required; the Raft simulator plugs a
 * core in by feeding `onMessage` to `step()`, `onTick` to `tick()`, dropping
 * volatile state in `onCrash` and rebuilding from its disk in `onRestart`.
 */
export interface SimNode<M> {
  /** Called when the node is added (incarnation 1). */
  onStart?(ctx: NodeContext<M>): void;
  /** A message arrived from `from`. */
  onMessage(from: NodeId, message: M, ctx: NodeContext<M>): void;
  /** Called every `tickMs` (see {@link AddNodeOptions}) while the node is up. */
  onTick?(ctx: NodeContext<M>): void;
  /** The node just crashed: its timers are cancelled, its context is dead. */
  onCrash?(): void;
  /** The node restarts with a fresh context (default: `onStart`). */
  onRestart?(ctx: NodeContext<M>): void;
}

/** Options for {@link SimNetwork.addNode}. */
export interface AddNodeOptions {
  /** Call `onTick` every `tickMs` while up (first tick at a random phase). Off when absent. */
  readonly tickMs?: number;
  /** Never cut off by {@link SimNetwork.partition} or {@link SimNetwork.isolate} (e.g. a client). */
  readonly unpartitioned?: boolean;
}

/** Why a message was not delivered. */
export type DropReason =
  'sender-down' | 'unknown-node' | 'partitioned' | 'lost' | 'receiver-down' | 'receiver-restarted';

/** What the network did, for observers (checkers, statistics). */
export type NetEvent<M> =
  | {
      readonly kind: 'send';
      readonly id: number;
      readonly from: NodeId;
      readonly to: NodeId;
      readonly message: M;
      readonly bytes: number;
    }
  | {
      readonly kind: 'deliver';
      readonly id: number;
      readonly copy: number;
      readonly from: NodeId;
      readonly to: NodeId;
      readonly message: M;
    }
  | {
      readonly kind: 'drop';
      readonly id: number;
      readonly from: NodeId;
      readonly to: NodeId;
      readonly reason: DropReason;
    }
  | { readonly kind: 'duplicate'; readonly id: number; readonly from: NodeId; readonly to: NodeId };

/**
 * Test-only switches that break the network's promises, to show the checkers
 * catch a broken network. Never set outside tests.
 */
export interface NetworkBugs {
  /** Deliver across cut links (ignore partitions). */
  readonly ignorePartitions?: boolean;
  /** Flip the low bit of the last byte of every encoded message. */
  readonly corruptPayloads?: boolean;
  /** Deliver to nodes that are down. */
  readonly deliverToDownNodes?: boolean;
  /** Deliver every message twice even with duplication off. */
  readonly duplicateAlways?: boolean;
  /** Lose every message, whatever the configured faults. */
  readonly loseEverything?: boolean;
}

/** Options for {@link SimNetwork}. */
export interface NetworkOptions<M> {
  readonly scheduler: Scheduler;
  /** The network's own stream (fork one for it); faults and node streams derive from it. */
  readonly random: Random;
  readonly codec: Codec<M>;
  readonly trace?: Trace;
  /** Default faults of every link (merged over {@link noFaults}). */
  readonly faults?: Partial<LinkFaults>;
  /** Promise per-link FIFO delivery. */
  readonly fifo?: boolean;
  /**
   * Messages that travel like on a TCP connection: per link in order among
   * themselves and never duplicated (e.g. RPC, whose transport contract says so).
   */
  readonly ordered?: (message: M) => boolean;
  /** Test-only: break promises on purpose. */
  readonly bugs?: NetworkBugs;
}

/** Counters of what the network did. */
export interface NetworkStats {
  sent: number;
  delivered: number;
  duplicated: number;
  clogDelays: number;
  dropped: Record<DropReason, number>;
}

interface InFlight {
  readonly id: number;
  readonly copy: number;
  /** Sent on an ordered link ({@link NetworkOptions.ordered}). */
  readonly ordered: boolean;
  readonly from: NodeId;
  readonly to: NodeId;
  readonly bytes: Uint8Array;
  readonly toIncarnation: number;
}

interface NodeSlot<M> {
  readonly id: NodeId;
  readonly node: SimNode<M>;
  readonly tickMs: number | undefined;
  readonly unpartitioned: boolean;
  up: boolean;
  incarnation: number;
  ctx: NodeContext<M> | undefined;
  readonly timers: Set<EventHandle>;
  ticker: EventHandle | undefined;
}

function linkKey(from: NodeId, to: NodeId): string {
  // Node ids cannot contain '>' (see lib/ids.ts), so the key is unambiguous.
  return `${from}>${to}`;
}

function checkFaults(f: LinkFaults): LinkFaults {
  const p = (x: number): boolean => x >= 0 && x <= 1;
  assert(p(f.dropProbability), `dropProbability ${f.dropProbability} not in [0, 1]`);
  assert(p(f.duplicateProbability), `duplicateProbability ${f.duplicateProbability} not in [0, 1]`);
  const d = f.delay;
  assert(
    Number.isSafeInteger(d.minMs) &&
      Number.isSafeInteger(d.maxMs) &&
      d.minMs >= 0 &&
      d.minMs <= d.maxMs,
    `delay [${d.minMs}, ${d.maxMs}] must be whole ms with 0 <= min <= max`,
  );
  if (d.tailProbability !== undefined) {
    assert(p(d.tailProbability), `tailProbability ${d.tailProbability} not in [0, 1]`);
    assert(
      d.tailMaxMs !== undefined && Number.isSafeInteger(d.tailMaxMs) && d.tailMaxMs >= d.maxMs,
      'a delay tail needs whole tailMaxMs >= maxMs',
    );
  }
  return f;
}

/** Draws one in-flight time from `d`. */
export function drawDelay(d: DelayModel, random: Random): number {
  if (
    d.tailProbability !== undefined &&
    d.tailMaxMs !== undefined &&
    random.chance(d.tailProbability)
  ) {
    return random.intBetween(d.maxMs, d.tailMaxMs);
  }
  return random.intBetween(d.minMs, d.maxMs);
}

/** A deterministic, fault-injecting network of {@link SimNode}s over a {@link Scheduler}. */
export class SimNetwork<M> {
  private readonly scheduler: Scheduler;
  private readonly random: Random;
  private readonly faultRandom: Random;
  private readonly codec: Codec<M>;
  private readonly trace: Trace | undefined;
  private readonly fifo: boolean;
  private readonly ordered: ((message: M) => boolean) | undefined;
  private readonly bugs: NetworkBugs;
  private defaults: LinkFaults;
  private readonly linkFaults = new Map<string, LinkFaults>();
  private readonly slots = new Map<NodeId, NodeSlot<M>>();
  private readonly cut = new Set<string>();
  private readonly clogs = new Map<string, number>();
  /** FIFO mode: per-link queue of messages; each delivery event delivers the head. */
  private readonly queues = new Map<string, InFlight[]>();
  /** FIFO mode: latest delivery time scheduled per link, so events stay in order. */
  private readonly lastDeliveryMs = new Map<string, number>();
  private readonly observers: ((e: NetEvent<M>) => void)[] = [];
  private nextMessageId = 1;
  private inFlightCount = 0;
  private readonly counters: NetworkStats = {
    sent: 0,
    delivered: 0,
    duplicated: 0,
    clogDelays: 0,
    dropped: {
      'sender-down': 0,
      'unknown-node': 0,
      partitioned: 0,
      lost: 0,
      'receiver-down': 0,
      'receiver-restarted': 0,
    },
  };

  constructor(options: NetworkOptions<M>) {
    this.scheduler = options.scheduler;
    this.random = options.random;
    this.faultRandom = options.random.fork('faults');
    this.codec = options.codec;
    this.trace = options.trace;
    this.fifo = options.fifo ?? false;
    this.ordered = options.ordered;
    this.bugs = options.bugs ?? {};
    this.defaults = checkFaults({ ...noFaults, ...options.faults });
  }

  // ---- nodes -------------------------------------------------------------

  /** Adds a node, starts it (incarnation 1, `onStart`) and its ticker. */
  addNode(id: NodeId, node: SimNode<M>, options: AddNodeOptions = {}): void {
    assert(!this.slots.has(id), `node ${id} added twice`);
    assert(
      options.tickMs === undefined || (Number.isSafeInteger(options.tickMs) && options.tickMs > 0),
      `tickMs must be a positive integer`,
    );
    const slot: NodeSlot<M> = {
      id,
      node,
      tickMs: options.tickMs,
      unpartitioned: options.unpartitioned === true,
      up: false,
      incarnation: 0,
      ctx: undefined,
      timers: new Set(),
      ticker: undefined,
    };
    this.slots.set(id, slot);
    this.boot(slot, false);
  }

  /** Every node, in the order added. */
  nodeIds(): NodeId[] {
    return [...this.slots.keys()];
  }

  /** True if `id` is up. */
  isUp(id: NodeId): boolean {
    return this.slot(id).up;
  }

  /** The current incarnation of `id` (1 at the first start). */
  incarnation(id: NodeId): number {
    return this.slot(id).incarnation;
  }

  /**
   * Crashes `id`: it stops receiving, sending, ticking and running timers;
   * messages in flight to it are lost; then `onCrash` runs. A no-op if down.
   */
  crash(id: NodeId): void {
    const slot = this.slot(id);
    if (!slot.up) return;
    slot.up = false;
    for (const t of slot.timers) this.scheduler.cancel(t);
    slot.timers.clear();
    if (slot.ticker !== undefined) this.scheduler.cancel(slot.ticker);
    slot.ticker = undefined;
    slot.ctx = undefined;
    this.record('crash', { node: id, incarnation: slot.incarnation });
    slot.node.onCrash?.();
  }

  /** Restarts a crashed node with a fresh context (`onRestart`, else `onStart`). A no-op if up. */
  restart(id: NodeId): void {
    const slot = this.slot(id);
    if (slot.up) return;
    this.boot(slot, true);
  }

  // ---- links -------------------------------------------------------------

  /** Replaces the default faults of every link without its own (merged over the current defaults). */
  setDefaultFaults(faults: Partial<LinkFaults>): void {
    this.defaults = checkFaults({ ...this.defaults, ...faults });
    this.record('faults', { link: '*', ...this.defaults });
  }

  /** Sets the faults of the directed link from → to (merged over the defaults). */
  setLinkFaults(from: NodeId, to: NodeId, faults: Partial<LinkFaults>): void {
    const f = checkFaults({ ...this.faultsOf(from, to), ...faults });
    this.linkFaults.set(linkKey(from, to), f);
    this.record('faults', { link: linkKey(from, to), ...f });
  }

  /** The faults in force on from → to. */
  faultsOf(from: NodeId, to: NodeId): LinkFaults {
    return this.linkFaults.get(linkKey(from, to)) ?? this.defaults;
  }

  /**
   * Cuts every link between different groups (both directions). Nodes in no
   * group form one more group together. Adds to cuts already in place.
   */
  partition(groups: readonly (readonly NodeId[])[]): void {
    const groupOf = new Map<NodeId, number>();
    groups.forEach((g, i) => {
      for (const id of g) {
        this.slot(id);
        assert(!groupOf.has(id), `node ${id} is in two partition groups`);
        groupOf.set(id, i);
      }
    });
    const ids = this.nodeIds().filter((id) => !this.slot(id).unpartitioned);
    for (const a of ids) {
      for (const b of ids) {
        if (a !== b && (groupOf.get(a) ?? -1) !== (groupOf.get(b) ?? -1))
          this.cut.add(linkKey(a, b));
      }
    }
    this.record('partition', { groups: groups.map((g) => [...g]) });
  }

  /** Cuts `id` off from every other node, both directions. */
  isolate(id: NodeId): void {
    this.slot(id);
    for (const [other, slot] of this.slots) {
      if (other === id || slot.unpartitioned) continue;
      this.cut.add(linkKey(id, other));
      this.cut.add(linkKey(other, id));
    }
    this.record('isolate', { node: id });
  }

  /** Cuts the directed link from → to only (an asymmetric partition). */
  cutLink(from: NodeId, to: NodeId): void {
    this.slot(from);
    this.slot(to);
    this.cut.add(linkKey(from, to));
    this.record('cut', { from, to });
  }

  /** Reconnects the directed link from → to. */
  healLink(from: NodeId, to: NodeId): void {
    this.cut.delete(linkKey(from, to));
    this.record('heal-link', { from, to });
  }

  /** Reconnects every cut link. */
  heal(): void {
    this.cut.clear();
    this.record('heal');
  }

  /** True if the directed link from → to is cut (a node's link to itself never is). */
  isCut(from: NodeId, to: NodeId): boolean {
    return this.cut.has(linkKey(from, to));
  }

  /**
   * Clogs the directed link from → to until virtual time `untilMs`: messages
   * keep flowing in but none is delivered before then (they are held, not lost).
   */
  clog(from: NodeId, to: NodeId, untilMs: number): void {
    this.slot(from);
    this.slot(to);
    assert(Number.isSafeInteger(untilMs), 'clog until a whole ms');
    const key = linkKey(from, to);
    this.clogs.set(key, Math.max(untilMs, this.clogs.get(key) ?? 0));
    this.record('clog', { from, to, untilMs });
  }

  /** Clogs every link into and out of `id` until `untilMs`. */
  clogNode(id: NodeId, untilMs: number): void {
    for (const other of this.slots.keys()) {
      if (other === id) continue;
      this.clog(id, other, untilMs);
      this.clog(other, id, untilMs);
    }
  }

  /** The time until which from → to is clogged, or undefined if it is not clogged now. */
  cloggedUntil(from: NodeId, to: NodeId): number | undefined {
    const until = this.clogs.get(linkKey(from, to));
    return until !== undefined && until > this.scheduler.now() ? until : undefined;
  }

  // ---- observation -------------------------------------------------------

  /** Calls `listener` with every send, delivery, drop and duplication. */
  observe(listener: (e: NetEvent<M>) => void): void {
    this.observers.push(listener);
  }

  /** Messages sent (or duplicated) and neither delivered nor dropped yet. */
  get inFlight(): number {
    return this.inFlightCount;
  }

  /** A copy of the counters. */
  stats(): NetworkStats {
    return structuredClone(this.counters);
  }

  // ---- internals ---------------------------------------------------------

  private slot(id: NodeId): NodeSlot<M> {
    const s = this.slots.get(id);
    assert(s !== undefined, `unknown node ${id}`);
    return s;
  }

  private record(kind: string, detail?: unknown): void {
    this.trace?.record(this.scheduler.now(), kind, detail);
  }

  private emit(e: NetEvent<M>): void {
    for (const o of this.observers) o(e);
  }

  private boot(slot: NodeSlot<M>, restart: boolean): void {
    slot.up = true;
    slot.incarnation++;
    const ctx = this.makeContext(slot, slot.incarnation);
    slot.ctx = ctx;
    this.record(restart ? 'restart' : 'start', { node: slot.id, incarnation: slot.incarnation });
    if (slot.tickMs !== undefined) {
      const phase = this.random.fork(`tick:${slot.id}:${slot.incarnation}`).int(slot.tickMs);
      this.scheduleTick(slot, ctx, phase + 1);
    }
    if (restart && slot.node.onRestart !== undefined) slot.node.onRestart(ctx);
    else slot.node.onStart?.(ctx);
  }

  private scheduleTick(slot: NodeSlot<M>, ctx: NodeContext<M>, delayMs: number): void {
    slot.ticker = this.scheduler.after(delayMs, `tick ${slot.id}`, () => {
      slot.ticker = undefined;
      if (!ctx.alive()) return;
      this.record('tick', slot.id);
      this.scheduleTick(slot, ctx, slot.tickMs as number);
      slot.node.onTick?.(ctx);
    });
  }

  private makeContext(slot: NodeSlot<M>, incarnation: number): NodeContext<M> {
    const alive = (): boolean => slot.up && slot.incarnation === incarnation;
    const timerEvents = new Map<number, EventHandle>();
    let nextTimer = 1;
    const setTimer = (delayMs: number, fn: () => void): TimerHandle => {
      const id = nextTimer++;
      if (!alive()) return { id };
      const h = this.scheduler.after(Math.max(0, Math.ceil(delayMs)), `timer ${slot.id}`, () => {
        slot.timers.delete(h);
        timerEvents.delete(id);
        if (!alive()) return;
        if (this.trace !== undefined) this.record('timer', { node: slot.id, timer: id });
        fn();
      });
      slot.timers.add(h);
      timerEvents.set(id, h);
      return { id };
    };
    const clearTimer = (handle: TimerHandle): void => {
      const h = timerEvents.get(handle.id);
      if (h === undefined) return;
      timerEvents.delete(handle.id);
      slot.timers.delete(h);
      this.scheduler.cancel(h);
    };
    return {
      id: slot.id,
      incarnation,
      random: this.random.fork(`node:${slot.id}:${incarnation}`),
      clock: { now: () => this.scheduler.now(), setTimer, clearTimer },
      now: () => this.scheduler.now(),
      alive,
      send: (to: NodeId, message: M) => this.send(slot, incarnation, to, message),
      setTimer,
      clearTimer,
      note: (kind: string, detail?: unknown) => {
        if (alive())
          this.record(kind, detail === undefined ? { node: slot.id } : { node: slot.id, detail });
      },
    };
  }

  private drop(id: number, from: NodeId, to: NodeId, reason: DropReason): void {
    this.counters.dropped[reason]++;
    if (this.trace !== undefined) this.record('drop', { id, from, to, reason });
    this.emit({ kind: 'drop', id, from, to, reason });
  }

  private send(slot: NodeSlot<M>, incarnation: number, to: NodeId, message: M): void {
    const from = slot.id;
    const id = this.nextMessageId++;
    if (!slot.up || slot.incarnation !== incarnation) {
      this.drop(id, from, to, 'sender-down');
      return;
    }
    // Encode now, as on the wire; copy because a codec may return a view into a reused buffer.
    const bytes = this.codec.encode(message).slice();
    if (this.bugs.corruptPayloads === true && bytes.length > 0) {
      bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 1;
    }
    this.counters.sent++;
    if (this.trace !== undefined)
      this.record('send', { id, from, to, bytes: bytes.length, msg: message });
    this.emit({ kind: 'send', id, from, to, message, bytes: bytes.length });
    const dest = this.slots.get(to);
    if (dest === undefined) {
      this.drop(id, from, to, 'unknown-node');
      return;
    }
    if (this.isCut(from, to) && this.bugs.ignorePartitions !== true) {
      this.drop(id, from, to, 'partitioned');
      return;
    }
    const faults = this.faultsOf(from, to);
    if (this.faultRandom.chance(faults.dropProbability) || this.bugs.loseEverything === true) {
      this.drop(id, from, to, 'lost');
      return;
    }
    const ordered = this.ordered?.(message) === true;
    const duplicate =
      this.bugs.duplicateAlways === true || this.faultRandom.chance(faults.duplicateProbability);
    const copies = duplicate && !ordered ? 2 : 1;
    for (let copy = 0; copy < copies; copy++) {
      if (copy > 0) {
        this.counters.duplicated++;
        this.record('duplicate', { id, from, to });
        this.emit({ kind: 'duplicate', id, from, to });
      }
      this.enqueue({ id, copy, ordered, from, to, bytes, toIncarnation: dest.incarnation }, faults);
    }
  }

  private enqueue(m: InFlight, faults: LinkFaults): void {
    this.inFlightCount++;
    // An ordered message that the network would not keep in order waits in its own per-link queue.
    const key = linkKey(m.from, m.to) + (m.ordered && !this.fifo ? '#ordered' : '');
    let at = this.scheduler.now() + drawDelay(faults.delay, this.faultRandom);
    if (this.fifo || m.ordered) {
      at = Math.max(at, this.lastDeliveryMs.get(key) ?? 0);
      this.lastDeliveryMs.set(key, at);
      let q = this.queues.get(key);
      if (q === undefined) this.queues.set(key, (q = []));
      q.push(m);
      this.scheduler.at(at, `deliver ${key}`, () => this.arriveFifo(key));
    } else {
      this.scheduler.at(at, `deliver ${key}`, () => this.arrive(m));
    }
  }

  private arriveFifo(key: string): void {
    const q = this.queues.get(key);
    const head = q?.[0];
    assert(
      q !== undefined && head !== undefined,
      `FIFO delivery event with an empty queue on ${key}`,
    );
    if (this.holdIfClogged(head, () => this.arriveFifo(key))) return;
    q.shift();
    this.deliver(head);
  }

  private arrive(m: InFlight): void {
    if (this.holdIfClogged(m, () => this.arrive(m))) return;
    this.deliver(m);
  }

  /** If the link is clogged, reschedules `again` for when the clog ends and returns true. */
  private holdIfClogged(m: InFlight, again: () => void): boolean {
    const until = this.cloggedUntil(m.from, m.to);
    if (until === undefined) return false;
    // Only a live message waits: one that would be dropped anyway is dropped now.
    if (this.dropReason(m) !== undefined) return false;
    this.counters.clogDelays++;
    this.record('clogged', { id: m.id, from: m.from, to: m.to, untilMs: until });
    this.scheduler.at(until, `deliver ${linkKey(m.from, m.to)}`, again);
    return true;
  }

  private dropReason(m: InFlight): DropReason | undefined {
    const dest = this.slot(m.to);
    const sender = this.slot(m.from);
    const ignoreDown = this.bugs.deliverToDownNodes === true;
    if (!dest.up && !ignoreDown) return 'receiver-down';
    if (dest.incarnation !== m.toIncarnation && !ignoreDown) return 'receiver-restarted';
    if (!sender.up && !ignoreDown) return 'sender-down';
    if (this.isCut(m.from, m.to) && this.bugs.ignorePartitions !== true) return 'partitioned';
    return undefined;
  }

  private deliver(m: InFlight): void {
    this.inFlightCount--;
    const reason = this.dropReason(m);
    if (reason !== undefined) {
      this.drop(m.id, m.from, m.to, reason);
      return;
    }
    const dest = this.slot(m.to);
    // Decoding bytes this network encoded cannot fail unless the codec is broken: let it throw.
    const message = this.codec.decode(m.bytes);
    this.counters.delivered++;
    if (this.trace !== undefined)
      this.record('deliver', { id: m.id, copy: m.copy, from: m.from, to: m.to, msg: message });
    this.emit({ kind: 'deliver', id: m.id, copy: m.copy, from: m.from, to: m.to, message });
    const ctx = dest.ctx ?? this.makeContext(dest, dest.incarnation);
    dest.node.onMessage(m.from, message, ctx);
  }
}
