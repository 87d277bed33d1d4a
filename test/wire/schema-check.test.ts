/**
 * The interpreted schema check (what a process without code generation
 * uses, src/wire/schema-check.ts) against TypeBox's compiled one: the same
 * verdict and the same first error path on valid and invalid values of the
 * project's own message schemas and of random JSON-like values.
 */
import fc from 'fast-check';
import { Type } from '@sinclair/typebox';
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { describe, expect, it } from 'vitest';
import {
  codeGenerationAllowed,
  compileCheck,
  interpretedCheck,
} from '../../src/wire/schema-check.js';
import { message } from '../../src/wire/codec.js';

const schemas: Record<string, TSchema> = {
  object: Type.Object(
    { a: Type.Integer({ minimum: 0 }), b: Type.Optional(Type.String({ maxLength: 3 })) },
    { additionalProperties: false },
  ),
  array: Type.Array(Type.Union([Type.Literal('x'), Type.Number()]), { maxItems: 4 }),
  message: message('Put', {
    key: Type.String({ minLength: 1 }),
    value: Type.Uint8Array({ maxByteLength: 8 }),
  }),
};

function verdicts(schema: TSchema, value: unknown): [boolean, string | undefined][] {
  return [TypeCompiler.Compile(schema), interpretedCheck(schema)].map((c) => [
    c.Check(value),
    c.Errors(value).First()?.path,
  ]);
}

describe('schema checks without generated code', () => {
  it('this test process may generate code (compileCheck compiles here)', () => {
    expect(codeGenerationAllowed).toBe(true);
    expect(compileCheck(schemas.object!).Check({ a: 1 })).toBe(true);
  });

  it('agree with the compiled checks on chosen values', () => {
    const cases: [string, unknown][] = [
      ['object', { a: 1 }],
      ['object', { a: -1 }],
      ['object', { a: 1, b: 'long' }],
      ['object', { a: 1, c: 2 }],
      ['array', ['x', 1, 2]],
      ['array', ['y']],
      ['array', [1, 2, 3, 4, 5]],
      ['message', { type: 'Put', key: 'k', value: new Uint8Array(2) }],
      ['message', { type: 'Put', key: '', value: new Uint8Array(2) }],
      ['message', { type: 'Put', key: 'k', value: new Uint8Array(9) }],
      ['message', { type: 'Get', key: 'k', value: new Uint8Array(2) }],
    ];
    for (const [name, value] of cases) {
      const [compiled, interpreted] = verdicts(schemas[name]!, value);
      expect(interpreted, `${name} ${JSON.stringify(value)}`).toEqual(compiled);
    }
  });

  it('agree with the compiled checks on random values', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...Object.keys(schemas)),
        fc.jsonValue({ maxDepth: 2 }),
        (name, value) => {
          const [compiled, interpreted] = verdicts(schemas[name]!, value);
          expect(interpreted).toEqual(compiled);
        },
      ),
    );
  });
});
