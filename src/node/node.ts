/**
 * The node process's composition: one Raft node over TCP with durable
 * storage, driving the state-machine host (src/host/: the KV state machine and
 * the node modules, such as MapReduce), plus an RPC port serving the
 * {@link NodeService} (status, health) and the KV service ({@link KvServer}). `cohort node` runs one; `cohort up`
 * runs several as separate processes.
 *
 * ```ts
 * const config = resolveNodeConfig({ flags, env: process.env });
 * const node = await startNode(config);   // clear CohortErrors: port in use, bad data dir, other cluster
 * node.status();                          // { id, role, term, leader, commitIndex, ... }
 * await node.close();                     // RPC port, Raft node, transport, storage
 * ```
 *
 * Start order: check the data dir, lock it (one process per data dir, see
 * data-dir-lock.ts), bind the Raft port, bind the RPC port, then load storage
 * and start Raft; whatever was opened is closed again if a later step fails,
 * so a refused start leaves nothing behind.
 */
import { randomInt } from 'node:crypto';
import { accessSync, constants, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { getHeapStatistics } from 'node:v8';
import type { Logger } from 'pino';
import { CohortError, isCohortError } from '../lib/errors.js';
import { nodeId } from '../lib/ids.js';
import type { NodeId } from '../lib/ids.js';
import { seededRandom } from '../lib/random.js';
import { raftMessagesCodec } from '../raft/raft-messages-codec.js';
import { RaftNode } from '../raft/raft-node.js';
import { FileStorage } from '../raft/storage/file-storage.js';
import type { RecoveryReport } from '../raft/storage/file-storage.js';
import { lockDataDir } from './data-dir-lock.js';
import type { DataDirLock } from './data-dir-lock.js';
import { makeDirs } from '../lib/dirs.js';
import { nodeFs, syncCreatedDirs } from '../raft/storage/fs.js';
import type { RaftMessage } from '../raft/core/messages.js';
import { rpcCodec } from '../rpc/messages.js';
import type { RpcWireMessage } from '../rpc/messages.js';
import { RpcNode } from '../rpc/node.js';
import { TcpTransport } from '../transport/tcp-transport.js';
import { Detector, parseAddress } from '../detector/detector.js';
import { DetectorService } from '../detector/service.js';
import type { PeerAddress } from '../transport/tcp-transport.js';
import { parseHostPort } from './config.js';
import type { NodeConfig } from './config.js';
import { KvServer, ObservedStateMachine } from '../kv/server.js';
import type { KvServerOptions } from '../kv/server.js';
import type { KvRaftStateMachine } from '../host/kv-state-machine.js';
import { startModules } from '../host/modules.js';
import type { NodeModule } from '../host/modules.js';
import { version } from '../version.js';
import { nodeLogger } from './logger.js';
import { AuthModule } from '../auth/module.js';
import { limits } from '../lib/limits.js';
import { checkCredentials, daysLeft, loadCredentials } from '../trust/credentials.js';
import type { Credentials } from '../trust/credentials.js';
import { AccessPolicy } from './access.js';
import { NodeService } from './node-service.js';
import type { NodeStatus } from './node-service.js';
import {
  AddressBook,
  callLeader,
  formatAddress,
  startMembership,
  watchForRemoval,
} from './members.js';
import type { MemberList } from './members.js';

/** Options of {@link startNode}. */
export interface StartNodeOptions {
  /** Root logger, without `node` bound (default: nodeLogger on stdout at config.logLevel and logFormat). */
  readonly logger?: Logger;
  /** Called once if Raft stops because storage failed (the process should exit). */
  readonly onFatal?: (err: unknown) => void;
  /** Replicated modules sharing the log (default: the default modules, default-modules.ts). */
  readonly modules?: readonly NodeModule[];
  /** KV server knobs (tests: small history, small watch buffers, fast checks, a clock of their own). */
  readonly kv?: Pick<
    KvServerOptions,
    | 'now'
    | 'historyRevisionsKept'
    | 'compactCheckMs'
    | 'leaseCheckpointMs'
    | 'leaseTickMs'
    | 'watchBufferEventsMax'
    | 'watchBufferBytesMax'
    | 'watchNodeBufferBytesMax'
  >;
}

/** A running node (see the file comment). */
export interface CohortNode {
  readonly config: NodeConfig;
  readonly raft: RaftNode<KvRaftStateMachine>;
  readonly rpc: RpcNode;
  /** The KV service on this node (watches, leader duties). */
  readonly kv: KvServer;
  /** The replicated users, roles and permissions. */
  readonly auth: AuthModule;
  /**
   * Reads the certificate, key and CA files again and, if they check out
   * (same identity, valid, key 0600), makes every new connection use them:
   * certificate rotation without a restart (the node process calls it on
   * SIGHUP). Open connections keep their certificate. Throws, changing
   * nothing, if the files do not check out; a no-op without TLS.
   */
  reloadTls(): Credentials | undefined;
  /** What loading the WAL found and did (torn tail cut, repair, leftovers removed). */
  readonly recovery: RecoveryReport;
  /** The replicated address book of the cluster's members (members.ts). */
  readonly book: AddressBook;
  /**
   * The failure detector's member on this node (SWIM, detector/): the
   * cluster's nodes as it sees them, and events
   * (`members.on('failed', (e) => ...)`: joined, suspect, alive, failed, left).
   */
  readonly members: Detector;
  /**
   * With `--join` and an empty data dir: settles once the leader added this
   * node as a learner (with the membership it answered), or fails if the
   * node closed first. Null when the node did not need to join.
   */
  readonly joined: Promise<MemberList> | null;
  /**
   * Settles, with the leader's member list, once this node learns it was
   * removed from the cluster (members.ts, watchForRemoval); never settles
   * while it is a member. `cohort node` then stops (exit 0), as a removed
   * etcd member does.
   */
  readonly removed: Promise<MemberList>;
  /** This node's status, as the Node.status RPC answers it. */
  status(): NodeStatus;
  /**
   * Stops serving RPCs, closes the Raft node, its transport and storage.
   * Idempotent. With `handOff`, a leader first hands leadership to the most
   * up-to-date other voter (dissertation §3.10), so the cluster does not wait
   * an election timeout for a new leader (SIGTERM does this).
   */
  close(options?: { handOff?: boolean }): Promise<void>;
}

/**
 * Makes sure `dir` exists and is a readable, writable directory; a directory
 * it creates is made durable in its parent (fsync), so a crash cannot lose
 * the data dir from under a log that was synced inside it.
 */
export function checkDataDir(dir: string): void {
  const refuse = (why: string, cause?: unknown): CohortError =>
    new CohortError('FAILED_PRECONDITION', `data dir ${dir} ${why}`, {
      details: { field: 'dataDir', dir },
      cause,
    });
  try {
    // Not mkdirSync's recursive mode: it spins forever where a parent refuses children (/proc).
    syncCreatedDirs(nodeFs, makeDirs(dir));
  } catch (e) {
    throw refuse(`cannot be created: ${(e as Error).message}`, e);
  }
  if (!statSync(dir).isDirectory()) throw refuse('is not a directory');
  try {
    accessSync(dir, constants.R_OK | constants.W_OK | constants.X_OK);
    // A real write as well: access() says yes to root whatever the mode bits.
    const probe = join(dir, `.probe-${process.pid}`);
    writeFileSync(probe, '');
    rmSync(probe);
  } catch (e) {
    throw refuse(`is not readable and writable: ${(e as Error).message}`, e);
  }
}

async function bind<M>(
  what: string,
  address: PeerAddress,
  start: () => Promise<TcpTransport<M>>,
): Promise<TcpTransport<M>> {
  try {
    return await start();
  } catch (e) {
    const cause = isCohortError(e) ? e.cause : e;
    const errno = (cause as NodeJS.ErrnoException | undefined)?.code;
    if (errno === 'EADDRINUSE') {
      throw new CohortError(
        'UNAVAILABLE',
        `port ${address.port} is in use (${what} ${address.host}:${address.port})`,
        {
          details: { field: what, port: address.port },
          cause: e,
        },
      );
    }
    if (errno === 'EADDRNOTAVAIL' || errno === 'ENOTFOUND' || errno === 'EACCES') {
      throw new CohortError(
        'UNAVAILABLE',
        `cannot listen on ${address.host}:${address.port} (${what}): ${errno}`,
        {
          details: { field: what, port: address.port },
          cause: e,
        },
      );
    }
    throw e;
  }
}

/** Starts a node from a validated config (see the file comment). */
export async function startNode(
  config: NodeConfig,
  options: StartNodeOptions = {},
): Promise<CohortNode> {
  // RaftNode adds `node` to its own lines; everything else gets it bound here.
  const root = options.logger ?? nodeLogger({ level: config.logLevel, format: config.logFormat });
  const log = root.child({ node: config.id });
  checkDataDir(config.dataDir);
  // The store lives in the JS heap, at two to three times its size while a snapshot is encoded.
  const heapBytes = getHeapStatistics().heap_size_limit;
  if (config.kvQuotaBytes === 0 || config.kvQuotaBytes * 3 > heapBytes) {
    log.warn(
      { kvQuotaBytes: config.kvQuotaBytes, heapBytes },
      'the KV quota does not keep the store well inside the JS heap: the node may run out of memory before writes get NO_SPACE (lower --kv-quota-bytes or raise node --max-old-space-size)',
    );
  }
  // One process per data dir: a second one would write the same WAL.
  const lock = await lockDataDir(config.dataDir);
  try {
    return await startLocked(config, options, root, log, lock);
  } catch (e) {
    await lock.release();
    throw e;
  }
}

/** startNode once the data dir is locked; the node releases `lock` when it closes. */
async function startLocked(
  config: NodeConfig,
  options: StartNodeOptions,
  root: Logger,
  log: Logger,
  lock: DataDirLock,
): Promise<CohortNode> {
  // Mutual TLS (DESIGN.md, Trust): this node's certificate must name it, chain to the CA, be valid.
  const loadTls = (): Credentials | undefined => {
    if (config.insecure) return undefined;
    const creds = loadCredentials({
      ca: config.tlsCa as string,
      cert: config.tlsCert as string,
      key: config.tlsKey as string,
    });
    checkCredentials(creds, { clusterId: config.clusterId, kind: 'node', id: config.id });
    const left = daysLeft(creds);
    if (left < limits.certRenewWithinDays) {
      log.warn(
        { notAfter: creds.notAfter.toISOString(), daysLeft: left, cert: config.tlsCert },
        `this node's certificate expires in ${left} days: issue a new one (cohort certs issue node ${config.id}) and send the node SIGHUP`,
      );
    }
    return creds;
  };
  const creds = loadTls();
  if (creds === undefined) {
    log.warn(
      'running WITHOUT TLS (--insecure): no connection is authenticated, anyone who can reach this node can read and write everything and act as any member; use only on a trusted network',
    );
  }
  // Who is a member: the Raft configuration once Raft runs, the initial peers before.
  const started: { raft?: RaftNode<KvRaftStateMachine>; members?: Detector } = {};
  const isMember = (id: NodeId): boolean => {
    if (started.raft === undefined) return id === config.id || config.peers.has(id);
    const c = started.raft.status().config;
    // A joining node knows no configuration until the leader's log or snapshot
    // reaches it, over a link the leader opens: until then it admits the
    // cluster's nodes (with TLS, those with a node certificate of its CA).
    if (c.voters.length === 0 && c.learners.length === 0) return true;
    return (
      c.voters.includes(id) || c.learners.includes(id) || (c.votersOutgoing?.includes(id) ?? false)
    );
  };
  // Loaded only when needed: a caller passing its own modules does not load MapReduce.
  const given = options.modules ?? (await import('./default-modules.js')).defaultModules(config);
  // Every node runs the auth module: the KV checks and the access policy read its store.
  const authModule =
    given.find((m): m is AuthModule => m instanceof AuthModule) ?? new AuthModule();
  const modules = given.includes(authModule) ? given : [...given, authModule];
  const access = new AccessPolicy({
    self: config.id,
    insecure: config.insecure,
    auth: authModule.store,
    isMember,
  });
  // Transports log routine connection churn at info; keep them at warn unless debugging.
  const quiet = root.child(
    {},
    { level: root.levelVal >= 40 || root.levelVal <= 20 ? root.level : 'warn' },
  );
  const raftTransport = await bind('listen', config.listen, () =>
    TcpTransport.start<RaftMessage>({
      self: config.id,
      clusterId: config.clusterId,
      codec: raftMessagesCodec(),
      listen: config.listen,
      peers: config.peers,
      logger: quiet,
      admit: access.raftAdmit,
      ...(creds === undefined ? {} : { tls: creds }),
    }),
  );
  let rpcTransport: TcpTransport<RpcWireMessage>;
  try {
    rpcTransport = await bind('rpc', config.rpc, () =>
      TcpTransport.start<RpcWireMessage>({
        self: config.id,
        clusterId: config.clusterId,
        codec: rpcCodec,
        listen: config.rpc,
        peers: {},
        acceptUnknownPeers: true,
        logger: quiet,
        admit: access.rpcAdmit,
        ...(creds === undefined ? {} : { tls: creds }),
      }),
    );
  } catch (e) {
    await raftTransport.close();
    throw e;
  }
  const storage = new FileStorage({
    dir: config.dataDir,
    clusterId: config.clusterId,
    nodeId: config.id,
    syncMode: config.walSync,
    repair: config.repair,
    logger: log.child({ component: 'storage' }),
  });
  // The members' addresses travel in the log; every node points its Raft transport at them.
  let bookChanged: (id: NodeId, rpcAddress: PeerAddress) => void = () => {};
  const book = new AddressBook((id, rec) => {
    if (id === config.id) return;
    if (rec !== undefined) raftTransport.setPeer(id, rec.raft);
    else raftTransport.removePeer(id);
    if (rec !== undefined && rec.rpc !== null) bookChanged(id, rec.rpc);
  });
  const stateMachine = new ObservedStateMachine([...modules, book]);
  let raft: RaftNode<KvRaftStateMachine>;
  try {
    raft = await RaftNode.start({
      id: config.id,
      peers: [...config.peers.keys()],
      join: config.join.length > 0,
      transport: raftTransport,
      storage,
      stateMachine,
      random: seededRandom(randomInt(2 ** 31)),
      tickMs: config.tickMs,
      raft: { electionTicks: config.electionTicks, heartbeatTicks: config.heartbeatTicks },
      snapshotEntries: config.snapshotEntries,
      logger: root,
      ...(options.onFatal === undefined ? {} : { onFatal: options.onFatal }),
    });
  } catch (e) {
    await Promise.allSettled([raftTransport.close(), rpcTransport.close(), storage.close()]);
    if (
      isCohortError(e) &&
      e.code === 'FAILED_PRECONDITION' &&
      // FileStorage names the cluster and node the files belong to.
      'cluster' in e.details &&
      'node' in e.details
    ) {
      throw new CohortError(
        'FAILED_PRECONDITION',
        `data dir ${config.dataDir} belongs to another cluster or node: ${e.message}`,
        { details: { field: 'clusterId', ...e.details }, cause: e },
      );
    }
    throw e;
  }
  started.raft = raft;
  const startedAt = Date.now();
  const status = (): NodeStatus => {
    const s = raft.status();
    return {
      id: config.id,
      clusterId: config.clusterId,
      role: s.role,
      term: s.term,
      leader: s.leader,
      commitIndex: s.commit,
      appliedIndex: s.applied,
      lastIndex: s.lastIndex,
      snapshotIndex: s.snapshotIndex,
      members: [...s.config.voters].sort(),
      learners: [...s.config.learners].sort(),
      revision: stateMachine.kv.revision,
      kvBytes: stateMachine.kv.sizeBytes,
      alarms: stateMachine.kv.noSpaceAlarm ? ['NOSPACE'] : [],
      state: s.state,
      version,
      dataDir: resolve(config.dataDir),
      pid: process.pid,
      uptimeMs: Date.now() - startedAt,
      ...(started.members === undefined
        ? {}
        : {
            detector: started.members.members().map((m) => ({
              id: m.id,
              state: m.state,
              incarnation: m.incarnation,
            })),
          }),
    };
  };
  const rpc = new RpcNode(rpcTransport, {
    server: { logger: log, authorize: (call) => access.authorize(call) },
  });
  rpc.serve(NodeService, {
    status: () => status(),
    health: () => {
      const state = raft.status().state;
      return { ok: state === 'running', id: config.id, state };
    },
  });
  const kv = new KvServer({
    raft,
    stateMachine,
    rpc,
    peerRpc: (id) =>
      id === config.id ? config.rpc : (book.get(id)?.rpc ?? config.peerRpc.get(id) ?? undefined),
    electionTimeoutMs: config.electionTicks * config.tickMs,
    quotaBytes: config.kvQuotaBytes,
    access: access.kv,
    logger: log.child({ component: 'kv' }),
    ...options.kv,
  });
  kv.start();
  const stopMembership = startMembership({
    self: config.id,
    raft,
    rpc,
    book,
    listen: config.listen,
    rpcAddress: config.rpc,
    peers: config.peers,
    peerRpc: config.peerRpc,
    periodMs: config.electionTicks * config.tickMs,
    logger: log.child({ component: 'members' }),
  });
  let stopModules: () => Promise<void>;
  try {
    stopModules = await startModules(modules, { config, raft, rpc, logger: log });
  } catch (e) {
    stopMembership();
    await kv.close();
    await rpc.close();
    await raft.close();
    throw e;
  }
  const members = startDetector(config, rpc, book, modules, log);
  started.members = members;
  bookChanged = (id, a) => members.introduce({ id, address: `${a.host}:${a.port}` });
  // A node removed from the configuration loses its links, and its dials are refused.
  const removed = new Set<NodeId>();
  const membershipTimer = setInterval(() => {
    for (const id of config.peers.keys()) {
      if (removed.has(id) || isMember(id)) continue;
      removed.add(id);
      log.warn(
        { peer: id },
        'node is no longer a member: its links are closed and its dials refused',
      );
      raftTransport.removePeer(id);
      rpcTransport.removePeer(id);
    }
  }, limits.membershipCheckMs);
  membershipTimer.unref();
  const reloadTls = (): Credentials | undefined => {
    const next = loadTls();
    if (next === undefined) return undefined;
    raftTransport.setTls(next);
    rpcTransport.setTls(next);
    log.info(
      {
        cert: config.tlsCert,
        fingerprint: next.fingerprint,
        notAfter: next.notAfter.toISOString(),
      },
      'TLS certificate reloaded: new connections use it',
    );
    return next;
  };
  log.info(
    {
      tls:
        creds === undefined
          ? 'off (--insecure)'
          : { fingerprint: creds.fingerprint, notAfter: creds.notAfter.toISOString() },
      term: raft.status().term,
      listen: `${config.listen.host}:${config.listen.port}`,
      rpc: `${config.rpc.host}:${config.rpc.port}`,
      peers: Object.fromEntries([...config.peers].map(([id, a]) => [id, `${a.host}:${a.port}`])),
      dataDir: config.dataDir,
      clusterId: config.clusterId,
      walSync: config.walSync,
      workers: config.workers,
    },
    'node started',
  );
  const leaving = new AbortController();
  const joined = joinIfFresh(config, raft, raftTransport, leaving.signal, log, creds);
  // Nobody may be waiting on it; a failure is logged by joinIfFresh.
  joined?.catch(() => {});
  let onRemoved: (list: MemberList) => void = () => {};
  const removedFromCluster = new Promise<MemberList>((resolve) => (onRemoved = resolve));
  const stopRemovalWatch = watchForRemoval({
    self: config.id,
    raft,
    book,
    clusterId: config.clusterId,
    endpoints: [...[...config.peerRpc].map(([id, rpc]) => ({ id, rpc })), ...config.join],
    ...(creds === undefined
      ? {}
      : { tls: { ca: [...creds.ca], cert: creds.cert, key: creds.key } }),
    joining: joined,
    onRemoved: (list) => onRemoved(list),
    logger: log.child({ component: 'members' }),
  });
  let closing: Promise<void> | undefined;
  return {
    config,
    raft,
    rpc,
    kv,
    auth: authModule,
    book,
    members,
    joined,
    removed: removedFromCluster,
    recovery: storage.recovery,
    status,
    reloadTls,
    close: (closeOptions = {}) => {
      closing ??= (async () => {
        clearInterval(membershipTimer);
        stopRemovalWatch();
        log.info({ term: raft.status().term }, 'node stopping');
        leaving.abort();
        if (closeOptions.handOff === true) await handOff(raft, log);
        members.close(); // gossips `left`: the others see a departure, not a failure
        stopMembership();
        await stopModules();
        await kv.close();
        await rpc.close();
        await raft.close();
        await lock.release();
        log.info({ term: raft.status().term }, 'node stopped');
      })();
      return closing;
    },
  };
}

/**
 * A leader hands leadership to the most up-to-date other voter before it
 * stops (dissertation §3.10), so no election timeout passes without a
 * leader. Best effort: a failed transfer is logged and the node stops anyway.
 */
async function handOff(raft: RaftNode<KvRaftStateMachine>, log: Logger): Promise<void> {
  const s = raft.status();
  if (s.role !== 'leader') return;
  let best: NodeId | null = null;
  let bestMatch = -1;
  for (const v of s.config.voters) {
    const m = s.progress.get(v)?.match ?? -1;
    if (v !== s.id && m > bestMatch) {
      best = v;
      bestMatch = m;
    }
  }
  if (best === null) return;
  try {
    await raft.transferLeadership(best);
    log.info({ to: best }, 'leadership handed over before stopping');
  } catch (e) {
    log.warn({ err: e, to: best }, 'leadership hand-over failed; stopping anyway');
  }
}

/**
 * `--join` with an empty data dir (the node belongs to no configuration
 * yet): learns the members' Raft addresses from any endpoint (so the
 * leader's connection is accepted), then asks the leader to add this node
 * as a learner, retrying until it answers or the node closes.
 */
function joinIfFresh(
  config: NodeConfig,
  raft: RaftNode<KvRaftStateMachine>,
  transport: TcpTransport<RaftMessage>,
  signal: AbortSignal,
  log: Logger,
  creds: Credentials | undefined,
): Promise<MemberList> | null {
  // With TLS the node asks with its own certificate (a node certificate of the cluster's CA).
  const tls =
    creds === undefined ? {} : { tls: { ca: [...creds.ca], cert: creds.cert, key: creds.key } };
  const s = raft.status();
  if (config.join.length === 0 || s.config.voters.length + s.config.learners.length > 0) {
    return null;
  }
  const learn = (list: MemberList): void => {
    for (const m of list.members) {
      if (m.id !== config.id && m.raft !== null) {
        transport.setPeer(nodeId(m.id), parseHostPort(m.raft, 'raft'));
      }
    }
  };
  return (async () => {
    log.info(
      { join: config.join.map((e) => e.id), learner: config.learner },
      'joining the cluster',
    );
    try {
      const known = await callLeader(
        config.join,
        config.clusterId,
        (m, timeoutMs) => m.list({}, { timeoutMs }),
        { signal, ...tls },
      );
      if (known.members.some((m) => m.id === config.id && m.role === 'voter')) {
        // A voter's term and vote live in its data dir: an empty one in its place could vote twice.
        throw new CohortError(
          'FAILED_PRECONDITION',
          `${config.id} is a voter of this cluster already; a node with an empty data dir cannot take its place (cohort member remove ${config.id} first, or join under another id)`,
          { details: { field: 'join', id: config.id } },
        );
      }
      learn(known);
      const list = await callLeader(
        config.join,
        config.clusterId,
        (m, timeoutMs) =>
          m.add(
            {
              id: config.id,
              raft: formatAddress(config.listen),
              rpc: formatAddress(config.rpc),
              learner: config.learner,
            },
            { timeoutMs },
          ),
        { signal, ...tls },
      );
      learn(list);
      log.info(
        { leader: list.leader, members: list.members.length },
        'added to the cluster as a learner',
      );
      return list;
    } catch (e) {
      log.error({ err: e }, 'could not join the cluster');
      throw e;
    }
  })();
}

/**
 * Starts this node's failure-detector member (SWIM, detector/): seeded with
 * the cluster's nodes (the initial peers and the address book), speaking the
 * `Detector` RPC service over the RPC port (TLS as every node link), and
 * telling the node modules that want to know (MapReduce) of failed members.
 */
function startDetector(
  config: NodeConfig,
  rpc: RpcNode,
  book: AddressBook,
  modules: readonly NodeModule[],
  log: Logger,
): Detector {
  const text = (a: PeerAddress): string => `${a.host}:${a.port}`;
  const seed = new Map<string, string>();
  for (const [id, a] of config.peerRpc) seed.set(id, text(a));
  for (const [id, rec] of book.entries()) if (rec.rpc !== null) seed.set(id, text(rec.rpc));
  const dialed = new Map<string, string>();
  const transport = rpc.transport as { setPeer?: (id: NodeId, a: PeerAddress) => void };
  const detector = new Detector(
    {
      self: config.id,
      address: text(config.rpc),
      members: [...seed].map(([id, address]) => ({ id, address })),
    },
    (to, address, message) => {
      const id = nodeId(to);
      const rec = book.get(id);
      const a = rec?.rpc ?? config.peerRpc.get(id) ?? parseAddress(address);
      if (a === undefined) return;
      if (dialed.get(to) !== text(a)) {
        transport.setPeer?.(id, a);
        dialed.set(to, text(a));
      }
      rpc
        .client(DetectorService, id)
        .deliver({ message }, { timeoutMs: limits.swimPeriodMsDefault })
        .catch(() => {}); // a lost message: the protocol expects some
    },
    log.child({ component: 'detector' }),
  );
  rpc.serve(DetectorService, {
    deliver: ({ message }, ctx) => {
      detector.deliver(ctx.peer, message);
      return {};
    },
  });
  for (const m of modules) {
    const aware = m as { memberFailed?: (node: string) => void };
    if (typeof aware.memberFailed === 'function') {
      detector.on('failed', (e) => aware.memberFailed?.(e.member));
    }
  }
  detector.start();
  return detector;
}
