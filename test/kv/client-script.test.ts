/**
 * The KV client as a plain script uses it (its own process, top-level await,
 * nothing else keeping Node alive): `await kv.put()` against dead endpoints
 * ends with a clear, definite error and a non-zero exit — not Node's exit
 * code 13 for a promise left pending when the event loop emptied — and with
 * one of three endpoints dead the put goes through; a script that is done
 * exits without closing its client (an idle client holds nothing).
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoDir } from '../harness/cli.js';
import { tempDir } from '../harness/tmp.js';
import { freePort } from '../transport/tcp-harness.js';
import { KvTestCluster } from './kv-cluster.js';

const entry = pathToFileURL(join(repoDir, 'src/kv/index.ts')).href;

/** Runs `body` as a module (under tsx) after `import { KvClient }`; its exit code and output. */
function script(body: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const file = join(tempDir('cohort-script-'), 'script.mts');
  writeFileSync(file, `import { KvClient } from ${JSON.stringify(entry)};\n${body}\n`);
  const child = spawn(process.execPath, ['--import', 'tsx', file], {
    cwd: repoDir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

let cluster: KvTestCluster;
beforeAll(async () => {
  cluster = await KvTestCluster.start(3);
  await cluster.leader();
});
afterAll(async () => {
  await cluster.close();
});

describe('a script with only await kv.put()', () => {
  it('against dead endpoints exits non-zero with a clear error by its deadline', async () => {
    const dead = [await freePort(), await freePort(), await freePort()].map(
      (p, i) => `n${i + 1}=127.0.0.1:${p}`,
    );
    const r = await script(
      `const kv = await KvClient.connect({ endpoints: ${JSON.stringify(dead)}, lazy: true, callTimeoutMs: 1500 });\n` +
        `await kv.put('k', 'v');\nconsole.log('put done');`,
    );
    expect(r.stdout).not.toContain('put done');
    expect(r.code).toBe(1); // an uncaught error; 13 was "the promise never settled"
    expect(r.stderr).toContain('UNAVAILABLE');
    expect(r.stderr).toMatch(/no node could be reached within 1500 ms/);
    expect(r.stderr).toMatch(/n1 at 127\.0\.0\.1:\d+: connection refused/);
    expect(r.stderr).toMatch(/definite: true/);
  });

  it('connect() itself says why no endpoint can be reached', async () => {
    const dead = `n1=127.0.0.1:${await freePort()}`;
    const r = await script(
      `try { await KvClient.connect({ endpoints: [${JSON.stringify(dead)}], callTimeoutMs: 1000 }); }\n` +
        `catch (e) { console.log(e.code, e.definite, e.message); process.exitCode = 3; }`,
    );
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(
      /^UNAVAILABLE true cannot connect to the cluster: .*connection refused/,
    );
  });

  it('with one of three endpoints dead, succeeds, and exits without close()', async () => {
    const [first] = cluster.configs;
    await cluster.stop(first?.id ?? 'n1');
    try {
      const r = await script(
        `const kv = await KvClient.connect({ endpoints: ${JSON.stringify(cluster.endpoints())} });\n` +
          `await kv.put('script/k', 'v');\nconsole.log('put done');`,
      );
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('put done\n');
      expect(r.code).toBe(0);
      const c = await cluster.client();
      expect(await c.getText('script/k')).toBe('v');
    } finally {
      await cluster.startNode(first?.id ?? 'n1');
    }
  });
});
