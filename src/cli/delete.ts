/** `weft delete KIND NAME [-n NS]`: removes one resource (namespace "default" unless -n). */
import type { Command } from 'commander';
import { kindNamesHelp, parseKindName } from '../control/api/api-kinds.js';
import { DEFAULT_NAMESPACE, describeResource } from '../store/resource.js';
import { apiAddrOption, apiClientFor, type CliIo, processIo, reportApiError } from './output/cli-io.js';
import { renderDeleted } from './render-results.js';

export interface DeleteOptions {
  readonly namespace?: string;
  readonly apiAddr?: string;
}

export function registerDeleteCommand(program: Command): void {
  apiAddrOption(
    program
      .command('delete')
      .description('delete one resource')
      .argument('<kind>', `kind of resource (${kindNamesHelp()})`)
      .argument('<name>', 'name of the resource')
      .option('-n, --namespace <ns>', 'namespace of the resource', DEFAULT_NAMESPACE),
  ).action(async (kind: string, name: string, opts: DeleteOptions) => {
    process.exitCode = await runDelete(kind, name, opts, processIo());
  });
}

/** Runs `weft delete`; resolves to the exit code (1 when the resource does not exist). */
export async function runDelete(
  kindName: string,
  name: string,
  opts: DeleteOptions,
  io: CliIo,
): Promise<number> {
  const kind = parseKindName(kindName);
  if (kind === undefined) {
    io.stderr(`error: unknown kind "${kindName}" (one of ${kindNamesHelp()})\n`);
    return 1;
  }
  const namespace = opts.namespace ?? DEFAULT_NAMESPACE;
  try {
    const deleted = await apiClientFor(opts.apiAddr, io).delete(kind, namespace, name);
    if (deleted === undefined) {
      io.stderr(`error: ${describeResource({ kind, metadata: { namespace, name } })} not found\n`);
      return 1;
    }
    io.stdout(renderDeleted(deleted));
    return 0;
  } catch (err) {
    return reportApiError(err, io);
  }
}
