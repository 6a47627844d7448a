/** A Destination subscriber that never reads, to make the control plane cut one off. */
import http2 from 'node:http2';

/**
 * A Get stream from a plain HTTP/2 client that sends its request and then never reads: grpc-js
 * clients keep reading into memory even when the app does not, so they cannot play this part.
 * `close()` releases the session.
 */
export function neverReadingSubscriber(addr: string, authority: string) {
  const session = http2.connect(`http://${addr}`);
  session.on('error', () => {});
  const req = session.request({
    ':method': 'POST',
    ':path': '/weft.destination.v1.Destination/Get',
    'content-type': 'application/grpc',
    te: 'trailers',
  });
  req.on('error', () => {});
  const field = Buffer.from(authority);
  const message = Buffer.concat([Buffer.from([0x0a, field.length]), field]); // GetDestination.authority
  const prefix = Buffer.alloc(5); // uncompressed, 4-byte length
  prefix.writeUInt32BE(message.length, 1);
  req.end(Buffer.concat([prefix, message]));
  req.pause();
  return { session, req, close: () => session.destroy() };
}
