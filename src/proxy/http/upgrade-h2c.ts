/**
 * Declining the HTTP/1.1 → h2c upgrade (RFC 7540 §3.2, removed by RFC 9113 §3.1), which clients
 * such as `curl --http2` offer on plain http:// requests. Upgrade is hop-by-hop: the proxy, not
 * the app, answers the offer, and it declines it by serving the request as plain HTTP/1.1. Passing
 * it on as an opaque Upgrade tunnel instead would leak the hop-by-hop fields to the app and leave
 * every later request on the connection unrouted, uncounted and without timeouts.
 */
import type { IncomingMessage } from 'node:http';

/** True when the only protocol a request offers to upgrade to is h2c. */
export function isH2cUpgrade(req: IncomingMessage): boolean {
  return /^\s*h2c\s*$/i.test(String(req.headers.upgrade ?? ''));
}

/**
 * The request head as it came (method, target, version, fields in order) minus the upgrade
 * offer: `Upgrade` and `HTTP2-Settings` go, and so do those tokens in `Connection` (which is
 * dropped if nothing else is left in it). Feeding it back to the HTTP/1 parser serves the request.
 */
export function headWithoutUpgrade(req: IncomingMessage): Buffer {
  const offer = new Set(['upgrade', 'http2-settings']);
  let s = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (offer.has(name)) continue;
    let value = raw[i + 1];
    if (name === 'connection') {
      value = value
        .split(',')
        .map((t) => t.trim())
        .filter((t) => t !== '' && !offer.has(t.toLowerCase()))
        .join(', ');
      if (value === '') continue;
    }
    s += `${raw[i]}: ${value}\r\n`;
  }
  return Buffer.from(`${s}\r\n`, 'latin1');
}
