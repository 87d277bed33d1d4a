/**
 * The node process's logger: pino, one JSON object per line with an ISO
 * timestamp and unique keys, or pino-pretty's readable lines on a terminal.
 *
 * ```ts
 * const root = nodeLogger({ level: 'info', format: 'auto' });   // pretty on a TTY, JSON in a file
 * root.child({ node: 'n1', component: 'kv' }).warn({ node: 'n2' }, 'slow');
 * // {"level":40,"time":"2025-01-01T12:00:00.000Z","pid":7,"node":"n1","component":"kv","peerNode":"n2","msg":"slow"}
 * ```
 *
 * **Unique keys.** pino writes a child's bindings and each line's own fields
 * side by side without merging them, so a line that names another node as
 * `node` on a logger bound to this node's `node` carried the key twice, and
 * parsers took the wrong one. In a node process every logger below the root
 * binds `node` exactly once (startNode, RaftNode, the transports: never
 * twice on one chain); a line's own `node` field is written as `peerNode`
 * instead (and so for the other bound keys, `pid` and `component`). Code
 * should name other nodes `peer`.
 *
 * **Pretty output** comes from pino-pretty (the pino project's formatter)
 * as a synchronous stream in this process: no worker thread, and lines are
 * never lost when the process exits.
 */
import { pino } from 'pino';
import type { DestinationStream, Logger } from 'pino';
import { PinoPretty } from 'pino-pretty';
import type { LogFormat, LogLevel } from './config.js';

/** Keys a node logger binds: a line's own field of that name is renamed (see the file comment). */
const boundKeys: Readonly<Record<string, string>> = {
  node: 'peerNode',
  pid: 'peerPid',
  component: 'subcomponent',
};

/** Renames a log line's own fields that would repeat a bound key. */
export function uniqueKeys(obj: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const [key, renamed] of Object.entries(boundKeys)) {
    if (!(key in obj)) continue;
    out ??= { ...obj };
    out[renamed] = out[key];
    delete out[key];
  }
  return out ?? obj;
}

/** Options of {@link nodeLogger}. */
export interface NodeLoggerOptions {
  readonly level: LogLevel;
  /** 'auto': pretty when the destination is a terminal, else JSON. */
  readonly format: LogFormat;
  /** Where to write (default: stdout, synchronously). */
  readonly destination?: DestinationStream & { isTTY?: boolean };
}

/** The node's root logger (see the file comment). */
export function nodeLogger(o: NodeLoggerOptions): Logger {
  const dest = o.destination ?? process.stdout;
  const pretty = o.format === 'pretty' || (o.format === 'auto' && dest.isTTY === true);
  const options = {
    level: o.level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { log: uniqueKeys },
  };
  if (!pretty) {
    return pino(options, o.destination ?? pino.destination({ fd: 1, sync: true }));
  }
  return pino(
    options,
    PinoPretty({
      colorize: dest.isTTY === true,
      destination: o.destination ?? 1,
      sync: true,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname',
    }),
  );
}
