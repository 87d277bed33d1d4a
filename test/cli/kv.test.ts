/**
 * `cohort kv` against an in-process 3-node cluster (--endpoints): put, get,
 * txn, del, lease and lock print what the docs say and exit with meaningful
 * codes; bad input and no cluster give clear errors.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import { parseCompare, parseTxnOp } from '../../src/cli/txn-language.js';
import { run } from '../../src/cli/main.js';
import { kvText } from '../../src/kv/core/bytes.js';
import { KvTestCluster } from '../kv/kv-cluster.js';
import { tempDir } from '../harness/tmp.js';

let cluster: KvTestCluster;
let endpoints: string;
beforeAll(async () => {
  cluster = await KvTestCluster.start(3);
  await cluster.leader();
  endpoints = cluster.endpoints().join(',');
});
afterAll(async () => {
  await cluster.close();
});

/** Runs `cohort kv ...args`; returns stdout, stderr and the exit code. */
async function kv(...args: string[]): Promise<{ out: string; err: string; code: number }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
    out += String(s);
    return true;
  });
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
    err += String(s);
    return true;
  });
  process.exitCode = undefined;
  try {
    const dash = args.indexOf('--');
    const own = args.includes('--dir') || args.includes('--endpoints');
    const withEndpoints = own
      ? args
      : dash < 0
        ? [...args, '--endpoints', endpoints]
        : [...args.slice(0, dash), '--endpoints', endpoints, ...args.slice(dash)];
    await run(buildProgram(), ['node', 'cohort', 'kv', ...withEndpoints]);
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = undefined;
  return { out, err, code };
}

describe('cohort kv', () => {
  it('put then get prints the value; a missing key exits 5', async () => {
    const put = await kv('put', 'a', '1');
    expect(put.out).toMatch(/^OK \(revision \d+\)\n$/);
    expect(put.code).toBe(0);
    expect(await kv('get', 'a')).toMatchObject({ out: '1\n', code: 0 });
    const missing = await kv('get', 'nope');
    expect(missing.code).toBe(5);
    expect(missing.err).toMatch(/not found: nope/);
  });

  it('get --prefix --json lists keys; del --prefix prints the count', async () => {
    await kv('put', 'p/x', 'X');
    await kv('put', 'p/y', 'Y');
    const got = await kv('get', 'p/', '--prefix', '--json');
    const parsed = JSON.parse(got.out) as { kvs: { key: string; value: string }[] };
    expect(parsed.kvs.map((k) => `${k.key}=${k.value}`)).toEqual(['p/x=X', 'p/y=Y']);
    expect(await kv('del', 'p/', '--prefix')).toMatchObject({ out: '2\n', code: 0 });
  });

  it('txn runs the success branch when the comparison holds, else the failure branch (exit 5)', async () => {
    await kv('put', 't', '1');
    const ok = await kv('txn', '--if', 'value(t) = 1', '--then', 'put t 2', '--else', 'get t');
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/^SUCCESS\nOK/);
    const no = await kv('txn', '--if', 'value(t) = 1', '--then', 'put t 3', '--else', 'get t');
    expect(no).toMatchObject({ out: 'FAILURE\nt\n2\n', code: 5 });
  });

  it('lease grant, put with the lease, ttl --keys, revoke deletes the key', async () => {
    const granted = await kv('lease', 'grant', '30', '--json');
    const { id } = JSON.parse(granted.out) as { id: number };
    expect((await kv('put', 'lk', 'v', '--lease', String(id))).code).toBe(0);
    const ttl = await kv('lease', 'ttl', String(id), '--keys');
    expect(ttl.out).toMatch(new RegExp(`^lease ${id}: [\\d.]+ s left of 30 s\\nlk\\n$`));
    expect((await kv('lease', 'revoke', String(id))).out).toBe(
      `lease ${id} revoked (1 keys deleted)\n`,
    );
    expect((await kv('get', 'lk')).code).toBe(5);
  });

  it('lock runs a command while holding the lock and prints its fencing token', async () => {
    const r = await kv('lock', 'job', '--json', '--', process.execPath, '-e', 'process.exit(0)');
    expect(r.code).toBe(0);
    const held = JSON.parse(r.out) as { key: string; fencingToken: number };
    expect(held.key.startsWith('locks/job/')).toBe(true);
    expect(held.fencingToken).toBeGreaterThan(0);
    // Released: nothing left under the lock's prefix.
    const c = await cluster.client();
    expect((await c.range('locks/job/', { prefix: true })).count).toBe(0);
    expect(kvText((await c.get('a'))?.value ?? new Uint8Array())).toBe('1');
  });

  it('compact drops history up to the current revision (or the one given); older reads get COMPACTED', async () => {
    await kv('put', 'c', '1');
    const second = await kv('put', 'c', '2');
    const rev = Number(/revision (\d+)/.exec(second.out)?.[1]);
    expect(await kv('get', 'c', '--rev', String(rev - 1))).toMatchObject({ out: '1\n', code: 0 });
    const done = await kv('compact');
    expect(done).toMatchObject({ code: 0 });
    expect(Number(/compacted up to revision (\d+)/.exec(done.out)?.[1])).toBeGreaterThanOrEqual(
      rev,
    );
    const old = await kv('get', 'c', '--rev', String(rev - 1));
    expect(old.code).toBe(1);
    expect(old.err).toMatch(/^error: COMPACTED: /);
    expect(await kv('get', 'c')).toMatchObject({ out: '2\n', code: 0 });
    expect((await kv('compact', 'x')).code).toBe(2);
  });

  it('bad input exits 2 and a missing cluster 1, each with one error line', async () => {
    const badIf = await kv('txn', '--if', 'color(t) = 1', '--then', 'put t 2');
    expect(badIf.code).toBe(2);
    expect(badIf.err).toBe(
      'error: INVALID_ARGUMENT: --if "color(t) = 1": column 1: expected a compare target (value, version, create, mod, lease), found "color"\n',
    );
    const noCluster = await kv('get', 'a', '--dir', tempDir('cohort-nocluster-'));
    expect(noCluster.code).toBe(1);
    expect(noCluster.err).toMatch(
      /^error: NOT_FOUND: no cluster found: .* does not exist \(start one with cohort up, or pass --endpoints\)\n$/,
    );
    const badEndpoints = await kv('get', 'a', '--endpoints', 'oops');
    expect(badEndpoints.code).toBe(2);
    expect(badEndpoints.err).toMatch(/^error: INVALID_ARGUMENT: endpoints: expected id=host:port/);
  });

  it('parses compares and txn ops', () => {
    expect(parseCompare('version(a) > 0')).toMatchObject({ target: 'version', op: '>', value: 0 });
    expect(parseCompare('mod("a b") < 9')).toMatchObject({ target: 'modRevision', value: 9 });
    expect(kvText(parseCompare('mod("a b") < 9').key as Uint8Array)).toBe('a b');
    expect(() => parseCompare('version(a) > x')).toThrow(/compares with a non-negative integer/);
    expect(parseTxnOp('put k "hello world"')).toMatchObject({ type: 'put' });
    expect(() => parseTxnOp('get')).toThrow(/column 4: expected a key, found the end/);
  });
});
