/**
 * Batch frames over real sockets (protocol version 3): what a new node sends
 * a peer that agreed on them, what it refuses from one, and links between a
 * new node and an older one (version 2, one message per frame) both ways.
 */
import net from 'node:net';
import { pack } from 'msgpackr';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { crc32c } from '../../src/lib/crc32c.js';
import { nodeId } from '../../src/lib/ids.js';
import { limits } from '../../src/lib/limits.js';
import {
  BATCH_RECORD_HEADER_BYTES,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  putFrameHeader,
  putRecordHeader,
  splitBatch,
} from '../../src/wire/frame.js';
import { handshakeCodec } from '../../src/wire/handshake.js';
import type { HandshakeMessage } from '../../src/wire/handshake.js';
import { waitFor } from './compliance.js';
import { freePort, testCluster, local, perTestNodes } from './tcp-harness.js';
import { testCodec } from './test-messages.js';
import type { TestMessage } from './test-messages.js';

const A = nodeId('a');
const B = nodeId('b');

const { cleanups, startNode } = perTestNodes();

/** A batch frame (header and records) of already encoded messages. */
function batchFrame(messages: readonly Uint8Array[]): Uint8Array {
  const total = messages.reduce((n, m) => n + BATCH_RECORD_HEADER_BYTES + m.length, 0);
  const frame = new Uint8Array(FRAME_HEADER_BYTES + total);
  let at = FRAME_HEADER_BYTES;
  for (const m of messages) {
    putRecordHeader(frame, at, m.length);
    frame.set(m, at + BATCH_RECORD_HEADER_BYTES);
    at += BATCH_RECORD_HEADER_BYTES + m.length;
  }
  putFrameHeader(frame, 0, total, crc32c(frame.subarray(FRAME_HEADER_BYTES)));
  return frame;
}

const seq = (n: number, note = ''): Uint8Array =>
  Uint8Array.from(testCodec.encode({ type: 'Seq', seq: n, note }));

/** A raw dialer that offers version 3 and keeps the frames it gets after the Welcome. */
async function rawDialer(
  port: number,
  from: string,
  to: string,
): Promise<{
  socket: net.Socket;
  welcome: HandshakeMessage;
  frames: Uint8Array[];
  closed: () => boolean;
}> {
  const socket = net.connect(port, '127.0.0.1');
  cleanups.push(() => void socket.destroy());
  const frames: Uint8Array[] = [];
  const decoder = new FrameDecoder({ frameBytesMax: limits.frameBytesMax * 2 });
  let isClosed = false;
  let welcome: HandshakeMessage | undefined;
  socket.on('data', (chunk: Buffer) => {
    decoder.push(chunk);
    for (let p = decoder.next(); p !== undefined; p = decoder.next()) {
      if (welcome === undefined) welcome = handshakeCodec.decode(p);
      else if (p.length > 0) frames.push(Uint8Array.from(p));
    }
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    isClosed = true;
  });
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.write(
    handshakeCodec.encodeFrame({
      type: 'Hello',
      protocolVersion: limits.protocolVersion,
      protocolVersionMax: limits.protocolVersionMax,
      clusterId: testCluster,
      nodeId: from,
      to,
    }),
  );
  await waitFor(() => welcome !== undefined || isClosed, 'the Welcome');
  return { socket, welcome: welcome as HandshakeMessage, frames, closed: () => isClosed };
}

describe('TcpTransport: batch frames', () => {
  it('agrees on version 3 with a dialer that offers it and sends every message of a turn in one batch frame', async () => {
    const pb = await freePort();
    const C = nodeId('c');
    const b = await startNode({
      self: B,
      port: pb,
      peers: { a: local(await freePort()), c: local(await freePort()) },
    });
    const toA = await rawDialer(pb, 'a', 'b');
    const toC = await rawDialer(pb, 'c', 'b');
    expect(toA.welcome).toMatchObject({
      type: 'Welcome',
      protocolVersion: limits.protocolVersion,
      protocolVersionAgreed: 3,
    });
    await waitFor(() => b.isConnected(A) && b.isConnected(C), 'the links');
    // Sends to a and c interleave in the write slabs: the batch to each is
    // cut from non-adjacent records (short ones copied together, long ones as views).
    const pads = [0, 10, 3000, 1, 70_000, 5, 2, 2047, 2048, 9, 100_000, 4];
    for (let i = 0; i < pads.length; i++) {
      const pad = new Uint8Array(pads[i] as number).fill(i);
      b.send(A, { type: 'Seq', seq: i, note: `a${i}`, pad });
      b.send(C, { type: 'Seq', seq: i, note: `c${i}`, pad });
    }
    for (const [client, who] of [
      [toA, 'a'],
      [toC, 'c'],
    ] as const) {
      await waitFor(() => client.frames.length >= 1, `a frame to ${who}`);
      expect(client.frames).toHaveLength(1);
      const frame = client.frames[0] as Uint8Array;
      const ranges: number[] = [];
      const n = splitBatch(frame, 0, frame.length, limits.frameBytesMax, ranges);
      expect(n).toBe(pads.length);
      for (let i = 0; i < n; i++) {
        const m = testCodec.decode(frame.subarray(ranges[2 * i], ranges[2 * i + 1]));
        expect({ ...m, pad: Uint8Array.from(m.pad ?? []) }).toEqual({
          type: 'Seq',
          seq: i,
          note: `${who}${i}`,
          pad: new Uint8Array(pads[i] as number).fill(i),
        });
      }
    }
    // One header per batch, a 4-byte prefix per message.
    expect(b.counters.bytesSent).toBe(
      2 * FRAME_HEADER_BYTES +
        (toA.frames[0] as Uint8Array).length +
        (toC.frames[0] as Uint8Array).length,
    );
  });

  it('delivers the messages of good batch frames in order', async () => {
    const pb = await freePort();
    const b = await startNode({ self: B, port: pb, peers: { a: local(await freePort()) } });
    const got: number[] = [];
    b.onMessage((_f, m) => got.push(m.seq));
    const client = await rawDialer(pb, 'a', 'b');
    client.socket.write(batchFrame([seq(1), seq(2), seq(3)]));
    client.socket.write(batchFrame([seq(4)]));
    client.socket.write(new Uint8Array(FRAME_HEADER_BYTES)); // a keepalive
    client.socket.write(batchFrame(Array.from({ length: 100 }, (_, i) => seq(5 + i))));
    await waitFor(() => got.length === 104, 'every message');
    expect(got).toEqual(Array.from({ length: 104 }, (_, i) => i + 1));
    expect(b.counters.decodeErrors).toBe(0);
  });

  const bad: [string, () => Uint8Array, string][] = [
    [
      'a message that fails its schema',
      () =>
        batchFrame([seq(10), Uint8Array.from(pack({ type: 'Seq', seq: 'x', note: '' })), seq(11)]),
      'SCHEMA_VIOLATION',
    ],
    [
      'an unknown message type',
      () => batchFrame([seq(10), Uint8Array.from(pack({ type: 'Nope' }))]),
      'UNKNOWN_MESSAGE',
    ],
    ['an empty message', () => batchFrame([seq(10), new Uint8Array(0), seq(11)]), 'DECODE_ERROR'],
    [
      'records that overrun the frame',
      () => {
        const f = batchFrame([seq(10), seq(11)]);
        // Lengthen the second record by one byte and fix the checksum: the records no longer fill the frame.
        const second = FRAME_HEADER_BYTES + BATCH_RECORD_HEADER_BYTES + seq(10).length;
        putRecordHeader(f, second, seq(11).length + 1);
        putFrameHeader(f, 0, f.length - FRAME_HEADER_BYTES, crc32c(f.subarray(FRAME_HEADER_BYTES)));
        return f;
      },
      'DECODE_ERROR',
    ],
    [
      'a damaged byte',
      () => {
        const f = batchFrame([seq(10), seq(11)]);
        f[f.length - 1] = (f[f.length - 1] as number) ^ 0x01;
        return f;
      },
      'CHECKSUM_MISMATCH',
    ],
  ];
  for (const [what, frame, code] of bad) {
    it(`refuses a whole batch frame with ${what}, closes the link, and delivers nothing of it or after it`, async () => {
      const pb = await freePort();
      const lines: string[] = [];
      const b = await startNode({
        self: B,
        port: pb,
        peers: { a: local(await freePort()) },
        logger: pino({ level: 'warn' }, { write: (line: string) => lines.push(line) }),
      });
      const got: number[] = [];
      b.onMessage((_f, m) => got.push(m.seq));
      const client = await rawDialer(pb, 'a', 'b');
      client.socket.write(
        Buffer.concat([batchFrame([seq(1), seq(2)]), frame(), batchFrame([seq(3)])]),
      );
      await waitFor(() => client.closed(), 'the close');
      expect(got).toEqual([1, 2]);
      expect(b.counters.decodeErrors).toBe(1);
      expect(lines.join('')).toContain(code);
    });
  }
});

describe('TcpTransport: a new node and an older one (version 2)', () => {
  for (const oldSide of ['dialer', 'acceptor'] as const) {
    it(`exchange messages of every size in order, one per frame, with the older node as the ${oldSide}`, async () => {
      const [pa, pb] = [await freePort(), await freePort()];
      const old = { protocolVersionMax: limits.protocolVersion };
      // The dialer is the one that sends first; a sends first.
      const a = await startNode({
        self: A,
        port: pa,
        peers: { b: local(pb) },
        ...(oldSide === 'dialer' ? old : {}),
      });
      const b = await startNode({
        self: B,
        port: pb,
        peers: { a: local(pa) },
        ...(oldSide === 'acceptor' ? old : {}),
      });
      const atA: TestMessage[] = [];
      const atB: TestMessage[] = [];
      a.onMessage((_f, m) => atA.push(m));
      b.onMessage((_f, m) => atB.push(m));
      const padOf = (i: number): Uint8Array =>
        new Uint8Array(i % 3 === 0 ? i % 50 : 1000 + ((i * 37) % 6000)).fill(i & 0xff);
      const count = 300;
      for (let i = 0; i < count; i++) a.send(B, { type: 'Seq', seq: i, note: 'ab', pad: padOf(i) });
      await waitFor(() => atB.length === count, 'a to b');
      for (let i = 0; i < count; i++) b.send(A, { type: 'Seq', seq: i, note: 'ba', pad: padOf(i) });
      await waitFor(() => atA.length === count, 'b to a');
      for (const got of [atA, atB]) {
        expect(got.map((m) => m.seq)).toEqual(Array.from({ length: count }, (_, i) => i));
        for (const m of got) expect(Uint8Array.from(m.pad ?? [])).toEqual(padOf(m.seq));
      }
      // Version 2 frames: an 8-byte header per message, no batch.
      const payloads = atB.reduce((n, m) => n + testCodec.encode(m).length, 0);
      expect(a.counters.bytesSent).toBe(payloads + count * FRAME_HEADER_BYTES);
      expect(a.counters.decodeErrors + b.counters.decodeErrors).toBe(0);
    });
  }

  it('a new pair speaks version 3: one header per batch', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const a = await startNode({ self: A, port: pa, peers: { b: local(pb) } });
    const b = await startNode({ self: B, port: pb, peers: { a: local(pa) } });
    const atB: number[] = [];
    b.onMessage((_f, m) => atB.push(m.seq));
    a.send(B, { type: 'Seq', seq: 0, note: 'x' });
    await waitFor(() => atB.length === 1, 'the first message');
    const count = 200;
    // Message 100 is over batchFrameBytesMax (and the slab size for one record): it goes alone.
    const messageOf = (i: number): TestMessage =>
      i === 100
        ? { type: 'Seq', seq: i, note: 'x', pad: new Uint8Array(300_000).fill(7) }
        : { type: 'Seq', seq: i, note: 'x' };
    for (let i = 1; i <= count; i++) a.send(B, messageOf(i));
    await waitFor(() => atB.length === count + 1, 'the messages');
    expect(atB).toEqual(Array.from({ length: count + 1 }, (_, i) => i));
    const payloads = Array.from(
      { length: count + 1 },
      (_, i) => testCodec.encode(messageOf(i)).length,
    ).reduce((n, x) => n + x, 0);
    // Four frames: the first message alone, then the 200 sent in one turn,
    // cut before and after the big one.
    expect(a.counters.bytesSent).toBe(
      4 * FRAME_HEADER_BYTES + payloads + (count + 1) * BATCH_RECORD_HEADER_BYTES,
    );
  });

  it('encodes messages straight into the write slabs across slab ends and past a slab piece, intact and in order', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const a = await startNode({ self: A, port: pa, peers: { b: local(pb) } });
    const b = await startNode({ self: B, port: pb, peers: { a: local(pa) } });
    const got: TestMessage[] = [];
    b.onMessage((_f, m) => got.push(m));
    // Sizes that fill 1 MiB slabs unevenly: records meet a slab's end
    // (encoded again into the next slab), and some are over a slab piece
    // (256 KiB: encoded apart and copied into their own buffer).
    const pads = [0, 1, 200_000, 70_000, 260_000, 3, 150_000, 262_140, 5000, 90_000, 400_000, 7];
    const count = 60;
    const padOf = (i: number): Uint8Array =>
      new Uint8Array(pads[i % pads.length] as number).map((_, k) => (k * 31 + i) & 0xff);
    for (let turn = 0; turn < 3; turn++) {
      for (let i = turn * 20; i < (turn + 1) * 20 && i < count; i++) {
        a.send(B, { type: 'Seq', seq: i, note: `n${i}`, pad: padOf(i) });
      }
      await new Promise((r) => setImmediate(r));
    }
    await waitFor(() => got.length === count, 'the messages');
    expect(got.map((m) => m.seq)).toEqual(Array.from({ length: count }, (_, i) => i));
    for (const m of got) {
      expect(m.note).toBe(`n${m.seq}`);
      expect(Buffer.from(m.pad ?? []).equals(Buffer.from(padOf(m.seq)))).toBe(true);
    }
    expect(a.counters.decodeErrors + b.counters.decodeErrors).toBe(0);
  });
});
