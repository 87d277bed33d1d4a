/**
 * Naming's opt-in failure-detector group: service instances and name-based
 * clients that ask for it each run a SWIM member ({@link Detector}) over a
 * TCP transport of their own, so a client learns that an instance crashed
 * (`failed`) or left (`left`) in a few protocol periods, while the
 * instance's registry entry lives on until its lease expires.
 *
 * ```ts
 * const member = await startDetectorMember({ host: '127.0.0.1', clusterId: 'cohort-examples',
 *   swim: { periodMs: 200 } });
 * member.ref;                 // { id, address }: what an instance puts in its registry entry
 * member.detector.on('failed', (e) => ...);
 * await member.close();       // leaves the group (gossips `left`), then closes the transport
 * ```
 *
 * The group is separate from the cluster nodes' detector group: nodes run
 * theirs over their RPC port, open to member nodes only, and instances and
 * clients are not cluster members. This group's transport takes the same
 * cluster id and TLS options naming uses to reach instances, and admits
 * dialers missing from its address book (members are learnt from the
 * registry and from gossip), as an RPC port admits users.
 *
 * A member starts at an incarnation taken from the wall clock (ms), so a
 * restarted instance's `alive` outranks what the group said of its previous
 * life (SWIM §4.2: only a higher incarnation brings a failed member back), as
 * long as that life refuted fewer suspicions than the milliseconds between them.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { Detector, swimCodec } from '../detector/detector.js';
import type { MemberAddress } from '../detector/core/swim.js';
import type { SwimMessage } from '../detector/core/messages.js';
import type { Clock } from '../lib/clock.js';
import { RealClock } from '../lib/clock.js';
import { clusterId, nodeId } from '../lib/ids.js';
import { limits } from '../lib/limits.js';
import { defaultClusterId } from '../rpc/tcp-endpoints.js';
import { TcpTransport } from '../transport/tcp-transport.js';
import type { TcpTlsOptions } from '../transport/tcp-transport.js';
import { claimForCertificate } from '../trust/identity.js';
import type { DetectorRef } from './core/registry.js';

/** Settings of a naming detector member (the SWIM core's defaults apply to what is left out). */
export interface NamingDetectorOptions {
  /** The host to listen on and to advertise (default: the instance's address host; clients 127.0.0.1). */
  readonly host?: string;
  /** The port to listen on (default 0: any free port). */
  readonly port?: number;
  /** SWIM protocol period in ms (default limits.swimPeriodMsDefault). */
  readonly periodMs?: number;
  /** Direct ping timeout in ms (default limits.swimPingTimeoutMsDefault). */
  readonly pingTimeoutMs?: number;
  /** α of the suspicion timeout (default limits.swimSuspicionMultDefault). */
  readonly suspicionMult?: number;
}

/** A running member of naming's detector group. */
export interface DetectorMember {
  /** Its id and address, as registry entries carry them. */
  readonly ref: DetectorRef;
  readonly detector: Detector;
  readonly transport: TcpTransport<SwimMessage>;
  /** Leaves the group (unless `leave: false`) and closes the transport. */
  close(options?: { leave?: boolean }): Promise<void>;
}

/** Starts a member (see the file comment). */
export async function startDetectorMember(o: {
  readonly swim?: NamingDetectorOptions;
  /** Default host when `swim.host` is not given. */
  readonly host?: string;
  /** The member id without TLS (default `naming-<random>`); with TLS, the certificate's claim. */
  readonly id?: string;
  readonly clusterId?: string;
  readonly tls?: TcpTlsOptions;
  readonly seeds?: readonly MemberAddress[];
  readonly logger?: Logger;
  readonly clock?: Clock;
}): Promise<DetectorMember> {
  const swim = o.swim ?? {};
  const host = swim.host ?? o.host ?? '127.0.0.1';
  const self =
    o.tls !== undefined
      ? claimForCertificate(o.tls.cert)
      : nodeId(o.id ?? `naming-${randomBytes(6).toString('hex')}`);
  const clock = o.clock ?? new RealClock();
  const transport = await TcpTransport.start<SwimMessage>({
    self,
    clusterId: clusterId(o.clusterId ?? defaultClusterId),
    codec: swimCodec(),
    listen: { host, port: swim.port ?? 0 },
    peers: {},
    acceptUnknownPeers: true,
    clock,
    ...(o.logger === undefined ? {} : { logger: o.logger }),
    ...(o.tls === undefined ? {} : { tls: o.tls }),
  });
  const port = transport.address?.port ?? swim.port ?? 0;
  const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  const detector = Detector.overTransport(transport, {
    self,
    address,
    clock,
    // Wall-clock ms (the injected clock is monotonic from process start).
    incarnation: Date.now() % limits.swimIncarnationMax,
    ...(o.seeds === undefined ? {} : { seeds: o.seeds }),
    ...(swim.periodMs === undefined ? {} : { periodMs: swim.periodMs }),
    ...(swim.pingTimeoutMs === undefined ? {} : { pingTimeoutMs: swim.pingTimeoutMs }),
    ...(swim.suspicionMult === undefined ? {} : { suspicionMult: swim.suspicionMult }),
    ...(o.logger === undefined ? {} : { logger: o.logger }),
  });
  let closed = false;
  return {
    ref: { id: self, address },
    detector,
    transport,
    async close(c = {}) {
      if (closed) return;
      closed = true;
      detector.close(c.leave === false ? { leave: false } : {});
      // Let the `left` gossip go out before the links close.
      if (c.leave !== false) await new Promise<void>((r) => clock.setTimer(50, r));
      await transport.close();
    },
  };
}
