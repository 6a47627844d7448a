/**
 * The outbound loop guard. An authority the mesh does not know is forwarded to its own
 * host:port, so one naming the outbound listener itself would come straight back, be forwarded
 * again, and so on until connections run out. Comparing authority strings is not enough:
 * `127.1`, `0.0.0.0`, `[::ffff:127.0.0.1]`, `2130706433` and local host names all reach a
 * listener on 127.0.0.1. So the guard compares the addresses the host resolves to, as connect would.
 */
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import { parseHostPort } from '../../lib/addr.js';

/**
 * True when connecting to `host:port` would reach the listener bound at `listenAddr`
 * ("host:port"). Resolves the host only when the port is the listener's (loops are rare, and
 * every other request pays nothing); a host that does not resolve is no loop (connect reports it).
 */
export async function reachesListener(
  host: string,
  port: number,
  listenAddr: string | undefined,
): Promise<boolean> {
  if (!listenAddr) return false;
  const listen = parseHostPort(listenAddr);
  if (port !== listen.port) return false;
  let resolved: { address: string; family: number }[];
  try {
    resolved = await lookup(host, { all: true, verbatim: true });
  } catch {
    return false;
  }
  const reaching = addressesReaching(listen.host);
  return resolved.some((a) => reaching.check(a.address, a.family === 6 ? 'ipv6' : 'ipv4'));
}

/** Destination addresses a connection to which lands on a listener bound to `bindHost`. */
function addressesReaching(bindHost: string): net.BlockList {
  const list = new net.BlockList(); // matches IPv4-mapped IPv6 addresses against IPv4 entries too
  const family = net.isIPv6(bindHost) ? 'ipv6' : 'ipv4';
  const any = bindHost === '0.0.0.0' || bindHost === '::';
  if (any) {
    list.addSubnet('127.0.0.0', 8, 'ipv4');
    list.addAddress('::1', 'ipv6');
    for (const iface of Object.values(networkInterfaces()).flat()) {
      if (iface) list.addAddress(iface.address, iface.family === 'IPv6' ? 'ipv6' : 'ipv4');
    }
  } else {
    list.addAddress(bindHost, family);
  }
  // Linux sends a connection to the unspecified address to loopback.
  if (any || bindHost === '127.0.0.1') list.addAddress('0.0.0.0', 'ipv4');
  if (any || bindHost === '::1') list.addAddress('::', 'ipv6');
  return list;
}
