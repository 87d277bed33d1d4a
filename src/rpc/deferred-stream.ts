/**
 * A server stream whose call starts later (after the client interceptors
 * have run, or once a name-based client has chosen an instance): iterating
 * waits for the call to start; cancelling before it started cancels it as
 * soon as it does.
 *
 * ```ts
 * const stream = new DeferredStream(startCall());   // startCall(): Promise<ServerStream<T>>
 * for await (const item of stream) { ... }
 * ```
 */
import type { ServerStream } from './service.js';

/** See the file comment. */
export class DeferredStream implements ServerStream<unknown> {
  private inner: ServerStream<unknown> | undefined;
  private cancelled = false;

  constructor(private readonly started: Promise<ServerStream<unknown>>) {
    started.then(
      (s) => {
        this.inner = s;
        if (this.cancelled) s.cancel();
      },
      () => undefined, // surfaces on iteration
    );
  }

  cancel(): void {
    this.cancelled = true;
    this.inner?.cancel();
  }

  [Symbol.asyncIterator](): AsyncIterator<unknown> {
    let it: AsyncIterator<unknown> | undefined;
    return {
      next: async () => {
        it ??= (await this.started)[Symbol.asyncIterator]();
        return it.next();
      },
      return: () => {
        this.cancel();
        return Promise.resolve({ done: true, value: undefined });
      },
    };
  }
}
