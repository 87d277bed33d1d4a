/**
 * The `Detector` RPC service: how a node's failure detector reaches the
 * others over the node's RPC port (mutual TLS on a secure cluster; member
 * nodes only, by the access policy's default rule). One call carries one SWIM
 * message; the reply carries nothing (the protocol's answers are messages of
 * their own), and a lost or failed call is a lost message, as SWIM expects.
 *
 * ```ts
 * rpc.serve(DetectorService, { deliver: ({ message }, ctx) => { detector.deliver(ctx.peer, message); return {}; } });
 * void rpc.client(DetectorService, peer).deliver({ message }, { timeoutMs: 1_000 }).catch(() => {});
 * ```
 */
import { Type } from '@sinclair/typebox';
import { defineService, unary } from '../rpc/service.js';

/** The detector's one method; the message is validated by the core (validateSwimMessage). */
export const DetectorService = defineService('Detector', {
  deliver: unary(Type.Object({ message: Type.Unknown() }), Type.Object({}), {
    description: 'one SWIM failure-detector message from a member node',
  }),
});
