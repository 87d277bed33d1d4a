/**
 * A node and the CLI under Node's `--disallow-code-generation-from-strings`
 * (a hardening flag some deployments set in NODE_OPTIONS): the compiled
 * schema checks and message codecs need `new Function`, so cohort must fall
 * back to TypeBox's interpreter and the generic codec (src/wire/schema-check.ts)
 * rather than crash at start. A node so started elects itself, takes a put,
 * serves it back (exit 5 for a missing key), and runs a MapReduce job to
 * its right output. test/wire/schema-check.test.ts checks the interpreter's
 * verdicts and errors against the compiled checks'.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, startCli } from '../harness/cli.js';
import type { CliProcess } from '../harness/cli.js';
import { tempDir } from '../harness/tmp.js';
import { waitUntil } from '../harness/wait.js';
import { freePort } from '../transport/tcp-harness.js';

const hardened = { NODE_OPTIONS: '--disallow-code-generation-from-strings' };
let node: CliProcess | undefined;

afterAll(() => {
  node?.child.kill('SIGKILL');
});

describe('cohort without code generation from strings', () => {
  it('the flag is in force for a child started with this environment', () => {
    const r = spawnSync(process.execPath, ['-e', "new Function('return 1')"], {
      env: { ...process.env, ...hardened },
      encoding: 'utf8',
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/Code generation from strings disallowed/);
  });

  it('a node starts, elects itself, stores and serves a key, and runs a MapReduce job', async () => {
    const dir = tempDir('cohort-nocg-');
    const [raftPort, rpcPort] = [await freePort(), await freePort()];
    node = startCli(
      [
        'node',
        '--insecure',
        '--id',
        'n1',
        '--data-dir',
        join(dir, 'n1'),
        '--listen',
        `127.0.0.1:${raftPort}`,
        '--rpc',
        `127.0.0.1:${rpcPort}`,
      ],
      hardened,
    );
    const started = node;
    let exited = false;
    void started.exit.then(() => (exited = true));
    const env = { ...hardened, COHORT_ENDPOINTS: `n1=127.0.0.1:${rpcPort}` };
    const put = await waitUntil('a put the node accepts', async () => {
      if (exited) throw new Error(`node exited: ${started.out.stderr}${started.out.stdout}`);
      const r = await runCli(['kv', 'put', 'greeting', 'hello', '--insecure'], env);
      return r.code === 0 ? r : undefined;
    });
    expect(put.stdout).toMatch(/^OK \(revision \d+\)/);
    const get = await runCli(['kv', 'get', 'greeting', '--insecure'], env);
    expect([get.code, get.stdout]).toEqual([0, 'hello\n']);
    const none = await runCli(['kv', 'get', 'nosuch', '--insecure'], env);
    expect(none.code).toBe(5);

    writeFileSync(join(dir, 'in.txt'), 'to be or not to be\nthat is the question\n');
    const out = join(dir, 'out');
    const job = await runCli(
      [
        'mr',
        'run',
        'examples/mapreduce/wordcount.ts',
        '--input',
        join(dir, 'in.txt'),
        '--output',
        out,
        '--insecure',
      ],
      env,
    );
    expect(job.code, job.stderr).toBe(0);
    const lines = readdirSync(out)
      .filter((f) => f.startsWith('part-'))
      .flatMap((f) => readFileSync(join(out, f), 'utf8').split('\n'))
      .filter((l) => l !== '')
      .sort();
    expect(lines).toEqual([
      'be\t2',
      'is\t1',
      'not\t1',
      'or\t1',
      'question\t1',
      'that\t1',
      'the\t1',
      'to\t2',
    ]);
    expect(started.out.stdout + started.out.stderr).not.toMatch(/"level":(50|60)/);
  });
});
