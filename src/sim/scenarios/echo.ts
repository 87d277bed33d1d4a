/**
 * The built-in network scenario: a few nodes exchange numbered messages (Ping,
 * answered by Pong after a short timer) over a {@link SimNetwork} whose faults
 * are drawn from the seed, while a nemesis crashes and restarts nodes,
 * partitions, isolates, cuts and clogs links. A {@link NetworkChecker} that
 * keeps its own model of the faults (never asking the network) verifies on
 * every delivery exactly what the network promises (see network.ts), and at the
 * end, with every fault lifted, that the network delivers everything.
 *
 * ```ts
 * const result = await runScenario(echoScenario(), { seed: 42 });
 * // tests: show the checker catches a network that breaks a promise
 * await runScenario(echoScenario({ bugs: { ignorePartitions: true } }), { seed: 42 });
 * ```
 */
import { Type } from '@sinclair/typebox';
import { assert, assertNever } from '../../lib/assert.js';
import { nodeId } from '../../lib/ids.js';
import type { NodeId } from '../../lib/ids.js';
import type { Random } from '../../lib/random.js';
import { SimNetwork, noFaults } from '../network.js';
import type { LinkFaults, NetworkBugs, NodeContext, SimNode } from '../network.js';
import { message, messageCodec } from '../../wire/codec.js';
import { Nemesis } from '../nemesis.js';
import type { NemesisAction } from '../nemesis.js';
import { CheckFailure } from '../scenario.js';
import type { Scenario, ScenarioContext } from '../scenario.js';

// The fields every echo message carries; `seq` counts messages per (sender
// incarnation, link), `re` is the Ping a Pong answers, `sum` a checksum of the
// rest set by the sender.
const fields = {
  from: Type.String({ maxLength: 64 }),
  to: Type.String({ maxLength: 64 }),
  inc: Type.Integer({ minimum: 0 }),
  seq: Type.Integer({ minimum: 0 }),
  re: Type.Integer({ minimum: 0 }),
  body: Type.Uint8Array({ maxByteLength: 1024 }),
  sum: Type.Integer({ minimum: 0, maximum: 0xffff_ffff }),
};

/**
 * The echo messages' codec: the project's wire codec (MessagePack, validated
 * against TypeBox schemas), so the simulator exercises the real encoding.
 */
export const echoCodec = messageCodec([
  message('Ping', fields),
  message('Pong', fields),
  message('Final', fields),
]);

/** A numbered message of the echo scenario. */
export type EchoMessage = ReturnType<typeof echoCodec.decode>;

/** The checksum a sender puts in `sum`: FNV-1a over every other field. */
export function echoChecksum(m: Omit<EchoMessage, 'sum'>): number {
  let h = 0x811c9dc5;
  const mixIn = (x: number): void => {
    h = Math.imul(h ^ (x & 0xff), 0x01000193) >>> 0;
  };
  for (const s of [m.type, m.from, m.to]) {
    for (let i = 0; i < s.length; i++) mixIn(s.charCodeAt(i));
    mixIn(0);
  }
  for (const n of [m.inc, m.seq, m.re, m.body.length])
    for (let k = 0; k < 4; k++) mixIn(n >>> (8 * k));
  for (const b of m.body) mixIn(b);
  return h;
}

/** The scenario's parameters, drawn from the seed. */
export interface EchoParams {
  readonly nodes: number;
  readonly faults: LinkFaults;
  readonly fifo: boolean;
  readonly tickMs: number;
  /** Chance per tick that a node sends a Ping. */
  readonly pingChance: number;
  /** Mean time between nemesis actions. */
  readonly nemesisEveryMs: number;
  /** Length of the faulty phase. */
  readonly durationMs: number;
}

/** Draws {@link EchoParams} from `random`. */
export function drawEchoParams(random: Random): EchoParams {
  const minMs = random.intBetween(0, 5);
  const maxMs = minMs + random.pick([0, 5, 20, 60]);
  const tail = random.chance(0.3);
  return {
    nodes: random.intBetween(2, 5),
    faults: {
      dropProbability: random.pick([0, 0.01, 0.05, 0.2]),
      duplicateProbability: random.pick([0, 0, 0.02, 0.1]),
      delay: tail
        ? { minMs, maxMs, tailProbability: 0.05, tailMaxMs: maxMs + 400 }
        : { minMs, maxMs },
    },
    fifo: random.chance(0.5),
    tickMs: 10,
    pingChance: random.pick([0.1, 0.3, 0.6]),
    nemesisEveryMs: random.pick([50, 150, 400]),
    durationMs: random.pick([2_000, 4_000]),
  };
}

interface SentRecord {
  readonly message: EchoMessage;
  /** Order of sends across the whole run (FIFO check). */
  readonly index: number;
  /** The receiver's incarnation when this was sent (checker's model). */
  readonly toIncarnation: number;
  /** Was the link cut when this was sent (checker's model)? */
  readonly cutAtSend: boolean;
  readonly sentAtMs: number;
  /** Was duplication on for the link when this was sent? */
  readonly duplicationOn: boolean;
  deliveries: number;
}

function messageKey(m: { from: string; to: string; inc: number; seq: number }): string {
  return `${m.from}>${m.to}#${m.inc}.${m.seq}`;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameMessage(a: EchoMessage, b: EchoMessage): boolean {
  return (
    a.type === b.type &&
    a.from === b.from &&
    a.to === b.to &&
    a.inc === b.inc &&
    a.seq === b.seq &&
    a.re === b.re &&
    a.sum === b.sum &&
    sameBytes(a.body, b.body)
  );
}

/**
 * Verifies the network's promises from the applications' side. It keeps its
 * own model of node state, cuts and clogs, updated by the nemesis alongside the
 * network, so a network that forgets a fault is caught rather than trusted.
 */
export class NetworkChecker {
  private readonly sent = new Map<string, SentRecord>();
  private readonly up = new Map<string, boolean>();
  private readonly incarnations = new Map<string, number>();
  private readonly cuts = new Set<string>();
  private readonly clogs = new Map<string, number>();
  private readonly lastDelivered = new Map<string, number>();
  private sends = 0;
  /** Deliveries checked. */
  deliveries = 0;

  constructor(
    private readonly nodes: readonly NodeId[],
    private readonly fifo: boolean,
    private readonly duplicates: (from: string, to: string) => boolean,
  ) {
    for (const n of nodes) {
      this.up.set(n, true);
      this.incarnations.set(n, 1);
    }
  }

  private fail(what: string, m?: EchoMessage): never {
    throw new CheckFailure(m === undefined ? what : `${what}: ${messageKey(m)} (${m.type})`);
  }

  /** The application is about to send `m` at `nowMs`. */
  noteSend(m: EchoMessage, nowMs: number): void {
    const key = messageKey(m);
    if (this.sent.has(key)) this.fail('a sender reused a message number', m);
    this.sent.set(key, {
      message: { ...m, body: m.body.slice() },
      index: this.sends++,
      toIncarnation: this.incarnations.get(m.to) ?? 0,
      cutAtSend: this.cuts.has(`${m.from}>${m.to}`),
      sentAtMs: nowMs,
      duplicationOn: this.duplicates(m.from, m.to),
      deliveries: 0,
    });
  }

  /** Node `self` (incarnation `selfInc`) received `m`, said by the network to come from `from`, at `nowMs`. */
  noteDelivery(self: NodeId, selfInc: number, from: NodeId, m: EchoMessage, nowMs: number): void {
    this.deliveries++;
    const rec = this.sent.get(messageKey(m));
    if (rec === undefined) this.fail('delivered a message that was never sent', m);
    if (!sameMessage(rec.message, m))
      this.fail('delivered a message that differs from what was sent', m);
    if (echoChecksum(m) !== m.sum) this.fail('delivered a message with a bad checksum', m);
    if (m.to !== self || m.from !== from) {
      this.fail(`misrouted: network says ${from}->${self}`, m);
    }
    if (this.up.get(self) !== true) this.fail(`delivered to ${self} while it is down`, m);
    if (this.up.get(from) !== true) this.fail(`delivered from ${from} while it is down`, m);
    if (selfInc !== this.incarnations.get(self) || rec.toIncarnation !== selfInc) {
      this.fail(`delivered to incarnation ${selfInc} of ${self}, sent to ${rec.toIncarnation}`, m);
    }
    const link = `${from}>${self}`;
    if (rec.cutAtSend) this.fail('delivered a message sent while its link was cut', m);
    if (this.cuts.has(link)) this.fail('delivered across a cut link', m);
    const clog = this.clogs.get(link);
    if (clog !== undefined && clog > nowMs)
      this.fail(`delivered over a link clogged until ${clog}`, m);
    rec.deliveries++;
    if (rec.deliveries > 1 && !rec.duplicationOn) {
      this.fail('delivered twice with duplication off', m);
    }
    if (rec.deliveries > 2) this.fail(`delivered ${rec.deliveries} times`, m);
    if (this.fifo) {
      const last = this.lastDelivered.get(link) ?? -1;
      if (rec.index < last || (rec.index === last && rec.deliveries === 1)) {
        this.fail('FIFO broken: delivered after a message sent later on the same link', m);
      }
      this.lastDelivered.set(link, rec.index);
    }
  }

  /** Mirrors a nemesis action into the checker's model. */
  noteAction(a: NemesisAction): void {
    switch (a.kind) {
      case 'crash':
        return this.noteCrash(a.node);
      case 'restart':
        return this.noteRestart(a.node);
      case 'partition':
        return this.notePartition(a.groups);
      case 'isolate':
        return this.notePartition([[a.node]]);
      case 'cut':
        return this.noteCut(a.from, a.to);
      case 'clog':
        return this.noteClog(a.from, a.to, a.untilMs);
      case 'heal':
        return this.noteHeal();
      default:
        return assertNever(a);
    }
  }

  /** The nemesis crashed `id`. */
  noteCrash(id: NodeId): void {
    this.up.set(id, false);
  }

  /** The nemesis restarted `id`. */
  noteRestart(id: NodeId): void {
    if (this.up.get(id) === true) return;
    this.up.set(id, true);
    this.incarnations.set(id, (this.incarnations.get(id) ?? 0) + 1);
  }

  /** The nemesis cut every link between different groups (unlisted nodes form one group). */
  notePartition(groups: readonly (readonly NodeId[])[]): void {
    const listed = new Set(groups.flat());
    const all = [...groups, this.nodes.filter((n) => !listed.has(n))];
    for (const [i, g] of all.entries()) {
      for (const [j, h] of all.entries()) {
        if (i === j) continue;
        for (const a of g) for (const b of h) this.cuts.add(`${a}>${b}`);
      }
    }
  }

  /** The nemesis cut one directed link. */
  noteCut(from: NodeId, to: NodeId): void {
    this.cuts.add(`${from}>${to}`);
  }

  /** The nemesis healed every link. */
  noteHeal(): void {
    this.cuts.clear();
  }

  /** The nemesis clogged from → to until `untilMs`. */
  noteClog(from: NodeId, to: NodeId, untilMs: number): void {
    const key = `${from}>${to}`;
    this.clogs.set(key, Math.max(untilMs, this.clogs.get(key) ?? 0));
  }

  /** Checks that every message sent at a time accepted by `when` was delivered; returns how many were checked. */
  checkAllDelivered(when: (sentAtMs: number) => boolean): number {
    let n = 0;
    for (const rec of this.sent.values()) {
      if (!when(rec.sentAtMs)) continue;
      n++;
      if (rec.deliveries === 0)
        this.fail('with every fault lifted, a message was not delivered', rec.message);
    }
    return n;
  }
}

/** The application on each node: pings random peers, answers pings after a short timer. */
class EchoNode implements SimNode<EchoMessage> {
  private seqs = new Map<string, number>();
  private ctx: NodeContext<EchoMessage> | undefined;

  constructor(
    private readonly self: NodeId,
    private readonly peers: readonly NodeId[],
    private readonly pingChance: number,
    private readonly checker: NetworkChecker,
    private readonly counts: Record<string, number>,
  ) {}

  send(ctx: NodeContext<EchoMessage>, to: NodeId, type: EchoMessage['type'], re = 0): void {
    const seq = (this.seqs.get(to) ?? 0) + 1;
    this.seqs.set(to, seq);
    const body = new Uint8Array(ctx.random.int(24));
    for (let i = 0; i < body.length; i++) body[i] = ctx.random.int(256);
    const base = { type, from: this.self, to, inc: ctx.incarnation, seq, re, body };
    const m: EchoMessage = { ...base, sum: echoChecksum(base) };
    this.checker.noteSend(m, ctx.now());
    ctx.send(to, m);
  }

  onStart(ctx: NodeContext<EchoMessage>): void {
    this.seqs = new Map();
    this.ctx = ctx;
  }

  /** Sends a Final to every peer (the end-of-run delivery check). */
  sendFinals(): void {
    const ctx = this.ctx;
    assert(ctx !== undefined && ctx.alive(), 'sendFinals on a node that is down');
    for (const peer of this.peers) this.send(ctx, peer, 'Final');
  }

  onTick(ctx: NodeContext<EchoMessage>): void {
    if (this.peers.length > 0 && ctx.random.chance(this.pingChance)) {
      this.send(ctx, ctx.random.pick(this.peers), 'Ping');
    }
  }

  onMessage(from: NodeId, m: EchoMessage, ctx: NodeContext<EchoMessage>): void {
    this.checker.noteDelivery(this.self, ctx.incarnation, from, m, ctx.now());
    this.counts[`received ${m.type}`] = (this.counts[`received ${m.type}`] ?? 0) + 1;
    if (m.type === 'Ping') {
      // Answer a little later: if this node crashes meanwhile, the answer is never sent.
      ctx.setTimer(ctx.random.int(5), () => this.send(ctx, from, 'Pong', m.seq));
    }
  }

  onCrash(): void {
    // Volatile state is lost; numbering restarts with the next incarnation.
    this.seqs = new Map();
    this.ctx = undefined;
  }
}

/** Options for {@link echoScenario}. */
export interface EchoScenarioOptions {
  /** Test-only network bugs, to show the checker catches them. */
  readonly bugs?: NetworkBugs;
  /** Override drawn parameters. */
  readonly params?: Partial<EchoParams>;
}

/** The built-in scenario `echo` (see the file comment). */
export function echoScenario(options: EchoScenarioOptions = {}): Scenario {
  return {
    name: 'echo',
    description:
      'nodes exchange numbered messages under network faults; checks what the network promises',
    run: (ctx) => runEcho(ctx, options),
  };
}

function runEcho(ctx: ScenarioContext, options: EchoScenarioOptions): void {
  const p: EchoParams = { ...drawEchoParams(ctx.random.fork('params')), ...options.params };
  Object.assign(ctx.params, p);
  const ids = Array.from({ length: p.nodes }, (_, i) => nodeId(`n${i + 1}`));
  const { scheduler } = ctx;
  const net = new SimNetwork<EchoMessage>({
    scheduler,
    random: ctx.random.fork('net'),
    codec: echoCodec,
    trace: ctx.trace,
    faults: p.faults,
    fifo: p.fifo,
    ...(options.bugs === undefined ? {} : { bugs: options.bugs }),
  });
  let duplicationOn = p.faults.duplicateProbability > 0;
  const checker = new NetworkChecker(ids, p.fifo, () => duplicationOn);
  const nodes = new Map<NodeId, EchoNode>();
  for (const id of ids) {
    const node = new EchoNode(
      id,
      ids.filter((x) => x !== id),
      p.pingChance,
      checker,
      ctx.counts,
    );
    nodes.set(id, node);
    net.addNode(id, node, { tickMs: p.tickMs });
  }

  // The nemesis: one fault action at a time, drawn from its own stream; the
  // checker mirrors each action into its own model.
  const nemesis = new Nemesis(net, scheduler, {
    random: ctx.random.fork('nemesis'),
    everyMs: p.nemesisEveryMs,
    untilMs: p.durationMs,
    onAction: (a) => checker.noteAction(a),
  });
  nemesis.start();
  scheduler.run({ untilMs: p.durationMs });
  for (const [kind, n] of Object.entries(nemesis.applied())) ctx.counts[`nemesis ${kind}`] = n;

  // Final phase: lift every fault, restart everyone, wait out clogs and the
  // long tail of traffic in flight; from then on every message must arrive
  // (each node also sends a Final to every other, so every link carries one).
  nemesis.liftAll();
  net.setDefaultFaults(noFaults);
  duplicationOn = false;
  const settleMs = (p.faults.delay.tailMaxMs ?? p.faults.delay.maxMs) + 600;
  scheduler.run({ untilMs: p.durationMs + settleMs });
  const liftedAt = scheduler.now();
  for (const node of nodes.values()) node.sendFinals();
  const quietMs = 200;
  scheduler.run({ untilMs: liftedAt + quietMs });
  const horizon = scheduler.now() - 10 * noFaults.delay.maxMs - 10;
  ctx.counts['checked delivered after faults lifted'] = checker.checkAllDelivered(
    (sentAt) => sentAt >= liftedAt && sentAt <= horizon,
  );
  ctx.counts['deliveries checked'] = checker.deliveries;
}
