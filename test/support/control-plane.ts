/** A real control plane in the test process (our own component, real sockets on port 0). */
import {
  loadControlConfig,
  type RunningControlPlane,
  startControlPlane,
} from '../../src/control/control-plane.js';
import type { Logger } from '../../src/lib/log.js';

/**
 * Starts the control plane on `stateDir` with its Destination service at `destinationAddr`
 * (default any free port), its API on a free port, and any other WEFT_CONTROL_* settings.
 */
export function startTestControlPlane(opts: {
  stateDir: string;
  log: Logger;
  destinationAddr?: string;
  env?: Record<string, string>;
}): Promise<RunningControlPlane> {
  return startControlPlane(
    loadControlConfig({
      WEFT_CONTROL_STATE: opts.stateDir,
      WEFT_CONTROL_DESTINATION_ADDR: opts.destinationAddr ?? '127.0.0.1:0',
      WEFT_CONTROL_API_ADDR: '127.0.0.1:0',
      WEFT_CONTROL_IDENTITY_ADDR: '127.0.0.1:0',
      ...opts.env,
    }),
    opts.log,
  );
}
