/**
 * The `Node` RPC service every node process serves on its RPC port: what
 * `cohort up`'s status line and `cohort status` read.
 *
 * ```ts
 * const client = await startTcpClient({ server: { id: 'n1', host, port }, clusterId: 'cohort-local' });
 * const s = await client.client(NodeService, client.serverId).status({}, { timeoutMs: 500 });
 * // { id: 'n1', role: 'leader', term: 3, leader: 'n1', commitIndex: 7, appliedIndex: 7, ... }
 * ```
 */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { defineService, unary } from '../rpc/service.js';

/** The answer of `Node.status`: one node's view of the cluster. */
export const NodeStatusSchema = Type.Object({
  id: Type.String(),
  clusterId: Type.String(),
  /** follower | candidate | leader | learner (as the Raft core reports it). */
  role: Type.String(),
  term: Type.Integer({ minimum: 0 }),
  /** The leader this node knows of, or null. */
  leader: Type.Union([Type.String(), Type.Null()]),
  commitIndex: Type.Integer({ minimum: 0 }),
  appliedIndex: Type.Integer({ minimum: 0 }),
  lastIndex: Type.Integer({ minimum: 0 }),
  snapshotIndex: Type.Integer({ minimum: 0 }),
  /** Voters of the current configuration. */
  members: Type.Array(Type.String()),
  learners: Type.Array(Type.String()),
  /** The KV store's revision on this node (local, maybe stale). */
  revision: Type.Integer({ minimum: 0 }),
  /** The KV store's size as its quota counts it (keys, values and overhead of every version kept). */
  kvBytes: Type.Optional(Type.Integer({ minimum: 0 })),
  /** Raised alarms: `NOSPACE` while the KV store refuses writes for its quota. */
  alarms: Type.Optional(Type.Array(Type.String())),
  /** The RaftNode lifecycle state (running, closing, closed, failed). */
  state: Type.String(),
  /** The cohort version the node runs. */
  version: Type.Optional(Type.String()),
  /** The node's data dir (absolute): tells a node of this cluster from one of another on the same port. */
  dataDir: Type.Optional(Type.String()),
  pid: Type.Integer(),
  uptimeMs: Type.Integer({ minimum: 0 }),
  /** The failure detector's view of the other nodes (SWIM gossip state: alive, suspect, failed, left). */
  detector: Type.Optional(
    Type.Array(
      Type.Object({
        id: Type.String(),
        state: Type.String(),
        incarnation: Type.Integer({ minimum: 0 }),
      }),
    ),
  ),
});

/** One node's status. */
export type NodeStatus = Static<typeof NodeStatusSchema>;

/** The node's status and health methods. */
export const NodeService = defineService('Node', {
  status: unary(Type.Object({}), NodeStatusSchema, {
    idempotent: true,
    description: "this node's role, term, leader, indexes and members",
  }),
  health: unary(
    Type.Object({}),
    Type.Object({ ok: Type.Boolean(), id: Type.String(), state: Type.String() }),
    { idempotent: true, description: 'true while the Raft node runs' },
  ),
});
