/**
 * The replicated auth store: whether auth is enabled, the users and the
 * roles they hold, each role's key permissions and capabilities. A pure,
 * deterministic state machine: every replica applies the same commands in
 * log order and answers every check the same way; bad commands are refused
 * as data, never thrown.
 *
 * ```ts
 * const store = new AuthStore();                       // a fresh cluster: auth enabled, user root
 * store.apply({ type: 'userAdd', name: 'alice' });
 * store.apply({ type: 'roleAdd', name: 'app' });
 * store.apply({ type: 'roleGrantPermission', name: 'app', permission: { type: 'read', key, rangeEnd } });
 * store.apply({ type: 'userGrantRole', name: 'alice', role: 'app' });
 * store.checkKey('alice', 'write', key);              // AuthFailure: PERMISSION_DENIED, or undefined
 * store.checkCapability('alice', 'mapreduce');        // AuthFailure, or undefined
 * ```
 *
 * Rules (etcd's model, secure by default):
 * - A fresh store has auth **enabled** and one user, `root`, holding the
 *   built-in `root` role, which has every permission and capability and
 *   cannot be changed or deleted; `root` can neither be deleted nor lose it,
 *   so there is always an administrator.
 * - With auth enabled a user may do what its roles allow: a read needs a
 *   `read` or `readwrite` permission, a write a `write` or `readwrite` one,
 *   covering the whole key or range asked for (the union of the user's
 *   permissions of that kind must cover it); an unknown user may do nothing.
 *   With auth disabled every user may do everything.
 * - Managing users and roles (the Auth service's writes) is for root-role
 *   holders; the node's access policy enforces that (node/access.ts).
 * - Every applied change bumps `revision`.
 */
import { Packr } from 'msgpackr';
import { CohortError } from '../../lib/errors.js';
import { isValidUserName } from '../../lib/ids.js';
import { limits } from '../../lib/limits.js';
import { capabilities, ROOT } from './types.js';
import type {
  Access,
  AuthApplied,
  AuthFailure,
  Capability,
  KeyPermission,
  PermissionType,
  RoleInfo,
  UserInfo,
} from './types.js';

const packr = new Packr({ useRecords: false, mapsAsObjects: true });
const SNAPSHOT_FORMAT = 'cohort-auth/1';
const PERMISSION_TYPES: readonly PermissionType[] = ['read', 'write', 'readwrite'];
/** Longest key in a permission, in bytes (a KV key's bound). */
const KEY_BYTES_MAX = limits.kvKeyBytesMax;

/** A key range as byte strings (one code unit per byte): [start, end), end null = to the end of the key space. */
interface Interval {
  readonly start: string;
  readonly end: string | null;
}

/** A stored permission. */
interface Permission extends Interval {
  readonly type: PermissionType;
  /** undefined: one key; null: from start on; else the range end (as given). */
  readonly rangeEnd: string | null | undefined;
}

interface Role {
  readonly permissions: Permission[];
  readonly capabilities: Set<Capability>;
}

/** The byte string of `bytes`. */
function byteString(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i] as number);
  return s;
}

function bytesOf(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

const decoder = new TextDecoder();

/** The UTF-8 text of key bytes (for messages; keys need not be UTF-8). */
function utf8(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/** A key or range for messages: its text, JSON-quoted. */
function showKey(start: string, end: string | null | undefined): string {
  const text = (s: string): string => JSON.stringify(utf8(bytesOf(s)));
  if (end === undefined) return `key ${text(start)}`;
  if (end === null) return `keys from ${text(start)} on`;
  return `range [${text(start)}, ${text(end)})`;
}

/** The interval of a key (rangeEnd undefined), a range, or everything from key on (rangeEnd [0]). */
function intervalOf(key: string, rangeEnd: string | null | undefined): Interval {
  if (rangeEnd === undefined) return { start: key, end: `${key}\u0000` };
  return { start: key, end: rangeEnd };
}

function failure(
  code: AuthFailure['code'],
  message: string,
  details: AuthFailure['details'] = {},
): { ok: false; error: AuthFailure } {
  return { ok: false, error: { code, message, details } };
}

function isBytes(v: unknown, min = 1): v is Uint8Array {
  return v instanceof Uint8Array && v.length >= min && v.length <= KEY_BYTES_MAX;
}

/** Parses a permission's key and rangeEnd; a string error if malformed. */
function parseRange(
  key: unknown,
  rangeEnd: unknown,
): { start: string; rangeEnd: string | null | undefined } | string {
  if (!isBytes(key)) return `key must be 1..${KEY_BYTES_MAX} bytes`;
  const start = byteString(key);
  if (rangeEnd === undefined) return { start, rangeEnd: undefined };
  if (!isBytes(rangeEnd)) return `rangeEnd must be 1..${KEY_BYTES_MAX} bytes`;
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return { start, rangeEnd: null };
  const end = byteString(rangeEnd);
  if (end <= start) return 'rangeEnd must sort after key';
  return { start, rangeEnd: end };
}

function isCapability(v: unknown): v is Capability {
  return typeof v === 'string' && (capabilities as readonly string[]).includes(v);
}

/** The store (see the file comment). */
export class AuthStore {
  enabled = true;
  /** Bumped by every applied change. */
  revision = 0;
  private users = new Map<string, Set<string>>();
  private roles = new Map<string, Role>();
  /** Per user and access: the merged intervals its roles allow (rebuilt after a change). */
  private cache = new Map<string, readonly Interval[]>();

  constructor() {
    this.reset();
  }

  /** Back to a fresh cluster's state: auth enabled, user root with the root role. */
  reset(): void {
    this.enabled = true;
    this.revision = 0;
    this.users = new Map([[ROOT, new Set([ROOT])]]);
    this.roles = new Map();
    this.cache.clear();
  }

  // ------------------------------------------------------------ checks

  /** True if `user` holds the root role. */
  isRoot(user: string): boolean {
    return this.users.get(user)?.has(ROOT) === true;
  }

  /**
   * Undefined if `user` may `access` the key (`rangeEnd` undefined) or the
   * range [key, rangeEnd) (rangeEnd [0]: everything from key on), else a
   * PERMISSION_DENIED failure naming the key and the missing permission.
   */
  checkKey(
    user: string,
    access: Access,
    key: Uint8Array,
    rangeEnd?: Uint8Array,
  ): AuthFailure | undefined {
    if (!this.enabled || this.isRoot(user)) return undefined;
    const start = byteString(key);
    const end =
      rangeEnd === undefined
        ? undefined
        : rangeEnd.length === 1 && rangeEnd[0] === 0
          ? null
          : byteString(rangeEnd);
    const want = intervalOf(start, end);
    if (this.covered(user, access, want)) return undefined;
    const what = showKey(start, end);
    return {
      code: 'PERMISSION_DENIED',
      message: this.users.has(user)
        ? `user ${user} lacks ${access} permission on ${what}`
        : `user ${user} does not exist in the cluster's auth store (root adds it: cohort user add ${user}), so it may not ${access} ${what}`,
      details: {
        user,
        permission: access,
        key: utf8(key),
        ...(rangeEnd === undefined ? {} : { rangeEnd: utf8(rangeEnd) }),
      },
    };
  }

  /** Undefined if `user` holds `capability`, else a PERMISSION_DENIED failure naming it. */
  checkCapability(user: string, capability: Capability): AuthFailure | undefined {
    if (!this.enabled || this.isRoot(user)) return undefined;
    for (const r of this.users.get(user) ?? []) {
      if (this.roles.get(r)?.capabilities.has(capability) === true) return undefined;
    }
    return {
      code: 'PERMISSION_DENIED',
      message: this.users.has(user)
        ? `user ${user} lacks the ${capability} capability`
        : `user ${user} does not exist in the cluster's auth store, so it lacks the ${capability} capability`,
      details: { user, capability },
    };
  }

  /** Undefined if `user` may manage users and roles (root role, or auth disabled). */
  checkAdmin(user: string): AuthFailure | undefined {
    if (!this.enabled || this.isRoot(user)) return undefined;
    return {
      code: 'PERMISSION_DENIED',
      message: `user ${user} may not manage users and roles: that takes the root role`,
      details: { user, capability: 'root' },
    };
  }

  private covered(user: string, access: Access, want: Interval): boolean {
    const key = `${access}\u0000${user}`;
    let merged = this.cache.get(key);
    if (merged === undefined) {
      merged = this.merge(user, access);
      this.cache.set(key, merged);
    }
    // The last interval starting at or before want.start must reach want.end.
    let lo = 0;
    let hi = merged.length - 1;
    let at = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if ((merged[mid] as Interval).start <= want.start) {
        at = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    if (at < 0) return false;
    const iv = merged[at] as Interval;
    if (iv.end === null) return true;
    return want.end !== null && want.end <= iv.end;
  }

  /** The user's intervals for `access`, sorted and merged (overlapping or touching ones joined). */
  private merge(user: string, access: Access): Interval[] {
    const all: Interval[] = [];
    for (const r of this.users.get(user) ?? []) {
      for (const p of this.roles.get(r)?.permissions ?? []) {
        if (p.type === access || p.type === 'readwrite') all.push(p);
      }
    }
    all.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    const out: Interval[] = [];
    for (const iv of all) {
      const last = out[out.length - 1];
      if (last !== undefined && (last.end === null || iv.start <= last.end)) {
        if (last.end !== null && (iv.end === null || iv.end > last.end)) {
          out[out.length - 1] = { start: last.start, end: iv.end };
        }
        continue;
      }
      out.push({ start: iv.start, end: iv.end });
    }
    return out;
  }

  // ------------------------------------------------------------ reads

  /** One user, or undefined. */
  user(name: string): UserInfo | undefined {
    const roles = this.users.get(name);
    return roles === undefined ? undefined : { name, roles: [...roles].sort() };
  }

  /** Every user, by name. */
  userList(): UserInfo[] {
    return [...this.users.keys()].sort().map((n) => this.user(n) as UserInfo);
  }

  /** One role (root: no listed permissions, every capability), or undefined. */
  role(name: string): RoleInfo | undefined {
    if (name === ROOT) return { name, permissions: [], capabilities: [...capabilities] };
    const r = this.roles.get(name);
    if (r === undefined) return undefined;
    return {
      name,
      permissions: r.permissions.map((p) => ({
        type: p.type,
        key: bytesOf(p.start),
        ...(p.rangeEnd === undefined
          ? {}
          : { rangeEnd: p.rangeEnd === null ? Uint8Array.of(0) : bytesOf(p.rangeEnd) }),
      })),
      capabilities: [...r.capabilities].sort(),
    };
  }

  /** Every role, by name (root first). */
  roleList(): RoleInfo[] {
    return [ROOT, ...[...this.roles.keys()].sort()].map((n) => this.role(n) as RoleInfo);
  }

  // ------------------------------------------------------------ apply

  /** Applies one command (any value: a replica may decode anything from the log). */
  apply(command: unknown): AuthApplied {
    const out = this.exec(command);
    if (out === undefined) {
      this.revision++;
      this.cache.clear();
      return { ok: true, revision: this.revision };
    }
    return out;
  }

  /** Runs a command; undefined if it changed the state, else its refusal. */
  private exec(c: unknown): { ok: false; error: AuthFailure } | undefined {
    if (typeof c !== 'object' || c === null || typeof (c as { type?: unknown }).type !== 'string') {
      return failure('INVALID_ARGUMENT', 'an auth command must be an object with a type');
    }
    const cmd = c as Record<string, unknown> & { type: string };
    const name = cmd['name'];
    const needName = (kind: 'user' | 'role'): string | undefined =>
      isValidUserName(name)
        ? undefined
        : `${kind} name ${JSON.stringify(name)} must be 1..${limits.userNameCharsMax} letters, digits and . _ - (starting with a letter or digit)`;
    switch (cmd.type) {
      case 'authEnable':
        // The root user always exists with the root role (see the file comment).
        this.enabled = true;
        return undefined;
      case 'authDisable':
        this.enabled = false;
        return undefined;
      case 'userAdd': {
        const bad = needName('user');
        if (bad !== undefined) return failure('INVALID_ARGUMENT', bad, { field: 'name' });
        const n = name as string;
        if (this.users.has(n)) return failure('ALREADY_EXISTS', `user ${n} exists`, { user: n });
        if (this.users.size >= limits.authUsersMax) {
          return failure(
            'FAILED_PRECONDITION',
            `the auth store holds authUsersMax ${limits.authUsersMax} users`,
          );
        }
        this.users.set(n, new Set());
        return undefined;
      }
      case 'userDelete': {
        const n = String(name);
        if (n === ROOT) return failure('FAILED_PRECONDITION', 'the root user cannot be deleted');
        if (!this.users.delete(n)) return failure('NOT_FOUND', `no user ${n}`, { user: n });
        return undefined;
      }
      case 'userGrantRole':
      case 'userRevokeRole': {
        const n = String(name);
        const role = String(cmd['role']);
        const roles = this.users.get(n);
        if (roles === undefined) return failure('NOT_FOUND', `no user ${n}`, { user: n });
        if (role !== ROOT && !this.roles.has(role)) {
          return failure('NOT_FOUND', `no role ${role}`, { role });
        }
        if (cmd.type === 'userGrantRole') {
          if (roles.has(role)) return failure('ALREADY_EXISTS', `user ${n} has role ${role}`);
          if (roles.size >= limits.authUserRolesMax) {
            return failure(
              'FAILED_PRECONDITION',
              `user ${n} holds authUserRolesMax ${limits.authUserRolesMax} roles`,
            );
          }
          roles.add(role);
          return undefined;
        }
        if (n === ROOT && role === ROOT) {
          return failure('FAILED_PRECONDITION', 'the root user keeps the root role');
        }
        if (!roles.delete(role))
          return failure('NOT_FOUND', `user ${n} does not have role ${role}`);
        return undefined;
      }
      case 'roleAdd': {
        const bad = needName('role');
        if (bad !== undefined) return failure('INVALID_ARGUMENT', bad, { field: 'name' });
        const n = name as string;
        if (n === ROOT || this.roles.has(n)) return failure('ALREADY_EXISTS', `role ${n} exists`);
        if (this.roles.size >= limits.authRolesMax) {
          return failure(
            'FAILED_PRECONDITION',
            `the auth store holds authRolesMax ${limits.authRolesMax} roles`,
          );
        }
        this.roles.set(n, { permissions: [], capabilities: new Set() });
        return undefined;
      }
      case 'roleDelete': {
        const n = String(name);
        if (n === ROOT) return failure('FAILED_PRECONDITION', 'the root role cannot be deleted');
        if (!this.roles.delete(n)) return failure('NOT_FOUND', `no role ${n}`, { role: n });
        for (const roles of this.users.values()) roles.delete(n);
        return undefined;
      }
      case 'roleGrantPermission':
      case 'roleRevokePermission':
      case 'roleGrantCapability':
      case 'roleRevokeCapability':
        return this.changeRole(cmd);
      default:
        return failure('INVALID_ARGUMENT', `unknown auth command ${JSON.stringify(cmd.type)}`);
    }
  }

  private changeRole(
    cmd: Record<string, unknown> & { type: string },
  ): { ok: false; error: AuthFailure } | undefined {
    const n = String(cmd['name']);
    if (n === ROOT) {
      return failure(
        'FAILED_PRECONDITION',
        'the root role has every permission and cannot be changed',
      );
    }
    const role = this.roles.get(n);
    if (role === undefined) return failure('NOT_FOUND', `no role ${n}`, { role: n });
    if (cmd.type === 'roleGrantCapability' || cmd.type === 'roleRevokeCapability') {
      const cap = cmd['capability'];
      if (!isCapability(cap)) {
        return failure('INVALID_ARGUMENT', `capability must be one of ${capabilities.join(', ')}`, {
          field: 'capability',
        });
      }
      if (cmd.type === 'roleGrantCapability') role.capabilities.add(cap);
      else if (!role.capabilities.delete(cap)) {
        return failure('NOT_FOUND', `role ${n} does not have the ${cap} capability`);
      }
      return undefined;
    }
    if (cmd.type === 'roleGrantPermission') {
      const p = cmd['permission'];
      if (typeof p !== 'object' || p === null)
        return failure('INVALID_ARGUMENT', 'permission must be an object');
      const perm = p as Partial<KeyPermission>;
      if (!PERMISSION_TYPES.includes(perm.type as PermissionType)) {
        return failure('INVALID_ARGUMENT', 'permission.type must be read, write or readwrite', {
          field: 'type',
        });
      }
      const range = parseRange(perm.key, perm.rangeEnd);
      if (typeof range === 'string') return failure('INVALID_ARGUMENT', `permission: ${range}`);
      const same = role.permissions.findIndex(
        (x) => x.start === range.start && x.rangeEnd === range.rangeEnd,
      );
      const next: Permission = {
        type: perm.type as PermissionType,
        rangeEnd: range.rangeEnd,
        ...intervalOf(range.start, range.rangeEnd),
      };
      if (same >= 0) {
        // Granting again on the same key or range: the kinds add up (read + write = readwrite).
        const old = role.permissions[same] as Permission;
        const type = old.type === next.type ? old.type : 'readwrite';
        role.permissions[same] = { ...next, type };
        return undefined;
      }
      if (role.permissions.length >= limits.authRolePermissionsMax) {
        return failure(
          'FAILED_PRECONDITION',
          `role ${n} holds authRolePermissionsMax ${limits.authRolePermissionsMax} permissions`,
        );
      }
      role.permissions.push(next);
      role.permissions.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
      return undefined;
    }
    const range = parseRange(cmd['key'], cmd['rangeEnd']);
    if (typeof range === 'string') return failure('INVALID_ARGUMENT', range);
    const i = role.permissions.findIndex(
      (x) => x.start === range.start && x.rangeEnd === range.rangeEnd,
    );
    if (i < 0) {
      return failure(
        'NOT_FOUND',
        `role ${n} has no permission on ${showKey(range.start, range.rangeEnd)}`,
      );
    }
    role.permissions.splice(i, 1);
    return undefined;
  }

  // ------------------------------------------------------------ snapshots

  /** The whole state (deterministic bytes: names sorted). */
  snapshot(): Uint8Array {
    return new Uint8Array(
      packr.pack({
        format: SNAPSHOT_FORMAT,
        enabled: this.enabled,
        revision: this.revision,
        users: [...this.users.keys()].sort().map((u) => [u, [...(this.users.get(u) ?? [])].sort()]),
        roles: [...this.roles.keys()].sort().map((name) => {
          const r = this.roles.get(name) as Role;
          return [
            name,
            r.permissions.map((p) => [
              p.type,
              p.start,
              p.rangeEnd === undefined ? false : p.rangeEnd,
            ]),
            [...r.capabilities].sort(),
          ];
        }),
      }),
    );
  }

  /** Replaces the state with a snapshot's; throws (a CORRUPTION for the caller) on bad bytes, changing nothing. */
  restore(bytes: Uint8Array): void {
    let raw: unknown;
    try {
      raw = packr.unpack(bytes.subarray());
    } catch (e) {
      throw new CohortError(
        'CORRUPTION',
        `auth snapshot is not MessagePack: ${(e as Error).message}`,
      );
    }
    const bad = (why: string): never => {
      throw new CohortError('CORRUPTION', `auth snapshot is malformed: ${why}`);
    };
    if (typeof raw !== 'object' || raw === null) bad('not a map');
    const m = raw as Record<string, unknown>;
    if (m['format'] !== SNAPSHOT_FORMAT) bad(`format is not ${SNAPSHOT_FORMAT}`);
    if (typeof m['enabled'] !== 'boolean') bad('enabled');
    const revision = m['revision'];
    if (typeof revision !== 'number' || !Number.isSafeInteger(revision) || revision < 0)
      bad('revision');
    const roles = new Map<string, Role>();
    if (!Array.isArray(m['roles'])) bad('roles');
    for (const row of m['roles'] as unknown[]) {
      if (!Array.isArray(row) || row.length !== 3) bad('role row');
      const [name, perms, caps] = row as [unknown, unknown, unknown];
      if (!isValidUserName(name) || name === ROOT || roles.has(name)) bad('role name');
      if (!Array.isArray(perms) || !Array.isArray(caps)) bad('role parts');
      const permissions: Permission[] = [];
      for (const p of perms as unknown[]) {
        if (!Array.isArray(p) || p.length !== 3) bad('permission');
        const [type, start, end] = p as [unknown, unknown, unknown];
        if (!PERMISSION_TYPES.includes(type as PermissionType) || typeof start !== 'string')
          bad('permission');
        if (end !== false && end !== null && typeof end !== 'string') bad('permission end');
        const rangeEnd = end === false ? undefined : (end as string | null);
        permissions.push({
          type: type as PermissionType,
          rangeEnd,
          ...intervalOf(start as string, rangeEnd),
        });
      }
      const set = new Set<Capability>();
      for (const c of caps as unknown[]) {
        if (!isCapability(c)) bad('capability');
        set.add(c as Capability);
      }
      roles.set(name as string, { permissions, capabilities: set });
    }
    const users = new Map<string, Set<string>>();
    if (!Array.isArray(m['users'])) bad('users');
    for (const row of m['users'] as unknown[]) {
      if (!Array.isArray(row) || row.length !== 2) bad('user row');
      const [name, rs] = row as [unknown, unknown];
      if (!isValidUserName(name) || users.has(name) || !Array.isArray(rs)) bad('user');
      const set = new Set<string>();
      for (const r of rs as unknown[]) {
        if (typeof r !== 'string' || (r !== ROOT && !roles.has(r))) bad('user role');
        set.add(r as string);
      }
      users.set(name as string, set);
    }
    if (users.get(ROOT)?.has(ROOT) !== true) bad('the root user lacks the root role');
    this.enabled = m['enabled'] as boolean;
    this.revision = revision as number;
    this.users = users;
    this.roles = roles;
    this.cache.clear();
  }
}
