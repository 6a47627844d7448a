/**
 * Opaque TCP forwarding: bytes both ways with backpressure (stream.pipe), half-close passed on,
 * and an error on either side tearing both down.
 */
import type { Duplex } from 'node:stream';

/**
 * Joins `client` and `server`. `onClose` fires exactly once, after both sides are closed, with
 * the first error seen (if any).
 */
export function joinSockets(
  client: Duplex,
  server: Duplex,
  onClose?: (err: Error | undefined) => void,
): void {
  let firstError: Error | undefined;
  let closed = 0;
  const fail = (err: Error) => {
    firstError ??= err;
    client.destroy();
    server.destroy();
  };
  const onSideClose = () => {
    if (++closed === 2) onClose?.(firstError);
  };
  client.on('error', fail);
  server.on('error', fail);
  client.on('close', onSideClose);
  server.on('close', onSideClose);
  client.pipe(server);
  server.pipe(client);
  client.resume();
  server.resume();
}
