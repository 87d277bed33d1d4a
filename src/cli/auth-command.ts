/**
 * `cohort auth`, `cohort user` and `cohort role`: the cluster's replicated
 * users, roles and permissions (src/auth), over the Auth service, with the
 * certificate `cohort kv` would use (by default the `root` user's that
 * `cohort up` made; see target.ts).
 *
 * ```sh
 * cohort certs issue user alice                    # alice's certificate (identity: user alice)
 * cohort user add alice
 * cohort role add app
 * cohort role grant app readwrite app/ --prefix    # keys app/...
 * cohort role grant app read config                # the key config alone
 * cohort role grant app --capability mapreduce     # submit jobs (status, compact, membership too)
 * cohort user grant-role alice app
 * cohort user list ; cohort role list --json
 * cohort auth whoami ; cohort auth status
 * cohort auth disable                              # every user may do everything (etcd's default)
 * cohort auth enable                               # back to roles (a fresh cluster starts enabled)
 * ```
 *
 * Changes take the root role. Exit codes: 0 done; 1 refused (the message
 * says why: PERMISSION_DENIED, NOT_FOUND, ...) or no cluster.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { AuthClient } from '../auth/client.js';
import { capabilities } from '../auth/core/types.js';
import type { Capability, KeyPermission } from '../auth/core/types.js';
import { kvKey, kvText, prefixRange, RANGE_END_ALL } from '../kv/core/bytes.js';
import { addTargetOptions, resolveTarget } from './target.js';
import type { TargetFlags } from './target.js';

interface AuthFlags extends TargetFlags {
  json?: boolean;
}

interface RangeFlags extends AuthFlags {
  prefix?: boolean;
  rangeEnd?: string;
  fromKey?: boolean;
  capability?: string;
}

function capability(text: string): Capability {
  if (!(capabilities as readonly string[]).includes(text)) {
    throw new InvalidArgumentError(`a capability is one of ${capabilities.join(', ')}`);
  }
  return text as Capability;
}

/** The key range the flags name: one key, a prefix, [key, end), or key and everything after. */
export function keyRange(
  key: string,
  flags: Pick<RangeFlags, 'prefix' | 'rangeEnd' | 'fromKey'>,
): { key: Uint8Array; rangeEnd?: Uint8Array } {
  const given = [flags.prefix === true, flags.rangeEnd !== undefined, flags.fromKey === true];
  if (given.filter(Boolean).length > 1) {
    throw new InvalidArgumentError('give at most one of --prefix, --range-end and --from-key');
  }
  const k = kvKey(key);
  if (flags.prefix === true) return prefixRange(k);
  if (flags.fromKey === true) return { key: k, rangeEnd: RANGE_END_ALL };
  if (flags.rangeEnd !== undefined) return { key: k, rangeEnd: kvKey(flags.rangeEnd) };
  return { key: k };
}

function showPermission(p: KeyPermission): string {
  const key = JSON.stringify(kvText(p.key));
  if (p.rangeEnd === undefined) return `${p.type} ${key}`;
  if (p.rangeEnd.length === 1 && p.rangeEnd[0] === 0) return `${p.type} ${key} and after`;
  return `${p.type} [${key}, ${JSON.stringify(kvText(p.rangeEnd))})`;
}

/** Runs `fn` with a client of the flags' cluster; prints a refusal and sets exit code 1. */
async function withAuth(
  what: string,
  flags: AuthFlags,
  fn: (auth: AuthClient) => Promise<void>,
): Promise<void> {
  // The RPC layer's timers do not hold the process open: this does, until the answer is in.
  const keepAlive = setInterval(() => undefined, 1000);
  let auth: AuthClient | undefined;
  try {
    const target = resolveTarget(flags);
    auth = await AuthClient.connect({
      nodes: target.nodes,
      clusterId: target.clusterId,
      ...(target.tls === undefined ? {} : { tls: target.tls }),
    });
    await fn(auth);
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    process.stderr.write(
      `cohort ${what}: ${typeof code === 'string' ? `${code}: ` : ''}${e instanceof Error ? e.message : String(e)}\n`,
    );
    process.exitCode = 1;
  } finally {
    clearInterval(keepAlive);
    await auth?.close();
  }
}

function done(flags: AuthFlags, text: string, r: { revision: number }): void {
  process.stdout.write(
    flags.json === true ? `${JSON.stringify(r)}\n` : `${text} (auth revision ${r.revision})\n`,
  );
}

function common(cmd: Command): Command {
  return addTargetOptions(cmd).option('--json', 'print as JSON');
}

/** Adds `cohort auth`, `cohort user` and `cohort role` to `program`. */
export function registerAuthCommands(program: Command): void {
  const auth = program.command('auth').description('turn permission checks on or off; who am I');
  common(
    auth.command('enable').description('check every call against the roles (the default)'),
  ).action(async (f: AuthFlags) => {
    await withAuth('auth enable', f, async (a) =>
      done(f, 'auth enabled', await a.call((s) => s.enable({}))),
    );
  });
  common(
    auth.command('disable').description('let every authenticated user do everything (root only)'),
  ).action(async (f: AuthFlags) => {
    await withAuth('auth disable', f, async (a) =>
      done(f, 'auth disabled: every user may do everything', await a.call((s) => s.disable({}))),
    );
  });
  common(auth.command('status').description('whether auth is enabled')).action(
    async (f: AuthFlags) => {
      await withAuth('auth status', f, async (a) => {
        const r = await a.call((s) => s.status({}));
        process.stdout.write(
          f.json === true
            ? `${JSON.stringify(r)}\n`
            : `auth ${r.enabled ? 'enabled' : 'disabled'} (revision ${r.revision})\n`,
        );
      });
    },
  );
  common(auth.command('whoami').description('the identity the cluster sees, and its roles')).action(
    async (f: AuthFlags) => {
      await withAuth('auth whoami', f, async (a) => {
        const r = await a.call((s) => s.whoami({}));
        process.stdout.write(
          f.json === true
            ? `${JSON.stringify(r)}\n`
            : `${r.identity}${r.roles.length > 0 ? ` (roles ${r.roles.join(', ')})` : ''}${r.root ? ', root' : ''}${r.authenticated ? '' : ' (plaintext cluster: not authenticated)'}\n`,
        );
      });
    },
  );

  const user = program.command('user').description("the cluster's users (root only)");
  common(
    user
      .command('add <name>')
      .description('add a user (its certificate: cohort certs issue user <name>)'),
  ).action(async (name: string, f: AuthFlags) => {
    await withAuth('user add', f, async (a) =>
      done(f, `user ${name} added`, await a.call((s) => s.userAdd({ name }))),
    );
  });
  common(user.command('delete <name>').description('delete a user')).action(
    async (name: string, f: AuthFlags) => {
      await withAuth('user delete', f, async (a) =>
        done(f, `user ${name} deleted`, await a.call((s) => s.userDelete({ name }))),
      );
    },
  );
  common(user.command('grant-role <name> <role>').description('give a user a role')).action(
    async (name: string, role: string, f: AuthFlags) => {
      await withAuth('user grant-role', f, async (a) =>
        done(
          f,
          `user ${name} has role ${role}`,
          await a.call((s) => s.userGrantRole({ name, role })),
        ),
      );
    },
  );
  common(user.command('revoke-role <name> <role>').description('take a role from a user')).action(
    async (name: string, role: string, f: AuthFlags) => {
      await withAuth('user revoke-role', f, async (a) =>
        done(
          f,
          `user ${name} no longer has role ${role}`,
          await a.call((s) => s.userRevokeRole({ name, role })),
        ),
      );
    },
  );
  common(user.command('list').description('every user and its roles')).action(
    async (f: AuthFlags) => {
      await withAuth('user list', f, async (a) => {
        const { users } = await a.call((s) => s.userList({}));
        if (f.json === true) process.stdout.write(`${JSON.stringify({ users })}\n`);
        else for (const u of users) process.stdout.write(`${u.name}\t${u.roles.join(',')}\n`);
      });
    },
  );

  const role = program
    .command('role')
    .description("the cluster's roles and their permissions (root only)");
  common(role.command('add <name>').description('add a role')).action(
    async (name: string, f: AuthFlags) => {
      await withAuth('role add', f, async (a) =>
        done(f, `role ${name} added`, await a.call((s) => s.roleAdd({ name }))),
      );
    },
  );
  common(role.command('delete <name>').description('delete a role (its users lose it)')).action(
    async (name: string, f: AuthFlags) => {
      await withAuth('role delete', f, async (a) =>
        done(f, `role ${name} deleted`, await a.call((s) => s.roleDelete({ name }))),
      );
    },
  );
  const rangeOptions = (c: Command): Command =>
    common(c)
      .option('--prefix', 'every key starting with <key>')
      .option('--range-end <end>', 'the keys in [<key>, <end>)')
      .option('--from-key', '<key> and every key after it')
      .option(
        '--capability <name>',
        `a capability instead of keys: ${capabilities.join(', ')}`,
        capability,
      );
  rangeOptions(
    role
      .command('grant <name> [type] [key]')
      .description('give a role read, write or readwrite on a key or range, or a --capability'),
  ).action(
    async (name: string, type: string | undefined, key: string | undefined, f: RangeFlags) => {
      await withAuth('role grant', f, async (a) => {
        if (f.capability !== undefined) {
          if (type !== undefined)
            throw new InvalidArgumentError('give keys or --capability, not both');
          const cap = f.capability as Capability;
          done(
            f,
            `role ${name} has the ${cap} capability`,
            await a.call((s) => s.roleGrant({ name, capability: cap })),
          );
          return;
        }
        if (type !== 'read' && type !== 'write' && type !== 'readwrite') {
          throw new InvalidArgumentError(
            'the permission type is read, write or readwrite (or use --capability)',
          );
        }
        if (key === undefined)
          throw new InvalidArgumentError('name the key (with --prefix: the prefix)');
        const permission: KeyPermission = { type: type, ...keyRange(key, f) };
        done(
          f,
          `role ${name} may ${showPermission(permission)}`,
          await a.call((s) => s.roleGrant({ name, permission })),
        );
      });
    },
  );
  rangeOptions(
    role
      .command('revoke <name> [key]')
      .description(
        'take a key permission (the same key and range as granted) or a --capability from a role',
      ),
  ).action(async (name: string, key: string | undefined, f: RangeFlags) => {
    await withAuth('role revoke', f, async (a) => {
      if (f.capability !== undefined) {
        const cap = f.capability as Capability;
        done(
          f,
          `role ${name} no longer has the ${cap} capability`,
          await a.call((s) => s.roleRevoke({ name, capability: cap })),
        );
        return;
      }
      if (key === undefined) throw new InvalidArgumentError('name the key, or give --capability');
      const r = keyRange(key, f);
      done(
        f,
        `role ${name}: permission on ${JSON.stringify(key)} revoked`,
        await a.call((s) => s.roleRevoke({ name, ...r })),
      );
    });
  });
  common(role.command('list').description('every role, its permissions and capabilities')).action(
    async (f: AuthFlags) => {
      await withAuth('role list', f, async (a) => {
        const { roles } = await a.call((s) => s.roleList({}));
        if (f.json === true) {
          const show = roles.map((r) => ({
            name: r.name,
            permissions: r.permissions.map((p) => ({
              type: p.type,
              key: kvText(p.key),
              ...(p.rangeEnd === undefined ? {} : { rangeEnd: kvText(p.rangeEnd) }),
            })),
            capabilities: r.capabilities,
          }));
          process.stdout.write(`${JSON.stringify({ roles: show })}\n`);
          return;
        }
        for (const r of roles) {
          const parts =
            r.name === 'root'
              ? ['everything']
              : [
                  ...r.permissions.map(showPermission),
                  ...r.capabilities.map((c) => `capability ${c}`),
                ];
          process.stdout.write(`${r.name}\t${parts.join('; ') || '(nothing)'}\n`);
        }
      });
    },
  );
}
