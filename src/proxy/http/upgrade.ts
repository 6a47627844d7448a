/**
 * HTTP/1 Upgrade (WebSocket) forwarding. An upgraded connection cannot ride the multiplexed
 * HTTP/2 mesh transport, so it gets a dedicated connection to the next hop: the request head is
 * written there as HTTP/1.1 and, from then on, bytes flow both ways untouched.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { asWeftError } from '../../lib/errors.js';
import type { HttpSeries } from '../metrics/proxy-metrics.js';
import type { Connector, ConnectTarget } from '../tcp/connect.js';
import { joinSockets } from '../tcp/opaque.js';
import { rawH1ErrorResponse } from './downstream-h1.js';
import { CLIENT_ID_HEADER } from './headers.js';

const DROP = new Set(['proxy-connection', 'proxy-authorization', 'host', 'weft-timeout', CLIENT_ID_HEADER]);

/**
 * The request head as HTTP/1.1 text, with `path` (origin-form) and `authority` as Host, and
 * `extra` fields (the inbound proxy's weft-client-id) after the client's.
 */
export function serializeRequestHead(
  req: IncomingMessage,
  path: string,
  authority: string,
  extra?: Readonly<Record<string, string>>,
): Buffer {
  let s = `${req.method} ${path} HTTP/1.1\r\nhost: ${authority}\r\n`;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (!DROP.has(raw[i].toLowerCase())) s += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  for (const name in extra) s += `${name}: ${extra[name]}\r\n`;
  return Buffer.from(`${s}\r\n`, 'latin1');
}

/**
 * Connects to `target`, sends the upgrade request, and joins the two connections. The response
 * status (101 or a refusal) is read off the first bytes coming back, for metrics.
 */
export async function forwardUpgrade(
  req: IncomingMessage,
  client: Duplex,
  head: Buffer,
  target: ConnectTarget,
  path: string,
  authority: string,
  series: HttpSeries,
  connector: Connector,
  extraHeaders?: Readonly<Record<string, string>>,
): Promise<void> {
  const startMs = performance.now();
  series.request.inc();
  let upstream: Duplex;
  try {
    upstream = await connector.connect(target);
  } catch (e) {
    const err = asWeftError(e);
    series.response(err.httpStatus, undefined, err.reason).observe(performance.now() - startMs);
    client.end(rawH1ErrorResponse(err));
    return;
  }
  upstream.once('data', (chunk: Buffer) => {
    const m = /^HTTP\/1\.\d (\d{3})/.exec(chunk.toString('latin1', 0, 16));
    series
      .response(m ? Number(m[1]) : 502, undefined, m ? undefined : 'peer failed')
      .observe(performance.now() - startMs);
  });
  upstream.write(serializeRequestHead(req, path, authority, extraHeaders));
  if (head.length > 0) upstream.write(head);
  joinSockets(client, upstream);
}
