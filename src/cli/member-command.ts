/**
 * `cohort member`: lists and changes a running cluster's members through the
 * `Members` RPC service (src/node/members.ts). Changes go to the leader (the
 * command follows NOT_LEADER redirects); `list` shows the leader's view.
 *
 * ```sh
 * cohort member list [--json]                       # the nearest .cohort/cluster.json, its certificate
 * cohort member list --endpoints n1=127.0.0.1:7201  # or any member's RPC endpoint
 * cohort member add n4 127.0.0.1:7104 127.0.0.1:7204 [--learner]
 * cohort member promote n4
 * cohort member remove n1                           # the leader hands over first
 * ```
 *
 * `cohort node --join` adds a node the same way `member add` does, from the
 * node itself. Exit codes: 0 done; 1 refused or no member answered; 2 bad
 * usage.
 */
import type { Command } from 'commander';
import { isCohortError } from '../lib/errors.js';
import { parseHostPort } from '../node/config.js';
import { callLeader } from '../node/members.js';
import type { MemberClient, MemberEndpoint, MemberList } from '../node/members.js';
import type { TcpTlsOptions } from '../transport/tcp-transport.js';
import { resolveUserTls } from '../trust/client-tls.js';
import { addTargetOptions, resolveTarget } from './target.js';
import type { TargetFlags } from './target.js';

interface MemberFlags extends TargetFlags {
  json?: boolean;
  timeoutMs: string;
}

/** The member table: one row per member, the leader starred. */
export function memberTable(list: MemberList): string {
  const rows = [['ID', 'ROLE', 'RAFT', 'RPC', 'MATCH']];
  for (const m of list.members) {
    rows.push([
      m.id === list.leader ? `${m.id}*` : m.id,
      m.role === 'learner' && m.stayLearner ? 'learner (stays)' : m.role,
      m.raft ?? '?',
      m.rpc ?? '?',
      m.match === null ? '' : String(m.match),
    ]);
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/**
 * Endpoints, cluster id and client credentials (target.ts: --endpoints or
 * the cluster file, with TLS from --ca/--cert/--key or cluster.json);
 * undefined after printing why not.
 */
function target(
  flags: MemberFlags,
): { endpoints: MemberEndpoint[]; clusterId: string; tls?: TcpTlsOptions } | undefined {
  try {
    const t = resolveTarget(flags);
    const endpoints = t.nodes.map((n) => ({ id: n.id, rpc: n.rpc }));
    if (t.tls === undefined) return { endpoints, clusterId: t.clusterId };
    const creds = resolveUserTls(t.tls, 'cohort member');
    return {
      endpoints,
      clusterId: t.clusterId,
      tls: { ca: [...creds.ca], cert: creds.cert, key: creds.key },
    };
  } catch (e) {
    process.stderr.write(`cohort member: ${(e as Error).message}\n`);
    process.exitCode = 1;
    return undefined;
  }
}

/** Runs one Members call on the leader and prints the membership it answers with. */
async function run(
  flags: MemberFlags,
  what: string,
  call: (m: MemberClient, timeoutMs: number) => Promise<MemberList>,
): Promise<void> {
  const t = target(flags);
  if (t === undefined) return;
  const timeoutMs = Number(flags.timeoutMs);
  // The RPC layer's deadline timers do not hold the process open: this does, until the answer is in.
  const keepAlive = setInterval(() => undefined, 1000);
  let list: MemberList;
  try {
    list = await callLeader(t.endpoints, t.clusterId, call, {
      ...(t.tls === undefined ? {} : { tls: t.tls }),
      timeoutMs: Number.isFinite(timeoutMs) && timeoutMs > 0 ? timeoutMs : 10_000,
    });
  } catch (e) {
    process.stderr.write(
      `cohort member ${what}: ${isCohortError(e) ? `${e.code}: ${e.message}` : String(e)}\n`,
    );
    process.exitCode = 1;
    return;
  } finally {
    clearInterval(keepAlive);
  }
  if (flags.json === true) {
    process.stdout.write(`${JSON.stringify(list)}\n`);
  } else {
    process.stdout.write(
      `members as ${list.node} sees them · leader ${list.leader ?? 'none'} · term ${list.term}\n${memberTable(list)}\n`,
    );
  }
}

/** Adds `cohort member` to `program`. */
export function registerMemberCommand(program: Command): void {
  const member = program
    .command('member')
    .description("list or change a running cluster's members (voters and learners)");
  const common = (c: Command): Command =>
    addTargetOptions(c)
      .option('--json', 'print the membership as JSON')
      .option('--timeout-ms <ms>', 'deadline of each call', '10000');
  common(
    member
      .command('list')
      .description('the members, their roles, addresses and (on the leader) match indexes'),
  ).action(async (flags: MemberFlags) => {
    await run(flags, 'list', (m, timeoutMs) => m.list({ leader: true }, { timeoutMs }));
  });
  common(
    member
      .command('add <id> <raft> <rpc>')
      .description('add a node as a learner (its Raft and RPC host:port); promoted once caught up')
      .option('--learner', 'keep it a learner'),
  ).action(
    async (id: string, raft: string, rpc: string, flags: MemberFlags & { learner?: boolean }) => {
      try {
        parseHostPort(raft, 'raft');
        parseHostPort(rpc, 'rpc');
      } catch (e) {
        process.stderr.write(`cohort member add: ${(e as Error).message}\n`);
        process.exitCode = 2;
        return;
      }
      await run(flags, 'add', (m, timeoutMs) =>
        m.add({ id, raft, rpc, learner: flags.learner === true }, { timeoutMs }),
      );
    },
  );
  common(
    member.command('promote <id>').description('promote a learner to voter once caught up'),
  ).action(async (id: string, flags: MemberFlags) => {
    await run(flags, 'promote', (m, timeoutMs) => m.promote({ id }, { timeoutMs }));
  });
  common(
    member
      .command('remove <id>')
      .description('remove a member (a leader hands leadership over first)'),
  ).action(async (id: string, flags: MemberFlags) => {
    await run(flags, 'remove', (m, timeoutMs) => m.remove({ id }, { timeoutMs }));
  });
}
