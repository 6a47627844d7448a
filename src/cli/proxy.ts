/** `weft proxy`: runs one sidecar proxy in the foreground until SIGTERM/SIGINT or /shutdown. */
import type { Command } from 'commander';
import { envWithFlags, settingOptions } from '../lib/config.js';
import { newLogger } from '../lib/log.js';
import { ENV_PREFIX, loadProxyConfig, PROXY_SETTINGS } from '../proxy/config.js';
import { startProxy } from '../proxy/proxy.js';

export function registerProxyCommand(program: Command): void {
  const cmd = program
    .command('proxy')
    .description('run a sidecar proxy (settings from WEFT_PROXY_* or the flags below)');
  for (const [flags, doc] of settingOptions(PROXY_SETTINGS, ENV_PREFIX, ['WEFT_PROXY_UPSTREAMS']))
    cmd.option(flags, doc);
  cmd.option(
    '--upstream <name=port>',
    'opaque upstream binding, repeatable [WEFT_PROXY_UPSTREAMS]',
    (v: string, acc: string[]) => [...acc, v],
    [],
  );
  cmd.action(async (opts: Record<string, string | string[]>) => {
    process.exitCode = await runProxy(opts);
  });
}

/** Flags override the environment; the merged map goes through the one config parser. */
export function envFromFlags(
  opts: Record<string, string | string[]>,
  env: NodeJS.ProcessEnv,
): Record<string, string | undefined> {
  const merged = envWithFlags(PROXY_SETTINGS, ENV_PREFIX, opts, env);
  const ups = opts.upstream;
  if (Array.isArray(ups) && ups.length > 0) merged.WEFT_PROXY_UPSTREAMS = ups.join(',');
  return merged;
}

async function runProxy(opts: Record<string, string | string[]>): Promise<number> {
  const config = loadProxyConfig(envFromFlags(opts, process.env));
  const log = newLogger(config.logLevel, { component: 'proxy' });
  const proxy = await startProxy(config, log);
  log.info('proxy ready', {
    outbound: proxy.outbound,
    inbound: proxy.inbound,
    admin: proxy.admin,
    upstreams: proxy.upstreams,
  });
  const onSignal = (signal: string) => {
    log.info('signal received', { signal });
    void proxy.shutdown();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  await proxy.closed;
  return 0;
}
