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
 * In the config file, `peers` may be the flag's string form or an object
 * `{ "n2": "127.0.0.1:7102" }`; numbers may be JSON numbers or strings.
 * A peer may also name its RPC address after a slash, `n2=127.0.0.1:7102/7202`
 * (same host) or `n2=127.0.0.1:7102/10.0.0.2:7202`, so followers can redirect
 * KV clients to the leader's RPC port ({@link NodeConfig.peerRpc}).
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { CohortError } from '../lib/errors.js';
import { clusterId, isValidId, nodeId } from '../lib/ids.js';
import type { ClusterId, NodeId } from '../lib/ids.js';
import type { PeerAddress } from '../transport/tcp-transport.js';

/** Log levels pino understands. */
export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** A pino log level. */
export type LogLevel = (typeof logLevels)[number];

/** A validated node configuration. */
export interface NodeConfig {
  /** This node's id (also its id on the RPC port). */
  readonly id: NodeId;
  /** Cluster id: carried in every handshake and every WAL segment; a mismatch is refused. */
  readonly clusterId: ClusterId;
  /** Directory of the WAL and snapshots (absolute). */
  readonly dataDir: string;
  /** Where Raft peers connect. */
  readonly listen: PeerAddress;
  /** Where clients call the Node service (status, health). */
  readonly rpc: PeerAddress;
  /** The other initial voters and their Raft addresses. */
  readonly peers: ReadonlyMap<NodeId, PeerAddress>;
  /**
   * The RPC addresses of those peers that gave one (`n2=host:port/rpcPort`),
   * so a follower can send clients to the leader's RPC port.
   */
  readonly peerRpc: ReadonlyMap<NodeId, PeerAddress>;
  /** Milliseconds per Raft tick. */
  readonly tickMs: number;
  /** Base election timeout in ticks (Raft §5.2). */
  readonly electionTicks: number;
  /** Snapshot and compact the log every this many applied entries (0: never). */
  readonly snapshotEntries: number;
  /**
   * Where the WAL's fdatasync runs: 'auto' (inline while syncs are fast, on
   * the thread pool when the disk is slow), 'thread' (libuv's pool; the node
   * keeps serving during a sync) or 'inline' (on the event loop: no thread
   * hop, but the node stalls for each sync). See FileStorageOptions.syncMode.
   */
  readonly walSync: 'auto' | 'thread' | 'inline';
  /** pino level of the node's log. */
  readonly logLevel: LogLevel;
  /** MapReduce worker threads on this node (0: it only coordinates and serves the shuffle); default one per core. */
  readonly workers: number;
  /** Lease (ms) the MapReduce leader grants a task attempt; a dead worker's task is redone after it. */
  readonly mrLeaseMs: number;
  /** Cut the WAL at a corrupt record (dropping everything after it) instead of refusing to start. */
  readonly repair: boolean;
}

/** Raw values as they come from one source (strings from flags and env, anything from JSON). */
export type RawConfig = Partial<Record<ConfigField, unknown>>;

/** The fields, with their flag, env and file names. */
const fields = {
  id: { flag: '--id', env: 'COHORT_ID' },
  clusterId: { flag: '--cluster-id', env: 'COHORT_CLUSTER_ID' },
  dataDir: { flag: '--data-dir', env: 'COHORT_DATA_DIR' },
  listen: { flag: '--listen', env: 'COHORT_LISTEN' },
  rpc: { flag: '--rpc', env: 'COHORT_RPC' },
  peers: { flag: '--peers', env: 'COHORT_PEERS' },
  tickMs: { flag: '--tick-ms', env: 'COHORT_TICK_MS' },
  electionTicks: { flag: '--election-ticks', env: 'COHORT_ELECTION_TICKS' },
  snapshotEntries: { flag: '--snapshot-entries', env: 'COHORT_SNAPSHOT_ENTRIES' },
  walSync: { flag: '--wal-sync', env: 'COHORT_WAL_SYNC' },
  logLevel: { flag: '--log-level', env: 'COHORT_LOG_LEVEL' },
  workers: { flag: '--workers', env: 'COHORT_WORKERS' },
  mrLeaseMs: { flag: '--mr-lease-ms', env: 'COHORT_MR_LEASE_MS' },
  repair: { flag: '--repair', env: 'COHORT_REPAIR' },
} as const;

/** A configuration field name (as in the config file). */
export type ConfigField = keyof typeof fields;

/** The config file's name in flags and env. */
const configFlag = '--config';
const configEnv = 'COHORT_CONFIG';

/** Default values of the optional fields. */
export const nodeConfigDefaults = {
  clusterId: 'cohort-local',
  tickMs: 20,
  electionTicks: 10,
  // etcd's default snapshot count; a KV snapshot (keys + kept history) stalls the apply loop while it is taken.
  snapshotEntries: 100_000,
  walSync: 'auto',
  logLevel: 'info',
  mrLeaseMs: 10_000,
} as const;

/** Inputs of {@link resolveNodeConfig}. */
export interface ConfigSources {
  /** Parsed flags (commander's camelCase names); `config` names the file. */
  readonly flags: RawConfig & { readonly config?: string };
  /** The environment (COHORT_* variables are read). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Base directory for relative paths (default: the working directory). */
  readonly cwd?: string;
}

function bad(field: string, source: string, message: string, value?: unknown): CohortError {
  return new CohortError('INVALID_ARGUMENT', `${field} (${source}): ${message}`, {
    details: { field, source, ...(value === undefined ? {} : { value }) },
  });
}

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

function intField(field: string, source: string, value: unknown, min: number, max: number): number {
  const n = typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min || n > max) {
    throw bad(
      field,
      source,
      `expected an integer ${min}..${max}, got ${JSON.stringify(value)}`,
      value,
    );
  }
  return n;
}

function readConfigFile(path: string, source: string): RawConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw bad('config', source, `cannot read ${path}: ${(e as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw bad('config', source, `${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw bad('config', source, `${path} must hold a JSON object`);
  }
  for (const key of Object.keys(parsed)) {
    if (!Object.prototype.hasOwnProperty.call(fields, key)) {
      throw bad(
        key,
        `config file ${path}`,
        `unknown field (known: ${Object.keys(fields).join(', ')})`,
      );
    }
  }
  return parsed;
}

/**
 * Merges flags, env and the config file (in that order of precedence),
 * applies defaults and validates. Throws INVALID_ARGUMENT naming the field.
 */
export function resolveNodeConfig(sources: ConfigSources): NodeConfig {
  const env = sources.env ?? {};
  const cwd = sources.cwd ?? process.cwd();
  const fileFromFlag = sources.flags.config;
  const fileFromEnv = env[configEnv];
  const configPath = fileFromFlag ?? fileFromEnv;
  const fileSource = fileFromFlag !== undefined ? configFlag : configEnv;
  const file =
    configPath === undefined || configPath === ''
      ? {}
      : readConfigFile(resolve(cwd, configPath), fileSource);

  /** The value of `field` and where it came from, or undefined. */
  const pick = (field: ConfigField): { value: unknown; source: string } | undefined => {
    const f = sources.flags[field];
    if (f !== undefined) return { value: f, source: fields[field].flag };
    const e = env[fields[field].env];
    if (e !== undefined && e !== '') return { value: e, source: fields[field].env };
    const c = file[field];
    if (c !== undefined) return { value: c, source: `config file ${String(configPath)}` };
    return undefined;
  };
  const required = (field: ConfigField): { value: unknown; source: string } => {
    const v = pick(field);
    if (v === undefined) {
      throw bad(
        field,
        'missing',
        `required: pass ${fields[field].flag}, set ${fields[field].env}, or put "${field}" in the config file`,
      );
    }
    return v;
  };
  const text = (field: ConfigField, v: { value: unknown; source: string }): string => {
    if (typeof v.value !== 'string' || v.value === '') {
      throw bad(field, v.source, 'expected a non-empty string', v.value);
    }
    return v.value;
  };
  const idOf = (field: ConfigField, v: { value: unknown; source: string }): string => {
    const s = text(field, v);
    if (!isValidId(s)) {
      throw bad(
        field,
        v.source,
        `${JSON.stringify(s)} may contain only letters, digits and . _ : -`,
        s,
      );
    }
    return s;
  };
  const withDefault = (field: ConfigField, dflt: unknown): { value: unknown; source: string } =>
    pick(field) ?? { value: dflt, source: 'default' };

  const idV = required('id');
  const id = nodeId(idOf('id', idV));
  const cluster = clusterId(
    idOf('clusterId', withDefault('clusterId', nodeConfigDefaults.clusterId)),
  );
  const dataDirV = required('dataDir');
  const dataDir = resolve(cwd, text('dataDir', dataDirV));
  const listenV = required('listen');
  const listen = parseHostPort(listenV.value, 'listen', listenV.source);
  const rpcV = required('rpc');
  const rpc = parseHostPort(rpcV.value, 'rpc', rpcV.source);
  const peersV = pick('peers') ?? { value: '', source: 'default' };
  const { peers, peerRpc } = parsePeerList(peersV.value, peersV.source);
  if (peers.has(id)) throw bad('peers', peersV.source, `must not list the node itself (${id})`);
  if (listen.port === rpc.port && listen.host === rpc.host) {
    throw bad('rpc', rpcV.source, `must differ from listen (${listen.host}:${listen.port})`);
  }
  const tickV = withDefault('tickMs', nodeConfigDefaults.tickMs);
  const tickMs = intField('tickMs', tickV.source, tickV.value, 1, 10_000);
  const electionV = withDefault('electionTicks', nodeConfigDefaults.electionTicks);
  const electionTicks = intField('electionTicks', electionV.source, electionV.value, 2, 10_000);
  const snapV = withDefault('snapshotEntries', nodeConfigDefaults.snapshotEntries);
  const snapshotEntries = intField('snapshotEntries', snapV.source, snapV.value, 0, 1e9);
  const workersV = withDefault('workers', Math.max(1, availableParallelism()));
  const workers = intField('workers', workersV.source, workersV.value, 0, 256);
  const leaseV = withDefault('mrLeaseMs', nodeConfigDefaults.mrLeaseMs);
  const mrLeaseMs = intField('mrLeaseMs', leaseV.source, leaseV.value, 100, 3_600_000);
  const walSyncV = withDefault('walSync', nodeConfigDefaults.walSync);
  const walSync = text('walSync', walSyncV);
  if (walSync !== 'auto' && walSync !== 'thread' && walSync !== 'inline') {
    throw bad('walSync', walSyncV.source, 'expected auto, thread or inline', walSync);
  }
  const repairV = withDefault('repair', false);
  const repair = repairV.value === true || repairV.value === 'true' || repairV.value === '1';
  if (!repair && repairV.value !== false && repairV.value !== 'false' && repairV.value !== '0') {
    throw bad('repair', repairV.source, 'expected true or false', repairV.value);
  }
  const levelV = withDefault('logLevel', nodeConfigDefaults.logLevel);
  const level = text('logLevel', levelV);
  if (!(logLevels as readonly string[]).includes(level)) {
    throw bad('logLevel', levelV.source, `expected one of ${logLevels.join(', ')}`, level);
  }
  return {
    id,
    clusterId: cluster,
    dataDir,
    listen,
    rpc,
    peers,
    peerRpc,
    tickMs,
    electionTicks,
    snapshotEntries,
    walSync,
    logLevel: level as LogLevel,
    workers,
    mrLeaseMs,
    repair,
  };
}
