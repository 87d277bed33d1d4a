/**
 * Keep-alive connections to one HTTP/1.1 backend for the gateway's proxy:
 * raw node:net sockets, one request at a time on each (no pipelining), a
 * strict llhttp parser per connection for the responses (http1.ts), idle
 * connections reused last-in first-out, at most `max` open with a queue
 * beyond. A try is a {@link TryHandler}: the pool hands it a connection
 * (`onSend`: from then on the request may have reached the backend), and
 * reports the response head, body chunks and end, or a {@link TryError}
 * saying whether anything was sent.
 *
 * ```ts
 * const pool = new UpstreamPool({ host: '127.0.0.1', port: 8081, max: 512, connectTimeoutMs: 3000 });
 * pool.dispatch(handler);       // handler.onSend(conn) writes the request with conn.socket
 * pool.sweep(performance.now()); // timeouts and idle expiry, called by the proxy's timer
 * pool.close();
 * ```
 *
 * Per response the parser calls JavaScript for the head and the end only
 * when its body came whole in the read holding its head (the usual small
 * response): that body is handed over as a view of the shared read buffer
 * ({@link inlineBodyBytesMax}), not copied into a Buffer of its own by a
 * body callback; bytes after a response are found from the parser's state
 * after the read rather than by a callback per message.
 *
 * Timeouts are deadlines checked by {@link UpstreamPool.sweep} (one timer
 * per proxy, not one per request): a connect, a try waiting in the queue,
 * the wait for a response head, and the silence between body chunks. A
 * connection is reused only after a complete response that allowed it and
 * with no byte after that response; it is closed before the idle time the
 * backend announced (`Keep-Alive: timeout=`) runs out.
 */
import net from 'node:net';
import {
  headerValue,
  isParseError,
  kOnBody,
  kOnHeaders,
  kOnHeadersComplete,
  kOnMessageComplete,
  keepAliveHintMs,
  newParser,
  joinHead,
} from './http1.js';
import type { Parser } from './http1.js';

/** A failed try: `sent` when the request may have reached the backend. */
export class TryError extends Error {
  constructor(
    message: string,
    readonly sent: boolean,
    readonly timeout: boolean,
  ) {
    super(message);
  }
}

/** One request through the pool (see the file comment). */
export interface TryHandler {
  /** A connection is the try's: write the request with `conn.socket` now. */
  onSend(conn: UpstreamConn): void;
  /** The final response head (1xx ones are skipped); `contentLength` is its Content-Length header. */
  onHead(
    status: number,
    reason: string,
    headers: string[],
    contentLength: string | undefined,
  ): void;
  /**
   * A piece of the response body. One of at most {@link inlineBodyBytesMax}
   * bytes may be a view of the pool's shared read buffer ({@link isBorrowed}),
   * valid only during the call: a handler that keeps it copies it.
   */
  onBody(chunk: Buffer): void;
  onComplete(): void;
  /** The try failed; the connection is no longer the handler's. */
  onFailure(err: TryError): void;
  /** The upstream socket drained (request body backpressure). */
  onDrain(): void;
  /** A backend's read was parsed: write what it produced (a head and its body leave in one write). */
  flush(): void;
  /** Whether the response has no body whatever its head says (a HEAD request). */
  readonly skipBody: boolean;
  /** Time allowed for the response head once sent, and in the queue. */
  readonly headTimeoutMs: number;
  /** Time allowed between body chunks. */
  readonly bodyIdleMs: number;
}

/** Settings of an {@link UpstreamPool}. */
export interface UpstreamPoolOptions {
  readonly host: string;
  readonly port: number;
  /** Open connections at most. */
  readonly max: number;
  readonly connectTimeoutMs: number;
  /** Idle time after which a kept-alive connection is closed, when the backend announced none. */
  readonly idleMs: number;
  /** Largest response head. */
  readonly headBytesMax: number;
}

/**
 * The one read buffer of every backend connection (node:net's `onread`: no
 * Buffer and no stream event per read). A read is parsed before the next
 * one lands here, and llhttp copies what it keeps (body chunks, partial
 * heads) out of it.
 */
const readBuffer = Buffer.allocUnsafe(64 * 1024);
/** The view of `readBuffer` the last read was parsed from (reads of one size reuse it). */
let readView = readBuffer.subarray(0, 0);

/**
 * A response body up to this size that came whole in the read holding its
 * head is handed over as a view of the read buffer, with no copy and no
 * parser callback (the parser still checks its framing).
 */
export const inlineBodyBytesMax = 16 * 1024;

/** Whether `chunk` is a view of the shared read buffer (see {@link TryHandler.onBody}). */
export function isBorrowed(chunk: Buffer): boolean {
  return chunk.buffer === readBuffer.buffer;
}

const CR = 13;
const LF = 10;
const headEnd = Buffer.from('\r\n\r\n', 'latin1');

/** Closed this long before the backend's announced idle timeout, so a request never races its close. */
const keepAliveMarginMs = 1_000;

/** Where a connection is in its life. */
export type ConnState = 'connecting' | 'idle' | 'busy' | 'closed';

/** One connection to the backend. */
export class UpstreamConn {
  readonly socket: net.Socket;
  private readonly parser: Parser;
  /** The try this connection serves. */
  private handler: TryHandler | undefined;
  state: ConnState = 'connecting';
  /** When the current wait (connect, head, body, idle) ends, performance.now() ms. */
  private deadline: number;
  private gotHead = false;
  private keepAlive = true;
  private done = false;
  /** Bytes came after the response's end: the connection is not reused. */
  private dirty = false;
  private idleMs: number;
  private headers: string[] = [];
  private reading = true;
  private hinted = false;
  /** Bytes of the read being parsed. */
  private readLength = 0;
  /** When it came (performance.now() ms): the clock of the deadlines its callbacks set. */
  private readAt = 0;
  /** The read being parsed is the try's first: its response starts at its first byte. */
  private firstRead = false;
  /** A 1xx response came before the final one in this try. */
  private informational = false;
  /** Where the body handed over whole from the read buffer starts, or -1 (see {@link inlineBodyBytesMax}). */
  private inlineAt = -1;
  private inlineLength = 0;
  private readonly onBodyChunk: (b: Buffer) => void;

  constructor(
    private readonly pool: UpstreamPool,
    now: number,
  ) {
    const o = pool.options;
    this.idleMs = o.idleMs;
    this.deadline = now + o.connectTimeoutMs;
    this.socket = net.connect({
      host: o.host,
      port: o.port,
      noDelay: true,
      onread: {
        buffer: readBuffer,
        callback: (n: number): boolean => {
          this.onRead(n);
          return true;
        },
      },
    });
    const p = (this.parser = newParser('response', o.headBytesMax));
    p[kOnHeaders] = (h: string[]) => {
      if (!this.gotHead) for (const x of h) this.headers.push(x);
    };
    p[kOnHeadersComplete] = (
      _maj: number,
      _min: number,
      headers: string[] | undefined,
      _m: unknown,
      _u: unknown,
      status: number,
      reason: string,
      upgrade: boolean,
      keepAlive: boolean,
    ): number => this.onHeadersComplete(headers, status, reason, upgrade, keepAlive);
    p[kOnBody] = this.onBodyChunk = (b: Buffer) => {
      if (this.done || this.handler === undefined) return;
      this.deadline = this.readAt + this.handler.bodyIdleMs;
      this.handler.onBody(b);
    };
    p[kOnMessageComplete] = () => this.onMessageComplete();
    const s = this.socket;
    s.once('connect', () => {
      if (this.state !== 'connecting') return;
      this.pool.connected(this);
    });
    s.on('end', () => this.onEnd());
    s.on('error', (err) => this.fail(err.message, false));
    s.on('close', () => {
      this.fail('the backend closed the connection', false);
      this.parser.close();
    });
    s.on('drain', () => this.handler?.onDrain());
  }

  /** Starts try `h` on this (connected, idle) connection. */
  assign(h: TryHandler, now: number): void {
    this.state = 'busy';
    this.handler = h;
    this.gotHead = false;
    this.done = false;
    this.firstRead = true;
    this.informational = false;
    if (this.headers.length > 0) this.headers = [];
    this.deadline = now + h.headTimeoutMs;
    h.onSend(this);
  }

  /** Gives the connection up: the handler hears nothing more, the socket closes. */
  abort(): void {
    this.handler = undefined;
    this.destroy();
  }

  /** Stops reading the response (the client is slow); its body timeout stops too. */
  pause(): void {
    if (!this.reading) return;
    this.reading = false;
    this.socket.pause();
  }

  resume(): void {
    if (this.reading) return;
    this.reading = true;
    this.deadline = performance.now() + (this.handler?.bodyIdleMs ?? 0);
    this.socket.resume();
  }

  /** Fails the try or closes an idle connection whose time ran out. */
  sweep(now: number): void {
    if (now < this.deadline || !this.reading) return;
    if (this.state === 'idle') {
      this.destroy();
      return;
    }
    const what =
      this.state === 'connecting'
        ? 'connecting to the backend timed out'
        : this.gotHead
          ? 'the backend stopped sending the response body'
          : 'the backend did not answer in time';
    this.fail(what, true);
  }

  /** Closes the connection; a try on it fails. */
  destroy(): void {
    if (this.state === 'closed') return;
    this.fail('connection closed by the gateway', false);
  }

  private onRead(n: number): void {
    const h = this.handler;
    if (h === undefined || this.state !== 'busy') {
      // Bytes while idle: not a response to anything.
      this.destroy();
      return;
    }
    if (readView.length !== n) readView = readBuffer.subarray(0, n);
    this.readLength = n;
    const now = (this.readAt = performance.now());
    const r = this.parser.execute(readView);
    this.firstRead = false;
    const at = this.inlineAt;
    if (at >= 0) {
      this.inlineAt = -1;
      this.parser[kOnBody] = this.onBodyChunk;
    }
    // The try was given up or failed while its response was parsed: nothing more for it.
    if (this.handler !== h) return;
    if (this.done) {
      if (at >= 0) h.onBody(readBuffer.subarray(at, at + this.inlineLength));
      // Anything after the response's end is not reused as the next one's start: an
      // error, or a next message begun (its head unfinished, or seen by onHeadersComplete).
      if (isParseError(r) || !this.parser.headersCompleted()) this.dirty = true;
      this.finishTry(h, now);
    } else if (isParseError(r)) {
      this.fail(`the backend sent a malformed response (${r.code})`, false);
    } else h.flush();
  }

  private onHeadersComplete(
    headers: string[] | undefined,
    status: number,
    reason: string,
    upgrade: boolean,
    keepAlive: boolean,
  ): number {
    const h = this.handler;
    if (this.done || h === undefined) {
      this.dirty = true; // a message after the response's end
      return 1;
    }
    const raw = joinHead(this.headers, headers);
    if (raw !== headers) this.headers = [];
    if (status < 200) {
      if (status === 101 || upgrade) {
        this.fail('the backend switched protocols', false);
        return 1;
      }
      this.informational = true;
      return 0; // 1xx: the final response follows
    }
    this.gotHead = true;
    this.keepAlive = keepAlive && !upgrade;
    if (!this.hinted) {
      // Read once per connection: a backend announces the same each time.
      this.hinted = true;
      const hint = keepAliveHintMs(raw);
      if (hint !== undefined) {
        this.idleMs = Math.min(this.pool.options.idleMs, Math.max(0, hint - keepAliveMarginMs));
      }
    }
    this.deadline = this.readAt + h.bodyIdleMs;
    const cl = headerValue(raw, 'content-length');
    if (this.firstRead && !this.informational && cl !== undefined && !h.skipBody) {
      this.inlineBody(status, cl);
    }
    h.onHead(status, reason, raw, cl);
    return h.skipBody ? 1 : 0;
  }

  /**
   * When the whole body of the response whose head is being parsed is in
   * this read, takes the parser's body callback off until the read is
   * parsed: {@link onRead} hands the body over as a view of the read buffer.
   * The response began at the read's first byte (the try's first read, no
   * 1xx before it); llhttp is strict (CRLF line ends, no obs-fold), so its
   * head ends at the first empty line after the CR/LF bytes it skips before
   * a message, and a Content-Length body is the bytes right after.
   */
  private inlineBody(status: number, contentLength: string): void {
    if (status === 204 || status === 304) return; // no body whatever the header says
    const length = Number(contentLength); // llhttp checked: digits only
    if (!(length > 0 && length <= inlineBodyBytesMax)) return;
    const n = this.readLength;
    let start = 0;
    while (start < n && (readBuffer[start] === CR || readBuffer[start] === LF)) start++;
    const end = readView.indexOf(headEnd, start);
    if (end < 0 || end + 4 + length > n) return;
    this.inlineAt = end + 4;
    this.inlineLength = length;
    this.parser[kOnBody] = undefined;
  }

  private onMessageComplete(): void {
    if (!this.gotHead || this.done) return; // a 1xx ended
    this.done = true;
  }

  /** The response is complete: the connection goes back to the pool (or closes), then the handler hears. */
  private finishTry(h: TryHandler, now: number): void {
    this.handler = undefined;
    if (!this.reading) {
      this.reading = true;
      this.socket.resume();
    }
    if (this.keepAlive && !this.dirty && this.idleMs > 0) {
      this.state = 'idle';
      this.deadline = now + this.idleMs;
      this.pool.released(this);
    } else this.destroy();
    h.onComplete();
  }

  private onEnd(): void {
    if (this.state === 'busy' && this.handler !== undefined && this.gotHead && !this.done) {
      // A body delimited by the close ends here.
      const r = this.parser.finish();
      const h = this.handler;
      if (!isParseError(r) && this.done) {
        this.keepAlive = false;
        this.finishTry(h, performance.now());
      }
    }
    this.fail('the backend closed the connection before the response ended', false);
  }

  private fail(message: string, timeout: boolean): void {
    if (this.state === 'closed') return;
    const wasConnecting = this.state === 'connecting';
    this.state = 'closed';
    const h = this.handler;
    this.handler = undefined;
    this.socket.destroy();
    this.pool.closed(this, wasConnecting, message, timeout);
    h?.onFailure(new TryError(message, true, timeout));
  }
}

/** The connections to one backend (see the file comment). */
export class UpstreamPool {
  private readonly conns = new Set<UpstreamConn>();
  private readonly idle: UpstreamConn[] = [];
  private readonly waiting: { h: TryHandler; deadline: number }[] = [];
  private connecting = 0;
  private closing = false;

  constructor(readonly options: UpstreamPoolOptions) {}

  /** Open connections. */
  get size(): number {
    return this.conns.size;
  }

  /** Starts try `h` on an idle connection, a new one, or after the queue. */
  dispatch(h: TryHandler, now = performance.now()): void {
    const c = this.idle.pop();
    if (c !== undefined) {
      c.assign(h, now);
      return;
    }
    this.waiting.push({ h, deadline: now + h.headTimeoutMs });
    if (this.conns.size < this.options.max && this.connecting < this.waiting.length) {
      this.connecting++;
      this.conns.add(new UpstreamConn(this, now));
    }
  }

  /** Takes `h` out of the queue; whether it was there. */
  cancel(h: TryHandler): boolean {
    const i = this.waiting.findIndex((w) => w.h === h);
    if (i < 0) return false;
    this.waiting.splice(i, 1);
    return true;
  }

  /** Checks every deadline (see the file comment). */
  sweep(now: number): void {
    for (const c of this.conns) c.sweep(now);
    if (this.waiting.length === 0) return;
    const expired = this.waiting.filter((w) => w.deadline <= now);
    if (expired.length === 0) return;
    this.waiting.splice(0, this.waiting.length, ...this.waiting.filter((w) => w.deadline > now));
    for (const w of expired) {
      w.h.onFailure(new TryError('no connection to the backend in time', false, true));
    }
  }

  /** Closes idle connections now and busy ones when their try ends. */
  close(): void {
    this.closing = true;
    for (const c of this.idle.splice(0)) c.destroy();
  }

  /** Closes every connection; tries on them and in the queue fail. */
  destroy(): void {
    this.closing = true;
    for (const w of this.waiting.splice(0)) {
      w.h.onFailure(new TryError('the backend was removed', false, false));
    }
    for (const c of [...this.conns]) c.destroy();
  }

  /** @internal A new connection is up. */
  connected(c: UpstreamConn): void {
    this.connecting--;
    c.state = 'idle'; // until given a try below
    this.released(c);
  }

  /** @internal A connection is free. */
  released(c: UpstreamConn): void {
    if (this.closing) {
      c.destroy();
      return;
    }
    const w = this.waiting.shift();
    if (w !== undefined) c.assign(w.h, performance.now());
    else this.idle.push(c);
  }

  /** @internal A connection closed; one that never connected fails the oldest waiting try. */
  closed(c: UpstreamConn, wasConnecting: boolean, message: string, timeout: boolean): void {
    this.conns.delete(c);
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
    if (!wasConnecting) return;
    this.connecting--;
    const w = this.waiting.shift();
    w?.h.onFailure(new TryError(message, false, timeout));
  }
}
