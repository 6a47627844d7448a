/** Errors of the proxy's identity (docs/identity.md), with stable codes. */
import { WeftError } from '../../lib/errors.js';

/** A TLS context was asked for before a certificate is held. */
export class IdentityNotReadyError extends WeftError {
  constructor(id: string) {
    super(
      'WEFT_ERR_IDENTITY_NOT_READY',
      503,
      'destination_unavailable',
      'identity not ready',
      `no certificate yet for ${id}`,
    );
  }
}

/** Key, certificate or anchors that cannot be used (unparsable, mismatched, wrong identity). */
export class IdentityMaterialError extends WeftError {
  constructor(detail: string, cause?: unknown) {
    super('WEFT_ERR_IDENTITY_MATERIAL', 502, 'tls_certificate_error', 'bad identity material', detail, {
      cause,
    });
  }
}

/** A Certify call failed (unreachable service, refused token or certificate, bad response). */
export class CertifyError extends WeftError {
  constructor(detail: string, cause?: unknown) {
    super('WEFT_ERR_IDENTITY_CERTIFY', 502, 'tls_certificate_error', 'certify failed', detail, { cause });
  }
}
