#!/usr/bin/env node
// The cohort CLI entry point. Runs the compiled CLI from dist/ (built by
// `npm ci` through the package's `prepare` script, or by `npm run build`).
import { main } from '../dist/cli/main.js';

main(process.argv).catch((err) => {
  process.stderr.write(`error: INTERNAL: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
