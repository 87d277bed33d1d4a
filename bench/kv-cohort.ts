/**
 * cohort's side of bench/kv.ts: a {@link KvDriver} over cohort's
 * {@link KvClient} (leader redirects, retries, exactly-once session lanes),
 * and the client of the failover probe.
 *
 * ```ts
 * const driver = await cohortDriver(cluster.endpoints(), 'cohort-local');
 * await driver.put('k/1', value);
 * ```
 */
import { KvClient } from '../src/kv/client.js';
import type { KvEndpoint } from '../src/kv/client.js';
import type { ClientTlsOptions } from '../src/trust/client-tls.js';
import type { KvDriver } from './kv.js';

/** A driver for a load child: one KvClient (endpoints: the leader's first). */
export async function cohortDriver(
  endpoints: unknown,
  clusterId: string,
  tls?: ClientTlsOptions,
): Promise<KvDriver> {
  const kv = await KvClient.connect({
    endpoints: endpoints as KvEndpoint[],
    clusterId,
    ...(tls === undefined ? {} : { tls }),
  });
  return {
    put: async (key, value) => {
      await kv.put(key, value);
    },
    get: async (key) => (await kv.get(key))?.value ?? null,
    close: () => kv.close(),
  };
}

/** The failover probe's client: puts 256-byte values, any endpoint. */
export async function cohortFailoverProbe(
  endpoints: readonly KvEndpoint[],
  clusterId: string,
  tls?: ClientTlsOptions,
): Promise<{ put(key: string): Promise<void>; close(): Promise<void> }> {
  const d = await cohortDriver(endpoints, clusterId, tls);
  const value = new Uint8Array(256).fill(7);
  return { put: (key) => d.put(key, value), close: () => d.close() };
}
