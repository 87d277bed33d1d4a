/**
 * A SWIM failure detector and membership list for one member, as a pure core
 * (Das, Gupta, Motivala: "SWIM: Scalable Weakly-consistent Infection-style
 * Process Group Membership Protocol", DSN 2002), with two refinements from
 * Lifeguard (Dadgar, Phillips, Currey: "Lifeguard: Local Health Awareness for
 * More Accurate Failure Detection", 2018): the suspicion timeout grows with
 * log n, and the buddy system (a member's own suspicion rides first on any
 * message to it, so it can refute at once).
 *
 * ```ts
 * const core = new SwimCore({ self: 'n1', address: '10.0.0.1:7000', random: rng.fork('swim'),
 *   members: [{ id: 'n2', address: '10.0.0.2:7000' }] });
 * core.tick(now);                           // every few ms, or at core.nextTickAt()
 * core.step('n2', decodedMessage);          // every message received
 * const { messages, events } = core.drain(); // send these; report these
 * ```
 *
 * Time comes only as `tick(nowMs)`; randomness only from the injected Random.
 *
 * Rules (each has a unit test in test/detector/core/swim.test.ts):
 * 1. Probe order (SWIM §4.3): members are probed round-robin over a shuffled
 *    list; at the end of a round the list is shuffled again; a new member is
 *    inserted at a random position. `probesPerPeriod` (r) probes, to r
 *    different members, start each protocol period: with one, a crashed
 *    member goes unprobed for k periods with probability ~e^-k (SWIM §5:
 *    first detection after e/(e-1) periods on average, but 4.6 at the 99th
 *    percentile); with r, ~e^-rk, at r times the probe load.
 * 2. Direct then indirect (§3.1): a probe pings the target; if no ack came
 *    within `pingTimeoutMs`, `indirectProbes` (k) other members are sent a
 *    ping-req and relay the ping and the ack. A relay forwards only an ack for
 *    a ping it sent, to the member that asked.
 * 3. Suspicion (§4.2): a target that no ack (direct or relayed) answered by
 *    the end of the period becomes `suspect` at its known incarnation; an
 *    unrefuted suspect is declared `failed` after the suspicion timeout,
 *    α·max(1, log10 n) periods (Lifeguard §4.2 / memberlist).
 * 4. Incarnations (§4.2): `alive` at incarnation i overrides `suspect` at j
 *    only if i > j; `suspect` at i overrides `alive` at j if i >= j and
 *    `suspect` at j if i > j; `failed` at i >= known ends the member until an
 *    `alive` at a higher incarnation brings it back (a restart that refuted).
 * 5. Refutation (§4.2): a member that hears itself suspected, declared failed
 *    or left (when it is not leaving) at incarnation i >= its own takes
 *    incarnation i + 1 and disseminates `alive`. A shortcut in the spirit of
 *    Lifeguard's buddy system: the member that suspects a target tells it
 *    directly, and the refuter answers the member that brought the news
 *    directly, so a refutation need not wait for gossip to reach it (at 1,000
 *    members that wait outlasted the suspicion timeout in simulation).
 * 6. Dissemination (§4.3): every state change is queued as an update and
 *    piggybacked on pings, acks and ping-reqs, fewest-sent first, at most
 *    `swimPiggybackUpdatesMax` per message, each λ·ceil(log10(n + 1)) times;
 *    a newer update about a member replaces the older one. Updates about the
 *    receiver that it must refute go first (Lifeguard's buddy system).
 * 7. Join: a member started with seeds sends them `join` until one answers;
 *    the seed adds it, disseminates its `alive` and answers with the members
 *    it knows. Leave: `leave()` disseminates `left`, tells a few members
 *    directly, and stops probing.
 * 8. Validation: a message that fails {@link validateSwimMessage} changes
 *    nothing; so does one about a member past `swimMembersMax`.
 */
import { assert } from '../../lib/assert.js';
import { limits } from '../../lib/limits.js';
import type { Random } from '../../lib/random.js';
import { validateSwimMessage } from './messages.js';
import type { MemberState, SwimMessage, Update } from './messages.js';

/** A member named at start (from an address book) or as a seed. */
export interface MemberAddress {
  readonly id: string;
  readonly address: string;
}

/** Settings of a {@link SwimCore}; times in ms. */
export interface SwimOptions {
  /** This member's id. */
  readonly self: string;
  /** This member's address as others dial it (carried in gossip). */
  readonly address: string;
  /** Seeded randomness (probe order, indirect probers). */
  readonly random: Random;
  /** Members known at start, taken as alive at incarnation 0 (e.g. a cluster's address book). */
  readonly members?: readonly MemberAddress[];
  /** Members to send `join` to until one answers. */
  readonly seeds?: readonly MemberAddress[];
  /** This member's starting incarnation (a shell may start above 0 after a restart). Default 0. */
  readonly incarnation?: number;
  /** Protocol period T'. Default limits.swimPeriodMsDefault. */
  readonly periodMs?: number;
  /** Time a direct ping waits before indirect probes. Default limits.swimPingTimeoutMsDefault. */
  readonly pingTimeoutMs?: number;
  /** k: members asked to probe indirectly. Default limits.swimIndirectProbesDefault. */
  readonly indirectProbes?: number;
  /** r: probes started per period, to different members. Default limits.swimProbesPerPeriodDefault. */
  readonly probesPerPeriod?: number;
  /** α in the suspicion timeout α·max(1, log10 n)·T'. Default limits.swimSuspicionMultDefault. */
  readonly suspicionMult?: number;
  /** λ in the retransmit limit λ·ceil(log10(n + 1)). Default limits.swimRetransmitMultDefault. */
  readonly retransmitMult?: number;
  /** Time the first tick happens at (the first probe starts then). Default 0. */
  readonly startMs?: number;
}

/** A change in what this member believes about another. */
export interface MemberEvent {
  readonly type: 'joined' | 'suspect' | 'alive' | 'failed' | 'left';
  readonly member: string;
  readonly incarnation: number;
  readonly address: string;
}

/** A message to send. */
export interface Outgoing {
  readonly to: string;
  /** The destination's address as last known (the shell may need it to dial). */
  readonly address: string;
  readonly message: SwimMessage;
}

/** What the core wants done since the last drain. */
export interface SwimOutput {
  readonly messages: Outgoing[];
  readonly events: MemberEvent[];
}

/** One member as this detector sees it (see {@link SwimCore.members}). */
export interface MemberView {
  readonly id: string;
  readonly address: string;
  readonly state: MemberState;
  readonly incarnation: number;
}

/** The outcome of {@link SwimCore.step}: refused messages say why. */
export type StepResult = { readonly ok: true } | { readonly ok: false; readonly reason: string };

interface Member {
  readonly id: string;
  address: string;
  state: MemberState;
  incarnation: number;
  /** When a suspect is declared failed (ms). */
  suspectDeadline: number;
}

interface Probe {
  readonly target: string;
  readonly seq: number;
  readonly indirectAt: number;
  indirectSent: boolean;
  acked: boolean;
}

interface Relay {
  readonly requester: string;
  readonly seq: number;
  readonly target: string;
  readonly expiresAt: number;
}

interface Queued {
  update: Update;
  transmits: number;
}

/** The SWIM detector of one member. See the file comment for the rules. */
export class SwimCore {
  readonly self: string;
  private readonly address: string;
  private readonly random: Random;
  private readonly periodMs: number;
  private readonly pingTimeoutMs: number;
  private readonly indirectProbes: number;
  private readonly probesPerPeriod: number;
  private readonly suspicionMult: number;
  private readonly retransmitMult: number;

  private incarnation: number;
  private leaving = false;
  private nowMs: number;
  private nextProbeAt: number;
  private seq = 0;
  /** This period's probes (at most probesPerPeriod, to different targets). */
  private probes: Probe[] = [];

  private readonly table = new Map<string, Member>();
  /** Every member id ever known (not self), for sampling indirect probers. */
  private readonly ids: string[] = [];
  /** Counts of members alive or suspect (n for the formulas is this + 1). */
  private live = 0;
  private probeList: string[] = [];
  private probeIndex = 0;
  private readonly relays = new Map<number, Relay>();
  private readonly queue = new Map<string, Queued>();
  /** Members in state suspect (their deadlines are checked at every tick). */
  private readonly suspects = new Set<Member>();

  private seeds: MemberAddress[];
  private joinAt: number;

  private outMessages: Outgoing[] = [];
  private outEvents: MemberEvent[] = [];

  /** Counters for status and tests. */
  readonly counters = {
    probes: 0,
    indirectProbes: 0,
    suspicions: 0,
    refutations: 0,
    refused: 0,
  };

  constructor(options: SwimOptions) {
    this.self = options.self;
    this.address = options.address;
    this.random = options.random;
    this.periodMs = options.periodMs ?? limits.swimPeriodMsDefault;
    this.pingTimeoutMs = options.pingTimeoutMs ?? limits.swimPingTimeoutMsDefault;
    this.indirectProbes = options.indirectProbes ?? limits.swimIndirectProbesDefault;
    this.probesPerPeriod = options.probesPerPeriod ?? limits.swimProbesPerPeriodDefault;
    this.suspicionMult = options.suspicionMult ?? limits.swimSuspicionMultDefault;
    this.retransmitMult = options.retransmitMult ?? limits.swimRetransmitMultDefault;
    this.incarnation = options.incarnation ?? 0;
    assert(this.periodMs >= limits.swimPeriodMsMin, `periodMs ${this.periodMs} too small`);
    assert(
      this.pingTimeoutMs > 0 && this.pingTimeoutMs < this.periodMs,
      '0 < pingTimeoutMs < periodMs',
    );
    assert(
      Number.isInteger(this.indirectProbes) &&
        this.indirectProbes >= 0 &&
        this.indirectProbes <= limits.swimIndirectProbesMax,
      'indirectProbes within 0..swimIndirectProbesMax',
    );
    assert(
      Number.isInteger(this.probesPerPeriod) &&
        this.probesPerPeriod >= 1 &&
        this.probesPerPeriod <= limits.swimProbesPerPeriodMax,
      'probesPerPeriod within 1..swimProbesPerPeriodMax',
    );
    assert(this.suspicionMult > 0 && this.retransmitMult > 0, 'multipliers are positive');
    assert(
      Number.isSafeInteger(this.incarnation) &&
        this.incarnation >= 0 &&
        this.incarnation < limits.swimIncarnationMax,
      'incarnation in range',
    );
    this.nowMs = options.startMs ?? 0;
    this.nextProbeAt = this.nowMs;
    for (const m of options.members ?? []) {
      if (m.id === this.self || this.table.has(m.id)) continue;
      this.add(m.id, m.address, 0, 'alive');
    }
    this.seeds = (options.seeds ?? []).filter((s) => s.id !== this.self);
    this.joinAt = this.nowMs;
  }

  // ---------------------------------------------------------------- queries

  /** This member's current incarnation. */
  get selfIncarnation(): number {
    return this.incarnation;
  }

  /** Members alive or suspect, self included (the n of the formulas). */
  get groupSize(): number {
    return this.live + 1;
  }

  /** The suspicion timeout now: α·max(1, log10 n)·T' (Lifeguard §4.2 / memberlist). */
  suspicionTimeoutMs(): number {
    return Math.ceil(this.suspicionMult * Math.max(1, Math.log10(this.groupSize)) * this.periodMs);
  }

  /** How many times an update is piggybacked: λ·ceil(log10(n + 1)) (SWIM §4.3). */
  retransmitLimit(): number {
    return Math.max(1, Math.ceil(this.retransmitMult * Math.ceil(Math.log10(this.groupSize + 1))));
  }

  /** Every member this detector knows, self excluded, sorted by id. */
  members(): MemberView[] {
    return [...this.table.values()]
      .map((m) => ({ id: m.id, address: m.address, state: m.state, incarnation: m.incarnation }))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** One member's view, or undefined if unknown. */
  member(id: string): MemberView | undefined {
    const m = this.table.get(id);
    return m === undefined
      ? undefined
      : { id: m.id, address: m.address, state: m.state, incarnation: m.incarnation };
  }

  /** The earliest time `tick()` has work to do (the shell may sleep until then). */
  nextTickAt(): number {
    let t = this.leaving ? Infinity : this.nextProbeAt;
    for (const p of this.probes) if (!p.acked && !p.indirectSent) t = Math.min(t, p.indirectAt);
    for (const m of this.suspects) t = Math.min(t, m.suspectDeadline);
    if (this.seeds.length > 0) t = Math.min(t, this.joinAt);
    return t;
  }

  /** Takes what the core wants sent and reported since the last call. */
  drain(): SwimOutput {
    const out = { messages: this.outMessages, events: this.outEvents };
    this.outMessages = [];
    this.outEvents = [];
    return out;
  }

  // ---------------------------------------------------------------- input

  /** Advances time to `nowMs` (never backwards) and runs what is due. */
  tick(nowMs: number): void {
    assert(Number.isFinite(nowMs), 'tick(now) needs a finite time');
    if (nowMs > this.nowMs) this.nowMs = nowMs;
    const now = this.nowMs;
    // Rule 7: join through the seeds until one answers.
    if (this.seeds.length > 0 && now >= this.joinAt) {
      for (const s of this.seeds) {
        this.send(s.id, s.address, {
          type: 'join',
          incarnation: this.incarnation,
          address: this.address,
        });
      }
      this.joinAt = now + limits.swimJoinRetryMs;
    }
    // Rule 3: suspects whose timeout ran out are failed.
    for (const m of [...this.suspects]) {
      if (now >= m.suspectDeadline) this.setState(m, 'failed', m.incarnation);
    }
    // Expired relays are forgotten.
    for (const [seq, r] of this.relays) if (now >= r.expiresAt) this.relays.delete(seq);
    if (this.leaving) return;
    // Rule 2: the direct ping timed out; ask k others.
    for (const p of this.probes) {
      if (!p.acked && !p.indirectSent && now >= p.indirectAt) {
        p.indirectSent = true;
        this.sendIndirect(p);
      }
    }
    // Rules 1 and 3: r probes per period; an unanswered probe suspects its target.
    if (now >= this.nextProbeAt) {
      for (const p of this.probes) {
        if (p.acked) continue;
        const m = this.table.get(p.target);
        if (m !== undefined && m.state === 'alive') {
          this.counters.suspicions++;
          this.setState(m, 'suspect', m.incarnation);
          // Tell the suspect at once so it can refute (the buddy system, sent directly).
          this.send(m.id, m.address, {
            type: 'gossip',
            updates: [
              { kind: 'suspect', member: m.id, incarnation: m.incarnation, address: m.address },
            ],
          });
        }
      }
      this.probes = [];
      for (let i = 0; i < this.probesPerPeriod; i++) if (!this.startProbe(now)) break;
      // Keep the period's phase; after a long gap, start again from now.
      this.nextProbeAt += this.periodMs;
      if (this.nextProbeAt <= now) this.nextProbeAt = now + this.periodMs;
    }
  }

  /**
   * Handles one message from `from` (the authenticated sender). A message that
   * is malformed or out of bounds is refused and changes nothing (rule 8).
   */
  step(from: string, raw: unknown): StepResult {
    const checked = validateSwimMessage(raw);
    if (typeof checked === 'string') {
      this.counters.refused++;
      return { ok: false, reason: checked };
    }
    if (from === this.self) {
      this.counters.refused++;
      return { ok: false, reason: 'message from self' };
    }
    const msg = checked;
    switch (msg.type) {
      case 'ping':
        this.applyUpdates(msg.updates, from);
        if (msg.target !== this.self) return { ok: false, reason: 'ping for another member' };
        this.replyTo(from, { type: 'ack', seq: msg.seq, target: this.self });
        break;
      case 'ack':
        this.applyUpdates(msg.updates, from);
        this.onAck(from, msg.seq, msg.target);
        break;
      case 'ping-req':
        this.applyUpdates(msg.updates, from);
        this.onPingReq(from, msg.seq, msg.target, msg.address);
        break;
      case 'join':
        this.onJoin(from, msg.incarnation, msg.address);
        break;
      case 'join-ack':
        this.seeds = [];
        this.applyUpdates(msg.members, from);
        break;
      case 'gossip':
        this.applyUpdates(msg.updates, from);
        break;
    }
    return { ok: true };
  }

  /**
   * Adds a member learnt outside the protocol (an address book entry) as
   * alive at incarnation 0, if it is unknown and the table has room; a known
   * member is left as it is (its state is the protocol's business).
   */
  introduce(member: MemberAddress): void {
    if (member.id === this.self || this.table.has(member.id)) return;
    if (this.table.size >= limits.swimMembersMax) return;
    this.add(member.id, member.address, 0, 'alive');
  }

  /** Rule 7: leaves the group voluntarily; stops probing. Idempotent. */
  leave(): void {
    if (this.leaving) return;
    this.leaving = true;
    this.seeds = [];
    this.probes = [];
    const update: Update = {
      kind: 'left',
      member: this.self,
      incarnation: this.incarnation,
      address: this.address,
    };
    this.enqueue(update);
    const targets = this.sample(limits.swimLeaveFanout, undefined);
    for (const id of targets) {
      const m = this.table.get(id);
      if (m !== undefined) this.send(id, m.address, { type: 'gossip', updates: [update] });
    }
  }

  // ---------------------------------------------------------------- probing

  /** Starts one more probe this period; false when no other member is left to probe. */
  private startProbe(now: number): boolean {
    const target = this.nextTarget();
    if (target === undefined || this.probes.some((q) => q.target === target.id)) return false;
    const seq = this.nextSeq();
    this.probes.push({
      target: target.id,
      seq,
      indirectAt: now + this.pingTimeoutMs,
      indirectSent: false,
      acked: false,
    });
    this.counters.probes++;
    this.send(target.id, target.address, {
      type: 'ping',
      seq,
      target: target.id,
      updates: this.piggyback(target.id),
    });
    return true;
  }

  /** Rule 1: the next alive or suspect member of the shuffled round-robin list. */
  private nextTarget(): Member | undefined {
    for (let pass = 0; pass < 2; pass++) {
      while (this.probeIndex < this.probeList.length) {
        const id = this.probeList[this.probeIndex++] as string;
        const m = this.table.get(id);
        if (m !== undefined && (m.state === 'alive' || m.state === 'suspect')) return m;
      }
      // End of a round: a fresh shuffled list of the live members.
      this.probeList = this.random.shuffle(
        this.ids.filter((id) => {
          const s = this.table.get(id)?.state;
          return s === 'alive' || s === 'suspect';
        }),
      );
      this.probeIndex = 0;
      if (this.probeList.length === 0) return undefined;
    }
    return undefined;
  }

  private sendIndirect(p: Probe): void {
    const target = this.table.get(p.target);
    if (target === undefined) return;
    for (const id of this.sample(this.indirectProbes, p.target)) {
      const m = this.table.get(id);
      if (m === undefined) continue;
      this.counters.indirectProbes++;
      this.send(id, m.address, {
        type: 'ping-req',
        seq: p.seq,
        target: p.target,
        address: target.address,
        updates: this.piggyback(id),
      });
    }
  }

  /** Up to `count` distinct alive members other than `except`, chosen at random. */
  private sample(count: number, except: string | undefined): string[] {
    const chosen: string[] = [];
    if (count === 0 || this.ids.length === 0) return chosen;
    // Rejection sampling over all known ids: O(count) for a big healthy group.
    const tries = count * 4 + 8;
    for (let i = 0; i < tries && chosen.length < count; i++) {
      const id = this.random.pick(this.ids);
      if (id === except || chosen.includes(id)) continue;
      if (this.table.get(id)?.state === 'alive') chosen.push(id);
    }
    if (chosen.length < count) {
      // A small or mostly dead group: take from the full list.
      for (const id of this.random.shuffle(this.ids)) {
        if (chosen.length >= count) break;
        if (id === except || chosen.includes(id)) continue;
        if (this.table.get(id)?.state === 'alive') chosen.push(id);
      }
    }
    return chosen;
  }

  private onAck(from: string, seq: number, target: string): void {
    const p = this.probes.find((q) => q.seq === seq);
    if (p !== undefined && p.target === target) {
      // A direct ack comes from the target itself; a relayed one from a member we asked.
      p.acked = true;
      return;
    }
    const r = this.relays.get(seq);
    if (r !== undefined && r.target === from && target === from) {
      this.relays.delete(seq);
      const requester = this.table.get(r.requester);
      if (requester !== undefined) {
        this.send(r.requester, requester.address, {
          type: 'ack',
          seq: r.seq,
          target: r.target,
          updates: this.piggyback(r.requester),
        });
      }
    }
  }

  private onPingReq(from: string, seq: number, target: string, address: string): void {
    if (target === this.self || target === from) return;
    if (this.relays.size >= limits.swimRelaysMax) return;
    if (!this.table.has(from)) return;
    const t = this.table.get(target);
    const mySeq = this.nextSeq();
    this.relays.set(mySeq, {
      requester: from,
      seq,
      target,
      expiresAt: this.nowMs + this.periodMs,
    });
    this.send(target, t?.address ?? address, {
      type: 'ping',
      seq: mySeq,
      target,
      updates: this.piggyback(target),
    });
  }

  private onJoin(from: string, incarnation: number, address: string): void {
    this.applyUpdates([{ kind: 'alive', member: from, incarnation, address }], from);
    const m = this.table.get(from);
    if (m === undefined) return; // the table is full: no answer, the joiner retries elsewhere
    const members: Update[] = [
      { kind: 'alive', member: this.self, incarnation: this.incarnation, address: this.address },
    ];
    for (const o of this.table.values()) {
      if (members.length >= limits.swimJoinMembersMax) break;
      if (o.id === from || (o.state !== 'alive' && o.state !== 'suspect')) continue;
      members.push({ kind: o.state, member: o.id, incarnation: o.incarnation, address: o.address });
    }
    this.send(from, m.address, { type: 'join-ack', members });
  }

  private nextSeq(): number {
    this.seq = this.seq >= Number.MAX_SAFE_INTEGER ? 0 : this.seq + 1;
    return this.seq;
  }

  // ---------------------------------------------------------------- membership

  private add(id: string, address: string, incarnation: number, state: MemberState): Member {
    const m: Member = { id, address, state, incarnation, suspectDeadline: 0 };
    this.table.set(id, m);
    this.ids.push(id);
    if (state === 'alive' || state === 'suspect') this.live++;
    // Rule 1: a new member goes to a random position of the current round.
    const pos = this.probeIndex + this.random.int(this.probeList.length - this.probeIndex + 1);
    this.probeList.splice(pos, 0, id);
    if (state === 'alive' || state === 'suspect') this.emit('joined', m);
    return m;
  }

  private setState(m: Member, state: MemberState, incarnation: number): void {
    const before = m.state;
    const wasLive = before === 'alive' || before === 'suspect';
    const isLive = state === 'alive' || state === 'suspect';
    m.state = state;
    m.incarnation = incarnation;
    if (wasLive && !isLive) this.live--;
    if (!wasLive && isLive) this.live++;
    if (state === 'suspect') {
      m.suspectDeadline = this.nowMs + this.suspicionTimeoutMs();
      this.suspects.add(m);
    } else {
      this.suspects.delete(m);
    }
    this.enqueue({ kind: state, member: m.id, incarnation, address: m.address });
    if (state === before) return;
    if (!wasLive && isLive) this.emit('joined', m);
    else if (state === 'alive' || state === 'suspect' || state === 'failed' || state === 'left') {
      this.emit(state, m);
    }
  }

  private emit(type: MemberEvent['type'], m: Member): void {
    this.outEvents.push({ type, member: m.id, incarnation: m.incarnation, address: m.address });
  }

  /** Rules 4 and 5: merges updates into the table. */
  private applyUpdates(updates: readonly Update[], from: string): void {
    for (const u of updates) this.applyUpdate(u, from);
  }

  private applyUpdate(u: Update, from: string): void {
    if (u.member === this.self) {
      this.onSelfUpdate(u, from);
      return;
    }
    const m = this.table.get(u.member);
    if (m === undefined) {
      // Only alive news introduces a member (suspect/failed/left about a stranger is ignored).
      if (u.kind !== 'alive' || this.table.size >= limits.swimMembersMax) return;
      const added = this.add(u.member, u.address, u.incarnation, 'alive');
      this.enqueue({
        kind: 'alive',
        member: added.id,
        incarnation: added.incarnation,
        address: added.address,
      });
      return;
    }
    switch (u.kind) {
      case 'alive':
        if (u.incarnation > m.incarnation) {
          m.address = u.address;
          this.setState(m, 'alive', u.incarnation);
        }
        break;
      case 'suspect':
        if (
          (m.state === 'alive' && u.incarnation >= m.incarnation) ||
          (m.state === 'suspect' && u.incarnation > m.incarnation)
        ) {
          this.setState(m, 'suspect', u.incarnation);
        }
        break;
      case 'failed':
      case 'left':
        if ((m.state === 'alive' || m.state === 'suspect') && u.incarnation >= m.incarnation) {
          this.setState(m, u.kind, u.incarnation);
        }
        break;
    }
  }

  /** Rule 5: refute news that this member is suspect, failed or gone. */
  private onSelfUpdate(u: Update, from: string): void {
    if (u.kind === 'alive' || this.leaving) return;
    if (u.incarnation < this.incarnation) return;
    if (u.incarnation + 1 > limits.swimIncarnationMax) return;
    this.incarnation = u.incarnation + 1;
    this.counters.refutations++;
    const alive: Update = {
      kind: 'alive',
      member: this.self,
      incarnation: this.incarnation,
      address: this.address,
    };
    this.enqueue(alive);
    // Answer the member that brought the news directly: it (or the member it
    // heard from) is counting down our suspicion timeout.
    const m = this.table.get(from);
    if (m !== undefined) this.send(from, m.address, { type: 'gossip', updates: [alive] });
  }

  // ---------------------------------------------------------------- dissemination

  private enqueue(update: Update): void {
    this.queue.set(update.member, { update, transmits: 0 });
  }

  /**
   * Rule 6: the updates to piggyback on a message to `to`: its own refutable
   * news first (Lifeguard's buddy system), then the least-sent ones.
   */
  private piggyback(to: string): Update[] {
    const out: Update[] = [];
    const limit = this.retransmitLimit();
    const max = limits.swimPiggybackUpdatesMax;
    // A refutation of our own suspicion goes first: someone is counting down.
    const mine = this.queue.get(this.self);
    if (mine !== undefined) out.push(mine.update);
    const own = this.queue.get(to);
    if (own !== undefined && own.update.kind !== 'alive') out.push(own.update);
    else {
      // The buddy system also reaches a member we already stopped gossiping about.
      const m = this.table.get(to);
      if (m !== undefined && m.state !== 'alive') {
        out.push({ kind: m.state, member: m.id, incarnation: m.incarnation, address: m.address });
      }
    }
    // Pick the `max` least-sent entries (a partial selection: the queue is small in steady state).
    const picked: Queued[] = [];
    for (const q of this.queue.values()) {
      if (out.includes(q.update)) continue;
      if (picked.length < max) {
        picked.push(q);
        continue;
      }
      let worst = 0;
      for (let i = 1; i < picked.length; i++) {
        if ((picked[i] as Queued).transmits > (picked[worst] as Queued).transmits) worst = i;
      }
      if (q.transmits < (picked[worst] as Queued).transmits) picked[worst] = q;
    }
    picked.sort((a, b) => a.transmits - b.transmits);
    for (const q of picked) {
      if (out.length >= max) break;
      out.push(q.update);
    }
    for (const u of out) {
      const q = this.queue.get(u.member);
      if (q === undefined || q.update !== u) continue;
      q.transmits++;
      if (q.transmits >= limit) this.queue.delete(u.member);
    }
    return out;
  }

  // ---------------------------------------------------------------- output

  private replyTo(to: string, ack: { type: 'ack'; seq: number; target: string }): void {
    const m = this.table.get(to);
    // An unknown sender gets its answer too (it may have just joined); the shell knows the link.
    this.send(to, m?.address ?? '', { ...ack, updates: this.piggyback(to) });
  }

  private send(to: string, address: string, message: SwimMessage): void {
    this.outMessages.push({ to, address, message });
  }
}
