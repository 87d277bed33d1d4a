/**
 * `cohort certs`: the cluster's CA and the certificates it issues, under
 * `<dir>/certs` (`.cohort/certs` by default, where `cohort up` keeps them).
 * Every file is written with mode 0600.
 *
 * ```sh
 * cohort certs init --cluster-id prod            # certs/ca.crt + ca.key (never overwritten)
 * cohort certs issue node n4 [--days 365]        # certs/node-n4.crt + node-n4.key
 * cohort certs issue user alice                  # certs/user-alice.crt + user-alice.key
 * cohort certs show .cohort/certs/node-n1.crt    # identity, issuer, validity, fingerprint
 * ```
 *
 * Rotation: issue the node's certificate again (same name: the files are
 * replaced atomically) and send the node SIGHUP; new connections use the new
 * certificate, open ones keep theirs. Exit codes: 0 done, 1 refused.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { limits } from '../lib/limits.js';
import { CertDir } from '../trust/cert-dir.js';
import type { Subject } from '../trust/cert-dir.js';
import { describeIdentity, identityOfCertificate } from '../trust/identity.js';

interface CertFlags {
  dir: string;
  days?: number;
  clusterId?: string;
  json?: boolean;
}

function days(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > limits.certValidityDaysMax) {
    throw new InvalidArgumentError(`expected a number of days 1..${limits.certValidityDaysMax}`);
  }
  return n;
}

async function attempt(what: string, fn: () => Promise<void> | void): Promise<void> {
  try {
    await fn();
  } catch (e) {
    process.stderr.write(`cohort certs ${what}: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  }
}

function certDir(flags: CertFlags): CertDir {
  return new CertDir(join(flags.dir, 'certs'));
}

/** Adds `cohort certs` to `program`. */
export function registerCertsCommands(program: Command): void {
  const certs = program
    .command('certs')
    .description("the cluster's CA and the node and user certificates it issues (files 0600)");
  certs
    .command('init')
    .description('make a CA for a new cluster in <dir>/certs (refuses to replace one)')
    .option('--dir <dir>', 'the cluster dir; certificates go to <dir>/certs', '.cohort')
    .option('--cluster-id <id>', 'the cluster id written into every certificate', 'cohort-local')
    .option('--days <n>', 'validity of the CA in days (default 3650)', days)
    .action(async (flags: CertFlags) => {
      await attempt('init', async () => {
        const d = certDir(flags);
        await d.init(flags.clusterId ?? 'cohort-local', {
          ...(flags.days === undefined ? {} : { days: flags.days }),
        });
        process.stdout.write(
          `CA for cluster ${flags.clusterId ?? 'cohort-local'}: ${d.caCert} (key ${d.caKey}, keep it secret)\n`,
        );
      });
    });
  const issueCommand = certs
    .command('issue <kind> <name>')
    .description('issue a certificate for a node (kind node, name its id) or a user (kind user)')
    .option('--dir <dir>', 'the cluster dir; certificates are in <dir>/certs', '.cohort')
    .option('--days <n>', `validity in days (default ${limits.certValidityDaysDefault})`, days);
  issueCommand.action(async (kind: string, name: string, flags: CertFlags) => {
    await attempt('issue', async () => {
      if (kind !== 'node' && kind !== 'user') {
        throw new InvalidArgumentError(`kind must be node or user, not ${JSON.stringify(kind)}`);
      }
      const subject: Subject = kind === 'node' ? { kind, id: name } : { kind, name };
      const files = await certDir(flags).issue(subject, {
        ...(flags.days === undefined ? {} : { days: flags.days }),
      });
      process.stdout.write(
        `${kind} ${name}: certificate ${files.cert}, key ${files.key}, CA ${files.ca}\n`,
      );
      if (kind === 'node') {
        process.stdout.write(`  (a running node ${name} picks it up on SIGHUP: kill -HUP <pid>)\n`);
      } else {
        process.stdout.write(
          `  use it with --ca ${files.ca} --cert ${files.cert} --key ${files.key}; give the user roles with cohort user add ${name} && cohort user grant-role ${name} <role>\n`,
        );
      }
    });
  });
  certs
    .command('show <file>')
    .description('print the identity, issuer and validity of a certificate')
    .option('--json', 'print as JSON')
    .action(async (file: string, flags: CertFlags) => {
      await attempt('show', () => {
        const cert = new X509Certificate(readFileSync(file));
        const identity = identityOfCertificate(cert);
        const out = {
          identity: typeof identity === 'string' ? null : describeIdentity(identity),
          problem: typeof identity === 'string' ? identity : null,
          subject: cert.subject.replace(/\n/g, ', '),
          issuer: cert.issuer.replace(/\n/g, ', '),
          notBefore: new Date(cert.validFrom).toISOString(),
          notAfter: new Date(cert.validTo).toISOString(),
          ca: cert.ca,
          fingerprint: cert.fingerprint256,
        };
        if (flags.json === true) {
          process.stdout.write(`${JSON.stringify(out)}\n`);
          return;
        }
        for (const [k, v] of Object.entries(out)) {
          if (v !== null) process.stdout.write(`${k.padEnd(12)}${String(v)}\n`);
        }
      });
    });
}
