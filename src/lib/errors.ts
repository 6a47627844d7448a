/**
 * The one table of errors Weft makes. Inner layers throw these; the edges (the proxy's rescue
 * step, API handlers, the CLI) turn them into responses or exit codes. `code` is stable and may
 * be asserted on; `proxyStatus` is the RFC 9209 error type used in the `Proxy-Status` header.
 */
export class WeftError extends Error {
  readonly code: string;
  readonly httpStatus: number;
  readonly proxyStatus: string;
  /** Short reason for the `weft-proxy-error` header and the `error` metric label. */
  readonly reason: string;

  constructor(
    code: string,
    httpStatus: number,
    proxyStatus: string,
    reason: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.httpStatus = httpStatus;
    this.proxyStatus = proxyStatus;
    this.reason = reason;
  }
}

/** The destination is known but has no endpoint to send to. */
export class NoEndpointsError extends WeftError {
  constructor(readonly authority: string) {
    super(
      'WEFT_ERR_NO_ENDPOINTS',
      503,
      'destination_unavailable',
      'no endpoints',
      `no endpoints for ${authority}`,
    );
  }
}

/** The destination has no endpoint and its queue of requests waiting for one is full. */
export class LoadShedError extends WeftError {
  constructor(
    readonly authority: string,
    capacity: number,
  ) {
    super(
      'WEFT_ERR_LOAD_SHED',
      503,
      'connection_limit_reached',
      'load shed',
      `load shed: ${capacity} requests already wait for an endpoint of ${authority}`,
    );
  }
}

/** A TCP connection to the next hop could not be made. */
export class ConnectError extends WeftError {
  constructor(addr: string, cause: unknown) {
    const errno = (cause as NodeJS.ErrnoException | undefined)?.code ?? 'unknown';
    const type = errno === 'ECONNREFUSED' ? 'connection_refused' : 'destination_unavailable';
    super('WEFT_ERR_CONNECT', 502, type, 'connect failed', `connect to ${addr} failed: ${errno}`, { cause });
  }
}

/** Connecting to the next hop took longer than the connect timeout. */
export class ConnectTimeoutError extends WeftError {
  constructor(addr: string, timeoutMs: number) {
    super(
      'WEFT_ERR_CONNECT_TIMEOUT',
      504,
      'connection_timeout',
      'connect timeout',
      `connect to ${addr} timed out after ${timeoutMs} ms`,
    );
  }
}

/** The peer did not send response headers within the response timeout. */
export class ResponseTimeoutError extends WeftError {
  constructor(timeoutMs: number) {
    super(
      'WEFT_ERR_RESPONSE_TIMEOUT',
      504,
      'http_response_timeout',
      'response timeout',
      `no response within ${timeoutMs} ms`,
    );
  }
}

/** The peer broke the exchange (reset, closed, protocol error) before a response arrived. */
export class PeerError extends WeftError {
  constructor(detail: string, cause?: unknown) {
    super('WEFT_ERR_PEER', 502, 'connection_terminated', 'peer failed', `peer failed: ${detail}`, { cause });
  }
}

/**
 * The client went away before its response was complete: nobody is answered, and whatever the
 * cancelled send then reports is not the next hop's failure. Counted with nginx's 499 ("client
 * closed request"); a gRPC call is CANCELLED.
 */
export class ClientCancelledError extends WeftError {
  constructor() {
    super(
      'WEFT_ERR_CLIENT_CANCELLED',
      499,
      'connection_terminated',
      'client cancelled',
      'the client cancelled the request',
    );
  }
}

/** The request itself is malformed (smuggling ambiguity, bad request line, bad authority). */
export class BadRequestError extends WeftError {
  constructor(detail: string) {
    super('WEFT_ERR_BAD_REQUEST', 400, 'http_request_error', 'bad request', detail);
  }
}

/** The client did not finish its request head in time (a slow loris, or a stalled client). */
export class RequestHeadTimeoutError extends WeftError {
  constructor(timeoutMs: number) {
    super(
      'WEFT_ERR_REQUEST_HEAD_TIMEOUT',
      408,
      'http_request_error',
      'request timeout',
      `request head not complete within ${timeoutMs} ms`,
    );
  }
}

/** The request head is larger than the proxy accepts. */
export class HeadersTooLargeError extends WeftError {
  constructor(limitBytes: number) {
    super(
      'WEFT_ERR_HEADERS_TOO_LARGE',
      431,
      'http_request_error',
      'headers too large',
      `request head exceeds ${limitBytes} bytes`,
    );
  }
}

/** The request would come back to this proxy's own listener. */
export class LoopError extends WeftError {
  constructor(addr: string) {
    super(
      'WEFT_ERR_LOOP',
      502,
      'proxy_loop_detected',
      'loop detected',
      `request to ${addr} would loop back into the proxy`,
    );
  }
}

/**
 * Inbound authorization policy refused the request (docs/policy.md): 403, or PERMISSION_DENIED
 * for gRPC. The reason (the `weft-proxy-error` header and the `error` metric label) names the
 * Server, a bounded set; the message adds the client and what was considered.
 */
export class AuthorizationDeniedError extends WeftError {
  constructor(
    readonly server: string,
    detail: string,
  ) {
    super(
      'WEFT_ERR_UNAUTHORIZED',
      403,
      'http_request_denied',
      `unauthorized: no authorization for this client on server ${server}`,
      `request denied: ${detail}`,
    );
  }
}

/** The proxy is shutting down and takes no new work. */
export class ShuttingDownError extends WeftError {
  constructor() {
    super(
      'WEFT_ERR_SHUTTING_DOWN',
      503,
      'proxy_internal_response',
      'shutting down',
      'proxy is shutting down',
    );
  }
}

/** A configuration problem; several are collected and reported together. */
export class ConfigError extends WeftError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(
      'WEFT_ERR_CONFIG',
      0,
      'proxy_configuration_error',
      'bad config',
      `invalid configuration:\n  ${problems.join('\n  ')}`,
    );
    this.problems = problems;
  }
}

/** Wraps anything thrown that is not a WeftError, so the rescue step always has a code. */
export function asWeftError(err: unknown): WeftError {
  if (err instanceof WeftError) return err;
  return new PeerError(err instanceof Error ? err.message : String(err), err);
}
