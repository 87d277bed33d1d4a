import { describe, expect, it } from 'vitest';
import { AuthStore } from '../../src/auth/core/index.js';
import type { AuthCommand } from '../../src/auth/core/index.js';

const k = (s: string): Uint8Array => new TextEncoder().encode(s);
const ALL = Uint8Array.of(0);

function store(...commands: AuthCommand[]): AuthStore {
  const s = new AuthStore();
  for (const c of commands) {
    const out = s.apply(c);
    if (!out.ok) throw new Error(`${c.type}: ${out.error.message}`);
  }
  return s;
}

const alice = (...more: AuthCommand[]): AuthStore =>
  store(
    { type: 'userAdd', name: 'alice' },
    { type: 'roleAdd', name: 'app' },
    { type: 'userGrantRole', name: 'alice', role: 'app' },
    ...more,
  );

describe('auth store', () => {
  it('starts enabled with root, who may do anything; an unknown user may do nothing', () => {
    const s = new AuthStore();
    expect(s.enabled).toBe(true);
    expect(s.isRoot('root')).toBe(true);
    expect(s.checkKey('root', 'write', k('x'))).toBeUndefined();
    expect(s.checkCapability('root', 'mapreduce')).toBeUndefined();
    const denied = s.checkKey('bob', 'read', k('x'));
    expect(denied?.code).toBe('PERMISSION_DENIED');
    expect(denied?.message).toMatch(/user bob does not exist/);
  });

  it('a prefix permission covers keys and ranges inside the prefix, not beyond', () => {
    const s = alice({
      type: 'roleGrantPermission',
      name: 'app',
      permission: { type: 'read', key: k('app/'), rangeEnd: k('app0') },
    });
    expect(s.checkKey('alice', 'read', k('app/x'))).toBeUndefined();
    expect(s.checkKey('alice', 'read', k('app/a'), k('app/z'))).toBeUndefined();
    expect(s.checkKey('alice', 'read', k('app/'), k('app0'))).toBeUndefined();
    const write = s.checkKey('alice', 'write', k('app/x'));
    expect(write?.message).toBe('user alice lacks write permission on key "app/x"');
    expect(write?.details).toMatchObject({ user: 'alice', permission: 'write', key: 'app/x' });
    expect(s.checkKey('alice', 'read', k('app0'))).toBeDefined();
    expect(s.checkKey('alice', 'read', k('app/'), k('b'))?.message).toMatch(
      /lacks read permission on range \["app\/", "b"\)/,
    );
    expect(s.checkKey('alice', 'read', k('app/'), ALL)).toBeDefined();
  });

  it('permissions add up: adjacent ranges cover a range across both; a key covers only itself', () => {
    const s = alice(
      { type: 'roleAdd', name: 'more' },
      { type: 'userGrantRole', name: 'alice', role: 'more' },
      {
        type: 'roleGrantPermission',
        name: 'app',
        permission: { type: 'readwrite', key: k('a'), rangeEnd: k('m') },
      },
      {
        type: 'roleGrantPermission',
        name: 'more',
        permission: { type: 'write', key: k('m'), rangeEnd: k('t') },
      },
      { type: 'roleGrantPermission', name: 'more', permission: { type: 'read', key: k('zz') } },
    );
    expect(s.checkKey('alice', 'write', k('b'), k('s'))).toBeUndefined();
    expect(s.checkKey('alice', 'read', k('b'), k('s'))).toBeDefined();
    expect(s.checkKey('alice', 'read', k('zz'))).toBeUndefined();
    expect(s.checkKey('alice', 'read', k('zz'), k('zzz'))).toBeDefined();
    expect(s.checkKey('alice', 'read', k('zz\u0000'))).toBeDefined();
  });

  it('a permission from a key on (rangeEnd 0) covers everything after it', () => {
    const s = alice({
      type: 'roleGrantPermission',
      name: 'app',
      permission: { type: 'write', key: k('m'), rangeEnd: ALL },
    });
    expect(s.checkKey('alice', 'write', k('zzzz'))).toBeUndefined();
    expect(s.checkKey('alice', 'write', k('m'), ALL)).toBeUndefined();
    expect(s.checkKey('alice', 'write', k('l'), ALL)).toBeDefined();
  });

  it('grants and revokes capabilities, and revokes permissions', () => {
    const s = alice({ type: 'roleGrantCapability', name: 'app', capability: 'mapreduce' });
    expect(s.checkCapability('alice', 'mapreduce')).toBeUndefined();
    expect(s.checkCapability('alice', 'compact')?.message).toBe(
      'user alice lacks the compact capability',
    );
    expect(s.apply({ type: 'roleRevokeCapability', name: 'app', capability: 'mapreduce' }).ok).toBe(
      true,
    );
    expect(s.checkCapability('alice', 'mapreduce')).toBeDefined();
    s.apply({
      type: 'roleGrantPermission',
      name: 'app',
      permission: { type: 'read', key: k('x') },
    });
    expect(s.checkKey('alice', 'read', k('x'))).toBeUndefined();
    expect(s.apply({ type: 'roleRevokePermission', name: 'app', key: k('x') }).ok).toBe(true);
    expect(s.checkKey('alice', 'read', k('x'))).toBeDefined();
  });

  it('protects root: its role cannot change, root cannot be deleted or lose it', () => {
    const s = new AuthStore();
    const refused = (c: AuthCommand): string => {
      const out = s.apply(c);
      return out.ok ? 'applied' : out.error.code;
    };
    expect(refused({ type: 'userDelete', name: 'root' })).toBe('FAILED_PRECONDITION');
    expect(refused({ type: 'userRevokeRole', name: 'root', role: 'root' })).toBe(
      'FAILED_PRECONDITION',
    );
    expect(refused({ type: 'roleDelete', name: 'root' })).toBe('FAILED_PRECONDITION');
    expect(refused({ type: 'roleGrantCapability', name: 'root', capability: 'status' })).toBe(
      'FAILED_PRECONDITION',
    );
    expect(refused({ type: 'roleAdd', name: 'root' })).toBe('ALREADY_EXISTS');
    expect(refused({ type: 'userAdd', name: 'bad:name' })).toBe('INVALID_ARGUMENT');
    expect(refused({ type: 'nope' } as unknown as AuthCommand)).toBe('INVALID_ARGUMENT');
    expect(s.apply(null).ok).toBe(false);
    expect(s.revision).toBe(0);
  });

  it('with auth disabled every user may do everything; deleting a role takes it from users', () => {
    const s = alice({ type: 'authDisable' });
    expect(s.checkKey('alice', 'write', k('any'))).toBeUndefined();
    expect(s.checkKey('nobody', 'write', k('any'))).toBeUndefined();
    s.apply({ type: 'authEnable' });
    s.apply({ type: 'roleGrantCapability', name: 'app', capability: 'status' });
    expect(s.checkCapability('alice', 'status')).toBeUndefined();
    s.apply({ type: 'roleDelete', name: 'app' });
    expect(s.user('alice')).toEqual({ name: 'alice', roles: [] });
    expect(s.checkCapability('alice', 'status')).toBeDefined();
  });

  it('snapshots deterministically and restores exactly; refuses corrupt bytes, changing nothing', () => {
    const s = alice(
      { type: 'roleGrantPermission', name: 'app', permission: { type: 'read', key: k('a') } },
      {
        type: 'roleGrantPermission',
        name: 'app',
        permission: { type: 'write', key: k('b'), rangeEnd: ALL },
      },
      { type: 'roleGrantCapability', name: 'app', capability: 'compact' },
      { type: 'authDisable' },
    );
    const bytes = s.snapshot();
    const copy = new AuthStore();
    copy.restore(bytes);
    expect(copy.snapshot()).toEqual(bytes);
    expect(copy.enabled).toBe(false);
    expect(copy.revision).toBe(s.revision);
    expect(copy.roleList()).toEqual(s.roleList());
    expect(copy.userList()).toEqual(s.userList());
    expect(() => copy.restore(new Uint8Array([1, 2, 3]))).toThrow(/auth snapshot/);
    expect(copy.snapshot()).toEqual(bytes);
  });
});
