/**
 * Configuration changes: which configuration a single-server change
 * (dissertation §4.1) leads to, whether a configuration is well formed, and
 * whom a leader replicates to while a change is in flight. The encoding of
 * configurations and the majority arithmetic are in config.ts; the rules on
 * *when* a change may be proposed (one at a time, after the leader committed
 * in its term) are checked by `RaftCore.proposeConfigChange`.
 *
 * ```ts
 * const next = nextConfig(current, { type: 'addLearner', node: d }, (id) => caughtUp(id));
 * if (typeof next === 'string') return reject(next);   // INVALID_CHANGE, LEARNER_NOT_CAUGHT_UP
 * ```
 */
import { assert, assertNever } from '../../lib/assert.js';
import { CohortError } from '../../lib/errors.js';
import type { NodeId } from '../../lib/ids.js';
import type { ConfigChange, RejectReason } from './api.js';
import { members } from './config.js';
import type { ClusterConfig } from './types.js';

/**
 * Dissertation §4.1: the configuration `change` leads to from `current`, or
 * why it is refused. `caughtUp(learner)` says whether a learner holds the
 * leader's committed entries (a voter added behind would stall commitment).
 */
export function nextConfig(
  current: ClusterConfig,
  change: ConfigChange,
  caughtUp: (learner: NodeId) => boolean,
): ClusterConfig | RejectReason {
  assert(current.votersOutgoing === undefined, 'this core never enters joint consensus');
  const isMember = members(current).includes(change.node);
  let next: ClusterConfig;
  switch (change.type) {
    case 'addLearner':
      if (isMember) return 'INVALID_CHANGE';
      next = { voters: current.voters, learners: [...current.learners, change.node] };
      break;
    case 'promoteLearner':
      if (!current.learners.includes(change.node)) return 'INVALID_CHANGE';
      if (!caughtUp(change.node)) return 'LEARNER_NOT_CAUGHT_UP';
      next = {
        voters: [...current.voters, change.node],
        learners: current.learners.filter((l) => l !== change.node),
      };
      break;
    case 'removeNode':
      if (!isMember) return 'INVALID_CHANGE';
      next = {
        voters: current.voters.filter((v) => v !== change.node),
        learners: current.learners.filter((l) => l !== change.node),
      };
      if (next.voters.length === 0) return 'INVALID_CHANGE';
      break;
    default:
      assertNever(change);
  }
  // Postconditions: a well-formed configuration that differs from `current` in one node's role.
  assertWellFormed(next, 'proposed');
  assert(
    Math.abs(next.voters.length - current.voters.length) +
      Math.abs(next.learners.length - current.learners.length) ===
      (change.type === 'promoteLearner' ? 2 : 1),
    `a single-server change (${change.type} ${change.node}) must change one node's role`,
  );
  return next;
}

/**
 * Asserts that `config` is well formed: node ids non-empty, no id twice, no id
 * both voter and learner (decodeConfig and {@link checkBootstrap} refuse such
 * input, so a malformed configuration inside the core is a bug). Linear in
 * the (small) member count times itself; run when a configuration changes.
 */
export function assertWellFormed(config: ClusterConfig, what: string): void {
  const { voters, learners } = config;
  for (let i = 0; i < voters.length; i++) {
    const v = voters[i] as NodeId;
    if (v.length === 0 || voters.indexOf(v) !== i || learners.includes(v)) {
      assert(false, `${what} config: voter ${JSON.stringify(v)} empty, repeated or also a learner`);
    }
  }
  for (let i = 0; i < learners.length; i++) {
    const l = learners[i] as NodeId;
    if (l.length === 0 || learners.indexOf(l) !== i) {
      assert(false, `${what} config: learner ${JSON.stringify(l)} empty or repeated`);
    }
  }
}

/** Refuses a malformed bootstrap configuration with INVALID_ARGUMENT (ids must be distinct and non-empty). */
export function checkBootstrap(bootstrap: ClusterConfig): void {
  const all = [...bootstrap.voters, ...bootstrap.learners, ...(bootstrap.votersOutgoing ?? [])];
  if (
    new Set([...bootstrap.voters, ...bootstrap.learners]).size !==
      bootstrap.voters.length + bootstrap.learners.length ||
    all.some((x) => typeof x !== 'string' || x.length === 0)
  ) {
    throw new CohortError(
      'INVALID_ARGUMENT',
      'raft bootstrap config: node ids must be distinct and non-empty',
      {
        details: { voters: bootstrap.voters, learners: bootstrap.learners },
      },
    );
  }
}

/**
 * Whom a leader replicates to: every member of the current configuration and
 * of the committed one, except itself. A node being removed is still
 * replicated to until its removal commits, so it learns of it and does not
 * campaign (dissertation §4.2.2).
 */
export function replicationTargets(
  current: ClusterConfig,
  committed: ClusterConfig,
  self: NodeId,
): Set<NodeId> {
  const want = new Set(members(current));
  for (const id of members(committed)) want.add(id);
  want.delete(self);
  return want;
}
