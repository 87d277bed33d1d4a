/**
 * cohort's side of bench/kv.ts: a {@link KvDriver} over cohort's KvClient,
 * and the write probe of the failover measurement.
 *
 * ```ts
 * const driver = await cohortDriver(cluster.endpoints(), 'cohort-local');
 * await driver.put('k/1', value);
 * ```
 */
import type { KvDriver } from './kv.js';

/** A driver for the load child: one KvClient, leader endpoint first. */
export function cohortDriver(endpoints: unknown, clusterId: string): Promise<KvDriver> {
  return Promise.reject(
    new Error(
      `cohort's KvClient is not in the tree yet (${JSON.stringify(endpoints)}, ${clusterId})`,
    ),
  );
}

/** A client for the failover probe: puts 256-byte values. */
export function cohortFailoverProbe(
  endpoints: unknown,
  clusterId: string,
): Promise<{ put(key: string): Promise<void>; close(): Promise<void> }> {
  return cohortDriver(endpoints, clusterId).then((d) => ({
    put: (key) => d.put(key, new Uint8Array(256)),
    close: () => d.close(),
  }));
}
