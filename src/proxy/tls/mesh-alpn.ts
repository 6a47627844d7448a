/**
 * The ALPN protocol that marks a connection between two Weft proxies (docs/identity.md): the
 * inbound proxy terminates TLS only for ClientHellos offering it; any other TLS is the app's.
 */
export const MESH_ALPN = 'weft.mesh/1';
