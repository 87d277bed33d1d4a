/**
 * Who may do what on a node (DESIGN.md, Trust): which authenticated
 * identities may connect to each port, which RPC methods each may call,
 * and the KV server's per-key checks against the replicated auth store.
 *
 * ```ts
 * const access = new AccessPolicy({ self, insecure: false, auth: authModule.store, isMember });
 * TcpTransport.start({ ..., admit: access.raftAdmit });          // the Raft port: members only
 * TcpTransport.start({ ..., admit: access.rpcAdmit });           // the RPC port: users and members
 * new RpcNode(t, { server: { authorize: (c) => access.authorize(c) } });
 * new KvServer({ ..., access: access.kv });
 * ```
 *
 * | caller                 | Raft port | RPC port                                                                 |
 * | ---------------------- | --------- | ------------------------------------------------------------------------ |
 * | a member node          | yes       | node-to-node methods only: MapReduce's worker and shuffle calls, calls a member forwards to the leader, Node.status/health; not the client API (Kv, Auth, job submission) |
 * | a node not a member    | refused   | only Members.list and Members.add (asking to join as itself, `cohort node --join`; refused once removed until a user adds it: node/members.ts) |
 * | a user                 | refused   | the client API, as its roles allow (with auth disabled: everything); never the node-to-node methods |
 * | no certificate / other CA / expired | refused (TLS) | refused (TLS)                                   |
 * | anonymous (--insecure) | members' ids | everything: nobody is authenticated, every caller is root         |
 *
 * The client API's checks: Kv methods per key in the KV server (see
 * kv/access.ts; compaction needs the `compact` capability); Node.status and
 * Node.health the `status` capability; MapReduce's submit, cancel, status,
 * list and tasks the `mapreduce` capability; Auth's whoami and status
 * anyone, the rest the root role. A method not in the table is for members
 * only. With auth disabled every user may call every client method.
 */
import type { AuthStore } from '../auth/core/auth-store.js';
import type { AuthFailure, Capability } from '../auth/core/types.js';
import { authOpenMethods, authWriteMethods } from '../auth/service.js';
import { CohortError } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import type { KeyNeed, KvAccessControl } from '../kv/access.js';
import type { ServerCallInfo } from '../rpc/server.js';
import type { CallContext } from '../rpc/service.js';
import type { AdmitPolicy } from '../transport/tcp-transport.js';
import { describeIdentity } from '../trust/identity.js';
import type { PeerIdentity } from '../trust/identity.js';

/** Options of {@link AccessPolicy}. */
export interface AccessPolicyOptions {
  /** This node. */
  readonly self: NodeId;
  /** --insecure: nobody is authenticated, so every caller is treated as root. */
  readonly insecure: boolean;
  /** The replicated auth store (the auth module's). */
  readonly auth: AuthStore;
  /** True if `id` is in the current Raft configuration (a voter or a learner). */
  readonly isMember: (id: NodeId) => boolean;
}

/** How a user may call a method. */
type Rule =
  /** Node-to-node only: users never. */
  | { readonly kind: 'members' }
  /** Users, with this capability (none: the handler checks, e.g. per key). */
  | { readonly kind: 'users'; readonly capability?: Capability; readonly nodes?: boolean }
  /** Users holding the root role. */
  | { readonly kind: 'admin' }
  /** Anyone authenticated. */
  | { readonly kind: 'open' };

/** The forwarding mark MapReduce puts on a call a member passes on to the leader (mapreduce/runtime.ts). */
const FORWARDED = 'mr-forwarded';

const mrUser: Rule = { kind: 'users', capability: 'mapreduce' };
const status: Rule = { kind: 'users', capability: 'status', nodes: true };
const membership: Rule = { kind: 'users', capability: 'membership', nodes: true };

/** What a node not (yet) in the configuration may call: ask to join (`cohort node --join`). */
const joinMethods: ReadonlySet<string> = new Set(['Members.list', 'Members.add']);

/** The method table (see the file comment); '*' is a service's default. */
const rules: Readonly<Record<string, Readonly<Record<string, Rule>>>> = {
  Kv: { '*': { kind: 'users' } },
  Node: { status, health: status },
  MapReduce: {
    submit: mrUser,
    cancel: mrUser,
    status: mrUser,
    list: mrUser,
    tasks: mrUser,
    '*': { kind: 'members' },
  },
  // Membership (node/members.ts): reading it needs `status`, changing it
  // `membership`; nodes may call it (a member forwards, a joining node asks to
  // be added: see rpcAdmit).
  Members: {
    list: status,
    add: membership,
    promote: membership,
    remove: membership,
  },
  Auth: {
    ...Object.fromEntries([...authOpenMethods].map((m) => [m, { kind: 'open' }])),
    ...Object.fromEntries([...authWriteMethods].map((m) => [m, { kind: 'admin' }])),
    '*': { kind: 'admin' },
  },
};

function ruleOf(service: string, method: string): Rule {
  const s = rules[service];
  return s?.[method] ?? s?.['*'] ?? { kind: 'members' };
}

function denied(message: string, details: Record<string, unknown>): CohortError {
  return new CohortError('PERMISSION_DENIED', message, { details });
}

function fromFailure(f: AuthFailure): CohortError {
  return new CohortError(f.code, f.message, { details: { ...f.details } });
}

/** A node's access rules (see the file comment). */
export class AccessPolicy {
  constructor(private readonly o: AccessPolicyOptions) {}

  /** Admission to the Raft port: member nodes only. */
  readonly raftAdmit: AdmitPolicy = (identity, claimed) => {
    if (identity.kind === 'user') {
      return `users may not connect to the peer (Raft) port of ${this.o.self}; clients use the RPC port`;
    }
    const id = identity.kind === 'node' ? identity.id : claimed;
    return this.o.isMember(id)
      ? undefined
      : `node ${id} is not a member of the cluster (it was removed, or never added)`;
  };

  /**
   * Admission to the RPC port: users and nodes of the cluster's CA. A node
   * not in the configuration may only ask to join (see {@link authorize}):
   * a node certificate issued by the cluster's CA is the credential to join,
   * as `cohort certs issue node <id>` is the operator's consent.
   */
  readonly rpcAdmit: AdmitPolicy = () => undefined;

  /** The RPC server's access policy (RpcServerOptions.authorize). */
  authorize(call: ServerCallInfo): CohortError | undefined {
    const who = call.identity;
    if (who.kind === 'anonymous') return undefined;
    const name = `${call.service}.${call.method}`;
    const rule = ruleOf(call.service, call.method);
    if (who.kind === 'node') {
      if (!this.o.isMember(who.id) && !joinMethods.has(name)) {
        return denied(
          `node ${who.id} is not a member of the cluster (it was removed, or never added): it may only ask to join (Members.add)`,
          { identity: describeIdentity(who), method: name },
        );
      }
      const forwarded = call.service === 'MapReduce' && call.meta[FORWARDED] !== undefined;
      if (
        rule.kind === 'members' ||
        rule.kind === 'open' ||
        forwarded ||
        (rule.kind === 'users' && rule.nodes === true)
      ) {
        return undefined;
      }
      return denied(
        `node ${who.id} may not call ${name}: node certificates are for links between members; call with a user certificate (cohort certs issue user <name>)`,
        { identity: describeIdentity(who), method: name },
      );
    }
    const user = who.name;
    switch (rule.kind) {
      case 'open':
        return undefined;
      case 'members':
        return denied(`${name} is for member nodes only; user ${user} may not call it`, {
          user,
          method: name,
        });
      case 'admin': {
        const f = this.o.auth.checkAdmin(user);
        return f === undefined ? undefined : fromFailure(f);
      }
      case 'users': {
        if (rule.capability === undefined) return undefined;
        const f = this.o.auth.checkCapability(user, rule.capability);
        return f === undefined ? undefined : fromFailure(f);
      }
    }
  }

  /** The KV server's checks (kv/access.ts). */
  readonly kv: KvAccessControl = {
    checkKeys: (ctx: CallContext, needs: readonly KeyNeed[]): void => {
      const user = this.userOf(ctx.identity, 'the key-value store');
      if (user === undefined) return;
      for (const n of needs) {
        const f = this.o.auth.checkKey(user, n.access, n.key, n.rangeEnd);
        if (f !== undefined) throw fromFailure(f);
      }
    },
    checkCapability: (ctx: CallContext, capability: 'compact'): void => {
      const user = this.userOf(ctx.identity, capability);
      if (user === undefined) return;
      const f = this.o.auth.checkCapability(user, capability);
      if (f !== undefined) throw fromFailure(f);
    },
    sessionOwner: (ctx: CallContext): string | undefined =>
      ctx.identity.kind === 'user' ? ctx.identity.name : undefined,
  };

  /** The user to check, undefined for an unauthenticated caller (allowed); a node is refused. */
  private userOf(identity: PeerIdentity, what: string): string | undefined {
    if (identity.kind === 'anonymous') return undefined;
    if (identity.kind === 'node') {
      throw denied(`node ${identity.id} may not use ${what}: that is for users`, {
        identity: describeIdentity(identity),
      });
    }
    return identity.name;
  }
}
