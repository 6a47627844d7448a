/**
 * The errors of the public API and the one place where error codes become HTTP statuses. Every
 * error response has the body `{ error: { code, message } }`; an invalid apply adds
 * `errors: [{ index, path, message }]`.
 */
import { WeftError } from '../../lib/errors.js';

/** HTTP status of every code the API answers with; anything else is a 500. */
const STATUS_OF_CODE: Readonly<Record<string, number>> = Object.freeze({
  WEFT_ERR_BAD_REQUEST: 400,
  WEFT_ERR_NOT_FOUND: 404,
  WEFT_ERR_UNKNOWN_KIND: 404,
  WEFT_ERR_METHOD_NOT_ALLOWED: 405,
  WEFT_ERR_BODY_TOO_LARGE: 413,
  // The store's codes (src/store/store-error.ts).
  WEFT_ERR_INVALID_RESOURCE: 422,
  WEFT_ERR_CONFLICT: 409,
  WEFT_ERR_STORE_EXPIRED: 410,
  WEFT_ERR_WATCH_OVERFLOW: 503,
  WEFT_ERR_STORE_CORRUPT: 500,
  WEFT_ERR_STORE_LOCKED: 503,
  WEFT_ERR_STORE_CLOSED: 503,
  WEFT_ERR_INTERNAL: 500,
  // The identity service's codes (src/control/identity/identity-errors.ts).
  WEFT_ERR_IDENTITY_BAD_ID: 400,
  WEFT_ERR_IDENTITY_ANCHOR_NOT_FOUND: 404,
  WEFT_ERR_IDENTITY_CA_CONFLICT: 409,
  WEFT_ERR_IDENTITY_CA_EXTERNAL: 409,
  WEFT_ERR_IDENTITY_TOO_MANY_TOKENS: 503,
});

/** The HTTP status for an error code (500 for a code the API does not know). */
export function httpStatusOf(code: string): number {
  return STATUS_OF_CODE[code] ?? 500;
}

/** An error the API itself raises (bad URL, body, method), as opposed to the store's. */
export class ApiRequestError extends WeftError {
  constructor(code: string, reason: string, message: string) {
    super(code, httpStatusOf(code), 'proxy_internal_error', reason, message);
  }
}

export const notFound = (what: string) =>
  new ApiRequestError('WEFT_ERR_NOT_FOUND', 'not found', `${what} not found`);

export const unknownKind = (segment: string, known: string) =>
  new ApiRequestError('WEFT_ERR_UNKNOWN_KIND', 'unknown kind', `unknown kind "${segment}" (one of ${known})`);

export const badRequest = (message: string) =>
  new ApiRequestError('WEFT_ERR_BAD_REQUEST', 'bad request', message);

export const bodyTooLarge = (maxBodyBytes: number) =>
  new ApiRequestError(
    'WEFT_ERR_BODY_TOO_LARGE',
    'body too large',
    `request body exceeds ${maxBodyBytes} bytes`,
  );

/** The path exists but not for this method; `allowed` goes into the `Allow` header. */
export class MethodNotAllowedError extends ApiRequestError {
  constructor(
    method: string,
    readonly allowed: readonly string[],
  ) {
    super(
      'WEFT_ERR_METHOD_NOT_ALLOWED',
      'method not allowed',
      `${method} is not allowed here (use ${allowed.join(' or ')})`,
    );
  }
}

/** One problem of an apply request: which resource (its index in `resources`), which field, what. */
export interface ApplyProblem {
  readonly index: number;
  readonly path: string;
  readonly message: string;
}

/** The JSON body of an error response. */
export interface ErrorBody {
  readonly error: { readonly code: string; readonly message: string };
  /** Every problem of an invalid apply (code WEFT_ERR_INVALID_RESOURCE). */
  readonly errors?: readonly ApplyProblem[];
  /** For an apply that failed part-way: the resources applied before the failure. */
  readonly applied?: readonly unknown[];
}

/** The status and body answering `err`; errors without a code become WEFT_ERR_INTERNAL. */
export function errorResponse(err: unknown): { status: number; body: ErrorBody } {
  if (err instanceof WeftError) {
    return { status: httpStatusOf(err.code), body: { error: { code: err.code, message: err.message } } };
  }
  return {
    status: 500,
    body: { error: { code: 'WEFT_ERR_INTERNAL', message: 'internal error (see the control plane log)' } },
  };
}
