/**
 * `weft apply -f FILE|DIR [-f ...]`: reads every YAML file given (a directory's *.yaml and *.yml,
 * not recursive), checks every resource locally, and only when all are valid sends them in one
 * request, which applies all of them or none. Any problem → every problem printed as
 * `file:line: field: message`, exit code 1, nothing sent.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { ApiResponseError } from '../lib/api-client.js';
import { describeResource, type Resource } from '../store/resource.js';
import { parseResourcesYaml } from '../store/resource-yaml.js';
import { type ResourceProblem, ValidationError } from '../store/store-error.js';
import { apiAddrOption, apiClientFor, type CliIo, processIo, reportApiError } from './output/cli-io.js';
import { renderApiProblems, renderApplyResults, renderFileProblems } from './render-results.js';

export interface ApplyOptions {
  readonly filename: readonly string[];
  readonly apiAddr?: string;
}

export function registerApplyCommand(program: Command): void {
  apiAddrOption(
    program
      .command('apply')
      .description('create or update resources from YAML files: all of them, or none if any is invalid')
      .requiredOption(
        '-f, --filename <file|dir>',
        'a YAML file, or a directory of .yaml/.yml files (repeatable)',
        (v: string, acc: string[] = []) => [...acc, v],
      ),
  ).action(async (opts: ApplyOptions) => {
    process.exitCode = await runApply(opts, processIo());
  });
}

/** Runs `weft apply`; resolves to the exit code. */
export async function runApply(opts: ApplyOptions, io: CliIo): Promise<number> {
  const { resources, sources, problems } = await readResources(opts.filename);
  if (problems.length > 0) {
    io.stderr(renderFileProblems(problems));
    return 1;
  }
  if (resources.length === 0) {
    io.stderr(`error: no resources found in ${opts.filename.join(', ')}\n`);
    return 1;
  }
  try {
    const results = await apiClientFor(opts.apiAddr, io).apply(resources);
    io.stdout(renderApplyResults(results));
    return 0;
  } catch (err) {
    if (err instanceof ApiResponseError && err.problems.length > 0) {
      io.stderr(renderApiProblems(err.problems, sources));
      return 1;
    }
    if (err instanceof ApiResponseError && err.applied.length > 0) io.stdout(renderApplyResults(err.applied));
    return reportApiError(err, io);
  }
}

interface FileResources {
  readonly resources: Resource[];
  /** Where each resource came from, for errors the API reports by index. */
  readonly sources: string[];
  readonly problems: ResourceProblem[];
}

/** Every resource of every file, in order, or every problem found in any of them. */
async function readResources(paths: readonly string[]): Promise<FileResources> {
  const out: FileResources = { resources: [], sources: [], problems: [] };
  const definedIn = new Map<string, string>();
  for (const file of await expandPaths(paths, out.problems)) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      out.problems.push({ file, path: '', message: (err as Error).message });
      continue;
    }
    try {
      for (const r of parseResourcesYaml(file, text)) {
        const id = describeResource(r);
        const first = definedIn.get(id);
        if (first !== undefined)
          out.problems.push({ file, path: '', message: `${id} is also defined in ${first}` });
        definedIn.set(id, first ?? file);
        out.resources.push(r);
        out.sources.push(`${file}: ${id}`);
      }
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      out.problems.push(...err.problems);
    }
  }
  return out;
}

/** Files named, and the .yaml/.yml files of directories named (sorted); missing paths are problems. */
async function expandPaths(paths: readonly string[], problems: ResourceProblem[]): Promise<string[]> {
  const files: string[] = [];
  for (const path of paths) {
    try {
      if (!(await stat(path)).isDirectory()) {
        files.push(path);
        continue;
      }
      const names = (await readdir(path)).filter((n) => /\.ya?ml$/.test(n)).sort();
      if (names.length === 0)
        problems.push({ file: path, path: '', message: 'no .yaml or .yml files in this directory' });
      files.push(...names.map((n) => join(path, n)));
    } catch (err) {
      problems.push({
        file: path,
        path: '',
        message:
          (err as NodeJS.ErrnoException).code === 'ENOENT'
            ? 'no such file or directory'
            : (err as Error).message,
      });
    }
  }
  return files;
}
