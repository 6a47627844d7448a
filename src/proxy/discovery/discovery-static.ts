/**
 * Discovery from a static YAML file (see docs/proxy-contract.md), reloaded when the file
 * changes. A reload that fails to parse keeps the previous state and logs why.
 */
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';
import { normalizeAuthority, parseHostPort } from '../../lib/addr.js';
import { ConfigError } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import type { Destination, Discovery, Endpoint } from './discovery.js';
import { MutableDestination } from './mutable-destination.js';

/**
 * The YAML parser, loaded on first use: only a proxy given a destinations file needs it, and
 * loading it at start cost every proxy ~2 MiB of memory.
 */
const yaml = (): typeof Yaml => createRequire(import.meta.url)('yaml');

/** A destination as parsed from the file, before it is handed out. */
type ParsedDestination = Pick<Destination, 'authority' | 'opaque' | 'endpoints'>;

/** Loads `path` now (throwing ConfigError with file:line for any problem) and watches it. */
export function newStaticDiscovery(path: string, log: Logger): Discovery {
  const table = new Map<string, MutableDestination>();
  let known = new Set<string>();
  apply(parseDestinationsFile(path, readDestinationsFile(path)));

  // Destinations handed out stay the same objects across reloads, so balancers holding them
  // see new endpoints without resolving again.
  function apply(next: Map<string, ParsedDestination>): void {
    for (const [authority, dest] of next) {
      const cur = table.get(authority);
      if (cur) cur.update({ opaque: dest.opaque, endpoints: dest.endpoints });
      else table.set(authority, new MutableDestination(authority, dest.opaque, dest.endpoints));
    }
    // A service dropped from the file is unknown again (forwarded to its own host:port); anyone
    // still holding its Destination sees no endpoints.
    for (const [authority, cur] of table) if (!next.has(authority)) cur.update({ endpoints: [] });
    known = new Set(next.keys());
  }

  const onChange = () => {
    try {
      apply(parseDestinationsFile(path, readDestinationsFile(path)));
      log.info('destinations reloaded', { path, services: known.size });
    } catch (err) {
      log.error('destinations reload failed; keeping previous state', {
        path,
        error: (err as Error).message,
      });
    }
  };
  watchFile(path, { interval: 250, persistent: false }, onChange);
  return {
    resolve: (authority) => (known.has(authority) ? (table.get(authority) ?? null) : null),
    close: () => unwatchFile(path, onChange),
  };
}

/** The file's text; a file that cannot be read is a configuration problem, not a crash. */
function readDestinationsFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([
      `${path}: cannot read the destinations file: ${(err as NodeJS.ErrnoException).code ?? err}`,
    ]);
  }
}

/** Parses the destinations file text; every problem is reported with its line. */
export function parseDestinationsFile(path: string, text: string): Map<string, ParsedDestination> {
  const { isMap, isSeq, LineCounter, parseDocument } = yaml();
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines });
  const problems: string[] = doc.errors.map((e) => `${path}:${e.linePos?.[0].line ?? '?'}: ${e.message}`);
  const out = new Map<string, ParsedDestination>();
  const at = (node: unknown) => {
    const range = (node as { range?: [number] } | null)?.range;
    return `${path}:${range ? lines.linePos(range[0]).line : '?'}`;
  };
  const list = doc.get('destinations', true);
  if (problems.length === 0 && !isSeq(list)) problems.push(`${path}: field "destinations" must be a list`);
  for (const [i, item] of (isSeq(list) ? list.items : []).entries()) {
    const where = `${at(item)}: destinations[${i}]`;
    if (!isMap(item)) {
      problems.push(`${where} must be a map`);
      continue;
    }
    const raw = item.toJSON() as { authority?: unknown; opaque?: unknown; endpoints?: unknown };
    let authority: string;
    try {
      authority = normalizeAuthority(String(raw.authority ?? ''));
    } catch (err) {
      problems.push(
        `${at(item.get('authority', true) ?? item)}: destinations[${i}].authority: ${(err as Error).message}`,
      );
      continue;
    }
    const endpoints: Endpoint[] = [];
    const eps = Array.isArray(raw.endpoints) ? raw.endpoints : [];
    if (raw.endpoints !== undefined && !Array.isArray(raw.endpoints))
      problems.push(`${where}.endpoints must be a list`);
    const epNodes = item.get('endpoints', true);
    for (const [j, ep] of eps.entries()) {
      const e = ep as {
        address?: unknown;
        meshed?: unknown;
        weight?: unknown;
        labels?: unknown;
        identity?: unknown;
      };
      // The endpoint's own line, and the field at fault, so the operator can go straight to it.
      let field = 'address';
      try {
        const hp = parseHostPort(String(e.address ?? ''));
        field = 'weight';
        const weight = e.weight === undefined ? 1 : Number(e.weight);
        if (!(weight >= 0)) throw new Error('must be a number >= 0');
        endpoints.push(
          Object.freeze({
            addr: `${hp.host}:${hp.port}`,
            host: hp.host,
            port: hp.port,
            meshed: e.meshed === true,
            weight,
            identity: typeof e.identity === 'string' ? e.identity : undefined,
            labels: Object.freeze({ ...((e.labels as Record<string, string>) ?? {}) }),
          }),
        );
      } catch (err) {
        const epNode = isSeq(epNodes) ? epNodes.items[j] : epNodes;
        const node = (isMap(epNode) && epNode.get(field, true)) || epNode;
        problems.push(`${at(node)}: destinations[${i}].endpoints[${j}].${field}: ${(err as Error).message}`);
      }
    }
    out.set(
      authority,
      Object.freeze({ authority, opaque: raw.opaque === true, endpoints: Object.freeze(endpoints) }),
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return out;
}
