/**
 * The node process's configuration: flags, then `COHORT_*` environment
 * variables, then a JSON config file (DESIGN.md, Interfaces for people), each
 * field taken from the first source that sets it, then defaults. Everything
 * is validated before anything starts; a bad value is an INVALID_ARGUMENT
 * CohortError whose message names the field and where it came from, with
 * `details.field` for scripts.
 *
 * ```ts
 * const config = resolveNodeConfig({
 *   flags: { id: 'n1', dataDir: '.cohort/n1', listen: '127.0.0.1:7101', rpc: '127.0.0.1:7201',
 *            peers: 'n2=127.0.0.1:7102,n3=127.0.0.1:7103' },
 *   env: process.env,                       // COHORT_ID, COHORT_DATA_DIR, COHORT_PEERS, ...
 * });                                       // flags.config / COHORT_CONFIG names a JSON file
 * config.peers.get(nodeId('n2'));           // { host: '127.0.0.1', port: 7102 }
 * ```
 *
 * Every option is one entry of {@link nodeOptions} (options.ts says how an
 * entry works): its config-file field is the entry's name (`tickMs`), its
 * flag `--tick-ms`, its variable `COHORT_TICK_MS`; the entry gives the flag's
 * placeholder and help, a TypeBox schema of the value, the default and, for
 * structured values, a parser. `cohort node` builds its flags and `--help`
 * from the same table ({@link nodeOptionFlags}).
 *
 * In the config file, `peers` may be the flag's string form or an object
 * `{ "n2": "127.0.0.1:7102" }`; numbers may be JSON numbers or strings.
 * A peer may also name its RPC address after a slash, `n2=127.0.0.1:7102/7202`
 * (same host) or `n2=127.0.0.1:7102/10.0.0.2:7202`, so followers can redirect
 * KV clients to the leader's RPC port ({@link NodeConfig.peerRpc}).
 */
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { Type } from '@sinclair/typebox';
import { clusterId, isValidId, nodeId } from '../lib/ids.js';
import { limits } from '../lib/limits.js';
import type { ClusterId, NodeId } from '../lib/ids.js';
import type { PeerAddress } from '../transport/tcp-transport.js';
import {
  bad,
  configFileFlag,
  configFileSchema,
  oneOf,
  option,
  optionFlags,
  resolveOptions,
} from './options.js';
import type { ConfigSources as OptionSources, OptionValue, ParseContext } from './options.js';

/** Log levels pino understands. */
export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** A pino log level. */
export type LogLevel = (typeof logLevels)[number];

/** How a node writes its log (see nodeOptions.logFormat). */
export const logFormats = ['auto', 'json', 'pretty'] as const;

/** A log format. */
export type LogFormat = (typeof logFormats)[number];

/** An id: letters, digits and . _ : - (lib/ids.ts). */
function parseId(value: string, ctx: ParseContext): string {
  if (!isValidId(value)) {
    throw bad(
      ctx.field,
      ctx.source,
      `${JSON.stringify(value)} may contain only letters, digits and . _ : -`,
      value,
    );
  }
  return value;
}

/** The peers and the RPC addresses some of them give. */
export interface PeerList {
  /** The other initial voters and their Raft addresses. */
  readonly peers: ReadonlyMap<NodeId, PeerAddress>;
  /**
   * The RPC addresses of those peers that gave one (`n2=host:port/rpcPort`),
   * so a follower can send clients to the leader's RPC port.
   */
  readonly peerRpc: ReadonlyMap<NodeId, PeerAddress>;
}

const nonEmpty = Type.String({ minLength: 1 });

/** Default ticks between heartbeats (see nodeOptions.heartbeatTicks). */
const HEARTBEAT_TICKS_DEFAULT = 2;

/**
 * The node's options, one entry each (see the file comment). Adding an option
 * is adding an entry here; {@link NodeConfig} gets the field, `cohort node` the
 * flag, and the file, env and errors follow.
 */
export const nodeOptions = {
  /** This node's id (also its id on the RPC port). */
  id: option({
    arg: '<id>',
    help: 'this node id',
    schema: nonEmpty,
    parse: (v, ctx) => nodeId(parseId(v, ctx)),
  }),
  /** Cluster id: carried in every handshake and every WAL segment; a mismatch is refused. */
  clusterId: option({
    arg: '<id>',
    help: 'cluster id, checked in handshakes and the WAL',
    schema: nonEmpty,
    default: 'cohort-local',
    parse: (v, ctx): ClusterId => clusterId(parseId(v, ctx)),
  }),
  /** Directory of the WAL and snapshots (absolute). */
  dataDir: option({
    arg: '<dir>',
    help: 'directory of the write-ahead log and snapshots',
    schema: nonEmpty,
    parse: (v, ctx) => resolve(ctx.cwd, v),
  }),
  /** Where Raft peers connect. */
  listen: option({
    arg: '<host:port>',
    help: 'Raft address peers connect to',
    schema: Type.String({ description: 'host:port' }),
    parse: (v, ctx) => parseHostPort(v, ctx.field, ctx.source),
  }),
  /** Where clients call the Node and Kv services (status, health, KV). */
  rpc: option({
    arg: '<host:port>',
    help: 'client RPC address: status, health, KV',
    schema: Type.String({ description: 'host:port' }),
    parse: (v, ctx) => parseHostPort(v, ctx.field, ctx.source),
  }),
  /** The other initial voters, and the RPC addresses of those that give one. */
  peers: option({
    arg: '<list>',
    help: 'the other voters: n2=host:port,n3=host:port (a peer may add its RPC port: n2=host:port/rpcPort)',
    schema: Type.Union([Type.String(), Type.Record(Type.String(), Type.String())], {
      description: '"id=host:port,..." or an object of id → "host:port"',
    }),
    default: '',
    defaultHelp: 'none',
    parse: (v, ctx): PeerList => parsePeerList(v, ctx.source),
  }),
  /**
   * The cluster CA's certificate (PEM; several for a CA rotation): every
   * peer's and client's certificate must chain to it. With tlsCert and
   * tlsKey, required unless `insecure`.
   */
  tlsCa: option({
    arg: '<file>',
    help: "the cluster CA's certificate (PEM) peers and clients must chain to",
    schema: Type.String(),
    default: '',
    defaultHelp: 'none: required unless --insecure',
    parse: (v, ctx): string | undefined => (v === '' ? undefined : resolve(ctx.cwd, v)),
  }),
  /** This node's certificate (PEM), naming it (cohort://<cluster>/node/<id>): `cohort certs issue node <id>`. */
  tlsCert: option({
    arg: '<file>',
    help: "this node's certificate (PEM), from cohort certs issue node <id>",
    schema: Type.String(),
    default: '',
    defaultHelp: 'none: required unless --insecure',
    parse: (v, ctx): string | undefined => (v === '' ? undefined : resolve(ctx.cwd, v)),
  }),
  /** Its private key (PEM; mode 0600 or stricter, or the node refuses it). */
  tlsKey: option({
    arg: '<file>',
    help: "this node's private key (PEM, mode 0600)",
    schema: Type.String(),
    default: '',
    defaultHelp: 'none: required unless --insecure',
    parse: (v, ctx): string | undefined => (v === '' ? undefined : resolve(ctx.cwd, v)),
  }),
  /**
   * Run without TLS: no connection is authenticated, so anyone who can reach
   * the node's ports may do anything (every caller is treated as root). Every
   * node of the cluster must then run with it: TLS and plaintext nodes refuse
   * each other.
   */
  insecure: option({
    arg: '',
    help: 'run without TLS: nobody is authenticated and anyone who reaches the ports may do anything (every node must agree)',
    schema: Type.Boolean(),
    default: false,
  }),
  /** Milliseconds per Raft tick. */
  tickMs: option({
    arg: '<n>',
    help: 'milliseconds per Raft tick',
    schema: Type.Integer({ minimum: 1, maximum: 10_000 }),
    default: 20,
  }),
  /** Base election timeout in ticks (Raft §5.2). */
  electionTicks: option({
    arg: '<n>',
    help: 'base election timeout in ticks',
    schema: Type.Integer({ minimum: 2, maximum: 10_000 }),
    default: 10,
  }),
  /**
   * Ticks between the leader's heartbeats (Raft §5.2), below electionTicks.
   * Heartbeats only keep followers from starting elections: a commit index
   * is sent to followers when it moves, and a linearizable read sends its
   * own confirmation round at once (dissertation §6.4), so a longer interval
   * costs neither write nor read latency, only time to notice a dead leader.
   */
  heartbeatTicks: option({
    arg: '<n>',
    help: "ticks between the leader's heartbeats (below --election-ticks)",
    schema: Type.Integer({ minimum: 1, maximum: 10_000 }),
    default: HEARTBEAT_TICKS_DEFAULT,
  }),
  /**
   * Snapshot and compact the log every this many applied entries (0: never).
   * etcd's default snapshot count; a KV snapshot (keys + kept history) stalls
   * the apply loop while it is taken.
   */
  snapshotEntries: option({
    arg: '<n>',
    help: 'snapshot every n applied entries, 0 never',
    schema: Type.Integer({ minimum: 0, maximum: 1e9 }),
    default: 100_000,
  }),
  /**
   * Where the WAL's fdatasync runs: 'auto' (inline while syncs are fast, on
   * the thread pool when the disk is slow), 'thread' (libuv's pool; the node
   * keeps serving during a sync) or 'inline' (on the event loop: no thread
   * hop, but the node stalls for each sync). See FileStorageOptions.syncMode.
   */
  walSync: option({
    arg: '<mode>',
    help: 'where the WAL fdatasync runs: auto (inline while syncs are fast), thread (libuv pool) or inline (stalls the node per sync)',
    schema: oneOf(['auto', 'thread', 'inline']),
    default: 'auto',
  }),
  /** pino level of the node's log. */
  logLevel: option({
    arg: '<level>',
    help: `log level: ${logLevels.join('|')}`,
    schema: oneOf(logLevels),
    default: 'info',
  }),
  /** How the log is written: JSON lines, pretty lines (pino-pretty), or pretty on a terminal and JSON otherwise. */
  logFormat: option({
    arg: '<format>',
    help: `log format: ${logFormats.join('|')} (auto: pretty on a terminal, JSON lines otherwise)`,
    schema: oneOf(logFormats),
    default: 'auto',
  }),
  /** MapReduce worker threads on this node (0: it only coordinates and serves the shuffle); default one per core. */
  workers: option({
    arg: '<n>',
    help: 'MapReduce worker threads, 0 for none',
    schema: Type.Integer({ minimum: 0, maximum: 256 }),
    default: () => Math.max(1, availableParallelism()),
    defaultHelp: 'one per core',
  }),
  /** Lease (ms) the MapReduce leader grants a task attempt; a dead worker's task is redone after it. */
  mrLeaseMs: option({
    arg: '<n>',
    help: 'MapReduce task lease in ms',
    schema: Type.Integer({ minimum: 100, maximum: 3_600_000 }),
    default: 10_000,
  }),
  /**
   * Warm the MapReduce worker threads when the node starts: each runs small
   * built-in jobs through the engine (~1 CPU s a thread), outside any job, so
   * the first job on a fresh node does not run on code still compiling.
   */
  mrWarm: option({
    arg: '',
    help: 'warm the MapReduce worker threads at start (about 1 CPU second each) so the first job runs at full speed',
    schema: Type.Boolean(),
    default: false,
  }),
  /**
   * The directories MapReduce job modules may load from (comma-separated;
   * default the node's working directory): a submitted job naming a module
   * elsewhere is refused PERMISSION_DENIED, by the leader and by every
   * worker (mapreduce/module-dirs.ts).
   */
  mrModuleDirs: option({
    arg: '<dirs>',
    help: 'comma-separated directories MapReduce job modules may load from',
    schema: Type.String(),
    default: '',
    defaultHelp: 'the working directory',
    parse: (v, ctx): string[] =>
      v === ''
        ? [ctx.cwd]
        : v
            .split(',')
            .filter((d) => d !== '')
            .map((d) => resolve(ctx.cwd, d)),
  }),
  /**
   * The KV store's storage quota in bytes (0: none), like etcd's
   * `--quota-backend-bytes`: past it writes get NO_SPACE (the NOSPACE alarm)
   * until deletes and compaction free space. The leader's value applies.
   */
  kvQuotaBytes: option({
    arg: '<n>',
    help: 'KV storage quota in bytes: past it writes fail with NO_SPACE until deletes and compaction free space, 0 none',
    schema: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
    default: limits.kvQuotaBytesDefault,
    defaultHelp: '536870912, 512 MiB',
  }),
  /**
   * Join an existing cluster (issue 15): any of its members' RPC endpoints,
   * `n1=host:port,...`. With an empty data dir the node starts with no
   * configuration and asks the leader to add it as a learner; the leader
   * promotes it once caught up (unless `learner`). Ignored once the node
   * holds a log: its membership and peers' addresses are in it.
   */
  join: option({
    arg: '<endpoints>',
    help: "join a running cluster through any member's RPC endpoint: n1=host:port,n2=host:port (only with an empty data dir; later starts need neither --join nor --peers)",
    schema: Type.String(),
    default: '',
    defaultHelp: 'none',
    parse: (v, ctx): JoinEndpoint[] => parseJoinEndpoints(v, ctx.source),
  }),
  /** Stay a learner (a non-voting member) when joining: the leader does not promote this node. */
  learner: option({
    arg: '',
    help: 'with --join: stay a learner (replicates, never votes) instead of being promoted once caught up',
    schema: Type.Boolean(),
    default: false,
  }),
  /**
   * The gateway as a role of this node: a JSON file with `cohort gateway`'s
   * config-file fields (read from the file alone; the node's COHORT_*
   * variables do not apply to it). Empty: no gateway.
   */
  gateway: option({
    arg: '<file>',
    help: "also run the load-balancing gateway in this process, configured by this JSON file (cohort gateway's config-file fields); SIGHUP reloads its backend lists",
    schema: Type.String({ maxLength: 4096 }),
    default: '',
    defaultHelp: 'none',
  }),
  /** Cut the WAL at a corrupt record (dropping everything after it) instead of refusing to start. */
  repair: option({
    arg: '',
    help: 'cut the WAL at a corrupt record, dropping everything after it, instead of refusing to start; prints what it drops',
    schema: Type.Boolean(),
    default: false,
  }),
};

type Options = typeof nodeOptions;

/** A configuration field name (as in the config file). */
export type ConfigField = keyof Options;

/** A validated node configuration (one field per {@link nodeOptions} entry; peers as a {@link PeerList}). */
export type NodeConfig = {
  readonly [K in Exclude<ConfigField, 'peers'>]: OptionValue<Options[K]>;
} & PeerList;

/** Raw values as they come from one source (strings from flags and env, anything from JSON). */
export type RawConfig = Partial<Record<ConfigField, unknown>>;

/** The JSON Schema of the config file (every field optional, no others). */
export const nodeConfigFileSchema = configFileSchema(nodeOptions);

/** The flags of `cohort node` (commander's flag text and help), from {@link nodeOptions}. */
export function nodeOptionFlags(): { field: string; flags: string; help: string }[] {
  return optionFlags(nodeOptions);
}

/** The `cohort node` config file flag (`--config <file>`, or COHORT_CONFIG). */
export { configFileFlag };

/** Inputs of {@link resolveNodeConfig}: flags (commander's names; `config` names the file), env, cwd. */
export type ConfigSources = OptionSources<ConfigField>;

/** Parses `host:port` (port 1..65535); `what` names the field in the error. */
export function parseHostPort(text: unknown, what = 'address', source = 'argument'): PeerAddress {
  if (typeof text !== 'string') throw bad(what, source, 'expected a string host:port', text);
  const i = text.lastIndexOf(':');
  if (i <= 0) throw bad(what, source, `expected host:port, got ${JSON.stringify(text)}`, text);
  const host = text.slice(0, i);
  const portText = text.slice(i + 1);
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw bad(
      what,
      source,
      `port must be an integer 1..65535, got ${JSON.stringify(portText)}`,
      text,
    );
  }
  return { host, port };
}

/** A member's RPC endpoint, as `--join` names it. */
export interface JoinEndpoint {
  readonly id: string;
  readonly rpc: PeerAddress;
}

/** Parses `--join n1=host:port,n2=host:port` (RPC endpoints; empty: not joining). */
export function parseJoinEndpoints(value: string, source = 'argument'): JoinEndpoint[] {
  const out: JoinEndpoint[] = [];
  for (const part of value.split(',')) {
    const item = part.trim();
    if (item === '') continue;
    const eq = item.indexOf('=');
    const id = item.slice(0, eq);
    if (eq <= 0 || !isValidId(id)) {
      throw bad(
        'join',
        source,
        `expected id=host:port (a member's RPC endpoint), got ${JSON.stringify(item)}`,
        value,
      );
    }
    out.push({ id, rpc: parseHostPort(item.slice(eq + 1), `join.${id}`, source) });
  }
  return out;
}

/** Parses `n2=host:port,n3=host:port` (or a JSON object of id → "host:port"). */
export function parsePeers(value: unknown, source = 'argument'): Map<NodeId, PeerAddress> {
  return parsePeerList(value, source).peers;
}

/** Parses the peer list with the optional RPC addresses (`n2=host:port/rpcPort`). */
export function parsePeerList(
  value: unknown,
  source = 'argument',
): { peers: Map<NodeId, PeerAddress>; peerRpc: Map<NodeId, PeerAddress> } {
  const pairs: [string, unknown][] = [];
  if (typeof value === 'string') {
    for (const part of value.split(',')) {
      const item = part.trim();
      if (item === '') continue;
      const eq = item.indexOf('=');
      if (eq <= 0) {
        throw bad('peers', source, `expected id=host:port, got ${JSON.stringify(item)}`, value);
      }
      pairs.push([item.slice(0, eq), item.slice(eq + 1)]);
    }
  } else if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    pairs.push(...Object.entries(value));
  } else {
    throw bad(
      'peers',
      source,
      'expected "id=host:port,..." or an object of id → "host:port"',
      value,
    );
  }
  const peers = new Map<NodeId, PeerAddress>();
  const peerRpc = new Map<NodeId, PeerAddress>();
  for (const [id, addr] of pairs) {
    if (!isValidId(id)) throw bad('peers', source, `bad node id ${JSON.stringify(id)}`, value);
    if (peers.has(id as NodeId)) throw bad('peers', source, `node ${id} is listed twice`, value);
    const slash = typeof addr === 'string' ? addr.indexOf('/') : -1;
    if (typeof addr === 'string' && slash >= 0) {
      const raft = parseHostPort(addr.slice(0, slash), `peers.${id}`, source);
      const rpcText = addr.slice(slash + 1);
      const rpc = /^\d+$/.test(rpcText)
        ? parseHostPort(`${raft.host}:${rpcText}`, `peers.${id}.rpc`, source)
        : parseHostPort(rpcText, `peers.${id}.rpc`, source);
      peers.set(nodeId(id), raft);
      peerRpc.set(nodeId(id), rpc);
    } else {
      peers.set(nodeId(id), parseHostPort(addr, `peers.${id}`, source));
    }
  }
  return { peers, peerRpc };
}

/**
 * Merges flags, env and the config file (in that order of precedence),
 * applies defaults and validates ({@link resolveOptions} over
 * {@link nodeOptions}, then the checks across fields). Throws
 * INVALID_ARGUMENT naming the field and its source.
 */
export function resolveNodeConfig(sources: ConfigSources): NodeConfig {
  const { values, sourceOf } = resolveOptions(nodeOptions, sources);
  const { peers: peerList, ...rest } = values;
  const config: NodeConfig = { ...rest, ...peerList };
  if (config.peers.has(config.id)) {
    throw bad('peers', sourceOf.peers, `must not list the node itself (${config.id})`);
  }
  const tls = [config.tlsCa, config.tlsCert, config.tlsKey];
  if (config.insecure && tls.some((f) => f !== undefined)) {
    throw bad(
      'insecure',
      sourceOf.insecure,
      'conflicts with --tls-ca / --tls-cert / --tls-key: run with TLS or without, not both',
    );
  }
  if (!config.insecure && tls.some((f) => f === undefined)) {
    const missing = (['tlsCa', 'tlsCert', 'tlsKey'] as const).find((f) => config[f] === undefined);
    throw bad(
      missing ?? 'tlsCert',
      sourceOf[missing ?? 'tlsCert'],
      'a node runs over mutual TLS: give --tls-ca, --tls-cert and --tls-key (cohort certs init, then cohort certs issue node <id>, make them; cohort up does it all), or --insecure to run without TLS',
    );
  }
  if (config.join.length > 0 && config.peers.size > 0) {
    throw bad(
      'join',
      sourceOf.join,
      'a joining node takes its peers from the cluster: drop --peers',
    );
  }
  if (config.learner && config.join.length === 0) {
    throw bad('learner', sourceOf.learner, 'only means something with --join');
  }
  if (config.heartbeatTicks >= config.electionTicks) {
    throw bad(
      'heartbeatTicks',
      sourceOf.heartbeatTicks,
      `must be below electionTicks (${config.electionTicks}): a follower that hears no heartbeat for an election timeout starts an election`,
    );
  }
  if (config.listen.port === config.rpc.port && config.listen.host === config.rpc.host) {
    throw bad(
      'rpc',
      sourceOf.rpc,
      `must differ from listen (${config.listen.host}:${config.listen.port})`,
    );
  }
  return config;
}
