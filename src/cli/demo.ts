/** `weft demo`: placeholder registration, filled in below. */
import type { Command } from 'commander';

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('run a two-service example through two proxies')
    .action(async () => {
      const { runDemo } = await import('../../demo/demo.js');
      process.exitCode = await runDemo();
    });
}
