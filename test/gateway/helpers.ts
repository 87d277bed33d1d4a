/** Helpers of the gateway tests. */
import { pino } from 'pino';
import type { Logger } from 'pino';

/** A logger for tests: silent unless COHORT_TEST_LOG is set (e.g. to 'debug'). */
export function quietLogger(): Logger {
  return pino({ level: process.env.COHORT_TEST_LOG ?? 'silent' }, pino.destination(2));
}
