/**
 * A broken invariant is a bug: assert() and crash, never catch it (DESIGN.md,
 * Errors). The RPC server turns a handler's failure into an error reply and
 * the Raft node turns a storage failure into IO_ERROR; neither may do that to
 * an AssertionError. Each scenario plants one in a child process
 * (fixtures/assertion-crash.ts) and expects the process to die of it; the
 * controls plant an operational failure in the same places and expect it to
 * stay an error reply or IO_ERROR.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const fixture = fileURLToPath(new URL('./fixtures/assertion-crash.ts', import.meta.url));

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function run(scenario: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fixture, scenario], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('an AssertionError crashes the process instead of becoming an error reply', () => {
  it.each([
    ['rpc-sync', 'a unary handler throws it (the synchronous fast path)'],
    ['rpc-async', 'a unary handler rejects with it'],
    ['rpc-intercepted', 'a handler behind an interceptor rejects with it'],
    ['rpc-stream', 'a stream handler throws it after an item'],
    ['rpc-server-check', "the server's request check throws it"],
    ['rpc-client-check', "the client's request check throws it"],
    ['raft-read-serializable', 'a serializable read function throws it'],
    ['raft-read-linearizable', 'a linearizable read function throws it'],
    ['raft-save', 'storage.save rejects with it (not IO_ERROR and onFatal)'],
    ['raft-save-sync', 'storage.save throws it'],
    ['raft-listener', 'a state-change listener throws it'],
    ['raft-snapshot-step', "a snapshot encoder's step throws it"],
  ])('%s: %s', async (scenario) => {
    const r = await run(scenario);
    expect(r.stdout, `caught instead of crashing; stderr:\n${r.stderr}`).toBe('');
    expect(r.stderr).toMatch(/AssertionError: planted bug/);
    expect(r.code).toBe(1);
  });

  it.each([
    ['control-rpc-async', /^REPLY NOT_FOUND planted failure$/m],
    ['control-rpc-sync', /^REPLY NOT_FOUND planted failure$/m],
    ['control-rpc-server-check', /^REPLY NOT_FOUND planted failure$/m],
    ['control-raft-save', /^FATAL NOT_FOUND planted failure$/m],
    ['control-raft-read-linearizable', /^REJECTED NOT_FOUND planted failure$/m],
  ])('%s: an operational failure in the same place is still answered', async (scenario, out) => {
    const r = await run(scenario);
    expect(r.stdout, r.stderr).toMatch(out);
    expect(r.code).toBe(0);
  });
});
