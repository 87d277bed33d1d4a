import { MemoryStorage } from '../../../src/raft/storage/memory.js';
import type { StorageHarness } from './compliance.js';
import { describeStorageCompliance } from './compliance.js';

function memoryHarness(): StorageHarness {
  let last: MemoryStorage | null = null;
  return {
    open: () => {
      last = new MemoryStorage(last?.current());
      return last;
    },
    dispose: () => {},
  };
}

describeStorageCompliance('MemoryStorage', memoryHarness);
