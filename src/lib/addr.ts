/** Host/port helpers shared by the proxy and the control plane. */

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** Parses `host:port`, `[v6]:port`; throws a plain Error with a precise message. */
export function parseHostPort(s: string, defaultPort?: number): HostPort {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(s) ?? /^([^:[\]]*)(?::(\d+))?$/.exec(s);
  if (!m || m[1] === '') throw new Error(`"${s}" is not host:port`);
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  if (port === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`"${s}" has no valid port`);
  }
  return { host: m[1], port };
}

/** `host:port`, bracketing IPv6 hosts. */
export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

/**
 * The canonical form of an authority a client asked for: lower-case host and an explicit port
 * (80 when the client gave none), so `Books` and `books:80` name the same destination.
 */
export function normalizeAuthority(authority: string, defaultPort = 80): string {
  const hp = parseHostPort(authority.trim().toLowerCase(), defaultPort);
  return formatHostPort(hp);
}
