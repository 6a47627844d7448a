/** Errors of the mesh TLS layer (docs/identity.md), with stable codes. */
import { WeftError } from '../../lib/errors.js';

/**
 * The peer's certificate chains to a trust anchor but names another workload than discovery
 * promised for that endpoint: the connection is closed before any request is sent.
 */
export class PeerIdentityMismatchError extends WeftError {
  constructor(
    readonly addr: string,
    readonly expected: string,
    readonly presented: readonly string[],
  ) {
    super(
      'WEFT_ERR_PEER_IDENTITY',
      502,
      'tls_certificate_error',
      'peer identity mismatch',
      `${addr} presented ${presented.length > 0 ? presented.join(', ') : 'no URI SAN'}, expected ${expected}`,
    );
  }
}

/** The TLS handshake with a peer proxy failed (untrusted chain, protocol version, alert, reset). */
export class MeshTlsError extends WeftError {
  constructor(addr: string, cause: unknown) {
    const detail =
      (cause as NodeJS.ErrnoException | undefined)?.code ?? (cause as Error)?.message ?? 'unknown';
    super(
      'WEFT_ERR_MESH_TLS',
      502,
      'tls_protocol_error',
      'mesh tls failed',
      `mTLS to ${addr} failed: ${detail}`,
      {
        cause,
      },
    );
  }
}
