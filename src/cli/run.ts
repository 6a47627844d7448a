/**
 * `weft run --service S [--port P] ... -- CMD ARGS...`: runs a program in the mesh on this host
 * (DESIGN.md §8; the lifecycle is in src/platform/local/run-supervisor.ts).
 */
import type { Command } from 'commander';
import { envWithFlags, settingOptions } from '../lib/config.js';
import { newLogger } from '../lib/log.js';
import { ProxyStartError } from '../platform/local/proxy-child.js';
import { loadRunConfig, RUN_ENV_PREFIX, RUN_SETTINGS } from '../platform/local/run-config.js';
import { runInMesh } from '../platform/local/run-supervisor.js';
import { processIo, reportApiError } from './output/cli-io.js';

export function registerRunCommand(program: Command): void {
  const cmd = program
    .command('run')
    .description('run a program in the mesh: registers it, starts its sidecar, then the program')
    .argument('<command...>', 'the program and its arguments (after --)');
  for (const [flags, doc] of settingOptions(RUN_SETTINGS, RUN_ENV_PREFIX, ['WEFT_RUN_UPSTREAMS']))
    cmd.option(flags, doc);
  cmd.option(
    '--upstream <name=port>',
    'opaque upstream binding, repeatable; the app gets WEFT_UPSTREAM_<NAME>=127.0.0.1:<port> [WEFT_RUN_UPSTREAMS]',
    (v: string, acc: string[]) => [...acc, v],
    [],
  );
  cmd.action(async (command: string[], opts: Record<string, unknown>) => {
    const source = envWithFlags(RUN_SETTINGS, RUN_ENV_PREFIX, opts, process.env);
    const ups = opts.upstream;
    if (Array.isArray(ups) && ups.length > 0) source.WEFT_RUN_UPSTREAMS = ups.join(',');
    const config = loadRunConfig(source, command);
    const io = processIo();
    try {
      process.exitCode = await runInMesh(config, newLogger('info', { component: 'run' }));
    } catch (err) {
      if (!(err instanceof ProxyStartError)) process.exitCode = reportApiError(err, io);
      else {
        io.stderr(`error: ${err.message}\n`);
        process.exitCode = 1;
      }
    }
  });
}
