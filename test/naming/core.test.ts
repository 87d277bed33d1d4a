/** The registry's pure parts: entry checks, the instance set, the picker. */
import { describe, expect, it } from 'vitest';
import { InstanceSet } from '../../src/naming/core/instance-set.js';
import { InstancePicker } from '../../src/naming/core/picker.js';
import {
  decodeInstance,
  encodeInstance,
  parseServiceKey,
  serviceKey,
} from '../../src/naming/core/registry.js';
import type { ServiceInstance } from '../../src/naming/core/registry.js';
import { seededRandom } from '../../src/lib/random.js';

const lm = (id: string, port: number, extra: Partial<ServiceInstance> = {}): ServiceInstance => ({
  service: 'ListMax',
  id,
  node: 'host-a',
  address: { host: '127.0.0.1', port },
  metadata: {},
  weight: 1,
  ...extra,
});

describe('registry entries', () => {
  it('round-trip through their key and JSON value', () => {
    const i = lm('lm-1', 7401, { metadata: { zone: 'a' }, weight: 3 });
    expect(serviceKey('ListMax', 'lm-1')).toBe('/cohort/services/ListMax/lm-1');
    expect(decodeInstance(serviceKey('ListMax', 'lm-1'), encodeInstance(i))).toEqual({
      ok: true,
      instance: i,
    });
    expect(parseServiceKey('/cohort/services/ListMax/lm-1')).toEqual({
      service: 'ListMax',
      id: 'lm-1',
    });
    expect(parseServiceKey('/cohort/services/ListMax/a/b')).toBeUndefined();
    expect(parseServiceKey('/other/ListMax/a')).toBeUndefined();
  });

  it('refuse what a careless or hostile writer could put there, saying why', () => {
    const key = serviceKey('ListMax', 'lm-1');
    const good = JSON.parse(encodeInstance(lm('lm-1', 7401))) as Record<string, unknown>;
    const cases: [string, string][] = [
      ['not json', 'not JSON'],
      ['[1,2]', 'not a JSON object'],
      [JSON.stringify({ ...good, v: 2 }), 'unknown entry version'],
      [JSON.stringify({ ...good, id: 'lm-2' }), 'does not match its key'],
      [JSON.stringify({ ...good, service: 'Other' }), 'does not match its key'],
      [JSON.stringify({ ...good, address: { host: '127.0.0.1', port: 70000 } }), 'address.port'],
      [JSON.stringify({ ...good, address: 'x' }), 'address'],
      [JSON.stringify({ ...good, address: { host: '', port: 1 } }), 'address.host'],
      [JSON.stringify({ ...good, weight: 0 }), 'weight'],
      [JSON.stringify({ ...good, metadata: { a: 1 } }), 'metadata.a'],
      [JSON.stringify({ ...good, node: 5 }), 'node'],
      ['x'.repeat(100_000), 'larger than'],
    ];
    for (const [text, reason] of cases) {
      const d = decodeInstance(key, text);
      expect(d.ok, text.slice(0, 40)).toBe(false);
      if (!d.ok) expect(d.reason).toContain(reason);
    }
    expect(decodeInstance('/cohort/services/Bad Name/x', encodeInstance(lm('x', 1))).ok).toBe(
      false,
    );
  });
});

describe('the instance set', () => {
  const entry = (i: ServiceInstance) => ({
    key: serviceKey(i.service, i.id),
    value: encodeInstance(i),
  });

  it('follows puts, moves and deletes after a listing, and skips malformed entries', () => {
    const set = new InstanceSet('ListMax');
    const u = set.reset(
      [entry(lm('a', 1)), entry(lm('b', 2)), { key: serviceKey('ListMax', 'c'), value: '{' }],
      10,
    );
    expect(u.changed).toBe(true);
    expect(u.skipped).toEqual([{ key: serviceKey('ListMax', 'c'), reason: 'not JSON' }]);
    expect(set.list().map((i) => i.id)).toEqual(['a', 'b']);
    // The same put again changes nothing; a move does.
    expect(set.apply([{ type: 'PUT', ...entry(lm('a', 1)) }], 11).changed).toBe(false);
    expect(set.apply([{ type: 'PUT', ...entry(lm('a', 9)) }], 12).changed).toBe(true);
    expect(set.get('a')?.address.port).toBe(9);
    expect(set.apply([{ type: 'DELETE', key: serviceKey('ListMax', 'b'), value: '' }], 13)).toEqual(
      { changed: true, skipped: [] },
    );
    // A malformed overwrite removes the instance (its key no longer says where it is).
    const bad = set.apply([{ type: 'PUT', key: serviceKey('ListMax', 'a'), value: 'junk' }], 14);
    expect(bad.changed).toBe(true);
    expect(bad.skipped).toHaveLength(1);
    expect(set.list()).toEqual([]);
    // Another service's key is never taken.
    const other = set.apply([{ type: 'PUT', ...entry({ ...lm('z', 1), service: 'Other' }) }], 15);
    expect(other.changed).toBe(false);
    expect(set.revision).toBe(15);
  });
});

describe('the picker', () => {
  it('p2c sends every call to the less loaded of two, never to a busy one when an idle one is drawn', () => {
    const picker = new InstancePicker('p2c', seededRandom(7));
    const load = new Map([
      ['a', 10],
      ['b', 0],
    ]);
    for (let k = 0; k < 50; k++)
      expect(picker.pick(['a', 'b'], (id) => load.get(id) ?? 0)).toBe('b');
    const counts = new Map<string, number>();
    for (let k = 0; k < 3000; k++) {
      const id = picker.pick(['a', 'b', 'c'], () => 0) as string;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    for (const id of ['a', 'b', 'c']) expect(counts.get(id)).toBeGreaterThan(700);
    expect(picker.pick([], () => 0)).toBeUndefined();
  });

  it('round robin takes each in turn', () => {
    const picker = new InstancePicker('round-robin', seededRandom(1));
    expect([0, 1, 2, 3].map(() => picker.pick(['a', 'b', 'c'], () => 0))).toEqual([
      'a',
      'b',
      'c',
      'a',
    ]);
  });
});
