/**
 * The crash workload of the simulated-durability test, free of vitest so it can
 * be profiled or run from a script. Durability in simulation (issue 5): on the simulated disk, which loses
 * unsynced data and tears writes on a crash, no write whose save() resolved is
 * ever lost. Thousands of seeds; each runs several crash/recover cycles of
 * concurrent saves (group commits), overwrites, snapshots and segment rolls.
 * A failure prints the seed; replay it with STORAGE_SEED=<seed>.
 */
import { CohortError } from '../../../src/lib/errors.js';
import { clusterId, nodeId } from '../../../src/lib/ids.js';
import { seededRandom } from '../../../src/lib/random.js';
import type { Random } from '../../../src/lib/random.js';
import type { Entry } from '../../../src/raft/core/types.js';
import { FileStorage } from '../../../src/raft/storage/file-storage.js';
import { applyWrite, MemoryStorage } from '../../../src/raft/storage/memory.js';
import type { PersistentState, StorageWrite } from '../../../src/raft/storage/storage.js';
import { SimDisk } from '../../../src/sim/disk.js';
import { plain, randomWrite } from './helpers.js';

const quiet = { info: () => {}, warn: () => {}, error: () => {} };

/** Every state a crash may leave after `write` was partly made durable, record by record, in order. */
export function partialStates(state: PersistentState, write: StorageWrite): PersistentState[] {
  const out: PersistentState[] = [];
  let s = state;
  if (write.snapshot !== undefined) {
    s = applyWrite(s, { snapshot: write.snapshot });
    out.push(s);
  }
  const es = write.entries ?? [];
  if (es.length > 0) {
    const from = (es[0] as Entry).index;
    const cut = s.entries.filter((e) => e.index < from);
    if (cut.length < s.entries.length) out.push({ ...s, entries: cut });
    s = applyWrite(s, { entries: es });
    out.push(s);
  }
  if (write.hardState !== undefined) out.push(applyWrite(s, { hardState: write.hardState }));
  return out;
}

/** Runs one seed; throws an Error saying what went wrong. */
export async function runSeed(seed: number): Promise<{ acked: number; crashes: number }> {
  const rng: Random = seededRandom(seed);
  /** This cycle's queue of deferred work: batch flushes and the disk's asynchronous steps. */
  let flushes: (() => void)[] = [];
  const disk = new SimDisk(rng.fork('disk'), {
    tearProbability: 0.6,
    zeroFillProbability: 0.3,
    // Snapshot files are written in steps (create, write, fsync, close; then the directory
    // sync) run from the same queue, so a crash lands between any two of them.
    defer: (step) => void flushes.push(step),
  });
  const segmentBytes = rng.pick([1100, 2048, 8192]);
  let durable: PersistentState = new MemoryStorage().current();
  let totalAcked = 0;
  const cycles = rng.intBetween(2, 5);
  for (let cycle = 0; cycle < cycles; cycle++) {
    flushes = [];
    const storage = new FileStorage({
      dir: '/data/n1',
      fs: disk.fs,
      clusterId: clusterId('c1'),
      nodeId: nodeId('n1'),
      logger: quiet,
      segmentBytes,
      // Both sync modes (inline's deferred sync also runs through `schedule`),
      // with and without preallocated segments, chosen without drawing on rng.
      syncMode: seed % 2 === 0 ? 'inline' : 'thread',
      preallocate: seed % 3 !== 0,
      schedule: (fn) => void flushes.push(fn),
    });
    const recovered = plain(await storage.load());
    if (JSON.stringify(recovered) !== JSON.stringify(plain(durable))) {
      throw new Error(`seed ${seed} cycle ${cycle}: reopening changed the recovered state`);
    }

    // Issue writes; run queued flushes now and then; crash at a random point.
    const ref = new MemoryStorage(durable);
    await ref.load();
    const issued: StorageWrite[] = [];
    let resolved = 0;
    let crashed = false;
    const problems: string[] = [];
    let maxTerm = Math.max(1, durable.hardState.term);
    const steps = rng.intBetween(1, 40);
    for (let step = 0; step < steps; step++) {
      if (rng.chance(0.7)) {
        const w = randomWrite(rng, ref.current(), maxTerm);
        maxTerm = Math.max(
          maxTerm,
          w.snapshot?.meta.term ?? 0,
          ...(w.entries ?? []).map((e) => e.term),
        );
        let ok = true;
        try {
          await ref.save(w);
        } catch {
          ok = false;
        }
        const p = storage.save(w);
        if (ok) {
          const k = issued.length;
          issued.push(w);
          p.then(
            () => {
              // Saves resolve in call order, so the acknowledged ones are a prefix.
              if (k !== resolved) problems.push(`save ${k} resolved after ${resolved} others`);
              resolved++;
            },
            (err: unknown) => {
              // After the crash the abandoned storage fails its queued saves (EIO): expected.
              if (!crashed) problems.push(`save ${k} failed: ${String(err)}`);
            },
          );
        } else {
          const err = await p.then(
            () => null,
            (e: unknown) => e,
          );
          if (!(err instanceof CohortError) || err.code !== 'INVALID_ARGUMENT') {
            throw new Error(`seed ${seed}: an invalid write was not refused: ${String(err)}`);
          }
        }
      } else {
        const fn = flushes.shift();
        if (fn !== undefined) fn();
        // Sometimes let in-flight syncs complete before going on.
        if (rng.chance(0.3)) await Promise.resolve();
      }
    }
    if (problems.length > 0) throw new Error(`seed ${seed}: ${problems.join('; ')}`);
    const acked = resolved;
    disk.crash();
    crashed = true;

    // The state after recovery must be some record-prefix of the issued writes that includes all acked ones.
    const allowed: unknown[] = [];
    let s = durable;
    for (let k = 0; k < issued.length; k++) {
      const w = issued[k] as StorageWrite;
      if (k >= acked) allowed.push(...partialStates(s, w).map(plain));
      s = applyWrite(s, w);
    }
    let st = durable;
    for (let k = 0; k < acked; k++) st = applyWrite(st, issued[k] as StorageWrite);
    allowed.unshift(plain(st));

    const probe = new FileStorage({
      dir: '/data/n1',
      fs: disk.fs,
      clusterId: clusterId('c1'),
      nodeId: nodeId('n1'),
      logger: quiet,
      segmentBytes,
    });
    const after = await probe.load();
    const got = plain(after);
    const gotText = JSON.stringify(got);
    const match = allowed.findIndex((a) => JSON.stringify(a) === gotText);
    if (match < 0) {
      throw new Error(
        `seed ${seed} cycle ${cycle}: lost an acknowledged write (acked ${acked} of ${issued.length}); ` +
          `recovered ${gotText.slice(0, 600)}\nexpected at least ${JSON.stringify(allowed[0]).slice(0, 600)}`,
      );
    }
    await probe.close();
    durable = after;
    totalAcked += acked;
  }
  return { acked: totalAcked, crashes: cycles };
}
