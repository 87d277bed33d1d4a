/** cohort's version, read from package.json at run time. */
import { readFileSync } from 'node:fs';

function readVersion(): string {
  const url = new URL('../package.json', import.meta.url);
  const pkg = JSON.parse(readFileSync(url, 'utf8')) as { version?: unknown };
  return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
}

/** The package version (e.g. "0.1.0"). */
export const version: string = readVersion();
