/**
 * The Raft simulator's nemesis: a fault schedule drawn from the seed, aware of
 * who leads. Which kinds of fault occur and how often is itself drawn per seed
 * ({@link drawNemesisWeights}), so some seeds hammer one fault and others mix
 * them all. Kinds: partitions of every shape (majority/minority, isolated
 * leader, bridge, random groups, one-way cuts), clogged links, crashes and
 * restarts (unsynced writes lost; also mid-write, and quick bounces), crashing the leader, slow nodes (ticks and
 * disk delayed), changing the network's loss/duplication/delay, membership
 * changes through the leader (add learner, promote, remove — the leader too),
 * leadership transfer, and heals. {@link RaftNemesis.healAll} ends the faulty
 * phase. With `replaceWeight` (the `raft-members` and `kv-members`
 * scenarios) it also replaces nodes: a voter (often the leader) swapped for a
 * node outside the configuration, as a sequence of single-server changes
 * run to the end through whatever faults come meanwhile (see
 * {@link RaftNemesis.replace}).
 *
 * ```ts
 * const nemesis = new RaftNemesis({ network, scheduler, random: rng.fork('nemesis'), nodes,
 *   weights: drawNemesisWeights(rng.fork('weights')), everyMs: 100, ... });
 * nemesis.start(faultUntilMs);
 * scheduler.run({ untilMs: faultUntilMs });
 * nemesis.healAll();
 * ```
 */
import type { NodeId } from '../../lib/ids.js';
import type { Random } from '../../lib/random.js';
import { members } from '../../raft/core/config.js';
import type { ConfigChange } from '../../raft/core/raft-core.js';
import type { LinkFaults, SimNetwork } from '../network.js';
import type { SimWire } from '../wire.js';
import type { Scheduler } from '../scheduler.js';
import type { Trace } from '../trace.js';
import type { SimRaftNode, SimRaftNodeBase } from './node.js';

/** Every kind of fault the nemesis injects. */
export const nemesisKinds = [
  'partition-majority',
  'isolate-leader',
  'bridge',
  'partition-random',
  'cut-one-way',
  'clog',
  'heal',
  'crash',
  'crash-leader',
  'crash-mid-write',
  'bounce',
  'restart',
  'slow',
  'link-faults',
  'membership',
  'transfer',
] as const;

/** One kind of fault. */
export type NemesisKind = (typeof nemesisKinds)[number];

/**
 * What the nemesis may do: a {@link NemesisKind}, or `replace` (only with
 * `replaceWeight`; kept out of nemesisKinds so the weights drawn for
 * existing seeds, and so their schedules, stay as they were).
 */
export type NemesisAction = NemesisKind | 'replace';

/**
 * Draws relative frequencies: each kind is off (about one in four) or weighted 1-4. With
 * `churn`, leader crashes, leader isolation, restarts and heals dominate.
 */
export function drawNemesisWeights(random: Random, churn = false): Record<NemesisKind, number> {
  const w = {} as Record<NemesisKind, number>;
  for (const k of nemesisKinds) w[k] = random.chance(0.25) ? 0 : random.intBetween(1, 4);
  if (churn) {
    w['crash-leader'] = random.intBetween(4, 10);
    w['isolate-leader'] = random.intBetween(2, 10);
    w.restart = random.intBetween(6, 12);
    w.heal = random.intBetween(3, 8);
  }
  // Nodes must come back up and partitions heal now and then, or the schedule degenerates.
  w.restart = Math.max(w.restart, 2);
  w.heal = Math.max(w.heal, 1);
  return w;
}

/** Options for {@link RaftNemesis}. */
export interface RaftNemesisOptions<N extends SimRaftNodeBase = SimRaftNode> {
  readonly network: SimNetwork<SimWire>;
  readonly scheduler: Scheduler;
  readonly random: Random;
  readonly trace: Trace;
  /** Every node (initial voters and spares). */
  readonly nodes: readonly N[];
  readonly weights: Readonly<Record<NemesisKind, number>>;
  /** Mean time between actions (ms); gaps are uniform in [1, 2·everyMs]. */
  readonly everyMs: number;
  /** Most nodes down at once. */
  readonly maxDown: number;
  /** Fewest voters a removal may leave. */
  readonly minVoters: number;
  /** Longest clog or slow period (ms). */
  readonly faultMsMax: number;
  /** Largest drop and duplicate probabilities and delay the link-faults action may draw. */
  readonly linkFaultsMax: {
    readonly drop: number;
    readonly duplicate: number;
    readonly delayMs: number;
  };
  readonly counts: Record<string, number>;
  /** Relative frequency of node replacements (0 or absent: none). */
  readonly replaceWeight?: number;
}

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

/** A Raft-aware, seeded fault schedule (see the file header). */
export class RaftNemesis<N extends SimRaftNodeBase = SimRaftNode> {
  private readonly kinds: NemesisAction[];
  /** Set by healAll: delayed actions (retries, bounces) do nothing after it. */
  private healed = false;
  private readonly total: number;
  /** A replacement is under way (one at a time, like the changes it is made of). */
  private replacing = false;
  /** The replacement step waiting for an answer; an answer for an older one is ignored. */
  private replaceToken = 0;

  constructor(private readonly o: RaftNemesisOptions<N>) {
    this.kinds = nemesisKinds.filter((k) => o.weights[k] > 0);
    if ((o.replaceWeight ?? 0) > 0) this.kinds.push('replace');
    this.total = this.kinds.reduce((s, k) => s + this.weight(k), 0);
  }

  private weight(k: NemesisAction): number {
    return k === 'replace' ? (this.o.replaceWeight ?? 0) : this.o.weights[k];
  }

  /** Schedules actions until `untilMs`. */
  start(untilMs: number): void {
    const delay = this.o.random.intBetween(1, 2 * this.o.everyMs);
    if (this.total === 0 || this.o.scheduler.now() + delay > untilMs) return;
    this.o.scheduler.after(delay, 'nemesis', () => {
      this.act(this.draw());
      this.start(untilMs);
    });
  }

  /** The current leader: the up node leading the highest term, if any. */
  leader(): N | undefined {
    let best: N | undefined;
    let bestTerm = -1;
    for (const n of this.o.nodes) {
      const s = n.status();
      if (s !== undefined && s.role === 'leader' && s.term > bestTerm) {
        best = n;
        bestTerm = s.term;
      }
    }
    return best;
  }

  /** Ends the faulty phase: heal every link, calm the network, restart every node, normal speed. */
  healAll(): void {
    const net = this.o.network;
    net.heal();
    const calm: LinkFaults = {
      dropProbability: 0,
      duplicateProbability: 0,
      delay: { minMs: 1, maxMs: 5 },
    };
    net.setDefaultFaults(calm);
    for (const a of this.o.nodes) {
      for (const b of this.o.nodes) if (a !== b) net.setLinkFaults(a.id, b.id, calm);
    }
    this.healed = true;
    for (const n of this.o.nodes) {
      n.slowEvery = 1;
      n.diskSlowdown = 1;
      n.crashOnWrite = undefined;
      if (!net.isUp(n.id)) net.restart(n.id);
    }
  }

  private draw(): NemesisAction {
    let x = this.o.random.next() * this.total;
    for (const k of this.kinds) {
      x -= this.weight(k);
      if (x < 0) return k;
    }
    return this.kinds[this.kinds.length - 1] as NemesisAction;
  }

  private note(kind: string, detail?: unknown): void {
    this.o.trace.record(this.o.scheduler.now(), `nemesis ${kind}`, detail);
  }

  private act(kind: NemesisAction): void {
    const { network: net, random: r, nodes } = this.o;
    const ids = nodes.map((n) => n.id);
    const now = this.o.scheduler.now();
    let done = true;
    switch (kind) {
      case 'partition-majority': {
        // A majority of the nodes on one side, the rest on the other.
        const shuffled = r.shuffle(ids);
        const k = Math.floor(ids.length / 2) + 1;
        net.partition([shuffled.slice(0, k), shuffled.slice(k)]);
        break;
      }
      case 'isolate-leader': {
        const l = this.leader();
        if (l === undefined) done = false;
        else net.isolate(l.id);
        break;
      }
      case 'bridge': {
        // Two halves that reach each other only through one bridge node.
        const shuffled = r.shuffle(ids);
        const bridge = shuffled[0] as NodeId;
        const rest = shuffled.slice(1);
        const half = Math.ceil(rest.length / 2);
        const a = rest.slice(0, half);
        const b = rest.slice(half);
        for (const x of a) {
          for (const y of b) {
            net.cutLink(x, y);
            net.cutLink(y, x);
          }
        }
        this.note('bridge', { bridge, a, b });
        break;
      }
      case 'partition-random': {
        const shuffled = r.shuffle(ids);
        const groups: NodeId[][] = Array.from(
          { length: r.intBetween(2, Math.min(4, ids.length)) },
          () => [],
        );
        shuffled.forEach((id, i) => groups[i < groups.length ? i : r.int(groups.length)]?.push(id));
        net.partition(groups);
        break;
      }
      case 'cut-one-way': {
        const [a, b] = r.shuffle(ids) as [NodeId, NodeId];
        net.cutLink(a, b);
        break;
      }
      case 'clog': {
        const until = now + r.intBetween(1, this.o.faultMsMax);
        if (r.chance(0.3)) {
          net.clogNode(r.pick(ids), until);
        } else {
          const [a, b] = r.shuffle(ids) as [NodeId, NodeId];
          net.clog(a, b, until);
        }
        break;
      }
      case 'heal':
        net.heal();
        break;
      case 'crash':
      case 'crash-leader': {
        const down = ids.filter((id) => !net.isUp(id)).length;
        const up = nodes.filter((n) => n.up);
        const target =
          kind === 'crash-leader' ? this.leader() : up.length === 0 ? undefined : r.pick(up);
        if (target === undefined || !target.up || down >= this.o.maxDown) done = false;
        else net.crash(target.id);
        break;
      }
      case 'crash-mid-write': {
        // Crash a node right after it next issues a write of entries, before the write is synced,
        // so the write is kept, torn or lost.
        const up = nodes.filter((n) => n.up);
        if (up.length === 0) {
          done = false;
          break;
        }
        const n = r.pick(up);
        n.crashOnWrite = () => {
          if (this.healed) return;
          if (ids.filter((id) => !net.isUp(id)).length >= this.o.maxDown) return;
          this.note('crash-mid-write', { node: n.id, unsynced: n.disk.unsynced });
          net.crash(n.id);
        };
        break;
      }
      case 'bounce': {
        // Crash a node and bring it back soon after: its volatile state is gone, its disk is not.
        const down = ids.filter((id) => !net.isUp(id)).length;
        const up = nodes.filter((n) => n.up);
        if (up.length === 0 || down >= this.o.maxDown) {
          done = false;
          break;
        }
        const n = r.pick(up);
        net.crash(n.id);
        this.o.scheduler.after(r.intBetween(0, 30), 'nemesis bounce restart', () => {
          if (!this.healed && !net.isUp(n.id)) net.restart(n.id);
        });
        break;
      }
      case 'restart': {
        const down = nodes.filter((n) => !net.isUp(n.id));
        if (down.length === 0) done = false;
        else net.restart(r.pick(down).id);
        break;
      }
      case 'slow': {
        const up = nodes.filter((x) => x.up);
        if (up.length === 0) {
          done = false;
          break;
        }
        const n = r.pick(up);
        n.slowEvery = r.intBetween(2, 6);
        n.diskSlowdown = r.intBetween(1, 10);
        this.note('slow', { node: n.id, tickEvery: n.slowEvery, diskSlowdown: n.diskSlowdown });
        this.o.scheduler.after(r.intBetween(1, this.o.faultMsMax), 'nemesis slow end', () => {
          n.slowEvery = 1;
          n.diskSlowdown = 1;
        });
        break;
      }
      case 'link-faults': {
        const m = this.o.linkFaultsMax;
        const maxMs = r.intBetween(1, m.delayMs);
        const faults: LinkFaults = {
          dropProbability: r.chance(0.3) ? 0 : r.next() * m.drop,
          duplicateProbability: r.chance(0.3) ? 0 : r.next() * m.duplicate,
          delay: {
            minMs: r.intBetween(0, maxMs),
            maxMs,
            tailProbability: 0.02,
            tailMaxMs: maxMs * 10,
          },
        };
        if (r.chance(0.5)) net.setDefaultFaults(faults);
        else {
          const [a, b] = r.shuffle(ids) as [NodeId, NodeId];
          net.setLinkFaults(a, b, faults);
        }
        break;
      }
      case 'membership':
        done = this.changeMembership(8);
        break;
      case 'replace':
        done = this.replace();
        break;
      case 'transfer': {
        const l = this.leader();
        const s = l?.status();
        if (l === undefined || s === undefined) {
          done = false;
          break;
        }
        const others = s.config.voters.filter((v) => v !== l.id);
        if (others.length === 0) {
          done = false;
          break;
        }
        const to = r.pick(others);
        const ok = l.transfer(to);
        this.note('transfer', { from: l.id, to, accepted: ok });
        done = ok;
        break;
      }
    }
    bump(this.o.counts, done ? `nemesis ${kind}` : `nemesis ${kind} (nothing to do)`);
  }

  /**
   * One single-server change proposed to the leader (dissertation §4.1). The
   * outcome arrives later (RaftNode answers when the change is applied or
   * refused); a change refused because another is pending or the learner
   * lags is tried again a little later.
   */
  private changeMembership(retries: number, wanted?: ConfigChange): boolean {
    const l = this.leader();
    const s = l?.status();
    const retry = (): boolean => {
      // No leader, or one still busy with the previous change: try again a little later.
      if (retries > 0) {
        this.o.scheduler.after(
          this.o.random.intBetween(10, 100),
          'nemesis membership retry',
          () => {
            if (!this.healed) this.changeMembership(retries - 1, wanted);
          },
        );
      }
      return false;
    };
    if (l === undefined || s === undefined) return retry();
    const r = this.o.random;
    const c = s.config;
    const all = this.o.nodes.map((n) => n.id);
    const inConfig = new Set(members(c));
    const options: ConfigChange[] = [];
    for (const id of all) if (!inConfig.has(id)) options.push({ type: 'addLearner', node: id });
    for (const id of c.learners) {
      options.push({ type: 'promoteLearner', node: id });
      options.push({ type: 'removeNode', node: id });
    }
    if (c.voters.length > this.o.minVoters) {
      for (const id of c.voters) options.push({ type: 'removeNode', node: id });
    }
    if (options.length === 0) return false;
    // Promote a learner about half the time there is one: promotions need it caught up, so
    // they are rarer than additions and removals otherwise.
    const promotions = options.filter((o) => o.type === 'promoteLearner');
    const change =
      wanted !== undefined
        ? wanted
        : promotions.length > 0 && r.chance(0.5)
          ? r.pick(promotions)
          : r.pick(options);
    if (
      wanted !== undefined &&
      !options.some((o) => o.type === wanted.type && o.node === wanted.node)
    )
      return false;
    this.note('membership', { leader: l.id, ...change });
    l.changeConfig(change, (outcome) => {
      this.note('membership done', { leader: l.id, ...change, outcome });
      bump(this.o.counts, `membership ${change.type} ${outcome}`);
      if (this.healed) return;
      if (outcome === 'CONFIG_CHANGE_PENDING' || outcome === 'LEARNER_NOT_CAUGHT_UP') {
        retry();
        return;
      }
      if (outcome === 'applied' && change.type === 'addLearner' && r.chance(0.7)) {
        // Dissertation §4.2.1: a new server catches up as a learner, then is promoted.
        const promote: ConfigChange = { type: 'promoteLearner', node: change.node };
        this.o.scheduler.after(r.intBetween(10, 100), 'nemesis promote', () => {
          if (!this.healed) this.changeMembership(10, promote);
        });
      }
    });
    return true;
  }

  /**
   * Replaces a voter with a node outside the configuration (a spare, or one
   * removed earlier, disk intact), as an operator would with `cohort member`
   * (src/node/members.ts): either add the new node as a learner, promote it
   * once caught up, then remove the old one (etcd's order: the cluster never
   * has fewer voters), or remove first. When the old node is the leader it is
   * often asked to hand over first (dissertation §3.10), as the Members
   * service does; otherwise the leader removes itself and steps down once
   * the change commits (§4.2.2). Each step goes to whoever leads then, and
   * is retried through refusals (change pending, learner behind, no leader,
   * transfer under way) and crashes; a step overtaken by the random
   * membership changes abandons the replacement. False if there is nothing
   * to replace.
   */
  private replace(): boolean {
    if (this.replacing) return false;
    const l = this.leader();
    const s = l?.status();
    if (l === undefined || s === undefined) return false;
    const r = this.o.random;
    const inConfig = new Set(members(s.config));
    const outside = this.o.nodes.map((n) => n.id).filter((id) => !inConfig.has(id));
    if (outside.length === 0 || s.config.voters.length === 0) return false;
    const incoming = r.pick(outside);
    const old = r.chance(0.4) && s.config.voters.includes(l.id) ? l.id : r.pick(s.config.voters);
    const addFirst = s.config.voters.length <= this.o.minVoters || r.chance(0.6);
    const add: ConfigChange = { type: 'addLearner', node: incoming };
    const promote: ConfigChange = { type: 'promoteLearner', node: incoming };
    const remove: ConfigChange = { type: 'removeNode', node: old };
    const steps = addFirst ? [add, promote, remove] : [remove, add, promote];
    const handOver = old === l.id && r.chance(0.5);
    this.replacing = true;
    this.note('replace', { old, incoming, addFirst, handOver, leader: l.id });
    bump(this.o.counts, `replace ${old === l.id ? 'leader' : 'follower'}`);
    this.replaceStep(steps, 40, handOver);
    return true;
  }

  /** The next step of a replacement (see {@link replace}); `handOver` before removing the leader. */
  private replaceStep(steps: ConfigChange[], retries: number, handOver: boolean): void {
    const [change, ...rest] = steps;
    if (this.healed) {
      this.replacing = false;
      return;
    }
    if (change === undefined) {
      this.replacing = false;
      bump(this.o.counts, 'replace done');
      this.note('replace done');
      return;
    }
    const r = this.o.random;
    const again = (): void => {
      if (retries <= 0) {
        this.replacing = false;
        bump(this.o.counts, 'replace gave up');
        return;
      }
      this.o.scheduler.after(r.intBetween(10, 100), 'nemesis replace retry', () =>
        this.replaceStep(steps, retries - 1, handOver),
      );
    };
    const l = this.leader();
    const s = l?.status();
    if (l === undefined || s === undefined) {
      again();
      return;
    }
    const c = s.config;
    const isMember = members(c).includes(change.node);
    // Already done (a random change got there first), or no longer possible: move on or give up.
    if (
      (change.type === 'addLearner' && isMember) ||
      (change.type === 'removeNode' && !isMember) ||
      (change.type === 'promoteLearner' && c.voters.includes(change.node))
    ) {
      this.replaceStep(rest, retries, handOver);
      return;
    }
    if (change.type === 'promoteLearner' && !c.learners.includes(change.node)) {
      this.replacing = false;
      bump(this.o.counts, 'replace overtaken');
      return;
    }
    if (change.type === 'removeNode' && change.node === l.id && handOver) {
      const to = c.voters.filter((v) => v !== l.id);
      if (to.length > 0) {
        // Hand over first; the removal then goes to the new leader (an ordinary follower's).
        const ok = l.transfer(r.pick(to));
        this.note('replace hand-over', { from: l.id, accepted: ok });
        if (retries > 0) {
          this.o.scheduler.after(r.intBetween(10, 100), 'nemesis replace retry', () =>
            this.replaceStep(steps, retries - 1, false),
          );
        } else {
          again();
        }
        return;
      }
    }
    this.note('replace step', { leader: l.id, ...change });
    const token = ++this.replaceToken;
    // A leader that crashes never answers (changeConfig's contract): try again after a while.
    this.o.scheduler.after(2_000, 'nemesis replace watchdog', () => {
      if (this.replaceToken !== token) return;
      this.replaceToken++;
      bump(this.o.counts, 'replace step unanswered');
      again();
    });
    l.changeConfig(change, (outcome) => {
      if (this.replaceToken !== token) return;
      this.replaceToken++;
      this.note('replace step done', { leader: l.id, ...change, outcome });
      bump(this.o.counts, `replace ${change.type} ${outcome}`);
      if (outcome === 'applied') {
        this.o.scheduler.after(r.intBetween(1, 50), 'nemesis replace next', () =>
          this.replaceStep(rest, retries, handOver),
        );
      } else {
        again();
      }
    });
  }
}
