/**
 * Real-process durability: a child appends with acknowledgements while this
 * process kills it with SIGKILL at random points, 50 cycles (mostly after a
 * random number of acknowledgements, so a busy machine changes when, not how
 * much; sometimes a random time after spawning, during start-up and recovery);
 * after every kill,
 * every acknowledged entry must be present (or covered by a snapshot) with the
 * right data. This proves recovery survives a process dying at any point; it
 * cannot prove fsync is called, since the page cache outlives the process:
 * that is what the simulated disk is for (sim-durability.test.ts).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { clusterId, nodeId } from '../../../src/lib/ids.js';
import { seededRandom } from '../../../src/lib/random.js';
import { FileStorage } from '../../../src/raft/storage/file-storage.js';
import { appenderData } from './fixtures/appender.js';

const fixture = join(import.meta.dirname, 'fixtures', 'appender.ts');
const quiet = { info: () => {}, warn: () => {}, error: () => {} };

interface Run {
  acked: number[];
  ready: boolean;
  stderr: string;
}

/** When to kill: after the `acks`-th acknowledgement (plus `delayMs`), or `afterSpawnMs` after spawning. */
type KillAt =
  { readonly acks: number; readonly delayMs: number } | { readonly afterSpawnMs: number };

function runAndKill(dir: string, at: KillAt): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fixture, dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const run: Run = { acked: [], ready: false, stderr: '' };
    let buffered = '';
    const kill = (): void => void child.kill('SIGKILL');
    if ('afterSpawnMs' in at) setTimeout(kill, at.afterSpawnMs);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.startsWith('ack ')) {
          run.acked.push(Number(line.slice(4)));
          if ('acks' in at && run.acked.length === at.acks) setTimeout(kill, at.delayMs);
        } else if (line.startsWith('ready ')) run.ready = true;
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (run.stderr += chunk));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL')
        reject(new Error(`appender exited ${code} ${signal}: ${run.stderr}`));
      else resolve(run);
    });
  });
}

describe('kill -9 of an appending process', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-kill9-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps every acknowledged entry across 50 SIGKILLs at random points', async () => {
    const rng = seededRandom(Number(process.env.KILL9_SEED ?? 9));
    let totalAcked = 0;
    let maxAcked = 0;
    for (let cycle = 0; cycle < 50; cycle++) {
      // Mostly kill while appending; sometimes during start-up and recovery.
      const early = rng.chance(0.15);
      const run = await runAndKill(
        dir,
        early
          ? { afterSpawnMs: rng.intBetween(50, 600) }
          : { acks: rng.intBetween(10, 150), delayMs: rng.intBetween(0, 20) },
      );
      totalAcked += run.acked.length;
      for (const i of run.acked) maxAcked = Math.max(maxAcked, i);

      const storage = new FileStorage({
        dir,
        clusterId: clusterId('kill9'),
        nodeId: nodeId('n1'),
        logger: quiet,
      });
      const state = await storage.load();
      await storage.close();
      const snapIndex = state.snapshot?.meta.index ?? 0;
      const last = snapIndex + state.entries.length;
      expect(
        last,
        `cycle ${cycle}: log ends at ${last}, acked up to ${maxAcked}`,
      ).toBeGreaterThanOrEqual(maxAcked);
      for (const e of state.entries) {
        expect(
          Buffer.from(e.data).equals(Buffer.from(appenderData(e.index))),
          `entry ${e.index}`,
        ).toBe(true);
      }
      state.entries.forEach((e, k) => expect(e.index).toBe(snapIndex + 1 + k));
      if (state.snapshot !== null) {
        expect(Buffer.from(state.snapshot.data).equals(Buffer.from(appenderData(snapIndex)))).toBe(
          true,
        );
      }
    }
    // The test proves something only if the child acknowledged a lot (at least
    // 10 per late kill, thousands in all, on any machine).
    expect(totalAcked).toBeGreaterThan(300);
  });
});
