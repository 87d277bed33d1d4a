/**
 * The data-dir lock (issue 14 item 8): one holder at a time, an error naming
 * the lock file and the holder's pid, release on close, and on the death of
 * the holder however it dies (kill -9), with both mechanisms.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isCohortError } from '../../src/lib/errors.js';
import { lockDataDir } from '../../src/node/data-dir-lock.js';
import { repoDir } from '../harness/cli.js';
import { tempDir } from '../harness/tmp.js';

async function refusal(
  p: Promise<unknown>,
): Promise<{ code: string; message: string; details: Record<string, unknown> }> {
  try {
    await p;
  } catch (e) {
    if (!isCohortError(e)) throw e;
    return { code: e.code, message: e.message, details: e.details };
  }
  throw new Error('the lock was taken twice');
}

/** A child process that takes the lock on `dir`, says so, and waits to be killed. */
function holder(dir: string, mechanism: 'socket' | 'file') {
  const script = [
    "import { lockDataDir } from './src/node/data-dir-lock.ts';",
    `await lockDataDir(${JSON.stringify(dir)}, { mechanism: '${mechanism}' });`,
    "console.log('locked');",
    'setInterval(() => {}, 1000);',
  ].join('\n');
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: repoDir,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const locked = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('locked')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`the holder exited (${String(code)})`)));
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { child, locked, exited };
}

// Abstract unix sockets are Linux's; elsewhere the file mechanism is the default.
const mechanisms =
  process.platform === 'linux' ? (['socket', 'file'] as const) : (['file'] as const);

describe.each(mechanisms)('data-dir lock (%s)', (mechanism) => {
  it('is held by one at a time, names the lock file and holder, and is free again after release', async () => {
    const dir = tempDir('cohort-lock-');
    const a = await lockDataDir(dir, { mechanism });
    expect(a.mechanism).toBe(mechanism);
    expect(JSON.parse(readFileSync(join(dir, 'LOCK'), 'utf8'))).toMatchObject({ pid: process.pid });
    const r = await refusal(lockDataDir(dir, { mechanism }));
    expect(r.code).toBe('FAILED_PRECONDITION');
    expect(r.message).toContain(`data dir ${dir} is in use by another cohort node`);
    expect(r.message).toContain(`pid ${process.pid}`);
    expect(r.message).toContain(`lock ${join(dir, 'LOCK')}`);
    expect(r.details).toMatchObject({ lockFile: join(dir, 'LOCK'), pid: process.pid });
    await a.release();
    await a.release();
    expect(existsSync(join(dir, 'LOCK'))).toBe(false);
    const b = await lockDataDir(dir, { mechanism });
    await b.release();
  });

  it('names another process as the holder, and is free once that process is killed with -9', async () => {
    const dir = tempDir('cohort-lock-');
    const h = holder(dir, mechanism);
    try {
      await h.locked;
      const r = await refusal(lockDataDir(dir, { mechanism }));
      expect(r.message).toContain(`pid ${String(h.child.pid)}`);
      h.child.kill('SIGKILL');
      await h.exited;
      // The stale LOCK file is still there; the lock is not.
      expect(existsSync(join(dir, 'LOCK'))).toBe(true);
      const lock = await lockDataDir(dir, { mechanism });
      expect(JSON.parse(readFileSync(join(dir, 'LOCK'), 'utf8'))).toMatchObject({
        pid: process.pid,
      });
      await lock.release();
    } finally {
      h.child.kill('SIGKILL');
    }
  });
});

describe.runIf(process.platform === 'linux')('data-dir lock (socket)', () => {
  it('holds whatever a stale LOCK file says: the socket decides, and the live holder is named', async () => {
    const dir = tempDir('cohort-lock-');
    // A leftover naming a pid that exited (maybe reused since).
    const gone = spawnSync(process.execPath, ['-e', '']).pid;
    writeFileSync(
      join(dir, 'LOCK'),
      JSON.stringify({ pid: gone, host: 'h', since: 'then', token: 'x' }),
    );
    const a = await lockDataDir(dir);
    const r = await refusal(lockDataDir(dir));
    expect(r.message).toContain(`pid ${process.pid}`);
    await a.release();
  });
});
