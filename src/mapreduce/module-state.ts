/**
 * The `mapreduce` module's replicated state: the coordinator's
 * {@link MapReduceStateMachine} plus a registry of the nodes' RPC addresses
 * (`{ type: 'registerNode', node, host, port }` entries). module.ts wraps it
 * as a NodeModule; runtime.ts and worker.ts read it on a running node.
 *
 * ```ts
 * const state = new MapReduceModuleState();
 * state.apply({ type: 'registerNode', node: 'n1', host: '127.0.0.1', port: 7201 });
 * state.nodes.get('n1');                 // { host: '127.0.0.1', port: 7201 }
 * const copy = new MapReduceModuleState();
 * copy.restore(state.snapshot());
 * ```
 */
import { Packr } from 'msgpackr';
import { CohortError } from '../lib/errors.js';
import { isValidId } from '../lib/ids.js';
import { MapReduceStateMachine } from './core/state-machine.js';
import type { MrApplied } from './core/types.js';

const packr = new Packr({ useRecords: false, moreTypes: false });

/** Records a node's RPC address in the replicated registry. */
export interface RegisterNodeCommand {
  readonly type: 'registerNode';
  readonly node: string;
  readonly host: string;
  readonly port: number;
}

/** An RPC address. */
export interface NodeAddress {
  readonly host: string;
  readonly port: number;
}

/** What the module's apply returns for a registerNode command. */
export type RegisterApplied =
  | {
      readonly ok: true;
      readonly result: { readonly type: 'registerNode'; readonly changed: boolean };
    }
  | MrApplied;

/** The module's replicated state: the coordinator and the address registry. */
export class MapReduceModuleState {
  core = new MapReduceStateMachine();
  /** Node id → RPC address, as registered through the log. */
  readonly nodes = new Map<string, NodeAddress>();

  /** Applies one committed command (never throws on bad input). */
  apply(command: unknown): MrApplied | RegisterApplied {
    if (
      typeof command === 'object' &&
      command !== null &&
      (command as { type?: unknown }).type === 'registerNode'
    ) {
      return this.register(command);
    }
    return this.core.apply(command);
  }

  private register(c: Partial<RegisterNodeCommand>): RegisterApplied {
    const { node, host, port } = c;
    if (
      typeof node !== 'string' ||
      !isValidId(node) ||
      typeof host !== 'string' ||
      host.length === 0 ||
      host.length > 255 ||
      typeof port !== 'number' ||
      !Number.isInteger(port) ||
      port < 1 ||
      port > 65535
    ) {
      return {
        ok: false,
        error: {
          code: 'INVALID_ARGUMENT',
          message: 'registerNode needs a node id, a host and a port 1..65535',
          definite: true,
          details: {},
        },
      };
    }
    const old = this.nodes.get(node);
    const changed = old?.host !== host || old.port !== port;
    if (changed) this.nodes.set(node, { host, port });
    return { ok: true, result: { type: 'registerNode', changed } };
  }

  /** The state as bytes: the core's snapshot and the registry (sorted, so replicas agree). */
  snapshot(): Uint8Array {
    const nodes = [...this.nodes].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return new Uint8Array(packr.pack({ v: 1, core: this.core.snapshot(), nodes }));
  }

  /** Replaces the state with a snapshot's (CORRUPTION on bad bytes, state unchanged). */
  restore(bytes: Uint8Array): void {
    let decoded: unknown;
    try {
      decoded = packr.unpack(bytes.subarray());
    } catch (e) {
      throw new CohortError('CORRUPTION', 'mapreduce snapshot is not MessagePack', { cause: e });
    }
    const d = decoded as { v?: unknown; core?: unknown; nodes?: unknown } | null;
    if (
      typeof d !== 'object' ||
      d === null ||
      d.v !== 1 ||
      !(d.core instanceof Uint8Array) ||
      !Array.isArray(d.nodes)
    ) {
      throw new CohortError('CORRUPTION', 'mapreduce snapshot has an unknown layout');
    }
    const core = MapReduceStateMachine.fromSnapshot(d.core);
    const nodes = new Map<string, NodeAddress>();
    for (const e of d.nodes as unknown[]) {
      const [id, a] = Array.isArray(e) ? (e as [unknown, unknown]) : [undefined, undefined];
      const addr = a as Partial<NodeAddress> | undefined;
      if (
        typeof id !== 'string' ||
        typeof addr?.host !== 'string' ||
        typeof addr.port !== 'number'
      ) {
        throw new CohortError('CORRUPTION', 'mapreduce snapshot has a malformed node address');
      }
      nodes.set(id, { host: addr.host, port: addr.port });
    }
    this.core = core;
    this.nodes.clear();
    for (const [id, a] of nodes) this.nodes.set(id, a);
  }

  /** Replaces the state with a fresh one (no jobs, no registered nodes). */
  reset(): void {
    this.core = new MapReduceStateMachine();
    this.nodes.clear();
  }
}
