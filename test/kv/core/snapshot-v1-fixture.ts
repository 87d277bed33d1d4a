/**
 * A version 1 KV snapshot as the state machine wrote it before the columnar
 * format (commit 9ed3779~1), and the entries that produced it: a node's data
 * dir may still hold such a file, and restoring it must give the state that
 * replaying the entries gives. Regenerate only if the entries change (run
 * them through the old state machine and base64 its snapshot).
 */
import type { KvEntry } from '../../../src/kv/core/index.js';

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/** The entries behind {@link V1_SNAPSHOT_BASE64}: binary keys and values, a lease, a txn, deletes, a compaction, sessions. */
export function v1FixtureEntries(): KvEntry[] {
  const bin = (...xs: number[]): Uint8Array => Uint8Array.from(xs);
  return [
    { command: { type: 'put', key: utf8('a'), value: utf8('1') } },
    { command: { type: 'put', key: bin(0xff, 0x00, 0x80), value: bin(0x80, 0x9f, 0xff, 0) } },
    { command: { type: 'leaseGrant', id: 7, ttlMs: 5000 } },
    { command: { type: 'put', key: utf8('svc/x'), value: utf8('up'), lease: 7 } },
    {
      command: {
        type: 'txn',
        compare: [],
        success: [
          { type: 'put', key: utf8('b'), value: utf8('2') },
          { type: 'put', key: utf8('c'), value: bin(0xc3, 0xa9) },
          { type: 'deleteRange', key: utf8('a') },
        ],
        failure: [],
      },
      session: { clientId: 'client-1', seq: 1 },
    },
    { command: { type: 'put', key: utf8('b'), value: utf8('22') } },
    { command: { type: 'put', key: utf8('d'), value: utf8('old') } },
    { command: { type: 'compact', revision: 5 } },
    { command: { type: 'put', key: utf8('d'), value: utf8('new') } },
    { command: { type: 'deleteRange', key: utf8('c') } },
    {
      command: { type: 'range', key: utf8('b'), rangeEnd: utf8('e') },
      session: { clientId: 'client-2', seq: 1 },
    },
    {
      command: { type: 'put', key: utf8('e'), value: utf8('') },
      session: { clientId: 'client-1', seq: 2 },
    },
    { command: { type: 'leaseGrant', ttlMs: 60000 } },
  ];
}

/** The version 1 snapshot after {@link v1FixtureEntries}. */
export const V1_SNAPSHOT_BASE64 =
  '3gAIoXYBqHJldmlzaW9uCaljb21wYWN0ZWQFq25leHRMZWFzZUlkAqVieXRlc8QcYjIyY8OpZG9sZG5ld2VzdmMveH' +
  'Vw/wCAgJ//AKRrZXlzlpIBlgUAAgQCAJIBnAQBAgQBAAgA/wAAAJIBnAYAAwYBAAcAAwYCAJIBlgkAAAkBAJIFlgMA' +
  'AgMBB5IDlgIABAIBAKZsZWFzZXOSlAHN6mDN6mAAlAfNE4jNE4gAqHNlc3Npb25zkpOoY2xpZW50LTIB3gACom9rw6' +
  'ZyZXN1bHTeAAWkdHlwZaVyYW5nZahyZXZpc2lvbgija3Zzkt4ABqNrZXnEAWKldmFsdWXEAjIyrmNyZWF0ZVJldmlz' +
  'aW9uBKttb2RSZXZpc2lvbgWndmVyc2lvbgKlbGVhc2UA3gAGo2tlecQBZKV2YWx1ZcQDbmV3rmNyZWF0ZVJldmlzaW' +
  '9uBqttb2RSZXZpc2lvbgendmVyc2lvbgKlbGVhc2UApWNvdW50AqRtb3JlwpOoY2xpZW50LTEC3gACom9rw6ZyZXN1' +
  'bHTeAAKkdHlwZaNwdXSocmV2aXNpb24J';

/**
 * The version 2 (columnar) snapshot after {@link v1FixtureEntries}, as the
 * state machine wrote it before sessions were registered and expired by log
 * time (commit 93706bd): its sessions are the legacy ones, named by their
 * clients, with no log time.
 */
export const V2_SNAPSHOT_BASE64 =
  'S1ZTTgIAAACem0O8ZAEAAN4ACahyZXZpc2lvbgmpY29tcGFjdGVkBatuZXh0TGVhc2VJZAKka2V5cwaodmVyc2lvbnMI' +
  'pndpZHRoc5gBAQEBAQEBAaRibG9iHKZsZWFzZXOSlAHN6mDN6mAAlAfNE4jNE4gAqHNlc3Npb25zkpOoY2xpZW50LTIB' +
  '3gACom9rw6ZyZXN1bHTeAAWkdHlwZaVyYW5nZahyZXZpc2lvbgija3Zzkt4ABqNrZXnEAWKldmFsdWXEAjIyrmNyZWF0' +
  'ZVJldmlzaW9uBKttb2RSZXZpc2lvbgWndmVyc2lvbgKlbGVhc2UA3gAGo2tlecQBZKV2YWx1ZcQDbmV3rmNyZWF0ZVJl' +
  'dmlzaW9uBqttb2RSZXZpc2lvbgendmVyc2lvbgKlbGVhc2UApWNvdW50AqRtb3JlwpOoY2xpZW50LTEC3gACom9rw6Zy' +
  'ZXN1bHTeAAKkdHlwZaNwdXSocmV2aXNpb24JAAAAAAEBAQEFAwAAAQICAQEBAAAFBAgGBwkDAgABAAAAAAAAAwMABAQB' +
  'AwUEBAAGBgkDAgIBAAECAQEBAAAAAAAABwBiMjJjw6lkb2xkbmV3ZXN2Yy94dXD/AICAn/8A';
