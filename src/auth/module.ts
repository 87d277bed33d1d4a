/**
 * The `auth` node module: the replicated {@link AuthStore} (users, roles,
 * permissions), applied from the node's Raft log on every replica and
 * carried in its snapshots, and, once the node runs, the {@link AuthService}.
 *
 * ```ts
 * const auth = new AuthModule();
 * const node = await startNode(config, { modules: [auth, mapReduceModule()] });  // default-modules.ts does this
 * auth.store.checkKey('alice', 'read', kvKey('app/x'));   // what KvServer asks (through node/access.ts)
 * ```
 *
 * Changes are proposed on the leader only; a follower answers NOT_LEADER
 * naming the leader and its RPC address. A refused change (unknown user,
 * the root role, ...) is a CohortError with the store's code and changes
 * nothing.
 */
import { CohortError } from '../lib/errors.js';
import type { NodeModule, NodeModuleContext } from '../host/modules.js';
import type { CallContext, Handlers } from '../rpc/service.js';
import { describeIdentity } from '../trust/identity.js';
import { AuthStore } from './core/auth-store.js';
import type { AuthApplied, AuthCommand } from './core/types.js';
import { AuthService } from './service.js';

/** The `auth` NodeModule (see the file comment). */
export class AuthModule implements NodeModule {
  readonly name = 'auth';
  /** The replicated store (read it for checks; change it only through the log). */
  readonly store = new AuthStore();

  apply(command: unknown): AuthApplied {
    return this.store.apply(command);
  }

  snapshot(): Uint8Array {
    return this.store.snapshot();
  }

  restore(bytes: Uint8Array): void {
    this.store.restore(bytes);
  }

  reset(): void {
    this.store.reset();
  }

  start(ctx: NodeModuleContext): void {
    ctx.rpc.serve(AuthService, this.handlers(ctx));
  }

  private handlers(ctx: NodeModuleContext): Handlers<typeof AuthService> {
    const store = this.store;
    const change = async (command: AuthCommand): Promise<{ revision: number }> => {
      if (!ctx.raft.isLeader()) throw notLeader(ctx);
      let applied: AuthApplied;
      try {
        applied = (await ctx.propose(command)) as AuthApplied;
      } catch (e) {
        if (e instanceof CohortError && e.code === 'NOT_LEADER') throw notLeader(ctx, e);
        throw e;
      }
      if (!applied.ok) {
        throw new CohortError(applied.error.code, applied.error.message, {
          details: applied.error.details,
        });
      }
      ctx.logger.info({ change: command.type, revision: applied.revision }, 'auth changed');
      return { revision: applied.revision };
    };
    return {
      whoami: (_req, call: CallContext) => {
        const who = call.identity;
        const user = who.kind === 'user' ? who.name : undefined;
        return {
          identity: describeIdentity(who),
          ...(user === undefined ? {} : { user }),
          roles: user === undefined ? [] : [...(store.user(user)?.roles ?? [])],
          root: who.kind === 'anonymous' || (user !== undefined && store.isRoot(user)),
          enabled: store.enabled,
          authenticated: who.kind !== 'anonymous',
        };
      },
      status: () => ({ enabled: store.enabled, revision: store.revision }),
      enable: () => change({ type: 'authEnable' }),
      disable: () => change({ type: 'authDisable' }),
      userAdd: ({ name }) => change({ type: 'userAdd', name }),
      userDelete: ({ name }) => change({ type: 'userDelete', name }),
      userGrantRole: ({ name, role }) => change({ type: 'userGrantRole', name, role }),
      userRevokeRole: ({ name, role }) => change({ type: 'userRevokeRole', name, role }),
      userList: () => ({
        users: store.userList().map((u) => ({ name: u.name, roles: [...u.roles] })),
      }),
      roleAdd: ({ name }) => change({ type: 'roleAdd', name }),
      roleDelete: ({ name }) => change({ type: 'roleDelete', name }),
      roleGrant: (req) => {
        if ((req.permission === undefined) === (req.capability === undefined)) {
          throw new CohortError(
            'INVALID_ARGUMENT',
            'roleGrant takes a permission or a capability (one of them)',
          );
        }
        return req.permission !== undefined
          ? change({ type: 'roleGrantPermission', name: req.name, permission: req.permission })
          : change({
              type: 'roleGrantCapability',
              name: req.name,
              capability: req.capability as NonNullable<typeof req.capability>,
            });
      },
      roleRevoke: (req) => {
        if ((req.key === undefined) === (req.capability === undefined)) {
          throw new CohortError(
            'INVALID_ARGUMENT',
            'roleRevoke takes a key (and rangeEnd) or a capability (one of them)',
          );
        }
        return req.key !== undefined
          ? change({
              type: 'roleRevokePermission',
              name: req.name,
              key: req.key,
              ...(req.rangeEnd === undefined ? {} : { rangeEnd: req.rangeEnd }),
            })
          : change({
              type: 'roleRevokeCapability',
              name: req.name,
              capability: req.capability as NonNullable<typeof req.capability>,
            });
      },
      roleList: () => ({
        roles: store.roleList().map((r) => ({
          name: r.name,
          permissions: r.permissions.map((p) => ({ ...p })),
          capabilities: [...r.capabilities],
        })),
      }),
    };
  }
}

/** NOT_LEADER (definite) naming the leader and its RPC address, as the Kv service does. */
function notLeader(ctx: NodeModuleContext, cause?: CohortError): CohortError {
  const leaderId = ctx.raft.leaderId();
  const addr =
    leaderId === null
      ? undefined
      : leaderId === ctx.config.id
        ? ctx.config.rpc
        : ctx.config.peerRpc.get(leaderId);
  return new CohortError(
    'NOT_LEADER',
    `${ctx.config.id} is not the leader${leaderId === null ? ' (no leader known)' : `; the leader is ${leaderId}`}`,
    {
      details: { leaderId, leaderRpc: addr === undefined ? null : `${addr.host}:${addr.port}` },
      ...(cause === undefined ? {} : { cause }),
    },
  );
}
