import { describe, expect, it } from 'vitest';
import { nodeId } from '../../src/lib/ids.js';
import type { NodeId } from '../../src/lib/ids.js';
import { seededRandom } from '../../src/lib/random.js';
import { Scheduler } from '../../src/sim/scheduler.js';
import { Trace } from '../../src/sim/trace.js';
import { SimNetwork } from '../../src/sim/network.js';
import type {
  Codec,
  LinkFaults,
  NetworkBugs,
  NodeContext,
  SimNode,
} from '../../src/sim/network.js';

interface Msg {
  n: number;
  note?: string;
}

const jsonCodec: Codec<Msg> = {
  encode: (m) => new TextEncoder().encode(JSON.stringify(m)),
  decode: (b) => JSON.parse(new TextDecoder().decode(b)) as Msg,
};

interface Received {
  to: NodeId;
  from: NodeId;
  n: number;
  at: number;
  inc: number;
}

const [n1, n2, n3, n4] = ['n1', 'n2', 'n3', 'n4'].map(nodeId) as [NodeId, NodeId, NodeId, NodeId];

interface Setup {
  sched: Scheduler;
  net: SimNetwork<Msg>;
  trace: Trace;
  received: Received[];
  ctx: Map<NodeId, NodeContext<Msg>>;
  events: string[];
  send(from: NodeId, to: NodeId, n: number): void;
}

function setup(
  options: {
    faults?: Partial<LinkFaults>;
    fifo?: boolean;
    ordered?: (m: Msg) => boolean;
    nodes?: NodeId[];
    seed?: number;
    tickMs?: number;
    bugs?: NetworkBugs;
  } = {},
): Setup {
  const sched = new Scheduler();
  const trace = new Trace();
  const net = new SimNetwork<Msg>({
    scheduler: sched,
    random: seededRandom(options.seed ?? 1).fork('net'),
    codec: jsonCodec,
    trace,
    ...(options.faults === undefined ? {} : { faults: options.faults }),
    ...(options.fifo === undefined ? {} : { fifo: options.fifo }),
    ...(options.ordered === undefined ? {} : { ordered: options.ordered }),
    ...(options.bugs === undefined ? {} : { bugs: options.bugs }),
  });
  const received: Received[] = [];
  const ctx = new Map<NodeId, NodeContext<Msg>>();
  const events: string[] = [];
  for (const id of options.nodes ?? [n1, n2, n3]) {
    const node: SimNode<Msg> = {
      onStart: (c) => {
        ctx.set(id, c);
        events.push(`start ${id} ${c.incarnation}`);
      },
      onRestart: (c) => {
        ctx.set(id, c);
        events.push(`restart ${id} ${c.incarnation}`);
      },
      onCrash: () => events.push(`crash ${id}`),
      onTick: (c) => events.push(`tick ${id} ${c.now()}`),
      onMessage: (from, m, c) =>
        received.push({ to: id, from, n: m.n, at: c.now(), inc: c.incarnation }),
    };
    net.addNode(id, node, options.tickMs === undefined ? {} : { tickMs: options.tickMs });
  }
  return {
    sched,
    net,
    trace,
    received,
    ctx,
    events,
    send: (from, to, n) => ctx.get(from)!.send(to, { n }),
  };
}

describe('SimNetwork', () => {
  it('delivers a decoded copy of what was sent, after the delay', () => {
    const s = setup({ faults: { delay: { minMs: 3, maxMs: 3 } } });
    const m = { n: 7, note: 'hi' };
    let got: Msg | undefined;
    s.net.addNode(n4, { onMessage: (_f, msg) => (got = msg) });
    s.ctx.get(n1)!.send(n4, m);
    m.note = 'changed after send';
    s.sched.run();
    expect(got).toEqual({ n: 7, note: 'hi' });
    expect(got).not.toBe(m);
    expect(s.sched.now()).toBe(3);
    expect(s.net.stats()).toMatchObject({ sent: 1, delivered: 1 });
  });

  it('drops every message with dropProbability 1 and none with 0', () => {
    const lossy = setup({ faults: { dropProbability: 1 } });
    for (let i = 0; i < 50; i++) lossy.send(n1, n2, i);
    lossy.sched.run();
    expect(lossy.received).toHaveLength(0);
    expect(lossy.net.stats().dropped.lost).toBe(50);

    const some = setup({ faults: { dropProbability: 0.5 } });
    for (let i = 0; i < 200; i++) some.send(n1, n2, i);
    some.sched.run();
    expect(some.received.length).toBeGreaterThan(50);
    expect(some.received.length).toBeLessThan(150);
  });

  it('duplicates with duplicateProbability 1, never with 0', () => {
    const dup = setup({ faults: { duplicateProbability: 1 } });
    for (let i = 0; i < 10; i++) dup.send(n1, n2, i);
    dup.sched.run();
    expect(dup.received.map((r) => r.n).sort((a, b) => a - b)).toEqual([
      0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9,
    ]);
    const once = setup();
    for (let i = 0; i < 10; i++) once.send(n1, n2, i);
    once.sched.run();
    expect(once.received).toHaveLength(10);
  });

  it('delays within the model and reorders, unless FIFO is promised', () => {
    const faults = { delay: { minMs: 5, maxMs: 50 } };
    const loose = setup({ faults });
    for (let i = 0; i < 100; i++) loose.send(n1, n2, i);
    loose.sched.run();
    const order = loose.received.map((r) => r.n);
    expect(order).not.toEqual([...order].sort((a, b) => a - b));
    for (const r of loose.received) {
      expect(r.at).toBeGreaterThanOrEqual(5);
      expect(r.at).toBeLessThanOrEqual(50);
    }
    const fifo = setup({ faults: { ...faults, duplicateProbability: 0.2 }, fifo: true });
    for (let i = 0; i < 100; i++) fifo.send(n1, n2, i);
    fifo.sched.run();
    const got = fifo.received.map((r) => r.n);
    expect(got.length).toBeGreaterThan(100);
    expect(got).toEqual([...got].sort((a, b) => a - b));
  });

  it('keeps ordered messages (like one TCP connection) in order and unduplicated, the others not', () => {
    const s = setup({
      faults: { delay: { minMs: 5, maxMs: 50 }, duplicateProbability: 0.3 },
      ordered: (m) => m.n % 2 === 0,
    });
    for (let i = 0; i < 200; i++) s.send(n1, n2, i);
    s.sched.run();
    const even = s.received.map((r) => r.n).filter((n) => n % 2 === 0);
    const odd = s.received.map((r) => r.n).filter((n) => n % 2 === 1);
    expect(even).toEqual(Array.from({ length: 100 }, (_, i) => 2 * i));
    expect(odd.length).toBeGreaterThan(100); // duplicated
    expect(odd).not.toEqual([...odd].sort((a, b) => a - b)); // reordered
  });

  it('never cuts an unpartitioned node off (a client), but partitions the rest', () => {
    const s = setup({ nodes: [n1, n2, n3] });
    const got: NodeId[] = [];
    let client: NodeContext<Msg> | undefined;
    s.net.addNode(
      n4,
      { onStart: (c) => (client = c), onMessage: (from) => got.push(from) },
      { unpartitioned: true },
    );
    s.net.partition([[n1], [n2, n3]]);
    s.net.isolate(n2);
    for (const id of [n1, n2, n3]) {
      s.send(id, n4, 0);
      client?.send(id, { n: 1 });
    }
    s.send(n1, n3, 2);
    s.send(n2, n3, 3);
    s.sched.run();
    expect(got.sort()).toEqual([n1, n2, n3]);
    expect(s.received.filter((r) => r.n === 1).map((r) => r.to)).toEqual(
      expect.arrayContaining([n1, n2, n3]),
    );
    expect(s.received.filter((r) => r.n >= 2)).toEqual([]);
  });

  it('draws delays from the long tail', () => {
    const s = setup({
      faults: { delay: { minMs: 1, maxMs: 2, tailProbability: 0.5, tailMaxMs: 1000 } },
    });
    for (let i = 0; i < 100; i++) s.send(n1, n2, i);
    s.sched.run();
    expect(Math.max(...s.received.map((r) => r.at))).toBeGreaterThan(100);
  });

  it('partitions arbitrary groups (unlisted nodes form a group) and heals', () => {
    const s = setup({ nodes: [n1, n2, n3, n4] });
    s.net.partition([[n1], [n2]]); // n3 and n4 form the third group
    const all = [n1, n2, n3, n4];
    for (const a of all) for (const b of all) if (a !== b) s.send(a, b, 0);
    s.sched.run();
    const links = s.received.map((r) => `${r.from}>${r.to}`).sort();
    expect(links).toEqual(['n3>n4', 'n4>n3']);
    expect(s.net.stats().dropped.partitioned).toBe(10);
    s.net.heal();
    s.send(n1, n2, 1);
    s.sched.run();
    expect(s.received.at(-1)).toMatchObject({ from: n1, to: n2, n: 1 });
  });

  it('loses messages in flight across a link cut before they arrive', () => {
    const s = setup({ faults: { delay: { minMs: 10, maxMs: 10 } } });
    s.send(n1, n2, 1);
    s.sched.run({ untilMs: 5 });
    s.net.isolate(n2);
    s.sched.run();
    expect(s.received).toHaveLength(0);
    expect(s.net.stats().dropped.partitioned).toBe(1);
  });

  it('isolates one node and cuts one direction of a link', () => {
    const s = setup();
    s.net.isolate(n1);
    s.net.cutLink(n2, n3);
    for (const [a, b] of [
      [n1, n2],
      [n2, n1],
      [n2, n3],
      [n3, n2],
      [n3, n1],
    ] as const) {
      s.send(a, b, 0);
    }
    s.sched.run();
    expect(s.received.map((r) => `${r.from}>${r.to}`)).toEqual(['n3>n2']);
    s.net.healLink(n2, n3);
    s.send(n2, n3, 0);
    s.sched.run();
    expect(s.received.map((r) => `${r.from}>${r.to}`)).toEqual(['n3>n2', 'n2>n3']);
  });

  it('holds messages on a clogged link until the clog ends, without losing them', () => {
    const s = setup({ faults: { delay: { minMs: 1, maxMs: 5 } }, fifo: true });
    s.net.clog(n1, n2, 100);
    for (let i = 0; i < 20; i++) s.send(n1, n2, i);
    s.send(n2, n1, 99);
    s.sched.run();
    const onClogged = s.received.filter((r) => r.from === n1);
    expect(onClogged.map((r) => r.n)).toEqual([...Array(20).keys()]);
    for (const r of onClogged) expect(r.at).toBeGreaterThanOrEqual(100);
    expect(s.received.find((r) => r.from === n2)!.at).toBeLessThan(10);
  });

  it('crash: drops inbound and in-flight messages, stops ticks and timers, and a stale context cannot send', () => {
    const s = setup({ faults: { delay: { minMs: 10, maxMs: 10 } }, tickMs: 10 });
    const oldCtx = s.ctx.get(n2)!;
    let timerFired = false;
    oldCtx.setTimer(50, () => (timerFired = true));
    s.send(n1, n2, 1); // in flight when n2 crashes
    s.sched.run({ untilMs: 5 });
    s.net.crash(n2);
    s.send(n3, n2, 2); // sent while n2 is down
    s.sched.run({ untilMs: 100 });
    expect(s.received.filter((r) => r.to === n2)).toHaveLength(0);
    expect(timerFired).toBe(false);
    expect(
      s.events.filter((e) => e.startsWith('tick n2')).every((e) => Number(e.split(' ')[2]) <= 5),
    ).toBe(true);
    oldCtx.send(n1, { n: 3 }); // a reply from the dead incarnation
    expect(oldCtx.alive()).toBe(false);
    s.sched.run({ untilMs: 200 });
    expect(s.received.filter((r) => r.from === n2)).toHaveLength(0);
    expect(s.events).toContain('crash n2');
    expect(s.net.stats().dropped).toMatchObject({ 'receiver-down': 2, 'sender-down': 1 });
  });

  it('restart: a new incarnation that never gets messages sent to the old one', () => {
    const s = setup({ faults: { delay: { minMs: 10, maxMs: 10 } }, tickMs: 10 });
    s.send(n1, n2, 1);
    s.sched.run({ untilMs: 2 });
    s.net.crash(n2);
    s.net.restart(n2);
    expect(s.net.incarnation(n2)).toBe(2);
    expect(s.events).toContain('restart n2 2');
    s.send(n1, n2, 2);
    s.sched.run({ untilMs: 100 });
    expect(s.received.filter((r) => r.to === n2)).toEqual([
      { to: n2, from: n1, n: 2, at: 12, inc: 2 },
    ]);
    expect(s.net.stats().dropped['receiver-restarted']).toBe(1);
    expect(s.events.some((e) => e.startsWith('tick n2') && Number(e.split(' ')[2]) > 50)).toBe(
      true,
    );
  });

  it('messages from a crashed sender still in flight are not delivered while it is down', () => {
    const s = setup({ faults: { delay: { minMs: 10, maxMs: 10 } } });
    s.send(n1, n2, 1);
    s.net.crash(n1);
    s.sched.run();
    expect(s.received).toHaveLength(0);
    expect(s.net.stats().dropped['sender-down']).toBe(1);
  });

  it('drops messages to unknown nodes', () => {
    const s = setup();
    s.send(n1, nodeId('nobody'), 1);
    s.sched.run();
    expect(s.net.stats().dropped['unknown-node']).toBe(1);
  });

  it('per-link faults override the defaults', () => {
    const s = setup();
    s.net.setLinkFaults(n1, n2, { dropProbability: 1 });
    s.send(n1, n2, 1);
    s.send(n2, n1, 2);
    s.send(n1, n3, 3);
    s.sched.run();
    expect(s.received.map((r) => r.n).sort()).toEqual([2, 3]);
  });

  it('the test-only bugs really break the promises (so checkers have something to catch)', () => {
    const across = setup({ bugs: { ignorePartitions: true } });
    across.net.isolate(n1);
    across.send(n1, n2, 1);
    across.sched.run();
    expect(across.received).toHaveLength(1);
    const down = setup({ bugs: { deliverToDownNodes: true } });
    down.net.crash(n2);
    down.send(n1, n2, 1);
    down.sched.run();
    expect(down.received).toHaveLength(1);
    const twice = setup({ bugs: { duplicateAlways: true } });
    twice.send(n1, n2, 1);
    twice.sched.run();
    expect(twice.received).toHaveLength(2);
    const corrupt = setup({ bugs: { corruptPayloads: true } });
    corrupt.send(n1, n2, 4); // {"n":4} -> last byte '}' flipped: undecodable
    expect(() => corrupt.sched.run()).toThrow();
  });

  it('traces every event, and the same seed gives the same trace hash', () => {
    const run = (seed: number): string => {
      const s = setup({
        seed,
        tickMs: 7,
        faults: { dropProbability: 0.1, duplicateProbability: 0.1, delay: { minMs: 1, maxMs: 30 } },
      });
      for (let i = 0; i < 30; i++) s.send(i % 2 === 0 ? n1 : n2, n3, i);
      s.sched.run({ untilMs: 200 });
      expect(s.trace.length).toBeGreaterThan(30);
      return s.trace.hash();
    };
    expect(run(5)).toBe(run(5));
    expect(run(5)).not.toBe(run(6));
  });
});
