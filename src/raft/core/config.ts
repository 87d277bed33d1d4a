/**
 * Cluster configurations: their encoding inside `config` log entries, and the
 * majority arithmetic (votes won, index committed) over them.
 *
 * ```ts
 * const c: ClusterConfig = { voters: [a, b, c], learners: [] };
 * const entryData = encodeConfig(c);        // the `data` of a 'config' entry
 * decodeConfig(entryData);                  // back; throws SCHEMA_VIOLATION if malformed
 * voteResult(c, new Map([[a, true], [b, true]]));   // 'won'
 * committedIndex(c, (id) => matchOf(id));           // the quorum's match index
 * ```
 *
 * The core only ever proposes single-server changes (dissertation §4.1), so
 * `votersOutgoing` is never produced; the arithmetic here still honours it
 * (both majorities, Raft §6) so a joint configuration decodes and counts right.
 */
import { CohortError } from '../../lib/errors.js';
import type { LogIndex, NodeId } from '../../lib/ids.js';
import type { ClusterConfig } from './types.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Encodes `config` as the data of a `config` entry (UTF-8 JSON: small, readable in dumps). */
export function encodeConfig(config: ClusterConfig): Uint8Array {
  const plain: { voters: NodeId[]; learners: NodeId[]; votersOutgoing?: NodeId[] } = {
    voters: [...config.voters],
    learners: [...config.learners],
  };
  if (config.votersOutgoing !== undefined) plain.votersOutgoing = [...config.votersOutgoing];
  return encoder.encode(JSON.stringify(plain));
}

function idArray(v: unknown, field: string): NodeId[] {
  if (!Array.isArray(v)) {
    throw new CohortError('SCHEMA_VIOLATION', `config.${field} must be an array`);
  }
  const out: NodeId[] = [];
  const seen = new Set<string>();
  for (const x of v as unknown[]) {
    if (typeof x !== 'string' || x.length === 0 || x.length > 64 || seen.has(x)) {
      throw new CohortError('SCHEMA_VIOLATION', `config.${field} must hold distinct node ids`);
    }
    seen.add(x);
    out.push(x as NodeId);
  }
  return out;
}

/** Decodes the data of a `config` entry. Throws SCHEMA_VIOLATION if it is not a valid configuration. */
export function decodeConfig(data: Uint8Array): ClusterConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(data));
  } catch (err) {
    throw new CohortError('SCHEMA_VIOLATION', 'config entry is not valid JSON', { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null) {
    throw new CohortError('SCHEMA_VIOLATION', 'config entry is not an object');
  }
  const o = parsed as Record<string, unknown>;
  const voters = idArray(o['voters'], 'voters');
  const learners = idArray(o['learners'], 'learners');
  if (learners.some((l) => voters.includes(l))) {
    throw new CohortError('SCHEMA_VIOLATION', 'a node cannot be both voter and learner');
  }
  if (o['votersOutgoing'] !== undefined) {
    return { voters, learners, votersOutgoing: idArray(o['votersOutgoing'], 'votersOutgoing') };
  }
  return { voters, learners };
}

/** True if `id` votes in `config` (in either half of a joint configuration). */
export function isVoter(config: ClusterConfig, id: NodeId): boolean {
  return config.voters.includes(id) || (config.votersOutgoing?.includes(id) ?? false);
}

/** Every node that receives the log under `config`: voters (both halves) and learners. */
export function members(config: ClusterConfig): NodeId[] {
  const out = new Set<NodeId>(config.voters);
  for (const v of config.votersOutgoing ?? []) out.add(v);
  for (const l of config.learners) out.add(l);
  return [...out];
}

/** Votes needed for a majority of `n` voters (Raft §5.2). */
export function majority(n: number): number {
  return Math.floor(n / 2) + 1;
}

/** Outcome of an election tally. */
export type VoteResult = 'won' | 'lost' | 'pending';

function simpleVote(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  if (voters.length === 0) return 'won';
  let yes = 0;
  let no = 0;
  for (const v of voters) {
    const g = votes.get(v);
    if (g === true) yes++;
    else if (g === false) no++;
  }
  const q = majority(voters.length);
  if (yes >= q) return 'won';
  if (voters.length - no < q) return 'lost';
  return 'pending';
}

/** Raft §5.2 (and §6 for joint configurations): has a majority granted, refused, or not yet decided? */
export function voteResult(config: ClusterConfig, votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  const a = simpleVote(config.voters, votes);
  if (config.votersOutgoing === undefined) return a;
  const b = simpleVote(config.votersOutgoing, votes);
  if (a === 'lost' || b === 'lost') return 'lost';
  if (a === 'won' && b === 'won') return 'won';
  return 'pending';
}

const scratch: number[] = [];

function simpleCommitted(voters: readonly NodeId[], matchOf: (id: NodeId) => number): number {
  const n = voters.length;
  if (n === 0) return Number.MAX_SAFE_INTEGER;
  // Insertion sort, descending, into a reused array: n is small and this runs on every ack.
  scratch.length = n;
  for (let i = 0; i < n; i++) {
    const v = matchOf(voters[i] as NodeId);
    let j = i;
    while (j > 0 && (scratch[j - 1] as number) < v) {
      scratch[j] = scratch[j - 1] as number;
      j--;
    }
    scratch[j] = v;
  }
  return scratch[majority(n) - 1] as number;
}

/**
 * Raft §5.3: the highest index stored by a majority of voters, given each
 * voter's match index (joint configurations: the lower of both majorities).
 * Whether that index may be *committed* is the caller's §5.4.2 check.
 */
export function committedIndex(config: ClusterConfig, matchOf: (id: NodeId) => number): LogIndex {
  let c = simpleCommitted(config.voters, matchOf);
  if (config.votersOutgoing !== undefined) {
    c = Math.min(c, simpleCommitted(config.votersOutgoing, matchOf));
  }
  return c as LogIndex;
}

/** True if the nodes in `active` form a majority of `config` (check-quorum, lease, read confirmation). */
export function hasQuorum(config: ClusterConfig, active: (id: NodeId) => boolean): boolean {
  const ok = (voters: readonly NodeId[]): boolean =>
    voters.length === 0 || voters.filter(active).length >= majority(voters.length);
  return ok(config.voters) && (config.votersOutgoing === undefined || ok(config.votersOutgoing));
}

/** Renders a configuration compactly for status dumps: `voters=[a,b] learners=[c]`. */
export function formatConfig(config: ClusterConfig): string {
  let s = `voters=[${config.voters.join(',')}] learners=[${config.learners.join(',')}]`;
  if (config.votersOutgoing !== undefined) s += ` outgoing=[${config.votersOutgoing.join(',')}]`;
  return s;
}
