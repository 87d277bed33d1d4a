/**
 * Node modules share the node's Raft log with the KV store: their entries
 * are routed to them, their state travels in the node's snapshot, they are
 * replayed at restart, and entries for an unknown module are refused the
 * same way on every replica.
 */

import { Packr } from 'msgpackr';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { kvKey } from '../../src/kv/core/bytes.js';
import { resolveNodeConfig } from '../../src/node/config.js';
import {
  encodeKvEntry,
  encodeModuleEntry,
  KvRaftStateMachine,
} from '../../src/host/kv-state-machine.js';
import type { NodeModule, NodeModuleContext } from '../../src/host/modules.js';
import { startNode } from '../../src/node/node.js';
import { mapReduceModule } from '../../src/mapreduce/module.js';
import type { CohortNode } from '../../src/node/node.js';
import type { LogIndex, Term } from '../../src/lib/ids.js';
import type { Entry } from '../../src/raft/core/types.js';
import { freePort } from '../transport/tcp-harness.js';
import { tempDir } from '../harness/tmp.js';
import { waitUntil } from '../harness/wait.js';

const packr = new Packr({ useRecords: false });

/** A module keeping a list of the numbers it was sent; refuses anything else. */
class ListModule implements NodeModule {
  readonly name = 'list';
  items: number[] = [];
  ctx: NodeModuleContext | undefined;
  stopped = false;
  apply(command: unknown): unknown {
    if (typeof command !== 'number') return { ok: false };
    this.items.push(command);
    return { ok: true, length: this.items.length };
  }
  snapshot(): Uint8Array {
    return new Uint8Array(packr.pack(this.items));
  }
  restore(bytes: Uint8Array): void {
    this.items = packr.unpack(bytes) as number[];
  }
  reset(): void {
    this.items = [];
  }
  start(ctx: NodeModuleContext): void {
    this.ctx = ctx;
  }
  stop(): void {
    this.stopped = true;
  }
}

let index = 0;
const entry = (data: Uint8Array): Entry => ({
  index: ++index as LogIndex,
  term: 1 as Term,
  kind: 'normal',
  data,
});

describe('KvRaftStateMachine with modules', () => {
  it('routes module entries, refuses unknown modules, and snapshots every part', () => {
    const list = new ListModule();
    const sm = new KvRaftStateMachine([list]);
    expect(sm.apply(entry(encodeModuleEntry('list', 7)))).toEqual({
      module: 'list',
      result: { ok: true, length: 1 },
    });
    expect(
      sm.apply(
        entry(encodeKvEntry({ command: { type: 'put', key: kvKey('a'), value: kvKey('1') } })),
      ),
    ).toMatchObject({ ok: true, revision: 1 });
    expect(sm.apply(entry(encodeModuleEntry('other', 1)))).toMatchObject({
      ok: false,
      error: { code: 'NOT_FOUND' },
    });
    expect(list.items).toEqual([7]);

    const copyList = new ListModule();
    const copy = new KvRaftStateMachine([copyList]);
    copy.restore(sm.snapshot());
    expect(copyList.items).toEqual([7]);
    expect(copy.kv.revision).toBe(1);
    expect(copy.snapshot()).toEqual(sm.snapshot());
  });

  it('restores a plain KV snapshot (no modules part) and refuses a damaged wrapper', () => {
    const plain = new KvRaftStateMachine();
    plain.apply(
      entry(encodeKvEntry({ command: { type: 'put', key: kvKey('k'), value: kvKey('v') } })),
    );
    const withModule = new KvRaftStateMachine([new ListModule()]);
    withModule.restore(plain.snapshot());
    expect(withModule.kv.revision).toBe(1);

    const wrapped = new KvRaftStateMachine([new ListModule()]).snapshot();
    const target = new KvRaftStateMachine([new ListModule()]);
    expect(() => target.restore(wrapped.subarray(0, wrapped.length - 3))).toThrow(
      expect.objectContaining({ code: 'CORRUPTION' }) as Error,
    );
  });

  it('a restore replaces every module: one without a part in the snapshot is reset, not kept', () => {
    // A node whose module already holds state (it applied entries, or an older snapshot).
    const list = new ListModule();
    const sm = new KvRaftStateMachine([list]);
    sm.apply(entry(encodeModuleEntry('list', 1)));
    sm.apply(entry(encodeModuleEntry('list', 2)));
    expect(list.items).toEqual([1, 2]);

    // A plain KV snapshot (taken by a node without modules): the module starts afresh.
    const plain = new KvRaftStateMachine();
    plain.apply(
      entry(encodeKvEntry({ command: { type: 'put', key: kvKey('k'), value: kvKey('v') } })),
    );
    sm.restore(plain.snapshot());
    expect(list.items).toEqual([]);
    expect(sm.kv.revision).toBe(1);
    const ref = new KvRaftStateMachine([new ListModule()]);
    ref.restore(plain.snapshot());
    expect(sm.snapshot()).toEqual(ref.snapshot());

    // A wrapped snapshot whose modules map lacks this module: reset too.
    sm.apply(entry(encodeModuleEntry('list', 3)));
    expect(list.items).toEqual([3]);
    const other: NodeModule = {
      name: 'other',
      apply: () => null,
      snapshot: () => new Uint8Array(packr.pack('other state')),
      restore: () => undefined,
      reset: () => undefined,
    };
    sm.restore(new KvRaftStateMachine([other]).snapshot());
    expect(list.items).toEqual([]);
    expect(sm.kv.revision).toBe(0);
    // The state equals a fresh node's: every replica restoring the snapshot agrees.
    expect(sm.snapshot()).toEqual(new KvRaftStateMachine([new ListModule()]).snapshot());
  });

  it('a MapReduce module without a part in the snapshot is reset (jobs and registered nodes)', () => {
    const mr = mapReduceModule();
    const sm = new KvRaftStateMachine([mr]);
    const fresh = mr.snapshot();
    expect(
      sm.apply(
        entry(
          encodeModuleEntry('mapreduce', {
            type: 'registerNode',
            node: 'n1',
            host: '127.0.0.1',
            port: 7201,
          }),
        ),
      ),
    ).toMatchObject({ module: 'mapreduce', result: { ok: true } });
    expect(mr.state.nodes.size).toBe(1);
    expect(mr.snapshot()).not.toEqual(fresh);
    sm.restore(new KvRaftStateMachine().snapshot());
    expect(mr.state.nodes.size).toBe(0);
    expect(mr.snapshot()).toEqual(fresh);
  });
});

describe('startNode with a module', () => {
  const open: CohortNode[] = [];
  afterEach(async () => {
    await Promise.allSettled(open.splice(0).map((n) => n.close()));
  });

  it('starts it, proposes through the log, replays it after a restart, stops it', async () => {
    const flags = {
      id: 'n1',
      dataDir: tempDir('cohort-modules-'),
      listen: `127.0.0.1:${await freePort()}`,
      rpc: `127.0.0.1:${await freePort()}`,
      tickMs: '5',
      snapshotEntries: '3',
      insecure: true,
    };
    const config = resolveNodeConfig({ flags, env: {} });
    const silent = pino({ level: 'silent' });
    const first = new ListModule();
    const node = await startNode(config, { logger: silent, modules: [first] });
    open.push(node);
    const ctx = first.ctx;
    if (ctx === undefined) throw new Error('module not started');
    await waitUntil('the node to lead', () => node.raft.isLeader());
    for (const n of [1, 2, 3, 4, 5]) await ctx.propose(n);
    await expect(ctx.propose('junk')).resolves.toEqual({ ok: false });
    expect(first.items).toEqual([1, 2, 3, 4, 5]);
    await node.close();
    expect(first.stopped).toBe(true);

    // Restarted: the snapshot (every 3 entries) plus the log tail rebuild the list.
    const second = new ListModule();
    const again = await startNode(config, { logger: silent, modules: [second] });
    open.push(again);
    // The snapshot is restored at start; the log tail after it is applied by the first Readys.
    for (let i = 0; i < 100 && second.items.length < 5; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(second.items).toEqual([1, 2, 3, 4, 5]);
    // The first run's compaction snapshot is written ahead and may not be
    // durable at close; then the restarted node compacts its replayed log.
    await waitUntil('a compaction snapshot', () => again.status().snapshotIndex > 0);
  });
});
