import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterId, nodeId } from '../../../src/lib/ids.js';
import { seededRandom } from '../../../src/lib/random.js';
import { FileStorage } from '../../../src/raft/storage/file-storage.js';
import type { StorageLogger } from '../../../src/raft/storage/file-storage.js';
import { SimDisk } from '../../../src/sim/disk.js';
import type { StorageHarness } from './compliance.js';
import { describeStorageCompliance } from './compliance.js';

/** A logger that keeps what it was told (tests assert on it; nothing is printed). */
export const quietLogger: StorageLogger = { info: () => {}, warn: () => {}, error: () => {} };

describeStorageCompliance('FileStorage on the real file system', (): StorageHarness => {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-wal-'));
  return {
    open: () =>
      new FileStorage({
        dir,
        clusterId: clusterId('c1'),
        nodeId: nodeId('n1'),
        logger: quietLogger,
        segmentBytes: 8 * 1024,
      }),
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
});

describeStorageCompliance('FileStorage with inline syncs on the real file system', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-wal-inline-'));
  return {
    open: () =>
      new FileStorage({
        dir,
        clusterId: clusterId('c1'),
        nodeId: nodeId('n1'),
        logger: quietLogger,
        segmentBytes: 8 * 1024,
        syncMode: 'inline',
      }),
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
});

describeStorageCompliance('FileStorage on the simulated disk', (): StorageHarness => {
  const disk = new SimDisk(seededRandom(1));
  return {
    open: () =>
      new FileStorage({
        dir: '/data/n1',
        fs: disk.fs,
        clusterId: clusterId('c1'),
        nodeId: nodeId('n1'),
        logger: quietLogger,
        segmentBytes: 4 * 1024,
      }),
    dispose: () => {},
  };
});
