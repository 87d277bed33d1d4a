/**
 * Compile-time checks of the typed stub and skeleton: `npm run typecheck`
 * fails if a `@ts-expect-error` line below stops being an error (so a wrong
 * handler or a wrong call really is refused by the compiler).
 */
import { Type } from '@sinclair/typebox';
import { describe, expectTypeOf, it } from 'vitest';
import type { ServerStream } from '../../src/rpc/service.js';
import { defineService, serverStream, unary } from '../../src/rpc/service.js';
import type { Client, Handlers } from '../../src/rpc/service.js';

const Calc = defineService('Calc', {
  add: unary(
    Type.Object({ a: Type.Number(), b: Type.Number() }),
    Type.Object({ sum: Type.Number() }),
  ),
  ticks: serverStream(Type.Object({ n: Type.Integer() }), Type.Object({ t: Type.Integer() })),
});

describe('typed stubs and skeletons', () => {
  it('the client stub is typed from the definition', () => {
    expectTypeOf<Client<typeof Calc>['add']>()
      .parameter(0)
      .toEqualTypeOf<{ a: number; b: number }>();
    expectTypeOf<Client<typeof Calc>['add']>().returns.toEqualTypeOf<Promise<{ sum: number }>>();
    expectTypeOf<Client<typeof Calc>['ticks']>().returns.toEqualTypeOf<
      ServerStream<{ t: number }>
    >();
    const call = (c: Client<typeof Calc>): void => {
      // @ts-expect-error a string is not a number
      void c.add({ a: 'one', b: 2 });
      // @ts-expect-error missing field b
      void c.add({ a: 1 });
      // @ts-expect-error no such method
      // eslint-disable-next-line @typescript-eslint/no-unsafe-call
      void c.sub({ a: 1, b: 2 });
    };
    void call;
  });

  it('the compiler checks every handler', () => {
    const good: Handlers<typeof Calc> = {
      add: ({ a, b }) => ({ sum: a + b }),
      async *ticks({ n }) {
        for (let t = 0; t < n; t++) yield await Promise.resolve({ t });
      },
    };
    // @ts-expect-error a handler is missing
    const missing: Handlers<typeof Calc> = { add: ({ a, b }) => ({ sum: a + b }) };
    const wrong: Handlers<typeof Calc> = {
      // @ts-expect-error wrong response shape
      add: ({ a, b }) => ({ total: a + b }),
      ticks: good.ticks,
    };
    void missing;
    void wrong;
    expectTypeOf(Calc.name).toEqualTypeOf<'Calc'>();
  });
});
