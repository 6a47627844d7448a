/**
 * The opaque transport header: the first line an outbound proxy writes on a connection to a
 * peer's inbound proxy when it carries opaque TCP. It names the workload port the bytes are for
 * (0 = the workload's app port) and the authority the client asked for (for metrics and logs).
 * Text, so a capture is easy to read: `weft-opaque/1 <port> <authority>\r\n`.
 */
export const TRANSPORT_MAGIC = 'weft-opaque/1 ';
export const MAX_TRANSPORT_HEADER_BYTES = 512;

export interface TransportHeader {
  readonly port: number;
  readonly authority: string;
}

export function encodeTransportHeader(h: TransportHeader): Buffer {
  return Buffer.from(`${TRANSPORT_MAGIC}${h.port} ${h.authority}\r\n`, 'latin1');
}

/**
 * Parses a complete header line (without CRLF). Returns null when the line is not a valid
 * header, which the inbound proxy treats as a protocol error and closes.
 */
export function decodeTransportHeader(line: string): TransportHeader | null {
  const m = /^weft-opaque\/1 (\d{1,5}) ([\x21-\x7e]{1,255})$/.exec(line);
  if (!m) return null;
  const port = Number(m[1]);
  return port <= 65535 ? { port, authority: m[2] } : null;
}
