/**
 * `cohort kv` as its own process, as a shell script uses it: values from
 * stdin and files (larger than an argument can be), binary values out raw or
 * encoded, a closed pipe (`| head`), Ctrl-C, and `kv lock -- cmd` passing
 * signals to its command and stopping it when the lock is lost. A call still
 * retrying when nothing else holds the event loop must not end the process
 * with exit code 0 and no output (the RPC layer's timers are unref'd).
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KvClient } from '../../src/kv/client.js';
import { cli, repoDir, runCli, startCli } from '../harness/cli.js';
import type { CliProcess } from '../harness/cli.js';
import { tempDir } from '../harness/tmp.js';
import { freePort } from '../transport/tcp-harness.js';
import { KvTestCluster } from '../kv/kv-cluster.js';
import { pidAlive } from '../../src/node/cluster.js';

let cluster: KvTestCluster;
let kv: KvClient;
let env: Record<string, string>;

beforeAll(async () => {
  cluster = await KvTestCluster.start(1);
  await cluster.leader();
  kv = await cluster.client();
  env = { COHORT_ENDPOINTS: cluster.endpoints().join(',') };
});
afterAll(async () => {
  await cluster.close();
});

/** Waits until `p` printed something matching `re` on stdout (or exited). */
async function printed(p: CliProcess, re: RegExp): Promise<void> {
  let exited = false;
  void p.exit.then(() => (exited = true));
  while (!re.test(p.out.stdout)) {
    if (exited) throw new Error(`exited before printing ${re}: ${p.out.stdout} ${p.out.stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A command that reports SIGTERM and then exits 0, or runs until killed. */
const sleeper = [
  process.execPath,
  '-e',
  "process.on('SIGTERM', () => { console.log('child got SIGTERM'); process.exit(0); }); console.log('child running', process.pid); setInterval(() => {}, 1000);",
];

describe('cohort kv as a process', () => {
  it('put takes binary bytes from stdin; get prints them raw, or as hex and base64', async () => {
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const put = await runCli(['kv', 'put', 'bin', '-'], env, { input: bytes });
    expect(put.code, put.stderr).toBe(0);
    const raw = await runCli(['kv', 'get', 'bin'], env);
    expect(raw.stdoutBytes.equals(Buffer.concat([bytes, Buffer.from('\n')]))).toBe(true);
    expect((await runCli(['kv', 'get', 'bin', '--hex'], env)).stdout).toBe(
      `${bytes.toString('hex')}\n`,
    );
    const json = await runCli(['kv', 'get', 'bin', '-w', 'json'], env);
    const kvs = (JSON.parse(json.stdout) as { kvs: { value: string; valueEncoding?: string }[] })
      .kvs;
    expect(kvs[0]).toMatchObject({ value: bytes.toString('base64'), valueEncoding: 'base64' });
  });

  it('put --file takes a value larger than a command line can hold; over 1 MiB is refused (exit 2)', async () => {
    const dir = tempDir('cohort-kvp-');
    const big = 'x'.repeat(600 * 1024);
    writeFileSync(join(dir, 'big'), big);
    expect((await runCli(['kv', 'put', 'big', '--file', join(dir, 'big')], env)).code).toBe(0);
    expect((await kv.get('big'))?.value.length).toBe(big.length);
    writeFileSync(join(dir, 'huge'), Buffer.alloc(1024 * 1024 + 1));
    const huge = await runCli(['kv', 'put', 'huge', '--file', join(dir, 'huge')], env);
    expect(huge.code).toBe(2);
    expect(huge.stderr).toMatch(/^error: INVALID_ARGUMENT: --file .* is larger than 1048576 bytes/);
  });

  it('a reader that goes away (| head) ends the command quietly, no EPIPE trace', async () => {
    await kv.put('wide', 'y'.repeat(1024 * 1024 - 1));
    const sh = spawn(
      'bash',
      [
        '-c',
        `"${process.execPath}" --import tsx "${cli}" kv get wide | head -c 10; echo " \${PIPESTATUS[0]}"`,
      ],
      { cwd: repoDir, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    sh.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    sh.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    await new Promise((r) => sh.once('close', r));
    expect(stderr).toBe('');
    expect(stdout).toBe('yyyyyyyyyy 0\n');
  });

  it('Ctrl-C ends a watch with exit 130 and nothing on stderr', async () => {
    const w = startCli(['kv', 'watch', 'cc'], env);
    while (!w.out.stdout.includes('PUT cc')) {
      await kv.put('cc', '1'); // until the watch is up and prints it
      await new Promise((r) => setTimeout(r, 200));
    }
    w.child.kill('SIGINT');
    expect(await w.exit).toBe(130);
    expect(w.out.stderr).toBe('');
  });

  it('lock passes SIGTERM to its command, then releases the lock (exit 143)', async () => {
    const p = startCli(['kv', 'lock', 'fwd', '--', ...sleeper], env);
    await printed(p, /child running/);
    p.child.kill('SIGTERM');
    expect(await p.exit).toBe(143);
    expect(p.out.stdout).toContain('child got SIGTERM');
    // Released: another holder gets it at once.
    const again = await runCli(['kv', 'lock', 'fwd', '--wait-ms', '5000', '--', 'true'], env);
    expect(again.code, again.stderr).toBe(0);
  });

  it('a lost lock stops the command and exits 6', async () => {
    const p = startCli(['kv', 'lock', 'lost', '--', ...sleeper], env);
    await printed(p, /child running/);
    // The holder's lease ends (as when it expires): the lock is lost.
    for (const l of (await kv.leases()).leases) await kv.leaseRevoke(l.id);
    expect(await p.exit).toBe(6);
    expect(p.out.stdout).toContain('child got SIGTERM');
    expect(p.out.stderr).toMatch(/^error: LOCK_LOST: lock lost was lost/m);
  });

  it('kill -9 of kv lock stops its command too (the lock passes to another holder)', async () => {
    const p = startCli(['kv', 'lock', 'orphan', '--kill-after-ms', '2000', '--', ...sleeper], env);
    await printed(p, /child running \d+/);
    const pid = Number(/child running (\d+)/.exec(p.out.stdout)?.[1]);
    try {
      p.child.kill('SIGKILL');
      // Without a reaper the command would run on, unsupervised, forever.
      for (let i = 0; i < 600 && pidAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
      expect(pidAlive(pid)).toBe(false);
    } finally {
      if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
    }
  });
});

describe('cohort kv (process), no cluster', () => {
  it('exits 1 with a clear error when no node answers', async () => {
    const port = await freePort();
    const r = await runCli([
      'kv',
      'get',
      'a',
      '--endpoints',
      `n1=127.0.0.1:${port}`,
      '--insecure',
      '--timeout-ms',
      '300',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: (TIMEOUT|UNAVAILABLE|CONNECTION_LOST)/);
  });
});
