/**
 * Options read from flags, then `COHORT_*` environment variables, then a JSON
 * config file, then defaults (DESIGN.md, Interfaces for people), each declared
 * once: an entry gives the flag's placeholder and help, a TypeBox schema of
 * the value and the default (none: required), and, for structured values, a
 * parser. The entry's name is the config-file field (`tickMs`), its flag the
 * name in kebab case (`--tick-ms`), its variable the name in upper snake case
 * after `COHORT_` (`COHORT_TICK_MS`). config.ts holds the node's table.
 *
 * ```ts
 * const table = { tickMs: option({ arg: '<n>', help: 'ms per tick', schema: Type.Integer({ minimum: 1 }), default: 20 }) };
 * const { values, sourceOf } = resolveOptions(table, { flags, env: process.env });
 * values.tickMs;                        // number, from --tick-ms, COHORT_TICK_MS, the file or 20
 * for (const o of optionFlags(table)) command.option(o.flags, o.help); // commander
 * ```
 *
 * Flags and variables are text: an integer or boolean option reads decimal
 * digits or true/false (1/0, yes/no) from them, and from the file, where JSON
 * numbers and booleans work too, before the schema checks the value. A bad
 * value is an INVALID_ARGUMENT CohortError, `field (source): expected ...,
 * got ...`, with `details.field` and `details.source` for scripts.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { KindGuard, Type } from '@sinclair/typebox';
import type { Static, TLiteral, TObject, TOptional, TSchema, TUnion } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { CohortError } from '../lib/errors.js';

/** Where a value came from, and what a parser needs to turn it into the config's. */
export interface ParseContext {
  /** The field (config-file name), for errors. */
  readonly field: string;
  /** `--tick-ms`, `COHORT_TICK_MS`, `config file <path>` or `default`. */
  readonly source: string;
  /** Base directory of relative paths. */
  readonly cwd: string;
}

/** One option (see the file comment). */
export interface NodeOption<S extends TSchema, T> {
  /** The flag's placeholder (`<n>`); empty for a boolean flag that takes none. */
  readonly arg: string;
  /** The flag's help (the variable and the default are added to it). */
  readonly help: string;
  /** The value as flags, env and the file give it (numbers and booleans read from text first). */
  readonly schema: S;
  /** The default (a function: computed at start); none: the option is required. */
  readonly default?: Static<S> | (() => Static<S>);
  /** How `--help` shows a computed default. */
  readonly defaultHelp?: string;
  /** Turns the checked value into the config's (throws {@link bad} on a bad one). */
  parse?(value: Static<S>, ctx: ParseContext): T;
}

/** Declares one option; `T` is what the config holds (the schema's type unless it parses). */
export function option<S extends TSchema, T = Static<S>>(o: NodeOption<S, T>): NodeOption<S, T> {
  return o;
}

/** A union of string literals (TypeBox), for options with a fixed set of values. */
export function oneOf<const V extends readonly string[]>(values: V): TUnion<TLiteral<V[number]>[]> {
  return Type.Union(values.map((v) => Type.Literal(v)));
}

/** What an option's entry makes of its value. */
export type OptionValue<O> = O extends NodeOption<TSchema, infer T> ? T : never;

/** A table of options. */
export type OptionTable = Readonly<Record<string, NodeOption<TSchema, unknown>>>;

/** The values a table's options resolve to. */
export type OptionValues<O extends OptionTable> = { readonly [K in keyof O]: OptionValue<O[K]> };

/** The config file's name in flags and env. */
const configFlag = '--config';
const configEnv = 'COHORT_CONFIG';

/** An option's flag: `tickMs` → `--tick-ms`. */
export function flagOf(field: string): string {
  return `--${field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** An option's environment variable: `tickMs` → `COHORT_TICK_MS`. */
export function envOf(field: string): string {
  return `COHORT_${field.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

/** Where options come from (`F`: the option names). */
export interface ConfigSources<F extends string = string> {
  /** Parsed flags (commander's camelCase names); `config` names the file. */
  readonly flags: Partial<Record<F, unknown>> & { readonly config?: string };
  /** The environment (COHORT_* variables are read). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Base directory for relative paths (default: the working directory). */
  readonly cwd?: string;
}

/** The INVALID_ARGUMENT error for a bad value: `field (source): message`, details.field for scripts. */
export function bad(field: string, source: string, message: string, value?: unknown): CohortError {
  return new CohortError('INVALID_ARGUMENT', `${field} (${source}): ${message}`, {
    details: { field, source, ...(value === undefined ? {} : { value }) },
  });
}

/** Commander's flag text and help for each option of `table`. */
export function optionFlags(table: OptionTable): { field: string; flags: string; help: string }[] {
  return Object.entries(table).map(([field, o]) => {
    const d: unknown = o.default;
    const text =
      typeof d === 'string' ? d : typeof d === 'function' ? 'computed' : JSON.stringify(d);
    const shown = d === undefined ? 'required' : `default ${o.defaultHelp ?? text}`;
    return {
      field,
      flags: o.arg === '' ? flagOf(field) : `${flagOf(field)} ${o.arg}`,
      help: `${o.help} (${envOf(field)}; ${shown})`,
    };
  });
}

/** The config-file flag (`--config <file>`, or COHORT_CONFIG). */
export const configFileFlag = {
  flags: `${configFlag} <file>`,
  help: `JSON config file with the same fields in camelCase (${configEnv})`,
};

/** The JSON Schema of a config file holding `table`'s options (every field optional, no others). */
export function configFileSchema<O extends OptionTable>(
  table: O,
): TObject<{ [K in keyof O]: TOptional<O[K]['schema']> }> {
  const properties = Object.fromEntries(
    Object.entries(table).map(([f, o]) => [f, Type.Optional(o.schema)]),
  ) as { [K in keyof O]: TOptional<O[K]['schema']> };
  return Type.Object(properties, { additionalProperties: false });
}

/**
 * Reads text as the schema's kind: decimal digits as an integer, true/false
 * (1/0, yes/no) as a boolean; anything else is left for the schema to refuse.
 */
function fromText(schema: TSchema, value: unknown): unknown {
  if (typeof value !== 'string') return value;
  const t = value.trim();
  if ((KindGuard.IsInteger(schema) || KindGuard.IsNumber(schema)) && /^-?\d+$/.test(t)) {
    return Number(t);
  }
  if (KindGuard.IsBoolean(schema)) {
    if (/^(true|1|yes)$/i.test(t)) return true;
    if (/^(false|0|no)$/i.test(t)) return false;
  }
  return value;
}

/** "a, b or c" for a short list, "one of a, b, ..." for a long one. */
function choice(values: readonly string[]): string {
  if (values.length > 3) return `one of ${values.join(', ')}`;
  return values.length <= 1
    ? (values[0] ?? '')
    : `${values.slice(0, -1).join(', ')} or ${values[values.length - 1] ?? ''}`;
}

/** What a schema accepts, in words, for the error when a value does not fit it. */
function expected(schema: TSchema): string {
  if (typeof schema.description === 'string') return schema.description;
  if (KindGuard.IsInteger(schema)) {
    return `an integer ${String(schema.minimum ?? '')}..${String(schema.maximum ?? '')}`;
  }
  if (KindGuard.IsBoolean(schema)) return 'true or false';
  if (KindGuard.IsString(schema)) return 'a non-empty string';
  if (KindGuard.IsUnion(schema) && schema.anyOf.every((s) => KindGuard.IsLiteral(s))) {
    return choice(schema.anyOf.map((s) => String((s as { const: unknown }).const)));
  }
  return 'a valid value';
}

function readConfigFile(
  path: string,
  source: string,
  known: readonly string[],
): Readonly<Record<string, unknown>> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw bad('config', source, `cannot read ${path}: ${(e as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw bad('config', source, `${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw bad('config', source, `${path} must hold a JSON object`);
  }
  for (const key of Object.keys(parsed)) {
    if (!known.includes(key)) {
      throw bad(key, `config file ${path}`, `unknown field (known: ${known.join(', ')})`);
    }
  }
  return parsed as Readonly<Record<string, unknown>>;
}

/** Reads the config file a flag or COHORT_CONFIG names; `known` are the fields it may hold. */
function configFile(
  sources: ConfigSources<string>,
  known: readonly string[],
): { file: Readonly<Record<string, unknown>>; source: string } {
  const env = sources.env ?? {};
  const fromFlag = sources.flags.config;
  const path = fromFlag ?? env[configEnv];
  if (path === undefined || path === '') return { file: {}, source: '' };
  const full = resolve(sources.cwd ?? process.cwd(), path);
  return {
    file: readConfigFile(full, fromFlag !== undefined ? configFlag : configEnv, known),
    source: `config file ${path}`,
  };
}

/**
 * Resolves every option of `table`: the first of flag, env, file and default
 * that gives a value, read from text if need be, checked against the option's
 * schema and parsed. Throws INVALID_ARGUMENT naming the field and its source.
 * Returns the values and where each came from.
 */
export function resolveOptions<O extends OptionTable>(
  table: O,
  sources: ConfigSources<keyof O & string>,
): { values: OptionValues<O>; sourceOf: Readonly<Record<keyof O, string>> } {
  const env = sources.env ?? {};
  const cwd = sources.cwd ?? process.cwd();
  const names = Object.keys(table);
  const { file, source: fileSource } = configFile(sources, names);
  const flags = sources.flags as Readonly<Record<string, unknown>>;
  const values: Record<string, unknown> = {};
  const sourceOf: Record<string, string> = {};
  for (const field of names) {
    const o = table[field];
    if (o === undefined) continue;
    let value: unknown;
    let source: string;
    if (flags[field] !== undefined) {
      [value, source] = [flags[field], flagOf(field)];
    } else if (env[envOf(field)] !== undefined && env[envOf(field)] !== '') {
      [value, source] = [env[envOf(field)], envOf(field)];
    } else if (file[field] !== undefined) {
      [value, source] = [file[field], fileSource];
    } else if (o.default !== undefined) {
      const d: unknown = o.default;
      [value, source] = [typeof d === 'function' ? (d as () => unknown)() : d, 'default'];
    } else {
      throw bad(
        field,
        'missing',
        `required: pass ${flagOf(field)}, set ${envOf(field)}, or put "${field}" in the config file`,
      );
    }
    const read = fromText(o.schema, value);
    if (!Value.Check(o.schema, read)) {
      throw bad(
        field,
        source,
        `expected ${expected(o.schema)}, got ${JSON.stringify(value)}`,
        value,
      );
    }
    values[field] = o.parse === undefined ? read : o.parse(read, { field, source, cwd });
    sourceOf[field] = source;
  }
  return { values: values as OptionValues<O>, sourceOf: sourceOf as Record<keyof O, string> };
}
