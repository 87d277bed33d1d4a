import { X509Certificate } from 'node:crypto';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { clusterId, nodeId } from '../../src/lib/ids.js';
import {
  CertDir,
  checkClaim,
  checkCredentials,
  connectionId,
  identityOfCertificate,
  issueCertificate,
  loadCredentials,
  parseIdentityUri,
} from '../../src/trust/index.js';
import { tempDir } from '../harness/tmp.js';

const cluster = clusterId('trust-test');

describe('identities', () => {
  it('parses node and user URIs and refuses malformed ones', () => {
    expect(parseIdentityUri('cohort://c1/node/n1')).toEqual({
      kind: 'node',
      clusterId: 'c1',
      id: 'n1',
    });
    expect(parseIdentityUri('cohort://c1/user/alice')).toEqual({
      kind: 'user',
      clusterId: 'c1',
      name: 'alice',
    });
    expect(parseIdentityUri('cohort://c1/node/user:x')).toBeUndefined();
    expect(parseIdentityUri('cohort://c1/user/a:b')).toBeUndefined();
    expect(parseIdentityUri('cohort://c1/admin/x')).toBeUndefined();
    expect(parseIdentityUri('https://c1/node/n1')).toBeUndefined();
  });

  it('binds claims: a node claims its id, a user its own namespace', () => {
    const n1 = { kind: 'node', clusterId: cluster, id: nodeId('n1') } as const;
    const alice = { kind: 'user', clusterId: cluster, name: 'alice' } as const;
    expect(checkClaim(n1, 'n1')).toBeUndefined();
    expect(checkClaim(n1, 'n2')).toMatch(/claims id "n2" but its certificate is node n1's/);
    expect(checkClaim(alice, connectionId(alice, 'abc'))).toBeUndefined();
    expect(connectionId(alice, 'abc')).toBe('user:alice:abc');
    expect(checkClaim(alice, 'user:alicex:1')).toMatch(/user alice's/);
    expect(checkClaim(alice, 'n1')).toMatch(/user alice's/);
  });
});

describe('certificates', () => {
  it('issues node and user certificates that load, with 0600 files', async () => {
    const dir = new CertDir(join(tempDir('cohort-trust-'), 'certs'));
    await dir.init(cluster);
    const files = await dir.issue({ kind: 'node', id: 'n1' });
    for (const f of [dir.caKey, dir.caCert, files.cert, files.key]) {
      expect((statSync(f).mode & 0o777).toString(8)).toBe('600');
    }
    const creds = loadCredentials(files);
    expect(creds.identity).toEqual({ kind: 'node', clusterId: cluster, id: 'n1' });
    checkCredentials(creds, { clusterId: cluster, kind: 'node', id: 'n1' });
    expect(() => checkCredentials(creds, { kind: 'node', id: 'n2' })).toThrow(/not node n2's/);
    expect(() => checkCredentials(creds, { kind: 'user' })).toThrow(/a user certificate is needed/);
    expect(() => checkCredentials(creds, { clusterId: 'other' })).toThrow(/not other/);
    const user = loadCredentials(await dir.issue({ kind: 'user', name: 'root' }));
    expect(user.identity).toEqual({ kind: 'user', clusterId: cluster, name: 'root' });
    const parsed = identityOfCertificate(new X509Certificate(readFileSync(files.cert)));
    expect(parsed).toEqual(creds.identity);
    await expect(dir.init(cluster)).rejects.toThrow(/already holds a CA/);
  });

  it('refuses a key readable by others, a certificate of another CA, an expired one, a wrong key', async () => {
    const base = tempDir('cohort-trust-');
    const dir = new CertDir(join(base, 'a'));
    const other = new CertDir(join(base, 'b'));
    await dir.init(cluster);
    await other.init(cluster);
    const files = await dir.issue({ kind: 'node', id: 'n1' });
    chmodSync(files.key, 0o644);
    expect(() => loadCredentials(files)).toThrow(/accessible by group or others \(mode 0644\)/);
    chmodSync(files.key, 0o600);
    const foreign = await other.issue({ kind: 'node', id: 'n1' });
    expect(() => loadCredentials({ ...foreign, ca: dir.caCert })).toThrow(
      /was not signed by the CA/,
    );
    const expired = await issueCertificate(
      dir.ca(),
      { kind: 'node', clusterId: cluster, id: nodeId('n1') },
      { notBefore: new Date(Date.now() - 3 * 86_400_000), days: 1 },
    );
    const expiredFile = join(base, 'expired.crt');
    writeFileSync(expiredFile, expired.cert);
    const expiredKey = join(base, 'expired.key');
    writeFileSync(expiredKey, expired.key, { mode: 0o600 });
    expect(() => loadCredentials({ ca: dir.caCert, cert: expiredFile, key: expiredKey })).toThrow(
      /expired on/,
    );
    expect(() => loadCredentials({ ca: dir.caCert, cert: files.cert, key: expiredKey })).toThrow(
      /does not belong to/,
    );
    expect(() => loadCredentials({ ...files, cert: join(base, 'missing.crt') })).toThrow(
      /does not exist/,
    );
  });
});
