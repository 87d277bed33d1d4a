/**
 * The resolver's recovery paths, over a scripted KV client: a watch whose
 * resume point was compacted makes it list again; a cluster that cannot be
 * reached keeps the last known instances until it answers again.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { KvClient, WatchBatch } from '../../src/kv/client.js';
import { kvKey } from '../../src/kv/core/bytes.js';
import { CohortError } from '../../src/lib/errors.js';
import { encodeInstance, serviceKey } from '../../src/naming/core/registry.js';
import type { ServiceInstance } from '../../src/naming/core/registry.js';
import { ServiceResolver } from '../../src/naming/resolver.js';
import { waitUntil } from '../harness/wait.js';

const silent = pino({ level: 'silent' });

const inst = (id: string, port: number): ServiceInstance => ({
  service: 'S',
  id,
  node: 'n',
  address: { host: '127.0.0.1', port },
  metadata: {},
  weight: 1,
});

const pair = (i: ServiceInstance) => ({
  key: kvKey(serviceKey('S', i.id)),
  value: kvKey(encodeInstance(i)),
  keyText: serviceKey('S', i.id),
  text: encodeInstance(i),
});

/** A KV client whose listings and watches follow a script. */
function scripted(steps: {
  listings: (() => { kvs: ServiceInstance[]; revision: number } | CohortError)[];
  watches: ((signal: AbortSignal) => AsyncGenerator<WatchBatch>)[];
}): { kv: KvClient; ranges: number[]; watchStarts: number[] } {
  const ranges: number[] = [];
  const watchStarts: number[] = [];
  let l = 0;
  let w = 0;
  const kv = {
    range: (_key: string, o: { revision?: number }) => {
      const step = steps.listings[Math.min(l++, steps.listings.length - 1)];
      const r = step?.();
      ranges.push(o.revision ?? 0);
      if (r === undefined || r instanceof CohortError) {
        return Promise.reject(r ?? new CohortError('UNAVAILABLE', 'no script'));
      }
      return Promise.resolve({
        type: 'range',
        revision: r.revision,
        kvs: r.kvs.map(pair),
        count: r.kvs.length,
        more: false,
      });
    },
    watch: (_key: string, o: { startRevision: number; signal: AbortSignal }) => {
      watchStarts.push(o.startRevision);
      const make = steps.watches[Math.min(w++, steps.watches.length - 1)];
      if (make === undefined) throw new Error('no watch script');
      return make(o.signal);
    },
  };
  return { kv: kv as unknown as KvClient, ranges, watchStarts };
}

async function* failing(err: CohortError): AsyncGenerator<WatchBatch> {
  await Promise.resolve();
  yield* [];
  throw err;
}

async function* hang(signal: AbortSignal): AsyncGenerator<WatchBatch> {
  await new Promise<void>((r) => signal.addEventListener('abort', () => r()));
  yield* [];
}

describe('the resolver', () => {
  it('lists again when its watch cannot resume (compacted), and follows the new listing', async () => {
    const { kv, watchStarts } = scripted({
      listings: [
        () => ({ kvs: [inst('a', 1)], revision: 10 }),
        () => ({ kvs: [inst('b', 2)], revision: 50 }),
      ],
      watches: [
        () =>
          failing(
            new CohortError('COMPACTED', 'resume point compacted', {
              details: { reason: 'watchResumeCompacted' },
            }),
          ),
        (signal) => hang(signal),
      ],
    });
    const r = new ServiceResolver(kv, 'S', { logger: silent });
    expect((await r.ready()).map((i) => i.id)).toEqual(['a']);
    await waitUntil('listed again', () => r.instances()[0]?.id === 'b');
    expect(watchStarts).toEqual([11, 51]);
    expect(r.counters.listings).toBe(2);
    await r.close();
  });

  it('keeps the last known instances while the cluster cannot be reached, then catches up', async () => {
    let reachable = true;
    const { kv } = scripted({
      listings: [
        () => ({ kvs: [inst('a', 1)], revision: 5 }),
        () =>
          reachable
            ? { kvs: [inst('a', 1), inst('c', 3)], revision: 9 }
            : new CohortError('UNAVAILABLE', 'no node answered'),
      ],
      watches: [
        () => failing(new CohortError('UNAVAILABLE', 'the watch lost the cluster')),
        (signal) => hang(signal),
      ],
    });
    reachable = false;
    const r = new ServiceResolver(kv, 'S', { logger: silent });
    await r.ready();
    await waitUntil('a few failed listings', () => r.counters.watchRestarts >= 3);
    expect(r.instances().map((i) => i.id)).toEqual(['a']);
    reachable = true;
    await waitUntil('caught up', () => r.instances().length === 2);
    await r.close();
  });
});
