/**
 * Publish/subscribe across nodes, broker-less: a subscriber asks each
 * publisher node it names for a topic, and the publisher sends every message
 * of that topic straight to it, numbered per (publisher, topic, subscriber).
 *
 * ```ts
 * // on node b
 * const stop = b.pubsub.subscribe('scores', (msg, info) => console.log(info.publisher, msg), {
 *   publishers: [nodeId('a')],
 *   atLeastOnce: true,
 *   onLoss: (gap) => console.warn('lost', gap),      // buffer overflow at the publisher
 * });
 * // on node a
 * a.pubsub.publish('scores', { team: 'x', points: 3 });
 * ```
 *
 * Guarantees:
 * - **Per-publisher order**: a subscriber sees one publisher's messages of a
 *   topic in publish order (the transport's per-link FIFO, plus sequence
 *   numbers in at-least-once mode, where out-of-order arrivals are dropped and
 *   wait for redelivery).
 * - **At-most-once** (default): fire and forget; a message sent while the
 *   link is broken is lost (counted in `counters.dropped` when send refuses).
 * - **At-least-once**: the publisher keeps each message until the subscriber
 *   acknowledges it (cumulative `PsAck`), resends unacknowledged messages every
 *   `pubsubRedeliverMs` and at once when the subscriber's link comes back up,
 *   and the subscriber drops duplicates by sequence number. The buffer is
 *   bounded (`pubsubUnackedMax` per subscriber and topic): past it the oldest
 *   message is dropped, the publisher's `onOverflow` is called and counted, and
 *   the subscriber learns the lost range from the next message's `floor` (its
 *   `onLoss` is called) — never silent. After a subscriber restart, messages
 *   it had received but not acknowledged are delivered again (at least once).
 */
import type { Clock, TimerHandle } from '../lib/clock.js';
import { isCohortError } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import { limits } from '../lib/limits.js';
import type { Random } from '../lib/random.js';
import type { RpcWire, RpcWireMessage } from './messages.js';

/** Where a delivered message came from. */
export interface DeliveryInfo {
  readonly topic: string;
  readonly publisher: NodeId;
  /** Sequence number per (publisher, topic, subscriber); -1 for local delivery. */
  readonly seq: number;
}

/** Messages a subscriber will never get because its publisher's buffer overflowed. */
export interface LossReport {
  readonly topic: string;
  readonly publisher: NodeId;
  /** First lost sequence number. */
  readonly fromSeq: number;
  /** Last lost sequence number. */
  readonly toSeq: number;
}

/** Options of one subscription. */
export interface SubscribeOptions {
  /** The nodes whose messages of this topic to receive (this node's own are always delivered). */
  readonly publishers: readonly NodeId[];
  /** Acknowledged delivery with redelivery after outages (default false: at-most-once). */
  readonly atLeastOnce?: boolean;
  /** Called when messages were lost to a publisher's buffer overflow. */
  readonly onLoss?: (loss: LossReport) => void;
}

/** A message handler. */
export type TopicHandler = (message: unknown, info: DeliveryInfo) => void;

/** Options of a node's pub/sub. */
export interface PubSubOptions {
  /** Unacknowledged messages kept per subscriber and topic (default `limits.pubsubUnackedMax`). */
  readonly unackedMax?: number;
  /** Redelivery period (default `limits.pubsubRedeliverMs`). */
  readonly redeliverMs?: number;
  /** Called when an at-least-once buffer overflows (the oldest message is dropped). */
  readonly onOverflow?: (topic: string, subscriber: NodeId, seq: number) => void;
  /** Source of the publisher epoch (default Math.random). */
  readonly random?: Random;
}

/** Counters of a node's pub/sub. */
export interface PubSubCounters {
  published: number;
  delivered: number;
  /** Messages resent by at-least-once redelivery. */
  redelivered: number;
  /** At-most-once messages the transport refused. */
  dropped: number;
  /** At-least-once messages dropped because a subscriber's buffer was full. */
  overflowed: number;
  /** Duplicates or out-of-order arrivals a subscriber discarded. */
  discarded: number;
  /** Subscriptions refused because `pubsubSubscriptionsMax` was reached. */
  refused: number;
}

interface Outgoing {
  readonly seq: number;
  readonly payload: unknown;
  sentAt: number;
}

/** The publisher's state for one subscriber of one topic. */
interface Subscriber {
  readonly atLeastOnce: boolean;
  nextSeq: number;
  /** Unacknowledged messages, oldest first (at-least-once only). */
  readonly unacked: Outgoing[];
  /** Lowest sequence number the publisher can still deliver. */
  floor: number;
}

interface LocalSubscription {
  readonly handler: TopicHandler;
  readonly options: SubscribeOptions;
}

type Send = (to: NodeId, message: RpcWireMessage) => void;

/** A node's publish/subscribe endpoint (see the file comment). */
export class PubSub {
  private readonly epoch: number;
  /** Publisher side: topic → subscriber node → state. */
  private readonly subscribers = new Map<string, Map<NodeId, Subscriber>>();
  /** Subscriber side: topic → local subscriptions. */
  private readonly subscriptions = new Map<string, Set<LocalSubscription>>();
  /** Subscriber side: next expected seq per publisher, topic and epoch. */
  private readonly expected = new Map<string, number>();
  private readonly down = new Set<NodeId>();
  private readonly unackedMax: number;
  private readonly redeliverMs: number;
  private timer: TimerHandle | undefined;
  private closed = false;
  /** Live counters. */
  readonly counters: PubSubCounters = {
    published: 0,
    delivered: 0,
    redelivered: 0,
    dropped: 0,
    overflowed: 0,
    discarded: 0,
    refused: 0,
  };
  private subscriptionCount = 0;

  constructor(
    private readonly self: NodeId,
    private readonly send: Send,
    private readonly clock: Clock,
    private readonly options: PubSubOptions = {},
  ) {
    this.unackedMax = options.unackedMax ?? limits.pubsubUnackedMax;
    this.redeliverMs = options.redeliverMs ?? limits.pubsubRedeliverMs;
    this.epoch = options.random?.int(2 ** 31) ?? Math.floor(Math.random() * 2 ** 31);
  }

  /** Subscribes to `topic`; returns a function that unsubscribes. */
  subscribe(topic: string, handler: TopicHandler, options: SubscribeOptions): () => void {
    const sub: LocalSubscription = { handler, options };
    let set = this.subscriptions.get(topic);
    if (set === undefined) {
      set = new Set();
      this.subscriptions.set(topic, set);
    }
    set.add(sub);
    for (const publisher of options.publishers) this.requestFrom(publisher, topic);
    return () => {
      set.delete(sub);
      if (set.size > 0) return;
      this.subscriptions.delete(topic);
      for (const publisher of options.publishers) {
        if (publisher === this.self) continue;
        this.trySend(publisher, { type: 'PsUnsubscribe', topic });
      }
    };
  }

  /** Publishes `message` on `topic` to every subscriber (local ones asynchronously). */
  publish(topic: string, message: unknown): void {
    this.counters.published++;
    const local = this.subscriptions.get(topic);
    if (local !== undefined && local.size > 0) {
      const info: DeliveryInfo = { topic, publisher: this.self, seq: -1 };
      queueMicrotask(() => {
        for (const sub of local) {
          this.counters.delivered++;
          sub.handler(message, info);
        }
      });
    }
    const subs = this.subscribers.get(topic);
    if (subs === undefined) return;
    const now = this.clock.now();
    for (const [node, sub] of subs) {
      const seq = sub.nextSeq++;
      if (!sub.atLeastOnce) {
        if (
          !this.trySend(node, {
            type: 'PsMessage',
            topic,
            epoch: this.epoch,
            seq,
            payload: message,
          })
        )
          this.counters.dropped++;
        continue;
      }
      sub.unacked.push({ seq, payload: message, sentAt: now });
      if (sub.unacked.length > this.unackedMax) {
        const lost = sub.unacked.shift() as Outgoing;
        sub.floor = lost.seq + 1;
        this.counters.overflowed++;
        this.options.onOverflow?.(topic, node, lost.seq);
      }
      if (!this.down.has(node)) this.sendOne(node, topic, sub, seq, message);
      this.armRedelivery();
    }
  }

  /** Handles a pub/sub message from another node. */
  onMessage(
    from: NodeId,
    msg: RpcWire<'PsSubscribe' | 'PsUnsubscribe' | 'PsMessage' | 'PsAck'>,
  ): void {
    switch (msg.type) {
      case 'PsSubscribe':
        this.onSubscribe(from, msg);
        return;
      case 'PsUnsubscribe': {
        const subs = this.subscribers.get(msg.topic);
        if (subs?.delete(from) === true) this.subscriptionCount--;
        if (subs?.size === 0) this.subscribers.delete(msg.topic);
        return;
      }
      case 'PsMessage':
        this.onPublished(from, msg);
        return;
      case 'PsAck':
        this.onAck(from, msg);
        return;
    }
  }

  /** Link status: on 'up', resubscribe to that publisher and resend what it has not acknowledged. */
  peerStatus(peer: NodeId, status: 'up' | 'down'): void {
    if (status === 'down') {
      this.down.add(peer);
      return;
    }
    this.down.delete(peer);
    for (const [topic, set] of this.subscriptions) {
      for (const sub of set) {
        if (sub.options.publishers.includes(peer)) {
          this.requestFrom(peer, topic);
          break;
        }
      }
    }
    for (const [topic, subs] of this.subscribers) {
      const sub = subs.get(peer);
      if (sub !== undefined && sub.atLeastOnce) this.resend(peer, topic, sub, Infinity);
    }
  }

  /** Stops redelivery. */
  close(): void {
    this.closed = true;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
  }

  /** The remote nodes subscribed to `topic` here (tests, metrics). */
  subscribersOf(topic: string): NodeId[] {
    return [...(this.subscribers.get(topic)?.keys() ?? [])];
  }

  /** Unacknowledged messages held for `subscriber` on `topic` (tests, metrics). */
  unackedFor(topic: string, subscriber: NodeId): number {
    return this.subscribers.get(topic)?.get(subscriber)?.unacked.length ?? 0;
  }

  private requestFrom(publisher: NodeId, topic: string): void {
    if (publisher === this.self) return;
    const set = this.subscriptions.get(topic);
    const atLeastOnce = [...(set ?? [])].some((s) => s.options.atLeastOnce === true);
    this.trySend(publisher, { type: 'PsSubscribe', topic, atLeastOnce });
  }

  private onSubscribe(from: NodeId, msg: RpcWire<'PsSubscribe'>): void {
    const existing = this.subscribers.get(msg.topic)?.get(from);
    if (existing !== undefined && existing.atLeastOnce === msg.atLeastOnce) {
      // A resubscription (the subscriber restarted or reconnected): replay what it lacks.
      if (existing.atLeastOnce) this.resend(from, msg.topic, existing, Infinity);
      return;
    }
    if (existing === undefined && this.subscriptionCount >= limits.pubsubSubscriptionsMax) {
      this.counters.refused++;
      return;
    }
    let subs = this.subscribers.get(msg.topic);
    if (subs === undefined) {
      subs = new Map();
      this.subscribers.set(msg.topic, subs);
    }
    if (existing === undefined) this.subscriptionCount++;
    // A changed mode keeps the numbering, so the subscriber's next expected seq stays valid.
    const seq = existing?.nextSeq ?? 0;
    subs.set(from, { atLeastOnce: msg.atLeastOnce, nextSeq: seq, unacked: [], floor: seq });
  }

  private onPublished(from: NodeId, msg: RpcWire<'PsMessage'>): void {
    const set = this.subscriptions.get(msg.topic);
    if (set === undefined || set.size === 0) {
      this.counters.discarded++;
      return;
    }
    if (msg.floor !== undefined) {
      const key = `${from}\u0000${msg.topic}\u0000${msg.epoch}`;
      let expected = this.expected.get(key) ?? msg.floor;
      if (msg.floor > expected) {
        const loss: LossReport = {
          topic: msg.topic,
          publisher: from,
          fromSeq: expected,
          toSeq: msg.floor - 1,
        };
        for (const sub of set) sub.options.onLoss?.(loss);
        expected = msg.floor;
      }
      if (msg.seq !== expected) {
        // A duplicate (already delivered) or a gap (an earlier one was lost in flight).
        this.counters.discarded++;
        this.expected.set(key, expected);
        if (expected > 0)
          this.trySend(from, {
            type: 'PsAck',
            topic: msg.topic,
            epoch: msg.epoch,
            seq: expected - 1,
          });
        return;
      }
      this.expected.set(key, expected + 1);
      this.deliver(set, from, msg);
      this.trySend(from, { type: 'PsAck', topic: msg.topic, epoch: msg.epoch, seq: msg.seq });
      return;
    }
    this.deliver(set, from, msg);
  }

  private deliver(
    set: ReadonlySet<LocalSubscription>,
    from: NodeId,
    msg: RpcWire<'PsMessage'>,
  ): void {
    const info: DeliveryInfo = { topic: msg.topic, publisher: from, seq: msg.seq };
    for (const sub of set) {
      if (!sub.options.publishers.includes(from)) continue;
      this.counters.delivered++;
      sub.handler(msg.payload, info);
    }
  }

  private onAck(from: NodeId, msg: RpcWire<'PsAck'>): void {
    if (msg.epoch !== this.epoch) return;
    const sub = this.subscribers.get(msg.topic)?.get(from);
    if (sub === undefined) return;
    let drop = 0;
    while (drop < sub.unacked.length && (sub.unacked[drop] as Outgoing).seq <= msg.seq) drop++;
    if (drop > 0) sub.unacked.splice(0, drop);
    sub.floor = Math.max(sub.floor, msg.seq + 1);
  }

  private sendOne(
    node: NodeId,
    topic: string,
    sub: Subscriber,
    seq: number,
    payload: unknown,
  ): boolean {
    return this.trySend(node, {
      type: 'PsMessage',
      topic,
      epoch: this.epoch,
      seq,
      floor: sub.unacked[0]?.seq ?? sub.floor,
      payload,
    });
  }

  /** Resends unacknowledged messages sent at least `ageMs` ago, oldest first. */
  private resend(node: NodeId, topic: string, sub: Subscriber, ageMs: number): void {
    const now = this.clock.now();
    for (const out of sub.unacked) {
      if (ageMs !== Infinity && now - out.sentAt < ageMs) break;
      if (!this.sendOne(node, topic, sub, out.seq, out.payload)) break;
      out.sentAt = now;
      this.counters.redelivered++;
    }
  }

  private armRedelivery(): void {
    if (this.timer !== undefined || this.closed) return;
    this.timer = this.clock.setTimer(this.redeliverMs, () => {
      this.timer = undefined;
      let more = false;
      for (const [topic, subs] of this.subscribers) {
        for (const [node, sub] of subs) {
          if (sub.unacked.length === 0) continue;
          more = true;
          if (!this.down.has(node)) this.resend(node, topic, sub, this.redeliverMs);
        }
      }
      if (more) this.armRedelivery();
    });
  }

  private trySend(to: NodeId, msg: RpcWireMessage): boolean {
    try {
      this.send(to, msg);
      return true;
    } catch (err) {
      if (!isCohortError(err)) throw err;
      return false;
    }
  }
}
