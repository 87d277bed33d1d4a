/**
 * The current instances of one service as a resolver sees them: built from a
 * listing of the service's prefix, then kept current by the watch events
 * after it. Pure: the shell feeds it what it read.
 *
 * ```ts
 * const set = new InstanceSet('ListMax');
 * set.reset([{ key, value }], 41);                  // the listing at revision 41
 * set.apply([{ type: 'DELETE', key, value: '' }], 42); // { changed: true, skipped: [] }
 * set.list();                                        // ServiceInstance[], by id
 * ```
 *
 * An entry that fails {@link decodeInstance} is skipped (and reported in
 * `skipped`, for a warning): a malformed entry never removes a good one and
 * never crashes a resolver. A PUT of a malformed entry over a good one
 * removes the good one (the key no longer says where that instance is).
 */
import { limits } from '../../lib/limits.js';
import { decodeInstance, parseServiceKey, sameInstance } from './registry.js';
import type { ServiceInstance } from './registry.js';

/** A key and value as read (text). */
export interface RegistryEntry {
  readonly key: string;
  readonly value: string;
}

/** A change as watched. */
export interface RegistryEvent extends RegistryEntry {
  readonly type: 'PUT' | 'DELETE';
}

/** What a reset or an apply did. */
export interface InstanceSetUpdate {
  /** True if the instance list is different now. */
  readonly changed: boolean;
  /** Entries that were skipped, and why. */
  readonly skipped: readonly { readonly key: string; readonly reason: string }[];
}

/** One service's instances (see the file comment). */
export class InstanceSet {
  private readonly byId = new Map<string, ServiceInstance>();
  /** Every change up to this store revision is reflected. */
  revision = 0;

  constructor(readonly service: string) {}

  /** Replaces everything with a listing taken at `revision`. */
  reset(entries: readonly RegistryEntry[], revision: number): InstanceSetUpdate {
    const before = this.list();
    this.byId.clear();
    const skipped: { key: string; reason: string }[] = [];
    for (const e of entries) this.put(e, skipped);
    this.revision = revision;
    return { changed: !sameList(before, this.list()), skipped };
  }

  /** Applies watched events (all at revisions ≤ `revision`). */
  apply(events: readonly RegistryEvent[], revision: number): InstanceSetUpdate {
    const skipped: { key: string; reason: string }[] = [];
    let changed = false;
    for (const e of events) {
      const where = parseServiceKey(e.key);
      if (where === undefined || where.service !== this.service) {
        skipped.push({ key: e.key, reason: 'not an instance key of this service' });
        continue;
      }
      const had = this.byId.get(where.id);
      if (e.type === 'DELETE') {
        if (had !== undefined) {
          this.byId.delete(where.id);
          changed = true;
        }
        continue;
      }
      const now = this.put(e, skipped);
      if (now === undefined) {
        if (had !== undefined) {
          this.byId.delete(where.id);
          changed = true;
        }
      } else if (had === undefined || !sameInstance(had, now)) {
        changed = true;
      }
    }
    this.revision = Math.max(this.revision, revision);
    return { changed, skipped };
  }

  /** The instances, by id. */
  list(): ServiceInstance[] {
    return [...this.byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** The instance with this id, if registered. */
  get(id: string): ServiceInstance | undefined {
    return this.byId.get(id);
  }

  /** How many instances. */
  get size(): number {
    return this.byId.size;
  }

  private put(
    e: RegistryEntry,
    skipped: { key: string; reason: string }[],
  ): ServiceInstance | undefined {
    const d = decodeInstance(e.key, e.value);
    if (!d.ok) {
      skipped.push({ key: e.key, reason: d.reason });
      return undefined;
    }
    if (d.instance.service !== this.service) {
      skipped.push({ key: e.key, reason: 'not an instance key of this service' });
      return undefined;
    }
    if (!this.byId.has(d.instance.id) && this.byId.size >= limits.namingInstancesMax) {
      skipped.push({ key: e.key, reason: `more than ${limits.namingInstancesMax} instances` });
      return undefined;
    }
    this.byId.set(d.instance.id, d.instance);
    return d.instance;
  }
}

function sameList(a: readonly ServiceInstance[], b: readonly ServiceInstance[]): boolean {
  return a.length === b.length && a.every((x, i) => b[i] !== undefined && sameInstance(x, b[i]));
}
