/**
 * A join of two inputs on a key (a reduce-side join): orders with the user
 * who placed them. Files whose name starts with `users` hold `id,name,country`
 * lines; every other file holds orders, `orderId,userId,amount`.
 *
 * ```sh
 * npx cohort mr run examples/mapreduce/join.ts --input 'data/users*.csv' --input 'data/orders*.csv' --output out/joined
 * # out/joined/part-r-00000: `userId TAB orderId,name,country,amount`, one line per order of a known user
 * ```
 *
 * The map tags each record with its side (`['u', name, country]` or
 * `['o', orderId, amount]`) under the user id; reduce pairs a user's record
 * with each of the user's orders, in input order. No combiner: every order
 * is needed as it is.
 */
import { basename } from 'node:path';
import { defineJob } from 'cohort/mapreduce';

type Tagged = [side: 'u' | 'o', a: string, b: string];

let lastFile = '';
let lastIsUsers = false;

/** The join job. */
export default defineJob<Tagged, string>({
  map(_offset, line, emit, ctx) {
    if (ctx.file !== lastFile) {
      lastFile = ctx.file;
      lastIsUsers = basename(ctx.file).startsWith('users');
    }
    const c1 = line.indexOf(',');
    const c2 = line.indexOf(',', c1 + 1);
    if (c1 < 0 || c2 < 0) throw new Error(`not a record: ${line.slice(0, 40)}`);
    if (lastIsUsers) {
      emit(line.slice(0, c1), ['u', line.slice(c1 + 1, c2), line.slice(c2 + 1)]);
    } else {
      emit(line.slice(c1 + 1, c2), ['o', line.slice(0, c1), line.slice(c2 + 1)]);
    }
  },
  reduce(userId, records, emit) {
    const user = records.find((r) => r[0] === 'u');
    if (user === undefined) return;
    for (const r of records) {
      if (r[0] === 'o') emit(userId, `${r[1]},${user[1]},${user[2]},${r[2]}`);
    }
  },
  defaults: { reducers: 2 },
});
