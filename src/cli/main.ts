/**
 * The `weft` command: one binary, one file per subcommand. Commands return exit codes or throw;
 * only this file maps errors to exit codes and calls process.exit.
 *
 * Subcommands are loaded lazily: `weft proxy` imports the proxy and nothing of the control plane,
 * the store or the other commands (with them all loaded, a sidecar carried ~20 MiB more memory for
 * modules it never runs). Only help, an unknown command or none at all loads every command.
 */
import { Command, CommanderError } from 'commander';
import { WeftError } from '../lib/errors.js';

type Register = (program: Command) => void;

/** Every command, in the order `weft --help` lists them, and the module that registers it. */
const COMMANDS: Readonly<Record<string, () => Promise<Register>>> = {
  proxy: async () => (await import('./proxy.js')).registerProxyCommand,
  demo: async () => (await import('./demo.js')).registerDemoCommand,
  control: async () => (await import('./control.js')).registerControlCommand,
  // One module registers both `up` and `down`.
  up: async () => (await import('./up.js')).registerUpCommands,
  down: async () => (await import('./up.js')).registerUpCommands,
  run: async () => (await import('./run.js')).registerRunCommand,
  apply: async () => (await import('./apply.js')).registerApplyCommand,
  get: async () => (await import('./get.js')).registerGetCommand,
  delete: async () => (await import('./delete.js')).registerDeleteCommand,
  identity: async () => (await import('./identity.js')).registerIdentityCommand,
  policy: async () => (await import('./policy.js')).registerPolicyCommand,
  check: async () => (await import('./check.js')).registerCheckCommand,
};

/** The registrations needed for `argv`: the named command's alone, or all of them. */
async function registrations(argv: readonly string[]): Promise<Register[]> {
  const name = argv[2];
  const only = name !== undefined && Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (only) return [await only()];
  const all = await Promise.all(Object.values(COMMANDS).map((load) => load()));
  return [...new Set(all)];
}

try {
  const program = new Command('weft')
    .description('Weft: a lightweight, zero-config service mesh')
    .exitOverride();
  for (const register of await registrations(process.argv)) register(program);
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
