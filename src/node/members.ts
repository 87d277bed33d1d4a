/**
 * Cluster membership on a node process (issue 15): the replicated address
 * book, the `Members` RPC service (`list`, `add`, `promote`, `remove`) and
 * the leader's membership duties. The Raft core makes single-server changes
 * (dissertation §4.1, src/raft/core/confchange.ts); this file gives them
 * addresses and a way in from outside.
 *
 * ```ts
 * const book = new AddressBook((id, rec) => rec ? transport.setPeer(id, rec.raft) : transport.removePeer(id));
 * const sm = new ObservedStateMachine([...modules, book]);       // the book shares the log
 * const stop = startMembership({ self, raft, rpc, book, listen, rpcAddress, peers, peerRpc, tickMs, logger });
 * // clients: await callLeader(endpoints, clusterId, (m) => m.add({ id: 'n4', raft: '127.0.0.1:7104', rpc: '127.0.0.1:7204' }));
 * ```
 *
 * **The address book** is a replicated module (src/host/modules.ts): `id →
 * { raft, rpc, learner }`, where `learner` says the node stays a learner
 * (`--learner`). Every node applies it in log order and points its Raft
 * transport at what it holds, so a node added on one member is reachable
 * from all, and a restart finds its peers in its own log or snapshot
 * without `--peers`. An address is written before the node is added as a
 * learner, and deleted only after its removal committed; a leader that
 * crashed between those steps leaves an entry of a non-member, which a
 * later leader deletes (its duties, below).
 *
 * **The leader's duties**, every election timeout: record its own address
 * and those of the `--peers` it started with (a cluster bootstrapped with
 * `--peers` has no book entries yet), and promote each learner that holds
 * everything committed and is not marked to stay a learner (etcd's learner
 * promotion, done by the leader rather than asked for); delete the book
 * entries of non-members that stayed so for `limits.memberBookStalePasses`
 * passes while no add of theirs ran.
 *
 * **Changes** go to the leader; any other node answers NOT_LEADER with
 * `details.leaderId` and `details.leaderRpc`, which {@link callLeader}
 * follows. Removing the leader first hands leadership to the most
 * up-to-date other voter (dissertation §3.10) and redirects the caller to
 * it, which then removes the old leader as an ordinary follower: the cluster
 * never waits for an election timeout.
 */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { Packr } from 'msgpackr';
import type { Logger } from 'pino';
import { CohortError, isCohortError } from '../lib/errors.js';
import { isValidId, nodeId } from '../lib/ids.js';
import type { NodeId } from '../lib/ids.js';
import { limits } from '../lib/limits.js';
import { encodeModuleEntry } from '../host/kv-state-machine.js';
import type { KvRaftStateMachine } from '../host/kv-state-machine.js';
import type { NodeModule } from '../host/modules.js';
import type { RaftNode } from '../raft/raft-node.js';
import type { RpcNode } from '../rpc/node.js';
import { defineService, unary } from '../rpc/service.js';
import type { Client } from '../rpc/service.js';
import { startTcpClient } from '../rpc/tcp-endpoints.js';
import type { PeerAddress, TcpTlsOptions } from '../transport/tcp-transport.js';
import { parseHostPort } from './config.js';

/** The address book's module name (tags its log entries and snapshot part). */
export const MEMBERS_MODULE = 'members';

/** One member's addresses, as the address book holds them. */
export interface MemberRecord {
  /** Where its Raft peers connect. */
  readonly raft: PeerAddress;
  /** Where it serves RPC (null: unknown, e.g. a `--peers` entry without an RPC port). */
  readonly rpc: PeerAddress | null;
  /** Stays a learner: the leader does not promote it. */
  readonly learner: boolean;
}

/** A command of the address book, as it travels in the log. */
export type BookCommand =
  | {
      readonly type: 'set';
      readonly id: string;
      readonly raft: string;
      readonly rpc: string | null;
      readonly learner: boolean;
    }
  | {
      readonly type: 'delete';
      readonly id: string;
      /**
       * The node was removed from the cluster: remember it, so that its
       * own certificate no longer lets it join again (only a user's add does).
       */
      readonly retire?: boolean;
    };

/** What applying a book command returns: ok, or why the command was refused (nothing changed). */
export type BookResult = { readonly ok: true } | { readonly ok: false; readonly error: string };

const packr = new Packr({ useRecords: false });

/** "host:port" of an address. */
export function formatAddress(a: PeerAddress): string {
  return `${a.host}:${a.port}`;
}

function sameRecord(a: MemberRecord | undefined, b: MemberRecord): boolean {
  return (
    a !== undefined &&
    a.learner === b.learner &&
    formatAddress(a.raft) === formatAddress(b.raft) &&
    (a.rpc === null ? null : formatAddress(a.rpc)) ===
      (b.rpc === null ? null : formatAddress(b.rpc))
  );
}

/** Decodes and checks one record from the log or a snapshot; a string says what is wrong. */
function parseRecord(c: unknown): { id: NodeId; rec: MemberRecord } | string {
  if (typeof c !== 'object' || c === null) return 'not an object';
  const o = c as Record<string, unknown>;
  if (!isValidId(o.id)) return 'bad member id';
  if (typeof o.learner !== 'boolean') return 'learner must be a boolean';
  try {
    const raft = parseHostPort(o.raft, 'raft');
    const rpc = o.rpc === null ? null : parseHostPort(o.rpc, 'rpc');
    return { id: nodeId(o.id), rec: { raft, rpc, learner: o.learner } };
  } catch (e) {
    return isCohortError(e) ? e.message : String(e);
  }
}

/**
 * The replicated address book (see the file comment): a node module whose
 * state is the members' addresses. `onChange` is told of every entry that
 * changed (undefined: deleted), also while the log is replayed at start and
 * when a snapshot replaces the book.
 */
export class AddressBook implements NodeModule {
  readonly name = MEMBERS_MODULE;
  private readonly records = new Map<NodeId, MemberRecord>();
  /** Removed nodes, oldest first (see {@link isRetired}). */
  private readonly retired = new Set<NodeId>();

  constructor(
    private readonly onChange: (id: NodeId, rec: MemberRecord | undefined) => void = () => {},
  ) {}

  /** The record of `id`, if the book has one. */
  get(id: NodeId): MemberRecord | undefined {
    return this.records.get(id);
  }

  /** Every record, by id. */
  entries(): ReadonlyMap<NodeId, MemberRecord> {
    return this.records;
  }

  /**
   * True if `id` was removed from the cluster and not added again since: a
   * node with that id may not add itself back with its own certificate
   * (`--join`); a user's `cohort member add` may. The newest
   * `limits.memberRetiredMax` removals are kept.
   */
  isRetired(id: NodeId): boolean {
    return this.retired.has(id);
  }

  private retire(id: NodeId): void {
    this.retired.delete(id);
    this.retired.add(id);
    for (const old of this.retired) {
      if (this.retired.size <= limits.memberRetiredMax) break;
      this.retired.delete(old);
    }
  }

  /** Applies a set or delete; a malformed command changes nothing and says why. */
  apply(command: unknown): BookResult {
    if (typeof command !== 'object' || command === null) {
      return { ok: false, error: 'not an object' };
    }
    const type = (command as { type?: unknown }).type;
    if (type === 'delete') {
      const { id, retire } = command as { id?: unknown; retire?: unknown };
      if (!isValidId(id)) return { ok: false, error: 'bad member id' };
      if (retire !== undefined && typeof retire !== 'boolean') {
        return { ok: false, error: 'retire must be a boolean' };
      }
      if (this.records.delete(id as NodeId)) this.onChange(id as NodeId, undefined);
      if (retire === true) this.retire(id as NodeId);
      return { ok: true };
    }
    if (type !== 'set') return { ok: false, error: `unknown command ${JSON.stringify(type)}` };
    const parsed = parseRecord(command);
    if (typeof parsed === 'string') return { ok: false, error: parsed };
    if (!this.records.has(parsed.id) && this.records.size >= limits.clusterMembersMax) {
      return { ok: false, error: `the address book holds at most ${limits.clusterMembersMax}` };
    }
    // Written again (a user's add, or a leader recording a member): no longer retired.
    this.retired.delete(parsed.id);
    if (!sameRecord(this.records.get(parsed.id), parsed.rec)) {
      this.records.set(parsed.id, parsed.rec);
      this.onChange(parsed.id, parsed.rec);
    }
    return { ok: true };
  }

  snapshot(): Uint8Array {
    const rows = [...this.records]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([id, r]) => ({
        id,
        raft: formatAddress(r.raft),
        rpc: r.rpc === null ? null : formatAddress(r.rpc),
        learner: r.learner,
      }));
    // Version 1 (an array of records) while nothing is retired, so older nodes read it.
    return new Uint8Array(
      packr.pack(this.retired.size === 0 ? rows : { rows, retired: [...this.retired] }),
    );
  }

  restore(bytes: Uint8Array): void {
    let rows: unknown;
    try {
      rows = packr.unpack(bytes);
    } catch (e) {
      throw new CohortError('CORRUPTION', 'address book snapshot does not decode', { cause: e });
    }
    let retired: unknown = [];
    if (typeof rows === 'object' && rows !== null && !Array.isArray(rows)) {
      ({ rows, retired } = rows as { rows?: unknown; retired?: unknown });
    }
    if (!Array.isArray(rows) || !Array.isArray(retired) || !retired.every(isValidId)) {
      throw new CohortError('CORRUPTION', 'address book snapshot malformed');
    }
    if (retired.length > limits.memberRetiredMax) {
      throw new CohortError('CORRUPTION', 'address book snapshot: too many removed nodes');
    }
    const next = new Map<NodeId, MemberRecord>();
    for (const row of rows) {
      const parsed = parseRecord(row);
      if (typeof parsed === 'string') {
        throw new CohortError('CORRUPTION', `address book snapshot: ${parsed}`);
      }
      next.set(parsed.id, parsed.rec);
    }
    this.replace(next);
    this.retired.clear();
    for (const id of retired) this.retired.add(nodeId(id));
  }

  reset(): void {
    this.replace(new Map());
    this.retired.clear();
  }

  private replace(next: Map<NodeId, MemberRecord>): void {
    const gone = [...this.records.keys()].filter((id) => !next.has(id));
    const changed = [...next].filter(([id, rec]) => !sameRecord(this.records.get(id), rec));
    this.records.clear();
    for (const [id, rec] of next) this.records.set(id, rec);
    for (const id of gone) this.onChange(id, undefined);
    for (const [id, rec] of changed) this.onChange(id, rec);
  }
}

const Address = Type.Union([Type.String({ maxLength: 300 }), Type.Null()]);

/** One member as `Members.list` reports it. */
export const MemberInfoSchema = Type.Object({
  id: Type.String(),
  role: Type.Union([Type.Literal('voter'), Type.Literal('learner')]),
  /** Raft address from the address book (null: not recorded yet). */
  raft: Address,
  /** RPC address from the address book (null: unknown). */
  rpc: Address,
  /** Marked to stay a learner (`--learner`). */
  stayLearner: Type.Boolean(),
  /** The leader's view of its log: its match index (answering node is the leader only). */
  match: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]),
});

/** One member. */
export type MemberInfo = Static<typeof MemberInfoSchema>;

/** The answer of every `Members` method: the answering node's view of the membership. */
export const MemberListSchema = Type.Object({
  /** The node that answered. */
  node: Type.String(),
  leader: Type.Union([Type.String(), Type.Null()]),
  term: Type.Integer({ minimum: 0 }),
  /** The answering node's commit index (its view is current as of it). */
  commitIndex: Type.Integer({ minimum: 0 }),
  members: Type.Array(MemberInfoSchema),
});

/** A membership as one node sees it. */
export type MemberList = Static<typeof MemberListSchema>;

const Id = Type.String({ minLength: 1, maxLength: limits.idBytesMax });

/** The `Members` service every node serves on its RPC port (see the file comment). */
export const MemberService = defineService('Members', {
  list: unary(
    Type.Object({
      /** Answer only as the leader (NOT_LEADER redirects otherwise), so the view is current. */
      leader: Type.Optional(Type.Boolean()),
    }),
    MemberListSchema,
    {
      idempotent: true,
      description: "this node's view of the members (voters, learners, addresses)",
    },
  ),
  add: unary(
    Type.Object({
      id: Id,
      raft: Type.String({ maxLength: 300 }),
      rpc: Type.String({ maxLength: 300 }),
      learner: Type.Optional(Type.Boolean()),
    }),
    MemberListSchema,
    {
      // Adding a member again with the same addresses changes nothing.
      idempotent: true,
      description: 'record a node and add it as a learner (promoted once caught up unless learner)',
    },
  ),
  promote: unary(Type.Object({ id: Id }), MemberListSchema, {
    idempotent: true,
    description: 'promote a learner to voter once it has caught up',
  }),
  remove: unary(Type.Object({ id: Id }), MemberListSchema, {
    description: 'remove a voter or learner (the leader hands over leadership first)',
  }),
});

/** Options of {@link startMembership}. */
export interface MembershipOptions {
  readonly self: NodeId;
  readonly raft: RaftNode<KvRaftStateMachine>;
  readonly rpc: RpcNode;
  readonly book: AddressBook;
  /** This node's Raft and RPC addresses. */
  readonly listen: PeerAddress;
  readonly rpcAddress: PeerAddress;
  /** The `--peers` this node started with (recorded in the book by a leader that lacks them). */
  readonly peers: ReadonlyMap<NodeId, PeerAddress>;
  readonly peerRpc: ReadonlyMap<NodeId, PeerAddress>;
  /** Duty period (ms): the election timeout. */
  readonly periodMs: number;
  readonly logger: Logger;
}

/** How far a node's log is behind the leader's commit before promoting it (none: it holds all of it). */
function caughtUp(raft: RaftNode<KvRaftStateMachine>, id: NodeId): boolean {
  const s = raft.status();
  const pr = s.progress.get(id);
  return pr !== undefined && pr.recentActive && pr.match >= s.commit;
}

/**
 * Serves {@link MemberService} on `rpc` and runs the leader's duties (see
 * the file comment). Returns a function that stops the duties.
 */
export function startMembership(o: MembershipOptions): () => void {
  const { self, raft, book, logger } = o;
  let stopped = false;

  const propose = async (cmd: BookCommand): Promise<void> => {
    const applied = (await raft.propose(encodeModuleEntry(MEMBERS_MODULE, cmd))) as {
      result?: BookResult;
    };
    const r = applied.result;
    if (r === undefined || !r.ok) {
      throw new CohortError(
        'INVALID_ARGUMENT',
        `address book refused: ${r?.ok === false ? r.error : 'no result'}`,
      );
    }
  };

  const rpcOf = (id: NodeId): PeerAddress | undefined =>
    id === self ? o.rpcAddress : (book.get(id)?.rpc ?? o.peerRpc.get(id) ?? undefined);

  const notLeader = (): CohortError => {
    const leaderId = raft.leaderId();
    const addr = leaderId === null ? undefined : rpcOf(leaderId);
    return new CohortError(
      'NOT_LEADER',
      `${self} is not the leader${leaderId === null ? ' (no leader known)' : `; the leader is ${leaderId}`}`,
      { details: { leaderId, leaderRpc: addr === undefined ? null : formatAddress(addr) } },
    );
  };
  const requireLeader = (): void => {
    if (!raft.isLeader()) throw notLeader();
  };

  const list = (): MemberList => {
    const s = raft.status();
    const info = (id: NodeId, role: 'voter' | 'learner'): MemberInfo => {
      const rec = book.get(id);
      return {
        id,
        role,
        raft: rec === undefined ? null : formatAddress(rec.raft),
        rpc: rec === undefined || rec.rpc === null ? null : formatAddress(rec.rpc),
        stayLearner: rec?.learner ?? false,
        match:
          s.role === 'leader'
            ? id === self
              ? s.lastIndex
              : (s.progress.get(id)?.match ?? 0)
            : null,
      };
    };
    return {
      node: self,
      leader: s.leader,
      term: s.term,
      commitIndex: s.commit,
      members: [
        ...[...s.config.voters].sort().map((id) => info(id, 'voter')),
        ...[...s.config.learners].sort().map((id) => info(id, 'learner')),
      ],
    };
  };

  /**
   * Runs a membership change, waiting while the previous one is still
   * uncommitted (CONFIG_CHANGE_PENDING: the leader's duties may be promoting
   * a learner at the same moment). A change refused because it is already
   * made (`done()`: the same request ran at the same time, e.g. a join
   * retried while its first try was still running) succeeds: the requests
   * are idempotent.
   */
  const change = async (run: () => Promise<void>, done: () => boolean): Promise<void> => {
    const deadline = Date.now() + limits.memberChangeWaitElectionsMax * o.periodMs;
    for (;;) {
      requireLeader();
      try {
        await run();
        return;
      } catch (e) {
        const reason = isCohortError(e) ? e.details.reason : undefined;
        if (reason === 'INVALID_CHANGE' && done()) return;
        const pending =
          isCohortError(e) &&
          e.code === 'FAILED_PRECONDITION' &&
          reason === 'CONFIG_CHANGE_PENDING';
        if (!pending || Date.now() > deadline) throw e;
      }
      await new Promise((r) => setTimeout(r, Math.max(10, o.periodMs / 10)));
    }
  };

  const isMember = (id: NodeId): 'voter' | 'learner' | null => {
    const c = raft.status().config;
    if (c.voters.includes(id)) return 'voter';
    return c.learners.includes(id) ? 'learner' : null;
  };

  /** The leader's own addresses in the book (a newcomer learns where to accept the leader from). */
  const recordSelf = async (): Promise<void> => {
    const me: MemberRecord = {
      raft: o.listen,
      rpc: o.rpcAddress,
      learner: book.get(self)?.learner ?? false,
    };
    if (sameRecord(book.get(self), me)) return;
    await propose({
      type: 'set',
      id: self,
      raft: formatAddress(o.listen),
      rpc: formatAddress(o.rpcAddress),
      learner: me.learner,
    });
  };

  /** The add's steps once checked: the book entry first (the newcomer needs it), then the learner. */
  const addMember = async (
    id: NodeId,
    raftAddr: PeerAddress,
    rpcAddr: PeerAddress,
    role: 'voter' | 'learner' | null,
    wantLearner: boolean | undefined,
  ): Promise<MemberList> => {
    // The newcomer takes the leader's address from the answer: it must be in the book first.
    await recordSelf();
    const learner = wantLearner ?? book.get(id)?.learner ?? false;
    const rec: MemberRecord = { raft: raftAddr, rpc: rpcAddr, learner };
    if (!sameRecord(book.get(id), rec)) {
      await propose({
        type: 'set',
        id,
        raft: formatAddress(raftAddr),
        rpc: formatAddress(rpcAddr),
        learner,
      });
    }
    if (role === null) {
      logger.info(
        { member: id, raft: formatAddress(raftAddr), learner },
        'adding member as a learner',
      );
      await change(
        () => raft.addLearner(id),
        () => isMember(id) !== null,
      );
    }
    return list();
  };

  o.rpc.serve(MemberService, {
    list: (req) => {
      if (req.leader === true) requireLeader();
      return list();
    },
    add: async (req, ctx) => {
      if (!isValidId(req.id)) {
        throw new CohortError('INVALID_ARGUMENT', `bad member id ${JSON.stringify(req.id)}`, {
          details: { field: 'id' },
        });
      }
      const id = nodeId(req.id);
      if (ctx.identity.kind === 'node') {
        // A node certificate lets its node ask to join as itself, not add others.
        if (ctx.identity.id !== id) {
          throw new CohortError(
            'PERMISSION_DENIED',
            `node ${ctx.identity.id} may only ask to add itself, not ${id}`,
            { details: { node: ctx.identity.id, id } },
          );
        }
        if (book.isRetired(id)) {
          throw new CohortError(
            'PERMISSION_DENIED',
            `${id} was removed from the cluster: it joins again only once a user adds it (cohort member add ${id} <raft host:port> <rpc host:port>)`,
            { details: { id, reason: 'removed' } },
          );
        }
      }
      const raftAddr = parseHostPort(req.raft, 'raft');
      const rpcAddr = parseHostPort(req.rpc, 'rpc');
      requireLeader();
      const role = isMember(id);
      if (role === null && book.entries().size >= limits.clusterMembersMax) {
        throw new CohortError(
          'FAILED_PRECONDITION',
          `the cluster has ${limits.clusterMembersMax} members, the most it may have`,
        );
      }
      adding.set(id, (adding.get(id) ?? 0) + 1);
      try {
        return await addMember(id, raftAddr, rpcAddr, role, req.learner);
      } finally {
        const n = (adding.get(id) ?? 1) - 1;
        if (n === 0) adding.delete(id);
        else adding.set(id, n);
      }
    },
    promote: async (req) => {
      const id = nodeId(req.id);
      requireLeader();
      const role = isMember(id);
      if (role === null) throw new CohortError('NOT_FOUND', `${id} is not a member`);
      const rec = book.get(id);
      if (rec?.learner === true) {
        await propose({
          type: 'set',
          id,
          raft: formatAddress(rec.raft),
          rpc: rec.rpc === null ? null : formatAddress(rec.rpc),
          learner: false,
        });
      }
      if (role === 'learner') {
        await change(
          () => raft.promoteLearner(id, { waitForCatchUp: true }),
          () => isMember(id) === 'voter',
        );
      }
      return list();
    },
    remove: async (req) => {
      const id = nodeId(req.id);
      requireLeader();
      const role = isMember(id);
      if (role === null) {
        if (book.get(id) === undefined) throw new CohortError('NOT_FOUND', `${id} is not a member`);
        await propose({ type: 'delete', id });
        return list();
      }
      if (id === self) {
        // Dissertation §3.10: hand over first, so the removal is an ordinary follower's.
        const s = raft.status();
        let best: NodeId | null = null;
        let bestMatch = -1;
        for (const v of s.config.voters) {
          const m = s.progress.get(v)?.match ?? -1;
          if (v !== self && m > bestMatch) {
            best = v;
            bestMatch = m;
          }
        }
        if (best === null) {
          throw new CohortError(
            'FAILED_PRECONDITION',
            `${self} is the only voter; it cannot be removed`,
          );
        }
        logger.info({ to: best }, 'removing the leader: transferring leadership first');
        await raft.transferLeadership(best);
        throw notLeader();
      }
      logger.info({ member: id, role }, 'removing member');
      await change(
        () => raft.removeNode(id),
        () => isMember(id) === null,
      );
      await propose({ type: 'delete', id, retire: true });
      return list();
    },
  });

  /**
   * Book entries of ids that are not members, by the duty pass that first
   * saw each. An add writes its entry before the learner joins the
   * configuration, and a removal deletes it after the removal committed; a
   * leader that crashed between the two steps left an entry nobody deletes
   * (its caller may never retry). One still there after
   * `limits.memberBookStalePasses` more passes, with no add of that id
   * running here, is deleted.
   */
  const staleSince = new Map<NodeId, number>();
  /** Ids whose `add` runs on this node (their entry precedes their membership on purpose). */
  const adding = new Map<NodeId, number>();
  let pass = 0;
  const dropStaleEntries = async (): Promise<void> => {
    pass++;
    for (const id of [...staleSince.keys()]) {
      if (book.get(id) === undefined) staleSince.delete(id);
    }
    for (const id of book.entries().keys()) {
      if (id === self || isMember(id) !== null || adding.has(id)) {
        staleSince.delete(id);
        continue;
      }
      const first = staleSince.get(id);
      if (first === undefined) {
        staleSince.set(id, pass);
      } else if (pass - first >= limits.memberBookStalePasses) {
        if (stopped || !raft.isLeader()) return;
        logger.info(
          { member: id },
          'address book: deleting the entry of a node that is not a member',
        );
        await propose({ type: 'delete', id });
        staleSince.delete(id);
      }
    }
  };

  /** Records the addresses the leader knows but the book lacks, and promotes caught-up learners. */
  const duties = async (): Promise<void> => {
    if (!raft.isLeader()) {
      staleSince.clear();
      return;
    }
    await recordSelf();
    for (const [id, addr] of o.peers) {
      if (book.get(id) !== undefined || isMember(id) === null) continue;
      const rpc = o.peerRpc.get(id);
      await propose({
        type: 'set',
        id,
        raft: formatAddress(addr),
        rpc: rpc === undefined ? null : formatAddress(rpc),
        learner: false,
      });
    }
    for (const id of raft.status().config.learners) {
      if (stopped || !raft.isLeader()) return;
      if (book.get(id)?.learner === true || !caughtUp(raft, id)) continue;
      logger.info({ member: id }, 'learner caught up: promoting it to voter');
      await raft.promoteLearner(id);
    }
    await dropStaleEntries();
  };
  let running = false;
  const timer = setInterval(() => {
    if (running || stopped) return;
    running = true;
    duties()
      .catch((e: unknown) => {
        // A lost leadership or a pending change: the next period tries again.
        logger.debug({ err: e }, 'membership duties deferred');
      })
      .finally(() => {
        running = false;
      });
  }, o.periodMs);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

/** A node of a cluster as a membership client reaches it: its id and RPC address. */
export interface MemberEndpoint {
  readonly id: string;
  readonly rpc: PeerAddress;
}

/** Options of {@link callLeader}. */
export interface CallLeaderOptions {
  /** Per-call deadline (ms). Default 10 s. */
  readonly timeoutMs?: number;
  /**
   * Keep trying (every `retryMs`) while no leader answers, until this signal
   * fires. Without one: a single pass over the endpoints, but a cluster that
   * answers with no leader (an election) is tried again until `timeoutMs`.
   */
  readonly signal?: AbortSignal;
  readonly retryMs?: number;
  /** Mutual TLS for the calls: a user's credentials (cohort member) or the node's own (--join). */
  readonly tls?: TcpTlsOptions;
}

/** Errors no other endpoint or later try would answer differently. */
const permanent: ReadonlySet<string> = new Set([
  'INVALID_ARGUMENT',
  'NOT_FOUND',
  'PERMISSION_DENIED',
  'ALREADY_EXISTS',
  'FAILED_PRECONDITION',
]);

/** A typed `Members` client stub. */
export type MemberClient = Client<typeof MemberService>;

/**
 * Calls `fn` on the leader of the cluster `endpoints` belong to: tries the
 * endpoints in turn, follows NOT_LEADER redirects (up to
 * `limits.memberRedirectsMax` in a row), and fails with the last error when
 * no endpoint answered. With `signal`, keeps trying until it fires.
 */
export async function callLeader<T>(
  endpoints: readonly MemberEndpoint[],
  clusterId: string,
  fn: (client: MemberClient, timeoutMs: number) => Promise<T>,
  options: CallLeaderOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  const aborted = (): boolean => options.signal?.aborted === true;
  const clients = new Map<string, Awaited<ReturnType<typeof startTcpClient>>>();
  const clientOf = async (e: MemberEndpoint): Promise<MemberClient> => {
    const key = `${e.id}@${formatAddress(e.rpc)}`;
    let c = clients.get(key);
    if (c === undefined) {
      c = await startTcpClient({
        server: { id: e.id, ...e.rpc },
        clusterId,
        ...(options.tls === undefined ? {} : { tls: options.tls }),
      });
      clients.set(key, c);
    }
    return c.client(MemberService, c.serverId);
  };
  try {
    let last: unknown = new CohortError('UNAVAILABLE', 'no endpoint given');
    for (;;) {
      let leaderless = false;
      for (const start of endpoints) {
        let target: MemberEndpoint = start;
        for (let hop = 0; hop <= limits.memberRedirectsMax; hop++) {
          try {
            return await fn(await clientOf(target), timeoutMs);
          } catch (e) {
            last = e;
            if (isCohortError(e) && permanent.has(e.code)) throw e;
            if (!isCohortError(e) || e.code !== 'NOT_LEADER') break;
            leaderless = true;
            const id = e.details.leaderId;
            const rpc = e.details.leaderRpc;
            if (typeof id !== 'string' || typeof rpc !== 'string') break;
            target = { id, rpc: parseHostPort(rpc, 'leaderRpc') };
          }
        }
      }
      if (aborted()) throw last;
      if (options.signal === undefined) {
        // No signal: one pass, except that a cluster answering without a leader (an election,
        // or a leader lost mid-change) is waited for, up to one call's deadline.
        if (!leaderless || Date.now() >= deadline) throw last;
      }
      await new Promise((r) => setTimeout(r, options.retryMs ?? 500));
      if (aborted()) throw last;
    }
  } finally {
    await Promise.allSettled([...clients.values()].map((c) => c.close()));
  }
}

/** Options of {@link watchForRemoval}. */
export interface RemovalWatchOptions {
  readonly self: NodeId;
  readonly raft: RaftNode<KvRaftStateMachine>;
  readonly book: AddressBook;
  readonly clusterId: string;
  /** Where else to ask besides the address book: the `--peers` RPC addresses and `--join` endpoints. */
  readonly endpoints: readonly MemberEndpoint[];
  /** The node's own credentials (a removed node may still call Members.list). */
  readonly tls?: TcpTlsOptions;
  /**
   * A node joining with an empty data dir (`--join`): settles once the leader
   * added it. Null for a node that was a member from its start (bootstrapped
   * with `--peers` or alone, or restarted from its data dir).
   */
  readonly joining: Promise<unknown> | null;
  /** Runs once, when the leader's member list no longer holds this node. */
  readonly onRemoved: (list: MemberList) => void;
  readonly logger: Logger;
}

/**
 * Notices that this node was removed from the cluster, so that it can stop
 * (an etcd member exits once removed) instead of running idle, calling
 * elections nobody answers. Raft does not tell a removed server: the leader
 * stops replicating to it as soon as it appends the change (dissertation
 * §4.2.2), so the removed node seldom applies its own removal. It asks
 * instead: once the node has been a member (from its start, or once the
 * leader added it when it joined), and then for
 * `limits.removalQuietChecks` checks in a row (one per
 * `limits.membershipCheckMs`) has known no leader or been outside its own
 * latest configuration, it asks the leader for the member list
 * (Members.list, which the access policy leaves open to any node of the
 * cluster's CA); if the leader answers without this node, `onRemoved` runs.
 * An unreachable cluster is no answer: a partitioned member keeps running.
 * What the leader answers is its latest configuration, which may not be
 * committed yet; if that change were then lost with the leader, the node
 * would have stopped while still a member (a crash, as far as the cluster
 * can tell; restarting it rejoins). Returns a function that stops watching.
 */
export function watchForRemoval(o: RemovalWatchOptions): () => void {
  // Not sampled from the configuration alone: a node can be added and removed
  // between two checks (a test with 10 ms ticks does it in under a second).
  let wasMember = o.joining === null;
  o.joining?.then(
    () => (wasMember = true),
    () => {},
  );
  let quiet = 0;
  let asking = false;
  let done = false;
  const inConfig = (): boolean => {
    const c = o.raft.status().config;
    return c.voters.includes(o.self) || c.learners.includes(o.self);
  };
  const endpoints = (): MemberEndpoint[] => {
    const out: MemberEndpoint[] = [];
    for (const [id, rec] of o.book.entries()) {
      if (id !== o.self && rec.rpc !== null) out.push({ id, rpc: rec.rpc });
    }
    for (const e of o.endpoints) if (e.id !== o.self) out.push(e);
    return out;
  };
  const ask = async (): Promise<void> => {
    const list = await callLeader(
      endpoints(),
      o.clusterId,
      (m, timeoutMs) => m.list({ leader: true }, { timeoutMs }),
      {
        timeoutMs: limits.removalAskTimeoutMs,
        ...(o.tls === undefined ? {} : { tls: o.tls }),
      },
    );
    if (done || list.members.some((m) => m.id === o.self)) return;
    done = true;
    o.logger.warn(
      { leader: list.leader, term: list.term, members: list.members.map((m) => m.id) },
      'this node was removed from the cluster (the leader lists it no more)',
    );
    o.onRemoved(list);
  };
  const timer = setInterval(() => {
    if (done || asking) return;
    const member = inConfig();
    if (member) wasMember = true;
    // A removed node that appended its own removal leaves its configuration
    // (and may keep a leader id it never hears from again); one that did not
    // loses its leader at the next election timeout.
    if (!wasMember || (member && o.raft.leaderId() !== null)) {
      quiet = 0;
      return;
    }
    quiet += 1;
    if (quiet < limits.removalQuietChecks) return;
    quiet = 0;
    asking = true;
    ask()
      .catch((e: unknown) =>
        o.logger.debug({ err: e }, 'no leader answered whether this node is still a member'),
      )
      .finally(() => (asking = false));
  }, limits.membershipCheckMs);
  timer.unref();
  return () => {
    done = true;
    clearInterval(timer);
  };
}
