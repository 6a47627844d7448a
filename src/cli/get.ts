/**
 * `weft get KIND [NAME] [-n NS] [-o yaml|json|wide]`: lists resources of a kind (every namespace
 * unless -n is given) or shows one (namespace "default" unless -n), as a table by default.
 */
import { type Command, Option } from 'commander';
import { kindNamesHelp, parseKindName } from '../control/api/api-kinds.js';
import { DEFAULT_NAMESPACE, describeResource, type Resource } from '../store/resource.js';
import { apiAddrOption, apiClientFor, type CliIo, processIo, reportApiError } from './output/cli-io.js';
import { renderJson, renderTable, renderYaml } from './render-resources.js';

export interface GetOptions {
  readonly namespace?: string;
  readonly output?: 'yaml' | 'json' | 'wide';
  readonly apiAddr?: string;
}

export function registerGetCommand(program: Command): void {
  apiAddrOption(
    program
      .command('get')
      .description('show resources of a kind, or one resource')
      .argument('<kind>', `kind of resource (${kindNamesHelp()})`)
      .argument('[name]', 'name of one resource')
      .option('-n, --namespace <ns>', 'only this namespace (with NAME: default "default")')
      .addOption(new Option('-o, --output <format>', 'output format').choices(['yaml', 'json', 'wide'])),
  ).action(async (kind: string, name: string | undefined, opts: GetOptions) => {
    process.exitCode = await runGet(kind, name, opts, processIo());
  });
}

/** Runs `weft get`; resolves to the exit code. */
export async function runGet(
  kindName: string,
  name: string | undefined,
  opts: GetOptions,
  io: CliIo,
): Promise<number> {
  const kind = parseKindName(kindName);
  if (kind === undefined) {
    io.stderr(`error: unknown kind "${kindName}" (one of ${kindNamesHelp()})\n`);
    return 1;
  }
  try {
    const client = apiClientFor(opts.apiAddr, io);
    let items: readonly Resource[];
    if (name !== undefined) {
      const namespace = opts.namespace ?? DEFAULT_NAMESPACE;
      const found = await client.get(kind, namespace, name);
      if (found === undefined) {
        io.stderr(`error: ${describeResource({ kind, metadata: { namespace, name } })} not found\n`);
        return 1;
      }
      items = [found];
    } else {
      items = (await client.list(kind, opts.namespace)).items;
    }
    if (opts.output === 'json') io.stdout(renderJson(name === undefined ? items : items[0]));
    else if (opts.output === 'yaml') io.stdout(renderYaml(items));
    else if (items.length > 0) io.stdout(renderTable(kind, items, io.now(), opts.output === 'wide'));
    if (items.length === 0 && opts.output !== 'json')
      io.stderr(
        `No resources found${opts.namespace === undefined ? '' : ` in namespace ${opts.namespace}`}.\n`,
      );
    return 0;
  } catch (err) {
    return reportApiError(err, io);
  }
}
