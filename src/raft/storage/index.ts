/**
 * Durable storage for Raft: the {@link Storage} interface, its in-memory
 * reference ({@link MemoryStorage}) and the write-ahead-log implementation
 * ({@link FileStorage}) over an injected file system ({@link StorageFs}).
 *
 * ```ts
 * import { FileStorage } from './raft/storage/index.js';
 * const storage = new FileStorage({ dir, clusterId, nodeId });
 * const state = await storage.load();
 * ```
 */
export type { PersistentState, Storage, StorageWrite } from './storage.js';
export { MemoryStorage, applyWrite, emptyHardState, emptyPersistentState } from './memory.js';
export { FileStorage } from './file-storage.js';
export type { FileStorageOptions, RecoveryReport, StorageLogger } from './file-storage.js';
export { nodeFs } from './fs.js';
export type { FileHandle, OpenMode, StorageFs } from './fs.js';
export { planWrite } from './write-plan.js';
export type { LogShape, WritePlan } from './write-plan.js';
