/**
 * The TLS metric labels of a series (docs/identity.md): `tls` ("true"/"false"), and with it
 * `server_id` (outbound) or `client_id` (inbound) when true, `no_tls_reason` when false. A proxy
 * without identity labels everything as before mTLS existed: `tls="false"` alone. Label values
 * are identities and a few reasons, so the label sets stay bounded by the mesh's workloads.
 */
import type { Labels } from '../../lib/metrics/registry.js';
import type { PeerInfo } from './peer-info.js';

export interface TlsLabels {
  readonly tls: 'true' | 'false';
  /** The labels after `tls` (server_id, client_id or no_tls_reason), undefined when none. */
  readonly extra: Labels | undefined;
}

/** Every hop of a proxy without identity. */
export const TLS_DISABLED: TlsLabels = Object.freeze({ tls: 'false', extra: undefined });
/** An endpoint discovery gave no identity (or an authority outside the mesh): plaintext. */
const NO_IDENTITY: TlsLabels = Object.freeze({
  tls: 'false',
  extra: Object.freeze({ no_tls_reason: 'no_identity' }),
});
/** A client that did not speak mesh TLS to the inbound proxy. */
const NO_TLS_FROM_REMOTE: TlsLabels = Object.freeze({
  tls: 'false',
  extra: Object.freeze({ no_tls_reason: 'no_tls_from_remote' }),
});

/** Labels per identity, built once: bounded by the identities of the mesh, cleared past this. */
const MAX_CACHED = 1000;
const serverCache = new Map<string, TlsLabels>();
const clientCache = new Map<string, TlsLabels>();

/** Outbound: `serverId` is the identity the mesh connector verifies, undefined for plaintext. */
export function outboundTlsLabels(identityEnabled: boolean, serverId: string | undefined): TlsLabels {
  if (!identityEnabled) return TLS_DISABLED;
  return serverId === undefined ? NO_IDENTITY : cached(serverCache, 'server_id', serverId);
}

/** Inbound: the client of the connection the request or stream came on. */
export function inboundTlsLabels(identityEnabled: boolean, peer: PeerInfo | undefined): TlsLabels {
  if (!identityEnabled) return TLS_DISABLED;
  return peer?.tls && peer.clientId !== undefined
    ? cached(clientCache, 'client_id', peer.clientId)
    : NO_TLS_FROM_REMOTE;
}

/** `extra` of `t` followed by `more` (e.g. dst_* labels), undefined when both are empty. */
export function withLabels(t: TlsLabels, more: Labels | undefined): Labels | undefined {
  if (!more || Object.keys(more).length === 0) return t.extra;
  return t.extra ? { ...t.extra, ...more } : more;
}

function cached(cache: Map<string, TlsLabels>, name: string, id: string): TlsLabels {
  let l = cache.get(id);
  if (!l) {
    if (cache.size >= MAX_CACHED) cache.clear();
    l = Object.freeze({ tls: 'true', extra: Object.freeze({ [name]: id }) });
    cache.set(id, l);
  }
  return l;
}
