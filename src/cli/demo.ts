/**
 * `weft demo`: the control plane and a sample application (web → books over HTTP/1.1, web →
 * authors over gRPC, books failing ~10% of requests), each service in the mesh through `weft run`,
 * plus a traffic generator, until Ctrl-C/SIGTERM (demo/demo.ts).
 */
import type { Command } from 'commander';
import { parseHostPort } from '../lib/addr.js';
import { ConfigError } from '../lib/errors.js';

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('run a sample application in the mesh (control plane, services, traffic) until Ctrl-C')
    .option('--state <dir>', 'state directory of the control plane', '.weft/demo')
    .option('--api-addr <host:port>', 'control plane HTTP API (port 0: any free port)', '127.0.0.1:8084')
    .option(
      '--destination-addr <host:port>',
      'control plane Destination (port 0: any free port)',
      '127.0.0.1:8086',
    )
    .option('--rate <n>', 'requests a second from the traffic generator', '5')
    .option('--books-failure-rate <f>', 'fraction of books requests that fail with 500', '0.1')
    .action(async (opts: Record<string, string>) => {
      const rate = Number(opts.rate);
      const failure = Number(opts.booksFailureRate);
      const problems: string[] = [];
      if (!(rate > 0 && rate <= 100)) problems.push(`--rate: "${opts.rate}" is not in (0, 100]`);
      if (!(failure >= 0 && failure <= 1))
        problems.push(`--books-failure-rate: "${opts.booksFailureRate}" is not in [0, 1]`);
      const addr = (flag: string, raw: string) => {
        try {
          return parseHostPort(raw);
        } catch (err) {
          problems.push(`${flag}: ${(err as Error).message}`);
          return { host: '', port: 0 };
        }
      };
      const apiAddr = addr('--api-addr', opts.apiAddr);
      const destinationAddr = addr('--destination-addr', opts.destinationAddr);
      if (problems.length > 0) throw new ConfigError(problems);
      const { runDemo } = await import('../../demo/demo.js');
      process.exitCode = await runDemo({
        state: opts.state,
        apiAddr,
        destinationAddr,
        rate,
        booksFailureRate: failure,
      });
    });
}
