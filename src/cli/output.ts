/**
 * How client commands print results, like etcdctl's `-w`: `simple` (values
 * as they are, raw bytes included, for scripts and pipes), `json` (one JSON
 * object per line), `table` (an ASCII table) and `fields` (`"Name" : value`
 * lines). `--hex` and `--base64` print keys and values encoded (every
 * format); in JSON without them, a key or value that is not valid UTF-8 is
 * given in base64 with `"keyEncoding"`/`"valueEncoding": "base64"` beside it.
 *
 * ```ts
 * const o = outputOf({ writeOut: 'table' });
 * printTable(['KEY', 'VALUE'], [['a', '1']]);
 * pairJson(kv, o.encoding);  // { key: 'a', value: '1', createRevision, modRevision, version, lease }
 * ```
 */
import { Option } from 'commander';
import type { Command } from 'commander';
import { CohortError } from '../lib/errors.js';
import type { KeyValue } from '../kv/core/types.js';
import { out, outBytes } from './run.js';

/** The output formats (`-w`). */
export const writeOuts = ['simple', 'json', 'table', 'fields'] as const;
/** An output format. */
export type WriteOut = (typeof writeOuts)[number];
/** How keys and values are printed. */
export type ByteEncoding = 'text' | 'hex' | 'base64';

/** The output flags (see {@link outputOptions}). */
export interface OutputFlags {
  readonly json?: boolean;
  readonly writeOut?: WriteOut;
  readonly hex?: boolean;
  readonly base64?: boolean;
}

/** A command's chosen output. */
export interface Output {
  readonly format: WriteOut;
  readonly encoding: ByteEncoding;
}

/** Adds `-w/--write-out`, `--json`, and (for commands that print keys or values) `--hex`, `--base64`. */
export function outputOptions(cmd: Command, bytes = true): Command {
  cmd.addOption(
    new Option('-w, --write-out <format>', 'output format')
      .choices([...writeOuts])
      .default('simple'),
  );
  cmd.option('--json', 'print as JSON (same as -w json)');
  if (bytes) {
    cmd.option('--hex', 'print keys and values as hex');
    cmd.option('--base64', 'print keys and values as base64');
  }
  return cmd;
}

/** The output the flags ask for. */
export function outputOf(flags: OutputFlags): Output {
  if (flags.hex === true && flags.base64 === true) {
    throw new CohortError('INVALID_ARGUMENT', '--hex and --base64 exclude each other');
  }
  return {
    format: flags.json === true ? 'json' : (flags.writeOut ?? 'simple'),
    encoding: flags.hex === true ? 'hex' : flags.base64 === true ? 'base64' : 'text',
  };
}

const strict = new TextDecoder('utf-8', { fatal: true });
const lenient = new TextDecoder();

/** `bytes` as text in `encoding` (text: UTF-8, invalid sequences replaced). */
export function bytesText(bytes: Uint8Array, encoding: ByteEncoding): string {
  switch (encoding) {
    case 'hex':
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
    case 'base64':
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
    case 'text':
      return lenient.decode(bytes);
  }
}

/** Prints `bytes` on a line of its own: raw in text encoding (binary stays binary), else encoded. */
export function printBytes(bytes: Uint8Array, encoding: ByteEncoding): void {
  if (encoding === 'text') outBytes(bytes);
  else out(bytesText(bytes, encoding));
}

/** Sets `field` of `o` to `bytes` for JSON: encoded, or UTF-8 text when valid, else base64 (marked). */
function setBytes(
  o: Record<string, unknown>,
  field: string,
  bytes: Uint8Array,
  encoding: ByteEncoding,
): void {
  if (encoding !== 'text') {
    o[field] = bytesText(bytes, encoding);
    return;
  }
  try {
    o[field] = strict.decode(bytes);
  } catch {
    o[field] = bytesText(bytes, 'base64');
    o[`${field}Encoding`] = 'base64';
  }
}

/** A key-value pair as a JSON object. */
export function pairJson(kv: KeyValue, encoding: ByteEncoding): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  setBytes(o, 'key', kv.key, encoding);
  setBytes(o, 'value', kv.value, encoding);
  o.createRevision = kv.createRevision;
  o.modRevision = kv.modRevision;
  o.version = kv.version;
  o.lease = kv.lease;
  return o;
}

/** A JSON line. */
export function printJson(value: unknown): void {
  out(JSON.stringify(value));
}

/** An ASCII table (etcdctl's look): a header row, then one row per entry. */
export function printTable(headers: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+`;
  const row = (cells: readonly string[]): string =>
    `|${widths.map((w, i) => ` ${(cells[i] ?? '').padEnd(w)} `).join('|')}|`;
  out(line);
  out(row(headers));
  out(line);
  for (const r of rows) out(row(r));
  out(line);
}

/** `"Name" : value` lines (etcdctl's `fields`). */
export function printFields(fields: readonly (readonly [string, unknown])[]): void {
  for (const [name, value] of fields) out(`"${name}" : ${JSON.stringify(value)}`);
}

/** The fields of a key-value pair. */
export function pairFields(kv: KeyValue, encoding: ByteEncoding): [string, unknown][] {
  return [
    ['Key', bytesText(kv.key, encoding)],
    ['CreateRevision', kv.createRevision],
    ['ModRevision', kv.modRevision],
    ['Version', kv.version],
    ['Value', bytesText(kv.value, encoding)],
    ['Lease', kv.lease],
  ];
}

/** A generic record in `fields` or `table` form (for results without key-values). */
export function printRecord(format: WriteOut, record: Record<string, unknown>): void {
  const entries = Object.entries(record).filter(([, v]) => v !== undefined);
  if (format === 'json') printJson(record);
  else if (format === 'table') {
    printTable(
      entries.map(([k]) => k.toUpperCase()),
      [entries.map(([, v]) => (typeof v === 'string' ? v : JSON.stringify(v)))],
    );
  } else {
    printFields(entries.map(([k, v]) => [k.charAt(0).toUpperCase() + k.slice(1), v] as const));
  }
}
