/**
 * Server-side bounds on a 3-node in-process cluster with small knobs: a
 * watcher that does not keep up (its client stops reading) is cut off with
 * OVERLOADED past its backlog's events or bytes, or the node's total, and
 * the client resumes it without gaps or duplicates, or reports COMPACTED
 * when its resume point is gone; the leader compacts history periodically,
 * after which an old start revision gets COMPACTED.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCohortError } from '../../src/lib/errors.js';
import type { CohortError } from '../../src/lib/errors.js';
import { nodeId } from '../../src/lib/ids.js';
import { kvKey, kvText } from '../../src/kv/core/bytes.js';
import { KvService } from '../../src/kv/service.js';
import type { ClientInterceptor } from '../../src/rpc/client.js';
import { startTcpClient } from '../../src/rpc/tcp-endpoints.js';
import { KvTestCluster, until } from './kv-cluster.js';

let cluster: KvTestCluster;
beforeAll(async () => {
  cluster = await KvTestCluster.start(3, {
    kv: {
      watchBufferEventsMax: 8,
      watchBufferBytesMax: 64 * 1024,
      watchNodeBufferBytesMax: 160 * 1024,
      historyRevisionsKept: 100,
      compactCheckMs: 50,
    },
  });
  await cluster.leader();
});
afterAll(async () => {
  await cluster.close();
});

/** A raw Kv stub on the leader whose streams get `credit` items ahead of reading. */
async function rawLeaderStub(credit: number) {
  const leader = await cluster.leader();
  const rpc = await startTcpClient({
    server: { id: leader.config.id, host: leader.config.rpc.host, port: leader.config.rpc.port },
    clusterId: 'cohort-local',
    rpc: { client: { streamCredit: credit } },
  });
  return { leader, rpc, kv: rpc.client(KvService, nodeId(leader.config.id)) };
}

/** Reads a stream to its end: the items' revisions and the error it ended with. */
async function drain(
  it: AsyncIterator<{ revision: number; events: readonly unknown[] }>,
): Promise<{ revs: number[]; err: unknown }> {
  const revs: number[] = [];
  try {
    for (;;) {
      const r = await it.next();
      if (r.done === true) return { revs, err: undefined };
      if (r.value.events.length > 0) revs.push(r.value.revision);
    }
  } catch (e) {
    return { revs, err: e };
  }
}

const value16k = new Uint8Array(16 * 1024);

describe('watch buffers and compaction', () => {
  it('cuts off a stalled watcher whose backlog passes its byte bound, telling it where to resume', async () => {
    const { leader, rpc, kv } = await rawLeaderStub(2);
    try {
      const stream = kv.watch({ key: kvKey('bytes/'), rangeEnd: kvKey('bytes0') });
      const it = stream[Symbol.asyncIterator]();
      expect((await it.next()).value).toMatchObject({ created: true });
      const watching = leader.kv.watchCount;
      // The client stops reading: one item goes out on credit, the rest queue (16 KiB each,
      // far fewer than the 8-event bound) until the 64 KiB bound.
      const first = await kv.put({ key: kvKey('bytes/0'), value: value16k });
      for (let i = 1; i < 8; i++) await kv.put({ key: kvKey(`bytes/${i}`), value: value16k });
      await until(
        () => (leader.kv.watchCount < watching ? true : undefined),
        'the watcher cut off',
      );
      expect(leader.kv.counters.watchersCutOffSlow).toBeGreaterThan(0);
      expect(leader.kv.watchBufferedBytes).toBeLessThanOrEqual(160 * 1024);
      const { revs, err } = await drain(it);
      expect(err).toMatchObject({
        code: 'OVERLOADED',
        definite: true,
        details: { reason: 'watcherTooSlow', bound: 'watcher' },
      });
      // What was sent before the error, then where to resume: right after it.
      expect(revs[0]).toBe(first.revision);
      expect((err as CohortError).details.resumeRevision).toBe(revs[revs.length - 1]! + 1);
    } finally {
      await rpc.close();
    }
  });

  it('keeps the node’s watch backlog under its total bound: the largest backlog is cut off first', async () => {
    const { leader, rpc, kv } = await rawLeaderStub(2);
    try {
      const before = leader.kv.counters.watchersCutOffNodeBudget;
      const its = [];
      for (let i = 0; i < 4; i++) {
        const it = kv
          .watch({ key: kvKey('node/'), rangeEnd: kvKey('node0') })
          [Symbol.asyncIterator]();
        expect((await it.next()).value).toMatchObject({ created: true });
        its.push(it);
      }
      const watching = leader.kv.watchCount;
      // Four stalled watchers (two items out on credit each), three queued events each:
      // ~200 KiB > 160 KiB together, each far under its own 64 KiB.
      for (let i = 0; i < 5; i++) await kv.put({ key: kvKey(`node/${i}`), value: value16k });
      await until(() => (leader.kv.counters.watchersCutOffNodeBudget > before ? true : undefined));
      expect(leader.kv.watchBufferedBytes).toBeLessThanOrEqual(160 * 1024);
      // One cut was enough: the other three keep their backlogs.
      expect(leader.kv.counters.watchersCutOffNodeBudget).toBe(before + 1);
      expect(leader.kv.watchCount).toBe(watching - 1);
    } finally {
      await rpc.close();
    }
  });

  it('a KvClient watch whose consumer stalls is cut off and resumes: every event once, in order, the node’s backlog bounded', async () => {
    const leader = await cluster.leader();
    const before = leader.kv.counters.watchersCutOffSlow;
    const kv = await cluster.client({ rpc: { client: { streamCredit: 2 } } });
    const start = await kv.put('stall/0', value16k);
    const seen: number[] = [];
    let finishWrites: () => void = () => undefined;
    const writesDone = new Promise<void>((r) => (finishWrites = r));
    const total = 30;
    const reading = (async () => {
      for await (const batch of kv.watch('stall/', {
        prefix: true,
        startRevision: start.revision,
        prevKv: true,
      })) {
        if (seen.length === 0) await writesDone; // stops reading until the writes are done
        for (const ev of batch.events) seen.push(Number(kvText(ev.kv.key).slice(6)));
        if (seen.length >= total) return;
      }
    })();
    let most = 0;
    for (let i = 1; i < total; i++) {
      await kv.put(`stall/${i}`, value16k);
      most = Math.max(most, leader.kv.watchBufferedBytes);
    }
    expect(most).toBeLessThanOrEqual(160 * 1024);
    expect(leader.kv.counters.watchersCutOffSlow).toBeGreaterThan(before);
    finishWrites();
    await reading;
    expect(seen).toEqual(Array.from({ length: total }, (_, i) => i));
  });

  it('a stalled KvClient watch whose resume point was compacted meanwhile ends with COMPACTED saying where', async () => {
    const kv = await cluster.client({ rpc: { client: { streamCredit: 2 } } });
    const start = await kv.put('gone/0', '0');
    let finishWrites: () => void = () => undefined;
    const writesDone = new Promise<void>((r) => (finishWrites = r));
    const reading = (async () => {
      for await (const batch of kv.watch('gone/', {
        prefix: true,
        startRevision: start.revision,
      })) {
        if (batch.events.length > 0) await writesDone;
      }
    })().then(
      () => undefined,
      (e: unknown) => e,
    );
    for (let i = 1; i < 250; i += 25) {
      await Promise.all(Array.from({ length: 25 }, (_, j) => kv.put(`gone/${i + j}`, 'x')));
    }
    const leader = await cluster.leader();
    await until(() =>
      leader.raft.stateMachine.kv.compactedRevision > start.revision + 20 ? true : undefined,
    );
    finishWrites();
    const err = await reading;
    expect(err).toMatchObject({
      code: 'COMPACTED',
      details: { reason: 'watchResumeCompacted' },
    });
    const details = (err as CohortError).details;
    expect(details.resumeRevision as number).toBeLessThanOrEqual(
      details.compactedRevision as number,
    );
  });

  it('cuts off a watcher that falls behind (OVERLOADED) and keeps serving others', async () => {
    const leader = await cluster.leader();
    const rpc = await startTcpClient({
      server: { id: leader.config.id, host: leader.config.rpc.host, port: leader.config.rpc.port },
      clusterId: 'cohort-local',
      rpc: { client: { streamCredit: 2 } },
    });
    try {
      const kv = rpc.client(KvService, nodeId(leader.config.id));
      const stream = kv.watch({ key: kvKey('slow/'), rangeEnd: kvKey('slow0') });
      const it = stream[Symbol.asyncIterator]();
      expect((await it.next()).value).toMatchObject({ created: true });
      // Not reading: the server's credit runs out, then its buffer.
      for (let i = 0; i < 30; i++) await kv.put({ key: kvKey(`slow/${i}`), value: kvKey('x') });
      await until(() => (leader.kv.watchCount === 0 ? true : undefined), 'the watcher cut off');
      let err: unknown;
      try {
        for (;;) {
          const r = await it.next();
          if (r.done === true) break;
        }
      } catch (e) {
        err = e;
      }
      expect(isCohortError(err) && err.code).toBe('OVERLOADED');
      expect((await kv.range({ key: kvKey('slow/0') })).count).toBe(1);
    } finally {
      await rpc.close();
    }
  });

  it('the client resumes a cut-off watch from its last revision: every event once, in order', async () => {
    let watches = 0;
    const count: ClientInterceptor = (call, next) => {
      if (call.method === 'watch') watches++;
      return next(call);
    };
    const kv = await cluster.client({
      rpc: { client: { streamCredit: 2, interceptors: [count] } },
    });
    const total = 60;
    const seen: number[] = [];
    let finishWrites: () => void = () => undefined;
    const writesDone = new Promise<void>((r) => (finishWrites = r));
    const start = await kv.put('resume/0', '0');
    const reading = (async () => {
      for await (const batch of kv.watch('resume/', {
        prefix: true,
        startRevision: start.revision,
      })) {
        // A consumer that stalls until every write is done.
        if (seen.length === 0) await writesDone;
        for (const ev of batch.events) seen.push(Number(kvText(ev.kv.value)));
        if (seen.length >= total) return;
      }
    })();
    for (let i = 1; i < total; i++) await kv.put(`resume/${i}`, String(i));
    finishWrites();
    await reading;
    expect(seen).toEqual(Array.from({ length: total }, (_, i) => i));
    expect(watches).toBeGreaterThan(1); // it was cut off and resumed
  });

  it('the leader compacts old history; a watch from before it gets COMPACTED', async () => {
    const kv = await cluster.client();
    const first = await kv.put('hist/0', '0');
    for (let i = 1; i < 200; i += 20) {
      await Promise.all(Array.from({ length: 20 }, (_, j) => kv.put(`hist/${i + j}`, 'x')));
    }
    await kv.put('hist/x', '59');
    await until(() =>
      [...cluster.nodes.values()].every(
        (n) => n.raft.stateMachine.kv.compactedRevision > first.revision,
      )
        ? true
        : undefined,
    );
    const watch = kv.watch('hist/', { prefix: true, startRevision: first.revision });
    await expect(watch.next()).rejects.toMatchObject({ code: 'COMPACTED' });
    await expect(kv.get('hist/0', { revision: first.revision })).rejects.toMatchObject({
      code: 'COMPACTED',
    });
    expect(kvText((await kv.get('hist/x'))?.value ?? kvKey(''))).toBe('59');
  });
});
