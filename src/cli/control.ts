/** `weft control`: runs the control plane in the foreground until SIGTERM/SIGINT. */
import type { Command } from 'commander';
import {
  CONTROL_ENV_PREFIX,
  CONTROL_SETTINGS,
  type ControlPlaneAddresses,
  loadControlConfig,
  startControlPlane,
} from '../control/control-plane.js';
import { envWithFlags, settingOptions } from '../lib/config.js';
import { newLogger } from '../lib/log.js';

export function registerControlCommand(program: Command): void {
  const cmd = program
    .command('control')
    .description('run the control plane (settings from WEFT_CONTROL_* or the flags below)');
  for (const [flags, doc] of settingOptions(CONTROL_SETTINGS, CONTROL_ENV_PREFIX)) cmd.option(flags, doc);
  cmd.action(async (opts: Record<string, string>) => {
    process.exitCode = await runControl(opts);
  });
}

/**
 * Runs the control plane until SIGTERM/SIGINT. `announce` (used by `weft up`) prints where it
 * listens for a person; the JSON "control plane ready" log line is written either way.
 */
export async function runControl(
  opts: Record<string, unknown>,
  announce?: (addresses: ControlPlaneAddresses, state: string) => void,
): Promise<number> {
  const config = loadControlConfig(envWithFlags(CONTROL_SETTINGS, CONTROL_ENV_PREFIX, opts, process.env));
  const log = newLogger(config.logLevel, { component: 'control' });
  const control = await startControlPlane(config, log);
  log.info('control plane ready', { ...control.addresses, state: config.state });
  announce?.(control.addresses, config.state);
  await new Promise<void>((resolve) => {
    const onSignal = (signal: string) => {
      log.info('signal received', { signal });
      resolve();
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
  await control.shutdown();
  return 0;
}
