/**
 * `cohort example list-max serve` and `cohort example list-max call 3 9 4`.
 *
 * ```sh
 * npx cohort example list-max serve --http 8080      # terminal 1 (binary on 7401, HTTP on 8080)
 * npx cohort example list-max call 3 9 4              # terminal 2 → max 9 at index 1
 * curl -s -XPOST localhost:8080/rpc/ListMax/listMax -d '{"values":[3,9,4]}'
 * ```
 */
import type { Writable } from 'node:stream';
import { HttpGateway, startTcpClient, startTcpServer } from 'cohort/rpc';
import { ListMax, listMaxHandlers } from './service.js';

/** The server's node id. */
export const SERVER_ID = 'list-max-server';

/** Starts the list-max server (and optionally the HTTP gateway). */
export async function serve(
  options: { host: string; port: number; http?: number },
  out: Writable = process.stdout,
): Promise<{ port: number; close(): Promise<void> }> {
  const node = await startTcpServer({ id: SERVER_ID, host: options.host, port: options.port });
  node.serve(ListMax, listMaxHandlers);
  const gw =
    options.http === undefined
      ? undefined
      : await HttpGateway.start(node, { host: options.host, port: options.http });
  out.write(`list-max server on ${node.address.host}:${node.address.port}`);
  out.write(gw === undefined ? '\n' : `, HTTP on ${gw.address.port}\n`);
  return {
    port: node.address.port,
    async close() {
      await gw?.close();
      await node.close();
    },
  };
}

/** Calls listMax once and prints the answer. */
export async function call(
  options: { host: string; port: number; values: number[] },
  out: Writable = process.stdout,
): Promise<{ max: number; index: number }> {
  const node = await startTcpClient({
    server: { id: SERVER_ID, host: options.host, port: options.port },
  });
  try {
    const r = await node.client(ListMax, node.serverId).listMax({ values: options.values });
    out.write(`max ${r.max} at index ${r.index}\n`);
    return r;
  } finally {
    await node.close();
  }
}
