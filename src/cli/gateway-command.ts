/**
 * `cohort gateway`: runs the serving farm's gateway process — an HTTP
 * reverse proxy and/or an RPC front end in front of stateless backends, and
 * an admin port (`/status`, `/metrics`) — until SIGINT or SIGTERM.
 *
 * ```sh
 * cohort gateway --backends a=127.0.0.1:8081,b=127.0.0.1:8082 --listen 127.0.0.1:8080 --admin 127.0.0.1:8090
 * cohort gateway --rpc-listen 127.0.0.1:7500 --rpc-backends ttt-1=127.0.0.1:7401,ttt-2=127.0.0.1:7402 \
 *   --rpc-methods TicTacToe.move:idempotent,TicTacToe.state:idempotent,TicTacToe.watch:stream:idempotent
 * ```
 *
 * Every setting is one entry of {@link gatewayOptions}, resolved like the
 * node's (src/node/options.ts): flag, then `COHORT_*` variable, then the
 * `--config` JSON file, then the default. Exit codes: 0 after a clean
 * shutdown, 2 for a bad configuration, 1 when the gateway could not start.
 *
 * SIGHUP reloads the backend lists ({@link reloadBackends}): edit the
 * `--config` file and `kill -HUP` the gateway; removed backends drain.
 *
 * Backends by name: `--service ListMax` (HTTP) or `--rpc-service ListMax`
 * (RPC) instead of a list follows the instances registered under that name
 * in a cluster's naming registry (src/naming): a new instance joins, one
 * that deregisters or whose lease expires drains. The cluster is found like
 * every client command's (target.ts), from `--registry-endpoints`,
 * `--registry-dir` or the nearest `.cohort/`, with its cluster.json's
 * certificate (or COHORT_TLS_*); `--registry-insecure` for a plaintext one.
 *
 * ```sh
 * cohort gateway --rpc-listen 127.0.0.1:7500 --rpc-service ListMax --rpc-methods ListMax.listMax:idempotent
 * ```
 */
import { Type } from '@sinclair/typebox';
import type { Command } from 'commander';
import { pino } from 'pino';
import {
  FollowingBackendSource,
  parseBackends,
  StaticBackendSource,
} from '../gateway/backend-source.js';
import type { BackendSource, BackendSpec } from '../gateway/backend-source.js';
import { combineModes } from '../gateway/core/combine.js';
import type { CombineMode } from '../gateway/core/combine.js';
import { balances } from '../gateway/core/farm.js';
import { Gateway } from '../gateway/gateway.js';
import type { GatewayOptions } from '../gateway/gateway.js';
import type { ReplicatedRoute } from '../gateway/http-proxy.js';
import { parseRpcMethods } from '../gateway/rpc-front.js';
import { assert } from '../lib/assert.js';
import { CohortError, isCohortError } from '../lib/errors.js';
import { limits } from '../lib/limits.js';
import { logLevels, parseHostPort } from '../node/config.js';
import {
  bad,
  configFileFlag,
  oneOf,
  option,
  optionFlags,
  resolveOptions,
} from '../node/options.js';
import type { ParseContext } from '../node/options.js';
import { KvClient } from '../kv/client.js';
import { isValidServiceName } from '../naming/core/registry.js';
import { Naming } from '../naming/naming.js';
import { kvClientOptions, resolveTarget } from './target.js';

const hostPort = Type.String({ description: 'host:port' });
const list = Type.String({ description: 'a comma-separated list' });
const ms = (max: number) => Type.Integer({ minimum: 1, maximum: max });

function optionalAddress(v: string, ctx: ParseContext): { host: string; port: number } | undefined {
  return v === '' ? undefined : parseHostPort(v, ctx.field, ctx.source);
}

function rethrowAs<T>(ctx: ParseContext, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (isCohortError(e)) throw bad(ctx.field, ctx.source, e.message);
    throw e;
  }
}

/** Parses `prefix=mode:replicas,...` (HTTP) or `Service.method=mode:replicas,...` (RPC). */
function parseReplicate(
  text: string,
  ctx: ParseContext,
): { target: string; mode: CombineMode; replicas: number }[] {
  const out: { target: string; mode: CombineMode; replicas: number }[] = [];
  for (const raw of text.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    const eq = item.lastIndexOf('=');
    const [mode = '', n = ''] = item.slice(eq + 1).split(':');
    const replicas = Number(n);
    if (
      eq <= 0 ||
      !(combineModes as readonly string[]).includes(mode) ||
      !Number.isInteger(replicas) ||
      replicas < 1 ||
      replicas > limits.gatewayReplicasMax
    ) {
      throw bad(
        ctx.field,
        ctx.source,
        `expected target=${combineModes.join('|')}:replicas (1..${limits.gatewayReplicasMax}), got ${JSON.stringify(item)}`,
      );
    }
    out.push({ target: item.slice(0, eq), mode: mode as CombineMode, replicas });
  }
  return out;
}

/** The gateway's options, one entry each (src/node/options.ts says how an entry works). */
export const gatewayOptions = {
  /** HTTP backends: `id=host:port[*weight],...`. */
  backends: option({
    arg: '<list>',
    help: 'HTTP backends: id=host:port[*weight],... (empty: no HTTP proxy)',
    schema: list,
    default: '',
    defaultHelp: 'none',
    parse: (v, ctx) => rethrowAs(ctx, () => parseBackends(v, ctx.field)),
  }),
  /** HTTP backends by name: the instances registered under it. */
  service: option({
    arg: '<name>',
    help: "HTTP backends by name: the instances registered under it in the cluster's naming registry (instead of --backends)",
    schema: Type.String(),
    default: '',
    defaultHelp: 'none',
  }),
  /** Where the HTTP proxy listens. */
  listen: option({
    arg: '<host:port>',
    help: 'HTTP proxy address',
    schema: hostPort,
    default: '127.0.0.1:8080',
    parse: (v, ctx) => parseHostPort(v, ctx.field, ctx.source),
  }),
  /** The admin port: /status, /metrics, /healthz (empty: none). */
  admin: option({
    arg: '<host:port>',
    help: 'admin address: /status (JSON), /metrics (Prometheus), /healthz; empty for none',
    schema: Type.String(),
    default: '127.0.0.1:8090',
    parse: optionalAddress,
  }),
  /** How requests are spread. */
  balance: option({
    arg: '<rule>',
    help: `balancing: ${balances.join('|')} (p2c: power of two choices on outstanding requests)`,
    schema: oneOf(balances),
    default: 'p2c',
  }),
  /** The header (HTTP) whose value keys `hash` balancing; RPC uses the call metadata `key`. */
  hashHeader: option({
    arg: '<name>',
    help: 'HTTP header holding the key of hash balancing',
    schema: Type.String({ minLength: 1, maxLength: 128 }),
    default: 'x-cohort-key',
  }),
  checkIntervalMs: option({
    arg: '<n>',
    help: 'active health check interval per backend in ms, 0 for none',
    schema: Type.Integer({ minimum: 0, maximum: 3_600_000 }),
    default: 2_000,
  }),
  checkTimeoutMs: option({
    arg: '<n>',
    help: 'a check not answered within this many ms failed',
    schema: ms(600_000),
    default: 2_000,
  }),
  checkPath: option({
    arg: '<path>',
    help: 'HTTP check path (GET; 2xx/3xx is healthy)',
    schema: Type.String({ pattern: '^/', maxLength: 1024 }),
    default: '/',
  }),
  rise: option({
    arg: '<n>',
    help: 'successful checks in a row that bring a backend up',
    schema: Type.Integer({ minimum: 1, maximum: 100 }),
    default: 2,
  }),
  fall: option({
    arg: '<n>',
    help: 'failed checks in a row that take a backend down',
    schema: Type.Integer({ minimum: 1, maximum: 100 }),
    default: 3,
  }),
  ejectFailures: option({
    arg: '<n>',
    help: 'request failures in a row that eject a backend (open its breaker)',
    schema: Type.Integer({ minimum: 1, maximum: 10_000 }),
    default: 5,
  }),
  ejectMs: option({
    arg: '<n>',
    help: 'first ejection time in ms before a half-open probe (doubles per failed probe)',
    schema: ms(3_600_000),
    default: 2_000,
  }),
  ejectMsMax: option({
    arg: '<n>',
    help: 'ceiling of the doubled ejection time in ms',
    schema: ms(3_600_000),
    default: 60_000,
  }),
  timeoutMs: option({
    arg: '<n>',
    help: 'deadline of one HTTP request in ms, retries included',
    schema: ms(limits.gatewayTimeoutMsMax),
    default: 30_000,
  }),
  tryTimeoutMs: option({
    arg: '<n>',
    help: 'time one try waits for the response head (and between body chunks), in ms',
    schema: ms(limits.gatewayTimeoutMsMax),
    default: 10_000,
  }),
  connectTimeoutMs: option({
    arg: '<n>',
    help: 'time to connect to a backend in ms',
    schema: ms(600_000),
    default: limits.connectTimeoutMs,
  }),
  headerBytesMax: option({
    arg: '<n>',
    help: 'largest request head in bytes (past it: 431)',
    schema: Type.Integer({ minimum: 1024, maximum: 1024 * 1024 }),
    default: limits.gatewayHeaderBytesMax,
  }),
  bodyBytesMax: option({
    arg: '<n>',
    help: 'largest request body in bytes (past it: 413)',
    schema: Type.Integer({ minimum: 0, maximum: limits.gatewayBodyBytesMax }),
    default: limits.gatewayBodyBytesDefault,
  }),
  connectionsPerBackend: option({
    arg: '<n>',
    help: 'keep-alive connections per backend at most',
    schema: Type.Integer({ minimum: 1, maximum: limits.gatewayUpstreamConnectionsMax }),
    default: 64,
  }),
  /** Processes running the HTTP proxy (src/gateway/workers.ts). */
  workers: option({
    arg: '<n>',
    help: 'processes serving HTTP on the shared port, like HAProxy threads (health state per process; /status adds them up)',
    schema: Type.Integer({ minimum: 1, maximum: limits.gatewayWorkersMax }),
    default: 1,
  }),
  /** Replicated HTTP routes: `/prefix=first|majority|all:replicas,...`. */
  replicate: option({
    arg: '<list>',
    help: 'replicated HTTP routes: /path-prefix=first|majority|all:replicas,...',
    schema: list,
    default: '',
    defaultHelp: 'none',
    parse: (v, ctx): ReplicatedRoute[] =>
      parseReplicate(v, ctx).map((r) => {
        if (!r.target.startsWith('/')) throw bad(ctx.field, ctx.source, 'a prefix starts with /');
        return { pathPrefix: r.target, mode: r.mode, replicas: r.replicas };
      }),
  }),
  /** Where cohort RPC clients connect (empty: no RPC front end). */
  rpcListen: option({
    arg: '<host:port>',
    help: 'RPC front end address (empty: none)',
    schema: Type.String(),
    default: '',
    defaultHelp: 'none',
    parse: optionalAddress,
  }),
  rpcHttp: option({
    arg: '<host:port>',
    help: 'HTTP/JSON address of the RPC front end (POST /rpc/<service>/<method>)',
    schema: Type.String(),
    default: '',
    defaultHelp: 'none',
    parse: optionalAddress,
  }),
  rpcBackends: option({
    arg: '<list>',
    help: 'RPC backends: nodeId=host:port[*weight],...',
    schema: list,
    default: '',
    defaultHelp: 'none',
    parse: (v, ctx) => rethrowAs(ctx, () => parseBackends(v, ctx.field)),
  }),
  rpcService: option({
    arg: '<name>',
    help: "RPC backends by name: the instances registered under it in the cluster's naming registry (instead of --rpc-backends)",
    schema: Type.String(),
    default: '',
    defaultHelp: 'none',
  }),
  registryEndpoints: option({
    arg: '<list>',
    help: 'the naming registry: the RPC endpoints of its cluster, n1=host:port,... (default: --registry-dir, COHORT_ENDPOINTS, or the nearest .cohort/)',
    schema: Type.String(),
    default: '',
    defaultHelp: 'none',
  }),
  registryDir: option({
    arg: '<dir>',
    help: 'the naming registry: the cluster cohort up --dir started (its cluster.json and certificate)',
    schema: Type.String(),
    default: '',
    defaultHelp: 'the nearest .cohort/',
  }),
  registryInsecure: option({
    arg: '',
    help: 'talk plaintext to the naming registry (a cluster started with --insecure)',
    schema: Type.Boolean(),
    default: false,
  }),
  rpcMethods: option({
    arg: '<list>',
    help: 'routed RPC methods: Service.method[:idempotent][:stream],...',
    schema: list,
    default: '',
    defaultHelp: 'none',
    parse: (v, ctx) => rethrowAs(ctx, () => parseRpcMethods(v)),
  }),
  rpcReplicate: option({
    arg: '<list>',
    help: 'replicated RPC methods: Service.method=first|majority|all:replicas,...',
    schema: list,
    default: '',
    defaultHelp: 'none',
    parse: (v, ctx) => parseReplicate(v, ctx),
  }),
  rpcId: option({
    arg: '<id>',
    help: "the RPC front end's node id (clients dial it)",
    schema: Type.String({ minLength: 1 }),
    default: 'gateway',
  }),
  clusterId: option({
    arg: '<id>',
    help: 'cluster id of the RPC links (backends and clients must match)',
    schema: Type.String({ minLength: 1 }),
    default: 'cohort-examples',
  }),
  logLevel: option({
    arg: '<level>',
    help: `log level: ${logLevels.join('|')}`,
    schema: oneOf(logLevels),
    default: 'warn',
  }),
};

/** Flags as commander hands them over. */
type GatewayFlags = Partial<Record<keyof typeof gatewayOptions, unknown>> & { config?: string };

type Env = Readonly<Record<string, string | undefined>>;

/** Resolves and cross-checks the options (flags, env, file, defaults); throws INVALID_ARGUMENT. */
function resolveGatewayValues(flags: GatewayFlags, env: Env) {
  const resolved = resolveOptions(gatewayOptions, { flags, env });
  const { values: v, sourceOf } = resolved;
  for (const f of ['service', 'rpcService'] as const) {
    if (v[f] !== '' && !isValidServiceName(v[f])) {
      throw bad(f, sourceOf[f], `${JSON.stringify(v[f])} is not a service name`);
    }
  }
  if (v.service !== '' && v.backends.length > 0) {
    throw bad('service', sourceOf.service, 'give --backends or --service, not both');
  }
  if (v.rpcService !== '' && v.rpcBackends.length > 0) {
    throw bad('rpcService', sourceOf.rpcService, 'give --rpc-backends or --rpc-service, not both');
  }
  if (v.backends.length === 0 && v.service === '' && v.rpcListen === undefined) {
    throw bad(
      'backends',
      sourceOf.backends,
      'give HTTP --backends (or --service), or --rpc-listen with --rpc-backends (or --rpc-service)',
    );
  }
  if (v.rpcListen !== undefined) {
    if (v.rpcBackends.length === 0 && v.rpcService === '') {
      throw bad(
        'rpcBackends',
        sourceOf.rpcBackends,
        '--rpc-backends or --rpc-service is required with --rpc-listen',
      );
    }
    if (v.rpcMethods.length === 0) {
      throw bad('rpcMethods', sourceOf.rpcMethods, 'required with --rpc-listen');
    }
    const known = new Set(
      v.rpcMethods.flatMap((s) => [...s.compiled.keys()].map((m) => `${s.name}.${m}`)),
    );
    for (const r of v.rpcReplicate) {
      if (!known.has(r.target)) {
        throw bad('rpcReplicate', sourceOf.rpcReplicate, `${r.target} is not in --rpc-methods`);
      }
    }
  }
  return resolved;
}

/** Resolves flags, env and the file into the gateway's options; throws INVALID_ARGUMENT. */
export function resolveGatewayOptions(flags: GatewayFlags, env: Env = process.env): GatewayOptions {
  const { values: v } = resolveGatewayValues(flags, env);
  const logger = pino({ level: v.logLevel }, pino.destination(2));
  const health = {
    rise: v.rise,
    fall: v.fall,
    ejectFailures: v.ejectFailures,
    ejectMs: v.ejectMs,
    ejectMsMax: Math.max(v.ejectMs, v.ejectMsMax),
  };
  const out: { -readonly [K in keyof GatewayOptions]: GatewayOptions[K] } = {};
  if (v.backends.length > 0 || v.service !== '') {
    out.http = {
      listen: v.listen,
      source:
        v.service !== ''
          ? new FollowingBackendSource(v.service)
          : new StaticBackendSource(v.backends),
      balance: v.balance,
      hashHeader: v.hashHeader,
      health,
      check: { intervalMs: v.checkIntervalMs, timeoutMs: v.checkTimeoutMs, path: v.checkPath },
      timeoutMs: v.timeoutMs,
      tryTimeoutMs: v.tryTimeoutMs,
      connectTimeoutMs: v.connectTimeoutMs,
      headerBytesMax: v.headerBytesMax,
      bodyBytesMax: v.bodyBytesMax,
      connectionsPerBackend: v.connectionsPerBackend,
      replicated: v.replicate,
      logger,
    };
  }
  if (v.rpcListen !== undefined) {
    out.rpc = {
      listen: v.rpcListen,
      ...(v.rpcHttp === undefined ? {} : { http: v.rpcHttp }),
      id: v.rpcId,
      clusterId: v.clusterId,
      services: v.rpcMethods,
      source:
        v.rpcService !== ''
          ? new FollowingBackendSource(v.rpcService)
          : new StaticBackendSource(v.rpcBackends),
      balance: v.balance,
      health,
      check: { intervalMs: v.checkIntervalMs, timeoutMs: v.checkTimeoutMs },
      tryTimeoutMs: v.tryTimeoutMs,
      replicated: Object.fromEntries(
        v.rpcReplicate.map((r) => [r.target, { mode: r.mode, replicas: r.replicas }]),
      ),
      logger,
    };
  }
  if (v.admin !== undefined) out.admin = v.admin;
  if (v.workers > 1) out.workers = v.workers;
  return out;
}

/**
 * SIGHUP: resolves the options again (the config file may have changed)
 * and hands the new backend lists to the running gateway: new backends
 * join, removed ones drain (no new requests; in-flight ones finish), a
 * changed weight applies at once. Only the lists are reloaded; any other
 * setting needs a restart. Throws INVALID_ARGUMENT, leaving the running
 * lists as they were, on a bad configuration or on lists that would start
 * or stop the HTTP proxy or the RPC front end. Returns what now runs.
 */
export function reloadBackends(
  running: GatewayOptions,
  flags: GatewayFlags,
  env: Env = process.env,
): string {
  const { values: v, sourceOf } = resolveGatewayValues(flags, env);
  const following = (src: BackendSource | undefined): string | undefined =>
    src instanceof FollowingBackendSource ? src.service : undefined;
  if (following(running.http?.source) !== (v.service === '' ? undefined : v.service)) {
    throw bad('service', sourceOf.service, 'changing --service needs a restart');
  }
  if (following(running.rpc?.source) !== (v.rpcService === '' ? undefined : v.rpcService)) {
    throw bad('rpcService', sourceOf.rpcService, 'changing --rpc-service needs a restart');
  }
  if ((running.http !== undefined) !== (v.backends.length > 0 || v.service !== '')) {
    throw bad(
      'backends',
      sourceOf.backends,
      running.http === undefined
        ? 'the gateway runs without an HTTP proxy: adding HTTP backends needs a restart'
        : 'an empty list would leave the HTTP proxy without backends: drain them by leaving one, or restart',
    );
  }
  if ((running.rpc !== undefined) !== (v.rpcListen !== undefined)) {
    throw bad(
      'rpcListen',
      sourceOf.rpcListen,
      'starting or stopping the RPC front end needs a restart',
    );
  }
  const parts: string[] = [];
  const apply = (what: string, source: BackendSource | undefined, list: readonly BackendSpec[]) => {
    if (source === undefined) return;
    if (source instanceof FollowingBackendSource) {
      parts.push(`${what} backends follow service ${source.service}`);
      return;
    }
    assert(source instanceof StaticBackendSource, 'the command builds static backend sources');
    source.set(list);
    parts.push(
      `${what} backends ${list.map((b) => `${b.id}=${b.host}:${b.port}*${b.weight}`).join(',')}`,
    );
  };
  apply('HTTP', running.http?.source, v.backends);
  apply('RPC', running.rpc?.source, v.rpcBackends);
  return parts.join('; ');
}

/**
 * Starts following the service names of `running` (its FollowingBackendSources)
 * in the naming registry of the cluster the registry options name; resolves
 * once every name's first listing is in (unless `wait` is false: a node's
 * gateway starts with no backends while its own cluster elects a leader,
 * and the resolver keeps trying). Throws a CohortError saying why not (no
 * cluster, unreachable, PERMISSION_DENIED naming the prefix). The returned
 * function stops following and closes the registry client.
 */
export async function followServices(
  running: GatewayOptions,
  flags: GatewayFlags,
  env: Env = process.env,
  cwd: string = process.cwd(),
  wait = true,
): Promise<() => Promise<void>> {
  const sources = [running.http?.source, running.rpc?.source].filter(
    (x): x is FollowingBackendSource => x instanceof FollowingBackendSource,
  );
  if (sources.length === 0) return () => Promise.resolve();
  const { values: v } = resolveGatewayValues(flags, env);
  const target = resolveTarget(
    {
      ...(v.registryEndpoints === '' ? {} : { endpoints: v.registryEndpoints }),
      ...(v.registryDir === '' ? {} : { dir: v.registryDir }),
      ...(v.registryInsecure ? { insecure: true } : {}),
    },
    env,
    cwd,
  );
  const kv = await KvClient.connect({ ...kvClientOptions(target), lazy: !wait });
  const naming = new Naming(kv);
  const close = async (): Promise<void> => {
    for (const s of sources) s.stop();
    await naming.close();
    await kv.close();
  };
  try {
    for (const s of sources) {
      const resolver = naming.resolver(s.service);
      if (wait) await resolver.ready();
      s.follow(resolver);
    }
  } catch (e) {
    await close();
    throw e;
  }
  return close;
}

async function runGateway(flags: GatewayFlags): Promise<void> {
  let options: GatewayOptions;
  try {
    options = resolveGatewayOptions(flags);
  } catch (e) {
    if (e instanceof CohortError) {
      process.stderr.write(`cohort gateway: bad configuration: ${e.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw e;
  }
  let unfollow: () => Promise<void>;
  try {
    unfollow = await followServices(options, flags);
  } catch (e) {
    process.stderr.write(
      `cohort gateway: cannot follow the service names: ${isCohortError(e) ? `${e.code}: ` : ''}${e instanceof Error ? e.message : String(e)}\n`,
    );
    process.exitCode = 1;
    return;
  }
  let gw: Gateway;
  try {
    gw = await Gateway.start(options);
  } catch (e) {
    await unfollow();
    process.stderr.write(
      `cohort gateway: cannot start: ${e instanceof Error ? e.message : String(e)}\n`,
    );
    process.exitCode = 1;
    return;
  }
  const parts: string[] = [];
  const h = gw.httpAddress;
  if (h !== undefined) {
    const n = gw.httpProcesses;
    parts.push(`HTTP on ${h.host}:${h.port}${n > 1 ? ` (${n} worker processes)` : ''}`);
  }
  if (gw.rpc !== undefined) {
    parts.push(`RPC on ${gw.rpc.address.host}:${gw.rpc.address.port}`);
    const r = gw.rpc.httpAddress;
    if (r !== undefined) parts.push(`RPC HTTP/JSON on ${r.host}:${r.port}`);
  }
  const a = gw.adminAddress;
  if (a !== undefined) parts.push(`admin on ${a.host}:${a.port}`);
  process.stdout.write(`cohort gateway: ${parts.join(', ')} (pid ${process.pid})\n`);
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      process.stderr.write(`cohort gateway: ${signal}, shutting down\n`);
      gw.close()
        .then(unfollow)
        .then(resolve, (e: unknown) => {
          process.stderr.write(`cohort gateway: shutdown failed: ${String(e)}\n`);
          process.exitCode = 1;
          resolve();
        });
    };
    const reload = (): void => {
      if (stopping) return;
      try {
        const now = reloadBackends(options, flags);
        process.stderr.write(`cohort gateway: SIGHUP, reloaded: ${now}\n`);
      } catch (e) {
        if (!(e instanceof CohortError)) throw e;
        process.stderr.write(
          `cohort gateway: SIGHUP, reload refused, backends unchanged: ${e.message}\n`,
        );
      }
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGHUP', reload);
  });
}

/** Adds `cohort gateway` to `program`; its flags come from {@link gatewayOptions}. */
export function registerGatewayCommand(program: Command): void {
  const command = program
    .command('gateway')
    .description(
      'run the load-balancing gateway: HTTP proxy and RPC front end over stateless backends',
    );
  for (const { flags, help } of optionFlags(gatewayOptions)) command.option(flags, help);
  command.option(configFileFlag.flags, configFileFlag.help).action(async (flags: GatewayFlags) => {
    await runGateway(flags);
  });
}
