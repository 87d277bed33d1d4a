/**
 * HTTP/1.1 message heads for the gateway's proxy: Node's own llhttp parser
 * (the one node:http runs, reached through `_http_common`), and the heads
 * the proxy writes (RFC 9112), hop-by-hop headers dropped (RFC 9110 §7.6.1).
 *
 * ```ts
 * const p = newParser('request', 16 * 1024);
 * p[kOnHeadersComplete] = (major, minor, headers, method, url) => 0;
 * p.execute(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
 * ```
 *
 * Why llhttp: it is the parser node:http and undici use, strict by default
 * (no lenient flags are set): it refuses a message with both Content-Length
 * and Transfer-Encoding, duplicate Content-Length headers, obs-fold, bare
 * LF line ends, a Transfer-Encoding of a request whose last coding is not
 * chunked, and bad chunk sizes (RFC 9112 §6.1, §6.3, §11.2 on request
 * smuggling). It reports a message's body and end, so nothing past a
 * message's end is ever taken as part of it. The binding is not part of
 * Node's documented API; {@link newParser} checks its shape once so a Node
 * that changed it fails at start, not on a request.
 */
import { createRequire } from 'node:module';
import { assert } from '../lib/assert.js';

/** A parse error as the binding returns it from `execute`/`finish`. */
export interface ParseError extends Error {
  /** llhttp's error name, e.g. `HPE_HEADER_OVERFLOW`. */
  readonly code: string;
  readonly reason?: string;
  readonly bytesParsed?: number;
}

/** `kOnHeadersComplete(major, minor, headers, method, url, status, reason, upgrade, keepAlive)`. */
export type OnHeadersComplete = (
  versionMajor: number,
  versionMinor: number,
  headers: string[] | undefined,
  method: number | undefined,
  url: string | undefined,
  statusCode: number | undefined,
  statusMessage: string | undefined,
  upgrade: boolean,
  shouldKeepAlive: boolean,
) => number;

/** One llhttp parser of Node's binding (callbacks are set by slot number). */
export interface Parser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  /** Bytes parsed, or the error. */
  execute(data: Buffer): number | ParseError;
  /** Ends the message at EOF (a body delimited by the close); undefined or the error. */
  finish(): ParseError | undefined;
  /** Deletes the native parser; never called from inside one of its callbacks. */
  close(): void;
  /** Reads `handle` (a stream's native handle) straight into the parser; results come to `kOnExecute`. */
  consume(handle: object): void;
  unconsume(): void;
  /** Whether the head of the message being parsed (or of the last one) is complete. */
  headersCompleted(): boolean;
  [slot: number]: unknown;
}

interface ParserClass {
  new (): Parser;
  readonly REQUEST: number;
  readonly RESPONSE: number;
  readonly kOnMessageBegin: number;
  readonly kOnHeaders: number;
  readonly kOnHeadersComplete: number;
  readonly kOnBody: number;
  readonly kOnMessageComplete: number;
  readonly kOnExecute: number;
  readonly kLenientNone: number;
}

const common = createRequire(import.meta.url)('_http_common') as {
  HTTPParser?: ParserClass;
  methods?: string[];
};
const HTTPParser = common.HTTPParser;
assert(
  typeof HTTPParser === 'function' &&
    typeof (HTTPParser.prototype as { execute?: unknown }).execute === 'function' &&
    typeof (HTTPParser.prototype as { headersCompleted?: unknown }).headersCompleted ===
      'function' &&
    typeof HTTPParser.kOnHeadersComplete === 'number' &&
    typeof HTTPParser.kLenientNone === 'number' &&
    Array.isArray(common.methods),
  "node's _http_common has no HTTPParser of the expected shape (a Node version this gateway does not know)",
);

/** Method names by the number `kOnHeadersComplete` gives. */
export const methods: readonly string[] = common.methods;
/** Callback slots. */
export const kOnMessageBegin = HTTPParser.kOnMessageBegin;
export const kOnHeaders = HTTPParser.kOnHeaders;
export const kOnHeadersComplete = HTTPParser.kOnHeadersComplete;
export const kOnBody = HTTPParser.kOnBody;
export const kOnMessageComplete = HTTPParser.kOnMessageComplete;
/** `kOnExecute(result)`: a read of a consumed stream was parsed (bytes, or the error). */
export const kOnExecute = HTTPParser.kOnExecute;

/** The native handle of a node:net socket, when it can be consumed by a parser. */
export interface StreamHandle {
  readonly isStreamBase?: boolean;
  reading?: boolean;
  readStart(): number;
  readStop(): number;
}

/** `socket`'s native handle if a parser can read it directly (as node:http does), else undefined. */
export function consumableHandle(socket: object): StreamHandle | undefined {
  const h = (socket as { _handle?: StreamHandle | null })._handle;
  return h !== null &&
    h !== undefined &&
    h.isStreamBase === true &&
    typeof h.readStop === 'function' &&
    typeof h.readStart === 'function'
    ? h
    : undefined;
}

/** A strict parser of requests or responses whose head may be at most `maxHeadBytes`. */
export function newParser(kind: 'request' | 'response', maxHeadBytes: number): Parser {
  const P = HTTPParser as ParserClass;
  const p = new P();
  p.initialize(kind === 'request' ? P.REQUEST : P.RESPONSE, {}, maxHeadBytes, P.kLenientNone);
  return p;
}

/** Whether `execute`/`finish` returned an error. */
export function isParseError(r: unknown): r is ParseError {
  return r instanceof Error;
}

/** Response headers never relayed (RFC 9110 §7.6.1; framing headers are written by the gateway). */
const hopResponse = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'content-length',
  'te',
  'trailer',
  'upgrade',
]);

/** Request headers never forwarded: those, `expect` (the gateway answers 100-continue itself) and the X-Forwarded-* it sets. */
const hopRequest = new Set([
  ...hopResponse,
  'expect',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
]);

/** Bit `n` set: some name of `names` has `n` characters (all are shorter than 32). */
function lengthMask(names: ReadonlySet<string>): number {
  let mask = 0;
  for (const n of names) {
    assert(n.length < 32, `header name ${n} too long for a length mask`);
    mask |= 1 << n.length;
  }
  return mask;
}

/** Lengths of the names in `hopResponse` and `hopRequest`: other names need no lower-casing. */
const hopResponseLengths = lengthMask(hopResponse);
const hopRequestLengths = lengthMask(hopRequest);

/** Whether header `k` (any case) is in `set`, whose name lengths are `lengths`. */
function isIn(set: ReadonlySet<string>, lengths: number, k: string): boolean {
  return k.length < 32 && ((lengths >>> k.length) & 1) === 1 && set.has(k.toLowerCase());
}

/** The tokens of the Connection headers in `raw` other than keep-alive/close, lower case; undefined when none. */
function connectionTokens(raw: readonly string[]): Set<string> | undefined {
  let out: Set<string> | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = raw[i]!;
    if (k.length !== 10 || k.toLowerCase() !== 'connection') continue;
    const v = raw[i + 1]!;
    // The usual value, one token the gateway handles itself: no list to split.
    const one = v.length === 10 || v.length === 5 ? v.toLowerCase() : '';
    if (one === 'keep-alive' || one === 'close') continue;
    for (const t of v.split(',')) {
      const token = t.trim().toLowerCase();
      if (token !== '' && token !== 'keep-alive' && token !== 'close')
        (out ??= new Set()).add(token);
    }
  }
  return out;
}

/** Whether header `k` (any case) is one the Connection header named. */
function isExtra(extra: ReadonlySet<string> | undefined, k: string): boolean {
  return extra !== undefined && extra.has(k.toLowerCase());
}

/** The value of header `lowerName` in `raw` (the first one), or undefined. */
/**
 * A message's raw header list: the parser hands a head over whole to
 * kOnHeadersComplete (`last`), or, past a long head on the connection, in
 * pieces to kOnHeaders first (`pending`, then `last` undefined or the rest).
 * The answer is the message's own array; when it is not `last`, the caller
 * starts a new `pending`.
 */
export function joinHead(pending: string[], last: string[] | undefined): string[] {
  if (last === undefined) return pending;
  return pending.length > 0 ? [...pending, ...last] : last;
}

export function headerValue(raw: readonly string[], lowerName: string): string | undefined {
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = raw[i]!;
    if (k.length === lowerName.length && k.toLowerCase() === lowerName) return raw[i + 1];
  }
  return undefined;
}

/** How the body of a message a backend gets is framed. */
export type RequestFraming = { readonly length: number } | 'chunked' | 'none';

/**
 * The head of a request as a backend gets it: hop-by-hop headers (and those
 * the Connection header names) dropped, X-Forwarded-For appended to,
 * X-Forwarded-Proto and -Host set, the body framed by `framing`.
 */
export function requestHead(
  method: string,
  url: string,
  raw: readonly string[],
  clientIp: string,
  framing: RequestFraming,
): string {
  const extraHop = connectionTokens(raw);
  let head = `${method} ${url} HTTP/1.1\r\n`;
  let host = '';
  let forwardedFor = '';
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = raw[i]!;
    const v = raw[i + 1]!;
    if (isIn(hopRequest, hopRequestLengths, k) || isExtra(extraHop, k)) {
      if (k.length === 15 && k.toLowerCase() === 'x-forwarded-for')
        forwardedFor = forwardedFor === '' ? v : `${forwardedFor}, ${v}`;
      continue;
    }
    if (host === '' && k.length === 4 && k.toLowerCase() === 'host') host = v;
    head += `${k}: ${v}\r\n`;
  }
  head += `x-forwarded-for: ${forwardedFor === '' ? clientIp : `${forwardedFor}, ${clientIp}`}\r\nx-forwarded-proto: http\r\n`;
  if (host !== '') head += `x-forwarded-host: ${host}\r\n`;
  if (framing === 'chunked') head += 'transfer-encoding: chunked\r\n';
  else if (framing !== 'none') head += `content-length: ${framing.length}\r\n`;
  return `${head}\r\n`;
}

/**
 * The headers of a backend's response as the client gets them (each line
 * ending CRLF, no status line, no final CRLF): hop-by-hop and framing
 * headers dropped, and those the backend's Connection header names.
 */
export function responseHeaderLines(raw: readonly string[]): string {
  const extraHop = connectionTokens(raw);
  let out = '';
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = raw[i]!;
    if (isIn(hopResponse, hopResponseLengths, k) || isExtra(extraHop, k)) continue;
    out += `${k}: ${raw[i + 1]!}\r\n`;
  }
  return out;
}

/**
 * The idle time a backend announces for a kept-alive connection
 * (`Keep-Alive: timeout=N`, RFC 2068 §19.7.1.1), in ms; undefined when none.
 */
export function keepAliveHintMs(raw: readonly string[]): number | undefined {
  const v = headerValue(raw, 'keep-alive');
  if (v === undefined) return undefined;
  const m = /(?:^|[,;\s])timeout\s*=\s*(\d{1,9})/i.exec(v);
  return m === null ? undefined : Number(m[1]) * 1000;
}

/** The head of one chunk of a chunked body (RFC 9112 §7.1). */
export function chunkHead(length: number): string {
  return `${length.toString(16)}\r\n`;
}

/** The end of a chunked body, without trailers. */
export const lastChunk = '0\r\n\r\n';
