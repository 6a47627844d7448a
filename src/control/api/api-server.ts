/**
 * The public HTTP/JSON API of the control plane (DESIGN.md §6), for the CLI and the dashboard.
 * The control-plane assembly binds it (port 8084 by default); this file only builds it.
 *
 *   GET    /healthz                                  → { status: "ok" }
 *   GET    /metrics                                  → Prometheus text (when `options.metrics` is given)
 *   GET    /api/v1/{kind}[?namespace=NS]             → { items, resourceVersion }
 *   GET    /api/v1/namespaces/{ns}/{kind}/{name}     → the resource, or 404
 *   DELETE /api/v1/namespaces/{ns}/{kind}/{name}     → the resource as it was, or 404
 *   PUT    /api/v1/apply   { resources: [...] }      → { results: [{ index, action, resource }] }
 *   GET    /api/v1/policy/inbound?namespace=NS&target=NAME → compiled inbound policy (api-policy.ts)
 *   /api/v1/identity/...                     → CA status, tokens, trust bundle, rotation (api-identity.ts)
 *
 * `{kind}` is a lower-case plural (api-kinds.ts). Errors are `{ error: { code, message } }` with
 * the status of api-errors.ts; an invalid apply is a 422 listing every problem and applying
 * nothing (api-apply.ts). Request bodies are bounded by `maxBodyBytes` (413 beyond it).
 */
import http from 'node:http';
import type { Logger } from '../../lib/log.js';
import type { ResourceKind } from '../../store/resource.js';
import type { Store } from '../../store/store.js';
import { applyAll, InvalidApplyError, PartialApplyError } from './api-apply.js';
import {
  badRequest,
  bodyTooLarge,
  type ErrorBody,
  errorResponse,
  MethodNotAllowedError,
  notFound,
  unknownKind,
} from './api-errors.js';
import { type IdentityApiTarget, identityRoute } from './api-identity.js';
import { kindFromPlural, kindNamesHelp } from './api-kinds.js';
import { type PolicySource, policyRoute } from './api-policy.js';

/** Default bound of a request body. */
export const API_MAX_BODY_BYTES = 4 * 1024 * 1024;

export interface ApiServerOptions {
  /** Largest request body accepted (default API_MAX_BODY_BYTES); larger → 413. */
  readonly maxBodyBytes?: number;
  /** Serves `/metrics` (the only path not answered with JSON); without it `/metrics` is a 404. */
  readonly metrics?: http.RequestListener;
  /** Compiles inbound policies for `/api/v1/policy/...`; without it those answer 500. */
  readonly policy?: PolicySource;
  /** Serves `/api/v1/identity/...`; without it those are 404s. */
  readonly identity?: IdentityApiTarget;
}

interface Reply {
  readonly status: number;
  readonly body?: unknown;
  readonly headers?: http.OutgoingHttpHeaders;
  /** Sent instead of JSON `body` when set (the trust bundle's PEM). */
  readonly text?: string;
  readonly contentType?: string;
}

interface Deps {
  readonly store: Store;
  readonly log: Logger;
  readonly maxBodyBytes: number;
  readonly policy?: PolicySource;
  readonly identity?: IdentityApiTarget;
}

/** Builds the API server (not listening); every request is answered with JSON. */
export function newApiServer(store: Store, log: Logger, options: ApiServerOptions = {}): http.Server {
  const deps: Deps = {
    store,
    log,
    maxBodyBytes: options.maxBodyBytes ?? API_MAX_BODY_BYTES,
    policy: options.policy,
    identity: options.identity,
  };
  return http.createServer((req, res) => {
    if (options.metrics && (req.url ?? '/').split('?')[0] === '/metrics') return options.metrics(req, res);
    route(req, deps).then(
      (reply) => send(req, res, reply, deps.log),
      (err: unknown) => send(req, res, rescue(err, deps.log), deps.log),
    );
  });
}

async function route(req: http.IncomingMessage, deps: Deps): Promise<Reply> {
  const [pathname, query = ''] = (req.url ?? '/').split('?', 2);
  const method = req.method ?? 'GET';
  let segments: string[];
  try {
    segments = pathname
      .split('/')
      .filter((s) => s !== '')
      .map(decodeURIComponent);
  } catch {
    throw badRequest(`malformed path ${pathname}`);
  }
  const path = segments.join('/');
  if (path === 'healthz') {
    allow(method, ['GET']);
    return { status: 200, body: { status: 'ok' } };
  }
  if (segments[0] !== 'api' || segments[1] !== 'v1') throw notFound(`path ${pathname}`);
  const rest = segments.slice(2);
  if (rest[0] === 'identity' && deps.identity)
    return identityRoute(deps.identity, method, rest.slice(1), () => readJson(req, deps.maxBodyBytes));
  if (rest[0] === 'policy') return policyRoute(rest.slice(1), method, query, deps.store, deps.policy);
  if (rest.length === 1 && rest[0] === 'apply') {
    allow(method, ['PUT']);
    return apply(await readJson(req, deps.maxBodyBytes), deps);
  }
  if (rest.length === 1) {
    allow(method, ['GET']);
    const namespace = new URLSearchParams(query).get('namespace') || undefined;
    const list = await deps.store.list(kindOf(rest[0]), namespace);
    return { status: 200, body: list };
  }
  if (rest.length === 4 && rest[0] === 'namespaces') {
    const [, ns, kindSegment, name] = rest;
    const kind = kindOf(kindSegment);
    allow(method, ['GET', 'DELETE']);
    const found =
      method === 'GET' ? await deps.store.get(kind, ns, name) : await deps.store.delete(kind, ns, name);
    if (found === undefined) throw notFound(`${kind} ${ns}/${name}`);
    if (method === 'DELETE') deps.log.info('resource deleted', { kind, namespace: ns, name });
    return { status: 200, body: found };
  }
  throw notFound(`path ${pathname}`);
}

async function apply(body: unknown, deps: Deps): Promise<Reply> {
  const resources = (body as { resources?: unknown } | null)?.resources;
  if (typeof body !== 'object' || body === null || !Array.isArray(resources))
    throw badRequest('the body must be a JSON object { "resources": [ ... ] }');
  const results = await applyAll(deps.store, resources);
  for (const r of results)
    if (r.action !== 'unchanged')
      deps.log.info(`resource ${r.action}`, {
        kind: r.resource.kind,
        namespace: r.resource.metadata.namespace,
        name: r.resource.metadata.name,
        resourceVersion: r.resource.metadata.resourceVersion,
      });
  return { status: 200, body: { results } };
}

function kindOf(segment: string): ResourceKind {
  const kind = kindFromPlural(segment);
  if (kind === undefined) throw unknownKind(segment, kindNamesHelp());
  return kind;
}

function allow(method: string, allowed: readonly string[]): void {
  if (!allowed.includes(method)) throw new MethodNotAllowedError(method, allowed);
}

/** The error reply for `err`; unexpected errors are logged with their stack. */
function rescue(err: unknown, log: Logger): Reply {
  const { status, body } = errorResponse(err);
  let out: ErrorBody = body;
  if (err instanceof InvalidApplyError) out = { ...body, errors: err.problems };
  if (err instanceof PartialApplyError) {
    out = { ...body, applied: err.applied };
    log.warn('apply failed part-way', {
      failedIndex: err.failedIndex,
      applied: err.applied.length,
      error: err.message,
    });
  }
  if (status >= 500)
    log.error('api request failed', {
      code: body.error.code,
      error: err instanceof Error ? (err.stack ?? err.message) : String(err),
    });
  const headers = err instanceof MethodNotAllowedError ? { allow: err.allowed.join(', ') } : undefined;
  return { status, body: out, headers };
}

function send(req: http.IncomingMessage, res: http.ServerResponse, reply: Reply, log: Logger): void {
  const text = reply.text ?? `${JSON.stringify(reply.body)}\n`;
  const headers: http.OutgoingHttpHeaders = {
    ...reply.headers,
    'content-type': reply.contentType ?? 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  };
  // A request whose body was not read (413, early errors) cannot leave the connection reusable.
  if (!req.complete) headers.connection = 'close';
  res.writeHead(reply.status, headers);
  res.end(text);
  log.debug('api request', { method: req.method, url: req.url, status: reply.status });
}

/**
 * Reads a JSON body of at most `maxBodyBytes`; a larger or malformed body is an ApiRequestError.
 * Past the bound the rest of the body is read and discarded (never buffered), so the client,
 * still sending, is not reset before it can read the 413.
 */
function readJson(req: http.IncomingMessage, maxBodyBytes: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    if (Number(req.headers['content-length']) > maxBodyBytes) {
      req.resume();
      return reject(bodyTooLarge(maxBodyBytes));
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBodyBytes) return void chunks.push(chunk);
      chunks.length = 0;
      reject(bodyTooLarge(maxBodyBytes)); // settles once; later calls are no-ops
    });
    req.on('error', reject);
    req.on('end', () => {
      if (size > maxBodyBytes) return;
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch (err) {
        reject(badRequest(`the body is not JSON: ${(err as Error).message}`));
      }
    });
  });
}
