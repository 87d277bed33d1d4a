/**
 * The failure detector's shell: runs one {@link SwimCore} with real timers
 * (a lib {@link Clock}), hands what it says to send to a link, feeds it what
 * arrives, and reports member events to listeners.
 *
 * ```ts
 * // Over a transport of its own (TCP, with TLS as nodes use it):
 * const transport = await TcpTransport.start({ self, clusterId, codec: swimCodec(), listen, peers: {}, tls });
 * const members = Detector.overTransport(transport, { self, address: 'host:port', members: book });
 * members.on('failed', (e) => console.log(`${e.member} failed`));
 * members.members();            // [{ id, address, state, incarnation }, ...]
 * await members.close();        // leaves the group (gossips `left`), then stops
 * ```
 *
 * Events: `joined` (a member is known and alive), `suspect`, `alive` (a
 * suspicion refuted), `failed` (declared dead after the suspicion timeout),
 * `left` (it left voluntarily). Listeners run synchronously, in order; a
 * listener that throws is logged and does not stop the detector.
 *
 * The shell's order of work, after every tick and every received message:
 * drain the core, send its messages (a send that fails is a lost message, as
 * SWIM expects of its network), then report its events, then arm the timer for
 * `core.nextTickAt()`.
 */
import type { Logger } from 'pino';
import { pack, unpack } from 'msgpackr';
import { RealClock } from '../lib/clock.js';
import type { Clock, TimerHandle } from '../lib/clock.js';
import { CohortError } from '../lib/errors.js';
import { nodeId } from '../lib/ids.js';
import type { NodeId } from '../lib/ids.js';
import { limits } from '../lib/limits.js';
import { seededRandom } from '../lib/random.js';
import type { Random } from '../lib/random.js';
import type { Codec } from '../wire/codec.js';
import type { Transport } from '../transport/transport.js';
import type { PeerAddress } from '../transport/tcp-transport.js';
import { SwimCore } from './core/swim.js';
import type { MemberAddress, MemberEvent, MemberView, SwimOptions } from './core/swim.js';
import { validateSwimMessage } from './core/messages.js';
import type { SwimMessage } from './core/messages.js';

/** Where a detector's messages go: `address` is the destination's last known address. */
export type DetectorSend = (to: string, address: string, message: SwimMessage) => void;

/** A listener of one kind of member event. */
export type MemberListener = (event: MemberEvent) => void;

/** Options of a {@link Detector}: the core's, plus the shell's world. */
export interface DetectorOptions extends Omit<SwimOptions, 'random' | 'startMs'> {
  /** Randomness (default: seeded from the clock's time and the member id). */
  readonly random?: Random;
  /** Time and timers (default: the real clock). */
  readonly clock?: Clock;
  readonly logger?: Logger;
}

/** What the detector has done, for status and tests. */
export interface DetectorStatus {
  readonly self: string;
  readonly incarnation: number;
  readonly members: MemberView[];
  readonly probes: number;
  readonly suspicions: number;
  readonly refutations: number;
  readonly refused: number;
}

/** The MessagePack codec of detector messages; decode validates (a bad message throws INVALID_ARGUMENT). */
export function swimCodec(): Codec<SwimMessage> {
  return {
    encode: (m) => pack(m),
    decode: (bytes) => {
      const checked = validateSwimMessage(unpack(bytes));
      if (typeof checked === 'string') {
        throw new CohortError('INVALID_ARGUMENT', `bad detector message: ${checked}`);
      }
      return checked;
    },
  };
}

/** Parses `host:port` (an IPv6 host in brackets); undefined if malformed. */
export function parseAddress(address: string): PeerAddress | undefined {
  const m = /^\[?([^\]]*?)\]?:(\d{1,5})$/.exec(address);
  if (m === null) return undefined;
  const port = Number(m[2]);
  if (!(port > 0 && port < 65536) || m[1] === '') return undefined;
  return { host: m[1] as string, port };
}

/** A SWIM member with real timers (see the file comment). */
export class Detector {
  private readonly core: SwimCore;
  private readonly clock: Clock;
  private readonly listeners = new Map<MemberEvent['type'], Set<MemberListener>>();
  private timer: TimerHandle | undefined;
  private timerAt = Infinity;
  private closed = false;
  private started = false;

  constructor(
    options: DetectorOptions,
    private readonly sendTo: DetectorSend,
    private readonly logger?: Logger,
  ) {
    this.clock = options.clock ?? new RealClock();
    const random =
      options.random ??
      seededRandom(Math.floor(this.clock.now() * 1000) % 2 ** 31).fork(options.self);
    this.core = new SwimCore({ ...options, random, startMs: this.clock.now() });
  }

  /**
   * A detector over its own transport (TCP with TLS, or the memory twin):
   * messages go out with `transport.send`, and a peer's address, when new, is
   * given to the transport with `setPeer` if it has one.
   */
  static overTransport(
    transport: Transport<SwimMessage> & { setPeer?(id: NodeId, address: PeerAddress): void },
    options: DetectorOptions,
  ): Detector {
    const known = new Map<string, string>();
    const d = new Detector(
      options,
      (to, address, message) => {
        if (transport.setPeer !== undefined && address !== '' && known.get(to) !== address) {
          const a = parseAddress(address);
          if (a === undefined) return;
          transport.setPeer(nodeId(to), a);
          known.set(to, address);
        }
        transport.send(nodeId(to), message);
      },
      options.logger,
    );
    transport.onMessage((from, message) => d.deliver(from, message));
    d.start();
    return d;
  }

  /** Starts ticking (idempotent). */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    this.run(() => this.core.tick(this.clock.now()));
  }

  /** Hands a received message to the core; a malformed one is logged and changes nothing. */
  deliver(from: string, message: unknown): void {
    if (this.closed) return;
    this.run(() => {
      this.core.tick(this.clock.now());
      const r = this.core.step(from, message);
      if (!r.ok) this.logger?.debug({ from, reason: r.reason }, 'detector: message refused');
    });
  }

  /** Tells the detector of a member it should know (an address book entry): added alive if new. */
  introduce(member: MemberAddress): void {
    if (this.closed) return;
    this.run(() => this.core.introduce(member));
  }

  /** Calls `listener` on every event of `type`. */
  on(type: MemberEvent['type'], listener: MemberListener): this {
    let set = this.listeners.get(type);
    if (set === undefined) this.listeners.set(type, (set = new Set()));
    set.add(listener);
    return this;
  }

  /** Removes a listener added with {@link on}. */
  off(type: MemberEvent['type'], listener: MemberListener): this {
    this.listeners.get(type)?.delete(listener);
    return this;
  }

  /** Every member this detector knows (self excluded). */
  members(): MemberView[] {
    return this.core.members();
  }

  /** One member's view. */
  member(id: string): MemberView | undefined {
    return this.core.member(id);
  }

  /** Counters and the member list. */
  status(): DetectorStatus {
    const c = this.core.counters;
    return {
      self: this.core.self,
      incarnation: this.core.selfIncarnation,
      members: this.core.members(),
      probes: c.probes,
      suspicions: c.suspicions,
      refutations: c.refutations,
      refused: c.refused,
    };
  }

  /**
   * Stops the detector. With `leave` (the default), first gossips `left` to a
   * few members, so the group sees a departure rather than a failure.
   */
  close(options: { leave?: boolean } = {}): void {
    if (this.closed) return;
    if (options.leave !== false) this.run(() => this.core.leave());
    this.closed = true;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
  }

  private run(fn: () => void): void {
    fn();
    const { messages, events } = this.core.drain();
    for (const m of messages) {
      try {
        this.sendTo(m.to, m.address, m.message);
      } catch (err) {
        // A message that cannot go out is a lost message: SWIM tolerates loss.
        this.logger?.debug({ err, to: m.to }, 'detector: send failed');
      }
    }
    for (const e of events) {
      this.logger?.info({ member: e.member, incarnation: e.incarnation }, `member ${e.type}`);
      for (const l of this.listeners.get(e.type) ?? []) {
        try {
          l(e);
        } catch (err) {
          this.logger?.error({ err, event: e }, 'detector: a member event listener threw');
        }
      }
    }
    this.arm();
  }

  private arm(): void {
    if (this.closed || !this.started) return;
    const at = this.core.nextTickAt();
    if (at === Infinity || at >= this.timerAt) return;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timerAt = at;
    const delay = Math.max(limits.swimTickMsMin, at - this.clock.now());
    this.timer = this.clock.setTimer(delay, () => {
      this.timer = undefined;
      this.timerAt = Infinity;
      if (this.closed) return;
      this.run(() => this.core.tick(this.clock.now()));
    });
  }
}
