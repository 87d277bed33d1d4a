/**
 * A consistent-hash ring (Karger et al., 1997): every backend owns
 * `weight × vnodesPerWeight` points on a 32-bit circle, and a key goes to the
 * owner of the first point at or after the key's hash. Adding or removing one
 * backend moves only the keys of its own points; a backend that is skipped
 * (unhealthy, already tried) sends its keys to the next owner clockwise, and
 * they come back when it does, so sticky routing survives failures.
 *
 * ```ts
 * const ring = new HashRing([{ id: 'a', weight: 1 }, { id: 'b', weight: 2 }], 64);
 * ring.lookup('user-42', (id) => true);   // 'a' or 'b'; the same for the same key
 * ```
 */
import { assert } from '../../lib/assert.js';

/** 32-bit hash of a string: FNV-1a over its UTF-16 units, then murmur3's finaliser to spread similar keys. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // MurmurHash3 fmix32.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The ring of a fixed set of backends (rebuilt when the set or a weight changes). */
export class HashRing {
  private readonly points: Uint32Array;
  private readonly owners: string[];

  constructor(backends: readonly { id: string; weight: number }[], vnodesPerWeight: number) {
    assert(vnodesPerWeight >= 1, 'vnodesPerWeight >= 1');
    const all: { point: number; id: string }[] = [];
    for (const b of backends) {
      const n = Math.max(1, Math.round(b.weight * vnodesPerWeight));
      for (let i = 0; i < n; i++) all.push({ point: hash32(`${b.id}#${i}`), id: b.id });
    }
    // Ties (a 32-bit collision) are broken by id, so the ring is the same whatever the input order.
    all.sort((x, y) => x.point - y.point || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
    this.points = Uint32Array.from(all.map((p) => p.point));
    this.owners = all.map((p) => p.id);
  }

  /** Points on the ring. */
  get size(): number {
    return this.points.length;
  }

  /**
   * The owner of `key`: the first point clockwise from hash(key) whose
   * backend `accept`s; undefined if none does.
   */
  lookup(key: string, accept: (id: string) => boolean): string | undefined {
    const n = this.points.length;
    if (n === 0) return undefined;
    const h = hash32(key);
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.points[mid] ?? 0) < h) lo = mid + 1;
      else hi = mid;
    }
    const seen = new Set<string>();
    for (let k = 0; k < n; k++) {
      const id = this.owners[(lo + k) % n];
      if (id === undefined || seen.has(id)) continue;
      if (accept(id)) return id;
      seen.add(id);
    }
    return undefined;
  }
}
