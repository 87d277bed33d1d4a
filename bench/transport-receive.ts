/**
 * The transport's receive path alone, in one process: FrameDecoder, then
 * decode and validation of every message, over a stream cut into 64 KiB
 * reads as a socket delivers it; no socket, no kernel time. CPU µs per
 * message, best of BENCH_REPS (default 9), for single-message frames
 * (protocol version 2, `nextInPlace`) and batch frames (version 3,
 * `nextBatchInPlace`, batches of up to 256 KiB as the sender cuts them).
 * The steadier figure beside bench/transport.ts on a shared machine: it
 * measures what the framing change moves, without the kernel's share.
 *
 * ```sh
 * npx tsx bench/transport-receive.ts            # 64 B and 4 KiB
 * BENCH_SIZES=64,1024,4096 npx tsx bench/transport-receive.ts
 * ```
 */
import { crc32c } from '../src/lib/crc32c.js';
import { limits } from '../src/lib/limits.js';
import {
  BATCH_RECORD_HEADER_BYTES,
  batchFrameBytesMax,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  putFrameHeader,
  putRecordHeader,
} from '../src/wire/frame.js';
import { benchCodec, blobOfSize } from './transport-common.js';

const sizes = (process.env.BENCH_SIZES ?? '64,4096').split(',').map(Number);
const reps = Number(process.env.BENCH_REPS ?? 9);
const readBytes = 64 * 1024;
const stable = { stable: true };

/** `total` messages of `size` bytes as single frames or batch frames, cut into socket-sized reads. */
function reads(size: number, batched: boolean, total: number): Buffer[] {
  const msg = Buffer.from(benchCodec.encode(blobOfSize(size)));
  const parts: Buffer[] = [];
  if (!batched) {
    const frame = Buffer.from(benchCodec.encodeFrame(blobOfSize(size)));
    for (let i = 0; i < total; i++) parts.push(frame);
  } else {
    const record = BATCH_RECORD_HEADER_BYTES + msg.length;
    const perFrame = Math.max(1, Math.floor(limits.batchFrameBytesMax / record));
    for (let i = 0; i < total; i += perFrame) {
      const n = Math.min(perFrame, total - i);
      const frame = Buffer.alloc(FRAME_HEADER_BYTES + n * record);
      for (let k = 0; k < n; k++) {
        putRecordHeader(frame, FRAME_HEADER_BYTES + k * record, msg.length);
        msg.copy(frame, FRAME_HEADER_BYTES + k * record + BATCH_RECORD_HEADER_BYTES);
      }
      const payload = frame.subarray(FRAME_HEADER_BYTES);
      putFrameHeader(frame, 0, payload.length, crc32c(payload));
      parts.push(frame);
    }
  }
  const all = Buffer.concat(parts);
  const out: Buffer[] = [];
  // Each read in its own memory, as a socket's are.
  for (let at = 0; at < all.length; at += readBytes) {
    out.push(Buffer.from(all.subarray(at, at + readBytes)));
  }
  return out;
}

/** Decodes every message of `chunks`; returns how many. */
function receive(chunks: readonly Buffer[], batched: boolean): number {
  const decoder = new FrameDecoder({ frameBytesMax: batchFrameBytesMax(limits.frameBytesMax) });
  const sources: Uint8Array[] = [];
  const bounds: number[] = [];
  let n = 0;
  for (const chunk of chunks) {
    decoder.push(chunk);
    if (batched) {
      for (;;) {
        const count = decoder.nextBatchInPlace(limits.frameBytesMax, sources, bounds);
        if (count < 0) break;
        for (let i = 0; i < count; i++) {
          benchCodec.decodeRange(
            sources[i] as Uint8Array,
            bounds[2 * i] as number,
            bounds[2 * i + 1] as number,
            stable,
          );
          n++;
        }
      }
    } else {
      while (decoder.nextInPlace()) {
        benchCodec.decodeRange(decoder.frameSource, decoder.frameStart, decoder.frameEnd, stable);
        n++;
      }
    }
  }
  return n;
}

for (const size of sizes) {
  const total = Math.max(10_000, Math.floor(12_800_000 / (size + 64)));
  for (const batched of [false, true]) {
    const chunks = reads(size, batched, total);
    let best = Infinity;
    for (let r = 0; r < reps; r++) {
      const before = process.cpuUsage();
      const n = receive(chunks, batched);
      const used = process.cpuUsage(before);
      if (n !== total) throw new Error(`decoded ${n} of ${total} messages`);
      best = Math.min(best, (used.user + used.system) / n);
    }
    console.log(
      `transport-receive ${size} B ${batched ? 'batch frames (v3)' : 'single frames (v2)'}: ${best.toFixed(3)} µs CPU per message (best of ${reps})`,
    );
  }
}
