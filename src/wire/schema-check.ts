/**
 * Schema checks that work whether or not the process may generate code.
 *
 * TypeBox's `TypeCompiler` builds a specialised check function per schema
 * with `new Function`, and the compiled message codecs (schema-codec.ts) are
 * generated the same way. A process started with Node's
 * `--disallow-code-generation-from-strings` (a common hardening flag) refuses
 * both; cohort then checks with TypeBox's interpreter (`Value.Check`, the
 * same rules, slower) and leaves every message to the generic codec path.
 *
 * ```ts
 * const check = compileCheck(Type.Object({ a: Type.Number() }));
 * check.Check({ a: 1 });              // true
 * check.Errors({}).First()?.path;     // '/a'
 * ```
 */
import type { Static, TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Value } from '@sinclair/typebox/value';
import type { ValueErrorIterator } from '@sinclair/typebox/errors';

/** What a schema check offers: the verdict, and the errors for a message. */
export interface SchemaCheck<T extends TSchema = TSchema> {
  /** Whether `value` matches the schema. */
  Check(value: unknown): value is Static<T>;
  /** The schema violations of `value` (empty when it matches). */
  Errors(value: unknown): ValueErrorIterator;
}

function probeCodeGeneration(): boolean {
  try {
    // eslint-disable-next-line @typescript-eslint/no-implied-eval -- a constant body: the probe itself
    return (new Function('return 1') as () => number)() === 1;
  } catch {
    return false;
  }
}

/**
 * Whether this process may generate code from strings (false under
 * `--disallow-code-generation-from-strings`). Read once, at load.
 */
export const codeGenerationAllowed: boolean = probeCodeGeneration();

/**
 * A check for `schema`: TypeBox's compiled check when code generation is
 * allowed, its interpreter (`Value.Check`/`Value.Errors`) otherwise.
 */
export function compileCheck<T extends TSchema>(schema: T): SchemaCheck<T> {
  return codeGenerationAllowed ? TypeCompiler.Compile(schema) : interpretedCheck(schema);
}

/** A check for `schema` by TypeBox's interpreter (no generated code; what {@link compileCheck} falls back to). */
export function interpretedCheck<T extends TSchema>(schema: T): SchemaCheck<T> {
  return {
    Check: (value: unknown): value is Static<T> => Value.Check(schema, value),
    Errors: (value: unknown) => Value.Errors(schema, value),
  };
}
