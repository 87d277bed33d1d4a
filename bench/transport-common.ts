/**
 * Shared pieces of the transport benchmark (bench/transport.ts): the message,
 * its codec, and how to build a message whose encoding has an exact size.
 */
import { Type } from '@sinclair/typebox';
import { clusterId } from '../src/lib/ids.js';
import { message, messageCodec, shortLivedBytes } from '../src/wire/codec.js';
import type { MessageOf } from '../src/wire/codec.js';

/**
 * A benchmark message: a sequence number and an opaque body. The receiver
 * counts it and drops it, so its body is declared short-lived
 * (`shortLivedBytes`: decoded as a view of the socket read, not a copy);
 * `BENCH_BLOB_COPY=1` declares a plain byte field instead, which a receiver
 * copies unless it fills half of its read (what a Raft entry gets).
 */
export const Blob = message('Blob', {
  seq: Type.Integer({ minimum: 0 }),
  body: process.env.BENCH_BLOB_COPY === '1' ? Type.Uint8Array() : shortLivedBytes(),
});
/** Tells the receiver the run is over. */
export const Stop = message('Stop', {});
/**
 * The codec of the benchmark: with the codecs compiled per message type
 * (the default), or msgpackr and the schema check alone with
 * `BENCH_COMPILED=0` (an A/B switch for wire/schema-codec.ts).
 */
export const benchCodec = messageCodec([Blob, Stop], {
  compiled: process.env.BENCH_COMPILED !== '0',
});
/** A benchmark message. */
export type BenchMessage = MessageOf<[typeof Blob, typeof Stop]>;
/** The cluster id of the benchmark. */
export const benchCluster = clusterId('bench');

/** A Blob whose MessagePack encoding is exactly `payloadBytes` long. */
export function blobOfSize(payloadBytes: number): BenchMessage {
  let bodyBytes = Math.max(0, payloadBytes - 20);
  for (;;) {
    const m: BenchMessage = { type: 'Blob', seq: 1_000_000, body: new Uint8Array(bodyBytes) };
    const size = benchCodec.encode(m).length;
    if (size === payloadBytes) return m;
    if (size > payloadBytes) {
      if (bodyBytes === 0) throw new Error(`cannot make a ${payloadBytes}-byte message`);
      bodyBytes--;
    } else bodyBytes++;
  }
}

/** What a receiver prints when it is done (one JSON line on stdout). */
export interface ReceiverResult {
  messages: number;
  seconds: number;
  /** CPU time the receiver used while counting. */
  cpuSeconds: number;
}
