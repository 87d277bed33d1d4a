/**
 * bench/rpc.ts — unary echo (100-byte payload), client and server in separate
 * processes on 127.0.0.1, closed loop at concurrency 1 and 64: cohort RPC over
 * its TCP transport vs @grpc/grpc-js vs Moleculer (TCP transporter), side by
 * side in one run. Prints ops/s, p50, p99 per system and the ratios last.
 *
 * ```sh
 * npm run bench:rpc                                   # 1 s warm-up + 10 s per run
 * BENCH_SECONDS=2 BENCH_WARMUP_SECONDS=0.5 npm run bench:rpc    # a quick look
 * BENCH_SYSTEMS=cohort,moleculer BENCH_CONCURRENCY=64 npm run bench:rpc
 * BENCH_REPS=3 npm run bench:rpc                      # medians of 3 alternating runs
 * ```
 *
 * Method (as in ../shared/peers): c workers each issue the next request when
 * the previous one returns; requests started during the warm-up are not
 * recorded; p50/p99 are nearest-rank over every request completed in the
 * measured window. One server process per system, a fresh client process per
 * (system, concurrency). Peers are set up as they were measured there: grpc-js
 * with @grpc/proto-loader (`bytes payload`), Moleculer with its TCP
 * transporter, static URLs, no UDP discovery, JSON serializer, loopback only.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Type } from '@sinclair/typebox';
import { pino } from 'pino';
import { clusterId, nodeId } from '../src/lib/ids.js';
import { rpcCodec } from '../src/rpc/messages.js';
import type { RpcWireMessage } from '../src/rpc/messages.js';
import { RpcNode } from '../src/rpc/node.js';
import { defineService, unary } from '../src/rpc/service.js';
import { TcpTransport } from '../src/transport/tcp-transport.js';

const require = createRequire(import.meta.url);
const SELF = fileURLToPath(import.meta.url);
const PAYLOAD_TEXT = 'x'.repeat(100);

/** The echo service cohort serves. */
const Echo = defineService('Echo', {
  echo: unary(
    Type.Object({ payload: Type.String({ maxLength: 4096 }) }),
    Type.Object({ payload: Type.String() }),
    { idempotent: true },
  ),
});

interface Result {
  system: string;
  concurrency: number;
  ops: number;
  errors: number;
  opsPerSec: number;
  p50Us: number;
  p99Us: number;
  firstError?: string;
}

type Op = () => Promise<void>;

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] as number;
}

/** Closed loop: `concurrency` workers issuing `op` back to back; latencies in µs. */
async function closedLoop(
  concurrency: number,
  warmupMs: number,
  durationMs: number,
  op: Op,
): Promise<Omit<Result, 'system' | 'concurrency'>> {
  let lat = new Float64Array(1 << 20);
  let n = 0;
  let errors = 0;
  let firstError: string | undefined;
  const t0 = performance.now();
  const warmEnd = t0 + warmupMs;
  const end = warmEnd + durationMs;
  async function worker(): Promise<void> {
    for (;;) {
      const s = performance.now();
      if (s >= end) return;
      try {
        await op();
      } catch (err) {
        errors++;
        firstError ??= String(err);
        if (errors > 1000) throw err;
        continue;
      }
      if (s >= warmEnd) {
        const e = performance.now();
        if (e <= end) {
          if (n === lat.length) {
            const bigger = new Float64Array(lat.length * 2);
            bigger.set(lat);
            lat = bigger;
          }
          lat[n++] = (e - s) * 1000;
        }
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, () => worker()));
  const sorted = lat.subarray(0, n).sort();
  const r: Omit<Result, 'system' | 'concurrency'> = {
    ops: n,
    errors,
    opsPerSec: Math.round(n / (durationMs / 1000)),
    p50Us: Math.round(percentile(sorted, 0.5)),
    p99Us: Math.round(percentile(sorted, 0.99)),
  };
  if (firstError !== undefined) r.firstError = firstError;
  return r;
}

// ---------------------------------------------------------------- cohort

async function cohortTransport(
  self: string,
  port: number,
  peer: string,
  peerPort: number,
): Promise<TcpTransport<RpcWireMessage>> {
  return TcpTransport.start<RpcWireMessage>({
    self: nodeId(self),
    clusterId: clusterId('bench'),
    codec: rpcCodec,
    listen: { host: '127.0.0.1', port },
    peers: { [peer]: { host: '127.0.0.1', port: peerPort } },
    logger: pino({ level: 'warn' }, pino.destination(2)),
  });
}

async function cohortServer(port: number): Promise<void> {
  const node = new RpcNode(await cohortTransport('bench-server', port, 'bench-client', port + 1));
  node.serve(Echo, { echo: (req) => req });
}

async function cohortClient(port: number): Promise<Op> {
  const node = new RpcNode(await cohortTransport('bench-client', port + 1, 'bench-server', port));
  const stub = node.client(Echo, nodeId('bench-server'));
  const request = { payload: PAYLOAD_TEXT };
  return async () => {
    const r = await stub.echo(request);
    if (r.payload.length !== 100) throw new Error('bad echo');
  };
}

// ---------------------------------------------------------------- grpc-js

interface GrpcModule {
  Server: new () => {
    addService(def: unknown, impl: unknown): void;
    bindAsync(addr: string, creds: unknown, cb: (err: Error | null) => void): void;
  };
  ServerCredentials: { createInsecure(): unknown };
  credentials: { createInsecure(): unknown };
  loadPackageDefinition(def: unknown): {
    bench: { Echo: { service: unknown } };
  };
  makeGenericClientConstructor(
    def: unknown,
    name: string,
  ): new (
    addr: string,
    creds: unknown,
  ) => {
    Echo(msg: unknown, cb: (err: Error | null, res: { payload: Uint8Array }) => void): void;
    waitForReady(deadline: number, cb: (err?: Error) => void): void;
  };
}

function grpcService(): { grpc: GrpcModule; def: unknown } {
  const grpc = require('@grpc/grpc-js') as GrpcModule;
  const loader = require('@grpc/proto-loader') as { loadSync(file: string): unknown };
  const proto = join(tmpdir(), `cohort-bench-echo-${process.pid}.proto`);
  writeFileSync(
    proto,
    'syntax = "proto3";\npackage bench;\nservice Echo { rpc Echo (EchoMsg) returns (EchoMsg); }\nmessage EchoMsg { bytes payload = 1; }\n',
  );
  return { grpc, def: grpc.loadPackageDefinition(loader.loadSync(proto)).bench.Echo.service };
}

async function grpcServer(port: number): Promise<void> {
  const { grpc, def } = grpcService();
  const server = new grpc.Server();
  server.addService(def, {
    Echo: (call: { request: unknown }, cb: (e: null, r: unknown) => void) => cb(null, call.request),
  });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) =>
      err === null ? resolve() : reject(err),
    ),
  );
}

async function grpcClient(port: number): Promise<Op> {
  const { grpc, def } = grpcService();
  const Client = grpc.makeGenericClientConstructor(def, 'Echo');
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  await new Promise<void>((resolve, reject) =>
    client.waitForReady(Date.now() + 5000, (err) => (err === undefined ? resolve() : reject(err))),
  );
  const msg = { payload: Buffer.alloc(100, 'x') };
  return () =>
    new Promise<void>((resolve, reject) =>
      client.Echo(msg, (err, res) => {
        if (err !== null) reject(err);
        else if (res.payload.length !== 100) reject(new Error('bad echo'));
        else resolve();
      }),
    );
}

// ---------------------------------------------------------------- Moleculer

interface Broker {
  createService(schema: unknown): void;
  start(): Promise<void>;
  waitForServices(names: string[], timeoutMs: number): Promise<void>;
  call(action: string, params: unknown): Promise<{ payload: string }>;
}

function moleculerBroker(self: 'server' | 'client', port: number): Broker {
  // Loopback only (see ../shared/peers/README.md): bind the listener to
  // 127.0.0.1 and always dial 127.0.0.1.
  // eslint-disable-next-line @typescript-eslint/unbound-method -- re-bound with .call below
  const listen = net.Server.prototype.listen as (...args: unknown[]) => net.Server;
  net.Server.prototype.listen = function (this: net.Server, ...args: unknown[]): net.Server {
    const [opts, ...rest] = args;
    if (typeof opts === 'object' && opts !== null && !('host' in opts) && !('path' in opts)) {
      return listen.call(this, { ...opts, host: '127.0.0.1' }, ...rest);
    }
    return listen.call(this, ...args);
  } as typeof net.Server.prototype.listen;
  const mol = require('moleculer') as {
    ServiceBroker: new (opts: unknown) => Broker;
    Transporters: { TCP: new (opts: unknown) => object };
  };
  class LoopbackTcp extends mol.Transporters.TCP {
    getNodeAddress(): string {
      return '127.0.0.1';
    }
  }
  const urls = [`127.0.0.1:${port}/mol-server`, `127.0.0.1:${port + 1}/mol-client`];
  return new mol.ServiceBroker({
    nodeID: `mol-${self}`,
    transporter: new LoopbackTcp({
      udpDiscovery: false,
      port: self === 'server' ? port : port + 1,
      urls,
      useHostname: false,
    }),
    logger: { type: 'Console', options: { level: 'warn' } },
    metrics: false,
    tracing: false,
  });
}

async function moleculerServer(port: number): Promise<void> {
  const b = moleculerBroker('server', port);
  b.createService({
    name: 'echo',
    actions: { echo: (ctx: { params: unknown }) => ctx.params },
  });
  await b.start();
}

async function moleculerClient(port: number): Promise<Op> {
  const b = moleculerBroker('client', port);
  await b.start();
  await b.waitForServices(['echo'], 10_000);
  const params = { payload: PAYLOAD_TEXT };
  return async () => {
    const r = await b.call('echo.echo', params);
    if (r.payload.length !== 100) throw new Error('bad echo');
  };
}

// ---------------------------------------------------------------- orchestration

const systems = {
  cohort: { server: cohortServer, client: cohortClient, port: 47100 },
  grpc: { server: grpcServer, client: grpcClient, port: 47200 },
  moleculer: { server: moleculerServer, client: moleculerClient, port: 47300 },
} as const;
type System = keyof typeof systems;

function isSystem(s: string | undefined): s is System {
  return s !== undefined && Object.prototype.hasOwnProperty.call(systems, s);
}

function child(args: string[]): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', SELF, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

/** Resolves with the first stdout line matching `prefix` (without it). */
function lineFrom(proc: ChildProcess, prefix: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    proc.stdout?.on('data', (chunk: Buffer) => {
      buf += chunk.toString();
      for (const line of buf.split('\n')) {
        if (line.startsWith(prefix)) resolve(line.slice(prefix.length));
      }
    });
    proc.once('exit', (code) => reject(new Error(`child exited (${code}) before "${prefix}"`)));
  });
}

function line(r: Result): string {
  return `${r.system.padEnd(9)} c=${String(r.concurrency).padEnd(3)} ${String(r.opsPerSec).padStart(7)} ops/s  p50 ${(r.p50Us / 1000).toFixed(3)} ms  p99 ${(r.p99Us / 1000).toFixed(3)} ms${r.errors > 0 ? `  errors ${r.errors}${r.firstError === undefined ? '' : ` (${r.firstError})`}` : ''}`;
}

async function orchestrate(): Promise<void> {
  const seconds = Number(process.env.BENCH_SECONDS ?? 10);
  const warmup = Number(process.env.BENCH_WARMUP_SECONDS ?? 1);
  const concs = (process.env.BENCH_CONCURRENCY ?? '1,64').split(',').map(Number);
  const chosen = (process.env.BENCH_SYSTEMS ?? 'cohort,grpc,moleculer').split(',');
  const reps = Math.max(1, Number(process.env.BENCH_REPS ?? 1));
  const results: Result[] = [];
  console.log(
    `rpc echo, 100-byte payload, 127.0.0.1, ${warmup} s warm-up + ${seconds} s, concurrency ${concs.join(', ')}, ${reps} rep(s)`,
  );
  // Systems alternate within each repetition, so background noise spreads evenly.
  for (let rep = 0; rep < reps; rep++) {
    for (const name of chosen) {
      if (!isSystem(name)) throw new Error(`unknown system ${name}`);
      const server = child(['server', name]);
      try {
        await lineFrom(server, 'READY');
        for (const c of concs) {
          const client = child(['client', name, String(c), String(warmup), String(seconds)]);
          const r = JSON.parse(await lineFrom(client, 'RESULT ')) as Result;
          results.push(r);
          console.log(`${line(r)}${reps > 1 ? `  (rep ${rep + 1})` : ''}`);
        }
      } finally {
        server.kill('SIGKILL');
      }
    }
  }
  const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.floor((s.length - 1) / 2)] as number;
  };
  const get = (s: string, c: number): Result | undefined => {
    const rs = results.filter((r) => r.system === s && r.concurrency === c);
    if (rs.length === 0) return undefined;
    return {
      system: s,
      concurrency: c,
      ops: median(rs.map((r) => r.ops)),
      errors: rs.reduce((a, r) => a + r.errors, 0),
      opsPerSec: median(rs.map((r) => r.opsPerSec)),
      p50Us: median(rs.map((r) => r.p50Us)),
      p99Us: median(rs.map((r) => r.p99Us)),
    };
  };
  if (reps > 1) {
    console.log('\nmedians:');
    for (const name of chosen) {
      for (const c of concs) {
        const r = get(name, c);
        if (r !== undefined) console.log(line(r));
      }
    }
  }
  console.log('\nratios (cohort / peer):');
  for (const peer of ['moleculer', 'grpc']) {
    for (const c of concs) {
      const a = get('cohort', c);
      const b = get(peer, c);
      if (a === undefined || b === undefined) continue;
      console.log(
        `rpc echo c=${c}: cohort ${(a.opsPerSec / 1000).toFixed(1)}k/s, ${peer} ${(b.opsPerSec / 1000).toFixed(1)}k/s, ` +
          `throughput ratio ${(a.opsPerSec / b.opsPerSec).toFixed(2)}, p50 ratio ${(a.p50Us / b.p50Us).toFixed(2)}, p99 ratio ${(a.p99Us / b.p99Us).toFixed(2)}`,
      );
    }
  }
}

async function main(): Promise<void> {
  const [role, name, ...rest] = process.argv.slice(2);
  if (role === undefined) return orchestrate();
  if (!isSystem(name)) throw new Error(`unknown system ${String(name)}`);
  const sys = systems[name];
  if (role === 'server') {
    await sys.server(sys.port);
    process.stdout.write('READY\n');
    return;
  }
  const [c, warmup, seconds] = rest.map(Number) as [number, number, number];
  const op = await sys.client(sys.port);
  // Connect and warm the code paths; a connection still settling may fail a few calls.
  for (let ok = 0, failed = 0; ok < 100;) {
    try {
      await op();
      ok++;
    } catch (err) {
      if (++failed > 50) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  const r = await closedLoop(c, warmup * 1000, seconds * 1000, op);
  process.stdout.write(`RESULT ${JSON.stringify({ system: name, concurrency: c, ...r })}\n`);
  process.exit(0);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
