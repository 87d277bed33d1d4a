/**
 * Users, roles and permissions as the replicated auth store holds them, and
 * the commands that change them (each a Raft log entry of the `auth` node
 * module, applied the same way on every replica).
 *
 * ```ts
 * const grant: AuthCommand = {
 *   type: 'roleGrantPermission',
 *   name: 'app',
 *   permission: { type: 'readwrite', key: kvKey('app/'), rangeEnd: kvKey('app0') },  // the prefix app/
 * };
 * ```
 *
 * A key permission covers one key (no `rangeEnd`), or the range
 * [key, rangeEnd) (a prefix is the range up to the prefix's end), or
 * everything from `key` on (`rangeEnd` the single byte 0, etcd's
 * convention, as in KV requests). A capability names a cluster operation
 * that is not about keys.
 */
import type { ErrorCode } from '../../lib/errors.js';

/** The named capabilities a role may hold (cluster operations that are not about keys). */
export const capabilities = ['status', 'compact', 'mapreduce', 'membership'] as const;

/** A named capability: `status` (Node.status/health), `compact` (KV compaction), `mapreduce` (submit, cancel, read jobs), `membership` (add or remove members). */
export type Capability = (typeof capabilities)[number];

/** What a key permission allows. */
export type PermissionType = 'read' | 'write' | 'readwrite';

/** What one access needs: reading or writing. */
export type Access = 'read' | 'write';

/** A key permission (see the file comment for the ranges). */
export interface KeyPermission {
  readonly type: PermissionType;
  readonly key: Uint8Array;
  readonly rangeEnd?: Uint8Array;
}

/** The name of the built-in role that holds every permission and capability. */
export const ROOT = 'root';

/** One command of the auth module (a log entry). */
export type AuthCommand =
  | { readonly type: 'authEnable' }
  | { readonly type: 'authDisable' }
  | { readonly type: 'userAdd'; readonly name: string }
  | { readonly type: 'userDelete'; readonly name: string }
  | { readonly type: 'userGrantRole'; readonly name: string; readonly role: string }
  | { readonly type: 'userRevokeRole'; readonly name: string; readonly role: string }
  | { readonly type: 'roleAdd'; readonly name: string }
  | { readonly type: 'roleDelete'; readonly name: string }
  | {
      readonly type: 'roleGrantPermission';
      readonly name: string;
      readonly permission: KeyPermission;
    }
  | {
      readonly type: 'roleRevokePermission';
      readonly name: string;
      readonly key: Uint8Array;
      readonly rangeEnd?: Uint8Array;
    }
  | { readonly type: 'roleGrantCapability'; readonly name: string; readonly capability: Capability }
  | {
      readonly type: 'roleRevokeCapability';
      readonly name: string;
      readonly capability: Capability;
    };

/** A refusal, as data (every replica refuses the same command the same way). */
export interface AuthFailure {
  readonly code: ErrorCode;
  readonly message: string;
  readonly details: Readonly<Record<string, string | number | boolean | null>>;
}

/** What applying a command returns: the auth revision after it, or why it was refused. */
export type AuthApplied =
  | { readonly ok: true; readonly revision: number }
  | { readonly ok: false; readonly error: AuthFailure };

/** A user as answers show it. */
export interface UserInfo {
  readonly name: string;
  readonly roles: readonly string[];
}

/** A role as answers show it (the root role lists no permissions: it has them all). */
export interface RoleInfo {
  readonly name: string;
  readonly permissions: readonly KeyPermission[];
  readonly capabilities: readonly Capability[];
}
