/**
 * What the resource commands (apply, get, delete) share: their I/O as plain functions (so a test
 * can run a command without a process), the `--api-addr` flag, and the mapping of API errors to
 * a message and exit code. Commands return exit codes; only src/cli/main.ts exits.
 */
import type { Command } from 'commander';
import {
  type ApiClient,
  ApiResponseError,
  ApiUnreachableError,
  loadApiClientConfig,
  newApiClient,
} from '../../lib/api-client.js';

export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly now: () => Date;
}

/** The real process's I/O. */
export function processIo(): CliIo {
  return {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    env: process.env,
    now: () => new Date(),
  };
}

/** Adds `--api-addr` to a command. */
export function apiAddrOption(cmd: Command): Command {
  return cmd.option(
    '--api-addr <host:port>',
    'control plane API address [WEFT_API_ADDR, default 127.0.0.1:8084]',
  );
}

/** The API client for `--api-addr` (over WEFT_API_ADDR, over the default); throws a ConfigError. */
export function apiClientFor(apiAddr: string | undefined, io: CliIo): ApiClient {
  const source = apiAddr === undefined ? io.env : { ...io.env, WEFT_API_ADDR: apiAddr };
  return newApiClient(loadApiClientConfig(source).apiAddr);
}

/**
 * Reports an API failure on stderr and returns exit code 1; anything else is rethrown for main
 * (a ConfigError becomes exit code 2 there).
 */
export function reportApiError(err: unknown, io: CliIo): number {
  if (err instanceof ApiUnreachableError || err instanceof ApiResponseError) {
    io.stderr(`error: ${err.message}\n`);
    return 1;
  }
  throw err;
}
