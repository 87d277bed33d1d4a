/**
 * The failure detector in simulation: N {@link SwimCore}s in one process over
 * virtual time (the simulator's {@link Scheduler}) and a seeded network model
 * that loses and delays each message, crashes members (silent forever) and
 * pauses them (no ticks; what arrives waits, as in a socket buffer, and is
 * handled at the resume). Every message is MessagePack-encoded and decoded on
 * the way, as on the wire. Measures detection time, false positives and load.
 *
 * ```ts
 * const r = runDetectorSim({ ...detectorSimDefaults(100), seed: 7, loss: 0.05 });
 * r.firstDetection.p99Ms;        // crash → first member declares it failed
 * r.falsePositivesPer1000MemberMinutes;
 * r.messagesPerMemberPerSecond;  // sent, averaged over members
 * r.traceHash;                   // equal for equal options: the run replays
 * ```
 *
 * {@link runHeartbeatSim} runs the comparison detector (every member
 * broadcasts a heartbeat each period, Moleculer's discovery style) on the same
 * crash schedule and network model.
 */
import { pack, unpack } from 'msgpackr';
import { assert } from '../../lib/assert.js';
import { limits } from '../../lib/limits.js';
import { seededRandom } from '../../lib/random.js';
import type { Random } from '../../lib/random.js';
import { SwimCore } from '../../detector/core/swim.js';
import type { MemberEvent } from '../../detector/core/swim.js';
import { Scheduler } from '../scheduler.js';
import type { EventHandle } from '../scheduler.js';
import { Trace } from '../trace.js';

/** What one detector simulation runs. Times in virtual ms. */
export interface DetectorSimOptions {
  readonly members: number;
  readonly seed: number;
  /** Chance each message is lost. */
  readonly loss: number;
  /** Message delay, uniform in [delayMinMs, delayMaxMs]. */
  readonly delayMinMs: number;
  readonly delayMaxMs: number;
  /** Virtual time simulated. */
  readonly durationMs: number;
  /** Members crashed (at random times, early enough to be detected before the end). */
  readonly crashes: number;
  /** Pauses of live members (a GC pause, SIGSTOP), each of a random length up to pauseMaxMs. */
  readonly pauses: number;
  readonly pauseMaxMs: number;
  /** Protocol period and ping timeout of every member. */
  readonly periodMs: number;
  readonly pingTimeoutMs: number;
  /** Indirect probes per failed direct probe (SWIM's k). */
  readonly indirectProbes: number;
  /** Suspicion multiplier α. */
  readonly suspicionMult: number;
  /** Heartbeat comparison only: a member is failed after this long without a heartbeat. */
  readonly heartbeatTimeoutMs: number;
  /** Receives every trace line (verbose runs). */
  readonly sink?: ((line: string) => void) | undefined;
}

/** Sensible defaults for `members` members (the figures of the README and bench). */
export function detectorSimDefaults(members: number): DetectorSimOptions {
  return {
    members,
    seed: 1,
    loss: 0.05,
    delayMinMs: 1,
    delayMaxMs: 20,
    durationMs: 120_000,
    crashes: Math.max(1, Math.round(members / 20)),
    pauses: Math.max(1, Math.round(members / 20)),
    pauseMaxMs: 2 * limits.swimPeriodMsDefault,
    periodMs: limits.swimPeriodMsDefault,
    pingTimeoutMs: limits.swimPingTimeoutMsDefault,
    indirectProbes: limits.swimIndirectProbesDefault,
    suspicionMult: limits.swimSuspicionMultDefault,
    heartbeatTimeoutMs: 3 * limits.swimPeriodMsDefault,
  };
}

/** Percentiles of a sample, in ms and in protocol periods. */
export interface Percentiles {
  readonly count: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly p50Periods: number;
  readonly p99Periods: number;
}

/** A member that some live member still did not declare failed at the end. */
export interface Undetected {
  readonly member: string;
  readonly crashedAtMs: number;
  /** Live members whose view of it is not `failed`. */
  readonly notFailedAt: string[];
}

/** The figures of one run. */
export interface DetectorSimResult {
  readonly protocol: 'swim' | 'heartbeat';
  readonly options: Omit<DetectorSimOptions, 'sink'>;
  /** Suspicion timeout at the start (ms) for this group size. */
  readonly suspicionTimeoutMs: number;
  /** Crash → the first member declares the crashed member failed, one sample per crash. */
  readonly firstDetection: Percentiles;
  /** Crash → each live member declares it failed, one sample per (crash, member). */
  readonly allDetection: Percentiles;
  /** Crashed members not declared failed by every live member by the end. */
  readonly undetected: Undetected[];
  /** `failed` events about members that were not crashed (each observer counts). */
  readonly falsePositiveEvents: number;
  /** Distinct (member, incarnation) pairs wrongly declared failed somewhere. */
  readonly falsePositives: number;
  /** Of those, members that were paused at or shortly before the declaration. */
  readonly falsePositivesPaused: number;
  readonly memberMinutes: number;
  /** falsePositives per 1,000 member-minutes. */
  readonly falsePositivesPer1000MemberMinutes: number;
  /** Messages sent per member per second, averaged over members. */
  readonly messagesPerMemberPerSecond: number;
  /** The busiest member's messages sent plus received per second. */
  readonly maxMessagesPerMemberPerSecond: number;
  /** Encoded bytes sent per member per second. */
  readonly bytesPerMemberPerSecond: number;
  readonly messagesSent: number;
  readonly messagesLost: number;
  readonly refused: number;
  readonly events: number;
  readonly traceHash: string;
}

interface Fault {
  readonly crashAt: Map<number, number>;
  readonly pauses: { member: number; atMs: number; forMs: number }[];
}

function percentiles(samples: number[], periodMs: number): Percentiles {
  const s = samples.slice().sort((a, b) => a - b);
  const at = (q: number): number =>
    s.length === 0 ? NaN : (s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] as number);
  const p50 = at(0.5);
  const p99 = at(0.99);
  return {
    count: s.length,
    p50Ms: p50,
    p99Ms: p99,
    maxMs: s.length === 0 ? NaN : (s[s.length - 1] as number),
    p50Periods: p50 / periodMs,
    p99Periods: p99 / periodMs,
  };
}

function memberName(i: number): string {
  return `m${i + 1}`;
}

function suspicionTimeoutFor(o: DetectorSimOptions): number {
  return Math.ceil(o.suspicionMult * Math.max(1, Math.log10(o.members)) * o.periodMs);
}

/**
 * The fault schedule from the seed: crash times leave room for detection and
 * dissemination before the end; pauses hit members that never crash.
 */
function drawFaults(o: DetectorSimOptions, random: Random): Fault {
  const settle = suspicionTimeoutFor(o) + 20 * o.periodMs;
  const warm = 5 * o.periodMs;
  assert(o.durationMs > warm + settle, `durationMs ${o.durationMs} leaves no time to crash`);
  assert(o.crashes + 2 <= o.members, 'crashes leave at least two live members');
  const order = random.shuffle(Array.from({ length: o.members }, (_, i) => i));
  const crashAt = new Map<number, number>();
  for (let c = 0; c < o.crashes; c++) {
    crashAt.set(order[c] as number, warm + random.int(o.durationMs - warm - settle));
  }
  const pauses: Fault['pauses'] = [];
  const live = order.slice(o.crashes);
  for (let p = 0; p < o.pauses; p++) {
    pauses.push({
      member: random.pick(live),
      atMs: warm + random.int(o.durationMs - warm - o.pauseMaxMs),
      forMs: 1 + random.int(o.pauseMaxMs),
    });
  }
  return { crashAt, pauses };
}

class Tally {
  readonly failedAt = new Map<number, number[]>();
  readonly firstFailed = new Map<number, number>();
  readonly falseKeys = new Set<string>();
  falseEvents = 0;
  falsePaused = 0;
  sent: number[];
  received: number[];
  bytes = 0;
  lost = 0;
  constructor(n: number) {
    this.sent = new Array<number>(n).fill(0);
    this.received = new Array<number>(n).fill(0);
  }
}

function finish(
  protocol: 'swim' | 'heartbeat',
  o: DetectorSimOptions,
  faults: Fault,
  tally: Tally,
  failedView: (observer: number, member: number) => boolean,
  refused: number,
  events: number,
  trace: Trace,
): DetectorSimResult {
  const first: number[] = [];
  const all: number[] = [];
  const undetected: Undetected[] = [];
  for (const [m, at] of faults.crashAt) {
    const f = tally.firstFailed.get(m);
    if (f !== undefined) first.push(f - at);
    all.push(...(tally.failedAt.get(m) ?? []).map((t) => t - at));
    const missing: string[] = [];
    for (let i = 0; i < o.members; i++) {
      if (i === m || faults.crashAt.has(i)) continue;
      if (!failedView(i, m)) missing.push(memberName(i));
    }
    if (missing.length > 0) {
      undetected.push({ member: memberName(m), crashedAtMs: at, notFailedAt: missing });
    }
  }
  const seconds = o.durationMs / 1000;
  let maxRate = 0;
  let totalSent = 0;
  for (let i = 0; i < o.members; i++) {
    totalSent += tally.sent[i] as number;
    if (faults.crashAt.has(i)) continue;
    maxRate = Math.max(
      maxRate,
      ((tally.sent[i] as number) + (tally.received[i] as number)) / seconds,
    );
  }
  const memberMinutes = (o.members * o.durationMs) / 60_000;
  const { sink: _sink, ...options } = o;
  return {
    protocol,
    options,
    suspicionTimeoutMs: suspicionTimeoutFor(o),
    firstDetection: percentiles(first, o.periodMs),
    allDetection: percentiles(all, o.periodMs),
    undetected,
    falsePositiveEvents: tally.falseEvents,
    falsePositives: tally.falseKeys.size,
    falsePositivesPaused: tally.falsePaused,
    memberMinutes,
    falsePositivesPer1000MemberMinutes: (tally.falseKeys.size * 1000) / memberMinutes,
    messagesPerMemberPerSecond: totalSent / o.members / seconds,
    maxMessagesPerMemberPerSecond: maxRate,
    bytesPerMemberPerSecond: tally.bytes / o.members / seconds,
    messagesSent: totalSent,
    messagesLost: tally.lost,
    refused,
    events,
    traceHash: trace.hash(),
  };
}

/** What both simulations start from: the seed's streams (forked in this order), the faults it draws, the clock, the trace, the tally and the members' names. */
function simBase(o: DetectorSimOptions): {
  root: ReturnType<typeof seededRandom>;
  netRandom: ReturnType<typeof seededRandom>;
  faults: ReturnType<typeof drawFaults>;
  sched: Scheduler;
  trace: Trace;
  tally: Tally;
  names: string[];
} {
  const root = seededRandom(o.seed);
  const netRandom = root.fork('net');
  const faults = drawFaults(o, root.fork('faults'));
  return {
    root,
    netRandom,
    faults,
    sched: new Scheduler(),
    trace: new Trace({ sink: o.sink, keepLast: 50 }),
    tally: new Tally(o.members),
    names: Array.from({ length: o.members }, (_, i) => memberName(i)),
  };
}

/** Runs N SWIM members under the options' faults; a pure function of the options. */
export function runDetectorSim(o: DetectorSimOptions): DetectorSimResult {
  assert(o.members >= 3, 'at least three members');
  assert(o.loss >= 0 && o.loss < 1, 'loss in [0, 1)');
  assert(0 <= o.delayMinMs && o.delayMinMs <= o.delayMaxMs, 'delays in order');
  const { root, netRandom, faults, sched, trace, tally, names } = simBase(o);
  const index = new Map(names.map((n, i) => [n, i]));
  const book = names.map((id) => ({ id, address: `${id}:7946` }));
  const cores: SwimCore[] = [];
  const state: ('up' | 'paused' | 'crashed')[] = new Array<'up' | 'paused' | 'crashed'>(
    o.members,
  ).fill('up');
  const pausedUntil = new Array<number>(o.members).fill(0);
  const held: { from: number; bytes: Uint8Array }[][] = names.map(() => []);
  const tickAt = new Array<number>(o.members).fill(Infinity);
  const lastTick = new Array<number>(o.members).fill(-1);
  const handles: (EventHandle | undefined)[] = new Array<EventHandle | undefined>(o.members).fill(
    undefined,
  );
  const phase = root.fork('phase');

  const deliver = (to: number, from: number, bytes: Uint8Array): void => {
    tally.received[to]!++;
    const msg: unknown = unpack(bytes);
    cores[to]!.step(names[from] as string, msg);
    trace.record(sched.now(), 'd', `${names[from]}>${names[to]} ${(msg as { type: string }).type}`);
    flushOut(to);
  };

  const onEvent = (observer: number, e: MemberEvent): void => {
    trace.record(sched.now(), e.type, `${names[observer]} ${e.member}@${e.incarnation}`);
    if (e.type !== 'failed') return;
    const m = index.get(e.member);
    if (m === undefined) return;
    const crashed = faults.crashAt.get(m);
    if (crashed !== undefined && crashed <= sched.now()) {
      const list = tally.failedAt.get(m) ?? [];
      list.push(sched.now());
      tally.failedAt.set(m, list);
      if (!tally.firstFailed.has(m)) tally.firstFailed.set(m, sched.now());
    } else {
      tally.falseEvents++;
      const key = `${e.member}@${e.incarnation}`;
      if (!tally.falseKeys.has(key)) {
        tally.falseKeys.add(key);
        if (state[m] === 'paused' || pausedUntil[m]! + suspicionTimeoutFor(o) >= sched.now()) {
          tally.falsePaused++;
        }
      }
    }
  };

  const flushOut = (i: number): void => {
    const core = cores[i]!;
    const { messages, events } = core.drain();
    for (const e of events) onEvent(i, e);
    for (const out of messages) {
      const to = index.get(out.to);
      if (to === undefined) continue;
      const bytes = pack(out.message);
      tally.sent[i]!++;
      tally.bytes += bytes.length;
      if (netRandom.chance(o.loss)) {
        tally.lost++;
        continue;
      }
      const delay = netRandom.intBetween(o.delayMinMs, o.delayMaxMs);
      sched.after(delay, 'msg', () => {
        if (state[to] === 'crashed') return;
        if (state[to] === 'paused') held[to]!.push({ from: i, bytes });
        else deliver(to, i, bytes);
      });
    }
    schedule(i);
  };

  const schedule = (i: number): void => {
    if (state[i] !== 'up') return;
    // Never twice at one instant: a core whose deadline does not move cannot spin the run.
    const at = Math.max(sched.now(), lastTick[i]! + 1, cores[i]!.nextTickAt());
    if (at === Infinity || at >= tickAt[i]!) return;
    if (handles[i] !== undefined) sched.cancel(handles[i]);
    tickAt[i] = at;
    handles[i] = sched.at(at, 'tick', () => {
      handles[i] = undefined;
      tickAt[i] = Infinity;
      if (state[i] !== 'up') return;
      lastTick[i] = sched.now();
      cores[i]!.tick(sched.now());
      flushOut(i);
    });
  };

  for (let i = 0; i < o.members; i++) {
    const start = phase.int(o.periodMs);
    cores.push(
      new SwimCore({
        self: names[i] as string,
        address: book[i]!.address,
        random: root.fork(`member:${i}`),
        members: book,
        periodMs: o.periodMs,
        pingTimeoutMs: o.pingTimeoutMs,
        indirectProbes: o.indirectProbes,
        suspicionMult: o.suspicionMult,
        startMs: start,
      }),
    );
    cores[i]!.drain(); // the initial 'joined' events: everyone starts knowing everyone
  }
  for (let i = 0; i < o.members; i++) schedule(i);
  for (const [m, at] of faults.crashAt) {
    sched.at(at, 'crash', () => {
      state[m] = 'crashed';
      held[m] = [];
      trace.record(sched.now(), 'crash', names[m]);
    });
  }
  for (const p of faults.pauses) {
    sched.at(p.atMs, 'pause', () => {
      if (state[p.member] !== 'up') return;
      state[p.member] = 'paused';
      trace.record(sched.now(), 'pause', `${names[p.member]} ${p.forMs}`);
      sched.after(p.forMs, 'resume', () => {
        state[p.member] = 'up';
        pausedUntil[p.member] = sched.now();
        tickAt[p.member] = Infinity;
        trace.record(sched.now(), 'resume', names[p.member]);
        const waiting = held[p.member]!;
        held[p.member] = [];
        for (const h of waiting) deliver(p.member, h.from, h.bytes);
        cores[p.member]!.tick(sched.now());
        flushOut(p.member);
      });
    });
  }
  sched.run({ untilMs: o.durationMs });
  const refused = cores.reduce((s, c) => s + c.counters.refused, 0);
  return finish(
    'swim',
    o,
    faults,
    tally,
    (obs, m) => cores[obs]!.member(names[m] as string)?.state === 'failed',
    refused,
    sched.eventsRun,
    trace,
  );
}

/**
 * The comparison detector: every member sends a heartbeat to every other
 * member each period; a member not heard from for `heartbeatTimeoutMs` is
 * failed (Moleculer's heartbeat discovery, all to all). Same faults and
 * network model as {@link runDetectorSim}. To keep n² messages affordable,
 * a heartbeat is not encoded and its arrival is recorded directly (the
 * receiver keeps the latest arrival time; a check looks at arrivals up to its
 * own time), so only the counts and detection rule are simulated.
 */
export function runHeartbeatSim(o: DetectorSimOptions): DetectorSimResult {
  const { root, netRandom, faults, sched, trace, tally, names } = simBase(o);
  const n = o.members;
  // heard[obs * n + m]: latest arrival of m's heartbeat at obs (0: the start counts as heard).
  const heard = new Float64Array(n * n);
  const failed = new Uint8Array(n * n);
  const state: ('up' | 'paused' | 'crashed')[] = new Array<'up' | 'paused' | 'crashed'>(n).fill(
    'up',
  );
  const pausedUntil = new Array<number>(n).fill(0);
  const phase = root.fork('phase');
  const heartbeatBytes = pack({ type: 'heartbeat', node: names[0], seq: 0 }).length;

  const beat = (i: number): void => {
    if (state[i] === 'crashed') return;
    if (state[i] === 'up') {
      const now = sched.now();
      for (let j = 0; j < n; j++) {
        if (j === i) continue;
        tally.sent[i]!++;
        tally.bytes += heartbeatBytes;
        if (netRandom.chance(o.loss)) {
          tally.lost++;
          continue;
        }
        if (state[j] === 'crashed') continue;
        tally.received[j]!++;
        const arrive = now + netRandom.intBetween(o.delayMinMs, o.delayMaxMs);
        const k = j * n + i;
        if (arrive > heard[k]!) heard[k] = arrive;
      }
      // Check everyone this member has not heard from (arrivals up to now count).
      for (let m = 0; m < n; m++) {
        if (m === i) continue;
        const k = i * n + m;
        if (failed[k] === 1) {
          if (heard[k]! > now - o.heartbeatTimeoutMs && heard[k]! <= now) failed[k] = 0; // back
          continue;
        }
        if (now - Math.min(heard[k]!, now) >= o.heartbeatTimeoutMs) {
          failed[k] = 1;
          trace.record(now, 'failed', `${names[i]} ${names[m]}`);
          const crashed = faults.crashAt.get(m);
          if (crashed !== undefined && crashed <= now) {
            const list = tally.failedAt.get(m) ?? [];
            list.push(now);
            tally.failedAt.set(m, list);
            if (!tally.firstFailed.has(m)) tally.firstFailed.set(m, now);
          } else {
            tally.falseEvents++;
            const key = `${names[m]}@${now}`;
            tally.falseKeys.add(key);
            if (pausedUntil[m]! + o.heartbeatTimeoutMs >= now || state[m] === 'paused') {
              tally.falsePaused++;
            }
          }
        }
      }
    }
    sched.after(o.periodMs, 'beat', () => beat(i));
  };
  for (let i = 0; i < n; i++) sched.at(phase.int(o.periodMs), 'beat', () => beat(i));
  for (const [m, at] of faults.crashAt) {
    sched.at(at, 'crash', () => {
      state[m] = 'crashed';
      trace.record(sched.now(), 'crash', names[m]);
    });
  }
  for (const p of faults.pauses) {
    sched.at(p.atMs, 'pause', () => {
      if (state[p.member] !== 'up') return;
      state[p.member] = 'paused';
      sched.after(p.forMs, 'resume', () => {
        state[p.member] = 'up';
        pausedUntil[p.member] = sched.now();
      });
    });
  }
  sched.run({ untilMs: o.durationMs });
  return finish(
    'heartbeat',
    o,
    faults,
    tally,
    (obs, m) => failed[obs * n + m] === 1,
    0,
    sched.eventsRun,
    trace,
  );
}
