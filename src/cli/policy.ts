/**
 * `weft policy explain --from <identity|workload|ip> --to <workload:port> [--path P --method M]`:
 * fetches the compiled inbound policy of the target from the control plane and runs the same
 * evaluator the proxies run (src/lib/authz.ts), then says whether the call is allowed and by
 * which rule, or why not.
 *
 * Exit codes: 0 allowed (also when only an audit policy lets it through), 3 denied, 1 the
 * control plane or a named resource could not be found, 2 bad arguments.
 */
import { isIP } from 'node:net';
import type { Command } from 'commander';
import type { InboundPolicyAnswer } from '../control/api/api-policy.js';
import { formatHostPort } from '../lib/addr.js';
import { ApiResponseError, ApiUnreachableError, loadApiClientConfig } from '../lib/api-client.js';
import { type AuthzExplanation, type AuthzPeer, type AuthzRequest, newAuthorizer } from '../lib/authz.js';
import { DEFAULT_NAMESPACE } from '../store/resource.js';
import { apiAddrOption, apiClientFor, type CliIo, processIo, reportApiError } from './output/cli-io.js';

export const EXIT_ALLOWED = 0;
export const EXIT_DENIED = 3;
const EXIT_USAGE = 2;

export interface ExplainOptions {
  readonly from: string;
  readonly to: string;
  readonly namespace?: string;
  readonly fromNamespace?: string;
  readonly fromAddr?: string;
  readonly path?: string;
  readonly method?: string;
  readonly tcp?: boolean;
  readonly output?: string;
  readonly apiAddr?: string;
}

export function registerPolicyCommand(program: Command): void {
  const policy = program.command('policy').description('inspect authorization policy');
  apiAddrOption(
    policy
      .command('explain')
      .description('say whether a client may call a workload port, by which rule, or why not')
      .requiredOption(
        '--from <client>',
        'a SPIFFE ID (an mTLS client), a Workload name, an IP address, or "unauthenticated"',
      )
      .requiredOption('--to <workload:port>', 'a Workload (or Service) name and port')
      .option('-n, --namespace <ns>', 'namespace of --to', DEFAULT_NAMESPACE)
      .option('--from-namespace <ns>', 'namespace of a --from Workload (default: that of --to)')
      .option('--from-addr <ip>', "the client's address (default: the Workload's, else 127.0.0.1)")
      .option('--path <path>', 'HTTP request path (default /)')
      .option('--method <method>', 'HTTP request method (default GET)')
      .option('--tcp', 'an opaque TCP connection rather than an HTTP request')
      .option('-o, --output <format>', 'text or json', 'text'),
  ).action(async (opts: ExplainOptions) => {
    process.exitCode = await runPolicyExplain(opts, processIo());
  });
}

/** Runs `weft policy explain`; resolves to the exit code. */
export async function runPolicyExplain(opts: ExplainOptions, io: CliIo): Promise<number> {
  const to = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?):(\d{1,5})$/.exec(opts.to);
  const port = to ? Number(to[3]) : 0;
  if (!to || port < 1 || port > 65535) {
    io.stderr(`error: --to must be <workload>:<port>, got ${JSON.stringify(opts.to)}\n`);
    return EXIT_USAGE;
  }
  const namespace = opts.namespace ?? DEFAULT_NAMESPACE;
  try {
    const peer = await resolvePeer(opts, namespace, io);
    if (typeof peer === 'string') {
      io.stderr(`error: ${peer}\n`);
      return 1;
    }
    const answer = await fetchInboundPolicy(opts.apiAddr, io, namespace, to[1]);
    const authorizer = newAuthorizer(answer.policy);
    const tcp = opts.tcp === true || authorizer.server(port)?.proxyProtocol === 'opaque';
    const request: AuthzRequest | undefined = tcp
      ? undefined
      : { method: (opts.method ?? 'GET').toUpperCase(), path: opts.path ?? '/' };
    const e = authorizer.explain(port, peer, request);
    if (opts.output === 'json')
      io.stdout(`${JSON.stringify({ target: answer.target, port, peer, request, ...e }, null, 2)}\n`);
    else io.stdout(renderExplanation(`${to[1]}:${port}`, request, e));
    return e.decision.verdict === 'deny' ? EXIT_DENIED : EXIT_ALLOWED;
  } catch (err) {
    return reportApiError(err, io);
  }
}

/** The text report: the verdict line, what decided, then every step considered. */
export function renderExplanation(
  target: string,
  request: AuthzRequest | undefined,
  e: AuthzExplanation,
): string {
  const d = e.decision;
  const what = request ? `${request.method} ${request.path}` : 'TCP connection';
  const verdict =
    d.verdict === 'allow' ? 'ALLOWED' : d.verdict === 'deny' ? 'DENIED' : 'ALLOWED (audit: would be denied)';
  const lines = [`${verdict}: ${what} to ${target}`];
  if (d.verdict === 'allow' && d.rule >= 0)
    lines.push(`  by AuthorizationPolicy ${d.authorization} rule ${d.rule} on Server ${d.server}`);
  else if (d.verdict === 'allow')
    lines.push(
      `  by ${d.authorization} on ${d.server.startsWith('default:') ? 'a port without a Server' : `Server ${d.server}`}`,
    );
  else lines.push(`  server ${d.server}: ${d.reason}`);
  lines.push('considered:', ...e.steps.map((s) => `  - ${s}`));
  return `${lines.join('\n')}\n`;
}

/** The peer `--from` names, or why it names none. */
async function resolvePeer(opts: ExplainOptions, namespace: string, io: CliIo): Promise<AuthzPeer | string> {
  const addr = opts.fromAddr ?? '127.0.0.1';
  if (opts.fromAddr !== undefined && isIP(opts.fromAddr) === 0) return `--from-addr must be an IP address`;
  if (opts.from.startsWith('spiffe://')) return { tls: true, clientId: opts.from, remoteAddr: addr };
  if (isIP(opts.from) !== 0) return { tls: false, remoteAddr: opts.from };
  if (opts.from === 'unauthenticated') return { tls: false, remoteAddr: addr };
  const ns = opts.fromNamespace ?? namespace;
  const w = await apiClientFor(opts.apiAddr, io).get('Workload', ns, opts.from);
  if (!w)
    return `--from: Workload ${ns}/${opts.from} not found (give a SPIFFE ID, an IP address or a Workload name)`;
  const remoteAddr = opts.fromAddr ?? (isIP(w.spec.address) !== 0 ? w.spec.address : '127.0.0.1');
  // A workload with an identity calls through its proxy over mTLS (docs/identity.md).
  return w.spec.identity ? { tls: true, clientId: w.spec.identity, remoteAddr } : { tls: false, remoteAddr };
}

/** GET /api/v1/policy/inbound, with the API client's error types. */
async function fetchInboundPolicy(
  apiAddr: string | undefined,
  io: CliIo,
  namespace: string,
  target: string,
): Promise<InboundPolicyAnswer> {
  const source = apiAddr === undefined ? io.env : { ...io.env, WEFT_API_ADDR: apiAddr };
  const where = formatHostPort(loadApiClientConfig(source).apiAddr);
  const q = new URLSearchParams({ namespace, target });
  let res: Response;
  try {
    res = await fetch(`http://${where}/api/v1/policy/inbound?${q}`, { signal: AbortSignal.timeout(30_000) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause;
    throw new ApiUnreachableError(where, cause?.code ?? (err as Error).message, err);
  }
  const body = (await res.json().catch(() => undefined)) as
    | (InboundPolicyAnswer & { error?: { code: string; message: string } })
    | undefined;
  if (res.ok && body?.policy) return body;
  throw new ApiResponseError(
    body?.error?.code ?? 'WEFT_ERR_BAD_RESPONSE',
    res.status,
    body?.error?.message ?? `HTTP ${res.status} from ${where}`,
  );
}
