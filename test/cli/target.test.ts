/**
 * How a client command finds its cluster (src/cli/target.ts): --endpoints,
 * then COHORT_ENDPOINTS, then --dir, then the nearest .cohort/cluster.json at
 * or above the working directory; the cluster id from --cluster-id,
 * COHORT_CLUSTER_ID, the file, or cohort-local.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { endpointStrings, findClusterDir, resolveTarget } from '../../src/cli/target.js';
import { tempDir } from '../harness/tmp.js';

/** A project dir with `.cohort/cluster.json` (cluster `file-id`, one node on port 7201) and a deep subdirectory. */
function project(): { root: string; deep: string } {
  const root = tempDir('cohort-target-');
  mkdirSync(join(root, '.cohort'));
  writeFileSync(
    join(root, '.cohort', 'cluster.json'),
    JSON.stringify({
      clusterId: 'file-id',
      nodes: [
        {
          id: 'n1',
          rpc: { host: '127.0.0.1', port: 7201 },
          peer: { host: '127.0.0.1', port: 7101 },
          dataDir: join(root, '.cohort', 'n1'),
        },
      ],
    }),
  );
  const deep = join(root, 'src', 'a', 'b');
  mkdirSync(deep, { recursive: true });
  return { root, deep };
}

describe('resolveTarget', () => {
  it('finds .cohort/cluster.json in a parent directory, like git finds .git', () => {
    const { root, deep } = project();
    expect(findClusterDir(deep)).toBe(join(root, '.cohort'));
    const t = resolveTarget({}, {}, deep);
    expect(endpointStrings(t)).toEqual(['n1=127.0.0.1:7201']);
    expect(t.clusterId).toBe('file-id');
    expect(t.source).toBe(join(root, '.cohort', 'cluster.json'));
  });

  it('COHORT_ENDPOINTS wins over the cluster file, --endpoints over both', () => {
    const { deep } = project();
    const env = { COHORT_ENDPOINTS: 'a=10.0.0.1:1,b=10.0.0.2:2' };
    const fromEnv = resolveTarget({}, env, deep);
    expect(endpointStrings(fromEnv)).toEqual(['a=10.0.0.1:1', 'b=10.0.0.2:2']);
    expect(fromEnv).toMatchObject({ source: 'COHORT_ENDPOINTS', clusterId: 'cohort-local' });
    const fromFlag = resolveTarget({ endpoints: 'z=10.0.0.9:9' }, env, deep);
    expect(endpointStrings(fromFlag)).toEqual(['z=10.0.0.9:9']);
    expect(fromFlag.source).toBe('--endpoints');
    // An empty variable is no variable.
    expect(resolveTarget({}, { COHORT_ENDPOINTS: ' ' }, deep).clusterId).toBe('file-id');
  });

  it('--dir names a cluster file explicitly, over COHORT_ENDPOINTS', () => {
    const { root } = project();
    const elsewhere = tempDir('cohort-target-');
    const t = resolveTarget(
      { dir: join(root, '.cohort') },
      { COHORT_ENDPOINTS: 'a=h:1' },
      elsewhere,
    );
    expect(endpointStrings(t)).toEqual(['n1=127.0.0.1:7201']);
  });

  it('the cluster id: --cluster-id, then COHORT_CLUSTER_ID, then the file', () => {
    const { deep } = project();
    expect(resolveTarget({}, { COHORT_CLUSTER_ID: 'env-id' }, deep).clusterId).toBe('env-id');
    expect(
      resolveTarget({ clusterId: 'flag-id' }, { COHORT_CLUSTER_ID: 'env-id' }, deep).clusterId,
    ).toBe('flag-id');
  });

  it('no cluster anywhere: NOT_FOUND naming every place it looked', () => {
    const lonely = tempDir('cohort-target-');
    if (findClusterDir(lonely) !== undefined) return; // a .cohort above the temp dir: nothing to check here
    expect(() => resolveTarget({}, {}, lonely)).toThrow(
      /no cluster found: no --endpoints, no COHORT_ENDPOINTS, and no \.cohort\/cluster\.json in .* or above/,
    );
  });

  it('bad endpoints are a usage error', () => {
    expect(() => resolveTarget({ endpoints: 'oops' }, {}, '/')).toThrow(/expected id=host:port/);
  });
});
