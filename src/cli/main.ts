/**
 * The `weft` command: one binary, one file per subcommand. Commands return exit codes or throw;
 * only this file maps errors to exit codes and calls process.exit.
 */
import { Command, CommanderError } from 'commander';
import { WeftError } from '../lib/errors.js';
import { registerApplyCommand } from './apply.js';
import { registerCheckCommand } from './check.js';
import { registerControlCommand } from './control.js';
import { registerDeleteCommand } from './delete.js';
import { registerDemoCommand } from './demo.js';
import { registerGetCommand } from './get.js';
import { registerIdentityCommand } from './identity.js';
import { registerPolicyCommand } from './policy.js';
import { registerProxyCommand } from './proxy.js';
import { registerRunCommand } from './run.js';
import { registerUpCommands } from './up.js';

const program = new Command('weft')
  .description('Weft: a lightweight, zero-config service mesh')
  .exitOverride();
registerProxyCommand(program);
registerDemoCommand(program);
registerControlCommand(program);
registerUpCommands(program);
registerRunCommand(program);
registerApplyCommand(program);
registerGetCommand(program);
registerDeleteCommand(program);
registerIdentityCommand(program);
registerPolicyCommand(program);
registerCheckCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  if (err instanceof WeftError && err.code === 'WEFT_ERR_CONFIG') {
    process.stderr.write(`weft: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`weft: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
}
