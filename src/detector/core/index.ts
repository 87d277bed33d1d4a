/**
 * The SWIM failure detector core: {@link SwimCore} and its messages.
 *
 * ```ts
 * import { SwimCore, validateSwimMessage } from '../detector/core/index.js';
 * ```
 */
export { SwimCore } from './swim.js';
export type {
  MemberAddress,
  MemberEvent,
  MemberView,
  Outgoing,
  StepResult,
  SwimOptions,
  SwimOutput,
} from './swim.js';
export { validateSwimMessage } from './messages.js';
export type { MemberState, SwimMessage, Update } from './messages.js';
