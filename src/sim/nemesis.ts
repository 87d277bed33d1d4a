/**
 * The nemesis: draws a schedule of faults from its seeded stream and applies
 * them to a {@link SimNetwork} — crashes and restarts, partitions into random
 * groups, isolated nodes, one-way cuts, clogged links, heals. Every action is
 * also handed to `onAction`, so a checker can keep its own model of the faults.
 *
 * ```ts
 * const nemesis = new Nemesis(net, scheduler, {
 *   random: rng.fork('nemesis'),
 *   everyMs: 200, untilMs: 10_000,
 *   maxDown: 1,                                  // e.g. keep a Raft majority up
 *   weights: { clog: 0 },                        // turn an action off
 *   onAction: (a) => checker.note(a),
 * });
 * nemesis.start();
 * scheduler.run({ untilMs: 10_000 });
 * nemesis.liftAll();                             // heal and restart everything
 * ```
 */
import { assert, assertNever } from '../lib/assert.js';
import type { NodeId } from '../lib/ids.js';
import type { Random } from '../lib/random.js';
import type { SimNetwork } from './network.js';
import type { Scheduler } from './scheduler.js';

/** One fault action. */
export type NemesisAction =
  | { readonly kind: 'crash'; readonly node: NodeId }
  | { readonly kind: 'restart'; readonly node: NodeId }
  | { readonly kind: 'partition'; readonly groups: readonly (readonly NodeId[])[] }
  | { readonly kind: 'isolate'; readonly node: NodeId }
  | { readonly kind: 'cut'; readonly from: NodeId; readonly to: NodeId }
  | { readonly kind: 'clog'; readonly from: NodeId; readonly to: NodeId; readonly untilMs: number }
  | { readonly kind: 'heal' };

/** The kinds of {@link NemesisAction}. */
export type NemesisKind = NemesisAction['kind'];

/** Default relative frequency of each action. */
export const defaultNemesisWeights: Readonly<Record<NemesisKind, number>> = {
  crash: 1,
  restart: 2,
  partition: 1,
  isolate: 1,
  cut: 1,
  clog: 1,
  heal: 1,
};

/** The part of {@link SimNetwork} the nemesis drives (any message type). */
export type NemesisTarget = Pick<
  SimNetwork<never>,
  'nodeIds' | 'isUp' | 'crash' | 'restart' | 'partition' | 'isolate' | 'cutLink' | 'clog' | 'heal'
>;

/** Options for {@link Nemesis}. */
export interface NemesisOptions {
  /** The nemesis's own stream. */
  readonly random: Random;
  /** Mean time between actions (gaps are uniform in [1, 2 × everyMs]). */
  readonly everyMs: number;
  /** No action is scheduled after this time. */
  readonly untilMs: number;
  /** Relative frequencies (merged over {@link defaultNemesisWeights}; 0 turns an action off). */
  readonly weights?: Partial<Record<NemesisKind, number>>;
  /** Most nodes down at once (default: all). */
  readonly maxDown?: number;
  /** Longest clog, in ms (default 500). */
  readonly clogMsMax?: number;
  /** Called after each action is applied. */
  readonly onAction?: (action: NemesisAction) => void;
}

/** A seeded fault schedule over a {@link SimNetwork}. */
export class Nemesis {
  private readonly weights: Record<NemesisKind, number>;
  private readonly kinds: NemesisKind[];
  private readonly total: number;
  private readonly counts = new Map<NemesisKind, number>();

  constructor(
    private readonly network: NemesisTarget,
    private readonly scheduler: Scheduler,
    private readonly options: NemesisOptions,
  ) {
    assert(options.everyMs > 0, 'nemesis everyMs must be positive');
    this.weights = { ...defaultNemesisWeights, ...options.weights };
    this.kinds = (Object.keys(this.weights) as NemesisKind[]).filter((k) => this.weights[k] > 0);
    this.total = this.kinds.reduce((s, k) => s + this.weights[k], 0);
  }

  /** Schedules the first action; each action schedules the next until `untilMs`. */
  start(): void {
    const delay = this.options.random.intBetween(1, 2 * this.options.everyMs);
    if (this.total === 0 || this.scheduler.now() + delay > this.options.untilMs) return;
    this.scheduler.after(delay, 'nemesis', () => {
      const action = this.draw();
      if (action !== undefined) this.apply(action);
      this.start();
    });
  }

  /** How many actions of each kind were applied, kinds sorted. */
  applied(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const k of [...this.counts.keys()].sort()) out[k] = this.counts.get(k) as number;
    return out;
  }

  /** Draws the next action, or undefined if the drawn kind has nothing to act on. */
  draw(): NemesisAction | undefined {
    const r = this.options.random;
    const ids = this.network.nodeIds();
    assert(ids.length > 0, 'nemesis on an empty network');
    let x = r.next() * this.total;
    let kind = this.kinds[this.kinds.length - 1] as NemesisKind;
    for (const k of this.kinds) {
      x -= this.weights[k];
      if (x < 0) {
        kind = k;
        break;
      }
    }
    const node = r.pick(ids);
    const other = r.pick(ids.filter((id) => id !== node).concat(ids.length === 1 ? ids : []));
    switch (kind) {
      case 'crash': {
        const up = ids.filter((id) => this.network.isUp(id));
        const down = ids.length - up.length;
        if (up.length === 0 || down >= (this.options.maxDown ?? ids.length)) return undefined;
        return { kind, node: r.pick(up) };
      }
      case 'restart': {
        const down = ids.filter((id) => !this.network.isUp(id));
        return down.length === 0 ? undefined : { kind, node: r.pick(down) };
      }
      case 'partition': {
        if (ids.length < 2) return undefined;
        const shuffled = r.shuffle(ids);
        const groupCount = r.intBetween(2, Math.min(3, ids.length));
        const groups: NodeId[][] = Array.from({ length: groupCount }, () => []);
        // Every group gets one node, the rest go anywhere.
        shuffled.forEach((id, i) => groups[i < groupCount ? i : r.int(groupCount)]?.push(id));
        // Sometimes leave the last group unlisted: unlisted nodes form a group too.
        return { kind, groups: r.chance(0.5) ? groups : groups.slice(0, -1) };
      }
      case 'isolate':
        return { kind, node };
      case 'cut':
        return node === other ? undefined : { kind, from: node, to: other };
      case 'clog':
        return node === other
          ? undefined
          : {
              kind,
              from: node,
              to: other,
              untilMs: this.scheduler.now() + r.intBetween(1, this.options.clogMsMax ?? 500),
            };
      case 'heal':
        return { kind };
      default:
        return assertNever(kind);
    }
  }

  /** Applies `action` to the network, then tells `onAction`. */
  apply(action: NemesisAction): void {
    const net = this.network;
    switch (action.kind) {
      case 'crash':
        net.crash(action.node);
        break;
      case 'restart':
        net.restart(action.node);
        break;
      case 'partition':
        net.partition(action.groups);
        break;
      case 'isolate':
        net.isolate(action.node);
        break;
      case 'cut':
        net.cutLink(action.from, action.to);
        break;
      case 'clog':
        net.clog(action.from, action.to, action.untilMs);
        break;
      case 'heal':
        net.heal();
        break;
      default:
        assertNever(action);
    }
    this.counts.set(action.kind, (this.counts.get(action.kind) ?? 0) + 1);
    this.options.onAction?.(action);
  }

  /** Heals every link and restarts every node that is down (the end of a faulty phase). */
  liftAll(): void {
    this.apply({ kind: 'heal' });
    for (const id of this.network.nodeIds()) {
      if (!this.network.isUp(id)) this.apply({ kind: 'restart', node: id });
    }
  }
}
