/**
 * bench/rpc.ts — unary echo of a 100-byte payload, client and server in
 * separate processes on 127.0.0.1, closed loop at concurrency 1 and 64:
 * cohort RPC over its TCP transport against @grpc/grpc-js and Moleculer (TCP
 * transporter), side by side in one run.
 *
 * ```sh
 * npm run bench:rpc                                   # 3 reps of 1 s warm-up + 10 s per (system, c)
 * BENCH_SECONDS=2 BENCH_WARMUP_SECONDS=0.5 BENCH_REPS=1 npm run bench:rpc    # a quick look
 * BENCH_SYSTEMS=cohort,moleculer BENCH_CONCURRENCY=64 npm run bench:rpc
 * ```
 *
 * Method (as in bench/peers): c workers each issue the next request when
 * the previous one returns; requests started during the warm-up are not
 * recorded; p50/p99 are nearest-rank over every request completed in the
 * measured window. One server process per system and repetition, a fresh
 * client process per (system, concurrency). The systems alternate within a
 * repetition (A B C, then C B A, ...); BENCH_REPS (default 3) repetitions,
 * medians with min–max.
 *
 * Equal work: every system echoes a 100-byte payload (cohort and grpc-js a
 * 100-byte byte string, `bytes payload` in grpc's proto; Moleculer a
 * 100-character string, as JSON has no bytes), at the same concurrency, with
 * one server process and one client process each, every reply checked. The
 * client library is half of what an RPC framework is, so the client's cost
 * is part of the comparison; the CPU of the client and of the server process
 * is printed for each run, and a client above 70 % of a core is marked
 * client-bound (its figure is then the client's ceiling). Peers are set up as
 * they were measured in bench/peers: grpc-js with @grpc/proto-loader,
 * Moleculer with its TCP transporter, static URLs, no UDP discovery, JSON
 * serializer, loopback only.
 *
 * Prints one line per run, the medians, the ratios cohort/peer per
 * concurrency (median of the per-repetition ratios), and last
 * `rpc echo ... ratio X`, X the lowest of those ratios. Figures:
 * bench/RESULTS.md.
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
import {
  CLIENT_BOUND_PERCENT,
  CpuMeter,
  DEFAULT_REPS,
  alternate,
  closedLoop,
  fmtSpread,
  kilo,
  percentile,
  spread,
  startBench,
} from './common.js';

const require = createRequire(import.meta.url);
const SELF = fileURLToPath(import.meta.url);
const PAYLOAD_BYTES = 100;
const PAYLOAD_TEXT = 'x'.repeat(PAYLOAD_BYTES);

/** The echo service cohort serves. */
const Echo = defineService('Echo', {
  echo: unary(
    Type.Object({ payload: Type.Uint8Array({ maxByteLength: 4096 }) }),
    Type.Object({ payload: Type.Uint8Array() }),
    { idempotent: true },
  ),
});

/** One run's figures, as a client process reports them (CPU added by the orchestrator). */
interface Result {
  system: string;
  concurrency: number;
  ops: number;
  errors: number;
  opsPerSec: number;
  p50Us: number;
  p99Us: number;
  firstError?: string;
  /** CPU of the client process and of the server process over the window, % of one core. */
  clientCpu: number;
  serverCpu?: number;
}

type Op = () => Promise<void>;

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
  const request = { payload: new Uint8Array(PAYLOAD_BYTES).fill(0x78) };
  return async () => {
    const r = await stub.echo(request);
    if (r.payload.length !== PAYLOAD_BYTES) throw new Error('bad echo');
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
  const msg = { payload: Buffer.alloc(PAYLOAD_BYTES, 'x') };
  return () =>
    new Promise<void>((resolve, reject) =>
      client.Echo(msg, (err, res) => {
        if (err !== null) reject(err);
        else if (res.payload.length !== PAYLOAD_BYTES) reject(new Error('bad echo'));
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
  // Loopback only (see bench/peers/README.md): bind the listener to
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
    if (r.payload.length !== PAYLOAD_BYTES) throw new Error('bad echo');
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

/** Calls `on(line)` for every stdout line of `proc`. */
function onLines(proc: ChildProcess, on: (line: string) => void): void {
  let buf = '';
  proc.stdout?.on('data', (chunk: Buffer) => {
    buf += chunk.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      on(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
}

/** Resolves with the first stdout line starting with `prefix` (without it). */
function lineFrom(proc: ChildProcess, prefix: string): Promise<string> {
  return new Promise((resolve, reject) => {
    onLines(proc, (line) => {
      if (line.startsWith(prefix)) resolve(line.slice(prefix.length));
    });
    proc.once('exit', (code) => reject(new Error(`child exited (${code}) before "${prefix}"`)));
  });
}

/** Runs one client process against the server `server`; the server's CPU is sampled over the client's window. */
function runClient(args: string[], server: ChildProcess): Promise<Result> {
  const client = child(args);
  const meter = new CpuMeter(() => new Map([['server', server.pid ?? -1]]));
  return new Promise((resolve, reject) => {
    onLines(client, (line) => {
      if (line === 'WARM') meter.start();
      else if (line.startsWith('RESULT ')) {
        const r = JSON.parse(line.slice('RESULT '.length)) as Result;
        const cpu = meter.stop().get('server');
        if (cpu !== undefined) r.serverCpu = cpu;
        resolve(r);
      }
    });
    client.once('exit', (code) => reject(new Error(`client exited (${code}) without a result`)));
  });
}

function clientBound(r: Result): boolean {
  return r.clientCpu > CLIENT_BOUND_PERCENT;
}

function line(r: Result): string {
  return (
    `${r.system.padEnd(9)} c=${String(r.concurrency).padEnd(3)} ${String(Math.round(r.opsPerSec)).padStart(7)} ops/s` +
    `  p50 ${(r.p50Us / 1000).toFixed(3)} ms  p99 ${(r.p99Us / 1000).toFixed(3)} ms` +
    `  cpu client ${r.clientCpu.toFixed(0)}% server ${r.serverCpu?.toFixed(0) ?? '?'}%` +
    (clientBound(r) ? '  CLIENT-BOUND' : '') +
    (r.errors > 0
      ? `  errors ${r.errors}${r.firstError === undefined ? '' : ` (${r.firstError})`}`
      : '')
  );
}

async function orchestrate(): Promise<void> {
  const seconds = Number(process.env.BENCH_SECONDS ?? 10);
  const warmup = Number(process.env.BENCH_WARMUP_SECONDS ?? 1);
  const concs = (process.env.BENCH_CONCURRENCY ?? '1,64').split(',').map(Number);
  const chosen = (process.env.BENCH_SYSTEMS ?? 'cohort,grpc,moleculer').split(',');
  for (const name of chosen) if (!isSystem(name)) throw new Error(`unknown system ${name}`);
  const reps = Math.max(1, Number(process.env.BENCH_REPS ?? DEFAULT_REPS));
  const results: (Result & { rep: number })[] = [];
  const bench = startBench(
    'rpc',
    `unary echo, ${PAYLOAD_BYTES}-byte payload, 127.0.0.1, one server and one client process per system, ` +
      `${warmup} s warm-up + ${seconds} s, concurrency ${concs.join(', ')}, ${reps} rep(s), systems alternating`,
  );
  await alternate(reps, chosen, async (name, rep) => {
    const server = child(['server', name]);
    try {
      await lineFrom(server, 'READY');
      for (const c of concs) {
        const r = await runClient(
          ['client', name, String(c), String(warmup), String(seconds)],
          server,
        );
        results.push({ ...r, rep });
        bench.sample();
        console.log(`${line(r)}${reps > 1 ? `  (rep ${rep + 1})` : ''}`);
      }
    } finally {
      server.kill('SIGKILL');
    }
  });
  const of = (s: string, c: number): (Result & { rep: number })[] =>
    results.filter((r) => r.system === s && r.concurrency === c);
  console.log(`\nmedians of ${reps} (min–max):`);
  for (const name of chosen) {
    for (const c of concs) {
      const rs = of(name, c);
      if (rs.length === 0) continue;
      const bound = rs.filter(clientBound).length;
      console.log(
        `${name.padEnd(9)} c=${String(c).padEnd(3)} ${fmtSpread(spread(rs.map((r) => r.opsPerSec)), kilo)} ops/s` +
          `  p50 ${fmtSpread(spread(rs.map((r) => r.p50Us / 1000)), (x) => x.toFixed(3))} ms` +
          `  p99 ${fmtSpread(spread(rs.map((r) => r.p99Us / 1000)), (x) => x.toFixed(3))} ms` +
          `  cpu client ${spread(rs.map((r) => r.clientCpu)).median.toFixed(0)}%` +
          ` server ${spread(rs.map((r) => r.serverCpu ?? NaN)).median.toFixed(0)}%` +
          (bound > 0 ? `  CLIENT-BOUND in ${bound} of ${rs.length}` : ''),
      );
    }
  }
  console.log('\nratios cohort/peer (median of the per-repetition ratios, min–max):');
  const points: string[] = [];
  const ratios: number[] = [];
  for (const peer of ['grpc', 'moleculer']) {
    for (const c of concs) {
      const mine = of('cohort', c);
      const theirs = of(peer, c);
      if (mine.length === 0 || theirs.length === 0) continue;
      const per = mine.flatMap((a) => {
        const b = theirs.find((x) => x.rep === a.rep);
        return b === undefined ? [] : [a.opsPerSec / b.opsPerSec];
      });
      const r = spread(per);
      const bound = [...mine, ...theirs].some(clientBound);
      console.log(
        `rpc echo c=${c}: cohort ${kilo(spread(mine.map((x) => x.opsPerSec)).median)}/s, ${peer} ${kilo(spread(theirs.map((x) => x.opsPerSec)).median)}/s, ` +
          `throughput ratio ${fmtSpread(r)}` +
          `, p50 ratio ${(spread(mine.map((x) => x.p50Us)).median / spread(theirs.map((x) => x.p50Us)).median).toFixed(2)}` +
          `, p99 ratio ${(spread(mine.map((x) => x.p99Us)).median / spread(theirs.map((x) => x.p99Us)).median).toFixed(2)}` +
          (bound ? ' (a client was client-bound)' : ''),
      );
      points.push(`${peer} c=${c} ${r.median.toFixed(2)}`);
      ratios.push(r.median);
    }
  }
  bench.finish();
  if (ratios.length === 0) {
    console.log('rpc echo: cohort and a peer were not both run, no ratio');
    return;
  }
  console.log(
    `rpc echo cohort/peer throughput (${PAYLOAD_BYTES} B, one client process each): ${points.join(', ')}; ratio ${Math.min(...ratios).toFixed(2)}`,
  );
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
  let cpu0 = process.cpuUsage();
  const r = await closedLoop(c, warmup * 1000, seconds * 1000, op, () => {
    cpu0 = process.cpuUsage();
    process.stdout.write('WARM\n');
  });
  const cpu = process.cpuUsage(cpu0);
  const result: Result = {
    system: name,
    concurrency: c,
    ops: r.ops,
    errors: r.errors,
    opsPerSec: r.ops / r.seconds,
    p50Us: Math.round(percentile(r.latenciesUs, 0.5)),
    p99Us: Math.round(percentile(r.latenciesUs, 0.99)),
    ...(r.firstError === undefined ? {} : { firstError: r.firstError }),
    clientCpu: ((cpu.user + cpu.system) / 1000 / (seconds * 1000)) * 100,
  };
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  process.exit(0);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
