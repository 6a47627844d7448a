/**
 * A small client of the control plane's public API (src/control/api/api-server.ts), over
 * node:http with no dependency; used by the CLI. Every method rejects with an ApiUnreachableError
 * (nothing answered) or an ApiResponseError (the API answered with an error), never anything else.
 */
import http from 'node:http';
import type { ApplyResult } from '../control/api/api-apply.js';
import type { ApplyProblem } from '../control/api/api-errors.js';
import { PLURAL_OF } from '../control/api/api-kinds.js';
import type { Resource, ResourceKind } from '../store/resource.js';
import type { ResourceList } from '../store/store.js';
import { formatHostPort, type HostPort, parseHostPort } from './addr.js';
import { parseSettings } from './config.js';
import { WeftError } from './errors.js';

export type { ApplyProblem, ApplyResult };

/** Settings of the API client, parsed with the one config parser (flags merged over the env). */
export const API_CLIENT_SETTINGS = {
  apiAddr: {
    env: 'WEFT_API_ADDR',
    default: '127.0.0.1:8084',
    parse: (raw: string) => parseHostPort(raw),
    doc: 'address of the control plane API (host:port)',
  },
} as const;

/** `{ apiAddr }` from an environment-like map; throws a ConfigError. */
export function loadApiClientConfig(source: Readonly<Record<string, string | undefined>>): {
  readonly apiAddr: HostPort;
} {
  return parseSettings(API_CLIENT_SETTINGS, source);
}

/** Nothing answered at the API address (refused, unknown host, timeout). */
export class ApiUnreachableError extends WeftError {
  constructor(
    readonly addr: string,
    detail: string,
    cause?: unknown,
  ) {
    super(
      'WEFT_ERR_API_UNREACHABLE',
      503,
      'destination_unavailable',
      'control plane unreachable',
      `control plane not reachable at ${addr} (${detail}); start it with \`weft up\``,
      { cause },
    );
  }
}

/** The API answered with an error: `code` is the API's (e.g. WEFT_ERR_NOT_FOUND). */
export class ApiResponseError extends WeftError {
  constructor(
    code: string,
    readonly status: number,
    message: string,
    /** Every problem of an invalid apply (code WEFT_ERR_INVALID_RESOURCE). */
    readonly problems: readonly ApplyProblem[] = [],
    /** For an apply that failed part-way: what was applied before the failure. */
    readonly applied: readonly ApplyResult[] = [],
  ) {
    super(code, status, 'proxy_internal_error', 'api error', message);
  }
}

export interface ApiClientOptions {
  /** Give up on a request after this long (default 30000 ms). */
  readonly requestTimeoutMs?: number;
}

export interface ApiClient {
  readonly addr: string;
  list<K extends ResourceKind>(kind: K, namespace?: string): Promise<ResourceList<K>>;
  /** The resource, or undefined when it does not exist. */
  get<K extends ResourceKind>(kind: K, namespace: string, name: string): Promise<Resource<K> | undefined>;
  /** Applies all resources or (when any is invalid) none; see PUT /api/v1/apply. */
  apply(resources: readonly unknown[]): Promise<ApplyResult[]>;
  /** The resource as it was, or undefined when it did not exist. */
  delete(kind: ResourceKind, namespace: string, name: string): Promise<Resource | undefined>;
}

/** A client of the API at `addr`. Holds no connection between calls. */
export function newApiClient(addr: HostPort, options: ApiClientOptions = {}): ApiClient {
  const where = formatHostPort(addr);
  const timeoutMs = options.requestTimeoutMs ?? 30_000;
  const call = (method: string, path: string, body?: unknown) =>
    request(addr, where, timeoutMs, method, path, body);
  const objectPath = (kind: ResourceKind, ns: string, name: string) =>
    `/api/v1/namespaces/${encodeURIComponent(ns)}/${PLURAL_OF[kind]}/${encodeURIComponent(name)}`;
  const orUndefined = <T>(p: Promise<unknown>): Promise<T | undefined> =>
    p.then(
      (v) => v as T,
      (err: unknown) => {
        if (err instanceof ApiResponseError && err.code === 'WEFT_ERR_NOT_FOUND') return undefined;
        throw err;
      },
    );
  return {
    addr: where,
    list: async (kind, namespace) => {
      const q = namespace === undefined ? '' : `?namespace=${encodeURIComponent(namespace)}`;
      return (await call('GET', `/api/v1/${PLURAL_OF[kind]}${q}`)) as ResourceList<typeof kind>;
    },
    get: (kind, ns, name) => orUndefined(call('GET', objectPath(kind, ns, name))),
    apply: async (resources) =>
      ((await call('PUT', '/api/v1/apply', { resources })) as { results: ApplyResult[] }).results,
    delete: (kind, ns, name) => orUndefined(call('DELETE', objectPath(kind, ns, name))),
  };
}

/**
 * One request to the API, for the typed clients beside this one (api-client-identity.ts):
 * resolves with the parsed JSON, or the text of a `text/plain` answer; rejects like ApiClient.
 */
export function apiRequest(
  addr: HostPort,
  method: string,
  path: string,
  body?: unknown,
  timeoutMs = 30_000,
): Promise<unknown> {
  return request(addr, formatHostPort(addr), timeoutMs, method, path, body);
}

function request(
  addr: HostPort,
  where: string,
  timeoutMs: number,
  method: string,
  path: string,
  body: unknown,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request({
      host: addr.host,
      port: addr.port,
      method,
      path,
      agent: false,
      headers: {
        accept: 'application/json',
        ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
      },
    });
    let answered = false;
    req.setTimeout(timeoutMs, () =>
      req.destroy(new ApiUnreachableError(where, `no answer within ${timeoutMs} ms`)),
    );
    req.on('error', (err: NodeJS.ErrnoException) => {
      // The server may answer (413) and close before the whole body is sent: the answer wins.
      if (answered) return;
      reject(err instanceof WeftError ? err : new ApiUnreachableError(where, err.code ?? err.message, err));
    });
    req.on('response', (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err) => reject(new ApiUnreachableError(where, `answer cut: ${err.message}`, err)));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const ok = (res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300;
        if (ok && res.headers['content-type']?.startsWith('text/plain')) return resolve(text);
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          return reject(
            new ApiResponseError(
              'WEFT_ERR_BAD_RESPONSE',
              res.statusCode ?? 0,
              `not a Weft API at ${where}: ${text.slice(0, 200)}`,
            ),
          );
        }
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) return resolve(json);
        reject(toResponseError(status, json));
      });
    });
    req.end(payload);
  });
}

function toResponseError(status: number, json: unknown): ApiResponseError {
  const b = json as { error?: { code?: unknown; message?: unknown }; errors?: unknown; applied?: unknown };
  const code = typeof b?.error?.code === 'string' ? b.error.code : 'WEFT_ERR_BAD_RESPONSE';
  const message = typeof b?.error?.message === 'string' ? b.error.message : `HTTP ${status}`;
  const problems = Array.isArray(b?.errors) ? (b.errors as ApplyProblem[]) : [];
  const applied = Array.isArray(b?.applied) ? (b.applied as ApplyResult[]) : [];
  return new ApiResponseError(code, status, message, problems, applied);
}
