/** `cohort node` as a process: a bad configuration exits 2 naming the field; a clean SIGTERM exits 0. */

import { describe, expect, it } from 'vitest';
import { startCli } from '../harness/cli.js';
import { freePort } from '../transport/tcp-harness.js';
import { tempDir } from '../harness/tmp.js';
import { waitUntil } from '../harness/wait.js';

/** `cohort node <args>` with `env` added. */
const start = (args: string[], env: Record<string, string> = {}) =>
  startCli(['node', ...args], env);

describe('cohort node (process)', () => {
  it('exits 2 on a bad configuration, naming the field and its source', async () => {
    const p = start(['--id', 'n1', '--data-dir', '/tmp/x', '--rpc', '127.0.0.1:7201'], {
      COHORT_LISTEN: '127.0.0.1:http',
    });
    expect(await p.exit).toBe(2);
    expect(p.out.stderr).toMatch(/bad configuration: listen \(COHORT_LISTEN\): port must be/);
  });

  it('logs one JSON line per event with node and term, and exits 0 on SIGTERM', async () => {
    const dataDir = tempDir('cohort-nodecmd-');
    const listen = `127.0.0.1:${await freePort()}`;
    const rpc = `127.0.0.1:${await freePort()}`;
    const p = start(['--id', 'solo', '--data-dir', dataDir, '--listen', listen, '--rpc', rpc]);
    try {
      await waitUntil('"became leader" in its log', () => p.out.stdout.includes('"became leader"'));
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
