/**
 * The receiving process of bench/transport.ts. Modes:
 * - `raw`: a node:net server that splits frames by their length prefix and
 *   counts them (no checksum, no decoding): the floor of receiving work.
 *   An empty frame ends the run.
 * - `transport`: a TcpTransport that decodes and validates every message and
 *   counts it in its handler. A Stop message ends the run.
 *
 * Counting starts `warmupMs` after the first message (JIT warm-up). Prints
 * `ready` once listening and a {@link ReceiverResult} JSON line at the end.
 */
import net from 'node:net';
import { pino } from 'pino';
import { nodeId } from '../src/lib/ids.js';
import { TcpTransport } from '../src/transport/tcp-transport.js';
import { benchCluster, benchCodec } from './transport-common.js';
import type { ReceiverResult } from './transport-common.js';

interface Config {
  mode: 'raw' | 'transport';
  port: number;
  senderPort: number;
  warmupMs: number;
}

const config = JSON.parse(process.argv[2] ?? '{}') as Config;
// Exit normally when the parent stops us, so `--cpu-prof` can write its profile.
process.on('SIGTERM', () => process.exit(0));

let first = -1;
let cpuStart: NodeJS.CpuUsage | undefined;
let start = -1;
let counted = 0;

function onMessage(): void {
  // Once counting, only count: no clock read per message on either side.
  if (start >= 0) {
    counted++;
    return;
  }
  const now = performance.now();
  if (first < 0) first = now;
  if (start < 0) {
    if (now - first < config.warmupMs) return;
    start = now;
    cpuStart = process.cpuUsage();
  }
  counted++;
}

function finish(): void {
  const cpu = process.cpuUsage(cpuStart);
  const result: ReceiverResult = {
    messages: counted,
    seconds: start < 0 ? 0 : (performance.now() - start) / 1000,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (config.mode === 'raw') {
  // A minimal frame splitter: reads each 8-byte header (which may span
  // chunks), then skips the payload; no copying, no checksum, no decoding.
  const server = net.createServer((socket) => {
    const header = Buffer.alloc(8);
    let headerFill = 0;
    let remaining = -1; // payload bytes still to skip; -1 while reading a header
    socket.on('data', (chunk: Buffer) => {
      let at = 0;
      while (at < chunk.length) {
        if (remaining < 0) {
          const take = Math.min(8 - headerFill, chunk.length - at);
          chunk.copy(header, headerFill, at, at + take);
          headerFill += take;
          at += take;
          if (headerFill < 8) return;
          headerFill = 0;
          remaining = header.readUInt32BE(0);
          if (remaining === 0) {
            finish();
            socket.end();
            server.close();
            return;
          }
        }
        const skip = Math.min(remaining, chunk.length - at);
        remaining -= skip;
        at += skip;
        if (remaining === 0) {
          onMessage();
          remaining = -1;
        }
      }
    });
  });
  server.listen(config.port, '127.0.0.1', () => process.stdout.write('ready\n'));
} else {
  const transport = await TcpTransport.start({
    self: nodeId('receiver'),
    clusterId: benchCluster,
    codec: benchCodec,
    listen: { host: '127.0.0.1', port: config.port },
    peers: { sender: { host: '127.0.0.1', port: config.senderPort } },
    logger: pino({ level: 'warn' }, pino.destination(2)),
  });
  transport.onMessage((_from, msg) => {
    if (msg.type === 'Blob') onMessage();
    else {
      finish();
      void transport.close();
    }
  });
  process.stdout.write('ready\n');
}
