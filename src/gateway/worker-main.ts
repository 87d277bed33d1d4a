/**
 * The entry of a gateway worker process ({@link HttpWorkers} forks it with
 * node:cluster): waits for its settings from the primary, runs one
 * {@link HttpProxy} on the shared port, follows the backend lists the
 * primary sends, answers snapshot requests, and closes when told to or
 * when the primary goes away. Not meant to be run by hand.
 */
import net from 'node:net';
import process from 'node:process';
import { pino } from 'pino';
import { StaticBackendSource } from './backend-source.js';
import { HttpProxy } from './http-proxy.js';
import type { FromWorker, ToWorker } from './workers.js';

function send(m: FromWorker, then?: () => void): void {
  if (process.connected && process.send !== undefined)
    process.send(m, undefined, {}, () => then?.());
  else then?.();
}

function runWorker(): void {
  let proxy: HttpProxy | undefined;
  let source: StaticBackendSource | undefined;
  let closing = false;
  const close = (code: number): void => {
    if (closing) return;
    closing = true;
    const done = (): void => process.exit(code);
    if (proxy === undefined) done();
    else proxy.close().then(done, done);
  };
  // The primary decides when workers stop; signals to the whole group are its business.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => {});
  process.on('disconnect', () => close(0));
  process.on('message', (m: ToWorker, handle: unknown) => {
    switch (m.t) {
      case 'conn':
        // A client connection the primary accepted (workers.ts).
        if (handle instanceof net.Socket) {
          if (proxy !== undefined && !closing) proxy.adopt(handle);
          else handle.destroy();
        }
        return;
      case 'start': {
        if (source !== undefined) return;
        source = new StaticBackendSource(m.backends);
        const logger = pino({ level: m.logLevel }, pino.destination(2)).child({
          worker: m.index,
        });
        HttpProxy.start({ ...m.settings, source, logger }).then(
          (p) => {
            proxy = p;
            if (closing) {
              void p.close();
              return;
            }
            send({ t: 'ready' });
          },
          (err: unknown) => {
            send({ t: 'failed', message: err instanceof Error ? err.message : String(err) }, () =>
              close(1),
            );
          },
        );
        return;
      }
      case 'backends':
        source?.set(m.backends);
        return;
      case 'snapshot':
        if (proxy !== undefined) send({ t: 'snapshot', id: m.id, snapshot: proxy.snapshot() });
        return;
      case 'close':
        close(0);
        return;
    }
  });
}

runWorker();
send({ t: 'hello' });
