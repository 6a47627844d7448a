/**
 * `weft check [--api-addr A] [--destination-addr D] [-o json]`: is the mesh healthy? Checks the
 * control plane (API, Destination, Identity), the trust anchors and issuer, every registered
 * Workload's proxy certificate (admin `GET /identity` at `spec.adminAddress`), and the policy
 * resources; prints one line per check and a summary.
 *
 * Exit codes: 0 nothing failed (warnings allowed), 1 a check failed, 2 bad arguments.
 */
import type { Command } from 'commander';
import { formatHostPort, type HostPort, parseHostPort } from '../lib/addr.js';
import { API_CLIENT_SETTINGS, type ApiClient, apiRequest, newApiClient } from '../lib/api-client.js';
import { type IdentityStatus, newIdentityApiClient } from '../lib/api-client-identity.js';
import { parseSettings } from '../lib/config.js';
import type { Resource, ResourceKind } from '../store/resource.js';
import {
  type CheckResult,
  evaluateAnchors,
  evaluateIssuer,
  evaluateProxy,
  type ProxyObservation,
} from './check-evaluate.js';
import { evaluatePolicy } from './check-policy.js';
import { probeGrpc, probeIdentityTls, probeProxyIdentity } from './check-probes.js';
import { renderCheck, renderCheckJson } from './check-render.js';
import { apiAddrOption, type CliIo, processIo } from './output/cli-io.js';

export const EXIT_CHECK_OK = 0;
export const EXIT_CHECK_FAILED = 1;
const EXIT_USAGE = 2;
/** Proxies probed at once: enough to be quick on a big mesh, few enough to stay polite. */
const PROXY_PROBE_CONCURRENCY = 16;
/** API calls of the check give up after this long (the API is local and answers in ms). */
const API_TIMEOUT_MS = 5_000;

/** Where `weft check` looks: the API (as every command) and Destination, which the API does not report. */
export const CHECK_SETTINGS = {
  ...API_CLIENT_SETTINGS,
  destinationAddr: {
    env: 'WEFT_DESTINATION_ADDR',
    default: '127.0.0.1:8086',
    parse: (raw: string): HostPort => parseHostPort(raw),
    doc: 'address of the control plane Destination gRPC service (host:port)',
  },
} as const;

export interface CheckOptions {
  readonly apiAddr?: string;
  readonly destinationAddr?: string;
  readonly output?: string;
}

export function registerCheckCommand(program: Command): void {
  apiAddrOption(
    program
      .command('check')
      .description('check the control plane, certificates of every proxy, and policy resources')
      .option(
        '--destination-addr <host:port>',
        'control plane Destination address [WEFT_DESTINATION_ADDR, default 127.0.0.1:8086]',
      )
      .option('-o, --output <format>', 'text or json', 'text'),
  ).action(async (opts: CheckOptions) => {
    const io = processIo();
    const colour = process.stdout.isTTY === true && !process.env.NO_COLOR;
    process.exitCode = await runCheck(opts, io, colour);
  });
}

/** Runs every check and prints the report; resolves to the exit code. */
export async function runCheck(opts: CheckOptions, io: CliIo, colour = false): Promise<number> {
  if (opts.output !== undefined && opts.output !== 'text' && opts.output !== 'json') {
    io.stderr(`error: -o must be text or json, got ${JSON.stringify(opts.output)}\n`);
    return EXIT_USAGE;
  }
  const source = {
    ...io.env,
    ...(opts.apiAddr === undefined ? {} : { WEFT_API_ADDR: opts.apiAddr }),
    ...(opts.destinationAddr === undefined ? {} : { WEFT_DESTINATION_ADDR: opts.destinationAddr }),
  };
  const config = parseSettings(CHECK_SETTINGS, source); // a ConfigError is exit code 2 in main
  const results = await collect(config.apiAddr, config.destinationAddr, io.now());
  io.stdout(opts.output === 'json' ? renderCheckJson(results) : renderCheck(results, colour));
  return results.some((r) => r.status === 'fail') ? EXIT_CHECK_FAILED : EXIT_CHECK_OK;
}

async function collect(apiAddr: HostPort, destinationAddr: HostPort, now: Date): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const plane = (subject: string, ok: boolean, message: string) =>
    results.push({ group: 'control plane', subject, status: ok ? 'ok' : 'fail', message });
  const api = formatHostPort(apiAddr);
  const dest = formatHostPort(destinationAddr);
  const [healthz, grpc] = await Promise.all([
    apiRequest(apiAddr, 'GET', '/healthz', undefined, API_TIMEOUT_MS).then(
      () => undefined,
      (err: Error) => err.message,
    ),
    probeGrpc(destinationAddr),
  ]);
  plane('API', healthz === undefined, healthz === undefined ? `answers at ${api}` : healthz);
  plane(
    'Destination',
    grpc.ok,
    grpc.ok
      ? `gRPC answers at ${dest}`
      : `gRPC not answering at ${dest} (${grpc.detail}); give its address with --destination-addr`,
  );
  if (healthz !== undefined) return results; // everything else is read through the API

  const client = newApiClient(apiAddr, { requestTimeoutMs: API_TIMEOUT_MS });
  const ca = await identityChecks(apiAddr, now, results);
  let listed: [
    Resource<'Service'>[],
    Resource<'Workload'>[],
    Resource<'Server'>[],
    Resource<'AuthorizationPolicy'>[],
  ];
  try {
    listed = await Promise.all([
      items(client, 'Service'),
      items(client, 'Workload'),
      items(client, 'Server'),
      items(client, 'AuthorizationPolicy'),
    ]);
  } catch (err) {
    const message = `cannot list resources: ${(err as Error).message}`;
    results.push({ group: 'proxies', subject: 'workloads', status: 'fail', message });
    return results;
  }
  const [services, workloads, servers, authorizations] = listed;
  results.push(...(await proxyChecks(workloads, ca, now)));
  results.push(...evaluatePolicy({ services, workloads, servers, authorizations }));
  return results;
}

async function items<K extends ResourceKind>(client: ApiClient, kind: K): Promise<Resource<K>[]> {
  return [...(await client.list(kind)).items];
}

/** The Identity service's TLS, anchors and issuer; returns the CA status when it could be read. */
async function identityChecks(
  apiAddr: HostPort,
  now: Date,
  results: CheckResult[],
): Promise<IdentityStatus | undefined> {
  const identity = newIdentityApiClient(apiAddr);
  let status: IdentityStatus;
  let bundle: string;
  try {
    [status, bundle] = await Promise.all([identity.status(), identity.trustBundle()]);
  } catch (err) {
    results.push({
      group: 'control plane',
      subject: 'Identity',
      status: 'fail',
      message: (err as Error).message,
    });
    return undefined;
  }
  const anchorPems = bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
  const serviceId = `spiffe://${status.trustDomain}/ns/weft/sa/identity`;
  let tlsProbe: Awaited<ReturnType<typeof probeIdentityTls>>;
  try {
    tlsProbe = await probeIdentityTls(parseHostPort(status.identityAddr), anchorPems, serviceId);
  } catch (err) {
    tlsProbe = { ok: false, detail: (err as Error).message };
  }
  results.push({
    group: 'control plane',
    subject: 'Identity',
    status: tlsProbe.ok ? 'ok' : 'fail',
    message: tlsProbe.ok
      ? `TLS at ${status.identityAddr} as ${serviceId}, chain verified against the trust bundle`
      : `no verified TLS at ${status.identityAddr} (${tlsProbe.detail})`,
  });
  results.push(...evaluateAnchors(status, now));
  const issuerPem = tlsProbe.ok ? tlsProbe.issuerPem : undefined;
  results.push(evaluateIssuer(status, now, issuerPem ? { issuerPem, anchorPems } : undefined));
  return status;
}

/** One line per Workload (already sorted by the store), probing at most PROXY_PROBE_CONCURRENCY at once. */
async function proxyChecks(
  workloads: readonly Resource<'Workload'>[],
  ca: IdentityStatus | undefined,
  now: Date,
): Promise<CheckResult[]> {
  if (workloads.length === 0)
    return [{ group: 'proxies', subject: 'workloads', status: 'ok', message: 'no Workload registered' }];
  const out: CheckResult[] = new Array(workloads.length);
  let next = 0;
  const worker = async () => {
    while (next < workloads.length) {
      const i = next++;
      const w = workloads[i];
      const seen: ProxyObservation = w.spec.adminAddress
        ? await probeProxyIdentity(w.spec.adminAddress)
        : { kind: 'no-admin-address' };
      out[i] = evaluateProxy(w, seen, ca, now);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PROXY_PROBE_CONCURRENCY, workloads.length) }, worker));
  return out;
}
