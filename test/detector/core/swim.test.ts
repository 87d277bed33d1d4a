/**
 * The SWIM core (src/detector/core/swim.ts): one test per rule of its file
 * comment, driven by hand (messages delivered or dropped by the test).
 */
import { describe, expect, it } from 'vitest';
import { SwimCore } from '../../../src/detector/core/swim.js';
import type { MemberEvent, Outgoing } from '../../../src/detector/core/swim.js';
import { limits } from '../../../src/lib/limits.js';
import { seededRandom } from '../../../src/lib/random.js';

const T = 1_000;
const PING = 400;

function ids(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `m${i + 1}`);
}

/** n cores that all know each other; one probe per period unless `probesPerPeriod` says more (the rules below are stated per probe). */
function group(n: number, seed = 1, probesPerPeriod = 1): Map<string, SwimCore> {
  const names = ids(n);
  const cores = new Map<string, SwimCore>();
  for (const id of names) {
    cores.set(
      id,
      new SwimCore({
        self: id,
        address: `${id}:1`,
        random: seededRandom(seed).fork(id),
        members: names.map((m) => ({ id: m, address: `${m}:1` })),
        periodMs: T,
        pingTimeoutMs: PING,
        probesPerPeriod,
      }),
    );
  }
  for (const c of cores.values()) c.drain(); // the initial 'joined' events
  return cores;
}

/** A member j1 that knows only m2 as its seed, added to the net. */
function addJoiner(n: Net): SwimCore {
  const joiner = new SwimCore({
    self: 'j1',
    address: 'j1:1',
    random: seededRandom(9),
    seeds: [{ id: 'm2', address: 'm2:1' }],
    periodMs: T,
    pingTimeoutMs: PING,
  });
  n.cores.set('j1', joiner);
  return joiner;
}

interface Net {
  readonly cores: Map<string, SwimCore>;
  readonly events: Map<string, MemberEvent[]>;
  readonly sent: { from: string; out: Outgoing }[];
  /** Messages from or to these members are lost. */
  readonly dead: Set<string>;
  /** Extra filter: return false to lose a message. */
  pass: (from: string, out: Outgoing) => boolean;
}

function net(cores: Map<string, SwimCore>): Net {
  return { cores, events: new Map(), sent: [], dead: new Set(), pass: () => true };
}

/** Delivers messages until quiet (delivery takes no time). */
function flush(n: Net): void {
  for (let round = 0; round < 1_000; round++) {
    let any = false;
    for (const [id, c] of n.cores) {
      const { messages, events } = c.drain();
      const list = n.events.get(id) ?? [];
      list.push(...events);
      n.events.set(id, list);
      for (const out of messages) {
        any = true;
        n.sent.push({ from: id, out });
        if (n.dead.has(id) || n.dead.has(out.to) || !n.pass(id, out)) continue;
        const to = n.cores.get(out.to);
        // Encode as on the wire: a structured clone.
        to?.step(id, structuredClone(out.message));
      }
    }
    if (!any) return;
  }
  throw new Error('no quiescence');
}

/** Ticks every live core at `now` and delivers. */
function tickAll(n: Net, now: number): void {
  for (const [id, c] of n.cores) if (!n.dead.has(id)) c.tick(now);
  flush(n);
}

function run(n: Net, fromMs: number, toMs: number, stepMs = 100): void {
  for (let t = fromMs; t <= toMs; t += stepMs) tickAll(n, t);
}

function eventsOf(n: Net, id: string, type: MemberEvent['type'], member?: string): MemberEvent[] {
  return (n.events.get(id) ?? []).filter(
    (e) => e.type === type && (member === undefined || e.member === member),
  );
}

function pingsBy(n: Net, from: string): string[] {
  return n.sent
    .filter((s) => s.from === from && s.out.message.type === 'ping')
    .map((s) => s.out.to);
}

describe('SwimCore', () => {
  it('rule 1: probes round-robin over a shuffled list: every member once per round, rounds differ', () => {
    const n = net(group(8));
    n.dead.add('nobody');
    // Only m1 probes: tick m1 alone, once per period, for 3 rounds of 7.
    const m1 = n.cores.get('m1')!;
    for (let p = 0; p < 21; p++) {
      m1.tick(p * T);
      for (const [id, c] of n.cores) if (id !== 'm1') c.tick(p * T + 1); // let them answer nothing new
      flush(n);
    }
    const targets = pingsBy(n, 'm1');
    expect(targets).toHaveLength(21);
    const rounds = [targets.slice(0, 7), targets.slice(7, 14), targets.slice(14, 21)];
    for (const r of rounds) expect([...r].sort()).toEqual(ids(8).slice(1));
    // Shuffled: not the sorted order, and not the same order every round.
    expect(rounds[0]).not.toEqual(ids(8).slice(1));
    expect(rounds[0]).not.toEqual(rounds[1]);
  });

  it('rule 1: r probes per period go to r different members; a round takes (n-1)/r periods', () => {
    const n = net(group(10, 1, 3));
    const m1 = n.cores.get('m1')!;
    const perPeriod: string[][] = [];
    for (let p = 0; p < 6; p++) {
      const before = pingsBy(n, 'm1').length;
      m1.tick(p * T);
      flush(n);
      perPeriod.push(pingsBy(n, 'm1').slice(before));
    }
    for (const targets of perPeriod) {
      expect(targets).toHaveLength(3);
      expect(new Set(targets).size).toBe(3);
    }
    // 9 others, 3 a period: periods 0-2 are one round, 3-5 the next.
    expect(perPeriod.slice(0, 3).flat().sort()).toEqual(ids(10).slice(1).sort());
    expect(perPeriod.slice(3, 6).flat().sort()).toEqual(ids(10).slice(1).sort());
    // With 2 others, 3 probes a period cannot go to 3 different members: 2 do.
    const small = net(group(3, 1, 3));
    small.cores.get('m1')!.tick(0);
    flush(small);
    expect(pingsBy(small, 'm1').sort()).toEqual(['m2', 'm3']);
  });

  it('rule 1: a new member is inserted into the current round and probed within it', () => {
    const n = net(group(4));
    const m1 = n.cores.get('m1')!;
    m1.tick(0);
    flush(n);
    m1.step('m9', {
      type: 'gossip',
      updates: [{ kind: 'alive', member: 'm9', incarnation: 0, address: 'm9:1' }],
    });
    for (let p = 1; p < 4; p++) {
      m1.tick(p * T);
      flush(n);
    }
    // First round: m2..m4 plus m9, 4 probes in 4 periods.
    expect([...pingsBy(n, 'm1').slice(0, 4)].sort()).toEqual(['m2', 'm3', 'm4', 'm9']);
  });

  it('rule 2: a direct ack ends the probe: no ping-req, no suspicion', () => {
    const n = net(group(5));
    run(n, 0, 5 * T);
    expect(n.sent.filter((s) => s.out.message.type === 'ping-req')).toHaveLength(0);
    for (const id of ids(5)) expect(eventsOf(n, id, 'suspect')).toHaveLength(0);
  });

  it('rule 2: no ack within the ping timeout sends k ping-reqs, not before', () => {
    const n = net(group(6));
    const m1 = n.cores.get('m1')!;
    // Lose every ack to m1.
    n.pass = (_from, out) => !(out.to === 'm1' && out.message.type === 'ack');
    m1.tick(0);
    flush(n);
    m1.tick(PING - 1);
    flush(n);
    expect(n.sent.filter((s) => s.out.message.type === 'ping-req')).toHaveLength(0);
    m1.tick(PING);
    flush(n);
    const reqs = n.sent.filter((s) => s.from === 'm1' && s.out.message.type === 'ping-req');
    expect(reqs).toHaveLength(limits.swimIndirectProbesDefault);
    const target = pingsBy(n, 'm1')[0];
    for (const r of reqs) {
      expect(r.out.to).not.toBe(target);
      expect((r.out.message as { target: string }).target).toBe(target);
    }
    expect(new Set(reqs.map((r) => r.out.to)).size).toBe(reqs.length);
  });

  it('rule 2/3: a relayed ack saves the target from suspicion (lossy direct link)', () => {
    const n = net(group(6));
    const m1 = n.cores.get('m1')!;
    m1.tick(0);
    const first = m1.drain();
    const target = first.messages[0]!.to;
    // The direct link m1 <-> target is cut both ways; every other link works.
    n.pass = (from, out) =>
      !((from === 'm1' && out.to === target) || (from === target && out.to === 'm1'));
    for (const o of first.messages) if (n.pass('m1', o)) n.cores.get(o.to)!.step('m1', o.message);
    flush(n);
    m1.tick(PING);
    flush(n);
    m1.tick(T);
    flush(n);
    expect(m1.member(target)!.state).toBe('alive');
    expect(eventsOf(n, 'm1', 'suspect')).toHaveLength(0);
  });

  it('rule 2: a relay forwards only an ack from the target of a ping it sent, to the requester', () => {
    const n = net(group(4));
    const m2 = n.cores.get('m2')!;
    m2.step('m1', { type: 'ping-req', seq: 77, target: 'm3', address: 'm3:1', updates: [] });
    const ping = m2.drain().messages[0]!;
    expect(ping.to).toBe('m3');
    const seq = (ping.message as { seq: number }).seq;
    // An ack from someone else for that seq is not forwarded.
    m2.step('m4', { type: 'ack', seq, target: 'm4', updates: [] });
    expect(m2.drain().messages).toHaveLength(0);
    m2.step('m3', { type: 'ack', seq, target: 'm3', updates: [] });
    const fwd = m2.drain().messages;
    expect(fwd).toHaveLength(1);
    expect(fwd[0]!.to).toBe('m1');
    expect(fwd[0]!.message).toMatchObject({ type: 'ack', seq: 77, target: 'm3' });
    // Only once.
    m2.step('m3', { type: 'ack', seq, target: 'm3', updates: [] });
    expect(m2.drain().messages).toHaveLength(0);
  });

  it('rule 3: a crashed member is suspected by its prober, then failed everywhere after the suspicion timeout', () => {
    const n = net(group(5));
    n.dead.add('m5');
    const core = n.cores.get('m1')!;
    const timeout = core.suspicionTimeoutMs();
    expect(timeout).toBe(limits.swimSuspicionMultDefault * T); // n = 5: log10 < 1
    run(n, 0, 8 * T);
    const suspectedAt = ids(4).map((id) => eventsOf(n, id, 'suspect', 'm5').length);
    expect(suspectedAt.some((c) => c > 0)).toBe(true);
    run(n, 8 * T + 100, 8 * T + timeout + 6 * T);
    for (const id of ids(4)) {
      expect(eventsOf(n, id, 'failed', 'm5')).toHaveLength(1);
      expect(n.cores.get(id)!.member('m5')!.state).toBe('failed');
    }
    // Not failed before its suspicion timeout ran out anywhere: check on the first suspecter.
  });

  it('rule 3: a suspect is failed exactly at its suspicion timeout, not earlier', () => {
    const c = group(3).get('m1')!;
    c.tick(0);
    c.drain();
    c.step('m2', {
      type: 'gossip',
      updates: [{ kind: 'suspect', member: 'm3', incarnation: 0, address: 'm3:1' }],
    });
    expect(c.member('m3')!.state).toBe('suspect');
    const timeout = c.suspicionTimeoutMs();
    c.tick(timeout - 1);
    expect(c.member('m3')!.state).toBe('suspect');
    c.tick(timeout);
    expect(c.member('m3')!.state).toBe('failed');
    expect(
      c
        .drain()
        .events.filter((e) => e.type === 'failed')
        .map((e) => e.member),
    ).toEqual(['m3']);
  });

  it('rule 3: the suspicion timeout grows with log10 n', () => {
    const small = group(3).get('m1')!;
    const big = new SwimCore({
      self: 'x',
      address: 'x:1',
      random: seededRandom(1),
      members: Array.from({ length: 999 }, (_, i) => ({ id: `b${i}`, address: '' })),
      periodMs: T,
      pingTimeoutMs: PING,
    });
    expect(small.suspicionTimeoutMs()).toBe(4 * T);
    expect(big.suspicionTimeoutMs()).toBe(12 * T);
  });

  it('rule 4: incarnation order between alive, suspect and failed', () => {
    const c = group(3).get('m1')!;
    const up = (kind: 'alive' | 'suspect' | 'failed', incarnation: number) =>
      c.step('m2', {
        type: 'gossip',
        updates: [{ kind, member: 'm3', incarnation, address: 'm3:1' }],
      });
    up('suspect', 2);
    expect(c.member('m3')).toMatchObject({ state: 'suspect', incarnation: 2 });
    up('alive', 2); // not higher: ignored
    expect(c.member('m3')).toMatchObject({ state: 'suspect', incarnation: 2 });
    up('alive', 3); // higher: refutes
    expect(c.member('m3')).toMatchObject({ state: 'alive', incarnation: 3 });
    up('suspect', 2); // older: ignored
    expect(c.member('m3')!.state).toBe('alive');
    up('suspect', 3); // same incarnation overrides alive
    expect(c.member('m3')!.state).toBe('suspect');
    up('suspect', 3); // same incarnation does not override suspect (no new event)
    up('failed', 2); // older failed: ignored
    expect(c.member('m3')!.state).toBe('suspect');
    up('failed', 3);
    expect(c.member('m3')!.state).toBe('failed');
    up('alive', 3); // failed is final for its incarnation
    expect(c.member('m3')!.state).toBe('failed');
    up('suspect', 9); // nothing but a higher alive revives it
    expect(c.member('m3')!.state).toBe('failed');
    up('alive', 4);
    expect(c.member('m3')).toMatchObject({ state: 'alive', incarnation: 4 });
    expect(c.drain().events.map((e) => `${e.type}@${e.incarnation}`)).toEqual([
      'suspect@2',
      'alive@3',
      'suspect@3',
      'failed@3',
      'joined@4',
    ]);
  });

  it('rule 5: a suspected member refutes with a higher incarnation, and the group believes it', () => {
    const n = net(group(5));
    const m3 = n.cores.get('m3')!;
    n.cores.get('m1')!.step('m2', {
      type: 'gossip',
      updates: [{ kind: 'suspect', member: 'm3', incarnation: 0, address: 'm3:1' }],
    });
    expect(n.cores.get('m1')!.member('m3')!.state).toBe('suspect');
    run(n, 0, 3 * T);
    expect(m3.selfIncarnation).toBe(1);
    expect(m3.counters.refutations).toBe(1);
    run(n, 3 * T + 100, 20 * T);
    for (const id of ['m1', 'm2', 'm4', 'm5']) {
      expect(n.cores.get(id)!.member('m3')).toMatchObject({ state: 'alive', incarnation: 1 });
      expect(eventsOf(n, id, 'failed', 'm3')).toHaveLength(0);
    }
    expect(eventsOf(n, 'm1', 'alive', 'm3')).toHaveLength(1);
  });

  it('rule 5: the suspecter tells the suspect directly and the refutation comes straight back', () => {
    const n = net(group(5));
    const m1 = n.cores.get('m1')!;
    m1.tick(0);
    const target = m1.drain().messages[0]!.to;
    // The ping and everything else in that period is lost; the period ends.
    m1.tick(PING);
    m1.drain();
    m1.tick(T);
    const out = m1.drain().messages;
    const notice = out.find((o) => o.to === target && o.message.type === 'gossip');
    expect(notice?.message).toMatchObject({ updates: [{ kind: 'suspect', member: target }] });
    const t = n.cores.get(target)!;
    t.step('m1', notice!.message);
    const answer = t.drain().messages.find((o) => o.to === 'm1');
    expect(answer?.message).toMatchObject({
      type: 'gossip',
      updates: [{ kind: 'alive', member: target, incarnation: 1 }],
    });
    m1.step(target, answer!.message);
    expect(m1.member(target)).toMatchObject({ state: 'alive', incarnation: 1 });
  });

  it('rule 5: a member declared failed refutes when it hears it (a restart comes back)', () => {
    const c = group(3).get('m3')!;
    c.step('m1', {
      type: 'gossip',
      updates: [{ kind: 'failed', member: 'm3', incarnation: 0, address: 'm3:1' }],
    });
    expect(c.selfIncarnation).toBe(1);
    // A stale suspicion below its incarnation is ignored.
    c.step('m1', {
      type: 'gossip',
      updates: [{ kind: 'suspect', member: 'm3', incarnation: 0, address: 'm3:1' }],
    });
    expect(c.selfIncarnation).toBe(1);
  });

  it('rule 6: an update is piggybacked at most λ·ceil(log10(n+1)) times, then dropped', () => {
    const cores = group(4);
    const c = cores.get('m1')!;
    c.step('m2', {
      type: 'gossip',
      updates: [{ kind: 'suspect', member: 'm4', incarnation: 0, address: 'm4:1' }],
    });
    const limit = c.retransmitLimit();
    expect(limit).toBe(limits.swimRetransmitMultDefault * 1);
    let carried = 0;
    for (let i = 0; i < limit + 5; i++) {
      c.step('m2', { type: 'ping', seq: i, target: 'm1', updates: [] });
      const ack = c.drain().messages[0]!.message as { updates: readonly { member: string }[] };
      if (ack.updates.some((u) => u.member === 'm4')) carried++;
    }
    expect(carried).toBe(limit);
  });

  it('rule 6: at most swimPiggybackUpdatesMax updates per message, least-sent first', () => {
    const c = group(2).get('m1')!;
    const many = Array.from({ length: 2 * limits.swimPiggybackUpdatesMax + 4 }, (_, i) => ({
      kind: 'alive' as const,
      member: `x${i}`,
      incarnation: 0,
      address: '',
    }));
    for (let i = 0; i < many.length; i += limits.swimPiggybackUpdatesMax)
      c.step('m2', { type: 'gossip', updates: many.slice(i, i + limits.swimPiggybackUpdatesMax) });
    c.step('m2', { type: 'ping', seq: 1, target: 'm1', updates: [] });
    const first = (c.drain().messages[0]!.message as { updates: readonly { member: string }[] })
      .updates;
    expect(first).toHaveLength(limits.swimPiggybackUpdatesMax);
    c.step('m2', { type: 'ping', seq: 2, target: 'm1', updates: [] });
    const second = (c.drain().messages[0]!.message as { updates: readonly { member: string }[] })
      .updates;
    // The second message carries updates not yet sent.
    for (const u of second) expect(first.map((f) => f.member)).not.toContain(u.member);
  });

  it('rule 6 (buddy system): a ping to a suspect carries its suspicion first', () => {
    const many = Array.from({ length: limits.swimPiggybackUpdatesMax + 4 }, (_, i) => ({
      kind: 'alive' as const,
      member: `x${i}`,
      incarnation: 0,
      address: '',
    }));
    const c = group(3).get('m1')!;
    c.step('m2', { type: 'gossip', updates: many.slice(0, limits.swimPiggybackUpdatesMax) });
    c.step('m2', { type: 'gossip', updates: many.slice(limits.swimPiggybackUpdatesMax) });
    c.step('m2', {
      type: 'gossip',
      updates: [{ kind: 'suspect', member: 'm3', incarnation: 0, address: 'm3:1' }],
    });
    c.step('m3', { type: 'ping', seq: 5, target: 'm1', updates: [] });
    const ack = c.drain().messages.find((m) => m.to === 'm3')!.message as unknown as {
      updates: readonly { member: string; kind: string }[];
    };
    expect(ack.updates[0]).toMatchObject({ member: 'm3', kind: 'suspect' });
  });

  it('rule 7: a member joins through a seed and everyone learns of it by gossip', () => {
    const n = net(group(6));
    const joiner = addJoiner(n);
    run(n, 0, 15 * T);
    expect(joiner.members().filter((m) => m.state === 'alive')).toHaveLength(6);
    for (const id of ids(6)) {
      expect(eventsOf(n, id, 'joined', 'j1')).toHaveLength(1);
      expect(n.cores.get(id)!.member('j1')!.state).toBe('alive');
    }
    // Joined once: the join stopped after the answer.
    expect(n.sent.filter((s) => s.out.message.type === 'join')).toHaveLength(1);
  });

  it('rule 7: a join is retried until a seed answers', () => {
    const n = net(group(3));
    addJoiner(n);
    n.dead.add('m2');
    run(n, 0, 2 * limits.swimJoinRetryMs + 100);
    expect(n.sent.filter((s) => s.out.message.type === 'join')).toHaveLength(3);
    n.dead.delete('m2');
    run(n, 3 * limits.swimJoinRetryMs, 4 * limits.swimJoinRetryMs);
    expect(n.cores.get('m2')!.member('j1')!.state).toBe('alive');
  });

  it('rule 7: a member that leaves is seen as left (not failed) and stops probing', () => {
    const n = net(group(6));
    run(n, 0, 2 * T);
    n.cores.get('m4')!.leave();
    flush(n);
    const before = pingsBy(n, 'm4').length;
    run(n, 2 * T + 100, 12 * T);
    expect(pingsBy(n, 'm4').length).toBe(before);
    for (const id of ['m1', 'm2', 'm3', 'm5', 'm6']) {
      expect(eventsOf(n, id, 'left', 'm4')).toHaveLength(1);
      expect(eventsOf(n, id, 'failed', 'm4')).toHaveLength(0);
    }
  });

  it('rule 8: a malformed message is refused and changes nothing', () => {
    const c = group(3).get('m1')!;
    c.tick(0);
    c.drain();
    const before = c.members();
    const bad: unknown[] = [
      null,
      42,
      [],
      { type: 'nope' },
      { type: 'ping', seq: -1, target: 'm1', updates: [] },
      { type: 'ping', seq: 1.5, target: 'm1', updates: [] },
      { type: 'ping', seq: 1, target: '', updates: [] },
      { type: 'ping', seq: 1, target: 'm1' },
      {
        type: 'ping',
        seq: 1,
        target: 'm1',
        updates: [{ kind: 'failed', member: 'm2', incarnation: 0 }],
      },
      {
        type: 'ack',
        seq: 1,
        target: 'm1',
        updates: [{ kind: 'zombie', member: 'm2', incarnation: 0, address: '' }],
      },
      {
        type: 'ack',
        seq: 1,
        target: 'm1',
        updates: [{ kind: 'failed', member: 'bad id!', incarnation: 0, address: '' }],
      },
      {
        type: 'ack',
        seq: 1,
        target: 'm1',
        updates: [{ kind: 'failed', member: 'm2', incarnation: 2 ** 60, address: '' }],
      },
      {
        type: 'ack',
        seq: 1,
        target: 'm1',
        updates: [
          {
            kind: 'failed',
            member: 'm2',
            incarnation: 0,
            address: 'x'.repeat(limits.swimAddressCharsMax + 1),
          },
        ],
      },
      {
        type: 'gossip',
        updates: Array.from({ length: limits.swimPiggybackUpdatesMax + 1 }, () => ({
          kind: 'failed',
          member: 'm2',
          incarnation: 5,
          address: '',
        })),
      },
      { type: 'ping-req', seq: 1, target: 'm2', updates: [] },
      { type: 'join', incarnation: 'x', address: '' },
      { type: 'join-ack', members: 'all' },
    ];
    for (const b of bad) {
      const r = c.step('m2', b);
      expect(r.ok).toBe(false);
    }
    expect(c.members()).toEqual(before);
    expect(c.drain()).toEqual({ messages: [], events: [] });
    expect(c.counters.refused).toBe(bad.length);
  });

  it('rule 8: gossip cannot grow the table past swimMembersMax', () => {
    const c = new SwimCore({
      self: 'x',
      address: '',
      random: seededRandom(1),
      members: Array.from({ length: limits.swimMembersMax }, (_, i) => ({
        id: `b${i}`,
        address: '',
      })),
    });
    c.step('b1', {
      type: 'gossip',
      updates: [{ kind: 'alive', member: 'newcomer', incarnation: 0, address: '' }],
    });
    expect(c.member('newcomer')).toBeUndefined();
  });

  it('same seed, same probes: the core is deterministic', () => {
    const a = net(group(7, 42));
    const b = net(group(7, 42));
    a.dead.add('m3');
    b.dead.add('m3');
    run(a, 0, 20 * T);
    run(b, 0, 20 * T);
    expect(a.sent.map((s) => [s.from, s.out.to, s.out.message.type])).toEqual(
      b.sent.map((s) => [s.from, s.out.to, s.out.message.type]),
    );
  });
});
