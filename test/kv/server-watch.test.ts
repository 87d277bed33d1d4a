/**
 * Server-side bounds on a 3-node in-process cluster with small knobs: a
 * watcher that does not keep up is cut off with OVERLOADED and the client
 * resumes it without gaps or duplicates; the leader compacts history
 * periodically, after which an old start revision gets COMPACTED.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCohortError } from '../../src/lib/errors.js';
import { nodeId } from '../../src/lib/ids.js';
import { kvKey, kvText } from '../../src/kv/core/bytes.js';
import { KvService } from '../../src/kv/service.js';
import type { ClientInterceptor } from '../../src/rpc/client.js';
import { startTcpClient } from '../../src/rpc/tcp-endpoints.js';
import { KvTestCluster, until } from './kv-cluster.js';

let cluster: KvTestCluster;
beforeAll(async () => {
  cluster = await KvTestCluster.start(3, {
    kv: { watchBufferEventsMax: 8, historyRevisionsKept: 100, compactCheckMs: 50 },
  });
  await cluster.leader();
});
afterAll(async () => {
  await cluster.close();
});

describe('watch buffers and compaction', () => {
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
