/**
 * The `Auth` RPC service every node serves: read and change the replicated
 * users, roles and permissions (src/auth/core). Changes are proposed by the
 * leader (a follower answers NOT_LEADER with `details.leaderId` and
 * `leaderRpc`, like the Kv service); reads answer from the node's own state.
 * Who may call what is the node's access policy (node/access.ts): changes
 * take the root role (or auth disabled); `whoami` and `status` anyone.
 *
 * ```ts
 * const auth = rpc.client(AuthService, nodeId('n1'));
 * await auth.userAdd({ name: 'alice' });
 * await auth.roleGrant({ name: 'app', permission: { type: 'readwrite', key: kvKey('app/'), rangeEnd: kvKey('app0') } });
 * await auth.userGrantRole({ name: 'alice', role: 'app' });
 * await auth.whoami({});          // { identity: 'user alice', user: 'alice', roles: ['app'], root: false, ... }
 * ```
 */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { limits } from '../lib/limits.js';
import { defineService, unary } from '../rpc/service.js';
import { capabilities } from './core/types.js';

const Name = Type.String({ minLength: 1, maxLength: limits.userNameCharsMax });
const Key = Type.Uint8Array({ minByteLength: 1, maxByteLength: limits.kvKeyBytesMax });
const CapabilitySchema = Type.Union(capabilities.map((c) => Type.Literal(c)));
const PermissionTypeSchema = Type.Union([
  Type.Literal('read'),
  Type.Literal('write'),
  Type.Literal('readwrite'),
]);

/** A key permission on the wire. */
export const KeyPermissionSchema = Type.Object({
  type: PermissionTypeSchema,
  key: Key,
  /** Absent: the key alone; the single byte 0: everything from key on; else the end of the range. */
  rangeEnd: Type.Optional(Key),
});

const Revision = Type.Object({ revision: Type.Integer({ minimum: 0 }) });

/** A user as answers show it. */
export const UserInfoSchema = Type.Object({
  name: Type.String(),
  roles: Type.Array(Type.String()),
});

/** A role as answers show it. */
export const RoleInfoSchema = Type.Object({
  name: Type.String(),
  permissions: Type.Array(KeyPermissionSchema),
  capabilities: Type.Array(CapabilitySchema),
});

/** Who the caller is, as the node sees it. */
export const WhoamiSchema = Type.Object({
  /** `user alice`, `node n1` or `anonymous`. */
  identity: Type.String(),
  /** The user name, for a user. */
  user: Type.Optional(Type.String()),
  roles: Type.Array(Type.String()),
  root: Type.Boolean(),
  /** Whether auth is enabled (when not, every user may do everything). */
  enabled: Type.Boolean(),
  /** False on a plaintext (--insecure) node: nobody is authenticated, every caller is treated as root. */
  authenticated: Type.Boolean(),
});

/** Who the caller is. */
export type Whoami = Static<typeof WhoamiSchema>;

const write = { idempotent: false } as const;
const read = { idempotent: true } as const;

/** The Auth service (see the file comment). */
export const AuthService = defineService('Auth', {
  whoami: unary(Type.Object({}), WhoamiSchema, {
    ...read,
    description: 'the caller as this node authenticated it, and its roles',
  }),
  status: unary(
    Type.Object({}),
    Type.Object({ enabled: Type.Boolean(), revision: Type.Integer({ minimum: 0 }) }),
    { ...read, description: 'whether auth is enabled, and the auth revision' },
  ),
  enable: unary(Type.Object({}), Revision, { ...write, description: 'enable auth' }),
  disable: unary(Type.Object({}), Revision, {
    ...write,
    description: 'disable auth: every user may then do everything',
  }),
  userAdd: unary(Type.Object({ name: Name }), Revision, { ...write, description: 'add a user' }),
  userDelete: unary(Type.Object({ name: Name }), Revision, {
    ...write,
    description: 'delete a user',
  }),
  userGrantRole: unary(Type.Object({ name: Name, role: Name }), Revision, {
    ...write,
    description: 'give a user a role',
  }),
  userRevokeRole: unary(Type.Object({ name: Name, role: Name }), Revision, {
    ...write,
    description: 'take a role from a user',
  }),
  userList: unary(Type.Object({}), Type.Object({ users: Type.Array(UserInfoSchema) }), {
    ...read,
    description: 'every user and its roles',
  }),
  roleAdd: unary(Type.Object({ name: Name }), Revision, { ...write, description: 'add a role' }),
  roleDelete: unary(Type.Object({ name: Name }), Revision, {
    ...write,
    description: 'delete a role (users lose it)',
  }),
  roleGrant: unary(
    Type.Object({
      name: Name,
      permission: Type.Optional(KeyPermissionSchema),
      capability: Type.Optional(CapabilitySchema),
    }),
    Revision,
    { ...write, description: 'give a role a key permission or a capability' },
  ),
  roleRevoke: unary(
    Type.Object({
      name: Name,
      key: Type.Optional(Key),
      rangeEnd: Type.Optional(Key),
      capability: Type.Optional(CapabilitySchema),
    }),
    Revision,
    {
      ...write,
      description: 'take a key permission (by its key and range) or a capability from a role',
    },
  ),
  roleList: unary(Type.Object({}), Type.Object({ roles: Type.Array(RoleInfoSchema) }), {
    ...read,
    description: 'every role with its permissions and capabilities',
  }),
});

/** The methods of the Auth service that change the store (root only). */
export const authWriteMethods: ReadonlySet<string> = new Set([
  'enable',
  'disable',
  'userAdd',
  'userDelete',
  'userGrantRole',
  'userRevokeRole',
  'roleAdd',
  'roleDelete',
  'roleGrant',
  'roleRevoke',
]);

/** The methods anyone authenticated may call. */
export const authOpenMethods: ReadonlySet<string> = new Set(['whoami', 'status']);
