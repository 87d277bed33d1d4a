/**
 * list-max, the classic first RPC: the server exposes `listMax(values)`, the
 * client calls it as if it were local.
 *
 * ```ts
 * server.serve(ListMax, listMaxHandlers);
 * const { max } = await client.client(ListMax, serverId).listMax({ values: [3, 9, 4] }); // 9
 * ```
 */
import { defineService, Type, unary } from 'cohort/rpc';
import type { Handlers } from 'cohort/rpc';

/** Most values one call may carry (bounds the request; more gets INVALID_ARGUMENT at /values). */
export const VALUES_MAX = 100_000;

/** The service definition. */
export const ListMax = defineService('ListMax', {
  listMax: unary(
    Type.Object({
      values: Type.Array(Type.Number(), { minItems: 1, maxItems: VALUES_MAX }),
    }),
    Type.Object({ max: Type.Number(), index: Type.Integer({ minimum: 0 }) }),
    { idempotent: true, description: 'the largest value and its first position' },
  ),
});

/** The server's implementation. */
export const listMaxHandlers: Handlers<typeof ListMax> = {
  listMax: ({ values }) => {
    let index = 0;
    for (let i = 1; i < values.length; i++) {
      if ((values[i] as number) > (values[index] as number)) index = i;
    }
    return { max: values[index] as number, index };
  },
};
