/**
 * What the inbound proxy knows about the client of a connection, kept per connection and handed
 * to every request on it: whether it came over verified mesh mTLS, the client's SPIFFE ID, and
 * its address. Authorization (src/proxy/policy/) decides on exactly this.
 */
import type { AuthzPeer } from '../../lib/authz.js';

export type PeerInfo = AuthzPeer;

/** A client that did not speak mesh TLS (an unmeshed peer, or any client of a proxy without identity). */
export function plaintextPeer(socket: { readonly remoteAddress?: string }): PeerInfo {
  return { tls: false, remoteAddr: socket.remoteAddress ?? '' };
}
