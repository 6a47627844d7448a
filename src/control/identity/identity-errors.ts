/**
 * The identity service's errors (docs/identity.md). Each has a stable code; the edges map codes to
 * answers: the gRPC server to a status (`grpcStatusOf`), the HTTP API through api-errors.ts.
 */
import * as grpc from '@grpc/grpc-js';
import { WeftError } from '../../lib/errors.js';

class IdentityError extends WeftError {
  constructor(
    code: string,
    httpStatus: number,
    reason: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, httpStatus, 'proxy_internal_error', reason, message, options);
  }
}

/** The CSR is unparsable, badly signed, not ECDSA P-256, or names anything but one URI. */
export class BadCsrError extends IdentityError {
  constructor(detail: string, cause?: unknown) {
    super('WEFT_ERR_IDENTITY_BAD_CSR', 400, 'bad csr', `bad certificate signing request: ${detail}`, {
      cause,
    });
  }
}

/** A SPIFFE ID that is malformed or outside this mesh's trust domain. */
export class BadIdentityError extends IdentityError {
  constructor(identity: string, detail: string) {
    super(
      'WEFT_ERR_IDENTITY_BAD_ID',
      400,
      'bad identity',
      `bad identity ${JSON.stringify(identity)}: ${detail}`,
    );
  }
}

/** No valid credential: unknown, used or expired token, or no verified client certificate. */
export class UnauthenticatedError extends IdentityError {
  constructor(detail: string) {
    super('WEFT_ERR_IDENTITY_UNAUTHENTICATED', 401, 'unauthenticated', detail);
  }
}

/** A valid credential for another identity than the one asked for. */
export class IdentityDeniedError extends IdentityError {
  constructor(asked: string, entitled: string) {
    super(
      'WEFT_ERR_IDENTITY_DENIED',
      403,
      'identity denied',
      `the credential is bound to ${entitled}, not ${asked}`,
    );
  }
}

/** An anchor fingerprint that is not in the bundle. */
export class AnchorNotFoundError extends IdentityError {
  constructor(fingerprint: string) {
    super(
      'WEFT_ERR_IDENTITY_ANCHOR_NOT_FOUND',
      404,
      'not found',
      `no trust anchor with fingerprint ${fingerprint}`,
    );
  }
}

/** The change would break the CA (remove the anchor signing the issuer, or the last anchor). */
export class CaConflictError extends IdentityError {
  constructor(detail: string) {
    super('WEFT_ERR_IDENTITY_CA_CONFLICT', 409, 'ca conflict', detail);
  }
}

/** The CA was supplied by the user (no anchor keys here): Weft does not rotate it. */
export class CaExternalError extends IdentityError {
  constructor(what: string) {
    super(
      'WEFT_ERR_IDENTITY_CA_EXTERNAL',
      409,
      'external ca',
      `cannot ${what}: the CA was supplied by files (WEFT_CONTROL_IDENTITY_*_FILE); rotate it there`,
    );
  }
}

/** The CA files in the state directory or supplied by the user cannot be read or do not fit together. */
export class CaFilesError extends IdentityError {
  constructor(path: string, detail: string, cause?: unknown) {
    super('WEFT_ERR_IDENTITY_CA_FILES', 500, 'ca files', `identity CA at ${path}: ${detail}`, { cause });
  }
}

/** Too many outstanding bootstrap tokens (a bound, not expected in practice). */
export class TooManyTokensError extends IdentityError {
  constructor(limit: number) {
    super('WEFT_ERR_IDENTITY_TOO_MANY_TOKENS', 503, 'too many tokens', `more than ${limit} unused tokens`);
  }
}

/** The gRPC status answering `err` (INTERNAL for anything unexpected). */
export function grpcStatusOf(err: unknown): grpc.status {
  if (err instanceof BadCsrError || err instanceof BadIdentityError) return grpc.status.INVALID_ARGUMENT;
  if (err instanceof UnauthenticatedError) return grpc.status.UNAUTHENTICATED;
  if (err instanceof IdentityDeniedError) return grpc.status.PERMISSION_DENIED;
  if (err instanceof TooManyTokensError) return grpc.status.RESOURCE_EXHAUSTED;
  return grpc.status.INTERNAL;
}
