/**
 * `cohort example list-max serve` and `cohort example list-max call 3 9 4`;
 * with a cluster, by name: instances register as `ListMax` and callers find
 * them through the registry.
 *
 * ```sh
 * npx cohort example list-max serve --http 8080      # terminal 1 (binary on 7401, HTTP on 8080)
 * npx cohort example list-max call 3 9 4              # terminal 2 → max 9 at index 1
 * curl -s -XPOST localhost:8080/rpc/ListMax/listMax -d '{"values":[3,9,4]}'
 * # by name (a cluster from `cohort up`):
 * npx cohort example list-max serve --register --id lm-1 --port 0
 * npx cohort example list-max serve --register --id lm-2 --port 0
 * npx cohort example list-max call 3 9 4 --by-name --repeat 100 --interval-ms 100
 * ```
 */
import type { Writable } from 'node:stream';
import type { KvClientOptions } from 'cohort/kv';
import { Naming } from 'cohort/naming';
import { HttpGateway, startTcpClient, startTcpServer } from 'cohort/rpc';
import { ListMax, listMaxHandlers } from './service.js';

/** The server's node id (when it is not registered under its own). */
export const SERVER_ID = 'list-max-server';

/** The reply metadata naming the instance that answered (callers by name print it). */
export const INSTANCE_META = 'instance';

/** Options of {@link serve}. */
export interface ServeOptions {
  readonly host: string;
  readonly port: number;
  readonly http?: number;
  /** This instance's id (default list-max-server): its RPC node id and its name in the registry. */
  readonly id?: string;
  /** Register as `ListMax` in this cluster's registry (KvClient options), under a lease. */
  readonly register?: KvClientOptions;
  /** The registration lease's TTL in ms (default: the registry's, 5 s). */
  readonly ttlMs?: number;
}

/** Starts the list-max server (and optionally the HTTP gateway, and its registration). */
export async function serve(
  options: ServeOptions,
  out: Writable = process.stdout,
): Promise<{ port: number; close(): Promise<void> }> {
  const id = options.id ?? SERVER_ID;
  const node = await startTcpServer({ id, host: options.host, port: options.port });
  node.serve(ListMax, {
    listMax: (req, ctx) => {
      ctx.setReplyMeta(INSTANCE_META, id);
      return listMaxHandlers.listMax(req, ctx);
    },
  });
  const gw =
    options.http === undefined
      ? undefined
      : await HttpGateway.start(node, { host: options.host, port: options.http });
  let naming: Naming | undefined;
  try {
    if (options.register !== undefined) {
      naming = await Naming.connect(options.register);
      await naming.register(
        { service: ListMax.name, id, address: node.address },
        options.ttlMs === undefined ? {} : { ttlMs: options.ttlMs },
      );
    }
  } catch (e) {
    await naming?.close();
    await gw?.close();
    await node.close();
    throw e;
  }
  out.write(`list-max server on ${node.address.host}:${node.address.port}`);
  out.write(id === SERVER_ID ? '' : ` as ${id}`);
  out.write(gw === undefined ? '' : `, HTTP on ${gw.address.port}`);
  out.write(naming === undefined ? '\n' : `, registered as ${ListMax.name}/${id}\n`);
  return {
    port: node.address.port,
    async close() {
      await naming?.close(); // deregisters first: callers stop picking it
      await gw?.close();
      await node.close();
    },
  };
}

/** Options of {@link call}. */
export interface CallOptions {
  readonly host: string;
  readonly port: number;
  readonly values: number[];
  /** Find the instances by name in this cluster's registry instead of `host:port`. */
  readonly byName?: KvClientOptions;
  /** Calls to make (default 1). */
  readonly repeat?: number;
  /** Pause between calls, in ms (default 0). */
  readonly intervalMs?: number;
  readonly signal?: AbortSignal;
}

/** Calls listMax (`repeat` times) and prints each answer; throws on the first failed call. */
export async function call(
  options: CallOptions,
  out: Writable = process.stdout,
): Promise<{ max: number; index: number }> {
  const repeat = options.repeat ?? 1;
  const pause = (): Promise<void> => new Promise((r) => setTimeout(r, options.intervalMs ?? 0));
  if (options.byName !== undefined) {
    const naming = await Naming.connect(options.byName);
    try {
      const listMax = naming.service(ListMax);
      let r = { max: 0, index: 0 };
      for (let k = 0; k < repeat && options.signal?.aborted !== true; k++) {
        let by = '?';
        r = await listMax.listMax(
          { values: options.values },
          { onReplyMeta: (m) => (by = m[INSTANCE_META] ?? '?') },
        );
        out.write(`max ${r.max} at index ${r.index} (from ${by})\n`);
        if (k + 1 < repeat) await pause();
      }
      return r;
    } finally {
      await naming.close();
    }
  }
  const node = await startTcpClient({
    server: { id: SERVER_ID, host: options.host, port: options.port },
  });
  try {
    let r = { max: 0, index: 0 };
    for (let k = 0; k < repeat && options.signal?.aborted !== true; k++) {
      r = await node.client(ListMax, node.serverId).listMax({ values: options.values });
      out.write(`max ${r.max} at index ${r.index}\n`);
      if (k + 1 < repeat) await pause();
    }
    return r;
  } finally {
    await node.close();
  }
}
