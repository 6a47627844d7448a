/**
 * The settings of `weft run` (DESIGN.md §8): which Service the program serves and where the
 * control plane is. Parsed once with the one config parser (flags written over `WEFT_RUN_*`),
 * every problem reported together, frozen.
 */
import { type HostPort, parseHostPort } from '../../lib/addr.js';
import { parseIntIn, parseList, parseSettings, parseString, type SettingsOf } from '../../lib/config.js';
import { ConfigError } from '../../lib/errors.js';
import { parseUpstreamBinding } from '../../proxy/config.js';

export const RUN_ENV_PREFIX = 'WEFT_RUN_';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const dnsLabel = (raw: string): string => {
  if (!DNS_LABEL.test(raw)) throw new Error('expected a DNS-1123 label (a-z, 0-9 and "-", at most 63)');
  return raw;
};

export const RUN_SETTINGS = {
  service: {
    env: 'WEFT_RUN_SERVICE',
    parse: dnsLabel,
    doc: 'the Service this program serves (created with one port if it does not exist)',
  },
  port: {
    env: 'WEFT_RUN_PORT',
    parse: parseIntIn(1, 65535),
    doc: "the app's port and the Service port (default: a free port for the app, which is also the Service port of a new Service)",
  },
  namespace: {
    env: 'WEFT_RUN_NAMESPACE',
    default: 'default',
    parse: dnsLabel,
    doc: 'namespace of the Service and the Workload',
  },
  account: {
    env: 'WEFT_RUN_ACCOUNT',
    parse: dnsLabel,
    doc: 'service account (default: the service name): the workload is spiffe://<trust-domain>/ns/N/sa/ACCOUNT',
  },
  upstreams: {
    env: 'WEFT_RUN_UPSTREAMS',
    default: '',
    parse: parseList(parseUpstreamBinding),
    doc: 'opaque upstream bindings NAME=PORT (comma separated; 0 = a free port)',
  },
  apiAddr: {
    env: 'WEFT_RUN_API_ADDR',
    default: '127.0.0.1:8084',
    parse: (raw: string): HostPort => parseHostPort(raw),
    doc: 'control plane HTTP API host:port',
  },
  identityAddr: {
    env: 'WEFT_RUN_IDENTITY_ADDR',
    parse: (raw: string): HostPort => parseHostPort(raw),
    doc: 'control plane Identity (gRPC, TLS) host:port, given to the proxy (default: the address the control plane reports)',
  },
  destinationAddr: {
    env: 'WEFT_RUN_DESTINATION_ADDR',
    default: '127.0.0.1:8086',
    parse: (raw: string): HostPort => parseHostPort(raw),
    doc: 'control plane Destination (gRPC) host:port, given to the proxy',
  },
  proxyLogLevel: {
    env: 'WEFT_RUN_PROXY_LOG_LEVEL',
    default: 'info',
    parse: parseString,
    doc: "the proxy's log level (its lines go to stderr)",
  },
} as const;

export type RunSettings = SettingsOf<typeof RUN_SETTINGS>;

export interface RunConfig extends RunSettings {
  readonly service: string;
  /** The service account; defaults to the service name, so every workload has an identity. */
  readonly account: string;
  /** The program and its arguments. */
  readonly command: readonly string[];
}

/** Parses the settings and checks the required ones; throws one ConfigError naming every problem. */
export function loadRunConfig(
  source: Readonly<Record<string, string | undefined>>,
  command: readonly string[],
): RunConfig {
  const missing: string[] = [];
  if (source.WEFT_RUN_SERVICE === undefined) missing.push('WEFT_RUN_SERVICE (--service): required');
  if (command.length === 0) missing.push('the command to run (after --): required');
  let settings: RunSettings | undefined;
  try {
    settings = parseSettings(RUN_SETTINGS, source);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    missing.push(...err.problems);
  }
  if (missing.length > 0 || !settings) throw new ConfigError(missing);
  return Object.freeze({
    ...settings,
    service: settings.service as string,
    account: settings.account ?? (settings.service as string),
    command: Object.freeze([...command]),
  });
}
