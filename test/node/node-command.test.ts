/** `cohort node` as a process: a bad configuration exits 2 naming the field; a clean SIGTERM exits 0. */

import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LogIndex, NodeId, Term } from '../../src/lib/ids.js';
import { clusterId, nodeId } from '../../src/lib/ids.js';
import { FileStorage } from '../../src/raft/storage/file-storage.js';
import { decodeRecordAt } from '../../src/raft/storage/records.js';
import { describe, expect, it } from 'vitest';
import { startCli } from '../harness/cli.js';
import type { CliProcess } from '../harness/cli.js';
import { freePort } from '../transport/tcp-harness.js';
import { tempDir } from '../harness/tmp.js';
import { CertDir } from '../../src/trust/cert-dir.js';
import { waitUntil } from '../harness/wait.js';

/** `cohort node <args>` with `env` added. */
const start = (args: string[], env: Record<string, string> = {}) =>
  startCli(['node', ...args], env);

/**
 * Waits until a one-node `cohort node` logs "became leader"; fails at once,
 * with its stderr, if it exits first (a loaded machine only makes it later).
 */
async function becameLeader(p: CliProcess): Promise<void> {
  await waitUntil('"became leader" in its log', () => {
    if (p.out.stdout.includes('"became leader"')) return true;
    if (p.child.exitCode !== null || p.child.signalCode !== null)
      throw new Error(`it exited (${p.child.exitCode ?? p.child.signalCode}): ${p.out.stderr}`);
    return false;
  });
}

describe('cohort node (process)', () => {
  it('exits 2 on a bad configuration, naming the field and its source', async () => {
    const p = start(['--id', 'n1', '--data-dir', '/tmp/x', '--rpc', '127.0.0.1:7201'], {
      COHORT_LISTEN: '127.0.0.1:http',
    });
    expect(await p.exit).toBe(2);
    expect(p.out.stderr).toMatch(/bad configuration: listen \(COHORT_LISTEN\): port must be/);
  });

  it.runIf(existsSync('/proc/self'))(
    'exits 1 at once, naming the data dir, when it cannot be created under /proc',
    async () => {
      const listen = `127.0.0.1:${await freePort()}`;
      const rpc = `127.0.0.1:${await freePort()}`;
      const p = start([
        '--id',
        'n1',
        '--data-dir',
        '/proc/1/nope',
        '--listen',
        listen,
        '--rpc',
        rpc,
        '--insecure',
      ]);
      try {
        // Before the fix the process spun forever in mkdir: the wait's bound ends that.
        let code: number | null | undefined;
        void p.exit.then((c) => (code = c));
        await waitUntil('it to exit', () => code !== undefined);
        expect(code).toBe(1);
      } finally {
        p.child.kill('SIGKILL');
      }
      expect(p.out.stderr).toMatch(
        /cannot start: data dir \/proc\/1\/nope cannot be created: ENOENT/,
      );
    },
  );

  it('refuses a WAL damaged in the middle, naming --repair; with --repair prints what it drops and serves', async () => {
    const dataDir = tempDir('cohort-repair-');
    // A log as a node n1 of cohort-local writes it: 30 no-op entries of term 1, one record each.
    const storage = new FileStorage({
      dir: dataDir,
      clusterId: clusterId('cohort-local'),
      nodeId: nodeId('n1'),
      logger: { info: () => {}, warn: () => {}, error: () => {} },
      preallocate: false,
    });
    await storage.load();
    await storage.save({
      hardState: { term: 1 as Term, vote: 'n1' as NodeId, commit: 0 as LogIndex },
    });
    for (let i = 1; i <= 30; i++) {
      await storage.save({
        entries: [
          { index: i as LogIndex, term: 1 as Term, kind: 'noop', data: new Uint8Array(40) },
        ],
      });
    }
    await storage.close();
    const segment = join(dataDir, 'wal', readdirSync(join(dataDir, 'wal'))[0] as string);
    const bytes = readFileSync(segment);
    // Walk to the record of entry 21 and flip a bit in it.
    let offset = 4;
    const starts: number[] = [];
    for (;;) {
      const r = decodeRecordAt(bytes, offset);
      if (typeof r === 'string') break;
      starts.push(offset);
      offset = r.end;
    }
    // Header, checkpoint, hard state, then entries 1..30.
    expect(starts).toHaveLength(33);
    const at = starts[3 + 20] as number;
    bytes[at + 12] = (bytes[at + 12] as number) ^ 0x10;
    writeFileSync(segment, bytes);
    const name = `wal/${segment.split('/').pop() as string}`;
    const args = async (): Promise<string[]> => [
      '--id',
      'n1',
      '--data-dir',
      dataDir,
      '--listen',
      `127.0.0.1:${await freePort()}`,
      '--rpc',
      `127.0.0.1:${await freePort()}`,
      '--insecure',
    ];

    const refused = start(await args());
    expect(await refused.exit).toBe(1);
    expect(refused.out.stderr).toContain(`${name} at offset ${at}`);
    expect(refused.out.stderr).toContain('--repair');

    const p = start([...(await args()), '--repair']);
    try {
      await becameLeader(p);
      p.child.kill('SIGTERM');
      expect(await p.exit).toBe(0);
    } finally {
      p.child.kill('SIGKILL');
    }
    expect(p.out.stderr).toContain(
      `repair: dropped ${bytes.length - at} bytes of ${name} from offset ${at}: ` +
        '10 records, the first damaged, 9 readable log entries (index 22..30); ' +
        'reason: invalid record (checksum, not a torn write)',
    );
  });

  it('refuses a second process on the same data dir (exit 1, naming the lock file and pid); a kill -9 frees it', async () => {
    const dataDir = tempDir('cohort-nodecmd-');
    const args = async (): Promise<string[]> => [
      '--id',
      'solo',
      '--data-dir',
      dataDir,
      '--listen',
      `127.0.0.1:${await freePort()}`,
      '--rpc',
      `127.0.0.1:${await freePort()}`,
      '--insecure',
    ];
    const first = start(await args());
    const third = { p: undefined as CliProcess | undefined };
    try {
      await becameLeader(first);
      const second = start(await args());
      expect(await second.exit).toBe(1);
      expect(second.out.stderr).toContain(`data dir ${dataDir} is in use by another cohort node`);
      expect(second.out.stderr).toContain(`pid ${String(first.child.pid)}`);
      expect(second.out.stderr).toContain(`lock ${dataDir}/LOCK`);
      first.child.kill('SIGKILL');
      await first.exit;
      third.p = start(await args());
      await becameLeader(third.p);
      third.p.child.kill('SIGTERM');
      expect(await third.p.exit).toBe(0);
    } finally {
      first.child.kill('SIGKILL');
      third.p?.child.kill('SIGKILL');
    }
  });

  it('logs one JSON line per event with node and term, and exits 0 on SIGTERM', async () => {
    const dataDir = tempDir('cohort-nodecmd-');
    const listen = `127.0.0.1:${await freePort()}`;
    const rpc = `127.0.0.1:${await freePort()}`;
    const certs = new CertDir(`${dataDir}-certs`);
    await certs.ensure({ clusterId: 'cohort-local', nodes: ['solo'], users: [] });
    const f = certs.files({ kind: 'node', id: 'solo' });
    const p = start([
      ...['--id', 'solo', '--data-dir', dataDir, '--listen', listen, '--rpc', rpc],
      ...['--tls-ca', f.ca, '--tls-cert', f.cert, '--tls-key', f.key],
    ]);
    try {
      await becameLeader(p);
      p.child.kill('SIGTERM');
      expect(await p.exit).toBe(0);
    } finally {
      p.child.kill('SIGKILL');
    }
    const lines = p.out.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { node?: string; term?: number; msg: string });
    const msgs = lines.map((l) => l.msg);
    expect(msgs).toContain('node started');
    expect(msgs).toContain('became leader');
    expect(msgs).toContain('node stopped');
    expect(lines.filter((l) => l.msg !== 'node started' && l.term === undefined)).toEqual([]);
    expect(lines.every((l) => l.node === 'solo')).toBe(true);
  });
});
